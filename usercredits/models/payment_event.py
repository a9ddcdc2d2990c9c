"""Payment provider events already applied: a replayed or duplicated delivery is
acknowledged and ignored."""

from datetime import datetime

from beanie import Document


class ProcessedEvent(Document):
    """The provider's event id is the document id, so recording one is idempotent."""

    id: str  # type: ignore[assignment]
    type: str
    payment_id: str | None = None
    outcome: str
    processed_at: datetime

    class Settings:
        name = "payment_events"
