"""Gateway glue for the feature store: policy -> publication, publish checks, governed retrieval.

Approval is enforced here, never delegated to Feast: a feature is published only when the
policy approves its view for the purpose, its column is in the governed table (not dropped,
DP-only or encrypted) and the governed table was written with the protections the current
policy requires; a read is served only for views the authoriser allows and that are
published with the protections the current policy requires. Feast permissions generated
from the policy are a second layer only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_store.config import (
    FeatureSpec,
    PermissionSpec,
    Publication,
    StoreConfig,
    ViewSpec,
    feast_name,
)
from gateway.errors import AccessDenied, GatewayError, NotFound, ValidationFailed
from gateway.ingest.job import LakePaths
from gateway.policy.loader import PolicySet
from gateway.policy.organisation import Action, purpose_covers
from gateway.policy.protection import ProtectionKind
from gateway.settings import Settings

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

    from feature_store.store import GovernedFeatureStore
    from gateway.authz import Decision
    from gateway.identity import Principal
    from gateway.services import Services

__all__ = [
    "MAX_HISTORICAL_ROWS",
    "MAX_ONLINE_ENTITIES",
    "FeatureGateway",
    "FeaturesNotPublished",
    "PublishRefused",
    "Refusal",
    "build_publication",
    "check_governed_table",
    "policy_views",
    "store_config",
]

MAX_ONLINE_ENTITIES = 1_000
MAX_HISTORICAL_ROWS = 200_000
MAX_FEATURES = 500
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_FACT_KEYS = ("protection", "strategy", "classification", "cell_rules")


class PublishRefused(GatewayError):
    """A feature cannot be published as the policy requires (HTTP 409)."""

    http_status = 409
    code = "feature-publish-refused"


class FeaturesNotPublished(NotFound):
    """The view is approved but not (or not currently) published for the purpose."""

    code = "feature-not-published"


@dataclass(frozen=True)
class Refusal:
    """Why one (dataset, view, purpose) or one of its features is not published."""

    dataset: str
    view: str
    purpose: str
    reason: str

    def __str__(self) -> str:
        return f"{self.dataset}/{self.view} for {self.purpose}: {self.reason}"


def store_config(settings: Settings, *, project: str = "gateway") -> StoreConfig:
    """The Feast store of these settings: under `<home>/feast/` unless configured otherwise."""
    return StoreConfig(
        root=(settings.home / "feast").resolve(),
        project=project,
        registry_url=settings.registry_url,
        online_store=settings.online_store,
    )


def _ttl(text: str) -> int:
    return int(text[:-1]) * _TTL_UNITS[text[-1]]


def policy_views(policies: PolicySet, settings: Settings) -> tuple[list[ViewSpec], list[Refusal]]:
    """Every approved (dataset, view, purpose) the policy allows, from the policy alone."""
    from gateway.ingest.protect import plan_protection

    lake = LakePaths(settings.lake)
    views: list[ViewSpec] = []
    refusals: list[Refusal] = []
    for ds in policies.datasets.values():
        for view, fs in ds.features.items():
            for purpose in fs.approved_for:

                def refuse(
                    reason: str, dataset: str = ds.dataset, view: str = view, purpose: str = purpose
                ) -> None:
                    refusals.append(Refusal(dataset, view, purpose, reason))

                if not ds.allows(purpose):
                    refuse(f"the dataset does not serve purpose '{purpose}'")
                    continue
                if ds.event_time is None:
                    refuse("the dataset has no event_time: features need one")
                    continue
                try:
                    plan = plan_protection(policies, ds.dataset, purpose)
                except GatewayError as exc:
                    refuse(str(exc))
                    continue
                governed = {c.column: c for c in plan.columns}
                bad = False
                for needed in (ds.entity, ds.event_time):
                    if needed not in governed:
                        refuse(f"column '{needed}' is not in the governed table for '{purpose}'")
                        bad = True
                features: list[FeatureSpec] = []
                for column in fs.columns:
                    if column not in ds.columns:
                        refuse(f"feature '{column}' is not a column of the dataset")
                        bad = True
                        continue
                    protection = ds.protection(column, purpose, policies.lowest_clearance)
                    if protection is None:
                        refuse(f"feature '{column}' has no protection decided for '{purpose}'")
                        bad = True
                        continue
                    if protection.kind in (
                        ProtectionKind.DROP,
                        ProtectionKind.DP_ONLY,
                        ProtectionKind.ENCRYPT,
                    ):
                        refuse(
                            f"feature '{column}' is {protection} for '{purpose}': "
                            "it is not in the governed table and cannot be a feature"
                        )
                        bad = True
                        continue
                    col = governed[column]
                    features.append(
                        FeatureSpec(
                            name=column,
                            kind=col.output_type.value,
                            classification=col.classification,
                            protection=str(col.protection),
                        )
                    )
                if bad:
                    continue
                entity = governed[ds.entity]
                views.append(
                    ViewSpec(
                        dataset=ds.dataset,
                        view=view,
                        purpose=purpose,
                        entity=ds.entity,
                        entity_kind=entity.output_type.value,
                        entity_classification=entity.classification,
                        entity_protection=str(entity.protection),
                        source_path=str(lake.governed(ds.dataset, purpose).resolve()),
                        timestamp_field=ds.event_time,
                        features=tuple(features),
                        ttl_seconds=_ttl(fs.ttl),
                        owner=fs.owner or ds.owner,
                        description=fs.description,
                        policy_version=policies.version,
                        dataset_version=policies.dataset_version(ds.dataset),
                    )
                )
    return views, refusals


def _commits(path: Path) -> list[dict[str, Any]]:
    """Commit metadata of a Delta table, newest first (gateway keys flattened)."""
    from deltalake import DeltaTable

    out = []
    for entry in DeltaTable(str(path)).history():
        meta = dict(entry)
        raw = meta.get("userMetadata")
        if isinstance(raw, str) and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = {}
            if isinstance(parsed, dict):
                meta = {**parsed, **meta}
        out.append(meta)
    out.sort(key=lambda m: -int(m.get("version", 0)))
    return out


def check_governed_table(policies: PolicySet, spec: ViewSpec) -> list[str]:
    """Problems with the governed table behind `spec`: missing, or written with protections
    that differ from the current policy's for a feature, the entity or the event time."""
    from deltalake.exceptions import TableNotFoundError

    from gateway.ingest.protect import plan_protection

    path = Path(spec.source_path)
    try:
        commits = _commits(path)
    except (TableNotFoundError, OSError):
        return [
            f"the governed table {spec.dataset}/{spec.purpose} does not exist (ingest it first)"
        ]
    expected = plan_protection(policies, spec.dataset, spec.purpose).facts()
    columns = [spec.entity, spec.timestamp_field, *(f.name for f in spec.features)]
    problems: list[str] = []
    seen = False
    for meta in commits:
        if "gateway.policy_version" not in meta:
            if meta.get("operation") in (
                "WRITE",
                "CREATE TABLE",
                "MERGE",
                "CREATE OR REPLACE TABLE",
            ):
                problems.append(f"version {meta.get('version')} was not written by the gateway")
            continue
        seen = True
        if meta["gateway.policy_version"] == policies.version:
            facts_ok = True
        else:
            raw = meta.get("gateway.extra.protection")
            try:
                facts = json.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                facts = None
            if not isinstance(facts, dict):
                problems.append(f"version {meta.get('version')} records no protection facts")
                facts_ok = False
            else:
                facts_ok = True
                for column in columns:
                    want = {k: expected.get(column, {}).get(k) for k in _FACT_KEYS}
                    got = {k: (facts.get(column) or {}).get(k) for k in _FACT_KEYS}
                    if want != got:
                        problems.append(
                            f"column '{column}' was written as {got['protection']}"
                            f"{'/' + str(got['strategy']) if got['strategy'] else ''} at version "
                            f"{meta.get('version')}, the current policy requires "
                            f"{want['protection']}"
                            f"{'/' + str(want['strategy']) if want['strategy'] else ''}"
                        )
                        facts_ok = False
        if not facts_ok:
            break
        if meta.get("gateway.extra.mode") == "overwrite":
            break  # older versions are no longer in the table
    if not seen:
        problems.append("no gateway commit found in the governed table")
    return problems


