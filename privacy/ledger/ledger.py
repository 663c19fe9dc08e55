"""`BudgetLedger`: the persistent, exactly-once privacy-budget ledger per (dataset, purpose).

No refunds: a charge is recorded before any noise is drawn and stands even if the release
then fails, because what the failed run revealed cannot be shown to be nothing, and refunds
would let a caller probe the data by aborting (see the package docstring).

Each (dataset, purpose) has one shared row (principal '') holding the total, an optional
per-principal split and the spend; each principal that has been charged has its own row with
its spend. Charges are appended to a charges table and never updated or deleted.

Locking: every write transaction *starts* with an UPDATE of the shared row. On SQLite that
takes the database write lock before anything is read (with the gateway's BEGIN IMMEDIATE
engine it is already held; on a plain engine the UPDATE begins the transaction), so two
processes cannot both read the same balance; on PostgreSQL it takes the row lock, and under
READ COMMITTED the reads that follow see the latest committed spend. Serialization failures
and deadlocks (SQLSTATE 40001, 40P01, e.g. under REPEATABLE READ) are retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from privacy.ledger._schema import NAME_LENGTH, LedgerTables, define_tables
from privacy.ledger.budget import BudgetKind, PrivacyBudget
from privacy.ledger.errors import (
    BudgetExceeded,
    BudgetKindMismatch,
    BudgetNotFound,
    BudgetScope,
    InvalidBudget,
    RequestIdConflict,
)

__all__ = ["BudgetLedger", "BudgetStatus", "Charge"]

SHARED = ""
"""The principal value of the shared (dataset, purpose) row."""

_T = TypeVar("_T")
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_MAX_RETRIES = 50  # 40 threads under REPEATABLE READ needed up to ~11


@dataclass(frozen=True, slots=True)
class Charge:
    """One recorded spend: who spent how much of which budget, for which request and query."""

    id: int
    request_id: str
    dataset: str
    purpose: str
    principal: str
    amount: PrivacyBudget
    description: str
    fingerprint: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget's total, spend and what is left; `available` also honours the shared total."""

    dataset: str
    purpose: str
    principal: str | None  # None: the shared (dataset, purpose) budget
    total: PrivacyBudget
    spent: PrivacyBudget
    remaining: PrivacyBudget  # total - spent, never below zero
    available: PrivacyBudget  # what the next charge may use: min(remaining, shared remaining)
    charges: int
    per_principal: PrivacyBudget | None


