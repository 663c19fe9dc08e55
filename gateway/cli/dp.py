"""`gateway dp query|budget`: differentially private releases from the command line."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["dp_app"]

dp_app = typer.Typer(help="Differentially private queries and budgets.", no_args_is_help=True)


@dp_app.command("query")
def query(
    dataset: str,
    purpose: Annotated[str, typer.Option("--purpose")],
    query_text: Annotated[str, typer.Option("--query", help="A JSON query or a file of one.")],
    epsilon: Annotated[str | None, typer.Option("--epsilon")] = None,
    delta: Annotated[str | None, typer.Option("--delta")] = None,
    rho: Annotated[str | None, typer.Option("--rho")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    subject: Annotated[str, typer.Option("--as", help="A principal of the policy.")] = "alice",
) -> None:
    """Run (or, with --dry-run, price) one DP query and print the release as JSON."""
    from gateway.dp import run_query
    from gateway.reidentify import local_principal
    from gateway.services import build_services
    from gateway.settings import load_settings
    from privacy.dp import DpQuery

    path = Path(query_text)
    text = (
        path.read_text()
        if not query_text.lstrip().startswith("{") and path.exists()
        else (query_text)
    )
    parsed = DpQuery.model_validate_json(text)
    services = build_services(load_settings())
    try:
        out = run_query(
            services,
            local_principal(services, subject),
            dataset,
            purpose,
            parsed,
            epsilon=Decimal(epsilon) if epsilon else None,
            delta=Decimal(delta) if delta else None,
            rho=Decimal(rho) if rho else None,
            dry_run=dry_run,
        )
    finally:
        services.close()
    release = out.release
    typer.echo(
        json.dumps(
            {
                "dry_run": out.dry_run,
                "charge": str(out.charge),
                "source": out.plan.source,
                "expected_accuracy95": dict(out.expected_accuracy95),
                "groups": None if release is None else [list(g) for g in release.groups],
                "values": None
                if release is None
                else [list(v) if isinstance(v, tuple) else v for v in release.values],
                "statistics": []
                if release is None
                else [
                    {
                        "name": s.name,
                        "mechanism": s.mechanism,
                        "scale": s.scale,
                        "accuracy95": s.accuracy95,
                    }
                    for s in release.statistics
                ],
            },
            indent=2,
        )
    )


@dp_app.command("budget")
def budget(
    dataset: str,
    purpose: Annotated[str, typer.Option("--purpose")],
    subject: Annotated[str, typer.Option("--as")] = "alice",
) -> None:
    """Show the privacy budget of (dataset, purpose): total, spent, remaining."""
    from gateway.dp import budget_status
    from gateway.reidentify import local_principal
    from gateway.services import build_services
    from gateway.settings import load_settings

    services = build_services(load_settings())
    try:
        status = budget_status(services, local_principal(services, subject), dataset, purpose)
    finally:
        services.close()
    typer.echo(
        f"{dataset}/{purpose}: total {status.total}, spent {status.spent}, "
        f"remaining {status.remaining} ({status.charges} charges)"
    )
