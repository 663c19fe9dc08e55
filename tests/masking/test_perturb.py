"""`date_shift`, `randomized_response` and `noise`: per-entity offsets keep intervals, and the
randomised strategies hit their stated rates and scales (fixed seeds, 20,000 rows)."""

from __future__ import annotations

import itertools
import math
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from masking import DataType, MaskingError
from masking.strategies.perturb import date_shift_offset, keep_probability

pytestmark = pytest.mark.spark

N = 20_000


# --- date_shift -------------------------------------------------------------------------------

DATES = [date(2020, 1, 1), date(2020, 3, 15), date(2021, 7, 4), date(1, 3, 1), date(9999, 11, 1)]


def test_when_dates_shifted_then_intervals_within_an_entity_are_kept(mask: Any, keys: Any) -> None:
    entities = ["alice"] * len(DATES) + ["bob"] * len(DATES)
    out = mask(
        DATES * 2,
        DataType.DATE,
        "date_shift",
        {"key": "customer-key", "max_days": 30},
        entity=entities,
    )
    for who, shifted in (("alice", out[: len(DATES)]), ("bob", out[len(DATES) :])):
        offset = date_shift_offset(who, keys["customer-key"].secret, 30)
        assert -30 <= offset <= 30
        assert shifted == [d + timedelta(days=offset) for d in DATES]  # same offset per entity
        assert [b - a for a, b in itertools.pairwise(shifted)] == [
            b - a for a, b in itertools.pairwise(DATES)
        ]


def test_when_many_entities_then_offsets_differ_and_stay_in_range(mask: Any, keys: Any) -> None:
    entities = [f"patient-{i}" for i in range(200)]
    day = date(2024, 1, 1)
    out = mask(
        [day] * 200,
        DataType.DATE,
        "date_shift",
        {"key": "customer-key", "max_days": 7},
        entity=entities,
    )
    offsets = [(d - day).days for d in out]
    assert offsets == [date_shift_offset(e, keys["customer-key"].secret, 7) for e in entities]
    assert set(offsets) == set(range(-7, 8)) - {0}  # all 14 offsets occur, never zero
    other = mask(
        [day] * 200,
        DataType.DATE,
        "date_shift",
        {"key": "other-key", "max_days": 7},
        entity=entities,
    )
    assert other != out  # another key, other offsets


def test_when_timestamps_shifted_then_time_of_day_kept(mask: Any, keys: Any) -> None:
    stamps = [datetime(2024, 3, 1, 8, 30), datetime(2024, 3, 2, 17, 45, 1, 250), None]
    out = mask(
        stamps,
        DataType.TIMESTAMP,
        "date_shift",
        {"key": "customer-key", "max_days": 90},
        entity=["e1", "e1", "e1"],
    )
    offset = timedelta(days=date_shift_offset("e1", keys["customer-key"].secret, 90))
    assert out == [stamps[0] + offset, stamps[1] + offset, None]


def test_when_entity_is_null_then_the_shifted_date_is_null(mask: Any) -> None:
    out = mask(
        [date(2024, 1, 1)],
        DataType.DATE,
        "date_shift",
        {"key": "customer-key", "max_days": 5},
        entity=[None],
    )
    assert out == [None]


def test_when_no_entity_column_then_masking_error(mask_frame: Any) -> None:
    with pytest.raises(MaskingError, match="needs the entity column"):
        mask_frame(
            [date(2024, 1, 1)], DataType.DATE, "date_shift", {"key": "customer-key", "max_days": 5}
        )


# --- randomized_response ----------------------------------------------------------------------


def _categorical(spark: Any, categories: list[str]) -> Any:
    from pyspark.sql import functions as F

    pick = (F.col("id") % len(categories) + 1).cast("int")
    return spark.range(N).select(
        F.element_at(F.array(*[F.lit(c) for c in categories]), pick).alias("c")
    )


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0])
def test_when_randomized_response_then_truth_kept_at_the_stated_rate(
    spark: Any, mask_expr: Any, epsilon: float
) -> None:
    from pyspark.sql import functions as F

    cats = ["a", "b", "c", "d"]
    df = _categorical(spark, cats)
    masked = mask_expr(
        df,
        "c",
        DataType.STRING,
        "randomized_response",
        {"epsilon": epsilon, "categories": cats},
        seed=42,
    )
    out = df.select(F.col("c"), masked.alias("out"))  # draw once, then count
    counts = out.groupBy((F.col("c") == F.col("out")).alias("kept"), "out").count().collect()
    kept = sum(r["count"] for r in counts if r.kept) / N
    p = keep_probability(epsilon, 4)
    assert p == pytest.approx(math.exp(epsilon) / (math.exp(epsilon) + 3))
    tolerance = 4 * math.sqrt(p * (1 - p) / N)  # four standard errors
    assert abs(kept - p) < tolerance
    assert {r.out for r in counts} == set(cats)  # only declared categories come out
    for category in cats:  # flips land uniformly on the other categories
        flipped = sum(r["count"] for r in counts if not r.kept and r.out == category) / N
        q = (1 - p) / 4
        assert abs(flipped - q) < 4 * math.sqrt(q * (1 - q) / N)


