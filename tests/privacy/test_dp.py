"""DP engine: exact accounting, noise spread, contribution bounding and utility."""

from __future__ import annotations

import statistics
from decimal import Decimal

import pytest

from privacy.dp import (
    ColumnDp,
    DpQuery,
    InvalidQuery,
    aggregate,
    bound_contributions,
    checked,
    compile_plan,
    privacy_map,
    release,
)
from privacy.ledger import PrivacyBudget

COLUMNS = {
    "amount": ColumnDp(bounds=(0.0, 5000.0)),
    "category": ColumnDp(public_categories=("a", "b", "c")),
}
AVAILABLE = ["amount", "category", "entity", "other"]
KINDS = ["count", "sum", "mean", "variance", "histogram", "quantiles"]


def plan_for(query: DpQuery, amount: PrivacyBudget, max_rows: int = 5):
    return compile_plan(
        dataset="t",
        purpose="research",
        query=query,
        source="dp_zone",
        table="unused",
        entity="entity",
        max_rows=max_rows,
        columns=COLUMNS,
        available=AVAILABLE,
        row_filters=[],
        amount=amount,
    )


def query_of(kind: str, grouped: bool) -> DpQuery:
    column = "category" if kind == "histogram" else "amount"
    return DpQuery(
        kind=kind,
        column=column,
        group_by=("category",) if grouped and kind != "histogram" else (),
        alphas=(0.25, 0.5, 0.75),
    )


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("amount", [PrivacyBudget.pure("0.7"), PrivacyBudget.zcdp("0.05")])
def test_when_a_plan_is_compiled_then_the_privacy_maps_add_up_to_the_charge(kind, grouped, amount):
    plan = plan_for(query_of(kind, grouped), amount)
    charged = amount.parts[0]
    assert sum((s.share for s in plan.statistics), Decimal(0)) == charged  # exact split
    total = 0.0
    for s in plan.statistics:
        meas = checked(
            s.mechanism, s.scale, s.sensitivity, s.share, zcdp=amount.kind.value == "zcdp"
        )
        spent = meas.map(float(s.sensitivity) if s.mechanism == "noisy_max" else int(s.sensitivity))
        assert float(s.share) * (1 - 1e-9) <= spent <= float(s.share)
        total += spent
    assert total == pytest.approx(float(charged), rel=1e-9)


def test_when_keys_are_not_public_then_the_threshold_mechanism_spends_epsilon_and_delta():
    amount = PrivacyBudget.approximate("1", "1e-6")
    plan = plan_for(DpQuery(kind="sum", column="amount", group_by=("other",)), amount)
    keys = plan.statistics[0]
    eps, delta = privacy_map(
        keys.mechanism, keys.scale, keys.sensitivity, zcdp=False, threshold=keys.threshold
    )
    assert keys.name == "keys" and delta <= 1e-6
    assert eps + float(plan.statistics[1].share) == pytest.approx(1.0, rel=1e-9)
    with pytest.raises(InvalidQuery, match="threshold"):
        plan_for(DpQuery(kind="count", group_by=("other",)), PrivacyBudget.pure(1))


def test_when_a_column_has_no_bounds_or_is_unavailable_then_the_query_is_refused():
    with pytest.raises(InvalidQuery, match="bounds"):
        plan_for(DpQuery(kind="sum", column="other"), PrivacyBudget.pure(1))
    with pytest.raises(InvalidQuery, match="not available"):
        plan_for(DpQuery(kind="sum", column="secret"), PrivacyBudget.pure(1))


