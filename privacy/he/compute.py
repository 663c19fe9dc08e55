"""The gateway side: aggregates and linear scores over packed ciphertexts, public context only.

Row filters on plaintext columns arrive as a 0/1 mask. A masked or weighted aggregate
multiplies each chunk by a plaintext vector (mask x weights), adds the chunks slot-wise, and
rotates-and-sums the last ciphertext once, so every slot of the result holds the total and
nothing finer. Chunks whose mask is all zero are skipped; all-one chunks are not multiplied.

CKKS scale: TenSEAL rescales after a plaintext multiplication and then labels the result with
the initial scale Δ, although the true scale is Δ²/q (q: the dropped prime); decrypted values
would carry a bias of Δ/q - 1 (1.34e-7 at the defaults). Every plaintext multiplier is
therefore multiplied by q/Δ, which cancels the bias exactly.

CKKS masks are approximate: a masked-out slot holds x·e with |e| ≈ 1e-10 (the encoding
error of the 0 in the mask), not 0, and a key holder with raw SEAL access could read it.
Aggregates do not expose this (the rotations mix every slot into the one total); linear
scores do, so unrequested slots of a score ciphertext are flooded with uniform noise of
±2**flood_bits (default 2**20), drawn from os.urandom. BFV masks are exact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.he.envelope import Envelope, sign_envelope
from privacy.he.errors import HeKeyError, HeRangeError, HeUnsupported, TooFewRows
from privacy.he.keys import PublicContext
from privacy.he.packing import ChunkIndex, EncryptedColumn, require_same_context
from privacy.he.params import Operation

__all__ = ["HeEvaluator"]


def _uniform_noise(count: int, bits: int) -> npt.NDArray[np.float64]:
    """Uniform values in (-2**bits, 2**bits) from the OS CSPRNG."""
    raw = np.frombuffer(os.urandom(8 * count), dtype=np.uint64)
    unit = (raw >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return (unit * 2.0 - 1.0) * 2.0**bits


class HeEvaluator:
    """Encrypted aggregates for the serving process.

    Holds the public context and the gateway's Ed25519 signing key; every method returns a
    signed `Envelope`. With `min_rows`, aggregates over fewer selected rows are refused here
    already (the key holder refuses them again at decryption).
    """

    def __init__(
        self,
        public_ctx: PublicContext,
        signing_key: Ed25519PrivateKey,
        *,
        min_rows: int | None = None,
        flood_bits: int = 20,
    ) -> None:
        if not isinstance(public_ctx, PublicContext):
            raise TypeError("HeEvaluator needs a PublicContext (see load_public_context)")
        if public_ctx.context.is_private():
            raise HeKeyError("the serving path may not hold a secret key")
        if not 0 <= flood_bits <= 40:
            raise ValueError("flood_bits must be 0..40")
        self.public = public_ctx
        self._key = signing_key
        self.min_rows = min_rows
        self.flood_bits = flood_bits

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _ckks(self) -> bool:
        return self.public.info.scheme == "ckks"

    def _load(self, blob: bytes) -> Any:
        import tenseal as ts

        if self._ckks:
            return ts.ckks_vector_from(self.public.context, blob)
        return ts.bfv_vector_from(self.public.context, blob)

    def _check(self, column: EncryptedColumn) -> None:
        require_same_context([column], self.public.fingerprint)

    def _selection(
        self, column: EncryptedColumn, mask: npt.ArrayLike | None
    ) -> npt.NDArray[np.bool_]:
        if mask is None:
            return np.ones(column.rows, dtype=bool)
        selected = np.asarray(mask)
        if selected.shape != (column.rows,):
            raise ValueError("the mask must have one entry per row")
        if selected.dtype != bool:
            if not np.isin(selected, (0, 1)).all():
                raise ValueError("the mask must be 0/1")
            selected = selected.astype(bool)
        return selected

    def _require_rows(self, rows: int) -> None:
        if rows == 0:
            raise TooFewRows("no rows are selected", rows=0, min_rows=max(self.min_rows or 1, 1))
        if self.min_rows is not None and rows < self.min_rows:
            raise TooFewRows(
                f"the aggregate covers {rows} rows, fewer than the minimum of {self.min_rows}",
                rows=rows,
                min_rows=self.min_rows,
            )

    def _require_rotations(self) -> None:
        if not self.public.rotations:
            raise HeUnsupported(
                "the public context has no rotation keys; generate the key pair with an "
                "aggregate operation (sum, mean, variance, weighted_sum) enabled"
            )

    def _plain(self, values: npt.NDArray[np.float64], compensate: bool) -> list[Any]:
        """A full-slot plaintext vector: compensated floats (CKKS) or integers (BFV)."""
        slots = self.public.info.slots
        padded = np.zeros(slots, dtype=np.float64)
        padded[: values.size] = values
        if not self._ckks:
            return list(padded.astype(np.int64).tolist())
        if compensate:
            padded *= self.public.info.rescale_compensation
        return list(padded.tolist())

    def _total(
        self,
        chunks: Sequence[bytes],
        index: ChunkIndex,
        multiplier: npt.NDArray[np.float64] | None,
    ) -> bytes:
        """Σ multiplier·x over every row, as one ciphertext whose every slot is the total."""
        self._require_rotations()
        total: Any = None
        for number in range(index.chunks):
            rows = index.rows_in(number)
            part = None if multiplier is None else multiplier[rows.start : rows.stop]
            if part is not None and not part.any():
                continue
            vector = self._load(chunks[number])
            if part is not None and not (part == 1).all():
                vector.mul_(self._plain(part, compensate=True))
            total = vector if total is None else total.add_(vector)
        if total is None:  # pragma: no cover - callers refuse empty selections first
            raise TooFewRows("no rows are selected", rows=0, min_rows=1)
        return total.sum().serialize()  # type: ignore[no-any-return]

    def _envelope(
        self,
        operation: Operation,
        rows: int,
        columns: Sequence[str],
        ciphertexts: Sequence[bytes],
        **extra: Any,
    ) -> Envelope:
        return sign_envelope(
            operation=operation,
            scheme=self.public.info.scheme,
            fingerprint=self.public.fingerprint,
            rows=rows,
            columns=columns,
            ciphertexts=ciphertexts,
            signing_key=self._key,
            **extra,
        )

    # -- aggregates ------------------------------------------------------------------------

    def count(self, column: EncryptedColumn, mask: npt.ArrayLike | None = None) -> Envelope:
        """Selected valid rows: plaintext (the gateway knows the mask and the nulls)."""
        self._check(column)
        rows = int(np.count_nonzero(self._selection(column, mask) & column.valid))
        self._require_rows(rows)
        return self._envelope("count", rows, [column.name], [])

    def _sum_parts(self, column: EncryptedColumn, mask: npt.ArrayLike | None) -> tuple[int, bytes]:
        self._check(column)
        selected = self._selection(column, mask)
        rows = int(np.count_nonzero(selected & column.valid))
        self._require_rows(rows)
        multiplier = None if mask is None else selected.astype(np.float64)
        return rows, self._total(column.chunks, column.index, multiplier)

    def sum(self, column: EncryptedColumn, mask: npt.ArrayLike | None = None) -> Envelope:
        """Encrypted Σx over the selected rows (missing values are 0)."""
        rows, blob = self._sum_parts(column, mask)
        return self._envelope("sum", rows, [column.name], [blob])

    def mean(self, column: EncryptedColumn, mask: npt.ArrayLike | None = None) -> Envelope:
        """Encrypted Σx plus the plaintext count in `rows`; the key holder divides."""
        rows, blob = self._sum_parts(column, mask)
        return self._envelope("mean", rows, [column.name], [blob])

    def variance(
        self, column: EncryptedColumn, mask: npt.ArrayLike | None = None, *, ddof: int = 0
    ) -> Envelope:
        """Encrypted Σx and Σx² (from the squares packed at ingest) plus the count."""
        self._check(column)
        if column.squares is None:
            raise HeUnsupported(
                f"column {column.name!r} was packed without squares "
                "(encrypt_column(..., squares=True))"
            )
        selected = self._selection(column, mask)
        rows = int(np.count_nonzero(selected & column.valid))
        self._require_rows(rows)
        if rows - ddof <= 0:
            raise TooFewRows(
                f"variance with ddof={ddof} needs more than {ddof} rows",
                rows=rows,
                min_rows=ddof + 1,
            )
        multiplier = None if mask is None else selected.astype(np.float64)
        first = self._total(column.chunks, column.index, multiplier)
        second = self._total(column.squares, column.index, multiplier)
        return self._envelope("variance", rows, [column.name], [first, second], ddof=ddof)

    def weighted_sum(
        self,
        column: EncryptedColumn,
        weights: npt.ArrayLike,
        mask: npt.ArrayLike | None = None,
    ) -> Envelope:
        """Encrypted Σ w·x over the selected rows, with plaintext per-row weights.

        `rows` counts selected valid rows with a non-zero weight. Weights decide what the
        result reveals (w = [1, 0, 0, ...] isolates one row, and so does [1, 1e-9, ...]);
        min_rows cannot prevent that, so who may supply weights is a policy decision.
        """
        self._check(column)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (column.rows,):
            raise ValueError("weights must have one entry per row")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite")
        if not self._ckks and np.any(w != np.round(w)):
            raise HeUnsupported("BFV weights must be integers")
        multiplier = np.where(self._selection(column, mask), w, 0.0)
        rows = int(np.count_nonzero((multiplier != 0) & column.valid))
        self._require_rows(rows)
        self._require_fits(float(np.abs(multiplier).sum()) * 2.0**column.magnitude_bits)
        blob = self._total(column.chunks, column.index, multiplier)
        return self._envelope("weighted_sum", rows, [column.name], [blob])

    def _require_fits(self, bound: float) -> None:
        info = self.public.info
        limit = info.plain_modulus / 2 if not self._ckks else 2.0**info.capacity_bits
        if bound >= limit:
            raise HeRangeError(
                "the result could exceed what the scheme carries "
                f"(bound ~2**{int(np.log2(max(bound, 1)))}, limit ~2**{int(np.log2(limit))})"
            )

    # -- scores ----------------------------------------------------------------------------

    def linear_scores(
        self,
        columns: Sequence[EncryptedColumn],
        weights: Sequence[float],
        bias: float,
        rows: Sequence[int],
    ) -> Envelope:
        """Encrypted w·x + b for the requested row positions (entities).

        Slot-wise over the column ciphertexts: score = Σ_j (w_j·mask)·ct_j + b·mask (+ noise
        in unrequested slots, CKKS), one ciphertext per chunk that holds a requested row; no
        rotation keys are needed. The envelope carries the requested rows and the chunk size,
        so `envelope.positions` gives each requested row's (chunk, slot). A missing feature
        value counts as 0: impute before packing if that is wrong. Scores are per entity by
        design, so min_rows does not apply.
        """
        if not columns:
            raise ValueError("linear_scores needs at least one column")
        if len(weights) != len(columns):
            raise ValueError("one weight per column")
        require_same_context(columns, self.public.fingerprint)
        index = columns[0].index
        if any(
            c.index.rows != index.rows or c.index.chunk_slots != index.chunk_slots for c in columns
        ):
            raise ValueError("the columns must share one packing (same rows and chunk size)")
        w = np.asarray(weights, dtype=np.float64)
        if not (np.all(np.isfinite(w)) and np.isfinite(bias)):
            raise ValueError("weights and bias must be finite")
        if not w.any():
            raise HeUnsupported("all weights are zero: every score would be the bias")
        if not self._ckks and (np.any(w != np.round(w)) or bias != round(bias)):
            raise HeUnsupported("BFV weights and bias must be integers")
        flood = self.flood_bits if self._ckks else 0
        bound = sum(
            abs(float(wj)) * 2.0**c.magnitude_bits for wj, c in zip(w, columns, strict=True)
        )
        self._require_fits(bound + abs(bias) + (2.0**flood if flood else 0.0))
        requested = np.asarray(rows, dtype=np.int64)
        if requested.ndim != 1 or requested.size == 0:
            raise ValueError("request at least one row, as a flat sequence of row positions")
        if requested.min() < 0 or requested.max() >= index.rows:
            raise IndexError(f"requested rows must be within 0..{index.rows - 1}")
        chunk_of, slot_of = np.divmod(requested, index.chunk_slots)
        order = np.argsort(chunk_of, kind="stable")
        counts = np.bincount(chunk_of)
        groups = np.split(slot_of[order], np.cumsum(counts)[:-1])
        by_chunk = {chunk: groups[chunk] for chunk in np.flatnonzero(counts).tolist()}
        slots = self.public.info.slots
        compensation = self.public.info.rescale_compensation if self._ckks else 1.0
        out: list[bytes] = []
        for chunk in sorted(by_chunk):
            wanted = np.zeros(slots, dtype=bool)
            wanted[by_chunk[chunk]] = True
            # Every row this chunk holds is requested: scalar weights will do (the padding
            # slots past the last row hold encrypted zeros, nothing to hide).
            whole = bool(wanted[: len(index.rows_in(chunk))].all())
            score: Any = None
            for wj, column in zip(w, columns, strict=True):
                if wj == 0:
                    continue
                vector = self._load(column.chunks[chunk])
                if whole:
                    vector.mul_(float(wj) * compensation if self._ckks else int(wj))
                else:
                    vector.mul_(self._plain(np.where(wanted, wj, 0.0), compensate=True))
                score = vector if score is None else score.add_(vector)
            if whole:
                if bias:
                    score.add_(float(bias) if self._ckks else int(bias))
            else:
                addend = np.where(wanted, float(bias), 0.0)
                if flood:
                    addend = np.where(wanted, addend, _uniform_noise(slots, flood))
                if addend.any():
                    score.add_(self._plain(addend, compensate=False))
            out.append(score.serialize())
        return self._envelope(
            "linear_scores",
            int(np.count_nonzero(np.bincount(requested))),
            [c.name for c in columns],
            out,
            chunks=sorted(by_chunk),
            chunk_slots=index.chunk_slots,
            entity_rows=tuple(requested.tolist()),
        )
