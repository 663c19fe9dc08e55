"""The governed ingest job: read -> enforce schema -> quarantine -> protect -> write Delta.

Raw values leave this job only through the outputs the policy names: the governed table
(protected columns only), the quarantine table (steward access; bad rows with reasons)
and the DP zone (entity key plus the raw columns the DP engine needs). Every output is
written with a Delta app transaction keyed by (source fingerprint, policy version), so a
re-run of the same input and policy adds nothing, and a run killed part-way is completed
by the next one.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gateway.audit import AuditEvent
from gateway.errors import GatewayError, IngestError
from gateway.ingest.lineage import emit_run_event
from gateway.ingest.protect import (
    ProtectionPlan,
    plan_protection,
    protect_frame,
    row_filter_column,
)
from gateway.ingest.source import RawSource, read_source, resolve_source
from gateway.ingest.validate import REASONS, check_columns, with_reasons
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.loader import PolicySet
from gateway.policy.protection import ProtectionKind
from gateway.secrets import SecretStore
from gateway.settings import Settings
from gateway.storage import CommitInfo, DeltaStore

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from masking.kanon import KAnonymityReport

__all__ = ["IngestRequest", "IngestResult", "LakePaths", "dp_zone_columns", "run_ingest"]

log = logging.getLogger(__name__)

Mode = Literal["append", "overwrite", "merge"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class LakePaths:
    """Where each output of a dataset lives under the lake root."""

    root: Path

    def governed(self, dataset: str, purpose: str) -> Path:
        """The governed table of one (dataset, purpose)."""
        return self.root / "governed" / dataset / purpose

    def quarantine(self, dataset: str) -> Path:
        """Bad rows of a dataset, with reasons (steward access only)."""
        return self.root / "quarantine" / dataset

    def dp_zone(self, dataset: str) -> Path:
        """Raw columns readable only by the DP engine."""
        return self.root / "dp" / dataset

    def encrypted(self, dataset: str, purpose: str) -> Path:
        """Packed homomorphic ciphertexts of encrypted columns."""
        return self.root / "encrypted" / dataset / purpose


@dataclass(frozen=True)
class IngestRequest:
    """One ingest run: which dataset, for which purpose, from where, how."""

    dataset: str
    purpose: str
    source: str | None = None
    mode: Mode = "append"
    principal: str = "local"
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class OutputResult:
    """One table the job wrote (or found already written by an earlier run)."""

    path: str
    version: int | None
    rows: int
    skipped: bool


@dataclass(frozen=True)
class IngestResult:
    """What an ingest run read, refused, filtered and wrote, with the facts it recorded."""

    job_id: str
    dataset: str
    purpose: str
    policy_version: str
    source_fingerprint: str
    engine: str
    rows_read: int
    rows_quarantined: int
    rows_filtered: int
    rows_written: int
    outputs: dict[str, OutputResult]
    facts: dict[str, Any]
    k_anonymity: KAnonymityReport | None
    skipped: bool
    seconds: dict[str, float]


def dp_zone_columns(ds: DatasetPolicy) -> list[str]:
    """The DP zone's columns: the entity and row keys, every column DP-only for some purpose,
    every column with DP settings, and the columns row filters read (the DP engine filters)."""
    from gateway.policy.expressions import parse_condition

    schema = {name: spec.type for name, spec in ds.columns.items()}
    wanted = {ds.entity}
    for name, spec in ds.columns.items():
        protections = [spec.protect, *(o.protect for o in spec.purposes.values())]
        if spec.dp is not None or any(
            p is not None and p.kind is ProtectionKind.DP_ONLY for p in protections
        ):
            wanted.add(name)
    if len(wanted) == 1:
        return []
    wanted |= set(ds.key_columns)  # so that merge-mode ingests can upsert the zone too
    for text in ds.row_filters.values():
        wanted |= parse_condition(text, schema).columns
    return [name for name in ds.columns if name in wanted]


class _Stages:
    """Times each stage and reports progress."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)


def _txn(
    kind: str, dataset: str, purpose: str | None, source: RawSource, policy_version: str
) -> tuple[str, int]:
    raw = f"{kind}|{dataset}|{purpose or ''}|{source.fingerprint}|{policy_version}"
    return f"gateway-{kind}-{hashlib.sha256(raw.encode()).hexdigest()[:32]}", 0


