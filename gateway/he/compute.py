"""Encrypted computation for a caller: authorise, build the plaintext mask in Spark, evaluate.

A filter is a condition in the policy expression language over the governed table's columns
(never the encrypted ones); Spark evaluates it on the governed table and joins the selected
entity keys with the chunk index, giving the 0/1 mask of row positions. The serving process
holds the public context and the signing key only; results are signed envelopes wrapped in a
signed `HeResult` that also names the dataset, purpose and (for scores) the entities.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from gateway.audit import AuditEvent
from gateway.errors import AccessDenied, NotFound, ValidationFailed
from gateway.he.errors import to_gateway_error
from gateway.he.keys import find_gateway_key, load_gateway_signing_key
from gateway.he.table import EncryptedTable, read_encrypted_table
from gateway.identity import Principal
from gateway.ingest.protect import ProtectionPlan, plan_protection
from gateway.policy.dataset import DatasetPolicy
from gateway.services import Services
from masking.types import NUMERIC_TYPES
from privacy.he import (
    EncryptedColumn,
    Envelope,
    HeError,
    HeEvaluator,
    Operation,
    SignatureInvalid,
    enforce_limit,
    estimate,
    key_tag,
    load_verify_key,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from gateway.storage import DeltaStore

__all__ = ["MAX_SCORED_ENTITIES", "HeComputeRequest", "HeResult", "compute_he", "min_rows_for"]

MAX_SCORED_ENTITIES = 10_000
_RESULT_DOMAIN = b"gateway.he.result/v1\n"


class HeComputeRequest(BaseModel):
    """One encrypted computation (the body of POST /v1/he/compute)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, max_length=200)
    operation: Operation
    columns: tuple[str, ...] = Field(min_length=1, max_length=64)
    where: str | None = Field(default=None, max_length=4000)
    weight_column: str | None = Field(default=None, max_length=128)
    entity_weights: dict[str, float] | None = Field(default=None, max_length=MAX_SCORED_ENTITIES)
    weights: tuple[float, ...] | None = Field(default=None, max_length=64)
    bias: float = 0.0
    entities: tuple[str, ...] | None = Field(default=None, max_length=MAX_SCORED_ENTITIES)
    ddof: int = Field(default=0, ge=0, le=1)


class HeResult(BaseModel):
    """What the gateway hands the key holder: the envelope plus signed request facts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["gateway.he.result/v1"] = "gateway.he.result/v1"
    dataset: str
    purpose: str
    key: str
    operation: Operation
    columns: tuple[str, ...]
    rows: int
    where: str | None = None
    entities: tuple[str, ...] = ()
    request_id: str = ""
    envelope: Envelope
    signature: str = ""

    def signed_bytes(self) -> bytes:
        """Canonical bytes of every field but `signature` (the envelope by its signature)."""
        fields = self.model_dump(mode="json", exclude={"signature", "envelope"})
        fields["envelope_signature"] = self.envelope.signature
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return _RESULT_DOMAIN + text.encode("ascii")

    def signed(self, key: Ed25519PrivateKey) -> HeResult:
        """A copy signed with the gateway's key."""
        signature = base64.b64encode(key.sign(self.signed_bytes())).decode("ascii")
        return self.model_copy(update={"signature": signature})

    def verify(self, verify_key: Ed25519PublicKey | bytes) -> None:
        """SignatureInvalid unless the document is as the gateway signed it."""
        from cryptography.exceptions import InvalidSignature

        key = load_verify_key(verify_key) if isinstance(verify_key, bytes) else verify_key
        if self.envelope.signer != key_tag(key):
            raise SignatureInvalid("the result names another signing key")
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.signed_bytes())
        except (InvalidSignature, ValueError):
            raise SignatureInvalid("the result signature does not verify") from None
        if (
            self.operation != self.envelope.operation
            or self.columns != self.envelope.columns
            or self.rows != self.envelope.rows
        ):
            raise SignatureInvalid("the result and its envelope disagree")


def min_rows_for(services_or_policies: Any, ds: DatasetPolicy) -> int:
    """The stricter of the dataset's `he.min_rows` and the organisation's min_aggregate_rows."""
    policies = getattr(services_or_policies, "policies", services_or_policies)
    return max(ds.he.min_rows, int(policies.organisation.min_aggregate_rows))


