"""The Stripe payment provider, on the official SDK's StripeClient with its aiohttp HTTP
client and `*_async` calls.

- A payment is a PaymentIntent for the order's total in the currency's minor units, with
  the order and user ids in metadata, created with the order id as idempotency key, so a
  retried create returns the same intent.
- Stripe's three-decimal currencies (KWD, BHD, JOD, OMR, TND) must be charged in multiples
  of ten minor units; other amounts are refused before anything is sent.
- Every Stripe error (declined card, network, rate limit, bad key) becomes PaymentFailed
  with Stripe's message, but an object Stripe does not have, which is NotFound; the SDK
  retries network failures itself.
- Webhooks are verified with the SDK against the raw body and the endpoint secret, within
  a tolerance, then reduced to the WebhookEvent that orders understand.
- Off-session charges (auto top-up) confirm a PaymentIntent on the customer's saved card at
  once (`off_session`, `confirm`); a card refusal (Stripe's CardError: card_declined,
  authentication_required, ...) is a FAILED payment with its code, for the rule to stop on.
- A plan is a Subscription (`payment_behavior: default_incomplete`, its first invoice's
  confirmation secret expanded for Stripe.js) on a Price made on first need and found again
  by its `lookup_key`, which names the offer, amount, currency and interval. Its period is
  its item's (`items.data[].current_period_*`); an invoice's is its line's, and its
  subscription is under `parent.subscription_details`, as API versions since 2025 have them.
"""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import stripe

from usercredits.services.catalogue.cycles import Interval
from usercredits.services.errors import InvalidInput, NotFound, PaymentFailed
from usercredits.services.money import Money
from usercredits.services.payments.base import (
    Card,
    Invoice,
    InvoiceOwner,
    Payment,
    PaymentState,
    Renewal,
    WebhookEvent,
)
from usercredits.values import PlanStatus
from usercredits.values.numbers import is_whole

THREE_DECIMAL_IN_TENS = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_INTENT_EVENTS = {
    "payment_intent.succeeded": PaymentState.SUCCEEDED,
    "payment_intent.payment_failed": PaymentState.FAILED,
    "payment_intent.canceled": PaymentState.CANCELED,
}


_PLAN_STATUS = {
    "incomplete": PlanStatus.INCOMPLETE,
    "incomplete_expired": PlanStatus.CANCELED,
    "trialing": PlanStatus.ACTIVE,
    "active": PlanStatus.ACTIVE,
    "past_due": PlanStatus.PAST_DUE,
    "unpaid": PlanStatus.PAST_DUE,
    "paused": PlanStatus.PAST_DUE,
    "canceled": PlanStatus.CANCELED,
}
_SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)
_INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})
MAX_INVOICES = 1000
"""Paid invoices read for one refresh at most: years of daily periods."""
PERIOD_INVOICES = frozenset({"subscription_create", "subscription_cycle"})
"""The billing reasons of a subscription's invoices that each pay for one period."""
_WITH_SECRET = "latest_invoice.confirmation_secret"
"""Expanded when a subscription is read: its latest invoice, whose payment the user may
still owe."""


def _text(value: object) -> str:
    """An id from a payload: a string, never an object a query could read as an operator."""
    if not isinstance(value, str):
        raise TypeError(f"expected an id string, got {type(value).__name__}")
    return value


def _named(metadata: dict[str, Any], key: str) -> str | None:
    """An id our metadata holds, if it holds one."""
    value = metadata.get(key)
    return None if value is None else _text(value)


def _state_of(intent: dict[str, Any]) -> tuple[PaymentState, str]:
    """The intent's state as orders see it, and Stripe's words for a failure."""
    if intent["status"] == "succeeded":
        return PaymentState.SUCCEEDED, "payment succeeded"
    if intent["status"] == "canceled":
        return PaymentState.CANCELED, "payment canceled"
    error = intent.get("last_payment_error")
    if intent["status"] == "requires_payment_method" and error:
        return PaymentState.FAILED, str(error.get("message") or "payment failed")
    return PaymentState.PENDING, ""


def _payment_of(intent: dict[str, Any]) -> Payment:
    state, message = _state_of(intent)
    received = intent["amount_received"] if state is PaymentState.SUCCEEDED else intent["amount"]
    return Payment(
        id=_text(intent["id"]),
        state=state,
        amount=Money(int(received), str(intent["currency"]).upper()),
        client_secret=intent.get("client_secret"),
        message=message,
    )


def _moment(timestamp: object) -> datetime:
    if not is_whole(timestamp):
        raise TypeError(f"expected a Unix time, got {type(timestamp).__name__}")
    return datetime.fromtimestamp(timestamp, UTC)


