"""Delta tables for the ingest job: delta-spark when its JVM connector is present, else delta-rs.

With delta-rs, Spark still does the work: it writes Parquet files (distributed) into a fresh
folder `<table>/data/<write-id>/`, and the driver then commits exactly those files to the Delta
log in one atomic delta-rs transaction, reading only their Parquet footers. Files of a write that
fails or is killed before its commit are never referenced, so the table stays at its previous
version (the folder is removed where possible; VACUUM reclaims what a killed process leaves).
Overwrites and merges commit against the version they read and fail with `Conflict` if another
writer committed meanwhile; appends are rebased by delta-rs. Every commit carries the
`CommitInfo` under `gateway.*` keys plus `gateway.engine`. Tables are local paths.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow.parquet as pq  # type: ignore[import-untyped]
from deltalake import DeltaTable as RsTable
from deltalake import Schema as RsSchema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)

from gateway.errors import (
    ConfigurationError,
    Conflict,
    GatewayError,
    RequirementMissing,
    StorageError,
)
from gateway.settings import Settings
from gateway.spark import delta_spark_available

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

__all__ = ["CommitInfo", "DeltaStore", "Engine", "TableCommit", "WriteMode", "open_store"]

log = logging.getLogger(__name__)

Engine = Literal["delta-spark", "delta-rs"]
WriteMode = Literal["append", "overwrite"]
_ENGINES: tuple[Engine, ...] = ("delta-spark", "delta-rs")
_PREFIX = "gateway."
_EXTRA = "gateway.extra."
_DATA_DIR = "data"  # visible (not `_`-prefixed) so that VACUUM also reclaims orphaned files
_CORE = ("policy_version", "job_id", "principal", "source_fingerprint", "purpose")
_SPARK_CONF = "spark.databricks.delta."


@dataclass(frozen=True, kw_only=True)
class CommitInfo:
    """The governance facts every commit records (values are strings; `extra` is free-form)."""

    policy_version: str
    purpose: str | None = None
    job_id: str
    principal: str
    source_fingerprint: str
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", dict(self.extra))

    def to_metadata(self) -> dict[str, str]:
        """The flat `gateway.*` key/value form stored in a Delta commit."""
        meta = {
            _PREFIX + name: getattr(self, name) for name in _CORE if getattr(self, name) is not None
        }
        meta.update({_EXTRA + key: value for key, value in self.extra.items()})
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> CommitInfo | None:
        """Parse `to_metadata` output back; None when the commit was not made by the gateway."""
        if any(_PREFIX + name not in meta for name in _CORE[:4]):
            return None
        extra = {k[len(_EXTRA) :]: str(v) for k, v in meta.items() if k.startswith(_EXTRA)}
        purpose = meta.get(_PREFIX + "purpose")
        return cls(
            policy_version=str(meta[_PREFIX + "policy_version"]),
            purpose=None if purpose is None else str(purpose),
            job_id=str(meta[_PREFIX + "job_id"]),
            principal=str(meta[_PREFIX + "principal"]),
            source_fingerprint=str(meta[_PREFIX + "source_fingerprint"]),
            extra=extra,
        )


@dataclass(frozen=True)
class _Request:
    df: DataFrame
    root: Path
    mode: WriteMode
    commit: CommitInfo
    txn: tuple[str, int] | None
    key: list[str] | None = None


@dataclass(frozen=True)
class TableCommit:
    """One entry of a table's history; `commit`/`engine` are None for non-gateway commits."""

    version: int
    timestamp: datetime
    operation: str
    commit: CommitInfo | None
    engine: str | None


