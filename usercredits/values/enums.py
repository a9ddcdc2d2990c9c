"""The domain's closed vocabularies, shared by values, documents, services and the GraphQL edge.

Values are the lower-case words stored in MongoDB; the GraphQL layer exposes them upper-case.
"""

from enum import StrEnum


class OfferKind(StrEnum):
    SUBSCRIPTION = "subscription"
    TOKENS = "tokens"
    EXPERTISE = "expertise"


class Cycle(StrEnum):
    ONCE = "once"
    DAILY = "daily"
    WEEKLY = "weekly"
    BI_WEEKLY = "bi_weekly"
    MONTHLY = "monthly"
    TRIMESTER = "trimester"
    SEMESTER = "semester"
    YEARLY = "yearly"
    CUSTOM = "custom"


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REFUSED = "refused"
    ERROR = "error"
    INCONSISTENT = "inconsistent"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    CANCELED = "canceled"


class LedgerReason(StrEnum):
    """Why tokens moved; `reservation` and `release` move them between spendable and held."""

    PURCHASE = "purchase"
    CONSUMPTION = "consumption"
    EXPIRY = "expiry"
    GRANT = "grant"
    REFUND = "refund"
    RESERVATION = "reservation"
    RELEASE = "release"


class ReservationStatus(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"


class PlanStatus(StrEnum):
    INCOMPLETE = "incomplete"
    """Made; its first payment has not succeeded yet."""
    ACTIVE = "active"
    PAST_DUE = "past_due"
    """A renewal's payment failed; the provider retries it."""
    CANCELED = "canceled"
    """Final: it renews no more."""
