"""k-anonymity by suppression: exact report numbers on a small crafted table."""

from __future__ import annotations

from typing import Any

import pytest

from masking import KAnonymityReport, MaskingError, enforce_k_anonymity

pytestmark = pytest.mark.spark

# zip.code, age, disease (the dot in the name checks that columns are quoted)
ROWS = [
    ("101", 30, "flu", 1),  # class (101, 30): three rows, two diseases
    ("101", 30, "flu", 2),
    ("101", 30, "cold", 3),
    ("102", 40, "flu", 4),  # class (102, 40): two rows, one disease
    ("102", 40, "flu", 5),
    ("103", 50, "x", 6),  # class (103, 50): one row
    ("104", None, "y", 7),  # class (104, null): one row, one QI cell already null
]
SCHEMA = "`zip.code` string, age int, disease string, id int"
QIS = ["zip.code", "age"]


@pytest.fixture(scope="module")
def people(spark: Any) -> Any:
    return spark.createDataFrame(ROWS, SCHEMA)


@pytest.mark.parametrize(
    ("k", "expected", "suppressed_ids"),
    [
        # k=1: nothing to do; four classes, the smallest has one row, l = 1
        (
            1,
            KAnonymityReport(
                k=1,
                k_achieved=1,
                l_achieved=1,
                cells_suppressed=0,
                rows_in_small_classes=0,
                rows=7,
                classes=4,
            ),
            set(),
        ),
        # k=2: rows 6, 7 suppressed (3 non-null QI cells); they form one class of two rows
        # {x, y}; (102, 40) keeps l = 1
        (
            2,
            KAnonymityReport(
                k=2,
                k_achieved=2,
                l_achieved=1,
                cells_suppressed=3,
                rows_in_small_classes=2,
                rows=7,
                classes=3,
            ),
            {6, 7},
        ),
        # k=3: (102, 40) goes too; suppressed class {flu, x, y} of four rows, (101, 30) has l=2
        (
            3,
            KAnonymityReport(
                k=3,
                k_achieved=3,
                l_achieved=2,
                cells_suppressed=7,
                rows_in_small_classes=4,
                rows=7,
                classes=2,
            ),
            {4, 5, 6, 7},
        ),
        # k=10: every row suppressed; the single suppressed class has 7 < 10 rows (documented)
        (
            10,
            KAnonymityReport(
                k=10,
                k_achieved=7,
                l_achieved=4,
                cells_suppressed=13,
                rows_in_small_classes=7,
                rows=7,
                classes=1,
            ),
            set(range(1, 8)),
        ),
    ],
)
def test_when_k_anonymity_enforced_then_small_classes_suppressed_and_reported(
    people: Any, k: int, expected: KAnonymityReport, suppressed_ids: set[int]
) -> None:
    out, report = enforce_k_anonymity(people, QIS, k, sensitive="disease")
    assert report == expected
    assert out.columns == people.columns  # same columns, same order
    rows = {r.id: r for r in out.collect()}
    original = {r[3]: r for r in ROWS}
    for row_id, row in rows.items():
        assert row.disease == original[row_id][2]  # non-QI columns untouched
        if row_id in suppressed_ids:
            assert row["zip.code"] is None and row.age is None
        else:
            assert (row["zip.code"], row.age) == original[row_id][:2]


def test_when_no_sensitive_column_then_l_is_not_measured(people: Any) -> None:
    _, report = enforce_k_anonymity(people, ["zip.code"], 2)
    assert report.l_achieved is None
    assert (report.k_achieved, report.rows_in_small_classes, report.cells_suppressed) == (2, 2, 2)


def test_when_input_is_empty_then_report_is_zero(people: Any) -> None:
    _, report = enforce_k_anonymity(people.limit(0), QIS, 2, sensitive="disease")
    assert report == KAnonymityReport(
        k=2,
        k_achieved=0,
        l_achieved=0,
        cells_suppressed=0,
        rows_in_small_classes=0,
        rows=0,
        classes=0,
    )


def test_when_k_anonymity_runs_then_the_plan_is_native(people: Any, udf_nodes: Any) -> None:
    out, _ = enforce_k_anonymity(people, QIS, 2)
    assert udf_nodes(out) == []


@pytest.mark.parametrize(
    ("qis", "k", "sensitive", "message"),
    [
        (QIS, 0, None, "k must be a whole number"),  # k below one
        (QIS, True, None, "k must be a whole number"),  # bool is not a k
        ([], 2, None, "at least one quasi-identifier"),  # no QIs
        (["age", "age"], 2, None, "more than once"),  # duplicate QI
        (["postcode"], 2, None, "not in the DataFrame: postcode"),  # unknown QI
        (QIS, 2, "diagnosis", "not in the DataFrame: diagnosis"),  # unknown sensitive column
        (QIS, 2, "age", "also a quasi-identifier"),  # sensitive is a QI
    ],
)
def test_when_arguments_are_wrong_then_masking_error(
    people: Any, qis: list[str], k: Any, sensitive: str | None, message: str
) -> None:
    with pytest.raises(MaskingError, match=message):
        enforce_k_anonymity(people, qis, k, sensitive=sensitive)
