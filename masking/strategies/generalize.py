"""Generalising strategies: `bucket`, `round`, `generalize_date`, `age_band`, `ip_prefix`.

All are native Spark expressions. Bucket labels read ``[lower, upper)``; integral edges are
written without '.0', unbounded ends as ``-inf`` / ``inf``.
"""

from __future__ import annotations

import itertools
import math
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from masking.base import MaskContext, MaskingError, Params, Strategy
from masking.base import Params as AnyParams
from masking.strategies._common import (
    FiniteFloat,
    PositiveFloat,
    decimals_of,
    expect,
    format_edge,
    spark_number_text,
)
from masking.types import NUMERIC_TYPES, TEMPORAL_TYPES, DataType

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "AgeBandParams",
    "AgeBandStrategy",
    "BucketParams",
    "BucketStrategy",
    "GeneralizeDateParams",
    "GeneralizeDateStrategy",
    "IpPrefixParams",
    "IpPrefixStrategy",
    "RoundParams",
    "RoundStrategy",
]

_INTEGRAL = frozenset({DataType.INTEGER, DataType.LONG})
_TYPE_RANGE = {DataType.INTEGER: (-(2**31), 2**31 - 1), DataType.LONG: (-(2**63), 2**63 - 1)}
# Whole numbers this large are handled exactly as decimal(38, 0) literals.
_EXACT_LIMIT = 10**30
_DEC = "decimal(38,0)"


def _is_whole(value: float) -> bool:
    return float(value).is_integer() and abs(value) <= _EXACT_LIMIT


def _dec(value: int) -> Column:
    from pyspark.sql import functions as F

    return F.lit(Decimal(value)).cast(_DEC)


def _label(lower: Column, upper: Column) -> Column:
    from pyspark.sql import functions as F

    return F.concat(F.lit("["), lower, F.lit(", "), upper, F.lit(")"))


class BucketParams(Params):
    """Either `width` (with optional `origin`, default 0) or explicit sorted `bins` edges."""

    width: PositiveFloat | None = None
    origin: FiniteFloat | None = None
    bins: tuple[FiniteFloat, ...] | None = Field(None, min_length=1, max_length=1000)

    @field_validator("bins")
    @classmethod
    def _sorted(cls, bins: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if bins is not None and any(a >= b for a, b in itertools.pairwise(bins)):
            raise ValueError("bins must be strictly increasing")
        return bins

    @model_validator(mode="after")
    def _one_mode(self) -> BucketParams:
        if (self.width is None) == (self.bins is None):
            raise ValueError("give exactly one of 'width' or 'bins'")
        if self.bins is not None and self.origin is not None:
            raise ValueError("'origin' only applies with 'width'")
        return self


class BucketStrategy(Strategy):
    """Numbers to interval labels such as ``[40, 50)``.

    With `bins`, values below the first edge read ``[-inf, first)`` and values from the last
    edge on ``[last, inf)``. NaN becomes null; with `width`, infinities become null too.
    Integer columns with whole widths are bucketed exactly in decimal arithmetic; doubles in
    floating point (edges rounded to the decimals of width/origin).
    """

    name = "bucket"
    Params = BucketParams
    accepts = NUMERIC_TYPES
    description = "Replace numbers with interval labels like '[40, 50)'."

    def output_type(self, data_type: DataType, params: AnyParams) -> DataType:
        return DataType.STRING

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, BucketParams)
        missing = column.isNull()
        if ctx.data_type is DataType.DOUBLE:
            missing = missing | F.isnan(column)
        if p.bins is not None:
            edges = p.bins
            labels = [f"[-inf, {format_edge(edges[0])})"]
            labels += [
                f"[{format_edge(a)}, {format_edge(b)})" for a, b in itertools.pairwise(edges)
            ]
            expr = F.when(missing, F.lit(None).cast("string"))
            for edge, text in zip(edges, labels, strict=True):
                expr = expr.when(column < F.lit(edge), F.lit(text))
            return expr.otherwise(F.lit(f"[{format_edge(edges[-1])}, inf)"))
        assert p.width is not None
        origin = p.origin or 0.0
        if ctx.data_type in _INTEGRAL and _is_whole(p.width) and _is_whole(origin):
            x = column.cast(_DEC)
            width, start = _dec(int(p.width)), _dec(int(origin))
            lower = x - F.pmod(x - start, width)
            return _label(lower.cast("string"), (lower + width).cast("string"))
        x = column.cast("double")
        places = max(decimals_of(p.width), decimals_of(origin))
        lower = x - F.pmod(x - F.lit(origin), F.lit(p.width))
        label = _label(
            spark_number_text(F.round(lower, places)),
            spark_number_text(F.round(lower + F.lit(p.width), places)),
        )
        infinite = F.abs(x) == F.lit(math.inf)
        return F.when(missing | infinite, F.lit(None).cast("string")).otherwise(label)


