"""The CPU a stack with nothing to do uses: relays, chain sealers, consumers and workers waiting.

    .venv/bin/python -m bench.idle --start [--seconds 30 --settle 15]

The services of `bench.http_load` (invoice, credit, payments, reporting) as uvicorn processes,
started here with `--start` or already running; after `--settle` seconds, each process's CPU
over `--seconds` is read from /proc, Postgres's and Kafka's included.
"""

from __future__ import annotations

import argparse
import time

from bench.common import cpu_by_role, services_ready


def main(args: argparse.Namespace) -> None:
    with services_ready(args.start):
        time.sleep(args.settle)
        before, started = cpu_by_role(), time.perf_counter()
        time.sleep(args.seconds)
        after, seconds = cpu_by_role(), time.perf_counter() - started
    spent = {role: after[role] - before.get(role, 0.0) for role in after}
    spent.pop("load generator", None)  # this process only sleeps
    print(f"idle for {seconds:.0f} s, share of one core:")
    for role, cpu in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"    {role:<12} {cpu / seconds:6.1%}")
    print(f"    {'all':<12} {sum(spent.values()) / seconds:6.1%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", action="store_true", help="start the services here")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--settle", type=float, default=15, help="wait after ready, first")
    main(parser.parse_args())
