"""A dataset policy: source, schema, privacy unit, per-purpose protections, rules and releases."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from gateway.policy.organisation import Frozen, Identifier, purpose_covers
from gateway.policy.protection import Protection, ProtectionKind, parse_protection
from masking.types import DataType

__all__ = [
    "Budget",
    "CellRule",
    "ColumnOverride",
    "ColumnSpec",
    "DatasetPolicy",
    "DpColumn",
    "FeatureSet",
    "HeSettings",
    "PrivacyUnit",
    "QuasiIdentifiers",
    "Source",
    "SyntheticRules",
]

ColumnName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Duration = Annotated[str, Field(pattern=r"^\d+[smhdw]$")]


def _coerce_protection(value: Any) -> Any:
    return value if isinstance(value, Protection) else parse_protection(value)


ProtectionField = Annotated[
    Protection,
    BeforeValidator(_coerce_protection),
    WithJsonSchema({"x-protection": True}),
]
Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


class Source(Frozen):
    """Where raw data lands and how to read it."""

    format: Literal["csv", "jsonl", "parquet", "delta"]
    path: str = Field(min_length=1)
    options: dict[str, str | bool | int] = Field(default_factory=dict)


class PrivacyUnit(Frozen):
    """Who differential privacy protects: an entity and the most rows one entity contributes."""

    entity: str
    max_rows: int = Field(ge=1, le=1_000_000)


class QuasiIdentifiers(Frozen):
    """Columns that identify in combination, the k they need, and l for a sensitive column."""

    columns: tuple[str, ...] = Field(min_length=1)
    k: int = Field(ge=2, le=10_000)
    sensitive: str | None = None
    l: int | None = Field(default=None, ge=2)  # noqa: E741 - the standard name of l-diversity

    @model_validator(mode="after")
    def _l_needs_sensitive(self) -> QuasiIdentifiers:
        if self.l is not None and self.sensitive is None:
            raise ValueError("'l' (l-diversity) needs a 'sensitive' column")
        return self


class DpColumn(Frozen):
    """What the DP engine needs of a column: clamping bounds, or public categories."""

    bounds: tuple[float, float] | None = None
    public_categories: tuple[str, ...] | None = None

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None:
            low, high = value
            if not all(map(_finite, value)) or low >= high:
                raise ValueError("bounds are two finite numbers [lower, upper] with lower < upper")
        return value


class ColumnOverride(Frozen):
    """A purpose-specific protection that replaces the column's default for that purpose."""

    protect: ProtectionField


class ColumnSpec(Frozen):
    """One column: declared type and constraints, classification, and protection."""

    type: DataType
    classification: str
    description: str | None = None
    nullable: bool = True
    allowed: tuple[str | int | float | bool, ...] | None = Field(default=None, min_length=1)
    pattern: str | None = None
    min: float | str | None = None
    max: float | str | None = None
    identifier: Literal["direct", "quasi", "sensitive"] | None = None
    protect: Annotated[
        Protection | None,
        BeforeValidator(_coerce_protection),
        WithJsonSchema({"x-protection": True}),
    ] = None
    purposes: dict[str, ColumnOverride] = Field(default_factory=dict)
    dp: DpColumn | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return value


class CellRule(Frozen):
    """Protect individual cells where a row condition holds (consent, jurisdiction, minors)."""

    name: str | None = Field(default=None, max_length=100)
    when: str = Field(min_length=1)
    columns: tuple[str, ...] = Field(min_length=1)
    protect: ProtectionField
    purposes: tuple[str, ...] = ("*",)

    @field_validator("protect")
    @classmethod
    def _masks(cls, value: Protection) -> Protection:
        if value.kind is not ProtectionKind.MASK:
            raise ValueError(
                f"a cell rule masks cells; '{value}' is a column-level protection "
                "(use e.g. 'nullify' or a generalisation)"
            )
        return value


class FeatureSet(Frozen):
    """Columns of the governed table approved as features for some purposes."""

    columns: tuple[str, ...] = Field(min_length=1)
    approved_for: tuple[str, ...] = Field(min_length=1)
    ttl: Duration = "30d"
    owner: str | None = None
    description: str | None = None


class Budget(Frozen):
    """A privacy budget: pure (epsilon), approximate (epsilon, delta) or zCDP (rho); exact."""

    epsilon: Positive | None = None
    delta: Annotated[Decimal, Field(gt=0, lt=1, allow_inf_nan=False)] | None = None
    rho: Positive | None = None
    per_principal: Positive | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Budget:
        if self.rho is not None and (self.epsilon is not None or self.delta is not None):
            raise ValueError("a budget is either zCDP (rho) or epsilon[/delta], not both")
        if self.rho is None and self.epsilon is None:
            raise ValueError("a budget needs 'epsilon' (with optional 'delta') or 'rho'")
        total = self.rho if self.rho is not None else self.epsilon
        if self.per_principal is not None and total is not None and self.per_principal > total:
            raise ValueError("per_principal cannot exceed the total budget")
        return self

    @property
    def kind(self) -> str:
        """'pure', 'approximate' or 'zcdp'."""
        if self.rho is not None:
            return "zcdp"
        return "approximate" if self.delta is not None else "pure"