def _perturbation_seed(secrets: SecretStore, plan: ProtectionPlan, source: RawSource) -> int:
    """A seed for cell perturbation that is reproducible for one input but secret."""
    import hmac

    material = secrets.key("perturbation-seed")
    digest = hmac.new(
        material.secret, f"{plan.dataset}|{plan.purpose}|{source.fingerprint}".encode(), "sha256"
    )
    return int.from_bytes(digest.digest()[:7], "big")


def _audit_event(result: IngestResult, principal: str) -> AuditEvent:
    return AuditEvent(
        kind="ingest",
        subject=principal,
        action="ingest",
        purpose=result.purpose,
        resource=f"dataset:{result.dataset}",
        decision="n/a",
        request_id=result.job_id,
        policy_version=result.policy_version,
        released={
            "rows_read": result.rows_read,
            "rows_quarantined": result.rows_quarantined,
            "rows_filtered": result.rows_filtered,
            "rows_written": result.rows_written,
            "skipped": result.skipped,
            "engine": result.engine,
        },
    )


def run_ingest(
    spark: SparkSession,
    settings: Settings,
    policies: PolicySet,
    request: IngestRequest,
    *,
    store: DeltaStore,
    progress: Progress | None = None,
    audit: Callable[[AuditEvent], None] | None = None,
) -> IngestResult:
    """Run one governed ingest; IngestError (and nothing written) when the policy refuses it.

    With `audit`, the run is recorded as an `ingest` audit event (counts, never values)."""
    result = _run_ingest(spark, settings, policies, request, store=store, progress=progress)
    if audit is not None:
        audit(_audit_event(result, request.principal))
    return result


