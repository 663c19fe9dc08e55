"""A persistent privacy-budget ledger: exact budgets, atomic exactly-once charges, history.

`PrivacyBudget` is an exact (Decimal) pure-DP, approximate-DP or zCDP amount;
`BudgetLedger` keeps a total (and optional per-principal split) per (dataset, purpose) in
two tables of any SQLAlchemy engine (SQLite or PostgreSQL) and charges it atomically.

Why a charge stands even if the release later fails: the ledger is charged *before* any
noise is drawn, and once the mechanism has run its output (or the fact that it failed, its
timing, a partial result, an error message) may already have been observed; the privacy
loss cannot be shown to be zero. Refunding on failure would also let a caller probe the
data for free by aborting releases it did not like. So there is no refund: a charge that was
recorded is spent, and a retried request with the same request id is a replay, not a new
charge.

Changing a policy's total with `ensure_budget` keeps what has been spent (lowering the total
below it leaves nothing remaining).
"""

from privacy.ledger.budget import BudgetKind, Number, PrivacyBudget
from privacy.ledger.errors import (
    BudgetExceeded,
    BudgetKindMismatch,
    BudgetNotFound,
    BudgetScope,
    InvalidBudget,
    LedgerError,
    RequestIdConflict,
)
from privacy.ledger.ledger import BudgetLedger, BudgetStatus, Charge

__all__ = [
    "BudgetExceeded",
    "BudgetKind",
    "BudgetKindMismatch",
    "BudgetLedger",
    "BudgetNotFound",
    "BudgetScope",
    "BudgetStatus",
    "Charge",
    "InvalidBudget",
    "LedgerError",
    "Number",
    "PrivacyBudget",
    "RequestIdConflict",
]
