"""The Stripe payment provider, on the official SDK's StripeClient with its aiohttp HTTP
client and `*_async` calls.

- A payment is a PaymentIntent for the order's total in the currency's minor units, with
  the order and user ids in metadata, created with the order id as idempotency key, so a
  retried create returns the same intent.
- Stripe's three-decimal currencies (KWD, BHD, JOD, OMR, TND) must be charged in multiples
  of ten minor units; other amounts are refused before anything is sent.
- Every Stripe error (declined card, network, rate limit, bad key) becomes PaymentFailed
  with Stripe's message; the SDK retries network failures itself.
- Webhooks are verified with the SDK against the raw body and the endpoint secret, within
  a tolerance, then reduced to the WebhookEvent that orders understand.
- Off-session charges (auto top-up) confirm a PaymentIntent on the customer's saved card at
  once (`off_session`, `confirm`); a card refusal (Stripe's CardError: card_declined,
  authentication_required, ...) is a FAILED payment with its code, for the rule to stop on.
"""

import secrets
from typing import Any

import stripe

from usercredits.services.errors import InvalidInput, NotFound, PaymentFailed
from usercredits.services.money import Money
from usercredits.services.payments.base import Card, Payment, PaymentState, WebhookEvent

THREE_DECIMAL_IN_TENS = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_INTENT_EVENTS = {
    "payment_intent.succeeded": PaymentState.SUCCEEDED,
    "payment_intent.payment_failed": PaymentState.FAILED,
    "payment_intent.canceled": PaymentState.CANCELED,
}


def _text(value: object) -> str:
    """An id from a payload: a string, never an object a query could read as an operator."""
    if not isinstance(value, str):
        raise TypeError(f"expected an id string, got {type(value).__name__}")
    return value


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

    async def create_payment(self, *, order_id: str, user_id: str, amount: Money) -> Payment:
        _check_chargeable(amount)
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount.minor_units,
                    "currency": amount.currency.lower(),
                    "metadata": {"order_id": order_id, "user_id": user_id},
                    "automatic_payment_methods": {"enabled": True},
                },
                options={"idempotency_key": _order_key(order_id)},
            )
        except stripe.StripeError as exc:
            raise PaymentFailed(f"Stripe refused the payment: {exc.user_message or exc}") from None
        return _payment_of(intent.to_dict())

    async def create_customer(self, *, user_id: str) -> str:
        try:
            customer = await self._client.v1.customers.create_async(
                params={"metadata": {"user_id": user_id}},
                options={"idempotency_key": f"customer-{user_id}"},
            )
        except stripe.StripeError as exc:
            raise PaymentFailed(f"Stripe made no customer: {exc.user_message or exc}") from None
        return _text(customer.id)

    async def setup_card(self, *, customer_id: str) -> str:
        try:
            setup = await self._client.v1.setup_intents.create_async(
                params={"customer": customer_id, "usage": "off_session"},
                options={"idempotency_key": f"setup-{secrets.token_hex(12)}"},
            )
        except stripe.StripeError as exc:
            raise PaymentFailed(f"Stripe made no SetupIntent: {exc.user_message or exc}") from None
        return _text(setup.client_secret)

    async def cards(self, *, customer_id: str) -> list[Card]:
        try:
            listed = await self._client.v1.payment_methods.list_async(
                params={"customer": customer_id, "type": "card"}
            )
        except stripe.StripeError as exc:
            raise PaymentFailed(f"Stripe could not list cards: {exc.user_message or exc}") from None
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
            raise PaymentFailed(f"Stripe refused the payment: {exc.user_message or exc}") from None
        return _payment_of(intent.to_dict())

    async def get_payment(self, payment_id: str) -> Payment:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(payment_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise NotFound(f"Stripe has no payment intent {payment_id}") from None
            raise PaymentFailed(f"Stripe: {exc.user_message or exc}") from None
        except stripe.StripeError as exc:
            raise PaymentFailed(f"Stripe could not be reached: {exc.user_message or exc}") from None
        return _payment_of(intent.to_dict())

    async def cancel_payment(self, payment_id: str) -> Payment:
        try:
            intent = await self._client.v1.payment_intents.cancel_async(payment_id)
        except stripe.StripeError as exc:
            raise PaymentFailed(
                f"Stripe did not cancel {payment_id}: {exc.user_message or exc}"
            ) from None
        return _payment_of(intent.to_dict())

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
            return WebhookEvent(
                id=event_id,
                type=kind,
                payment_id=payment.id,
                state=_INTENT_EVENTS[kind],
                amount=payment.amount,
                message=payment.message,
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
        return WebhookEvent(id=event_id, type=kind, payment_id=None, state=None, amount=None)

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in the SDK