class BudgetLedger:
    """Privacy budgets and their charges in two tables of an SQLAlchemy engine."""

    def __init__(
        self, engine: Engine, table_prefix: str = "dp_", *, create_tables: bool = True
    ) -> None:
        self._engine = engine
        self._tables: LedgerTables = define_tables(table_prefix)
        if create_tables:
            self.create_tables()

    @property
    def engine(self) -> Engine:
        """The engine the ledger writes to."""
        return self._engine

    @property
    def table_names(self) -> tuple[str, str]:
        """The names of the budgets table and the charges table."""
        return self._tables.budgets.name, self._tables.charges.name

    def create_tables(self) -> None:
        """Create both tables if missing (safe when several processes start at once)."""
        for attempt in range(3):
            try:
                self._tables.metadata.create_all(self._engine, checkfirst=True)
                return
            except DBAPIError:  # another process created them between check and CREATE
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))

    # -- public API -------------------------------------------------------------------------

    def ensure_budget(
        self,
        dataset: str,
        purpose: str,
        total: PrivacyBudget,
        per_principal: PrivacyBudget | None = None,
    ) -> BudgetStatus:
        """Create or update a budget (idempotent); a new total keeps what is spent, so a lower one
        may leave nothing remaining. The kind may change only while nothing has been charged."""
        _name(dataset, "dataset")
        _name(purpose, "purpose")
        _check_total(total, "total")
        if per_principal is not None:
            _check_total(per_principal, "per_principal")
            if per_principal.kind is not total.kind:
                raise BudgetKindMismatch(total.kind, per_principal.kind, "per_principal")
            if not per_principal.fits_within(total):
                raise InvalidBudget(f"per_principal {per_principal} exceeds the total {total}")

        def work(conn: Connection) -> BudgetStatus:
            b = self._tables.budgets
            now = datetime.now(UTC)
            if not self._lock(conn, dataset, purpose):
                conn.execute(
                    insert(b).values(
                        dataset=dataset,
                        purpose=purpose,
                        principal=SHARED,
                        kind=total.kind.value,
                        **_columns("total", total),
                        **_columns("per_principal", per_principal),
                        **_columns("spent", PrivacyBudget.zero(total.kind)),
                        charge_count=0,
                        revision=1,
                        updated_at=now,
                    )
                )
                return self._status(conn, dataset, purpose, None)
            row = self._rows(conn, dataset, purpose, None)[SHARED]
            changes: dict[str, Any] = {}
            if row.kind != total.kind.value:
                if row.charge_count:
                    raise BudgetKindMismatch(
                        BudgetKind(row.kind),
                        total.kind,
                        "a budget that has been charged keeps its kind",
                    )
                changes.update(
                    kind=total.kind.value, **_columns("spent", PrivacyBudget.zero(total.kind))
                )
            if row.kind != total.kind.value or _budget_of(row, "total") != total:
                changes.update(_columns("total", total))
            if row.kind != total.kind.value or _split_of(row) != per_principal:
                changes.update(_columns("per_principal", per_principal))
            if changes:
                conn.execute(
                    update(b)
                    .where(*self._key(dataset, purpose, SHARED))
                    .values(revision=b.c.revision + 1, updated_at=now, **changes)
                )
            return self._status(conn, dataset, purpose, None)

        try:
            return self._transact(work)
        except IntegrityError:  # a concurrent ensure_budget inserted the row first
            return self._transact(work)

    def charge(
        self,
        dataset: str,
        purpose: str,
        principal: str,
        amount: PrivacyBudget,
        *,
        request_id: str,
        description: str,
        fingerprint: str | None = None,
    ) -> Charge:
        """Spend `amount` atomically or raise `BudgetExceeded`. A request id already charged returns
        that original `Charge` (no new spend); reused with other arguments: `RequestIdConflict`."""
        _name(dataset, "dataset")
        _name(purpose, "purpose")
        _name(principal, "principal")
        _name(request_id, "request_id")
        if not isinstance(description, str) or "\x00" in description:
            raise InvalidBudget("description must be a string without NUL characters")
        if fingerprint is not None:
            _name(fingerprint, "fingerprint")
        if not isinstance(amount, PrivacyBudget):
            raise InvalidBudget(f"amount must be a PrivacyBudget, not {type(amount).__name__}")
        if amount.is_zero:
            raise InvalidBudget("a charge must spend something; got a zero amount")

        def work(conn: Connection) -> Charge:
            if not self._lock(conn, dataset, purpose):
                raise BudgetNotFound(dataset, purpose)
            original = self._find(conn, request_id)
            if original is not None:
                return _replay(original, dataset, purpose, principal, amount)
            rows = self._rows(conn, dataset, purpose, principal)
            shared = rows[SHARED]
            kind = BudgetKind(shared.kind)
            if amount.kind is not kind:
                raise BudgetKindMismatch(kind, amount.kind, f"charge on {dataset}/{purpose}")
            spent = _budget_of(shared, "spent")
            _require_room(
                dataset,
                purpose,
                principal,
                BudgetScope.SHARED,
                _budget_of(shared, "total"),
                spent,
                amount,
            )
            own = rows.get(principal)
            own_spent = _budget_of(own, "spent") if own is not None else PrivacyBudget.zero(kind)
            split = _split_of(shared)
            if split is not None:
                _require_room(
                    dataset, purpose, principal, BudgetScope.PRINCIPAL, split, own_spent, amount
                )
            return self._record(
                conn,
                dataset,
                purpose,
                principal,
                amount,
                spent,
                own_spent,
                own is not None,
                request_id,
                description,
                fingerprint,
            )

        try:
            return self._transact(work)
        except IntegrityError:  # the same request id committed concurrently on another budget
            original = self._transact(lambda conn: self._find(conn, request_id))
            if original is None:
                raise
            return _replay(original, dataset, purpose, principal, amount)

    def remaining(self, dataset: str, purpose: str, principal: str | None = None) -> BudgetStatus:
        """The shared budget, or `principal`'s split (the shared budget if there is no split)."""
        _name(dataset, "dataset")
        _name(purpose, "purpose")
        if principal is not None:
            _name(principal, "principal")
        return self._transact(lambda conn: self._status(conn, dataset, purpose, principal))

    def history(
        self, dataset: str, purpose: str, limit: int = 100, *, principal: str | None = None
    ) -> list[Charge]:
        """The latest `limit` charges of the budget (optionally of one principal), newest first."""
        _name(dataset, "dataset")
        _name(purpose, "purpose")
        if principal is not None:
            _name(principal, "principal")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidBudget(f"limit must be a positive integer, not {limit!r}")
        c = self._tables.charges

        def work(conn: Connection) -> list[Charge]:
            self._rows(conn, dataset, purpose, None)  # BudgetNotFound if there is no budget
            query = select(c).where(c.c.dataset == dataset, c.c.purpose == purpose)
            if principal is not None:
                query = query.where(c.c.principal == principal)
            rows = conn.execute(query.order_by(c.c.id.desc()).limit(limit))
            return [_charge_of(row) for row in rows]

        return self._transact(work)

    # -- internals --------------------------------------------------------------------------

    def _transact(self, work: Callable[[Connection], _T]) -> _T:
        """Run `work` in one transaction, retrying serialization failures and deadlocks."""
        attempt = 0
        while True:
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                if attempt >= _MAX_RETRIES or not _retryable(exc):
                    raise
            attempt += 1
            time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))

    def _key(self, dataset: str, purpose: str, principal: str) -> tuple[Any, ...]:
        b = self._tables.budgets
        return b.c.dataset == dataset, b.c.purpose == purpose, b.c.principal == principal

    def _lock(self, conn: Connection, dataset: str, purpose: str) -> bool:
        """Write-lock the shared row first thing (SQLite: the database); False if missing."""
        b = self._tables.budgets
        statement = update(b).where(*self._key(dataset, purpose, SHARED))
        return conn.execute(statement.values(revision=b.c.revision)).rowcount > 0

    def _rows(
        self, conn: Connection, dataset: str, purpose: str, principal: str | None
    ) -> dict[str, Row[Any]]:
        """The shared row and `principal`'s row (if any), by principal; `BudgetNotFound`."""
        b = self._tables.budgets
        wanted = [SHARED] if principal is None else [SHARED, principal]
        query = select(b).where(
            b.c.dataset == dataset, b.c.purpose == purpose, b.c.principal.in_(wanted)
        )
        rows = {row.principal: row for row in conn.execute(query)}
        if SHARED not in rows:
            raise BudgetNotFound(dataset, purpose)
        return rows

    def _find(self, conn: Connection, request_id: str) -> Charge | None:
        c = self._tables.charges
        row = conn.execute(select(c).where(c.c.request_id == request_id)).first()
        return None if row is None else _charge_of(row)

    def _record(
        self,
        conn: Connection,
        dataset: str,
        purpose: str,
        principal: str,
        amount: PrivacyBudget,
        spent: PrivacyBudget,
        own_spent: PrivacyBudget,
        own_exists: bool,
        request_id: str,
        description: str,
        fingerprint: str | None,
    ) -> Charge:
        """Add `amount` to the shared and the principal's spend and append the charge."""
        b, c = self._tables.budgets, self._tables.charges
        now = datetime.now(UTC)
        bump = {
            "charge_count": b.c.charge_count + 1,
            "revision": b.c.revision + 1,
            "updated_at": now,
        }
        conn.execute(
            update(b)
            .where(*self._key(dataset, purpose, SHARED))
            .values(**_columns("spent", spent + amount), **bump)
        )
        if own_exists:
            conn.execute(
                update(b)
                .where(*self._key(dataset, purpose, principal))
                .values(**_columns("spent", own_spent + amount), **bump)
            )
        else:
            conn.execute(
                insert(b).values(
                    dataset=dataset,
                    purpose=purpose,
                    principal=principal,
                    kind=amount.kind.value,
                    **_columns("total", None),
                    **_columns("per_principal", None),
                    **_columns("spent", amount),
                    charge_count=1,
                    revision=1,
                    updated_at=now,
                )
            )
        result = conn.execute(
            insert(c).values(
                request_id=request_id,
                dataset=dataset,
                purpose=purpose,
                principal=principal,
                kind=amount.kind.value,
                **_columns("amount", amount),
                description=description,
                fingerprint=fingerprint,
                created_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return Charge(
            int(key[0]),
            request_id,
            dataset,
            purpose,
            principal,
            amount,
            description,
            fingerprint,
            now,
        )

    def _status(
        self, conn: Connection, dataset: str, purpose: str, principal: str | None
    ) -> BudgetStatus:
        rows = self._rows(conn, dataset, purpose, principal)
        shared = rows[SHARED]
        total, spent = _budget_of(shared, "total"), _budget_of(shared, "spent")
        left = total.excess_over(spent)
        split = _split_of(shared)
        if principal is None or split is None:
            return BudgetStatus(
                dataset, purpose, None, total, spent, left, left, shared.charge_count, split
            )
        own = rows.get(principal)
        kind = BudgetKind(shared.kind)
        own_spent = _budget_of(own, "spent") if own is not None else PrivacyBudget.zero(kind)
        own_left = split.excess_over(own_spent)
        return BudgetStatus(
            dataset,
            purpose,
            principal,
            split,
            own_spent,
            own_left,
            own_left.min_with(left),
            own.charge_count if own else 0,
            split,
        )


def _retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _name(value: object, what: str) -> None:
    if not isinstance(value, str) or not value or len(value) > NAME_LENGTH or "\x00" in value:
        raise InvalidBudget(
            f"{what} must be a non-empty string of at most {NAME_LENGTH} "
            f"characters without NUL, not {value!r}"
        )


def _check_total(budget: object, what: str) -> None:
    if not isinstance(budget, PrivacyBudget):
        raise InvalidBudget(f"{what} must be a PrivacyBudget, not {type(budget).__name__}")
    if not budget.is_positive:
        raise InvalidBudget(f"{what} {budget} must be positive in every parameter")
    if budget.delta is not None and budget.delta >= 1:
        raise InvalidBudget(f"{what} delta must be below 1, got {budget.delta}")


def _require_room(
    dataset: str,
    purpose: str,
    principal: str,
    scope: BudgetScope,
    total: PrivacyBudget,
    spent: PrivacyBudget,
    amount: PrivacyBudget,
) -> None:
    if not (spent + amount).fits_within(total):
        left = total.excess_over(spent)
        raise BudgetExceeded(
            dataset, purpose, principal, scope, amount, left, amount.excess_over(left)
        )


def _replay(
    original: Charge, dataset: str, purpose: str, principal: str, amount: PrivacyBudget
) -> Charge:
    same = (original.dataset, original.purpose, original.principal, original.amount)
    if same != (dataset, purpose, principal, amount):
        raise RequestIdConflict(original.request_id, original)
    return original


def _columns(prefix: str, budget: PrivacyBudget | None) -> dict[str, Decimal | None]:
    """`budget` as the column pair `{prefix}` (epsilon or rho) and `{prefix}_delta`."""
    if budget is None:
        return {prefix: None, f"{prefix}_delta": None}
    main = budget.rho if budget.kind is BudgetKind.ZCDP else budget.epsilon
    return {prefix: main, f"{prefix}_delta": budget.delta}


def _from_columns(kind: BudgetKind, main: Decimal, delta: Decimal | None) -> PrivacyBudget:
    if kind is BudgetKind.PURE:
        return PrivacyBudget.pure(main)
    if kind is BudgetKind.APPROXIMATE:
        if delta is None:
            raise InvalidBudget("an approximate budget row has no delta")
        return PrivacyBudget.approximate(main, delta)
    return PrivacyBudget.zcdp(main)


def _budget_of(row: Row[Any], prefix: str) -> PrivacyBudget:
    values = row._mapping
    return _from_columns(BudgetKind(values["kind"]), values[prefix], values[f"{prefix}_delta"])


def _split_of(row: Row[Any]) -> PrivacyBudget | None:
    return None if row.per_principal is None else _budget_of(row, "per_principal")


def _charge_of(row: Row[Any]) -> Charge:
    amount = _budget_of(row, "amount")
    return Charge(
        int(row.id),
        row.request_id,
        row.dataset,
        row.purpose,
        row.principal,
        amount,
        row.description,
        row.fingerprint,
        row.created_at,
    )
