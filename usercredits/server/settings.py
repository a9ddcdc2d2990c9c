"""Service settings, read once from `USERCREDITS_*` environment variables and passed down.

Tests build `Settings(...)` with keyword arguments instead of touching the environment.
"""

from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from usercredits.server.auth import TokenRules
from usercredits.server.embedded import JOIN_SECONDS
from usercredits.server.oidc import OidcRules
from usercredits.services.errors import InvalidInput
from usercredits.services.money import normalize_currency
from usercredits.services.topups.auto import MAX_AMOUNT, MAX_AMOUNT_PER_MONTH, TopUpCaps

LOCAL_JWT_SECRET = "insecure-local-secret-change-it-in-production"
PUBLIC_JWT_SECRETS = frozenset({LOCAL_JWT_SECRET})
"""JWT secrets anyone can read (in this code or its documentation): production refuses
them even when set explicitly."""


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
    embedded_join_seconds: float = Field(default=JOIN_SECONDS, gt=0, le=600)
    """How long a command waits for the server holding the data folder's embedded database
    to answer before it gives up (that server may be starting)."""
    allow_embedded_in_production: bool = False
    """Production refuses the embedded database (one process on this machine, no copy of
    the data) unless this is on."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int | None = Field(default=None, ge=1, le=256)
    """Server processes sharing the port (`serve --workers`); unset: one per core (one with
    the sandbox provider, whose payments live in one process's memory)."""
    production: bool = False
    """Refuse to start with settings only fit for a laptop (the default JWT secret)."""
    jwt_secret: str | None = Field(default=None, min_length=32)
    """HS256 secret of the JWTs. Unset: a local-only default, or, with an OpenID Connect
    provider configured, no HS256 tokens at all."""
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(default_factory=list)
    """Proxies (addresses or networks) whose X-Forwarded-For names the caller's address;
    empty: the connection's address is the caller's."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Origins allowed to open websockets (empty: any; set it in production)."""
    max_query_depth: int = Field(default=10, ge=2)
    max_query_tokens: int = Field(default=2000, ge=50)
    max_query_aliases: int = Field(default=15, ge=1)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    ws_heartbeat_seconds: float = Field(default=20.0, gt=0)
    """Websocket pings, so that idle connections survive proxies."""
    jwt_require_exp: bool = True
    """Refuse tokens without `exp`; turn off only for hand-made local tokens."""
    jwt_audience: str | None = None
    """Set: tokens must carry this `aud`."""
    jwt_issuer: str | None = None
    """Set: tokens must carry this `iss`."""
    oidc_issuer: str | None = None
    """Set: tokens of this OpenID Connect provider are accepted (server/oidc.py)."""
    oidc_audience: str | None = None
    """The `aud` the provider's tokens must carry (required with an issuer)."""
    oidc_jwks_url: str | None = None
    """Unset: discovered from the issuer's /.well-known/openid-configuration."""
    oidc_user_claim: str = "sub"
    oidc_roles_claim: str | None = None
    """The claim (a name, or a dotted path such as realm_access.roles) that lists roles."""
    oidc_refetch_seconds: float = Field(default=60.0, gt=0)
    """A token with an unknown key id makes the provider's keys be fetched again, at most
    this often."""
    rate_limit_per_second: float = Field(default=20.0, ge=0)
    """Requests per second each caller (user, API key, or anonymous address) may keep up,
    counted per instance (server/ratelimit.py); 0 turns rate limits off."""
    rate_limit_burst: int = Field(default=200, ge=1)
    """Requests a caller may send at once before the rate applies."""
    api_key_pepper: str | None = None
    """Key of the hash under which API keys are stored; set it in production and keep it
    outside the database. Changing it invalidates every key."""
    graphiql: bool | None = None
    """Serve GraphiQL at /graphql to browsers; unset: on, except in production."""
    anonymous_introspection: bool | None = None
    """Answer introspection without credentials; unset: yes, except in production."""
    field_suggestions: bool | None = None
    """'Did you mean ...' in error messages; unset: on, except in production."""
    metrics_token: str | None = None
    """Set: /metrics answers only `Authorization: Bearer <this token>`."""
    max_expanded_fields: int = Field(default=1000, ge=10)
    """Fields one document may select once its fragments are expanded."""
    validation_budget_ms: int = Field(default=500, ge=10)
    """CPU time parsing and validating one document may take."""
    max_query_cost: int = Field(default=10_000, ge=100)
    """What one operation may cost before it runs: each field once per item of the lists
    around it (a connection's `first`, another list's 10)."""
    max_provider_calls: int = Field(default=3, ge=1)
    """Fields calling the payment provider (createOrder, wallet.paymentMethods...) that one
    operation may select."""
    max_operations_in_flight: int = Field(default=8, ge=0)
    """Operations each caller may have running at once, per instance, costing together at
    most `max_query_cost`; 0: no bound."""
    max_sockets_per_user: int = Field(default=100, ge=0)
    """Websockets each user (or API key) may hold open, per instance; 0: no cap."""
    max_sockets_per_address: int = Field(default=200, ge=0)
    """Websockets each address may hold open, per instance; 0: no cap."""
    max_key_length: int = Field(default=200, ge=8)
    max_group_length: int = Field(default=200, ge=8)
    max_note_length: int = Field(default=500, ge=0)
    max_response_bytes: int = Field(default=4_000_000, ge=10_000)
    """A larger GraphQL response is replaced by an error asking for smaller pages."""
    request_body_seconds: float = Field(default=10.0, gt=0)
    """A request body must have arrived within this time of its headers."""
    max_pending_orders: int = Field(default=20, ge=1)
    """Pending orders per user; a new one cancels the oldest beyond this."""
    top_up_max_amount: Decimal = Field(default=Decimal(MAX_AMOUNT), gt=0)
    """The most one auto top-up may charge a card, in the default currency."""
    top_up_max_amount_per_month: Decimal = Field(default=Decimal(MAX_AMOUNT_PER_MONTH), gt=0)
    """The most one auto top-up rule may charge in a calendar month (UTC), in the default
    currency; a rule may set less (maxAmountPerMonth)."""
    payments: Literal["stripe", "sandbox"] | None = None
    """The payment provider; unset: Stripe when a secret key is set, else the sandbox."""
    stripe_secret_key: str | None = None
    """Set: payments go through Stripe; unset: the sandbox provider (no money moves)."""
    stripe_webhook_secret: str | None = None
    stripe_publishable_key: str | None = None
    """Stripe.js's test key (pk_test_...), handed to the demo page only, which pays with
    Stripe's test card."""
    stripe_api_base: str | None = None
    """Stripe's API address; tests point it at their fake server."""
    seed_catalogue: Path | None = None
    """A catalogue file loaded at start when the catalogue is empty (`make run` sets it)."""
    sweep_interval_seconds: int = Field(default=60, ge=0)
    """How often the server runs the expiry sweep (one instance at a time); 0: never."""
    pending_reconcile_seconds: int = Field(default=900, ge=0)
    """The sweep refreshes pending orders older than this from the payment provider."""
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    """About how long after a failed delivery it is tried again; each next wait is four
    times longer (up to 8 hours), for three days."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long a receiver has to answer one delivery."""
    webhook_concurrency: int = Field(default=16, ge=1)
    """Deliveries in flight per server process."""
    webhook_poll_seconds: float = Field(default=2.0, gt=0)
    """How often an idle process looks for due deliveries (those its own relay makes are
    sent at once). Each look costs the database a command and the server memory: looking
    every 0.5 s made idle subscriptions measure 0.3 KB larger each."""
    webhook_relay_seconds: float = Field(default=1.0, gt=0)
    """How often the relay checks its lease and whether any endpoint is enabled."""
    webhook_expiring_scan_seconds: float = Field(default=60.0, gt=0)
    """How often lots about to expire are looked for (tokens.expiring)."""
    demo: bool = False
    """Serve the demo page at / and sign in demo users without a password (`make run`
    turns it on; refused in production)."""

    @model_validator(mode="after")
    def _production_needs_a_jwt_secret(self) -> "Settings":
        if self.production and self.jwt_secret is None and self.oidc_issuer is None:
            raise ValueError(
                "USERCREDITS_PRODUCTION is on but neither USERCREDITS_JWT_SECRET nor "
                "USERCREDITS_OIDC_ISSUER is set: set a random secret of at least 32 "
                "characters, or your identity provider"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_a_secret_jwt_secret(self) -> "Settings":
        if self.production and self.jwt_secret in PUBLIC_JWT_SECRETS:
            raise ValueError(
                "USERCREDITS_PRODUCTION is on but USERCREDITS_JWT_SECRET is a value "
                "published with this service, so anyone could sign tokens: set a random "
                "secret of at least 32 characters"
            )
        return self

    @model_validator(mode="after")
    def _oidc_needs_an_audience(self) -> "Settings":
        if self.oidc_issuer is not None and not self.oidc_audience:
            raise ValueError(
                "USERCREDITS_OIDC_ISSUER is set but USERCREDITS_OIDC_AUDIENCE is not: a "
                "provider's tokens are accepted only for this service's audience"
            )
        return self

    @model_validator(mode="after")
    def _production_takes_real_payments(self) -> "Settings":
        if self.production and self.provider == "sandbox":
            raise ValueError(
                "USERCREDITS_PRODUCTION is on but payments would use the SANDBOX, where "
                "anyone completes their own payment: set USERCREDITS_STRIPE_SECRET_KEY and "
                "USERCREDITS_STRIPE_WEBHOOK_SECRET (and leave USERCREDITS_PAYMENTS unset or "
                "'stripe')"
            )
        return self

    @model_validator(mode="after")
    def _no_demo_in_production(self) -> "Settings":
        if self.production and self.demo:
            raise ValueError(
                "USERCREDITS_DEMO and USERCREDITS_PRODUCTION are both on: the demo signs "
                "anyone in as a demo user; turn it off"
            )
        if self.demo and self.token_rules is None:
            raise ValueError(
                "USERCREDITS_DEMO is on but only the OpenID Connect provider's tokens are "
                "accepted: the demo signs its users in with HS256 tokens "
                "(set USERCREDITS_JWT_SECRET too)"
            )
        return self

    @model_validator(mode="after")
    def _stripe_needs_its_key(self) -> "Settings":
        if self.payments == "stripe" and not self.stripe_secret_key:
            raise ValueError(
                "USERCREDITS_PAYMENTS is 'stripe' but USERCREDITS_STRIPE_SECRET_KEY is not set"
            )
        return self

    @property
    def token_rules(self) -> TokenRules | None:
        """The HS256 rules; None when only the provider's tokens are accepted."""
        if self.jwt_secret is None and self.oidc_issuer is not None:
            return None
        return TokenRules(
            secret=self.jwt_secret or LOCAL_JWT_SECRET,
            require_exp=self.jwt_require_exp,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
        )

    @property
    def oidc_rules(self) -> OidcRules | None:
        if self.oidc_issuer is None or self.oidc_audience is None:
            return None
        return OidcRules(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            jwks_url=self.oidc_jwks_url,
            user_claim=self.oidc_user_claim,
            roles_claim=self.oidc_roles_claim,
            refetch_seconds=self.oidc_refetch_seconds,
        )

    @property
    def top_up_caps(self) -> TopUpCaps:
        """What auto top-ups may charge, as the services take it."""
        return TopUpCaps.of(
            self.default_currency,
            str(self.top_up_max_amount),
            str(self.top_up_max_amount_per_month),
        )

    @model_validator(mode="after")
    def _top_up_caps_are_amounts(self) -> "Settings":
        try:
            self.top_up_caps  # noqa: B018  # each amount fits the default currency
        except InvalidInput as exc:
            raise ValueError(f"USERCREDITS_TOP_UP_MAX_AMOUNT(_PER_MONTH): {exc.message}") from None
        return self

    @property
    def provider(self) -> Literal["stripe", "sandbox"]:
        """The payment provider these settings choose."""
        if self.payments is not None:
            return self.payments
        return "stripe" if self.stripe_secret_key else "sandbox"

    def production_warnings(self) -> list[str]:
        """What production leaves open unless it is set, one sentence each, for `serve` to
        log at start; none outside production."""
        if not self.production:
            return []
        risks = {
            "USERCREDITS_METRICS_TOKEN": (
                self.metrics_token is None,
                "/metrics answers anyone who reaches it; set a token or keep /metrics off "
                "public networks",
            ),
            "USERCREDITS_API_KEY_PEPPER": (
                self.api_key_pepper is None,
                "API keys are hashed without a key, so a copy of the database is enough to "
                "check a leaked key against them",
            ),
            "USERCREDITS_ALLOWED_ORIGINS": (
                not self.allowed_origins,
                "any web page may open a websocket to the API",
            ),
        }
        return [f"{name} is not set: {risk}" for name, (unset, risk) in risks.items() if unset]

    def open_by_default(self, setting: bool | None) -> bool:
        """A developer convenience (GraphiQL, introspection, suggestions): as set, else on
        for a laptop and off in production."""
        return not self.production if setting is None else setting

    @model_validator(mode="after")
    def _stripe_needs_its_webhook_secret(self) -> "Settings":
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            raise ValueError(
                "USERCREDITS_STRIPE_SECRET_KEY is set without "
                "USERCREDITS_STRIPE_WEBHOOK_SECRET: webhooks could not be verified"
            )
        return self

    @model_validator(mode="after")
    def _production_runs_on_mongodb(self) -> "Settings":
        # Last: the settings a laptop lacks are named first.
        if self.production and self.mongodb_uri is None and not self.allow_embedded_in_production:
            raise ValueError(
                "USERCREDITS_PRODUCTION is on but USERCREDITS_MONGODB_URI is not set, so the "
                "embedded SecantusDB would hold the data, in one process on this machine: set "
                "your MongoDB replica set's URI, or USERCREDITS_ALLOW_EMBEDDED_IN_PRODUCTION="
                "true to run on the embedded database anyway"
            )
        return self

    @field_validator("default_currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            return normalize_currency(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
