"""Enforce a dataset's declared schema on raw rows, as one native Spark projection.

Every declared column is cast to its type with `try_cast`; each row gets a `_reasons`
array naming every rule it breaks (missing required value, wrong type, value outside the
allowed set, pattern, range). Rows with reasons go to quarantine; nothing is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import IngestError
from gateway.policy.dataset import ColumnSpec, DatasetPolicy
from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["REASONS", "check_columns", "with_reasons"]

REASONS = "_reasons"

# Text forms Spark's cast would accept too loosely ("2020" as a date, "12.5" as an int).
_TEXT_FORMS = {
    DataType.INTEGER: r"^\s*[+-]?\d+\s*$",
    DataType.LONG: r"^\s*[+-]?\d+\s*$",
    DataType.DATE: r"^\d{4}-\d{2}-\d{2}$",
    DataType.TIMESTAMP: (
        r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
    ),
    DataType.BOOLEAN: r"^(?i)(true|false)$",
}


def check_columns(raw: DataFrame, ds: DatasetPolicy) -> None:
    """Refuse a source whose columns differ from the declared ones (fail closed)."""
    present = set(raw.columns)
    declared = set(ds.columns)
    missing = sorted(declared - present)
    extra = sorted(present - declared - {"_corrupt_record"})
    if missing:
        raise IngestError(f"source of '{ds.dataset}' lacks declared columns: {', '.join(missing)}")
    if extra:
        raise IngestError(
            f"source of '{ds.dataset}' has columns the policy does not declare: "
            f"{', '.join(extra)} (declare them, with a protection, before ingesting)"
        )


def with_reasons(raw: DataFrame, ds: DatasetPolicy, text_typed: bool) -> DataFrame:
    """Typed declared columns, in policy order, plus `_reasons` (empty for a good row)."""
    from pyspark.sql import functions as F

    typed: list[Column] = []
    checks: list[Column] = []
    for name, spec in ds.columns.items():
        source = F.col(f"`{name}`")
        value = source.try_cast(spec.type.spark_sql)
        if text_typed and spec.type is not DataType.STRING:
            source = F.trim(source)
            value = F.when(source == "", F.lit(None)).otherwise(
                source.try_cast(spec.type.spark_sql)
            )
        typed.append(value.alias(name))
        checks.extend(_rules(name, spec, source, value, text_typed))
    reasons = F.array_compact(F.array(*checks)) if checks else F.array().cast("array<string>")
    return raw.select(*typed, reasons.alias(REASONS))


def _rules(
    name: str, spec: ColumnSpec, source: Column, value: Column, text_typed: bool
) -> list[Column]:
    from pyspark.sql import functions as F

    def reason(condition: Column, message: str) -> Column:
        return F.when(condition, F.lit(f"{name}: {message}"))

    blank = (
        source.isNull() | (F.trim(source.cast("string")) == "") if text_typed else source.isNull()
    )
    present = ~blank
    rules = []
    if not spec.nullable:
        rules.append(reason(blank, "required value is missing"))
    bad_type = present & value.isNull()
    if text_typed and spec.type in _TEXT_FORMS:
        bad_type = present & (value.isNull() | ~source.cast("string").rlike(_TEXT_FORMS[spec.type]))
    rules.append(reason(bad_type, f"not a valid {spec.type.value}"))
    if spec.type is DataType.DOUBLE:
        rules.append(
            reason(
                value.isNotNull() & (F.isnan(value) | (F.abs(value) == float("inf"))),
                "not a finite number",
            )
        )
    if spec.allowed is not None:
        rules.append(
            reason(
                value.isNotNull() & ~value.isin(list(spec.allowed)),
                "value is not in the allowed set",
            )
        )
    if spec.pattern is not None:
        rules.append(
            reason(
                value.isNotNull() & ~value.rlike(spec.pattern),
                "value does not match the declared pattern",
            )
        )
    for bound, below in (("min", True), ("max", False)):
        limit = getattr(spec, bound)
        if limit is None:
            continue
        literal = _bound_literal(name, spec, limit)
        outside = value < literal if below else value > literal
        rules.append(
            reason(
                value.isNotNull() & outside,
                f"value is {'below the minimum' if below else 'above the maximum'}",
            )
        )
    return rules


def _bound_literal(name: str, spec: ColumnSpec, limit: float | str) -> Column:
    import datetime as dt

    from pyspark.sql import functions as F

    try:
        if spec.type is DataType.DATE:
            return F.lit(dt.date.fromisoformat(str(limit)))
        if spec.type is DataType.TIMESTAMP:
            return F.lit(dt.datetime.fromisoformat(str(limit)))
        return F.lit(float(limit))
    except ValueError:
        raise IngestError(f"column '{name}': bound {limit!r} is not a {spec.type.value}") from None
