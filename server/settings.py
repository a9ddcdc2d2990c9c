"""Service settings, read once from `USERCREDITS_*` environment variables and passed down.

Tests build `Settings(...)` with keyword arguments instead of touching the environment.
"""

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.errors import InvalidInput
from services.money import normalize_currency

LOCAL_JWT_SECRET = "insecure-local-secret-change-it-in-production"


class Settings(BaseSettings):
    # An empty variable (as in a copied .env.example) means unset, not the empty string.
    model_config = SettingsConfigDict(
        env_prefix="USERCREDITS_", extra="ignore", env_ignore_empty=True
    )

    mongodb_uri: str | None = None
    """A MongoDB replica set; unset: an embedded SecantusDB is started in `data_dir`."""
    database: str = "usercredits"
    database_timeout_ms: int = Field(default=5000, ge=100)
    """How long a request waits for an unreachable database before it fails."""
    default_currency: str = "USD"
    data_dir: Path = Path(".usercredits-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    production: bool = False
    """Refuse to start with settings only fit for a laptop (the default JWT secret)."""
    jwt_secret: str = Field(default=LOCAL_JWT_SECRET, min_length=32)
    """HS256 secret of the JWTs; the default is for local runs only."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Origins allowed to open websockets (empty: any; set it in production)."""
    max_query_depth: int = Field(default=10, ge=2)
    max_query_tokens: int = Field(default=2000, ge=50)
    max_query_aliases: int = Field(default=15, ge=1)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    ws_heartbeat_seconds: float = Field(default=20.0, gt=0)
    """Websocket pings, so that idle connections survive proxies."""
    stripe_secret_key: str | None = None
    """Set: payments go through Stripe; unset: the sandbox provider (no money moves)."""
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    """Stripe's API address; tests point it at their fake server."""
    seed_catalogue: Path | None = None
    """A catalogue file loaded at start when the catalogue is empty (`make run` sets it)."""
    sweep_interval_seconds: int = Field(default=60, ge=0)
    """How often the server runs the expiry sweep (one instance at a time); 0: never."""
    pending_reconcile_seconds: int = Field(default=900, ge=0)
    """The sweep refreshes pending orders older than this from the payment provider."""

    @model_validator(mode="after")
    def _production_needs_a_jwt_secret(self) -> "Settings":
        if self.production and self.jwt_secret == LOCAL_JWT_SECRET:
            raise ValueError(
                "USERCREDITS_PRODUCTION is on but USERCREDITS_JWT_SECRET is not "
                "set: set a random secret of at least 32 characters"
            )
        return self

    @model_validator(mode="after")
    def _stripe_needs_its_webhook_secret(self) -> "Settings":
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            raise ValueError(
                "USERCREDITS_STRIPE_SECRET_KEY is set without "
                "USERCREDITS_STRIPE_WEBHOOK_SECRET: webhooks could not be verified"
            )
        return self

    @field_validator("default_currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            return normalize_currency(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
