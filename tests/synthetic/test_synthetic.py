"""The synthetic engine: SDV metadata, the release gate, DCR agreement with SDMetrics, seeds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gateway.datagen import generate, read_canaries
from synthetic import Inequality, ReleaseRefused, SynthColumn, SynthConfig
from synthetic.engine import build_metadata, metadata_dict, prepare, release, split_holdout
from synthetic.privacy import dcr, disclosure_protection, exact_copy_share

# SDMetrics 0.32 calls a pandas fillna that pandas 2.3 deprecates (CategoryAdherence).
pytestmark = pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning")

C = SynthColumn
COLUMNS = (
    C(name="customer_id", kind="id"),
    C(name="email", kind="pii", pii_sdtype="email"),
    C(name="phone", kind="pii", pii_sdtype="phone_number"),
    C(name="full_name", kind="pii", pii_sdtype="name"),
    C(name="birth_date", kind="datetime"),
    C(name="country", kind="categorical", allowed=("DE", "FR", "GB", "US", "NL", "ES", "IT")),
    C(name="gender", kind="categorical", allowed=("F", "M", "X")),
    C(name="income", kind="numerical", minimum=0, maximum=500_000),
    C(name="credit_score", kind="numerical", integer=True, minimum=300, maximum=850),
    C(name="consent_marketing", kind="boolean"),
    C(name="created_at", kind="datetime"),
)


def config(**overrides: Any) -> SynthConfig:
    base: dict[str, Any] = {
        "table": "customers", "columns": COLUMNS, "seed": 3,
        "quasi_identifiers": ("birth_date", "gender", "country"), "sensitive": "credit_score",
        "eval_rows": 1000, "batch_rows": 700,
    }  # fmt: skip
    return SynthConfig(**(base | overrides))


@pytest.fixture(scope="module")
def customers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pd.DataFrame, Path]]:
    """~2,000 realistic customers from gateway.datagen, typed, bad rows removed."""
    out = tmp_path_factory.mktemp("landing")
    generate(out, 2000, seed=21)
    frame = pd.concat(
        [pd.read_csv(f, dtype=str) for f in sorted((out / "customers").glob("*.csv"))]
    )
    frame["birth_date"] = (
        pd.to_datetime(frame["birth_date"], errors="coerce").dt.to_period("Y").dt.to_timestamp()
    )  # the research purpose releases the year only
    frame["created_at"] = pd.to_datetime(frame["created_at"], errors="coerce")
    for name in ("income", "credit_score"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    frame["consent_marketing"] = frame["consent_marketing"].map({"true": True, "false": False})
    frame = frame[
        frame["income"].between(0, 500_000)
        & frame["credit_score"].between(300, 850)
        & frame["consent_marketing"].notna()
        & frame["gender"].isin(["F", "M", "X"])
        & frame["country"].isin(["DE", "FR", "GB", "US", "NL", "ES", "IT"])
    ]
    yield frame.reset_index(drop=True), out


class CopyingSynthesizer:
    """A deliberately leaky synthesizer: it returns training rows."""

    def __init__(self, metadata: Any, config: SynthConfig) -> None:
        self.table = config.table

    def fit(self, data: dict[str, pd.DataFrame]) -> None:
        self.data = data[self.table]

    def sample(self, num_rows: int) -> dict[str, pd.DataFrame]:
        return {self.table: self.data.sample(n=num_rows, replace=True, random_state=0)}


def run(frame: pd.DataFrame, cfg: SynthConfig, rows: int = 1500, **kw: Any) -> Any:
    train, holdout = split_holdout(frame, cfg)
    batches: list[pd.DataFrame] = []
    result = release(train, holdout, cfg, rows, lambda b, i: batches.append(b), **kw)
    return result, pd.concat(batches, ignore_index=True)


@pytest.fixture(scope="module")
def accepted(customers: tuple[pd.DataFrame, Path]) -> tuple[Any, pd.DataFrame]:
    return run(customers[0], config())


def test_when_metadata_is_built_then_sdtypes_follow_the_config() -> None:
    meta = metadata_dict(config())
    assert meta["primary_key"] == "customer_id"
    assert meta["columns"]["email"] == {"sdtype": "email", "pii": True}
    assert meta["columns"]["birth_date"] == {"sdtype": "datetime"}
    assert meta["columns"]["consent_marketing"] == {"sdtype": "boolean"}
    assert "email" not in metadata_dict(config(), learned_only=True)["columns"]
    build_metadata(config())  # SDV validates it


def test_when_data_is_prepared_then_identifiers_are_blanked(
    customers: tuple[pd.DataFrame, Path],
) -> None:
    prepared = prepare(customers[0], config())
    assert set(prepared["email"]) == {"redacted"}
    assert not set(prepared["customer_id"]) & set(customers[0]["customer_id"])


def test_when_data_is_realistic_then_the_gate_passes_and_batches_stream(
    accepted: tuple[Any, pd.DataFrame],
) -> None:
    result, frame = accepted
    assert result.report.passed, [c.describe() for c in result.report.failed]
    assert result.rows == len(frame) == 1500 and result.batches == 3
    scores = result.report.scores()
    assert scores["quality"] >= 0.8 and scores["diagnostic"] == 1.0
    assert frame["customer_id"].is_unique
    assert frame["credit_score"].between(300, 850).all()


def test_when_released_then_identifier_columns_never_carry_real_values(
    customers: tuple[pd.DataFrame, Path], accepted: tuple[Any, pd.DataFrame]
) -> None:
    real, landing = customers
    _, frame = accepted
    for column in ("email", "phone", "full_name", "customer_id"):
        assert not set(frame[column].astype(str)) & set(real[column].astype(str)), column
    cells = set(frame.astype(str).to_numpy().ravel())
    for values in read_canaries(landing)["customers"].values():
        assert not set(values) & cells


def test_when_a_synthesizer_copies_rows_then_the_gate_refuses_before_any_batch(
    customers: tuple[pd.DataFrame, Path],
) -> None:
    batches: list[pd.DataFrame] = []
    train, holdout = split_holdout(customers[0], config())
    with pytest.raises(ReleaseRefused) as caught:
        release(
            train,
            holdout,
            config(),
            1500,
            lambda b, i: batches.append(b),
            factory=CopyingSynthesizer,
        )
    assert batches == []
    failed = {c.name: c for c in caught.value.report.failed}
    assert {"exact_copies", "dcr_ratio"} <= set(failed)
    assert failed["exact_copies"].shortfall == pytest.approx(1.0)
    assert "exact_copies = 1.0000 (needs <= 0.0000), short by 1.0000" in str(caught.value)


def test_when_the_seed_is_the_same_then_the_release_is_the_same(
    customers: tuple[pd.DataFrame, Path], accepted: tuple[Any, pd.DataFrame]
) -> None:
    _, first = accepted
    _, again = run(customers[0], config(), rows=700)  # batches of 700: the first batch again
    pd.testing.assert_frame_equal(first.iloc[:700], again)
    _, other = run(customers[0], config(seed=4), rows=200)
    assert not other["income"].equals(first["income"].iloc[:200])


def test_when_a_threshold_is_unreachable_then_the_message_says_by_how_much(
    customers: tuple[pd.DataFrame, Path],
) -> None:
    with pytest.raises(ReleaseRefused, match=r"quality = 0\.\d{4} \(needs >= 0\.9990\), short by"):
        run(customers[0], config(min_quality=0.999), rows=300)


def test_when_an_inequality_is_declared_then_every_row_satisfies_it(
    customers: tuple[pd.DataFrame, Path],
) -> None:
    frame = customers[0].copy()
    frame["updated_at"] = frame["created_at"] + pd.to_timedelta(
        np.random.default_rng(0).integers(0, 10**7, len(frame)), unit="s"
    )
    cfg = config(
        columns=(*COLUMNS, C(name="updated_at", kind="datetime")),
        inequalities=(Inequality(low="created_at", high="updated_at"),),
    )
    result, out = run(frame, cfg, rows=500)
    assert (out["created_at"] <= out["updated_at"]).all()
    assert result.report.scores()["policy_violations"] == 0.0


def test_when_dcr_is_computed_then_it_agrees_with_sdmetrics() -> None:
    from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr

    rng = np.random.default_rng(1)

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({
            "a": rng.normal(size=n), "b": rng.integers(0, 100, n).astype(float),
            "c": rng.choice(["x", "y", "z"], n), "d": rng.choice([True, False], n),
            "t": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**8, n), "s"),
        })  # fmt: skip

    reference, data = frame(300), frame(120)
    columns = [
        C(name="a", kind="numerical"),
        C(name="b", kind="numerical"),
        C(name="c", kind="categorical"),
        C(name="d", kind="boolean"),
        C(name="t", kind="datetime"),
    ]
    meta = {
        "columns": {
            "a": {"sdtype": "numerical"},
            "b": {"sdtype": "numerical"},
            "c": {"sdtype": "categorical"},
            "d": {"sdtype": "boolean"},
            "t": {"sdtype": "datetime"},
        }
    }
    ours = dcr(data, reference, columns)
    theirs = calculate_dcr(data, reference, meta).to_numpy()
    # SDMetrics clips |a-b|/range at 1 for values outside the reference range; ours does not.
    inside = (
        (data["a"].between(reference["a"].min(), reference["a"].max()))
        & data["t"].between(reference["t"].min(), reference["t"].max())
    ).to_numpy()
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=1e-9)
    assert np.all(ours >= theirs - 1e-9)
    assert dcr(reference.iloc[:10], reference, columns).max() == 0.0
    assert exact_copy_share(reference.iloc[:10], reference, ["a", "b", "c"]) == 1.0


def test_when_disclosure_protection_is_estimated_then_it_matches_sdmetrics_on_small_data() -> None:
    from sdmetrics.single_table import DisclosureProtection

    rng = np.random.default_rng(2)
    real = pd.DataFrame(
        {
            "g": rng.choice(["F", "M"], 400),
            "y": rng.integers(1940, 2000, 400),
            "s": rng.integers(300, 850, 400).astype(float),
        }
    )
    synthetic = real.sample(frac=1.0, random_state=0).assign(s=lambda f: f["s"].to_numpy()[::-1])
    ours = disclosure_protection(real, synthetic, ["g", "y"], "s", ["y", "s"])
    theirs = DisclosureProtection.compute(
        real, synthetic, ["g", "y"], ["s"], continuous_column_names=["y", "s"]
    )
    assert ours == pytest.approx(theirs)
    leaked = disclosure_protection(real, real, ["g", "y"], "s", ["y", "s"])
    assert leaked < ours


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning:ctgan")  # CTGAN's discrete-column notice
def test_when_ctgan_runs_with_few_epochs_then_it_releases_or_refuses_cleanly(
    customers: tuple[pd.DataFrame, Path],
) -> None:
    cfg = config(
        synthesizer="ctgan",
        epochs=2,
        min_quality=0.0,
        min_dcr_ratio=0.0,
        min_disclosure_protection=0.0,
        eval_rows=300,
        batch_rows=300,
    )
    result, frame = run(customers[0].iloc[:600], cfg, rows=300)
    assert len(frame) == 300 and result.report.scores()["exact_copies"] == 0.0
