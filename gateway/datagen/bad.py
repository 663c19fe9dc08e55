"""Deliberately bad rows, for quarantine tests.

Each bad row breaks exactly one rule that a per-row schema check can see: a wrong type, a
missing required field, a value outside the allowed set, or an out-of-range value. The
number of bad rows up to row `i` is `floor(i * bad_fraction)`, so the total is exact and
independent of block sizes; which rows and which kinds is drawn from a dedicated random
stream, so changing `bad_fraction` never changes the good rows.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from gateway.datagen.text import Ints, Mask, replace_where

__all__ = [
    "CUSTOMER_BAD_KINDS",
    "TRANSACTION_BAD_KINDS",
    "BadKind",
    "apply_bad_rows",
    "bad_count",
    "choose_bad_rows",
]


@dataclass(frozen=True)
class BadKind:
    """One way to break a row: put `value` (None: leave empty) in `column`."""

    name: str
    column: str
    value: str | None
    json_string: bool  # in JSON lines, written as a string although the column is not one


CUSTOMER_BAD_KINDS: Final[tuple[BadKind, ...]] = (
    BadKind("missing_customer_id", "customer_id", None, False),
    BadKind("credit_score_not_integer", "credit_score", "high", True),
    BadKind("credit_score_out_of_range", "credit_score", "9999", False),
    BadKind("birth_date_impossible", "birth_date", "31/02/1990", False),
    BadKind("birth_date_not_a_date", "birth_date", "not-a-date", False),
    BadKind("consent_not_boolean", "consent_marketing", "maybe", True),
    BadKind("country_not_allowed", "country", "XX", False),
)

TRANSACTION_BAD_KINDS: Final[tuple[BadKind, ...]] = (
    BadKind("missing_transaction_id", "transaction_id", None, False),
    BadKind("missing_customer_id", "customer_id", None, False),
    BadKind("amount_not_a_number", "amount", "abc", True),
    BadKind("country_not_allowed", "country", "XX", False),
    BadKind("event_time_not_a_timestamp", "event_time", "not-a-timestamp", False),
    BadKind("is_fraud_not_boolean", "is_fraud", "maybe", True),
)


def bad_count(start: int, end: int, fraction: float) -> int:
    """How many of the rows [start, end) are bad."""
    return math.floor(end * fraction + 1e-9) - math.floor(start * fraction + 1e-9)


def choose_bad_rows(
    rng: np.random.Generator, count: int, eligible: Mask, preferred: Mask | None = None
) -> Ints:
    """`count` distinct eligible block positions, taken from `preferred` ones first."""
    first = (
        np.flatnonzero(eligible & preferred) if preferred is not None else np.flatnonzero(eligible)
    )
    chosen = rng.permutation(first)[:count]
    if chosen.size < count and preferred is not None:
        others = np.flatnonzero(eligible & ~preferred)
        chosen = np.concatenate([chosen, rng.permutation(others)[: count - chosen.size]])
    result: Ints = np.sort(chosen).astype(np.int64)
    return result


def apply_bad_rows(
    rng: np.random.Generator,
    text: dict[str, Any],
    as_string: dict[str, Mask],
    rows: Ints,
    kinds: tuple[BadKind, ...],
) -> Counter[str]:
    """Break the given rows in place (one kind each); returns the count per kind."""
    counts: Counter[str] = Counter()
    if rows.size == 0:
        return counts
    n = len(next(iter(text.values())))
    kind_of = rng.integers(0, len(kinds), size=rows.size)
    for k, kind in enumerate(kinds):
        mask = np.zeros(n, dtype=np.bool_)
        mask[rows[kind_of == k]] = True
        hits = int(mask.sum())
        if not hits:
            continue
        counts[kind.name] += hits
        text[kind.column] = replace_where(text[kind.column], mask, kind.value)
        if kind.json_string:
            as_string[kind.column] = as_string.get(kind.column, np.zeros(n, np.bool_)) | mask
    return counts
