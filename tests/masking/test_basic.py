"""`nullify`, `constant` and `regex_replace` on tables with nulls, unicode and extremes."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pytest

from masking import DataType, MaskingError

pytestmark = pytest.mark.spark

S, INT, L, D = DataType.STRING, DataType.INTEGER, DataType.LONG, DataType.DOUBLE


@pytest.mark.parametrize(
    ("data_type", "values"),
    [
        (S, ["Zoë", "", None, "x" * 10_000]),  # text incl. empty and 10,000 chars
        (L, [2**63 - 1, -(2**63), None]),  # long extremes
        (D, [1e308, -1e308, math.nan, None]),  # double extremes and NaN
        (DataType.DATE, [date(1, 1, 1), date(9999, 12, 31)]),  # calendar extremes
    ],
)
def test_when_nullified_then_every_cell_is_null(
    mask_frame: Any, data_type: DataType, values: list[Any]
) -> None:
    df = mask_frame(values, data_type, "nullify")
    assert [r.out for r in df.collect()] == [None] * len(values)
    assert df.schema["out"].dataType.simpleString() == data_type.spark_sql  # type kept


@pytest.mark.parametrize(
    ("data_type", "params", "values", "expected"),
    [
        (S, {"value": "n/a"}, ["Zoë", "", None], ["n/a", "n/a", "n/a"]),  # nulls hidden too
        (S, {"value": "n/a", "keep_nulls": True}, ["東京", None], ["n/a", None]),  # keep nulls
        (INT, {"value": -(2**31)}, [2**31 - 1, None], [-(2**31)] * 2),  # int min constant
        (L, {"value": 2**63 - 1}, [0], [2**63 - 1]),  # long max constant
        (D, {"value": 0}, [1e308, math.nan], [0.0, 0.0]),  # int literal for a double
        (DataType.BOOLEAN, {"value": False}, [True, None], [False, False]),  # boolean
        (DataType.DATE, {"value": "1970-01-01"}, [date(2024, 2, 29)], [date(1970, 1, 1)]),
        (
            DataType.TIMESTAMP,  # ISO text for a timestamp column
            {"value": "2000-01-01T00:00:00"},
            [datetime(2024, 1, 1, 12)],
            [datetime(2000, 1, 1)],
        ),
    ],
)
def test_when_constant_then_value_is_typed_for_the_column(
    mask_frame: Any,
    data_type: DataType,
    params: dict[str, Any],
    values: list[Any],
    expected: list[Any],
) -> None:
    df = mask_frame(values, data_type, "constant", params)
    assert [r.out for r in df.collect()] == expected
    assert df.schema["out"].dataType.simpleString() == data_type.spark_sql


def test_when_constant_does_not_fit_the_column_then_masking_error() -> None:
    from masking import REGISTRY, MaskContext

    strategy = REGISTRY.get("constant")
    with pytest.raises(MaskingError, match="outside the integer range"):
        strategy.expression(None, strategy.parse({"value": 2**40}), MaskContext("c", INT))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "values", "expected"),
    [
        # keep the first three digits of each run of digits
        ({"pattern": r"(\d{3})\d+", "replacement": "$1***"}, ["id 1234567"], ["id 123***"]),
        # empty replacement removes matches; the null stays null, the empty string stays empty
        ({"pattern": "[aeiou]"}, ["education", "", None], ["dctn", "", None]),
        # unicode-aware character classes work on code points
        ({"pattern": "ë", "replacement": "e"}, ["Zoë 東京 👩‍💻"], ["Zoe 東京 👩‍💻"]),
        # an escaped dollar is a literal in Java replacements
        ({"pattern": "EUR", "replacement": r"\$"}, ["5 EUR"], ["5 $"]),
        # 10,000 characters are fine
        ({"pattern": "b", "replacement": "c"}, ["ab" * 5000], ["ac" * 5000]),
    ],
)
def test_when_regex_replace_then_java_regexp_replace_semantics(
    mask: Any, params: dict[str, Any], values: list[Any], expected: list[Any]
) -> None:
    assert mask(values, S, "regex_replace", params) == expected
