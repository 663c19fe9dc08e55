"""The column data types a policy can declare, shared by masking and the policy language."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["NUMERIC_TYPES", "TEMPORAL_TYPES", "DataType"]


class DataType(StrEnum):
    """A declared column type; each maps to exactly one Spark SQL type."""

    STRING = "string"
    INTEGER = "integer"
    LONG = "long"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"

    @property
    def spark_sql(self) -> str:
        """The Spark SQL type name, e.g. ``bigint`` for ``long``."""
        return _SPARK_SQL[self]


_SPARK_SQL = {
    DataType.STRING: "string",
    DataType.INTEGER: "int",
    DataType.LONG: "bigint",
    DataType.DOUBLE: "double",
    DataType.BOOLEAN: "boolean",
    DataType.DATE: "date",
    DataType.TIMESTAMP: "timestamp",
}

NUMERIC_TYPES = frozenset({DataType.INTEGER, DataType.LONG, DataType.DOUBLE})
TEMPORAL_TYPES = frozenset({DataType.DATE, DataType.TIMESTAMP})
