"""Every strategy on every type it accepts, over one table of nasty values: no errors, nulls stay
null, the declared output type is produced, and one-way/encrypting outputs never equal inputs.
Also: the physical plans contain Python UDF nodes only for AES-SIV and FF3-1."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pytest

from masking import REGISTRY, DataType

pytestmark = pytest.mark.spark

S, INT, L, D = DataType.STRING, DataType.INTEGER, DataType.LONG, DataType.DOUBLE
B, DT, TS = DataType.BOOLEAN, DataType.DATE, DataType.TIMESTAMP

EDGE_VALUES: dict[DataType, list[Any]] = {
    S: [
        None,
        "",
        "Zoë",
        "東京",
        "👩‍👩‍👧 family",
        "x" * 10_000,
        "\x00\n\t",
        "a@b.c",
        "4111 1111 1111 1111",
        "192.168.1.77",
        "2001:db8::1",
        "+49 30 1234567",
    ],
    INT: [None, 0, 1, -1, 2**31 - 1, -(2**31)],
    L: [None, 0, 2**63 - 1, -(2**63)],
    D: [None, 0.0, -0.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf],
    B: [None, True, False],
    DT: [None, date(1, 3, 1), date(1970, 1, 1), date(2024, 2, 29), date(9999, 11, 30)],
    TS: [
        None,
        datetime(1900, 1, 1),
        datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime(9999, 11, 30, 23, 59, 59),
    ],
}

CONSTANTS = {S: "x", INT: 0, L: 0, D: 0.0, B: False, DT: "2000-01-01", TS: "2000-01-01T00:00:00"}


def sample_params(name: str, data_type: DataType) -> dict[str, Any]:
    """Parameters valid for `name` on `data_type` (the table below is the catalogue's tour)."""
    table: dict[str, dict[str, Any]] = {
        "nullify": {},
        "constant": {"value": CONSTANTS[data_type]},
        "regex_replace": {"pattern": "[aeiou0-9]", "replacement": "*"},
        "hash": {"salt": "salt"},
        "tokenize": {"key": "customer-key"},
        "encrypt_deterministic": {"key": "customer-key"},
        "fpe": {"key": "customer-key"},
        "partial": {"show_first": 1, "show_last": 2},
        "char_class": {},
        "email": {},
        "phone": {},
        "card_number": {},
        "truncate": {"keep": 3, "pad": "*"},
        "bucket": {"width": 10},
        "round": {"digits": -1},
        "generalize_date": {"unit": "month"},
        "age_band": {"as_of": "2024-06-30"},
        "ip_prefix": {},
        "date_shift": {"key": "customer-key", "max_days": 30},
        "randomized_response": (
            {"epsilon": 1.0, "categories": ["Zoë", "東京", ""]}
            if data_type is S
            else {"epsilon": 1.0}
        ),
        "noise": {"lower": -100, "upper": 100, "epsilon": 1.0},
    }
    return table[name]


ONE_WAY = {"hash", "tokenize", "encrypt_deterministic"}


def _masked_table(spark: Any, mask_expr: Any, data_type: DataType) -> tuple[Any, list[str]]:
    import pyarrow as pa

    values = EDGE_VALUES[data_type]
    arrow_type = {
        S: pa.string(),
        INT: pa.int32(),
        L: pa.int64(),
        D: pa.float64(),
        B: pa.bool_(),
        DT: pa.date32(),
        TS: pa.timestamp("us", tz="UTC"),
    }[data_type]
    arrow_values = (
        values if data_type is not TS else [v if v is None else v.astimezone() for v in values]
    )
    df = spark.createDataFrame(
        pa.table(
            {
                "v": pa.array(arrow_values, type=arrow_type),
                "entity": pa.array(["e1"] * len(values), type=pa.string()),
                "row": pa.array(range(len(values)), type=pa.int32()),
            }
        )
    )
    names = [s.name for s in REGISTRY if data_type in s.accepts]
    columns = [
        mask_expr(
            df, "v", data_type, name, sample_params(name, data_type), entity_column="entity"
        ).alias(name)
        for name in names
    ]
    return df.select("row", "v", *columns), names


@pytest.mark.parametrize("data_type", list(DataType))
def test_when_every_strategy_masks_edge_values_then_types_and_nulls_hold(
    spark: Any, mask_expr: Any, data_type: DataType
) -> None:
    masked, names = _masked_table(spark, mask_expr, data_type)
    rows = sorted(masked.collect(), key=lambda r: r.row)
    assert len(rows) == len(EDGE_VALUES[data_type])
    for name in names:
        strategy = REGISTRY.get(name)
        declared = strategy.output_type(data_type, strategy.parse(sample_params(name, data_type)))
        assert masked.schema[name].dataType.simpleString() == declared.spark_sql, name
        null_row = rows[0]
        if name != "constant":
            assert null_row[name] is None, f"{name}: a null input must stay null"
        if name in ONE_WAY:
            for row in rows[1:]:
                assert row[name] is not None and row[name] != str(row.v), name


def test_when_every_builtin_strategy_is_planned_then_no_python_udf_appears(
    spark: Any, mask_expr: Any, udf_nodes: Any
) -> None:
    for data_type in DataType:
        masked, names = _masked_table(spark, mask_expr, data_type)
        native = masked.select(*[n for n in names if not REGISTRY.get(n).uses_python_udf])
        assert udf_nodes(native) == [], data_type


@pytest.mark.parametrize("name", ["encrypt_deterministic", "fpe"])
def test_when_aes_siv_or_fpe_is_planned_then_an_arrow_udf_appears(
    spark: Any, mask_expr: Any, udf_nodes: Any, name: str
) -> None:
    masked, _ = _masked_table(spark, mask_expr, S)
    assert udf_nodes(masked.select(name)) == ["ArrowEvalPython"]
