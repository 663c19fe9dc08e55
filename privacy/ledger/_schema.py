"""The ledger's two tables: budget rows (shared total and per-principal spend) and charges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.types import TypeEngine

from privacy.ledger.errors import InvalidBudget

__all__ = ["LedgerTables", "define_tables"]

NAME_LENGTH = 255
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


class ExactDecimal(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, plain-notation TEXT elsewhere (never REAL)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """NUMERIC (unconstrained) on PostgreSQL, TEXT on every other back-end."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        """Decimals go to NUMERIC as they are, and to TEXT in plain notation."""
        if value is None or dialect.name == "postgresql":
            return value
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Back to `Decimal` without passing through float."""
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Aware datetimes are converted to UTC (SQLite keeps no offset)."""
        if value is None:
            return None
        return (
            value.astimezone(UTC)
            if dialect.name == "postgresql"
            else (value.astimezone(UTC).replace(tzinfo=None))
        )

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Naive values from SQLite are UTC."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LedgerTables:
    """The metadata and both tables of one ledger (one table prefix)."""

    metadata: MetaData
    budgets: Table
    charges: Table


def define_tables(prefix: str) -> LedgerTables:
    """Tables `{prefix}budgets` and `{prefix}charges` in their own `MetaData`."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidBudget(f"table prefix {prefix!r} must match {_PREFIX.pattern}")
    metadata = MetaData()
    name = String(NAME_LENGTH)
    budgets = Table(
        f"{prefix}budgets",
        metadata,
        Column("dataset", name, primary_key=True),
        Column("purpose", name, primary_key=True),
        # '' is the shared (dataset, purpose) row; other rows track one principal's spend
        Column("principal", name, primary_key=True),
        Column("kind", String(16), nullable=False),
        # epsilon (pure, approximate) or rho (zCDP); delta only for approximate DP
        Column("total", ExactDecimal(), nullable=True),  # NULL on principal rows
        Column("total_delta", ExactDecimal(), nullable=True),
        Column("per_principal", ExactDecimal(), nullable=True),  # the split, shared row only
        Column("per_principal_delta", ExactDecimal(), nullable=True),
        Column("spent", ExactDecimal(), nullable=False),
        Column("spent_delta", ExactDecimal(), nullable=True),
        Column("charge_count", Integer, nullable=False),
        Column("revision", Integer, nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )
    charges = Table(
        f"{prefix}charges",
        metadata,
        Column(
            "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        Column("request_id", name, nullable=False, unique=True),
        Column("dataset", name, nullable=False),
        Column("purpose", name, nullable=False),
        Column("principal", name, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("amount", ExactDecimal(), nullable=False),
        Column("amount_delta", ExactDecimal(), nullable=True),
        Column("description", Text, nullable=False),
        Column("fingerprint", name, nullable=True),
        Column("created_at", UtcDateTime(), nullable=False),
        ForeignKeyConstraint(
            ["dataset", "purpose", "principal"],
            [budgets.c.dataset, budgets.c.purpose, budgets.c.principal],
            name=f"{prefix}charges_budget_fk",
        ),
        Index(f"{prefix}charges_budget_idx", "dataset", "purpose", "id"),
    )
    return LedgerTables(metadata, budgets, charges)
