"""Frozen configuration of one synthetic release: columns, synthesizer, seed and thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ColumnKind", "Inequality", "SynthColumn", "SynthConfig", "SynthesizerName"]

SynthesizerName = Literal["gaussian_copula", "ctgan", "tvae", "copulagan"]
ColumnKind = Literal["id", "pii", "categorical", "boolean", "numerical", "datetime"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SynthColumn(_Frozen):
    """One column of the release: how SDV models it and which bounds it must respect.

    `pii` columns (direct identifiers) are never learned: their real values are blanked
    before fitting and SDV generates them with Faker (`pii_sdtype`, e.g. 'email').
    """

    name: str = Field(min_length=1)
    kind: ColumnKind
    pii_sdtype: str | None = None
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str | int | float | bool, ...] | None = None


class Inequality(_Frozen):
    """`low` <= `high` on every generated row (SDV's Inequality constraint)."""

    low: str
    high: str


class SynthConfig(_Frozen):
    """Everything a release needs that is not data; thresholds come from the policy."""

    table: str = Field(min_length=1)
    columns: tuple[SynthColumn, ...] = Field(min_length=1)
    synthesizer: SynthesizerName = "gaussian_copula"
    seed: int = Field(default=0, ge=0, lt=2**32)
    sample_rows: int = Field(default=100_000, ge=100)
    holdout_rows: int = Field(default=2_000, ge=50)
    batch_rows: int = Field(default=50_000, ge=1)
    eval_rows: int = Field(default=5_000, ge=50)
    epochs: int | None = Field(default=None, ge=1)
    inequalities: tuple[Inequality, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    sensitive: str | None = None
    min_quality: float = Field(default=0.8, ge=0, le=1)
    min_dcr_ratio: float = Field(default=0.9, ge=0)
    max_exact_copy_share: float = Field(default=0.0, ge=0, le=1)
    min_disclosure_protection: float = Field(default=0.5, ge=0, le=1)
    sdmetrics_max_rows: int = Field(default=20_000, ge=100)

    @model_validator(mode="after")
    def _known_columns(self) -> SynthConfig:
        names = {c.name for c in self.columns}
        if len(names) != len(self.columns):
            raise ValueError("column names must be unique")
        referenced = [
            *self.quasi_identifiers,
            *(i for q in self.inequalities for i in (q.low, q.high)),
        ]
        if self.sensitive is not None:
            referenced.append(self.sensitive)
        unknown = sorted(set(referenced) - names)
        if unknown:
            raise ValueError(f"unknown columns referenced: {', '.join(unknown)}")
        if sum(c.kind == "id" for c in self.columns) > 1:
            raise ValueError("at most one column is the key (kind 'id')")
        return self

    @property
    def learned(self) -> tuple[SynthColumn, ...]:
        """Columns whose real values the synthesizer learns (not keys, not direct identifiers)."""
        return tuple(c for c in self.columns if c.kind not in ("id", "pii"))

    @property
    def key(self) -> str | None:
        """The key column, generated as fresh unique ids."""
        return next((c.name for c in self.columns if c.kind == "id"), None)

    def column(self, name: str) -> SynthColumn:
        """The column called `name`."""
        return next(c for c in self.columns if c.name == name)
