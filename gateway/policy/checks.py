"""Semantic checks that a schema cannot express: references, types, conflicts, clearances.

Each check yields `Finding`s (a node path in one file and a message); the loader turns them
into located issues. Checks never stop at the first problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gateway.policy.dataset import ColumnSpec, DatasetPolicy
from gateway.policy.locate import did_you_mean
from gateway.policy.organisation import Action, OrganisationPolicy, purpose_covers
from gateway.policy.protection import Protection, ProtectionKind, strictness, type_problem
from gateway.policy.source import Path_
from masking.types import NUMERIC_TYPES, TEMPORAL_TYPES, DataType

__all__ = ["Finding", "check_dataset", "check_organisation", "roles_for"]


@dataclass(frozen=True)
class Finding:
    """One problem: where in the file (a node path) and what is wrong."""

    path: Path_
    message: str
    at_key: bool = False
    offset: tuple[int, int] | None = None  # (line, column) inside a string value


def check_organisation(org: OrganisationPolicy) -> Iterator[Finding]:
    """References inside the organisation file: purposes, clearances, roles, principals."""
    for name in org.purposes:
        if "." in name and name.rsplit(".", 1)[0] not in org.purposes:
            parent = name.rsplit(".", 1)[0]
            yield Finding(
                ("purposes", name), f"sub-purpose of '{parent}', which is not declared", True
            )
    for role_name, role in org.roles.items():
        for i, purpose in enumerate(role.purposes):
            if purpose != "*" and purpose not in org.purposes:
                yield Finding(
                    ("roles", role_name, "purposes", i),
                    f"unknown purpose '{purpose}'{did_you_mean(purpose, org.purposes)}",
                )
        if role.clearance not in org.clearances:
            yield Finding(
                ("roles", role_name, "clearance"),
                _unknown("clearance", role.clearance, org.clearances),
            )
        if len(set(role.actions)) != len(role.actions):
            yield Finding(("roles", role_name, "actions"), "an action is listed twice")
    for principal, spec in org.principals.items():
        for i, held in enumerate(spec.roles):
            if held not in org.roles:
                yield Finding(
                    ("principals", principal, "roles", i), _unknown("role", held, org.roles)
                )
    for p, idp in enumerate(org.identity_providers):
        for claim, roles in idp.role_map.items():
            for i, mapped in enumerate(roles):
                if mapped not in org.roles:
                    yield Finding(
                        ("identity_providers", p, "role_map", claim, i),
                        _unknown("role", mapped, org.roles),
                    )
    for d, rule in enumerate(org.deny):
        if rule.role is not None and rule.role not in org.roles:
            yield Finding(
                ("deny", d, "role"),
                f"unknown role '{rule.role}'{did_you_mean(rule.role, org.roles)}",
            )
        if rule.principal is not None and rule.principal not in org.principals:
            yield Finding(("deny", d, "principal"), f"unknown principal '{rule.principal}'")
        if rule.purpose != "*" and rule.purpose not in org.purposes:
            yield Finding(
                ("deny", d, "purpose"),
                f"unknown purpose '{rule.purpose}'{did_you_mean(rule.purpose, org.purposes)}",
            )


def _unknown(kind: str, name: str, choices: Iterable[str]) -> str:
    return f"unknown {kind} '{name}'{did_you_mean(name, choices)}"


def _not_served(ds: DatasetPolicy, purpose: str) -> str:
    hint = did_you_mean(purpose, ds.purposes)
    return f"purpose '{purpose}' is not a purpose of this dataset{hint}"


def roles_for(org: OrganisationPolicy, dataset: str, purpose: str, action: Action) -> list[str]:
    """Roles that may take `action` on `dataset` for `purpose` (before deny rules)."""
    return [
        name
        for name, role in org.roles.items()
        if action in role.actions
        and any(purpose_covers(granted, purpose) for granted in role.purposes)
        and any(d in ("*", dataset) for d in role.datasets)
    ]


def check_dataset(ds: DatasetPolicy, org: OrganisationPolicy) -> Iterator[Finding]:
    """Every reference and rule of one dataset file, checked against its schema and the org."""
    yield from _purposes(ds, org)
    yield from _keys(ds)
    for name, spec in ds.columns.items():
        yield from _column(ds, org, name, spec)
    yield from _row_filters(ds)
    yield from _cell_rules(ds, org)
    yield from _features(ds, org)
    yield from _releases(ds)
    yield from _clearances(ds, org)


def _known_purpose(ds: DatasetPolicy, purpose: str) -> bool:
    return purpose == "*" or ds.allows(purpose)


def _purposes(ds: DatasetPolicy, org: OrganisationPolicy) -> Iterator[Finding]:
    for i, purpose in enumerate(ds.purposes):
        if purpose not in org.purposes:
            yield Finding(
                ("purposes", i), f"unknown purpose '{purpose}'{did_you_mean(purpose, org.purposes)}"
            )
    if len(set(ds.purposes)) != len(ds.purposes):
        yield Finding(("purposes",), "a purpose is listed twice")


def _column_ref(
    ds: DatasetPolicy, path: Path_, name: str, *, at_key: bool = False
) -> Iterator[Finding]:
    if name not in ds.columns:
        yield Finding(path, f"unknown column '{name}'{did_you_mean(name, ds.columns)}", at_key)


def _keys(ds: DatasetPolicy) -> Iterator[Finding]:
    yield from _column_ref(ds, ("entity",), ds.entity)
    for i, column in enumerate(ds.primary_key or ()):
        yield from _column_ref(ds, ("primary_key", i), column)
    if ds.event_time is not None:
        yield from _column_ref(ds, ("event_time",), ds.event_time)
        spec = ds.columns.get(ds.event_time)
        if spec is not None and spec.type not in TEMPORAL_TYPES:
            yield Finding(
                ("event_time",), f"event_time column '{ds.event_time}' must be a date or timestamp"
            )
    if ds.privacy_unit is not None:
        yield from _column_ref(ds, ("privacy_unit", "entity"), ds.privacy_unit.entity)
    qi = ds.quasi_identifiers
    if qi is not None:
        for i, column in enumerate(qi.columns):
            yield from _column_ref(ds, ("quasi_identifiers", "columns", i), column)
        if qi.sensitive is not None:
            yield from _column_ref(ds, ("quasi_identifiers", "sensitive"), qi.sensitive)
            if qi.sensitive in qi.columns:
                yield Finding(
                    ("quasi_identifiers", "sensitive"),
                    "the sensitive column cannot also be a quasi-identifier",
                )


def _column(
    ds: DatasetPolicy, org: OrganisationPolicy, name: str, spec: ColumnSpec
) -> Iterator[Finding]:
    base: Path_ = ("columns", name)
    if spec.classification not in org.clearances:
        yield Finding(
            (*base, "classification"),
            _unknown("classification", spec.classification, org.clearances)
            + f"; levels are {', '.join(org.clearances)}",
        )
    if spec.protect is not None:
        yield from _protection_fits(spec.protect, spec.type, (*base, "protect"))
    for purpose, override in spec.purposes.items():
        if not _known_purpose(ds, purpose):
            yield Finding(
                (*base, "purposes", purpose),
                _not_served(ds, purpose),
                True,
            )
        yield from _protection_fits(
            override.protect, spec.type, (*base, "purposes", purpose, "protect")
        )
    if spec.pattern is not None and spec.type is not DataType.STRING:
        yield Finding((*base, "pattern"), f"'pattern' applies to string columns, not {spec.type}")
    if spec.allowed is not None:
        for i, value in enumerate(spec.allowed):
            if not _fits(value, spec.type):
                yield Finding(
                    (*base, "allowed", i), f"allowed value {value!r} is not a {spec.type}"
                )
    for bound in ("min", "max"):
        value = getattr(spec, bound)
        if value is not None and not (spec.type in NUMERIC_TYPES or spec.type in TEMPORAL_TYPES):
            yield Finding(
                (*base, bound), f"'{bound}' applies to numeric, date and timestamp columns"
            )
    if spec.dp is not None and spec.dp.bounds is not None and spec.type not in NUMERIC_TYPES:
        yield Finding(
            (*base, "dp", "bounds"), f"DP bounds apply to numeric columns, not {spec.type}"
        )
    lowest = org.clearances[0] if spec.classification in org.clearances else spec.classification
    for purpose in ds.purposes:
        if ds.protection(name, purpose, lowest) is None:
            yield Finding(
                base,
                f"column classified '{spec.classification}' has no protection for purpose "
                f"'{purpose}'; add 'protect:' or a 'purposes: {{{purpose}: ...}}' override",
                True,
            )


def _protection_fits(protection: Protection, data_type: DataType, path: Path_) -> Iterator[Finding]:
    problem = type_problem(protection, data_type)
    if problem:
        yield Finding(path, problem)


def _fits(value: object, data_type: DataType) -> bool:
    if data_type is DataType.BOOLEAN:
        return isinstance(value, bool)
    if data_type in (DataType.INTEGER, DataType.LONG):
        return isinstance(value, int) and not isinstance(value, bool)
    if data_type is DataType.DOUBLE:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _schema(ds: DatasetPolicy) -> dict[str, DataType]:
    return {name: spec.type for name, spec in ds.columns.items()}


def _condition(ds: DatasetPolicy, text: str, path: Path_) -> Iterator[Finding]:
    from gateway.policy.expressions import ExpressionError, parse_condition

    try:
        parse_condition(text, _schema(ds))
    except ExpressionError as exc:
        yield Finding(path, exc.message, offset=(exc.line, exc.column))


def _row_filters(ds: DatasetPolicy) -> Iterator[Finding]:
    for purpose, text in ds.row_filters.items():
        if not _known_purpose(ds, purpose):
            yield Finding(
                ("row_filters", purpose),
                _not_served(ds, purpose),
                True,
            )
        yield from _condition(ds, text, ("row_filters", purpose))


def _cell_rules(ds: DatasetPolicy, org: OrganisationPolicy) -> Iterator[Finding]:
    seen: dict[tuple[str, str], tuple[int, Protection, tuple[str, ...]]] = {}
    lowest = org.clearances[0]
    for r, rule in enumerate(ds.cell_rules):
        base: Path_ = ("cell_rules", r)
        yield from _condition(ds, rule.when, (*base, "when"))
        for p, purpose in enumerate(rule.purposes):
            if not _known_purpose(ds, purpose):
                yield Finding(
                    (*base, "purposes", p), f"purpose '{purpose}' is not a purpose of this dataset"
                )
        for c, column in enumerate(rule.columns):
            if column not in ds.columns:
                yield from _column_ref(ds, (*base, "columns", c), column)
                continue
            yield from _protection_fits(rule.protect, ds.columns[column].type, (*base, "protect"))
            key = (" ".join(rule.when.split()).lower(), column)
            if key in seen:
                first, other, other_purposes = seen[key]
                if other != rule.protect and _overlap(other_purposes, rule.purposes):
                    yield Finding(
                        (*base, "protect"),
                        f"contradicts cell rule {first + 1} (same condition, "
                        f"column '{column}': '{other}' versus '{rule.protect}')",
                    )
            else:
                seen[key] = (r, rule.protect, rule.purposes)
            purposes = [p for p in ds.purposes if any(purpose_covers(g, p) for g in rule.purposes)]
            effective = [ds.protection(column, p, lowest) for p in purposes]
            decided = [e for e in effective if e is not None]
            if decided and all(
                not e.in_governed_table or strictness(e) >= strictness(rule.protect)
                for e in decided
            ):
                yield Finding(
                    (*base, "columns", c),
                    f"has no effect on column '{column}': every purpose it "
                    "applies to already protects the column at least as strictly",
                )


def _overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    return any(purpose_covers(a, b) or purpose_covers(b, a) for a in first for b in second)


def _features(ds: DatasetPolicy, org: OrganisationPolicy) -> Iterator[Finding]:
    lowest = org.clearances[0]
    for view, spec in ds.features.items():
        base: Path_ = ("features", view)
        for p, purpose in enumerate(spec.approved_for):
            path = (*base, "approved_for", p)
            if not _known_purpose(ds, purpose) or purpose == "*":
                yield Finding(
                    path,
                    _not_served(ds, purpose),
                )
                continue
            if not roles_for(org, ds.dataset, purpose, Action.READ_FEATURES):
                yield Finding(
                    path,
                    f"approved for '{purpose}', but no role may read features for that purpose",
                )
            for column in spec.columns:
                if column not in ds.columns:
                    continue
                protection = ds.protection(column, purpose, lowest)
                if protection is not None and not protection.in_governed_table:
                    yield Finding(
                        path,
                        f"column '{column}' is {protection} for '{purpose}', "
                        "so it cannot be a feature",
                    )
        for c, column in enumerate(spec.columns):
            yield from _column_ref(ds, (*base, "columns", c), column)
            if column == ds.entity:
                yield Finding(
                    (*base, "columns", c), "the entity key is the view's join key, not a feature"
                )


def _releases(ds: DatasetPolicy) -> Iterator[Finding]:
    for purpose in ds.budgets:
        if not _known_purpose(ds, purpose) or purpose == "*":
            yield Finding(
                ("budgets", purpose), f"purpose '{purpose}' is not a purpose of this dataset", True
            )
    if ds.synthetic is not None:
        for p, purpose in enumerate(ds.synthetic.allowed_for):
            if not _known_purpose(ds, purpose):
                yield Finding(
                    ("synthetic", "allowed_for", p),
                    f"purpose '{purpose}' is not a purpose of this dataset",
                )
    for name, spec in ds.columns.items():
        kinds = {spec.protect.kind} if spec.protect else set()
        kinds |= {o.protect.kind for o in spec.purposes.values()}
        if (
            ProtectionKind.DP_ONLY in kinds
            and spec.type in NUMERIC_TYPES
            and (spec.dp is None or spec.dp.bounds is None)
        ):
            yield Finding(
                ("columns", name),
                "a numeric dp_only column needs 'dp: {bounds: [lower, upper]}'",
                True,
            )


def _clearances(ds: DatasetPolicy, org: OrganisationPolicy) -> Iterator[Finding]:
    lowest = org.clearances[0]
    for name, spec in ds.columns.items():
        if spec.classification not in org.clearances:
            continue
        for purpose in ds.purposes:
            protection = ds.protection(name, purpose, lowest)
            if protection is None or not protection.exposes_raw:
                continue
            for role in roles_for(org, ds.dataset, purpose, Action.READ_FEATURES):
                held = org.roles[role].clearance
                if held in org.clearances and not org.covers(held, spec.classification):
                    yield Finding(
                        ("columns", name),
                        f"kept unprotected for '{purpose}', but role '{role}' "
                        f"(clearance {held}) may read features for that purpose without clearance "
                        f"for {spec.classification} data",
                        True,
                    )
