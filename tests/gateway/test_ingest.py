"""The governed ingest job: nothing sensitive past the policy, nothing lost, nothing twice."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.datagen import generate, read_canaries
from gateway.errors import IngestError, StorageError
from gateway.ingest import IngestRequest, LakePaths, dry_run, plan_protection, run_ingest
from gateway.ingest.protect import protect_frame
from gateway.policy import PolicySet, ProtectionKind, load_policy_set
from gateway.secrets import SecretStore
from gateway.settings import Settings
from gateway.storage import CommitInfo, DeltaStore, open_store

pytestmark = pytest.mark.spark

PAIRS = [
    ("customers", "fraud-detection"),
    ("customers", "marketing"),
    ("customers", "credit-risk"),
    ("customers", "research"),
    ("transactions", "fraud-detection"),
    ("transactions", "research"),
    ("transactions", "credit-risk"),
]


@dataclass
class Lake:
    settings: Settings
    policies: PolicySet
    store: DeltaStore
    canaries: dict[str, dict[str, tuple[str, ...]]]
    results: dict[tuple[str, str], object]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory: pytest.TempPathFactory, example_policies: Path) -> Iterator[Lake]:
    """Example data generated once and ingested for every (dataset, purpose) of the examples."""
    home = tmp_path_factory.mktemp("gateway-home")
    generate(home / "landing", 600, seed=7)
    settings = Settings(home=home, spark_master="local[2]")
    policies = load_policy_set([example_policies])
    store = open_store(spark, settings)
    results = {
        pair: run_ingest(spark, settings, policies, IngestRequest(*pair), store=store)
        for pair in PAIRS
    }
    yield Lake(settings, policies, store, read_canaries(home / "landing"), results)


def all_cells(frame) -> list[str]:
    return [str(value) for row in frame.collect() for value in row if value is not None]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{d}-{p}" for d, p in PAIRS])
def test_when_a_dataset_is_governed_then_no_raw_value_of_a_protected_column_appears(
    lake: Lake, pair
) -> None:
    dataset, purpose = pair
    ds = lake.policies.dataset(dataset)
    paths = LakePaths(lake.settings.lake)
    cells = all_cells(lake.store.read(paths.governed(dataset, purpose)))
    delta_log = "".join(
        p.read_text() for p in (paths.governed(dataset, purpose) / "_delta_log").glob("*.json")
    )
    checked = 0
    for column, values in lake.canaries.get(dataset, {}).items():
        protection = ds.protection(column, purpose, lake.policies.lowest_clearance)
        assert protection is not None
        if protection.kind is ProtectionKind.KEEP:
            continue
        for value in values:
            checked += 1
            assert not any(value in cell for cell in cells), (
                f"{column} canary leaked into {dataset}/{purpose}"
            )
            assert value not in delta_log
    assert checked > 0


def test_when_a_purpose_has_a_row_filter_then_filtered_rows_are_absent(lake: Lake) -> None:
    frame = lake.store.read(LakePaths(lake.settings.lake).governed("customers", "marketing"))
    consents = {row["consent_marketing"] for row in frame.select("consent_marketing").collect()}
    result = lake.results[("customers", "marketing")]
    assert consents == {True}
    assert result.rows_filtered > 0
    assert result.rows_written == frame.count()
    assert result.rows_read == result.rows_quarantined + result.rows_filtered + result.rows_written


def test_when_columns_are_dropped_dp_only_or_encrypted_then_they_are_not_in_the_governed_table(
    lake: Lake,
) -> None:
    columns = set(
        lake.store.read(LakePaths(lake.settings.lake).governed("customers", "credit-risk")).columns
    )
    assert not columns & {"full_name", "national_id", "street_address"}  # dropped
    assert "income" not in columns and "credit_score" not in columns  # encrypted for credit-risk
    research = set(
        lake.store.read(LakePaths(lake.settings.lake).governed("customers", "research")).columns
    )
    assert "income" not in research and "credit_score" not in research  # dp_only for research


def test_when_rows_are_bad_then_they_are_quarantined_with_reasons_and_counted(lake: Lake) -> None:
    result = lake.results[("customers", "fraud-detection")]
    quarantine = lake.store.read(LakePaths(lake.settings.lake).quarantine("customers"))
    rows = quarantine.collect()
    assert result.rows_quarantined > 0
    assert (
        len(rows) == result.rows_quarantined
    )  # other purposes reuse the same input: no duplicates
    assert all(row["_reasons"] for row in rows)
    assert all(":" in reason for row in rows for reason in row["_reasons"])


def test_when_dp_only_columns_exist_then_the_dp_zone_holds_them_with_the_entity_key(
    lake: Lake,
) -> None:
    zone = lake.store.read(LakePaths(lake.settings.lake).dp_zone("customers"))
    assert {"customer_id", "income", "credit_score", "consent_research"} <= set(zone.columns)
    assert "full_name" not in zone.columns
    assert (
        zone.count()
        == lake.results[("customers", "research")].rows_read
        - lake.results[("customers", "research")].rows_quarantined
    )


def test_when_two_datasets_tokenize_with_one_key_then_they_join_on_the_token(lake: Lake) -> None:
    paths = LakePaths(lake.settings.lake)
    customers = lake.store.read(paths.governed("customers", "fraud-detection")).select(
        "customer_id"
    )
    transactions = lake.store.read(paths.governed("transactions", "fraud-detection")).select(
        "customer_id"
    )
    joined = transactions.join(customers, "customer_id")
    assert joined.count() > 0.9 * transactions.count()


def test_when_a_commit_is_read_back_then_it_carries_policy_version_and_protection_facts(
    lake: Lake,
) -> None:
    history = lake.store.history(
        LakePaths(lake.settings.lake).governed("customers", "fraud-detection")
    )
    commit = history[-1].commit
    assert commit is not None
    assert commit.policy_version == lake.policies.version
    assert commit.purpose == "fraud-detection"
    facts = json.loads(commit.extra["protection"])
    assert facts["customer_id"]["strategy"] == "tokenize"
    assert facts["customer_id"]["key_ids"][0].startswith("customer-key@")
    assert facts["full_name"] == {"protection": "drop"}
    assert facts["_k_anonymity"]["k_achieved"] >= 5
    secret = SecretStore(lake.settings).key("customer-key").secret.hex()
    assert secret not in json.dumps(commit.extra)


def test_when_the_same_input_is_ingested_again_then_nothing_is_added(lake: Lake, spark) -> None:
    path = LakePaths(lake.settings.lake).governed("customers", "marketing")
    before = lake.store.version(path)
    again = run_ingest(
        spark,
        lake.settings,
        lake.policies,
        IngestRequest("customers", "marketing"),
        store=lake.store,
    )
    assert again.skipped
    assert lake.store.version(path) == before


def test_when_a_write_fails_midway_then_the_table_keeps_its_version_and_a_rerun_completes(
    lake: Lake, spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "more"
    generate(landing, 120, seed=99)
    path = LakePaths(lake.settings.lake).governed("transactions", "fraud-detection")
    before_version, before_rows = lake.store.version(path), lake.store.read(path).count()
    original = DeltaStore.write

    def failing(self, df, target, **kwargs):  # the Spark job runs, then the commit never happens
        if Path(target) == path:
            raise StorageError("simulated crash before commit")
        return original(self, df, target, **kwargs)

    monkeypatch.setattr(DeltaStore, "write", failing)
    request = IngestRequest("transactions", "fraud-detection", source=str(landing / "transactions"))
    with pytest.raises(StorageError):
        run_ingest(spark, lake.settings, lake.policies, request, store=lake.store)
    assert lake.store.version(path) == before_version
    assert lake.store.read(path).count() == before_rows
    monkeypatch.setattr(DeltaStore, "write", original)
    done = run_ingest(spark, lake.settings, lake.policies, request, store=lake.store)
    assert lake.store.read(path).count() == before_rows + done.rows_written
    assert run_ingest(spark, lake.settings, lake.policies, request, store=lake.store).skipped


def test_when_the_projection_has_only_builtin_strategies_then_the_plan_has_no_python_udf(
    lake: Lake, spark
) -> None:
    plan = plan_protection(lake.policies, "customers", "fraud-detection")
    strategies = {c.protection.strategy for c in plan.columns}
    assert "encrypt_deterministic" not in strategies and "fpe" not in strategies
    ds = lake.policies.dataset("customers")
    keys = SecretStore(lake.settings).keys(plan.key_references)
    source = spark.read.option("header", "true").csv(str(lake.settings.landing / "customers"))
    typed = source.select(
        *[source[c].cast(ds.columns[c].type.spark_sql).alias(c) for c in ds.columns]
    )
    physical = (
        protect_frame(typed, ds, plan, keys, seed=1)
        ._jdf.queryExecution()
        .executedPlan()
        .toString()
    )
    assert (
        "PythonUDF" not in physical
        and "ArrowEvalPython" not in physical
        and "BatchEvalPython" not in physical
    )


def test_when_a_column_has_no_protection_decided_then_the_job_refuses_to_run(lake: Lake) -> None:
    ds = lake.policies.dataset("customers")
    spec = ds.columns["email"].model_copy(update={"protect": None, "purposes": {}})
    broken = ds.model_copy(update={"columns": {**ds.columns, "email": spec}})
    policies = PolicySet(
        lake.policies.organisation,
        {**lake.policies.datasets, "customers": broken},
        lake.policies.files,
    )
    with pytest.raises(
        IngestError,
        match="column 'email' of 'customers' is classified 'confidential' and has no protection",
    ):
        plan_protection(policies, "customers", "marketing")


def test_when_the_source_has_an_undeclared_column_then_the_job_refuses(
    lake: Lake, spark, tmp_path: Path
) -> None:
    source = tmp_path / "customers"
    shutil.copytree(lake.settings.landing / "customers", source)
    part = next(source.glob("*.csv"))
    lines = part.read_text().splitlines()
    part.write_text(
        "\n".join([lines[0] + ",secret_notes"] + [line + ",x" for line in lines[1:]]) + "\n"
    )
    with pytest.raises(IngestError, match="has columns the policy does not declare: secret_notes"):
        run_ingest(
            spark,
            lake.settings,
            lake.policies,
            IngestRequest("customers", "marketing", source=str(source)),
            store=lake.store,
        )


def test_when_a_purpose_is_not_served_then_the_job_refuses(lake: Lake, spark) -> None:
    with pytest.raises(IngestError, match="does not serve purpose 'marketing'"):
        run_ingest(
            spark,
            lake.settings,
            lake.policies,
            IngestRequest("transactions", "marketing"),
            store=lake.store,
        )


def test_when_dry_running_then_counts_and_canary_examples_are_shown_and_nothing_is_written(
    lake: Lake, spark, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, landing_root=lake.settings.landing, spark_master="local[2]")
    report = dry_run(
        spark, settings, lake.policies, "customers", "marketing", store=lake.store, sample_rows=200
    )
    by_column = {c.column: c for c in report.columns}
    assert report.sample_rows == 200
    assert report.rows_filtered > 0
    assert (
        by_column["customer_id"].cells_changed
        == 200 - report.rows_quarantined - report.rows_filtered
    )
    assert by_column["country"].cells_changed == 0
    assert by_column["postal_code"].example_after == "101"
    assert report.not_in_governed_table["full_name"] == "drop"
    real = {v for values in lake.canaries["customers"].values() for v in values}
    assert not any(c.example_before in real for c in report.columns)
    assert not (tmp_path / "lake").exists()


def test_when_the_job_completes_then_lineage_events_carry_the_protection_facts(lake: Lake) -> None:
    events = [
        json.loads(line)
        for line in (lake.settings.home / "lineage" / "events.jsonl").read_text().splitlines()
    ]
    complete = [
        e
        for e in events
        if e["eventType"] == "COMPLETE" and e["job"]["name"] == "ingest.customers.marketing"
    ]
    facet = complete[0]["outputs"][0]["facets"]["gatewayProtection"]
    assert facet["purpose"] == "marketing"
    assert facet["columns"]["email"]["strategy"] == "encrypt_deterministic"
    assert {e["eventType"] for e in events} >= {"START", "COMPLETE"}


def test_when_merging_then_rows_with_the_same_key_are_replaced_not_duplicated(
    lake: Lake, spark, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, landing_root=lake.settings.landing, spark_master="local[2]")
    store = open_store(spark, settings)
    first = run_ingest(
        spark,
        settings,
        lake.policies,
        IngestRequest("transactions", "fraud-detection", mode="merge"),
        store=store,
    )
    path = LakePaths(settings.lake).governed("transactions", "fraud-detection")
    other = tmp_path / "overlap"
    generate(other, 600, seed=7)  # the same rows again, as a different file set
    for part in (other / "transactions").glob("part-*.csv"):  # new file names, new fingerprint
        part.rename(part.with_name("renamed-" + part.name))
    second = run_ingest(
        spark,
        settings,
        lake.policies,
        IngestRequest(
            "transactions", "fraud-detection", source=str(other / "transactions"), mode="merge"
        ),
        store=store,
    )
    assert not second.skipped
    assert store.read(path).count() == first.rows_written
    assert CommitInfo.from_metadata({}) is None


def test_when_keyed_strategies_run_then_no_key_material_appears_in_spark_plans(lake: Lake, spark) -> None:
    import hmac as _hmac  # noqa: F401 - documents that pads derive from the HMAC key

    plan = plan_protection(lake.policies, "transactions", "research")
    ds = lake.policies.dataset("transactions")
    keys = SecretStore(lake.settings).keys(plan.key_references)
    source = spark.read.option("header", "true").csv(str(lake.settings.landing / "transactions"))
    typed = source.select(*[source[c].cast(ds.columns[c].type.spark_sql).alias(c) for c in ds.columns])
    frame = protect_frame(typed, ds, plan, keys, seed=1)
    execution = frame._jdf.queryExecution()
    printed = (execution.logical().toString() + execution.optimizedPlan().toString()
               + execution.executedPlan().toString()).lower()
    assert "__secret_" in printed  # the keys are referenced by name
    for material in keys.values():
        padded = material.secret.ljust(64, b"\0")
        for pad in (0x36, 0x5C):
            assert bytes(b ^ pad for b in padded).hex() not in printed
        assert material.secret.hex() not in printed
    assert frame.count() > 0


def test_when_an_audit_sink_is_given_then_the_run_is_recorded_without_values(lake: Lake, spark) -> None:
    events = []
    result = run_ingest(spark, lake.settings, lake.policies, IngestRequest("customers", "marketing", principal="alice"),
                        store=lake.store, audit=events.append)
    (event,) = events
    assert event.kind == "ingest" and event.subject == "alice" and event.resource == "dataset:customers"
    assert event.released["skipped"] is result.skipped
    assert event.policy_version == lake.policies.version


def _with_source(policies: PolicySet, dataset: str, fmt: str, path: str) -> PolicySet:
    ds = policies.dataset(dataset)
    changed = ds.model_copy(update={"source": ds.source.model_copy(update={"format": fmt, "path": path})})
    return PolicySet(policies.organisation, {**policies.datasets, dataset: changed}, policies.files)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_when_the_source_is_json_lines_or_parquet_then_it_is_governed_like_csv(lake: Lake, spark, tmp_path: Path, fmt: str) -> None:
    raw = tmp_path / "raw"
    report = generate(raw, 150, seed=5, fmt="jsonl" if fmt == "jsonl" else "csv")
    source = raw / "customers"
    if fmt == "parquet":
        source = tmp_path / "parquet"
        spark.read.option("header", "true").csv(str(raw / "customers")).write.parquet(str(source))
    settings = Settings(home=tmp_path / "home", spark_master="local[2]")
    policies = _with_source(lake.policies, "customers", fmt, str(source))
    result = run_ingest(spark, settings, policies, IngestRequest("customers", "fraud-detection"),
                        store=open_store(spark, settings))
    assert result.rows_read == report.rows["customers"]
    assert result.rows_quarantined == report.bad_rows["customers"]
    assert result.rows_written == result.rows_read - result.rows_quarantined


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{d}-{p}" for d, p in PAIRS])
def test_when_a_column_is_masked_then_none_of_its_raw_values_appears_in_that_column(lake: Lake, spark, pair) -> None:
    dataset, purpose = pair
    ds = lake.policies.dataset(dataset)
    raw = spark.read.option("header", "true").csv(str(lake.settings.landing / dataset))
    governed = lake.store.read(LakePaths(lake.settings.lake).governed(dataset, purpose))
    for column in governed.columns:
        protection = ds.protection(column, purpose, lake.policies.lowest_clearance)
        if protection is None or protection.kind is ProtectionKind.KEEP:
            continue
        values = {row[0] for row in raw.select(column).distinct().collect() if row[0] and len(row[0]) >= 6}
        cells = {str(row[0]) for row in governed.select(column).distinct().collect() if row[0] is not None}
        if ds.columns[column].type.value == "string":
            leaked = [v for v in values if any(v in cell for cell in cells)]
        else:  # numbers and times: the exact rendering (substrings of numbers match by chance)
            leaked = sorted(values & {cell.replace("T", " ") for cell in cells})
        assert not leaked, f"{dataset}/{purpose}: raw {column} values in the governed table: {leaked[:3]}"
