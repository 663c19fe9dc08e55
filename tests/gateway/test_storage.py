"""The Delta storage layer: delta-rs commits of Spark-written files, and delta-spark if present."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from deltalake import DeltaTable as RsTable
from deltalake.exceptions import DeltaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from gateway import storage
from gateway.errors import Conflict, RequirementMissing, StorageError
from gateway.settings import Settings
from gateway.spark import delta_spark_available
from gateway.storage import CommitInfo, DeltaStore, open_store

SCHEMA = StructType(
    [
        StructField("id", LongType()),
        StructField("name", StringType()),
        StructField("n", IntegerType()),
        StructField("score", DoubleType()),
        StructField("ok", BooleanType()),
        StructField("day", DateType()),
        StructField("at", TimestampType()),
    ]
)
ROWS: list[tuple[Any, ...]] = [
    (1, "a", 10, 1.5, True, date(2024, 2, 29), datetime(2024, 2, 29, 23, 59, 59, 123456, UTC)),
    (2, None, None, None, None, None, None),
    (
        2**62,
        "ünï",
        -(2**31),
        1e300,
        False,
        date(1969, 7, 20),
        datetime(1969, 7, 20, 20, 17, tzinfo=UTC),
    ),
]
ARROW_TYPES = {
    "id": pa.int64(),
    "name": pa.string(),
    "n": pa.int32(),
    "score": pa.float64(),
    "ok": pa.bool_(),
    "day": pa.date32(),
    "at": pa.timestamp("us", tz="UTC"),
}
NO_CONNECTOR = "delta-spark's JVM connector is not on Spark's classpath (no Maven access here)"


def info(job: str = "job-1", **extra: str) -> CommitInfo:
    """A commit record for tests."""
    return CommitInfo(
        policy_version="7",
        purpose="fraud-detection",
        job_id=job,
        principal="alice",
        source_fingerprint="sha256:abc",
        extra=extra,
    )


@pytest.fixture
def rs(spark: SparkSession) -> DeltaStore:
    """A store on the delta-rs engine."""
    return DeltaStore(spark, "delta-rs")


def frame(spark: SparkSession, rows: list[tuple[Any, ...]] | None = None) -> DataFrame:
    """A DataFrame of every supported column type (ROWS by default)."""
    return spark.createDataFrame(ROWS if rows is None else rows, SCHEMA)


def ids(df: DataFrame) -> list[int]:
    """The sorted `id` column."""
    return sorted(row["id"] for row in df.select("id").collect())


def same_rows(left: DataFrame, right: DataFrame) -> bool:
    """Multiset equality of two DataFrames (nulls compare equal)."""
    return left.exceptAll(right).count() == 0 and right.exceptAll(left).count() == 0


def staged_dirs(table: Path) -> set[str]:
    """The write folders under the table's data directory."""
    data = table / "data"
    return {p.name for p in data.iterdir()} if data.exists() else set()


def test_when_commit_info_round_trips_through_metadata_then_it_is_equal() -> None:
    commit = info(rows="3", protection=json.dumps({"email": "tokenized"}))
    meta = commit.to_metadata()
    assert all(key.startswith("gateway.") for key in meta)
    assert meta["gateway.extra.rows"] == "3"
    assert CommitInfo.from_metadata(meta) == commit
    assert CommitInfo.from_metadata({"operation": "WRITE"}) is None


