"""The privacy-budget ledger: exact accounting, refusals, splits, exactly-once and concurrency."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.ledger import (
    BudgetExceeded,
    BudgetKind,
    BudgetKindMismatch,
    BudgetLedger,
    BudgetNotFound,
    BudgetScope,
    BudgetStatus,
    Charge,
    InvalidBudget,
    LedgerError,
    PrivacyBudget,
    RequestIdConflict,
)

PG_URL = "postgresql://root@127.0.0.1:5432/test"
PURE, APPROX, ZCDP = PrivacyBudget.pure, PrivacyBudget.approximate, PrivacyBudget.zcdp

# Back-ends: the gateway's SQLite engine (WAL, BEGIN IMMEDIATE), a plain SQLAlchemy SQLite
# engine (rollback journal, pysqlite's deferred BEGIN) and the gateway's PostgreSQL engine.
FLAVOURS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("sqlite-plain", id="sqlite-plain"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def make_engine(flavour: str, url: str) -> sa.Engine:
    """An engine as the gateway builds it (tests may import gateway; privacy may not)."""
    if flavour == "sqlite-plain":
        return sa.create_engine(url)
    from gateway.db import create_database_engine

    return create_database_engine(url)


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} does not answer: {' '.join(str(exc).split())}"
    return None


@dataclass
class Store:
    """One back-end under test: its flavour, URL, table prefix and ledger."""

    flavour: str
    url: str
    prefix: str
    ledger: BudgetLedger

    def budget(
        self,
        total: PrivacyBudget,
        per_principal: PrivacyBudget | None = None,
        purpose: str = "analytics",
    ) -> str:
        """A fresh dataset with a budget for `purpose`; its name."""
        dataset = f"ds-{uuid.uuid4().hex}"
        self.ledger.ensure_budget(dataset, purpose, total, per_principal)
        return dataset

    def raw_spent(self, dataset: str) -> Any:
        """The `spent` column as the database holds it (text on SQLite, NUMERIC on PostgreSQL)."""
        with self.ledger.engine.connect() as conn:
            return conn.execute(
                sa.text(
                    f"SELECT spent FROM {self.prefix}budgets WHERE dataset = :d AND principal = ''"
                ),
                {"d": dataset},
            ).scalar_one()


@pytest.fixture(scope="module", params=FLAVOURS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A ledger on each back-end, with tables of their own (dropped afterwards)."""
    flavour: str = request.param
    if flavour == "postgres":
        reason = postgres_unavailable()
        if reason:
            pytest.skip(reason)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp(flavour) / 'ledger.db'}"
    prefix = f"dp_t{uuid.uuid4().hex[:10]}_"
    engine = make_engine(flavour, url)
    try:
        yield Store(flavour, url, prefix, BudgetLedger(engine, prefix))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}charges"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}budgets"))
        engine.dispose()


def charge(
    store: Store,
    dataset: str,
    amount: PrivacyBudget,
    principal: str = "alice",
    purpose: str = "analytics",
    request_id: str | None = None,
) -> Charge:
    """Charge with a fresh request id unless one is given."""
    return store.ledger.charge(
        dataset,
        purpose,
        principal,
        amount,
        request_id=request_id or uuid.uuid4().hex,
        description="count(*)",
    )


