"""Privacy-preserving releases: the persistent DP budget ledger (`privacy.ledger`) and
homomorphic encryption (`privacy.he`). Never imports `gateway`; heavy libraries load lazily."""

from privacy.ledger import (
    BudgetExceeded,
    BudgetKind,
    BudgetKindMismatch,
    BudgetLedger,
    BudgetNotFound,
    BudgetScope,
    BudgetStatus,
    Charge,
    InvalidBudget,
    LedgerError,
    PrivacyBudget,
    RequestIdConflict,
)

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
    "PrivacyBudget",
    "RequestIdConflict",
]