def _governed_condition(plan: ProtectionPlan, where: str) -> Column:
    from gateway.policy.expr_spark import to_spark_column
    from gateway.policy.expressions import parse_condition

    schema = {c.column: c.output_type for c in plan.columns}
    try:
        return to_spark_column(parse_condition(where, schema))
    except ValueError as exc:
        raise ValidationFailed(f"invalid filter: {exc}") from None


def _positions(frame: DataFrame) -> npt.NDArray[np.int64]:
    """The `position` column of a (small: one int per selected row) frame."""
    rows = frame.select("position").collect()
    return np.array([int(r["position"]) for r in rows], dtype=np.int64)


class _Job:
    """One computation's Spark side: governed table, chunk index, masks and weights."""

    def __init__(
        self,
        spark: SparkSession,
        store: DeltaStore,
        services: Services,
        ds: DatasetPolicy,
        plan: ProtectionPlan,
        request: HeComputeRequest,
    ) -> None:
        from gateway.ingest.job import LakePaths

        lake = LakePaths(services.settings.lake)
        self.spark = spark
        self.store = store
        self.plan = plan
        self.request = request
        self.table: EncryptedTable = read_encrypted_table(
            store, lake.encrypted(ds.dataset, plan.purpose)
        )
        self.governed_path = lake.governed(ds.dataset, plan.purpose)
        self.condition = None if request.where is None else _governed_condition(plan, request.where)

    def governed(self) -> DataFrame:
        from pyspark.sql import functions as F

        frame = self.store.read(self.governed_path)
        if self.condition is not None:
            frame = frame.filter(self.condition)
        return frame.withColumn("entity", F.col(f"`{self.plan.entity}`").cast("string"))

    def mask(self) -> npt.NDArray[np.bool_] | None:
        """The selected row positions as a mask; None for every current row."""
        if self.condition is None:
            if self.table.superseded.size == 0:
                return None
            mask = np.ones(self.table.rows, dtype=bool)
            mask[self.table.superseded] = False
            return mask
        selected = self.governed().select("entity").distinct()
        mask = np.zeros(self.table.rows, dtype=bool)
        mask[_positions(self.table.index().join(selected, "entity"))] = True
        return mask

    def weights(self) -> npt.NDArray[np.float64]:
        """Per-row plaintext weights from a governed column or an entity -> weight map."""
        from pyspark.sql import functions as F

        req = self.request
        if (req.weight_column is None) == (req.entity_weights is None):
            raise ValidationFailed(
                "weighted_sum needs exactly one of weight_column, entity_weights"
            )
        if req.weight_column is not None:
            known = {c.column: c.output_type for c in self.plan.columns}
            if req.weight_column not in known or known[req.weight_column] not in NUMERIC_TYPES:
                raise ValidationFailed(
                    f"weight_column '{req.weight_column}' is not a numeric governed column"
                )
            source = self.governed().select(
                "entity", F.col(f"`{req.weight_column}`").cast("double").alias("w")
            )
        else:
            assert req.entity_weights is not None
            source = self.spark.createDataFrame(
                [(str(k), float(v)) for k, v in req.entity_weights.items()],
                "entity string, w double",
            )
        rows = self.table.index().join(source, "entity").select("position", "w").collect()
        w = np.zeros(self.table.rows, dtype=np.float64)
        for row in rows:
            if row["w"] is not None:
                w[int(row["position"])] = float(row["w"])
        return w

    def entities(self) -> tuple[list[str], list[int]]:
        """Entities to score (request order, or sorted when selected by the filter)."""
        from pyspark.sql import functions as F

        req = self.request
        if req.entities is not None:
            wanted = list(dict.fromkeys(req.entities))
            frame = self.spark.createDataFrame([(e,) for e in wanted], "entity string")
        elif self.condition is not None:
            frame = self.governed().select("entity").distinct()
        else:
            raise ValidationFailed("linear_scores needs entities or a filter (where)")
        found = {
            str(r["entity"]): int(r["position"])
            for r in self.table.index()
            .join(F.broadcast(frame), "entity")
            .limit(MAX_SCORED_ENTITIES + 1)
            .collect()
        }
        if len(found) > MAX_SCORED_ENTITIES:
            raise ValidationFailed(f"at most {MAX_SCORED_ENTITIES} entities per request")
        if req.entities is not None:
            missing = [e for e in wanted if e not in found]
            if missing:
                raise NotFound(f"{len(missing)} of the requested entities are not in the table")
            ordered = wanted
        else:
            ordered = sorted(found)
        if not ordered:
            raise ValidationFailed("no entity matches the filter")
        return ordered, [found[e] for e in ordered]