# -- PrivacyBudget ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),  # float via str: 0.1, not 0.1000000000000000055511151231257827
        ("1.50", Decimal("1.5")),  # text, trailing zero dropped
        (Fraction(1, 4), Decimal("0.25")),  # a fraction with a finite decimal expansion
        (10, Decimal("10")),  # int
        ("1E+1", Decimal("10")),  # exponent notation, shown plainly
        (Decimal("-0"), Decimal("0")),  # negative zero is zero
        ("1e-200", Decimal("1e-200")),  # the smallest digit allowed
        ("0." + "3" * 200, Decimal("0." + "3" * 200)),  # 200 significant digits kept exactly
        ("2." + "0" * 500, Decimal(2)),  # trailing zeros beyond the range are just zeros
    ],
)
def test_when_budget_is_built_from_a_number_then_it_is_exact(value: Any, expected: Decimal) -> None:
    budget = PURE(value)
    assert budget.epsilon == expected
    assert isinstance(budget.epsilon, Decimal)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "finite"),  # NaN
        ("NaN", "finite"),  # NaN as text
        (float("inf"), "finite"),  # infinity
        ("-Infinity", "finite"),  # negative infinity as text
        (-0.1, "negative"),  # negative
        (True, "number"),  # bool is not a number here
        (None, "number"),  # missing
        ([1], "number"),  # not a number at all
        (Fraction(1, 3), "exactly"),  # 0.333... has no finite decimal expansion
        ("abc", "exactly"),  # not a number
        ("1e-300", "range"),  # digits below 10**-200
        ("1e200", "range"),  # absurdly large
        ("1" * 101, "range"),  # 10**100 or more
        ("1e-201", "range"),  # a digit below 10**-200
        ("1e-999999999", "range"),  # an extreme exponent is refused, not expanded
    ],
)
def test_when_parameter_is_invalid_then_invalid_budget(value: Any, message: str) -> None:
    with pytest.raises(InvalidBudget, match=message):
        PURE(value)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PrivacyBudget(BudgetKind.PURE), "needs epsilon"),  # no epsilon
        (lambda: PrivacyBudget(BudgetKind.PURE, epsilon=Decimal(1), rho=Decimal(1)), "no rho"),
        (lambda: PrivacyBudget(BudgetKind.APPROXIMATE, epsilon=Decimal(1)), "needs delta"),
        (lambda: PrivacyBudget(BudgetKind.ZCDP, epsilon=Decimal(1)), "no epsilon"),  # zCDP
        (lambda: PrivacyBudget("pure", epsilon=Decimal(1)), "BudgetKind"),  # type: ignore[arg-type]
        (lambda: APPROX(1, "-1e-9"), "negative"),  # negative delta
    ],
)
def test_when_fields_do_not_fit_the_kind_then_invalid_budget(
    build: Callable[[], Any], message: str
) -> None:
    with pytest.raises(InvalidBudget, match=message):
        build()


@pytest.mark.parametrize(
    ("left", "right", "total", "difference"),
    [
        (PURE("0.1"), PURE("0.2"), PURE("0.3"), PURE("0.1")),  # the classic float-drift case
        (APPROX("0.5", "1e-9"), APPROX(1, "1e-7"), APPROX("1.5", "1.01e-7"), None),  # per part
        (ZCDP("0.125"), ZCDP("0.125"), ZCDP("0.25"), ZCDP(0)),  # zCDP
        # 9e99 + 1e-200 needs all 300 digits of the range: still exact
        (PURE("1e-200"), PURE("9e99"), PURE("9" + "0" * 99 + "." + "0" * 199 + "1"), None),
    ],
)
def test_when_budgets_are_added_and_subtracted_then_the_result_is_exact(
    left: PrivacyBudget,
    right: PrivacyBudget,
    total: PrivacyBudget,
    difference: PrivacyBudget | None,
) -> None:
    assert left + right == total
    assert total - right == left
    if difference is not None:
        assert right - left == difference


@pytest.mark.parametrize(
    ("small", "large", "fits"),
    [
        (PURE("0.3"), PURE("0.3"), True),  # equal fits
        (PURE("0.30000000000000001"), PURE("0.3"), False),  # a hair over does not
        (APPROX("0.1", "1e-7"), APPROX(1, "1e-6"), True),  # both parts below
        (APPROX("0.1", "2e-6"), APPROX(1, "1e-6"), False),  # epsilon fits, delta does not
        (ZCDP(2), ZCDP(1), False),  # zCDP over
    ],
)
def test_when_compared_then_every_parameter_must_fit(
    small: PrivacyBudget, large: PrivacyBudget, fits: bool
) -> None:
    assert small.fits_within(large) is fits


