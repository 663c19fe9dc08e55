"""`gateway keys|token|purposes|audit|serve`: identity, acknowledgements, the audit log, the API."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli import _console, app
from gateway.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from gateway.services import Services

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
token_app = typer.Typer(help="Development tokens (refused in production).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log: verify, export.", no_args_is_help=True)
purposes_app = typer.Typer(help="Purposes and their acknowledgement.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(purposes_app, name="purposes")


def _services() -> Services:
    from gateway.services import build_services
    from gateway.settings import load_settings

    return build_services(load_settings())


def _duration(text: str | None) -> dt.timedelta | None:
    if text is None:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValidationFailed(f"durations look like 30m, 12h or 90d, not {text!r}")
    return dt.timedelta(**{units[text[-1]]: int(text[:-1])})


@keys_app.command("create")
def keys_create(
    subject: Annotated[str, typer.Option(help="A principal of the organisation policy.")],
    roles: Annotated[
        list[str], typer.Option("--roles", help="Roles (a subset of the principal's).")
    ],
    expires_in: Annotated[str | None, typer.Option(help="e.g. 90d; default: no expiry.")] = None,
) -> None:
    """Create an API key; the key is printed once and only its hash is stored."""
    services = _services()
    try:
        created = services.api_keys.create(
            subject, roles, _duration(expires_in), policies=services.policies
        )
    finally:
        services.close()
    console = _console()
    console.print(f"key id {created.key_id} for {subject} ({', '.join(roles)})")
    console.print("store this key now; it is not shown again:", markup=False)
    typer.echo(created.secret)


@keys_app.command("list")
def keys_list(subject: Annotated[str | None, typer.Option()] = None) -> None:
    """List API keys (ids, subjects, roles, expiry, revocation; never the keys)."""
    services = _services()
    try:
        for info in services.api_keys.list(subject):
            typer.echo(
                json.dumps(
                    {
                        "key_id": info.key_id,
                        "subject": info.subject,
                        "roles": list(info.roles),
                        "expires_at": str(info.expires_at) if info.expires_at else None,
                        "revoked_at": str(info.revoked_at) if info.revoked_at else None,
                    }
                )
            )
    finally:
        services.close()


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument()]) -> None:
    """Revoke an API key (takes effect on the next request)."""
    services = _services()
    try:
        services.api_keys.revoke(key_id)
    finally:
        services.close()
    _console().print(f"revoked {key_id}")


@token_app.command("issue")
def token_issue(
    subject: Annotated[str, typer.Option()],
    roles: Annotated[list[str], typer.Option("--roles")],
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 30m or 12h.")] = "1h",
    purpose: Annotated[str | None, typer.Option(help="Bind the token to one purpose.")] = None,
) -> None:
    """Issue an HS256 development token (dev and test environments only)."""
    from gateway.identity import issue_dev_token
    from gateway.policy.loader import load_policy_set
    from gateway.settings import load_settings

    settings = load_settings()
    lifetime = _duration(ttl)
    assert lifetime is not None
    typer.echo(
        issue_dev_token(
            settings,
            subject,
            roles,
            lifetime,
            purpose=purpose,
            policies=load_policy_set(settings.policy_paths),
        )
    )


@purposes_app.command("acknowledge")
def purposes_acknowledge(
    purpose: Annotated[str, typer.Argument()],
    subject: Annotated[str, typer.Option(help="Who acknowledges (a principal).")],
) -> None:
    """Record that SUBJECT acknowledged the current statement of PURPOSE (audited)."""
    from gateway.audit import AuditEvent

    services = _services()
    try:
        statement = services.policies.organisation.purposes.get(purpose)
        if statement is None:
            raise NotFound(f"no purpose named '{purpose}'")
        _console().print(f"{purpose}: {statement.statement}")
        services.record(
            AuditEvent(
                kind="acknowledgement",
                subject=subject,
                action="acknowledge",
                purpose=purpose,
                resource=f"purpose:{purpose}",
                policy_version=services.policies.version,
                released={"statement_version": statement.statement_version},
            )
        )
        services.acknowledgements.acknowledge(subject, purpose, statement.statement_version)
    finally:
        services.close()
    _console().print(f"acknowledged by {subject} (statement version {statement.statement_version})")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 naming the first bad record when it is broken."""
    services = _services()
    try:
        report = services.audit.verify()
    finally:
        services.close()
    if report.ok:
        _console().print(f"[green]ok[/green] {report.records:,} records, chain intact")
        return
    _console(stderr=True).print(
        f"audit chain broken at record {report.first_bad_seq} ({report.problem}): {report.message}",
        markup=False,
    )
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option(help="JSON lines file for a SIEM.")]) -> None:
    """Write every audit record as JSON lines (with seq, hash and prev_hash)."""
    services = _services()
    try:
        count = services.audit.export(out)
    finally:
        services.close()
    _console().print(f"{count:,} records written to {out}")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
) -> None:
    """Run the gateway API (uvicorn)."""
    import uvicorn

    from gateway.api.app import create_app

    uvicorn.run(
        create_app(_services(), close_on_shutdown=True), host=host, port=port, log_level="info"
    )


@app.command("reidentify")
def reidentify_command(
    dataset: Annotated[str, typer.Argument()],
    column: Annotated[str, typer.Option(help="The reversibly protected column.")],
    purpose: Annotated[
        str, typer.Option(help="The purpose whose governed table holds the values.")
    ],
    subject: Annotated[str, typer.Option("--as", help="The steward (a principal) doing it.")],
    values: Annotated[list[str], typer.Argument(help="Protected values to restore.")],
) -> None:
    """Restore raw values of an AES-SIV or FF3-1 column (steward role only; audited)."""
    from gateway.reidentify import local_principal, reidentify

    services = _services()
    try:
        restored = reidentify(
            services, local_principal(services, subject), dataset, purpose, column, values
        )
    finally:
        services.close()
    for item in restored:
        typer.echo(f"{item.protected}\t{item.value}")
