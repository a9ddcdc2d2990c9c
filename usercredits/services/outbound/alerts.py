"""Balance alert rules, one per offer group, and the state machine they drive.

balance.low fires once when a group's spendable balance falls to `low_balance` or below,
and again only after balance.recovered, which fires when it goes back above
`low_balance + hysteresis`: a storm of debits and credits around the threshold sends one
of each per real crossing. Whether a balance is low is kept per balance (AlertState) as of
a ledger entry's `seq`, so the relay can apply an entry twice (after a crash) and decide
the same."""

from dataclasses import dataclass
from datetime import timedelta

from usercredits.models import AlertRuleDocument
from usercredits.models.collections import Collection, save
from usercredits.services.clock import Clock
from usercredits.services.errors import InvalidInput, shown
from usercredits.services.limits import InputLimits
from usercredits.values.lots import MAX_TOKENS
from usercredits.values.numbers import is_whole

MAX_WINDOW = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class AlertRule:
    offer_group: str
    low_balance: int
    hysteresis: int = 0
    expiring_within_seconds: int = 604_800

    @property
    def expiring_within(self) -> timedelta:
        return timedelta(seconds=self.expiring_within_seconds)


@dataclass(frozen=True, slots=True)
class Crossing:
    """What one movement did to a balance's alert state."""

    low: bool
    """The state after the movement."""
    event: str | None
    """balance.low, balance.recovered or None."""


def cross(rule: AlertRule, *, low: bool, after: int) -> Crossing:
    """The state machine: `low` before the movement, `after` the spendable balance after."""
    if not low and after <= rule.low_balance:
        return Crossing(low=True, event="balance.low")
    if low and after > rule.low_balance + rule.hysteresis:
        return Crossing(low=False, event="balance.recovered")
    return Crossing(low=low, event=None)


def _whole(value: object, name: str, low: int, high: int) -> int:
    if not is_whole(value) or not low <= value <= high:
        raise InvalidInput(
            f"{name} must be a whole number from {low} to {high}, got {shown(value)}"
        )
    return value


class AlertRules:
    def __init__(self, *, rules: Collection, clock: Clock, limits: InputLimits) -> None:
        self._rules = rules
        self._clock = clock
        self._limits = limits

    async def set_rule(self, rule: AlertRule) -> AlertRule:
        """Creates or replaces the group's rule. Balances keep their state: one already
        low stays low until it recovers above the new threshold."""
        group = self._limits.group(rule.offer_group)
        checked = AlertRule(
            offer_group=group,
            low_balance=_whole(rule.low_balance, "lowBalance", 0, MAX_TOKENS),
            hysteresis=_whole(rule.hysteresis, "hysteresis", 0, MAX_TOKENS),
            expiring_within_seconds=_whole(
                rule.expiring_within_seconds,
                "expiringWithinSeconds",
                0,
                int(MAX_WINDOW.total_seconds()),
            ),
        )
        document = AlertRuleDocument(
            id=group,
            low_balance=checked.low_balance,
            hysteresis=checked.hysteresis,
            expiring_within_seconds=checked.expiring_within_seconds,
            updated_at=self._clock.now(),
        )
        await save(self._rules, document)
        return checked

    async def rules(self) -> dict[str, AlertRule]:
        """Every rule, by offer group."""
        found = [AlertRuleDocument.model_validate(raw) async for raw in self._rules.find({})]
        return {
            d.id: AlertRule(
                offer_group=d.id,
                low_balance=d.low_balance,
                hysteresis=d.hysteresis,
                expiring_within_seconds=d.expiring_within_seconds,
            )
            for d in found
        }
