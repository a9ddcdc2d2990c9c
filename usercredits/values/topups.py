"""Auto top-up rules as the layers pass them: a user's rule for one offer group."""

from datetime import datetime

from pydantic import BaseModel

from usercredits.values.stored import Stored


class AutoTopUpFields(BaseModel):
    user_id: str
    offer_group: str
    offer_id: str
    quantity: int
    threshold: int
    max_per_month: int
    enabled: bool
    last_attempt_at: datetime | None = None
    last_order_id: str | None = None
    last_error: str | None = None


class AutoTopUp(Stored, AutoTopUpFields):
    """A rule as it stood when read."""
