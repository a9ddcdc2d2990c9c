"""Automatic persisted queries, as Apollo's clients speak them: a front end sends the
SHA-256 of a query it has sent before instead of the query itself, so its hot queries
cross the network as a hash (and GET requests with them can be cached by a CDN).

A request whose `extensions.persistedQuery` is `{"version": 1, "sha256Hash": h}`:
- with `query`: the query's hash must be `h` (else BAD_USER_INPUT), and it is kept;
- without: the query kept under `h` runs, or the error PERSISTED_QUERY_NOT_FOUND asks the
  client to send it again with the query (what Apollo's link does by itself).
Queries are kept per process, in memory, the least recently used dropped first beyond a
byte budget, which counts what each kept query takes in memory (its text and hash as
Python holds them, and its entry), not only its length: the hash and entry of a ten-byte
query take twenty times its text. Only a document of queries is kept, once its hash checks
out and it parses within the token limit: mutations and subscriptions run but are sent
again in full (a CDN caches none of them), and a text that is no document is refused as
any other. A caller can still fill the budget with queries, but that only evicts others,
which their clients then send again. Kept queries are parsed and validated like any other
(the parser and validation caches make that cheap), so the query limits still hold.
"""

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

from usercredits.schema.limits import DEFAULT_QUERY_LIMITS

MAX_BYTES = 4 * 1024 * 1024
"""What the kept queries may take in memory."""
ENTRY_BYTES = 160
"""What one entry of the ordered dict takes beside its key and value: 130 to 200 bytes, as
its tables grow by doubling."""
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"


class PersistedQueries:
    """The kept queries of one process, by SHA-256 hex digest."""

    def __init__(
        self, *, max_bytes: int = MAX_BYTES, max_tokens: int = DEFAULT_QUERY_LIMITS.max_tokens
    ) -> None:
        self._max_bytes = max_bytes
        self._max_tokens = max_tokens
        self._bytes = 0
        self._queries: OrderedDict[str, str] = OrderedDict()

    def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> str | None:
        """The query to run for a request (see the module's doc); GraphQLError when the
        request names a hash this process cannot answer for."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return query
        if not isinstance(persisted, Mapping) or persisted.get("version") != 1:
            raise GraphQLError("persistedQuery: only version 1 is supported")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str):
            raise GraphQLError("persistedQuery: sha256Hash must be a string")
        if query is None:
            return self._known(digest)
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            raise GraphQLError("persistedQuery: sha256Hash is not the SHA-256 of the query")
        self._keep(digest, query)
        return query

    def _known(self, digest: str) -> str:
        found = self._queries.get(digest)
        if found is None:
            raise GraphQLError("PersistedQueryNotFound", extensions={"code": NOT_FOUND})
        self._queries.move_to_end(digest)
        return found

    def _keep(self, digest: str, query: str) -> None:
        if digest in self._queries:
            self._queries.move_to_end(digest)
            return
        size = _footprint(digest, query)
        if size > self._max_bytes or not self._only_queries(query):
            return
        self._queries[digest] = query
        self._bytes += size
        while self._bytes > self._max_bytes:
            dropped = self._queries.popitem(last=False)
            self._bytes -= _footprint(*dropped)

    def _only_queries(self, text: str) -> bool:
        """Whether `text` is a document whose operations are all queries."""
        try:
            document = parse(text, no_location=True, max_tokens=self._max_tokens)
        except GraphQLError:
            return False
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        return bool(operations) and all(o.operation is OperationType.QUERY for o in operations)


def _footprint(digest: str, query: str) -> int:
    """The bytes one kept query takes in memory."""
    return sys.getsizeof(digest) + sys.getsizeof(query) + ENTRY_BYTES
