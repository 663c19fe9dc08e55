"""Plan and build what a governed table holds for one (dataset, purpose).

`plan_protection` resolves every column's protection and the cell rules on it without
Spark (so `--dry-run`, `policy explain` and tests can read it); `governed_columns` turns
the plan into native Spark Column expressions for one `select()`: per column either the
strategy's expression, or a `when(...)` chain where cell rules apply, the strictest first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import IngestError
from gateway.policy.dataset import CellRule, DatasetPolicy
from gateway.policy.loader import PolicySet
from gateway.policy.protection import Protection, ProtectionKind, strictness
from masking.base import KeyMaterial, MaskContext, SecretColumns
from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = [
    "ColumnPlan",
    "ProtectionPlan",
    "governed_columns",
    "plan_protection",
    "row_filter_column",
]


@dataclass(frozen=True)
class RulePlan:
    """A cell rule as it applies to one column: its label, condition and protection."""

    label: str
    when: str
    protection: Protection


@dataclass(frozen=True)
class ColumnPlan:
    """One governed column: its base protection and the stricter cell rules on it."""

    column: str
    input_type: DataType
    output_type: DataType
    classification: str
    protection: Protection
    rules: tuple[RulePlan, ...] = ()
    key_references: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProtectionPlan:
    """What the ingest job writes for one (dataset, purpose), decided before any data moves."""

    dataset: str
    purpose: str
    policy_version: str
    entity: str
    columns: tuple[ColumnPlan, ...]
    dropped: tuple[str, ...]
    dp_only: tuple[str, ...]
    encrypted: tuple[str, ...]
    row_filters: tuple[str, ...]
    key_ids: Mapping[str, str] = field(default_factory=dict)

    @property
    def key_references(self) -> frozenset[str]:
        """Every secret reference the governed projection needs."""
        return frozenset().union(*(c.key_references for c in self.columns))

    def facts(
        self, key_ids: Mapping[str, str] | None = None, k_achieved: int | None = None
    ) -> dict[str, Any]:
        """Per-column protection facts for commit metadata and lineage: no values, no secrets."""
        ids = dict(key_ids or self.key_ids)
        facts: dict[str, Any] = {}
        for col in self.columns:
            entry: dict[str, Any] = {
                "protection": col.protection.kind.value,
                "classification": col.classification,
            }
            if col.protection.kind is ProtectionKind.MASK:
                entry["strategy"] = col.protection.strategy
            refs = sorted(col.key_references)
            if refs:
                entry["key_ids"] = [ids.get(ref, ref) for ref in refs]
            if col.rules:
                entry["cell_rules"] = [rule.label for rule in col.rules]
            facts[col.column] = entry
        for kind, names in (
            ("drop", self.dropped),
            ("dp_only", self.dp_only),
            ("encrypt", self.encrypted),
        ):
            for name in names:
                facts[name] = {"protection": kind}
        if k_achieved is not None:
            facts["_k_anonymity"] = {"k_achieved": k_achieved}
        return facts

    def facts_json(
        self, key_ids: Mapping[str, str] | None = None, k_achieved: int | None = None
    ) -> str:
        """`facts()` as compact, sorted JSON."""
        return json.dumps(self.facts(key_ids, k_achieved), sort_keys=True, separators=(",", ":"))


def plan_protection(policies: PolicySet, dataset: str, purpose: str) -> ProtectionPlan:
    """Resolve every column for `purpose`; IngestError when the dataset does not serve it
    or a column has no protection decided (fail closed)."""
    from masking.catalog import REGISTRY

    ds = policies.dataset(dataset)
    if not ds.allows(purpose):
        raise IngestError(
            f"dataset '{dataset}' does not serve purpose '{purpose}' "
            f"(its purposes: {', '.join(ds.purposes)})"
        )
    columns: list[ColumnPlan] = []
    dropped, dp_only, encrypted = [], [], []
    rules = ds.cell_rules_for(purpose)
    for name, spec in ds.columns.items():
        protection = ds.protection(name, purpose, policies.lowest_clearance)
        if protection is None:
            raise IngestError(
                f"column '{name}' of '{dataset}' is classified '{spec.classification}' "
                f"and has no protection for purpose '{purpose}': refusing to ingest"
            )
        if protection.kind is ProtectionKind.DROP:
            dropped.append(name)
            continue
        if protection.kind is ProtectionKind.DP_ONLY:
            dp_only.append(name)
            continue
        if protection.kind is ProtectionKind.ENCRYPT:
            encrypted.append(name)
            continue
        output, refs = spec.type, frozenset[str]()
        if protection.kind is ProtectionKind.MASK:
            strategy = REGISTRY.get(str(protection.strategy))
            params = strategy.parse(protection.params)
            output = strategy.output_type(spec.type, params)
            refs = strategy.key_references(params)
        applied = _column_rules(ds, rules, name, protection)
        for rule in applied:
            strategy = REGISTRY.get(str(rule.protection.strategy))
            params = strategy.parse(rule.protection.params)
            rule_output = strategy.output_type(spec.type, params)
            if rule_output is not output and rule.protection.strategy not in ("nullify",):
                raise IngestError(
                    f"cell rule '{rule.label}' makes column '{name}' a {rule_output} "
                    f"while its protection for '{purpose}' makes it a {output}"
                )
            refs = refs | strategy.key_references(params)
        columns.append(
            ColumnPlan(name, spec.type, output, spec.classification, protection, applied, refs)
        )
    return ProtectionPlan(
        dataset=dataset,
        purpose=purpose,
        policy_version=policies.version,
        entity=ds.entity,
        columns=tuple(columns),
        dropped=tuple(dropped),
        dp_only=tuple(dp_only),
        encrypted=tuple(encrypted),
        row_filters=tuple(ds.row_filter_texts(purpose)),
    )


def _column_rules(
    ds: DatasetPolicy, rules: list[CellRule], column: str, base: Protection
) -> tuple[RulePlan, ...]:
    """Rules on `column` that are stricter than its base protection, strictest first (stable)."""
    stricter = [
        (index, rule)
        for index, rule in enumerate(ds.cell_rules)
        if rule in rules and column in rule.columns and strictness(rule.protect) > strictness(base)
    ]
    stricter.sort(key=lambda item: -strictness(item[1].protect))
    return tuple(
        RulePlan(rule.name or f"rule {index + 1}", rule.when, rule.protect)
        for index, rule in stricter
    )


def row_filter_column(ds: DatasetPolicy, plan: ProtectionPlan) -> Column | None:
    """The AND of the purpose's row filters as one Spark Column, or None when there are none."""
    from gateway.policy.expr_spark import to_spark_column
    from gateway.policy.expressions import parse_condition

    schema = {name: spec.type for name, spec in ds.columns.items()}
    combined: Column | None = None
    for text in plan.row_filters:
        column = to_spark_column(parse_condition(text, schema))
        combined = column if combined is None else combined & column
    return combined


