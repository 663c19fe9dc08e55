"""`partial`, `char_class`, `email`, `phone`, `card_number` and `truncate`: truth tables and
properties about what the output can reveal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masking import DataType

pytestmark = pytest.mark.spark

S = DataType.STRING
LONG_TEXT = "x" * 10_000
SPARK_SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({"show_last": 4}, "4111111111111111", "************1111"),  # Ranger MASK_SHOW_LAST_4
        ({"show_first": 2, "show_last": 2}, "Zoë Müller", "Zo******er"),  # both ends
        ({"show_first": 1, "mask_char": "#"}, "東京都", "東##"),  # CJK, custom mask char
        ({"show_last": 1}, "a👩‍💻", "***💻"),  # 4 code points: a, woman, ZWJ, laptop
        ({"show_first": 2, "show_last": 2}, "abcd", "****"),  # not longer than shown: all masked
        ({"show_last": 4}, "abc", "***"),  # shorter than shown: all masked (unlike Ranger)
        ({}, "secret", "******"),  # nothing shown
        ({"show_first": 3}, "", ""),  # empty stays empty
        ({"show_first": 3}, None, None),  # null stays null
        ({"show_first": 1}, LONG_TEXT, "x" + "*" * 9_999),  # 10,000 characters
    ],
)
def test_when_partial_then_ranger_style_show_first_last(
    mask: Any, params: dict[str, Any], value: str | None, expected: str | None
) -> None:
    assert mask([value], S, "partial", params) == [expected]


@SPARK_SETTINGS
@given(values=st.lists(st.text(min_size=6, max_size=50), min_size=1, max_size=25))
def test_when_partial_then_only_the_shown_ends_survive(mask: Any, values: list[str]) -> None:
    out = mask(values, S, "partial", {"show_first": 2, "show_last": 2})
    for value, masked in zip(values, out, strict=True):
        assert len(masked) == len(value)
        assert masked == value[:2] + "*" * (len(value) - 4) + value[-2:]
        if set(value[2:-2]) != {"*"}:  # the hidden middle is gone unless it was all '*'
            assert value not in masked


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({}, "AbC-12 x", "XxX-nn x"),  # defaults: X, x, n, others kept
        ({}, "Zoë Ärger", "Xxx Xxxxx"),  # Java's Character classes: ë is lower, Ä upper
        ({}, "東京 👩‍💻", "東京 👩‍💻"),  # neither letters of a case nor digits: kept
        ({"other": "_"}, "a-b c", "x_x_x"),  # mask the others too
        ({"digit": None}, "Route 66", "Xxxxx 66"),  # keep digits
        ({"upper": "U", "lower": None}, "MacDonald", "UacUonald"),  # keep lower-case
        ({}, "", ""),  # empty
        ({}, None, None),  # null
        ({}, LONG_TEXT, "x" * 10_000),  # 10,000 characters
    ],
)
def test_when_char_class_then_spark_mask_semantics(
    mask: Any, params: dict[str, Any], value: str | None, expected: str | None
) -> None:
    assert mask([value], S, "char_class", params) == [expected]


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({}, "alice@example.com", "***@example.com"),  # keep the domain (default)
        ({"keep": "local"}, "alice@example.com", "alice@***"),  # keep the local part
        ({"keep": "none"}, "alice@example.com", "***@***"),  # shape only
        ({"mask": "x"}, "zoë.müller@bücher.de", "x@bücher.de"),  # unicode, custom mask
        ({}, "用户@例子.广告", "***@例子.广告"),  # internationalised address
        ({}, "no-at-sign", None),  # invalid: no '@'
        ({}, "a@b@c", None),  # invalid: two '@'
        ({}, "@example.com", None),  # invalid: empty local part
        ({}, "alice@", None),  # invalid: empty domain
        ({}, "alice @example.com", None),  # invalid: whitespace
        ({}, "alice@example.com\n", None),  # invalid: trailing newline
        ({}, "", None),  # empty is not an address
        ({}, None, None),  # null
        ({}, "a" * 9_990 + "@example.com", "***@example.com"),  # 10,002 characters
    ],
)
def test_when_email_then_only_the_kept_part_survives(
    mask: Any, params: dict[str, Any], value: str | None, expected: str | None
) -> None:
    assert mask([value], S, "email", params) == [expected]


LOCAL = st.text(
    st.characters(exclude_characters="@", exclude_categories=["Z", "Cc", "Cs"]),
    min_size=1,
    max_size=30,
)
DOMAIN = st.from_regex(r"[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True)


@SPARK_SETTINGS
@given(pairs=st.lists(st.tuples(LOCAL, LOCAL, DOMAIN), min_size=1, max_size=20))
def test_when_email_keeps_domain_then_output_does_not_depend_on_local_part(
    mask: Any, pairs: list[tuple[str, str, str]]
) -> None:
    values = [f"{a}@{d}" for a, _, d in pairs] + [f"{b}@{d}" for _, b, d in pairs]
    out = mask(values, S, "email", {})
    n = len(pairs)
    for i, (local, _, domain) in enumerate(pairs):
        # two different local parts in the same domain are indistinguishable afterwards
        assert out[i] == out[n + i] == f"***@{domain}"
        if len(local) >= 6 and local not in f"***@{domain}":
            assert local not in out[i]


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({}, "+49 30 1234567", "+xx xx xxxxx67"),  # keep the last 2 digits (default)
        ({"keep_last": 4, "mask_char": "*"}, "(555) 123-4567", "(***) ***-4567"),  # US format
        ({"keep_last": 0}, "030/123.45", "xxx/xxx.xx"),  # all digits masked
        ({"keep_last": 2}, "12", "xx"),  # no more digits than shown: all masked
        ({}, "+", "+"),  # no digits: nothing to mask
        ({}, "", ""),  # empty stays empty
        ({}, "call me 0301234", None),  # letters: not a phone number
        ({}, "٠١٢٣٤٥٦", None),  # non-ASCII digits are not accepted
        ({}, None, None),  # null
        ({}, "1" * 10_000, "x" * 9_998 + "11"),  # 10,000 digits
    ],
)
def test_when_phone_then_digits_masked_except_the_last(
    mask: Any, params: dict[str, Any], value: str | None, expected: str | None
) -> None:
    assert mask([value], S, "phone", params) == [expected]


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({}, "4111-1111-1111-1111", "****-****-****-1111"),  # dashes kept
        ({}, "4111 1111 1111 1111", "**** **** **** 1111"),  # spaces kept
        ({}, "378282246310005", "***********0005"),  # 15-digit Amex
        ({"keep_last": 0, "mask_char": "x"}, "5555.5555.5555.4444", "xxxx.xxxx.xxxx.xxxx"),
        ({}, "411111111111", "********1111"),  # 12 digits: the minimum
        ({}, "41111111111", None),  # 11 digits: not a card number
        ({}, "1" * 20, None),  # 20 digits: not a card number
        ({}, "4111-1111-1111-111a", None),  # a letter: not a card number
        ({}, "", None),  # empty: not a card number
        ({}, None, None),  # null
        ({}, "1" * 10_000, None),  # 10,000 digits: not a card number
    ],
)
def test_when_card_number_then_pci_style_last_four(
    mask: Any, params: dict[str, Any], value: str | None, expected: str | None
) -> None:
    assert mask([value], S, "card_number", params) == [expected]


CARD = st.lists(st.sampled_from("0123456789"), min_size=12, max_size=19).flatmap(
    lambda digits: st.lists(
        st.sampled_from(["", " ", "-"]), min_size=len(digits), max_size=len(digits)
    ).map(lambda seps: "".join(d + s for d, s in zip(digits, seps, strict=True)))
)


@SPARK_SETTINGS
@given(values=st.lists(CARD, min_size=1, max_size=25))
def test_when_card_number_then_only_the_last_four_digits_survive(
    mask: Any, values: list[str]
) -> None:
    out = mask(values, S, "card_number", {})
    for value, masked in zip(values, out, strict=True):
        assert len(masked) == len(value)
        digits = [c for c in value if c.isdigit()]
        assert [c for c in masked if c.isdigit()] == digits[-4:]
        for raw, new in zip(value, masked, strict=True):
            assert new == raw if not raw.isdigit() else new in (raw, "*")
        assert value not in masked


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({"keep": 3}, "10115", "101"),  # postal code prefix
        ({"keep": 3, "pad": "*"}, "10115", "101**"),  # padded back to the length
        ({"keep": 2, "pad": "*"}, "東京都", "東京*"),  # code points
        ({"keep": 5, "pad": "*"}, "abc", "abc"),  # shorter than keep: unchanged, no pad
        ({"keep": 3}, "", ""),  # empty
        ({"keep": 3}, None, None),  # null
        ({"keep": 3, "pad": "*"}, LONG_TEXT, "xxx" + "*" * 9_997),  # 10,000 characters
    ],
)
def test_when_truncate_then_prefix_kept(
    mask: Any, params: dict[str, Any], value: str | None, expected: str | None
) -> None:
    assert mask([value], S, "truncate", params) == [expected]
