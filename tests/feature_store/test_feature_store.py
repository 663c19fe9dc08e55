"""The Feast facade: objects and tags, plan/apply, point-in-time joins, incremental loads,
and the same answers from every registry and online store (no Spark: Delta via delta-rs)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from deltalake import write_deltalake

from feature_store import FeatureSpec, PermissionSpec, Publication, StoreConfig, ViewSpec
from feature_store.store import GovernedFeatureStore, build_objects

pytestmark = [
    # The only warning tolerated: pandas, raised inside Feast's dask point-in-time join.
    pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays on .fillna:FutureWarning"),
]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POSTGRES = "postgresql://root@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _table(path: Path, rows: list[tuple[str, datetime, float, str]], mode: str = "append") -> None:
    frame = pd.DataFrame(rows, columns=["customer_id", "updated_at", "score", "band"])
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    write_deltalake(str(path), frame, mode=mode)  # type: ignore[arg-type]


def _spec(
    path: Path, view: str = "risk", purpose: str = "fraud-detection", ttl_days: int = 30
) -> ViewSpec:
    return ViewSpec(
        dataset="customers",
        view=view,
        purpose=purpose,
        entity="customer_id",
        entity_classification="internal",
        entity_protection="tokenize",
        source_path=str(path),
        timestamp_field="updated_at",
        features=(
            FeatureSpec(
                name="score",
                kind="double",
                classification="confidential",
                protection="round(to=50)",
            ),
            FeatureSpec(name="band", kind="string", classification="internal", protection="keep"),
        ),
        ttl_seconds=ttl_days * 86400,
        owner="alice",
        description="risk features",
        policy_version="v1",
        dataset_version="d1",
    )


def _publication(*views: ViewSpec) -> Publication:
    purposes = sorted({v.purpose for v in views})
    return Publication(
        policy_version="v1",
        views=views,
        permissions=tuple(
            PermissionSpec(
                name=f"read__{p.replace('-', '_')}",
                purpose=p,
                views=tuple(v.name for v in views if v.purpose == p),
                roles=("fraud-analyst",),
            )
            for p in purposes
        ),
    )


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "governed" / "customers" / "fraud-detection"
    _table(
        path,
        [
            ("c1", T0, 100.0, "low"),
            ("c1", T0 + timedelta(days=2), 200.0, "mid"),
            ("c2", T0 + timedelta(days=1), 300.0, "high"),
            ("c3", T0 - timedelta(days=90), 50.0, "low"),  # older than the 30-day TTL
        ],
    )
    return path


def _store(tmp_path: Path, **kwargs: object) -> GovernedFeatureStore:
    project = "t" + uuid.uuid4().hex[:10]
    return GovernedFeatureStore(StoreConfig(root=tmp_path / "feast", project=project, **kwargs))  # type: ignore[arg-type]


def test_when_objects_are_built_then_every_one_is_tagged(table: Path, tmp_path: Path) -> None:
    pub = _publication(_spec(table), _spec(table, view="profile"))
    objs = build_objects(pub, StoreConfig(root=tmp_path))
    assert [v.name for v in objs.views] == ["risk__fraud_detection", "profile__fraud_detection"]
    assert [s.name for s in objs.services] == ["fraud_detection"]
    for obj in [objs.project, *objs.all()]:
        assert obj.tags["managed_by"] == "gateway", obj.name
        assert obj.tags["policy_version"] == "v1", obj.name
    for obj in [*objs.views, *objs.services]:
        assert {"dataset", "purpose", "classification", "protection"} <= set(obj.tags), obj.name
    view = objs.views[0]
    assert view.tags["classification"] == "confidential,internal"
    assert view.tags["protection"] == '{"band":"keep","score":"round(to=50)"}'
    assert {f.name: f.tags["protection"] for f in view.features} == {
        "score": "round(to=50)",
        "band": "keep",
    }
    assert objs.entities[0].tags["protection"] == "fraud-detection=tokenize"
    # permissions are scoped by exact names, never by tags (Feast ignores required_tags)
    assert objs.permissions[0].name_patterns == [
        "^risk__fraud_detection$",
        "^profile__fraud_detection$",
        "^fraud_detection$",
    ]


def test_feast_required_tags_fail_open_so_permissions_do_not_rely_on_them(
    table: Path, tmp_path: Path
) -> None:
    from feast import FeatureView
    from feast.permissions.permission import Permission

    view = build_objects(_publication(_spec(table)), StoreConfig(root=tmp_path)).views[0]
    scoped = Permission(name="p", types=[FeatureView], required_tags={"purpose": "marketing"})
    assert view.tags["purpose"] == "fraud-detection"
    assert scoped.match_resource(view)  # matches although the tag differs: fails open


def test_when_planning_and_applying_then_changes_are_shown_once_and_stale_objects_deleted(
    table: Path, tmp_path: Path
) -> None:
    store = _store(tmp_path)
    pub = _publication(_spec(table), _spec(table, view="profile"))
    plan = store.plan(pub)
    created = {
        (kind.split(".")[-1], name) for kind, name, change in plan.changes if change == "create"
    }
    assert ("FEATURE_VIEW", "risk__fraud_detection") in created
    assert ("FEATURE_SERVICE", "fraud_detection") in created
    assert ("PERMISSION", "read__fraud_detection") in created
    store.apply(pub)
    assert store.plan(pub).empty
    registry_view = store.feast.get_feature_view("risk__fraud_detection")
    assert registry_view.tags["protection"] == '{"band":"keep","score":"round(to=50)"}'
    for obj in [
        *store.feast.list_entities(),
        *store.feast.list_feature_services(),
        *store.feast.list_permissions(),
    ]:
        assert obj.tags["managed_by"] == "gateway"
    smaller = _publication(_spec(table))
    assert ("feature_view", "profile__fraud_detection") in store.plan(smaller).deletions
    store.apply(smaller)
    assert sorted(store.published()) == ["risk__fraud_detection"]


def test_when_reading_history_then_values_are_point_in_time_correct(
    table: Path, tmp_path: Path
) -> None:
    store = _store(tmp_path)
    store.apply(_publication(_spec(table)))
    entity_df = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c1", "c2", "c2", "c3"],
            "event_timestamp": pd.to_datetime(
                [
                    T0 - timedelta(hours=1),  # before any value: null
                    T0 + timedelta(days=1),  # the first value
                    T0 + timedelta(days=3),  # the second value, not the first
                    T0 + timedelta(hours=23),  # before c2's only value: null
                    T0 + timedelta(days=40),  # past the 30-day TTL: null
                    T0 - timedelta(days=89),  # within TTL of c3's old value
                ],
                utc=True,
            ),
        }
    )
    out = store.historical(entity_df, ["risk__fraud_detection:score", "risk__fraud_detection:band"])
    out = out.sort_values(["customer_id", "event_timestamp"]).reset_index(drop=True)
    scores = [None if pd.isna(v) else v for v in out["risk__fraud_detection__score"]]
    assert scores == [None, 100.0, 200.0, None, None, 50.0]
    assert list(out["risk__fraud_detection__band"].fillna("-")) == [
        "-",
        "low",
        "mid",
        "-",
        "-",
        "low",
    ]


def test_when_materialising_incrementally_then_only_new_rows_are_loaded(
    table: Path, tmp_path: Path
) -> None:
    store = _store(tmp_path)
    store.apply(_publication(_spec(table)))
    first = store.materialize(end=T0 + timedelta(days=3))
    assert first.views == {"risk__fraud_detection": 3}  # the latest row of c1, c2 and c3
    _table(
        table,
        [("c2", T0 + timedelta(days=4), 333.0, "top"), ("c4", T0 + timedelta(days=5), 1.0, "low")],
    )
    second = store.materialize(incremental=True, end=T0 + timedelta(days=6))
    assert second.views == {"risk__fraud_detection": 2}  # c2 and c4 only
    assert store.materialize(incremental=True, end=T0 + timedelta(days=7)).rows == 0
    store.apply(_publication(_spec(table)))  # re-applying keeps Feast's materialisation record
    assert store.plan(_publication(_spec(table))).empty
    assert store.materialize(incremental=True, end=T0 + timedelta(days=8)).rows == 0
    online = store.online(
        ["risk__fraud_detection:score"], {"customer_id": ["c1", "c2", "c4", "zz"]}
    )
    assert online["risk__fraud_detection__score"] == [200.0, 333.0, 1.0, None]


def _scenario(store: GovernedFeatureStore, table: Path) -> dict[str, list[object]]:
    try:
        store.apply(_publication(_spec(table)))
        store.materialize(end=T0 + timedelta(days=10))
        return store.online(
            ["risk__fraud_detection:score", "risk__fraud_detection:band"],
            {"customer_id": ["c1", "c2", "c3", "nobody"]},
        )
    finally:
        store.destroy()


EXPECTED = {
    "customer_id": ["c1", "c2", "c3", "nobody"],
    "risk__fraud_detection__score": [200.0, 300.0, 50.0, None],  # online reads ignore TTL
    "risk__fraud_detection__band": ["mid", "high", "low", None],
}


def test_the_embedded_default_is_a_registry_file_and_sqlite_under_the_root(
    table: Path, tmp_path: Path
) -> None:
    store = _store(tmp_path)
    assert _scenario(store, table) == EXPECTED
    assert (tmp_path / "feast" / "registry.db").exists()
    assert (tmp_path / "feast" / "online.db").exists()


def test_the_bulk_sqlite_writer_gives_the_answers_of_feasts_own(
    table: Path, tmp_path: Path
) -> None:
    from feast import FeatureStore

    store = _store(tmp_path)
    store.apply(_publication(_spec(table)))
    store.materialize(end=T0 + timedelta(days=10))
    plain = FeatureStore(config=store.repo_config(bulk_sqlite=False))  # Feast's SqliteOnlineStore
    answer = plain.get_online_features(
        features=["risk__fraud_detection:score", "risk__fraud_detection:band"],
        entity_rows=[{"customer_id": c} for c in ["c1", "c2", "c3", "nobody"]],
        full_feature_names=True,
    ).to_dict()
    assert answer == EXPECTED


@pytest.fixture
def redis_url() -> Iterator[str]:
    if not _answers("127.0.0.1", 6379):
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    yield REDIS


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not _answers("127.0.0.1", 5432):
        pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")
    yield POSTGRES


@pytest.mark.redis
def test_redis_gives_the_same_answers_as_sqlite(
    table: Path, tmp_path: Path, redis_url: str
) -> None:
    sqlite = _scenario(_store(tmp_path / "a"), table)
    store = _store(tmp_path / "b", online_store=redis_url)
    assert store.repo_config().online_store.type == "redis"
    assert _scenario(store, table) == sqlite == EXPECTED
    import redis

    client = redis.Redis.from_url(redis_url)
    assert not [k for k in client.scan_iter(match=f"*{store.config.project}*", count=1000)]


@pytest.mark.postgres
def test_the_sql_registry_on_postgres_holds_the_same_objects(
    table: Path, tmp_path: Path, postgres_url: str
) -> None:
    store = _store(tmp_path, registry_url=postgres_url)
    assert store.repo_config().registry.registry_type == "sql"
    try:
        store.apply(_publication(_spec(table)))
        other = GovernedFeatureStore(store.config)  # a second process sees the same registry
        assert sorted(other.published()) == ["risk__fraud_detection"]
        assert other.plan(_publication(_spec(table))).empty
        store.materialize(end=T0 + timedelta(days=10))
        assert other.online(["risk__fraud_detection:score"], {"customer_id": ["c1"]})[
            "risk__fraud_detection__score"
        ] == [200.0]
        other.close()
    finally:
        store.destroy()
    after = GovernedFeatureStore(store.config)
    assert after.published() == {}
    after.close()
