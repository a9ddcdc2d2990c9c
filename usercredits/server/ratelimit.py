"""Rate limits: a token bucket per caller (a user id, an API key, or the address of an
anonymous caller), so that one caller's flood cannot starve the others.

Counted in each process's memory: with N instances behind a load balancer, or N workers
(`serve --workers`), a caller may get up to N times the rate (a documented approximation;
counting in the database would add a write to every request). A bucket holds `burst`
tokens and refills at `rate` per second; each request takes one, and so does each
operation sent over a websocket.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from usercredits.services.identity.access import Principal

MAX_CALLERS = 100_000
"""Buckets kept at most (the least recently used go first: they are full by then)."""


class TokenBuckets:
    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = MAX_CALLERS,
    ) -> None:
        self._rate = rate
        self._burst = max(burst, 1)
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, caller: str) -> float:
        """Takes a token from the caller's bucket: 0 when there was one, else the seconds
        until there will be (and nothing is taken)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        tokens, at = self._buckets.pop(caller, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - at) * self._rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[caller] = (tokens, now)
        if len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)
        return wait


def caller_key(principal: Principal, address: str) -> str:
    """Whom a request's limits count against: its user (an API key is a user of its own),
    or the address of an anonymous caller."""
    return f"user:{principal.user_id}" if principal.user_id is not None else f"address:{address}"


def retry_after(wait: float) -> int:
    """Whole seconds for a Retry-After header and `retryAfterSeconds`."""
    return max(1, math.ceil(wait))


class SocketOperations(SchemaExtension):
    """Each operation sent over a websocket takes a token of its caller's bucket, as each
    HTTP request does (server/callers.py takes those): subscribing and completing again and again
    on one socket is a flood like any other."""

    def __init__(self, *, buckets: TokenBuckets, refused: Callable[[], None]) -> None:
        self._buckets = buckets
        self._refused = refused

    def on_execute(self) -> Iterator[None]:
        # Not on_operation: an error raised there ends a subscription without a word.
        context = self.execution_context.context
        if getattr(context, "websocket", None) is not None:
            wait = self._buckets.take(caller_key(context.principal, context.address))
            if wait:
                self._refused()
                seconds = retry_after(wait)
                raise GraphQLError(
                    f"too many operations: retry in {seconds} s",
                    extensions={"code": "RATE_LIMITED", "retryAfterSeconds": seconds},
                )
        yield


def caller_address(
    remote: str | None, forwarded_for: str | None, trusted: Sequence[IPv4Network | IPv6Network]
) -> str:
    """The address a request comes from: the connection's, unless that is a trusted proxy;
    then the nearest address in X-Forwarded-For that is not one (each proxy appends the
    address it got the request from, so only the entries trusted proxies added can be
    believed: anything further left may be the caller's own invention)."""
    address = remote or ""
    if not trusted or forwarded_for is None:
        return address
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    while _trusted(address, trusted) and hops:
        address = hops.pop()
    return address


def _trusted(address: str, trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 proxy
    return any(ip in network for network in trusted)