def _subscription_of(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills, if any."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription")
    return None if subscription is None else _text(subscription)


def _invoice_of(invoice: dict[str, Any]) -> Invoice | None:
    """A subscription's invoice for a period (its first, or a renewal), for the period of
    its latest line; None for any other (one-off, proration, manual) invoice: those buy
    no period of tokens."""
    subscription = _subscription_of(invoice)
    lines = invoice["lines"]["data"]
    if subscription is None or invoice.get("billing_reason") not in PERIOD_INVOICES or not lines:
        return None
    line = max(lines, key=lambda item: int(item["period"]["end"]))
    paid = invoice["status"] == "paid"
    return Invoice(
        id=_text(invoice["id"]),
        subscription_id=subscription,
        paid=paid,
        amount=Money(
            int(invoice["amount_paid"] if paid else invoice["amount_due"]),
            str(invoice["currency"]).upper(),
        ),
        period_start=_moment(line["period"]["start"]),
        period_end=_moment(line["period"]["end"]),
    )


def _renewal_of(subscription: dict[str, Any]) -> Renewal:
    items = subscription["items"]["data"]
    latest = subscription.get("latest_invoice")
    invoice = _invoice_of(latest) if isinstance(latest, dict) else None
    secret = None
    if isinstance(latest, dict) and latest.get("status") == "open":
        secret = (latest.get("confirmation_secret") or {}).get("client_secret")
    return Renewal(
        id=_text(subscription["id"]),
        plan_id=(subscription.get("metadata") or {}).get("plan_id"),
        status=_PLAN_STATUS[subscription["status"]],
        period_start=_moment(items[0]["current_period_start"]) if items else None,
        period_end=_moment(items[0]["current_period_end"]) if items else None,
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
        latest_invoice=invoice,
        client_secret=secret,
    )


def _translated(exc: stripe.StripeError, what: str) -> NotFound | PaymentFailed:
    """Stripe's error as the service's, the one translation of them all: NotFound for an
    unknown object, else PaymentFailed; either says what Stripe did not do, and why."""
    message = f"Stripe {what}: {exc.user_message or exc}"
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404:
        return NotFound(message)
    return PaymentFailed(message)


@contextmanager
def _asking(what: str) -> Iterator[None]:
    """A call to Stripe whose errors become the service's (`_translated`)."""
    try:
        yield
    except stripe.StripeError as exc:
        raise _translated(exc, what) from None


def _order_key(order_id: str) -> str:
    """The idempotency key of an order's payment: whatever retries it (a retried request,
    an auto top-up carried on by another process) sends the same one, and Stripe answers
    with the first payment."""
    return f"order-{order_id}"


def _check_chargeable(amount: Money) -> None:
    if amount.currency in THREE_DECIMAL_IN_TENS and amount.minor_units % 10:
        raise PaymentFailed(
            f"Stripe charges {amount.currency} in multiples of 0.010; "
            f"{amount.amount} {amount.currency} cannot be charged"
        )