@pytest.mark.parametrize(
    "operation",
    [
        lambda: PURE(1) + ZCDP(1),  # add pure and zCDP
        lambda: APPROX(1, "1e-6") - PURE(1),  # subtract pure from approximate
        lambda: PURE(1).fits_within(APPROX(1, "1e-6")),  # compare across kinds
        lambda: ZCDP(1).excess_over(PURE(1)),  # shortfall across kinds
    ],
)
def test_when_kinds_are_mixed_then_kind_mismatch(operation: Callable[[], object]) -> None:
    with pytest.raises(BudgetKindMismatch):
        operation()


def test_when_a_result_would_be_negative_or_rounded_then_invalid_budget() -> None:
    with pytest.raises(InvalidBudget, match="negative"):
        PURE("0.1") - PURE("0.2")
    with pytest.raises(InvalidBudget, match="range"):
        PURE("9e99") + PURE("1e99")  # 10**100: out of range, never rounded
    assert APPROX("0.1", "1e-6").excess_over(APPROX("0.2", "1e-7")) == APPROX(0, "9e-7")


@pytest.mark.parametrize(
    ("budget", "text"),
    [
        (PURE("1.5"), "ε=1.5"),  # pure
        (APPROX(1, "1e-6"), "ε=1, δ=0.000001"),  # approximate: no exponent notation
        (ZCDP("0.25"), "ρ=0.25"),  # zCDP
        (PURE(0), "ε=0"),  # zero
    ],
)
def test_when_printed_then_readable(budget: PrivacyBudget, text: str) -> None:
    assert str(budget) == text
    assert eval(repr(budget), {"PrivacyBudget": PrivacyBudget}) == budget  # repr round-trips


