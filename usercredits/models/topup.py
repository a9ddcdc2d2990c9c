"""Auto top-up: each user's payment customer at the provider, the top-up rules per user and
offer group, and the attempts, at most one of them open per user and group."""

from datetime import datetime
from enum import StrEnum

import pymongo
from beanie import Document
from pydantic import BaseModel
from pymongo import IndexModel

from usercredits.values.topups import AutoTopUpFields


class PaymentCustomerDocument(Document):
    """The user's customer at the payment provider; the user id is the document id, so a
    user has one."""

    id: str  # type: ignore[assignment]
    provider: str
    customer_id: str
    created_at: datetime
    setup_at: datetime | None = None
    """The latest SetupIntent made for the user: a card may have been saved since."""

    class Settings:
        name = "payment_customers"


class AutoTopUpDocument(Document, AutoTopUpFields):
    revision: int
    """Bumped by every change of the rule: a decline blocks the rule at this revision."""
    updated_at: datetime
    blocked_card: str | None = None
    """Set after a decline (or with no card saved): the card it happened with ("" for none).
    No attempt is made until the user's card differs or the rule changes."""
    blocked_at: datetime | None = None
    """When it was blocked: the cards are looked at again only after a later SetupIntent."""

    class Settings:
        name = "auto_top_ups"
        indexes = [
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("offer_group", pymongo.ASCENDING)],
                unique=True,
                name="user_group_unique",
            ),
            IndexModel([("enabled", pymongo.ASCENDING)], name="enabled"),
        ]


class AttemptOutcome(StrEnum):
    """How an attempt closed: the status its order settled in, or why it made none. The
    stored strings are these values."""

    PAID = "paid"
    INCONSISTENT = "inconsistent"
    REFUNDED = "refunded"
    REFUSED = "refused"
    """The payment was refused, or the order was (its offer is gone or not sold)."""
    ERROR = "error"
    EXPIRED = "expired"
    CANCELED = "canceled"
    NOT_NEEDED = "not needed"
    """The group was no longer low, or the rule changed, once the attempt held the claim."""
    NO_USABLE_CARD = "no usable card"
    OVER_A_CAP = "over a cap"
    """The order's cost would pass a cap: the order is canceled."""
    INTERRUPTED = "interrupted"
    """Its process stopped before any charge could be made."""


class AttemptFields(BaseModel):
    """What an attempt stores (the document's, and the top-up's typed value's, fields)."""

    user_id: str
    offer_group: str
    open: bool
    month: str
    """YYYY-MM (UTC) of the attempt, for the monthly cap."""
    charged: bool = False
    """A payment was made (succeeded or still pending): what the monthly cap counts."""
    order_id: str | None = None
    """The order's id is the attempt's; set once the order exists."""
    customer_id: str | None = None
    card_id: str | None = None
    """The card charged, stored before the charge: a resumed attempt charges it again under
    the same key."""
    amount_minor_units: int | None = None
    currency: str | None = None
    """What the attempt's order costs, stored with its order: what the monthly amount cap
    counts once the attempt is charged."""
    outcome: AttemptOutcome | None = None
    created_at: datetime


class TopUpAttemptDocument(Document, AttemptFields):
    """One off-session purchase of a rule's offer. `open` while its payment is undecided:
    the partial unique index lets one attempt be open per user and group, so two instances
    (or a burst of debits) cannot both charge."""

    """When it was opened, or taken over after being left open."""

    class Settings:
        name = "top_up_attempts"
        indexes = [
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("offer_group", pymongo.ASCENDING)],
                unique=True,
                partialFilterExpression={"open": True},
                name="one_open_per_group",
            ),
            IndexModel(
                [
                    ("user_id", pymongo.ASCENDING),
                    ("offer_group", pymongo.ASCENDING),
                    ("month", pymongo.ASCENDING),
                ],
                name="user_group_month",
            ),
        ]
