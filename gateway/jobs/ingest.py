"""spark-submit entry point of the governed ingest job (the same code as `gateway ingest`).

    spark-submit --master k8s://... gateway/jobs/ingest.py customers --purpose marketing

Settings come from GATEWAY_* variables; the result is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one ingest from command-line arguments; exit code 0, 1 (failed) or 2 (bad input)."""
    from gateway.errors import GatewayError, ValidationFailed
    from gateway.ingest.job import IngestRequest, run_ingest
    from gateway.policy.loader import load_policy_set
    from gateway.settings import load_settings
    from gateway.spark import create_spark_session
    from gateway.storage import open_store

    parser = argparse.ArgumentParser(prog="gateway-ingest-job", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--purpose", required=True)
    parser.add_argument("--source")
    parser.add_argument("--mode", choices=["append", "overwrite", "merge"], default="append")
    parser.add_argument("--principal", default="spark-submit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        policies = load_policy_set(settings.policy_paths)
        spark = create_spark_session(
            settings, app_name=f"gateway-ingest-{args.dataset}-{args.purpose}"
        )
        result = run_ingest(
            spark,
            settings,
            policies,
            IngestRequest(args.dataset, args.purpose, args.source, args.mode, args.principal),
            store=open_store(spark, settings),
        )
    except GatewayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2 if isinstance(exc, ValidationFailed) else 1
    summary = asdict(result)
    summary.pop("k_anonymity", None)
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