def test_when_budget_is_assigned_to_then_it_is_frozen() -> None:
    budget = PURE(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.epsilon = Decimal(2)  # type: ignore[misc]
    assert hash(budget) == hash(PURE("1.0"))  # usable as a key; equal values hash alike


# -- BudgetLedger on every back-end -----------------------------------------------------------


def test_when_a_tenth_is_charged_thirty_times_then_exactly_three_is_spent(store: Store) -> None:
    dataset = store.budget(PURE(3))
    for _ in range(30):
        charge(store, dataset, PURE(0.1))
    status = store.ledger.remaining(dataset, "analytics")
    assert (status.spent, status.remaining, status.charges) == (PURE(3), PURE(0), 30)
    assert Decimal(str(store.raw_spent(dataset))) == 3  # stored exactly, not 2.9999999999999996
    with pytest.raises(BudgetExceeded) as refused:
        charge(store, dataset, PURE("1e-200"))
    assert (refused.value.remaining, refused.value.difference) == (PURE(0), PURE("1e-200"))


@pytest.mark.parametrize(
    ("total", "split", "spend", "asked", "scope", "remaining", "difference"),
    [
        # pure: a hair over what is left is refused, the hair reported exactly
        (
            PURE(1),
            None,
            [PURE("0.7")],
            PURE("0.30000000000000001"),
            BudgetScope.SHARED,
            PURE("0.3"),
            PURE("0.00000000000000001"),
        ),
        # approximate: epsilon would fit, delta is used up
        (
            APPROX(1, "1e-6"),
            None,
            [APPROX("0.5", "1e-6")],
            APPROX("0.1", "1e-9"),
            BudgetScope.SHARED,
            APPROX("0.5", 0),
            APPROX(0, "1e-9"),
        ),
        # zCDP
        (
            ZCDP("0.5"),
            None,
            [ZCDP("0.25")],
            ZCDP("0.3"),
            BudgetScope.SHARED,
            ZCDP("0.25"),
            ZCDP("0.05"),
        ),
        # the principal's split is exhausted while the shared total has room
        (
            PURE(10),
            PURE(1),
            [PURE("0.75")],
            PURE("0.5"),
            BudgetScope.PRINCIPAL,
            PURE("0.25"),
            PURE("0.25"),
        ),
        # a single request larger than the whole budget
        (PURE(1), None, [], PURE(5), BudgetScope.SHARED, PURE(1), PURE(4)),
    ],
)
def test_when_a_charge_exceeds_the_budget_then_it_is_refused_with_exact_numbers(
    store: Store,
    total: PrivacyBudget,
    split: PrivacyBudget | None,
    spend: list[PrivacyBudget],
    asked: PrivacyBudget,
    scope: BudgetScope,
    remaining: PrivacyBudget,
    difference: PrivacyBudget,
) -> None:
    dataset = store.budget(total, split)
    for amount in spend:
        charge(store, dataset, amount)
    before = store.ledger.remaining(dataset, "analytics")
    with pytest.raises(BudgetExceeded) as refused:
        charge(store, dataset, asked)
    error = refused.value
    assert (error.requested, error.remaining, error.difference) == (asked, remaining, difference)
    assert (error.scope, error.dataset, error.principal) == (scope, dataset, "alice")
    assert str(difference) in str(error)
    assert store.ledger.remaining(dataset, "analytics") == before  # nothing was spent
    assert len(store.ledger.history(dataset, "analytics")) == len(spend)


def test_when_principals_have_a_split_then_each_is_capped_and_the_total_still_binds(
    store: Store,
) -> None:
    dataset = store.budget(PURE(2), per_principal=PURE(1))
    charge(store, dataset, PURE(1), "alice")
    with pytest.raises(BudgetExceeded) as alice_over:
        charge(store, dataset, PURE("0.1"), "alice")
    assert alice_over.value.scope is BudgetScope.PRINCIPAL
    charge(store, dataset, PURE("0.6"), "bob")
    with pytest.raises(BudgetExceeded) as carol_over:
        charge(store, dataset, PURE("0.5"), "carol")  # carol has 1 of her own, 0.4 is shared
    assert (carol_over.value.scope, carol_over.value.remaining) == (BudgetScope.SHARED, PURE("0.4"))
    carol = store.ledger.remaining(dataset, "analytics", "carol")
    assert (carol.principal, carol.total, carol.spent, carol.charges) == (
        "carol",
        PURE(1),
        PURE(0),
        0,
    )
    assert (carol.remaining, carol.available) == (PURE(1), PURE("0.4"))
    bob = store.ledger.remaining(dataset, "analytics", "bob")
    assert (bob.spent, bob.remaining, bob.available, bob.charges) == (
        PURE("0.6"),
        PURE("0.4"),
        PURE("0.4"),
        1,
    )
    shared = store.ledger.remaining(dataset, "analytics")
    assert (shared.principal, shared.spent, shared.charges) == (None, PURE("1.6"), 2)
    assert shared.per_principal == PURE(1)


def test_when_there_is_no_split_then_a_principal_sees_the_shared_budget(store: Store) -> None:
    dataset = store.budget(PURE(2))
    charge(store, dataset, PURE("0.5"), "alice")
    status = store.ledger.remaining(dataset, "analytics", "bob")
    assert (status.principal, status.remaining, status.available) == (
        None,
        PURE("1.5"),
        PURE("1.5"),
    )


@pytest.mark.parametrize(
    ("total", "step", "times", "spent"),
    [
        (APPROX(1, "1e-6"), APPROX("0.1", "1e-7"), 10, APPROX(1, "1e-6")),  # both to the end
        (APPROX(5, "1e-5"), APPROX("0.3", "1e-6"), 10, APPROX(3, "1e-5")),  # delta binds first
        (ZCDP("0.5"), ZCDP("0.05"), 10, ZCDP("0.5")),  # zCDP rho
        (ZCDP(1), ZCDP("0.000001"), 5, ZCDP("0.000005")),  # tiny rho steps
    ],
)
def test_when_zcdp_or_approximate_budgets_are_charged_then_every_parameter_adds_exactly(
    store: Store,
    total: PrivacyBudget,
    step: PrivacyBudget,
    times: int,
    spent: PrivacyBudget,
) -> None:
    dataset = store.budget(total)
    for _ in range(times):
        charge(store, dataset, step)
    status = store.ledger.remaining(dataset, "analytics")
    assert (status.spent, status.remaining) == (spent, total - spent)
    if not (spent + step).fits_within(total):
        with pytest.raises(BudgetExceeded):
            charge(store, dataset, step)


def test_when_a_request_id_is_retried_then_it_is_charged_once(store: Store) -> None:
    dataset = store.budget(PURE(1))
    request_id = f"req-{uuid.uuid4().hex}"
    first = charge(store, dataset, PURE("0.6"), request_id=request_id)
    again = charge(store, dataset, PURE("0.6"), request_id=request_id)
    assert again == first
    status = store.ledger.remaining(dataset, "analytics")
    assert (status.spent, status.charges) == (PURE("0.6"), 1)
    # a replay succeeds even though a new charge of 0.6 would no longer fit
    assert charge(store, dataset, PURE("0.6"), request_id=request_id) == first
    assert store.ledger.history(dataset, "analytics") == [first]


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("amount", PURE("0.2")),  # another amount
        ("principal", "bob"),  # another principal
        ("purpose", "billing"),  # another purpose of the same dataset
    ],
)
def test_when_a_request_id_is_reused_for_another_charge_then_request_id_conflict(
    store: Store,
    change: str,
    value: Any,
) -> None:
    dataset = store.budget(PURE(1))
    store.ledger.ensure_budget(dataset, "billing", PURE(1))
    args: dict[str, Any] = {"amount": PURE("0.1"), "principal": "alice", "purpose": "analytics"}
    request_id = f"req-{uuid.uuid4().hex}"  # request ids are unique across the whole ledger
    original = charge(store, dataset, request_id=request_id, **args)
    with pytest.raises(RequestIdConflict) as conflict:
        charge(store, dataset, request_id=request_id, **{**args, change: value})
    assert conflict.value.original == original
    assert store.ledger.remaining(dataset, "billing").charges == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda ledger: ledger.charge(
            "nope", "analytics", "alice", PURE(1), request_id="r", description="d"
        ),  # charge
        lambda ledger: ledger.remaining("nope", "analytics"),  # shared status
        lambda ledger: ledger.remaining("nope", "analytics", "alice"),  # principal status
        lambda ledger: ledger.history("nope", "analytics", 10),  # history
    ],
)
def test_when_the_budget_is_unknown_then_budget_not_found(
    store: Store,
    call: Callable[[BudgetLedger], object],
) -> None:
    with pytest.raises(BudgetNotFound, match="'nope'") as missing:
        call(store.ledger)
    assert isinstance(missing.value, LookupError)


