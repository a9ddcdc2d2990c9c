"""The README's examples work as written, in the order written: every fenced `graphql` and
`sh` block runs against one fresh server with the catalogue `make run` loads, except a block
right under a `<!-- not run: why -->` line.

How the README's blocks read, here as for a reader:
- an operation runs as alice, or as the admin admin-1 when its lines say `# as admin`;
- a quoted `"<...>"` is a value an earlier answer gave (PLACEHOLDERS says which);
- `# -> {...}` after an operation is its expected data (the keys it shows must match);
- a subscription is opened over a websocket, as a front end would, and must have had an
  event, and no error, by the end of the walk;
- a shell block runs in bash (-euo pipefail) from the repository's root, with the server's
  address in place of http://127.0.0.1:8000 and the server's JWT secret and database in the
  environment; it must exit 0, and a JSON answer it prints must have no errors.
"""

import asyncio
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.api import SECRET, Api, TransportWsClient, token, ws_url
from tests.conftest import StartServer
from usercredits.server import children
from usercredits.services.identity.access import Role

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CATALOGUE = ROOT / "catalogue" / "example.yaml"
README_ADDRESS = "http://127.0.0.1:8000"
SKIP = re.compile(r"<!-- not run: .+ -->")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
RUN = {"graphql", "sh"}
IDENTITIES = {"alice": token("alice"), "admin": token("admin-1", Role.ADMIN)}

PLACEHOLDERS: dict[str, tuple[str | int, ...]] = {
    "<offer id>": ("upsertOffer", "id"),
    "<order id>": ("createOrder", "order", "id"),
    "<reservation id>": ("reserveTokens", "id"),
    "<chat pack id>": ("offers", 0, "id"),
    "<pro-monthly id>": ("offers", 0, "id"),
    "<plan id>": ("subscribe", "plan", "id"),
    "<api key id>": ("createApiKey", "apiKey", "id"),
    "<endpoint id>": ("createWebhookEndpoint", "endpoint", "id"),
}
"""Each placeholder, as a path into the latest answer of an operation with that root field."""


@dataclass(frozen=True)
class Block:
    language: str
    line: int
    text: str


@dataclass(frozen=True)
class Operation:
    line: int
    text: str

    @property
    def caller(self) -> str:
        return "admin" if "# as admin" in self.text else "alice"

    @property
    def expected(self) -> dict[str, Any] | None:
        """The answer shown after `# ->`, which may go on in comment lines indented under it."""
        _, arrow, rest = self.text.partition("# ->")
        if not arrow:
            return None
        first, *more = rest.splitlines()
        shown = [first, *(line.strip().removeprefix("#") for line in more)]
        return dict(json.loads(" ".join(shown)))

    @property
    def is_subscription(self) -> bool:
        return self.text.lstrip().startswith("subscription")


def blocks(text: str) -> list[Block]:
    """The fenced blocks of `text` to run, in order, without their indentation."""
    found: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None or not opening.group(2):
            index += 1
            continue
        indent, language, start = opening.group(1), opening.group(2), index
        index += 1
        body = []
        while FENCE.match(lines[index]) is None:
            body.append(lines[index].removeprefix(indent))
            index += 1
        index += 1
        above = next((line for line in reversed(lines[:start]) if line.strip()), "")
        if language in RUN and not SKIP.search(above):
            found.append(Block(language, start + 1, "\n".join(body)))
    return found


def operations(block: Block) -> list[Operation]:
    """The operations of a GraphQL block: each ends with the line whose `}` closes it, and
    takes the comments of its lines and the `# ->` lines under it (other comment-only lines
    belong to the next one)."""
    found: list[Operation] = []
    depth = 0
    current: list[str] = []
    first = block.line + 1
    expecting = False  # within an answer shown under an operation
    for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
        shown = line.lstrip().startswith("# ->") or (expecting and line.lstrip()[:3] == "#  ")
        expecting = shown or (expecting and not line.strip())
        if not current and found and shown:
            found[-1] = Operation(found[-1].line, f"{found[-1].text}\n{line}")
            continue
        if not current:
            first = number
        current.append(line)
        depth += _depth_change(line)
        if depth == 0 and "{" in _code(current):
            found.append(Operation(first, "\n".join(current)))
            current = []
            expecting = "# ->" in line
    assert not "".join(current).strip(), f"README line {first}: an operation is not closed"
    return found


def _code(lines: list[str]) -> str:
    """The lines without their comments and quoted strings."""
    return "\n".join(re.sub(r'"[^"]*"', "", line).split("#")[0] for line in lines)


def _depth_change(line: str) -> int:
    code = _code([line])
    return code.count("{") - code.count("}")


