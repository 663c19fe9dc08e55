"""DP group-by sum over 2 million rows vs the same exact aggregation in plain Spark.

    .venv/bin/python bench/dp.py [--rows 2000000] [--repeats 3]

Prints both times (median of repeats, after one warm-up each), their ratio (target ≤ 1.5)
and the DP error against the mechanism's theoretical error (E|Laplace(b)| = b).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from gateway.settings import Settings
    from gateway.spark import create_spark_session
    from privacy.dp import ColumnDp, DpQuery, aggregate, compile_plan, release
    from privacy.ledger import PrivacyBudget

    home = Path(tempfile.mkdtemp(prefix="bench-dp-"))
    spark = create_spark_session(Settings(home=home), app_name="bench-dp")
    cats = [f"c{i}" for i in range(8)]
    frame = (
        spark.range(args.rows)
        .select(
            (F.col("id") % (args.rows // 10)).cast("string").alias("entity"),
            ((F.col("id") * 7919) % 5001).cast("double").alias("amount"),
            F.element_at(
                F.array(*[F.lit(c) for c in cats]), (F.col("id") % 8 + 1).cast("int")
            ).alias("category"),
        )
        .cache()
    )
    frame.count()
    plan = compile_plan(
        dataset="bench",
        purpose="bench",
        query=DpQuery(kind="sum", column="amount", group_by=("category",)),
        source="dp_zone",
        table="memory",
        entity="entity",
        max_rows=10,
        columns={
            "amount": ColumnDp(bounds=(0, 5000)),
            "category": ColumnDp(public_categories=tuple(cats)),
        },
        available=["entity", "amount", "category"],
        row_filters=[],
        amount=PrivacyBudget.pure(1),
    )

    def plain() -> object:
        return frame.groupBy("category").agg(F.sum("amount")).collect()

    def private() -> object:
        return release(plan, aggregate(frame, plan))

    times: dict[str, list[float]] = {"plain": [], "dp": []}
    for name, fn in (("plain", plain), ("dp", private)):
        fn()  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    t_plain, t_dp = statistics.median(times["plain"]), statistics.median(times["dp"])
    exact = {
        r["category"]: r["s"]
        for r in frame.groupBy("category").agg(F.sum("amount").alias("s")).collect()
    }
    out = private()
    errors = [abs(v - exact[g[0]]) for g, v in zip(out.groups, out.values, strict=True)]
    stat = plan.statistics[0]
    print(f"rows {args.rows:,}, 8 public groups, max_rows 10, epsilon 1, bounds [0, 5000]")
    print(f"plain Spark group-by sum: {t_plain:.2f} s (median of {args.repeats})")
    print(f"DP group-by sum:          {t_dp:.2f} s (median of {args.repeats})")
    print(f"ratio DP / plain:         {t_dp / t_plain:.2f} (target <= 1.5)")
    print(
        f"mean |error| over groups: {statistics.fmean(errors):,.0f} "
        f"(theoretical E|noise| = scale = {stat.scale * stat.resolution:,.0f}; "
        f"95% accuracy {out.accuracy95:,.0f})"
    )
    spark.stop()


if __name__ == "__main__":
    main()