def test_when_the_policy_total_changes_then_what_is_spent_stays(store: Store) -> None:
    dataset = store.budget(PURE(1))
    charge(store, dataset, PURE("0.6"))
    raised = store.ledger.ensure_budget(dataset, "analytics", PURE(2))
    assert (raised.total, raised.spent, raised.remaining) == (PURE(2), PURE("0.6"), PURE("1.4"))
    lowered = store.ledger.ensure_budget(dataset, "analytics", PURE("0.5"))
    assert (lowered.spent, lowered.remaining) == (PURE("0.6"), PURE(0))  # nothing un-spent
    with pytest.raises(BudgetExceeded):
        charge(store, dataset, PURE("0.01"))
    again = store.ledger.ensure_budget(dataset, "analytics", PURE("0.5"))
    assert again == lowered  # idempotent
    with pytest.raises(BudgetKindMismatch, match="keeps its kind"):
        store.ledger.ensure_budget(dataset, "analytics", ZCDP(1))


def test_when_nothing_was_charged_then_the_kind_and_split_may_change(store: Store) -> None:
    dataset = store.budget(PURE(1), per_principal=PURE("0.5"))
    status = store.ledger.ensure_budget(dataset, "analytics", ZCDP("0.25"))
    assert (status.total, status.spent, status.per_principal) == (ZCDP("0.25"), ZCDP(0), None)
    charge(store, dataset, ZCDP("0.25"))
    with pytest.raises(BudgetKindMismatch):
        charge(store, dataset, PURE("0.1"))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ledger: ledger.ensure_budget("d", "p", PURE(0)), InvalidBudget),  # zero total
        (lambda ledger: ledger.ensure_budget("d", "p", APPROX(1, 0)), InvalidBudget),  # zero δ
        (lambda ledger: ledger.ensure_budget("d", "p", APPROX(1, 1)), InvalidBudget),  # δ = 1
        (lambda ledger: ledger.ensure_budget("d", "p", PURE(1), PURE(2)), InvalidBudget),  # split
        (lambda ledger: ledger.ensure_budget("d", "p", PURE(1), ZCDP(1)), BudgetKindMismatch),
        (lambda ledger: ledger.ensure_budget("", "p", PURE(1)), InvalidBudget),  # empty dataset
        (lambda ledger: ledger.ensure_budget("d\x00", "p", PURE(1)), InvalidBudget),  # NUL
        (lambda ledger: ledger.ensure_budget("d" * 256, "p", PURE(1)), InvalidBudget),  # long
        (lambda ledger: ledger.ensure_budget("d", "p", 1.0), InvalidBudget),  # not a budget
        (
            lambda ledger: ledger.charge("d", "p", "a", PURE(0), request_id="r", description=""),
            InvalidBudget,
        ),  # a zero charge
        (
            lambda ledger: ledger.charge("d", "p", "", PURE(1), request_id="r", description=""),
            InvalidBudget,
        ),  # '' is the shared row, not a principal
        (
            lambda ledger: ledger.charge("d", "p", "a", PURE(1), request_id="", description=""),
            InvalidBudget,
        ),  # empty request id
        (lambda ledger: ledger.history("d", "p", 0), InvalidBudget),  # limit
    ],
)
def test_when_arguments_are_invalid_then_a_typed_error_and_nothing_is_written(
    store: Store,
    call: Callable[[BudgetLedger], object],
    error: type[LedgerError],
) -> None:
    with pytest.raises(error):
        call(store.ledger)
    with pytest.raises(BudgetNotFound):
        store.ledger.remaining("d", "p")


