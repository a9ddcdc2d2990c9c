"""Standard Webhooks signatures (https://www.standardwebhooks.com) and the retry schedule.

A secret is `whsec_` and the base64 of 32 random bytes. Each attempt is signed over
`{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under the decoded secret and
sent as `v1,<base64>`. The id is the event's, the same at every attempt, so a receiver
drops a repeat by it; the timestamp is the attempt's, so a receiver can refuse replays.
"""

import base64
import hashlib
import hmac
import random
import secrets
from collections.abc import Mapping
from datetime import timedelta

SECRET_PREFIX = "whsec_"
RETRY_FOR = timedelta(days=3)
"""How long a delivery is retried, and how long an endpoint may fail before it is
disabled."""
RETRY_GROWTH = 4
RETRY_CAP = timedelta(hours=8)
JITTER = 0.25


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_headers(*, secret: str, event_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers of one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{event_id}.{timestamp}.{body}".encode()
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{digest}",
    }


TOLERANCE_SECONDS = 300


class BadSignature(ValueError):
    """A delivery whose signature or timestamp does not hold."""


def verify(*, secret: str, headers: Mapping[str, str], body: str, now: float) -> None:
    """Checks a delivery as a receiver should: one of its `v1` signatures is this body's
    under `secret`, and its timestamp is within TOLERANCE_SECONDS of `now`."""
    try:
        event_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        sent = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        raise BadSignature("missing or malformed webhook headers") from None
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature(f"timestamp {timestamp} is too far from now")
    expected = signature_headers(secret=secret, event_id=event_id, timestamp=timestamp, body=body)
    if not any(hmac.compare_digest(s, expected["webhook-signature"]) for s in sent):
        raise BadSignature("no signature matches")


def retry_delay(attempts: int, base_seconds: float, rng: random.Random | None = None) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: about `base_seconds` after
    the first, RETRY_GROWTH times longer after each next one up to RETRY_CAP, each spread
    by ±JITTER so that an endpoint coming back is not hit by its whole backlog at once."""
    draw = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    growth = RETRY_GROWTH ** min(max(attempts - 1, 0), 32)
    seconds = min(base_seconds * growth, RETRY_CAP.total_seconds())
    return timedelta(seconds=seconds * draw)
