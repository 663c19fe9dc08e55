"""Fixtures for the masking tests: test keys, and helpers that mask one column on Spark."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

import pytest

from masking import REGISTRY, DataType, KeyMaterial, MaskContext

# Arrow UDF workers must run this interpreter (pandas, pyarrow, cryptography, ff3), not
# whatever `python3` is on PATH; Spark reads this when the session starts.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

KEYS: dict[str, KeyMaterial] = {
    "customer-key": KeyMaterial("customer-key/v1", bytes(range(32))),
    "other-key": KeyMaterial("other-key/v1", bytes(range(100, 132))),
    "long-key": KeyMaterial("long-key/v1", bytes(range(100))),  # > 64 bytes: hashed first
    "odd-key": KeyMaterial("odd-key/v1", b"twenty-byte-secret!!"),  # not 16/24/32/64 bytes
    "salt": KeyMaterial("salt/v1", b"pepper-pepper-pepper"),
    "short-key": KeyMaterial("short-key/v1", b"too-short"),
}

MaskFn = Callable[..., list[Any]]


@pytest.fixture(scope="session")
def keys() -> dict[str, KeyMaterial]:
    """The key material the tests resolve secret references against."""
    return KEYS


def _arrow_type(data_type: DataType) -> Any:
    import pyarrow as pa

    return {
        DataType.STRING: pa.string(),
        DataType.INTEGER: pa.int32(),
        DataType.LONG: pa.int64(),
        DataType.DOUBLE: pa.float64(),
        DataType.BOOLEAN: pa.bool_(),
        DataType.DATE: pa.date32(),
        DataType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    }[data_type]


def _arrow_values(values: Sequence[Any], data_type: DataType) -> list[Any]:
    if data_type is not DataType.TIMESTAMP:
        return list(values)
    # naive datetimes mean local time, as in PySpark's own collect() round trip
    return [v if v is None or v.tzinfo else v.astimezone(UTC) for v in values]


def _frame(
    spark: Any,
    values: Sequence[Any],
    data_type: DataType,
    column: str,
    entity: Sequence[Any] | None,
) -> Any:
    """A DataFrame from local values via Arrow (a LocalTableScan: no job to build it)."""
    import pyarrow as pa

    columns = {column: pa.array(_arrow_values(values, data_type), type=_arrow_type(data_type))}
    if entity is not None:
        assert len(entity) == len(values)
        columns["entity"] = pa.array(list(entity), type=pa.string())
    return spark.createDataFrame(pa.table(columns))


def masked_column(
    df: Any,
    column: str,
    data_type: DataType,
    strategy: str,
    params: Mapping[str, Any] | None = None,
    *,
    keys: Mapping[str, KeyMaterial] | None = None,
    entity_column: str | None = None,
    seed: int = 0,
) -> Any:
    """The masking expression for `column` of `df`, after parsing and checking the params."""
    from pyspark.sql import functions as F

    chosen = REGISTRY.get(strategy)
    parsed = chosen.parse(params)
    problem = chosen.check(data_type, parsed)
    assert problem is None, problem
    ctx = MaskContext(
        column=column,
        data_type=data_type,
        keys=KEYS if keys is None else keys,
        entity_column=entity_column,
        seed=seed,
    )
    return chosen.expression(F.col("`" + column.replace("`", "``") + "`"), parsed, ctx)


@pytest.fixture(scope="session")
def mask_expr() -> Callable[..., Any]:
    """`masked_column` as a fixture: mask a column of an existing DataFrame."""
    return masked_column


@pytest.fixture(scope="session")
def mask_frame(spark: Any) -> Callable[..., Any]:
    """Build a one-column DataFrame and mask it; returns the masked DataFrame (column `out`)."""

    def run(
        values: Sequence[Any],
        data_type: DataType,
        strategy: str,
        params: Mapping[str, Any] | None = None,
        *,
        column: str = "c",
        keys: Mapping[str, KeyMaterial] | None = None,
        entity: Sequence[Any] | None = None,
        seed: int = 0,
    ) -> Any:
        df = _frame(spark, values, data_type, column, entity)
        expr = masked_column(
            df,
            column,
            data_type,
            strategy,
            params,
            keys=keys,
            entity_column="entity" if entity is not None else None,
            seed=seed,
        )
        return df.select(expr.alias("out"))

    return run


@pytest.fixture(scope="session")
def mask(mask_frame: Callable[..., Any]) -> MaskFn:
    """Mask a list of values with a strategy and return the masked values in order."""

    def run(*args: Any, **kwargs: Any) -> list[Any]:
        return [row.out for row in mask_frame(*args, **kwargs).collect()]

    return run


def python_udf_nodes(df: Any) -> list[str]:
    """Python-UDF operator names that appear in a DataFrame's executed physical plan."""
    plan = df._jdf.queryExecution().executedPlan().toString()
    return [node for node in ("ArrowEvalPython", "BatchEvalPython", "PythonUDF") if node in plan]


@pytest.fixture(scope="session")
def udf_nodes() -> Callable[[Any], list[str]]:
    """`python_udf_nodes` as a fixture (test modules cannot import this conftest)."""
    return python_udf_nodes
