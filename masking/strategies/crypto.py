"""Reversible strategies: AES-SIV deterministic encryption and FF3-1 format-preserving encryption.

Spark has no primitive for either, so both run as vectorised Arrow (pandas) UDFs; the
matching `decrypt_deterministic` and `fpe_decrypt` serve the steward's reidentify command.
"""

from __future__ import annotations

import base64
import binascii
import math
import string
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from masking.base import KeyMaterial, MaskContext, MaskingError, Params, Strategy
from masking.base import Params as AnyParams
from masking.strategies._common import KeyRef, expect, key_tag, require_secret
from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "ALPHABETS",
    "DEFAULT_TWEAK",
    "EncryptDeterministicParams",
    "EncryptDeterministicStrategy",
    "FpeParams",
    "FpeStrategy",
    "decrypt_deterministic",
    "encrypt_deterministic",
    "fpe_decrypt",
    "fpe_encrypt",
    "fpe_key",
    "siv_key",
]

_SIV_INFO = b"masking/aes-siv/v1"
_FPE_INFO = b"masking/ff3-1/v1"
_ALL_TYPES = frozenset(DataType)


def _hkdf(secret: bytes, length: int, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


# ---------------------------------------------------------------------------------------------
# AES-SIV


def siv_key(secret: bytes) -> bytes:
    """The AES-SIV key: a 32- or 64-byte secret as is, any other length through HKDF-SHA256."""
    if len(secret) in (32, 64):
        return secret
    return _hkdf(secret, 64, _SIV_INFO)


def _siv_head(key: KeyMaterial) -> str:
    return key_tag(key.key_id) + ":"


def encrypt_deterministic(plaintext: str, key: KeyMaterial, *, column: str) -> str:
    """The token the `encrypt_deterministic` strategy writes: ``<key tag>:<base64 AES-SIV>``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    sealed = AESSIV(siv_key(key.secret)).encrypt(plaintext.encode("utf-8"), [column.encode()])
    return _siv_head(key) + base64.b64encode(sealed).decode("ascii")


def decrypt_deterministic(token: str, key: KeyMaterial, *, column: str) -> str:
    """The plaintext of an `encrypt_deterministic` token; needs the key and the column it was in.

    Raises MaskingError for a malformed token, another key's tag or a failed authentication.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    tag, sep, body = token.partition(":")
    if not sep or len(tag) != 8:
        raise MaskingError("not an encrypt_deterministic token (expected '<key tag>:<base64>')")
    if tag != key_tag(key.key_id):
        raise MaskingError(f"token was encrypted under key tag {tag}, not {key_tag(key.key_id)}")
    try:
        sealed = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise MaskingError("token body is not valid base64") from None
    try:
        plain = AESSIV(siv_key(key.secret)).decrypt(sealed, [column.encode()])
    except InvalidTag:
        raise MaskingError("token does not decrypt with this key and column") from None
    return plain.decode("utf-8")


class EncryptDeterministicParams(Params):
    """`key`: the name of the secret the AES-SIV key comes from."""

    key: KeyRef


class EncryptDeterministicStrategy(Strategy):
    """AES-SIV (deterministic, authenticated) of the canonical text, bound to the column name.

    Equal values in one column give equal tokens (joins and group-bys still work); the column
    name is the associated data, so a token does not decrypt as another column's value.
    """

    name = "encrypt_deterministic"
    Params = EncryptDeterministicParams
    accepts = _ALL_TYPES
    description = "Reversible AES-SIV deterministic encryption, base64 with a key tag."
    uses_python_udf = True

    def output_type(self, data_type: DataType, params: AnyParams) -> DataType:
        return DataType.STRING

    def key_references(self, params: AnyParams) -> frozenset[str]:
        return frozenset({expect(params, EncryptDeterministicParams).key})

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from masking.strategies._udf import siv_encrypt_column

        p = expect(params, EncryptDeterministicParams)
        key = require_secret(ctx, p.key)
        return siv_encrypt_column(
            column.cast("string"), siv_key(key.secret), ctx.column.encode(), _siv_head(key)
        )


# ---------------------------------------------------------------------------------------------
# FF3-1

#: Named alphabets for `fpe`; any other string of 2-256 distinct characters is used as given.
ALPHABETS = {
    "digits": string.digits,
    "alphanumeric": string.digits + string.ascii_lowercase + string.ascii_uppercase,
}
#: The FF3-1 tweak (56 bits, hex) used when the policy sets none.
DEFAULT_TWEAK = "00" * 7


def fpe_key(secret: bytes) -> bytes:
    """The AES key for FF3-1: a 16/24/32-byte secret as is, other lengths via HKDF (32 bytes)."""
    if len(secret) in (16, 24, 32):
        return secret
    return _hkdf(secret, 32, _FPE_INFO)


def _resolve_alphabet(alphabet: str) -> str:
    return ALPHABETS.get(alphabet, alphabet)


class FpeParams(Params):
    """`key`, `alphabet` ('digits', 'alphanumeric' or the characters), optional hex `tweak`."""

    key: KeyRef
    alphabet: str = "digits"
    tweak: str | None = Field(None, pattern=r"^[0-9a-fA-F]{14}$")

    @field_validator("alphabet")
    @classmethod
    def _alphabet(cls, value: str) -> str:
        chars = _resolve_alphabet(value)
        if not 2 <= len(chars) <= 256:
            raise ValueError("a custom alphabet needs 2 to 256 characters")
        if len(set(chars)) != len(chars):
            raise ValueError("alphabet characters must be distinct")
        return value

    @property
    def characters(self) -> str:
        """The alphabet's characters in radix order."""
        return _resolve_alphabet(self.alphabet)


def fpe_min_length(alphabet: str) -> int:
    """Fewest alphabet characters FF3-1 encrypts (radix**n >= 1,000,000); shorter values -> null."""
    return math.ceil(math.log(1_000_000) / math.log(len(_resolve_alphabet(alphabet))))


def _fpe_cipher(key: bytes, alphabet: str) -> Any:
    from ff3 import FF3Cipher

    return FF3Cipher.withCustomAlphabet(key.hex(), DEFAULT_TWEAK, alphabet)


def _chunk_tweak(tweak: bytes, index: int) -> str:
    """The tweak of chunk `index`: the last 32 bits XORed with the index (chunk 0 unchanged)."""
    tail = int.from_bytes(tweak[3:], "big") ^ index
    return (tweak[:3] + tail.to_bytes(4, "big")).hex()


def fpe_transform(
    cipher: Any, value: str, alphabet: str, tweak: bytes, decrypt: bool
) -> str | None:
    """FF3-1 over the alphabet characters of `value`; other characters stay in place.

    None when fewer than the cipher's minimum length of alphabet characters are present.
    Runs longer than the cipher's maximum are split into near-equal chunks, chunk i using the
    tweak with i XORed into its last 32 bits.
    """
    members = set(alphabet)
    positions = [i for i, char in enumerate(value) if char in members]
    n = len(positions)
    if n < cipher.minLen:
        return None
    text = "".join(value[i] for i in positions)
    chunks = math.ceil(n / cipher.maxLen)
    size, extra = divmod(n, chunks)
    pieces: list[str] = []
    start = 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        piece_tweak = _chunk_tweak(tweak, index)
        piece = text[start:end]
        if decrypt:
            pieces.append(cipher.decrypt_with_tweak(piece, piece_tweak))
        else:
            pieces.append(cipher.encrypt_with_tweak(piece, piece_tweak))
        start = end
    out = list(value)
    for i, char in zip(positions, "".join(pieces), strict=True):
        out[i] = char
    return "".join(out)


def _fpe_args(key: KeyMaterial, alphabet: str, tweak: str | None) -> tuple[Any, str, bytes]:
    params = FpeParams(key="unused", alphabet=alphabet, tweak=tweak)
    chars = params.characters
    return _fpe_cipher(fpe_key(key.secret), chars), chars, bytes.fromhex(tweak or DEFAULT_TWEAK)


def fpe_encrypt(
    value: str, key: KeyMaterial, *, alphabet: str = "digits", tweak: str | None = None
) -> str | None:
    """What the `fpe` strategy writes for `value` (None when it has too few alphabet chars)."""
    cipher, chars, tweak_bytes = _fpe_args(key, alphabet, tweak)
    return fpe_transform(cipher, value, chars, tweak_bytes, decrypt=False)


def fpe_decrypt(
    value: str, key: KeyMaterial, *, alphabet: str = "digits", tweak: str | None = None
) -> str:
    """The plaintext of an `fpe` value; same key, alphabet and tweak as the policy used."""
    cipher, chars, tweak_bytes = _fpe_args(key, alphabet, tweak)
    plain = fpe_transform(cipher, value, chars, tweak_bytes, decrypt=True)
    if plain is None:
        raise MaskingError(
            f"value has fewer than {cipher.minLen} alphabet characters: not an fpe output"
        )
    return plain


class FpeStrategy(Strategy):
    """FF3-1 format-preserving encryption: same length, alphabet chars stay in the alphabet.

    Characters outside the alphabet (dashes, spaces) keep their place. Values with fewer
    alphabet characters than FF3-1's minimum (6 digits, 4 alphanumerics) become null.
    """

    name = "fpe"
    Params = FpeParams
    accepts = frozenset({DataType.STRING})
    description = "Reversible FF3-1 format-preserving encryption; keeps length and alphabet."
    uses_python_udf = True

    def key_references(self, params: AnyParams) -> frozenset[str]:
        return frozenset({expect(params, FpeParams).key})

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from masking.strategies._udf import fpe_encrypt_column

        p = expect(params, FpeParams)
        key = require_secret(ctx, p.key)
        tweak = bytes.fromhex(p.tweak or DEFAULT_TWEAK)
        return fpe_encrypt_column(column, fpe_key(key.secret), p.characters, tweak)
