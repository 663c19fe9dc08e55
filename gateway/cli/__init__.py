"""The `gateway` command: a thin adapter over the library; heavy imports happen per command.

Errors the gateway raises on purpose are printed as one clear message (policy errors as
`file:line:column: field.path: message` lines) with exit code 2 for bad input and 1 for
anything else; tracebacks are shown only with GATEWAY_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from gateway.errors import GatewayError, PolicyError, ValidationFailed

__all__ = ["app", "main"]

app = typer.Typer(
    name="gateway",
    help="The data-governance gateway: governed ingest, privacy releases and features.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(
    help="Check, explain and describe steward policy files.", no_args_is_help=True
)
examples_app = typer.Typer(help="Example data for trying the gateway.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(examples_app, name="examples")

PolicyPaths = Annotated[
    list[Path] | None,
    typer.Option(
        "--policies", "-p", help="Policy files or folders (default: GATEWAY_POLICY_PATHS)."
    ),
]


def _console(stderr: bool = False):  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _policy_paths(paths: list[Path] | None) -> list[Path]:
    if paths:
        return paths
    from gateway.settings import load_settings

    return list(load_settings().policy_paths)


@policy_app.command("check")
def policy_check(
    paths: Annotated[list[Path], typer.Argument(help="Policy files or folders.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate policy files; print the policy version and a summary, or every error found."""
    from gateway.policy.loader import load_policy_set

    policies = load_policy_set(paths)
    org = policies.organisation
    summary = {
        "version": policies.version,
        "files": list(policies.files),
        "organisation": org.organisation,
        "purposes": sorted(org.purposes),
        "roles": sorted(org.roles),
        "datasets": {
            name: {
                "columns": len(ds.columns),
                "purposes": list(ds.purposes),
                "feature_views": sorted(ds.features),
                "cell_rules": len(ds.cell_rules),
            }
            for name, ds in policies.datasets.items()
        },
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    console = _console()
    console.print(f"[green]ok[/green] policy version [bold]{policies.version}[/bold]")
    console.print(
        f"organisation {org.organisation}: {len(org.purposes)} purposes, "
        f"{len(org.roles)} roles, {len(org.principals)} principals, "
        f"{len(org.clearances)} clearance levels"
    )
    for name, info in summary["datasets"].items():  # type: ignore[attr-defined]
        console.print(
            f"dataset {name}: {info['columns']} columns, purposes "
            f"{', '.join(info['purposes'])}, {info['cell_rules']} cell rules, "
            f"feature views {', '.join(info['feature_views']) or 'none'}"
        )


@policy_app.command("schema")
def policy_schema(
    kind: Annotated[str, typer.Option(help="'organisation', 'dataset' or 'any'.")] = "any",
) -> None:
    """Print the JSON Schema of policy files (for editor validation and completion)."""
    from gateway.policy.schema import policy_json_schema

    if kind not in ("organisation", "dataset", "any"):
        raise ValidationFailed(f"--kind must be 'organisation', 'dataset' or 'any', not {kind!r}")
    typer.echo(json.dumps(policy_json_schema(kind), indent=2))


@policy_app.command("explain")
def policy_explain(
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    purpose: Annotated[str, typer.Option("--purpose", help="The purpose to explain.")],
    policies_paths: PolicyPaths = None,
) -> None:
    """Show what every column of DATASET becomes for a purpose."""
    from rich.table import Table

    from gateway.policy.explain import explain
    from gateway.policy.loader import load_policy_set

    policies = load_policy_set(_policy_paths(policies_paths))
    treatment = explain(policies, dataset, purpose)
    table = Table(title=f"{dataset} for {purpose} (policy {policies.short_version})")
    for header in ("column", "type", "classification", "protection", "goes to", "cell rules"):
        table.add_column(header)
    for col in treatment.columns:
        table.add_row(
            col.column,
            col.data_type,
            col.classification,
            str(col.protection),
            col.destination,
            "\n".join(col.cell_rules),
        )
    console = _console()
    console.print(table)
    for text in treatment.row_filters:
        console.print(f"row filter: keep rows where {text}")


@examples_app.command("generate")
def examples_generate(
    out: Annotated[Path, typer.Option(help="Output folder (the landing zone).")] = Path("landing"),
    rows: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 10_000,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same files.")
    ] = 42,
    bad_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of bad rows.")
    ] = 0.002,
    fmt: Annotated[str, typer.Option("--format", help="'csv' or 'jsonl'.")] = "csv",
) -> None:
    """Generate realistic raw customers and transactions (streamed, seeded, with bad rows)."""
    from gateway.datagen import generate

    if fmt not in ("csv", "jsonl"):
        raise ValidationFailed(f"--format must be 'csv' or 'jsonl', not {fmt!r}")
    console = _console()

    def progress(stage: str, done: int) -> None:
        console.print(f"  {stage}: {done:,} rows", end="\r")

    report = generate(
        out,
        rows,
        seed=seed,
        bad_fraction=bad_fraction,
        fmt=fmt,  # type: ignore[arg-type]
        progress=progress,
    )
    console.print()
    for name, count in report.rows.items():
        console.print(
            f"{name}: {count:,} rows ({report.bad_rows.get(name, 0):,} deliberately bad) "
            f"in {out / name}"
        )


