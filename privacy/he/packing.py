"""Column packing: many rows of one column per ciphertext, in row order.

Row r of a column lives in ciphertext r // chunk_slots at slot r % chunk_slots (`ChunkIndex`).
Every ciphertext is padded with zeros to the full slot count (TenSEAL would otherwise
replicate a short vector across the unused slots, which would corrupt slot-wise sums).

Nulls: the caller passes a validity mask (or NaN marks a missing float). Missing values are
encrypted as 0, so they drop out of sums by themselves; the validity mask stays in plaintext
next to the ciphertexts (`EncryptedColumn.valid`), and counts, means and min_rows use
`selection & valid`. Weighted operations fold the same 0/1 mask into their plaintext weights.
Whether a value is missing is therefore not protected; only the values are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from privacy.he.errors import FingerprintMismatch, HeLimitExceeded, HeRangeError
from privacy.he.params import HeParams, Scheme

if TYPE_CHECKING:
    from privacy.he.keys import PublicContext, SecretContext

__all__ = [
    "ChunkIndex",
    "EncryptedColumn",
    "Estimate",
    "encrypt_column",
    "enforce_limit",
    "estimate",
    "pack_column",
    "unpack_column",
]


@dataclass(frozen=True)
class ChunkIndex:
    """Row position (and, optionally, entity key) to (chunk, slot)."""

    rows: int
    chunk_slots: int
    entities: tuple[str, ...] | None = None
    _positions: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rows < 0 or self.chunk_slots < 1:
            raise ValueError("rows must be >= 0 and chunk_slots >= 1")
        positions: dict[str, int] = {}
        if self.entities is not None:
            if len(self.entities) != self.rows:
                raise ValueError("entities must name every row, in row order")
            positions = {entity: row for row, entity in enumerate(self.entities)}
            if len(positions) != self.rows:
                raise ValueError("entity keys must be unique")
        object.__setattr__(self, "_positions", positions)

    @property
    def chunks(self) -> int:
        return -(-self.rows // self.chunk_slots)

    def locate(self, row: int) -> tuple[int, int]:
        """(chunk, slot) of a row position."""
        if not 0 <= row < self.rows:
            raise IndexError(f"row {row} is outside 0..{self.rows - 1}")
        return divmod(row, self.chunk_slots)

    def row_of(self, entity: str) -> int:
        """Row position of an entity key (KeyError when unknown)."""
        if self.entities is None:
            raise KeyError("this index has no entity keys")
        return self._positions[entity]

    def rows_of(self, entities: Sequence[str]) -> list[int]:
        return [self.row_of(entity) for entity in entities]

    def locate_entity(self, entity: str) -> tuple[int, int]:
        return self.locate(self.row_of(entity))

    def rows_in(self, chunk: int) -> range:
        """Row positions held by `chunk`."""
        start = chunk * self.chunk_slots
        return range(start, min(start + self.chunk_slots, self.rows))


@dataclass(frozen=True, eq=False)
class EncryptedColumn:
    """One packed column: ciphertexts, their index, and the plaintext validity mask.

    `magnitude_bits` (max |value| < 2**magnitude_bits) lets the gateway refuse weighted
    operations whose results would overflow the scheme instead of returning garbage; it
    discloses the order of magnitude of the column's largest value.
    """

    name: str
    scheme: Scheme
    fingerprint: str
    index: ChunkIndex
    chunks: tuple[bytes, ...] = field(repr=False)
    valid: npt.NDArray[np.bool_] = field(repr=False)
    magnitude_bits: int
    squares: tuple[bytes, ...] | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return self.index.rows

    @property
    def valid_rows(self) -> int:
        return int(np.count_nonzero(self.valid))

    @property
    def nbytes(self) -> int:
        """Ciphertext bytes held (squares included)."""
        return sum(map(len, self.chunks)) + sum(map(len, self.squares or ()))


def _clean(
    values: npt.ArrayLike, valid: npt.ArrayLike | None, scheme: Scheme
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError("a column is a 1-D array")
    if array.dtype.kind not in "biuf":
        raise HeRangeError("a column must be numeric")
    mask = np.ones(array.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if mask.shape != array.shape:
        raise ValueError("the validity mask must have one entry per row")
    if array.dtype.kind == "f":
        mask = mask & ~np.isnan(array)
        if not np.all(np.isfinite(array[mask])):
            raise HeRangeError("a column may not hold infinite values")
    if scheme == "bfv":
        if array.dtype.kind == "f":
            kept = array[mask]
            if np.any(kept != np.round(kept)) or np.any(np.abs(kept) >= 2.0**62):
                raise HeRangeError("BFV encrypts integers only (|value| < 2**62)")
        clean = np.where(mask, array, 0).astype(np.int64)
    else:
        clean = np.where(mask, array, 0).astype(np.float64)
    return clean, mask


def _magnitude_bits(clean: npt.NDArray[Any]) -> int:
    if clean.size == 0:
        return 0
    top = float(np.max(np.abs(clean)))
    return 0 if top == 0 else math.frexp(top)[1]


def _check_range(clean: npt.NDArray[Any], valid_rows: int, public: PublicContext) -> None:
    """Every subset sum of the column must stay exact (BFV) or within capacity (CKKS)."""
    if clean.size == 0:
        return
    top = (
        int(np.max(np.abs(clean))) if public.info.scheme == "bfv" else float(np.max(np.abs(clean)))
    )
    bound = max(valid_rows, 1) * top
    if public.info.scheme == "bfv":
        if bound >= public.info.plain_modulus // 2:
            raise HeRangeError(
                "rows x max |value| reaches the BFV plaintext modulus / 2 "
                f"(~2**{public.info.plain_modulus.bit_length() - 1}); sums would wrap"
            )
    elif bound >= 2.0**public.info.capacity_bits:
        raise HeRangeError(
            f"rows x max |value| reaches the CKKS capacity 2**{public.info.capacity_bits}; "
            "use a larger first coefficient prime or a smaller scale"
        )


def _encrypt(clean: npt.NDArray[Any], public: PublicContext, chunk_slots: int) -> list[bytes]:
    import tenseal as ts

    slots = public.info.slots
    ctx = public.context
    make = ts.bfv_vector if public.info.scheme == "bfv" else ts.ckks_vector
    buffer = np.zeros(slots, dtype=clean.dtype)
    out: list[bytes] = []
    for start in range(0, clean.size, chunk_slots):
        part = clean[start : start + chunk_slots]
        buffer[: part.size] = part
        buffer[part.size :] = 0
        out.append(make(ctx, buffer.tolist()).serialize())
    return out


def _chunk_slots(public: PublicContext, chunk_slots: int | None) -> int:
    slots = public.info.slots
    chosen = slots if chunk_slots is None else chunk_slots
    if not 1 <= chosen <= slots:
        raise ValueError(f"chunk_slots must be 1..{slots} for this context")
    return chosen


def pack_column(
    values: npt.ArrayLike,
    public_ctx: PublicContext,
    chunk_slots: int | None = None,
    *,
    valid: npt.ArrayLike | None = None,
) -> list[bytes]:
    """Serialized ciphertexts of one column, `chunk_slots` rows each (default: all slots).

    Missing values (valid False, or NaN) are encrypted as 0. Pair the result with
    `ChunkIndex(rows=len(values), chunk_slots=...)`; `encrypt_column` does both.
    """
    clean, mask = _clean(values, valid, public_ctx.info.scheme)
    _check_range(clean, int(np.count_nonzero(mask)), public_ctx)
    return _encrypt(clean, public_ctx, _chunk_slots(public_ctx, chunk_slots))


def encrypt_column(
    name: str,
    values: npt.ArrayLike,
    public_ctx: PublicContext,
    *,
    valid: npt.ArrayLike | None = None,
    squares: bool = False,
    chunk_slots: int | None = None,
    entities: Sequence[str] | None = None,
    max_bytes: int | None = None,
) -> EncryptedColumn:
    """Pack a column (and, with `squares`, its squares for `variance`) under `public_ctx`.

    Variance needs sum(x^2). Rather than squaring ciphertexts (a ciphertext x ciphertext
    product, which needs relinearisation keys in the gateway and a second level), the packer
    encrypts x^2 as a second packed column here, at ingest, where the values are plaintext.
    `max_bytes` checks the estimate before anything is encrypted (HeLimitExceeded).
    """
    info = public_ctx.info
    slots = _chunk_slots(public_ctx, chunk_slots)
    clean, mask = _clean(values, valid, info.scheme)
    valid_rows = int(np.count_nonzero(mask))
    if max_bytes is not None:
        enforce_limit(
            _estimate(
                clean.size,
                2 if squares else 1,
                info.scheme,
                info.poly_modulus_degree,
                info.coeff_mod_bit_sizes,
                info.scale_bits or 0,
                slots,
            ),
            max_bytes,
        )
    _check_range(clean, valid_rows, public_ctx)
    magnitude = _magnitude_bits(clean)
    squared: tuple[bytes, ...] | None = None
    if squares:
        if info.scheme == "bfv" and 2 * magnitude > 62:
            raise HeRangeError("squares of this column do not fit in 64-bit integers")
        square_values = clean * clean
        _check_range(square_values, valid_rows, public_ctx)
        squared = tuple(_encrypt(square_values, public_ctx, slots))
    frozen_mask = mask.copy()
    frozen_mask.setflags(write=False)
    return EncryptedColumn(
        name=name,
        scheme=info.scheme,
        fingerprint=public_ctx.fingerprint,
        index=ChunkIndex(
            rows=clean.size,
            chunk_slots=slots,
            entities=None if entities is None else tuple(entities),
        ),
        chunks=tuple(_encrypt(clean, public_ctx, slots)),
        valid=frozen_mask,
        magnitude_bits=magnitude,
        squares=squared,
    )


def unpack_column(
    chunks: Sequence[bytes], secret_ctx: SecretContext, index: ChunkIndex
) -> npt.NDArray[Any]:
    """Key holder only: the plaintext column back, in row order (missing values read 0)."""
    import tenseal as ts

    load = ts.bfv_vector_from if secret_ctx.info.scheme == "bfv" else ts.ckks_vector_from
    if len(chunks) != index.chunks:
        raise ValueError("the index and the ciphertexts disagree on the number of chunks")
    parts = []
    for number, blob in enumerate(chunks):
        values = load(secret_ctx.context, blob).decrypt()
        parts.append(np.asarray(values[: len(index.rows_in(number))]))
    dtype = np.int64 if secret_ctx.info.scheme == "bfv" else np.float64
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


@dataclass(frozen=True)
class Estimate:
    """Ciphertexts and bytes a packing would produce, known before encrypting."""

    ciphertexts: int
    bytes: int
    bytes_per_ciphertext: int
    values: int

    @property
    def bytes_per_value(self) -> float:
        return self.bytes / self.values if self.values else 0.0


@cache
def _ciphertext_bytes(
    scheme: Scheme, degree: int, coeff_mod_bit_sizes: tuple[int, ...], scale_bits: int
) -> int:
    """Measured size of one serialized fresh ciphertext (+0.5%), once per parameter set."""
    import tenseal as ts

    sizes = list(coeff_mod_bit_sizes)
    rng = np.random.default_rng(0)
    if scheme == "bfv":
        from privacy.he.keys import _bfv_plain_modulus

        params = HeParams(
            scheme="bfv",
            poly_modulus_degree=degree,
            coeff_mod_bit_sizes=coeff_mod_bit_sizes,
        )
        ctx = ts.context(ts.SCHEME_TYPE.BFV, degree, _bfv_plain_modulus(params), sizes)
        blobs = [
            ts.bfv_vector(ctx, rng.integers(0, 1000, degree // 2).tolist()).serialize()
            for _ in range(3)
        ]
    else:
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, degree, coeff_mod_bit_sizes=sizes)
        ctx.global_scale = 2.0**scale_bits
        blobs = [
            ts.ckks_vector(ctx, rng.uniform(0, 1, degree // 2).tolist()).serialize()
            for _ in range(3)
        ]
    return math.ceil(max(map(len, blobs)) * 1.005)


def _estimate(
    rows: int,
    columns: int,
    scheme: Scheme,
    degree: int,
    coeff_mod_bit_sizes: tuple[int, ...],
    scale_bits: int,
    chunk_slots: int,
) -> Estimate:
    if rows < 0 or columns < 0:
        raise ValueError("rows and columns must be >= 0")
    per = _ciphertext_bytes(scheme, degree, tuple(coeff_mod_bit_sizes), scale_bits)
    count = columns * -(-rows // chunk_slots)
    return Estimate(
        ciphertexts=count, bytes=count * per, bytes_per_ciphertext=per, values=rows * columns
    )


def estimate(
    rows: int, columns: int, params: HeParams, *, chunk_slots: int | None = None
) -> Estimate:
    """Ciphertexts and bytes for `columns` packed columns of `rows` rows (count a column
    packed with squares twice). The ciphertext size is measured once per parameter set."""
    slots = params.slots if chunk_slots is None else chunk_slots
    if not 1 <= slots <= params.slots:
        raise ValueError(f"chunk_slots must be 1..{params.slots}")
    return _estimate(
        rows,
        columns,
        params.scheme,
        params.poly_modulus_degree,
        params.coeff_mod_bit_sizes,
        params.global_scale_bits,
        slots,
    )


def enforce_limit(estimate: Estimate, max_bytes: int) -> Estimate:
    """`estimate` unchanged, or HeLimitExceeded when its bytes exceed `max_bytes`."""
    if estimate.bytes > max_bytes:
        raise HeLimitExceeded(
            f"packing would produce {estimate.ciphertexts} ciphertexts of about "
            f"{estimate.bytes:,} bytes, above the limit of {max_bytes:,} bytes",
            estimated_bytes=estimate.bytes,
            limit=max_bytes,
        )
    return estimate


def require_same_context(columns: Sequence[EncryptedColumn], fingerprint: str) -> None:
    """FingerprintMismatch unless every column was packed under the context `fingerprint`."""
    for column in columns:
        if column.fingerprint != fingerprint:
            raise FingerprintMismatch(
                f"column {column.name!r} was encrypted under another key pair"
            )
