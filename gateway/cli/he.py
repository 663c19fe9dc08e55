"""`gateway he`: key generation, encrypted computation, and the key holder's decryption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from gateway.errors import ValidationFailed

if TYPE_CHECKING:
    from gateway.services import Services

__all__ = ["he_app"]

he_app = typer.Typer(
    help="Homomorphic encryption: keys, encrypted aggregates, decryption by the key holder.",
    no_args_is_help=True,
)


def _services() -> Services:
    from gateway.services import build_services
    from gateway.settings import load_settings

    return build_services(load_settings())


@he_app.command("keygen")
def keygen_command(
    name: Annotated[str, typer.Option("--name", help="Key name (letters, digits, . _ -).")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Take parameters from this dataset's he:.")
    ] = None,
    scheme: Annotated[
        str | None, typer.Option("--scheme", help="ckks (default) or bfv (integers).")
    ] = None,
    keyholder: Annotated[
        Path | None,
        typer.Option("--keyholder", help="Secret context folder (default <home>/keyholder)."),
    ] = None,
    operations: Annotated[
        list[str] | None,
        typer.Option("--operation", help="Operations to support (default: all); repeatable."),
    ] = None,
) -> None:
    """Generate a key pair: secret context for the key holder, public context for the gateway."""
    from gateway.he import keygen
    from gateway.he.errors import to_gateway_error
    from gateway.policy.loader import load_policy_set
    from gateway.settings import load_settings
    from privacy.he import ALL_OPERATIONS, HeError, Operation

    settings = load_settings()
    ds = load_policy_set(settings.policy_paths).dataset(dataset) if dataset else None
    if scheme not in (None, "ckks", "bfv"):
        raise ValidationFailed("--scheme is 'ckks' or 'bfv'")
    ops: list[Operation] = []
    for op in operations or sorted(ALL_OPERATIONS):
        if op not in ALL_OPERATIONS:
            raise ValidationFailed(
                f"unknown operation {op!r}; use {', '.join(sorted(ALL_OPERATIONS))}"
            )
        ops.append(op)
    chosen: Literal["ckks", "bfv"] | None = scheme  # type: ignore[assignment]
    try:
        made = keygen(
            settings, name, dataset=ds, scheme=chosen, keyholder=keyholder, operations=ops
        )
    except HeError as exc:
        raise to_gateway_error(exc) from None
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    typer.echo(f"key id:          {made.key_id}")
    typer.echo(f"fingerprint:     {made.fingerprint}")
    typer.echo(f"scheme:          {made.scheme}")
    typer.echo(f"signing key:     {made.signer}")
    typer.echo(f"secret context:  {made.secret}  (key holder only, mode 0600)")
    typer.echo(f"public context:  {made.gateway_public}")
    typer.echo(f"verify key:      {made.verify_key}")


@he_app.command("estimate")
def estimate_command(
    dataset: Annotated[str, typer.Option("--dataset")],
    rows: Annotated[int, typer.Option("--rows", min=0)],
    columns: Annotated[int, typer.Option("--columns", min=1, help="Encrypted columns.")] = 1,
) -> None:
    """Ciphertexts and bytes packing `rows` rows would produce (squares included), vs the limit."""
    from gateway.he import params_for
    from gateway.policy.loader import load_policy_set
    from gateway.settings import load_settings
    from privacy.he import estimate

    ds = load_policy_set(load_settings().policy_paths).dataset(dataset)
    params = params_for(ds)
    est = estimate(rows, 2 * columns, params)
    limit = ds.he.max_ciphertext_bytes
    typer.echo(f"ciphertexts: {est.ciphertexts}  bytes: {est.bytes:,}  limit: {limit:,}")
    if est.bytes > limit:
        typer.echo("over he.max_ciphertext_bytes: ingest would refuse", err=True)
        raise typer.Exit(1)


@he_app.command("compute")
def compute_command(
    dataset: Annotated[str, typer.Option("--dataset")],
    operation: Annotated[str, typer.Option("--operation", help="sum, count, mean, ...")],
    columns: Annotated[list[str], typer.Option("--column", help="Encrypted column; repeatable.")],
    purpose: Annotated[str, typer.Option("--purpose")],
    subject: Annotated[str, typer.Option("--as", help="The principal you act as.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the result JSON.")],
    where: Annotated[str | None, typer.Option("--where", help="Governed-column filter.")] = None,
    weight_column: Annotated[str | None, typer.Option("--weight-column")] = None,
    weights: Annotated[list[float] | None, typer.Option("--weight", help="Score weights.")] = None,
    bias: Annotated[float, typer.Option("--bias")] = 0.0,
    entities: Annotated[list[str] | None, typer.Option("--entity", help="Governed keys.")] = None,
    ddof: Annotated[int, typer.Option("--ddof", min=0, max=1)] = 0,
) -> None:
    """Compute on encrypted columns as a principal; writes a signed result for the key holder."""
    import uuid

    from pydantic import ValidationError

    from gateway.he import HeComputeRequest, compute_he
    from gateway.reidentify import local_principal
    from gateway.spark import create_spark_session
    from gateway.storage import open_store

    try:
        request = HeComputeRequest.model_validate(
            {
                "dataset": dataset,
                "operation": operation,
                "columns": columns,
                "where": where,
                "weight_column": weight_column,
                "weights": weights,
                "bias": bias,
                "entities": entities,
                "ddof": ddof,
            }
        )
    except ValidationError as exc:
        raise ValidationFailed(f"invalid request: {exc.errors()[0]['msg']}") from None
    services = _services()
    try:
        principal = local_principal(services, subject)
        services.require_acknowledged(principal, purpose)
        spark = create_spark_session(services.settings, app_name="gateway-he")
        store = open_store(spark, services.settings)
        result = compute_he(
            services,
            principal,
            purpose,
            request,
            spark=spark,
            store=store,
            request_id=uuid.uuid4().hex,
        )
    finally:
        services.close()
    out.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    typer.echo(f"{result.operation} over {result.rows} rows -> {out}")


@he_app.command("decrypt")
def decrypt_command(
    result_file: Annotated[Path, typer.Argument(metavar="RESULT.json")],
    secret_context: Annotated[Path, typer.Option("--secret-context", help="<name>.secret")],
    verify_key: Annotated[
        Path | None,
        typer.Option(help="Gateway verify key (default: gateway-signing.pub beside the secret)."),
    ] = None,
    min_rows: Annotated[
        int | None, typer.Option("--min-rows", min=1, help="Raise the policy's minimum.")
    ] = None,
) -> None:
    """Key holder: verify a result (signature, fingerprint, min rows) and decrypt it."""
    from gateway.he import decrypt_result, load_gateway_verify_key, min_rows_for, read_result
    from gateway.he.errors import to_gateway_error
    from gateway.policy.loader import load_policy_set
    from gateway.settings import load_settings
    from privacy.he import HeError, load_secret_context

    try:
        result = read_result(result_file)
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"{result_file} is not a gateway HE result: {exc}") from None
    policies = load_policy_set(load_settings().policy_paths)
    floor = min_rows_for(policies, policies.dataset(result.dataset))
    if min_rows is not None:
        floor = max(floor, min_rows)
    key_path = verify_key or secret_context.parent / "gateway-signing.pub"
    try:
        secret = load_secret_context(secret_context)
        decrypted = decrypt_result(result, secret, load_gateway_verify_key(key_path), floor)
    except HeError as exc:
        raise to_gateway_error(exc) from None
    typer.echo(json.dumps(decrypted.to_json(), indent=2, sort_keys=True))
