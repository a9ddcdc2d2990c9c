"""The exported schema keeps the public contract: no breaking change against
../shared/contract.graphql, and the committed schema.graphql is what the code exports."""

from pathlib import Path

import pytest
from graphql import GraphQLError, find_breaking_changes
from graphql import build_schema as parse_sdl

from usercredits.api import build_schema
from usercredits.schema.errors import apply_contract
from usercredits.services.errors import InsufficientTokens

ROOT = Path(__file__).resolve().parent.parent
# The contract lives in ../shared beside the repository; contract.graphql is its copy for
# clones made elsewhere, and must not drift from it.
SHARED = ROOT.parent / "shared" / "contract.graphql"
COPY = ROOT / "contract.graphql"


def test_the_copy_of_the_contract_is_current() -> None:
    if not SHARED.exists():
        pytest.skip(f"no {SHARED} beside this clone to compare contract.graphql with")
    assert COPY.read_text() == SHARED.read_text(), "refresh contract.graphql from ../shared"


def test_committed_schema_is_the_exported_one() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == build_schema().as_str() + "\n", (
        "schema.graphql is stale: run `.venv/bin/usercredits export-schema`"
    )


def test_no_breaking_change_against_the_contract() -> None:
    contract = SHARED if SHARED.exists() else COPY
    changes = find_breaking_changes(
        parse_sdl(contract.read_text()), parse_sdl(build_schema().as_str())
    )
    assert changes == [], [c.description for c in changes]


def test_the_sandbox_mutation_exists_only_with_the_sandbox() -> None:
    assert "completeSandboxPayment" not in build_schema().as_str()
    assert "completeSandboxPayment" in build_schema(sandbox=True).as_str()


def test_unexpected_errors_are_masked_and_domain_errors_keep_their_code() -> None:
    bug = GraphQLError("boom", original_error=RuntimeError("secret detail"))
    apply_contract(bug, "req-1")
    assert bug.message == "internal error (request req-1)"
    assert bug.extensions == {"code": "INTERNAL", "requestId": "req-1"}
    assert bug.original_error is None

    refused = GraphQLError("x", original_error=InsufficientTokens("user u1 has 3 tokens"))
    apply_contract(refused, "req-2")
    assert refused.message == "user u1 has 3 tokens"
    assert refused.extensions == {"code": "INSUFFICIENT_TOKENS", "requestId": "req-2"}


NEXT = ROOT.parent / "shared" / "contract-next.graphql"
NEXT_COPY = ROOT / "contract-next.graphql"
BUILT_BLOCKS = [
    "Lots: each purchase and grant keeps its own expiry, priority and source",
    "Identity: your identity provider's tokens, API keys, rate limits",
    "Outbound webhooks and alerts to the customer's back end",
    "Renewing subscriptions and auto top-up, through Stripe",
]
"""The blocks of contract-next.graphql that the schema serves, by their titles."""


def next_block(title: str) -> str:
    """One issue's block of contract-next.graphql: the SDL between its title and the next."""
    text = (NEXT if NEXT.exists() else NEXT_COPY).read_text()
    _, _, rest = text.partition(f"# {title}\n")
    assert rest, f"no block {title!r} in contract-next.graphql"
    lines = rest.splitlines()[1:]  # the rule under the title
    block = []
    for line in lines:
        if line.startswith("# ---"):
            break
        block.append(line)
    return "\n".join(block)


def test_the_copy_of_the_next_contract_is_current() -> None:
    if not NEXT.exists():
        pytest.skip(f"no {NEXT} beside this clone to compare contract-next.graphql with")
    assert NEXT_COPY.read_text() == NEXT.read_text(), "refresh contract-next.graphql"


def test_built_blocks_of_the_next_contract_are_served_exactly() -> None:
    contract = (SHARED if SHARED.exists() else COPY).read_text()
    for title in BUILT_BLOCKS:
        wanted = parse_sdl(contract + "\n" + next_block(title))
        changes = find_breaking_changes(wanted, parse_sdl(build_schema().as_str()))
        assert changes == [], (title, [c.description for c in changes])
