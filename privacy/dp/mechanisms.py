"""OpenDP measurements: calibration, the map check before noise, accuracy. The only noise source.

Every measurement is built with OpenDP constructors (`make_laplace`, `make_gaussian`,
`make_laplace_threshold`, `make_noisy_max`). Before any noise is drawn, `checked` builds the
measurement and verifies `meas.map(d_in)`: it must not exceed the share charged and must
be within a relative 1e-9 of it (OpenDP rounds its maps upward in float arithmetic, so the
calibrated scale is nudged up one ulp at a time until the map is at most the share).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from privacy.dp.errors import PrivacyMapMismatch

__all__ = ["MAP_TOLERANCE", "accuracy95", "build", "calibrate", "checked", "privacy_map"]

MAP_TOLERANCE = 1e-9
"""How far below the charged share a measurement's map may be (relative)."""


def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def build(mechanism: str, scale: float, *, zcdp: bool, threshold: int | None = None) -> Any:
    """The OpenDP measurement of `mechanism` at `scale` (integer vectors; float scores)."""
    dp = _dp()
    ints = dp.vector_domain(dp.atom_domain(T="i64"))
    if mechanism == "laplace":
        return dp.m.make_laplace(ints, dp.l1_distance(T="i64"), scale=scale)
    if mechanism == "gaussian":
        return dp.m.make_gaussian(ints, dp.l2_distance(T="i64"), scale=scale)
    if mechanism == "noisy_max":
        floats = dp.vector_domain(dp.atom_domain(T="f64", nan=False))
        measure = dp.zero_concentrated_divergence() if zcdp else dp.max_divergence()
        return dp.m.make_noisy_max(floats, dp.linf_distance(T="f64"), measure, scale=scale)
    if mechanism == "laplace_threshold":
        domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
        metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
        return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)
    raise ValueError(f"unknown mechanism {mechanism!r}")


def _d_in(mechanism: str, sensitivity: float) -> Any:
    if mechanism == "noisy_max":
        return float(sensitivity)
    if mechanism == "laplace_threshold":
        m = int(sensitivity)
        return (m, m, m)
    return int(sensitivity)


def privacy_map(
    mechanism: str, scale: float, sensitivity: float, *, zcdp: bool, threshold: int | None = None
) -> tuple[float, float]:
    """(epsilon or rho, delta) that OpenDP's privacy map gives for `sensitivity`."""
    meas = build(mechanism, scale, zcdp=zcdp, threshold=threshold)
    out = meas.map(_d_in(mechanism, sensitivity))
    if isinstance(out, tuple):
        return float(out[0]), float(out[1])
    return float(out), 0.0


def calibrate(mechanism: str, sensitivity: float, share: Decimal, *, zcdp: bool) -> float:
    """The smallest float scale whose OpenDP map is at most `share` (map ∝ 1/scale or 1/scale²)."""
    target = float(share)
    if target <= 0:
        raise ValueError("a measurement needs a positive share of the budget")
    t0 = max(int(sensitivity), 1) * 1000  # the threshold does not enter the epsilon part
    at_one, _ = privacy_map(mechanism, 1.0, sensitivity, zcdp=zcdp, threshold=t0)
    quadratic = zcdp and mechanism in ("gaussian", "noisy_max")
    scale = math.sqrt(at_one / target) if quadratic else at_one / target
    for _ in range(10_000):
        got, _ = privacy_map(mechanism, scale, sensitivity, zcdp=zcdp, threshold=t0)
        if got <= target:
            return scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-15)
    raise PrivacyMapMismatch(f"could not calibrate {mechanism} to {share}")  # pragma: no cover


def checked(
    mechanism: str,
    scale: float,
    sensitivity: float,
    share: Decimal,
    *,
    zcdp: bool,
    threshold: int | None = None,
    delta: Decimal | None = None,
) -> Any:
    """The measurement, after verifying that its map equals `share` (within MAP_TOLERANCE)."""
    meas = build(mechanism, scale, zcdp=zcdp, threshold=threshold)
    out = meas.map(_d_in(mechanism, sensitivity))
    main, spent_delta = (float(out[0]), float(out[1])) if isinstance(out, tuple) else (out, 0.0)
    target = float(share)
    if not (target * (1 - MAP_TOLERANCE) <= main <= target):
        raise PrivacyMapMismatch(
            f"{mechanism}: OpenDP's privacy map is {main!r}, the charge is {share}"
        )
    if delta is not None and spent_delta > float(delta):
        raise PrivacyMapMismatch(f"{mechanism}: delta {spent_delta!r} exceeds {delta}")
    return meas


def accuracy95(mechanism: str, scale: float) -> float | None:
    """The 95% accuracy (|noise| ≤ a with probability 0.95) of one noisy value, from OpenDP."""
    from opendp.accuracy import gaussian_scale_to_accuracy, laplacian_scale_to_accuracy

    if mechanism in ("laplace", "laplace_threshold"):
        return float(laplacian_scale_to_accuracy(float(scale), 0.05))
    if mechanism == "gaussian":
        return float(gaussian_scale_to_accuracy(float(scale), 0.05))
    return None
