"""Wallet debits, grants and reservations against the real wire server: no overdraft under
concurrency, no double debit on a retry, and a ledger that always sums to the balance."""

import asyncio
from datetime import timedelta

import pytest

from tests.support import FakeClock, assert_invariant, snapshot
from usercredits.models import LedgerEntryDocument, ReservationDocument
from usercredits.services import Services
from usercredits.services.errors import (
    Conflict,
    Expired,
    InsufficientTokens,
    InvalidInput,
    NotFound,
)
from usercredits.values import LedgerReason, ReservationStatus


async def grant(
    services: Services, tokens: int, user: str = "u1", group: str = "pro", **kw: object
) -> LedgerEntryDocument:
    return await services.wallets.grant(
        user_id=user,
        offer_group=group,
        tokens=tokens,
        idempotency_key=f"grant-{tokens}-{user}-{group}",
        **kw,
    )  # type: ignore[arg-type]


async def test_200_concurrent_consumes_against_50_tokens(services: Services) -> None:
    await grant(services, 50)

    async def consume(i: int) -> str:
        try:
            await services.wallets.consume(
                user_id="u1", offer_group="pro", tokens=1, idempotency_key=f"job-{i}"
            )
            return "ok"
        except InsufficientTokens:
            return "insufficient"

    outcomes = await asyncio.gather(*(consume(i) for i in range(200)))
    assert outcomes.count("ok") == 50
    assert outcomes.count("insufficient") == 150
    balance = await assert_invariant("u1", "pro")
    assert balance.tokens == 0
    assert await LedgerEntryDocument.find({"reason": LedgerReason.CONSUMPTION.value}).count() == 50


async def test_20_concurrent_retries_with_one_key_debit_once(services: Services) -> None:
    await grant(services, 10)
    entries = await asyncio.gather(
        *(
            services.wallets.consume(
                user_id="u1", offer_group="pro", tokens=3, idempotency_key="same", note="summary"
            )
            for _ in range(20)
        )
    )
    assert len({str(e.id) for e in entries}) == 1
    assert entries[0].tokens == -3 and entries[0].balance_after == 7
    assert entries[0].note == "summary"
    assert (await assert_invariant("u1", "pro")).tokens == 7
    # A later retry, even once the balance could not pay again, replays the same entry.
    await services.wallets.consume(
        user_id="u1", offer_group="pro", tokens=7, idempotency_key="drain"
    )
    replay = await services.wallets.consume(
        user_id="u1", offer_group="pro", tokens=3, idempotency_key="same"
    )
    assert replay.id == entries[0].id
    with pytest.raises(Conflict, match="same request"):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=4, idempotency_key="same"
        )
    assert (await assert_invariant("u1", "pro")).tokens == 0


async def test_idempotency_keys_are_per_user(services: Services) -> None:
    await grant(services, 5, user="u1")
    await grant(services, 5, user="u2")
    for user in ("u1", "u2"):
        await services.wallets.consume(
            user_id=user, offer_group="pro", tokens=2, idempotency_key="k"
        )
    assert (await assert_invariant("u1", "pro")).tokens == 3
    assert (await assert_invariant("u2", "pro")).tokens == 3


async def test_grant_is_idempotent(services: Services, clock: FakeClock) -> None:
    expires = clock.now() + timedelta(days=30)
    first = await grant(services, 25, expires=expires, note="welcome")
    again = await grant(services, 25, expires=expires, note="welcome")
    assert again.id == first.id
    await assert_invariant("u1", "pro")
    view = await services.wallets.balance(user_id="u1", offer_group="pro")
    assert view is not None and (view.tokens, view.expires) == (25, expires)
    assert [(lot.tokens, lot.expires, lot.note) for lot in view.lots] == [(25, expires, "welcome")]
    assert first.lots[0].lot_id == view.lots[0].id
    assert first.reason is LedgerReason.GRANT and first.note == "welcome"


@pytest.mark.parametrize("tokens", [0, -1, 1.5, True, "3"])
async def test_bad_token_amounts_change_nothing(services: Services, tokens: object) -> None:
    await grant(services, 5)
    before = await snapshot()
    with pytest.raises(InvalidInput, match="positive whole number"):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=tokens, idempotency_key="k"
        )  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await services.wallets.reserve(
            user_id="u1",
            offer_group="pro",
            tokens=tokens,  # type: ignore[arg-type]
            ttl_seconds=60,
            idempotency_key="r",
        )
    with pytest.raises(InvalidInput):
        await services.wallets.grant(
            user_id="u1",
            offer_group="pro",
            tokens=tokens,  # type: ignore[arg-type]
            idempotency_key="g",
        )
    assert await snapshot() == before