def test_when_history_is_read_then_newest_first_with_what_was_recorded(store: Store) -> None:
    dataset = store.budget(PURE(5))
    before = datetime.now(UTC)
    first = store.ledger.charge(
        dataset,
        "analytics",
        "alice",
        PURE("0.5"),
        request_id="h-1" + dataset,
        description="mean(age)",
        fingerprint="sha256:aa",
    )
    second = charge(store, dataset, PURE("0.25"), "bob")
    assert store.ledger.history(dataset, "analytics") == [second, first]
    assert store.ledger.history(dataset, "analytics", 1) == [second]
    assert store.ledger.history(dataset, "analytics", principal="alice") == [first]
    assert (first.description, first.fingerprint, first.request_id) == (
        "mean(age)",
        "sha256:aa",
        "h-1" + dataset,
    )
    assert before <= first.created_at <= second.created_at
    assert first.created_at.tzinfo is not None and first.id < second.id


def test_when_the_table_prefix_is_not_an_identifier_then_invalid_budget(store: Store) -> None:
    with pytest.raises(InvalidBudget, match="prefix"):
        BudgetLedger(store.ledger.engine, "dp; DROP TABLE x; --")


# -- concurrency ------------------------------------------------------------------------------

REQUESTS, PROCESSES = 40, 4  # 4 spawned processes x 10 threads each: 40 requests at once


