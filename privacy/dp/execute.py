"""Run a `DpPlan`: bound contributions and aggregate in Spark, then add OpenDP noise.

Only small aggregates (one row per group) reach the driver. Bounding runs before any
aggregation: each entity keeps at most `max_rows` rows, a seeded random sample (row_number
over a window partitioned by the entity, ordered by a seeded xxhash64 of the row), then
values are clamped to the declared bounds.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from privacy.dp.mechanisms import accuracy95, checked
from privacy.dp.query import DpPlan, StatisticPlan

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = [
    "Aggregates",
    "DpRelease",
    "StatisticRelease",
    "aggregate",
    "bound_contributions",
    "release",
]

GroupKey = tuple[str, ...]
_SEP = "\x1f"


@dataclass(frozen=True)
class Aggregates:
    """Exact aggregates of the bounded data, per group: statistic name -> values."""

    groups: tuple[GroupKey, ...]
    values: Mapping[str, tuple[Any, ...]]  # count/sum/sum_sq: ints; quantile_i: score tuples


@dataclass(frozen=True)
class StatisticRelease:
    """One noisy vector: its mechanism, noise scale, 95% accuracy and share of the budget."""

    name: str
    mechanism: str
    scale: float
    accuracy95: float | None
    share: str
    values: tuple[float | int, ...]


@dataclass(frozen=True)
class DpRelease:
    """What a release returns: values per group and how they were made."""

    kind: str
    column: str | None
    groups: tuple[GroupKey, ...]
    values: tuple[Any, ...]
    statistics: tuple[StatisticRelease, ...]
    accuracy95: float | None
    notes: tuple[str, ...] = field(default=())


def bound_contributions(
    frame: DataFrame, entity: str, max_rows: int, seed: int | None = None
) -> DataFrame:
    """At most `max_rows` rows per entity: a seeded random sample, not the first N."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    seed = secrets.randbits(62) if seed is None else seed
    cols = [F.col(f"`{c}`") for c in frame.columns]
    order = F.xxhash64(F.lit(seed), *cols)
    window = Window.partitionBy(F.col(f"`{entity}`")).orderBy(order)
    return (
        frame.withColumn("__dp_rank", F.row_number().over(window))
        .filter(F.col("__dp_rank") <= max_rows)
        .drop("__dp_rank")
    )


def _clamped(stat: StatisticPlan) -> Column:
    from pyspark.sql import functions as F

    assert stat.column is not None and stat.lower is not None and stat.upper is not None
    x = F.col(f"`{stat.column}`").cast("double")
    return F.least(F.greatest(x, F.lit(stat.lower)), F.lit(stat.upper))


def _units(stat: StatisticPlan) -> Column:
    from pyspark.sql import functions as F

    value = _clamped(stat)
    if stat.name == "sum_sq":
        value = value * value
    units = F.round(value / F.lit(stat.resolution)).cast("long")
    bound = F.lit(stat.bound_units)
    return F.least(F.greatest(units, -bound), bound)


def aggregate(frame: DataFrame, plan: DpPlan, seed: int | None = None) -> Aggregates:
    """Bounded, exact aggregates of `frame` (row filters already applied) for `plan`."""
    from pyspark.sql import functions as F

    bounded = bound_contributions(frame, plan.entity, plan.max_rows, seed)
    keys = [
        F.col(f"`{g}`").cast("string").alias(f"__g{i}") for i, g in enumerate(plan.group_columns)
    ]
    if plan.public_groups is not None and plan.group_columns:
        for i, g in enumerate(plan.group_columns):
            allowed = sorted({key[i] for key in plan.public_groups})
            bounded = bounded.filter(F.col(f"`{g}`").cast("string").isin(allowed))
    exprs: list[Column] = [F.count(F.lit(1)).alias("__rows")]
    for i, stat in enumerate(plan.statistics):
        if stat.name == "count":
            if stat.column is None:
                exprs.append(F.count(F.lit(1)).alias(f"s{i}"))
            else:
                exprs.append(F.count(F.col(f"`{stat.column}`")).alias(f"s{i}"))
        elif stat.name in ("sum", "sum_sq"):
            exprs.append(F.coalesce(F.sum(_units(stat)), F.lit(0)).cast("long").alias(f"s{i}"))
        elif stat.name == "quantile":
            x = _clamped(stat)
            exprs.append(F.count(x).alias(f"s{i}_n"))
            for j, c in enumerate(stat.candidates):
                exprs.append(F.sum(F.when(x < F.lit(c), 1).otherwise(0)).alias(f"s{i}_b{j}"))
    if plan.group_columns:
        rows = (
            bounded.select(*keys, *[F.col(f"`{c}`") for c in bounded.columns])
            .groupBy(*[f"__g{i}" for i in range(len(keys))])
            .agg(*exprs)
            .collect()
        )
    else:
        rows = bounded.agg(*exprs).collect()
    by_key: dict[GroupKey, Any] = {}
    for row in rows:
        key = tuple(str(row[f"__g{i}"]) for i in range(len(keys)))
        by_key[key] = row
    if plan.public_groups is not None:
        groups = plan.public_groups if plan.group_columns else ((),)
    else:
        groups = tuple(sorted(k for k in by_key if all(part != "None" for part in k)))
    values: dict[str, tuple[Any, ...]] = {}
    for i, stat in enumerate(plan.statistics):
        if stat.name == "keys":
            values[f"s{i}"] = tuple(int(by_key[g]["__rows"]) for g in groups)
        elif stat.name == "quantile":
            scores = []
            for group in groups:
                found = by_key.get(group)
                n = int(found[f"s{i}_n"]) if found is not None else 0
                below = [
                    int(found[f"s{i}_b{j}"] or 0) if found is not None else 0
                    for j in range(len(stat.candidates))
                ]
                assert stat.alpha is not None
                scores.append(tuple(-abs(b - stat.alpha * n) for b in below))
            values[f"s{i}"] = tuple(scores)
        else:
            values[f"s{i}"] = tuple(
                int(by_key[g][f"s{i}"] or 0) if g in by_key else 0 for g in groups
            )
    return Aggregates(groups=tuple(groups), values=values)


