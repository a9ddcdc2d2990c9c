"""Resolvers of wallets, the ledger, debits, reservations and grants."""

import strawberry

from usercredits.schema.context import Context
from usercredits.schema.inputs import ConsumeTokensInput, GrantTokensInput, ReserveTokensInput
from usercredits.schema.types import (
    CreditWarning,
    LedgerConnection,
    LedgerEntry,
    Reservation,
    Wallet,
)
from usercredits.services.catalogue.cycles import check_not_after_latest
from usercredits.services.identity.access import ADMINS
from usercredits.services.wallets.balances import LEDGER_PAGE
from usercredits.services.wallets.debits import DEFAULT_TTL_SECONDS
from usercredits.services.wallets.warnings import credit_warnings as find_warnings

Info = strawberry.Info[Context]

WEEK_SECONDS = 7 * 24 * 3600


async def wallet(info: Info, user_id: strawberry.ID | None = None) -> Wallet:
    """The caller's wallet, or another user's for service and admin."""
    target = info.context.principal.acting_for(user_id)
    return Wallet.of(target, await info.context.services.wallets.balances(user_id=target))


async def ledger(
    info: Info,
    user_id: strawberry.ID | None = None,
    offer_group: str | None = None,
    first: int | None = LEDGER_PAGE,
    after: str | None = None,
) -> LedgerConnection:
    target = info.context.principal.acting_for(user_id)
    page = await info.context.services.wallets.ledger(
        user_id=target,
        offer_group=offer_group,
        first=LEDGER_PAGE if first is None else first,
        after=after,
    )
    return LedgerConnection.of(page.entries, page.has_next_page)


async def credit_warnings(
    info: Info,
    user_id: strawberry.ID | None = None,
    within_seconds: int | None = WEEK_SECONDS,
    low_balance: int | None = 0,
) -> list[CreditWarning]:
    """Groups of the caller (or of userId) that expire within `withinSeconds` or hold at most
    `lowBalance` tokens."""
    target = info.context.principal.acting_for(user_id)
    services = info.context.services
    found = await find_warnings(
        wallets=services.wallets,
        user_id=target,
        within_seconds=WEEK_SECONDS if within_seconds is None else within_seconds,
        low_balance=low_balance or 0,
        now=services.clock.now(),
    )
    return [CreditWarning.of(w) for w in found]


async def consume_tokens(info: Info, input: ConsumeTokensInput) -> LedgerEntry:
    target = info.context.principal.acting_for(input.user_id)
    entry = await info.context.services.wallets.consume(
        user_id=target,
        offer_group=input.offer_group,
        tokens=input.tokens,
        idempotency_key=input.idempotency_key,
        note=input.reason,
    )
    return LedgerEntry.of(entry)


async def reserve_tokens(info: Info, input: ReserveTokensInput) -> Reservation:
    target = info.context.principal.acting_for(input.user_id)
    held = await info.context.services.wallets.reserve(
        user_id=target,
        offer_group=input.offer_group,
        tokens=input.tokens,
        ttl_seconds=DEFAULT_TTL_SECONDS if input.ttl_seconds is None else input.ttl_seconds,
        idempotency_key=input.idempotency_key,
    )
    return Reservation.of(held)


async def _check_reservation(info: Info, id: str) -> str:
    """Its owner; one the caller may not see is not found, as an unknown id is."""
    principal = info.context.principal
    held = await info.context.services.wallets.reservation(reservation_id=id, visible_to=principal)
    return principal.acting_for(held.user_id)


async def commit_reservation(
    info: Info, id: strawberry.ID, tokens: int | None = None
) -> LedgerEntry:
    """Debit `tokens` (at most the reserved amount) and release the rest."""
    owner = await _check_reservation(info, id)
    entry = await info.context.services.wallets.commit_reservation(
        reservation_id=id, tokens=tokens, user_id=owner
    )
    return LedgerEntry.of(entry)


async def release_reservation(info: Info, id: strawberry.ID) -> Reservation:
    owner = await _check_reservation(info, id)
    return Reservation.of(
        await info.context.services.wallets.release_reservation(reservation_id=id, user_id=owner)
    )


async def grant_tokens(info: Info, input: GrantTokensInput) -> LedgerEntry:
    info.context.principal.require(ADMINS)
    check_not_after_latest(input.expires, "expires")
    entry = await info.context.services.wallets.grant(
        user_id=input.user_id,
        offer_group=input.offer_group,
        tokens=input.tokens,
        expires=input.expires,
        idempotency_key=input.idempotency_key,
        note=input.reason,
        priority=50 if input.priority is None else input.priority,
    )
    return LedgerEntry.of(entry)
