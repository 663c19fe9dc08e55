"""Synthetic releases: our engine (policy metadata + release gate) next to SDV used directly.

For each synthesizer, both sides fit on the same customers rows (gateway.datagen, typed the
way the research purpose sees them) and sample the same number of rows; quality is SDMetrics'
QualityReport on the learned columns against the same real rows. Targets: quality ratio
ours/direct >= 0.98, time ratio ours/direct <= 1.2 (ours includes the gate).

    .venv/bin/python bench/synthetic.py                 # 100,000 rows
    .venv/bin/python bench/synthetic.py --rows 20000 --epochs 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, timed

__all__ = ["main"]


def _customers(rows: int) -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    from gateway.datagen import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), rows, seed=1)
        files = sorted((Path(tmp) / "customers").glob("*.csv"))
        frame = pd.concat([pd.read_csv(f, dtype=str) for f in files], ignore_index=True)
    frame["birth_date"] = (
        pd.to_datetime(frame["birth_date"], errors="coerce").dt.to_period("Y").dt.to_timestamp()
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], errors="coerce")
    for name in ("income", "credit_score"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    frame["consent_marketing"] = frame["consent_marketing"].map({"true": True, "false": False})
    keep = (
        frame["income"].between(0, 500_000)
        & frame["credit_score"].between(300, 850)
        & frame["consent_marketing"].notna()
        & frame["gender"].isin(["F", "M", "X"])
        & frame["birth_date"].notna()
        & frame["created_at"].notna()
    )
    return frame[keep].reset_index(drop=True)


def _config(synthesizer: str, epochs: int, rows: int) -> Any:
    from synthetic import SynthColumn as C
    from synthetic import SynthConfig

    columns = (
        C(name="customer_id", kind="id"),
        C(name="email", kind="pii", pii_sdtype="email"),
        C(name="phone", kind="pii", pii_sdtype="phone_number"),
        C(name="birth_date", kind="datetime"),
        C(name="country", kind="categorical", allowed=("DE", "FR", "GB", "US", "NL", "ES", "IT")),
        C(name="gender", kind="categorical", allowed=("F", "M", "X")),
        C(name="income", kind="numerical", minimum=0, maximum=500_000),
        C(name="credit_score", kind="numerical", integer=True, minimum=300, maximum=850),
        C(name="consent_marketing", kind="boolean"),
        C(name="created_at", kind="datetime"),
    )
    return SynthConfig(
        table="customers",
        columns=columns,
        synthesizer=synthesizer,
        seed=7,
        sample_rows=rows,
        epochs=None if synthesizer == "gaussian_copula" else epochs,
        quasi_identifiers=("birth_date", "gender", "country"),
        sensitive="credit_score",
        min_quality=0.0,
        min_dcr_ratio=0.0,
        min_disclosure_protection=0.0,
    )  # fmt: skip  (benchmark: measure, do not refuse)


def _quality(real: Any, synthetic: Any, config: Any) -> float:
    from sdmetrics.reports import QualityReport

    from synthetic.engine import metadata_dict

    learned = [c.name for c in config.learned]
    meta = {"tables": {config.table: metadata_dict(config, learned_only=True)}}
    report = QualityReport()
    report.generate(
        {config.table: real[learned]}, {config.table: synthetic[learned]}, meta, verbose=False
    )
    return float(report.get_score())


def _direct(train: Any, rows: int, config: Any) -> tuple[float, float, Any]:
    """SDV alone: detected metadata, same synthesizer and epochs; (fit s, sample s, rows)."""
    import numpy as np
    from sdv import single_table
    from sdv.metadata import Metadata

    data = train[[c.name for c in config.columns]].copy()
    meta = Metadata.detect_from_dataframes({config.table: data})
    kwargs: dict[str, Any] = {}
    if config.synthesizer != "gaussian_copula":
        kwargs = {"epochs": config.epochs, "enable_gpu": False}
    cls = {
        "gaussian_copula": single_table.GaussianCopulaSynthesizer,
        "ctgan": single_table.CTGANSynthesizer,
        "tvae": single_table.TVAESynthesizer,
        "copulagan": single_table.CopulaGANSynthesizer,
    }[config.synthesizer]
    np.random.seed(config.seed)
    synth = cls(meta, **kwargs)
    fit_s, _ = timed(lambda: synth.fit({config.table: data}))
    sample_s, out = timed(lambda: synth.sample(rows)[config.table])
    return fit_s, sample_s, out


def _ours(train: Any, holdout: Any, config: Any, rows: int) -> tuple[float, Any, Any]:
    """Our engine: fit, gate, stream batches to memory; (total s, Release, rows)."""
    import pandas as pd

    from synthetic.engine import release

    chunks: list[Any] = []
    total, result = timed(
        lambda: release(train, holdout, config, rows, lambda b, i: chunks.append(b))
    )
    return total, result, pd.concat(chunks, ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="customers generated")
    parser.add_argument("--epochs", type=int, default=2, help="CTGAN epochs")
    parser.add_argument("--synthesizers", default="gaussian_copula,ctgan")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    from synthetic.engine import prepare, split_holdout

    frame = _customers(args.rows)
    print(f"# {machine(rows=f'{len(frame):,} customers')}")
    print("| synthesizer | side | fit s | sample+gate s | total s | quality | ratios |")
    print("|---|---|---|---|---|---|---|")
    for name in args.synthesizers.split(","):
        config = _config(name, args.epochs, len(frame))
        train, holdout = split_holdout(frame, config)
        rows = len(train)
        d_fit, d_sample, d_out = _direct(train, rows, config)
        d_quality = _quality(prepare(train, config), prepare(d_out, config), config)
        total, result, ours = _ours(train, holdout, config, rows)
        quality = _quality(prepare(train, config), prepare(ours, config), config)
        d_total = d_fit + d_sample
        print(
            f"| {name} | SDV direct | {d_fit:.1f} | {d_sample:.1f} | {d_total:.1f} "
            f"| {d_quality:.4f} | |"
        )
        print(
            f"| {name} | ours (gated) | {result.seconds['fit']:.1f} | "
            f"{total - result.seconds['fit']:.1f} | {total:.1f} | {quality:.4f} | "
            f"quality {quality / d_quality:.3f}, time {total / d_total:.2f} |"
        )
        print(f"<!-- {name} gate: {result.report.scores()} seconds: {result.seconds} -->")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
