"""Liveness, readiness (database reachable, policy loaded) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.api.deps import ServicesDep
from gateway.api.models import Health
from gateway.errors import GatewayError

router = APIRouter(tags=["health"])


class NotReady(GatewayError):
    """A dependency the gateway needs is not available (HTTP 503)."""

    http_status = 503
    code = "not-ready"


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health)
def readyz(services: ServicesDep) -> Health:
    """The database answers and a policy set is loaded."""
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means not ready
        raise NotReady("the database is not reachable") from None
    return Health(
        status="ready", checks={"database": "ok", "policy": services.policies.short_version}
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, decisions by outcome."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
