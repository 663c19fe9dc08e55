"""AES-SIV deterministic encryption and FF3-1 format-preserving encryption: round trips with
the key and only with it, format preservation, and the Arrow UDF matching the Python helpers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masking import (
    DataType,
    KeyMaterial,
    MaskingError,
    decrypt_deterministic,
    fpe_decrypt,
    fpe_encrypt,
    key_tag,
)
from masking.strategies.crypto import (
    ALPHABETS,
    encrypt_deterministic,
    fpe_key,
    fpe_min_length,
    siv_key,
)

S = DataType.STRING
TEXTS = ["alice", "", "Zoë", "東京", "👩‍💻 emoji", "x" * 10_000, "line\nbreak\x00"]


# --- AES-SIV, Python helpers ------------------------------------------------------------------


def test_when_secret_has_siv_length_then_used_as_is_else_derived(keys: Any) -> None:
    assert siv_key(keys["customer-key"].secret) == keys["customer-key"].secret  # 32 bytes
    derived = siv_key(keys["odd-key"].secret)  # 20 bytes -> HKDF
    assert len(derived) == 64 and derived == siv_key(keys["odd-key"].secret)


@pytest.mark.parametrize("text", TEXTS)
def test_when_encrypted_deterministically_then_decrypts_with_key_and_column(
    keys: Any, text: str
) -> None:
    key = keys["customer-key"]
    token = encrypt_deterministic(text, key, column="people.email")
    assert token == encrypt_deterministic(text, key, column="people.email")  # deterministic
    assert token.startswith(key_tag(key.key_id) + ":")
    assert decrypt_deterministic(token, key, column="people.email") == text


@pytest.mark.parametrize(
    ("key_name", "column", "message"),
    [
        ("other-key", "people.email", "encrypted under key tag"),  # another key version
        ("customer-key", "orders.customer", "does not decrypt"),  # another column's AD
    ],
)
def test_when_decrypted_with_wrong_key_or_column_then_masking_error(
    keys: Any, key_name: str, column: str, message: str
) -> None:
    token = encrypt_deterministic("alice", keys["customer-key"], column="people.email")
    with pytest.raises(MaskingError, match=message):
        decrypt_deterministic(token, keys[key_name], column=column)


def test_when_secret_differs_under_the_same_key_id_then_authentication_fails(keys: Any) -> None:
    token = encrypt_deterministic("alice", keys["customer-key"], column="c")
    impostor = KeyMaterial(keys["customer-key"].key_id, bytes(32))
    with pytest.raises(MaskingError, match="does not decrypt"):
        decrypt_deterministic(token, impostor, column="c")


@pytest.mark.parametrize(
    "token",
    [
        "no-separator",  # no tag
        "abc:AAAA",  # tag of the wrong length
        "{tag}:not base64!",  # bad body
        "{tag}:AAAAAAAAAAAAAAAAAAAAAA==",  # valid base64 but forged
    ],
)
def test_when_token_is_malformed_then_masking_error(keys: Any, token: str) -> None:
    key = keys["customer-key"]
    with pytest.raises(MaskingError):
        decrypt_deterministic(token.format(tag=key_tag(key.key_id)), key, column="c")


# --- AES-SIV on Spark -------------------------------------------------------------------------


@pytest.mark.spark
def test_when_encrypted_on_spark_then_tokens_round_trip(mask: Any, keys: Any) -> None:
    out = mask(
        [*TEXTS, None], S, "encrypt_deterministic", {"key": "customer-key"}, column="people.email"
    )
    assert out[-1] is None  # null stays null
    key = keys["customer-key"]
    for text, token in zip(TEXTS, out, strict=False):
        assert token == encrypt_deterministic(text, key, column="people.email")
        assert decrypt_deterministic(token, key, column="people.email") == text
        assert text == "" or text not in token


@pytest.mark.spark
def test_when_encrypting_other_types_then_their_text_form_round_trips(mask: Any, keys: Any) -> None:
    out = mask([2**63 - 1, None], DataType.LONG, "encrypt_deterministic", {"key": "odd-key"})
    assert decrypt_deterministic(out[0], keys["odd-key"], column="c") == "9223372036854775807"
    assert out[1] is None


@pytest.mark.spark
def test_when_same_value_in_two_columns_then_tokens_differ(mask: Any) -> None:
    params = {"key": "customer-key"}
    a = mask(["alice"], S, "encrypt_deterministic", params, column="a")
    b = mask(["alice"], S, "encrypt_deterministic", params, column="b")
    assert a != b


# --- FF3-1, Python helpers --------------------------------------------------------------------


def test_when_alphabet_is_digits_then_minimum_length_is_six() -> None:
    assert fpe_min_length("digits") == 6  # 10**6 >= one million
    assert fpe_min_length("alphanumeric") == 4  # 62**4 >= one million
    assert fpe_min_length("01") == 20  # binary


def test_when_value_fits_one_block_then_it_is_plain_ff3_1(keys: Any) -> None:
    from ff3 import FF3Cipher

    key = keys["customer-key"]
    cipher = FF3Cipher(fpe_key(key.secret).hex(), "00112233445566")
    assert fpe_encrypt("4111111111111111", key, tweak="00112233445566") == cipher.encrypt(
        "4111111111111111"
    )


@pytest.mark.parametrize(
    ("alphabet", "value"),
    [
        ("digits", "4111-1111-1111-1111"),  # separators kept in place
        ("digits", "123456"),  # exactly the minimum length
        ("digits", "1" * 10_000),  # longer than one FF3-1 block: chunked
        ("alphanumeric", "AbC-123-xYz"),  # letters and digits
        ("alphanumeric", "Zoë 東京 ab12"),  # unicode outside the alphabet is kept
        ("ACGT", "GATTACA-GATTACA-GATTACA"),  # custom alphabet (radix 4, min 10)
    ],
)
def test_when_fpe_encrypted_then_format_kept_and_round_trips(
    keys: Any, alphabet: str, value: str
) -> None:
    key = keys["customer-key"]
    chars = set(ALPHABETS.get(alphabet, alphabet))
    secret = fpe_encrypt(value, key, alphabet=alphabet)
    assert secret is not None and secret != value
    assert len(secret) == len(value)
    for raw, new in zip(value, secret, strict=True):
        assert (new in chars) if raw in chars else (new == raw)
    assert fpe_decrypt(secret, key, alphabet=alphabet) == value
    assert fpe_decrypt(secret, keys["other-key"], alphabet=alphabet) != value  # wrong key


def test_when_tweak_differs_then_ciphertext_differs(keys: Any) -> None:
    key = keys["customer-key"]
    assert fpe_encrypt("4111111111111111", key) != fpe_encrypt(
        "4111111111111111", key, tweak="ffffffffffffff"
    )


@pytest.mark.parametrize(
    ("alphabet", "value"),
    [
        ("digits", "12345"),  # five digits < minimum six
        ("digits", "ab-12"),  # two digits among other characters
        ("digits", ""),  # empty
        ("alphanumeric", "a-b-c"),  # three alphanumerics < four
    ],
)
def test_when_too_few_alphabet_characters_then_fpe_gives_null(
    keys: Any, alphabet: str, value: str
) -> None:
    assert fpe_encrypt(value, keys["customer-key"], alphabet=alphabet) is None
    with pytest.raises(MaskingError, match="not an fpe output"):
        fpe_decrypt(value, keys["customer-key"], alphabet=alphabet)


@settings(max_examples=60, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=6, max_size=120),
    seps=st.lists(st.sampled_from(["", "-", " "]), min_size=120, max_size=120),
)
def test_when_fpe_on_any_digit_string_then_round_trip(
    keys: Any, digits: str, seps: list[str]
) -> None:
    value = "".join(d + s for d, s in zip(digits, seps, strict=False))
    secret = fpe_encrypt(value, keys["customer-key"])
    assert secret is not None and len(secret) == len(value)
    assert fpe_decrypt(secret, keys["customer-key"]) == value


# --- FF3-1 on Spark ---------------------------------------------------------------------------


@pytest.mark.spark
def test_when_card_numbers_fpe_encrypted_on_spark_then_sixteen_digits_stay_sixteen(
    mask: Any, keys: Any
) -> None:
    cards = ["4111111111111111", "5555555555554444", "4000056655665556", "0000000000000000"]
    out = mask([*cards, None, "4111-1111-1111-1111", "123", ""], S, "fpe", {"key": "customer-key"})
    for card, secret in zip(cards, out, strict=False):
        assert re.fullmatch(r"\d{16}", secret) and secret != card
        assert fpe_decrypt(secret, keys["customer-key"]) == card
        assert fpe_decrypt(secret, keys["other-key"]) != card  # only the key reverses it
    assert out[4] is None  # null stays null
    assert re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{4}", out[5])  # dashes kept
    assert out[6] is None and out[7] is None  # too short for FF3-1: null (documented)
    assert out[:4] == [fpe_encrypt(c, keys["customer-key"]) for c in cards]


@pytest.mark.spark
def test_when_fpe_with_alphabet_and_tweak_on_spark_then_python_helper_agrees(
    mask: Any, keys: Any
) -> None:
    values = ["AbC-123-xYz", "Zoë 東京 ab12", "x" * 10_000]
    params = {"key": "odd-key", "alphabet": "alphanumeric", "tweak": "a1b2c3d4e5f601"}
    out = mask(values, S, "fpe", params)
    for value, secret in zip(values, out, strict=True):
        assert secret == fpe_encrypt(
            value, keys["odd-key"], alphabet="alphanumeric", tweak="a1b2c3d4e5f601"
        )
        assert (
            fpe_decrypt(secret, keys["odd-key"], alphabet="alphanumeric", tweak="a1b2c3d4e5f601")
            == value
        )
