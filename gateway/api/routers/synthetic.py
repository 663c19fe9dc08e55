"""POST /v1/synthetic/{dataset}: a gated, audited synthetic release for the caller's purpose."""

from __future__ import annotations

import threading
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import AcknowledgedPurpose, CurrentPrincipal, RequestId, ServicesDep

__all__ = ["SyntheticRequest", "SyntheticResponse", "router"]

router = APIRouter(prefix="/v1/synthetic", tags=["synthetic"])
_SPARK_LOCK = threading.Lock()


class SyntheticRequest(BaseModel):
    """How many rows, and optionally which synthesizer and seed."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=1)
    synthesizer: Literal["gaussian_copula", "ctgan", "tvae", "copulagan"] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    epochs: int | None = Field(default=None, ge=1, le=1000)


class SyntheticResponse(BaseModel):
    """Where the release went and the gate's checks."""

    dataset: str
    purpose: str
    path: str
    version: int
    rows: int
    synthesizer: str
    seed: int
    policy_version: str
    checks: list[dict[str, Any]]


def _spark(request: Request) -> Any:
    """The app's Spark session (`app.state.spark`), started on first use."""
    with _SPARK_LOCK:
        spark = getattr(request.app.state, "spark", None)
        if spark is None:
            from gateway.spark import create_spark_session

            spark = create_spark_session(request.app.state.services.settings, "gateway-api")
            request.app.state.spark = spark
        return spark


@router.post("/{dataset}", response_model=SyntheticResponse)
def synthesize(
    dataset: str,
    body: SyntheticRequest,
    request: Request,
    principal: CurrentPrincipal,
    purpose: AcknowledgedPurpose,
    services: ServicesDep,
    request_id: RequestId,
) -> SyntheticResponse:
    """Fit, gate and publish; 422 with the failed checks when the gate refuses."""
    from gateway.storage import open_store
    from gateway.synth import run_synthetic

    spark = _spark(request)
    result = run_synthetic(
        services, principal, dataset, purpose, body.rows, spark=spark,
        store=open_store(spark, services.settings), synthesizer=body.synthesizer,
        seed=body.seed, epochs=body.epochs, request_id=request_id,
    )  # fmt: skip
    return SyntheticResponse(
        dataset=result.dataset, purpose=result.purpose, path=result.path,
        version=result.version, rows=result.rows, synthesizer=result.synthesizer,
        seed=result.seed, policy_version=result.policy_version,
        checks=result.report["checks"],
    )  # fmt: skip