def release(plan: DpPlan, aggregates: Aggregates) -> DpRelease:
    """Check every privacy map against its share, then draw OpenDP noise on the aggregates."""
    zcdp = plan.measure == "zcdp"
    measurements = [
        checked(
            s.mechanism,
            s.scale,
            s.sensitivity,
            s.share,
            zcdp=zcdp,
            threshold=s.threshold,
            delta=s.delta,
        )
        for s in plan.statistics
    ]  # every map is verified before the first noise is drawn
    groups = aggregates.groups
    out: list[StatisticRelease] = []
    noisy: dict[str, list[Any]] = {}
    for i, (stat, meas) in enumerate(zip(plan.statistics, measurements, strict=True)):
        exact = aggregates.values[f"s{i}"]
        if stat.name == "keys":
            counts = meas({_SEP.join(g): int(c) for g, c in zip(groups, exact, strict=True)})
            groups = tuple(
                sorted(tuple(k.split(_SEP)) if plan.group_columns else () for k in counts)
            )
            noisy["keys"] = [int(counts[_SEP.join(g)]) for g in groups]
            vals: Sequence[Any] = noisy["keys"]
            index = {g: j for j, g in enumerate(aggregates.groups)}
            aggregates = Aggregates(
                groups,
                {k: tuple(v[index[g]] for g in groups) for k, v in aggregates.values.items()},
            )
        elif stat.name == "quantile":
            picks = [meas(list(scores)) if scores else 0 for scores in exact]
            vals = [stat.candidates[int(p)] for p in picks]
            noisy.setdefault("quantile", []).append(vals)
        else:
            raw = meas([int(v) for v in exact]) if exact else []
            vals = [int(v) * stat.resolution if stat.name != "count" else int(v) for v in raw]
            noisy[stat.name] = list(vals)
        acc = accuracy95(stat.mechanism, stat.scale)
        out.append(
            StatisticRelease(
                name=stat.name,
                mechanism=stat.mechanism,
                scale=stat.scale * stat.resolution,
                accuracy95=None if acc is None else acc * stat.resolution,
                share=str(stat.share),
                values=tuple(vals),
            )
        )
    return _combine(plan, groups, noisy, out)


def _combine(
    plan: DpPlan,
    groups: tuple[GroupKey, ...],
    noisy: Mapping[str, list[Any]],
    stats: list[StatisticRelease],
) -> DpRelease:
    kind = plan.query.kind
    notes: list[str] = []
    acc: float | None = None
    if kind in ("count", "histogram"):
        values: list[Any] = list(noisy.get("count", noisy.get("keys", [])))
        acc = stats[-1].accuracy95
    elif kind == "sum":
        values = list(noisy["sum"])
        acc = stats[-1].accuracy95
    elif kind in ("mean", "variance"):
        values = []
        for j in range(len(groups)):
            n = max(noisy["count"][j], 1)
            mean = noisy["sum"][j] / n
            if kind == "mean":
                values.append(mean)
            else:
                values.append(max(noisy["sum_sq"][j] / n - mean * mean, 0.0))
        notes.append(
            "derived from the noisy statistics listed (post-processing; no accuracy "
            "bound is given for the ratio)"
        )
    else:
        values = [tuple(q[j] for q in noisy["quantile"]) for j in range(len(groups))]
        notes.append("each quantile is one of the evenly spaced candidates over the bounds")
    lo = [s for s in plan.statistics if s.lower is not None]
    if lo and kind in ("mean", "quantiles"):
        low, high = lo[0].lower, lo[0].upper
        assert low is not None and high is not None
        values = [v if isinstance(v, tuple) else min(max(v, low), high) for v in values]
    return DpRelease(
        kind=kind,
        column=plan.query.column,
        groups=groups,
        values=tuple(values),
        statistics=tuple(stats),
        accuracy95=acc,
        notes=tuple(notes),
    )
