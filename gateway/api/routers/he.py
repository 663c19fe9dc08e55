"""POST /v1/he/compute: an encrypted aggregate or score, returned as a signed result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request

from gateway.api.deps import AcknowledgedPurpose, CurrentPrincipal, RequestId, ServicesDep
from gateway.he import HeComputeRequest, HeResult, compute_he
from gateway.storage import DeltaStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["router"]

router = APIRouter(prefix="/v1/he", tags=["he"])


def _spark(request: Request, services: ServicesDep) -> SparkSession:
    """`app.state.spark` when set, else the active session, else a new one from settings."""
    from pyspark.sql import SparkSession

    spark: SparkSession | None = getattr(request.app.state, "spark", None)
    if spark is None:
        spark = SparkSession.getActiveSession()
    if spark is None:
        from gateway.spark import create_spark_session

        spark = create_spark_session(services.settings, app_name="gateway-he")
    request.app.state.spark = spark
    return spark


def _store(request: Request, services: ServicesDep) -> DeltaStore:
    from gateway.storage import open_store

    store: DeltaStore | None = getattr(request.app.state, "he_store", None)
    if store is None:
        store = open_store(_spark(request, services), services.settings)
        request.app.state.he_store = store
    return store


@router.post("/compute", response_model=HeResult)
def he_compute(
    body: HeComputeRequest,
    principal: CurrentPrincipal,
    purpose: AcknowledgedPurpose,
    services: ServicesDep,
    request_id: RequestId,
    store: Annotated[DeltaStore, Depends(_store)],
) -> HeResult:
    """Compute on encrypted columns (action he_compute); the caller cannot decrypt the result."""
    return compute_he(
        services, principal, purpose, body, spark=store.spark, store=store, request_id=request_id
    )
