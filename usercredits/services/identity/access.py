"""Who is calling, and whom they may act for. No tokens or HTTP here: the server decodes
credentials into a Principal; services and resolvers only ask it questions.

- user: reads and changes only its own wallet, orders and ledger; buys offers.
- service: a back end acting for users: consumes and reserves for any user, reads any wallet.
- admin: everything, including offers and grants.
- anonymous (no credentials): may only read offers.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from usercredits.services.clock import Clock
from usercredits.services.errors import Forbidden, Unauthenticated


class Role(StrEnum):
    USER = "user"
    SERVICE = "service"
    ADMIN = "admin"


STAFF = frozenset({Role.SERVICE, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str | None
    roles: frozenset[Role]
    refusal: str | None = None
    """Why presented credentials were refused; such a caller is anonymous."""
    expires_at: datetime | None = None
    """When the credentials lapse: a websocket keeps its principal past one request."""
    clock: Clock | None = field(default=None, compare=False, repr=False)
    """The clock `expires_at` is read by (the server's); given with it."""

    def __post_init__(self) -> None:
        if self.expires_at is not None and self.clock is None:
            raise ValueError("a principal with an expiry needs the clock it lapses by")

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None

    @property
    def lapsed(self) -> bool:
        """Whether the credentials have expired by now."""
        return (
            self.expires_at is not None
            and self.clock is not None
            and self.expires_at <= self.clock.now()
        )

    def require_signed_in(self) -> str:
        if self.user_id is None:
            raise Unauthenticated(self.refusal or "sign in: send Authorization: Bearer <JWT>")
        if self.expires_at is not None and self.lapsed:
            raise Unauthenticated(f"the token expired at {self.expires_at.isoformat()}")
        return self.user_id

    def require(self, allowed: frozenset[Role]) -> str:
        """The caller's id if it holds one of `allowed`; else Forbidden."""
        me = self.require_signed_in()
        if not self.roles & allowed:
            needed = " or ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"user {me} needs the {needed} role")
        return me

    @property
    def sole_owner(self) -> str | None:
        """The one user whose things this caller may see (itself); None for staff, who may
        see anyone's."""
        return None if self.roles & STAFF else self.user_id

    def may_see(self, owner: str) -> bool:
        """Whether the caller may read what `owner` owns: its own, or anyone's for staff.
        An anonymous caller is Unauthenticated, not merely unable to see."""
        return owner == self.require_signed_in() or bool(self.roles & STAFF)

    def acting_for(self, user_id: str | None, *, others: frozenset[Role] = STAFF) -> str:
        """The user an operation applies to: the caller, or `user_id` if the caller holds
        one of `others`."""
        me = self.require_signed_in()
        if user_id is None or user_id == me:
            return me
        if self.roles & others:
            return user_id
        raise Forbidden(f"user {me} may not act for user {user_id}")


ANONYMOUS = Principal(user_id=None, roles=frozenset())


def refused(reason: str) -> Principal:
    """An anonymous caller whose credentials were refused, and why."""
    return Principal(user_id=None, roles=frozenset(), refusal=reason)
