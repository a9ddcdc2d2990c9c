"""Errors as the contract shows them: every error gets `extensions.code`.

- A DomainError keeps its message and carries its own code.
- A GraphQL error with no underlying exception (syntax, validation, variable types, the
  depth/token/alias limits) is the caller's mistake: BAD_USER_INPUT.
- Anything else is a bug: the client sees "internal error" with code INTERNAL and the
  request id; the log gets the traceback under the same id.
"""

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from services.errors import DomainError

log = logging.getLogger(__name__)


def contract_error(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        code, message = original.code, original.message
    elif original is None:
        code, message = "BAD_USER_INPUT", error.message
    else:
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()),
            exc_info=original,
            extra={"request_id": request_id},
        )
        code, message = "INTERNAL", f"internal error (request {request_id})"
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original if code != "INTERNAL" else None,
        extensions={**(error.extensions or {}), "code": code, "requestId": request_id}
        if code == "INTERNAL"
        else {**(error.extensions or {}), "code": code},
    )


class ContractErrors(SchemaExtension):
    """Rewrites the errors of every result, subscriptions' included, as the contract says."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "")
        result.errors = [contract_error(e, request_id) for e in result.errors]
