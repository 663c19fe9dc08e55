"""Structured DP queries (never SQL) and the immutable plans they compile to."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DpPlan", "DpQuery", "StatisticPlan"]

QueryKind = Literal["count", "sum", "mean", "variance", "histogram", "quantiles"]
Name = str


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DpQuery(_Frozen):
    """One structured query: a statistic of a column, optionally per group."""

    kind: QueryKind
    column: Name | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    group_by: tuple[Name, ...] = Field(default=(), max_length=3)
    alphas: tuple[float, ...] = Field(default=(0.5,), min_length=1, max_length=9)
    candidates: int = Field(default=64, ge=2, le=1024)
    source: Literal["auto", "governed", "dp_zone"] = "auto"

    @model_validator(mode="after")
    def _needs_column(self) -> DpQuery:
        if self.kind != "count" and self.column is None:
            raise ValueError(f"a {self.kind} query needs 'column'")
        if any(not 0 < a < 1 for a in self.alphas):
            raise ValueError("quantile alphas lie strictly between 0 and 1")
        return self


class StatisticPlan(_Frozen):
    """One noisy vector of the release: what Spark aggregates and how OpenDP perturbs it."""

    name: Literal["count", "sum", "sum_sq", "keys", "quantile"]
    column: str | None
    share: Decimal  # the epsilon (or rho) this measurement spends
    mechanism: Literal["laplace", "gaussian", "laplace_threshold", "noisy_max"]
    sensitivity: float  # d_in: L1 (laplace), L2 (gaussian), Linf (noisy_max), m (threshold)
    scale: float  # noise scale in units (sums: grid units; see resolution)
    resolution: float = 1.0  # value of one unit (sums are exact integer sums on this grid)
    bound_units: int = 0  # |clamped value| in units
    lower: float | None = None
    upper: float | None = None
    alpha: float | None = None
    candidates: tuple[float, ...] = ()
    threshold: int | None = None
    delta: Decimal | None = None


class DpPlan(_Frozen):
    """Everything a release will do, decided before any budget is spent or data read."""

    dataset: str
    purpose: str
    query: DpQuery
    source: Literal["governed", "dp_zone"]
    table: str
    entity: str
    max_rows: int
    row_filters: tuple[str, ...]
    measure: Literal["pure", "approximate", "zcdp"]
    epsilon: Decimal | None
    delta: Decimal | None
    rho: Decimal | None
    group_columns: tuple[str, ...]
    public_groups: tuple[tuple[str, ...], ...] | None  # None: keys chosen by DP threshold
    statistics: tuple[StatisticPlan, ...]
