"""Errors as the contract shows them: every error gets `extensions.code`.

- A DomainError keeps its message and carries its own code.
- A GraphQL error with no underlying exception (syntax, validation, variable types, the
  depth/token/alias limits) is the caller's mistake: BAD_USER_INPUT.
- Anything else is a bug: the client sees "internal error" with code INTERNAL; the log gets
  the traceback under the request id, which every error carries as `requestId`.
"""

import logging

from graphql import GraphQLError

from services.errors import DomainError

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


def apply_contract(error: GraphQLError, request_id: str) -> None:
    """Gives `error` its contract code and message, in place (pre-execution errors reach
    the response through more than one list, so the error objects themselves are changed).
    An error that already has a code is left as it is."""
    if error.extensions and "code" in error.extensions:
        return
    original = error.original_error
    code = error_code(error)
    message = original.message if isinstance(original, DomainError) else error.message
    if code == "INTERNAL":
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()),
            exc_info=original,
            extra={"request_id": request_id},
        )
        message = f"internal error (request {request_id})"
        error.original_error = None
    error.message = message
    error.extensions = {**(error.extensions or {}), "code": code, "requestId": request_id}
