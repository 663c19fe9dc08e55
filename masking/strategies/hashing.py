"""Keyed one-way strategies: `hash` (salted, per column) and `tokenize` (HMAC, joinable).

Both hash the canonical text of a value: ``CAST(value AS STRING)`` encoded as UTF-8. For
non-string columns that is Spark's own rendering (``true``, ``42``, ``1.0E308``,
``2024-01-31``, ``2024-01-31 12:00:00`` in the session time zone, UTC in the gateway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, StrictBool

from masking.base import MaskContext, Params, Strategy
from masking.base import Params as AnyParams
from masking.strategies._common import (
    KeyRef,
    canonical_bytes,
    expect,
    hmac_sha256_hex,
    key_tag,
    require_secret,
)
from masking.types import DataType

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "HashParams",
    "HashStrategy",
    "TokenizeParams",
    "TokenizeStrategy",
    "hash_prefix",
    "token_head",
]

_ALL_TYPES = frozenset(DataType)


class HashParams(Params):
    """`salt`: the name of a secret mixed into every hash."""

    salt: KeyRef


def hash_prefix(salt: bytes, column: str) -> bytes:
    """The bytes hashed before the value: ``salt || 0x00 || column (UTF-8) || 0x00``."""
    return salt + b"\x00" + column.encode("utf-8") + b"\x00"


class HashStrategy(Strategy):
    """SHA-256 hex of salt, column name and value: stable per column, not joinable across them."""

    name = "hash"
    Params = HashParams
    accepts = _ALL_TYPES
    description = "Salted SHA-256 (hex) bound to the column name; not joinable across columns."

    def output_type(self, data_type: DataType, params: AnyParams) -> DataType:
        return DataType.STRING

    def key_references(self, params: AnyParams) -> frozenset[str]:
        return frozenset({expect(params, HashParams).salt})

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, HashParams)
        salt = require_secret(ctx, p.salt).secret
        prefix = ctx.secret_literal(hash_prefix(salt, ctx.column))
        return F.sha2(F.concat(prefix, canonical_bytes(column)), 256)


class TokenizeParams(Params):
    """`key` (secret name), `prefix`, `length` (hex chars kept, 16-64), `key_tag` on/off."""

    key: KeyRef
    prefix: str = Field("tok_", max_length=32, pattern=r"^[A-Za-z0-9_.:-]*$")
    length: int = Field(32, strict=True, ge=16, le=64)
    key_tag: StrictBool = True


def token_head(params: TokenizeParams, key_id: str) -> str:
    """The fixed text before the digest: ``prefix`` then ``<key tag>_`` when tagging is on."""
    return params.prefix + (key_tag(key_id) + "_" if params.key_tag else "")


class TokenizeStrategy(Strategy):
    """``tok_<key tag>_<HMAC-SHA256 hex>``: deterministic per key, joinable across datasets.

    The key tag (8 hex of SHA-256 of the key id) tells which key version made a token, so
    keys can rotate; the digest is ``hmac.new(secret, value_utf8, sha256).hexdigest()[:length]``.
    """

    name = "tokenize"
    Params = TokenizeParams
    accepts = _ALL_TYPES
    description = "Keyed HMAC-SHA256 token, joinable across datasets that share the key."

    def output_type(self, data_type: DataType, params: AnyParams) -> DataType:
        return DataType.STRING

    def key_references(self, params: AnyParams) -> frozenset[str]:
        return frozenset({expect(params, TokenizeParams).key})

    def expression(self, column: Column, params: AnyParams, ctx: MaskContext) -> Column:
        from pyspark.sql import functions as F

        p = expect(params, TokenizeParams)
        key = require_secret(ctx, p.key)
        digest = hmac_sha256_hex(canonical_bytes(column), key.secret, ctx)
        return F.concat(F.lit(token_head(p, key.key_id)), F.substring(digest, 1, p.length))
