"""Orders: buying an offer, applying the payment's outcome, bundles, and the orders of
plans and auto top-ups, grouped by who calls them (buying.py, outcomes.py, recurring.py)
on what they share (base.py). No GraphQL, no HTTP."""

from usercredits.services.orders.buying import Buying
from usercredits.services.orders.recurring import Recurring


class Orders(Buying, Recurring):
    """Every order of every user: what buyers, the payment provider, the sweep, plans and
    auto top-ups ask of them."""
