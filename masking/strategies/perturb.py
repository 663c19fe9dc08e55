"""Perturbing strategies: `date_shift` (keyed, per entity), `randomized_response` and `noise`.

`randomized_response` and `noise` are cell-level *local* perturbation: each value is
randomised on its own. They are not a central differential-privacy release (that is done
elsewhere with OpenDP). Randomness comes from Spark's `rand(seed)`, seeded from the job seed
and the column name, so a rerun over the same input partitioning gives the same output.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from masking.base import MaskContext, MaskingError, Params, Strategy
from masking.base import Params as AnyParams
from masking.strategies._common import (
    FiniteFloat,
    KeyRef,
    PositiveFloat,
    canonical_bytes,
    derived_seed,
    expect,
    hmac_sha256_hex,
    quoted,
    require_secret,
)
from masking.types import NUMERIC_TYPES, TEMPORAL_TYPES, DataType

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "DATE_SHIFT_LABEL",
    "DateShiftParams",
    "DateShiftStrategy",
    "NoiseParams",
    "NoiseStrategy",
    "RandomizedResponseParams",
    "RandomizedResponseStrategy",
    "date_shift_offset",
    "keep_probability",
]

#: Domain-separation label hashed before the entity value, so offsets never equal tokens.
DATE_SHIFT_LABEL = b"masking/date_shift\x00"
_DEC = "decimal(38,0)"
_TYPE_RANGE = {DataType.INTEGER: (-(2**31), 2**31 - 1), DataType.LONG: (-(2**63), 2**63 - 1)}


class DateShiftParams(Params):
    """`key` (secret name) and `max_days` (1-36500): offsets lie in ±[1, max_days], never 0."""

    key: KeyRef
    max_days: int = Field(strict=True, ge=1, le=36500)


def date_shift_offset(entity_text: str, secret: bytes, max_days: int) -> int:
    """The day offset `date_shift` gives an entity (reference implementation, for tests/audit)."""
    import hashlib
    import hmac

    digest = hmac.new(secret, DATE_SHIFT_LABEL + entity_text.encode(), hashlib.sha256).hexdigest()
    draw = int(digest[:12], 16) % (2 * max_days) - max_days
    return draw + 1 if draw >= 0 else draw


class DateShiftStrategy(Strategy):
    """Shift every date of an entity by one keyed offset, keeping intervals within the entity.

    draw = int(first 48 bits of HMAC-SHA256(key, label || entity text)) mod 2m - m, and the
    offset is draw + 1 when draw >= 0, else draw: uniform over ±[1, m], never 0, so no date is
    left unshifted. Rows with a null entity get a null date.
    """

    name = "date_shift"
    Params = DateShiftParams
    accepts = TEMPORAL_TYPES
    description = "Shift dates by a keyed per-entity offset of 1 to max_days, either way."

    def key_references(self, params: AnyParams) -> frozenset[str]:
        return frozenset({expect(params, DateShiftParams).key})

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, DateShiftParams)
        if not ctx.entity_column:
            raise MaskingError(
                f"column {ctx.column!r}: date_shift needs the entity column (none is declared)"
            )
        secret = require_secret(ctx, p.key).secret
        message = F.concat(F.lit(DATE_SHIFT_LABEL), canonical_bytes(quoted(ctx.entity_column)))
        number = F.conv(F.substring(hmac_sha256_hex(message, secret, ctx), 1, 12), 16, 10)
        # An offset in [-max_days, -1] or [1, max_days]: never 0, so no value is left unshifted.
        draw = F.pmod(number.cast("long"), F.lit(2 * p.max_days)) - F.lit(p.max_days)
        offset = F.when(draw >= 0, draw + 1).otherwise(draw).cast("int")
        if ctx.data_type is DataType.DATE:
            return F.date_add(column, offset)
        return F.timestamp_add("DAY", offset, column)


class RandomizedResponseParams(Params):
    """`epsilon` (0 < ε <= 50) and the `categories` of a string column (none for booleans)."""

    epsilon: PositiveFloat = Field(le=50)
    categories: tuple[str, ...] | None = Field(None, min_length=2, max_length=1000)

    @field_validator("categories")
    @classmethod
    def _distinct(cls, categories: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if categories is not None and len(set(categories)) != len(categories):
            raise ValueError("categories must be distinct")
        return categories


def keep_probability(epsilon: float, k: int) -> float:
    """P(report the true value) = e^ε / (e^ε + k - 1)."""
    return 1.0 / (1.0 + (k - 1) * math.exp(-epsilon))


class RandomizedResponseStrategy(Strategy):
    """k-ary randomized response: keep the value with probability e^ε/(e^ε+k-1), else report
    a uniformly random *other* category. A value outside `categories` is reported as a
    uniformly random category (still ε-LDP). Nulls stay null (nullness is not protected).
    """

    name = "randomized_response"
    Params = RandomizedResponseParams
    accepts = frozenset({DataType.STRING, DataType.BOOLEAN})
    description = "Local ε-DP randomized response over declared categories (not central DP)."

    def check(self, data_type: DataType, params: AnyParams) -> str | None:
        problem = super().check(data_type, params)
        if problem:
            return problem
        categories = expect(params, RandomizedResponseParams).categories
        if data_type is DataType.STRING and categories is None:
            return "randomized_response: a string column needs its 'categories'"
        if data_type is DataType.BOOLEAN and categories is not None:
            return "randomized_response: a boolean column has categories true/false; omit them"
        return None

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, RandomizedResponseParams)
        problem = self.check(ctx.data_type, p)
        if problem:
            raise MaskingError(f"column {ctx.column!r}: {problem}")
        values: list[object] = list(p.categories) if p.categories else [True, False]
        k = len(values)
        domain = F.array(*[F.lit(v) for v in values])
        # Each rand() below is referenced exactly once: Spark evaluates every occurrence of a
        # nondeterministic expression separately, so reusing one would draw different numbers.
        keep = F.rand(derived_seed(ctx, "randomized_response/keep")) < F.lit(
            keep_probability(p.epsilon, k)
        )
        position = F.array_position(domain, column)  # 1-based, 0 when absent
        # true index + 1..k-1 (mod k): uniform over the other categories
        step = F.floor(F.rand(derived_seed(ctx, "randomized_response/other")) * F.lit(k - 1))
        other = F.pmod(position - F.lit(1) + F.lit(1) + step, F.lit(k)) + F.lit(1)
        anyone = F.floor(F.rand(derived_seed(ctx, "randomized_response/any")) * F.lit(k)) + 1
        return (
            F.when(column.isNull(), column)
            .when(position == F.lit(0), F.element_at(domain, anyone.cast("int")))
            .when(keep, column)
            .otherwise(F.element_at(domain, other.cast("int")))
        )


class NoiseParams(Params):
    """Declared bounds `lower` < `upper` and local `epsilon` (Laplace scale (upper-lower)/ε)."""

    lower: FiniteFloat
    upper: FiniteFloat
    epsilon: PositiveFloat = Field(le=1000)

    @model_validator(mode="after")
    def _bounds(self) -> NoiseParams:
        if not self.lower < self.upper:
            raise ValueError("'lower' must be below 'upper'")
        if not math.isfinite(self.upper - self.lower):
            raise ValueError("the range upper - lower must be a finite number")
        if not math.isfinite(self.scale):
            raise ValueError("epsilon is so small that the noise scale is infinite")
        return self

    @property
    def scale(self) -> float:
        """The Laplace scale b = (upper - lower) / epsilon."""
        return (self.upper - self.lower) / self.epsilon


def _dec(value: int) -> Column:
    from decimal import Decimal

    from pyspark.sql import functions as F

    return F.lit(Decimal(value)).cast(_DEC)


def _integer_bounds(data_type: DataType, p: NoiseParams) -> tuple[int, int]:
    low, high = _TYPE_RANGE[data_type]
    return max(math.ceil(p.lower), low), min(math.floor(p.upper), high)


class NoiseStrategy(Strategy):
    """Bounded Laplace noise, cell-level *local* ε-DP perturbation — not a central DP release.

    The value is clamped to [lower, upper], Laplace(0, (upper-lower)/ε) noise is added (inverse
    CDF of Spark's `rand`), and the result is clamped again; integer columns are rounded to
    whole numbers inside the bounds. NaN becomes null.
    """

    name = "noise"
    Params = NoiseParams
    accepts = NUMERIC_TYPES
    description = (
        "Local (cell-level) ε-DP bounded Laplace noise; not a central DP release (see OpenDP)."
    )

    def check(self, data_type: DataType, params: AnyParams) -> str | None:
        problem = super().check(data_type, params)
        if problem:
            return problem
        p = expect(params, NoiseParams)
        if data_type in _TYPE_RANGE:
            low, high = _integer_bounds(data_type, p)
            if low > high:
                return f"noise: no {data_type} value lies within [{p.lower}, {p.upper}]"
        return None

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, NoiseParams)
        problem = self.check(ctx.data_type, p)
        if problem:
            raise MaskingError(f"column {ctx.column!r}: {problem}")
        lower, upper = F.lit(p.lower), F.lit(p.upper)
        x = F.least(F.greatest(column.cast("double"), lower), upper)
        # Laplace = random sign x Exponential(scale); the exponential by inverse CDF,
        # -ln(1 - U) with U in [0, 1). Each rand() is referenced once (see randomized_response).
        sign = F.when(F.rand(derived_seed(ctx, "noise/sign")) < F.lit(0.5), -1.0).otherwise(1.0)
        magnitude = F.log(F.lit(1.0) - F.rand(derived_seed(ctx, "noise/magnitude")))
        laplace = F.lit(-p.scale) * sign * magnitude
        noisy = F.least(F.greatest(x + laplace, lower), upper)
        if ctx.data_type in _TYPE_RANGE:
            low, high = _integer_bounds(ctx.data_type, p)
            whole = F.round(noisy, 0).cast(_DEC)
            whole = F.least(F.greatest(whole, _dec(low)), _dec(high))
            noisy = whole.cast(ctx.data_type.spark_sql)
        missing = column.isNull()
        if ctx.data_type is DataType.DOUBLE:
            missing = missing | F.isnan(column)
        return F.when(missing, F.lit(None).cast(ctx.data_type.spark_sql)).otherwise(noisy)
