"""Fit a synthesizer, gate its output, and stream an accepted release in batches.

`release(train, holdout, config, rows, sink)` is the whole job: fit on `train` (already a
bounded, seeded sample), sample a first evaluation batch, run the gate (quality, diagnostic,
policy bounds, exact copies, DCR against `holdout`, disclosure protection) and only then hand
batches to `sink`. A refused release raises ReleaseRefused before `sink` is ever called.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from synthetic.config import SynthColumn, SynthConfig
from synthetic.gate import GateCheck, GateReport, ReleaseRefused

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

__all__ = [
    "Fitted",
    "Progress",
    "Release",
    "Synthesizer",
    "SynthesizerFactory",
    "build_metadata",
    "evaluate",
    "fit",
    "metadata_dict",
    "prepare",
    "release",
    "sample_batches",
    "split_holdout",
]

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stages 'fit', 'sample', 'evaluate', 'write'."""


class Synthesizer(Protocol):
    """What the engine needs of a synthesizer (SDV's single-table API)."""

    def fit(self, data: dict[str, pd.DataFrame]) -> None:
        """Learn from {table: frame}."""

    def sample(self, num_rows: int) -> dict[str, pd.DataFrame]:
        """Generate {table: frame} with `num_rows` rows."""


SynthesizerFactory = Callable[[Any, SynthConfig], Synthesizer]
"""factory(sdv_metadata, config) -> an unfitted synthesizer (tests pass fakes)."""


def _sdv_column(col: SynthColumn) -> dict[str, Any]:
    if col.kind == "id":
        return {"sdtype": "id"}
    if col.kind == "pii":
        return (
            {"sdtype": col.pii_sdtype or "id", "pii": True} if col.pii_sdtype else {"sdtype": "id"}
        )
    return {"sdtype": col.kind}


def metadata_dict(config: SynthConfig, *, learned_only: bool = False) -> dict[str, Any]:
    """SDV/SDMetrics single-table metadata of the release (optionally learned columns only)."""
    columns = config.learned if learned_only else config.columns
    table: dict[str, Any] = {"columns": {c.name: _sdv_column(c) for c in columns}}
    if config.key is not None and not learned_only:
        table["primary_key"] = config.key
    return table


def build_metadata(config: SynthConfig) -> Any:
    """An SDV `Metadata` for the release (sdtypes from the config, the key as an id)."""
    from sdv.metadata import Metadata

    meta = Metadata.load_from_dict(
        {"tables": {config.table: metadata_dict(config)}, "METADATA_SPEC_VERSION": "V1"}
    )
    meta.validate()
    return meta


def prepare(frame: pd.DataFrame, config: SynthConfig) -> pd.DataFrame:
    """The release's columns with SDV-friendly dtypes; direct identifiers and keys blanked.

    Real values of `pii` and `id` columns never reach the synthesizer: they are replaced
    by placeholders (SDV generates these columns afresh, it never learns them)."""
    import pandas as pd

    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in config.columns:
        source = frame[col.name].reset_index(drop=True) if col.name in frame else None
        if col.kind == "id":
            out[col.name] = [f"row-{i}" for i in range(len(frame))]
        elif col.kind == "pii":
            out[col.name] = pd.Series(["redacted"] * len(frame), dtype="object")
        elif source is None:
            raise KeyError(f"column {col.name!r} is missing from the training data")
        elif col.kind == "numerical":
            out[col.name] = pd.to_numeric(source, errors="coerce").astype("float64")
        elif col.kind == "datetime":
            out[col.name] = pd.to_datetime(source, errors="coerce", utc=True).dt.tz_localize(None)
        elif col.kind == "boolean":
            out[col.name] = source.astype("boolean").astype("object")
        else:
            out[col.name] = source.astype("object").where(source.notna(), None)
    return out


