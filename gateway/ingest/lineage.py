"""OpenLineage run events for ingest jobs, carrying the per-column protection facts.

Events go to `<home>/lineage/events.jsonl` (file transport) or to the console, as
settings say. They name datasets and columns, never values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attr

from gateway.settings import Settings

__all__ = ["LINEAGE_NAMESPACE", "emit_run_event"]

LINEAGE_NAMESPACE = "data-governance-gateway"
PRODUCER = "https://github.com/data-governance-gateway/gateway"


def _facet_base() -> type:
    from openlineage.client.generated.base import DatasetFacet

    return DatasetFacet


def _protection_facet(policy_version: str, purpose: str, columns: Mapping[str, Any]) -> Any:
    @attr.define
    class GatewayProtectionDatasetFacet(_facet_base()):  # type: ignore[misc]
        """Per-column protection facts of a governed table (custom facet)."""

        policyVersion: str
        purpose: str
        columns: dict[str, Any]

        @staticmethod
        def _get_schema() -> str:
            return f"{PRODUCER}/spec/GatewayProtectionDatasetFacet.json"

    return GatewayProtectionDatasetFacet(
        policyVersion=policy_version, purpose=purpose, columns=dict(columns)
    )


def emit_run_event(
    settings: Settings,
    *,
    state: str,
    run_id: str,
    job_name: str,
    inputs: list[str],
    outputs: Mapping[str, Mapping[str, Any]],
    policy_version: str,
    purpose: str,
) -> None:
    """Emit one OpenLineage RunEvent (START, COMPLETE or FAIL) for an ingest run.

    `outputs` maps an output dataset name to {"schema": {column: type}, "protection": facts}.
    """
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import schema_dataset
    from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
    from openlineage.client.transport.file import FileConfig, FileTransport

    if settings.lineage == "console":
        transport: Any = ConsoleTransport(ConsoleConfig())
    else:
        folder = settings.home / "lineage"
        folder.mkdir(parents=True, exist_ok=True)
        transport = FileTransport(
            FileConfig(log_file_path=str(folder / "events.jsonl"), append=True)
        )
    client = OpenLineageClient(transport=transport)
    out_datasets = []
    for name, info in outputs.items():
        fields = [
            schema_dataset.SchemaDatasetFacetFields(name=col, type=str(kind))
            for col, kind in info.get("schema", {}).items()
        ]
        facets: dict[str, Any] = {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}
        if "protection" in info:
            facets["gatewayProtection"] = _protection_facet(
                policy_version, purpose, info["protection"]
            )
        out_datasets.append(OutputDataset(namespace=LINEAGE_NAMESPACE, name=name, facets=facets))
    event = RunEvent(
        eventType=getattr(RunState, state),
        eventTime=dt.datetime.now(dt.UTC).isoformat(),
        run=Run(runId=run_id),
        job=Job(namespace=LINEAGE_NAMESPACE, name=job_name),
        inputs=[InputDataset(namespace=LINEAGE_NAMESPACE, name=name) for name in inputs],
        outputs=out_datasets,
        producer=PRODUCER,
    )
    client.emit(event)
