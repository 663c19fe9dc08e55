"""The precompiled decision index of one policy set: built whole at load, never mutated.

Casbin decides every grant and deny entry, once, at build: the generated lines are grouped
by subject token and, within it, by dataset and action class (a literal name, or `*` for
every name the subject's lines do not spell out); for each class and each declared purpose
one of its lines could cover, Casbin is asked `enforce_ex((subject,), dataset|*, purpose,
action|*)` on an enforcer holding just those lines, with an allow-override effect (it stops
at, and names, the first matching grant) and a deny-override effect (first matching deny).
A request then takes one grant and one deny lookup per subject token it holds and keeps
the earliest line, which is what the decision engine (allow-and-deny effect over all lines)
answers and names. Two separate effects are needed because pycasbin's `enforce_ex`
returns no explanation for an allow under allow-and-deny (it never stops early there).

Dataset-file checks (does the dataset serve the purpose, is the view approved for it,
does the caller's clearance cover every column it would receive unprotected) stay in
Python: they depend on per-purpose protections and an ordered clearance scale, not on
(subject, object, purpose, action) tuples, so encoding them as lines would multiply the
policy by its columns. They are precomputed here per (dataset, view, purpose).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.authz.casbin_model import (
    ALLOW_OVERRIDE,
    DENY_OVERRIDE,
    CasbinPolicy,
    PolicyLine,
    compile_policy,
    principal_subject,
    role_subject,
)
from gateway.authz.types import (
    DATA_ACTIONS,
    NOT_FOUND_RULE,
    ColumnsRef,
    DatasetRef,
    Decision,
    FeatureViewRef,
    Resource,
    VisibleColumn,
    VisibleDataset,
    describe_resource,
)
from gateway.errors import PolicyError, PolicyIssue
from gateway.policy.checks import check_organisation
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.loader import PolicySet
from gateway.policy.organisation import Action, purpose_covers
from gateway.policy.protection import Protection, ProtectionKind

__all__ = ["PolicyIndex"]

VIEW_ACTIONS = frozenset({Action.READ_FEATURES, Action.PUBLISH})
_Key = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    data_type: str
    classification: str
    rank: int


@dataclass(frozen=True, slots=True)
class _View:
    columns: tuple[str, ...]
    approved: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Dataset:
    name: str
    description: str | None
    columns: Mapping[str, _Column]
    served: frozenset[str]
    protections: Mapping[str, Mapping[str, Protection]]
    """purpose -> column -> protection, for every declared purpose the dataset serves."""
    views: Mapping[str, _View]
    raw: Mapping[tuple[str | None, str], tuple[_Column, ...]]
    """(view or None for the whole table, purpose) -> columns received unprotected."""


@dataclass(frozen=True, slots=True)
class _Classes:
    datasets: frozenset[str]
    actions: frozenset[str]


class PolicyIndex:
    """Every decision input of one policy set, plus its bounded LRU decision cache."""

    def __init__(self, policies: PolicySet, cache_size: int) -> None:
        if not isinstance(policies, PolicySet):
            raise TypeError(f"expected a PolicySet, got {type(policies).__name__}")
        _validate(policies)
        org = policies.organisation
        self.policies = policies
        self.version = policies.version
        self.casbin: CasbinPolicy = compile_policy(policies)
        self._purposes = frozenset(org.purposes)
        self._ranks = {level: i for i, level in enumerate(org.clearances)}
        self._classes, self._allow, self._deny = _probe(self.casbin, sorted(org.purposes))
        self.allow_entries: Mapping[_Key, PolicyLine] = self._allow
        self.deny_entries: Mapping[_Key, PolicyLine] = self._deny
        self.principal_tokens = frozenset(
            token for token in self._classes if token.startswith("principal:")
        )
        self._datasets = {
            name: self._dataset(policies, ds) for name, ds in policies.datasets.items()
        }
        self._knowable, self._knowable_views = self._knowability(list(org.roles))
        self.decide = functools.lru_cache(maxsize=cache_size)(self._decide)
        self.visible = functools.lru_cache(maxsize=max(16, cache_size // 64))(self._visible)

    # -- build -----------------------------------------------------------------------------

    def _dataset(self, policies: PolicySet, ds: DatasetPolicy) -> _Dataset:
        unknown = len(self._ranks)  # a classification outside the scale: nobody covers it
        columns = {
            name: _Column(
                name,
                spec.type.value,
                spec.classification,
                self._ranks.get(spec.classification, unknown),
            )
            for name, spec in ds.columns.items()
        }
        served = frozenset(p for p in self._purposes if ds.allows(p))
        protections: dict[str, dict[str, Protection]] = {}
        for purpose in sorted(served):
            decided: dict[str, Protection] = {}
            for name in ds.columns:
                protection = ds.protection(name, purpose, policies.lowest_clearance)
                if protection is None:  # fail closed: never guess a default
                    raise _error(
                        policies,
                        f"datasets.{ds.dataset}.columns.{name}",
                        f"no protection decided for purpose '{purpose}'",
                    )
                decided[name] = protection
            protections[purpose] = decided
        views = {
            name: _View(
                fs.columns,
                frozenset(
                    p for p in self._purposes if any(purpose_covers(a, p) for a in fs.approved_for)
                ),
            )
            for name, fs in ds.features.items()
        }
        raw: dict[tuple[str | None, str], tuple[_Column, ...]] = {}
        for purpose, decided in protections.items():
            exposed = [columns[c] for c in ds.columns if decided[c].exposes_raw]
            raw[(None, purpose)] = tuple(exposed)
            for name, view in views.items():
                raw[(name, purpose)] = tuple(col for col in exposed if col.name in view.columns)
        return _Dataset(ds.dataset, ds.description, columns, served, protections, views, raw)

    def _knowability(
        self, roles: list[str]
    ) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[tuple[str, str]]]]:
        any_use: dict[tuple[str, str], set[str]] = defaultdict(set)
        view_use: dict[tuple[str, str], set[str]] = defaultdict(set)
        for token, dataset, purpose, act in self._allow:
            any_use[(token, dataset)].add(purpose)
            if act in VIEW_ACTIONS:
                view_use[(token, dataset)].add(purpose)
        datasets: dict[str, frozenset[str]] = {}
        views: dict[str, frozenset[tuple[str, str]]] = {}
        for role in roles:
            token = role_subject(role)
            known: set[str] = set()
            known_views: set[tuple[str, str]] = set()
            for name, ds in self._datasets.items():
                key = (token, self._dataset_class(token, name))
                if any_use.get(key, set()) & ds.served:
                    known.add(name)
                usable = view_use.get(key, set()) & ds.served
                known_views.update(
                    (name, v) for v, view in ds.views.items() if usable & view.approved
                )
            datasets[role], views[role] = frozenset(known), frozenset(known_views)
        return datasets, views

    # -- lookups ---------------------------------------------------------------------------

    def _dataset_class(self, token: str, dataset: str) -> str:
        classes = self._classes.get(token)
        return dataset if classes is not None and dataset in classes.datasets else "*"

    def _first(
        self,
        table: Mapping[_Key, PolicyLine],
        tokens: Iterable[str],
        obj: str,
        purpose: str,
        act: str,
    ) -> PolicyLine | None:
        best: PolicyLine | None = None
        for token in tokens:
            classes = self._classes.get(token)
            if classes is None:
                continue
            key = (
                token,
                obj if obj in classes.datasets else "*",
                purpose,
                act if act in classes.actions else "*",
            )
            line = table.get(key)
            if line is not None and (best is None or line.order < best.order):
                best = line
        return best

    def _knows(
        self, roles: tuple[str, ...], resource: DatasetRef | FeatureViewRef | ColumnsRef
    ) -> Decision | None:
        missing = Decision(
            False, NOT_FOUND_RULE, f"no dataset named '{resource.dataset}'", self.version
        )
        ds = self._datasets.get(resource.dataset)
        if ds is None or not any(ds.name in self._knowable.get(r, ()) for r in roles):
            return missing
        if isinstance(resource, FeatureViewRef):
            pair = (ds.name, resource.view)
            if resource.view not in ds.views or not any(
                pair in self._knowable_views.get(r, ()) for r in roles
            ):
                return Decision(
                    False, NOT_FOUND_RULE, f"no feature view '{resource}'", self.version
                )
        if isinstance(resource, ColumnsRef):
            for column in resource.columns:
                if column not in ds.columns:
                    return Decision(
                        False,
                        NOT_FOUND_RULE,
                        f"no column '{column}' in dataset '{ds.name}'",
                        self.version,
                    )
        return None

    # -- decisions -------------------------------------------------------------------------

    def _decide(
        self,
        roles: tuple[str, ...],
        subject: str | None,
        clearance: str,
        bound_purpose: str | None,
        bound_features: tuple[str, ...] | None,
        action: Action,
        purpose: str,
        resource: Resource,
    ) -> Decision:
        version = self.version
        what = describe_resource(resource)

        def deny(rule: str, reason: str) -> Decision:
            return Decision(False, rule, reason, version)

        if resource is None and action in DATA_ACTIONS:
            return deny("request.resource", f"{action} needs a dataset")
        if isinstance(resource, FeatureViewRef) and action not in VIEW_ACTIONS:
            return deny("request.resource", f"{action} does not apply to a feature view")
        if resource is not None and (hidden := self._knows(roles, resource)) is not None:
            return hidden
        if purpose not in self._purposes:
            return deny("purpose.unknown", f"unknown purpose '{purpose}'")
        if bound_purpose is not None and not purpose_covers(bound_purpose, purpose):
            return deny("token.purpose", f"the credential is bound to purpose '{bound_purpose}'")
        tokens = [role_subject(r) for r in roles]
        if subject is not None:
            tokens.append(principal_subject(subject))
        obj = "*" if resource is None else resource.dataset
        line = self._first(self._deny, tokens, obj, purpose, action.value)
        if line is not None:
            return deny(line.rule, line.reason)
        grant = self._first(self._allow, tokens, obj, purpose, action.value)
        if grant is None:
            return deny(
                "grant.none",
                f"no role held ({', '.join(roles)}) may {action} {what} for purpose '{purpose}'",
            )
        if resource is not None:
            ds = self._datasets[resource.dataset]
            if purpose not in ds.served:
                return deny(
                    f"datasets.{ds.name}.purposes",
                    f"dataset '{ds.name}' does not serve purpose '{purpose}'",
                )
            if (
                isinstance(resource, FeatureViewRef)
                and purpose not in ds.views[resource.view].approved
            ):
                return deny(
                    f"datasets.{ds.name}.features.{resource.view}.approved_for",
                    f"{what} is not approved for purpose '{purpose}'",
                )
        if bound_features is not None and not (
            isinstance(resource, FeatureViewRef)
            and action is Action.READ_FEATURES
            and (resource.view in bound_features or str(resource) in bound_features)
        ):
            return deny(
                "token.features",
                f"the credential is bound to feature views {', '.join(bound_features)}",
            )
        if resource is not None:
            refused = self._columns(resource, action, purpose, clearance)
            if refused is not None:
                return deny(*refused)
        role = grant.sub.removeprefix("role:")
        return Decision(
            True, grant.rule, f"role '{role}' may {action} {what} for purpose '{purpose}'", version
        )

    def _columns(
        self,
        resource: DatasetRef | FeatureViewRef | ColumnsRef,
        action: Action,
        purpose: str,
        clearance: str,
    ) -> tuple[str, str] | None:
        ds = self._datasets[resource.dataset]
        decided = ds.protections[purpose]
        if isinstance(resource, ColumnsRef):
            for column in resource.columns:
                if decided[column].kind is ProtectionKind.DROP:
                    return (
                        f"datasets.{ds.name}.columns.{column}.protect",
                        f"column '{column}' is dropped for purpose '{purpose}'",
                    )
        received: Iterable[_Column]
        if action is Action.READ_FEATURES:  # rows of values: what is kept raw needs clearance
            if isinstance(resource, ColumnsRef):
                received = (ds.columns[c] for c in resource.columns if decided[c].exposes_raw)
            else:
                view = resource.view if isinstance(resource, FeatureViewRef) else None
                received = ds.raw[(view, purpose)]
        elif action is Action.REIDENTIFY:  # raw values restored, whatever their protection
            names = resource.columns if isinstance(resource, ColumnsRef) else tuple(ds.columns)
            received = (ds.columns[c] for c in names)
        else:  # DP answers, ciphertexts, synthetic rows, ingest and stewardship: nothing raw
            return None
        held = self._ranks.get(clearance, -1)
        for col in received:
            if col.rank > held:
                return (
                    f"datasets.{ds.name}.columns.{col.name}.classification",
                    f"clearance '{clearance}' does not cover {col.classification} column "
                    f"'{col.name}', received unprotected for purpose '{purpose}'",
                )
        return None

    def _visible(
        self,
        roles: tuple[str, ...],
        subject: str | None,
        clearance: str,
        bound_purpose: str | None,
        bound_features: tuple[str, ...] | None,
        purpose: str,
    ) -> tuple[VisibleDataset, ...]:
        if purpose not in self._purposes:
            return ()
        who = (roles, subject, clearance, bound_purpose, bound_features)
        out = []
        for name, ds in self._datasets.items():
            if not any(name in self._knowable.get(r, ()) for r in roles):
                continue
            actions = tuple(
                a for a in DATA_ACTIONS if self.decide(*who, a, purpose, DatasetRef(name)).allowed
            )
            views = tuple(
                v
                for v in ds.views
                if self.decide(*who, Action.READ_FEATURES, purpose, FeatureViewRef(name, v)).allowed
            )
            if not actions and not views:
                continue
            columns = tuple(
                VisibleColumn(c.name, c.data_type, c.classification, str(p), p.kind)
                for c, p in ((ds.columns[n], ds.protections[purpose][n]) for n in ds.columns)
                if p.kind is not ProtectionKind.DROP
            )
            out.append(VisibleDataset(name, ds.description, actions, views, columns))
        return tuple(out)


def _probe(
    policy: CasbinPolicy, purposes: list[str]
) -> tuple[dict[str, _Classes], dict[_Key, PolicyLine], dict[_Key, PolicyLine]]:
    """Ask Casbin once per (subject, dataset, purpose, action class): first grant, first deny."""
    by_subject: dict[str, list[PolicyLine]] = defaultdict(list)
    for line in policy.lines:
        by_subject[line.sub].append(line)
    probes: dict[str, Any] = {
        "allow": policy.new_enforcer(ALLOW_OVERRIDE, ()),
        "deny": policy.new_enforcer(DENY_OVERRIDE, ()),
    }
    classes: dict[str, _Classes] = {}
    found: dict[str, dict[_Key, PolicyLine]] = {"allow": {}, "deny": {}}
    for token, lines in by_subject.items():
        literal = _Classes(
            frozenset(x.obj for x in lines if x.obj != "*"),
            frozenset(x.act for x in lines if x.act != "*"),
        )
        classes[token] = literal
        dataset_classes = sorted(literal.datasets) + (
            ["*"] if any(x.obj == "*" for x in lines) else []
        )
        action_classes = sorted(literal.actions) + (
            ["*"] if any(x.act == "*" for x in lines) else []
        )
        subjects = frozenset({token})
        for obj in dataset_classes:
            for act in action_classes:
                shard = [x for x in lines if x.obj in (obj, "*") and x.act in (act, "*")]
                for eft, enforcer in probes.items():
                    part = [x for x in shard if x.eft == eft]
                    if not part:
                        continue
                    enforcer.clear_policy()
                    enforcer.add_policies([x.values for x in part])
                    for purpose in purposes:
                        if not any(purpose_covers(x.purpose, purpose) for x in part):
                            continue  # no line of the shard can match: Casbin would say the same
                        _, explain = enforcer.enforce_ex(subjects, obj, purpose, act)
                        if explain:
                            found[eft][(token, obj, purpose, act)] = policy.line(explain)
    return classes, found["allow"], found["deny"]


def _validate(policies: PolicySet) -> None:
    issues = [
        PolicyIssue(_file(policies), 1, 1, ".".join(map(str, f.path)), f.message)
        for f in check_organisation(policies.organisation)
    ]
    if issues:
        raise PolicyError(issues)


def _file(policies: PolicySet) -> str:
    return policies.files[0] if policies.files else "<policy set>"


def _error(policies: PolicySet, path: str, message: str) -> PolicyError:
    return PolicyError([PolicyIssue(_file(policies), 1, 1, path, message)])