class StripePaymentClient:
    name = "stripe"

    def __init__(
        self,
        *,
        secret_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        webhook_tolerance_seconds: int = 300,
    ) -> None:
        if not secret_key.startswith(("sk_", "rk_")):
            raise ValueError(
                "the Stripe secret key starts with sk_ (or rk_ for a restricted "
                "key): copy it from the Stripe dashboard, Developers > API keys"
            )
        if not webhook_secret:
            raise ValueError("a Stripe webhook secret (whsec_...) is needed to verify webhooks")
        self._http = stripe.AIOHTTPClient()
        self._client = stripe.StripeClient(
            secret_key,
            http_client=self._http,
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret
        self._tolerance = webhook_tolerance_seconds
        self._prices: dict[str, str] = {}
        """Price ids by lookup key, once found or made."""

    async def create_payment(self, *, order_id: str, user_id: str, amount: Money) -> Payment:
        _check_chargeable(amount)
        with _asking("refused the payment"):
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount.minor_units,
                    "currency": amount.currency.lower(),
                    "metadata": {"order_id": order_id, "user_id": user_id},
                    "automatic_payment_methods": {"enabled": True},
                },
                options={"idempotency_key": _order_key(order_id)},
            )
        return _payment_of(intent.to_dict())

    async def create_customer(self, *, user_id: str) -> str:
        with _asking("made no customer"):
            customer = await self._client.v1.customers.create_async(
                params={"metadata": {"user_id": user_id}},
                options={"idempotency_key": f"customer-{user_id}"},
            )
        return _text(customer.id)

    async def setup_card(self, *, customer_id: str) -> str:
        with _asking("made no SetupIntent"):
            setup = await self._client.v1.setup_intents.create_async(
                params={"customer": customer_id, "usage": "off_session"},
                options={"idempotency_key": f"setup-{secrets.token_hex(12)}"},
            )
        return _text(setup.client_secret)

    async def cards(self, *, customer_id: str) -> list[Card]:
        with _asking("could not list cards"):
            listed = await self._client.v1.payment_methods.list_async(
                params={"customer": customer_id, "type": "card"}
            )
        return [
            Card(
                id=_text(method["id"]),
                brand=str(method["card"]["brand"]),
                last4=str(method["card"]["last4"]),
                exp_month=int(method["card"]["exp_month"]),
                exp_year=int(method["card"]["exp_year"]),
            )
            for method in listed.to_dict()["data"]
        ]

    async def charge_card(
        self, *, order_id: str, user_id: str, amount: Money, customer_id: str, card_id: str
    ) -> Payment:
        _check_chargeable(amount)
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount.minor_units,
                    "currency": amount.currency.lower(),
                    "customer": customer_id,
                    "payment_method": card_id,
                    # Off-session, no redirect is possible: without this, newer API
                    # versions refuse to confirm without a return_url.
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "off_session": True,
                    "confirm": True,
                    "metadata": {"order_id": order_id, "user_id": user_id},
                },
                options={"idempotency_key": _order_key(order_id)},
            )
        except stripe.CardError as exc:
            refused = exc.error.payment_intent if exc.error else None
            return Payment(
                id=_text(refused.id if refused is not None else f"refused-{order_id}"),
                state=PaymentState.FAILED,
                amount=amount,
                message=str(exc.user_message or exc),
                # A bank's soft decline comes as card_declined with the reason beside it.
                decline_code=(exc.error.decline_code if exc.error else None) or exc.code,
            )
        except stripe.StripeError as exc:
            raise _translated(exc, "refused the payment") from None
        return _payment_of(intent.to_dict())

    async def get_payment(self, payment_id: str) -> Payment:
        with _asking(f"could not read payment intent {payment_id}"):
            intent = await self._client.v1.payment_intents.retrieve_async(payment_id)
        return _payment_of(intent.to_dict())

    async def cancel_payment(self, payment_id: str) -> Payment:
        with _asking(f"did not cancel {payment_id}"):
            intent = await self._client.v1.payment_intents.cancel_async(payment_id)
        return _payment_of(intent.to_dict())

    async def recurring_price(
        self, *, offer_id: str, name: str, amount: Money, interval: Interval
    ) -> str:
        _check_chargeable(amount)
        key = (
            f"usercredits-{offer_id}-{amount.minor_units}{amount.currency.lower()}"
            f"-{interval.count}{interval.unit}"
        )
        known = self._prices.get(key)
        if known is not None:
            return known
        with _asking("could not find or make the plan's price"):
            found = await self._client.v1.prices.list_async(
                params={"lookup_keys": [key], "active": True, "limit": 1}
            )
            prices = found.to_dict()["data"]
            if prices:
                price_id = _text(prices[0]["id"])
            else:
                made = await self._client.v1.prices.create_async(
                    params={
                        "currency": amount.currency.lower(),
                        "unit_amount": amount.minor_units,
                        "recurring": {"interval": interval.unit, "interval_count": interval.count},
                        "lookup_key": key,
                        # An archived price may hold the key: this one takes it over.
                        "transfer_lookup_key": True,
                        "product_data": {"name": name[:250]},
                        "metadata": {"offer_id": offer_id},
                    },
                    options={"idempotency_key": f"price-{key}"},
                )
                price_id = _text(made.id)
        self._prices[key] = price_id
        return price_id

    async def create_renewal(
        self, *, plan_id: str, user_id: str, customer_id: str, price_id: str, quantity: int
    ) -> Renewal:
        with _asking("made no subscription"):
            made = await self._client.v1.subscriptions.create_async(
                params={
                    "customer": customer_id,
                    "items": [{"price": price_id, "quantity": quantity}],
                    "payment_behavior": "default_incomplete",
                    "payment_settings": {"save_default_payment_method": "on_subscription"},
                    "metadata": {"plan_id": plan_id, "user_id": user_id},
                    "expand": [_WITH_SECRET],
                },
                options={"idempotency_key": f"plan-{plan_id}"},
            )
        return _renewal_of(made.to_dict())

    async def get_renewal(self, renewal_id: str) -> Renewal:
        with _asking("could not be asked about the subscription"):
            found = await self._client.v1.subscriptions.retrieve_async(
                renewal_id, params={"expand": [_WITH_SECRET]}
            )
        return _renewal_of(found.to_dict())

    async def paid_invoices(self, renewal_id: str, *, since: datetime) -> list[Invoice]:
        found: list[Invoice] = []
        with _asking("could not list the subscription's invoices"):
            listed = await self._client.v1.invoices.list_async(
                params={
                    "subscription": renewal_id,
                    "status": "paid",
                    "created": {"gte": int(since.timestamp())},
                    "limit": 100,
                }
            )
            async for raw in listed.auto_paging_iter():
                invoice = _invoice_of(raw.to_dict())
                if invoice is not None:
                    found.append(invoice)
                if len(found) == MAX_INVOICES:
                    break
        return found

    async def cancel_renewal(self, renewal_id: str, *, at_period_end: bool) -> Renewal:
        with _asking("did not cancel the subscription"):
            if at_period_end:
                changed = await self._client.v1.subscriptions.update_async(
                    renewal_id, params={"cancel_at_period_end": True, "expand": [_WITH_SECRET]}
                )
            else:
                changed = await self._client.v1.subscriptions.cancel_async(
                    renewal_id, params={"expand": [_WITH_SECRET]}
                )
        return _renewal_of(changed.to_dict())

    async def invoice_paid_by(self, payment_id: str) -> InvoiceOwner | None:
        with _asking("could not say which invoice a payment paid"):
            listed = await self._client.v1.invoice_payments.list_async(
                params={
                    "payment": {"type": "payment_intent", "payment_intent": payment_id},
                    "limit": 1,
                    "expand": ["data.invoice"],
                }
            )
        for paid in listed.to_dict()["data"]:
            invoice = paid["invoice"]
            details = (invoice.get("parent") or {}).get("subscription_details") or {}
            user_id = (details.get("metadata") or {}).get("user_id")
            if user_id is not None:
                return InvoiceOwner(user_id=_text(user_id), invoice_id=_text(invoice["id"]))
        return None

    async def resume_renewal(self, renewal_id: str) -> Renewal:
        with _asking("did not resume the subscription"):
            changed = await self._client.v1.subscriptions.update_async(
                renewal_id, params={"cancel_at_period_end": False, "expand": [_WITH_SECRET]}
            )
        return _renewal_of(changed.to_dict())

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        try:
            event = self._client.construct_event(
                payload, signature, self._webhook_secret, tolerance=self._tolerance
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidInput(
                f"Stripe-Signature does not verify: {exc.user_message or exc}"
            ) from None
        except (ValueError, RecursionError, AttributeError, TypeError):
            raise InvalidInput("the webhook body is not a JSON Stripe event") from None
        try:
            return self._reduce(event.to_dict())
        except (KeyError, TypeError, ValueError, AttributeError):
            # Signed, so from Stripe (or the secret leaked), yet not an event we can read:
            # a 4xx, since Stripe would retry a 5xx for days.
            raise InvalidInput("the webhook event lacks the fields of a Stripe event") from None

    def _reduce(self, event: dict[str, Any]) -> WebhookEvent:
        kind = str(event["type"])
        event_id = _text(event["id"])
        obj = event["data"]["object"]
        if kind in _INTENT_EVENTS:
            payment = _payment_of(obj)
            named = obj.get("metadata") or {}
            return WebhookEvent(
                id=event_id,
                type=kind,
                payment_id=payment.id,
                state=_INTENT_EVENTS[kind],
                amount=payment.amount,
                message=payment.message,
                order_id=_named(named, "order_id"),
                user_id=_named(named, "user_id"),
            )
        if kind == "charge.refunded" and obj.get("refunded"):
            return WebhookEvent(
                id=event_id,
                type=kind,
                payment_id=_text(obj["payment_intent"]),
                state=PaymentState.REFUNDED,
                amount=None,
                message="refunded through Stripe",
            )
        subscription_id = None
        invoice = None
        metadata: dict[str, Any] = {}
        if kind in _SUBSCRIPTION_EVENTS:
            subscription_id = _text(obj["id"])
            metadata = obj.get("metadata") or {}
        elif kind in _INVOICE_EVENTS:
            invoice = _invoice_of(obj)
            subscription_id = _subscription_of(obj)
            details = (obj.get("parent") or {}).get("subscription_details") or {}
            metadata = details.get("metadata") or {}
        return WebhookEvent(
            id=event_id,
            type=kind,
            payment_id=None,
            state=None,
            amount=None,
            subscription_id=subscription_id,
            invoice=invoice,
            plan_id=_named(metadata, "plan_id"),
            user_id=_named(metadata, "user_id"),
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in the SDK
