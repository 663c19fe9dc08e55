"""The gateway API: who may call what, problem+json errors, auditing of every decision."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings


@dataclass
class Api:
    client: TestClient
    services: Services
    keys: dict[str, str]

    def headers(self, who: str, purpose: str | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.keys[who]}"}
        if purpose:
            out["X-Purpose"] = purpose
        return out

    def acknowledge(self, who: str, purpose: str) -> None:
        response = self.client.post(f"/v1/purposes/{purpose}/acknowledge", headers=self.headers(who))
        assert response.status_code == 200, response.text


@pytest.fixture
def api(tmp_path: Path, example_policies: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path, policy_paths=(example_policies,))
    services = build_services(settings)
    keys = {
        who: services.api_keys.create(who, roles, policies=services.policies).secret
        for who, roles in {"bob": ["fraud-analyst"], "erin": ["auditor"], "carol": ["researcher"],
                           "svc-marketing": ["marketing-pipeline"]}.items()
    }
    boom = APIRouter()

    @boom.get("/v1/boom")
    def explode() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    app = create_app(services)
    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, services, keys)
    services.close()


def test_when_no_credentials_are_sent_then_data_routes_answer_401_problem_json(api: Api) -> None:
    response = api.client.get("/v1/datasets", headers={"X-Purpose": "fraud-detection"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "missing credentials"
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [
    "Bearer gw_0000000000000000_" + "0" * 64,  # a well-formed but unknown key
    "Bearer not-a-token",                      # garbage
    "Basic Ym9iOnNlY3JldA==",                   # the wrong scheme
])
def test_when_credentials_are_invalid_then_401_without_echoing_them(api: Api, header: str) -> None:
    response = api.client.get("/v1/datasets", headers={"Authorization": header, "X-Purpose": "fraud-detection"})
    assert response.status_code == 401
    assert header.split()[-1] not in response.text


def test_when_the_purpose_header_is_missing_then_422(api: Api) -> None:
    response = api.client.get("/v1/datasets", headers=api.headers("bob"))
    assert response.status_code == 422
    assert response.json()["detail"] == "the X-Purpose header is required on data routes"


def test_when_a_purpose_was_not_acknowledged_then_403_says_how(api: Api) -> None:
    response = api.client.get("/v1/datasets", headers=api.headers("bob", "fraud-detection"))
    assert response.status_code == 403
    assert "POST /v1/purposes/fraud-detection/acknowledge" in response.json()["detail"]


def test_when_acknowledging_then_the_statement_version_is_recorded_and_listed(api: Api) -> None:
    api.acknowledge("bob", "fraud-detection")
    purposes = {p["purpose"]: p for p in api.client.get("/v1/purposes", headers=api.headers("bob")).json()}
    assert purposes["fraud-detection"]["acknowledged"] is True
    assert purposes["marketing"]["acknowledged"] is False
    events = api.services.audit.query(subject="bob", action="acknowledge")
    assert events[0].event.released["statement_version"] == purposes["fraud-detection"]["statement_version"]


def test_when_acknowledging_an_unknown_purpose_then_404(api: Api) -> None:
    assert api.client.post("/v1/purposes/nope/acknowledge", headers=api.headers("bob")).status_code == 404


def test_when_listing_datasets_then_the_caller_sees_columns_and_protections_for_the_purpose(api: Api) -> None:
    api.acknowledge("bob", "fraud-detection")
    body = api.client.get("/v1/datasets", headers=api.headers("bob", "fraud-detection")).json()
    datasets = {d["dataset"]: d for d in body["datasets"]}
    assert body["policy_version"] == api.services.policies.version
    assert set(datasets) == {"customers", "transactions"}
    columns = {c["name"]: c["protection"] for c in datasets["customers"]["columns"]}
    assert columns["customer_id"].startswith("tokenize(")
    assert "full_name" not in columns  # dropped for every purpose: not even named
    assert "customer_profile" in datasets["customers"]["feature_views"]


def test_when_a_role_cannot_pursue_the_purpose_then_nothing_is_listed(api: Api) -> None:
    api.acknowledge("carol", "marketing")
    body = api.client.get("/v1/datasets", headers=api.headers("carol", "marketing")).json()
    assert body["datasets"] == []


def test_when_an_auditor_reads_the_audit_log_then_events_and_verification_are_returned(api: Api) -> None:
    api.acknowledge("bob", "fraud-detection")
    api.acknowledge("erin", "fraud-detection")
    api.client.get("/v1/datasets", headers=api.headers("bob", "fraud-detection"))
    page = api.client.get("/v1/audit?limit=2", headers=api.headers("erin", "fraud-detection")).json()
    assert len(page["events"]) == 2 and page["next_after_seq"] == page["events"][-1]["seq"]
    verify = api.client.get("/v1/audit/verify", headers=api.headers("erin", "fraud-detection")).json()
    assert verify["ok"] is True and verify["records"] >= 4


def test_when_a_non_auditor_reads_the_audit_log_then_403_and_the_denial_is_audited(api: Api) -> None:
    api.acknowledge("bob", "fraud-detection")
    response = api.client.get("/v1/audit", headers=api.headers("bob", "fraud-detection"))
    assert response.status_code == 403
    denials = [e for e in api.services.audit.query(subject="bob", action="audit_read") if e.event.decision == "deny"]
    assert denials and denials[0].event.rule


def test_when_the_audit_log_cannot_be_written_then_requests_are_refused_503(api: Api, monkeypatch) -> None:
    api.acknowledge("bob", "fraud-detection")
    from gateway.errors import StorageError

    def broken(event):
        raise StorageError("audit log unavailable: disk full")

    monkeypatch.setattr(api.services.audit, "append", broken)
    response = api.client.get("/v1/datasets", headers=api.headers("bob", "fraud-detection"))
    assert response.status_code == 503
    assert "disk full" not in response.text


def test_when_an_unexpected_error_happens_then_500_has_no_internal_detail(api: Api) -> None:
    response = api.client.get("/v1/boom")
    assert response.status_code == 500
    assert "passwd" not in response.text and "RuntimeError" not in response.text
    assert response.json()["request_id"]


def test_when_a_body_is_too_large_then_413(api: Api) -> None:
    response = api.client.post("/v1/purposes/marketing/acknowledge", headers=api.headers("bob"),
                               content=b"x" * (9 * 1024 * 1024))
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/v1/purposes/..%2F..%2Fetc/acknowledge", "/v1/purposes/Marketing/acknowledge",
                                  "/v1/purposes/%00/acknowledge"])
def test_when_names_carry_traversal_or_encoding_tricks_then_they_are_refused(api: Api, path: str) -> None:
    assert api.client.post(path, headers=api.headers("bob")).status_code in (404, 422)


def test_when_health_and_metrics_are_asked_then_they_answer(api: Api) -> None:
    assert api.client.get("/healthz").json()["status"] == "ok"
    assert api.client.get("/readyz").json()["checks"]["database"] == "ok"
    api.client.get("/v1/datasets")
    metrics = api.client.get("/metrics").text
    assert 'gateway_requests_total{method="GET",route="/v1/datasets",status="401"}' in metrics
    api.acknowledge("bob", "fraud-detection")
    api.client.get("/v1/audit", headers=api.headers("bob", "fraud-detection"))  # a denial
    metrics = api.client.get("/metrics").text
    denials = re.search(r'gateway_decisions_total\{action="audit_read",outcome="deny"\} ([0-9.]+)', metrics)
    assert denials is not None and float(denials.group(1)) >= 1


def test_when_a_request_id_is_given_then_it_is_echoed(api: Api) -> None:
    response = api.client.get("/healthz", headers={"X-Request-ID": "abc12345-test"})
    assert response.headers["x-request-id"] == "abc12345-test"


def test_when_openapi_is_generated_then_no_route_takes_code_or_sql(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    text = str(schema).lower()
    assert "sql" not in text and "expression" not in text
    assert "/v1/datasets" in schema["paths"]
