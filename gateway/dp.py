"""Gateway glue for DP releases: authorise -> compile -> charge -> execute -> audit.

The ledger is charged before any data is read or noise drawn, and a charge stands even if
execution then fails: a failed run may already have revealed something (timing, an error),
and refunds would let a caller probe the data by aborting releases (see `privacy.ledger`).
`dry_run` authorises and compiles only: it shows the charge and the expected accuracy and
spends nothing. The API process starts a local Spark session lazily, on its first DP query
(`spark_for`), so the API starts fast and processes that never run DP never start Spark.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.audit import AuditEvent
from gateway.errors import AccessDenied, Conflict, NotFound, ValidationFailed
from gateway.identity import Principal
from gateway.ingest.job import LakePaths, dp_zone_columns
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.protection import ProtectionKind
from gateway.services import Services
from gateway.settings import Settings
from privacy.dp import (
    ColumnDp,
    DpError,
    DpPlan,
    DpQuery,
    DpRelease,
    accuracy95,
    compile_plan,
)
from privacy.ledger import (
    BudgetExceeded,
    BudgetKind,
    BudgetLedger,
    BudgetStatus,
    LedgerError,
    PrivacyBudget,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "BudgetRefused",
    "DpOutcome",
    "Executor",
    "budget_status",
    "ledger_for",
    "plan_query",
    "run_query",
    "spark_for",
]

Executor = Callable[[DpPlan], DpRelease]


class BudgetRefused(Conflict):
    """The release would exceed the privacy budget (HTTP 409), with the amounts."""

    code = "budget-exceeded"

    def __init__(self, exc: BudgetExceeded) -> None:
        super().__init__(str(exc))
        self.requested = exc.requested
        self.remaining = exc.remaining
        self.difference = exc.difference
        self.problem_extra: dict[str, Any] = {
            "requested": _budget_json(exc.requested),
            "remaining": _budget_json(exc.remaining),
            "difference": _budget_json(exc.difference),
            "scope": exc.scope.value,
        }


@dataclass(frozen=True)
class DpOutcome:
    """A release (None on a dry run), its plan and the amount charged (or that would be)."""

    plan: DpPlan
    charge: PrivacyBudget
    dry_run: bool
    release: DpRelease | None
    expected_accuracy95: Mapping[str, float | None]
    request_id: str


def _budget_json(budget: PrivacyBudget) -> dict[str, str]:
    names = ("rho",) if budget.kind is BudgetKind.ZCDP else ("epsilon", "delta")
    return {
        "kind": budget.kind.value,
        **{n: format(v, "f") for n, v in zip(names, budget.parts, strict=False)},
    }


_ledgers: dict[int, BudgetLedger] = {}
_ledger_lock = threading.Lock()


def ledger_for(services: Services) -> BudgetLedger:
    """The budget ledger on the services' database (one per engine)."""
    with _ledger_lock:
        ledger = _ledgers.get(id(services.engine))
        if ledger is None or ledger.engine is not services.engine:
            ledger = _ledgers[id(services.engine)] = BudgetLedger(services.engine)
        return ledger


_spark: dict[str, SparkSession] = {}
_spark_lock = threading.Lock()


def spark_for(settings: Settings) -> SparkSession:
    """A Spark session for DP execution, started on first use and then reused."""
    with _spark_lock:
        session = _spark.get("session")
        if session is None:
            from gateway.spark import create_spark_session

            session = _spark["session"] = create_spark_session(settings, "gateway-dp")
        return session


