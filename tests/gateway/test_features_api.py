"""Governed features end to end: ingest -> publish -> materialise -> authorised, audited reads."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.routers.features import router
from gateway.client import GatewayClient, GatewayClientError
from gateway.datagen import generate
from gateway.features import build_publication, policy_views, store_config
from gateway.ingest import IngestRequest, LakePaths, run_ingest
from gateway.policy import PolicySet, load_policy_set
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.storage import open_store

pytestmark = [
    pytest.mark.spark,
    # The only warning tolerated: pandas, raised inside Feast's dask point-in-time join.
    pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays on .fillna:FutureWarning"),
]

PAIRS = [
    ("customers", "fraud-detection"),
    ("customers", "marketing"),
    ("transactions", "fraud-detection"),
]


@dataclass
class World:
    settings: Settings
    policies: PolicySet
    services: Services
    client: TestClient
    keys: dict[str, str]
    governed: dict[tuple[str, str], pd.DataFrame]

    def headers(self, who: str, purpose: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}", "X-Purpose": purpose}

    def gateway(self, who: str, purpose: str) -> GatewayClient:
        return GatewayClient("http://test", self.keys[who], purpose, client=self.client)


@pytest.fixture(scope="module")
def world(
    spark, tmp_path_factory: pytest.TempPathFactory, example_policies: Path
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("features-home")
    generate(home / "landing", 300, seed=11)
    settings = Settings(home=home, spark_master="local[2]", policy_paths=(example_policies,))
    policies = load_policy_set([example_policies])
    store = open_store(spark, settings)
    for pair in PAIRS:
        run_ingest(spark, settings, policies, IngestRequest(*pair), store=store)
    from feature_store.store import GovernedFeatureStore

    pub, refusals = build_publication(policies, settings)
    assert refusals == []
    feast = GovernedFeatureStore(store_config(settings))
    feast.apply(pub)
    feast.materialize()
    feast.close()
    services = build_services(settings)
    keys = {
        who: services.api_keys.create(who, roles, policies=services.policies).secret
        for who, roles in {
            "bob": ["fraud-analyst"],
            "carol": ["researcher"],
            "svc-marketing": ["marketing-pipeline"],
        }.items()
    }
    app = create_app(services)
    app.include_router(router)
    lake = LakePaths(settings.lake)
    governed = {pair: DeltaTable(str(lake.governed(*pair))).to_pandas() for pair in PAIRS}
    with TestClient(app, raise_server_exceptions=False) as client:
        w = World(settings, policies, services, client, keys, governed)
        for who, purpose in [
            ("bob", "fraud-detection"),
            ("svc-marketing", "marketing"),
            ("carol", "research"),
            ("svc-marketing", "fraud-detection"),
        ]:
            client.post(f"/v1/purposes/{purpose}/acknowledge", headers=w.headers(who, purpose))
        yield w
    services.close()


def _latest(frame: pd.DataFrame, ids: list[str], column: str) -> list[object]:
    latest = frame.sort_values("updated_at").groupby("customer_id").tail(1).set_index("customer_id")
    return [latest.loc[i, column] for i in ids]


def test_when_an_approved_caller_reads_online_then_governed_values_come_back_and_are_audited(
    world: World,
) -> None:
    frame = world.governed[("customers", "fraud-detection")]
    ids = list(frame["customer_id"].unique()[:5])
    response = world.client.post(
        "/v1/features/online",
        json={
            "entities": {"customer_id": [*ids, "tok_unknown"]},
            "features": ["customer_profile:country", "customer_risk:credit_score"],
        },
        headers=world.headers("bob", "fraud-detection"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entity_count"] == 6
    results = body["results"]
    assert results["customer_id"] == [*ids, "tok_unknown"]
    assert results["customer_profile__country"] == [*_latest(frame, ids, "country"), None]
    assert results["customer_risk__credit_score"] == [*_latest(frame, ids, "credit_score"), None]
    assert all(i.startswith("tok_") for i in ids)  # keys are the governed, tokenized values
    events = world.services.audit.query(subject="bob", action="read_features")
    last = events[-1].event
    assert last.decision == "allow"
    assert last.released["entities"] == 6
    assert set(last.released["features"]) == {
        "customer_profile__country",
        "customer_risk__credit_score",
    }


@pytest.mark.parametrize(
    ("who", "purpose", "view"),
    [
        (
            "svc-marketing",
            "marketing",
            "customer_risk",
        ),  # the view is approved for fraud-detection only
        (
            "svc-marketing",
            "fraud-detection",
            "customer_profile",
        ),  # the role does not pursue this purpose
        ("carol", "research", "customer_profile"),  # the role has no read_features
        ("bob", "fraud-detection", "no_such_view"),  # unknown: the authoriser's not-found answer
    ],
)
def test_when_a_purpose_or_role_is_not_approved_then_the_answer_is_the_authorisers(
    world: World, who: str, purpose: str, view: str
) -> None:
    principal = world.services.authenticator.authenticate(f"Bearer {world.keys[who]}")
    dataset = "customers" if view != "no_such_view" else view
    decision = world.services.authorizer.can_read_features(principal, purpose, dataset, view)
    assert not decision.allowed
    response = world.client.post(
        "/v1/features/online",
        json={"entities": {"customer_id": ["tok_x"]}, "features": [f"{view}:country"]},
        headers=world.headers(who, purpose),
    )
    assert response.status_code == (404 if decision.hides_resource else 403), response.text
    assert response.json()["detail"] == decision.reason
    denials = [
        e.event
        for e in world.services.audit.query(subject=who, action="read_features")
        if e.event.decision == "deny"
    ]
    assert denials and denials[-1].rule == decision.rule


def test_when_a_feature_is_not_in_the_approved_set_then_404(world: World) -> None:
    response = world.client.post(
        "/v1/features/online",
        json={"entities": {"customer_id": ["tok_x"]}, "features": ["customer_profile:email"]},
        headers=world.headers("bob", "fraud-detection"),
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "no feature 'customer_profile:email'"


def test_when_the_feature_service_is_asked_then_every_view_of_the_purpose_is_served(
    world: World,
) -> None:
    ids = list(world.governed[("customers", "marketing")]["customer_id"].unique()[:3])
    frame = world.gateway("svc-marketing", "marketing").get_online_features(
        "marketing", {"customer_id": ids}
    )
    assert list(frame["customer_id"]) == ids
    assert {"customer_profile__postal_code", "customer_profile__consent_marketing"} <= set(
        frame.columns
    )
    assert frame["customer_profile__consent_marketing"].tolist() == [
        True,
        True,
        True,
    ]  # row filter held


def test_when_training_data_is_asked_then_it_is_point_in_time_correct_parquet(world: World) -> None:
    tx = world.governed[("transactions", "fraud-detection")].sort_values("event_time")
    customer = tx["customer_id"].iloc[0]
    mine = tx[tx["customer_id"] == customer]
    first = mine.iloc[0]
    entity_df = pd.DataFrame(
        {
            "customer_id": [customer, customer, "tok_unknown"],
            "event_timestamp": [
                first["event_time"] - pd.Timedelta(seconds=1),
                first["event_time"] + pd.Timedelta(seconds=1),
                first["event_time"],
            ],
            "label": [0, 1, 0],  # the caller's own columns pass through
        }
    )
    out = world.gateway("bob", "fraud-detection").get_historical_features(
        entity_df, ["transaction_facts:amount", "transaction_facts:channel"]
    )
    assert list(out["label"]) == [0, 1, 0]
    assert pd.isna(out["transaction_facts__amount"].iloc[0])  # nothing known yet
    assert out["transaction_facts__amount"].iloc[1] == pytest.approx(first["amount"])
    assert out["transaction_facts__channel"].iloc[1] == first["channel"]
    assert pd.isna(out["transaction_facts__amount"].iloc[2])
    events = world.services.audit.query(subject="bob", action="read_features")
    assert events[-1].event.released["mode"] == "historical"
    assert events[-1].event.released["entities"] == 3


def test_when_historical_json_is_sent_then_parquet_is_streamed_back(world: World) -> None:
    import io

    import pyarrow.parquet as pq

    ids = list(world.governed[("customers", "fraud-detection")]["customer_id"].unique()[:2])
    response = world.client.post(
        "/v1/features/historical",
        json={
            "entity_rows": [
                {"customer_id": i, "event_timestamp": "2030-01-01T00:00:00Z"} for i in ids
            ],
            "features": ["customer_risk:credit_score"],
        },
        headers=world.headers("bob", "fraud-detection"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(response.content)).num_rows == 2


def test_when_limits_are_exceeded_or_keys_are_wrong_then_422(world: World) -> None:
    headers = world.headers("bob", "fraud-detection")
    too_many = world.client.post(
        "/v1/features/online",
        headers=headers,
        json={
            "entities": {"customer_id": [f"t{i}" for i in range(1001)]},
            "features": ["customer_risk:country"],
        },
    )
    assert too_many.status_code == 422
    wrong_key = world.client.post(
        "/v1/features/online",
        headers=headers,
        json={"entities": {"account": ["x"]}, "features": ["customer_risk:country"]},
    )
    assert wrong_key.status_code == 422 and "customer_id" in wrong_key.json()["detail"]
    with pytest.raises(GatewayClientError) as refused:
        world.gateway("bob", "fraud-detection").get_historical_features(
            pd.DataFrame({"customer_id": ["x"]}), ["customer_risk:country"]
        )
    assert refused.value.status == 422


def _edited_policies(example_policies: Path, tmp: Path, old: str, new: str) -> PolicySet:
    folder = tmp / "policies"
    shutil.copytree(example_policies, folder)
    path = folder / "customers.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return load_policy_set([folder])


def test_when_a_feature_column_is_not_in_the_governed_table_then_publishing_refuses(
    world: World, example_policies: Path, tmp_path: Path
) -> None:
    from gateway.errors import PolicyError
    from gateway.policy.loader import PolicySet as Set

    old = "columns: [postal_code, birth_date, country, gender, consent_marketing]"
    with pytest.raises(PolicyError, match="'income' is dp_only for 'marketing'"):
        _edited_policies(example_policies, tmp_path, old, old[:-1] + ", income]")
    # the loader already refuses it; publishing refuses it again (defence in depth)
    ds = world.policies.dataset("customers")
    profile = ds.features["customer_profile"]
    edited = ds.model_copy(
        update={
            "features": {
                **ds.features,
                "customer_profile": profile.model_copy(
                    update={"columns": (*profile.columns, "income")}
                ),
            }
        }
    )
    policies = Set(
        world.policies.organisation, {**world.policies.datasets, "customers": edited}, ()
    )
    views, refusals = policy_views(policies, world.settings)
    assert [(r.view, r.purpose) for r in refusals] == [("customer_profile", "marketing")]
    assert "feature 'income' is dp_only for 'marketing'" in refusals[0].reason
    assert ("customer_profile", "fraud-detection") in {
        (v.view, v.purpose) for v in views
    }  # bucketed there


def test_when_the_governed_table_was_written_with_other_protections_then_publishing_refuses(
    world: World, example_policies: Path, tmp_path: Path
) -> None:
    policies = _edited_policies(
        example_policies,
        tmp_path,
        "allowed: [DE, FR, GB, US, NL, ES, IT]\n    protect: keep",
        "allowed: [DE, FR, GB, US, NL, ES, IT]\n    protect: {nullify: {}}",
    )
    pub, refusals = build_publication(policies, world.settings)
    refused = {(r.view, r.purpose): r.reason for r in refusals}
    assert (
        "column 'country' was written as keep" in refused[("customer_profile", "fraud-detection")]
    )
    assert (
        "the current policy requires mask/nullify" in refused[("customer_risk", "fraud-detection")]
    )
    assert [v.name for v in pub.views] == [
        "transaction_facts__fraud_detection"
    ]  # other dataset unaffected
    # with the policy the tables were written under, everything is publishable
    assert build_publication(world.policies, world.settings)[1] == []


def test_when_the_cli_plans_after_apply_then_nothing_changes(
    world: World, monkeypatch: pytest.MonkeyPatch, example_policies: Path
) -> None:
    from typer.testing import CliRunner

    from gateway.cli.features import features_app

    monkeypatch.setenv("GATEWAY_HOME", str(world.settings.home))
    monkeypatch.setenv("GATEWAY_POLICY_PATHS", json.dumps([str(example_policies)]))
    result = CliRunner().invoke(features_app, ["plan", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changes"] == []
    result = CliRunner().invoke(features_app, ["materialize", "--incremental"])
    assert result.exit_code == 0, result.output
    assert "0 rows" in result.output
