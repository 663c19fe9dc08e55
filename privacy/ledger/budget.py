"""`PrivacyBudget`: an exact pure-DP, approximate-DP or zCDP amount (a total, a spend or a charge).

Values are `Decimal`s kept exactly: parameters lie in [0, 10**100) with no digit below
10**-200, so every sum or difference of two of them is exact in the 310-digit context used
(which traps rounding anyway: nothing is ever silently rounded), and a result out of range
raises `InvalidBudget`. Floats are taken through `Decimal(str(x))` (0.1 means 0.1).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Self

from privacy.ledger.errors import BudgetKindMismatch, InvalidBudget

__all__ = ["BudgetKind", "Number", "PrivacyBudget"]

Number = Decimal | Fraction | int | float | str
"""What the constructors accept for a privacy parameter; converted exactly to `Decimal`."""

_MIN_EXPONENT = -200  # no digit below 10**-200
_MAX_ADJUSTED = 99  # values below 10**100
PRECISION = 310
"""Context digits: more than the 300 positions of the range, so in-range sums are exact."""

_EXACT = decimal.Context(
    prec=PRECISION,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
        decimal.Underflow,
        decimal.Inexact,
        decimal.Rounded,
        decimal.Clamped,
    ],
)


class BudgetKind(StrEnum):
    """Pure DP (epsilon), approximate DP (epsilon, delta) or zero-concentrated DP (rho)."""

    PURE = "pure"
    APPROXIMATE = "approximate"
    ZCDP = "zcdp"


def to_decimal(value: Number, name: str = "value") -> Decimal:
    """`value` as an exact, finite, non-negative, canonical `Decimal`; else `InvalidBudget`."""
    if isinstance(value, bool) or not isinstance(value, Decimal | Fraction | int | float | str):
        raise InvalidBudget(f"{name} must be a number, not {type(value).__name__}")
    try:
        if isinstance(value, Fraction):
            number = _EXACT.divide(Decimal(value.numerator), Decimal(value.denominator))
        elif isinstance(value, float):
            number = Decimal(str(value))
        elif isinstance(value, str):
            number = Decimal(value.strip())
        else:
            number = Decimal(value)
    except (decimal.DecimalException, ValueError):
        raise InvalidBudget(f"{name} {_shown(value)} is not exactly a decimal number") from None
    if not number.is_finite():
        raise InvalidBudget(f"{name} must be finite, not {_shown(value)}")
    if number < 0:
        raise InvalidBudget(f"{name} must not be negative, got {_shown(value)}")
    return _canonical(number, name, value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:45]}...({len(text)} characters)"


def _canonical(number: Decimal, name: str, shown: object) -> Decimal:
    """`number` (finite, >= 0) without trailing zeros or exponent notation; range-checked."""
    if number.is_zero():
        return Decimal(0)
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    kept = len(digits)
    while digits[kept - 1] == 0:
        kept -= 1
    lowest = exponent + len(digits) - kept
    if lowest < _MIN_EXPONENT or number.adjusted() > _MAX_ADJUSTED:
        raise InvalidBudget(f"{name} {_shown(shown)} is out of range (10**-200 ... 10**100)")
    if lowest > 0:  # 1E+1 -> 10
        return Decimal((0, digits[:kept] + (0,) * lowest, 0))
    return Decimal((0, digits[:kept], lowest))


def _text(value: Decimal) -> str:
    return format(value, "f")


@dataclass(frozen=True, slots=True, repr=False)
class PrivacyBudget:
    """An exact amount of privacy loss of one kind; build it with `pure`, `approximate`, `zcdp`."""

    kind: BudgetKind
    epsilon: Decimal | None = None
    delta: Decimal | None = None
    rho: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, BudgetKind):
            raise InvalidBudget(f"kind must be a BudgetKind, not {self.kind!r}")
        wanted = {
            BudgetKind.PURE: ("epsilon",),
            BudgetKind.APPROXIMATE: ("epsilon", "delta"),
            BudgetKind.ZCDP: ("rho",),
        }[self.kind]
        for name in ("epsilon", "delta", "rho"):
            value = getattr(self, name)
            if name not in wanted:
                if value is not None:
                    raise InvalidBudget(f"a {self.kind.value} budget has no {name}")
                continue
            if value is None:
                raise InvalidBudget(f"a {self.kind.value} budget needs {name}")
            object.__setattr__(self, name, to_decimal(value, name))

    @classmethod
    def pure(cls, epsilon: Number) -> Self:
        """Pure differential privacy: epsilon."""
        return cls(BudgetKind.PURE, epsilon=to_decimal(epsilon, "epsilon"))

    @classmethod
    def approximate(cls, epsilon: Number, delta: Number) -> Self:
        """Approximate differential privacy: (epsilon, delta)."""
        return cls(
            BudgetKind.APPROXIMATE,
            epsilon=to_decimal(epsilon, "epsilon"),
            delta=to_decimal(delta, "delta"),
        )

    @classmethod
    def zcdp(cls, rho: Number) -> Self:
        """Zero-concentrated differential privacy: rho."""
        return cls(BudgetKind.ZCDP, rho=to_decimal(rho, "rho"))

    @classmethod
    def zero(cls, kind: BudgetKind) -> Self:
        """Nothing spent, of `kind`."""
        return cls._of(kind, (Decimal(0),) * _ARITY[kind])

    @classmethod
    def _of(cls, kind: BudgetKind, parts: tuple[Decimal, ...]) -> Self:
        if kind is BudgetKind.PURE:
            return cls(kind, epsilon=parts[0])
        if kind is BudgetKind.APPROXIMATE:
            return cls(kind, epsilon=parts[0], delta=parts[1])
        return cls(kind, rho=parts[0])

    @property
    def parts(self) -> tuple[Decimal, ...]:
        """The parameters in order: (epsilon,), (epsilon, delta) or (rho,)."""
        values = (self.epsilon, self.delta, self.rho)
        return tuple(v for v in values if v is not None)

    @property
    def is_zero(self) -> bool:
        """True when every parameter is zero."""
        return all(v.is_zero() for v in self.parts)

    @property
    def is_positive(self) -> bool:
        """True when every parameter is strictly positive (what a total must be)."""
        return all(not v.is_zero() for v in self.parts)

    def _combine(
        self, other: PrivacyBudget, op: Callable[[Decimal, Decimal], Decimal], what: str
    ) -> Self:
        if self.kind is not other.kind:
            raise BudgetKindMismatch(self.kind, other.kind, what)
        try:
            parts = tuple(op(a, b) for a, b in zip(self.parts, other.parts, strict=True))
        except decimal.DecimalException:
            raise InvalidBudget(
                f"{what} of {self} and {other} is not exact within {PRECISION} digits"
            ) from None
        return self._of(self.kind, parts)

    def __add__(self, other: object) -> Self:
        if not isinstance(other, PrivacyBudget):
            return NotImplemented
        return self._combine(other, _EXACT.add, "sum")

    def __sub__(self, other: object) -> Self:
        """Exact difference; `InvalidBudget` if any parameter would go negative."""
        if not isinstance(other, PrivacyBudget):
            return NotImplemented
        if self.kind is other.kind and not other.fits_within(self):
            raise InvalidBudget(f"{self} - {other} would be negative")
        return self._combine(other, _EXACT.subtract, "difference")

    def excess_over(self, other: PrivacyBudget) -> Self:
        """By how much each parameter exceeds `other` (zero where it does not): max(0, a - b)."""
        return self._combine(other, lambda a, b: max(_EXACT.subtract(a, b), Decimal(0)), "excess")

    def min_with(self, other: PrivacyBudget) -> Self:
        """The parameter-wise minimum of the two budgets."""
        return self._combine(other, min, "minimum")

    def fits_within(self, other: PrivacyBudget) -> bool:
        """True when every parameter is at most `other`'s; mixing kinds raises."""
        if self.kind is not other.kind:
            raise BudgetKindMismatch(other.kind, self.kind, "comparison")
        return all(a <= b for a, b in zip(self.parts, other.parts, strict=True))

    def __repr__(self) -> str:
        args = ", ".join(repr(_text(v)) for v in self.parts)
        return f"PrivacyBudget.{self.kind.value}({args})"

    def __str__(self) -> str:
        if self.kind is BudgetKind.ZCDP:
            return f"ρ={_text(self.parts[0])}"
        names = ("ε", "δ")
        return ", ".join(f"{n}={_text(v)}" for n, v in zip(names, self.parts, strict=False))


_ARITY = {BudgetKind.PURE: 1, BudgetKind.APPROXIMATE: 2, BudgetKind.ZCDP: 1}
