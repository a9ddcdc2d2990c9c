"""A fake Stripe API on 127.0.0.1 that the real `stripe` SDK talks to over HTTP.

It checks what the SDK sends (form-encoded parameters, the secret key, an idempotency key on
every create), keeps payment intents, customers, SetupIntents and saved cards, prices,
subscriptions and their invoices (in the shapes of the SDK's API version: a subscription's
period on its item, an invoice's subscription under `parent`), and lets a test drive them
as Stripe would: succeed, decline, refund, go down, save a card (what Stripe.js does when
the user confirms a SetupIntent), refuse off-session charges, pay or fail an invoice, renew
a subscription at its period's end, end it. It also signs webhook payloads with Stripe's
real scheme.
"""

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from dateutil.relativedelta import relativedelta

from usercredits.services.clock import Clock, SystemClock

SECRET_KEY = "sk_test_fake"
WEBHOOK_SECRET = "whsec_test_fake"


def server_settings(api_base: str) -> dict[str, str]:
    """The settings of a server that takes payments through this fake at `api_base`."""
    return {
        "stripe_secret_key": SECRET_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": api_base,
    }


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe-Signature: t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<body>")."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{secrets.token_hex(8)}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()


def _after(anchor: int, recurring: dict[str, Any], times: int = 1) -> int:
    """The end of `times` periods of a price from its billing anchor (Unix times): Stripe
    counts every period from the anchor (Jan 31, Feb 28, Mar 31)."""
    unit, count = recurring["interval"], int(recurring["interval_count"])
    step = relativedelta(**{f"{unit}s": count * times})
    return int((datetime.fromtimestamp(anchor, UTC) + step).timestamp())


def _shown(invoice: dict[str, Any]) -> dict[str, Any]:
    """An invoice as Stripe shows it unexpanded: no confirmation secret."""
    return {k: v for k, v in invoice.items() if k != "secret"}


def _error(status: int, kind: str, message: str, code: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"type": kind, "message": message, "code": code}}, status=status
    )


