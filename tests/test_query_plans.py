"""Every query the service sends on its paths is answered from an index.

A query that walks its collection costs nothing on a test database and seconds on a real
one, and the embedded database's planner scans where mongod would not (a partial index, or
`$in`s over two fields of a compound one, are never used): a key lookup of the ledger once
scanned the whole ledger on every batch of debits. So the flows below run through the
services on a client that records each command, and each recorded filter is explained:
none may plan a collection scan. findAndModify, which the embedded database runs as a scan
whatever its filter, may not be sent at all.

On a cluster sharded by `user_id` (README, "Scaling out"), a query reaches only the shards
of the users it names: there, every query of the wallet's paths names its users, and every
unique index of a user's documents starts with `user_id` (read from the index specs).
"""

import copy
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from tests.support import FakeClock, make_offer
from tests.support import buy as buy_offer
from usercredits.models import ALL_DOCUMENTS, RETIRED_INDEXES, LedgerEntryDocument
from usercredits.server.database import init_models, is_sharded
from usercredits.services import Services, build_services
from usercredits.services.identity.access import Principal, Role
from usercredits.services.payments import SandboxPaymentClient, WebhookEvent
from usercredits.services.provider_events import handle_provider_event
from usercredits.services.sweep import expire_due
from usercredits.values import CombinedItem, Cycle, OfferKind, OrderStatus

FILTERED = {"find": "filter", "count": "query", "distinct": "query"}
"""Commands with one filter, and where it is."""


class Recorder(monitoring.CommandListener):
    """Every query a client sends: (collection, filter, sort)."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        self.refused: list[str] = []
        self.in_transactions: list[str] = []
        """Commands sent inside a multi-document transaction."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command, name = event.command, event.command_name
        if command.get("autocommit") is False:
            self.in_transactions.append(name)
        if name == "findAndModify":
            self.refused.append(f"findAndModify on {command[name]}")
        elif name in FILTERED:
            self.queries.append((command[name], copy.deepcopy(command.get(FILTERED[name], {})),
                                 copy.deepcopy(command.get("sort"))))  # fmt: skip
        elif name in ("update", "delete"):
            part = "updates" if name == "update" else "deletes"
            for statement in command.get(part, []):
                self.queries.append((command[name], copy.deepcopy(statement["q"]), None))
        elif name == "aggregate":
            first = (command.get("pipeline") or [{}])[0]
            if "$match" in first:
                self.queries.append((command[name], copy.deepcopy(first["$match"]), None))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def recorded(
    mongo: AsyncMongoClient[Any], database_uri: str, database_name: str
) -> AsyncIterator[tuple[Recorder, AsyncMongoClient[Any]]]:
    recorder = Recorder()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        database_uri, tz_aware=True, event_listeners=[recorder]
    )
    await init_models(client, database_name)
    recorder.queries.clear()
    yield recorder, client
    await client.close()
    # Beanie binds documents process-wide: give them back to the session's client.
    await init_models(mongo, database_name)


def _by_id(query: dict[str, Any]) -> bool:
    """An `_id` equality: the embedded database's executor answers it from the `_id` index
    whatever else the filter says, though its explain says COLLSCAN (measured: a
    compare-and-set on `_id` and `seq` costs what an update by `_id` alone does)."""
    return "_id" in query and not isinstance(query["_id"], dict)


def _scans(plan: dict[str, Any]) -> bool:
    if plan.get("stage") == "COLLSCAN":
        return True
    children = [plan.get("inputStage"), *plan.get("inputStages", [])]
    return any(_scans(child) for child in children if child)


