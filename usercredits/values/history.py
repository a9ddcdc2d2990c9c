"""The one shape of a record's history (an order's, a plan's): each status it reached, when,
and why."""

from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel

S = TypeVar("S", bound=StrEnum)


class StatusChange(BaseModel, Generic[S]):
    """A status the record reached, when, and why (`StatusChange[OrderStatus]`, ...)."""

    at: datetime
    status: S
    message: str