def test_when_many_releases_are_drawn_then_the_noise_spread_matches_the_declared_scale():
    plan = plan_for(DpQuery(kind="count"), PrivacyBudget.pure("0.5"), max_rows=1)
    s = plan.statistics[0]
    assert s.scale == pytest.approx(2.0)
    meas = checked(s.mechanism, s.scale, s.sensitivity, s.share, zcdp=False)
    noise = [meas([1000])[0] - 1000 for _ in range(2000)]
    # discrete Laplace(2): sd ≈ sqrt(2)·2 = 2.83; 2,000 draws estimate it within ~5% (1 sd);
    # the tolerance of 15% makes a false failure a > 3-sigma event.
    assert statistics.pstdev(noise) == pytest.approx(2**0.5 * 2.0, rel=0.15)
    assert abs(statistics.fmean(noise)) < 0.3


@pytest.mark.spark
def test_when_one_entity_has_1000_rows_then_it_moves_a_count_by_at_most_its_bound(spark):
    from pyspark.sql import functions as F

    heavy = spark.range(1000).select(F.lit("heavy").alias("entity"), F.lit(1.0).alias("amount"))
    light = spark.range(20).select(
        F.concat(F.lit("e"), F.col("id").cast("string")).alias("entity"), F.lit(1.0).alias("amount")
    )
    plan = plan_for(DpQuery(kind="count"), PrivacyBudget.pure(1), max_rows=5)
    with_heavy = aggregate(heavy.unionByName(light), plan, seed=7).values["s0"][0]
    without = aggregate(light, plan, seed=7).values["s0"][0]
    assert with_heavy - without == 5
    kept = (
        bound_contributions(
            heavy.withColumn("i", F.monotonically_increasing_id()), "entity", 5, seed=1
        )
        .select("i")
        .collect()
    )
    other = (
        bound_contributions(
            heavy.withColumn("i", F.monotonically_increasing_id()), "entity", 5, seed=2
        )
        .select("i")
        .collect()
    )
    assert len(kept) == 5 and {r.i for r in kept} != set(range(5))  # a sample, not the first N
    assert {r.i for r in kept} != {r.i for r in other}


@pytest.mark.spark
def test_when_values_exceed_the_bounds_then_sums_are_clamped(spark):
    frame = spark.createDataFrame(
        [("x", 1e9), ("y", -5.0), ("z", 10.0)], "entity string, amount double"
    )
    plan = plan_for(DpQuery(kind="sum", column="amount"), PrivacyBudget.pure(1))
    units = aggregate(frame, plan, seed=1).values["s0"][0]
    assert units * plan.statistics[0].resolution == pytest.approx(5010.0, abs=0.01)
    out = release(plan, aggregate(frame, plan, seed=1))
    assert out.statistics[0].mechanism == "laplace" and out.accuracy95 is not None


@pytest.mark.spark
def test_when_a_million_rows_are_released_then_the_error_is_the_mechanisms_error(spark):
    from pyspark.sql import functions as F

    frame = spark.range(1_000_000).select(
        (F.col("id") % 200_000).cast("string").alias("entity"),
        (F.col("id") % 5001).cast("double").alias("amount"),
        F.element_at(F.array(*[F.lit(c) for c in "abc"]), (F.col("id") % 3 + 1).cast("int")).alias(
            "category"
        ),
    )
    for kind in ("count", "sum"):
        plan = plan_for(DpQuery(kind=kind, column="amount"), PrivacyBudget.pure("0.5"))
        exact = aggregate(frame, plan, seed=3).values["s0"]
        s = plan.statistics[0]
        meas = checked(s.mechanism, s.scale, s.sensitivity, s.share, zcdp=False)
        errors = [abs(meas(list(exact))[0] - exact[0]) * s.resolution for _ in range(2000)]
        theoretical = s.scale * s.resolution  # E|Laplace(b)| = b
        assert statistics.fmean(errors) == pytest.approx(theoretical, rel=0.10)
    grouped = plan_for(
        DpQuery(kind="mean", column="amount", group_by=("category",)), PrivacyBudget.pure(1)
    )
    out = release(grouped, aggregate(frame, grouped, seed=3))
    assert [g[0] for g in out.groups] == ["a", "b", "c"]
    assert all(abs(v - 2500) < 50 for v in out.values)
