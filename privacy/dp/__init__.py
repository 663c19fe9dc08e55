"""Differentially private releases over Spark tables, with OpenDP as the only noise source.

`compile_plan` turns a structured `DpQuery` into an immutable `DpPlan` (sensitivities from
the privacy unit, budget split, scales calibrated on OpenDP's privacy maps); `aggregate`
bounds contributions and aggregates in Spark; `release` checks each map equals its share
and then draws OpenDP noise. Never imports `gateway`; Spark and OpenDP load lazily.
"""

from privacy.dp.compile import MAX_GROUPS, ColumnDp, compile_plan, split
from privacy.dp.errors import DpError, InvalidQuery, PrivacyMapMismatch
from privacy.dp.execute import (
    Aggregates,
    DpRelease,
    StatisticRelease,
    aggregate,
    bound_contributions,
    release,
)
from privacy.dp.mechanisms import MAP_TOLERANCE, accuracy95, build, calibrate, checked, privacy_map
from privacy.dp.query import DpPlan, DpQuery, StatisticPlan

__all__ = [
    "MAP_TOLERANCE",
    "MAX_GROUPS",
    "Aggregates",
    "ColumnDp",
    "DpError",
    "DpPlan",
    "DpQuery",
    "DpRelease",
    "InvalidQuery",
    "PrivacyMapMismatch",
    "StatisticPlan",
    "StatisticRelease",
    "accuracy95",
    "aggregate",
    "bound_contributions",
    "build",
    "calibrate",
    "checked",
    "compile_plan",
    "privacy_map",
    "release",
    "split",
]
