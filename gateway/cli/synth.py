"""`gateway synth DATASET --purpose P --rows N`: a gated, audited synthetic release."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import ValidationFailed

__all__ = ["synth_command"]

_SYNTHESIZERS = ("gaussian_copula", "ctgan", "tvae", "copulagan")


def synth_command(
    dataset: Annotated[str, typer.Argument(help="Dataset name (from its policy file).")],
    purpose: Annotated[str, typer.Option("--purpose", help="The purpose of the release.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="Synthetic rows to generate.")],
    principal: Annotated[
        str, typer.Option("--as", help="The policy principal who receives the release.")
    ],
    synthesizer: Annotated[
        str | None,
        typer.Option(help="gaussian_copula, ctgan, tvae or copulagan (default: the policy's)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed (default: derived from the policy).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs of neural synthesizers.")
    ] = None,
    policies_paths: Annotated[
        list[Path] | None, typer.Option("--policies", "-p", help="Policy files or folders.")
    ] = None,
) -> None:
    """Fit a synthesizer on the data the policy allows, gate it, publish to the lake."""
    import json

    from rich.console import Console

    from gateway.policy.loader import load_policy_set
    from gateway.reidentify import local_principal
    from gateway.services import build_services
    from gateway.settings import load_settings
    from gateway.spark import create_spark_session
    from gateway.storage import open_store
    from gateway.synth import run_synthetic

    if synthesizer is not None and synthesizer not in _SYNTHESIZERS:
        raise ValidationFailed(f"--synthesizer must be one of {', '.join(_SYNTHESIZERS)}")
    console = Console(highlight=False, soft_wrap=True)
    settings = load_settings()
    policies = load_policy_set(policies_paths or list(settings.policy_paths))
    services = build_services(settings, policies)
    try:
        who = local_principal(services, principal)
        spark = create_spark_session(settings, app_name=f"gateway-synth-{dataset}")
        store = open_store(spark, settings)

        def progress(stage: str, done: int, total: int) -> None:
            console.print(f"  {stage}: {done:,}/{total:,}")

        result = run_synthetic(
            services, who, dataset, purpose, rows, spark=spark, store=store,
            synthesizer=synthesizer,  # type: ignore[arg-type]
            seed=seed, epochs=epochs, progress=progress,
        )  # fmt: skip
    finally:
        services.close()
    console.print(
        f"released {result.rows:,} synthetic rows of {dataset} for {purpose} to {result.path} "
        f"(version {result.version}, {result.synthesizer}, seed {result.seed})"
    )
    console.print(json.dumps({c["name"]: c["value"] for c in result.report["checks"]}, indent=2))
