"""The transactions of one customer block, shuffled, with a learnable fraud signal."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from gateway.datagen.bad import TRANSACTION_BAD_KINDS, apply_bad_rows, bad_count, choose_bad_rows
from gateway.datagen.canaries import canary_customers
from gateway.datagen.context import Context, Stream
from gateway.datagen.customers import CustomerBlock, second_number
from gateway.datagen.formats import ipv4
from gateway.datagen.schema import (
    CATEGORIES,
    CHANNELS,
    COUNTRIES,
    COUNTRY_CURRENCY,
    TRANSACTION_COLUMNS,
)
from gateway.datagen.text import Mask, choose_text, concat, format_cents, mask_array, zero_pad

__all__ = ["TransactionBlock", "transaction_block"]

EVENT_FIRST: Final = second_number("2025-01-01T00:00:00")
EVENT_LAST: Final = second_number("2026-11-30T23:59:59")
CATEGORY_WEIGHTS: Final = (0.26, 0.06, 0.08, 0.16, 0.10, 0.18, 0.08, 0.08)
# Median amount and log-spread per category, in CATEGORIES order.
AMOUNT_MEDIAN: Final = np.array([45.0, 350.0, 250.0, 35.0, 55.0, 60.0, 90.0, 70.0])
AMOUNT_SIGMA: Final = np.array([0.7, 1.0, 1.1, 0.6, 0.4, 1.0, 0.6, 0.9])
FOREIGN_SHARE: Final = np.array([0.02, 0.35, 0.05, 0.05, 0.04, 0.12, 0.01, 0.02])
RISKY_CATEGORY: Final = np.array([0.0, 0.6, 0.9, 0.0, -0.3, 0.5, -0.8, -0.2])
CHANNEL_WEIGHTS: Final = (0.12, 0.82, 0.06)  # online, pos, atm for in-person categories
ONLINE: Final = CATEGORIES.index("online")
FRAUD_INTERCEPT: Final = -6.88
_CURRENCIES: Final = tuple(COUNTRY_CURRENCY[c] for c in COUNTRIES)


@dataclass
class TransactionBlock:
    start: int
    text: dict[str, Any]
    as_string: dict[str, Mask]
    bad_kinds: Counter[str]

    @property
    def rows(self) -> int:
        return len(self.text["transaction_id"])

    @property
    def bad_rows(self) -> int:
        return sum(self.bad_kinds.values())


def transaction_block(
    ctx: Context, block: int, customers: CustomerBlock, start: int
) -> TransactionBlock:
    """The transactions of `customers`, numbered from `start` (0-based, global)."""
    rng = ctx.rng(Stream.TRANSACTIONS, block)
    owner = np.repeat(np.arange(customers.rows, dtype=np.int64), customers.transaction_count)
    owner = rng.permutation(owner)
    m = owner.size
    take = pa.array(owner, pa.int64())

    category = rng.choice(len(CATEGORIES), size=m, p=CATEGORY_WEIGHTS).astype(np.int64)
    home = customers.country[owner]
    foreign = rng.random(m) < FOREIGN_SHARE[category]
    country = np.where(foreign, (home + rng.integers(1, len(COUNTRIES), size=m)) % 7, home)
    amount = np.exp(np.log(AMOUNT_MEDIAN[category]) + AMOUNT_SIGMA[category] * rng.normal(size=m))
    cents = np.clip(np.rint(amount * 100.0), 1, 2_000_000).astype(np.int64)
    merchant = ctx.pools.merchant.pick(country * len(CATEGORIES) + category, rng.random(m) ** 2)
    channel = np.where(
        category == ONLINE, 0, rng.choice(len(CHANNELS), size=m, p=CHANNEL_WEIGHTS)
    ).astype(np.int64)
    low = np.maximum(EVENT_FIRST, customers.created[owner])
    event = low + np.floor(rng.random(m) * (EVENT_LAST - low + 1)).astype(np.int64)

    second_card = (customers.card_count[owner] == 2) & (rng.random(m) < 0.35)
    card = pc.if_else(
        mask_array(second_card), customers.cards[1].take(take), customers.cards[0].take(take)
    )

    # Fraud: rare, likelier for large amounts, online, abroad and in some categories.
    logit = (
        FRAUD_INTERCEPT
        + 0.9 * np.log1p(cents / 20_000.0)
        + 1.1 * (channel == 0)
        + 1.8 * foreign
        + RISKY_CATEGORY[category]
    )
    fraud = rng.random(m) < 1.0 / (1.0 + np.exp(-logit))
    canary = owner < customers.canaries
    fraud &= ~canary
    use_home = (rng.random(m) < np.where(channel == 0, 0.8, 0.6)) & ~fraud
    ip = pc.if_else(mask_array(use_home), customers.home_ip.take(take), ipv4(rng, m))
    if canary.any():
        people = canary_customers(customers.canaries)
        planted = pa.array([p.ip_address for p in people], pa.string()).take(
            pa.array(owner[canary], pa.int64())
        )
        ip = pc.replace_with_mask(ip, mask_array(canary), planted)

    index = start + np.arange(m, dtype=np.int64)
    text: dict[str, Any] = {
        "transaction_id": concat("T", zero_pad(index + 1, 12)),
        "customer_id": customers.customer_id.take(take),
        "card_number": card,
        "amount": format_cents(cents),
        "currency": choose_text(_CURRENCIES, country),
        "merchant": ctx.pools.merchant.take(merchant),
        "merchant_category": choose_text(CATEGORIES, category),
        "event_time": pc.cast(pa.array(event.astype("datetime64[s]")), pa.string()),
        "ip_address": ip,
        "country": choose_text(COUNTRIES, country),
        "channel": choose_text(CHANNELS, channel),
        "is_fraud": choose_text(("false", "true"), fraud.astype(np.int64)),
    }
    text = {column: text[column] for column in TRANSACTION_COLUMNS}

    bad_rng = ctx.rng(Stream.BAD_TRANSACTIONS, block)
    rows = choose_bad_rows(bad_rng, bad_count(start, start + m, ctx.bad_fraction), ~canary)
    as_string: dict[str, Mask] = {}
    bad_kinds = apply_bad_rows(bad_rng, text, as_string, rows, TRANSACTION_BAD_KINDS)
    return TransactionBlock(start=start, text=text, as_string=as_string, bad_kinds=bad_kinds)
