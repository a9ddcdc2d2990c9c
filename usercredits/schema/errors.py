"""Errors as the contract shows them: every error gets `extensions.code`.

- A DomainError keeps its message and carries its own code, and the facts it names for the
  client (OFFER_NOT_AVAILABLE's `replacedBy`).
- A GraphQL error with no underlying exception (syntax, validation, variable types, the
  depth/token/alias limits) is the caller's mistake: BAD_USER_INPUT.
- An unreachable database is INTERNAL too, with `retryable: true` and a message that says
  so: the operation changed nothing that a retry with its idempotency key would repeat.
- Anything else is a bug: the client sees "internal error" with code INTERNAL; the log gets
  the traceback under the request id, which every error carries as `requestId`.
"""

import logging

from graphql import GraphQLError
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

from usercredits.services.errors import DomainError

log = logging.getLogger(__name__)


def error_code(error: GraphQLError) -> str:
    """The contract code an error carries, or will carry once `apply_contract` has run."""
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    original = error.original_error
    if isinstance(original, DomainError):
        return original.code
    if original is None or isinstance(original, GraphQLError):
        return "BAD_USER_INPUT"
    return "INTERNAL"


def _unavailable(error: GraphQLError) -> bool:
    """The database could not be reached or lost the connection: not a bug, a retry."""
    return isinstance(error.original_error, ConnectionFailure | ExecutionTimeout | WTimeoutError)


def apply_contract(error: GraphQLError, request_id: str) -> None:
    """Gives `error` its contract code and message, in place (pre-execution errors reach
    the response through more than one list, so the error objects themselves are changed).
    An error that already has a code is left as it is."""
    if error.extensions and "code" in error.extensions:
        return
    original = error.original_error
    code = error_code(error)
    message = error.message
    extensions: dict[str, object] = {"code": code, "requestId": request_id}
    if isinstance(original, DomainError):
        message = original.message
        extensions = {**original.extensions, **extensions}
    if code == "INTERNAL" and _unavailable(error):
        log.warning(
            "database unavailable", extra={"request_id": request_id, "error": str(original)}
        )
        message = (
            "the database is unavailable: retry the request; with the same idempotencyKey "
            "it takes effect at most once"
        )
        extensions["retryable"] = True
        error.original_error = None
    elif code == "INTERNAL":
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()),
            exc_info=original,
            extra={"request_id": request_id},
        )
        message = f"internal error (request {request_id})"
        error.original_error = None
    error.message = message
    error.extensions = {**(error.extensions or {}), **extensions}