def protect_frame(
    frame: DataFrame,
    ds: DatasetPolicy,
    plan: ProtectionPlan,
    keys: Mapping[str, KeyMaterial],
    seed: int,
) -> DataFrame:
    """`frame` (typed, declared columns) projected to the governed columns in one `select()`.

    Key-derived bytes reach the plan only as columns of a broadcast one-row frame, so no
    printed plan (errors, `explain()`, the Spark UI) carries key material.
    """
    from pyspark.sql import functions as F

    secrets = SecretColumns()
    columns = governed_columns(ds, plan, keys, seed, secrets)
    if secrets.names:
        frame = frame.crossJoin(F.broadcast(secrets.frame(frame.sparkSession)))
    return frame.select(*columns)


def governed_columns(
    ds: DatasetPolicy,
    plan: ProtectionPlan,
    keys: Mapping[str, KeyMaterial],
    seed: int,
    secrets: SecretColumns | None = None,
) -> list[Column]:
    """One Spark Column per governed column, aliased to its name, for a single `select()`.

    With `secrets`, key-derived bytes are referenced as its columns (see `protect_frame`)."""
    from pyspark.sql import functions as F

    from gateway.policy.expr_spark import to_spark_column
    from gateway.policy.expressions import parse_condition

    schema = {name: spec.type for name, spec in ds.columns.items()}
    out = []
    for col in plan.columns:
        ctx = MaskContext(
            column=col.column,
            data_type=col.input_type,
            keys=keys,
            entity_column=ds.entity,
            seed=seed,
            secret_columns=secrets,
        )
        source = F.col(f"`{col.column}`")
        expression = _protected(source, col.protection, ctx)
        if col.rules:
            chain = None
            for rule in col.rules:
                condition = to_spark_column(parse_condition(rule.when, schema))
                value = _protected(source, rule.protection, ctx)
                if (
                    value is not None
                    and col.output_type is not col.input_type
                    and rule.protection.strategy == "nullify"
                ):
                    value = value.cast(col.output_type.spark_sql)
                chain = F.when(condition, value) if chain is None else chain.when(condition, value)
            assert chain is not None
            expression = chain.otherwise(expression)
        out.append(expression.alias(col.column))
    return out


def _protected(source: Column, protection: Protection, ctx: MaskContext) -> Column:
    from masking.catalog import REGISTRY

    if protection.kind is ProtectionKind.KEEP:
        return source
    if protection.kind is not ProtectionKind.MASK:
        raise IngestError(
            f"column '{ctx.column}': '{protection}' cannot be part of a governed table"
        )
    strategy = REGISTRY.get(str(protection.strategy))
    column: Column = strategy.expression(source, strategy.parse(protection.params), ctx)
    return column