@app.command("ingest")
def ingest(
    dataset: Annotated[str, typer.Argument(help="Dataset name (from its policy file).")],
    purpose: Annotated[str, typer.Option("--purpose", help="The purpose to govern the data for.")],
    source: Annotated[
        str | None, typer.Option(help="Source path or URI (default: the policy's).")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="'append', 'overwrite' or 'merge' (by key).")
    ] = "append",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; write nothing.")
    ] = False,
    principal: Annotated[
        str | None, typer.Option(help="Who runs the job (recorded in commits).")
    ] = None,
    sample: Annotated[int, typer.Option(min=1, help="Rows sampled by --dry-run.")] = 1000,
    policies_paths: PolicyPaths = None,
) -> None:
    """Govern DATASET for a purpose: validate, quarantine, protect, write Delta."""
    import getpass

    from gateway.ingest.job import IngestRequest, run_ingest
    from gateway.policy.loader import load_policy_set
    from gateway.settings import load_settings
    from gateway.spark import create_spark_session
    from gateway.storage import open_store

    if mode not in ("append", "overwrite", "merge"):
        raise ValidationFailed(f"--mode must be 'append', 'overwrite' or 'merge', not {mode!r}")
    console = _console()
    settings = load_settings()
    policies = load_policy_set(_policy_paths(policies_paths))
    policies.dataset(dataset)
    console.print(f"policy {policies.short_version}: starting Spark ({settings.spark_master})")
    spark = create_spark_session(settings, app_name=f"gateway-ingest-{dataset}")
    store = open_store(spark, settings)
    if dry_run:
        from gateway.ingest.dryrun import dry_run as run_dry

        _print_dry_run(
            console,
            run_dry(
                spark,
                settings,
                policies,
                dataset,
                purpose,
                store=store,
                source=source,
                sample_rows=sample,
            ),
        )
        return
    request = IngestRequest(dataset, purpose, source, mode, principal or getpass.getuser())  # type: ignore[arg-type]
    from gateway.services import build_services

    services = build_services(settings, policies)
    try:
        result = run_ingest(
            spark,
            settings,
            policies,
            request,
            store=store,
            audit=services.record,
            progress=lambda stage: console.print(f"  {stage} ..."),
        )
    finally:
        services.close()
    _print_ingest(console, result)


def _print_ingest(console, result) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    if result.skipped:
        console.print(
            f"[yellow]already ingested[/yellow]: this input and policy version were written "
            f"before; nothing added (job {result.job_id})"
        )
    table = Table(title=f"ingest {result.dataset} for {result.purpose} (engine {result.engine})")
    for header in ("output", "path", "Delta version", "rows"):
        table.add_column(header)
    for name, out in result.outputs.items():
        table.add_row(
            name, out.path, "unchanged" if out.skipped else str(out.version), f"{out.rows:,}"
        )
    console.print(table)
    console.print(
        f"rows read {result.rows_read:,}; quarantined {result.rows_quarantined:,}; "
        f"filtered by purpose {result.rows_filtered:,}; written {result.rows_written:,}"
    )
    if result.k_anonymity is not None:
        k = result.k_anonymity
        console.print(
            f"k-anonymity: k required {k.k}, achieved {k.k_achieved}"
            + (f", l achieved {k.l_achieved}" if k.l_achieved is not None else "")
            + f"; {k.cells_suppressed:,} quasi-identifier cells suppressed"
        )
    console.print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))


def _print_dry_run(console, report) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(
        title=f"dry run: {report.dataset} for {report.purpose} on {report.sample_rows:,} "
        "sampled rows (nothing written; examples are generated canaries)"
    )
    for header in ("column", "protection", "cells changed", "example before", "example after"):
        table.add_column(header)
    for col in report.columns:
        table.add_row(
            col.column,
            col.protection,
            f"{col.cells_changed:,}",
            col.example_before,
            col.example_after,
        )
    for name, kind in report.not_in_governed_table.items():
        table.add_row(name, kind, "all", "", "(not in the governed table)")
    console.print(table)
    console.print(
        f"rows quarantined {report.rows_quarantined:,}; "
        f"filtered by purpose {report.rows_filtered:,}"
        + (f"; k achieved {report.k_achieved}" if report.k_achieved is not None else "")
    )


@app.command("demo")
def demo(
    rows: Annotated[int, typer.Option(min=100, help="Customers to generate.")] = 5000,
) -> None:
    """Run the end-to-end demo on embedded defaults (local Spark, Delta on disk, SQLite)."""
    from gateway.demo import run_demo
    from gateway.settings import load_settings

    run_demo(load_settings(), _console(), rows=rows)


def _fail(exc: BaseException, code: int) -> NoReturn:
    console = _console(stderr=True)
    if isinstance(exc, PolicyError):
        for issue in exc.issues:
            console.print(str(issue), markup=False)
        console.print(
            f"{len(exc.issues)} policy error{'s' if len(exc.issues) != 1 else ''}", markup=False
        )
    else:
        console.print(f"error: {exc}", markup=False)
    if os.environ.get("GATEWAY_DEBUG") == "1":
        import traceback

        traceback.print_exception(exc)
    raise SystemExit(code)


def main() -> None:
    """Entry point of the `gateway` console script."""
    try:
        app()
    except ValidationFailed as exc:
        _fail(exc, 2)
    except GatewayError as exc:
        _fail(exc, 1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:
        console = _console(stderr=True)
        console.print(
            f"internal error ({type(exc).__name__}); rerun with GATEWAY_DEBUG=1 for details",
            markup=False,
        )
        if os.environ.get("GATEWAY_DEBUG") == "1":
            raise
        raise SystemExit(1) from None


from gateway.cli import access  # noqa: E402,F401 - registers its commands on `app`
from gateway.cli.dp import dp_app  # noqa: E402
from gateway.cli.features import features_app  # noqa: E402
from gateway.cli.he import he_app  # noqa: E402
from gateway.cli.synth import synth_command  # noqa: E402

app.add_typer(dp_app, name="dp")
app.add_typer(he_app, name="he")
app.add_typer(features_app, name="features")
app.command("synth")(synth_command)

if __name__ == "__main__":
    main()
