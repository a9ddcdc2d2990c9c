"""Sampling the service process under load with py-spy, and summing up where time goes.

py-spy attaches to the running `usercredits serve` process from outside, so the service
runs exactly as in production (no profiler inside it). It is optional: it is not a project
dependency, and the bench looks for it at $BENCH_PY_SPY, beside the interpreter, or on PATH
(`uv tool install py-spy`, or `pip install py-spy` in any environment). Profiling needs
permission to ptrace the service (root, or kernel.yama.ptrace_scope = 0).

Idle samples are left out (py-spy drops threads waiting in the kernel; a thread-pool worker
waiting for work is dropped here). The rest is summed three ways:
- by stage: the most specific layer on the stack (so a PyMongo call made by a resolver
  counts as the driver, and graphql-core's visitor called by validation as validation);
- by function, own time (the top frame);
- by this project's functions, inclusive (what they and their callees cost).
"""

import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import PROJECT_ROOT, open_log
from usercredits.server import children

TOP = 12
RATE = 200

LOOP = "event loop (asyncio)"
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("GraphQL validation (graphql-core `validate`)", ("/graphql/validation/",)),
    ("GraphQL parsing (graphql-core)", ("/graphql/language/parser.py", "/graphql/language/lexer")),
    ("MongoDB driver (pymongo, bson)", ("/pymongo/", "/bson/")),
    ("documents (beanie, pydantic)", ("/beanie/", "/pydantic/", "/pydantic_core/", "/lazy_model/")),
    ("JWT (pyjwt)", ("/jwt/",)),
    ("logging", ("/logging/",)),
    ("change feed (server/changes.py)", (str(PROJECT_ROOT / "server" / "changes.py"),)),
    ("services/ and resolvers/", (str(PROJECT_ROOT / "services"), str(PROJECT_ROOT / "resolvers"))),
    ("GraphQL execution (graphql-core)", ("/graphql/",)),
    ("Strawberry (view, extensions, types)", ("/strawberry/",)),
    ("HTTP (aiohttp)", ("/aiohttp/", "/multidict/", "/yarl/")),
    (LOOP, ("/asyncio/",)),
]
"""(label, path fragments), most specific first: a sample belongs to the first stage with a
fragment in the path of any frame of its stack (every request runs under aiohttp and
asyncio, so those come last and take only what no other layer claims)."""

OWN_PACKAGES = ("services", "resolvers", "schema", "server", "models")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    path: str


@dataclass
class Summary:
    samples: int
    idle_pool: int
    stages: list[tuple[str, int]]
    own: list[tuple[str, int]]
    project: list[tuple[str, int]]

    def percent(self, count: int) -> float:
        return 100 * count / self.samples if self.samples else 0.0

    def as_json(self) -> dict[str, Any]:
        def shares(items: list[tuple[str, int]]) -> list[dict[str, Any]]:
            return [{"what": label, "percent": round(self.percent(n), 1)} for label, n in items]

        return {
            "samples": self.samples,
            "idle_thread_pool_samples": self.idle_pool,
            "by_stage": shares(self.stages),
            "own": shares(self.own),
            "project_inclusive": shares(self.project),
        }


def find_py_spy() -> str | None:
    configured = os.environ.get("BENCH_PY_SPY")
    if configured:
        return configured
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


async def record(py_spy: str, pid: int, seconds: float, output: Path, log: Path) -> bool:
    """Samples `pid` for `seconds` into `output` (collapsed stacks); False if py-spy failed
    (`output` may then be missing)."""
    sink = open_log(log)
    try:
        process = await children.spawn(
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(RATE),
            "--format",
            "raw",
            "--full-filenames",
            "--output",
            str(output),
            stdout=sink,
            stderr=sink,
        )
        code = await process.wait()
    finally:
        sink.close()
    return code == 0


def _frame(text: str) -> Frame:
    """`function (path:line)`, as py-spy writes a frame in its raw format."""
    function, _, rest = text.rpartition(" (")
    if not function:
        return Frame(function=text, path="")
    return Frame(function=function, path=rest.rstrip(")").rsplit(":", 1)[0])


def _is_idle(top: Frame) -> bool:
    """A thread-pool worker waiting for work (py-spy does not see that wait as idle)."""
    return top.function == "_worker" and top.path.endswith("concurrent/futures/thread.py")


def stage(frames: list[Frame]) -> str:
    """The stage of one sample, judged on the callback the event loop is running (the frames
    above the last `Handle._run`); a sample in the loop itself is the event loop's."""
    runs = [i for i, f in enumerate(frames) if f.function == "Handle._run"]
    callback = frames[runs[-1] + 1 :] if runs else frames
    if not callback:
        return LOOP
    for name, fragments in STAGES:
        if any(fragment in frame.path for frame in callback for fragment in fragments):
            return name
    return "other"


def label(frame: Frame) -> str:
    """The frame with its path cut to what identifies it (package, or project file)."""
    parts = Path(frame.path).parts
    if "site-packages" in parts:
        shown = "/".join(parts[parts.index("site-packages") + 1 :])
    else:
        try:
            shown = str(Path(frame.path).relative_to(PROJECT_ROOT))
        except ValueError:
            shown = "/".join(parts[-2:])
    return f"{frame.function} ({shown})"


def _own_project(frame: Frame) -> bool:
    try:
        relative = Path(frame.path).relative_to(PROJECT_ROOT)
    except ValueError:
        return False
    return relative.parts[0] in OWN_PACKAGES and relative.parts[:2] != ("server", "cli.py")


def summarize(collapsed: str) -> Summary:
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    project: Counter[str] = Counter()
    samples = idle_pool = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(text) for text in stack.split(";")]
        if _is_idle(frames[-1]):
            idle_pool += count
            continue
        samples += count
        stages[stage(frames)] += count
        own[label(frames[-1])] += count
        for name in {label(f) for f in frames if _own_project(f)}:
            project[name] += count
    return Summary(
        samples=samples,
        idle_pool=idle_pool,
        stages=stages.most_common(),
        own=own.most_common(TOP),
        project=project.most_common(TOP),
    )


def markdown(summary: Summary, what: str) -> list[str]:
    def bullets(items: list[tuple[str, int]], code: bool) -> list[str]:
        quote = "`" if code else ""
        return [f"  - {summary.percent(n):.1f}% {quote}{name}{quote}" for name, n in items]

    return [
        "## Profile",
        "",
        f"{what}: {summary.samples} busy samples (py-spy at {RATE} Hz; idle waits left out).",
        "",
        "- By stage (the most specific layer on the sampled stack):",
        *bullets(summary.stages, code=False),
        "- By function, own time:",
        *bullets(summary.own, code=True),
        "- This project's functions, inclusive:",
        *bullets(summary.project, code=True),
    ]
