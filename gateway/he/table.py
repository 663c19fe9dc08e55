"""The encrypted table `encrypted/<dataset>/<purpose>`: packed ciphertexts plus a chunk index.

One Delta table, committed atomically with one app transaction, holds two kinds of rows:

- `record = 'chunk'`: one ciphertext of one column (`part` 'value', or 'square' for variance)
  for one chunk of one ingest batch: `batch`, `batch_time`, `chunk`, `rows` (rows it holds),
  `valid` (np.packbits of the slot validity mask), `magnitude_bits`, `ciphertext`,
  `fingerprint`, `scheme`, `chunk_slots`;
- `record = 'index'`: one per ingested row: `batch`, `batch_time`, `chunk`, `slot` and
  `entity`, the governed (tokenized) entity key, joinable with the governed table.

A reader numbers the (batch, chunk) pairs densely in (batch_time, batch, chunk) order, so row
position = dense_chunk * chunk_slots + slot. When an entity appears in several batches (append
or merge ingests) only its newest occurrence counts; older slots are marked invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gateway.errors import NotFound, ValidationFailed
from privacy.he import ChunkIndex, EncryptedColumn, Scheme

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from gateway.storage import DeltaStore

__all__ = ["ENCRYPTED_SCHEMA", "EncryptedTable", "encrypted_schema", "read_encrypted_table"]

ENCRYPTED_SCHEMA = (
    "record string, batch string, batch_time long, `column` string, part string, chunk int, "
    "slot int, entity string, `rows` int, valid binary, magnitude_bits int, ciphertext binary, "
    "fingerprint string, scheme string, chunk_slots int"
)


def encrypted_schema() -> StructType:
    """ENCRYPTED_SCHEMA as a Spark StructType."""
    from pyspark.sql.types import StructType

    parsed = StructType.fromDDL(ENCRYPTED_SCHEMA)
    assert isinstance(parsed, StructType)
    return parsed


@dataclass(frozen=True, eq=False)
class EncryptedTable:
    """The chunk rows of an encrypted table (metadata eager, ciphertexts per column on demand)."""

    path: Path
    frame: DataFrame
    fingerprint: str
    scheme: Scheme
    chunk_slots: int
    chunk_numbers: dict[tuple[str, int], int]
    superseded: npt.NDArray[np.int64]

    @property
    def chunks(self) -> int:
        return len(self.chunk_numbers)

    @property
    def rows(self) -> int:
        """Row positions (chunks x slots, padding included)."""
        return self.chunks * self.chunk_slots

    def index(self) -> DataFrame:
        """(entity, position) of every current row, for joins with the governed table."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        rows = self.frame.filter(F.col("record") == "index")
        newest = Window.partitionBy("entity").orderBy(
            F.col("batch_time").desc(), F.col("batch").desc()
        )
        mapping = self.frame.sparkSession.createDataFrame(
            [(b, c, n) for (b, c), n in self.chunk_numbers.items()],
            "batch string, chunk int, dense int",
        )
        return (
            rows.withColumn("_rank", F.row_number().over(newest))
            .filter(F.col("_rank") == 1)
            .join(F.broadcast(mapping), ["batch", "chunk"])
            .select(
                "entity",
                (F.col("dense").cast("long") * self.chunk_slots + F.col("slot")).alias("position"),
            )
        )

    def column(self, name: str, *, squares: bool = True) -> EncryptedColumn:
        """One packed column, its chunks renumbered densely (collects its ciphertexts)."""
        from pyspark.sql import functions as F

        parts = ["value", "square"] if squares else ["value"]
        got = (
            self.frame.filter(
                (F.col("record") == "chunk") & (F.col("column") == name) & F.col("part").isin(parts)
            )
            .select("batch", "chunk", "part", "valid", "magnitude_bits", "ciphertext")
            .collect()
        )
        values: list[bytes | None] = [None] * self.chunks
        square: list[bytes | None] = [None] * self.chunks
        valid = np.zeros(self.rows, dtype=bool)
        magnitude = 0
        for row in got:
            number = self.chunk_numbers[(row["batch"], row["chunk"])]
            if row["part"] == "value":
                values[number] = bytes(row["ciphertext"])
                bits = np.unpackbits(np.frombuffer(bytes(row["valid"]), dtype=np.uint8))
                start = number * self.chunk_slots
                valid[start : start + self.chunk_slots] = bits[: self.chunk_slots].astype(bool)
                magnitude = max(magnitude, int(row["magnitude_bits"]))
            else:
                square[number] = bytes(row["ciphertext"])
        if any(v is None for v in values):
            raise NotFound(f"the encrypted table has no (complete) column '{name}'")
        valid[self.superseded] = False
        valid.setflags(write=False)
        has_squares = squares and all(s is not None for s in square)
        return EncryptedColumn(
            name=name,
            scheme=self.scheme,
            fingerprint=self.fingerprint,
            index=ChunkIndex(rows=self.rows, chunk_slots=self.chunk_slots),
            chunks=tuple(v for v in values if v is not None),
            valid=valid,
            magnitude_bits=magnitude,
            squares=tuple(s for s in square if s is not None) if has_squares else None,
        )

    def columns(self) -> list[str]:
        """Names of the columns the table holds."""
        from pyspark.sql import functions as F

        rows = self.frame.filter(F.col("record") == "chunk").select("column").distinct().collect()
        return sorted(str(r["column"]) for r in rows)


def read_encrypted_table(store: DeltaStore, path: Path) -> EncryptedTable:
    """Open an encrypted table; NotFound when ingest never wrote it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not store.exists(path):
        raise NotFound("no encrypted table for this dataset and purpose; ingest it first")
    frame = store.read(path)
    meta = (
        frame.filter(F.col("record") == "chunk")
        .select("batch", "batch_time", "chunk", "fingerprint", "scheme", "chunk_slots")
        .distinct()
        .collect()
    )
    if not meta:
        raise NotFound("the encrypted table holds no ciphertexts")
    facts = {(r["fingerprint"], r["scheme"], int(r["chunk_slots"])) for r in meta}
    if len(facts) != 1:
        raise ValidationFailed(
            "the encrypted table mixes key pairs or packings; re-ingest with overwrite"
        )
    ((fingerprint, scheme, chunk_slots),) = facts
    ordered = sorted({(int(r["batch_time"]), r["batch"], int(r["chunk"])) for r in meta})
    numbers = {(batch, chunk): n for n, (_, batch, chunk) in enumerate(ordered)}
    # positions of rows whose entity reappears in a newer batch
    newest = Window.partitionBy("entity").orderBy(F.col("batch_time").desc(), F.col("batch").desc())
    older = (
        frame.filter(F.col("record") == "index")
        .withColumn("_rank", F.row_number().over(newest))
        .filter(F.col("_rank") > 1)
        .select("batch", "chunk", "slot")
        .collect()
    )
    superseded = np.array(
        [numbers[(r["batch"], r["chunk"])] * chunk_slots + int(r["slot"]) for r in older],
        dtype=np.int64,
    )
    scheme_value: Any = scheme
    return EncryptedTable(
        path=path,
        frame=frame,
        fingerprint=str(fingerprint),
        scheme=scheme_value,
        chunk_slots=int(chunk_slots),
        chunk_numbers=numbers,
        superseded=superseded,
    )
