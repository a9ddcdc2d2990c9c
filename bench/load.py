"""Closed-loop load for a bounded time, and the statistics of what it measured.

A closed loop (each of N workers sends its next operation when the previous one answers)
measures throughput at a fixed concurrency, which is how the issue states the debit goals
(32 concurrent clients). A warm-up phase runs first and is discarded, so connection pools,
caches and JIT-like warm-ups (Strawberry's parser cache, PyMongo's pool) are paid for
before measuring.
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.cost import Cost, Meter

Operation = Callable[[int], Awaitable[object]]
"""One operation of worker `i` (0 <= i < concurrency); raising counts as an error."""

MAX_ERROR_SAMPLES = 5


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0-100) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(latencies_ms),
        "p50_ms": percentile(latencies_ms, 50),
        "p95_ms": percentile(latencies_ms, 95),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms, default=math.nan),
        "mean_ms": sum(latencies_ms) / len(latencies_ms) if latencies_ms else math.nan,
    }


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    operations: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    """CPU and database commands of the timed phases (when a meter watched them)."""

    def add(self, other: "LoadResult") -> None:
        """Counts `other`, a later phase of the same load, as part of this one."""
        self.seconds += other.seconds
        self.operations += other.operations
        self.errors += other.errors
        room = MAX_ERROR_SAMPLES - len(self.error_samples)
        self.error_samples.extend(other.error_samples[:room])
        self.latencies_ms.extend(other.latencies_ms)
        self.cost.merge(other.cost)

    @property
    def throughput(self) -> float:
        """Successful operations per second."""
        return self.operations / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "operations": self.operations,
            "ops_per_second": round(self.throughput, 1),
            "errors": self.errors,
            "error_samples": self.error_samples,
            **latency_summary(self.latencies_ms),
            **self.cost.per_operation(self.operations),
        }


async def _phase(operation: Operation, concurrency: int, seconds: float) -> LoadResult:
    deadline = time.perf_counter() + seconds
    result = LoadResult(concurrency=concurrency, seconds=seconds)

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await operation(index)
            except Exception as exc:
                result.errors += 1
                if len(result.error_samples) < MAX_ERROR_SAMPLES:
                    result.error_samples.append(repr(exc)[:300])
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.operations += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def closed_loop(
    operation: Operation, *, concurrency: int, seconds: float, warmup: float
) -> LoadResult:
    """Runs `operation` on `concurrency` workers: `warmup` seconds discarded, then
    `seconds` measured (the last operations in flight finish after the deadline and count,
    and so does the time they take)."""
    if warmup > 0:
        await _phase(operation, concurrency, warmup)
    return await _phase(operation, concurrency, seconds)


async def alternating(
    operations: Mapping[str, Operation],
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    turns: int,
    before: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
    meter: Meter | None = None,
    servers: Mapping[str, int | None] | None = None,
) -> dict[str, LoadResult]:
    """Closed loops of several operations compared with each other, taking `turns` turns
    of `seconds / turns` each, in order, after a warm-up of each: a slow spell of the
    machine (the database compacting, a neighbour's burst) then falls on all of them
    alike instead of on whichever ran at that moment, so their ratios stay steady.
    `before[name]`, if given, sets the stage before each phase of that operation, untimed.
    With a `meter`, each timed phase's CPU and database commands are counted: the server's
    of `servers[name]` (a pid; None or absent: this process, for a raw baseline)."""
    prepare = before or {}
    for name, operation in operations.items():
        if warmup > 0:
            if name in prepare:
                await prepare[name]()
            await _phase(operation, concurrency, warmup)
    results = {name: LoadResult(concurrency=concurrency, seconds=0.0) for name in operations}
    for _ in range(turns):
        for name, operation in operations.items():
            if name in prepare:
                await prepare[name]()
            server = (servers or {}).get(name)
            start = None if meter is None else await meter.sample(server)
            phase = await _phase(operation, concurrency, seconds / turns)
            if meter is not None and start is not None:
                phase.cost.add(start, await meter.sample(server))
            results[name].add(phase)
    return results
