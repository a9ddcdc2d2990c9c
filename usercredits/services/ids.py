"""Ids: parsing the opaque ids clients send (a malformed id is simply an unknown one), and
making ids that sort in the order their documents were written, whatever process wrote them.

Newest-first lists (the ledger, orders) page by `_id`. A driver's ObjectId orders by second,
then by a random value of the process that made it, so the ids two processes make within one
second interleave by chance, and a client answered by two workers saw its ledger out of
order. `ordered_id` keeps the ObjectId's 12 bytes and its second, but puts the microsecond
after it and the process's random value last: ids sort by time to the microsecond across
processes, and strictly increase within one. A caller that must come after a known id (the
previous entry of a balance, written perhaps by another process whose clock ran ahead)
names it, and the new id is made after it.
"""

import os
from datetime import datetime, timedelta

from bson import ObjectId
from bson.errors import InvalidId

from usercredits.services.clock import EPOCH
from usercredits.services.errors import NotFound, shown

MICROSECOND = timedelta(microseconds=1)
PER_SECOND = 1_000_000


def object_id(value: str, what: str) -> ObjectId:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise NotFound(f"{what} {shown(value)} does not exist") from None


class _OrderedIds:
    """This process's maker of ordered ids: the last microsecond it used, and its random
    tail (made again in a forked child, which must not share its parent's)."""

    def __init__(self) -> None:
        self._pid = -1
        self._tail = b""
        self._last = 0

    def make(self, now: datetime, after: ObjectId | None) -> ObjectId:
        if self._pid != os.getpid():
            self._pid, self._tail = os.getpid(), os.urandom(5)
        micros = max((now - EPOCH) // MICROSECOND, self._last + 1)
        if after is not None:
            micros = max(micros, _micros(after) + 1)
        self._last = micros
        seconds, within = divmod(micros, PER_SECOND)
        return ObjectId(seconds.to_bytes(4, "big") + within.to_bytes(3, "big") + self._tail)


def _micros(oid: ObjectId) -> int:
    """The microsecond an id stands for. A driver-made ObjectId holds random bytes where an
    ordered one holds the microsecond: it is taken as the second's last microsecond, so an
    id made after it falls in the next second and sorts after it too."""
    raw = oid.binary
    within = min(int.from_bytes(raw[4:7], "big"), PER_SECOND - 1)
    return int.from_bytes(raw[:4], "big") * PER_SECOND + within


_MAKER = _OrderedIds()


def ordered_id(now: datetime, *, after: ObjectId | None = None) -> ObjectId:
    """A new id that sorts after every id this process made before, after `after`, and,
    clocks agreeing, after every id another process made before `now`."""
    return _MAKER.make(now, after)
