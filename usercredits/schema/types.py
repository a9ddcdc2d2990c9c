"""GraphQL output types of the contract, each built from a domain value by `of`.

Types only map data, but for the few fields that read more through the services in the
context (a wallet's orders).
"""

from dataclasses import asdict
from datetime import datetime
from enum import Enum

import strawberry

from usercredits import values
from usercredits.schema.context import Context
from usercredits.schema.topups import AutoTopUp, PaymentMethod
from usercredits.services.errors import NotFound
from usercredits.services.events import BalanceChanged
from usercredits.services.identity.access import Role
from usercredits.services.identity.api_keys import ApiKeyView
from usercredits.services.identity.api_keys import CreatedApiKey as CreatedApiKeyValue
from usercredits.services.money import Money as MoneyValue
from usercredits.services.money import normalize_currency
from usercredits.services.orders.buying import MAX_PAGE as MAX_ORDERS
from usercredits.services.wallets.balances import BalanceView
from usercredits.services.wallets.warnings import CreditWarning as CreditWarningValue
from usercredits.values import Cycle, OfferKind, OrderStatus, PlanStatus
from usercredits.values.offers import OfferTerms


@strawberry.type(
    description="An amount of money: `amount` is a decimal string in major units "
    '("19.99", "500" for JPY).'
)
class Money:
    amount: str
    currency: str
    minor_units: int

    @classmethod
    def of(cls, money: MoneyValue) -> "Money":
        return cls(amount=money.amount, currency=money.currency, minor_units=money.minor_units)


@strawberry.type
class CombinedItem:
    offer_id: strawberry.ID
    offer_group: str
    quantity: int
    cycle: Cycle | None
    custom_cycle_seconds: int | None

    @strawberry.field(
        description="Tokens the item credits per bundle bought: its offer's tokenCount times "
        "quantity (what a page lists as the bundle's contents)."
    )
    async def token_count(self, info: strawberry.Info[Context]) -> int:
        item = await info.context.services.offers.get_offer(offer_id=self.offer_id)
        return item.token_count * self.quantity


@strawberry.type
class OrderEvent:
    at: datetime
    status: OrderStatus
    message: str


@strawberry.type
class Order:
    id: strawberry.ID
    user_id: strawberry.ID
    offer_id: strawberry.ID
    offer_group: str
    quantity: int
    token_count: int
    total: Money
    status: OrderStatus
    starts: datetime | None
    expires: datetime | None
    created_at: datetime
    parent_id: strawberry.ID | None
    history: list[OrderEvent]

    @classmethod
    def of(cls, order: values.Order) -> "Order":
        return cls(
            id=strawberry.ID(str(order.id)),
            user_id=strawberry.ID(order.user_id),
            offer_id=strawberry.ID(order.offer_id),
            offer_group=order.offer_group,
            quantity=order.quantity,
            token_count=order.token_count,
            total=Money.of(MoneyValue(order.total_minor_units, order.currency)),
            status=order.status,
            starts=order.starts,
            expires=order.expires,
            created_at=order.created_at,
            parent_id=strawberry.ID(order.parent_id) if order.parent_id else None,
            history=[
                OrderEvent(at=e.at, status=e.status, message=e.message) for e in order.history
            ],
        )


@strawberry.type(
    description="A SUBSCRIPTION offer bought to renew every cycle: each paid period credits a "
    "lot for that period."
)
class Plan:
    id: strawberry.ID
    user_id: strawberry.ID
    offer_id: strawberry.ID
    offer_group: str
    quantity: int
    status: PlanStatus
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool

    @strawberry.field(description="one per paid period, newest first")
    async def orders(self, info: strawberry.Info[Context]) -> list[Order]:
        paid = await info.context.services.orders.plan_orders(plan_id=self.id)
        return [Order.of(order) for order in paid]

    @classmethod
    def of(cls, plan: values.Plan) -> "Plan":
        return cls(
            id=strawberry.ID(plan.id),
            user_id=strawberry.ID(plan.user_id),
            offer_id=strawberry.ID(plan.offer_id),
            offer_group=plan.offer_group,
            quantity=plan.quantity,
            status=plan.status,
            current_period_start=plan.current_period_start,
            current_period_end=plan.current_period_end,
            cancel_at_period_end=plan.cancel_at_period_end,
        )


@strawberry.enum
class LotSource(Enum):
    ORDER = "order"
    GRANT = "grant"


