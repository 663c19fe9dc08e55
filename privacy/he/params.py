"""Homomorphic-encryption parameters, mirroring the policy's `he:` block field for field.

The gateway converts its policy settings with `HeParams.model_validate(settings.model_dump())`;
`privacy` never imports `gateway`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AGGREGATES",
    "ALL_OPERATIONS",
    "ROTATING",
    "SECURE_COEFF_BITS",
    "HeParams",
    "Operation",
    "Scheme",
    "ckks_capacity_bits",
]

Scheme = Literal["ckks", "bfv"]
Operation = Literal["sum", "count", "mean", "variance", "weighted_sum", "linear_scores"]

ALL_OPERATIONS: frozenset[Operation] = frozenset(
    ("sum", "count", "mean", "variance", "weighted_sum", "linear_scores")
)
# Operations whose result is one number over many rows: these need rotation (Galois) keys,
# and min_rows applies to them. `count` is plaintext and needs no key at all.
AGGREGATES: frozenset[Operation] = frozenset(("sum", "count", "mean", "variance", "weighted_sum"))
ROTATING: frozenset[Operation] = frozenset(("sum", "mean", "variance", "weighted_sum"))

# The largest total coefficient modulus (bits) with 128-bit classical security
# (HomomorphicEncryption.org standard, as enforced by SEAL's tc128 level).
SECURE_COEFF_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}

# Headroom kept below the CKKS modulus so a decrypted value never wraps (bits).
_CKKS_MARGIN_BITS = 1


def ckks_capacity_bits(coeff_mod_bit_sizes: tuple[int, ...], scale_bits: int) -> int:
    """|value| < 2**result must hold for every slot (sums included) after one rescale."""
    data = coeff_mod_bit_sizes[:-1]
    after_rescale = sum(data) - data[-1]
    return after_rescale - scale_bits - 1 - _CKKS_MARGIN_BITS


class HeParams(BaseModel):
    """The encryption parameters of one key pair, plus the limits applied to its use.

    The defaults (CKKS, N=8192, coefficient modulus 60+40+40+60 bits, scale 2^40) give
    128-bit security, one plaintext multiplication level, 4096 values per ciphertext, and
    relative errors far below 1e-6 for sums of 10^5..10^6 values of magnitude 10^5.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: Scheme = "ckks"
    poly_modulus_degree: Literal[4096, 8192, 16384, 32768] = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 40, 60)
    global_scale_bits: int = Field(default=40, ge=20, le=60)
    min_rows: int = Field(default=10, ge=1)
    max_ciphertext_bytes: int = Field(default=2_000_000_000, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> HeParams:
        limit = SECURE_COEFF_BITS[self.poly_modulus_degree]
        total = sum(self.coeff_mod_bit_sizes)
        if total > limit:
            raise ValueError(
                f"coefficient modulus of {total} bits is above the {limit} bits that "
                f"give 128-bit security at poly_modulus_degree {self.poly_modulus_degree}"
            )
        if any(not 17 <= bits <= 60 for bits in self.coeff_mod_bit_sizes):
            raise ValueError("each coefficient modulus prime must have 17 to 60 bits")
        if self.scheme == "ckks":
            if len(self.coeff_mod_bit_sizes) < 3:
                raise ValueError(
                    "CKKS needs at least 3 coefficient primes (one rescale for the "
                    "plaintext multiplications of masks and weights, plus the special prime)"
                )
            if self.ckks_capacity_bits < 1:
                raise ValueError(
                    "the coefficient modulus leaves no room above the scale for values; "
                    "use a larger first prime or a smaller global_scale_bits"
                )
        elif self.bfv_plain_modulus_bits < 20:
            raise ValueError(
                "the coefficient modulus is too small for a BFV plaintext modulus of at "
                "least 20 bits after one plaintext multiplication"
            )
        return self

    @property
    def slots(self) -> int:
        """Values per ciphertext: N/2 for CKKS; one batching row (N/2) for BFV."""
        return self.poly_modulus_degree // 2

    @property
    def data_bits(self) -> int:
        """Bits of the data-level modulus (every prime but the special last one)."""
        return sum(self.coeff_mod_bit_sizes[:-1])

    @property
    def ckks_capacity_bits(self) -> int:
        """|value| < 2**ckks_capacity_bits for every slot, including sums, after one rescale."""
        return ckks_capacity_bits(self.coeff_mod_bit_sizes, self.global_scale_bits)

    @property
    def bfv_plain_modulus_bits(self) -> int:
        """Bits of the BFV plaintext modulus t: as large as one plaintext multiplication allows.

        A fresh BFV ciphertext has a noise budget of about data_bits - t_bits - 10 bits; a
        plaintext multiplication by a batched 0/1 mask costs about log2(N) + t_bits. Keeping
        ~25 bits for additions and rotations gives t_bits = (data_bits - 40) // 2, i.e. 50 bits
        (t ~ 1.1e15) at the defaults; measured: 55 bits still decrypts, 59 does not.
        """
        return min(60, (self.data_bits - 40) // 2)
