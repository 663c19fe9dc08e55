"""Whole-cell strategies: `nullify`, `constant` and `regex_replace`."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import TYPE_CHECKING

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from masking.base import MaskContext, MaskingError, Params, Strategy
from masking.base import Params as AnyParams
from masking.strategies._common import expect
from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "ConstantParams",
    "ConstantStrategy",
    "NullifyParams",
    "NullifyStrategy",
    "RegexReplaceParams",
    "RegexReplaceStrategy",
]

_ALL_TYPES = frozenset(DataType)
_INT_RANGE = {DataType.INTEGER: (-(2**31), 2**31 - 1), DataType.LONG: (-(2**63), 2**63 - 1)}


class NullifyParams(Params):
    """`nullify` takes no parameters."""


class NullifyStrategy(Strategy):
    """Every cell becomes null (the column keeps its type)."""

    name = "nullify"
    Params = NullifyParams
    accepts = _ALL_TYPES
    description = "Replace every value with null."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        expect(params, NullifyParams)
        return F.lit(None).cast(ctx.data_type.spark_sql)


ConstantValue = StrictBool | StrictInt | StrictFloat | StrictStr | datetime | date


class ConstantParams(Params):
    """`value` typed for the column (ISO text is accepted for dates and timestamps)."""

    value: ConstantValue
    keep_nulls: StrictBool = False

    @field_validator("value")
    @classmethod
    def _finite(cls, value: ConstantValue) -> ConstantValue:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a constant must be a finite number")
        return value


def _constant_for(value: ConstantValue, data_type: DataType) -> object:
    """`value` converted to the Python value Spark should use for `data_type`; ValueError if not."""
    kind = type(value).__name__
    if data_type is DataType.STRING:
        if isinstance(value, str):
            return value
        raise ValueError(f"a string column needs a text constant, got {kind} {value!r} (quote it)")
    if data_type is DataType.BOOLEAN:
        if isinstance(value, bool):
            return value
        raise ValueError(f"a boolean column needs true or false, got {kind} {value!r}")
    if data_type in _INT_RANGE:
        low, high = _INT_RANGE[data_type]
        if isinstance(value, int) and not isinstance(value, bool):
            if not low <= value <= high:
                raise ValueError(f"{value} is outside the {data_type} range [{low}, {high}]")
            return value
        raise ValueError(f"an {data_type} column needs a whole number, got {kind} {value!r}")
    if data_type is DataType.DOUBLE:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ValueError(f"{value} does not fit a double") from None
        raise ValueError(f"a double column needs a number, got {kind} {value!r}")
    if data_type is DataType.DATE:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            return date.fromisoformat(value)
        raise ValueError(f"a date column needs a date (YYYY-MM-DD), got {kind} {value!r}")
    # TIMESTAMP
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ValueError(f"a timestamp column needs a timestamp (ISO 8601), got {kind} {value!r}")


class ConstantStrategy(Strategy):
    """Every cell becomes `value`; nulls too unless `keep_nulls` (so nullness is not revealed)."""

    name = "constant"
    Params = ConstantParams
    accepts = _ALL_TYPES
    description = "Replace every value with one constant of the column's type."

    def check(self, data_type: DataType, params: AnyParams) -> str | None:
        problem = super().check(data_type, params)
        if problem:
            return problem
        try:
            _constant_for(expect(params, ConstantParams).value, data_type)
        except ValueError as exc:
            return f"constant: {exc}"
        return None

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, ConstantParams)
        try:
            value = _constant_for(p.value, ctx.data_type)
        except ValueError as exc:
            raise MaskingError(f"column {ctx.column!r}: constant: {exc}") from None
        literal = F.lit(value).cast(ctx.data_type.spark_sql)
        if p.keep_nulls:
            return F.when(column.isNull(), F.lit(None).cast(ctx.data_type.spark_sql)).otherwise(
                literal
            )
        return literal


# Python-only syntax that Java's java.util.regex (used by Spark) does not understand.
_PYTHON_ONLY = (
    (re.compile(r"(?<!\\)\(\?P[<=>]"), "Python named groups (?P<...>) are not Java syntax"),
    (re.compile(r"(?<!\\)\(\?[aLu]*[aL]"), "inline flags (?a) and (?L) are Python-only"),
)


class RegexReplaceParams(Params):
    """`pattern` (Java/Python common regex subset) and `replacement` (`$1` references groups)."""

    pattern: str = Field(min_length=1, max_length=1000)
    replacement: str = Field("", max_length=1000)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        for probe, message in _PYTHON_ONLY:
            if probe.search(pattern):
                raise ValueError(message)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern does not compile: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _replacement_groups(self) -> RegexReplaceParams:
        groups = re.compile(self.pattern).groups
        text = self.replacement
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\\":
                if i + 1 == len(text):
                    raise ValueError("replacement ends with a lone backslash")
                i += 2
                continue
            if char == "$":
                if i + 1 == len(text) or not text[i + 1].isdigit():
                    raise ValueError(
                        "replacement: '$' must be followed by a group number (write \\$ for a "
                        "literal dollar; named groups are not supported)"
                    )
                if int(text[i + 1]) > groups:
                    raise ValueError(
                        f"replacement refers to group ${text[i + 1]} but the pattern has {groups}"
                    )
            i += 1
        return self


class RegexReplaceStrategy(Strategy):
    """Replace every match of `pattern` with `replacement` (Spark's `regexp_replace`)."""

    name = "regex_replace"
    Params = RegexReplaceParams
    accepts = frozenset({DataType.STRING})
    description = "Replace regular-expression matches in text."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, RegexReplaceParams)
        return F.regexp_replace(column, p.pattern, p.replacement)