def _authorise(
    services: Services,
    principal: Principal,
    purpose: str,
    request: HeComputeRequest,
    request_id: str,
) -> tuple[DatasetPolicy, ProtectionPlan, str]:
    policies = services.policies
    ds = policies.dataset(request.dataset)
    decision = services.authorizer.can_compute_he(
        principal, purpose, ds.dataset, list(request.columns)
    )
    services.decide(
        principal,
        decision,
        action="he_compute",
        purpose=purpose,
        resource=f"dataset:{ds.dataset}",
        request_id=request_id,
        released={"operation": request.operation, "columns": list(request.columns)},
    )
    if not decision.allowed:
        if decision.hides_resource:
            raise NotFound(decision.reason)
        raise AccessDenied(decision.reason)
    plan = plan_protection(policies, ds.dataset, purpose)
    not_encrypted = [c for c in request.columns if c not in plan.encrypted]
    if not_encrypted:
        raise ValidationFailed(
            f"column(s) {', '.join(not_encrypted)} of '{ds.dataset}' are not encrypted for "
            f"'{purpose}' (encrypted: {', '.join(plan.encrypted) or 'none'})"
        )
    return ds, plan, decision.rule


def _evaluate(
    evaluator: HeEvaluator, job: _Job, columns: Sequence[EncryptedColumn]
) -> tuple[Envelope, list[str]]:
    req = job.request
    op = req.operation
    if op != "linear_scores" and len(columns) != 1:
        raise ValidationFailed(f"{op} takes exactly one column")
    if op == "count":
        return evaluator.count(columns[0], job.mask()), []
    if op == "sum":
        return evaluator.sum(columns[0], job.mask()), []
    if op == "mean":
        return evaluator.mean(columns[0], job.mask()), []
    if op == "variance":
        return evaluator.variance(columns[0], job.mask(), ddof=req.ddof), []
    if op == "weighted_sum":
        return evaluator.weighted_sum(columns[0], job.weights(), job.mask()), []
    if req.weights is None or len(req.weights) != len(columns):
        raise ValidationFailed("linear_scores needs one weight per column")
    entities, rows = job.entities()
    return evaluator.linear_scores(columns, list(req.weights), req.bias, rows), entities


def compute_he(
    services: Services,
    principal: Principal,
    purpose: str,
    request: HeComputeRequest,
    *,
    spark: SparkSession,
    store: DeltaStore,
    request_id: str = "",
) -> HeResult:
    """Authorise, check limits, compute under encryption, audit (`he_compute`), sign."""
    ds, plan, rule = _authorise(services, principal, purpose, request, request_id)
    try:
        job = _Job(spark, store, services, ds, plan, request)
        key = find_gateway_key(services.settings, ds.dataset, job.table.fingerprint)
        loaded = (
            2 * len(request.columns) if request.operation == "variance" else len(request.columns)
        )
        enforce_limit(
            estimate(job.table.rows, loaded, key.params, chunk_slots=job.table.chunk_slots),
            ds.he.max_ciphertext_bytes,
        )
        squares = request.operation == "variance"
        columns = [job.table.column(name, squares=squares) for name in request.columns]
        evaluator = HeEvaluator(
            key.public,
            load_gateway_signing_key(services.settings),
            min_rows=min_rows_for(services, ds),
        )
        envelope, entities = _evaluate(evaluator, job, columns)
    except HeError as exc:
        raise to_gateway_error(exc) from None
    services.record(
        AuditEvent(
            kind="he_compute",
            subject=principal.subject,
            roles=principal.roles,
            action="he_compute",
            purpose=purpose,
            resource=f"dataset:{ds.dataset}",
            decision="allow",
            rule=rule,
            request_id=request_id,
            policy_version=services.policies.version,
            released={
                "operation": request.operation,
                "rows": envelope.rows,
                "columns": list(request.columns),
                "filtered": request.where is not None,
                "key_fingerprint": envelope.context_fingerprint,
            },
        )
    )
    result = HeResult(
        dataset=ds.dataset,
        purpose=purpose,
        key=key.name,
        operation=request.operation,
        columns=envelope.columns,
        rows=envelope.rows,
        where=request.where,
        entities=tuple(entities),
        request_id=request_id,
        envelope=envelope,
    )
    return result.signed(load_gateway_signing_key(services.settings))