def split_holdout(frame: pd.DataFrame, config: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded (train, holdout) split: holdout is min(holdout_rows, 20%) of the rows."""
    import numpy as np

    size = min(config.holdout_rows, max(len(frame) // 5, 1))
    order = np.random.default_rng(config.seed).permutation(len(frame))
    holdout = frame.iloc[order[:size]].reset_index(drop=True)
    train = frame.iloc[order[size : size + config.sample_rows]].reset_index(drop=True)
    return train, holdout


def _sdv_synthesizer(metadata: Any, config: SynthConfig) -> Synthesizer:
    from sdv import single_table

    neural: dict[str, Any] = {"enable_gpu": False}
    if config.epochs is not None:
        neural["epochs"] = config.epochs
    synth: Synthesizer
    if config.synthesizer == "gaussian_copula":
        synth = single_table.GaussianCopulaSynthesizer(metadata)
    elif config.synthesizer == "ctgan":
        synth = single_table.CTGANSynthesizer(metadata, **neural)
    elif config.synthesizer == "tvae":
        synth = single_table.TVAESynthesizer(metadata, **neural)
    else:
        synth = single_table.CopulaGANSynthesizer(metadata, **neural)
    if config.inequalities:
        from sdv.cag import Inequality

        synth.add_constraints(  # type: ignore[attr-defined]
            [
                Inequality(low_column_name=q.low, high_column_name=q.high)
                for q in config.inequalities
            ]
        )
    return synth


def _seed_everything(seed: int, synthesizer: str) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if synthesizer != "gaussian_copula":
        import torch

        torch.manual_seed(seed)


@dataclass
class Fitted:
    """A fitted synthesizer with the config and metadata it was fitted with."""

    synthesizer: Synthesizer
    config: SynthConfig
    metadata: Any
    fit_seconds: float
    training_rows: int


def fit(
    train: pd.DataFrame,
    config: SynthConfig,
    *,
    factory: SynthesizerFactory | None = None,
    progress: Progress | None = None,
) -> Fitted:
    """Fit the configured synthesizer on `train` (prepared here) with the config's seed."""
    metadata = build_metadata(config)
    data = prepare(train, config)
    if progress:
        progress("fit", 0, 1)
    _seed_everything(config.seed, config.synthesizer)
    synth = (factory or _sdv_synthesizer)(metadata, config)
    start = time.perf_counter()
    synth.fit({config.table: data})
    seconds = time.perf_counter() - start
    set_state = getattr(synth, "_set_random_state", None)
    if callable(set_state):  # SDV otherwise samples with one fixed seed for every release
        set_state(config.seed)
    if progress:
        progress("fit", 1, 1)
    return Fitted(synth, config, metadata, seconds, len(data))


def sample_batches(
    fitted: Fitted, rows: int, *, progress: Progress | None = None
) -> Iterator[pd.DataFrame]:
    """Generate `rows` rows in batches of `config.batch_rows` (memory stays bounded)."""
    config = fitted.config
    done = 0
    key = config.key
    while done < rows:
        size = min(config.batch_rows, rows - done)
        batch = fitted.synthesizer.sample(size)[config.table].reset_index(drop=True)
        if key is not None:  # unique across batches, never in the real key space
            batch[key] = [f"syn-{config.seed:08x}-{done + i:010d}" for i in range(len(batch))]
        batch = batch[[c.name for c in config.columns]]
        done += len(batch)
        if progress:
            progress("sample", done, rows)
        yield batch


def _subsample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)


def _policy_violations(frame: pd.DataFrame, config: SynthConfig) -> float:
    import pandas as pd

    if not len(frame):
        return 0.0
    bad = pd.Series(False, index=frame.index)
    for col in config.learned:
        values = frame[col.name]
        if col.kind == "numerical":
            numbers = pd.to_numeric(values, errors="coerce")
            if col.minimum is not None:
                bad |= numbers < col.minimum
            if col.maximum is not None:
                bad |= numbers > col.maximum
        if col.allowed is not None and col.kind == "categorical":
            bad |= values.notna() & ~values.isin(list(col.allowed))
    for q in config.inequalities:
        bad |= frame[q.low] > frame[q.high]
    return float(bad.mean())


