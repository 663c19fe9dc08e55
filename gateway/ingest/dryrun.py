"""`gateway ingest --dry-run`: what the policy would do to a sample, with nothing written.

Counts come from a sample of the real source (how many cells each protection changes,
rows quarantined and filtered, k achieved); the before/after examples shown to the
steward come from generated canary values, never from real rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.ingest.protect import (
    ProtectionPlan,
    governed_columns,
    plan_protection,
    protect_frame,
    row_filter_column,
)
from gateway.ingest.source import read_source, resolve_source
from gateway.ingest.validate import REASONS, check_columns, with_reasons
from gateway.policy.loader import PolicySet
from gateway.policy.protection import ProtectionKind
from gateway.secrets import SecretStore
from gateway.settings import Settings
from masking.base import SecretColumns
from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from gateway.storage import DeltaStore

__all__ = ["ColumnPreview", "DryRunReport", "dry_run"]

# Canary inputs shaped like what each strategy expects, so the example shows its effect.
_CANARY_BY_STRATEGY = {
    "email": "canary.person@canary.example",
    "phone": "+49 30 5550 1234",
    "card_number": "4111 1111 1111 1111",
    "fpe": "4111111111111111",
    "ip_prefix": "203.0.113.77",
    "truncate": "10115",
    "partial": "CANARY-SECRET-1234",
}
_CANARY_BY_NAME = {
    "email": _CANARY_BY_STRATEGY["email"],
    "phone": _CANARY_BY_STRATEGY["phone"],
    "card": _CANARY_BY_STRATEGY["fpe"],
    "ip": _CANARY_BY_STRATEGY["ip_prefix"],
    "postal": _CANARY_BY_STRATEGY["truncate"],
}
_CANARY_BY_TYPE: dict[DataType, Any] = {
    DataType.INTEGER: 42,
    DataType.LONG: 4_200_000_042,
    DataType.DOUBLE: 12345.67,
    DataType.BOOLEAN: True,
    DataType.DATE: dt.date(1987, 6, 15),
    DataType.TIMESTAMP: dt.datetime(2024, 3, 9, 14, 30, tzinfo=dt.UTC),
}


@dataclass(frozen=True)
class ColumnPreview:
    """One column in the dry run: its protection, cells changed in the sample, an example."""

    column: str
    protection: str
    cells_changed: int
    example_before: str
    example_after: str


@dataclass(frozen=True)
class DryRunReport:
    """The dry run of one (dataset, purpose) on a sample of its source."""

    dataset: str
    purpose: str
    policy_version: str
    sample_rows: int
    rows_quarantined: int
    rows_filtered: int
    k_achieved: int | None
    columns: tuple[ColumnPreview, ...]
    not_in_governed_table: dict[str, str]


def _canary(
    column: str, data_type: DataType, strategy: str | None, allowed: tuple[Any, ...] | None
) -> Any:
    if allowed:
        return allowed[0]
    if data_type is DataType.STRING:
        if strategy in _CANARY_BY_STRATEGY:
            return _CANARY_BY_STRATEGY[str(strategy)]
        for hint, shaped in _CANARY_BY_NAME.items():
            if hint in column.lower():
                return shaped
        return f"canary-{column}-0001"
    return _CANARY_BY_TYPE[data_type]


def dry_run(
    spark: SparkSession,
    settings: Settings,
    policies: PolicySet,
    dataset: str,
    purpose: str,
    *,
    store: DeltaStore,
    source: str | None = None,
    sample_rows: int = 1000,
) -> DryRunReport:
    """Apply the purpose's policy to a sample of the source and to canaries; write nothing."""
    from pyspark.sql import functions as F

    ds = policies.dataset(dataset)
    plan = plan_protection(policies, dataset, purpose)
    raw_source = resolve_source(ds.source, settings.landing, source)
    raw = read_source(spark, raw_source, ds.source.options, store)
    check_columns(raw, ds)
    sample = with_reasons(raw.limit(sample_rows), ds, raw_source.text_typed).cache()
    try:
        keys = SecretStore(settings).keys(plan.key_references)
        good = sample.filter(F.size(F.col(REASONS)) == 0).drop(REASONS)
        row_filter = row_filter_column(ds, plan)
        kept = good.filter(row_filter) if row_filter is not None else good
        secrets = SecretColumns()
        protected = governed_columns(ds, plan, keys, 0, secrets)
        base = kept.crossJoin(F.broadcast(secrets.frame(spark))) if secrets.names else kept
        pairs = base.select(
            *[
                F.col(f"`{c.column}`").cast("string").alias(f"raw_{i}")
                for i, c in enumerate(plan.columns)
            ],
            *[p.cast("string").alias(f"out_{i}") for i, p in enumerate(protected)],
        )
        changed = [
            F.sum(F.when(~F.col(f"raw_{i}").eqNullSafe(F.col(f"out_{i}")), 1).otherwise(0)).alias(
                c.column
            )
            for i, c in enumerate(plan.columns)
        ]
        stats = sample.agg(
            F.count(F.lit(1)).alias("_n"),
            F.sum(F.when(F.size(F.col(REASONS)) > 0, 1).otherwise(0)).alias("_bad"),
        ).first()
        counts = (
            pairs.agg(F.count(F.lit(1)).alias("_kept"), *changed).first() if plan.columns else None
        )
        assert stats is not None
        k_achieved = (
            _k(ds, protect_frame(kept, ds, plan, keys, 0)) if ds.quasi_identifiers else None
        )
        canaries = _canary_examples(spark, policies, plan, keys)
        previews = tuple(
            ColumnPreview(
                c.column,
                str(c.protection),
                int((counts[c.column] if counts else 0) or 0),
                *canaries[c.column],
            )
            for c in plan.columns
        )
        n, bad = int(stats["_n"]), int(stats["_bad"] or 0)
        kept_rows = int(counts["_kept"]) if counts else n - bad
    finally:
        sample.unpersist()
    return DryRunReport(
        dataset=dataset,
        purpose=purpose,
        policy_version=policies.version,
        sample_rows=n,
        rows_quarantined=bad,
        rows_filtered=n - bad - kept_rows,
        k_achieved=k_achieved,
        columns=previews,
        not_in_governed_table={
            **{c: "drop" for c in plan.dropped},
            **{c: "dp_only" for c in plan.dp_only},
            **{c: "encrypt" for c in plan.encrypted},
        },
    )


