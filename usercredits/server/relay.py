"""The webhook relay: turns the change stream into webhook deliveries, durably, in one
server instance at a time (a lease in MongoDB, as the sweep's).

While any endpoint is enabled, the lease holder follows the stream of ledger inserts,
order writes and endpoint and rule changes, and hands each batch to the publisher
(services/outbound/publisher.py). Only once the batch's deliveries are written does it
store the stream's resume token, so a process killed mid-batch loses nothing: the next
holder resumes from the stored token and derives the same events, which are kept once.
With no endpoint enabled it reads nothing and marks its position idle; it starts afresh
when one is enabled, and enabling one waits until it reads. (Starting from the endpoint's
own cluster time instead made the embedded database scan its whole oplog, holding its
lock: debits fell to 6% of their rate while it did.) Every `scan_every` the holder also
announces lots about to expire.
"""

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from usercredits.models.collections import Collection, Collections
from usercredits.server.changes import Change, ChangeReader
from usercredits.server.sweeper import RELEASE_SECONDS, Lease
from usercredits.services.clock import Clock
from usercredits.services.outbound.publisher import Publisher

log = logging.getLogger(__name__)

POSITION = "webhook-relay"
GATHER_SECONDS = 0.2
"""How long the relay lets changes gather between two fetches: webhooks are not pushed
within milliseconds as live updates are, and each fetch costs the database a command."""
SAVE_EVERY_SECONDS = 1.0
"""The resume token is stored at most this often: a crash replays at most this much of
the stream, which publishes nothing twice (see services/outbound/publisher.py), and the
database is spared a write per batch (measured: a debit cost 25% more with one)."""


class _Reader(ChangeReader):
    def __init__(
        self, *, publisher: Publisher, positions: Collection, clock: Clock, **kwargs: Any
    ) -> None:
        super().__init__(also=publisher.watched, gather_seconds=GATHER_SECONDS, **kwargs)
        self._publisher = publisher
        self._positions = positions
        self._clock = clock
        self._saved_at = 0.0

    async def handle(self, changes: list[Change], resume_token: Mapping[str, Any]) -> None:
        await self._publisher.publish(changes)
        now = asyncio.get_running_loop().time()
        if now - self._saved_at < SAVE_EVERY_SECONDS:
            return
        self._saved_at = now
        await self._positions.update_one(
            {"_id": POSITION},
            {"$set": {"resume_token": dict(resume_token), "saved_at": self._clock.now()}},
            upsert=True,
        )


class EventRelay:
    def __init__(
        self,
        *,
        database: AsyncDatabase[Any],
        publisher: Publisher,
        lease: Lease,
        clock: Clock,
        check_every: timedelta,
        scan_every: timedelta,
    ) -> None:
        self._database = database
        self._positions = Collections.of(database).stream_positions
        self._publisher = publisher
        self._lease = lease
        self._clock = clock
        self._check_every = check_every
        self._scan_every = scan_every
        self._reading: asyncio.Task[None] | None = None
        self._scanned_at = 0.0

    async def run(self) -> None:
        """Checks the lease and the endpoints every `check_every` until cancelled."""
        try:
            while True:
                try:
                    await self._check()
                except PyMongoError:
                    log.exception("webhook relay check failed; trying again")
                await asyncio.sleep(self._check_every.total_seconds())
        finally:
            await self._stop_reading()
            try:
                async with asyncio.timeout(RELEASE_SECONDS):
                    await self._lease.release()
            except (PyMongoError, TimeoutError):
                log.warning("could not release the webhook relay lease; it lapses by itself")

    async def _check(self) -> None:
        if not await self._lease.acquire():
            await self._stop_reading()  # another instance reads, from the stored position
            return
        if self._reading is not None and self._reading.done():
            await self._stop_reading()  # it failed: start again from the stored position
        if not await self._publisher.listening() and not await self._still_listening():
            await self._stop_reading()
            return
        if self._reading is None:
            await self._start_reading()
        loop = asyncio.get_running_loop()
        if loop.time() - self._scanned_at >= self._scan_every.total_seconds():
            self._scanned_at = loop.time()
            await self._publisher.announce_expiring(self._clock.now())

    async def _still_listening(self) -> bool:
        """With no endpoint enabled, marks the position idle (the next reader starts
        afresh) and looks again. An endpoint being enabled waits for a position that is
        not idle (services/outbound/endpoints.py): enabled before the mark, it is seen
        here, and reading carries on from the position; enabled after, it waits for the
        next reader, which opens the stream after it."""
        positions = self._positions
        marked = await positions.update_one(
            {"_id": POSITION, "idle": False}, {"$set": {"idle": True}}
        )
        if not marked.modified_count or not await self._publisher.listening():
            return False
        await positions.update_one({"_id": POSITION}, {"$set": {"idle": False}})
        return True

    async def _start_reading(self) -> None:
        await self._publisher.start()
        positions = self._positions
        stored = await positions.find_one({"_id": POSITION})
        reader = _Reader(
            publisher=self._publisher,
            positions=positions,
            clock=self._clock,
            database=self._database,
            resume_token=None if stored is None or stored.get("idle") else stored["resume_token"],
        )
        self._reading = asyncio.create_task(reader.run(), name="webhook-relay")
        # Not asyncio.wait_for: on Python 3.11 it can swallow the cancellation that stops
        # the server, and this loop would then never end.
        async with asyncio.timeout(30):
            await reader.opened.wait()
        assert reader.resume_token is not None  # set when the stream opens
        await positions.update_one(
            {"_id": POSITION},
            {
                "$set": {
                    "resume_token": dict(reader.resume_token),
                    "saved_at": self._clock.now(),
                    "idle": False,
                }
            },
            upsert=True,
        )

    async def _stop_reading(self) -> None:
        if self._reading is None:
            return
        self._reading.cancel()
        try:
            await self._reading
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("webhook relay stopped; it starts again at the next check")
        self._reading = None
