"""What one GraphQL document may ask for, checked before any validation rule walks it.

A fragment spread twice at each of 30 levels selects 2^30 fields: every rule that follows
spreads one by one (Strawberry's depth and alias limiters among them) would then run for
ever on a 1 KB document. So the document's cost is measured first, in one pass linear in
its size: each fragment is summarised once and every spread of it adds that summary. A
document over any limit is refused with that one error and no rule runs on it. One within
the limits goes through graphql-core's rules under a time budget for parsing and
validating it, and the outcome is cached per document, as Strawberry's ValidationCache
would (it is replaced here because it always validates), with the price of each of its
operations (schema/cost.py). A valid document is then refused when the operation would
cost more, or call the payment provider more often, than the limits allow, with the
request's own page sizes: before any resolver runs. Every request gets its own copies of
the cached errors, which are given its request id.

The depth is counted as Strawberry's depth limiter counts it (a leaf adds nothing, and
introspection fields are left to the introspection depth): graphql-core's standard
introspection query, what GraphiQL sends, nests 15 deep, within the default 20.
"""

import functools
import gc
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)
from graphql.validation import ASTValidationRule
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from usercredits.schema.cost import FieldCosts, OperationPrice, price_operations


@dataclass(frozen=True, slots=True)
class Limits:
    """What one GraphQL document may ask for."""

    max_depth: int = 10
    max_tokens: int = 2000
    max_aliases: int = 15
    max_introspection_depth: int = 20
    max_fields: int = 1000
    """Fields selected once fragments are expanded: the work the document asks for."""
    budget_seconds: float = 0.5
    """Parsing and validating one document, counted by `document_clock`."""
    max_cost: int = 10_000
    """What one operation may cost (schema/cost.py): each field once per item of the lists
    around it."""
    max_provider_calls: int = 3
    """Fields calling the payment provider that one operation may select."""
    list_size: int = 10
    """Items a list is counted as holding when neither `first` nor the schema says."""


DEFAULT_QUERY_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Cost:
    """What a selection set asks for once its fragments are expanded."""

    fields: int = 0
    aliases: int = 0
    depth: int = 0
    introspection_depth: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        """Selections side by side: counts add up, depths take the deeper."""
        return Cost(
            fields=self.fields + other.fields,
            aliases=self.aliases + other.aliases,
            depth=max(self.depth, other.depth),
            introspection_depth=max(self.introspection_depth, other.introspection_depth),
        )


class _Measure:
    """Costs of one document's selection sets, each fragment measured once per position
    (inside introspection or not). A spread that closes a cycle adds nothing: the
    NoFragmentCycles rule reports it."""

    def __init__(self, document: DocumentNode) -> None:
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._memo: dict[tuple[str, bool], Cost] = {}
        self._open: set[str] = set()

    def selections(self, node: SelectionSetNode | None, inside: bool) -> Cost:
        total = Cost()
        for selection in node.selections if node is not None else ():
            if isinstance(selection, FieldNode):
                total += self._field(selection, inside)
            elif isinstance(selection, InlineFragmentNode):
                total += self.selections(selection.selection_set, inside)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value, inside)
        return total

    def _field(self, node: FieldNode, inside: bool) -> Cost:
        introspective = node.name.value.startswith("__")
        below = self.selections(node.selection_set, inside or introspective)
        nested = introspective or inside
        return Cost(
            fields=1 + below.fields,
            aliases=(node.alias is not None) + below.aliases,
            depth=0 if introspective or node.selection_set is None else 1 + below.depth,
            introspection_depth=below.introspection_depth + nested,
        )

    def _fragment(self, name: str, inside: bool) -> Cost:
        key = (name, inside)
        if key in self._memo:
            return self._memo[key]
        if name not in self._fragments or name in self._open:
            return Cost()
        self._open.add(name)
        cost = self.selections(self._fragments[name].selection_set, inside)
        self._open.discard(name)
        self._memo[key] = cost
        return cost


def over_limits(document: DocumentNode, limits: Limits) -> GraphQLError | None:
    """Why the document asks for too much, or None; linear in the document's size."""
    measure = _Measure(document)
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        try:
            cost = measure.selections(operation.selection_set, inside=False)
        except RecursionError:
            return GraphQLError("the document's fragments nest too deep", operation)
        name = operation.name.value if operation.name else "anonymous"
        if cost.fields > limits.max_fields:
            return GraphQLError(
                f"the document selects {cost.fields} fields once its fragments are "
                f"expanded; the limit is {limits.max_fields}",
                operation,
            )
        if cost.depth > limits.max_depth:
            return GraphQLError(
                f"'{name}' exceeds maximum operation depth of {limits.max_depth}", operation
            )
        if cost.aliases > limits.max_aliases:
            return GraphQLError(
                f"{cost.aliases} aliases found; the limit is {limits.max_aliases}", operation
            )
        if cost.introspection_depth > limits.max_introspection_depth:
            return GraphQLError(
                f"introspection nests {cost.introspection_depth} deep; the limit is "
                f"{limits.max_introspection_depth}",
                operation,
            )
    return None