def evaluate(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    config: SynthConfig,
) -> GateReport:
    """Run every gate check on (prepared) training, holdout and synthetic rows."""
    import numpy as np
    from sdmetrics.reports import (
        DiagnosticReport,
        QualityReport,
    )

    from synthetic.privacy import (
        dcr,
        disclosure_protection,
        exact_copy_share,
        quasi_identifier_match_share,
    )

    learned = [c.name for c in config.learned]
    real = _subsample(train, config.sdmetrics_max_rows, config.seed)
    syn = _subsample(synthetic, config.eval_rows, config.seed)
    hold = prepare(holdout, config)
    checks: list[GateCheck] = []
    figures: dict[str, float] = {}

    report_meta = {"tables": {config.table: metadata_dict(config, learned_only=True)}}
    quality = QualityReport()
    quality.generate(
        {config.table: real[learned]}, {config.table: syn[learned]}, report_meta, verbose=False
    )
    for _, row in quality.get_properties().iterrows():
        figures["quality_" + str(row["Property"]).lower().replace(" ", "_")] = float(row["Score"])
    checks.append(
        GateCheck(
            "quality",
            bool(quality.get_score() >= config.min_quality),
            float(quality.get_score()),
            config.min_quality,
        )
    )
    diagnostic = DiagnosticReport()
    diagnostic.generate(
        {config.table: real[learned]}, {config.table: syn[learned]}, report_meta, verbose=False
    )
    checks.append(
        GateCheck(
            "diagnostic",
            bool(diagnostic.get_score() >= 1.0 - 1e-9),
            float(diagnostic.get_score()),
            1.0,
        )
    )
    checks.append(
        GateCheck(
            "policy_violations",
            _policy_violations(syn, config) <= 0.0,
            _policy_violations(syn, config),
            0.0,
            higher_is_better=False,
            detail="share of rows outside the policy's bounds or values",
        )
    )

    copies = exact_copy_share(syn, train, learned)
    checks.append(
        GateCheck(
            "exact_copies",
            copies <= config.max_exact_copy_share,
            copies,
            config.max_exact_copy_share,
            higher_is_better=False,
            detail="share of synthetic rows equal to a training row",
        )
    )
    qis = [q for q in config.quasi_identifiers if q in learned]
    if qis:
        syn_qi = quasi_identifier_match_share(syn, train, qis)
        hold_qi = quasi_identifier_match_share(hold, train, qis)
        figures["holdout_quasi_identifier_matches"] = hold_qi
        checks.append(
            GateCheck(
                "quasi_identifier_matches",
                syn_qi <= max(hold_qi, 0.0) + 0.01,
                syn_qi,
                max(hold_qi, 0.0) + 0.01,
                higher_is_better=False,
                detail="share of synthetic rows whose quasi-identifiers match a training row, "
                "against real held-out rows (+0.01)",
            )
        )

    columns = list(config.learned)
    syn_dcr = dcr(syn.iloc[: max(len(hold), 1)], real, columns)  # as many rows as holdout
    hold_dcr = dcr(hold, real, columns)
    syn_median, hold_median = float(np.median(syn_dcr)), float(np.median(hold_dcr))
    ratio = syn_median / hold_median if hold_median > 0 else (1.0 if syn_median == 0 else 10.0)
    figures |= {
        "dcr_synthetic_median": syn_median,
        "dcr_holdout_median": hold_median,
        "dcr_closer_than_holdout_share": float(np.mean(syn_dcr < hold_median)),
    }
    checks.append(
        GateCheck(
            "dcr_ratio",
            ratio >= config.min_dcr_ratio,
            ratio,
            config.min_dcr_ratio,
            detail="median DCR of synthetic rows / of held-out real rows",
        )
    )

    if config.sensitive is not None and config.sensitive in learned and qis:
        continuous = [c.name for c in config.learned if c.kind in ("numerical", "datetime")]
        protection = disclosure_protection(
            real[[*qis, config.sensitive]],
            syn[[*qis, config.sensitive]],
            qis,
            config.sensitive,
            continuous,
        )
        checks.append(
            GateCheck(
                "disclosure_protection",
                protection >= config.min_disclosure_protection,
                protection,
                config.min_disclosure_protection,
                detail=f"CAP for '{config.sensitive}' given the quasi-identifiers",
            )
        )
    return GateReport(tuple(checks), figures)


@dataclass(frozen=True)
class Release:
    """An accepted release: how many rows went to the sink, the gate report and timings."""

    rows: int
    batches: int
    report: GateReport
    seconds: dict[str, float] = field(default_factory=dict)
    training_rows: int = 0


def release(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    config: SynthConfig,
    rows: int,
    sink: Callable[[pd.DataFrame, int], None],
    *,
    factory: SynthesizerFactory | None = None,
    progress: Progress | None = None,
    on_gate: Callable[[GateReport], None] | None = None,
) -> Release:
    """Fit, gate, then stream `rows` rows to `sink(batch, index)`; ReleaseRefused if gated.

    `on_gate(report)` is called once the gate passed, before the first batch is sunk."""
    import pandas as pd

    if rows < 1:
        raise ValueError("rows must be at least 1")
    fitted = fit(train, config, factory=factory, progress=progress)
    seconds = {"fit": round(fitted.fit_seconds, 3)}
    batches = sample_batches(fitted, rows, progress=progress)
    start = time.perf_counter()
    held: list[pd.DataFrame] = []
    while sum(map(len, held)) < min(config.eval_rows, rows):
        held.append(next(batches))
    seconds["sample_first"] = round(time.perf_counter() - start, 3)
    if progress:
        progress("evaluate", 0, 1)
    start = time.perf_counter()
    report = evaluate(prepare(train, config), holdout, pd.concat(held, ignore_index=True), config)
    seconds["evaluate"] = round(time.perf_counter() - start, 3)
    if progress:
        progress("evaluate", 1, 1)
    if not report.passed:
        raise ReleaseRefused(report)
    if on_gate is not None:
        on_gate(report)
    start = time.perf_counter()
    written = index = 0
    for index, batch in enumerate(_chain(held, batches)):
        sink(batch, index)
        written += len(batch)
        if progress:
            progress("write", written, rows)
    seconds["sample_and_write"] = round(time.perf_counter() - start, 3)
    return Release(written, index + 1, report, seconds, fitted.training_rows)


def _chain(held: list[pd.DataFrame], rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    while held:
        yield held.pop(0)
    yield from rest
