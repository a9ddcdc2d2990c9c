"""What an operation costs beside its throughput: CPU of the server and of the database
per operation, and the database's commands per operation.

Throughput alone hides where time goes: a path can keep pace with its baseline while
costing the database three times the work, which shows only when the database becomes
the bottleneck. CPU is read from /proc (user + system time of each process and, for the
server, of its worker processes), the commands from the database's `serverStatus`
opcounters, before and after each timed phase. The database's pid comes from
`serverStatus` too, so its CPU is known whenever it runs on this machine (the embedded
one always does); elsewhere its column stays empty.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

TICKS = os.sysconf("SC_CLK_TCK")
COUNTERS = ("insert", "query", "update", "getmore", "command")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU time the processes have used (gone ones count 0)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _running_here(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def with_descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a supervisor's workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


@dataclass
class Sample:
    server_cpu: float
    database_cpu: float | None
    commands: dict[str, int]


@dataclass
class Cost:
    """The CPU and commands of a load's timed phases, added up."""

    server_cpu: float = 0.0
    database_cpu: float | None = 0.0
    commands: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, before: Sample, after: Sample) -> None:
        self.server_cpu += after.server_cpu - before.server_cpu
        if self.database_cpu is None or before.database_cpu is None:
            self.database_cpu = None
        else:
            assert after.database_cpu is not None
            self.database_cpu += after.database_cpu - before.database_cpu
        for name in COUNTERS:
            self.commands[name] += after.commands[name] - before.commands[name]

    def merge(self, other: "Cost") -> None:
        """Counts `other`, a later phase's cost, as part of this one."""
        self.server_cpu += other.server_cpu
        if self.database_cpu is None or other.database_cpu is None:
            self.database_cpu = None
        else:
            self.database_cpu += other.database_cpu
        for name in COUNTERS:
            self.commands[name] += other.commands[name]

    def per_operation(self, operations: int) -> dict[str, Any]:
        """Milliseconds of CPU and commands per operation."""
        n = max(operations, 1)
        return {
            "server_cpu_ms": round(self.server_cpu * 1000 / n, 3),
            "database_cpu_ms": None
            if self.database_cpu is None
            else round(self.database_cpu * 1000 / n, 3),
            "commands": {name: round(count / n, 3) for name, count in self.commands.items()},
        }


class Meter:
    """Samples the CPU of the server's processes (`server`: a pid, whose workers are found
    below it; None: this process, which drives a raw baseline itself) and the database's."""

    def __init__(self, client: AsyncMongoClient[Any], database_pid: int | None) -> None:
        self._client = client
        self._database_pid = database_pid

    @classmethod
    async def of(cls, client: AsyncMongoClient[Any]) -> "Meter":
        status = await client.admin.command("serverStatus")
        pid = status.get("pid")
        return cls(client, pid if isinstance(pid, int) and _running_here(pid) else None)

    async def sample(self, server: int | None) -> Sample:
        status = await self._client.admin.command("serverStatus")
        counters = status.get("opcounters", {})
        pids = [os.getpid()] if server is None else with_descendants(server)
        return Sample(
            server_cpu=cpu_seconds(pids),
            database_cpu=None if self._database_pid is None else cpu_seconds([self._database_pid]),
            commands={name: int(counters.get(name, 0)) for name in COUNTERS},
        )
