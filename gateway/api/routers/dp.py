"""POST /v1/dp/query (a DP release or a dry run) and GET /v1/dp/budget/{dataset}."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import AcknowledgedPurpose, CurrentPrincipal, RequestId, ServicesDep
from gateway.dp import budget_status, run_query
from privacy.dp import DpQuery

__all__ = ["DpQueryBody", "router"]

router = APIRouter(prefix="/v1/dp", tags=["differential privacy"])


class DpQueryBody(BaseModel):
    """A DP query request: the dataset, the structured query and the amount to spend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(min_length=1, max_length=128)
    query: DpQuery
    epsilon: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    delta: Decimal | None = Field(default=None, ge=0, lt=1, allow_inf_nan=False)
    rho: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    dry_run: bool = False


@router.post("/query")
def dp_query(
    body: DpQueryBody,
    principal: CurrentPrincipal,
    purpose: AcknowledgedPurpose,
    services: ServicesDep,
    request_id: RequestId,
) -> dict[str, Any]:
    """Release a differentially private statistic (or, with dry_run, only price it)."""
    out = run_query(
        services,
        principal,
        body.dataset,
        purpose,
        body.query,
        epsilon=body.epsilon,
        delta=body.delta,
        rho=body.rho,
        dry_run=body.dry_run,
        request_id=request_id,
    )
    release = out.release
    return {
        "dataset": body.dataset,
        "purpose": purpose,
        "dry_run": out.dry_run,
        "charge": {
            "kind": out.charge.kind.value,
            **{
                k: str(v)
                for k, v in (
                    ("epsilon", out.charge.epsilon),
                    ("delta", out.charge.delta),
                    ("rho", out.charge.rho),
                )
                if v is not None
            },
        },
        "source": out.plan.source,
        "expected_accuracy95": dict(out.expected_accuracy95),
        "groups": None if release is None else [list(g) for g in release.groups],
        "values": None
        if release is None
        else [list(v) if isinstance(v, tuple) else v for v in release.values],
        "accuracy95": None if release is None else release.accuracy95,
        "statistics": []
        if release is None
        else [
            {
                "name": s.name,
                "mechanism": s.mechanism,
                "scale": s.scale,
                "accuracy95": s.accuracy95,
                "share": s.share,
            }
            for s in release.statistics
        ],
        "notes": [] if release is None else list(release.notes),
        "request_id": out.request_id,
    }


@router.get("/budget/{dataset}")
def dp_budget(
    dataset: str,
    principal: CurrentPrincipal,
    purpose: AcknowledgedPurpose,
    services: ServicesDep,
) -> dict[str, Any]:
    """The privacy budget of (dataset, purpose) left for the caller."""
    status = budget_status(services, principal, dataset, purpose)
    return {
        "dataset": dataset,
        "purpose": purpose,
        "kind": status.total.kind.value,
        "total": [str(v) for v in status.total.parts],
        "spent": [str(v) for v in status.spent.parts],
        "remaining": [str(v) for v in status.remaining.parts],
        "available": [str(v) for v in status.available.parts],
        "charges": status.charges,
    }