class FakeStripe:
    def __init__(self) -> None:
        self.intents: dict[str, dict[str, Any]] = {}
        self.created_by_key: dict[str, dict[str, Any]] = {}
        self.create_requests: list[dict[str, str]] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.setup_intents: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, list[dict[str, Any]]] = {}
        """Saved cards (payment methods) per customer, newest first."""
        self.off_session_charges: list[dict[str, Any]] = []
        """Every off-session charge attempted (not replays of an idempotency key)."""
        self.lose_next_charge_answer = False
        """The next off-session charge is made, then Stripe goes down before answering."""
        self.lose_next_subscription_answer = False
        """The next subscription is made, then Stripe goes down before answering."""
        self.process_charges = False
        """Off-session charges stay `processing` (as bank debits do) until a test says."""
        self.refuse_charges: str | None = None
        """A decline code (card_declined, authentication_required): off-session charges
        are refused with it while set."""
        self.down = False
        self.decline_next_create = False
        self.clock: Clock = SystemClock()
        """Stripe's time: when subscriptions start (tests share their clock with it)."""
        self.prices: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.page_size = 100
        """The most a list answers at once, whatever limit is asked (Stripe's is 100)."""
        self.invoice_pages = 0
        """Pages of invoices listed."""
        self.app = web.Application(middlewares=[self._checks])
        self.app.router.add_post("/v1/prices", self._create_price)
        self.app.router.add_get("/v1/prices", self._list_prices)
        self.app.router.add_post("/v1/subscriptions", self._create_subscription)
        self.app.router.add_get("/v1/subscriptions/{id}", self._retrieve_subscription)
        self.app.router.add_post("/v1/subscriptions/{id}", self._update_subscription)
        self.app.router.add_delete("/v1/subscriptions/{id}", self._cancel_subscription)
        self.app.router.add_get("/v1/invoices", self._list_invoices)
        self.app.router.add_get("/v1/invoice_payments", self._list_invoice_payments)
        self.invoice_payments: list[dict[str, Any]] = []
        self.app.router.add_post("/v1/customers", self._create_customer)
        self.app.router.add_post("/v1/setup_intents", self._create_setup_intent)
        self.app.router.add_get("/v1/payment_methods", self._list_cards)
        self.app.router.add_post("/v1/payment_intents", self._create)
        self.app.router.add_get("/v1/payment_intents/{id}", self._retrieve)
        self.app.router.add_post("/v1/payment_intents/{id}/cancel", self._cancel)

    @web.middleware
    async def _checks(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return _error(503, "api_error", "Stripe is unavailable")
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        response: web.StreamResponse = await handler(request)
        return response

    async def _create(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.create_requests.append(form)
        if not key:
            return _error(400, "invalid_request_error", "an idempotency key is required here")
        if key in self.created_by_key:
            return web.json_response(self.created_by_key[key])
        if self.decline_next_create:
            self.decline_next_create = False
            return _error(402, "card_error", "Your card was declined.", "card_declined")
        amount = form.get("amount", "")
        currency = form.get("currency", "")
        if not amount.isdigit() or int(amount) < 1 or len(currency) != 3 or not currency.islower():
            return _error(400, "invalid_request_error", f"bad amount/currency: {form}")
        if currency in {"kwd", "bhd", "jod", "omr", "tnd"} and int(amount) % 10:
            return _error(400, "invalid_request_error", "amount must be a multiple of 10")
        if form.get("confirm") == "true" and form.get("off_session") == "true":
            return self._charge_off_session(key, form)
        intent = self._new_intent(form, status="requires_payment_method", amount_received=0)
        self.created_by_key[key] = intent
        return web.json_response(intent)

    def _new_intent(self, form: dict[str, str], **fields: Any) -> dict[str, Any]:
        """A payment intent for a create request's form, kept by id."""
        intent_id = f"pi_{secrets.token_hex(8)}"
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(6)}",
            "last_payment_error": None,
            "metadata": {
                "order_id": form.get("metadata[order_id]"),
                "user_id": form.get("metadata[user_id]"),
            },
            **fields,
        }
        self.intents[intent_id] = intent
        return intent

    def _charge_off_session(self, key: str, form: dict[str, str]) -> web.Response:
        customer, card = form.get("customer", ""), form.get("payment_method", "")
        if card not in {c["id"] for c in self.cards.get(customer, [])}:
            return _error(400, "invalid_request_error", f"{card} is not a card of {customer}")
        intent = self._new_intent(
            form,
            status="succeeded",
            amount_received=int(form["amount"]),
            customer=customer,
            payment_method=card,
        )
        self.off_session_charges.append(intent)
        if self.process_charges:
            intent.update(status="processing", amount_received=0)
        if self.refuse_charges is None:
            self.created_by_key[key] = intent
            if self.lose_next_charge_answer:
                self.lose_next_charge_answer = False
                self.down = True
                return _error(503, "api_error", "Stripe is unavailable")
            return web.json_response(intent)
        message = {
            "authentication_required": "This payment requires authentication.",
        }.get(self.refuse_charges, "Your card was declined.")
        intent.update(
            status="requires_payment_method",
            amount_received=0,
            last_payment_error={"code": self.refuse_charges, "message": message},
        )
        return web.json_response(
            {
                "error": {
                    "type": "card_error",
                    "code": self.refuse_charges,
                    "message": message,
                    "payment_intent": intent,
                }
            },
            status=402,
        )

    async def _create_customer(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return _error(400, "invalid_request_error", "an idempotency key is required here")
        if key in self.created_by_key:
            return web.json_response(self.created_by_key[key])
        form = {k: str(v) for k, v in (await request.post()).items()}
        customer = {
            "id": f"cus_{secrets.token_hex(7)}",
            "object": "customer",
            "metadata": {"user_id": form.get("metadata[user_id]")},
        }
        self.customers[customer["id"]] = customer
        self.created_by_key[key] = customer
        return web.json_response(customer)

    async def _create_setup_intent(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not request.headers.get("Idempotency-Key"):
            return _error(400, "invalid_request_error", "an idempotency key is required here")
        if form.get("customer") not in self.customers or form.get("usage") != "off_session":
            return _error(400, "invalid_request_error", f"bad SetupIntent: {form}")
        setup_id = f"seti_{secrets.token_hex(8)}"
        setup = {
            "id": setup_id,
            "object": "setup_intent",
            "customer": form["customer"],
            "usage": "off_session",
            "status": "requires_payment_method",
            "client_secret": f"{setup_id}_secret_{secrets.token_hex(6)}",
        }
        self.setup_intents[setup_id] = setup
        return web.json_response(setup)

    async def _list_cards(self, request: web.Request) -> web.Response:
        customer = request.query.get("customer", "")
        if customer not in self.customers or request.query.get("type") != "card":
            return _error(400, "invalid_request_error", f"bad list: {dict(request.query)}")
        return web.json_response(
            {
                "object": "list",
                "url": "/v1/payment_methods",
                "has_more": False,
                "data": self.cards.get(customer, []),
            }
        )

    async def _retrieve(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent")
        return web.json_response(intent)

    async def _cancel(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent")
        if intent["status"] == "succeeded":
            return _error(400, "invalid_request_error", "cannot cancel a succeeded intent")
        intent["status"] = "canceled"
        return web.json_response(intent)

    # -- prices, subscriptions, invoices ---------------------------------------------------

    async def _create_price(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not key:
            return _error(400, "invalid_request_error", "an idempotency key is required here")
        if key in self.created_by_key:
            return web.json_response(self.created_by_key[key])
        interval = form.get("recurring[interval]")
        if interval not in {"day", "week", "month", "year"} or not form.get("lookup_key"):
            return _error(400, "invalid_request_error", f"bad price: {form}")
        price = {
            "id": f"price_{secrets.token_hex(8)}",
            "object": "price",
            "active": True,
            "currency": form["currency"],
            "unit_amount": int(form["unit_amount"]),
            "recurring": {
                "interval": interval,
                "interval_count": int(form["recurring[interval_count]"]),
            },
            "lookup_key": form["lookup_key"],
            "product": f"prod_{secrets.token_hex(6)}",
            "metadata": {"offer_id": form.get("metadata[offer_id]")},
        }
        self.prices[price["id"]] = price
        self.created_by_key[key] = price
        return web.json_response(price)

    async def _list_prices(self, request: web.Request) -> web.Response:
        keys = {v for k, v in request.query.items() if k.startswith("lookup_keys[")}
        found = [p for p in self.prices.values() if p["lookup_key"] in keys and p["active"]]
        return web.json_response(
            {"object": "list", "url": "/v1/prices", "has_more": False, "data": found}
        )

    async def _create_subscription(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not key:
            return _error(400, "invalid_request_error", "an idempotency key is required here")
        if key in self.created_by_key:
            return self._subscription_answer(self.created_by_key[key], form)
        price = self.prices.get(form.get("items[0][price]", ""))
        if (
            price is None
            or form.get("customer") not in self.customers
            or form.get("payment_behavior") != "default_incomplete"
        ):
            return _error(400, "invalid_request_error", f"bad subscription: {form}")
        start = int(self.clock.now().timestamp())
        subscription: dict[str, Any] = {
            "id": f"sub_{secrets.token_hex(8)}",
            "object": "subscription",
            "customer": form["customer"],
            "status": "incomplete",
            "billing_cycle_anchor": start,
            "cancel_at_period_end": False,
            "metadata": {
                "plan_id": form.get("metadata[plan_id]"),
                "user_id": form.get("metadata[user_id]"),
            },
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_{secrets.token_hex(6)}",
                        "object": "subscription_item",
                        "price": price,
                        "quantity": int(form.get("items[0][quantity]", "1")),
                        "current_period_start": start,
                        "current_period_end": _after(start, price["recurring"]),
                    }
                ],
            },
            "latest_invoice": None,
        }
        self.subscriptions[subscription["id"]] = subscription
        self.created_by_key[key] = subscription
        self._invoice(subscription, "subscription_create")
        if self.lose_next_subscription_answer:
            self.lose_next_subscription_answer = False
            self.down = True
            return _error(503, "api_error", "Stripe is unavailable")
        return self._subscription_answer(subscription, form)

    def _subscription_answer(self, subscription: dict[str, Any], asked: Any) -> web.Response:
        """The subscription as Stripe sends it: its latest invoice an id, or the invoice
        with its confirmation secret when `expand` asks for it."""
        shown = dict(subscription)
        expand = {v for k, v in asked.items() if k.startswith("expand[")}
        if "latest_invoice.confirmation_secret" in expand:
            invoice = dict(self.invoices[subscription["latest_invoice"]])
            secret = invoice.pop("secret")
            invoice["confirmation_secret"] = {"client_secret": secret, "type": "payment_intent"}
            shown["latest_invoice"] = invoice
        return web.json_response(shown)

    def _invoice(self, subscription: dict[str, Any], reason: str) -> dict[str, Any]:
        """An open invoice for the subscription's current period: its latest."""
        [item] = subscription["items"]["data"]
        amount = item["price"]["unit_amount"] * item["quantity"]
        invoice_id = f"in_{secrets.token_hex(8)}"
        invoice = {
            "id": invoice_id,
            "object": "invoice",
            "status": "open",
            "billing_reason": reason,
            "created": item["current_period_start"],
            "customer": subscription["customer"],
            "currency": item["price"]["currency"],
            "amount_due": amount,
            "amount_paid": 0,
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "subscription": subscription["id"],
                    "metadata": subscription["metadata"],
                },
            },
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": f"il_{secrets.token_hex(6)}",
                        "object": "line_item",
                        "amount": amount,
                        "currency": item["price"]["currency"],
                        "period": {
                            "start": item["current_period_start"],
                            "end": item["current_period_end"],
                        },
                    }
                ],
            },
            "secret": f"pi_{secrets.token_hex(8)}_secret_{secrets.token_hex(6)}",
        }
        self.invoices[invoice_id] = invoice
        subscription["latest_invoice"] = invoice_id
        return invoice

    async def _retrieve_subscription(self, request: web.Request) -> web.Response:
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            return _error(404, "invalid_request_error", "No such subscription")
        return self._subscription_answer(subscription, request.query)

    async def _update_subscription(self, request: web.Request) -> web.Response:
        subscription = self.subscriptions.get(request.match_info["id"])
        form = {k: str(v) for k, v in (await request.post()).items()}
        if subscription is None:
            return _error(404, "invalid_request_error", "No such subscription")
        if subscription["status"] == "canceled":
            return _error(400, "invalid_request_error", "A canceled subscription can't be updated")
        subscription["cancel_at_period_end"] = form.get("cancel_at_period_end") == "true"
        return self._subscription_answer(subscription, form)

    async def _cancel_subscription(self, request: web.Request) -> web.Response:
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            return _error(404, "invalid_request_error", "No such subscription")
        subscription["status"] = "canceled"
        return self._subscription_answer(subscription, request.query)

    async def _list_invoices(self, request: web.Request) -> web.Response:
        """Newest first, `created[gte]` and `status` applied, in pages of at most
        `page_size` (`starting_after` the last id of the page before)."""
        query = request.query
        since = int(query.get("created[gte]", "0"))
        found = [
            _shown(invoice)
            for invoice in reversed(self.invoices.values())
            if invoice["parent"]["subscription_details"]["subscription"]
            == query.get("subscription")
            and invoice["status"] == query.get("status", invoice["status"])
            and invoice["created"] >= since
        ]
        after = query.get("starting_after")
        if after is not None:
            found = found[[i["id"] for i in found].index(after) + 1 :]
        size = min(int(query.get("limit", "10")), self.page_size)
        self.invoice_pages += 1
        return web.json_response(
            {
                "object": "list",
                "url": "/v1/invoices",
                "has_more": len(found) > size,
                "data": found[:size],
            }
        )

    async def _list_invoice_payments(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("payment[type]") != "payment_intent":
            return _error(400, "invalid_request_error", f"bad list: {dict(query)}")
        expand = {v for k, v in query.items() if k.startswith("expand[")}
        found = [
            {
                **paid,
                "invoice": (
                    _shown(self.invoices[paid["invoice"]])
                    if "data.invoice" in expand
                    else paid["invoice"]
                ),
            }
            for paid in self.invoice_payments
            if paid["payment"]["payment_intent"] == query.get("payment[payment_intent]")
        ]
        return web.json_response(
            {"object": "list", "url": "/v1/invoice_payments", "has_more": False, "data": found}
        )

    # -- what the card network and the dashboard do --------------------------------------

    def subscription_of(self, plan_id: str) -> dict[str, Any]:
        return next(s for s in self.subscriptions.values() if s["metadata"]["plan_id"] == plan_id)

    def latest_invoice(self, subscription: dict[str, Any]) -> dict[str, Any]:
        return self.invoices[subscription["latest_invoice"]]

    def pay(self, subscription: dict[str, Any]) -> bytes:
        """The latest invoice is paid (the user confirmed, or a retry succeeded): the
        subscription is active. The `invoice.paid` event's body."""
        invoice = self.latest_invoice(subscription)
        invoice.update(status="paid", amount_paid=invoice["amount_due"])
        subscription["status"] = "active"
        amount, currency = str(invoice["amount_due"]), invoice["currency"]
        intent = self._new_intent(
            {"amount": amount, "currency": currency},
            status="succeeded",
            amount_received=invoice["amount_due"],
        )
        self.invoice_payments.append(
            {
                "id": f"inpay_{secrets.token_hex(6)}",
                "object": "invoice_payment",
                "invoice": invoice["id"],
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
            }
        )
        return event("invoice.paid", _shown(invoice))

    def payment_of(self, invoice: dict[str, Any]) -> dict[str, Any]:
        """The payment intent that paid an invoice."""
        [paid] = [p for p in self.invoice_payments if p["invoice"] == invoice["id"]]
        return self.intents[paid["payment"]["payment_intent"]]

    def fail(self, subscription: dict[str, Any]) -> bytes:
        """The latest invoice's payment is refused: a renewal makes the subscription
        past due. The `invoice.payment_failed` event's body."""
        if subscription["status"] == "active":
            subscription["status"] = "past_due"
        return event("invoice.payment_failed", _shown(self.latest_invoice(subscription)))

    def renew(self, subscription: dict[str, Any]) -> bytes:
        """The period ended: the subscription moves to the next one with an open invoice,
        or ends if it was to cancel at period end. The event's body (the invoice is paid,
        or failed, by `pay` or `fail`)."""
        if subscription["cancel_at_period_end"]:
            return self.end(subscription)
        [item] = subscription["items"]["data"]
        periods = sum(
            i["parent"]["subscription_details"]["subscription"] == subscription["id"]
            and i["billing_reason"] != "subscription_update"
            for i in self.invoices.values()
        )
        item.update(
            current_period_start=item["current_period_end"],
            current_period_end=_after(
                subscription["billing_cycle_anchor"], item["price"]["recurring"], periods + 1
            ),
        )
        self._invoice(subscription, "subscription_cycle")
        return event("customer.subscription.updated", dict(subscription))

    def prorate(self, subscription: dict[str, Any]) -> bytes:
        """A paid proration invoice (a quantity changed in the dashboard): the
        `invoice.paid` event's body. It is not the latest invoice of a period."""
        latest = subscription["latest_invoice"]
        invoice = self._invoice(subscription, "subscription_update")
        subscription["latest_invoice"] = latest
        invoice.update(status="paid", amount_paid=invoice["amount_due"])
        return event("invoice.paid", _shown(invoice))

    def end(self, subscription: dict[str, Any]) -> bytes:
        subscription["status"] = "canceled"
        return event("customer.subscription.deleted", dict(subscription))

    def save_card(self, customer_id: str, last4: str = "4242", brand: str = "visa") -> str:
        """What Stripe.js does when the user confirms a SetupIntent: the card is saved to
        the customer (and used first). Its id."""
        card = {
            "id": f"pm_{secrets.token_hex(8)}",
            "object": "payment_method",
            "type": "card",
            "customer": customer_id,
            "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2040},
        }
        self.cards.setdefault(customer_id, []).insert(0, card)
        return str(card["id"])

    def intent_for(self, order_id: str) -> dict[str, Any]:
        return next(i for i in self.intents.values() if i["metadata"]["order_id"] == order_id)

    def succeed(self, intent: dict[str, Any], amount_received: int | None = None) -> None:
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"] if amount_received is None else amount_received

    def decline(self, intent: dict[str, Any]) -> None:
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {
            "code": "card_declined",
            "message": "Your card was declined.",
        }

    @staticmethod
    def refund_charge(intent: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"ch_{secrets.token_hex(6)}",
            "object": "charge",
            "payment_intent": intent["id"],
            "refunded": True,
            "amount_refunded": intent["amount"],
        }