def _charge_all(ledger: BudgetLedger, dataset: str, request_ids: list[str]) -> list[bool]:
    """Charge 0.5 for every request id at once (one thread each, released together)."""
    outcomes: dict[str, bool] = {}
    errors: list[BaseException] = []
    gate = threading.Barrier(len(request_ids))

    def one(request_id: str) -> None:
        try:
            gate.wait(timeout=30)
            ledger.charge(
                dataset,
                "analytics",
                f"p-{request_id}",
                PURE("0.5"),
                request_id=request_id,
                description="concurrent",
            )
            outcomes[request_id] = True
        except BudgetExceeded:
            outcomes[request_id] = False
        except Exception as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(r,)) for r in request_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return [outcomes[r] for r in request_ids]


def _assert_twenty_of_forty(store: Store, dataset: str, outcomes: list[bool]) -> None:
    assert (outcomes.count(True), outcomes.count(False)) == (20, 20)
    status = store.ledger.remaining(dataset, "analytics")
    assert (status.spent, status.remaining, status.charges) == (PURE(10), PURE(0), 20)
    history = store.ledger.history(dataset, "analytics", 100)
    assert len({c.request_id for c in history}) == 20
    assert sum((c.amount for c in history), PURE(0)) == PURE(10)


def test_when_forty_threads_charge_at_once_then_exactly_twenty_succeed(store: Store) -> None:
    dataset = store.budget(PURE(10))
    request_ids = [f"t-{i}-{uuid.uuid4().hex[:6]}" for i in range(REQUESTS)]
    _assert_twenty_of_forty(store, dataset, _charge_all(store.ledger, dataset, request_ids))


def test_when_many_threads_ensure_the_same_new_budget_then_one_row_results(store: Store) -> None:
    dataset = f"ds-{uuid.uuid4().hex}"
    statuses: list[BudgetStatus] = []
    gate = threading.Barrier(8)

    def ensure() -> None:
        gate.wait(timeout=30)
        statuses.append(store.ledger.ensure_budget(dataset, "analytics", PURE(1), PURE("0.5")))

    threads = [threading.Thread(target=ensure) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == 8 and len(set(statuses)) == 1  # every caller saw the same budget
    with store.ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT COUNT(*) FROM {store.prefix}budgets WHERE dataset = :d"),
            {"d": dataset},
        ).scalar_one()
    assert rows == 1


