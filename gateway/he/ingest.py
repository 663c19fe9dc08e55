"""Encrypted columns at ingest: pack the plan's `encrypt` columns on the executors.

Rows are hash-partitioned by the governed entity key and sorted within each partition, so
every partition's content and order are deterministic (a recomputed partition is identical).
A first pass counts rows per partition (and the largest magnitude per column, for the range
check and the byte estimate); the second pass, a `mapInPandas` with the public context bytes
broadcast, encrypts each partition into chunks of `chunk_slots` rows. The last chunk of a
partition may be partly filled: padding slots are encrypted zeros marked invalid.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from gateway.errors import IngestError
from gateway.he.keys import GatewayKey, load_gateway_key
from gateway.he.table import encrypted_schema
from gateway.ingest.protect import ColumnPlan, ProtectionPlan, protect_frame, row_filter_column
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.protection import Protection, ProtectionKind
from gateway.secrets import SecretStore
from gateway.settings import Settings
from gateway.storage import CommitInfo, DeltaStore
from masking.base import KeyMaterial
from privacy.he import Estimate, HeError, HeLimitExceeded, enforce_limit, estimate

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]
    from pyspark.sql import DataFrame, SparkSession

    from gateway.ingest.job import OutputResult

__all__ = ["encryption_estimate", "write_encrypted_columns"]

_ENTITY = "_he_entity"
_CONTEXTS: dict[str, Any] = {}


def _partitions(spark: SparkSession, rows_hint: int | None, slots: int) -> int:
    parallelism = max(1, int(spark.sparkContext.defaultParallelism))
    if rows_hint is None:
        return parallelism
    return max(1, min(parallelism, math.ceil(rows_hint / slots)))


def encryption_estimate(key: GatewayKey, chunks: int, columns: int) -> Estimate:
    """Ciphertexts and bytes for `columns` packed columns (squares included) of `chunks` chunks."""
    slots = key.public.info.slots
    return estimate(chunks * slots, 2 * columns, key.params, chunk_slots=slots)


def _projection(
    frame: DataFrame,
    ds: DatasetPolicy,
    plan: ProtectionPlan,
    keys: Mapping[str, KeyMaterial],
    seed: int,
) -> DataFrame:
    """Governed entity key (the governed table's own projection) plus the raw encrypted values."""
    from pyspark.sql import functions as F

    entity_plans = [c for c in plan.columns if c.column == plan.entity]
    if not entity_plans:
        raise IngestError(
            f"the entity key '{plan.entity}' is not kept in the governed table for "
            f"'{plan.purpose}', so encrypted columns could not be joined with it"
        )
    keep = Protection(kind=ProtectionKind.KEEP)
    raw = [
        ColumnPlan(
            name,
            ds.columns[name].type,
            ds.columns[name].type,
            ds.columns[name].classification,
            keep,
        )
        for name in plan.encrypted
    ]
    projected = protect_frame(frame, ds, replace(plan, columns=(entity_plans[0], *raw)), keys, seed)
    return projected.select(
        F.col(f"`{plan.entity}`").cast("string").alias(_ENTITY),
        *[F.col(f"`{name}`").cast("double").alias(name) for name in plan.encrypted],
    )


def _public(blob: bytes, fingerprint: str) -> Any:
    """The public context on an executor, loaded once per Python worker."""
    if fingerprint not in _CONTEXTS:
        from privacy.he import load_public_context

        _CONTEXTS[fingerprint] = load_public_context(blob)
    return _CONTEXTS[fingerprint]


def _partition_id() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    assert context is not None
    return int(context.partitionId())


def _stats(columns: list[str]) -> Any:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        frames = list(batches)
        part = pd.concat(frames) if frames else pd.DataFrame(columns=[_ENTITY, *columns])
        pid = _partition_id()
        entities = part[_ENTITY]
        sorted_keys = entities.dropna().sort_values().to_numpy()
        duplicates = int(np.count_nonzero(sorted_keys[1:] == sorted_keys[:-1]))
        out: dict[str, list[Any]] = {
            "partition": [pid],
            "rows": [len(part)],
            "null_entities": [int(entities.isna().sum())],
            "duplicates": [duplicates],
        }
        for i, name in enumerate(columns):
            values = part[name].to_numpy(dtype=np.float64)
            finite = values[~np.isnan(values)]
            out[f"valid_{i}"] = [int(finite.size)]
            out[f"max_{i}"] = [float(np.max(np.abs(finite))) if finite.size else 0.0]
        yield pd.DataFrame(out)

    return run


def _encrypt(
    columns: list[str],
    context: Any,
    fingerprint: str,
    scheme: str,
    slots: int,
    offsets: dict[int, int],
    batch: str,
    batch_time: int,
    fields: list[str],
) -> Any:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        from privacy.he import pack_column

        frames = list(batches)
        if not frames:
            return
        part = pd.concat(frames).sort_values(_ENTITY, kind="stable")
        if part.empty:
            return
        public = _public(context.value, fingerprint)
        first = offsets[_partition_id()]
        entities = part[_ENTITY].to_numpy()
        for number, start in enumerate(range(0, len(part), slots)):
            chunk = first + number
            stop = min(start + slots, len(part))
            count = stop - start
            records: list[dict[str, Any]] = [
                {
                    "record": "index",
                    "batch": batch,
                    "batch_time": batch_time,
                    "chunk": chunk,
                    "slot": slot,
                    "entity": str(entities[start + slot]),
                }
                for slot in range(count)
            ]
            for name in columns:
                values = part[name].to_numpy(dtype=np.float64)[start:stop]
                valid = ~np.isnan(values)
                clean = np.where(valid, values, 0.0)
                mask = np.zeros(slots, dtype=bool)
                mask[:count] = valid
                top = float(np.max(np.abs(clean))) if clean.size else 0.0
                magnitude = 0 if top == 0 else math.frexp(top)[1]
                for label, data in (("value", clean), ("square", clean * clean)):
                    (blob,) = pack_column(data, public, valid=valid)
                    records.append(
                        {
                            "record": "chunk",
                            "batch": batch,
                            "batch_time": batch_time,
                            "column": name,
                            "part": label,
                            "chunk": chunk,
                            "rows": count,
                            "valid": np.packbits(mask).tobytes(),
                            "magnitude_bits": magnitude,
                            "ciphertext": blob,
                            "fingerprint": fingerprint,
                            "scheme": scheme,
                            "chunk_slots": slots,
                        }
                    )
            yield pd.DataFrame.from_records(records, columns=fields)

    return run


def _check_range(key: GatewayKey, valid: int, top: float, column: str) -> None:
    info = key.public.info
    for label, bound in (("values", valid * top), ("squares", valid * top * top)):
        limit = info.plain_modulus / 2 if info.scheme == "bfv" else 2.0**info.capacity_bits
        if bound >= limit:
            raise IngestError(
                f"column '{column}': rows x max |value| of its {label} reaches what the "
                f"{info.scheme.upper()} parameters carry; use larger parameters"
            )


def write_encrypted_columns(
    spark: SparkSession,
    settings: Settings,
    store: DeltaStore,
    ds: DatasetPolicy,
    plan: ProtectionPlan,
    good_rows: DataFrame,
    *,
    commit: CommitInfo,
    txn: tuple[str, int],
    mode: Literal["append", "overwrite"] = "append",
    keys: Mapping[str, KeyMaterial] | None = None,
    seed: int = 0,
    key_name: str | None = None,
    rows: int | None = None,
) -> OutputResult | None:
    """Write `encrypted/<dataset>/<purpose>` for the plan's encrypted columns; None if none.

    `good_rows`: the validated rows with the declared columns (raw values), before or after
    the purpose's row filters (they are applied here again). `txn` makes a re-run a no-op.
    `mode='append'` adds a batch (a re-ingested entity supersedes its older rows);
    `'overwrite'` replaces every batch. `keys`/`seed`: those of the governed projection
    (default: the secret store's keys for the entity column, seed 0; tokenization ignores
    the seed). Refuses (IngestError) before encrypting when the estimated ciphertext bytes
    exceed `he.max_ciphertext_bytes`, or when entity keys are missing or repeated.
    `rows` (a hint, e.g. the job's kept-row count) sizes the partitions so that few chunks
    are partly filled; `key_name` picks a key other than the dataset's newest.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from gateway.ingest.job import LakePaths, OutputResult

    if not plan.encrypted:
        return None
    path = LakePaths(settings.lake).encrypted(ds.dataset, plan.purpose)
    if store.transaction_done(path, txn):
        return OutputResult(str(path), store.version(path), 0, True)
    try:
        key = load_gateway_key(settings, ds.dataset, key_name)
    except HeError as exc:
        raise IngestError(f"the HE public context is unusable: {exc}") from None
    info = key.public.info
    if info.scheme != ds.he.scheme or info.poly_modulus_degree != ds.he.poly_modulus_degree:
        raise IngestError(
            f"HE key '{key.name}' ({info.scheme}, N={info.poly_modulus_degree}) does not match "
            f"the dataset's he settings ({ds.he.scheme}, N={ds.he.poly_modulus_degree}); "
            "generate a new key"
        )
    slots = info.slots
    columns = list(plan.encrypted)
    if keys is None:
        entity_refs = frozenset().union(
            *(c.key_references for c in plan.columns if c.column == plan.entity)
        )
        keys = SecretStore(settings).keys(entity_refs)
    frame = good_rows
    row_filter = row_filter_column(ds, plan)
    if row_filter is not None:
        frame = frame.filter(row_filter)
    projected = _projection(frame, ds, plan, keys, seed)
    parts = _partitions(spark, rows, slots)
    parted = projected.repartition(parts, F.col(_ENTITY)).sortWithinPartitions(_ENTITY)
    parted = parted.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return _write(spark, store, ds, plan, parted, key, columns, path, commit, txn, mode)
    finally:
        parted.unpersist()


def _write(
    spark: SparkSession,
    store: DeltaStore,
    ds: DatasetPolicy,
    plan: ProtectionPlan,
    parted: DataFrame,
    key: GatewayKey,
    columns: list[str],
    path: Path,
    commit: CommitInfo,
    txn: tuple[str, int],
    mode: Literal["append", "overwrite"],
) -> OutputResult:
    """Count, check the estimate and ranges, then encrypt and commit (one Delta transaction)."""
    from gateway.ingest.job import OutputResult

    info = key.public.info
    slots = info.slots
    stat_fields = ["partition int", "rows long", "null_entities long", "duplicates long"]
    for i in range(len(columns)):
        stat_fields += [f"valid_{i} long", f"max_{i} double"]
    stats = parted.mapInPandas(_stats(columns), ", ".join(stat_fields)).collect()
    rows = sum(int(s["rows"]) for s in stats)
    if sum(int(s["null_entities"]) for s in stats):
        raise IngestError(f"rows without an entity key '{plan.entity}' cannot be encrypted")
    if sum(int(s["duplicates"]) for s in stats):
        raise IngestError(
            f"entity key '{plan.entity}' repeats within this input; the chunk index needs "
            "one row per entity"
        )
    offsets: dict[int, int] = {}
    chunks = 0
    for s in sorted(stats, key=lambda s: int(s["partition"])):
        offsets[int(s["partition"])] = chunks
        chunks += math.ceil(int(s["rows"]) / slots)
    try:
        enforce_limit(encryption_estimate(key, chunks, len(columns)), ds.he.max_ciphertext_bytes)
    except HeLimitExceeded as exc:
        raise IngestError(
            f"refusing to encrypt '{ds.dataset}' for '{plan.purpose}': {exc}"
        ) from None
    for i, name in enumerate(columns):
        valid = sum(int(s[f"valid_{i}"]) for s in stats)
        top = max((float(s[f"max_{i}"]) for s in stats), default=0.0)
        _check_range(key, valid, top, name)
    context = spark.sparkContext.broadcast(key.public_bytes)
    encrypted = parted.mapInPandas(
        _encrypt(
            columns,
            context,
            key.fingerprint,
            info.scheme,
            slots,
            offsets,
            uuid.uuid4().hex,
            time.time_ns() // 1000,
            encrypted_schema().fieldNames(),
        ),
        encrypted_schema(),
    )
    extra = dict(commit.extra)
    extra.update(
        {
            "he_key": key.name,
            "he_fingerprint": key.fingerprint,
            "he_columns": ",".join(columns),
            "he_chunks": str(chunks),
            "rows": str(rows),
        }
    )
    version = store.write(encrypted, path, mode=mode, commit=replace(commit, extra=extra), txn=txn)
    context.unpersist()
    return OutputResult(str(path), version, rows, False)