class DeltaStore:
    """Reads and writes Delta tables at local paths with one engine, fixed at construction."""

    def __init__(self, spark: SparkSession, engine: Engine) -> None:
        """Bind to a Spark session; RequirementMissing if delta-spark is asked for but absent."""
        if engine not in _ENGINES:
            raise ConfigurationError(f"unknown storage engine {engine!r}; use one of {_ENGINES}")
        if engine == "delta-spark" and not delta_spark_available(spark):
            raise RequirementMissing(
                "storage engine 'delta-spark' needs Delta's JVM connector on Spark's classpath "
                "(spark.jars.packages io.delta:delta-spark_2.13); use 'delta-rs' or 'auto'"
            )
        self.spark = spark
        self.engine: Engine = engine
        self._conflicts: tuple[type[BaseException], ...] = (CommitFailedError,)
        if engine == "delta-spark":
            from delta import exceptions as dx

            self._conflicts += tuple(getattr(dx, name) for name in dx.__all__)  # all conflicts
        log.info("delta store engine: %s", engine)

    # -- public API ------------------------------------------------------------------------

    def write(
        self,
        df: DataFrame,
        path: str | Path,
        *,
        mode: WriteMode,
        commit: CommitInfo,
        txn: tuple[str, int] | None = None,
    ) -> int:
        """Append or overwrite (creating the table if missing); returns the table's new version.

        With `txn=(app_id, version)` nothing is written when that app already committed `version`.
        """
        if mode not in ("append", "overwrite"):
            raise StorageError(f"unknown write mode {mode!r} for Delta table {path}")
        _check_txn(txn)
        with self._translate(path, "write"):
            req = _Request(df, _local(path), mode, commit, txn)
            return self._rs_write(req) if self.engine == "delta-rs" else self._spark_write(req)

    def merge(
        self,
        df: DataFrame,
        path: str | Path,
        *,
        key: list[str],
        commit: CommitInfo,
        txn: tuple[str, int] | None = None,
    ) -> int:
        """Upsert by `key`: matching rows are replaced, others appended; returns the new version.

        On delta-rs this is copy-on-write: the whole table is read, rewritten and committed as an
        overwrite of the version read. Rows with a null key never match (as in Delta MERGE).
        """
        if not key:
            raise StorageError(f"merge into Delta table {path} needs at least one key column")
        _check_txn(txn)
        with self._translate(path, "merge"):
            req = _Request(df, _local(path), "overwrite", commit, txn, key)
            return self._rs_write(req) if self.engine == "delta-rs" else self._spark_merge(req)

    def read(self, path: str | Path, version: int | None = None) -> DataFrame:
        """The table (or one of its versions) as a Spark DataFrame."""
        with self._translate(path, "read"):
            root = self._existing(path)
            if self.engine == "delta-rs":
                return self._rs_frame(RsTable(str(root), version=version))
            reader = self.spark.read.format("delta")
            if version is not None:
                reader = reader.option("versionAsOf", version)
            return reader.load(_uri(root))

    def history(self, path: str | Path) -> list[TableCommit]:
        """Every commit of the table, oldest first, with the gateway metadata parsed."""
        with self._translate(path, "read the history of"):
            root = self._existing(path)
            if self.engine == "delta-rs":
                raw = [
                    (c["version"], c.get("timestamp", 0), c) for c in RsTable(str(root)).history()
                ]
            else:
                raw = [(r["version"], r["ms"], r.asDict()) for r in self._spark_history(root)]
            return sorted((_commit_entry(*entry) for entry in raw), key=lambda c: c.version)

    def version(self, path: str | Path) -> int | None:
        """The table's current version; None when there is no table."""
        with self._translate(path, "read the version of"):
            root = _local(path)
            if not self.exists(root):
                return None
            if self.engine == "delta-rs":
                return RsTable(str(root)).version()
            return max(int(r["version"]) for r in self._spark_history(root, limit=1))

    def _existing(self, path: str | Path) -> Path:
        root = _local(path)
        if not self.exists(root):
            raise StorageError(f"no Delta table at {path}")
        return root

    def transaction_done(self, path: str | Path, txn: tuple[str, int]) -> bool:
        """True when the table records app transaction `txn[0]` at version >= `txn[1]`."""
        _check_txn(txn)
        if not self.exists(path):
            return False
        from deltalake import DeltaTable

        with self._translate(path, "read"):
            return _txn_done(DeltaTable(_uri(path)), txn)

    def exists(self, path: str | Path) -> bool:
        """True when a Delta table is at `path`."""
        root = _local(path)
        if self.engine == "delta-rs":
            return RsTable.is_deltatable(str(root))
        from delta.tables import DeltaTable

        return bool(DeltaTable.isDeltaTable(self.spark, _uri(root)))

    # -- delta-rs: Spark writes the files, delta-rs commits them -------------------------------

    def _rs_write(self, req: _Request) -> int:
        df, root, mode, txn, key = req.df, req.root, req.mode, req.txn, req.key
        snapshot = RsTable(str(root)) if RsTable.is_deltatable(str(root)) else None
        if snapshot is not None and txn is not None and _txn_done(snapshot, txn):
            return self._skipped(root, snapshot.version(), txn)
        if snapshot is not None and (mode == "append" or key is not None):
            _check_schema(_spark_schema(snapshot), df.schema, root)
            if key is not None:
                df = _upserted(self._rs_frame(snapshot), df, key, root)
        elif key is not None:
            mode = "append"  # merging into a missing table creates it
        arrow = _arrow_schema(df.schema)
        write_id = uuid.uuid4().hex
        staging = root / _DATA_DIR / write_id
        props = CommitProperties(
            custom_metadata=self._metadata(req.commit, write_id),
            max_commit_retries=0 if mode == "overwrite" else None,
            app_transactions=[Transaction(txn[0], txn[1])] if txn is not None else None,
        )
        try:
            adds = _stage_files(df, root, staging)
            if snapshot is None:
                _rs_create(root, arrow, adds, props)
                version = 0
            else:
                read_version = snapshot.version()
                actions: list[AddAction | RemoveAction] = [*adds]
                snapshot.create_write_transaction(actions, mode, arrow, commit_properties=props)
                version = _rs_committed_version(root, write_id, read_version)
        except CommitFailedError:
            _remove_tree(staging)
            latest = RsTable(str(root))
            if txn is not None and _txn_done(latest, txn):
                return self._skipped(root, latest.version(), txn)
            raise
        except BaseException:
            _remove_tree(staging)
            raise
        return self._committed("merge" if key is not None else mode, root, version)

    def _rs_frame(self, table: RsTable) -> DataFrame:
        schema = _spark_schema(table)
        files = table.file_uris()
        if not files:
            return self.spark.createDataFrame([], schema)
        return self.spark.read.schema(schema).parquet(*(_uri(f) for f in files))

    # -- delta-spark -----------------------------------------------------------------------

    def _spark_write(self, req: _Request) -> int:
        write_id = uuid.uuid4().hex
        meta = json.dumps(self._metadata(req.commit, write_id))
        writer = req.df.write.format("delta").mode(req.mode).option("userMetadata", meta)
        if req.mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        if req.txn is not None:
            writer = writer.option("txnAppId", req.txn[0]).option("txnVersion", str(req.txn[1]))
        writer.save(_uri(req.root))
        return self._spark_committed(req, write_id)

    def _spark_merge(self, req: _Request) -> int:
        if not self.exists(req.root):
            return self._spark_write(replace(req, mode="append"))
        from delta.tables import DeltaTable

        write_id = uuid.uuid4().hex
        conf = {"commitInfo.userMetadata": json.dumps(self._metadata(req.commit, write_id))}
        if req.txn is not None:
            conf |= {"write.txnAppId": req.txn[0], "write.txnVersion": str(req.txn[1])}
        keys = req.key or []
        condition = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)  # nulls: no match
        with self._session_conf(conf):
            target = DeltaTable.forPath(self.spark, _uri(req.root)).alias("t")
            merger = target.merge(req.df.alias("s"), condition)
            merger.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
        return self._spark_committed(req, write_id)

    def _spark_committed(self, req: _Request, write_id: str) -> int:
        rows = self._spark_history(req.root, limit=20)
        op = "merge" if req.key is not None else req.mode
        for row in rows:
            if _user_metadata(row["userMetadata"]).get(_PREFIX + "write_id") == write_id:
                return self._committed(op, req.root, int(row["version"]))
        latest = max(int(r["version"]) for r in rows)
        if req.txn is not None:  # delta-spark skipped the write itself
            return self._skipped(req.root, latest, req.txn)
        return latest

    def _spark_history(self, root: Path, limit: int | None = None) -> list[Any]:
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        hist = DeltaTable.forPath(self.spark, _uri(root)).history(limit)
        ms = F.unix_millis("timestamp").alias("ms")
        # Collects commit metadata only, never table data.
        return list(hist.select("version", ms, "operation", "userMetadata").collect())

    @contextmanager
    def _session_conf(self, conf: Mapping[str, str]) -> Iterator[None]:
        names = {_SPARK_CONF + k: v for k, v in conf.items()}
        before = {name: self.spark.conf.get(name, None) for name in names}
        try:
            for name, value in names.items():
                self.spark.conf.set(name, value)
            yield
        finally:
            for name, old in before.items():
                if old is None:
                    self.spark.conf.unset(name)
                else:
                    self.spark.conf.set(name, old)

    # -- shared ----------------------------------------------------------------------------

    def _metadata(self, commit: CommitInfo, write_id: str) -> dict[str, str]:
        engine = {_PREFIX + "engine": self.engine, _PREFIX + "write_id": write_id}
        return {**commit.to_metadata(), **engine}

    def _committed(self, op: str, root: Path, version: int) -> int:
        log.info("committed %s to %s: version %d (engine=%s)", op, root, version, self.engine)
        return version

    def _skipped(self, root: Path, version: int, txn: tuple[str, int]) -> int:
        log.info(
            "skipped write to %s: transaction %s/%d already committed (engine=%s)",
            root, txn[0], txn[1], self.engine,
        )  # fmt: skip
        return version

    @contextmanager
    def _translate(self, path: str | Path, action: str) -> Iterator[None]:
        """Turn expected library failures into Conflict / StorageError naming the table."""
        from py4j.protocol import Py4JError  # type: ignore[import-untyped]
        from pyspark.errors import PySparkException

        try:
            yield
        except GatewayError:
            raise
        except self._conflicts:
            log.debug("commit conflict on %s", path, exc_info=True)
            raise Conflict(
                f"could not {action} Delta table {path}: another writer committed to it "
                "concurrently; retry the operation"
            ) from None
        except (DeltaError, PySparkException, Py4JError, OSError) as exc:
            log.debug("storage failure on %s", path, exc_info=True)
            reason = _reason(exc)
            message = f"could not {action} Delta table {path} ({self.engine}): {reason}"
            raise StorageError(message) from None


