"""The five services as real uvicorn processes, and the chaos monkey that SIGKILLs them.

A thin layer over `services.processes`: asynchronous (the blocking calls run in threads so the
load keeps flowing while a process is killed or restarted), with a record of every kill and how
long the restarted process took to answer `/readyz` again, and the tails of the logs for a
failing test.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.processes import ServiceProcess, listening, wait_ready
from services.registry import settings_of

# Credit first: the invoice service asks it for a credit check before issuing.
SERVICES: tuple[str, ...] = ("credit", "invoice", "payments", "dunning", "reporting")

# The credit limits the load gives its customers are far above the maker-checker threshold
# (50,000.00 by default): lift the threshold for these processes so a limit applies at once.
BASE_ENV: dict[str, str] = {"LEDGERLINE_CREDIT_LIMIT_APPROVAL_THRESHOLD_MINOR": str(10**15)}

READY_TIMEOUT = 90.0


@dataclass
class Kill:
    service: str
    pid: int | None
    at: float  # monotonic
    ready_after: float | None = None  # seconds from the kill until /readyz answered 200
    problem: str | None = None  # why it did not become ready


@dataclass
class Cluster:
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(init=False)
    kills: list[Kill] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.processes = {
            name: ServiceProcess(name, log_dir=self.log_dir, env={**BASE_ENV, **self.env})
            for name in SERVICES
        }

    def url(self, name: str) -> str:
        return self.processes[name].url

    async def start(self, *names: str) -> None:
        """Start (all by default) and wait until each answers /readyz; refuse to run next to
        another instance already listening on a service port (its answers would be taken for
        ours)."""
        chosen = [self.processes[n] for n in (names or SERVICES)]
        for process in chosen:
            if not process.alive:
                port = settings_of(process.name).http_port
                assert not listening(port), (
                    f"port {port} ({process.name}) is already in use: stop the services running "
                    "there (e.g. `ar services run`) before the chaos tests"
                )
        for process in chosen:
            process.start()
        problems = await asyncio.to_thread(wait_ready, chosen, READY_TIMEOUT)
        assert not problems, f"services not ready: {problems}\n{self.log_tails()}"
        for process in chosen:
            assert process.alive, f"{process.name} exited\n{self.log_tails()}"

    async def kill_and_restart(self, name: str) -> Kill:
        """SIGKILL one service, start it again at once, and wait until it is ready."""
        process = self.processes[name]
        kill = Kill(name, process.pid, time.monotonic())
        self.kills.append(kill)
        await asyncio.to_thread(process.kill)
        process.start()
        problems = await asyncio.to_thread(wait_ready, [process], READY_TIMEOUT)
        if problems:
            kill.problem = problems[name]
        else:
            kill.ready_after = time.monotonic() - kill.at
        return kill

    async def monkey(self, stop: asyncio.Event, every: float, rng: random.Random) -> None:
        """SIGKILL a random service about every `every` seconds (jittered ±30 %) and restart
        it, one at a time: the next kill comes once the last victim is ready again, so at most
        one service is down at any moment (a restart takes a few seconds on a busy machine)."""
        while not stop.is_set():
            last = time.monotonic()
            await self.kill_and_restart(rng.choice(SERVICES))
            pause = max(0.0, every * rng.uniform(0.7, 1.3) - (time.monotonic() - last))
            try:
                await asyncio.wait_for(stop.wait(), timeout=pause)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.processes.values()))

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for name in SERVICES:
            path = self.log_dir / f"{name}.log"
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                text = ["(no log)"]
            parts.append(f"---- {name} ({path}) ----\n" + "\n".join(text))
        return "\n".join(parts)

    def kill_summary(self) -> str:
        ready = [k.ready_after for k in self.kills if k.ready_after is not None]
        by_service = {n: sum(k.service == n for k in self.kills) for n in SERVICES}
        slowest = f"{max(ready):.1f}" if ready else "-"
        return f"{len(self.kills)} kills {by_service}, slowest restart to ready {slowest}s"


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


async def restart_infrastructure(component: str) -> float:
    """Stop and start the real Postgres or Kafka with the project's own scripts; seconds taken."""
    started = time.monotonic()
    for action in ("stop", "start"):
        proc = await asyncio.create_subprocess_exec(
            "bash",
            str(DEPLOY / component / f"{action}.sh"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, f"{component} {action}: {err.decode()[-500:]}"
    return time.monotonic() - started
