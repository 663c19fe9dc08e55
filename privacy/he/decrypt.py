"""The key holder side: verify an envelope, then decrypt its result.

Decrypted CKKS values are rounded to `significant_digits` (default 10) of the result's
magnitude, and never finer than 2**(16 - scale_bits) (~6e-8 at the default scale, above the
~1e-8 noise of a rescaled slot). The rounding strips most CKKS noise from released values:
CKKS decryptions that reach the party holding the ciphertexts (here: the gateway) can
otherwise help recover the secret key (Li & Micciancio, EUROCRYPT 2021). It is a
mitigation, not a proof. The accuracy contract stays relative error <= 1e-6.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from privacy.he.envelope import Envelope
from privacy.he.errors import FingerprintMismatch, HeKeyError, TooFewRows
from privacy.he.keys import SecretContext
from privacy.he.params import AGGREGATES

__all__ = ["Result", "decrypt"]

Result = float | int | npt.NDArray[np.float64] | npt.NDArray[np.int64]

_FLOOR_BITS = 16


def _quantum(top: float, digits: int, scale_bits: int) -> float:
    floor = 2.0 ** (_FLOOR_BITS - scale_bits)
    if top <= 0 or not math.isfinite(top):
        return floor
    return max(10.0 ** (math.floor(math.log10(top)) - (digits - 1)), floor)


def _round(
    values: npt.NDArray[np.float64], digits: int | None, scale_bits: int
) -> npt.NDArray[np.float64]:
    if digits is None or values.size == 0:
        return values
    quantum = _quantum(float(np.max(np.abs(values))), digits, scale_bits)
    return np.round(values / quantum) * quantum


def decrypt(
    envelope: Envelope,
    secret_ctx: SecretContext,
    verify_key: Ed25519PublicKey | bytes,
    min_rows: int,
    *,
    significant_digits: int | None = 10,
) -> Result:
    """The plaintext result of a verified envelope.

    Refuses: a bad signature (SignatureInvalid), an envelope made under another key pair
    (FingerprintMismatch), an aggregate over fewer than `min_rows` rows (TooFewRows).
    Returns: sum and weighted_sum -> float (CKKS) or int (BFV); count -> int; mean and
    variance -> float; linear_scores -> an array, one score per requested entity, in
    request order.
    """
    import tenseal as ts

    if not isinstance(secret_ctx, SecretContext):
        raise HeKeyError("decryption needs the key holder's SecretContext (load_secret_context)")
    if min_rows < 1:
        raise ValueError("min_rows must be >= 1")
    envelope.verify(verify_key)
    if (
        envelope.context_fingerprint != secret_ctx.fingerprint
        or envelope.scheme != secret_ctx.info.scheme
    ):
        raise FingerprintMismatch("the envelope was made under another key pair")
    if envelope.operation in AGGREGATES and envelope.rows < min_rows:
        raise TooFewRows(
            f"the aggregate covers {envelope.rows} rows, fewer than the minimum of {min_rows}",
            rows=envelope.rows,
            min_rows=min_rows,
        )
    if envelope.operation == "count":
        return envelope.rows

    bfv = secret_ctx.info.scheme == "bfv"
    scale_bits = secret_ctx.info.scale_bits or 0
    load = ts.bfv_vector_from if bfv else ts.ckks_vector_from
    vectors: list[Any] = [load(secret_ctx.context, blob) for blob in envelope.ciphertext_bytes()]

    if envelope.operation == "linear_scores":
        if envelope.chunk_slots is None or len(envelope.chunks) != len(vectors):
            raise ValueError("the envelope does not say where each entity's score is")
        requested = np.asarray(envelope.entity_rows, dtype=np.int64)
        chunk_of, slot_of = np.divmod(requested, envelope.chunk_slots)
        where = np.full(max(envelope.chunks, default=-1) + 1, -1, dtype=np.int64)
        where[list(envelope.chunks)] = np.arange(len(envelope.chunks))
        if chunk_of.size and (chunk_of.max() >= where.size or np.any(where[chunk_of] < 0)):
            raise ValueError("the envelope's rows name chunks it does not carry")
        plain = np.stack([np.asarray(v.decrypt()) for v in vectors])
        picked = plain[where[chunk_of], slot_of]
        if bfv:
            return picked.astype(np.int64)
        return _round(picked.astype(np.float64), significant_digits, scale_bits)

    def total(vector: Any) -> Any:
        value = vector.decrypt()[0]
        if bfv:
            return int(value)
        return float(_round(np.array([value], dtype=np.float64), significant_digits, scale_bits)[0])

    totals = [total(v) for v in vectors]
    rows = envelope.rows
    if envelope.operation in ("sum", "weighted_sum"):
        return totals[0]  # type: ignore[no-any-return]
    if envelope.operation == "mean":
        return float(Fraction(totals[0]) / rows)
    # variance: (Σx² - (Σx)²/n) / (n - ddof), exact in rationals from the decrypted sums
    ddof = envelope.ddof or 0
    first, second = Fraction(totals[0]), Fraction(totals[1])
    return float((second - first * first / rows) / (rows - ddof))
