"""Sends webhook deliveries: every server instance runs one dispatcher, which claims due
deliveries in the database (services/outbound/deliveries.py), so instances share the work
and none sends one twice, and sends up to `concurrency` at once, each signed (Standard
Webhooks) and limited to `timeout` seconds. It runs in its own tasks: a slow or hanging
receiver never holds up a request or a debit.

In production every address a receiver's host resolves to must be public
(services/outbound/addresses.py), and every socket is checked again on the address it is
about to connect to (`public_socket`, aiohttp's socket factory), so a name cannot resolve
to a public address when checked and to an inside one when used, and a literal address,
however the URL spells it, meets the same check as a resolved one.
"""

import asyncio
import logging
import socket
import time
from datetime import timedelta

import aiohttp
from aiohttp import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pymongo.errors import PyMongoError

from usercredits.server.metrics import Metrics
from usercredits.services.outbound.addresses import is_public, literal_address
from usercredits.services.outbound.deliveries import Claimed, Deliveries, Outcome
from usercredits.services.outbound.endpoints import WebhookEndpoints
from usercredits.services.outbound.signing import signature_headers

log = logging.getLogger(__name__)

USER_AGENT = "UserCredits-Webhooks/1"


class InsideAddress(OSError):
    """A production receiver's host resolved to an address inside the network."""


class PublicOnlyResolver(AbstractResolver):
    """Resolves as the default resolver does, and refuses a host with any address that is
    not public."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        for result in found:
            address = literal_address(result["host"])
            if address is None or not is_public(address):
                raise InsideAddress(f"{host} resolves to {result['host']}, inside the network")
        return found

    async def close(self) -> None:
        await self._resolver.close()


def public_socket(addr_info: AddrInfoType) -> socket.socket:
    """A socket for one address the client is about to connect to (aiohttp's socket
    factory, called for literal addresses too, which skip the resolver); InsideAddress if
    that address is not public."""
    family, kind, proto, _, sockaddr = addr_info
    address = literal_address(str(sockaddr[0]))
    if address is None or not is_public(address):
        raise InsideAddress(f"{sockaddr[0]} is inside the network")
    return socket.socket(family=family, type=kind, proto=proto)


class Dispatcher:
    def __init__(
        self,
        *,
        deliveries: Deliveries,
        endpoints: WebhookEndpoints,
        metrics: Metrics,
        production: bool,
        timeout: float,
        concurrency: int,
        poll_seconds: float,
    ) -> None:
        self._deliveries = deliveries
        self._endpoints = endpoints
        self._metrics = metrics
        self._production = production
        self._timeout = timeout
        self._concurrency = concurrency
        self._poll = poll_seconds
        # Longer than an attempt takes (the request, then recording its outcome), so no
        # other worker takes a delivery being sent; after a crash, how long it waits.
        self._hold = timedelta(seconds=timeout + 2)

    async def run(self) -> None:
        """Claims and sends deliveries until cancelled."""
        slots = asyncio.Semaphore(self._concurrency)
        running: set[asyncio.Task[None]] = set()
        session: aiohttp.ClientSession | None = None
        try:
            while True:
                await slots.acquire()
                claimed = await self._claim()
                if claimed is None:
                    slots.release()
                    await self._deliveries.made_or(self._poll)
                    continue
                # Made at the first delivery: a process that never sends one keeps none.
                session = session or self._session()
                task = asyncio.create_task(self._attempt(session, claimed))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            if session is not None:
                await session.close()

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._concurrency,
            resolver=PublicOnlyResolver() if self._production else None,
            socket_factory=public_socket if self._production else None,
        )
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self._timeout)
        )

    async def _claim(self) -> Claimed | None:
        try:
            return await self._deliveries.claim(hold=self._hold)
        except PyMongoError:
            log.warning("could not claim webhook deliveries; trying again", exc_info=True)
            return None

    async def _attempt(self, session: aiohttp.ClientSession, claimed: Claimed) -> None:
        delivery = claimed.delivery
        try:
            target = await self._endpoints.target(delivery.endpoint_id)
            if target is None or not target.endpoint.enabled:
                reason = "endpoint deleted" if target is None else "endpoint disabled"
                await self._deliveries.give_up(claimed, reason)
                self._metrics.webhook_deliveries.labels(delivery.endpoint_id, "dropped").inc()
                return
            outcome, label = await self._send(session, target.endpoint.url, target.secret, claimed)
            self._metrics.webhook_deliveries.labels(delivery.endpoint_id, label).inc()
            await self._deliveries.record(claimed, outcome)
            await self._endpoints.note_outcome(target.endpoint, ok=outcome.ok, error=outcome.error)
        except PyMongoError:
            # The claim lapses and the delivery is tried again.
            log.warning("could not record a webhook delivery", exc_info=True)

    async def _send(
        self, session: aiohttp.ClientSession, url: str, secret: str, claimed: Claimed
    ) -> tuple[Outcome, str]:
        delivery = claimed.delivery
        headers = {
            **signature_headers(
                secret=secret,
                event_id=delivery.event_id,
                timestamp=int(time.time()),
                body=claimed.body,
            ),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        try:
            async with session.post(
                url, data=claimed.body.encode(), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except TimeoutError:
            return Outcome(ok=False, error=f"no answer within {self._timeout:g} s"), "timeout"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, InsideAddress):
                return Outcome(ok=False, error=str(exc.os_error)), "refused"
            return Outcome(ok=False, error=f"could not connect: {exc.os_error}"), "error"
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"), "error"
        if 200 <= status < 300:
            return Outcome(ok=True, response_status=status), "succeeded"
        return Outcome(ok=False, response_status=status, error=f"answered {status}"), "failed"
