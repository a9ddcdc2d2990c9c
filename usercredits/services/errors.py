"""Typed domain errors. Each carries the contract's `extensions.code`, so the GraphQL edge
maps them without knowing the domain, and each message states facts a developer can act on.
"""


class DomainError(Exception):
    """A business rule refused the operation; nothing was changed."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, object]:
        """Facts a client acts on, beside the code, under their GraphQL names."""
        return {}


class InvalidInput(DomainError):
    code = "BAD_USER_INPUT"


class PeriodTooLong(InvalidInput):
    """A period (or an expiry) would end after the latest date the service keeps
    (services/catalogue/cycles.py's LATEST)."""


class NotFound(DomainError):
    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class InsufficientTokens(DomainError):
    code = "INSUFFICIENT_TOKENS"


class QuantityLimit(DomainError):
    code = "QUANTITY_LIMIT"


class OfferNotAvailable(DomainError):
    """The caller cannot see the offer; `replaced_by` is the offer shown instead when one of
    the same overriding key replaces it for this caller."""

    code = "OFFER_NOT_AVAILABLE"

    def __init__(self, message: str, *, replaced_by: str | None = None) -> None:
        super().__init__(message)
        self.replaced_by = replaced_by

    @property
    def extensions(self) -> dict[str, object]:
        return {} if self.replaced_by is None else {"replacedBy": self.replaced_by}


class Expired(DomainError):
    code = "EXPIRED"


class PaymentFailed(DomainError):
    code = "PAYMENT_FAILED"


class Conflict(DomainError):
    """The operation clashes with the state it met; each rule below has its own kind."""

    code = "CONFLICT"


class KeyReused(Conflict):
    """An idempotency key came back with a different request than the one that first
    used it."""


class ReservationReleased(Conflict):
    """A released reservation was committed: its tokens went back."""


class OfferKeyTaken(Conflict):
    """Another offer already carries the key: no two offers share one."""


class OrderNotPending(Conflict):
    """Only a pending order can be canceled."""


class NoSandboxPayment(Conflict):
    """The order has no sandbox payment to complete."""


class PlanCanceled(Conflict):
    """The plan renews no more: it cannot be changed."""


class Contended(Conflict):
    """Other movements kept winning the race for a balance within the time budget."""


class Impossible(RuntimeError):
    """A state the code rules out was met anyway (a bug, or a database that lost a write):
    the operation stops before it writes anything more, and clients see INTERNAL.

    The convention: `assert` only narrows a type for the type checker where the code
    itself makes the other case impossible; a check that guards money or data raises this,
    since asserts vanish under `python -O`."""


SHOWN_CHARACTERS = 40


def shown(value: object) -> str:
    """A bad value as an error message may quote it: its repr, cut to a short prefix."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}... ({len(text)} characters)"