def open_store(spark: SparkSession, settings: Settings) -> DeltaStore:
    """The store for `settings.storage_engine`; 'auto' means delta-spark if it is available."""
    choice = settings.storage_engine
    if choice == "auto":
        engine: Engine = "delta-spark" if delta_spark_available(spark) else "delta-rs"
        log.info("storage engine 'auto' resolved to %s", engine)
    elif choice in _ENGINES:
        engine = "delta-spark" if choice == "delta-spark" else "delta-rs"
    else:
        raise ConfigurationError(f"unknown storage engine {choice!r}")
    return DeltaStore(spark, engine)


# -- private helpers -------------------------------------------------------------------------


def _local(path: str | Path) -> Path:
    text = str(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise StorageError(f"only local Delta table paths are supported, not {path}")
    return Path(text).resolve()


def _uri(path: str | Path) -> str:
    text = str(path)
    return "file://" + text if text.startswith("/") else text


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _check_txn(txn: tuple[str, int] | None) -> None:
    if txn is not None and (not txn[0] or not isinstance(txn[1], int) or txn[1] < 0):
        raise StorageError(f"invalid transaction {txn!r}: need a non-empty app id and version >= 0")


def _txn_done(table: RsTable, txn: tuple[str, int]) -> bool:
    recorded = table.transaction_version(txn[0])
    return recorded is not None and recorded >= txn[1]


def _nullable(dt: DataType) -> DataType:
    """The type with every field nullable and no field metadata, as Spark's file writers store."""
    from pyspark.sql.types import ArrayType, MapType, StructField, StructType

    if isinstance(dt, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True) for f in dt.fields])
    if isinstance(dt, ArrayType):
        return ArrayType(_nullable(dt.elementType), True)
    if isinstance(dt, MapType):
        return MapType(_nullable(dt.keyType), _nullable(dt.valueType), True)
    return dt


