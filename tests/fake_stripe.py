"""A fake Stripe API on 127.0.0.1 that the real `stripe` SDK talks to over HTTP.

It checks what the SDK sends (form-encoded parameters, the secret key, an idempotency key on
every create), keeps payment intents, and lets a test drive them as Stripe would: succeed,
decline, refund, go down. It also signs webhook payloads with Stripe's real scheme.
"""

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from aiohttp import web

SECRET_KEY = "sk_test_fake"
WEBHOOK_SECRET = "whsec_test_fake"


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


def _error(status: int, kind: str, message: str, code: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"type": kind, "message": message, "code": code}}, status=status
    )


class FakeStripe:
    def __init__(self) -> None:
        self.intents: dict[str, dict[str, Any]] = {}
        self.created_by_key: dict[str, dict[str, Any]] = {}
        self.create_requests: list[dict[str, str]] = []
        self.down = False
        self.decline_next_create = False
        self.app = web.Application(middlewares=[self._checks])
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
        intent_id = f"pi_{secrets.token_hex(8)}"
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(amount),
            "amount_received": 0,
            "currency": currency,
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(6)}",
            "last_payment_error": None,
            "metadata": {
                "order_id": form.get("metadata[order_id]"),
                "user_id": form.get("metadata[user_id]"),
            },
        }
        self.intents[intent_id] = intent
        self.created_by_key[key] = intent
        return web.json_response(intent)

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

    # -- what the card network and the dashboard do --------------------------------------

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
