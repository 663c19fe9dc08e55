"""Homomorphic encryption in the gateway: keys, encrypted columns at ingest, compute, decrypt."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.datagen import generate
from gateway.errors import AccessDenied, ConfigurationError, IngestError
from gateway.he import (
    HeComputeRequest,
    HeResult,
    HeTooFewRows,
    compute_he,
    decrypt_result,
    he_folder,
    keygen,
    keyholder_folder,
    load_gateway_key,
    load_gateway_signing_key,
    load_gateway_verify_key,
    write_encrypted_columns,
)
from gateway.ingest import IngestRequest, LakePaths, plan_protection, run_ingest
from gateway.policy import PolicySet, load_policy_set
from gateway.policy.dataset import HeSettings
from gateway.reidentify import local_principal
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.storage import CommitInfo, DeltaStore, open_store
from privacy.he import (
    FingerprintMismatch,
    HeEvaluator,
    HeKeyError,
    SecretContext,
    SignatureInvalid,
    TooFewRows,
    decrypt,
    load_secret_context,
)

pytestmark = pytest.mark.spark

DATASET, PURPOSE, KEY = "customers", "credit-risk", "customers-he"
REL = 1e-6


@dataclass
class Lake:
    settings: Settings
    policies: PolicySet
    store: DeltaStore
    services: Services
    spark: Any
    good: Any  # pandas: raw values of the good rows, with their governed entity key
    secret: SecretContext
    verify_key: Any
    encrypted: Any

    def compute(self, **body: Any) -> HeResult:
        request = HeComputeRequest.model_validate({"dataset": DATASET, **body})
        principal = local_principal(self.services, "dave")
        return compute_he(
            self.services, principal, PURPOSE, request, spark=self.spark, store=self.store
        )

    def decrypt(self, result: HeResult) -> Any:
        return decrypt_result(result, self.secret, self.verify_key, 10).value


def _good_rows(spark: Any, settings: Settings, policies: PolicySet, store: DeltaStore) -> Any:
    """The validated rows the ingest job passes on (raw values), as the job builds them."""
    from pyspark.sql import functions as F

    from gateway.ingest.source import read_source, resolve_source
    from gateway.ingest.validate import REASONS, with_reasons

    ds = policies.dataset(DATASET)
    source = resolve_source(ds.source, settings.landing)
    raw = read_source(spark, source, ds.source.options, store)
    validated = with_reasons(
        raw.select(*[F.col(f"`{c}`") for c in ds.columns]), ds, source.text_typed
    )
    good = validated.filter(F.size(F.col(REASONS)) == 0).drop(REASONS)
    return good.persist(), source  # as the job does


def _commit(policies: PolicySet, fingerprint: str) -> CommitInfo:
    return CommitInfo(
        policy_version=policies.version,
        purpose=PURPOSE,
        job_id=uuid.uuid4().hex,
        principal="test",
        source_fingerprint=fingerprint,
    )


@pytest.fixture(scope="module")
def lake(
    spark: Any, tmp_path_factory: pytest.TempPathFactory, example_policies: Path
) -> Iterator[Lake]:
    from gateway.he.ingest import _projection
    from gateway.secrets import SecretStore

    home = tmp_path_factory.mktemp("he-home")
    generate(home / "landing", 300, seed=11)
    settings = Settings(home=home, spark_master="local[2]", policy_paths=(example_policies,))
    policies = load_policy_set([example_policies])
    store = open_store(spark, settings)
    ds = policies.dataset(DATASET)
    keygen(settings, KEY, dataset=ds)
    ingested = run_ingest(spark, settings, policies, IngestRequest(DATASET, PURPOSE), store=store)
    assert ingested.outputs["encrypted"].rows == ingested.rows_written  # the job wrote one batch
    # These tests drive write_encrypted_columns themselves, from an empty encrypted table.
    shutil.rmtree(LakePaths(settings.lake).encrypted(DATASET, PURPOSE))
    good, source = _good_rows(spark, settings, policies, store)
    plan = plan_protection(policies, DATASET, PURPOSE)
    result = write_encrypted_columns(
        spark,
        settings,
        store,
        ds,
        plan,
        good,
        commit=_commit(policies, source.fingerprint),
        txn=("gateway-he-test", 0),
    )
    assert result is not None and not result.skipped
    keys = SecretStore(settings).keys(frozenset({"customer-key"}))
    expected = _projection(good, ds, plan, keys, 0).toPandas()
    services = build_services(settings, policies)
    secret = load_secret_context(keyholder_folder(settings) / f"{KEY}.secret")
    verify = load_gateway_verify_key(keyholder_folder(settings) / "gateway-signing.pub")
    yield Lake(settings, policies, store, services, spark, expected, secret, verify, result)
    services.close()


def _close(actual: float, expected: float) -> None:
    assert abs(actual - expected) <= REL * abs(expected), (actual, expected)


# -- keys --------------------------------------------------------------------------------


def test_when_keys_are_generated_then_the_gateway_holds_only_the_public_context(lake: Lake) -> None:
    folder = he_folder(lake.settings)
    holder = keyholder_folder(lake.settings)
    assert (holder / f"{KEY}.secret").stat().st_mode & 0o777 == 0o600
    assert (folder / "signing.key").stat().st_mode & 0o777 == 0o600
    assert not list(folder.glob("*.secret"))
    key = load_gateway_key(lake.settings, DATASET)
    assert key.name == KEY and not key.public.context.is_private()
    assert key.fingerprint == lake.secret.fingerprint
    with pytest.raises(ConfigurationError):  # never overwritten
        keygen(lake.settings, KEY, dataset=lake.policies.dataset(DATASET))


def test_when_bfv_is_asked_for_then_the_key_pair_is_bfv(lake: Lake, tmp_path: Path) -> None:
    made = keygen(lake.settings, "bfv-try", scheme="bfv", keyholder=tmp_path)
    assert made.scheme == "bfv"
    assert load_secret_context(made.secret).info.scheme == "bfv"
    assert load_gateway_key(lake.settings, "none", "bfv-try").public.info.scheme == "bfv"


def test_when_the_serving_process_tries_to_decrypt_then_it_cannot(
    lake: Lake, tmp_path: Path
) -> None:
    import tenseal as ts

    result = lake.compute(operation="sum", columns=["income"])
    key = load_gateway_key(lake.settings, DATASET)
    with pytest.raises(HeKeyError):  # decrypt needs the key holder's SecretContext
        decrypt(result.envelope, key.public, lake.verify_key, 10)  # type: ignore[arg-type]
    vector = ts.ckks_vector_from(key.public.context, result.envelope.ciphertext_bytes()[0])
    with pytest.raises(ValueError):  # TenSEAL: the context holds no secret key
        vector.decrypt()
    # a secret context placed where the gateway reads its public context is refused
    secret_bytes = (keyholder_folder(lake.settings) / f"{KEY}.secret").read_bytes()
    planted = he_folder(lake.settings) / "planted.public"
    planted.write_bytes(secret_bytes)
    try:
        with pytest.raises(HeKeyError):
            load_gateway_key(lake.settings, DATASET, "planted")
    finally:
        planted.unlink()


# -- encrypted columns at ingest ---------------------------------------------------------


def test_when_columns_are_encrypted_then_the_table_holds_ciphertexts_and_a_joinable_index(
    lake: Lake,
) -> None:
    from pyspark.sql import functions as F

    paths = LakePaths(lake.settings.lake)
    table = lake.store.read(paths.encrypted(DATASET, PURPOSE))
    governed = lake.store.read(paths.governed(DATASET, PURPOSE))
    assert "income" not in governed.columns and "credit_score" not in governed.columns
    index = {r["entity"] for r in table.filter(F.col("record") == "index").collect()}
    assert index == set(lake.good["_he_entity"])
    assert index == {r["customer_id"] for r in governed.select("customer_id").collect()}
    chunks = table.filter(F.col("record") == "chunk").collect()
    assert {(r["column"], r["part"]) for r in chunks} == {
        (c, p) for c in ("income", "credit_score") for p in ("value", "square")
    }
    assert all(r["chunk_slots"] == 4096 and r["rows"] <= 4096 for r in chunks)
    assert sum(
        r["rows"] for r in chunks if r["column"] == "income" and r["part"] == "value"
    ) == len(lake.good)
    # raw values never appear in plaintext
    raw = {f"{v:.2f}" for v in lake.good["income"].dropna()[:20]}
    cells = {str(v) for r in table.select("entity", "column").collect() for v in r}
    assert not raw & cells


def test_when_the_same_input_is_encrypted_again_then_nothing_is_written(lake: Lake) -> None:
    good, source = _good_rows(lake.spark, lake.settings, lake.policies, lake.store)
    plan = plan_protection(lake.policies, DATASET, PURPOSE)
    again = write_encrypted_columns(
        lake.spark,
        lake.settings,
        lake.store,
        lake.policies.dataset(DATASET),
        plan,
        good,
        commit=_commit(lake.policies, source.fingerprint),
        txn=("gateway-he-test", 0),
    )
    assert again is not None and again.skipped and again.version == lake.encrypted.version


def test_when_a_purpose_encrypts_nothing_then_no_table_is_written(lake: Lake) -> None:
    good, source = _good_rows(lake.spark, lake.settings, lake.policies, lake.store)
    plan = plan_protection(lake.policies, DATASET, "marketing")
    assert (
        write_encrypted_columns(
            lake.spark,
            lake.settings,
            lake.store,
            lake.policies.dataset(DATASET),
            plan,
            good,
            commit=_commit(lake.policies, source.fingerprint),
            txn=("gateway-he-none", 0),
        )
        is None
    )


def test_when_the_estimate_exceeds_the_limit_then_ingest_refuses_before_encrypting(
    lake: Lake,
) -> None:
    ds = lake.policies.dataset(DATASET)
    small = ds.model_copy(update={"he": HeSettings(max_ciphertext_bytes=100_000)})
    good, source = _good_rows(lake.spark, lake.settings, lake.policies, lake.store)
    plan = plan_protection(lake.policies, DATASET, PURPOSE)
    with pytest.raises(IngestError, match="above the limit of 100,000 bytes"):
        write_encrypted_columns(
            lake.spark,
            lake.settings,
            lake.store,
            small,
            plan,
            good,
            commit=_commit(lake.policies, source.fingerprint),
            txn=("gateway-he-limit", 0),
        )
    assert not lake.store.transaction_done(
        LakePaths(lake.settings.lake).encrypted(DATASET, PURPOSE), ("gateway-he-limit", 0)
    )


# -- computation -------------------------------------------------------------------------


def test_when_sum_and_mean_are_computed_over_all_rows_then_they_match_the_plaintext(
    lake: Lake,
) -> None:
    income = lake.good["income"].astype(float)
    _close(lake.decrypt(lake.compute(operation="sum", columns=["income"])), float(income.sum()))
    mean = lake.compute(operation="mean", columns=["income"])
    assert mean.rows == int(income.notna().sum())
    _close(lake.decrypt(mean), float(income.mean()))
    score = lake.good["credit_score"].astype(float)
    _close(
        lake.decrypt(lake.compute(operation="sum", columns=["credit_score"])), float(score.sum())
    )
    variance = lake.decrypt(lake.compute(operation="variance", columns=["credit_score"]))
    _close(variance, float(score.var(ddof=0)))
    assert lake.decrypt(lake.compute(operation="count", columns=["income"])) == mean.rows


def test_when_a_filter_on_governed_columns_is_given_then_only_those_rows_are_aggregated(
    lake: Lake,
) -> None:
    governed = lake.store.read(LakePaths(lake.settings.lake).governed(DATASET, PURPOSE))
    chosen = {
        r["customer_id"]
        for r in governed.filter("country = 'DE' and consent_research = true").collect()
    }
    assert len(chosen) >= 10
    rows = lake.good[lake.good["_he_entity"].isin(chosen)]
    where = "country = 'DE' and consent_research = true"
    total = lake.compute(operation="sum", columns=["income"], where=where)
    _close(lake.decrypt(total), float(rows["income"].sum()))
    mean = lake.compute(operation="mean", columns=["credit_score"], where=where)
    assert mean.rows == int(rows["credit_score"].notna().sum()) and mean.where == where
    _close(lake.decrypt(mean), float(rows["credit_score"].mean()))


def test_when_a_weighted_sum_is_computed_then_it_matches_the_plaintext(lake: Lake) -> None:
    sample = lake.good.dropna(subset=["income"]).head(40)
    weights = {e: 0.5 + i / 10 for i, e in enumerate(sample["_he_entity"])}
    result = lake.compute(operation="weighted_sum", columns=["income"], entity_weights=weights)
    expected = sum(
        weights[e] * x for e, x in zip(sample["_he_entity"], sample["income"], strict=True)
    )
    _close(lake.decrypt(result), float(expected))


def test_when_linear_scores_are_computed_then_each_entity_gets_w_x_plus_b(lake: Lake) -> None:
    sample = lake.good.dropna(subset=["income", "credit_score"]).sample(7, random_state=3)
    entities = list(sample["_he_entity"])
    result = lake.compute(
        operation="linear_scores",
        columns=["income", "credit_score"],
        weights=[0.00002, 0.01],
        bias=-3.5,
        entities=entities,
    )
    assert result.entities == tuple(entities)
    scores = lake.decrypt(result)
    expected = (
        0.00002 * sample["income"].to_numpy() + 0.01 * sample["credit_score"].to_numpy() - 3.5
    )
    assert np.allclose(scores, expected, rtol=REL, atol=1e-9)
    decrypted = decrypt_result(result, lake.secret, lake.verify_key, 10).to_json()
    assert set(decrypted["scores"]) == set(entities)


def test_when_a_computation_runs_then_it_is_audited_without_values(lake: Lake) -> None:
    lake.compute(operation="sum", columns=["income"])
    stored = lake.services.audit.query(subject="dave", limit=1000)
    events = [s.event for s in stored if s.event.kind == "he_compute"]
    assert events
    released = dict(events[-1].released)
    assert released["operation"] == "sum" and released["columns"] == ("income",)
    assert released["rows"] > 0


def test_when_a_column_is_not_encrypted_for_the_purpose_then_it_is_refused(lake: Lake) -> None:
    from gateway.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="not encrypted"):
        lake.compute(operation="sum", columns=["country"])
    with pytest.raises(ValidationFailed, match="invalid filter"):
        lake.compute(operation="sum", columns=["income"], where="income > 3")


# -- refusals ----------------------------------------------------------------------------


def _few_rows_envelope(lake: Lake) -> HeResult:
    """A result over 3 rows made by an evaluator without a minimum (a misbehaving gateway)."""
    from gateway.he import read_encrypted_table

    table = read_encrypted_table(
        lake.store, LakePaths(lake.settings.lake).encrypted(DATASET, PURPOSE)
    )
    column = table.column("income", squares=False)
    key = load_gateway_key(lake.settings, DATASET)
    signing = load_gateway_signing_key(lake.settings)
    mask = np.zeros(column.rows, dtype=bool)
    mask[np.flatnonzero(column.valid)[:3]] = True
    envelope = HeEvaluator(key.public, signing).sum(column, mask)
    return HeResult(
        dataset=DATASET,
        purpose=PURPOSE,
        key=key.name,
        operation="sum",
        columns=envelope.columns,
        rows=envelope.rows,
        envelope=envelope,
    ).signed(signing)


def test_when_too_few_rows_are_selected_then_gateway_and_key_holder_refuse(lake: Lake) -> None:
    entity = str(lake.good["_he_entity"].iloc[0])
    governed_filter = f"customer_id = '{entity}'"
    with pytest.raises(HeTooFewRows):
        lake.compute(operation="sum", columns=["income"], where=governed_filter)
    with pytest.raises(TooFewRows):
        decrypt_result(_few_rows_envelope(lake), lake.secret, lake.verify_key, 10)


def test_when_a_result_is_tampered_with_then_decryption_refuses(lake: Lake) -> None:
    result = lake.compute(operation="sum", columns=["income"])
    with pytest.raises(SignatureInvalid):
        decrypt_result(result.model_copy(update={"rows": 10_000}), lake.secret, lake.verify_key, 10)
    forged = result.envelope.model_copy(update={"rows": result.rows + 1})
    resigned = result.model_copy(update={"envelope": forged, "rows": forged.rows}).signed(
        load_gateway_signing_key(lake.settings)
    )
    with pytest.raises(SignatureInvalid):  # the envelope's own signature no longer verifies
        decrypt_result(resigned, lake.secret, lake.verify_key, 10)
    from privacy.he import generate_signing_key

    with pytest.raises(SignatureInvalid):  # another signer
        decrypt_result(result, lake.secret, generate_signing_key().public_key(), 10)


def test_when_the_secret_context_is_of_another_key_pair_then_decryption_refuses(
    lake: Lake, tmp_path: Path
) -> None:
    made = keygen(lake.settings, "other-pair", keyholder=tmp_path)
    other = load_secret_context(made.secret)
    result = lake.compute(operation="sum", columns=["income"])
    with pytest.raises(FingerprintMismatch):
        decrypt_result(result, other, lake.verify_key, 10)


# -- API ---------------------------------------------------------------------------------


def test_when_dave_calls_the_route_then_he_gets_a_result_only_the_key_holder_decrypts(
    lake: Lake,
) -> None:
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.api.routers.he import router

    services = build_services(lake.settings, lake.policies)
    try:
        keys = {
            who: services.api_keys.create(who, roles, policies=services.policies).secret
            for who, roles in {"dave": ["credit-modeller"], "bob": ["fraud-analyst"]}.items()
        }
        app = create_app(services)
        app.include_router(router)
        app.state.spark = lake.spark
        app.state.he_store = lake.store
        body = {"dataset": DATASET, "operation": "mean", "columns": ["income"]}
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.post("/v1/he/compute", json=body).status_code == 401
            dave = {"Authorization": f"Bearer {keys['dave']}", "X-Purpose": PURPOSE}
            assert client.post("/v1/he/compute", json=body, headers=dave).status_code == 403
            ack = client.post(f"/v1/purposes/{PURPOSE}/acknowledge", headers=dave)
            assert ack.status_code == 200, ack.text
            response = client.post("/v1/he/compute", json=body, headers=dave)
            assert response.status_code == 200, response.text
            result = HeResult.model_validate_json(response.text)
            _close(lake.decrypt(result), float(lake.good["income"].mean()))
            few = {**body, "where": f"customer_id = '{lake.good['_he_entity'].iloc[0]}'"}
            refused = client.post("/v1/he/compute", json=few, headers=dave)
            assert refused.status_code == 403 and refused.json()["type"].endswith("he-too-few-rows")
            bob = {"Authorization": f"Bearer {keys['bob']}", "X-Purpose": PURPOSE}
            client.post(f"/v1/purposes/{PURPOSE}/acknowledge", headers=bob)
            assert client.post("/v1/he/compute", json=body, headers=bob).status_code in (403, 404)
        events = services.audit.query(subject="dave", action="he_compute", limit=100)
        assert any(
            s.event.kind == "he_compute" and s.event.released["operation"] == "mean" for s in events
        )
    finally:
        services.close()


def test_when_the_cli_decrypts_a_result_then_it_prints_the_value(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from gateway.cli.he import he_app

    monkeypatch.setenv("GATEWAY_HOME", str(lake.settings.home))
    monkeypatch.setenv(
        "GATEWAY_POLICY_PATHS", json.dumps([str(p) for p in lake.settings.policy_paths])
    )
    statement = lake.policies.organisation.purposes[PURPOSE].statement_version
    lake.services.acknowledgements.acknowledge("dave", PURPOSE, statement)
    path = tmp_path / "result.json"
    args = ["compute", "--as", "dave", "--purpose", PURPOSE, "--dataset", DATASET]
    args += ["--operation", "sum", "--column", "credit_score", "--out", str(path)]
    computed = CliRunner().invoke(he_app, args)
    assert computed.exit_code == 0, computed.output
    result = HeResult.model_validate_json(path.read_text())
    secret = keyholder_folder(lake.settings) / f"{KEY}.secret"
    out = CliRunner().invoke(he_app, ["decrypt", "--secret-context", str(secret), str(path)])
    assert out.exit_code == 0, out.output
    _close(json.loads(out.output)["value"], float(lake.good["credit_score"].sum()))
    bad = tmp_path / "bad.json"
    bad.write_text(result.model_copy(update={"rows": 3}).model_dump_json())
    refused = CliRunner().invoke(he_app, ["decrypt", "--secret-context", str(secret), str(bad)])
    assert refused.exit_code != 0 and isinstance(refused.exception, AccessDenied)


def test_when_scores_are_asked_for_a_filter_then_every_matching_entity_is_scored(
    lake: Lake,
) -> None:
    governed = lake.store.read(LakePaths(lake.settings.lake).governed(DATASET, PURPOSE))
    where = "country = 'FR' and consent_marketing = true"
    chosen = {r["customer_id"] for r in governed.filter(where).collect()}
    result = lake.compute(
        operation="linear_scores", columns=["credit_score"], weights=[2.0], where=where
    )
    assert set(result.entities) == chosen
    scores = dict(zip(result.entities, lake.decrypt(result).tolist(), strict=True))
    raw = lake.good.set_index("_he_entity")["credit_score"]
    for entity, score in scores.items():
        expected = 0.0 if np.isnan(raw[entity]) else 2.0 * float(raw[entity])
        assert abs(score - expected) <= REL * max(abs(expected), 1.0)


def test_when_a_second_batch_is_appended_then_re_ingested_entities_supersede_old_rows(
    lake: Lake, tmp_path: Path
) -> None:
    from pyspark.sql import functions as F

    settings = lake.settings.model_copy(update={"lake_root": tmp_path / "lake"})
    ds = lake.policies.dataset(DATASET)
    plan = plan_protection(lake.policies, DATASET, PURPOSE)
    good, source = _good_rows(lake.spark, settings, lake.policies, lake.store)
    commit = _commit(lake.policies, source.fingerprint)
    write_encrypted_columns(
        lake.spark, settings, lake.store, ds, plan, good, commit=commit, txn=("he-b1", 0), rows=300
    )
    raw_ids = sorted(r["customer_id"] for r in good.select("customer_id").collect())[:60]
    changed = good.filter(F.col("customer_id").isin(raw_ids)).withColumn(
        "income", F.col("income") * 2
    )
    write_encrypted_columns(
        lake.spark, settings, lake.store, ds, plan, changed, commit=commit, txn=("he-b2", 0)
    )
    services = build_services(settings, lake.policies)
    try:
        request = HeComputeRequest(dataset=DATASET, operation="sum", columns=("income",))
        result = compute_he(
            services,
            local_principal(services, "dave"),
            PURPOSE,
            request,
            spark=lake.spark,
            store=lake.store,
        )
    finally:
        services.close()
    assert result.rows == int(lake.good["income"].notna().sum())
    expected = float(lake.good["income"].sum()) + float(
        changed.agg(F.sum(F.col("income") / 2)).first()[0]  # type: ignore[index]
    )
    _close(decrypt_result(result, lake.secret, lake.verify_key, 10).value, expected)


def test_when_keygen_runs_from_the_cli_then_it_prints_ids_and_writes_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_policies: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from gateway.cli.he import he_app

    monkeypatch.setenv("GATEWAY_HOME", str(tmp_path))
    monkeypatch.setenv("GATEWAY_POLICY_PATHS", json.dumps([str(example_policies)]))
    out = CliRunner().invoke(he_app, ["keygen", "--name", "cli-key", "--dataset", DATASET])
    assert out.exit_code == 0, out.output
    assert "fingerprint:" in out.output and "key id:" in out.output
    assert (tmp_path / "keyholder" / "cli-key.secret").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets" / "he" / "cli-key.public").exists()
    assert not (tmp_path / "secrets" / "he" / "cli-key.secret").exists()
    estimate = CliRunner().invoke(he_app, ["estimate", "--dataset", DATASET, "--rows", "1000"])
    assert estimate.exit_code == 0 and "ciphertexts: 2" in estimate.output
