"""The media types of a GraphQL answer over HTTP, as the GraphQL-over-HTTP specification
describes them: which one a request's `Accept` asks for, and what an answer in
`application/graphql-response+json` says by its status.

`application/json` is what clients have always had, and still get when they ask for it,
send no `Accept`, or like both types as well: any request that parsed is 200, its errors in
the body. `application/graphql-response+json` tells by its status whether the operation ran:
200 when it did (its errors are then part of its result, beside its data), 4xx when it was
refused before running (a document that does not parse or validate, variables that do not
fit, a request that is no GraphQL request), and then the body has no `data` entry.
"""

from aiohttp import web
from graphql import GraphQLError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
SERVED = (JSON, GRAPHQL_RESPONSE)
"""What /graphql answers in, the one preferred on a tie first."""

ANSWER_TYPE = web.ResponseKey("answer_type", str)
"""Where a response keeps the media type its request asked for."""

REQUEST_ERROR = "BAD_USER_INPUT"
"""The contract code of a request refused before its operation ran."""


def answer_type(accept: str | None) -> str:
    """The served type `accept` gives the highest quality, application/json on a tie. A
    request without `Accept`, or accepting neither type, gets application/json too: the
    specification lets a server disregard an `Accept` it cannot meet and answer in a type
    of its choice, which a client can read whatever it asked for."""
    if not accept:
        return JSON
    chosen, best = JSON, 0.0
    for media_type in SERVED:
        found = quality(accept, media_type)
        if found > best:
            chosen, best = media_type, found
    return chosen


def quality(accept: str, media_type: str) -> float:
    """The quality (0 to 1) that `accept` gives `media_type`: that of the most specific
    media range that matches it (`type/subtype`, then `type/*`, then `*/*`), 0 if none."""
    general = f"{media_type.split('/')[0]}/*"
    ranks = {media_type: 3, general: 2, "*/*": 1}
    rank, found = 0, 0.0
    for part in accept.split(","):
        media_range, *parameters = part.split(";")
        matched = ranks.get(media_range.strip().lower(), 0)
        if matched > rank:
            rank, found = matched, weight(parameters)
    return found


def weight(parameters: list[str]) -> float:
    """The `q` among a media range's parameters, 1 without one; a `q` that is no number
    between 0 and 1 counts as 0, so a malformed range never wins."""
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return 0.0
            return q if 0 <= q <= 1 else 0.0
    return 1.0


def refused_before_running(result: ExecutionResult) -> bool:
    """Whether an operation failed before it ran: no data, and errors none of which has a
    path. Parse, validation and variable errors, and refusals of the request itself, have
    no path; an error of a field that ran always has one, even when it leaves no data."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


def graphql_response_answer(
    response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], status: int
) -> GraphQLHTTPResponse | list[GraphQLHTTPResponse]:
    """An answer in application/graphql-response+json: with a 4xx or 5xx status the
    operation never ran, so the body has no `data` entry (not even null)."""
    if status < 400 or not isinstance(response_data, dict):
        return response_data
    answer = response_data.copy()
    answer.pop("data", None)
    return answer


def request_error(message: str, request_id: str | None) -> GraphQLHTTPResponse:
    """The body of a request refused before any operation ran, as GraphQL errors are."""
    error = GraphQLError(message, extensions={"code": REQUEST_ERROR, "requestId": request_id})
    return {"errors": [error.formatted]}