@strawberry.type(
    description="Tokens from one credit (a paid order, a bundle's child order, a grant), "
    "valid for their own period."
)
class Lot:
    id: strawberry.ID
    source: LotSource
    order_id: strawberry.ID | None
    tokens: int
    remaining: int
    starts: datetime
    expires: datetime | None
    priority: int
    note: str | None

    @classmethod
    def of(cls, lot: values.Lot) -> "Lot":
        return cls(
            id=strawberry.ID(lot.id),
            source=LotSource(lot.source.value),
            order_id=strawberry.ID(lot.order_id) if lot.order_id else None,
            tokens=lot.tokens,
            remaining=lot.remaining,
            starts=lot.starts,
            expires=lot.expires,
            priority=lot.priority,
            note=lot.note,
        )


@strawberry.type
class ExpiryForecast:
    at: datetime
    tokens: int


@strawberry.type
class LotDraw:
    lot_id: strawberry.ID
    tokens: int


@strawberry.type
class Balance:
    offer_group: str
    tokens: int
    reserved: int
    starts: datetime | None
    expires: datetime | None
    lots: list[Lot] = strawberry.field(
        description="Live lots (remaining > 0, not expired), in the order debits draw them."
    )
    next_expiry: ExpiryForecast | None = strawberry.field(
        description="The soonest expiry among live lots and how many tokens go then; null "
        "when none expires."
    )

    @classmethod
    def of(cls, balance: BalanceView) -> "Balance":
        forecast = balance.next_expiry
        return cls(
            offer_group=balance.offer_group,
            tokens=balance.tokens,
            reserved=balance.reserved,
            starts=balance.starts,
            expires=balance.expires,
            lots=[Lot.of(lot) for lot in balance.lots],
            next_expiry=None
            if forecast is None
            else ExpiryForecast(at=forecast.at, tokens=forecast.tokens),
        )


@strawberry.type
class LedgerEntry:
    id: strawberry.ID
    user_id: strawberry.ID
    offer_group: str
    tokens: int
    balance_after: int
    released: int = strawberry.field(
        description="Held tokens this entry gives back before its own tokens count: a commit "
        "releases its reservation's hold and spends `tokens` of it in one entry. balanceAfter "
        "is the previous entry's plus released plus tokens (released is 0 for other entries)."
    )
    reason: str
    note: str | None
    order_id: strawberry.ID | None
    idempotency_key: str | None
    created_at: datetime
    lots: list[LotDraw] = strawberry.field(
        description="For debits, expiries and refunds: which lots gave the tokens; for "
        "credits: the lot made."
    )

    @classmethod
    def of(cls, entry: values.LedgerEntry) -> "LedgerEntry":
        return cls(
            id=strawberry.ID(str(entry.id)),
            user_id=strawberry.ID(entry.user_id),
            offer_group=entry.offer_group,
            tokens=entry.tokens,
            balance_after=entry.balance_after,
            released=entry.released,
            reason=entry.reason.value,
            note=entry.note,
            order_id=strawberry.ID(entry.order_id) if entry.order_id else None,
            idempotency_key=entry.idempotency_key,
            created_at=entry.created_at,
            lots=[LotDraw(lot_id=strawberry.ID(d.lot_id), tokens=d.tokens) for d in entry.lots],
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None

    @classmethod
    def after(cls, cursors: list[str], has_next_page: bool) -> "PageInfo":
        """Cursors are the ids of the nodes, newest first; the last one continues the list."""
        return cls(has_next_page=has_next_page, end_cursor=cursors[-1] if cursors else None)


@strawberry.type
class LedgerEdge:
    node: LedgerEntry
    cursor: str


@strawberry.type
class LedgerConnection:
    edges: list[LedgerEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, entries: list[values.LedgerEntry], has_next_page: bool) -> "LedgerConnection":
        edges = [LedgerEdge(node=LedgerEntry.of(e), cursor=str(e.id)) for e in entries]
        return cls(edges=edges, page_info=PageInfo.after([e.cursor for e in edges], has_next_page))


@strawberry.type
class OrderEdge:
    node: Order
    cursor: str


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, orders: list[values.Order], has_next_page: bool) -> "OrderConnection":
        edges = [OrderEdge(node=Order.of(o), cursor=str(o.id)) for o in orders]
        return cls(edges=edges, page_info=PageInfo.after([e.cursor for e in edges], has_next_page))


@strawberry.type
class Reservation:
    id: strawberry.ID
    user_id: strawberry.ID
    offer_group: str
    tokens: int
    expires_at: datetime
    status: str

    @classmethod
    def of(cls, reservation: values.Reservation) -> "Reservation":
        return cls(
            id=strawberry.ID(str(reservation.id)),
            user_id=strawberry.ID(reservation.user_id),
            offer_group=reservation.offer_group,
            tokens=reservation.tokens,
            expires_at=reservation.expires_at,
            status=reservation.status.value.upper(),
        )


