"""Run-wide state of one generation: the seed, the pools and the independent random streams.

Every block draws from its own `numpy.random.Generator`, seeded by (seed, stream, block), so
a block's values depend only on the seed and its position, and different concerns (customer
attributes, activity, transactions, bad rows) never shift each other's draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np

from gateway.datagen.formats import CardScheme
from gateway.datagen.pools import Pools, build_pools

__all__ = ["BLOCK_ROWS", "BLOCK_TRANSACTIONS", "Context", "Stream"]

# Customers per generation block; transactions of a block follow from its customers. Output
# does not depend on `chunk_rows` (only the part files do), and memory is bounded by this.
BLOCK_ROWS: Final = 10_000
BLOCK_TRANSACTIONS: Final = 50_000  # very active customers get smaller blocks


class Stream(IntEnum):
    CUSTOMERS = 1
    ACTIVITY = 2
    TRANSACTIONS = 3
    BAD_CUSTOMERS = 4
    BAD_TRANSACTIONS = 5
    CARDS = 6


@dataclass(frozen=True)
class Context:
    seed: int
    pools: Pools
    visa: CardScheme
    mastercard: CardScheme
    transactions_per_customer: float
    bad_fraction: float

    @classmethod
    def create(cls, seed: int, transactions_per_customer: float, bad_fraction: float) -> Context:
        cards = np.random.default_rng(np.random.SeedSequence([seed, Stream.CARDS]))
        return cls(
            seed=seed,
            pools=build_pools(seed),
            visa=CardScheme.create(cards, "visa"),
            mastercard=CardScheme.create(cards, "mastercard"),
            transactions_per_customer=transactions_per_customer,
            bad_fraction=bad_fraction,
        )

    @property
    def block_rows(self) -> int:
        """Customers per block: 10,000, fewer when the expected transactions would exceed
        about 50,000 per block."""
        per_customer = max(self.transactions_per_customer, 1.0)
        return max(100, min(BLOCK_ROWS, int(BLOCK_TRANSACTIONS // per_customer)))

    def rng(self, stream: Stream, block: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, int(stream), block]))