def resolve(operation: Operation, answers: dict[str, Any]) -> str:
    """The operation's text with each placeholder replaced by the value it names."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in PLACEHOLDERS, f"README line {operation.line}: unknown {name}"
        root, *path = PLACEHOLDERS[name]
        assert root in answers, f"README line {operation.line}: {name} before any {root}"
        found = answers[root]
        for step in path:
            found = found[step]
        return json.dumps(found)

    return re.sub(r'"(<[^">]+>)"', value, operation.text)


def matches(expected: Any, got: Any) -> bool:
    """Whether `got` has what `expected` shows: the same keys' values, lists item by item."""
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(
            key in got and matches(value, got[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(got) == len(expected)
            and all(matches(e, g) for e, g in zip(expected, got, strict=True))
        )
    return bool(expected == got)


class Walk:
    """One reader pasting the README's blocks, in order, into one server."""

    def __init__(self, http: aiohttp.ClientSession, base: str, env: dict[str, str]) -> None:
        self.http, self.base, self.env = http, base, env
        self.api = Api(http, f"{base}/graphql")
        self.answers: dict[str, Any] = {}
        self.watching: list[tuple[Operation, TransportWsClient]] = []

    async def graphql(self, block: Block) -> None:
        for operation in operations(block):
            text = resolve(operation, self.answers)
            if operation.is_subscription:
                await self.watch(operation, text)
                continue
            body = await self.api.call(text, as_=IDENTITIES[operation.caller])
            assert not body.get("errors"), f"README line {operation.line}: {body['errors']}"
            data: dict[str, Any] = body["data"]
            expected = operation.expected
            assert expected is None or matches(expected, data), (
                f"README line {operation.line}: expected {expected}, got {data}"
            )
            self.answers.update(data)

    async def watch(self, operation: Operation, text: str) -> None:
        bearer = {"authorization": f"Bearer {IDENTITIES[operation.caller]}"}
        client = await TransportWsClient.connect(self.http, ws_url(self.base), bearer)
        await client.subscribe(str(operation.line), text)
        self.watching.append((operation, client))

    async def events_seen(self) -> None:
        """Every subscription the README opened had an event, and none an error."""
        for operation, client in self.watching:
            message = await client.receive(wait=10)
            assert message["type"] == "next", f"README line {operation.line}: {message}"
            assert not message["payload"].get("errors"), f"README line {operation.line}"

    async def close(self) -> None:
        for _, client in self.watching:
            await client.close()

    async def shell(self, block: Block) -> None:
        script = block.text.replace(README_ADDRESS, self.base)
        process = await children.spawn(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
            cwd=str(ROOT),
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        finally:
            await children.stop(process)
        assert process.returncode == 0, f"README line {block.line}: {err.decode()}"
        if out.strip().startswith(b"{"):
            assert "errors" not in json.loads(out), f"README line {block.line}: {out!r}"


async def test_the_readme_blocks_run_in_order(
    start_server: StartServer, http: aiohttp.ClientSession, database_uri: str, database_name: str
) -> None:
    base = await start_server(seed_catalogue=CATALOGUE)
    # The command line of a shell block reaches the server's database, as beside `make run`.
    env = {
        "USERCREDITS_JWT_SECRET": SECRET,
        "USERCREDITS_MONGODB_URI": database_uri,
        "USERCREDITS_DATABASE": database_name,
    }
    walk = Walk(http, base, env)
    ran = blocks(README.read_text())
    assert {b.language for b in ran} == RUN
    try:
        for block in ran:
            if block.language == "graphql":
                await walk.graphql(block)
            else:
                await walk.shell(block)
        assert walk.watching, "the README opens no subscription"
        await walk.events_seen()
    finally:
        await walk.close()


def test_the_conventions_read_the_blocks_as_a_reader_would() -> None:
    text = "\n".join(
        [
            "<!-- not run: a sketch -->",
            "```graphql",
            "query { never }",
            "```",
            "  ```graphql",
            '  mutation { a(input: {b: "{"}) { id } }   # as admin',
            "  # a comment about the next one",
            "  query { wallet {",
            "    c } }",
            '    # -> {"wallet":',
            '    #      {"c": 1}}',
            "  # not shown",
            "  query { d }",
            "  ```",
        ]
    )
    [block] = blocks(text)
    first, second, third = operations(block)
    assert (first.caller, first.expected) == ("admin", None)
    assert (second.caller, second.expected, second.line) == ("alice", {"wallet": {"c": 1}}, 7)
    assert (third.expected, third.line) == (None, 12)
    placeheld = Operation(1, 'mutation { c(id: "<order id>") { id } }')
    assert resolve(placeheld, {"createOrder": {"order": {"id": "o1"}}}) == (
        'mutation { c(id: "o1") { id } }'
    )
    assert matches({"a": [{"b": 1}]}, {"a": [{"b": 1, "c": 2}], "d": 3})
    assert not matches({"a": [{"b": 1}]}, {"a": [{"b": 1}, {"b": 2}]})