def test_when_randomized_response_rerun_with_same_seed_then_identical(
    spark: Any, mask_expr: Any
) -> None:
    cats = ["x", "y", "z"]
    df = _categorical(spark, cats)
    params = {"epsilon": 1.0, "categories": cats}

    def run(seed: int, column: str = "c") -> list[Any]:
        expr = mask_expr(df, "c", DataType.STRING, "randomized_response", params, seed=seed)
        return [r[0] for r in df.select(expr).collect()]

    first = run(7)
    assert first == run(7)  # reproducible
    assert first != run(8)  # another seed, another draw


def test_when_boolean_randomized_response_then_k_is_two(spark: Any, mask_expr: Any) -> None:
    from pyspark.sql import functions as F

    df = spark.range(N).select((F.col("id") % 2 == 0).alias("flag"))
    masked = mask_expr(df, "flag", DataType.BOOLEAN, "randomized_response", {"epsilon": 1.0})
    out = df.select((F.col("flag") == masked).cast("double").alias("kept"))
    kept = out.agg(F.avg("kept")).first()[0]
    p = math.e / (math.e + 1)
    assert abs(kept - p) < 4 * math.sqrt(p * (1 - p) / N)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),  # null stays null
        ("", "category"),  # not declared: a uniformly random category
        ("東京", "category"),  # not declared (unicode)
        ("x" * 10_000, "category"),  # not declared (10,000 chars)
    ],
)
def test_when_value_outside_categories_then_a_random_category(
    mask: Any, value: str | None, expected: str | None
) -> None:
    out = mask(
        [value] * 50,
        DataType.STRING,
        "randomized_response",
        {"epsilon": 2.0, "categories": ["a", "b", "c"]},
    )
    if expected is None:
        assert out == [None] * 50
    else:
        assert set(out) == {"a", "b", "c"}


# --- noise ------------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [10.0, 20.0])
def test_when_noise_added_then_laplace_scale_matches(
    spark: Any, mask_expr: Any, epsilon: float
) -> None:
    from pyspark.sql import functions as F

    df = spark.range(N).select(F.lit(50.0).alias("x"))
    params = {"lower": 0, "upper": 100, "epsilon": epsilon}
    noisy = mask_expr(df, "x", DataType.DOUBLE, "noise", params, seed=3)
    stats = (
        df.select((noisy - F.lit(50.0)).alias("n"))
        .agg(
            F.avg("n").alias("mean"),
            F.avg(F.abs("n")).alias("mad"),
            F.min("n").alias("lo"),
            F.max("n").alias("hi"),
            F.stddev("n").alias("sd"),
        )
        .first()
    )
    scale = 100 / epsilon  # (upper - lower) / epsilon
    assert stats.lo >= -50 and stats.hi <= 50  # clamped to the declared bounds
    assert abs(stats.mean) < 4 * math.sqrt(2) * scale / math.sqrt(N)  # centred
    assert stats.mad == pytest.approx(scale, rel=0.05)  # E|Laplace(b)| = b
    assert stats.sd == pytest.approx(math.sqrt(2) * scale, rel=0.06)  # sd = b * sqrt(2)


@pytest.mark.parametrize(
    ("data_type", "params", "values"),
    [
        # ages: integers stay integers inside the bounds, extremes are clamped first
        (DataType.INTEGER, {"lower": 0, "upper": 120, "epsilon": 1}, [0, 120, 2**31 - 1, -(2**31)]),
        (DataType.LONG, {"lower": -5.5, "upper": 5.5, "epsilon": 0.1}, [2**63 - 1, -(2**63), 0]),
        (DataType.DOUBLE, {"lower": -1, "upper": 1, "epsilon": 0.5}, [1e308, -1e308, 0.0, -0.0]),
    ],
)
def test_when_noise_added_then_values_stay_within_bounds(
    mask: Any, data_type: DataType, params: dict[str, float], values: list[Any]
) -> None:
    out = mask(values * 200, data_type, "noise", params)
    assert all(params["lower"] <= v <= params["upper"] for v in out)
    if data_type is not DataType.DOUBLE:
        assert all(isinstance(v, int) for v in out)
    assert len(set(out)) > 1  # it is noisy


def test_when_noise_input_is_null_or_nan_then_null(mask: Any) -> None:
    out = mask(
        [None, math.nan, 0.5], DataType.DOUBLE, "noise", {"lower": 0, "upper": 1, "epsilon": 1}
    )
    assert out[0] is None and out[1] is None and 0 <= out[2] <= 1


def test_when_noise_described_then_it_says_local_not_central() -> None:
    from masking import REGISTRY

    text = REGISTRY.get("noise").description + (REGISTRY.get("noise").__doc__ or "")
    assert "local" in text.lower() and "not a central" in text.lower()