def _permissions(policies: PolicySet, views: Sequence[ViewSpec]) -> list[PermissionSpec]:
    org = policies.organisation
    out = []
    for purpose in sorted({v.purpose for v in views}):
        roles = sorted(
            name
            for name, role in org.roles.items()
            if Action.READ_FEATURES in role.actions
            and any(purpose_covers(g, purpose) for g in role.purposes)
        )
        out.append(
            PermissionSpec(
                name=feast_name("read", purpose),
                purpose=purpose,
                views=tuple(v.name for v in views if v.purpose == purpose),
                roles=tuple(roles),
            )
        )
    return out


def build_publication(
    policies: PolicySet, settings: Settings, *, check_tables: bool = True, project: str = "gateway"
) -> tuple[Publication, list[Refusal]]:
    """The publishable views (with permissions) and every refusal, with reasons."""
    views, refusals = policy_views(policies, settings)
    ok = []
    for spec in views:
        problems = check_governed_table(policies, spec) if check_tables else []
        if problems:
            refusals.extend(Refusal(spec.dataset, spec.view, spec.purpose, p) for p in problems)
        else:
            ok.append(spec)
    pub = Publication(
        project=project,
        policy_version=policies.version,
        views=tuple(ok),
        permissions=tuple(_permissions(policies, ok)),
    )
    return pub, refusals


