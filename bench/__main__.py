"""`python -m bench` (`make bench`): runs every scenario and writes bench/results.md and
bench/results.json.

One command, nothing to prepare: it starts its own database (the embedded SecantusDB, or
uses USERCREDITS_MONGODB_URI) and its own service processes, gives each scenario a fresh
database, bounds every measurement by time so the whole run stays well under ten minutes
on two cores, and drops what it created. With py-spy available it also profiles the
service under the GraphQL debit load (see bench/profile.py).
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench import debits, fanout, growth, hotpath, reads, report, webhooks
from bench.harness import Bench, Database, log, machine, raise_open_file_limit
from bench.profile import find_py_spy
from usercredits.server.database import connect

Scenario = Callable[[Bench], Awaitable[report.ScenarioResult]]

SCENARIOS: dict[str, Scenario] = {
    "debits": debits.run,
    "reads": reads.run,
    "fanout": fanout.run,
    "growth": growth.run,
    "hotpath": hotpath.run,
    "webhooks": webhooks.run,
}

OPEN_FILES = 20_000
"""Enough for the fan-out's 10,000 websockets in the service and in the subscribers'
process (each has its own limit), with room to spare."""


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of each measurement (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="discarded warm-up before each (default 1)"
    )
    parser.add_argument(
        "--only",
        choices=sorted(SCENARIOS),
        action="append",
        help="run only this scenario (repeatable); results are then written only with --output",
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="skip profiling even if py-spy is available"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the working folder (database files, service logs, raw profile)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where results.md and results.json go (default: bench/)",
    )
    return parser.parse_args(argv)


async def run(
    args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, Any], list[report.ScenarioResult]]:
    py_spy = None if args.no_profile else find_py_spy()
    if py_spy is None:
        log("py-spy not found (or --no-profile): no profile this run")
    async with Database(workdir) as database:
        log(f"database: {database.description}")
        where = machine(database)
        if where["load_average"] > 0.5:
            log(f"the load average is {where['load_average']}: other work may skew the figures")
        client = connect(database.uri)
        bench = Bench(
            database=database,
            client=client,
            workdir=workdir,
            seconds=args.seconds,
            warmup=args.warmup,
            py_spy=py_spy,
        )
        results: list[report.ScenarioResult] = []
        try:
            for name in args.only or SCENARIOS:
                log(f"scenario {name}")
                results.append(await SCENARIOS[name](bench))
        finally:
            for name in bench.databases:
                await client.drop_database(name)
            await client.close()
        return where, results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    open_files = raise_open_file_limit(OPEN_FILES)
    if open_files < fanout.SUBSCRIBERS + 500:
        log(f"the open-file limit is {open_files}: the fan-out scenario may run out")
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="usercredits-bench-"))
    try:
        where, results = asyncio.run(run(args, workdir))
    finally:
        if args.keep:
            log(f"working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    settings = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "scenarios": [r.name for r in results],
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    rows = [row for result in results for row in result.rows]
    print(
        f"Machine: {where['cores']} cores ({where['cpu']}), {where['python']}, "
        f"database {where['database']}, {where['date']}"
    )
    print("\n".join(report.table(rows)))
    if args.only and args.output is None:
        log("--only without --output: results files left as they were")
    else:
        output: Path = args.output or Path(__file__).resolve().parent
        output.mkdir(parents=True, exist_ok=True)
        report.write(output, machine=where, settings=settings, results=results)
        log(f"wrote {output / 'results.md'} and {output / 'results.json'}")
    log(f"done in {settings['elapsed_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
