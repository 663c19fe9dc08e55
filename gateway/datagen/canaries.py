"""Canaries: fixed, distinctive raw values planted in the first good rows of every run.

The first customers of the first block (at most `CANARY_COUNT`) carry these values, and so
do their transactions. They do not depend on the seed, are never chosen as bad rows, and
each value is unique by construction (see `formats.py` for the ranges random rows never
use), so a plain substring search of governed output finds a leak and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np

from gateway.datagen.formats import CANARY_BIN, de_tax_id_check, luhn_check_digit
from gateway.datagen.schema import COUNTRIES
from gateway.errors import ValidationFailed

__all__ = [
    "CANARIES_FILE",
    "CANARY_COUNT",
    "CANARY_CUSTOMER_COLUMNS",
    "CANARY_TRANSACTION_COLUMNS",
    "Canaries",
    "CanaryCustomer",
    "canaries_for",
    "canary_customers",
    "read_canaries",
    "write_canaries",
]

CANARY_COUNT: Final = 3
CANARY_CUSTOMER_COLUMNS: Final = ("full_name", "email", "phone", "national_id", "street_address")
CANARY_TRANSACTION_COLUMNS: Final = ("card_number", "ip_address")
CANARIES_FILE: Final = "canaries.json"

Canaries = Mapping[str, Mapping[str, tuple[str, ...]]]


class CanaryCustomer:
    """The planted values of canary customer `n` (1-based)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.country = ("US", "GB", "DE")[(n - 1) % 3]
        self.full_name = f"Canary Zebedee Quill-{n}"
        self.email = f"canary.{n}@canary.example"
        self.phone = {
            "US": f"+1 415 555 {134 + n - 1:04d}",
            "GB": f"+44 20 7946 {n:04d}",
            "DE": f"+49 30 {1234567 + n - 3:07d}",
        }[self.country]
        self.national_id = {
            "US": f"987-65-{4320 + n:04d}",
            "GB": f"QQ{123456 + n - 2:06d}C",
            "DE": _de_tax_id(f"98765432{n:02d}"),
        }[self.country]
        self.street_address = {
            "US": f"{n} Zebedee Quill Canary Lane",
            "GB": f"{n} Zebedee Quill Canary Mews",
            "DE": f"Zebedee-Quill-Kanarienweg {n}",
        }[self.country]
        self.card_number = _luhn(f"{CANARY_BIN}{n:09d}")
        self.ip_address = f"203.0.113.{70 + n}"

    @property
    def country_index(self) -> int:
        return COUNTRIES.index(self.country)

    def customer_values(self) -> dict[str, str]:
        return {
            "full_name": self.full_name,
            "email": self.email,
            "phone": self.phone,
            "national_id": self.national_id,
            "street_address": self.street_address,
        }


def _de_tax_id(ten: str) -> str:
    digits = np.array([[int(c) for c in ten]], dtype=np.int64)
    return ten + str(int(de_tax_id_check(digits)[0]))


def _luhn(payload: str) -> str:
    digits = np.array([[int(c) for c in payload]], dtype=np.int64)
    return payload + str(int(luhn_check_digit(digits)[0]))


def canary_customers(rows: int) -> tuple[CanaryCustomer, ...]:
    """The canary customers of a run of `rows` customers."""
    return tuple(CanaryCustomer(n) for n in range(1, min(CANARY_COUNT, rows) + 1))


def canaries_for(rows: int) -> dict[str, dict[str, tuple[str, ...]]]:
    """dataset → column → planted values, for a run of `rows` customers."""
    people = canary_customers(rows)
    customers = {
        column: tuple(p.customer_values()[column] for p in people)
        for column in CANARY_CUSTOMER_COLUMNS
    }
    transactions = {
        column: tuple(str(getattr(p, column)) for p in people)
        for column in CANARY_TRANSACTION_COLUMNS
    }
    return {"customers": customers, "transactions": transactions}


def write_canaries(out: Path, canaries: Canaries) -> Path:
    path = out / CANARIES_FILE
    payload = {"version": 1, "canaries": {d: {c: list(v) for c, v in cols.items()}
                                          for d, cols in canaries.items()}}  # fmt: skip
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_canaries(out: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """The canaries of the run written to `out` (from `out/canaries.json`)."""
    path = Path(out) / CANARIES_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        raw = payload["canaries"]
        return {
            str(dataset): {str(column): tuple(str(v) for v in values)
                           for column, values in columns.items()}
            for dataset, columns in raw.items()
        }  # fmt: skip
    except FileNotFoundError:
        raise ValidationFailed(f"no {CANARIES_FILE} in {out}: not a generator output") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValidationFailed(f"{path} is not a canaries file") from None