@pytest.fixture
def repeatable_read_ledger() -> Iterator[BudgetLedger]:
    """A ledger on PostgreSQL whose transactions run at REPEATABLE READ (own tables)."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    base = make_engine("postgres", PG_URL)
    prefix = f"dp_rr{uuid.uuid4().hex[:10]}_"
    try:
        yield BudgetLedger(base.execution_options(isolation_level="REPEATABLE READ"), prefix)
    finally:
        with base.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}charges"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}budgets"))
        base.dispose()


@pytest.mark.postgres
def test_when_postgres_runs_repeatable_read_then_serialization_failures_are_retried(
    repeatable_read_ledger: BudgetLedger,
) -> None:
    ledger = repeatable_read_ledger
    ledger.ensure_budget("ds", "analytics", PURE(10))
    outcomes = _charge_all(ledger, "ds", [f"rr-{i}" for i in range(REQUESTS)])
    assert (outcomes.count(True), outcomes.count(False)) == (20, 20)
    status = ledger.remaining("ds", "analytics")
    assert (status.spent, status.charges) == (PURE(10), 20)


_WORKER: dict[str, Any] = {}  # per spawned worker process: the start barrier, its engines


def _init_worker(start: Any) -> None:
    """Runs once in each spawned worker: keep the barrier shared by all workers."""
    _WORKER["start"] = start


def _charge_share(
    flavour: str, url: str, prefix: str, dataset: str, request_ids: list[str]
) -> tuple[int, list[bool]]:
    """In a spawned worker: its own engine (one per back-end) and ledger; charge its share."""
    engines: dict[tuple[str, str], sa.Engine] = _WORKER.setdefault("engines", {})
    if (flavour, url) not in engines:
        engines[flavour, url] = make_engine(flavour, url)
    engine = engines[flavour, url]
    ledger = BudgetLedger(engine, prefix, create_tables=False)
    with engine.connect():
        pass  # connect before the start so the race is about charging, not connecting
    _WORKER["start"].wait(timeout=60)  # every worker holds one share: all start together
    return os.getpid(), _charge_all(ledger, dataset, request_ids)


@pytest.fixture(scope="module")
def workers() -> Iterator[ProcessPoolExecutor]:
    """PROCESSES spawned worker processes, started once and shared by every back-end."""
    root = str(Path(__file__).resolve().parents[2])
    sys.path.insert(0, root)  # spawned workers import this module by name
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        PROCESSES, mp_context=ctx, initializer=_init_worker, initargs=(ctx.Barrier(PROCESSES),)
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        sys.path.remove(root)


@pytest.mark.slow
def test_when_forty_requests_come_from_processes_then_exactly_twenty_succeed(
    store: Store,
    workers: ProcessPoolExecutor,
) -> None:
    dataset = store.budget(PURE(10))
    per = REQUESTS // PROCESSES
    futures = [
        workers.submit(
            _charge_share,
            store.flavour,
            store.url,
            store.prefix,
            dataset,
            [f"p{n}-{i}-{uuid.uuid4().hex[:6]}" for i in range(per)],
        )
        for n in range(PROCESSES)
    ]
    reports = [future.result(timeout=180) for future in futures]
    assert len({pid for pid, _ in reports} | {os.getpid()}) == PROCESSES + 1  # all distinct
    outcomes = [ok for _, batch in reports for ok in batch]
    assert len(outcomes) == REQUESTS
    _assert_twenty_of_forty(store, dataset, outcomes)


# -- property ---------------------------------------------------------------------------------

_DIGITS = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(3), places=3)
_DELTAS = st.decimals(min_value=Decimal("1e-9"), max_value=Decimal("1e-6"), places=9)


def _amounts(kind: BudgetKind) -> st.SearchStrategy[PrivacyBudget]:
    if kind is BudgetKind.APPROXIMATE:
        return st.builds(APPROX, _DIGITS, _DELTAS)
    return st.builds(PURE if kind is BudgetKind.PURE else ZCDP, _DIGITS)


@st.composite
def _scenarios(
    draw: st.DrawFn,
) -> tuple[PrivacyBudget, PrivacyBudget | None, list[tuple[str, PrivacyBudget]]]:
    kind = draw(st.sampled_from(list(BudgetKind)))
    total = draw(_amounts(kind))
    split = total.min_with(draw(_amounts(kind))) if draw(st.booleans()) else None
    steps = draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), _amounts(kind)), max_size=12))
    return total, split, steps


@settings(max_examples=25, deadline=None, database=None)
@given(scenario=_scenarios())
def test_when_any_sequence_is_charged_then_never_overspent_and_spent_is_the_sum(
    store: Store,
    scenario: tuple[PrivacyBudget, PrivacyBudget | None, list[tuple[str, PrivacyBudget]]],
) -> None:
    total, split, steps = scenario
    dataset = store.budget(total, split)
    zero = PrivacyBudget.zero(total.kind)
    shared, own = zero, dict.fromkeys("abc", zero)
    for principal, amount in steps:
        fits = (shared + amount).fits_within(total) and (
            split is None or (own[principal] + amount).fits_within(split)
        )
        try:
            charge(store, dataset, amount, principal)
        except BudgetExceeded:
            assert not fits
        else:
            assert fits
            shared, own[principal] = shared + amount, own[principal] + amount
        status = store.ledger.remaining(dataset, "analytics")
        assert status.spent == shared and status.spent.fits_within(total)
        assert status.remaining == total - shared
    history = store.ledger.history(dataset, "analytics", 100)
    assert sum((c.amount for c in history), zero) == shared
    for principal in ("a", "b", "c") if split is not None else ():
        assert store.ledger.remaining(dataset, "analytics", principal).spent == own[principal]
