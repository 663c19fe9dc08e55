"""Purpose acknowledgements: a principal confirms a purpose's statement before first use.

Each record says who acknowledged which purpose, which version of its statement (a hash of
the text, so a reworded statement must be acknowledged again) and when.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from gateway.db import read_only
from gateway.errors import StorageError

__all__ = ["Acknowledgement", "AcknowledgementStore"]


@dataclass(frozen=True)
class Acknowledgement:
    """One acknowledgement of one statement version."""

    subject: str
    purpose: str
    statement_version: str
    acknowledged_at: dt.datetime


class AcknowledgementStore:
    """Acknowledgements in the gateway database (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine, table: str = "purpose_acknowledgements") -> None:
        self._engine = engine
        metadata = sa.MetaData()
        self._table = sa.Table(
            table,
            metadata,
            sa.Column("subject", sa.String(255), primary_key=True),
            sa.Column("purpose", sa.String(255), primary_key=True),
            sa.Column("statement_version", sa.String(64), primary_key=True),
            sa.Column("acknowledged_at", sa.String(40), nullable=False),
        )
        try:
            metadata.create_all(engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"acknowledgement store unavailable: {type(exc).__name__}") from None

    def acknowledge(self, subject: str, purpose: str, statement_version: str) -> Acknowledgement:
        """Record an acknowledgement (idempotent: the first time is kept)."""
        existing = self.get(subject, purpose, statement_version)
        if existing is not None:
            return existing
        now = dt.datetime.now(dt.UTC)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    self._table.insert().values(
                        subject=subject,
                        purpose=purpose,
                        statement_version=statement_version,
                        acknowledged_at=now.isoformat(),
                    )
                )
        except sa.exc.IntegrityError:
            found = self.get(subject, purpose, statement_version)
            if found is not None:
                return found
            raise StorageError("acknowledgement could not be recorded") from None
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"acknowledgement store unavailable: {type(exc).__name__}") from None
        return Acknowledgement(subject, purpose, statement_version, now)

    def get(self, subject: str, purpose: str, statement_version: str) -> Acknowledgement | None:
        """The acknowledgement of this statement version, or None."""
        t = self._table
        try:
            with read_only(self._engine) as conn:
                row = conn.execute(
                    sa.select(t).where(
                        t.c.subject == subject,
                        t.c.purpose == purpose,
                        t.c.statement_version == statement_version,
                    )
                ).first()
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"acknowledgement store unavailable: {type(exc).__name__}") from None
        if row is None:
            return None
        return Acknowledgement(
            row.subject,
            row.purpose,
            row.statement_version,
            dt.datetime.fromisoformat(row.acknowledged_at),
        )