class SyntheticRules(Frozen):
    """Who may receive synthetic data and what quality and privacy a release must show."""

    allowed_for: tuple[str, ...] = Field(min_length=1)
    min_quality: float = Field(default=0.8, ge=0, le=1)
    synthesizer: Literal["gaussian_copula", "ctgan", "tvae", "copulagan"] = "gaussian_copula"
    sample_rows: int = Field(default=100_000, ge=100, le=10_000_000)
    identifiers: Literal["generate", "drop"] = "generate"
    max_rows: int = Field(default=1_000_000, ge=1)


_SECURE_COEFF_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}


class HeSettings(Frozen):
    """Homomorphic-encryption parameters; the defaults give 128-bit security."""

    scheme: Literal["ckks", "bfv"] = "ckks"
    poly_modulus_degree: Literal[4096, 8192, 16384, 32768] = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 40, 60)
    global_scale_bits: int = Field(default=40, ge=20, le=60)
    min_rows: int = Field(default=10, ge=1)
    max_ciphertext_bytes: int = Field(default=2_000_000_000, ge=1)

    @model_validator(mode="after")
    def _secure(self) -> HeSettings:
        limit = _SECURE_COEFF_BITS[self.poly_modulus_degree]
        total = sum(self.coeff_mod_bit_sizes)
        if total > limit:
            raise ValueError(
                f"coefficient modulus of {total} bits is above the {limit} bits that "
                f"give 128-bit security at poly_modulus_degree {self.poly_modulus_degree}"
            )
        return self


class DatasetPolicy(Frozen):
    """One dataset file, as validated at load."""

    dataset: Identifier
    description: str | None = None
    owner: str | None = None
    source: Source
    entity: str
    primary_key: tuple[str, ...] | None = Field(default=None, min_length=1)
    event_time: str | None = None
    privacy_unit: PrivacyUnit | None = None
    quasi_identifiers: QuasiIdentifiers | None = None
    columns: dict[ColumnName, ColumnSpec] = Field(min_length=1)
    purposes: tuple[str, ...] = Field(min_length=1)
    row_filters: dict[str, str] = Field(default_factory=dict)
    cell_rules: tuple[CellRule, ...] = ()
    budgets: dict[str, Budget] = Field(default_factory=dict)
    features: dict[Identifier, FeatureSet] = Field(default_factory=dict)
    synthetic: SyntheticRules | None = None
    he: HeSettings = HeSettings()

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The columns that identify a row (merge key): `primary_key`, else the entity key."""
        return self.primary_key if self.primary_key is not None else (self.entity,)

    def allows(self, purpose: str) -> bool:
        """True when a purpose of this dataset covers `purpose`."""
        return any(purpose_covers(granted, purpose) for granted in self.purposes)

    def protection(self, column: str, purpose: str, lowest_clearance: str) -> Protection | None:
        """The protection of `column` for `purpose`: the most specific override, else the default.

        A column with no protection decided is kept only when its classification is the
        lowest clearance level; otherwise None (undecided: the caller must fail closed).
        """
        spec = self.columns[column]
        best: tuple[int, Protection] | None = None
        for granted, override in spec.purposes.items():
            if purpose_covers(granted, purpose):
                depth = granted.count(".") + 1
                if best is None or depth > best[0]:
                    best = (depth, override.protect)
        if best is not None:
            return best[1]
        if spec.protect is not None:
            return spec.protect
        if spec.classification == lowest_clearance:
            return Protection(kind=ProtectionKind.KEEP)
        return None

    def row_filter_texts(self, purpose: str) -> list[str]:
        """Row filters that apply to `purpose` (its own and its ancestors'), all to be ANDed."""
        return [
            text
            for granted, text in sorted(self.row_filters.items())
            if purpose_covers(granted, purpose)
        ]

    def cell_rules_for(self, purpose: str) -> list[CellRule]:
        """Cell rules that apply to `purpose`, in file order."""
        return [
            rule
            for rule in self.cell_rules
            if any(purpose_covers(granted, purpose) for granted in rule.purposes)
        ]

    def budget_for(self, purpose: str) -> Budget | None:
        """The budget of the most specific purpose that covers `purpose`."""
        matches = [(g.count("."), b) for g, b in self.budgets.items() if purpose_covers(g, purpose)]
        return max(matches, key=lambda m: m[0])[1] if matches else None


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))
