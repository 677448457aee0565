"""Where the time goes, from a py-spy profile in collapsed-stack form.

    .venv/bin/pip install py-spy   # a tool, not a dependency
    .venv/bin/py-spy record --format raw -o /tmp/invoice.txt --pid <pid> --duration 20
    .venv/bin/python -m bench.stacks /tmp/invoice.txt --top 25

Prints the share of samples spent in each function itself (self) and under it (inclusive),
with the idle event loop (`select`/`epoll` waits) counted apart, so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once)\b.*\((selectors|base_events)\.py")
# Frames every stack passes through: the event loop, the module runner, greenlet bridges.
PLUMBING = ("(asyncio/", "(<frozen", "(uvicorn/", "(anyio/", "_concurrency_py3k", "<module>")
FRAME = re.compile(r"^(?P<function>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def summarise(lines: list[str], top: int) -> None:
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    busy = idle = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if frames and IDLE.search(stack.split(";")[-1]):
            idle += count
            continue
        busy += count
        own[frames[-1]] += count
        for name in set(frames):
            under[name] += count
    total = busy + idle
    print(f"samples: {total:,}; busy {busy / total:.0%}, idle in the event loop {idle / total:.0%}")
    print(f"\nself time (share of busy samples), top {top}:")
    for name, count in own.most_common(top):
        print(f"  {count / busy:6.1%}  {name}")
    print(f"\ninclusive time, top {top} (project code and libraries):")
    for name, count in under.most_common(top * 3):
        if any(plumbing in name for plumbing in PLUMBING):
            continue
        print(f"  {count / busy:6.1%}  {name}")
        top -= 1
        if top == 0:
            break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    summarise(args.profile.read_text().splitlines(), args.top)
