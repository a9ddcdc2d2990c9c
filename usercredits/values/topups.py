"""Auto top-up rules as the layers pass them: a user's rule for one offer group."""

from datetime import datetime

from pydantic import BaseModel

from usercredits.values.offers import Price
from usercredits.values.stored import Stored


class AutoTopUpFields(BaseModel):
    user_id: str
    offer_group: str
    offer_id: str
    quantity: int
    threshold: int
    max_per_month: int
    max_amount_per_month: Price | None = None
    """The rule's own cap on what its top-ups charge in a calendar month (UTC), below the
    service's; None: the service's."""
    enabled: bool
    set_by: str | None = None
    """Who set the rule: the user's id, a service's or admin's, or `apikey:<id>` (None for a
    rule set before this was recorded)."""
    last_attempt_at: datetime | None = None
    last_order_id: str | None = None
    last_error: str | None = None


class AutoTopUp(Stored, AutoTopUpFields):
    """A rule as it stood when read."""
