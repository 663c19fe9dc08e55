"""Read a dataset's raw source with Spark, and fingerprint it so re-runs are recognised.

Text formats (CSV, JSON lines) are read with every column as a string, so that a value
of the wrong type is caught and quarantined with its reason instead of silently nulled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import IngestError
from gateway.policy.dataset import Source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from gateway.storage import DeltaStore

__all__ = ["RawSource", "fingerprint", "read_source", "resolve_source"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawSource:
    """A resolved source: its format, location and content fingerprint."""

    format: str
    location: str
    fingerprint: str
    text_typed: bool  # True when every column arrives as a string (CSV, JSON lines)


def resolve_source(source: Source, landing: Path, override: str | None = None) -> RawSource:
    """Locate the source (relative paths resolve against the landing zone) and fingerprint it."""
    location = override if override is not None else source.path
    path = Path(location.removeprefix("file://"))
    if not path.is_absolute():
        path = landing / path
    if not path.exists():
        raise IngestError(f"source {path} does not exist")
    fmt = source.format
    return RawSource(fmt, str(path.resolve()), fingerprint(path, fmt), fmt in ("csv", "jsonl"))


def fingerprint(path: Path, fmt: str) -> str:
    """SHA-256 over the names, sizes and contents of the source's data files."""
    digest = hashlib.sha256(fmt.encode())
    if fmt == "delta":
        from deltalake import DeltaTable

        table = DeltaTable(str(path))
        digest.update(f"{path.resolve()}@{table.version()}".encode())
        return digest.hexdigest()
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    )
    if not files:
        raise IngestError(f"source {path} holds no data files")
    for file in files:
        relative = file.name if file == path else str(file.relative_to(path))
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def read_source(
    spark: SparkSession,
    source: RawSource,
    options: dict[str, str | bool | int],
    store: DeltaStore,
) -> DataFrame:
    """A DataFrame of the raw source (strings for text formats), or IngestError."""
    reader = spark.read
    for key, value in options.items():
        reader = reader.option(key, str(value).lower() if isinstance(value, bool) else str(value))
    try:
        if source.format == "csv":
            return (
                reader.option("header", "true")
                .option("inferSchema", "false")
                .option("mode", "PERMISSIVE")
                .option("encoding", "UTF-8")
                .csv(source.location)
            )
        if source.format == "jsonl":
            return reader.option("primitivesAsString", "true").json(source.location)
        if source.format == "parquet":
            return reader.parquet(source.location)
        table: DataFrame = store.read(source.location)
        return table
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - Spark raises many types for unreadable input
        raise IngestError(
            f"cannot read {source.format} source {source.location}: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from None
