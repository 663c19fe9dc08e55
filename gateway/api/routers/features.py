"""POST /v1/features/online and /v1/features/historical: governed feature retrieval.

Every request is authorised per feature view for the X-Purpose and audited (features and
entity count, never values). Historical answers are Parquet, streamed.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import AcknowledgedPurpose, CurrentPrincipal, RequestId, ServicesDep
from gateway.errors import ValidationFailed
from gateway.features import MAX_HISTORICAL_ROWS, MAX_ONLINE_ENTITIES, FeatureGateway
from gateway.services import Services

__all__ = ["HistoricalRequest", "OnlineRequest", "feature_gateway", "router"]

router = APIRouter(prefix="/v1/features", tags=["features"])

PARQUET = "application/vnd.apache.parquet"
_CHUNK = 1 << 20
_lock = threading.Lock()


class OnlineRequest(BaseModel):
    """Entity key columns and the features (`view:feature`) or feature service wanted."""

    model_config = ConfigDict(extra="forbid")

    entities: dict[str, list[str | int | float | bool]] = Field(min_length=1)
    features: list[str] | None = Field(default=None, max_length=500)
    feature_service: str | None = None


class HistoricalRequest(BaseModel):
    """An entity dataframe as JSON records: keys and `event_timestamp` per row."""

    model_config = ConfigDict(extra="forbid")

    entity_rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_HISTORICAL_ROWS)
    features: list[str] | None = Field(default=None, max_length=500)
    feature_service: str | None = None


def feature_gateway(services: Services) -> FeatureGateway:
    """The process's FeatureGateway for `services` (created once, kept on the services)."""
    found: FeatureGateway | None = getattr(services, "_feature_gateway", None)
    if found is None:
        with _lock:
            found = getattr(services, "_feature_gateway", None)
            if found is None:
                found = FeatureGateway(services)
                object.__setattr__(services, "_feature_gateway", found)
    return found


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@router.post("/online")
def online_features(
    body: OnlineRequest,
    principal: CurrentPrincipal,
    purpose: AcknowledgedPurpose,
    services: ServicesDep,
    request_id: RequestId,
) -> JSONResponse:
    """Latest feature values for up to MAX_ONLINE_ENTITIES entities (columns of values)."""
    if any(len(v) > MAX_ONLINE_ENTITIES for v in body.entities.values()):
        raise ValidationFailed(f"at most {MAX_ONLINE_ENTITIES} entities per request")
    values = feature_gateway(services).online(
        principal, purpose, request_id, body.entities, body.features, body.feature_service
    )
    return JSONResponse(
        {
            "purpose": purpose,
            "policy_version": services.policies.version,
            "entity_count": len(next(iter(body.entities.values()))),
            "results": {k: [_json_value(x) for x in v] for k, v in values.items()},
        }
    )


@router.post(
    "/historical",
    response_class=StreamingResponse,
    responses={200: {"content": {PARQUET: {}}, "description": "Parquet training data"}},
)
async def historical_features(
    request: Request,
    principal: CurrentPrincipal,
    purpose: AcknowledgedPurpose,
    services: ServicesDep,
    request_id: RequestId,
    content_type: Annotated[str | None, Header()] = None,
    x_features: Annotated[str | None, Header(max_length=20_000)] = None,
    x_feature_service: Annotated[str | None, Header(max_length=200)] = None,
) -> StreamingResponse:
    """Point-in-time-correct training data as Parquet.

    Body: JSON `HistoricalRequest`, or a Parquet entity dataframe (Content-Type
    application/vnd.apache.parquet) with the features in `X-Features` (comma-separated) or
    the service in `X-Feature-Service`.
    """
    import pandas as pd  # type: ignore[import-untyped]
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]
    from starlette.concurrency import run_in_threadpool

    raw = await request.body()
    kind = (content_type or "").split(";")[0].strip().lower()
    features: list[str] | None
    service: str | None
    if kind in (PARQUET, "application/x-parquet", "application/octet-stream"):
        try:
            entity_df = pq.read_table(pa.BufferReader(raw)).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise ValidationFailed(f"the body is not a Parquet file: {exc}") from None
        features = [f.strip() for f in x_features.split(",") if f.strip()] if x_features else None
        service = x_feature_service
    else:
        try:
            body = HistoricalRequest.model_validate_json(raw)
        except ValueError as exc:
            raise ValidationFailed(f"invalid historical request: {str(exc)[:500]}") from None
        entity_df = pd.DataFrame.from_records(body.entity_rows)
        features, service = body.features, body.feature_service
    if len(entity_df) > MAX_HISTORICAL_ROWS:
        raise ValidationFailed(f"at most {MAX_HISTORICAL_ROWS} entity rows per request")
    gateway = feature_gateway(services)
    frame = await run_in_threadpool(
        gateway.historical, principal, purpose, request_id, entity_df, features, service
    )
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    data = sink.getvalue()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), _CHUNK):
            yield data[start : start + _CHUNK]

    return StreamingResponse(
        chunks(),
        media_type=PARQUET,
        headers={"X-Row-Count": str(len(frame)), "X-Policy-Version": services.policies.version},
    )
