"""What every value read from a document has in common."""

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Stored(BaseModel):
    """A value read from a stored document, passed between layers in its place: frozen (no
    layer reassigns a field another reads), and with the document's `_id` as a string. It is
    built from the raw document (`_id`) or from a Beanie document (`id`)."""

    model_config = ConfigDict(
        frozen=True, validate_by_alias=True, validate_by_name=True, from_attributes=True
    )

    id: Annotated[str, BeforeValidator(str)] = Field(alias="_id")
