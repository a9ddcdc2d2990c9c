"""Plans as the layers pass them: a SUBSCRIPTION offer bought to renew every cycle through
the payment provider's subscription, with its current period and status history."""

from datetime import datetime

from pydantic import Field

from usercredits.values.enums import PlanStatus
from usercredits.values.history import StatusChange
from usercredits.values.orders import Purchase
from usercredits.values.stored import Stored


class PlanFields(Purchase):
    """A plan's purchase is one period's: its tokens and price, fixed when subscribed."""

    status: PlanStatus
    subscription_id: str | None = None
    """The provider's subscription; None until it is made."""
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    idempotency_key: str | None = None
    created_at: datetime
    updated_at: datetime
    refresh_after: datetime | None = None
    """When the sweep asks the provider about the plan if no webhook came (a period ended
    without news); None once it is canceled."""
    revision: int = 0
    """Bumped by every write: an update from a stale read of the provider loses the race."""
    history: list[StatusChange[PlanStatus]] = Field(default_factory=list)


class Plan(Stored, PlanFields):
    """A plan as it stood when read."""