def _arrow_schema(schema: StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(_nullable(schema), timezone="UTC")  # type: ignore[arg-type]


def _spark_schema(table: RsTable) -> StructType:
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(table.schema().to_json()))


def _check_schema(table_schema: StructType, new: StructType, root: Path) -> None:
    if _nullable(table_schema) != _nullable(new):
        raise StorageError(
            f"schema does not match Delta table {root}: table has "
            f"{_nullable(table_schema).simpleString()}, data has {_nullable(new).simpleString()}"
        )


def _upserted(current: DataFrame, new: DataFrame, key: list[str], root: Path) -> DataFrame:
    missing = [k for k in key if k not in new.columns]
    if missing:
        raise StorageError(f"merge key column(s) {missing} missing from the data for {root}")
    kept = current.join(new.select(*key).distinct(), on=key, how="left_anti")
    return kept.unionByName(new).select(*current.columns)


def _stage_files(df: DataFrame, root: Path, staging: Path) -> list[AddAction]:
    """Let Spark write Parquet into `staging`; describe the files from their footers only."""
    df.write.mode("errorifexists").option(
        "mapreduce.fileoutputcommitter.marksuccessfuljobs", "false"
    ).parquet(_uri(staging))
    adds = []
    for file in sorted(staging.iterdir()):
        if not (file.is_file() and file.name.startswith("part-") and file.suffix == ".parquet"):
            file.unlink(missing_ok=True)  # Hadoop .crc checksums, never part of the table
            continue
        rows = pq.read_metadata(file).num_rows
        if rows == 0:  # Spark writes one empty file for an empty DataFrame; the schema is enough
            file.unlink()
            continue
        stat = file.stat()
        adds.append(
            AddAction(
                path=file.relative_to(root).as_posix(),
                size=stat.st_size,
                partition_values={},
                modification_time=int(stat.st_mtime * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": rows}),
            )
        )
    if not adds:
        _remove_tree(staging)
    return adds


def _rs_create(
    root: Path, arrow: pa.Schema, adds: list[AddAction], props: CommitProperties
) -> None:
    try:
        create_table_with_add_actions(
            str(root), RsSchema.from_arrow(arrow), adds, mode="error", commit_properties=props
        )
    except DeltaError:
        if RsTable.is_deltatable(str(root)):
            raise CommitFailedError("table created concurrently") from None
        raise


def _rs_committed_version(root: Path, write_id: str, read_version: int) -> int:
    """The version our commit landed at (delta-rs may rebase appends past concurrent commits)."""
    latest = RsTable(str(root))
    for entry in latest.history(limit=max(1, latest.version() - read_version)):
        if entry.get(_PREFIX + "write_id") == write_id:
            return int(entry["version"])
    return read_version + 1


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _user_metadata(raw: object) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _commit_entry(version: int, ms: int, meta: Mapping[str, Any]) -> TableCommit:
    """A history entry; gateway keys are top-level (delta-rs) or JSON in userMetadata (Spark)."""
    meta = {**_user_metadata(meta.get("userMetadata")), **meta}
    engine = meta.get(_PREFIX + "engine")
    return TableCommit(
        version=int(version),
        timestamp=datetime.fromtimestamp(int(ms) / 1000, tz=UTC),
        operation=str(meta.get("operation", "")),
        commit=CommitInfo.from_metadata(meta),
        engine=None if engine is None else str(engine),
    )


def _reason(exc: BaseException) -> str:
    """A short cause without data values: Spark's error condition, or the library's message."""
    condition = getattr(exc, "getCondition", None)
    if callable(condition) and condition():
        return f"{type(exc).__name__} [{condition()}]"
    if isinstance(exc, DeltaError | OSError):
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return type(exc).__name__