class _CollectorTime(threading.local):
    """CPU time the garbage collector has run in this thread."""

    seconds: float = 0.0
    started: float = 0.0


_collector = _CollectorTime()


def _time_collections(phase: str, _info: dict[str, Any]) -> None:
    if phase == "start":
        _collector.started = time.thread_time()
    else:
        _collector.seconds += time.thread_time() - _collector.started


gc.callbacks.append(_time_collections)


def document_clock() -> float:
    """The clock a document's budget is counted on: this thread's CPU time, less the
    garbage collector's. The work is CPU-bound; wall-clock time would also count whatever
    else a loaded machine runs meanwhile, and a full collection of a large heap (400 ms
    for 600,000 objects, seen in the test process) is no document's cost. Either refused
    ordinary documents."""
    return time.thread_time() - _collector.seconds


_deadline: ContextVar[float] = ContextVar("graphql_document_deadline", default=math.inf)

operation_cost: ContextVar[int] = ContextVar("graphql_operation_cost", default=0)
"""The cost of the operation about to run, set once its document is validated, for the
extensions that bound what a caller runs at once."""


class WithinBudget(ValidationRule):
    """Aborts validation once the document's budget is spent."""

    def enter(self, *_: Any) -> None:
        if document_clock() > _deadline.get():
            raise ValidationAbortedError(
                "the document took too long to validate; send a smaller document"
            )


@dataclass(frozen=True, slots=True)
class Checked:
    """What validating a document found: its errors, or the price of each operation."""

    errors: tuple[GraphQLError, ...] = ()
    prices: tuple[OperationPrice, ...] = ()

    def refusals(
        self, variables: Mapping[str, object] | None, limits: Limits
    ) -> list[GraphQLError]:
        """The errors for one request: fresh copies of the cached ones (each request's
        error carries its own request id), else why its operation costs too much."""
        if self.errors:
            return [_copy(error) for error in self.errors]
        for operation in self.prices:
            refusal = over_price(operation, variables, limits)
            if refusal is not None:
                return [refusal]
        return []

    def cost(self, variables: Mapping[str, object] | None) -> int:
        """What running the document with `variables` costs (its costliest operation)."""
        return max((operation.counts(variables)[0] for operation in self.prices), default=0)


def _copy(error: GraphQLError) -> GraphQLError:
    return GraphQLError(
        error.message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        error.original_error,
        None if error.extensions is None else dict(error.extensions),
    )


def over_price(
    operation: OperationPrice, variables: Mapping[str, object] | None, limits: Limits
) -> GraphQLError | None:
    """Why running the operation with `variables` asks for too much, or None."""
    cost, calls = operation.counts(variables)
    if cost > limits.max_cost:
        return GraphQLError(
            f"'{operation.name}' would cost {cost} (each field once per item of the lists "
            f"around it); the limit is {limits.max_cost}: ask for smaller pages or fewer fields"
        )
    if calls > limits.max_provider_calls:
        return GraphQLError(
            f"'{operation.name}' selects {calls} fields that call the payment provider; the "
            f"limit is {limits.max_provider_calls} per operation"
        )
    return None


Validator = Callable[[GraphQLSchema, DocumentNode, tuple[type[ASTValidationRule], ...]], Checked]


def cached_validator(limits: Limits, costs: FieldCosts, maxsize: int = 1000) -> Validator:
    """The limits first, then the rules, then the prices; cached per document (the parser
    cache hands the same document object back for the same text)."""

    @functools.lru_cache(maxsize=maxsize)
    def validate(
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> Checked:
        refusal = over_limits(document, limits)
        if refusal is not None:
            return Checked(errors=(refusal,))
        errors = validate_document(schema, document, (*rules, WithinBudget))
        if errors:
            return Checked(errors=tuple(errors))
        return Checked(prices=price_operations(schema, document, costs, limits.list_size))

    return validate


class TokenLimit(SchemaExtension):
    """Strawberry's MaxTokensLimiter, set as parsing starts instead of around the whole
    operation: a subscription holds its operation's hooks open for as long as it lives,
    and each hook held costs every idle subscription memory (about 700 bytes). Listed
    before the parser cache, which parses in its own parsing hook."""

    def __init__(self, *, max_tokens: int) -> None:
        super().__init__()
        self._max_tokens = max_tokens

    def on_parse(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self._max_tokens
        yield


class DocumentGuard(SchemaExtension):
    """Times the parse, validates the document within its limits and what is left of its
    budget, and refuses an operation that would cost too much with this request's
    variables."""

    def __init__(self, *, limits: Limits, validator: Validator) -> None:
        super().__init__()
        self._limits = limits
        self._validator = validator
        self._parsing = 0.0

    def on_parse(self) -> Iterator[None]:
        started = document_clock()
        yield
        self._parsing = document_clock() - started

    def on_validate(self) -> Iterator[None]:
        _deadline.set(document_clock() + self._limits.budget_seconds - self._parsing)
        context = self.execution_context
        assert context.graphql_document is not None, "validation follows a successful parse"
        checked = self._validator(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        context.pre_execution_errors = checked.refusals(context.variables, self._limits)
        operation_cost.set(checked.cost(context.variables))
        yield