@pytest.mark.spark
def test_when_all_types_round_trip_on_delta_rs_then_values_and_types_are_kept(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    assert rs.write(frame(spark), table, mode="append", commit=info()) == 0

    back = rs.read(table)
    assert [(f.name, f.dataType) for f in back.schema] == [(f.name, f.dataType) for f in SCHEMA]
    assert same_rows(back, frame(spark))

    arrow = RsTable(str(table)).to_pyarrow_table()
    assert {f.name: f.type for f in arrow.schema} == ARROW_TYPES
    expected = [dict(zip(SCHEMA.names, row, strict=True)) for row in ROWS]
    assert sorted(arrow.to_pylist(), key=lambda r: r["id"]) == expected


@pytest.mark.spark
def test_when_appending_then_rows_accumulate_and_versions_increase(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    assert rs.version(table) is None and not rs.exists(table)
    assert rs.write(spark.range(3), table, mode="append", commit=info()) == 0
    assert rs.write(spark.range(3, 5), table, mode="append", commit=info()) == 1
    assert rs.exists(table) and rs.version(table) == 1
    assert ids(rs.read(table)) == [0, 1, 2, 3, 4]
    assert ids(rs.read(table, version=0)) == [0, 1, 2]


@pytest.mark.spark
def test_when_overwriting_then_old_files_are_removed_in_the_log_and_time_travel_works(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(5), table, mode="append", commit=info())
    v0_files = set(RsTable(str(table)).file_uris())
    assert rs.write(spark.range(10, 12), table, mode="overwrite", commit=info()) == 1

    assert ids(rs.read(table)) == [10, 11]
    assert ids(rs.read(table, version=0)) == [0, 1, 2, 3, 4]
    assert v0_files.isdisjoint(RsTable(str(table)).file_uris())
    assert all(Path(f).exists() for f in v0_files)  # removed logically, not physically
    assert RsTable(str(table), version=0).to_pyarrow_table().num_rows == 5


@pytest.mark.spark
def test_when_overwriting_with_a_new_schema_then_the_table_takes_it(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(2), table, mode="append", commit=info())
    rs.write(
        spark.range(2).selectExpr("cast(id as string) AS token"),
        table,
        mode="overwrite",
        commit=info(),
    )
    assert rs.read(table).columns == ["token"]
    assert rs.read(table, version=0).columns == ["id"]


@pytest.mark.spark
def test_when_appending_a_different_schema_then_storage_error_names_the_table(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(2), table, mode="append", commit=info())
    with pytest.raises(StorageError, match=str(table)):
        rs.write(
            spark.range(2).selectExpr("cast(id as string) AS id"),
            table,
            mode="append",
            commit=info(),
        )
    assert rs.version(table) == 0


@pytest.mark.spark
def test_when_merging_then_matching_keys_are_replaced_and_others_appended(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    rs.write(frame(spark), table, mode="append", commit=info())
    update = frame(
        spark, [(1, "new", 1, 0.5, False, None, None), (9, "nine", 9, 9.0, True, None, None)]
    )
    assert rs.merge(update, table, key=["id"], commit=info()) == 1

    merged = rs.read(table)
    assert merged.columns == SCHEMA.names
    expected = frame(spark, [*update_rows(update), *ROWS[1:]])
    assert same_rows(merged, expected)
    assert RsTable(str(table)).to_pyarrow_table().num_rows == 4
    assert ids(rs.read(table, version=0)) == [1, 2, 2**62]


def update_rows(df: DataFrame) -> list[tuple[Any, ...]]:
    """The rows of a small test DataFrame as tuples (test helper; collect is fine here)."""
    return [tuple(row) for row in df.collect()]


@pytest.mark.spark
def test_when_merging_into_a_missing_table_then_it_is_created(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    assert rs.merge(spark.range(3), table, key=["id"], commit=info()) == 0
    assert rs.merge(spark.range(2, 4), table, key=["id"], commit=info()) == 1
    assert ids(rs.read(table)) == [0, 1, 2, 3]


@pytest.mark.spark
def test_when_reading_history_then_each_commit_carries_its_metadata_and_engine(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(3), table, mode="append", commit=info("j1", rows="3"))
    rs.write(spark.range(1), table, mode="overwrite", commit=info("j2", rows="1"))
    rs.merge(spark.range(2), table, key=["id"], commit=info("j3"))

    history = rs.history(table)
    assert [c.version for c in history] == [0, 1, 2]
    assert [c.commit.job_id if c.commit else None for c in history] == ["j1", "j2", "j3"]
    assert {c.engine for c in history} == {"delta-rs"}
    assert history[0].commit == info("j1", rows="3")
    assert history[0].operation == "CREATE TABLE" and history[1].operation == "WRITE"
    assert all(c.timestamp.tzinfo is not None for c in history)
    raw = RsTable(str(table)).history(1)[0]
    assert raw["gateway.engine"] == "delta-rs" and raw["gateway.policy_version"] == "7"


@pytest.mark.spark
def test_when_the_same_txn_is_written_twice_then_no_rows_are_added(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    assert rs.write(spark.range(3), table, mode="append", commit=info(), txn=("ingest", 1)) == 0
    assert rs.write(spark.range(3), table, mode="append", commit=info(), txn=("ingest", 1)) == 0
    assert rs.write(spark.range(3), table, mode="append", commit=info(), txn=("ingest", 0)) == 0
    assert rs.merge(spark.range(5), table, key=["id"], commit=info(), txn=("ingest", 1)) == 0
    assert rs.read(table).count() == 3
    assert rs.write(spark.range(3, 4), table, mode="append", commit=info(), txn=("ingest", 2)) == 1
    assert RsTable(str(table)).transaction_version("ingest") == 2
    assert rs.read(table).count() == 4


@pytest.mark.spark
def test_when_the_spark_job_fails_midway_then_the_table_is_unchanged_and_a_retry_works(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(5), table, mode="append", commit=info())
    before = staged_dirs(table)
    source = spark.range(100, 200, numPartitions=4)
    failing = source.select(
        F.when(F.col("id") == 177, F.raise_error(F.lit("source broke")))
        .otherwise(F.col("id"))
        .alias("id")
    )
    for mode in ("append", "overwrite"):
        with pytest.raises(StorageError, match=str(table)) as caught:
            rs.write(failing, table, mode=mode, commit=info())
        assert "source broke" not in caught.value.message  # no data values in messages
        assert rs.version(table) == 0 and ids(rs.read(table)) == [0, 1, 2, 3, 4]
        assert staged_dirs(table) == before

    assert rs.write(source, table, mode="append", commit=info()) == 1
    assert rs.read(table).count() == 105


@pytest.mark.spark
def test_when_the_commit_fails_after_the_files_are_written_then_a_retry_completes(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "t"

    def broken(*args: object, **kwargs: object) -> None:
        raise DeltaError("simulated object store failure")

    monkeypatch.setattr(storage, "create_table_with_add_actions", broken)
    with pytest.raises(StorageError, match=str(table)):
        rs.write(spark.range(3), table, mode="append", commit=info())
    assert not rs.exists(table) and staged_dirs(table) == set()
    monkeypatch.undo()

    rs.write(spark.range(3), table, mode="append", commit=info())
    monkeypatch.setattr(RsTable, "create_write_transaction", broken)
    with pytest.raises(StorageError, match="simulated"):
        rs.write(spark.range(10, 20), table, mode="overwrite", commit=info())
    assert rs.version(table) == 0 and ids(rs.read(table)) == [0, 1, 2]
    assert len(staged_dirs(table)) == 1
    monkeypatch.undo()

    assert rs.write(spark.range(10, 12), table, mode="overwrite", commit=info()) == 1
    assert ids(rs.read(table)) == [10, 11]


class Killed(BaseException):
    """Stands in for the process dying between file write and commit."""


@pytest.mark.spark
def test_when_the_process_dies_before_the_commit_then_orphan_files_are_never_read(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(3), table, mode="append", commit=info())

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(RsTable, "create_write_transaction", killed)
    monkeypatch.setattr(storage, "_remove_tree", lambda path: None)  # no chance to clean up
    with pytest.raises(Killed):
        rs.write(spark.range(100, 200), table, mode="append", commit=info())
    monkeypatch.undo()

    assert len(staged_dirs(table)) == 2  # the orphan folder is still there...
    assert rs.version(table) == 0 and ids(rs.read(table)) == [0, 1, 2]  # ...but not referenced
    assert RsTable(str(table)).to_pyarrow_table().num_rows == 3
    assert rs.write(spark.range(3, 4), table, mode="append", commit=info()) == 1
    assert ids(rs.read(table)) == [0, 1, 2, 3]


@pytest.mark.spark
@pytest.mark.parametrize("operation", ["overwrite", "merge"])
def test_when_another_writer_commits_during_a_rewrite_then_conflict_is_raised(
    spark: SparkSession,
    rs: DeltaStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(3), table, mode="append", commit=info())
    original = storage._stage_files

    def racing(df: DataFrame, root: Path, staging: Path) -> list[Any]:
        monkeypatch.setattr(storage, "_stage_files", original)
        rs.write(spark.range(50, 51), table, mode="append", commit=info("other"))
        return original(df, root, staging)

    def rewrite() -> int:
        if operation == "merge":
            return rs.merge(spark.range(2, 4), table, key=["id"], commit=info())
        return rs.write(spark.range(2, 4), table, mode="overwrite", commit=info())

    monkeypatch.setattr(storage, "_stage_files", racing)
    with pytest.raises(Conflict, match="concurrently"):
        rewrite()
    assert rs.version(table) == 1 and ids(rs.read(table)) == [0, 1, 2, 50]
    assert len(staged_dirs(table)) == 2

    assert rewrite() == 2
    assert ids(rs.read(table)) == ([0, 1, 2, 3, 50] if operation == "merge" else [2, 3])


@pytest.mark.spark
def test_when_a_concurrent_writer_commits_the_same_txn_then_the_write_is_skipped(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "t"
    rs.write(spark.range(3), table, mode="append", commit=info())
    original = storage._stage_files

    def racing(df: DataFrame, root: Path, staging: Path) -> list[Any]:
        monkeypatch.setattr(storage, "_stage_files", original)
        rs.write(spark.range(3, 5), table, mode="append", commit=info("twin"), txn=("ingest", 7))
        return original(df, root, staging)

    monkeypatch.setattr(storage, "_stage_files", racing)
    assert rs.write(spark.range(3, 5), table, mode="append", commit=info(), txn=("ingest", 7)) == 1
    assert ids(rs.read(table)) == [0, 1, 2, 3, 4]
    assert len(staged_dirs(table)) == 2


@pytest.mark.spark
def test_when_the_dataframe_is_empty_then_a_valid_commit_with_the_schema_is_made(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path
) -> None:
    table = tmp_path / "t"
    assert rs.write(frame(spark, []), table, mode="append", commit=info()) == 0
    assert rs.read(table).count() == 0
    assert rs.read(table).schema == SCHEMA
    arrow = RsTable(str(table)).to_pyarrow_table()
    assert arrow.num_rows == 0 and {f.name: f.type for f in arrow.schema} == ARROW_TYPES

    rs.write(frame(spark), table, mode="append", commit=info())
    assert rs.write(frame(spark, []), table, mode="overwrite", commit=info()) == 2
    assert rs.read(table).count() == 0 and rs.read(table, version=1).count() == 3
    assert RsTable(str(table)).file_uris() == []


@pytest.mark.spark
def test_when_writing_then_the_data_is_never_collected_on_the_driver(
    spark: SparkSession, rs: DeltaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "t"
    data = frame(spark)

    def forbidden(name: str) -> Callable[..., Any]:
        def fail(*args: object, **kwargs: object) -> Any:
            raise AssertionError(f"DataFrame.{name} called during a write")

        return fail

    for name in ("collect", "toPandas", "toArrow", "toLocalIterator", "take", "head", "first"):
        monkeypatch.setattr(DataFrame, name, forbidden(name))
    rs.write(data, table, mode="append", commit=info())
    rs.write(data, table, mode="overwrite", commit=info())
    rs.merge(data, table, key=["id"], commit=info())
    rs.write(data, table, mode="append", commit=info(), txn=("app", 1))
    monkeypatch.undo()
    assert rs.version(table) == 3 and rs.read(table).count() == 6


@pytest.mark.spark
def test_when_no_table_exists_then_version_is_none_and_read_fails_clearly(
    rs: DeltaStore, tmp_path: Path
) -> None:
    assert rs.version(tmp_path / "missing") is None
    with pytest.raises(StorageError, match="no Delta table"):
        rs.read(tmp_path / "missing")
    with pytest.raises(StorageError, match="no Delta table"):
        rs.history(tmp_path / "missing")


@pytest.mark.spark
def test_when_engine_is_auto_then_the_available_engine_is_chosen_and_logged(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.storage")
    store = open_store(spark, Settings(home=tmp_path, storage_engine="auto"))
    expected = "delta-spark" if delta_spark_available(spark) else "delta-rs"
    assert store.engine == expected
    assert f"delta store engine: {expected}" in caplog.text
    assert (
        open_store(spark, Settings(home=tmp_path, storage_engine="delta-rs")).engine == "delta-rs"
    )
    if not delta_spark_available(spark):
        with pytest.raises(RequirementMissing, match="JVM connector"):
            open_store(spark, Settings(home=tmp_path, storage_engine="delta-spark"))


@pytest.mark.spark
def test_when_the_delta_spark_connector_is_present_then_it_writes_merges_and_reads(
    spark: SparkSession, tmp_path: Path
) -> None:
    if not delta_spark_available(spark):
        pytest.skip(f"{NO_CONNECTOR}: the delta-spark engine cannot run here")
    store = DeltaStore(spark, "delta-spark")
    table = tmp_path / "t"
    assert store.write(frame(spark), table, mode="append", commit=info(), txn=("a", 1)) == 0
    assert store.write(frame(spark), table, mode="append", commit=info(), txn=("a", 1)) == 0
    update = frame(spark, [(1, "new", 1, 0.5, False, None, None)])
    assert store.merge(update, table, key=["id"], commit=info("j2")) == 1
    assert same_rows(store.read(table), frame(spark, [*update_rows(update), *ROWS[1:]]))
    assert same_rows(store.read(table, version=0), frame(spark))
    history = store.history(table)
    assert [c.engine for c in history] == ["delta-spark", "delta-spark"]
    assert history[1].commit == info("j2")
    assert RsTable(str(table)).to_pyarrow_table().num_rows == 3
