"""Purposes and their acknowledgement: a principal acknowledges a statement before first use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gateway.api.deps import CurrentPrincipal, RequestId, ServicesDep
from gateway.api.models import AcknowledgementOut, PurposeOut
from gateway.audit import AuditEvent
from gateway.errors import NotFound

router = APIRouter(prefix="/v1/purposes", tags=["purposes"])

PurposeName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$", max_length=200)]


@router.get("", response_model=list[PurposeOut])
def list_purposes(principal: CurrentPrincipal, services: ServicesDep) -> list[PurposeOut]:
    """Every purpose with its statement, and whether the caller acknowledged its current version."""
    org = services.policies.organisation
    return [
        PurposeOut(
            purpose=name,
            statement=p.statement,
            statement_version=p.statement_version,
            legal_basis=p.legal_basis,
            acknowledged=services.acknowledgements.get(principal.subject, name, p.statement_version)
            is not None,
        )
        for name, p in sorted(org.purposes.items())
    ]


@router.post("/{purpose}/acknowledge", response_model=AcknowledgementOut)
def acknowledge(
    purpose: PurposeName, principal: CurrentPrincipal, services: ServicesDep, request_id: RequestId
) -> AcknowledgementOut:
    """Acknowledge the purpose's current statement (recorded with its version and time)."""
    statement = services.policies.organisation.purposes.get(purpose)
    if statement is None:
        raise NotFound(f"no purpose named '{purpose}'")
    services.record(
        AuditEvent(
            kind="acknowledgement",
            subject=principal.subject,
            roles=principal.roles,
            action="acknowledge",
            purpose=purpose,
            resource=f"purpose:{purpose}",
            request_id=request_id,
            policy_version=services.policies.version,
            released={"statement_version": statement.statement_version},
        )
    )
    record = services.acknowledgements.acknowledge(
        principal.subject, purpose, statement.statement_version
    )
    return AcknowledgementOut(
        subject=record.subject,
        purpose=record.purpose,
        statement_version=record.statement_version,
        acknowledged_at=record.acknowledged_at,
    )
