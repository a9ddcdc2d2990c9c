"""What one caller may hold at once, so that its many requests cannot starve the others: a
rate limit bounds requests over time, not how much runs together, and an operation may
take a hundred milliseconds of the event loop and the database every caller shares.

- Operations in flight, per caller as the rate limits name them (a user id, an API key, or
  the address of an anonymous caller), over HTTP and websockets alike: at most
  `max_operations_in_flight` at once, costing together at most `max_query_cost` (the
  price of each, schema/cost.py: so one operation near the cost limit runs alone, and
  many cheap ones run side by side). One past either bound is refused at once with
  RATE_LIMITED (429 over HTTP), before any of its resolvers run.
- Open websockets, per user and per address: each holds a file descriptor of the process,
  and a process out of them fails every caller. One past a cap is closed at
  connection_init with 4429.

Counted in each process's memory, as the rate limits are. A bound of 0 turns it off.
"""

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from usercredits.schema.limits import operation_cost
from usercredits.server.ratelimit import caller_key

TOO_MANY_SOCKETS = 4429
"""The close code of a websocket refused for its caller's open sockets."""
RETRY_SECONDS = 1
"""What a caller refused for its operations in flight is told to wait."""


class InFlight:
    """Operations running now, and what they cost together, per caller."""

    def __init__(self, *, most: int, budget: int, refused: Callable[[], None]) -> None:
        self._most = most
        self._budget = budget
        self._refused = refused
        self._running: Counter[str] = Counter()
        self._cost: Counter[str] = Counter()

    @contextmanager
    def running(self, caller: str, cost: int) -> Iterator[str | None]:
        """Counts an operation of `caller` costing `cost` while the block runs; yields why
        it may not run (and counts nothing), or None. An operation alone always runs: its
        cost was checked against the limit before."""
        refusal = self._refusal(caller, cost)
        if refusal is not None:
            self._refused()
            yield refusal
            return
        if not self._most:
            yield None
            return
        self._running[caller] += 1
        self._cost[caller] += cost
        try:
            yield None
        finally:
            for held, amount in ((self._running, 1), (self._cost, cost)):
                held[caller] -= amount
                if held[caller] <= 0:
                    del held[caller]

    def _refusal(self, caller: str, cost: int) -> str | None:
        running, spent = self._running[caller], self._cost[caller]
        if self._most and running >= self._most:
            return (
                f"{running} operations of this caller are running already, the most at "
                f"once: retry when one has ended"
            )
        if self._most and running and spent + cost > self._budget:
            return (
                f"operations of this caller costing {spent} are running already; with this "
                f"one's {cost} they would cost more than {self._budget} at once: retry when "
                f"one has ended"
            )
        return None


class OperationsInFlight(SchemaExtension):
    """Holds each operation's place among its caller's operations in flight while it runs
    (not on_operation: an error raised there ends a subscription without a word)."""

    def __init__(self, *, in_flight: InFlight) -> None:
        self._in_flight = in_flight

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        caller = caller_key(context.principal, context.address)
        with self._in_flight.running(caller, operation_cost.get()) as refusal:
            if refusal is not None:
                raise GraphQLError(
                    refusal,
                    extensions={
                        "code": "RATE_LIMITED",
                        "retryAfterSeconds": RETRY_SECONDS,
                        "requestId": context.request_id,
                    },
                )
            yield


class TooManySockets(Exception):
    """A websocket its user or address may not open: it holds too many already."""


class OpenSockets:
    """The open, signed-in websockets of this process, counted per user and per address."""

    def __init__(self, *, per_user: int, per_address: int, refused: Callable[[], None]) -> None:
        self._caps = {"user": per_user, "address": per_address}
        self._refused = refused
        self._holders: dict[web.WebSocketResponse, tuple[str, ...]] = {}
        self._open: Counter[str] = Counter()

    def admit(self, ws: web.WebSocketResponse, *, user: str, address: str) -> None:
        """Counts `ws` as open for `user` at `address`, or raises TooManySockets (and
        counts nothing)."""
        keys = {"user": f"user:{user}", "address": f"address:{address}"}
        for kind, key in keys.items():
            cap = self._caps[kind]
            if cap and self._open[key] >= cap:
                self._refused()
                raise TooManySockets(f"{cap} websockets are open for this {kind}, the most")
        self._holders[ws] = tuple(keys.values())
        self._open.update(keys.values())

    def release(self, ws: web.WebSocketResponse) -> None:
        """`ws` has closed (a socket never admitted is no one's)."""
        for key in self._holders.pop(ws, ()):
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]
