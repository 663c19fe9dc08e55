"""Compile a structured query into an immutable `DpPlan`: sensitivities, budget split, scales.

Sensitivities (one entity contributes at most m = max_rows rows; bounds [L, U], B = max(|L|,|U|)):
count m (L1 and L2 of a group vector too: the m rows fall in at most m groups); sum m·B;
sum of squares m·max(L², U²); histogram (a count per public category) m. Sums run on an
integer grid of resolution r = 2^(ceil(log2 B) - 20): Spark adds exact integers, so the
sensitivity is exact (no float-summation leak), at a rounding error ≤ r/2 per row.
Budget split: count/sum/histogram spend all of it; mean = noisy sum / noisy count, half each;
variance from count, sum, sum of squares, a third each; q quantiles 1/q each (report noisy
max over candidate scores, Linf sensitivity m). Private group keys: half the epsilon and all
of delta go to OpenDP's Laplace threshold (whose noisy counts are the release of a count).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import product

from privacy.dp.errors import InvalidQuery
from privacy.dp.mechanisms import calibrate, privacy_map
from privacy.dp.query import DpPlan, DpQuery, StatisticPlan
from privacy.ledger import BudgetKind, PrivacyBudget

__all__ = ["MAX_GROUPS", "ColumnDp", "compile_plan", "split"]

MAX_GROUPS = 10_000
GRID_BITS = 20


@dataclass(frozen=True)
class ColumnDp:
    """What the policy declares for DP on one column."""

    bounds: tuple[float, float] | None = None
    public_categories: tuple[str, ...] | None = None


def split(total: Decimal, parts: int) -> list[Decimal]:
    """`total` in `parts` exact Decimal shares that add up to `total` exactly."""
    with decimal.localcontext() as ctx:
        ctx.prec = 120
        base = (total / parts).quantize(Decimal("1E-24"), rounding=decimal.ROUND_DOWN)
    shares = [base] * (parts - 1)
    return [*shares, total - sum(shares, Decimal(0))]


def _grid(bound: float) -> tuple[float, int]:
    exponent = math.ceil(math.log2(bound)) - GRID_BITS if bound > 0 else 0
    resolution = math.ldexp(1.0, exponent)
    return resolution, math.ceil(bound / resolution)


def compile_plan(
    *,
    dataset: str,
    purpose: str,
    query: DpQuery,
    source: str,
    table: str,
    entity: str,
    max_rows: int,
    columns: Mapping[str, ColumnDp],
    available: Sequence[str],
    row_filters: Sequence[str],
    amount: PrivacyBudget,
) -> DpPlan:
    """Check the query against the policy facts and fix every mechanism's scale."""
    zcdp = amount.kind is BudgetKind.ZCDP
    main = amount.rho if zcdp else amount.epsilon
    assert main is not None
    if main <= 0:
        raise InvalidQuery("a release must spend a positive epsilon (or rho)")
    group_by = tuple(query.group_by)
    column = query.column
    if query.kind == "histogram":
        assert column is not None
        group_by, column = (column, *group_by), None
    for name in (*group_by, *([column] if column else [])):
        if name not in available:
            raise InvalidQuery(f"column '{name}' is not available to DP queries for '{purpose}'")
    if len(set(group_by)) != len(group_by):
        raise InvalidQuery("group_by names a column twice")
    lower = upper = None
    if column is not None and query.kind != "count":
        spec = columns.get(column)
        if spec is None or spec.bounds is None:
            raise InvalidQuery(f"column '{column}' has no declared DP bounds")
        lower, upper = spec.bounds
    cats = [columns.get(g, ColumnDp()).public_categories for g in group_by]
    public: tuple[tuple[str, ...], ...] | None = None
    if all(c is not None for c in cats):
        public = tuple(product(*[c for c in cats if c is not None]))
        if len(public) > MAX_GROUPS:
            raise InvalidQuery(f"more than {MAX_GROUPS} public groups")
    elif amount.kind is not BudgetKind.APPROXIMATE or not amount.delta:
        raise InvalidQuery(
            "group keys that are not public categories are chosen by OpenDP's threshold "
            "mechanism, which needs an (epsilon, delta) budget and a positive delta"
        )
    m = max_rows
    stats: list[StatisticPlan] = []
    remaining = main
    if public is None:
        key_share = main if query.kind in ("count", "histogram") else split(main, 2)[0]
        remaining = main - key_share
        assert amount.delta is not None
        scale = calibrate("laplace_threshold", m, key_share, zcdp=False)
        threshold = _threshold(scale, m, amount.delta)
        stats.append(
            StatisticPlan(
                name="keys",
                column=None,
                share=key_share,
                mechanism="laplace_threshold",
                sensitivity=m,
                scale=scale,
                threshold=threshold,
                delta=amount.delta,
            )
        )
    noise = "gaussian" if zcdp else "laplace"
    names: list[str] = {
        "count": ["count"],
        "histogram": ["count"],
        "sum": ["sum"],
        "mean": ["count", "sum"],
        "variance": ["count", "sum", "sum_sq"],
        "quantiles": ["quantile"] * len(query.alphas),
    }[query.kind]
    if public is None and query.kind in ("count", "histogram"):
        names = []
    for i, (name, share) in enumerate(
        zip(names, split(remaining, len(names)) if names else [], strict=True)
    ):
        if name == "count":
            stats.append(
                StatisticPlan(
                    name="count",
                    column=column,
                    share=share,
                    mechanism=noise,
                    sensitivity=m,
                    scale=calibrate(noise, m, share, zcdp=zcdp),
                )
            )
        elif name in ("sum", "sum_sq"):
            assert lower is not None and upper is not None
            bound = max(abs(lower), abs(upper))
            if name == "sum_sq":
                bound = bound * bound
            resolution, units = _grid(bound)
            sens = m * units
            stats.append(
                StatisticPlan(
                    name=name,
                    column=column,
                    share=share,
                    mechanism=noise,
                    sensitivity=sens,
                    scale=calibrate(noise, sens, share, zcdp=zcdp),
                    resolution=resolution,
                    bound_units=units,
                    lower=lower,
                    upper=upper,
                )
            )
        else:
            assert lower is not None and upper is not None
            k = query.candidates
            cands = tuple(lower + (upper - lower) * j / (k - 1) for j in range(k))
            stats.append(
                StatisticPlan(
                    name="quantile",
                    column=column,
                    share=share,
                    mechanism="noisy_max",
                    sensitivity=float(m),
                    scale=calibrate("noisy_max", float(m), share, zcdp=zcdp),
                    lower=lower,
                    upper=upper,
                    alpha=query.alphas[i],
                    candidates=cands,
                )
            )
    return DpPlan(
        dataset=dataset,
        purpose=purpose,
        query=query,
        source="dp_zone" if source == "dp_zone" else "governed",
        table=table,
        entity=entity,
        max_rows=m,
        row_filters=tuple(row_filters),
        measure=amount.kind.value,
        epsilon=amount.epsilon,
        delta=amount.delta,
        rho=amount.rho,
        group_columns=group_by,
        public_groups=public,
        statistics=tuple(stats),
    )


def _threshold(scale: float, m: int, delta: Decimal) -> int:
    """The smallest integer threshold whose OpenDP map has delta ≤ `delta` (doubling + bisect)."""

    def ok(t: int) -> bool:
        return privacy_map("laplace_threshold", scale, m, zcdp=False, threshold=t)[1] <= delta

    high = max(m, 1)
    while not ok(high):
        high *= 2
        if high > 2**60:
            raise InvalidQuery("delta is too small for the threshold mechanism")
    low = 0
    while high - low > 1:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid
    return high
