"""The periodic sweep (services/sweep.py's `sweep`: expiry, reservations, pending orders,
stale top-ups, due plans), run by one server instance at a time: each run first takes a
lease document in MongoDB.

The holder renews its lease at every run, so the same instance keeps sweeping; if it stops,
its lease lapses after `ttl` and another instance takes over. Nothing a run meets ends the
sweeping: each step runs on its own, a document a step cannot handle is logged and skipped
(services/steps.py), and such a run is counted as failed in the metrics.
"""

import asyncio
import logging
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from usercredits.server.metrics import Metrics
from usercredits.services import Services
from usercredits.services.clock import Clock
from usercredits.services.sweep import SweepResult, sweep

log = logging.getLogger(__name__)

RELEASE_SECONDS = 1.0
"""How long a stopping sweeper tries to give its lease up (it lapses by itself anyway)."""


class Lease:
    """A named lease: at most one holder until it expires."""

    def __init__(
        self,
        *,
        collection: AsyncCollection[Any],
        name: str,
        holder: str,
        ttl: timedelta,
        clock: Clock,
    ) -> None:
        self._collection = collection
        self._name = name
        self._holder = holder
        self._ttl = ttl
        self._clock = clock

    async def acquire(self) -> bool:
        """Takes or renews the lease; False while another holder's lease is live."""
        now = self._clock.now()
        try:
            await self._collection.find_one_and_update(
                {"_id": self._name, "$or": [{"expires": {"$lte": now}}, {"holder": self._holder}]},
                {"$set": {"holder": self._holder, "expires": now + self._ttl}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            # The filter did not match, so the upsert tried to insert beside a live lease.
            return False
        return True

    async def release(self) -> None:
        await self._collection.delete_one({"_id": self._name, "holder": self._holder})


class Sweeper:
    def __init__(
        self, *, services: Services, lease: Lease, reconcile_after: timedelta, metrics: Metrics
    ) -> None:
        self._services = services
        self._lease = lease
        self._reconcile_after = reconcile_after
        self._metrics = metrics

    async def run_once(self) -> SweepResult | None:
        """One sweep if this instance holds the lease; None when another one does."""
        if not await self._lease.acquire():
            self._metrics.sweeps.labels("skipped").inc()
            return None
        result = await sweep(self._services, reconcile_after=self._reconcile_after)
        troubled = result.troubled
        self._metrics.sweeps.labels("failed" if troubled else "done").inc()
        log.log(
            logging.WARNING if troubled else logging.INFO,
            "sweep done" + ("; some of it was skipped, see above" if troubled else ""),
            extra={"result": str(result)},
        )
        return result

    async def run(self, interval: timedelta) -> None:
        """Sweeps every `interval` until cancelled; gives the lease up on the way out."""
        try:
            while True:
                try:
                    await self.run_once()
                except Exception:  # the lease unavailable, or anything else: never the end
                    log.exception("sweep not run; trying again next interval")
                await asyncio.sleep(interval.total_seconds())
        finally:
            try:
                async with asyncio.timeout(RELEASE_SECONDS):
                    await self._lease.release()
            except (PyMongoError, TimeoutError):
                log.warning("could not release the sweep lease; it lapses by itself")
