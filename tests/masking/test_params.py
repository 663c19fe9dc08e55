"""Parameter validation: each strategy's frozen Params refuse nonsense, and `check()` reports
parameters that do not suit the column type. No Spark needed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from masking import REGISTRY, DataType, MaskingError

S, INT, L, D = DataType.STRING, DataType.INTEGER, DataType.LONG, DataType.DOUBLE
B, DT, TS = DataType.BOOLEAN, DataType.DATE, DataType.TIMESTAMP

VALID: list[tuple[str, dict[str, Any]]] = [
    ("nullify", {}),  # no parameters at all
    ("constant", {"value": "n/a"}),  # text constant
    ("constant", {"value": 0, "keep_nulls": True}),  # number, nulls kept
    ("regex_replace", {"pattern": r"(\d{3})\d+", "replacement": "$1***"}),  # group reference
    ("regex_replace", {"pattern": r"\$", "replacement": r"\$"}),  # escaped dollar
    ("hash", {"salt": "salt"}),  # a secret reference
    ("hash", {"salt": "projects/acme/secrets/customer-tokenization-salt-v2"}),  # a long path
    ("tokenize", {"key": "customer-key"}),  # defaults: tok_, 32 hex, key tag
    ("tokenize", {"key": "customer-key", "prefix": "", "length": 64, "key_tag": False}),
    ("encrypt_deterministic", {"key": "customer-key"}),  # reference only
    ("fpe", {"key": "customer-key"}),  # digits by default
    ("fpe", {"key": "customer-key", "alphabet": "alphanumeric", "tweak": "00112233445566"}),
    ("fpe", {"key": "customer-key", "alphabet": "ACGT"}),  # custom alphabet
    ("partial", {"show_first": 2, "show_last": 4, "mask_char": "#"}),  # Ranger-style
    ("char_class", {"digit": "0", "other": None}),  # override one class
    ("email", {"keep": "local", "mask": "redacted"}),  # keep the local part
    ("phone", {"keep_last": 0}),  # mask all digits
    ("card_number", {"keep_last": 0, "mask_char": "x"}),  # nothing shown
    ("truncate", {"keep": 3, "pad": "*"}),  # postal code
    ("bucket", {"width": 10}),  # width mode
    ("bucket", {"width": 0.5, "origin": -0.25}),  # fractional width with origin
    ("bucket", {"bins": [0, 18, 65]}),  # explicit edges
    ("round", {}),  # digits 0
    ("round", {"digits": -3}),  # thousands
    ("round", {"to": 5}),  # multiples of five
    ("generalize_date", {"unit": "quarter"}),  # quarter start
    ("age_band", {"as_of": "2024-06-30"}),  # ISO date text
    ("age_band", {"as_of": "today", "width": 5, "top": 90}),  # today, top-coded
    ("ip_prefix", {"ipv4": 16, "ipv6": 64}),  # /16 and /64
    ("date_shift", {"key": "customer-key", "max_days": 30}),  # ±30 days
    ("randomized_response", {"epsilon": 1.0, "categories": ["a", "b"]}),  # two categories
    ("noise", {"lower": 0, "upper": 120, "epsilon": 0.5}),  # bounded ages
]

INVALID: list[tuple[str, dict[str, Any]]] = [
    ("nullify", {"value": 1}),  # nullify takes nothing (extra fields forbidden)
    ("constant", {}),  # value missing
    ("constant", {"value": float("nan")}),  # NaN constant
    ("constant", {"value": float("inf")}),  # infinite constant
    ("constant", {"value": [1, 2]}),  # not a scalar
    ("regex_replace", {"pattern": ""}),  # empty pattern
    ("regex_replace", {"pattern": "(unclosed"}),  # does not compile
    ("regex_replace", {"pattern": "(?P<name>x)"}),  # Python-only named group
    ("regex_replace", {"pattern": "x", "replacement": "$1"}),  # group 1 does not exist
    ("regex_replace", {"pattern": "x", "replacement": "cost: $"}),  # lone dollar
    ("regex_replace", {"pattern": "x", "replacement": "a\\"}),  # trailing backslash
    ("hash", {}),  # salt missing
    ("hash", {"salt": "00112233445566778899aabbccddeeff"}),  # looks like key bytes (hex)
    ("tokenize", {"key": "k", "length": 8}),  # shorter than 16 hex chars
    ("tokenize", {"key": "k", "length": 65}),  # longer than a SHA-256 digest
    ("tokenize", {"key": "k", "length": "32"}),  # numeric text is not an int
    ("tokenize", {"key": "k", "prefix": "tok <"}),  # prefix with odd characters
    ("tokenize", {"key": "dGhpcyBpcyBhIGJhc2U2NCBlbmNvZGVkIGtleSBtYXRlcmlhbA=="}),  # base64 key
    ("tokenize", {"key": ""}),  # empty reference
    ("encrypt_deterministic", {"key": "k", "column": "x"}),  # unknown field
    ("fpe", {"key": "k", "alphabet": "a"}),  # one-character alphabet
    ("fpe", {"key": "k", "alphabet": "aab"}),  # repeated characters
    ("fpe", {"key": "k", "tweak": "0011"}),  # tweak not 56 bits
    ("fpe", {"key": "k", "tweak": "0011223344556677"}),  # 64-bit FF3 tweak, not FF3-1
    ("partial", {"show_first": -1}),  # negative length
    ("partial", {"show_last": True}),  # bool is not a count
    ("partial", {"mask_char": "**"}),  # two characters
    ("partial", {"mask_char": ""}),  # no character
    ("char_class", {"upper": None, "lower": None, "digit": None}),  # masks nothing
    ("char_class", {"upper": "XX"}),  # two characters
    ("email", {"keep": "both"}),  # unknown mode
    ("email", {"mask": ""}),  # empty mask
    ("phone", {"keep_last": 7}),  # more than 6 digits shown
    ("phone", {"mask_char": "0"}),  # a digit as mask
    ("card_number", {"keep_last": 5}),  # PCI: at most the last four
    ("truncate", {"keep": 0}),  # keeps nothing
    ("truncate", {"keep": 3, "pad": "--"}),  # pad of two characters
    ("bucket", {}),  # neither width nor bins
    ("bucket", {"width": 10, "bins": [0, 1]}),  # both
    ("bucket", {"width": 0}),  # zero width
    ("bucket", {"width": -5}),  # negative width
    ("bucket", {"width": float("inf")}),  # infinite width
    ("bucket", {"bins": []}),  # empty bins
    ("bucket", {"bins": [10, 5]}),  # not sorted
    ("bucket", {"bins": [1, 1]}),  # not strictly increasing
    ("bucket", {"bins": [0, float("nan")]}),  # NaN edge
    ("bucket", {"bins": [0, 1], "origin": 3}),  # origin only applies to width
    ("round", {"digits": 1, "to": 5}),  # both modes
    ("round", {"to": 0}),  # zero multiple
    ("round", {"to": float("nan")}),  # NaN multiple
    ("round", {"digits": 99}),  # absurd precision
    ("generalize_date", {"unit": "decade"}),  # unsupported unit
    ("generalize_date", {}),  # unit missing
    ("age_band", {"width": 0}),  # zero-width bands
    ("age_band", {"as_of": "yesterday"}),  # neither a date nor 'today'
    ("ip_prefix", {"ipv4": 20}),  # not an octet boundary
    ("ip_prefix", {"ipv6": 56}),  # unsupported IPv6 prefix
    ("date_shift", {"key": "k"}),  # max_days missing
    ("date_shift", {"key": "k", "max_days": 0}),  # no shift at all
    ("date_shift", {"key": "k", "max_days": -3}),  # negative range
    ("randomized_response", {"epsilon": 0, "categories": ["a", "b"]}),  # epsilon 0
    ("randomized_response", {"epsilon": -1, "categories": ["a", "b"]}),  # negative epsilon
    ("randomized_response", {"epsilon": float("inf"), "categories": ["a", "b"]}),  # infinite
    ("randomized_response", {"epsilon": 1, "categories": ["a"]}),  # one category
    ("randomized_response", {"epsilon": 1, "categories": ["a", "a"]}),  # repeated category
    ("noise", {"lower": 10, "upper": 10, "epsilon": 1}),  # empty range
    ("noise", {"lower": 10, "upper": 0, "epsilon": 1}),  # inverted range
    ("noise", {"lower": 0, "upper": 1, "epsilon": 0}),  # epsilon 0
    ("noise", {"lower": 0, "upper": float("inf"), "epsilon": 1}),  # unbounded
    ("noise", {"lower": -1e308, "upper": 1e308, "epsilon": 1}),  # range overflows
    ("noise", {"lower": 0, "upper": 1e300, "epsilon": 1e-10}),  # infinite scale
]


@pytest.mark.parametrize(("name", "raw"), VALID)
def test_when_params_are_sensible_then_they_parse(name: str, raw: dict[str, Any]) -> None:
    params = REGISTRY.get(name).parse(raw)
    with pytest.raises(ValidationError):  # frozen
        params.__setattr__(next(iter(type(params).model_fields), "x"), None)


@pytest.mark.parametrize(("name", "raw"), INVALID)
def test_when_params_are_nonsense_then_validation_error(name: str, raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REGISTRY.get(name).parse(raw)


CHECKS: list[tuple[str, dict[str, Any], DataType, str | None]] = [
    ("constant", {"value": "x"}, S, None),  # text for text
    ("constant", {"value": 5}, S, "quote it"),  # a number for a string column
    ("constant", {"value": 5}, INT, None),  # int for int
    ("constant", {"value": 2**31}, INT, "outside the integer range"),  # int overflow
    ("constant", {"value": 2**31}, L, None),  # fits a long
    ("constant", {"value": True}, INT, "whole number"),  # bool is not a number
    ("constant", {"value": 1.5}, L, "whole number"),  # float for a long
    ("constant", {"value": 1}, D, None),  # int for a double
    ("constant", {"value": "yes"}, B, "true or false"),  # text for a boolean
    ("constant", {"value": "2024-01-31"}, DT, None),  # ISO date text
    ("constant", {"value": "31/01/2024"}, DT, "Invalid isoformat"),  # not ISO
    ("constant", {"value": "2024-01-31T12:00:00"}, TS, None),  # ISO timestamp text
    ("hash", {"salt": "salt"}, B, None),  # any type hashes its canonical text
    ("partial", {}, INT, "does not apply to integer"),  # text-only strategy
    ("fpe", {"key": "k"}, L, "does not apply to long"),  # numbers lose leading zeros
    ("round", {"to": 2.5}, INT, "not a whole number"),  # fractional multiple for integers
    ("round", {"to": 2.5}, D, None),  # fine for doubles
    ("bucket", {"width": 10}, S, "does not apply to string"),  # numbers only
    ("generalize_date", {"unit": "hour"}, DT, "needs a timestamp"),  # dates have no hours
    ("generalize_date", {"unit": "hour"}, TS, None),  # timestamps do
    ("age_band", {}, DT, "needs 'as_of'"),  # birth date without reference date
    ("age_band", {}, INT, None),  # an age number needs none
    ("randomized_response", {"epsilon": 1}, S, "needs its 'categories'"),  # no domain
    ("randomized_response", {"epsilon": 1, "categories": ["a", "b"]}, B, "omit them"),
    ("randomized_response", {"epsilon": 1}, B, None),  # booleans: k = 2
    ("noise", {"lower": 0.2, "upper": 0.8, "epsilon": 1}, INT, "no integer value"),  # no ints
    ("noise", {"lower": 0.2, "upper": 0.8, "epsilon": 1}, D, None),  # fine for doubles
    ("date_shift", {"key": "k", "max_days": 5}, S, "does not apply to string"),  # dates only
]


@pytest.mark.parametrize(("name", "raw", "data_type", "expected"), CHECKS)
def test_when_checked_against_a_column_type_then_problem_reported(
    name: str, raw: dict[str, Any], data_type: DataType, expected: str | None
) -> None:
    strategy = REGISTRY.get(name)
    problem = strategy.check(data_type, strategy.parse(raw))
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


@pytest.mark.parametrize(
    ("name", "raw", "references"),
    [
        ("hash", {"salt": "salt"}, {"salt"}),  # salt is a secret
        ("tokenize", {"key": "customer-key"}, {"customer-key"}),  # HMAC key
        ("encrypt_deterministic", {"key": "customer-key"}, {"customer-key"}),  # AES-SIV key
        ("fpe", {"key": "customer-key"}, {"customer-key"}),  # FF3-1 key
        ("date_shift", {"key": "customer-key", "max_days": 3}, {"customer-key"}),  # HMAC key
        ("partial", {}, set()),  # keyless
        ("noise", {"lower": 0, "upper": 1, "epsilon": 1}, set()),  # keyless (seeded rand)
    ],
)
def test_when_strategy_is_keyed_then_key_references_name_the_secret(
    name: str, raw: dict[str, Any], references: set[str]
) -> None:
    strategy = REGISTRY.get(name)
    assert strategy.key_references(strategy.parse(raw)) == references


@pytest.mark.parametrize(
    ("name", "raw", "data_type", "output"),
    [
        ("hash", {"salt": "s"}, INT, S),  # hex text
        ("tokenize", {"key": "k"}, DT, S),  # token text
        ("encrypt_deterministic", {"key": "k"}, D, S),  # base64 text
        ("bucket", {"width": 1}, D, S),  # label
        ("age_band", {"as_of": "today"}, DT, S),  # label
        ("round", {}, D, D),  # same type
        ("date_shift", {"key": "k", "max_days": 1}, TS, TS),  # same type
        ("nullify", {}, B, B),  # same type
    ],
)
def test_when_strategy_changes_the_type_then_output_type_says_so(
    name: str, raw: dict[str, Any], data_type: DataType, output: DataType
) -> None:
    strategy = REGISTRY.get(name)
    assert strategy.output_type(data_type, strategy.parse(raw)) == output


def test_when_params_of_another_strategy_are_passed_then_masking_error() -> None:
    from masking import MaskContext

    hash_params = REGISTRY.get("hash").parse({"salt": "salt"})
    with pytest.raises(MaskingError, match="expected TokenizeParams"):
        REGISTRY.get("tokenize").expression(None, hash_params, MaskContext("c", S))  # type: ignore[arg-type]
