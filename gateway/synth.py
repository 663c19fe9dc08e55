"""Gateway glue for synthetic releases: policy -> SynthConfig, governed fit data, Delta, audit.

Fit data (see docs/synthetic.md): the raw validated rows of the dataset (quarantine rules
applied) with the purpose's row filters, minus the columns the purpose drops or nullifies;
quasi-identifiers enter at the granularity the purpose's governed table releases them (its
generalisation, then k-anonymity suppression); direct identifiers and the entity key are
never learned (generated afresh or dropped, as `synthetic.identifiers` says).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.audit import AuditEvent
from gateway.errors import AccessDenied, GatewayError, NotFound, ValidationFailed
from gateway.identity import Principal
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.loader import PolicySet
from gateway.policy.organisation import purpose_covers
from gateway.policy.protection import ProtectionKind
from gateway.services import Services
from gateway.storage import CommitInfo, DeltaStore
from masking.types import DataType
from synthetic.config import ColumnKind, SynthColumn, SynthConfig, SynthesizerName
from synthetic.gate import GateReport, ReleaseRefused

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]
    from pyspark.sql import DataFrame, SparkSession

    from synthetic.engine import Progress, SynthesizerFactory

__all__ = [
    "SyntheticGateFailed",
    "SyntheticResult",
    "load_fit_data",
    "run_synthetic",
    "synth_config",
    "synthetic_path",
]

REPORT_FILE = "_synthetic_report.json"
_PII = (
    ("email", "email"),
    ("phone", "phone_number"),
    ("name", "name"),
    ("address", "address"),
    ("national_id", "ssn"),
    ("ssn", "ssn"),
    ("ip", "ipv4_address"),
)


class SyntheticGateFailed(GatewayError):
    """The release gate refused the release; nothing was published (HTTP 422)."""

    http_status = 422
    code = "synthetic-gate-failed"

    def __init__(self, message: str, report: GateReport) -> None:
        super().__init__(message)
        self.report = report
        self.problem_extra = {"checks": report.to_dict()["checks"]}


@dataclass(frozen=True)
class SyntheticResult:
    """An accepted release: where it went, how many rows, and the gate report."""

    dataset: str
    purpose: str
    path: str
    version: int
    rows: int
    synthesizer: str
    seed: int
    policy_version: str
    report: dict[str, Any]
    job_id: str


def synthetic_path(lake: Path, dataset: str, purpose: str) -> Path:
    """Where the synthetic release of (dataset, purpose) lives under the lake root."""
    return lake / "synthetic" / dataset / purpose


def _pii_sdtype(name: str) -> str | None:
    lowered = name.lower()
    return next((sdtype for word, sdtype in _PII if word in lowered), None)


def _kind(ds: DatasetPolicy, name: str) -> ColumnKind:
    spec = ds.columns[name]
    if spec.type is DataType.BOOLEAN:
        return "boolean"
    if spec.type in (DataType.DATE, DataType.TIMESTAMP):
        return "datetime"
    if spec.type in (DataType.INTEGER, DataType.LONG, DataType.DOUBLE):
        return "categorical" if spec.allowed is not None else "numerical"
    return "categorical"


def synth_config(
    policies: PolicySet,
    dataset: str,
    purpose: str,
    *,
    synthesizer: SynthesizerName | None = None,
    seed: int | None = None,
    epochs: int | None = None,
) -> SynthConfig:
    """The SynthConfig the policy gives (dataset, purpose); ValidationFailed if not allowed."""
    ds = policies.dataset(dataset)
    rules = ds.synthetic
    if rules is None:
        raise ValidationFailed(f"dataset '{dataset}' has no synthetic rules in its policy")
    if not any(purpose_covers(granted, purpose) for granted in rules.allowed_for):
        raise AccessDenied(
            f"synthetic releases of '{dataset}' are allowed for {', '.join(rules.allowed_for)} "
            f"only, not '{purpose}'"
        )
    columns: list[SynthColumn] = []
    for name, spec in ds.columns.items():
        protection = ds.protection(name, purpose, policies.lowest_clearance)
        removed = protection is not None and (
            protection.kind is ProtectionKind.DROP
            or (protection.kind is ProtectionKind.MASK and protection.strategy == "nullify")
        )
        if removed:
            continue
        if name == ds.entity:
            columns.append(SynthColumn(name=name, kind="id"))
        elif spec.identifier == "direct":
            if rules.identifiers == "drop":
                continue
            columns.append(SynthColumn(name=name, kind="pii", pii_sdtype=_pii_sdtype(name)))
        else:
            numeric = isinstance(spec.min, int | float) or isinstance(spec.max, int | float)
            columns.append(
                SynthColumn(
                    name=name,
                    kind=_kind(ds, name),
                    integer=spec.type in (DataType.INTEGER, DataType.LONG),
                    minimum=float(spec.min)
                    if numeric and isinstance(spec.min, int | float)
                    else None,
                    maximum=float(spec.max)
                    if numeric and isinstance(spec.max, int | float)
                    else None,
                    allowed=spec.allowed,
                )
            )
    names = {c.name for c in columns}
    qi = ds.quasi_identifiers
    default_seed = int.from_bytes(
        hashlib.sha256(f"{dataset}|{purpose}|{policies.version}".encode()).digest()[:4], "big"
    )
    return SynthConfig(
        table=dataset,
        columns=tuple(columns),
        synthesizer=synthesizer or rules.synthesizer,
        seed=default_seed if seed is None else seed,
        sample_rows=rules.sample_rows,
        epochs=epochs,
        quasi_identifiers=tuple(c for c in (qi.columns if qi else ()) if c in names),
        sensitive=qi.sensitive if qi and qi.sensitive in names else None,
        min_quality=rules.min_quality,
    )


def load_fit_data(
    spark: SparkSession,
    services: Services,
    store: DeltaStore,
    dataset: str,
    purpose: str,
    config: SynthConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Seeded (train, holdout) pandas frames of the fit data, and the source fingerprint."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from gateway.ingest.protect import governed_columns, plan_protection, row_filter_column
    from gateway.ingest.source import read_source, resolve_source
    from gateway.ingest.validate import REASONS, check_columns, with_reasons
    from gateway.secrets import SecretStore
    from synthetic.engine import split_holdout

    policies = services.policies
    ds = policies.dataset(dataset)
    source = resolve_source(ds.source, services.settings.landing)
    raw = read_source(spark, source, ds.source.options, store)
    check_columns(raw, ds)
    validated = with_reasons(
        raw.select(*[F.col(f"`{c}`") for c in ds.columns]), ds, source.text_typed
    )
    good = validated.filter(F.size(F.col(REASONS)) == 0).drop(REASONS)
    plan = plan_protection(policies, dataset, purpose)
    row_filter = row_filter_column(ds, plan)
    if row_filter is not None:
        good = good.filter(row_filter)
    qis = list(config.quasi_identifiers)
    cached: list[DataFrame] = []
    frame: DataFrame = good
    if qis:
        qi_plan = replace(plan, columns=tuple(c for c in plan.columns if c.column in qis))
        keys = SecretStore(services.settings).keys(qi_plan.key_references)
        protected = {c.column: c.protection for c in qi_plan.columns}
        generalised = {
            name: expr
            for name, expr in zip(
                [c.column for c in qi_plan.columns],
                governed_columns(ds, qi_plan, keys, config.seed),
                strict=True,
            )
            if protected[name].kind is not ProtectionKind.KEEP
        }
        frame = good.select(*[generalised.get(c, F.col(f"`{c}`")).alias(c) for c in ds.columns])
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(frame)
        if ds.quasi_identifiers is not None:
            from masking.kanon import enforce_k_anonymity

            frame, _ = enforce_k_anonymity(frame, qis, ds.quasi_identifiers.k, config.sensitive)
    wanted = [c.name for c in config.columns if c.kind not in ("pii",)]
    frame = frame.select(*[F.col(f"`{c}`") for c in wanted]).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        total = frame.count()
        needed = config.sample_rows + config.holdout_rows
        picked = frame
        if total > needed:
            fraction = min(1.0, 1.1 * needed / total)
            picked = frame.sample(False, fraction, seed=config.seed).limit(needed)
        pdf = picked.toPandas()
    finally:
        for held in (frame, *cached):
            held.unpersist()
    train, holdout = split_holdout(pdf, config)
    return train, holdout, source.fingerprint


def _released(report: GateReport, rows: int, config: SynthConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "synthesizer": config.synthesizer, "seed": config.seed}
    out |= {f"score_{k}": v for k, v in report.scores().items()}
    out["failed_checks"] = [c.name for c in report.failed]
    return out


def run_synthetic(
    services: Services,
    principal: Principal,
    dataset: str,
    purpose: str,
    rows: int,
    *,
    spark: SparkSession,
    store: DeltaStore,
    synthesizer: SynthesizerName | None = None,
    seed: int | None = None,
    epochs: int | None = None,
    request_id: str = "",
    progress: Progress | None = None,
    factory: SynthesizerFactory | None = None,
) -> SyntheticResult:
    """Authorise, fit, gate and publish a synthetic release; audited either way."""

    from synthetic.engine import release

    policies = services.policies
    if dataset not in policies.datasets:
        raise NotFound(f"no dataset named '{dataset}'")
    decision = services.authorizer.can_synthesize(principal, purpose, dataset)
    services.decide(
        principal,
        decision,
        action="synthesize",
        purpose=purpose,
        resource=f"dataset:{dataset}",
        request_id=request_id,
        released={"rows": rows},
    )
    if not decision.allowed:
        if decision.hides_resource:
            raise NotFound(decision.reason)
        raise AccessDenied(decision.reason)
    ds = policies.dataset(dataset)
    config = synth_config(
        policies, dataset, purpose, synthesizer=synthesizer, seed=seed, epochs=epochs
    )
    assert ds.synthetic is not None
    if rows < 1 or rows > ds.synthetic.max_rows:
        raise ValidationFailed(
            f"rows must be between 1 and {ds.synthetic.max_rows} (the policy's max_rows)"
        )
    job_id = request_id or uuid.uuid4().hex
    train, holdout, fingerprint = load_fit_data(spark, services, store, dataset, purpose, config)
    if len(train) < 50:
        raise ValidationFailed(
            f"only {len(train)} rows may be used for '{purpose}': too few to fit"
        )
    path = synthetic_path(services.settings.lake, dataset, purpose)
    app_id = "gateway-synthetic-" + hashlib.sha256(job_id.encode()).hexdigest()[:24]
    types = {name: spec.type for name, spec in ds.columns.items()}
    state: dict[str, Any] = {"version": -1}
    gate: dict[str, GateReport] = {}

    def sink(batch: pd.DataFrame, index: int) -> None:
        from pyspark.sql import functions as F

        frame = spark.createDataFrame(_spark_ready(batch))
        frame = frame.select(
            *[F.col(f"`{c}`").cast(types[c].spark_sql).alias(c) for c in batch.columns]
        )
        extra = {
            "synthesizer": config.synthesizer,
            "seed": str(config.seed),
            "batch": str(index),
            "report": json.dumps(gate["report"].to_dict()),
        }
        commit = CommitInfo(
            policy_version=policies.version,
            purpose=purpose,
            job_id=job_id,
            principal=principal.subject,
            source_fingerprint=fingerprint,
            extra=extra,
        )
        state["version"] = store.write(
            frame,
            path,
            mode="overwrite" if index == 0 else "append",
            commit=commit,
            txn=(app_id, index),
        )

    try:
        result = release(
            train,
            holdout,
            config,
            rows,
            sink,
            factory=factory,
            progress=progress,
            on_gate=lambda r: gate.__setitem__("report", r),
        )
    except ReleaseRefused as refused:
        services.record(
            AuditEvent(
                kind="synthetic_release",
                subject=principal.subject,
                roles=principal.roles,
                action="synthesize",
                purpose=purpose,
                resource=f"dataset:{dataset}",
                decision="deny",
                rule="release_gate",
                reason=str(refused)[:2000],
                request_id=job_id,
                policy_version=policies.version,
                released=_released(refused.report, 0, config),
            )
        )
        raise SyntheticGateFailed(str(refused), refused.report) from None
    report = {
        **result.report.to_dict(),
        "synthesizer": config.synthesizer,
        "seed": config.seed,
        "policy_version": policies.version,
        "rows": result.rows,
        "training_rows": result.training_rows,
        "seconds": result.seconds,
        "columns": [c.model_dump() for c in config.columns],
    }
    (path / REPORT_FILE).write_text(json.dumps(report, indent=2, default=str))
    services.record(
        AuditEvent(
            kind="synthetic_release",
            subject=principal.subject,
            roles=principal.roles,
            action="synthesize",
            purpose=purpose,
            resource=f"dataset:{dataset}",
            decision="allow",
            rule=decision.rule,
            request_id=job_id,
            policy_version=policies.version,
            released=_released(result.report, result.rows, config),
        )
    )
    return SyntheticResult(
        dataset,
        purpose,
        str(path),
        int(state["version"]),
        result.rows,
        config.synthesizer,
        config.seed,
        policies.version,
        report,
        job_id,
    )


def _spark_ready(batch: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    out = batch.copy()
    for name in out.columns:
        if out[name].dtype == object:
            out[name] = out[name].astype("string").astype(object).where(out[name].notna(), None)
    return pd.DataFrame(out)
