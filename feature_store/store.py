"""Feast behind a small, typed facade: build objects from a `Publication`, plan, apply,
materialise, and read online and historical features. Imports Feast (use lazily).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_store.config import (
    MANAGED_TAG,
    Publication,
    StoreConfig,
    ValueKind,
    ViewSpec,
    feast_name,
)
from feature_store.online import CLASS_PATH

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

__all__ = [
    "FeastObjects",
    "GovernedFeatureStore",
    "MaterializeReport",
    "PlanReport",
    "build_objects",
]

MANAGED = "gateway"
Progress = Callable[[str, int, int], None]
"""progress(view name, views done, views in all)."""


@dataclass(frozen=True)
class FeastObjects:
    """The Feast objects of one publication (every one tagged `managed_by=gateway`)."""

    project: Any
    entities: list[Any]
    sources: list[Any]
    views: list[Any]
    services: list[Any]
    permissions: list[Any]

    def all(self) -> list[Any]:
        """Every object, in apply order."""
        return [*self.entities, *self.sources, *self.views, *self.services, *self.permissions]


@dataclass(frozen=True)
class PlanReport:
    """What apply changes (or changed): (kind, name, change) rows and Feast's own text."""

    changes: list[tuple[str, str, str]]
    deletions: list[tuple[str, str]]
    text: str

    @property
    def empty(self) -> bool:
        """True when nothing would change."""
        return not self.changes and not self.deletions