class RoundParams(Params):
    """`digits` after the point (negative: -3 rounds to thousands) or a multiple `to`."""

    digits: int | None = Field(None, strict=True, ge=-30, le=30)
    to: PositiveFloat | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> RoundParams:
        if self.digits is not None and self.to is not None:
            raise ValueError("give 'digits' or 'to', not both")
        return self


def _half_up_multiple(x: Column, step: Column) -> Column:
    """`x` rounded to a multiple of `step`, halves away from zero (exact for decimals)."""
    from pyspark.sql import functions as F

    rest = F.pmod(x, step)
    lower = x - rest
    twice = rest * F.lit(2)
    up = (twice > step) | ((twice == step) & (x >= F.lit(0)))
    return F.when(up, lower + step).otherwise(lower)


def _power_of_ten(value: float) -> int | None:
    """-k when `value` is exactly 10**k (so `to: 0.1` rounds like `digits: 1`), else None."""
    exponent = round(math.log10(value))
    if -30 <= exponent <= 30 and float(f"1e{exponent}") == value:
        return -exponent
    return None


class RoundStrategy(Strategy):
    """Round to `digits` decimals (default 0) or to the nearest multiple of `to`; halves go away
    from zero. Integer columns are rounded exactly; a result past the type's range moves one
    step toward zero instead of overflowing.
    """

    name = "round"
    Params = RoundParams
    accepts = NUMERIC_TYPES
    description = "Round numbers to N digits (negative for tens, thousands) or a multiple."

    def check(self, data_type: DataType, params: AnyParams) -> str | None:
        problem = super().check(data_type, params)
        if problem:
            return problem
        p = expect(params, RoundParams)
        if data_type in _INTEGRAL and p.to is not None and not _is_whole(p.to):
            return f"round: 'to' {p.to} is not a whole number, so it does not suit {data_type}"
        return None

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, RoundParams)
        problem = self.check(ctx.data_type, p)
        if problem:
            raise MaskingError(f"column {ctx.column!r}: {problem}")
        digits = 0 if p.digits is None and p.to is None else p.digits
        if ctx.data_type in _INTEGRAL:
            if digits is not None and digits >= 0:
                return column
            step_value = int(p.to) if p.to is not None else 10 ** -(digits or 0)
            low, high = _TYPE_RANGE[ctx.data_type]
            step = _dec(step_value)
            rounded = _half_up_multiple(column.cast(_DEC), step)
            clamped = (
                F.when(rounded > _dec(high), rounded - step)
                .when(rounded < _dec(low), rounded + step)
                .otherwise(rounded)
            )
            return clamped.cast(ctx.data_type.spark_sql)
        if digits is None:
            assert p.to is not None
            digits = _power_of_ten(p.to)
        if digits is not None:
            return F.round(column, digits)
        assert p.to is not None
        x = column.cast("double")
        rounded = F.round(_half_up_multiple(x, F.lit(p.to)), decimals_of(p.to))
        not_finite = F.isnan(x) | (F.abs(x) == F.lit(math.inf))
        return F.when(not_finite, x).otherwise(rounded)


class GeneralizeDateParams(Params):
    """`unit`: year, quarter, month, week (Monday), day, or hour (timestamps only)."""

    unit: Literal["year", "quarter", "month", "week", "day", "hour"]


class GeneralizeDateStrategy(Strategy):
    """Truncate dates and timestamps to the start of their unit; the type is kept."""

    name = "generalize_date"
    Params = GeneralizeDateParams
    accepts = TEMPORAL_TYPES
    description = "Truncate dates/timestamps to year, quarter, month, week or day."

    def check(self, data_type: DataType, params: AnyParams) -> str | None:
        problem = super().check(data_type, params)
        if problem:
            return problem
        if data_type is DataType.DATE and expect(params, GeneralizeDateParams).unit == "hour":
            return "generalize_date: unit 'hour' needs a timestamp column"
        return None

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, GeneralizeDateParams)
        problem = self.check(ctx.data_type, p)
        if problem:
            raise MaskingError(f"column {ctx.column!r}: {problem}")
        if ctx.data_type is DataType.DATE:
            return column if p.unit == "day" else F.trunc(column, p.unit)
        return F.date_trunc(p.unit, column)


class AgeBandParams(Params):
    """`as_of` (a date or 'today') for birth-date columns, band `width`, optional `top`."""

    as_of: date | Literal["today"] | None = None
    width: int = Field(10, strict=True, ge=1, le=200)
    top: int | None = Field(None, strict=True, ge=1, le=200)


