"""GET /v1/datasets: what the caller may use for the purpose, column by column."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.deps import AcknowledgedPurpose, CurrentPrincipal, RequestId, ServicesDep
from gateway.api.models import ColumnOut, DatasetList, DatasetOut
from gateway.authz import Decision

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.get("", response_model=DatasetList)
def list_datasets(
    principal: CurrentPrincipal,
    purpose: AcknowledgedPurpose,
    services: ServicesDep,
    request_id: RequestId,
) -> DatasetList:
    """Datasets the caller may use for the purpose, with the columns it would receive."""
    visible = services.authorizer.visible_datasets(principal, purpose)
    decision = Decision(
        allowed=True,
        rule="visible_datasets",
        reason=f"{len(visible)} datasets visible",
        policy_version=services.policies.version,
    )
    services.decide(
        principal,
        decision,
        action="list_datasets",
        purpose=purpose,
        resource="datasets",
        request_id=request_id,
        released={"datasets": [v.dataset for v in visible]},
    )
    return DatasetList(
        purpose=purpose,
        policy_version=services.policies.version,
        datasets=[
            DatasetOut(
                dataset=v.dataset,
                description=v.description,
                columns=[
                    ColumnOut(
                        name=c.name,
                        type=c.type,
                        classification=c.classification,
                        protection=c.protection,
                    )
                    for c in v.columns
                ],
                feature_views=list(v.views),
                actions=[a.value for a in v.actions],
            )
            for v in visible
        ],
    )