@dataclass(frozen=True)
class MaterializeReport:
    """Per view: rows written to the online store, and the window materialised."""

    views: dict[str, int] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows written over all views."""
        return sum(self.views.values())


def _differs(existing: Any, declared: Any) -> bool:
    """True unless two property values differ only in registry `meta` (timestamps)."""
    if hasattr(existing, "CopyFrom") and hasattr(declared, "CopyFrom"):
        a, b = type(existing)(), type(declared)()
        a.CopyFrom(existing)
        b.CopyFrom(declared)
        for proto in (a, b):
            if "meta" in proto.DESCRIPTOR.fields_by_name:
                proto.ClearField("meta")
        return bool(a != b)
    return bool(existing != declared)


def _feast_type(kind: ValueKind) -> Any:
    from feast import types as ft

    return {
        "string": ft.String,
        "integer": ft.Int32,
        "long": ft.Int64,
        "double": ft.Float64,
        "boolean": ft.Bool,
        "date": ft.UnixTimestamp,
        "timestamp": ft.UnixTimestamp,
    }[kind]


def _value_type(kind: ValueKind) -> Any:
    from feast import ValueType

    return {
        "string": ValueType.STRING,
        "integer": ValueType.INT32,
        "long": ValueType.INT64,
        "double": ValueType.DOUBLE,
        "boolean": ValueType.BOOL,
        "date": ValueType.UNIX_TIMESTAMP,
        "timestamp": ValueType.UNIX_TIMESTAMP,
    }[kind]


def _view_tags(spec: ViewSpec) -> dict[str, str]:
    tags = {
        MANAGED_TAG: MANAGED,
        "dataset": spec.dataset,
        "view": spec.view,
        "purpose": spec.purpose,
        "classification": spec.classification_tag(),
        "protection": spec.protection_json(),
        "policy_version": spec.policy_version,
        "dataset_version": spec.dataset_version,
    }
    if spec.owner:
        tags["owner"] = spec.owner
    return tags


def build_objects(pub: Publication, config: StoreConfig) -> FeastObjects:
    """Entities, Delta sources, views, one service per purpose and permissions for `pub`."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource
    from feast.data_format import DeltaFormat
    from feast.feature_view import FeatureView as FV
    from feast.permissions.action import AuthzedAction
    from feast.permissions.permission import Permission
    from feast.permissions.policy import RoleBasedPolicy
    from feast.project import Project

    base = {MANAGED_TAG: MANAGED, "policy_version": pub.policy_version}
    entities: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    views: list[Any] = []
    by_purpose: dict[str, list[tuple[ViewSpec, Any]]] = {}
    for spec in pub.views:
        if spec.entity_name not in entities:
            protections = sorted(
                {
                    f"{v.purpose}={v.entity_protection}"
                    for v in pub.views
                    if v.entity_name == spec.entity_name
                }
            )
            entities[spec.entity_name] = Entity(
                name=spec.entity_name,
                join_keys=[spec.entity],
                value_type=_value_type(spec.entity_kind),
                description=f"{spec.entity} of {spec.dataset} (governed, tokenized values)",
                tags={
                    **base,
                    "dataset": spec.dataset,
                    "column": spec.entity,
                    "classification": spec.entity_classification,
                    "protection": ";".join(protections),
                },
            )
        if spec.source_name not in sources:
            sources[spec.source_name] = FileSource(
                name=spec.source_name,
                path=spec.source_path,
                file_format=DeltaFormat(),
                timestamp_field=spec.timestamp_field,
                description=f"governed table of {spec.dataset} for {spec.purpose}",
                tags={**base, "dataset": spec.dataset, "purpose": spec.purpose},
            )
        view = FeatureView(
            name=spec.name,
            entities=[entities[spec.entity_name]],
            ttl=timedelta(seconds=spec.ttl_seconds),
            schema=[
                Field(
                    name=f.name,
                    dtype=_feast_type(f.kind),
                    tags={"classification": f.classification, "protection": f.protection},
                )
                for f in spec.features
            ],
            source=sources[spec.source_name],
            online=True,
            description=spec.description or "",
            owner=spec.owner or "",
            tags=_view_tags(spec),
        )
        assert isinstance(view, FV)
        views.append(view)
        by_purpose.setdefault(spec.purpose, []).append((spec, view))
    services = []
    for purpose, members in sorted(by_purpose.items()):
        protection = {f"{s.view}:{f.name}": f.protection for s, _ in members for f in s.features}
        services.append(
            FeatureService(
                name=feast_name(purpose),
                features=[v for _, v in members],
                description=f"every feature approved and published for {purpose}",
                tags={
                    **base,
                    "purpose": purpose,
                    "dataset": ",".join(sorted({s.dataset for s, _ in members})),
                    "classification": ",".join(
                        sorted({f.classification for s, _ in members for f in s.features})
                    ),
                    "protection": json.dumps(protection, sort_keys=True, separators=(",", ":")),
                },
            )
        )
    permissions = []
    for perm in pub.permissions:
        # Feast matches `required_tags` against a `required_tags` attribute that feature
        # views and services do not have, so a tag-scoped permission matches every object
        # of its type (fails open). Scope by exact name patterns instead.
        names = [*perm.views, feast_name(perm.purpose)]
        permissions.append(
            Permission(
                name=perm.name,
                types=[FeatureView, FeatureService],  # type: ignore[list-item]
                name_patterns=[f"^{n}$" for n in names],
                actions=[
                    AuthzedAction.DESCRIBE,
                    AuthzedAction.READ_ONLINE,
                    AuthzedAction.READ_OFFLINE,
                ],
                policy=RoleBasedPolicy(roles=list(perm.roles) or ["-nobody-"]),
                tags={**base, "purpose": perm.purpose},
            )
        )
    return FeastObjects(
        project=Project(name=config.project, description="governed features", tags=dict(base)),
        entities=list(entities.values()),
        sources=list(sources.values()),
        views=views,
        services=services,
        permissions=permissions,
    )