class AgeBandStrategy(Strategy):
    """Age bands like ``[40, 50)`` from a birth date (at `as_of`) or from an age number.

    Age is whole years completed (a 29 February birthday counts from 1 March in other years).
    With `top`, ages from `top` read ``[top, inf)``. Negative ages (born after `as_of`) -> null.
    """

    name = "age_band"
    Params = AgeBandParams
    accepts = frozenset({DataType.DATE, DataType.TIMESTAMP, DataType.INTEGER, DataType.LONG})
    description = "Replace a birth date or an age with an age band label like '[40, 50)'."

    def output_type(self, data_type: DataType, params: AnyParams) -> DataType:
        return DataType.STRING

    def check(self, data_type: DataType, params: AnyParams) -> str | None:
        problem = super().check(data_type, params)
        if problem:
            return problem
        if data_type in TEMPORAL_TYPES and expect(params, AgeBandParams).as_of is None:
            return "age_band: a birth-date column needs 'as_of' (a date or 'today')"
        return None

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, AgeBandParams)
        problem = self.check(ctx.data_type, p)
        if problem:
            raise MaskingError(f"column {ctx.column!r}: {problem}")
        if ctx.data_type in TEMPORAL_TYPES:
            born = column.cast("date")
            at = F.current_date() if p.as_of == "today" else F.lit(p.as_of)
            before_birthday = (F.month(at) < F.month(born)) | (
                (F.month(at) == F.month(born)) & (F.dayofmonth(at) < F.dayofmonth(born))
            )
            age = (F.year(at) - F.year(born) - F.when(before_birthday, 1).otherwise(0)).cast("long")
        else:
            age = column.cast("long")
        lower = (age - F.pmod(age, F.lit(p.width))).cast(_DEC)
        upper = lower + _dec(p.width)
        if p.top is not None:
            upper = F.least(upper, _dec(p.top))
        expr = F.when(age.isNull() | (age < F.lit(0)), F.lit(None).cast("string"))
        if p.top is not None:
            expr = expr.when(age >= F.lit(p.top), F.lit(f"[{p.top}, inf)"))
        return expr.otherwise(_label(lower.cast("string"), upper.cast("string")))


class IpPrefixParams(Params):
    """Prefix lengths kept: `ipv4` 8/16/24 and `ipv6` 32/48/64."""

    ipv4: Literal[8, 16, 24] = 24
    ipv6: Literal[32, 48, 64] = 48


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"\A{_OCTET}(?:\.{_OCTET}){{3}}\z"


class IpPrefixStrategy(Strategy):
    """Zero the host part of an IP: ``192.168.1.77`` -> ``192.168.1.0`` (/24),
    ``2001:db8:85a3::8a2e:370:7334`` -> ``2001:db8:85a3::`` (/48).

    IPv4 must be dotted-quad without leading zeros; IPv6 may be compressed and may end in a
    dotted quad; output IPv6 is lower-case RFC 5952 text. Anything else (zone ids, CIDR
    suffixes, whitespace) becomes null.
    """

    name = "ip_prefix"
    Params = IpPrefixParams
    accepts = frozenset({DataType.STRING})
    description = "Keep only the network prefix of IPv4/IPv6 addresses; invalid ones -> null."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, IpPrefixParams)
        octets = F.split(column, r"\.")
        kept = p.ipv4 // 8
        v4 = F.concat(
            F.concat_ws(".", *[F.element_at(octets, i + 1) for i in range(kept)]),
            F.lit(".0" * (4 - kept)),
        )
        return (
            F.when(column.rlike(_IPV4), v4)
            .when(column.contains(":"), _ipv6_prefix(column, p.ipv6))
            .otherwise(F.lit(None).cast("string"))
        )


_H = "[0-9a-f]{1,4}"
# RFC 4291 text forms (after a trailing dotted quad has been rewritten as two groups).
_IPV6 = (
    r"\A(?:"
    rf"(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}:){{1,7}}:"
    rf"|(?:{_H}:){{1,6}}:{_H}"
    rf"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
    rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
    rf"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}"
    rf"|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}"
    rf"|:(?:(?::{_H}){{1,7}}|:)"
    r")\z"
)


def _ipv6_prefix(column: Column, prefix: int) -> Column:
    """The /`prefix` network of an IPv6 text in RFC 5952 form, or null when it is not IPv6."""
    from pyspark.sql import functions as F

    text = F.lower(column)
    # A trailing dotted quad is the last 32 bits, always zeroed here: validate it, write 0:0.
    text = F.regexp_replace(text, rf"(?<=:){_OCTET}(?:\.{_OCTET}){{3}}\z", "0:0")
    # Expand '::' to the missing zero groups, then drop the colon left at either end.
    missing = F.lit(8) - F.regexp_count(text, F.lit("[0-9a-f]+"))
    zeros = F.concat(F.lit(":"), F.repeat(F.lit("0:"), missing))
    full = F.regexp_replace(F.replace(text, F.lit("::"), zeros), "^:|:$", "")
    groups = F.slice(F.split(full, ":"), 1, prefix // 16)
    network = F.regexp_replace(F.array_join(groups, ":"), "(^|:)0+(?=[0-9a-f])", "$1")
    # the zero groups that end the network are folded into the trailing '::'
    network = F.regexp_replace(network, r"(?:^|:)0(?::0)*\z", "")
    return F.when(text.rlike(_IPV6), F.concat(network, F.lit("::")))
