"""Which users a query's documents belong to, said where MongoDB is sharded by `user_id`.

Balances, ledger entries and reservations each belong to one user. On a cluster sharded by
`user_id` (README, "Scaling out"), mongos sends a query only to the shards of the users
its filter names, and to every shard when it names none; so the wallet's queries name
their users through `UserScope.scoped`. On one server they do not: the embedded
database's planner scans the collection for a filter with two `$in`s where it answers one
from an index (measured: a lookup of 8 keys among 100,000 ledger rows took 10 ms with
`user_id` named, 1.3 ms without; with a hint to the index, 3.8 s).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class UserScope:
    sharded: bool = False
    """Whether the database is a sharded cluster (the server asks it when it connects)."""

    def scoped(self, query: dict[str, Any], users: Iterable[str]) -> dict[str, Any]:
        """`query`, naming `users` when the database is sharded; else as it is."""
        if not self.sharded:
            return query
        named = sorted(set(users))
        return {**query, "user_id": named[0] if len(named) == 1 else {"$in": named}}


ONE_SERVER = UserScope()
"""A single server or replica set: queries as they are."""
