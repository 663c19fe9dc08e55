"""Public response models: they carry names, protections and counts, never keys or values."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AcknowledgementOut",
    "AuditEventOut",
    "AuditPage",
    "AuditVerification",
    "ColumnOut",
    "DatasetList",
    "DatasetOut",
    "Health",
    "PurposeOut",
]


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Health(_Public):
    """Liveness or readiness."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class PurposeOut(_Public):
    """A purpose, its statement and whether the caller acknowledged the current version."""

    purpose: str
    statement: str
    statement_version: str
    legal_basis: str | None
    acknowledged: bool


class AcknowledgementOut(_Public):
    """An acknowledgement record."""

    subject: str
    purpose: str
    statement_version: str
    acknowledged_at: dt.datetime


class ColumnOut(_Public):
    """A column the caller would receive, and how it is protected for the purpose."""

    name: str
    type: str
    classification: str
    protection: str


class DatasetOut(_Public):
    """A dataset the caller may use for the purpose."""

    dataset: str
    description: str | None
    columns: list[ColumnOut]
    feature_views: list[str]
    actions: list[str]


class DatasetList(_Public):
    """GET /v1/datasets."""

    purpose: str
    policy_version: str
    datasets: list[DatasetOut]


class AuditEventOut(_Public):
    """One stored audit event."""

    seq: int
    hash: str
    prev_hash: str
    event: dict[str, Any]


class AuditPage(_Public):
    """A page of audit events; pass `next_after_seq` as `after_seq` for the next page."""

    events: list[AuditEventOut]
    next_after_seq: int | None


class AuditVerification(_Public):
    """The result of verifying the hash chain."""

    ok: bool
    records: int
    first_bad_seq: int | None
    problem: str | None
    message: str