def _amount(
    ds: DatasetPolicy,
    purpose: str,
    epsilon: Decimal | None,
    delta: Decimal | None,
    rho: Decimal | None,
) -> tuple[PrivacyBudget, PrivacyBudget, PrivacyBudget | None]:
    budget = ds.budget_for(purpose)
    if budget is None:
        raise AccessDenied(f"dataset '{ds.dataset}' has no privacy budget for '{purpose}'")
    if budget.kind == "zcdp":
        if rho is None or epsilon is not None:
            raise ValidationFailed("this budget is zCDP: give 'rho', not 'epsilon'")
        assert budget.rho is not None
        per = PrivacyBudget.zcdp(budget.per_principal) if budget.per_principal else None
        return PrivacyBudget.zcdp(rho), PrivacyBudget.zcdp(budget.rho), per
    if epsilon is None or rho is not None:
        raise ValidationFailed("this budget is in epsilon: give 'epsilon', not 'rho'")
    assert budget.epsilon is not None
    if budget.kind == "approximate":
        assert budget.delta is not None
        total = PrivacyBudget.approximate(budget.epsilon, budget.delta)
        per = (
            PrivacyBudget.approximate(budget.per_principal, budget.delta)
            if budget.per_principal
            else None
        )
        return PrivacyBudget.approximate(epsilon, delta or 0), total, per
    if delta:
        raise ValidationFailed("this budget is pure DP: 'delta' is not accepted")
    per = PrivacyBudget.pure(budget.per_principal) if budget.per_principal else None
    return PrivacyBudget.pure(epsilon), PrivacyBudget.pure(budget.epsilon), per


def plan_query(
    services: Services,
    principal: Principal,
    dataset: str,
    purpose: str,
    query: DpQuery,
    *,
    epsilon: Decimal | None = None,
    delta: Decimal | None = None,
    rho: Decimal | None = None,
    request_id: str = "",
) -> tuple[DpPlan, PrivacyBudget]:
    """Authorise (audited) and compile; NotFound/AccessDenied/ValidationFailed on refusal."""
    policies = services.policies
    try:
        ds = policies.dataset(dataset)
    except (NotFound, KeyError, LookupError):
        raise NotFound(f"no dataset named '{dataset}'") from None
    names = [n for n in (query.column, *query.group_by) if n is not None]
    unknown = [n for n in names if n not in ds.columns]
    if unknown:
        raise NotFound(f"dataset '{dataset}' has no column '{unknown[0]}'")
    decision = services.authorizer.can_query_dp(principal, purpose, dataset, names or None)
    services.decide(
        principal,
        decision,
        action="dp_query",
        purpose=purpose,
        resource=f"dataset:{dataset}",
        request_id=request_id,
        released={"columns": names, "query": query.kind},
    )
    if not decision.allowed:
        if decision.hides_resource:
            raise NotFound(decision.reason)
        raise AccessDenied(decision.reason)
    if ds.privacy_unit is None:
        raise ValidationFailed(f"dataset '{dataset}' declares no privacy unit")
    amount, _, _ = _amount(ds, purpose, epsilon, delta, rho)
    zone = dp_zone_columns(ds)
    lowest = policies.lowest_clearance
    dp_only = [
        n
        for n in names
        if (p := ds.protection(n, purpose, lowest)) is not None and p.kind is ProtectionKind.DP_ONLY
    ]
    source = query.source
    if source == "auto":
        source = "dp_zone" if dp_only else "governed"
    lake = LakePaths(services.settings.lake)
    if source == "dp_zone":
        available = zone
        table = lake.dp_zone(dataset)
        row_filters = tuple(ds.row_filter_texts(purpose))
    else:
        if dp_only:
            raise ValidationFailed(f"column '{dp_only[0]}' is only in the DP zone for '{purpose}'")
        available = [
            n
            for n in ds.columns
            if (p := ds.protection(n, purpose, lowest)) is not None
            and p.kind in (ProtectionKind.KEEP, ProtectionKind.MASK)
        ]
        table = lake.governed(dataset, purpose)
        row_filters = ()  # the governed table was filtered at ingest
    columns = {
        n: ColumnDp(s.dp.bounds, s.dp.public_categories)
        for n, s in ds.columns.items()
        if s.dp is not None
    }
    try:
        plan = compile_plan(
            dataset=dataset,
            purpose=purpose,
            query=query,
            source=source,
            table=str(table),
            entity=ds.privacy_unit.entity,
            max_rows=ds.privacy_unit.max_rows,
            columns=columns,
            available=[*available, ds.privacy_unit.entity],
            row_filters=row_filters,
            amount=amount,
        )
    except (DpError, LedgerError) as exc:
        raise ValidationFailed(str(exc)) from None
    return plan, amount