@strawberry.type
class CreditWarning:
    user_id: strawberry.ID
    offer_group: str
    kind: str
    tokens: int
    expires: datetime | None

    @classmethod
    def of(cls, warning: CreditWarningValue) -> "CreditWarning":
        return cls(
            user_id=strawberry.ID(warning.user_id),
            offer_group=warning.offer_group,
            kind=warning.kind.value,
            tokens=warning.tokens,
            expires=warning.expires,
        )


@strawberry.type
class BalanceEvent:
    user_id: strawberry.ID
    offer_group: str
    tokens: int
    delta: int
    reason: str
    at: datetime

    @classmethod
    def of(cls, event: BalanceChanged) -> "BalanceEvent":
        return cls(
            user_id=strawberry.ID(event.user_id),
            offer_group=event.offer_group,
            tokens=event.tokens,
            delta=event.delta,
            reason=event.reason,
            at=event.at,
        )


@strawberry.type
class CreateOrderPayload:
    order: Order
    payment_client_secret: str | None = strawberry.field(
        description="For the front end to confirm the payment (Stripe.js); null for free orders."
    )


@strawberry.type
class Offer:
    id: strawberry.ID
    name: str
    kind: OfferKind
    offer_group: str
    token_count: int
    prices: list[Money]
    cycle: Cycle
    custom_cycle_seconds: int | None
    append_date: bool
    quantity_limit: int | None
    tags: list[str]
    popular: bool
    overriding_key: str | None
    weight: int
    unlocked_by: list[str]
    combined_items: list[CombinedItem]
    key: str | None = strawberry.field(
        description="The offer's stable name, by which upsertOffer and catalogue files find it."
    )

    @strawberry.field(
        description="The price in `currency`, or in the default currency; NOT_FOUND error if "
        "not sold in it."
    )
    def price(self, info: strawberry.Info[Context], currency: str | None = None) -> Money:
        code = normalize_currency(currency or info.context.services.default_currency)
        for price in self.prices:
            if price.currency == code:
                return price
        raise NotFound(f"offer {self.id} is not sold in {code}")

    @classmethod
    def of(cls, offer: values.Offer) -> "Offer":
        mapped = {"prices", "combined_items"}
        terms = {n: getattr(offer, n) for n in OfferTerms.model_fields if n not in mapped}
        return cls(
            **terms,
            id=strawberry.ID(offer.id),
            key=offer.key,
            prices=[Money.of(MoneyValue(p.minor_units, p.currency)) for p in offer.prices],
            combined_items=[CombinedItem(**i.model_dump()) for i in offer.combined_items],
        )


@strawberry.type
class Wallet:
    user_id: strawberry.ID
    balances: list[Balance]

    @strawberry.field(description="null when the user has nothing in that group")
    def balance(self, offer_group: str) -> Balance | None:
        return next((b for b in self.balances if b.offer_group == offer_group), None)

    @strawberry.field(
        description=f"The newest {MAX_ORDERS} orders; the `orders` query pages through all."
    )
    async def orders(
        self, info: strawberry.Info[Context], status: OrderStatus | None = None
    ) -> list[Order]:
        page = await info.context.services.orders.list_orders(
            user_id=self.user_id, status=status, first=MAX_ORDERS
        )
        return [Order.of(o) for o in page.orders]

    @strawberry.field
    async def payment_methods(self, info: strawberry.Info[Context]) -> list[PaymentMethod]:
        cards = await info.context.services.top_ups.payment_methods(user_id=self.user_id)
        return [PaymentMethod.of(card) for card in cards]

    @strawberry.field
    async def plans(self, info: strawberry.Info[Context]) -> list[Plan]:
        plans = await info.context.services.plans.list_plans(user_id=self.user_id)
        return [Plan.of(plan) for plan in plans]

    @strawberry.field
    async def auto_top_ups(self, info: strawberry.Info[Context]) -> list[AutoTopUp]:
        rules = await info.context.services.top_ups.rules(user_id=self.user_id)
        return [AutoTopUp.of(rule) for rule in rules]

    @classmethod
    def of(cls, user_id: str, balances: list[BalanceView]) -> "Wallet":
        return cls(user_id=strawberry.ID(user_id), balances=[Balance.of(b) for b in balances])


@strawberry.type(description="A back end's key; its secret is shown only when it is made.")
class ApiKey:
    id: strawberry.ID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKeyView) -> "ApiKey":
        return cls(**{**asdict(key), "id": strawberry.ID(key.id)})


@strawberry.type
class CreatedApiKey:
    api_key: ApiKey
    secret: str

    @classmethod
    def of(cls, created: CreatedApiKeyValue) -> "CreatedApiKey":
        return cls(api_key=ApiKey.of(created.key), secret=created.secret)