async def _every_path(services: Services, sandbox: SandboxPaymentClient, clock: FakeClock) -> None:
    """Each path a request or the sweep takes, once, with idempotency keys and replays."""
    wallets, orders, plans = services.wallets, services.orders, services.plans
    offer = await make_offer(services)
    chat = await make_offer(services, name="chat", offer_group="chat", cycle=Cycle.ONCE)
    await wallets.grant(user_id="u1", offer_group="pro", tokens=50, idempotency_key="g1")
    await wallets.grant(
        user_id="u1", offer_group="pro", tokens=5, idempotency_key="g2",
        expires=clock.now() + timedelta(hours=1), priority=10,
    )  # fmt: skip
    for _ in range(2):  # the second is a replay
        await wallets.consume(user_id="u1", offer_group="pro", tokens=3, idempotency_key="c1")
    held = await wallets.reserve(
        user_id="u1", offer_group="pro", tokens=4, idempotency_key="r1", ttl_seconds=60
    )
    await wallets.commit_reservation(reservation_id=str(held.id), tokens=2)
    await wallets.reservation(reservation_id=str(held.id))
    await wallets.reserve(  # left held: the sweep gives it back once its ttl has passed
        user_id="u1", offer_group="pro", tokens=1, idempotency_key="r2", ttl_seconds=30
    )
    released = await wallets.reserve(
        user_id="u1", offer_group="pro", tokens=1, idempotency_key="r3", ttl_seconds=60
    )
    await wallets.release_reservation(reservation_id=str(released.id))
    await wallets.balances(user_id="u1")
    await wallets.balance(user_id="u1", offer_group="pro")
    page = await wallets.ledger(user_id="u1", first=2)
    await wallets.ledger(user_id="u1", offer_group="pro", first=2, after=str(page.entries[-1].id))

    for _ in range(2):  # the second is a replay
        created = await orders.create_order(
            user_id="u2", offer_id=str(offer.id), quantity=1, idempotency_key="o1"
        )
    payment = created.order.payment_intent_id
    assert payment is not None
    sandbox.settle(payment, succeed=True)
    intent = await sandbox.get_payment(payment)
    event = WebhookEvent(
        id="evt-1",
        type="payment_intent.succeeded",
        payment_id=payment,
        state=intent.state,
        amount=intent.amount,
    )
    assert (
        await handle_provider_event(orders=orders, plans=plans, event=event, clock=clock) == "paid"
    )
    await orders.refresh_order(order_id=str(created.order.id))
    await orders.list_orders(user_id="u2", first=10)
    await orders.apply_status(order_id=str(created.order.id), status=OrderStatus.REFUNDED)
    bundle = await make_offer(
        services, name="bundle", offer_group="bundle", token_count=0,
        combined_items=[CombinedItem(offer_id=str(chat.id), quantity=1)],
    )  # fmt: skip
    await buy_offer(services, "u3", bundle)
    await orders.create_order(user_id="u3", offer_id=str(offer.id), quantity=1)

    monthly = await make_offer(services, name="plan", kind=OfferKind.SUBSCRIPTION)
    for _ in range(2):  # the second is a replay
        subscribed = await plans.subscribe(user_id="u4", offer_id=monthly.id, idempotency_key="p1")
    plan = subscribed.plan
    await plans.list_plans(user_id="u4")
    await orders.plan_orders(plan_id=plan.id)
    await plans.refresh_plan(plan_id=plan.id)
    await plans.refresh_due(now=clock.now() + timedelta(days=400))
    await plans.cancel(plan_id=plan.id, at_period_end=True)
    await plans.resume(plan_id=plan.id)
    await plans.cancel(plan_id=plan.id, at_period_end=False)

    clock.advance(hours=2)
    swept = await expire_due(
        wallets=wallets, orders=orders, now=clock.now(), reconcile_after=timedelta(0)
    )
    assert swept.reservations_released == 1


async def test_no_path_scans_a_collection(
    recorded: tuple[Recorder, AsyncMongoClient[Any]],
    database_name: str,
    clock: FakeClock,
    sandbox: SandboxPaymentClient,
) -> None:
    recorder, client = recorded
    services = build_services(
        database=client[database_name], payments=sandbox, clock=clock, default_currency="USD"
    )
    await _every_path(services, sandbox, clock)
    assert recorder.refused == []
    assert recorder.in_transactions == [], "no path runs a multi-document transaction"
    assert len(recorder.queries) > 30, "the flows ran"
    database = client[database_name]
    scanning = set()
    for collection, query, sort in recorder.queries:
        shape = (collection, repr(query))
        if _by_id(query):
            continue
        find: dict[str, Any] = {"find": collection, "filter": query}
        if sort:
            find["sort"] = sort
        explained = await database.command("explain", find, verbosity="queryPlanner")
        if _scans(explained["queryPlanner"]["winningPlan"]):
            scanning.add(shape)
    assert sorted(scanning) == [], "\n".join(map(str, sorted(scanning)))


