"""Typed errors of the privacy-budget ledger; all derive from `LedgerError`."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from privacy.ledger.budget import BudgetKind, PrivacyBudget
    from privacy.ledger.ledger import Charge

__all__ = [
    "BudgetExceeded",
    "BudgetKindMismatch",
    "BudgetNotFound",
    "BudgetScope",
    "InvalidBudget",
    "LedgerError",
    "RequestIdConflict",
]


class BudgetScope(StrEnum):
    """Which budget a check is about: the (dataset, purpose) total or one principal's split."""

    SHARED = "shared"
    PRINCIPAL = "principal"


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""


class InvalidBudget(LedgerError, ValueError):
    """A privacy parameter or ledger argument is not acceptable (NaN, negative, zero, ...)."""


class BudgetKindMismatch(LedgerError, TypeError):
    """Two budgets of different kinds (pure, approximate, zCDP) were combined."""

    def __init__(self, expected: BudgetKind, actual: BudgetKind, context: str = "") -> None:
        super().__init__(expected, actual, context)
        self.expected = expected
        self.actual = actual
        self.context = context

    def __str__(self) -> str:
        where = f"{self.context}: " if self.context else ""
        return (
            f"{where}a {self.actual.value} budget cannot be combined with a "
            f"{self.expected.value} budget"
        )


class BudgetNotFound(LedgerError, LookupError):
    """No budget has been set up for this (dataset, purpose)."""

    def __init__(self, dataset: str, purpose: str) -> None:
        super().__init__(dataset, purpose)
        self.dataset = dataset
        self.purpose = purpose

    def __str__(self) -> str:
        return f"no privacy budget for dataset {self.dataset!r}, purpose {self.purpose!r}"


class BudgetExceeded(LedgerError):
    """A charge was refused: `requested` exceeds `remaining` by `difference` (per parameter)."""

    def __init__(
        self,
        dataset: str,
        purpose: str,
        principal: str,
        scope: BudgetScope,
        requested: PrivacyBudget,
        remaining: PrivacyBudget,
        difference: PrivacyBudget,
    ) -> None:
        super().__init__(dataset, purpose, principal, scope, requested, remaining, difference)
        self.dataset = dataset
        self.purpose = purpose
        self.principal = principal
        self.scope = scope
        self.requested = requested
        self.remaining = remaining
        self.difference = difference

    def __str__(self) -> str:
        which = (
            "the shared budget"
            if self.scope is BudgetScope.SHARED
            else f"the budget of principal {self.principal!r}"
        )
        return (
            f"privacy budget exceeded for dataset {self.dataset!r}, purpose "
            f"{self.purpose!r}: requested {self.requested}, {which} has {self.remaining} "
            f"left (short by {self.difference})"
        )


class RequestIdConflict(LedgerError):
    """A request id was reused for a different charge (other budget, principal or amount)."""

    def __init__(self, request_id: str, original: Charge) -> None:
        super().__init__(request_id, original)
        self.request_id = request_id
        self.original = original

    def __str__(self) -> str:
        o = self.original
        return (
            f"request id {self.request_id!r} was already used for a charge of {o.amount} "
            f"on dataset {o.dataset!r}, purpose {o.purpose!r}, principal {o.principal!r}"
        )
