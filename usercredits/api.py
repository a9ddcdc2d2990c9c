"""The assembled GraphQL schema of the contract (../shared/contract.graphql and the
exported schema.graphql): the root types, each field wired to its resolver, with the
query limits and caches."""

import re
from collections.abc import Callable, Sequence
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from usercredits.resolvers import identity as identity_resolvers
from usercredits.resolvers import offers as offer_resolvers
from usercredits.resolvers import orders as order_resolvers
from usercredits.resolvers import plans as plan_resolvers
from usercredits.resolvers import sandbox as sandbox_resolvers
from usercredits.resolvers import subscriptions as subscription_resolvers
from usercredits.resolvers import topups as top_up_resolvers
from usercredits.resolvers import wallets as wallet_resolvers
from usercredits.resolvers import webhooks as webhook_resolvers
from usercredits.schema.cost import FieldCosts
from usercredits.schema.errors import apply_contract
from usercredits.schema.fanout import SharedResultsExecutor
from usercredits.schema.introspection import SignedInIntrospection
from usercredits.schema.limits import (
    DEFAULT_QUERY_LIMITS,
    DocumentGuard,
    Limits,
    TokenLimit,
    cached_validator,
)
from usercredits.schema.plans import SubscribePayload
from usercredits.schema.topups import AutoTopUp
from usercredits.schema.types import (
    ApiKey,
    BalanceEvent,
    CreatedApiKey,
    CreateOrderPayload,
    CreditWarning,
    LedgerConnection,
    LedgerEntry,
    Offer,
    Order,
    OrderConnection,
    Plan,
    Reservation,
    Wallet,
)
from usercredits.schema.webhooks import (
    AlertRule,
    CreatedWebhookEndpoint,
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookEndpoint,
)
from usercredits.services.orders.buying import MAX_PAGE as MAX_WALLET_ORDERS


@strawberry.type
class Query:
    offers: list[Offer] = strawberry.field(resolver=offer_resolvers.offers)
    offer: Offer | None = strawberry.field(resolver=offer_resolvers.offer)
    wallet: Wallet = strawberry.field(resolver=wallet_resolvers.wallet)
    order: Order | None = strawberry.field(resolver=order_resolvers.order)
    orders: OrderConnection = strawberry.field(resolver=order_resolvers.orders)
    ledger: LedgerConnection = strawberry.field(resolver=wallet_resolvers.ledger)
    credit_warnings: list[CreditWarning] = strawberry.field(
        resolver=wallet_resolvers.credit_warnings
    )
    api_keys: list[ApiKey] = strawberry.field(resolver=identity_resolvers.api_keys)
    webhook_endpoints: list[WebhookEndpoint] = strawberry.field(
        resolver=webhook_resolvers.webhook_endpoints
    )
    webhook_deliveries: WebhookDeliveryConnection = strawberry.field(
        resolver=webhook_resolvers.webhook_deliveries
    )
    alert_rules: list[AlertRule] = strawberry.field(resolver=webhook_resolvers.alert_rules)


SHORTFALL = (
    "When the group's spendable tokens cannot cover it: EXPIRED if the group has none left "
    "and tokens of it lapsed unspent since it was last credited (bought or granted), "
    "INSUFFICIENT_TOKENS otherwise, whether or not the expiry sweep has run."
)


