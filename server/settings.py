"""Service settings, read once from `USERCREDITS_*` environment variables and passed down.

Tests build `Settings(...)` with keyword arguments instead of touching the environment.
"""

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.errors import InvalidInput
from services.money import normalize_currency


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="USERCREDITS_", extra="ignore")

    mongodb_uri: str | None = None
    """A MongoDB replica set; unset: an embedded SecantusDB is started in `data_dir`."""
    database: str = "usercredits"
    default_currency: str = "USD"
    data_dir: Path = Path(".usercredits-data")

    @field_validator("default_currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            return normalize_currency(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
