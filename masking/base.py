"""The contract every masking strategy fulfils: typed parameters in, one Spark Column out.

A strategy never touches rows itself. It builds a native Spark expression (or, where Spark
has no primitive, a vectorised Arrow UDF) that the ingest job places in one `select()`.
Importing this module does not import Spark: `pyspark` is only needed to build expressions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = ["KeyMaterial", "MaskContext", "MaskingError", "Params", "SecretColumns", "Strategy"]


class MaskingError(ValueError):
    """A strategy was misused: unknown name, bad parameters, wrong column type, missing key."""


class Params(BaseModel):
    """Base of every strategy's parameters: frozen, and unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class KeyMaterial:
    """A secret key resolved from a reference; `key_id` is safe to record, `secret` is not."""

    key_id: str
    secret: bytes = field(repr=False)


class SecretColumns:
    """Key-derived bytes as columns of a one-row frame, so Spark plans show names, not keys.

    A Column built from `F.lit(key_bytes)` prints the key in every plan (`explain()`, the
    Spark UI, error messages). With a sink, strategies reference `F.col("__secret_N")`
    instead; the job cross-joins the one-row `frame()` (broadcast) before its projection.
    """

    PREFIX = "__secret_"

    def __init__(self) -> None:
        self._names: dict[bytes, str] = {}

    def column(self, value: bytes) -> Column:
        """A Column holding `value`, registered under a generated name."""
        from pyspark.sql import functions as F

        name = self._names.setdefault(bytes(value), f"{self.PREFIX}{len(self._names)}")
        return F.col(name)

    @property
    def names(self) -> list[str]:
        """The generated column names, in registration order."""
        return list(self._names.values())

    def frame(self, spark: Any) -> Any:
        """A one-row DataFrame with every registered value as a binary column."""
        from pyspark.sql.types import BinaryType, StructField, StructType

        fields = [StructField(name, BinaryType(), False) for name in self._names.values()]
        schema = StructType(fields)
        return spark.createDataFrame([tuple(bytearray(v) for v in self._names)], schema)


@dataclass(frozen=True)
class MaskContext:
    """What a strategy may know about the column it masks, supplied by the ingest job."""

    column: str
    data_type: DataType
    keys: Mapping[str, KeyMaterial] = field(default_factory=dict)
    entity_column: str | None = None
    seed: int = 0
    secret_columns: SecretColumns | None = None

    def secret_literal(self, value: bytes) -> Column:
        """`value` as a Column: a named column of the job's secret frame when there is one."""
        if self.secret_columns is not None:
            return self.secret_columns.column(value)
        from pyspark.sql import functions as F

        return F.lit(value)

    def key(self, reference: str) -> KeyMaterial:
        """The key material for a secret reference, or a MaskingError naming it."""
        try:
            return self.keys[reference]
        except KeyError:
            raise MaskingError(
                f"column {self.column!r}: secret key {reference!r} is not available"
            ) from None


# `Strategy.Params` (the class attribute) shadows `Params` inside the class body, so the
# method annotations there use this alias.
_AnyParams = Params


class Strategy(ABC):
    """One masking strategy: a name, a frozen `Params` model, and an expression builder."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    accepts: ClassVar[frozenset[DataType]]
    description: ClassVar[str]
    uses_python_udf: ClassVar[bool] = False

    def parse(self, raw: Mapping[str, Any] | None) -> _AnyParams:
        """Validate raw policy parameters into this strategy's `Params` (pydantic errors raise)."""
        return self.Params.model_validate(dict(raw or {}))

    def output_type(self, data_type: DataType, params: _AnyParams) -> DataType:
        """The column's type after masking; most strategies keep the input type."""
        return data_type

    def key_references(self, params: _AnyParams) -> frozenset[str]:
        """Secret references this strategy needs at run time (none by default)."""
        return frozenset()

    def check(self, data_type: DataType, params: _AnyParams) -> str | None:
        """A message when the parameters do not suit the column type, else None."""
        if data_type not in self.accepts:
            allowed = ", ".join(sorted(self.accepts))
            return (
                f"strategy {self.name!r} does not apply to {data_type} columns (accepts {allowed})"
            )
        return None

    @abstractmethod
    def expression(self, column: Column, params: _AnyParams, ctx: MaskContext) -> Column:
        """The Spark Column that replaces `column`; nulls in stay nulls unless stated."""
