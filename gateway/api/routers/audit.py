"""GET /v1/audit (auditors) and GET /v1/audit/verify: the tamper-evident record."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import AcknowledgedPurpose, CurrentPrincipal, RequestId, ServicesDep
from gateway.api.models import AuditEventOut, AuditPage, AuditVerification
from gateway.errors import AccessDenied

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def _authorise(
    services: ServicesDep, principal: CurrentPrincipal, purpose: str | None, request_id: str
) -> None:
    decision = services.authorizer.can_read_audit(principal, purpose or "*")
    services.decide(
        principal,
        decision,
        action="audit_read",
        purpose=purpose or "*",
        resource="audit",
        request_id=request_id,
    )
    if not decision.allowed:
        raise AccessDenied(decision.reason)


@router.get("", response_model=AuditPage)
def read_audit(
    principal: CurrentPrincipal,
    services: ServicesDep,
    request_id: RequestId,
    x_purpose: AcknowledgedPurpose,
    subject: Annotated[str | None, Query(max_length=255)] = None,
    purpose: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """A page of audit events, filtered; requires the audit_read action."""
    _authorise(services, principal, x_purpose, request_id)
    events = services.audit.query(
        subject=subject,
        purpose=purpose,
        action=action,
        since=since,
        until=until,
        limit=limit,
        after_seq=after_seq,
    )
    out = [
        AuditEventOut(
            seq=e.seq, hash=e.hash, prev_hash=e.prev_hash, event=json.loads(e.event.to_json())
        )
        for e in events
    ]
    return AuditPage(events=out, next_after_seq=out[-1].seq if len(out) == limit else None)


@router.get("/verify", response_model=AuditVerification)
def verify_audit(
    principal: CurrentPrincipal,
    services: ServicesDep,
    request_id: RequestId,
    x_purpose: AcknowledgedPurpose,
) -> AuditVerification:
    """Recompute the hash chain; names the first changed, deleted, inserted or reordered record."""
    _authorise(services, principal, x_purpose, request_id)
    report = services.audit.verify()
    return AuditVerification(
        ok=report.ok,
        records=report.records,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        message=report.message,
    )
