"""The governed ingest job: raw sources in, governed Delta tables out, nothing past the policy."""

from gateway.ingest.dryrun import DryRunReport, dry_run
from gateway.ingest.job import IngestRequest, IngestResult, LakePaths, run_ingest
from gateway.ingest.protect import ProtectionPlan, plan_protection

__all__ = [
    "DryRunReport",
    "IngestRequest",
    "IngestResult",
    "LakePaths",
    "ProtectionPlan",
    "dry_run",
    "plan_protection",
    "run_ingest",
]
