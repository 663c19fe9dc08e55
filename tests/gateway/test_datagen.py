"""The raw-data generator: determinism, schemas, formats, bad rows, canaries, streaming."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import ipaddress
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.datagen import (
    CUSTOMER_BAD_KINDS,
    CUSTOMER_COLUMNS,
    TRANSACTION_BAD_KINDS,
    TRANSACTION_COLUMNS,
    Format,
    GenerateReport,
    generate,
    read_canaries,
)
from gateway.errors import ValidationFailed

REPO = Path(__file__).resolve().parents[2]
COUNTRIES = {"DE", "FR", "GB", "US", "NL", "ES", "IT"}
CURRENCY = {
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "GB": "GBP",
    "US": "USD",
}
CATEGORIES = {"grocery", "travel", "electronics", "restaurants", "fuel", "online", "utilities", "health"}  # fmt: skip
ROWS = 20_000
BAD_FRACTION = 0.01
CHUNK_ROWS = 7_000

Row = dict[str, str]


# --- helpers ------------------------------------------------------------------------------


def read_rows(paths: tuple[Path, ...]) -> list[Row]:
    rows: list[Row] = []
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def all_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}  # fmt: skip


def luhn_valid(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def parse_timestamp(text: str) -> dt.datetime | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text):
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def parse_date(text: str) -> dt.date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# What a quarantine step would check, from the example policies: required fields, types,
# allowed values and ranges. Every bad row breaks exactly one of these rules.
def customer_violations(row: Row) -> list[str]:
    found = []
    if not row["customer_id"]:
        found.append("customer_id required")
    if parse_date(row["birth_date"]) is None:
        found.append("birth_date type")
    if row["country"] not in COUNTRIES:
        found.append("country allowed")
    score = row["credit_score"]
    if not re.fullmatch(r"-?\d+", score):
        found.append("credit_score type")
    elif not 300 <= int(score) <= 850:
        found.append("credit_score range")
    if not is_number(row["income"]) or not 0 <= float(row["income"]) <= 500_000:
        found.append("income")
    for column in ("consent_marketing", "consent_research"):
        if row[column] not in ("true", "false"):
            found.append(f"{column} type")
    for column in ("created_at", "updated_at"):
        if parse_timestamp(row[column]) is None:
            found.append(f"{column} type")
    return found


def transaction_violations(row: Row) -> list[str]:
    found = []
    for column in ("transaction_id", "customer_id", "card_number"):
        if not row[column]:
            found.append(f"{column} required")
    if not is_number(row["amount"]):
        found.append("amount type")
    elif not 0 <= float(row["amount"]) <= 20_000:
        found.append("amount range")
    if row["country"] not in COUNTRIES:
        found.append("country allowed")
    if parse_timestamp(row["event_time"]) is None:
        found.append("event_time type")
    if row["is_fraud"] not in ("true", "false"):
        found.append("is_fraud type")
    return found


@dataclass(frozen=True)
class Generated:
    report: GenerateReport
    customers: list[Row]
    transactions: list[Row]

    def good_customers(self) -> list[Row]:
        return [r for r in self.customers if not customer_violations(r)]

    def good_transactions(self) -> list[Row]:
        return [r for r in self.transactions if not transaction_violations(r)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("datagen")
    report = generate(out, ROWS, seed=7, bad_fraction=BAD_FRACTION, chunk_rows=CHUNK_ROWS)
    return Generated(
        report, read_rows(report.paths["customers"]), read_rows(report.paths["transactions"])
    )


# --- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_when_same_seed_then_files_are_byte_identical(tmp_path: Path, fmt: Format) -> None:
    first = generate(tmp_path / "a", 3_000, seed=7, fmt=fmt, chunk_rows=1_000)
    second = generate(tmp_path / "b", 3_000, seed=7, fmt=fmt, chunk_rows=1_000)

    assert all_bytes(tmp_path / "a") == all_bytes(tmp_path / "b")
    assert first.rows == second.rows
    assert first.bad_rows == second.bad_rows
    assert len(all_bytes(tmp_path / "a")) > 4


def test_when_processes_hash_differently_then_files_are_still_identical(tmp_path: Path) -> None:
    """Nothing depends on set or dict order that PYTHONHASHSEED changes (Faker's it_IT
    cities do, and are sorted before sampling)."""
    code = "import sys; from gateway.datagen import generate; generate(sys.argv[1], 3_000)"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / hash_seed)],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            stderr=subprocess.PIPE,
        )
        for hash_seed in ("1", "2")
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    assert all_bytes(tmp_path / "1") == all_bytes(tmp_path / "2")


def test_when_seed_differs_then_data_differs(tmp_path: Path) -> None:
    one = generate(tmp_path / "a", 2_000, seed=7)
    two = generate(tmp_path / "b", 2_000, seed=8)

    rows_one = read_rows(one.paths["customers"])
    rows_two = read_rows(two.paths["customers"])
    # Canaries are fixed; everything else differs.
    names_one = {r["full_name"] for r in rows_one[3:]}
    names_two = {r["full_name"] for r in rows_two[3:]}
    assert len(names_one & names_two) < len(names_one) / 2
    assert [r["national_id"] for r in rows_one[3:]] != [r["national_id"] for r in rows_two[3:]]
    assert one.paths["transactions"][0].read_bytes() != two.paths["transactions"][0].read_bytes()
    assert one.canaries == two.canaries


def test_when_chunk_rows_changes_then_only_the_split_into_parts_changes(tmp_path: Path) -> None:
    small = generate(tmp_path / "small", 2_500, seed=7, chunk_rows=333)
    large = generate(tmp_path / "large", 2_500, seed=7, chunk_rows=50_000)

    for dataset in ("customers", "transactions"):
        assert read_rows(small.paths[dataset]) == read_rows(large.paths[dataset])
        assert len(small.paths[dataset]) > len(large.paths[dataset]) == 1


def test_when_bad_fraction_changes_then_good_rows_stay_the_same(tmp_path: Path) -> None:
    clean = generate(tmp_path / "clean", 3_000, seed=7, bad_fraction=0.0)
    dirty = generate(tmp_path / "dirty", 3_000, seed=7, bad_fraction=0.05)

    assert clean.bad_rows == {"customers": 0, "transactions": 0}
    for dataset in ("customers", "transactions"):
        before, after = read_rows(clean.paths[dataset]), read_rows(dirty.paths[dataset])
        assert len(before) == len(after)
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert len(changed) == dirty.bad_rows[dataset]
        for i in changed:  # exactly one field differs in a bad row
            assert sum(before[i][c] != after[i][c] for c in before[i]) == 1


# --- schemas and formats ------------------------------------------------------------------


def test_when_generated_then_every_part_has_the_exact_header(generated: Generated) -> None:
    for dataset, columns in (("customers", CUSTOMER_COLUMNS), ("transactions", TRANSACTION_COLUMNS)):  # fmt: skip
        for path in generated.report.paths[dataset]:
            with path.open(encoding="utf-8") as handle:
                assert handle.readline() == ",".join(columns) + "\n"
    assert CUSTOMER_COLUMNS == (
        "customer_id", "full_name", "email", "phone", "national_id", "birth_date",
        "street_address", "city", "postal_code", "country", "gender", "income", "credit_score",
        "consent_marketing", "consent_research", "created_at", "updated_at",
    )  # fmt: skip
    assert TRANSACTION_COLUMNS == (
        "transaction_id", "customer_id", "card_number", "amount", "currency", "merchant",
        "merchant_category", "event_time", "ip_address", "country", "channel", "is_fraud",
    )  # fmt: skip


def test_when_chunk_rows_is_small_then_parts_are_full_and_numbered(generated: Generated) -> None:
    report = generated.report
    assert len(report.paths["customers"]) == math.ceil(ROWS / CHUNK_ROWS)
    assert len(report.paths["transactions"]) > 5
    for dataset in ("customers", "transactions"):
        names = [p.name for p in report.paths[dataset]]
        assert names == [f"part-{i:05d}.csv" for i in range(len(names))]
        sizes = [len(read_rows((p,))) for p in report.paths[dataset]]
        assert all(size == CHUNK_ROWS for size in sizes[:-1])
        assert 0 < sizes[-1] <= CHUNK_ROWS
        assert sum(sizes) == report.rows[dataset]


NATIONAL_ID = {
    "US": r"\d{3}-\d{2}-\d{4}",
    "DE": r"\d{11}",
    "FR": r"[12]\d{14}",
    "GB": r"[A-Z]{2}\d{6}[A-D]",
    "NL": r"\d{9}",
    "ES": r"\d{8}[A-Z]",
    "IT": r"[A-Z]{6}\d{2}[ABCDEHLMPRST]\d{2}[A-Z]\d{3}[A-Z]",
}
PHONE = {
    "DE": r"\+49 \d{2,3} \d{7}",
    "FR": r"\+33 \d \d{2} \d{2} \d{2} \d{2}",
    "GB": r"\+44 (20 \d{4} \d{4}|1\d{2} \d{3} \d{4}|7\d{3} \d{6})",
    "US": r"\+1 \d{3} \d{3} \d{4}",
    "NL": r"\+31 (6 \d{4} \d{4}|\d{2} \d{3} \d{4})",
    "ES": r"\+34 \d{3} \d{3} \d{3}",
    "IT": r"\+39 (3\d{2} \d{3} \d{4}|0\d{1,2} \d{4} \d{4})",
}
POSTAL = {
    "GB": r"[A-Z]{1,2}\d{1,2} \d[A-Z]{2}",
    "NL": r"\d{4} [A-Z]{2}",
}
EMAIL = re.compile(
    r"[a-z0-9._]+@(example\.(com|net|org)|mail\.example\.com|(de|fr|gb|us|nl|es|it)\.example\.net"
    r"|inbox\.test|canary\.example)"
)


def national_id_checks(country: str, value: str) -> bool:
    """The check digits and letters of the formats that have them."""
    if country == "DE":
        product = 10
        for ch in value[:10]:
            total = (int(ch) + product) % 10 or 10
            product = total * 2 % 11
        return (11 - product) % 10 == int(value[10])
    if country == "FR":
        return 97 - int(value[:13]) % 97 == int(value[13:])
    if country == "NL":
        return sum(int(d) * w for d, w in zip(value, range(9, 1, -1), strict=False)) % 11 == int(value[8])  # fmt: skip
    if country == "ES":
        return "TRWAGMYFPDXBNJZSQVHLCKE"[int(value[:8]) % 23] == value[8]
    return True


def test_when_customer_rows_are_good_then_values_have_the_documented_formats(
    generated: Generated,
) -> None:
    good = generated.good_customers()
    assert len(good) == ROWS - generated.report.bad_rows["customers"]
    reference = dt.date(2026, 1, 1)
    ids = set()
    for row in good:
        country = row["country"]
        assert re.fullmatch(r"C\d{9}", row["customer_id"]), row
        ids.add(row["customer_id"])
        assert row["full_name"] == row["full_name"].strip() and " " in row["full_name"]
        assert EMAIL.fullmatch(row["email"]), row["email"]
        assert re.fullmatch(PHONE[country], row["phone"]), row["phone"]
        assert re.fullmatch(NATIONAL_ID[country], row["national_id"]), row["national_id"]
        assert national_id_checks(country, row["national_id"]), row["national_id"]
        born = parse_date(row["birth_date"])
        assert born is not None
        age = reference.year - born.year - ((reference.month, reference.day) < (born.month, born.day))  # fmt: skip
        assert 16 <= age <= 95, row["birth_date"]
        assert row["street_address"].strip() and row["city"].strip()
        assert re.fullmatch(POSTAL.get(country, r"\d{5}"), row["postal_code"]), row["postal_code"]
        assert row["gender"] in {"F", "M", "X"}
        assert re.fullmatch(r"\d+\.\d{2}", row["income"]), row["income"]
        assert re.fullmatch(r"\d{3}", row["credit_score"])
        created, updated = parse_timestamp(row["created_at"]), parse_timestamp(row["updated_at"])
        assert created is not None and updated is not None
        assert dt.datetime(2015, 1, 1) <= created <= updated <= dt.datetime(2026, 11, 30, 23, 59, 59)  # fmt: skip
        assert created < dt.datetime(2026, 1, 1)
    assert len(ids) == len(good)


def test_when_customers_are_generated_then_distributions_are_plausible(
    generated: Generated,
) -> None:
    good = generated.good_customers()
    countries = Counter(r["country"] for r in good)
    assert set(countries) == COUNTRIES
    assert countries.most_common(1)[0][0] == "DE"
    genders = Counter(r["gender"] for r in good)
    assert genders["X"] < genders["F"] and genders["X"] < genders["M"]
    minors = sum(r["birth_date"] > "2008-01-01" for r in good)
    assert 0.02 < minors / len(good) < 0.04
    incomes = sorted(float(r["income"]) for r in good)
    assert incomes[len(incomes) // 2] < sum(incomes) / len(incomes)  # right-skewed
    emails = Counter(r["email"] for r in good)
    assert len(emails) > 0.98 * len(good)
    marketing = sum(r["consent_marketing"] == "true" for r in good) / len(good)
    assert 0.3 < marketing < 0.46


def test_when_transaction_rows_are_good_then_values_have_the_documented_formats(
    generated: Generated,
) -> None:
    good = generated.good_transactions()
    assert len(good) == generated.report.rows["transactions"] - generated.report.bad_rows["transactions"]  # fmt: skip
    canary_ips = set(generated.report.canaries["transactions"]["ip_address"])
    ids = set()
    for row in good:
        assert re.fullmatch(r"T\d{12}", row["transaction_id"])
        ids.add(row["transaction_id"])
        assert re.fullmatch(r"\d+\.\d{2}", row["amount"]) and 0.01 <= float(row["amount"]) <= 20_000
        assert row["currency"] == CURRENCY[row["country"]]
        assert row["merchant"].strip()
        assert row["merchant_category"] in CATEGORIES
        event = parse_timestamp(row["event_time"])
        assert event is not None
        assert dt.datetime(2025, 1, 1) <= event <= dt.datetime(2026, 11, 30, 23, 59, 59)
        ip = ipaddress.IPv4Address(row["ip_address"])
        if row["ip_address"] in canary_ips:  # documentation range 203.0.113.0/24
            assert ip in ipaddress.IPv4Network("203.0.113.0/24")
        else:
            assert ip.is_global and not ip.is_multicast, ip
        assert row["channel"] in {"online", "pos", "atm"}
        if row["merchant_category"] == "online":
            assert row["channel"] == "online"
    assert len(ids) == len(good)


def test_when_cards_are_generated_then_they_are_luhn_valid_and_stable_per_customer(
    generated: Generated,
) -> None:
    cards_of: dict[str, set[str]] = defaultdict(set)
    owner_of: dict[str, set[str]] = defaultdict(set)
    for row in generated.good_transactions():
        card = row["card_number"]
        assert re.fullmatch(r"[45]\d{15}", card), card
        assert luhn_valid(card), card
        cards_of[row["customer_id"]].add(card)
        owner_of[card].add(row["customer_id"])
    assert max(len(c) for c in cards_of.values()) == 2
    assert sum(len(c) == 2 for c in cards_of.values()) > 0.1 * len(cards_of)
    assert all(len(owners) == 1 for owners in owner_of.values())


def test_when_transactions_are_generated_then_customer_ids_reference_good_customers(
    generated: Generated,
) -> None:
    customers = {r["customer_id"]: r for r in generated.customers if r["customer_id"]}
    good_ids = {r["customer_id"] for r in generated.good_customers()}
    good = generated.good_transactions()
    assert all(r["customer_id"] in customers for r in good)
    assert all(r["customer_id"] in good_ids for r in good)
    foreign = sum(r["country"] != customers[r["customer_id"]]["country"] for r in good)
    assert 0.02 < foreign / len(good) < 0.2
    for row in good:  # no transaction before the customer existed
        assert row["event_time"] >= min(customers[row["customer_id"]]["created_at"], "2025-01-01")


def test_when_transactions_are_generated_then_count_matches_rate_and_activity_is_skewed(
    generated: Generated,
) -> None:
    total = generated.report.rows["transactions"]
    assert abs(total / ROWS - 5.0) < 0.5
    per_customer = Counter(r["customer_id"] for r in generated.transactions)
    counts = sorted(per_customer.values())
    assert counts[-1] >= 150  # a few customers have hundreds
    assert counts[len(counts) // 2] <= 5
    assert len(per_customer) < 0.9 * ROWS  # and many have none


def test_when_fraud_is_labelled_then_it_is_rare_and_learnable(generated: Generated) -> None:
    customers = {r["customer_id"]: r for r in generated.customers if r["customer_id"]}
    good = generated.good_transactions()
    fraud = [r["is_fraud"] == "true" for r in good]
    assert 0.002 < sum(fraud) / len(good) < 0.01

    def rate(select: Callable[[Row], bool]) -> float:
        chosen = [r["is_fraud"] == "true" for r in good if select(r)]
        return sum(chosen) / len(chosen)

    assert rate(lambda r: r["channel"] == "online") > 2 * rate(lambda r: r["channel"] == "pos")
    assert rate(lambda r: r["country"] != customers[r["customer_id"]]["country"]) > 2 * rate(
        lambda r: r["country"] == customers[r["customer_id"]]["country"]
    )
    assert rate(lambda r: float(r["amount"]) > 500) > 2 * rate(lambda r: float(r["amount"]) < 50)


# --- bad rows -----------------------------------------------------------------------------


def test_when_bad_fraction_is_set_then_bad_rows_are_counted_exactly(generated: Generated) -> None:
    report = generated.report
    checks = {"customers": customer_violations, "transactions": transaction_violations}
    for dataset, rows in (("customers", generated.customers), ("transactions", generated.transactions)):  # fmt: skip
        violations = [checks[dataset](r) for r in rows]
        bad = [v for v in violations if v]
        assert len(bad) == report.bad_rows[dataset] == math.floor(len(rows) * BAD_FRACTION)
        assert all(len(v) == 1 for v in bad)  # each bad row breaks exactly one rule
        assert sum(report.bad_rows_by_kind[dataset].values()) == report.bad_rows[dataset]
    assert set(report.bad_rows_by_kind["customers"]) == {k.name for k in CUSTOMER_BAD_KINDS}
    assert set(report.bad_rows_by_kind["transactions"]) == {k.name for k in TRANSACTION_BAD_KINDS}


def test_when_bad_rows_are_generated_then_they_use_the_documented_values(
    generated: Generated,
) -> None:
    seen: Counter[tuple[str, str]] = Counter()
    for row in generated.customers:
        if customer_violations(row):
            for column, value in row.items():
                if value in ("", "high", "9999", "31/02/1990", "not-a-date", "maybe", "XX"):
                    seen[(column, value)] += 1
    assert {
        ("customer_id", ""),
        ("credit_score", "high"),
        ("credit_score", "9999"),
        ("birth_date", "31/02/1990"),
        ("birth_date", "not-a-date"),
        ("consent_marketing", "maybe"),
        ("country", "XX"),
    } <= set(seen)
    amounts = {r["amount"] for r in generated.transactions if transaction_violations(r)}
    assert "abc" in amounts


def test_when_the_same_seed_is_used_then_bad_rows_are_the_same(tmp_path: Path) -> None:
    def bad_positions(out: Path) -> list[int]:
        report = generate(out, 4_000, seed=7, bad_fraction=0.02)
        rows = read_rows(report.paths["customers"])
        return [i for i, r in enumerate(rows) if customer_violations(r)]

    first = bad_positions(tmp_path / "a")
    assert len(first) == 80
    assert first == bad_positions(tmp_path / "b")


# --- canaries -----------------------------------------------------------------------------


def test_when_generated_then_canaries_are_in_good_rows_and_unique(generated: Generated) -> None:
    canaries = generated.report.canaries
    assert read_canaries(generated.report.out) == canaries
    assert set(canaries) == {"customers", "transactions"}
    assert canaries["customers"]["full_name"] == (
        "Canary Zebedee Quill-1",
        "Canary Zebedee Quill-2",
        "Canary Zebedee Quill-3",
    )
    assert canaries["customers"]["email"][0] == "canary.1@canary.example"
    good = {"customers": generated.good_customers(), "transactions": generated.good_transactions()}
    for dataset, columns in canaries.items():
        for column, values in columns.items():
            assert len(values) == 3
            for value in values:
                hits = [r for r in good[dataset] if r[column] == value]
                assert hits, (dataset, column, value)
    # A substring search finds each canary only where it was planted.
    raw = b"".join(
        p.read_bytes() for d in ("customers", "transactions") for p in generated.report.paths[d]
    )
    for value in generated.report.canary_values:
        expected = 1 if value in {v for c in canaries["customers"].values() for v in c} else 2
        assert raw.count(value.encode()) == expected, value
    for row in generated.transactions:
        if row["card_number"] in canaries["transactions"]["card_number"]:
            assert row["ip_address"] in canaries["transactions"]["ip_address"]
            assert luhn_valid(row["card_number"])


def test_when_canaries_file_is_missing_then_read_canaries_refuses(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="canaries"):
        read_canaries(tmp_path)


def test_when_rows_are_fewer_than_canaries_then_all_rows_are_canaries(tmp_path: Path) -> None:
    report = generate(tmp_path, 2, bad_fraction=0.0)
    rows = read_rows(report.paths["customers"])
    assert [r["full_name"] for r in rows] == list(report.canaries["customers"]["full_name"])
    assert report.rows == {"customers": 2, "transactions": 4}


# --- manifest, jsonl, csv dialect, arguments ----------------------------------------------


def test_when_generated_then_manifest_describes_the_run(generated: Generated) -> None:
    report = generated.report
    manifest = json.loads(report.manifest.read_text(encoding="utf-8"))
    assert manifest["seed"] == 7 and manifest["rows"] == ROWS
    assert manifest["generator_version"] == "1.0.0"
    assert manifest["counts"] == dict(report.rows)
    assert manifest["bad_rows"] == dict(report.bad_rows)
    assert list(manifest["columns"]["customers"]) == list(CUSTOMER_COLUMNS)
    for dataset in ("customers", "transactions"):
        files = manifest["files"][dataset]
        assert [report.out / f["path"] for f in files] == list(report.paths[dataset])
        assert sum(f["rows"] for f in files) == report.rows[dataset]
        for entry in files:
            data = (report.out / entry["path"]).read_bytes()
            assert entry["bytes"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_when_format_is_jsonl_then_lines_parse_with_json_types(tmp_path: Path) -> None:
    as_json = generate(tmp_path / "j", 3_000, seed=7, fmt="jsonl", bad_fraction=0.05)
    as_csv = generate(tmp_path / "c", 3_000, seed=7, fmt="csv", bad_fraction=0.05)
    for dataset, columns in (("customers", CUSTOMER_COLUMNS), ("transactions", TRANSACTION_COLUMNS)):  # fmt: skip
        assert all(p.suffix == ".jsonl" for p in as_json.paths[dataset])
        records = [
            json.loads(line)
            for path in as_json.paths[dataset]
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
        rows = read_rows(as_csv.paths[dataset])
        assert len(records) == len(rows) == as_json.rows[dataset]
        for record, row in zip(records, rows, strict=True):
            assert list(record) == list(columns)
            for column, value in record.items():
                text = row[column]
                if value is None:
                    assert text == ""
                elif isinstance(value, bool):
                    assert text == ("true" if value else "false")
                elif isinstance(value, int | float):
                    assert float(text) == value
                else:
                    assert isinstance(value, str) and value == text
        good = [r for r, c in zip(records, rows, strict=True) if not (customer_violations if dataset == "customers" else transaction_violations)(c)]  # fmt: skip
        for record in good:
            for column in ("income", "credit_score", "amount"):
                if column in record:
                    assert isinstance(record[column], int | float)
            for column in ("consent_marketing", "consent_research", "is_fraud"):
                if column in record:
                    assert isinstance(record[column], bool)
    customers = [
        json.loads(x) for p in as_json.paths["customers"] for x in p.read_text().splitlines()
    ]
    assert any(r["credit_score"] == "high" for r in customers)  # wrong type: a string
    assert any(r["credit_score"] == 9999 for r in customers)  # out of range: a number
    assert any(r["customer_id"] is None for r in customers)  # missing: null


def test_when_csv_is_written_then_it_is_what_the_csv_module_writes(generated: Generated) -> None:
    for dataset in ("customers", "transactions"):
        for path in generated.report.paths[dataset][:2]:
            raw = path.read_text(encoding="utf-8")
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerows(csv.reader(io.StringIO(raw, newline="")))
            assert buffer.getvalue() == raw
    addresses = [r["street_address"] for r in generated.customers if r["country"] in ("ES", "IT")]
    assert any("," in a for a in addresses)  # quoting is exercised


def test_when_output_folder_has_an_earlier_run_then_stale_parts_are_removed(tmp_path: Path) -> None:
    generate(tmp_path, 3_000, chunk_rows=500)
    report = generate(tmp_path, 1_000, chunk_rows=500)
    on_disk = sorted((tmp_path / "customers").iterdir())
    assert on_disk == sorted(report.paths["customers"])
    assert len(on_disk) == 2


def test_when_progress_is_given_then_it_is_called_per_block(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    generate(tmp_path, 25_000, progress=lambda d, n: calls.append((d, n)))
    customers = [n for d, n in calls if d == "customers"]
    assert customers == [10_000, 20_000, 25_000]
    assert len([d for d, _ in calls if d == "transactions"]) == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": -1},
        {"rows": 10, "bad_fraction": 1.5},
        {"rows": 10, "fmt": "parquet"},
        {"rows": 10, "chunk_rows": 0},
        {"rows": 10, "seed": -3},
        {"rows": 10, "transactions_per_customer": -1.0},
    ],
)
def test_when_arguments_are_invalid_then_generate_refuses(
    tmp_path: Path, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValidationFailed):
        generate(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_when_rows_is_zero_then_parts_hold_only_headers(tmp_path: Path) -> None:
    report = generate(tmp_path, 0)
    assert report.rows == {"customers": 0, "transactions": 0}
    assert report.paths["customers"][0].read_text() == ",".join(CUSTOMER_COLUMNS) + "\n"
    assert report.canaries["customers"]["full_name"] == ()


def test_when_customers_are_very_active_then_blocks_get_smaller(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    report = generate(
        tmp_path, 2_000, transactions_per_customer=60.0, progress=lambda d, n: calls.append((d, n))
    )
    assert [n for d, n in calls if d == "customers"] == [833, 1_666, 2_000]
    assert 100_000 < report.rows["transactions"] < 140_000


def test_when_transactions_per_customer_changes_then_volume_follows(tmp_path: Path) -> None:
    report = generate(tmp_path / "a", 10_000, transactions_per_customer=1.0)
    assert 8_000 < report.rows["transactions"] < 12_000
    none = generate(tmp_path / "b", 1_000, transactions_per_customer=0.0, bad_fraction=0.0)
    assert none.rows["transactions"] == 6  # only the canaries' transactions


# --- processes: imports and memory --------------------------------------------------------


def run_python(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_when_imported_then_neither_spark_nor_torch_is_loaded() -> None:
    out = run_python(
        """
        import sys
        import gateway.datagen
        print(sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'torch', 'faker'}))
        """
    )
    assert out.strip() == "[]"


MEMORY_BOUND_MB = 64


@pytest.mark.slow
def test_when_generating_300k_customers_then_peak_rss_growth_stays_bounded(tmp_path: Path) -> None:
    """The whole output (~240 MB) never sits in memory: peak RSS grows by far less."""
    out = run_python(
        """
        import json, resource, sys
        from pathlib import Path
        from gateway.datagen import generate

        def peak_mb():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

        out = Path(sys.argv[1])
        generate(out / "warm", 20_000)  # pools, kernels, allocator warm
        before = peak_mb()
        report = generate(out / "big", 300_000)
        size = sum(p.stat().st_size for d in report.paths.values() for p in d) / 2**20
        print(json.dumps({"before": before, "after": peak_mb(), "output_mb": size,
                          "rows": dict(report.rows)}))
        """,
        str(tmp_path),
    )
    figures = json.loads(out)
    growth = figures["after"] - figures["before"]
    assert figures["rows"]["customers"] == 300_000
    assert figures["output_mb"] > 3 * MEMORY_BOUND_MB
    assert growth < MEMORY_BOUND_MB, figures
