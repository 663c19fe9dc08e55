"""Errors as RFC 9457 problem+json bodies with a request id; a 500 never shows internals."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.errors import GatewayError

__all__ = ["PROBLEM_JSON", "install_problem_handlers", "problem"]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(request: Request, status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response carrying the request id."""
    request_id = getattr(request.state, "request_id", "")
    body = {
        "type": f"urn:gateway:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id,
        **extra,
    }
    headers = {"X-Request-ID": request_id}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Map gateway errors, validation errors, HTTP errors and anything else to problems."""

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        extra = getattr(exc, "problem_extra", None) or {}
        return problem(request, exc.http_status, exc.code, exc.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))[:200]}
            for err in exc.errors()[:20]
        ]  # the offending input is never echoed
        return problem(request, 422, "invalid-input", "the request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = (
            exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
        )
        return problem(request, exc.status_code, "http-error", detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error on %s (request %s)",
            request.url.path,
            getattr(request.state, "request_id", ""),
            exc_info=exc,
        )
        return problem(
            request,
            500,
            "internal-error",
            "an unexpected error occurred; quote the request id to your operator",
        )
