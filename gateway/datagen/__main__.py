"""`python -m gateway.datagen OUT --rows N [--seed S] [--format csv|jsonl] …`: generate and
print counts and throughput."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.datagen.generator import generate
from gateway.errors import GatewayError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.datagen", description=__doc__)
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--rows", type=int, required=True, help="number of customers")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-fraction", type=float, default=0.002)
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--transactions-per-customer", type=float, default=5.0)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args(argv)
    try:
        report = generate(
            args.out,
            args.rows,
            seed=args.seed,
            bad_fraction=args.bad_fraction,
            fmt=args.format,
            transactions_per_customer=args.transactions_per_customer,
            chunk_rows=args.chunk_rows,
        )
    except GatewayError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    for dataset, count in report.rows.items():
        print(
            f"{dataset}: {count} rows ({report.bad_rows[dataset]} bad) in "
            f"{len(report.paths[dataset])} parts, "
            f"{report.seconds.get(dataset, 0.0):.1f} s, "
            f"{report.rows_per_second(dataset):,.0f} rows/s"
        )
    print(f"pools: {report.seconds['pools']:.1f} s, total: {report.seconds['total']:.1f} s")
    print(f"manifest: {report.manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