def _k(ds: Any, governed: Any) -> int | None:
    from masking.kanon import enforce_k_anonymity

    qi = ds.quasi_identifiers
    present = [c for c in qi.columns if c in governed.columns]
    if not present:
        return None
    _, report = enforce_k_anonymity(governed, present, qi.k)
    return report.k_achieved


def _canary_examples(
    spark: SparkSession, policies: PolicySet, plan: ProtectionPlan, keys: dict[str, Any]
) -> dict[str, tuple[str, str]]:
    """Before/after pairs computed on one generated canary row (no real value is shown)."""
    from pyspark.sql.types import StructField, StructType

    ds = policies.dataset(plan.dataset)
    fields, row = [], []
    for name, spec in ds.columns.items():
        protection = ds.protection(name, plan.purpose, policies.lowest_clearance)
        strategy = (
            protection.strategy if protection and protection.kind is ProtectionKind.MASK else None
        )
        fields.append(StructField(name, _spark_type(spec.type), True))
        row.append(_canary(name, spec.type, strategy, spec.allowed))
    frame = spark.createDataFrame([tuple(row)], StructType(fields))
    after = protect_frame(frame, ds, plan, keys, 0).first()
    assert after is not None
    before = dict(zip([f.name for f in fields], row, strict=True))
    return {
        c.column: (
            str(before[c.column]),
            "NULL" if after[c.column] is None else str(after[c.column]),
        )
        for c in plan.columns
    }


def _spark_type(data_type: DataType) -> Any:
    from pyspark.sql import types as T

    return {
        DataType.STRING: T.StringType(),
        DataType.INTEGER: T.IntegerType(),
        DataType.LONG: T.LongType(),
        DataType.DOUBLE: T.DoubleType(),
        DataType.BOOLEAN: T.BooleanType(),
        DataType.DATE: T.DateType(),
        DataType.TIMESTAMP: T.TimestampType(),
    }[data_type]
