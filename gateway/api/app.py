"""The FastAPI application factory: routers, problem+json errors, request context, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import __version__
from gateway.api.middleware import GatewayMetrics, RequestContextMiddleware
from gateway.api.problems import install_problem_handlers
from gateway.services import Services

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 8 * 1024 * 1024


def create_app(
    services: Services, *, max_body_bytes: int = MAX_BODY_BYTES, close_on_shutdown: bool = False
) -> FastAPI:
    """An app serving `services`; the caller owns them unless `close_on_shutdown`."""
    from gateway.api.routers import audit, datasets, dp, he, health, purposes

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            services.close()

    app = FastAPI(
        title="Data-governance gateway",
        version=__version__,
        description="Governed access to sensitive data: every call is authenticated, authorised "
        "for a purpose and audited.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics = metrics = GatewayMetrics()
    services.decision_listeners.append(
        lambda action, allowed: metrics.decisions.labels(
            action, "allow" if allowed else "deny"
        ).inc()
    )
    install_problem_handlers(app)
    for router in (
        health.router,
        purposes.router,
        datasets.router,
        audit.router,
        dp.router,
        he.router,
    ):
        app.include_router(router)
    app.add_middleware(
        RequestContextMiddleware, metrics=app.state.metrics, max_body_bytes=max_body_bytes
    )
    return app
