"""Synthetic data releases: SDV synthesizers behind a quality and privacy release gate.

Importing this package is cheap: pandas, SDV, SDMetrics, scikit-learn and torch load
inside the functions that need them. `synthetic` never imports `gateway`; callers build a
`SynthConfig` (see `gateway.synth` for the policy-driven one).
"""

from __future__ import annotations

from synthetic.config import ColumnKind, Inequality, SynthColumn, SynthConfig, SynthesizerName
from synthetic.gate import GateCheck, GateReport, ReleaseRefused

__all__ = [
    "ColumnKind",
    "GateCheck",
    "GateReport",
    "Inequality",
    "ReleaseRefused",
    "SynthColumn",
    "SynthConfig",
    "SynthesizerName",
]
