"""Beanie documents of the credits service and their indexes. No business logic; the
values the layers pass each other are in usercredits/values/."""

from beanie import Document

from usercredits.models.api_key import ApiKey
from usercredits.models.ledger import LedgerEntryDocument, ReservationDocument, user_key
from usercredits.models.offer import OfferDocument
from usercredits.models.order import OrderDocument
from usercredits.models.payment_event import ProcessedEvent
from usercredits.models.plan import PlanDocument
from usercredits.models.topup import (
    AutoTopUpDocument,
    PaymentCustomerDocument,
    TopUpAttemptDocument,
)
from usercredits.models.wallet import (
    Balance,
    balance_id,
    due_at,
    lot_text,
    pack_lots,
)
from usercredits.models.webhook import (
    AlertRuleDocument,
    AlertStateDocument,
    StreamPosition,
    WebhookDeliveryDocument,
    WebhookEndpointDocument,
)

ALL_DOCUMENTS: list[type[Document]] = [
    OfferDocument,
    OrderDocument,
    Balance,
    LedgerEntryDocument,
    ReservationDocument,
    ProcessedEvent,
    ApiKey,
    WebhookEndpointDocument,
    WebhookDeliveryDocument,
    AlertRuleDocument,
    AlertStateDocument,
    StreamPosition,
    PaymentCustomerDocument,
    AutoTopUpDocument,
    TopUpAttemptDocument,
    PlanDocument,
]

RETIRED_INDEXES: dict[type[Document], tuple[str, ...]] = {
    # Unique indexes not led by user_id, which a cluster sharded by it refuses; replaced by
    # `user_keyed_unique` and `user_payment_intent_unique`.
    LedgerEntryDocument: ("user_key_unique",),
    OrderDocument: ("payment_intent_unique",),
    # Replaced by the one `due` index (`Balance.due_at`).
    Balance: ("next_expiry", "holds_expire", "unflushed"),
}
"""Indexes an earlier version made, dropped at start once their replacements exist."""

__all__ = [
    "ALL_DOCUMENTS",
    "RETIRED_INDEXES",
    "AlertRuleDocument",
    "AlertStateDocument",
    "ApiKey",
    "AutoTopUpDocument",
    "Balance",
    "LedgerEntryDocument",
    "OfferDocument",
    "OrderDocument",
    "PaymentCustomerDocument",
    "PlanDocument",
    "ProcessedEvent",
    "ReservationDocument",
    "StreamPosition",
    "TopUpAttemptDocument",
    "WebhookDeliveryDocument",
    "WebhookEndpointDocument",
    "balance_id",
    "due_at",
    "lot_text",
    "pack_lots",
    "user_key",
]
