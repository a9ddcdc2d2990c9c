"""Prometheus metrics of one server process, served at /metrics.

Each app has its own registry (no process-global state), so tests and several apps in one
process do not share counters. Each also reports its process (CPU, memory, open files)
and its pid: with several workers on one port, a scrape says which one answered.
"""

import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from strawberry.extensions import SchemaExtension

from usercredits.schema.errors import error_code

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        Info(
            "usercredits_worker", "The server process that answered.", registry=self.registry
        ).info({"pid": str(os.getpid())})
        self.operations = Counter(
            "usercredits_graphql_operations",
            "GraphQL operations by root field and outcome (ok, or the error code).",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "usercredits_graphql_operation_seconds",
            "Time to run a GraphQL query or mutation, or to set up a subscription, by root field.",
            ["operation"],
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "usercredits_open_subscriptions",
            "Live subscriptions held by this process.",
            registry=self.registry,
        )
        self.top_up_backlog = Gauge(
            "usercredits_auto_top_up_backlog",
            "Groups this process's auto top-up trigger was shown (by its change feed, or a "
            "debit refused for want of tokens) and has yet to judge or is topping up.",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "usercredits_webhook_deliveries",
            "Webhook delivery attempts by endpoint and outcome (succeeded, failed, "
            "refused, timeout, error).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.ledger_entries = Counter(
            "usercredits_ledger_entries",
            "Ledger entries committed (by any instance) as this process's change feed saw "
            "them, by reason: consumption is a debit, purchase and grant are credits.",
            ["reason"],
            registry=self.registry,
        )
        self.tokens_expired = Counter(
            "usercredits_tokens_expired",
            "Tokens lost to expiry (breakage), as this process's change feed saw the expiry "
            "entries of any instance.",
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "usercredits_webhook_events",
            "Payment provider deliveries received, by event type and what came of them (the "
            "order's status, duplicate, ignored, unknown payment; rejected: the signature or "
            "body did not verify, type empty).",
            ["type", "result"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "usercredits_refusals",
            "Requests and websocket connections refused before any operation ran, by "
            "cause (unauthenticated: credentials were refused; rate_limited; in_flight: "
            "the caller's operations in flight; sockets: its open websockets).",
            ["cause"],
            registry=self.registry,
        )
        self.sweeps = Counter(
            "usercredits_sweep_runs",
            "Expiry sweep runs of this process, by result (done, skipped: another instance "
            "holds the lease, failed).",
            ["result"],
            registry=self.registry,
        )

    def count_subscriptions(self, count: Callable[[], int]) -> None:
        self.subscriptions.set_function(count)

    def count_top_up_backlog(self, count: Callable[[], int]) -> None:
        self.top_up_backlog.set_function(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def extension(self) -> Callable[[], SchemaExtension]:
        """A factory of the schema extension that counts and times operations."""
        return lambda: OperationMetrics(self)


INVALID = "invalid"
"""The one label of every operation that did not pass validation."""


class OperationMetrics(SchemaExtension):
    """Counts and times operations by their first root field, from the operation's start
    (Strawberry makes the extension then) to the end of its execution, or to its refusal
    before that; a subscription's until it is set up. Only an operation that passed
    validation names a label (so the labels are the schema's root fields, a closed set);
    any other is counted as `invalid`, so that no caller can add label values.

    No hook spans the whole operation: a subscription holds its operation's hooks open for
    as long as it lives, and each hook held costs every idle subscription memory (see
    schema/limits.py TokenLimit)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics
        self._started = time.perf_counter()
        self._valid = False
        self._counted = False

    def on_validate(self) -> Iterator[None]:
        yield
        self._valid = not self.execution_context.pre_execution_errors

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        self._count((result.errors if result is not None else None) or [])

    def get_results(self) -> dict[str, Any]:
        """Called with each answer, whose errors are then the context's: counts an
        operation refused before its execution ended (a document that does not parse or
        validate, a hook refusing it), which no hook's end sees."""
        if not self._counted:
            self._count(self.execution_context.pre_execution_errors or [])
        return {}

    def _count(self, errors: Sequence[GraphQLError]) -> None:
        self._counted = True
        document = self.execution_context.graphql_document
        operation = _root_field(document) if self._valid else INVALID
        outcome = error_code(errors[0]) if errors else "ok"
        self._metrics.operations.labels(operation, outcome).inc()
        self._metrics.latency.labels(operation).observe(time.perf_counter() - self._started)


def _root_field(document: object) -> str:
    """The first root field of a validated operation."""
    for definition in getattr(document, "definitions", ()):
        if isinstance(definition, OperationDefinitionNode):
            for selection in definition.selection_set.selections:
                # A fragment's name is the client's choice, a field's is the schema's.
                if isinstance(selection, FieldNode):
                    return selection.name.value
    return INVALID