def _run_ingest(
    spark: SparkSession,
    settings: Settings,
    policies: PolicySet,
    request: IngestRequest,
    *,
    store: DeltaStore,
    progress: Progress | None = None,
) -> IngestResult:

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    stages = _Stages(progress)
    ds = policies.dataset(request.dataset)
    plan = plan_protection(policies, request.dataset, request.purpose)
    lake = LakePaths(settings.lake)
    secrets = SecretStore(settings)
    with stages.stage("resolve source"):
        source = resolve_source(ds.source, settings.landing, request.source)
    governed_path = lake.governed(ds.dataset, request.purpose)
    quarantine_path = lake.quarantine(ds.dataset)
    dp_path = lake.dp_zone(ds.dataset)
    dp_columns = dp_zone_columns(ds)
    txns = {
        "governed": _txn("governed", ds.dataset, request.purpose, source, policies.version),
        "quarantine": _txn("quarantine", ds.dataset, None, source, policies.version),
        "dp": _txn("dp", ds.dataset, None, source, policies.version),
        "encrypted": _txn("encrypted", ds.dataset, request.purpose, source, policies.version),
    }
    keys = secrets.keys(plan.key_references)
    key_ids = {ref: material.key_id for ref, material in keys.items()}
    job_name = f"ingest.{ds.dataset}.{request.purpose}"
    emit_run_event(
        settings,
        state="START",
        run_id=str(uuid.UUID(hex=request.job_id)),
        job_name=job_name,
        inputs=[source.location],
        outputs={},
        policy_version=policies.version,
        purpose=request.purpose,
    )
    encrypted_path = lake.encrypted(ds.dataset, request.purpose)
    if (
        store.transaction_done(governed_path, txns["governed"])
        and (not dp_columns or store.transaction_done(dp_path, txns["dp"]))
        and (not plan.encrypted or store.transaction_done(encrypted_path, txns["encrypted"]))
    ):
        log.info(
            "ingest %s/%s: this input and policy were already ingested", ds.dataset, request.purpose
        )
        return _finish(
            settings,
            request,
            plan,
            source,
            store,
            stages,
            job_name,
            key_ids,
            counts=(0, 0, 0),
            k_report=None,
            skipped=True,
            outputs={
                "governed": OutputResult(str(governed_path), store.version(governed_path), 0, True)
            },
        )
    validated = None
    governed = None
    try:
        with stages.stage("read and validate"):
            raw = read_source(spark, source, ds.source.options, store)
            check_columns(raw, ds)
            validated = with_reasons(
                raw.select(*[F.col(f"`{c}`") for c in ds.columns]), ds, source.text_typed
            ).persist(StorageLevel.MEMORY_AND_DISK)
            good_row = F.size(F.col(REASONS)) == 0
            row_filter = row_filter_column(ds, plan)
            kept_row = good_row & (row_filter if row_filter is not None else F.lit(True))
            counts = validated.agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum(F.when(~good_row, 1).otherwise(0)).alias("bad"),
                F.sum(F.when(kept_row, 1).otherwise(0)).alias("kept"),
            ).first()
            assert counts is not None
            rows_read, bad, kept = (
                int(counts["rows"]),
                int(counts["bad"] or 0),
                int(counts["kept"] or 0),
            )
        with stages.stage("protect"):
            good = validated.filter(good_row).drop(REASONS)
            seed = _perturbation_seed(secrets, plan, source)
            governed = good.filter(kept_row) if row_filter is not None else good
            governed = protect_frame(governed, ds, plan, keys, seed)
            k_report = None
            qi = ds.quasi_identifiers
            present = [c for c in (qi.columns if qi else ()) if c in governed.columns]
            if qi is not None and present:
                from masking.kanon import enforce_k_anonymity

                governed = governed.persist(StorageLevel.MEMORY_AND_DISK)
                sensitive = qi.sensitive if qi.sensitive in governed.columns else None
                governed, k_report = enforce_k_anonymity(governed, present, qi.k, sensitive)
        commit_extra = {
            "rows_read": str(rows_read),
            "rows_quarantined": str(bad),
            "rows_filtered": str(rows_read - bad - kept),
            "rows_written": str(kept),
            "protection": plan.facts_json(key_ids, k_report.k_achieved if k_report else None),
            "mode": request.mode,
        }
        commit = CommitInfo(
            policy_version=policies.version,
            purpose=request.purpose,
            job_id=request.job_id,
            principal=request.principal,
            source_fingerprint=source.fingerprint,
            extra=commit_extra,
        )
        outputs: dict[str, OutputResult] = {}
        with stages.stage("write governed"):
            outputs["governed"] = _write(
                store,
                governed,
                governed_path,
                request.mode,
                commit,
                txns["governed"],
                ds,
                plan,
                kept,
            )
        if plan.encrypted:
            from gateway.he import write_encrypted_columns

            with stages.stage("write encrypted columns"):
                _ensure_dev_he_key(settings, ds)
                encrypted = write_encrypted_columns(
                    spark,
                    settings,
                    store,
                    ds,
                    plan,
                    good,
                    commit=commit,
                    txn=txns["encrypted"],
                    mode="overwrite" if request.mode == "overwrite" else "append",
                    keys=keys,
                    seed=seed,
                    rows=kept,
                )
                if encrypted is not None:
                    outputs["encrypted"] = encrypted
        if bad:
            with stages.stage("write quarantine"):
                bad_rows = validated.filter(~good_row).select(
                    *[F.col(f"`{c}`").cast("string").alias(c) for c in ds.columns],
                    F.col(REASONS),
                    F.lit(request.job_id).alias("_job_id"),
                    F.current_timestamp().alias("_quarantined_at"),
                )
                q_commit = CommitInfo(
                    policy_version=policies.version,
                    job_id=request.job_id,
                    principal=request.principal,
                    source_fingerprint=source.fingerprint,
                    extra={"rows_quarantined": str(bad)},
                )
                outputs["quarantine"] = _write(
                    store,
                    bad_rows,
                    quarantine_path,
                    "append",
                    q_commit,
                    txns["quarantine"],
                    ds,
                    plan,
                    bad,
                )
        if dp_columns:
            with stages.stage("write DP zone"):
                dp_rows = good.select(*[F.col(f"`{c}`") for c in dp_columns])
                dp_commit = CommitInfo(
                    policy_version=policies.version,
                    job_id=request.job_id,
                    principal=request.principal,
                    source_fingerprint=source.fingerprint,
                    extra={"rows": str(rows_read - bad), "columns": ",".join(dp_columns)},
                )
                dp_mode: Mode = "append" if request.mode == "append" else "overwrite"
                if request.mode == "merge":
                    dp_mode = "merge"
                outputs["dp"] = _write(
                    store,
                    dp_rows,
                    dp_path,
                    dp_mode,
                    dp_commit,
                    txns["dp"],
                    ds,
                    None,
                    rows_read - bad,
                )
    except GatewayError:
        _fail_event(settings, request, job_name, source, policies.version)
        raise
    except Exception as exc:
        _fail_event(settings, request, job_name, source, policies.version)
        raise IngestError(
            f"ingest of '{ds.dataset}' for '{request.purpose}' failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        ) from exc
    finally:
        for frame in (governed, validated):
            if frame is not None:
                frame.unpersist()
    return _finish(
        settings,
        request,
        plan,
        source,
        store,
        stages,
        job_name,
        key_ids,
        counts=(rows_read, bad, kept),
        k_report=k_report,
        skipped=False,
        outputs=outputs,
        schema={f.name: f.dataType.simpleString() for f in governed.schema.fields},
    )


def _ensure_dev_he_key(settings: Settings, ds: DatasetPolicy) -> None:
    """Outside production, make the dataset's HE key pair when none exists yet (logged)."""
    from gateway.errors import ConfigurationError
    from gateway.he import keygen, load_gateway_key

    try:
        load_gateway_key(settings, ds.dataset)
    except ConfigurationError:
        if settings.is_production:
            raise
        keygen(settings, ds.dataset, dataset=ds)
        log.warning(
            "generated a development HE key for %s; the key holder's secret context is under %s",
            ds.dataset,
            settings.home / "keyholder",
        )


def _write(
    store: DeltaStore,
    frame: DataFrame,
    path: Path,
    mode: Mode,
    commit: CommitInfo,
    txn: tuple[str, int],
    ds: DatasetPolicy,
    plan: ProtectionPlan | None,
    rows: int,
) -> OutputResult:
    already = store.transaction_done(path, txn)
    if already:
        return OutputResult(str(path), store.version(path), 0, True)
    if mode == "merge":
        key = list(ds.key_columns)
        missing = [c for c in key if c not in frame.columns]
        if missing:
            raise IngestError(
                f"merge needs the key column(s) {', '.join(missing)}, which the policy "
                f"does not keep in this table" + (f" for '{plan.purpose}'" if plan else "")
            )
        version = store.merge(frame, path, key=key, commit=commit, txn=txn)
    else:
        version = store.write(frame, path, mode=mode, commit=commit, txn=txn)
    return OutputResult(str(path), version, rows, False)


def _fail_event(
    settings: Settings, request: IngestRequest, job_name: str, source: RawSource, version: str
) -> None:
    try:
        emit_run_event(
            settings,
            state="FAIL",
            run_id=str(uuid.UUID(hex=request.job_id)),
            job_name=job_name,
            inputs=[source.location],
            outputs={},
            policy_version=version,
            purpose=request.purpose,
        )
    except Exception:
        log.warning("could not emit the FAIL lineage event for %s", job_name, exc_info=True)


def _finish(
    settings: Settings,
    request: IngestRequest,
    plan: ProtectionPlan,
    source: RawSource,
    store: DeltaStore,
    stages: _Stages,
    job_name: str,
    key_ids: dict[str, str],
    *,
    counts: tuple[int, int, int],
    k_report: KAnonymityReport | None,
    skipped: bool,
    outputs: dict[str, OutputResult],
    schema: dict[str, str] | None = None,
) -> IngestResult:
    rows_read, bad, kept = counts
    facts = plan.facts(key_ids, k_report.k_achieved if k_report else None)
    lineage_outputs: dict[str, dict[str, Any]] = {}
    if "governed" in outputs:
        lineage_outputs[f"governed/{plan.dataset}/{plan.purpose}"] = {
            "schema": schema or {},
            "protection": facts,
        }
    emit_run_event(
        settings,
        state="COMPLETE",
        run_id=str(uuid.UUID(hex=request.job_id)),
        job_name=job_name,
        inputs=[source.location],
        outputs=lineage_outputs,
        policy_version=plan.policy_version,
        purpose=plan.purpose,
    )
    return IngestResult(
        job_id=request.job_id,
        dataset=plan.dataset,
        purpose=plan.purpose,
        policy_version=plan.policy_version,
        source_fingerprint=source.fingerprint,
        engine=store.engine,
        rows_read=rows_read,
        rows_quarantined=bad,
        rows_filtered=rows_read - bad - kept,
        rows_written=kept,
        outputs=outputs,
        facts=facts,
        k_anonymity=k_report,
        skipped=skipped,
        seconds=dict(stages.seconds),
    )