# -- retrieval --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    specs: list[ViewSpec]  # distinct views, request order
    refs: list[str]  # feast refs `view__purpose:feature`
    names: dict[str, str]  # feast full name -> output column `view__feature`
    decision: Decision


class FeatureGateway:
    """Authorised, audited online and historical retrieval over the governed feature store."""

    def __init__(self, services: Services, store: GovernedFeatureStore | None = None) -> None:
        from feature_store.store import GovernedFeatureStore

        self.services = services
        self.store = store or GovernedFeatureStore(store_config(services.settings))
        self._lock = threading.Lock()
        self._views: tuple[str, dict[tuple[str, str], ViewSpec]] | None = None

    def _policy_views(self) -> dict[tuple[str, str], ViewSpec]:
        policies = self.services.policies
        cached = self._views
        if cached is not None and cached[0] == policies.version:
            return cached[1]
        views, _ = policy_views(policies, self.services.settings)
        index = {(v.view, v.purpose): v for v in views}
        with self._lock:
            self._views = (policies.version, index)
        return index

    def _spec_for(self, view: str, purpose: str) -> ViewSpec | None:
        best: ViewSpec | None = None
        for (name, granted), spec in self._policy_views().items():
            if (
                name == view
                and purpose_covers(granted, purpose)
                and (best is None or granted.count(".") > best.purpose.count("."))
            ):
                best = spec
        return best

    def _dataset_of(self, view: str) -> str | None:
        for ds in self.services.policies.datasets.values():
            if view in ds.features:
                return ds.dataset
        return None

    def _deny(
        self,
        principal: Principal,
        purpose: str,
        request_id: str,
        resource: str,
        decision: Decision,
        mode: str,
    ) -> None:
        self.services.decide(
            principal,
            decision,
            action="read_features",
            purpose=purpose,
            resource=resource,
            request_id=request_id,
            released={"mode": mode},
        )
        if decision.hides_resource:
            raise NotFound(decision.reason)
        raise AccessDenied(decision.reason)

    def resolve(
        self,
        principal: Principal,
        purpose: str,
        request_id: str,
        features: Sequence[str] | None,
        service: str | None,
        mode: str,
    ) -> _Resolved:
        """Map `view:feature` refs (or the purpose's service) to published Feast refs; authorise
        each view; raise NotFound/AccessDenied (audited) on the first refusal."""
        from gateway.authz import Decision

        wanted: list[tuple[str, str | None]] = []
        if service is not None:
            if features:
                raise ValidationFailed("send either 'features' or 'feature_service', not both")
            if service not in (purpose, feast_name(purpose)):
                raise ValidationFailed(
                    f"feature service '{service}' does not belong to purpose '{purpose}'"
                )
            for (view, granted), _ in sorted(self._policy_views().items()):
                if purpose_covers(granted, purpose) and (view, None) not in wanted:
                    wanted.append((view, None))
            if not wanted:
                raise FeaturesNotPublished(f"no feature service for purpose '{purpose}'")
        else:
            if not features:
                raise ValidationFailed("name at least one feature (view:feature)")
            if len(features) > MAX_FEATURES:
                raise ValidationFailed(f"at most {MAX_FEATURES} features per request")
            for ref in features:
                view, sep, column = ref.partition(":")
                if not sep or not view or not column:
                    raise ValidationFailed(f"feature '{ref}' is not of the form view:feature")
                wanted.append((view, column))
        authz = self.services.authorizer
        published = self.store.published()
        specs: dict[str, ViewSpec] = {}
        decisions: list[Decision] = []
        refs: list[str] = []
        names: dict[str, str] = {}
        for view, wanted_column in wanted:
            if view not in specs:
                owner = self._dataset_of(view) or view
                resource = f"{owner}/{view}"
                # an unknown view gets the authoriser's own not-found answer (and is audited)
                decision = authz.can_read_features(principal, purpose, owner, view)
                if not decision.allowed:
                    self._deny(principal, purpose, request_id, resource, decision, mode)
                spec = self._spec_for(view, purpose)
                tags = published.get(spec.name) if spec is not None else None
                if spec is None or tags is None:
                    raise FeaturesNotPublished(
                        f"feature view '{view}' is not published for purpose '{purpose}'"
                    )
                if tags.get("protection") != spec.protection_json():
                    raise FeaturesNotPublished(
                        f"feature view '{view}' was published with protections the current "
                        f"policy no longer requires for '{purpose}'; it must be published again"
                    )
                specs[view] = spec
                decisions.append(decision)
            spec = specs[view]
            columns = [f.name for f in spec.features] if wanted_column is None else [wanted_column]
            for col in columns:
                if col not in {f.name for f in spec.features}:
                    raise NotFound(f"no feature '{view}:{col}'")
                ref = f"{spec.name}:{col}"
                if ref not in refs:
                    refs.append(ref)
                    names[f"{spec.name}__{col}"] = f"{view}__{col}"
        combined = Decision(
            True,
            "; ".join(dict.fromkeys(d.rule for d in decisions)),
            f"{len(specs)} feature view(s) allowed",
            decisions[0].policy_version if decisions else self.services.policies.version,
        )
        return _Resolved(list(specs.values()), refs, names, combined)

    def _audit(
        self,
        principal: Principal,
        purpose: str,
        request_id: str,
        res: _Resolved,
        entities: int,
        mode: str,
    ) -> None:
        self.services.decide(
            principal,
            res.decision,
            action="read_features",
            purpose=purpose,
            resource=",".join(f"{s.dataset}/{s.view}" for s in res.specs),
            request_id=request_id,
            released={"features": list(res.names.values()), "entities": entities, "mode": mode},
        )

    @staticmethod
    def _keys(res: _Resolved, given: Sequence[str]) -> None:
        needed = {s.entity for s in res.specs}
        if set(given) != needed:
            raise ValidationFailed(
                f"entity keys must be exactly {', '.join(sorted(needed))} "
                f"(got {', '.join(sorted(given)) or 'none'})"
            )

    def online(
        self,
        principal: Principal,
        purpose: str,
        request_id: str,
        entities: Mapping[str, Sequence[Any]],
        features: Sequence[str] | None = None,
        service: str | None = None,
    ) -> dict[str, list[Any]]:
        """Latest values per entity: {entity key: [...], `view__feature`: [...]}; audited."""
        res = self.resolve(principal, purpose, request_id, features, service, "online")
        self._keys(res, list(entities))
        lengths = {len(v) for v in entities.values()}
        if len(lengths) != 1:
            raise ValidationFailed("every entity key needs the same number of values")
        count = lengths.pop()
        if count == 0 or count > MAX_ONLINE_ENTITIES:
            raise ValidationFailed(f"send between 1 and {MAX_ONLINE_ENTITIES} entities")
        self._audit(principal, purpose, request_id, res, count, "online")
        raw = self.store.online(res.refs, entities)
        return {res.names.get(k, k): v for k, v in raw.items()}

    def historical(
        self,
        principal: Principal,
        purpose: str,
        request_id: str,
        entity_df: pd.DataFrame,
        features: Sequence[str] | None = None,
        service: str | None = None,
    ) -> pd.DataFrame:
        """Point-in-time-correct values for each (keys, `event_timestamp`) row; audited."""
        import pandas as pd

        res = self.resolve(principal, purpose, request_id, features, service, "historical")
        if "event_timestamp" not in entity_df.columns:
            raise ValidationFailed("the entity dataframe needs an 'event_timestamp' column")
        missing = sorted({s.entity for s in res.specs} - set(entity_df.columns))
        if missing:
            raise ValidationFailed(f"the entity dataframe lacks key column(s) {', '.join(missing)}")
        rows = len(entity_df)
        if rows == 0 or rows > MAX_HISTORICAL_ROWS:
            raise ValidationFailed(f"send between 1 and {MAX_HISTORICAL_ROWS} entity rows")
        clashing = [c for c in entity_df.columns if c in res.names.values()]
        if clashing:
            raise ValidationFailed(f"entity dataframe columns clash with features: {clashing}")
        frame = entity_df.copy()
        try:
            frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        except (ValueError, TypeError) as exc:
            raise ValidationFailed(f"event_timestamp is not a timestamp column: {exc}") from None
        self._audit(principal, purpose, request_id, res, rows, "historical")
        out = self.store.historical(frame, res.refs)
        return out.rename(columns=res.names)