PER_USER = [d for d in ALL_DOCUMENTS if "user_id" in d.model_fields]
"""The documents each of which belongs to one user: sharded by user_id on a cluster."""


def test_every_unique_index_of_a_users_documents_starts_with_user_id() -> None:
    names = sorted(d.get_collection_name() for d in PER_USER)
    assert names == [
        "auto_top_ups",
        "ledger",
        "orders",
        "plans",
        "reservations",
        "top_up_attempts",
        "wallet_balances",
    ], names
    for document in PER_USER:
        for index in document.get_settings().indexes or []:
            spec = index.index.document
            if spec.get("unique"):
                first = next(iter(spec["key"]))
                where = f"{document.__name__}: {spec['name']}"
                assert first == "user_id", f"{where} starts with {first}"


async def test_a_database_is_given_the_new_unique_indexes_and_loses_the_retired_ones(
    mongo: AsyncMongoClient[Any], database_name: str
) -> None:
    """A database made by an earlier version, with its unique (user_key) index, is brought
    to this one's indexes when the server starts."""
    ledger = LedgerEntryDocument.get_pymongo_collection()
    for name in RETIRED_INDEXES[LedgerEntryDocument]:
        await ledger.create_index("user_key", name=name, unique=True, sparse=True)
    await init_models(mongo, database_name)
    assert not await is_sharded(mongo)
    for document in PER_USER:
        live = await document.get_pymongo_collection().index_information()
        assert not set(RETIRED_INDEXES.get(document, ())) & set(live)
        unique = {name: spec["key"][0][0] for name, spec in live.items() if spec.get("unique")}
        assert set(unique.values()) <= {"user_id"}, unique
    assert "user_keyed_unique" in await ledger.index_information()


async def test_on_a_sharded_cluster_every_wallet_query_names_its_users(
    recorded: tuple[Recorder, AsyncMongoClient[Any]],
    database_name: str,
    clock: FakeClock,
    sandbox: SandboxPaymentClient,
) -> None:
    """The wallet's paths, as a request takes them: each query of balances, the ledger and
    reservations names the users whose documents it wants, so mongos asks their shards
    alone. A backend committing a reservation by its id alone is the one that cannot (its
    first read asks every shard for that id); the front end's user, or a caller that passes
    the owner, is targeted too."""
    recorder, client = recorded
    services = build_services(
        database=client[database_name],
        payments=sandbox,
        clock=clock,
        default_currency="USD",
        sharded=True,
    )
    wallets = services.wallets
    alice = Principal("u1", frozenset({Role.USER}))
    await wallets.grant(user_id="u1", offer_group="pro", tokens=50, idempotency_key="g1")
    for _ in range(2):  # the second is a replay
        await wallets.consume(user_id="u1", offer_group="pro", tokens=3, idempotency_key="c1")
    held = await wallets.reserve(
        user_id="u1", offer_group="pro", tokens=4, idempotency_key="r1", ttl_seconds=60
    )
    rid = str(held.id)
    assert (await wallets.reservation(reservation_id=rid, visible_to=alice)).tokens == 4
    committed = await wallets.commit_reservation(reservation_id=rid, tokens=2, user_id="u1")
    assert committed.tokens == -2
    again = await wallets.commit_reservation(reservation_id=rid, tokens=2, user_id="u1")
    assert again.id == committed.id
    released = await wallets.reserve(
        user_id="u1", offer_group="pro", tokens=1, idempotency_key="r2", ttl_seconds=60
    )
    await wallets.release_reservation(reservation_id=str(released.id), user_id="u1")
    await wallets.balances(user_id="u1")
    balance = await wallets.balance(user_id="u1", offer_group="pro")
    assert balance is not None and balance.tokens == 50 - 3 - 2
    page = await wallets.ledger(user_id="u1", first=2)
    await wallets.ledger(user_id="u1", offer_group="pro", first=2, after=str(page.entries[-1].id))

    per_user = {d.get_collection_name() for d in PER_USER} - {"orders"}
    wallet_queries = [(c, q) for c, q, _ in recorder.queries if c in per_user]
    assert len(wallet_queries) > 15, "the flows ran"
    unnamed = [(c, q) for c, q in wallet_queries if "user_id" not in q]
    assert unnamed == [], "\n".join(map(str, unnamed))
    assert recorder.in_transactions == [], "no transaction, across users or otherwise"