class GovernedFeatureStore:
    """One Feast project: registry and online store per `StoreConfig`, objects per publication."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._fs: Any = None
        self._published: tuple[float, dict[str, dict[str, str]]] | None = None

    # -- Feast ---------------------------------------------------------------------------

    def repo_config(self, *, bulk_sqlite: bool = True) -> Any:
        """The Feast RepoConfig (the bulk SQLite writer unless `bulk_sqlite=False`)."""
        from feast import RepoConfig

        online = dict(self.config.online)
        if online["type"] == "sqlite" and bulk_sqlite:
            online["type"] = CLASS_PATH
        self.config.root.mkdir(parents=True, exist_ok=True)
        return RepoConfig(
            project=self.config.project,
            provider="local",
            registry=self.config.registry,
            online_store=online,
            offline_store={"type": "dask"},
            entity_key_serialization_version=3,
            repo_path=self.config.root,
            materialization_config={"online_write_batch_size": self.config.write_batch_rows},
        )

    @property
    def feast(self) -> Any:
        """The underlying `feast.FeatureStore` (created on first use)."""
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    from feast import FeatureStore

                    self._fs = FeatureStore(config=self.repo_config())
        return self._fs

    def close(self) -> None:
        """Release registry database connections and online store clients."""
        fs, self._fs = self._fs, None
        if fs is None:
            return
        registry = getattr(fs, "_registry", None)
        for name in ("write_engine", "read_engine"):
            engine = getattr(registry, name, None)
            if engine is not None:
                engine.dispose()
        online = fs._get_provider().online_store
        conn = getattr(online, "_conn", None)
        if conn is not None:
            conn.close()
            online._conn = None
        client = getattr(online, "_client", None)
        if client is not None:
            client.close()
            online._client = None

    def write_yaml(self) -> Any:
        """Write `<root>/feature_store.yaml` (for `feast serve`); returns its path."""
        path = self.config.root / "feature_store.yaml"
        self.config.root.mkdir(parents=True, exist_ok=True)
        path.write_text(self.config.yaml_text())
        return path

    # -- publishing ----------------------------------------------------------------------

    def _managed(self) -> dict[tuple[str, str], Any]:
        fs = self.feast
        found: dict[tuple[str, str], Any] = {}
        listings: list[tuple[str, Callable[[], list[Any]]]] = [
            ("entity", fs.list_entities),
            ("data_source", fs.list_data_sources),
            ("feature_view", fs.list_feature_views),
            ("feature_service", fs.list_feature_services),
            ("permission", fs.list_permissions),
        ]
        for kind, lister in listings:
            try:
                objects = lister()
            except Exception:  # noqa: BLE001 - an empty or missing registry lists nothing
                objects = []
            for obj in objects:
                if (obj.tags or {}).get(MANAGED_TAG) == MANAGED:
                    found[(kind, obj.name)] = obj
        return found

    @staticmethod
    def _kind(obj: Any) -> str:
        from feast import Entity, FeatureService, FeatureView
        from feast.permissions.permission import Permission

        if isinstance(obj, Entity):
            return "entity"
        if isinstance(obj, FeatureView):
            return "feature_view"
        if isinstance(obj, FeatureService):
            return "feature_service"
        if isinstance(obj, Permission):
            return "permission"
        return "data_source"

    def plan(self, pub: Publication) -> PlanReport:
        """What `apply(pub)` would change in the registry, without changing it."""
        from feast.repo_contents import RepoContents

        objs = build_objects(pub, self.config)
        contents = RepoContents(
            projects=[objs.project],
            data_sources=objs.sources,
            feature_views=objs.views,
            on_demand_feature_views=[],
            stream_feature_views=[],
            label_views=[],
            entities=objs.entities,
            feature_services=objs.services,
            permissions=objs.permissions,
        )
        registry_diff, _, _ = self.feast.plan(contents)
        changes = []
        for diff in registry_diff.feast_object_diffs:
            change = diff.transition_type.name.lower()
            if change == "unchanged" or diff.name.startswith("__"):
                continue  # Feast's own `__dummy` entity is not ours
            if change == "update" and not any(
                _differs(d.val_existing, d.val_declared) for d in diff.feast_object_property_diffs
            ):
                continue  # only registry metadata (timestamps, materialisation) differs
            changes.append((str(diff.feast_object_type), diff.name, change))
        desired = {(self._kind(o), o.name) for o in objs.all()}
        deletions = sorted(k for k in self._managed() if k not in desired)
        text = registry_diff.to_string()
        return PlanReport(changes=changes, deletions=deletions, text=text)

    def apply(self, pub: Publication) -> PlanReport:
        """Create or update every object of `pub`; delete managed objects it no longer has."""
        report = self.plan(pub)
        objs = build_objects(pub, self.config)
        managed = self._managed()
        stale = [managed[k] for k in report.deletions]
        self.feast.apply([objs.project, *objs.all()], objects_to_delete=stale, partial=not stale)
        self._published = None
        return report

    def published(self) -> dict[str, dict[str, str]]:
        """Feature view name -> tags of the managed views in the registry (cached briefly)."""
        now = time.monotonic()
        cached = self._published
        if cached is not None and now - cached[0] < max(self.config.registry_cache_seconds, 1):
            return cached[1]
        views = {
            v.name: dict(v.tags)
            for v in self.feast.list_feature_views(allow_cache=True)
            if (v.tags or {}).get(MANAGED_TAG) == MANAGED
        }
        self._published = (now, views)
        return views

    def destroy(self) -> None:
        """Delete every managed object and its online data (tests and teardown)."""
        fs = self.feast
        managed = self._managed()
        views = [o for (k, _), o in managed.items() if k == "feature_view"]
        entities = [o for (k, _), o in managed.items() if k == "entity"]
        if views:
            fs._get_provider().teardown_infra(fs.project, views, entities)
        others = [o for (k, _), o in managed.items() if k != "feature_view"]
        if managed:
            fs.apply([], objects_to_delete=[*views, *others], partial=False)
        with contextlib.suppress(Exception):  # already gone
            fs.registry.delete_project(fs.project, commit=True)
        self._published = None
        self.close()

    # -- materialisation -----------------------------------------------------------------

    def materialize(
        self,
        views: Sequence[str] | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        incremental: bool = False,
        progress: Progress | None = None,
    ) -> MaterializeReport:
        """Load governed rows into the online store, view by view.

        `incremental`: from each view's last materialised end (Feast's own bookkeeping).
        Otherwise [start, end], default the whole table (1970 to now).
        """
        fs = self.feast
        end = end or datetime.now(UTC)
        names = list(views) if views else sorted(self.published())
        started = time.perf_counter()
        counts: dict[str, int] = {}
        online = fs._get_provider().online_store
        original = online.online_write_batch
        written = [0]

        def counting(config: Any, table: Any, data: Any, progress: Any) -> None:
            original(config, table, data, progress)
            written[0] += len(data)

        with self._lock:
            online.online_write_batch = counting  # count rows whatever the store
            try:
                for i, name in enumerate(names):
                    if progress:
                        progress(name, i, len(names))
                    written[0] = 0
                    if incremental:
                        fs.materialize_incremental(end_date=end, feature_views=[name])
                    else:
                        fs.materialize(
                            start_date=start or datetime(1970, 1, 1, tzinfo=UTC),
                            end_date=end,
                            feature_views=[name],
                        )
                    counts[name] = written[0]
            finally:
                del online.online_write_batch
        if progress:
            progress("", len(names), len(names))
        return MaterializeReport(counts, start, end, round(time.perf_counter() - started, 3))

    # -- retrieval -----------------------------------------------------------------------

    def online(
        self,
        features: Sequence[str] | None,
        entity_rows: Mapping[str, Sequence[Any]],
        *,
        service: str | None = None,
    ) -> dict[str, list[Any]]:
        """Online values as columns; features are `feast_view:feature`; full feature names."""
        fs = self.feast
        refs: Any = (
            fs.get_feature_service(service, allow_cache=True) if service else list(features or ())
        )
        response = fs.get_online_features(
            features=refs,
            entity_rows={k: list(v) for k, v in entity_rows.items()},
            full_feature_names=True,
        )
        out: dict[str, list[Any]] = response.to_dict()
        return out

    def historical(
        self, entity_df: pd.DataFrame, features: Sequence[str] | None, *, service: str | None = None
    ) -> pd.DataFrame:
        """Point-in-time-correct values for each (entity, `event_timestamp`) row, in order.

        Every entity row comes back (Feast's file offline store drops rows with no value in
        range; they are restored here with nulls)."""
        fs = self.feast
        refs: Any = (
            fs.get_feature_service(service, allow_cache=True) if service else list(features or ())
        )
        row = "__gateway_row"
        given = entity_df.reset_index(drop=True)
        keyed = given.assign(**{row: range(len(given))})
        job = fs.get_historical_features(entity_df=keyed, features=refs, full_feature_names=True)
        found: pd.DataFrame = job.to_df()
        added = [c for c in found.columns if c not in keyed.columns]
        merged = keyed.merge(found[[row, *added]], on=row, how="left").sort_values(row)
        frame: pd.DataFrame = merged.drop(columns=[row]).reset_index(drop=True)
        return frame