@strawberry.type
class Mutation:
    create_order: CreateOrderPayload = strawberry.mutation(resolver=order_resolvers.create_order)
    refresh_order: Order = strawberry.mutation(resolver=order_resolvers.refresh_order)
    cancel_order: Order = strawberry.mutation(resolver=order_resolvers.cancel_order)
    consume_tokens: LedgerEntry = strawberry.mutation(
        resolver=wallet_resolvers.consume_tokens, description=SHORTFALL
    )
    reserve_tokens: Reservation = strawberry.mutation(
        resolver=wallet_resolvers.reserve_tokens, description=SHORTFALL
    )
    commit_reservation: LedgerEntry = strawberry.mutation(
        resolver=wallet_resolvers.commit_reservation,
        description="Debit `tokens` (at most the reserved amount) and release the rest, in one "
        "entry: `released` is the hold given back, `tokens` what was spent of it. EXPIRED past "
        "the reservation's ttl.",
    )
    release_reservation: Reservation = strawberry.mutation(
        resolver=wallet_resolvers.release_reservation
    )
    upsert_offer: Offer = strawberry.mutation(
        resolver=offer_resolvers.upsert_offer,
        description="Admin. Creates an offer, or updates one: the offer of `input.id`, else "
        "the offer that has `input.key` (created with that key when none has it).",
    )
    archive_offer: Offer = strawberry.mutation(resolver=offer_resolvers.archive_offer)
    grant_tokens: LedgerEntry = strawberry.mutation(resolver=wallet_resolvers.grant_tokens)
    create_api_key: CreatedApiKey = strawberry.mutation(resolver=identity_resolvers.create_api_key)
    revoke_api_key: ApiKey = strawberry.mutation(resolver=identity_resolvers.revoke_api_key)
    create_webhook_endpoint: CreatedWebhookEndpoint = strawberry.mutation(
        resolver=webhook_resolvers.create_webhook_endpoint
    )
    update_webhook_endpoint: WebhookEndpoint = strawberry.mutation(
        resolver=webhook_resolvers.update_webhook_endpoint
    )
    delete_webhook_endpoint: WebhookEndpoint = strawberry.mutation(
        resolver=webhook_resolvers.delete_webhook_endpoint
    )
    redeliver_webhook: WebhookDelivery = strawberry.mutation(
        resolver=webhook_resolvers.redeliver_webhook
    )
    set_alert_rule: AlertRule = strawberry.mutation(resolver=webhook_resolvers.set_alert_rule)
    setup_payment_method: str = strawberry.mutation(
        resolver=top_up_resolvers.setup_payment_method,
        description="A Stripe SetupIntent's client secret, for the front end to save a card "
        "for off-session use.",
    )
    set_auto_top_up: AutoTopUp = strawberry.mutation(resolver=top_up_resolvers.set_auto_top_up)
    subscribe: SubscribePayload = strawberry.mutation(resolver=plan_resolvers.subscribe)
    cancel_plan: Plan = strawberry.mutation(
        resolver=plan_resolvers.cancel_plan,
        description="Stops renewal: at the end of the paid period (default), or now (no "
        "refund of the period).",
    )
    resume_plan: Plan = strawberry.mutation(resolver=plan_resolvers.resume_plan)
    refresh_plan: Plan = strawberry.mutation(resolver=plan_resolvers.refresh_plan)


@strawberry.type
class SandboxMutation(Mutation):
    complete_sandbox_payment: Order = strawberry.mutation(
        resolver=sandbox_resolvers.complete_sandbox_payment
    )


@strawberry.type
class Subscription:
    # A subscription field's resolver yields values of the field's type; mypy sees the
    # generator instead, hence the ignores.
    balance_changed: BalanceEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=subscription_resolvers.balance_changed
    )
    order_updated: Order = strawberry.subscription(  # type: ignore[assignment]
        resolver=subscription_resolvers.order_updated
    )
    plan_updated: Plan = strawberry.subscription(  # type: ignore[assignment]
        resolver=subscription_resolvers.plan_updated
    )


COSTS = FieldCosts(
    provider=frozenset(
        {
            "Wallet.paymentMethods",
            "Mutation.createOrder",
            "Mutation.refreshOrder",
            "Mutation.cancelOrder",
            "Mutation.setupPaymentMethod",
            "Mutation.subscribe",
            "Mutation.cancelPlan",
            "Mutation.resumePlan",
            "Mutation.refreshPlan",
        }
    ),
    list_sizes={"Wallet.orders": MAX_WALLET_ORDERS},
)
"""The fields whose resolvers may call the payment provider, and the lists known to be long,
for the price of an operation (schema/cost.py)."""

SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class CreditsSchema(strawberry.Schema):
    suggestions = True
    """Whether error messages keep graphql-core's "Did you mean ...?" hints, which would
    otherwise let an anonymous caller map the schema field by field."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Gives each error its contract code before it is sent (subscriptions' errors reach
        clients only through here). Domain and input errors are answers, not faults;
        `apply_contract` logs the unexpected ones with the request id."""
        request_id = getattr(getattr(execution_context, "context", None), "request_id", "")
        for error in errors:
            apply_contract(error, request_id)
            if not self.suggestions:
                error.message = SUGGESTION.sub("", error.message)


Extension = type[SchemaExtension] | Callable[[], SchemaExtension]


def build_schema(
    *,
    limits: Limits = DEFAULT_QUERY_LIMITS,
    sandbox: bool = False,
    anonymous_introspection: bool = True,
    suggestions: bool = True,
    extensions: Sequence[Extension] = (),
) -> strawberry.Schema:
    """The contract's schema; with `sandbox`, also the sandbox-only payment mutation.
    `extensions` (classes or factories) run first, around the limits and caches."""
    validator = cached_validator(limits, COSTS)
    everything: list[Extension] = [
        *extensions,
        partial(TokenLimit, max_tokens=limits.max_tokens),
        partial(ParserCache, maxsize=1000),
        partial(DocumentGuard, limits=limits, validator=validator),
    ]
    if not anonymous_introspection:
        everything.append(SignedInIntrospection)
    schema = CreditsSchema(
        query=Query,
        mutation=SandboxMutation if sandbox else Mutation,
        subscription=Subscription,
        extensions=everything,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=SharedResultsExecutor,
    )
    schema.suggestions = suggestions
    unknown = COSTS.unknown(schema._schema)
    if unknown:
        raise ValueError(f"the field costs name fields the schema lacks: {', '.join(unknown)}")
    return schema
