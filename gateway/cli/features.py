"""`gateway features plan|apply|materialize`: publish governed features to Feast.

A Typer sub-app (`features_app`); register it with `app.add_typer(features_app, name="features")`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from gateway.errors import GatewayError, ValidationFailed

__all__ = ["features_app"]

features_app = typer.Typer(
    help="Feature views over governed tables: plan, apply, materialize.", no_args_is_help=True
)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _context(strict: bool):  # type: ignore[no-untyped-def]
    from feature_store.store import GovernedFeatureStore
    from gateway.features import build_publication, store_config
    from gateway.policy.loader import load_policy_set
    from gateway.settings import load_settings

    settings = load_settings()
    policies = load_policy_set(settings.policy_paths)
    pub, refusals = build_publication(policies, settings)
    if refusals and strict:
        from gateway.features import PublishRefused

        raise PublishRefused(
            "refusing to publish:\n  "
            + "\n  ".join(str(r) for r in refusals)
            + "\n(use --skip-refused to publish the rest)"
        )
    return GovernedFeatureStore(store_config(settings)), pub, refusals


def _print(console, report, refusals, as_json: bool, verb: str) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "changes": [{"kind": k, "name": n, "change": c} for k, n, c in report.changes],
                    "deletions": [{"kind": k, "name": n} for k, n in report.deletions],
                    "refused": [str(r) for r in refusals],
                }
            )
        )
        return
    for kind, name, change in report.changes:
        console.print(f"{verb} {change:8} {kind.split('.')[-1].lower():16} {name}")
    for kind, name in report.deletions:
        console.print(f"{verb} delete   {kind:16} {name}")
    for refusal in refusals:
        console.print(f"[red]refused[/red]  {refusal}")
    if report.empty:
        console.print("no changes")


@features_app.command("plan")
def plan(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show what `apply` would create, update or delete in Feast, and what is refused."""
    store, pub, refusals = _context(strict=False)
    _print(_console(), store.plan(pub), refusals, as_json, "would")
    if refusals:
        raise typer.Exit(1)


@features_app.command("apply")
def apply(
    skip_refused: Annotated[
        bool, typer.Option("--skip-refused", help="Publish what may be; list the rest.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create Entities, FeatureViews, FeatureServices and Permissions from the policy."""
    try:
        store, pub, refusals = _context(strict=not skip_refused)
    except GatewayError as exc:
        _console().print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _print(_console(), store.apply(pub), refusals, as_json, "applied")


@features_app.command("materialize")
def materialize(
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only data after the last materialisation.")
    ] = False,
    view: Annotated[list[str] | None, typer.Option("--view", help="Feast view name(s).")] = None,
    end: Annotated[str | None, typer.Option(help="ISO end time (default: now).")] = None,
) -> None:
    """Load governed rows into the online store, with progress."""
    from rich.progress import Progress

    from feature_store.store import GovernedFeatureStore
    from gateway.features import store_config
    from gateway.settings import load_settings

    try:
        end_at = datetime.fromisoformat(end).astimezone(UTC) if end else None
    except ValueError:
        raise ValidationFailed(f"--end is not an ISO timestamp: {end!r}") from None
    store = GovernedFeatureStore(store_config(load_settings()))
    with Progress(console=_console()) as bar:
        task = bar.add_task("materialize", total=None)

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=name or "done")

        report = store.materialize(view, end=end_at, incremental=incremental, progress=progress)
    console = _console()
    for name, rows in report.views.items():
        console.print(f"{name}: {rows} rows")
    console.print(f"{report.rows} rows in {report.seconds:.1f}s")
