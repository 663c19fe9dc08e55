"""k-anonymity by suppression: null the quasi-identifiers of rows in classes smaller than k.

Everything runs as Spark window and aggregate expressions; only a handful of aggregate
numbers reach the driver for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from masking.base import MaskingError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["KAnonymityReport", "enforce_k_anonymity"]


@dataclass(frozen=True)
class KAnonymityReport:
    """What `enforce_k_anonymity` did and achieved.

    `k_achieved` is the smallest equivalence class after suppression, where the suppressed
    rows (all quasi-identifiers null) form one class together with any rows whose
    quasi-identifiers were all null already; it can be below `k` when few rows were
    suppressed. It is 0 for an empty input. `l_achieved` is the smallest number of distinct
    non-null sensitive values in a class (None without a sensitive column).
    `cells_suppressed` counts quasi-identifier cells that were non-null and became null.
    """

    k: int
    k_achieved: int
    l_achieved: int | None
    cells_suppressed: int
    rows_in_small_classes: int
    rows: int
    classes: int


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def enforce_k_anonymity(
    df: DataFrame, quasi_identifiers: list[str], k: int, sensitive: str | None = None
) -> tuple[DataFrame, KAnonymityReport]:
    """Suppress (null) the quasi-identifier cells of rows whose class has fewer than `k` rows.

    Returns the suppressed DataFrame (same columns, same order) and a report. The input is
    evaluated twice for the report; cache it first if it is expensive.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise MaskingError(f"k must be a whole number >= 1, got {k!r}")
    if not quasi_identifiers:
        raise MaskingError("k-anonymity needs at least one quasi-identifier column")
    if len(set(quasi_identifiers)) != len(quasi_identifiers):
        raise MaskingError("quasi-identifier columns are listed more than once")
    missing = [
        c for c in [*quasi_identifiers, *([sensitive] if sensitive else [])] if c not in df.columns
    ]
    if missing:
        raise MaskingError(f"columns not in the DataFrame: {', '.join(missing)}")
    if sensitive is not None and sensitive in quasi_identifiers:
        raise MaskingError(f"the sensitive column {sensitive!r} is also a quasi-identifier")

    size_name = "__kanon_class_size"
    while size_name in df.columns:
        size_name += "_"
    qis = [_col(c) for c in quasi_identifiers]
    sized = df.withColumn(size_name, F.count(F.lit(1)).over(Window.partitionBy(*qis)))
    size = _col(size_name)
    small = size < F.lit(k)
    qi_set = set(quasi_identifiers)
    suppressed = sized.select(
        *[
            F.when(small, F.lit(None).cast(df.schema[c].dataType)).otherwise(_col(c)).alias(c)
            if c in qi_set
            else _col(c)
            for c in df.columns
        ]
    )

    before = sized.agg(
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(F.when(small, 1).otherwise(0)), F.lit(0)).alias("small_rows"),
        F.coalesce(
            F.sum(
                sum(
                    (F.when(small & q.isNotNull(), 1).otherwise(0) for q in qis),
                    start=F.lit(0),
                )
            ),
            F.lit(0),
        ).alias("cells"),
    ).first()
    assert before is not None

    per_class = [F.count(F.lit(1)).alias("n")]
    if sensitive is not None:
        per_class.append(F.countDistinct(_col(sensitive)).alias("l"))
    classes = suppressed.groupBy(*[_col(c) for c in quasi_identifiers]).agg(*per_class)
    after = classes.agg(
        F.count(F.lit(1)).alias("classes"),
        F.min("n").alias("k"),
        *([F.min("l").alias("l")] if sensitive is not None else []),
    ).first()
    assert after is not None

    report = KAnonymityReport(
        k=k,
        k_achieved=int(after["k"] or 0),
        l_achieved=(int(after["l"] or 0) if sensitive is not None else None),
        cells_suppressed=int(before["cells"]),
        rows_in_small_classes=int(before["small_rows"]),
        rows=int(before["rows"]),
        classes=int(after["classes"]),
    )
    return suppressed, report
