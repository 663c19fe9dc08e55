"""Helpers shared by the strategies: typed parameters, key checks, HMAC built from Spark's sha2.

Nothing here imports Spark at module level; the Spark helpers import it when called.
"""

from __future__ import annotations

import hashlib
import math
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, TypeVar

from pydantic import AfterValidator, Field

from masking.base import KeyMaterial, MaskContext, MaskingError, Params

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "MIN_SECRET_BYTES",
    "FiniteFloat",
    "KeyRef",
    "MaskChar",
    "PositiveFloat",
    "StrictCount",
    "canonical_bytes",
    "decimals_of",
    "derived_seed",
    "expect",
    "format_edge",
    "hmac_sha256_hex",
    "java_replacement_literal",
    "key_tag",
    "quoted",
    "require_secret",
    "spark_number_text",
]

P = TypeVar("P", bound=Params)

#: Keyed strategies refuse secrets shorter than this (bytes).
MIN_SECRET_BYTES = 16

_HEX_KEY = re.compile(r"[0-9a-fA-F]{32,}")
_BASE64_KEY = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")


def _looks_like_key(value: str) -> bool:
    """Hex of 16+ bytes, or base64 of 24+ bytes mixing digits and both letter cases."""
    if _HEX_KEY.fullmatch(value):
        return True
    return bool(
        _BASE64_KEY.fullmatch(value)
        and re.search("[0-9]", value)
        and re.search("[a-z]", value)
        and re.search("[A-Z]", value)
    )


def _reference(value: str) -> str:
    if _looks_like_key(value):
        raise ValueError(
            "this looks like key material: give the name of a secret (e.g. 'customer-key'), "
            "never the key itself"
        )
    return value


def _one_char(value: str) -> str:
    if len(value) != 1:
        raise ValueError(f"must be exactly one character, got {value!r}")
    return value


#: A secret reference: the *name* of a key the ingest job resolves, never key bytes.
KeyRef = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$"),
    AfterValidator(_reference),
]
#: One character used to overwrite masked characters.
MaskChar = Annotated[str, Field(strict=True), AfterValidator(_one_char)]
#: A non-negative int; bools and numeric strings are refused.
StrictCount = Annotated[int, Field(strict=True, ge=0)]
#: A float that is neither NaN nor infinite (ints are accepted).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: A finite float > 0.
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def expect(params: Params, cls: type[P]) -> P:
    """`params` as the strategy's own Params class, or MaskingError (it came from elsewhere)."""
    if not isinstance(params, cls):
        raise MaskingError(f"expected {cls.__name__} parameters, got {type(params).__name__}")
    return params


def require_secret(ctx: MaskContext, reference: str) -> KeyMaterial:
    """The key behind `reference`, refusing secrets too short to be keys."""
    key = ctx.key(reference)
    if len(key.secret) < MIN_SECRET_BYTES:
        raise MaskingError(
            f"column {ctx.column!r}: secret {reference!r} has {len(key.secret)} bytes; "
            f"at least {MIN_SECRET_BYTES} are required"
        )
    return key


def key_tag(key_id: str) -> str:
    """A short, stable tag naming a key version in tokens: 8 hex chars of SHA-256(key_id)."""
    return hashlib.sha256(key_id.encode("utf-8")).hexdigest()[:8]


def derived_seed(ctx: MaskContext, purpose: str) -> int:
    """A 63-bit seed for `rand()` mixing the job seed, the column name and a purpose label."""
    material = f"{ctx.seed}\x00{ctx.column}\x00{purpose}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") & (2**63 - 1)


def quoted(name: str) -> Column:
    """`F.col` for a column name taken literally (dots and backticks are not syntax)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def canonical_bytes(column: Column) -> Column:
    """The UTF-8 bytes of ``CAST(column AS STRING)``: the canonical form keyed strategies hash."""
    return column.cast("string").cast("binary")


def hmac_sha256_hex(message: Column, key: bytes, ctx: MaskContext | None = None) -> Column:
    """HMAC-SHA256 of a binary column as lower-case hex, built from Spark's `sha2` and `unhex`.

    Byte-identical to ``hmac.new(key, message, hashlib.sha256).hexdigest()``. With a `ctx`
    whose job collects secret columns, the key pads are referenced by name, not as literals.
    """
    from pyspark.sql import functions as F

    if len(key) > 64:  # RFC 2104: keys longer than the block are hashed first
        key = hashlib.sha256(key).digest()
    padded = key.ljust(64, b"\x00")
    inner_key = bytes(b ^ 0x36 for b in padded)
    outer_key = bytes(b ^ 0x5C for b in padded)
    def literal(value: bytes) -> Column:
        return ctx.secret_literal(value) if ctx is not None else F.lit(value)

    inner = F.unhex(F.sha2(F.concat(literal(inner_key), message), 256))
    return F.sha2(F.concat(literal(outer_key), inner), 256)


def java_replacement_literal(text: str) -> str:
    """`text` escaped for a Java regex replacement string (no group references)."""
    return re.sub(r"([\\$])", r"\\\1", text)


def decimals_of(value: float) -> int:
    """Digits after the decimal point in the shortest repr of `value` (capped at 15)."""
    exponent = Decimal(repr(float(value))).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return min(max(-exponent, 0), 15)


def format_edge(value: float) -> str:
    """A bucket edge for a label: integral values without '.0', infinities as 'inf'/'-inf'."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def spark_number_text(column: Column) -> Column:
    """A double column as label text: integral values below 1e15 without '.0'."""
    from pyspark.sql import functions as F

    integral = (F.abs(column) < F.lit(1e15)) & (column == F.floor(column).cast("double"))
    return (
        F.when(integral, column.cast("long").cast("string"))
        .when(column == F.lit(math.inf), F.lit("inf"))
        .when(column == F.lit(-math.inf), F.lit("-inf"))
        .otherwise(column.cast("string"))
    )
