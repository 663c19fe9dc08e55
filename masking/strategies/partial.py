"""Strategies that keep part of a text and overwrite the rest: `partial`, `char_class`,
`email`, `phone`, `card_number` and `truncate`, all on Spark string built-ins.

Lengths count Unicode code points (Spark's `length`), as Python's `len` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from masking.base import MaskContext, Params, Strategy
from masking.base import Params as AnyParams
from masking.strategies._common import MaskChar, StrictCount, expect, java_replacement_literal
from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "CardNumberParams",
    "CardNumberStrategy",
    "CharClassParams",
    "CharClassStrategy",
    "EmailParams",
    "EmailStrategy",
    "PartialParams",
    "PartialStrategy",
    "PhoneParams",
    "PhoneStrategy",
    "TruncateParams",
    "TruncateStrategy",
]

_STRING = frozenset({DataType.STRING})


def _not_digit(value: str) -> str:
    if value.isdigit():
        raise ValueError("the mask character must not be a digit")
    return value


DigitFreeMaskChar = Annotated[MaskChar, AfterValidator(_not_digit)]


class PartialParams(Params):
    """`show_first` / `show_last` characters stay; the others become `mask_char`."""

    show_first: StrictCount = 0
    show_last: StrictCount = 0
    mask_char: MaskChar = "*"


class PartialStrategy(Strategy):
    """Ranger-style show-first/show-last masking that keeps the length.

    Unlike Ranger, a value no longer than ``show_first + show_last`` is masked entirely, so
    short values are never shown in full.
    """

    name = "partial"
    Params = PartialParams
    accepts = _STRING
    description = "Show the first and/or last N characters, mask the rest (length kept)."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, PartialParams)
        length = F.length(column)
        shown = p.show_first + p.show_last
        parts = []
        if p.show_first:
            parts.append(F.substring(column, 1, p.show_first))
        parts.append(F.repeat(F.lit(p.mask_char), length - F.lit(shown)))
        if p.show_last:
            parts.append(F.substring(column, -p.show_last, p.show_last))
        everything = F.repeat(F.lit(p.mask_char), length)
        if not shown:
            return everything
        return F.when(length <= F.lit(shown), everything).otherwise(F.concat(*parts))


class CharClassParams(Params):
    """Replacement per class (`upper`, `lower`, `digit`, `other`); None keeps that class."""

    upper: MaskChar | None = "X"
    lower: MaskChar | None = "x"
    digit: MaskChar | None = "n"
    other: MaskChar | None = None

    @model_validator(mode="after")
    def _masks_something(self) -> CharClassParams:
        if self.upper is None and self.lower is None and self.digit is None and self.other is None:
            raise ValueError("char_class with every class kept would mask nothing")
        return self


class CharClassStrategy(Strategy):
    """Upper-case to X, lower-case to x, digits to n, others kept: Spark's `mask()`.

    Classes follow Java's Character rules, so 'ë' is lower-case and '東' is 'other'.
    """

    name = "char_class"
    Params = CharClassParams
    accepts = _STRING
    description = "Replace letters and digits by class (X, x, n) and keep the shape."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, CharClassParams)

        def char(value: str | None) -> Column:
            return F.lit(value).cast("string")

        return F.mask(column, char(p.upper), char(p.lower), char(p.digit), char(p.other))


class EmailParams(Params):
    """`keep`: 'domain', 'local' or 'none'; `mask` replaces the part not kept."""

    keep: Literal["domain", "local", "none"] = "domain"
    mask: str = Field("***", min_length=1, max_length=16)


# One '@', non-empty local part and domain, no whitespace; \z so a trailing newline fails.
_EMAIL = r"\A[^@\s]+@[^@\s]+\z"


class EmailStrategy(Strategy):
    """``alice@example.com`` -> ``***@example.com`` (keep='domain'); not-an-email -> null."""

    name = "email"
    Params = EmailParams
    accepts = _STRING
    description = "Mask the local part and/or domain of an e-mail address; invalid ones -> null."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, EmailParams)
        local = F.substring_index(column, "@", 1)
        domain = F.substring_index(column, "@", -1)
        if p.keep == "domain":
            masked = F.concat(F.lit(p.mask + "@"), domain)
        elif p.keep == "local":
            masked = F.concat(local, F.lit("@" + p.mask))
        else:
            masked = F.lit(p.mask + "@" + p.mask)
        return F.when(column.rlike(_EMAIL), masked)


def _mask_digits_except_last(column: Column, keep: int, mask_char: str) -> Column:
    """Every ASCII digit but the last `keep` replaced by `mask_char` (other characters kept)."""
    from pyspark.sql import functions as F

    replacement = java_replacement_literal(mask_char)
    if keep == 0:
        return F.regexp_replace(column, "[0-9]", replacement)
    # a digit followed (anywhere later) by at least `keep` more digits
    return F.regexp_replace(column, f"[0-9](?=(?:[^0-9]*[0-9]){{{keep}}})", replacement)


def _digit_count(column: Column) -> Column:
    from pyspark.sql import functions as F

    return F.length(F.regexp_replace(column, "[^0-9]", ""))


class PhoneParams(Params):
    """`keep_last` digits stay (0-6); other digits become `mask_char`."""

    keep_last: int = Field(2, strict=True, ge=0, le=6)
    mask_char: DigitFreeMaskChar = "x"


# Digits, spaces and the usual punctuation only; anything with letters is not a phone number.
_PHONE = r"\A[0-9+()\-./#*\s]*\z"


class PhoneStrategy(Strategy):
    """``+49 30 1234567`` -> ``+xx xx xxxxx67``; formatting kept, letters make the value null.

    When a value has no more digits than `keep_last`, all of its digits are masked.
    """

    name = "phone"
    Params = PhoneParams
    accepts = _STRING
    description = "Mask phone digits except the last N, keeping the formatting."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, PhoneParams)
        masked = F.when(
            _digit_count(column) <= F.lit(p.keep_last),
            _mask_digits_except_last(column, 0, p.mask_char),
        ).otherwise(_mask_digits_except_last(column, p.keep_last, p.mask_char))
        return F.when(column.rlike(_PHONE), masked)


class CardNumberParams(Params):
    """`keep_last` digits stay (0-4); other digits become `mask_char`."""

    keep_last: int = Field(4, strict=True, ge=0, le=4)
    mask_char: DigitFreeMaskChar = "*"


_CARD = r"\A[0-9 \-.]*\z"


class CardNumberStrategy(Strategy):
    """``4111-1111-1111-1111`` -> ``****-****-****-1111``; separators kept.

    A value that is not 12-19 digits with optional spaces, dashes or dots becomes null.
    """

    name = "card_number"
    Params = CardNumberParams
    accepts = _STRING
    description = "Mask a payment card number except its last digits; non-card values -> null."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, CardNumberParams)
        digits = _digit_count(column)
        valid = column.rlike(_CARD) & (digits >= F.lit(12)) & (digits <= F.lit(19))
        return F.when(valid, _mask_digits_except_last(column, p.keep_last, p.mask_char))


class TruncateParams(Params):
    """`keep` leading characters (>= 1); optional one-character `pad` restores the length."""

    keep: int = Field(strict=True, ge=1)
    pad: MaskChar | None = None


class TruncateStrategy(Strategy):
    """``10115`` keep 3 -> ``101``, or ``101**`` with pad '*'."""

    name = "truncate"
    Params = TruncateParams
    accepts = _STRING
    description = "Keep the first N characters, optionally padding back to the length."

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, TruncateParams)
        head = F.substring(column, 1, p.keep)
        if p.pad is None:
            return head
        rest = F.greatest(F.length(column) - F.lit(p.keep), F.lit(0))
        return F.concat(head, F.repeat(F.lit(p.pad), rest))
