"""Synthetic releases through the gateway: authorised, gated, audited, never leaking identifiers."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.datagen import generate, read_canaries
from gateway.errors import AccessDenied
from gateway.reidentify import local_principal
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.storage import DeltaStore, open_store
from gateway.synth import SyntheticGateFailed, run_synthetic, synth_config, synthetic_path

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered in scalar subtract:RuntimeWarning"),
]


@dataclass
class Lake:
    settings: Settings
    services: Services
    store: DeltaStore
    spark: Any
    raw: dict[str, set[str]]
    canaries: dict[str, dict[str, tuple[str, ...]]]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory: pytest.TempPathFactory, example_policies: Path) -> Iterator[Lake]:
    home = tmp_path_factory.mktemp("synth-home")
    generate(home / "landing", 2000, seed=11)
    settings = Settings(home=home, spark_master="local[2]", policy_paths=(example_policies,))
    services = build_services(settings)
    raw: dict[str, set[str]] = {}
    for file in sorted((home / "landing" / "customers").glob("*.csv")):
        with file.open(newline="") as handle:
            for row in csv.DictReader(handle):
                for key, value in row.items():
                    raw.setdefault(key, set()).add(value)
    yield Lake(
        settings, services, open_store(spark, settings), spark, raw, read_canaries(home / "landing")
    )
    services.close()


class CopyingSynthesizer:
    """A deliberately leaky synthesizer: it returns training rows."""

    def __init__(self, metadata: Any, config: Any) -> None:
        self.table = config.table

    def fit(self, data: dict[str, Any]) -> None:
        self.data = data[self.table]

    def sample(self, num_rows: int) -> dict[str, Any]:
        return {self.table: self.data.sample(n=num_rows, replace=True, random_state=0)}


def _release(lake: Lake, **kwargs: Any) -> Any:
    carol = local_principal(lake.services, "carol")
    return run_synthetic(
        lake.services,
        carol,
        "customers",
        "research",
        kwargs.pop("rows", 1500),
        spark=lake.spark,
        store=lake.store,
        **kwargs,
    )


@pytest.fixture(scope="module")
def released(lake: Lake) -> Any:
    stages: list[str] = []
    result = _release(lake, seed=5, progress=lambda stage, done, total: stages.append(stage))
    frame = lake.store.read(result.path).toPandas()
    return result, frame, stages


def test_when_the_policy_allows_then_a_gated_release_is_written_with_report_and_audit(
    lake: Lake, released: Any
) -> None:
    result, frame, stages = released
    assert len(frame) == result.rows == 1500
    assert {"fit", "sample", "evaluate", "write"} <= set(stages)
    assert all(c["passed"] for c in result.report["checks"])
    assert result.report["checks"][0]["name"] == "quality"
    assert result.report["checks"][0]["value"] >= 0.8
    history = lake.store.history(result.path)
    commit = history[0].commit
    assert commit is not None and commit.purpose == "research"
    assert commit.extra["synthesizer"] == "gaussian_copula" and commit.extra["seed"] == "5"
    assert json.loads(commit.extra["report"])["passed"] is True
    on_disk = json.loads((Path(result.path) / "_synthetic_report.json").read_text())
    assert on_disk["policy_version"] == lake.services.policies.version
    events = lake.services.audit.query(subject="carol", action="synthesize")
    kinds = {(e.event.kind, e.event.decision) for e in events}
    assert ("synthetic_release", "allow") in kinds and ("decision", "allow") in kinds
    release = next(e.event for e in events if e.event.kind == "synthetic_release")
    assert release.released["rows"] == 1500 and release.released["seed"] == 5


def test_when_released_then_identifiers_never_carry_real_values(lake: Lake, released: Any) -> None:
    _, frame, _ = released
    assert not {"full_name", "national_id", "street_address", "city"} & set(frame.columns)
    for column in ("email", "phone", "customer_id"):
        values = set(frame[column].dropna().astype(str))
        assert values and not values & lake.raw[column], column
    cells = " ".join(frame.astype(str).to_numpy().ravel())
    for column, canaries in lake.canaries["customers"].items():
        for value in canaries:
            assert value not in cells, f"{column} canary leaked"


def test_when_the_same_seed_is_used_then_the_release_is_reproduced(
    lake: Lake, released: Any
) -> None:
    _, first, _ = released
    again = _release(lake, seed=5)
    second = lake.store.read(again.path).toPandas()
    key = "customer_id"
    assert (
        first.sort_values(key)
        .reset_index(drop=True)
        .equals(second.sort_values(key).reset_index(drop=True))
    )


def test_when_a_synthesizer_copies_training_rows_then_the_gate_refuses_and_nothing_is_published(
    lake: Lake, released: Any
) -> None:
    path = synthetic_path(lake.settings.lake, "customers", "research")
    before = lake.store.version(path)
    with pytest.raises(SyntheticGateFailed) as caught:
        _release(lake, seed=5, factory=CopyingSynthesizer)
    failed = {c.name for c in caught.value.report.failed}
    assert {"exact_copies", "dcr_ratio"} <= failed
    assert "exact_copies = 1.0000 (needs <= 0.0000), short by 1.0000" in caught.value.message
    assert caught.value.http_status == 422
    assert lake.store.version(path) == before
    denied = [
        e
        for e in lake.services.audit.query(subject="carol", action="synthesize")
        if e.event.kind == "synthetic_release" and e.event.decision == "deny"
    ]
    assert denied and "exact_copies" in denied[0].event.released["failed_checks"]


def test_when_a_role_may_not_synthesize_then_access_is_denied(lake: Lake) -> None:
    bob = local_principal(lake.services, "bob")
    with pytest.raises(AccessDenied):
        run_synthetic(
            lake.services,
            bob,
            "customers",
            "fraud-detection",
            10,
            spark=lake.spark,
            store=lake.store,
        )


def test_when_the_config_is_built_from_the_policy_then_identifiers_and_bounds_follow_it(
    lake: Lake,
) -> None:
    config = synth_config(lake.services.policies, "customers", "research")
    kinds = {c.name: c.kind for c in config.columns}
    assert kinds["customer_id"] == "id"
    assert kinds["email"] == "pii" and config.column("email").pii_sdtype == "email"
    assert config.column("phone").pii_sdtype == "phone_number"
    assert "full_name" not in kinds and "city" not in kinds  # dropped / nullified for research
    assert kinds["gender"] == "categorical" and kinds["birth_date"] == "datetime"
    score = config.column("credit_score")
    assert (score.minimum, score.maximum, score.integer) == (300.0, 850.0, True)
    assert config.sensitive == "credit_score"
    with pytest.raises(AccessDenied):
        synth_config(lake.services.policies, "customers", "marketing")


def test_when_calling_the_api_then_a_release_is_made_or_refused(lake: Lake) -> None:
    from gateway.api.routers.synthetic import router

    services = lake.services
    keys = {
        who: services.api_keys.create(who, roles, policies=services.policies).secret
        for who, roles in {"carol": ["researcher"], "bob": ["fraud-analyst"]}.items()
    }
    app = create_app(services)
    app.include_router(router)
    app.state.spark = lake.spark
    with TestClient(app, raise_server_exceptions=False) as client:
        for who, purpose in (("carol", "research"), ("bob", "fraud-detection")):
            client.post(
                f"/v1/purposes/{purpose}/acknowledge",
                headers={"Authorization": f"Bearer {keys[who]}"},
            )
        ok = client.post(
            "/v1/synthetic/customers",
            json={"rows": 300, "seed": 9},
            headers={"Authorization": f"Bearer {keys['carol']}", "X-Purpose": "research"},
        )
        assert ok.status_code == 200, ok.text[:3000]
        assert ok.json()["rows"] == 300 and ok.json()["seed"] == 9
        denied = client.post(
            "/v1/synthetic/customers",
            json={"rows": 300},
            headers={"Authorization": f"Bearer {keys['bob']}", "X-Purpose": "fraud-detection"},
        )
        assert denied.status_code == 403
