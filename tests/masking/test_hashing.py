"""`hash` and `tokenize`: Spark's output equals Python's hashlib/hmac byte for byte, tokens join
across datasets under one key, hashes do not join across columns."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masking import DataType, key_tag
from masking.strategies.hashing import hash_prefix

pytestmark = pytest.mark.spark

S = DataType.STRING
LONG_TEXT = "ab" * 5000  # 10,000 characters

TEXTS = [
    "alice",  # ASCII
    "",  # empty string hashes too (it is a value, not a null)
    "Zoë",  # Latin-1 range
    "東京",  # CJK
    "👩‍💻 emoji",  # astral plane + ZWJ
    "tab\tnew\nline\x00nul",  # control characters
    LONG_TEXT,  # 10,000 characters
]
SPARK_SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
LONG_ENOUGH = st.text(min_size=6, max_size=60)


def py_hmac(secret: bytes, text: str, length: int = 32) -> str:
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def test_when_tokenized_then_digest_is_python_hmac(mask: Any, keys: Any) -> None:
    out = mask([*TEXTS, None], S, "tokenize", {"key": "customer-key", "length": 64})
    head = f"tok_{key_tag('customer-key/v1')}_"
    expected = [head + py_hmac(keys["customer-key"].secret, t, 64) for t in TEXTS]
    assert out == [*expected, None]  # and the null stays null


def test_when_key_is_longer_than_a_block_then_hmac_still_matches(mask: Any, keys: Any) -> None:
    out = mask(TEXTS, S, "tokenize", {"key": "long-key", "key_tag": False, "prefix": ""})
    assert out == [py_hmac(keys["long-key"].secret, t) for t in TEXTS]


@pytest.mark.parametrize(
    ("data_type", "values", "canonical"),
    [
        (DataType.INTEGER, [0, -2147483648, 2147483647], ["0", "-2147483648", "2147483647"]),
        (DataType.LONG, [-9223372036854775808], ["-9223372036854775808"]),  # long min
        (DataType.DOUBLE, [1e308, -0.0, 0.5], ["1.0E308", "-0.0", "0.5"]),  # Java rendering
        (DataType.BOOLEAN, [True, False], ["true", "false"]),  # lower-case words
    ],
)
def test_when_column_is_not_text_then_its_spark_string_form_is_hashed(
    mask: Any, keys: Any, data_type: DataType, values: list[Any], canonical: list[str]
) -> None:
    out = mask(values, data_type, "tokenize", {"key": "customer-key", "key_tag": False})
    assert out == ["tok_" + py_hmac(keys["customer-key"].secret, c) for c in canonical]


def test_when_same_key_then_tokens_join_across_columns_and_datasets(mask: Any) -> None:
    params = {"key": "customer-key"}
    orders = mask(["alice", "bob"], S, "tokenize", params, column="orders.customer")
    people = mask(["bob", "alice"], S, "tokenize", params, column="people.email")
    again = mask(["alice", "bob"], S, "tokenize", params, column="orders.customer")
    assert orders == again  # stable across runs
    assert orders == people[::-1]  # joinable: the column name is not mixed in


def test_when_key_differs_then_tokens_differ(mask: Any) -> None:
    ours = mask(TEXTS, S, "tokenize", {"key": "customer-key"})
    theirs = mask(TEXTS, S, "tokenize", {"key": "other-key"})
    assert all(a != b for a, b in zip(ours, theirs, strict=True))
    assert ours[0].split("_")[1] != theirs[0].split("_")[1]  # key tags tell the versions apart


@SPARK_SETTINGS
@given(values=st.lists(LONG_ENOUGH, min_size=1, max_size=25))
def test_when_tokenized_then_token_never_contains_the_value(
    mask: Any, keys: Any, values: list[str]
) -> None:
    out = mask(values, S, "tokenize", {"key": "customer-key"})
    shape = re.compile(r"tok_[0-9a-f]{8}_[0-9a-f]{32}")
    for value, token in zip(values, out, strict=True):
        # the token is a fixed head plus digest, so no raw characters can leak into it
        assert shape.fullmatch(token)
        assert token.endswith(py_hmac(keys["customer-key"].secret, value))
        assert value not in token


def test_when_hashed_then_sha256_of_salt_column_and_value(mask: Any, keys: Any) -> None:
    out = mask([*TEXTS, None], S, "hash", {"salt": "salt"}, column="people.email")
    prefix = hash_prefix(keys["salt"].secret, "people.email")
    expected = [hashlib.sha256(prefix + t.encode()).hexdigest() for t in TEXTS]
    assert out == [*expected, None]


def test_when_hashed_in_two_columns_then_hashes_differ(mask: Any) -> None:
    first = mask(TEXTS, S, "hash", {"salt": "salt"}, column="orders.customer")
    second = mask(TEXTS, S, "hash", {"salt": "salt"}, column="people.email")
    again = mask(TEXTS, S, "hash", {"salt": "salt"}, column="orders.customer")
    assert first == again  # deterministic within a column
    assert all(a != b for a, b in zip(first, second, strict=True))  # not joinable


@SPARK_SETTINGS
@given(values=st.lists(LONG_ENOUGH, min_size=1, max_size=25))
def test_when_hashed_then_output_never_contains_the_value(mask: Any, values: list[str]) -> None:
    out = mask(values, S, "hash", {"salt": "salt"})
    for value, digest in zip(values, out, strict=True):
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert value not in digest


@pytest.mark.parametrize(
    ("strategy", "params", "message"),
    [
        ("tokenize", {"key": "missing-key"}, "'missing-key' is not available"),  # unknown ref
        ("tokenize", {"key": "short-key"}, "at least 16 are required"),  # weak secret
        ("hash", {"salt": "short-key"}, "at least 16 are required"),  # weak salt
    ],
)
def test_when_key_is_unusable_then_masking_error(
    mask_frame: Any, strategy: str, params: dict[str, str], message: str
) -> None:
    from masking import MaskingError

    with pytest.raises(MaskingError, match=message):
        mask_frame(["x"], S, strategy, params)
