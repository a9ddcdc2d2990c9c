"""One execution per event for every subscriber that asked the same thing.

graphql-core executes a subscription's selection for each subscriber and each event. One
user with 1,000 open tabs has 1,000 subscriptions with the same query, and executing it
1,000 times was about 60% of the server's work in delivering one debit to all of them
(profiled in bench, fanout). The subscription resolvers convert each event once
(`once_per_event`), so every subscriber of an event holds the same payload; the executor
here keeps the result of executing a payload by what shapes that result (the operation,
its variables and the caller) and hands the same result to the others.

Only results without errors are shared: errors are given their codes per request. The
subscription types are plain data of the event, but for `Plan.orders`, which reads the
plan's orders; a result is kept by the caller too, so two subscribers share one only when
they are the same caller asking the same thing of the same event.
"""

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

from graphql import ExecutionResult
from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from usercredits.schema.context import Context

K = TypeVar("K")
V = TypeVar("V")

RECENT_EVENTS = 64
"""Events remembered: every subscriber of an event runs within one turn of the loop or a
few, so a handful would do; a subscriber too far behind executes its own."""


class Recent(Generic[K, V]):
    """Values kept for the last `size` objects, found by the objects' identity (events are
    not hashable, and two equal events are still two). Holding the object keeps its id
    from being reused while it is remembered."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self._size = size
        self._entries: OrderedDict[int, tuple[K, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(id(key))
        return entry[1] if entry is not None and entry[0] is key else None

    def put(self, key: K, value: V) -> V:
        self._entries[id(key)] = (key, value)
        self._entries.move_to_end(id(key))
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value


def once_per_event(convert: Callable[[K], V]) -> Callable[[K], V]:
    """`convert`, called once per event however many subscribers receive it."""
    converted: Recent[K, V] = Recent()

    def once(event: K) -> V:
        value = converted.get(event)
        return value if value is not None else converted.put(event, convert(event))

    return once


class SharedResultsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, sharing each subscription event's result between subscribers
    of the same shape."""

    results: Recent[object, dict[Hashable, ExecutionResult]] = Recent()
    _shape: Hashable = None
    _per_event = False

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = cast(SharedResultsExecutor, super().build_per_event_executor(payload))
        if self._shape is None:
            self._shape = self._shape_of_results()
        executor._shape = self._shape
        executor._per_event = True
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        if not self._per_event:
            return super().execute_operation(serially)
        by_shape = self.results.get(self.root_value)
        if by_shape is None:
            by_shape = self.results.put(self.root_value, {})
        shared = by_shape.get(self._shape)
        if shared is not None:
            return shared
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult) and not result.errors:
            by_shape[self._shape] = result
        return result

    def _shape_of_results(self) -> Hashable:
        """What, beside the event, a result depends on: the operation (one object per query
        text, from the parser cache), its variables and who asks."""
        principal = cast(Context, self.context_value).principal
        variables = tuple(sorted((k, repr(v)) for k, v in self.variable_values.coerced.items()))
        return (id(self.operation), variables, principal.user_id, principal.roles)
