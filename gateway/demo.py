"""`gateway demo`: the end-to-end run on embedded defaults, with progress throughout.

It generates example raw data, validates the example policies, shows a dry run, ingests
several (dataset, purpose) pairs into governed Delta tables, proves a re-run adds nothing,
and closes with a table of where everything was written. Each later capability (API,
DP, HE, synthetic data, Feast, Kubeflow) adds its step here when it exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.settings import Settings

__all__ = ["DemoResult", "run_demo"]

DEMO_PAIRS = (
    ("customers", "marketing"),
    ("customers", "fraud-detection"),
    ("transactions", "fraud-detection"),
    ("transactions", "research"),
)


@dataclass
class DemoResult:
    """What the demo wrote, step by step."""

    steps: list[tuple[str, str, float]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def run_demo(settings: Settings, console: Any, rows: int = 5000) -> DemoResult:
    """Run every step that exists today and print what happens; returns the record."""
    from rich.table import Table

    from gateway.datagen import generate
    from gateway.ingest import IngestRequest, dry_run, run_ingest
    from gateway.policy.loader import load_policy_set
    from gateway.spark import create_spark_session
    from gateway.storage import open_store

    result = DemoResult()

    def step(title: str, detail: str, started: float) -> None:
        seconds = time.perf_counter() - started
        result.steps.append((title, detail, seconds))
        console.print(f"[green]✓[/green] {title}: {detail} [dim]({seconds:.1f} s)[/dim]")

    console.rule("data-governance gateway demo")
    started = time.perf_counter()
    policies = load_policy_set(settings.policy_paths)
    step(
        "policies", f"{len(policies.datasets)} datasets, version {policies.short_version}", started
    )

    started = time.perf_counter()
    landing = settings.landing
    report = generate(landing, rows, seed=42)
    counts = ", ".join(
        f"{name} {n:,} ({report.bad_rows[name]:,} bad)" for name, n in report.rows.items()
    )
    step("raw data", f"{counts} in {landing}", started)
    result.outputs["landing zone"] = str(landing)

    started = time.perf_counter()
    console.print("  starting Spark (local) ...")
    spark = create_spark_session(settings, app_name="gateway-demo")
    store = open_store(spark, settings)
    step("spark", f"{spark.version}, Delta through {store.engine}", started)

    started = time.perf_counter()
    preview = dry_run(
        spark, settings, policies, "customers", "marketing", store=store, sample_rows=500
    )
    table = Table(title="dry run: customers for marketing (canary examples, nothing written)")
    for header in ("column", "protection", "example before", "example after"):
        table.add_column(header)
    for col in preview.columns[:8]:
        table.add_row(col.column, col.protection[:40], col.example_before, col.example_after)
    console.print(table)
    step("dry run", f"{preview.sample_rows} rows sampled, k achieved {preview.k_achieved}", started)

    for dataset, purpose in DEMO_PAIRS:
        started = time.perf_counter()
        done = run_ingest(
            spark,
            settings,
            policies,
            IngestRequest(dataset, purpose, principal="alice"),
            store=store,
            progress=lambda stage: console.print(f"  {stage} ..."),
        )
        governed = done.outputs["governed"]
        state = "already ingested" if done.skipped else f"Delta version {governed.version}"
        step(
            f"ingest {dataset} for {purpose}",
            f"{done.rows_written:,} rows governed, {done.rows_quarantined:,} quarantined, "
            f"{done.rows_filtered:,} filtered; {state}",
            started,
        )
        for name, out in done.outputs.items():
            result.outputs[f"{name}: {dataset}" + ("" if name != "governed" else f"/{purpose}")] = (
                out.path
            )

    started = time.perf_counter()
    again = run_ingest(
        spark, settings, policies, IngestRequest(*DEMO_PAIRS[0], principal="alice"), store=store
    )
    step(
        "idempotent re-run",
        "skipped, nothing added" if again.skipped else "wrote again (unexpected)",
        started,
    )

    result.outputs["lineage events"] = str(settings.home / "lineage" / "events.jsonl")
    summary = Table(title="where everything was written")
    summary.add_column("what")
    summary.add_column("where")
    for what, where in result.outputs.items():
        summary.add_row(what, str(Path(where)))
    console.print(summary)
    total = sum(seconds for _, _, seconds in result.steps)
    console.print(f"demo finished in {total:.0f} s")
    return result
