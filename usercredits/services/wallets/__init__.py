"""Wallet balances per offer group, their lots and their ledger. No GraphQL, no HTTP.

THE INVARIANT. For every (user, offer group), at every moment:

    balance.tokens   == sum(lot.remaining)  == sum(ledger.tokens)
    balance.reserved == sum(lot.held)       == sum(hold.tokens)
    each entry's balance_after is the running sum of the group's entries in `seq` order,
    and `seq` counts 1, 2, 3... with no gap
    every lot.remaining >= 0 and lot.held >= 0

(the ledger sum counts the entries of the balance's `last` movement until they are in the
ledger collection: see movements.py, which writes every movement and checks the first line
before it writes). Holding moves tokens from a lot's `remaining` to its `held`
with a `reservation` entry (-n); settling gives them back with a `release` entry (+n) and
spends what was used with a `consumption` entry (-k). So the ledger explains every
spendable token, and nothing moves without an entry.

Every operation is a decision: a pure function of the balance it is shown, which the
movement primitive applies in one compare-and-set write, deciding again on a lost race. The
modules of this package group them by concern: reads (balances.py), debits and
reservations (debits.py), credits (credits.py) and lapsed lots (lapses.py), on the lots'
rules (lots.py) and the primitive (movements.py).
"""

from usercredits.services.wallets.balances import BalanceReads
from usercredits.services.wallets.credits import Credits
from usercredits.services.wallets.debits import Debits
from usercredits.services.wallets.lapses import Lapses


class Wallets(BalanceReads, Debits, Credits, Lapses):
    """Balances, lots, the ledger, grants, debits and reservations of every user."""