async def test_unknown_user_or_group_and_missing_key(services: Services) -> None:
    await grant(services, 5)
    before = await snapshot()
    # A group the user never had is a balance of 0: "buy more", as any shortfall.
    with pytest.raises(InsufficientTokens, match="has 0 tokens"):
        await services.wallets.consume(
            user_id="nobody", offer_group="pro", tokens=1, idempotency_key="k"
        )
    with pytest.raises(InsufficientTokens, match="has 0 tokens"):
        await services.wallets.consume(
            user_id="u1", offer_group="nope", tokens=1, idempotency_key="k"
        )
    with pytest.raises(InvalidInput, match="idempotencyKey"):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=1, idempotency_key=""
        )
    with pytest.raises(NotFound):
        await services.wallets.commit_reservation(reservation_id="0" * 24)
    with pytest.raises(NotFound):
        await services.wallets.release_reservation(reservation_id="bogus")
    assert await snapshot() == before


async def test_insufficient_tokens_message_and_nothing_changes(services: Services) -> None:
    await grant(services, 3)
    before = await snapshot()
    with pytest.raises(InsufficientTokens, match="user u1 has 3 tokens in 'pro', needs 5"):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=5, idempotency_key="k"
        )
    assert await snapshot() == before


async def test_reservation_holds_then_commit_releases_the_rest(services: Services) -> None:
    await grant(services, 10)
    held = await services.wallets.reserve(
        user_id="u1", offer_group="pro", tokens=6, ttl_seconds=600, idempotency_key="job"
    )
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved) == (4, 6)
    with pytest.raises(InsufficientTokens):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=5, idempotency_key="c"
        )
    again = await services.wallets.reserve(
        user_id="u1", offer_group="pro", tokens=6, ttl_seconds=600, idempotency_key="job"
    )
    assert again.id == held.id

    entry = await services.wallets.commit_reservation(reservation_id=str(held.id), tokens=2)
    assert (entry.tokens, entry.reason, entry.balance_after) == (-2, LedgerReason.CONSUMPTION, 8)
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved) == (8, 0)

    twice = await services.wallets.commit_reservation(reservation_id=str(held.id), tokens=2)
    assert twice.id == entry.id
    released = await services.wallets.release_reservation(reservation_id=str(held.id))
    assert released.status is ReservationStatus.COMMITTED
    assert (await assert_invariant("u1", "pro")).tokens == 8
    entries = await LedgerEntryDocument.find().sort("seq").to_list()
    # The commit is one entry: the hold of 6 released, 2 of them spent, in one write.
    assert [(e.reason.value, e.released, e.tokens, e.balance_after) for e in entries] == [
        ("grant", 0, 10, 10),
        ("reservation", 0, -6, 4),
        ("consumption", 6, -2, 8),
    ]
    assert entries[-1].reservation_id == str(held.id)


async def test_release_gives_everything_back_once(services: Services) -> None:
    await grant(services, 10)
    held = await services.wallets.reserve(
        user_id="u1", offer_group="pro", tokens=10, ttl_seconds=60, idempotency_key="job"
    )
    results = await asyncio.gather(
        *(services.wallets.release_reservation(reservation_id=str(held.id)) for _ in range(5))
    )
    assert all(r.status is ReservationStatus.RELEASED for r in results)
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved) == (10, 0)
    with pytest.raises(Conflict, match="released"):
        await services.wallets.commit_reservation(reservation_id=str(held.id))
    assert await LedgerEntryDocument.find({"reason": "release"}).count() == 1


async def test_commit_more_than_held_is_refused(services: Services) -> None:
    await grant(services, 10)
    held = await services.wallets.reserve(
        user_id="u1", offer_group="pro", tokens=3, ttl_seconds=60, idempotency_key="job"
    )
    before = await snapshot()
    with pytest.raises(InvalidInput, match="holds 3 tokens"):
        await services.wallets.commit_reservation(reservation_id=str(held.id), tokens=4)
    assert await snapshot() == before


async def test_reservation_past_its_ttl_is_released_by_the_sweep(
    services: Services, clock: FakeClock
) -> None:
    from usercredits.services.sweep import expire_due

    await grant(services, 10)
    held = await services.wallets.reserve(
        user_id="u1", offer_group="pro", tokens=4, ttl_seconds=60, idempotency_key="job"
    )
    clock.advance(seconds=61)
    with pytest.raises(Expired):
        await services.wallets.commit_reservation(reservation_id=str(held.id))
    result = await expire_due(wallets=services.wallets, orders=services.orders, now=clock.now())
    assert result.reservations_released == 1
    stored = await ReservationDocument.get(held.id)
    assert stored is not None and stored.status is ReservationStatus.RELEASED
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved) == (10, 0)


async def test_ledger_pages_newest_first(services: Services) -> None:
    await grant(services, 10)
    for i in range(4):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=1, idempotency_key=f"k{i}"
        )
    first = await services.wallets.ledger(user_id="u1", first=3)
    assert [e.balance_after for e in first.entries] == [6, 7, 8] and first.has_next_page
    rest = await services.wallets.ledger(user_id="u1", first=3, after=str(first.entries[-1].id))
    assert [e.balance_after for e in rest.entries] == [9, 10] and not rest.has_next_page
    assert (await services.wallets.ledger(user_id="u2")).entries == []
    with pytest.raises(InvalidInput):
        await services.wallets.ledger(user_id="u1", first=0)