def _spark_executor(services: Services) -> Executor:
    def run(plan: DpPlan) -> DpRelease:
        from gateway.policy.expr_spark import to_spark_column
        from gateway.policy.expressions import parse_condition
        from gateway.storage import open_store
        from privacy.dp import aggregate, release

        spark = spark_for(services.settings)
        frame = open_store(spark, services.settings).read(plan.table)
        ds = services.policies.dataset(plan.dataset)
        schema = {name: spec.type for name, spec in ds.columns.items()}
        for text in plan.row_filters:
            frame = frame.filter(to_spark_column(parse_condition(text, schema)))
        return release(plan, aggregate(frame, plan))

    return run


def run_query(
    services: Services,
    principal: Principal,
    dataset: str,
    purpose: str,
    query: DpQuery,
    *,
    epsilon: Decimal | None = None,
    delta: Decimal | None = None,
    rho: Decimal | None = None,
    dry_run: bool = False,
    request_id: str = "",
    executor: Executor | None = None,
) -> DpOutcome:
    """Authorise, compile, charge (unless dry run), execute and audit one DP release."""
    request_id = request_id or uuid.uuid4().hex
    plan, amount = plan_query(
        services,
        principal,
        dataset,
        purpose,
        query,
        epsilon=epsilon,
        delta=delta,
        rho=rho,
        request_id=request_id,
    )
    expected = {
        f"{i}:{s.name}": (
            None if (a := accuracy95(s.mechanism, s.scale)) is None else a * s.resolution
        )
        for i, s in enumerate(plan.statistics)
    }
    if dry_run:
        return DpOutcome(plan, amount, True, None, expected, request_id)
    ds = services.policies.dataset(dataset)
    _, total, per = _amount(ds, purpose, epsilon, delta, rho)
    ledger = ledger_for(services)
    try:
        ledger.ensure_budget(dataset, purpose, total, per)
        ledger.charge(
            dataset,
            purpose,
            principal.subject,
            amount,
            request_id=request_id,
            description=f"dp {query.kind} {query.column or ''}".strip(),
            fingerprint=None,
        )
    except BudgetExceeded as exc:
        raise BudgetRefused(exc) from None
    except LedgerError as exc:
        raise ValidationFailed(str(exc)) from None
    result = (executor or _spark_executor(services))(plan)  # the charge stands if this fails
    groups = ["|".join(g) for g in result.groups][:1000]
    services.record(
        AuditEvent(
            kind="dp_release",
            subject=principal.subject,
            roles=principal.roles,
            action="dp_query",
            purpose=purpose,
            resource=f"dataset:{dataset}",
            decision="allow",
            rule="dp_release",
            request_id=request_id,
            policy_version=services.policies.version,
            released={
                "epsilon" if amount.kind is not BudgetKind.ZCDP else "rho": float(amount.parts[0]),
                "query": query.kind,
                "columns": [n for n in (query.column, *query.group_by) if n],
                "groups": groups,
            },
        )
    )
    return DpOutcome(plan, amount, False, result, expected, request_id)


def budget_status(
    services: Services, principal: Principal, dataset: str, purpose: str
) -> BudgetStatus:
    """The budget left for `principal` (or the shared one); authorised as a DP query."""
    decision = services.authorizer.can_query_dp(principal, purpose, dataset)
    if not decision.allowed:
        raise (
            NotFound(decision.reason) if decision.hides_resource else AccessDenied(decision.reason)
        )
    ds = services.policies.dataset(dataset)
    budget = ds.budget_for(purpose)
    if budget is None:
        raise NotFound(f"dataset '{dataset}' has no privacy budget for '{purpose}'")
    kind = budget.kind
    one = {
        "zcdp": (None, None, Decimal(1)),
        "approximate": (Decimal(1), Decimal(0), None),
        "pure": (Decimal(1), None, None),
    }[kind]
    _, total, per = _amount(ds, purpose, *one)
    ledger = ledger_for(services)
    ledger.ensure_budget(dataset, purpose, total, per)
    return ledger.remaining(dataset, purpose, principal.subject)
