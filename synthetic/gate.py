"""The release gate's result: named checks with measured values and thresholds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GateCheck", "GateReport", "ReleaseRefused"]


@dataclass(frozen=True)
class GateCheck:
    """One check: `passed` when `value` is on the right side of `threshold`."""

    name: str
    passed: bool
    value: float
    threshold: float
    higher_is_better: bool = True
    detail: str = ""

    @property
    def shortfall(self) -> float:
        """How far the value is from the threshold on the wrong side (0 when passed)."""
        if self.passed:
            return 0.0
        gap = self.threshold - self.value if self.higher_is_better else self.value - self.threshold
        return max(gap, 0.0)

    def describe(self) -> str:
        """'name: value vs threshold (short by x)' for messages."""
        op = ">=" if self.higher_is_better else "<="
        text = f"{self.name} = {self.value:.4f} (needs {op} {self.threshold:.4f})"
        if not self.passed:
            text += f", short by {self.shortfall:.4f}"
        return text + (f"; {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class GateReport:
    """Every check of one release, plus the figures behind them."""

    checks: tuple[GateCheck, ...]
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[GateCheck, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if not c.passed)

    def scores(self) -> dict[str, float]:
        """Check name -> measured value (rounded; -1 when undefined), for audit records."""
        return {
            c.name: round(float(c.value), 6) if math.isfinite(c.value) else -1.0
            for c in self.checks
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "passed": self.passed,
            "checks": [
                {
                    "name": c.name,
                    "passed": c.passed,
                    "value": c.value if math.isfinite(c.value) else None,
                    "threshold": c.threshold,
                    "higher_is_better": c.higher_is_better,
                    "shortfall": c.shortfall,
                    "detail": c.detail,
                }
                for c in self.checks
            ],
            "figures": {k: v if math.isfinite(v) else None for k, v in self.figures.items()},
        }


class ReleaseRefused(Exception):
    """The gate refused the release; nothing was published. `report` says why."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        reasons = "; ".join(c.describe() for c in report.failed)
        super().__init__(f"synthetic release refused by the gate: {reasons}")
