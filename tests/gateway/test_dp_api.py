"""DP releases through the gateway: concurrent charges, 409 refusals, dry runs, budgets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.routers.dp import router
from gateway.dp import BudgetRefused, ledger_for, run_query
from gateway.reidentify import local_principal
from gateway.services import Services, build_services
from gateway.settings import Settings
from privacy.dp import DpPlan, DpQuery, DpRelease
from privacy.ledger import PrivacyBudget


@pytest.fixture
def services(tmp_path: Path, example_policies: Path) -> Iterator[Services]:
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("org.yaml", "transactions.yaml"):
        (folder / name).write_text((example_policies / name).read_text())
    text = (example_policies / "customers.yaml").read_text()
    (folder / "customers.yaml").write_text(
        text.replace("research: {epsilon: 5.0}", "research: {epsilon: 10.0}")
    )
    svc = build_services(Settings(home=tmp_path, policy_paths=(folder,)))
    yield svc
    svc.close()


def stub(plan: DpPlan) -> DpRelease:
    return DpRelease(
        kind=plan.query.kind, column=None, groups=((),), values=(0,), statistics=(), accuracy95=None
    )


def test_when_40_charges_of_half_race_against_10_then_exactly_20_succeed(services) -> None:
    carol = local_principal(services, "carol")
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(40)

    def one() -> None:
        barrier.wait()
        try:
            run_query(
                services,
                carol,
                "customers",
                "research",
                DpQuery(kind="count"),
                epsilon=Decimal("0.5"),
                executor=stub,
            )
            outcome = "ok"
        except BudgetRefused:
            outcome = "refused"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 20 and results.count("refused") == 20
    status = ledger_for(services).remaining("customers", "research")
    assert status.spent == PrivacyBudget.pure(10) and status.charges == 20


def test_when_a_run_fails_after_the_charge_then_the_charge_stands(services) -> None:
    carol = local_principal(services, "carol")

    def boom(plan: DpPlan) -> DpRelease:
        raise RuntimeError("spark died")

    with pytest.raises(RuntimeError):
        run_query(
            services,
            carol,
            "customers",
            "research",
            DpQuery(kind="count"),
            epsilon=Decimal("1"),
            executor=boom,
        )
    assert ledger_for(services).remaining("customers", "research").spent == PrivacyBudget.pure(1)


@pytest.fixture
def client(services) -> Iterator[tuple[TestClient, dict[str, str]]]:
    key = services.api_keys.create("carol", ["researcher"], policies=services.policies).secret
    app = create_app(services)
    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as c:
        headers = {"Authorization": f"Bearer {key}"}
        assert c.post("/v1/purposes/research/acknowledge", headers=headers).status_code == 200
        yield c, {**headers, "X-Purpose": "research"}


def test_when_the_budget_is_spent_then_the_api_answers_409_with_the_amounts(client, services):
    c, headers = client
    ledger = ledger_for(services)
    ledger.ensure_budget("customers", "research", PrivacyBudget.pure(10))
    ledger.charge(
        "customers",
        "research",
        "carol",
        PrivacyBudget.pure("9.5"),
        request_id="pre",
        description="x",
    )
    body = {"dataset": "customers", "query": {"kind": "count"}, "epsilon": "1"}
    response = c.post("/v1/dp/query", json=body, headers=headers)
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["requested"]["epsilon"] == "1"
    assert problem["remaining"]["epsilon"] == "0.5"
    assert problem["difference"]["epsilon"] == "0.5"


def test_when_dry_run_then_the_charge_and_accuracy_are_shown_and_nothing_is_spent(client, services):
    c, headers = client
    body = {
        "dataset": "customers",
        "query": {"kind": "mean", "column": "income"},
        "epsilon": "1",
        "dry_run": True,
    }
    response = c.post("/v1/dp/query", json=body, headers=headers)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["dry_run"] is True and out["source"] == "dp_zone"
    assert out["charge"] == {"kind": "pure", "epsilon": "1"}
    assert set(out["expected_accuracy95"]) == {"0:count", "1:sum"}
    budget = c.get("/v1/dp/budget/customers", headers=headers).json()
    assert budget["spent"] == ["0"] and budget["total"] == ["10"]


def test_when_the_query_has_unknown_fields_then_422(client) -> None:
    c, headers = client
    body = {"dataset": "customers", "query": {"kind": "count", "sql": "select 1"}, "epsilon": "1"}
    assert c.post("/v1/dp/query", json=body, headers=headers).status_code == 422
