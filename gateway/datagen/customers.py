"""One block of customers: columnar, vectorised, from the block's own random streams.

Besides the customer columns a block carries what its transactions need: the country,
`created_at`, the cards, a home IP address and how many transactions each customer makes.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from gateway.datagen.bad import CUSTOMER_BAD_KINDS, apply_bad_rows, bad_count, choose_bad_rows
from gateway.datagen.canaries import CANARY_CUSTOMER_COLUMNS, canary_customers
from gateway.datagen.context import Context, Stream
from gateway.datagen.formats import (
    ES,
    Person,
    card_numbers,
    ipv4,
    national_id,
    phone,
    postal_code,
    street_address,
)
from gateway.datagen.schema import COUNTRIES, COUNTRY_WEIGHTS, CUSTOMER_COLUMNS, GENDERS
from gateway.datagen.text import (
    Ints,
    Mask,
    by_group,
    choose_text,
    concat,
    format_cents,
    int_text,
    mask_array,
    zero_pad,
)

__all__ = ["CustomerBlock", "customer_block", "day_number", "second_number"]

Floats = npt.NDArray[np.float64]


def day_number(iso: str) -> int:
    """Days since 1970-01-01 of an ISO date."""
    return int(np.datetime64(iso, "D").astype(np.int64))


def second_number(iso: str) -> int:
    """Seconds since 1970-01-01 00:00:00 UTC of an ISO timestamp."""
    return int(np.datetime64(iso, "s").astype(np.int64))


REFERENCE_DAY: Final = day_number("2026-01-01")  # ages are as of this day
OLDEST_BIRTH: Final = day_number("1930-01-02")  # 95 on the reference day
YOUNGEST_ADULT_BIRTH: Final = day_number("2008-01-01")  # 18 on the reference day
OLDEST_MINOR_BIRTH: Final = day_number("2008-01-02")  # 17
YOUNGEST_BIRTH: Final = day_number("2010-01-01")  # 16
CREATED_FIRST: Final = second_number("2015-01-01T00:00:00")
CREATED_LAST: Final = second_number("2025-12-31T23:59:59")
UPDATED_LAST: Final = second_number("2026-11-30T23:59:59")
SIXTEEN_YEARS: Final = 5844 * 86400
MINOR_SHARE: Final = 0.03
GENDER_WEIGHTS: Final = (0.49, 0.49, 0.02)
EMAIL_PATTERNS: Final = (0.40, 0.15, 0.25, 0.20)  # first.last, first_last, flast, firstlast
HEAVY_SHARE: Final = 0.001  # customers with hundreds of transactions
HEAVY_SPAN: Final = (30.0, 120.0)  # their count, in multiples of transactions_per_customer
ACTIVITY_SHAPE: Final = 0.8  # gamma shape of everybody else's activity (negative binomial)


@functools.cache
def _domains() -> Any:
    """Reserved email domains (RFC 2606 / 6761), six per country, in COUNTRIES order."""
    rows: list[str] = []
    for country in COUNTRIES:
        rows += [
            "example.com",
            "example.net",
            "example.org",
            "mail.example.com",
            f"{country.lower()}.example.net",
            "inbox.test",
        ]
    return pa.array(rows, pa.string())


_DOMAIN_WEIGHTS: Final = (0.30, 0.20, 0.15, 0.10, 0.20, 0.05)


@dataclass
class CustomerBlock:
    """Customer rows of one block, as text columns, and what their transactions need."""

    start: int
    text: dict[str, Any]  # column → StringArray (null: empty / JSON null)
    as_string: dict[str, Mask]  # rows whose value is JSON-quoted although the column is not text
    bad_kinds: Counter[str]
    customer_id: Any  # the true id of every row, also of bad rows
    country: Ints
    created: Ints
    cards: tuple[Any, Any]
    card_count: Ints
    home_ip: Any
    transaction_count: Ints
    canaries: int  # the first `canaries` rows are canary customers

    @property
    def rows(self) -> int:
        return int(self.country.size)

    @property
    def bad_rows(self) -> int:
        return sum(self.bad_kinds.values())


def _birth_days(rng: np.random.Generator, n: int) -> Ints:
    minor = rng.random(n) < MINOR_SHARE
    minor_days = rng.integers(OLDEST_MINOR_BIRTH, YOUNGEST_BIRTH + 1, size=n)
    age = 18.0 + 78.0 * rng.beta(1.8, 2.8, size=n)
    adult_days = np.clip(
        REFERENCE_DAY - np.floor(age * 365.2425).astype(np.int64),
        OLDEST_BIRTH,
        YOUNGEST_ADULT_BIRTH,
    )
    result: Ints = np.where(minor, minor_days, adult_days)
    return result


def _income_cents(rng: np.random.Generator, age: Floats) -> Ints:
    n = age.size
    adult = rng.lognormal(np.log(38_000.0), 0.75, size=n) * (
        0.55 + 0.6 * np.exp(-(((age - 50.0) / 18.0) ** 2))
    )
    adult = np.where(rng.random(n) < 0.04, 0.0, adult)
    minor = np.where(rng.random(n) < 0.7, 0.0, rng.uniform(0.0, 12_000.0, size=n))
    income = np.clip(np.where(age < 18.0, minor, adult), 0.0, 500_000.0)
    result: Ints = np.rint(income * 100.0).astype(np.int64)
    return result


def _credit_score(rng: np.random.Generator, income_cents: Ints, age: Floats) -> Ints:
    z = (np.log(income_cents / 100.0 + 5_000.0) - np.log(43_000.0)) / 0.8
    mean = 650.0 + 45.0 * z + 1.2 * (np.clip(age, 18.0, 80.0) - 45.0)
    result: Ints = np.clip(np.rint(rng.normal(mean, 70.0)), 300, 850).astype(np.int64)
    return result


def _timestamps(rng: np.random.Generator, birth_days: Ints) -> tuple[Ints, Ints]:
    n = birth_days.size
    low = np.maximum(CREATED_FIRST, birth_days * 86400 + SIXTEEN_YEARS)
    low = np.minimum(low, CREATED_LAST - 30 * 86400)
    created = low + np.floor(rng.random(n) * (CREATED_LAST - low + 1)).astype(np.int64)
    span = np.floor(rng.random(n) ** 1.5 * (UPDATED_LAST - created + 1)).astype(np.int64)
    updated = np.where(rng.random(n) < 0.25, created, created + span)
    return created, updated


def _date_text(days: Ints) -> Any:
    return pc.cast(pa.array(days.astype("datetime64[D]")), pa.string())


def _timestamp_text(seconds: Ints) -> Any:
    return pc.cast(pa.array(seconds.astype("datetime64[s]")), pa.string())


def _bool_text(values: Mask) -> Any:
    return choose_text(("false", "true"), values.astype(np.int64))


def _transaction_counts(rng: np.random.Generator, n: int, per_customer: float) -> Ints:
    """Skewed activity: negative binomial for most, hundreds for a few, mean `per_customer`."""
    heavy = rng.random(n) < HEAVY_SHARE
    heavy_count = np.rint(per_customer * rng.uniform(*HEAVY_SPAN, size=n)).astype(np.int64)
    heavy_mean = HEAVY_SHARE * per_customer * sum(HEAVY_SPAN) / 2
    mean = max(per_customer - heavy_mean, 0.0) / (1.0 - HEAVY_SHARE)
    activity = rng.gamma(ACTIVITY_SHAPE, mean / ACTIVITY_SHAPE, size=n) if mean > 0 else np.zeros(n)
    normal_count = rng.poisson(activity).astype(np.int64)
    result: Ints = np.where(heavy, heavy_count, normal_count)
    return result


def customer_block(ctx: Context, block: int, start: int, n: int) -> CustomerBlock:
    """Customers `start` .. `start + n - 1` (0-based), the block number `block`."""
    rng = ctx.rng(Stream.CUSTOMERS, block)
    pools = ctx.pools
    index = start + np.arange(n, dtype=np.int64)
    people = canary_customers(n) if start == 0 else ()
    k = len(people)

    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS).astype(np.int64)
    country[:k] = [p.country_index for p in people]
    gender = rng.choice(len(GENDERS), size=n, p=GENDER_WEIGHTS).astype(np.int64)

    # Names: given name by gender (X: either list), surname; Spaniards often carry two.
    female = (gender == 0) | ((gender == 2) & (rng.random(n) < 0.5))
    female_index = pools.first_female.pick(country, rng.random(n))
    male_index = pools.first_male.pick(country, rng.random(n))
    female_mask = mask_array(female)

    def first(field: str) -> Any:
        return pc.if_else(
            female_mask,
            pools.first_female.take(female_index, field),
            pools.first_male.take(male_index, field),
        )

    last_index = pools.last.pick(country, rng.random(n) ** 1.3)
    second_index = pools.last.pick(country, rng.random(n))
    double = mask_array((country == ES) & (rng.random(n) < 0.6))
    last1 = pools.last.take(last_index)
    surname = pc.if_else(double, concat(last1, " ", pools.last.take(second_index)), last1)
    full_name = concat(first("values"), " ", surname)

    # Email: derived from the name, a number (often the birth year), a reserved domain.
    birth_days = _birth_days(rng, n)
    birth_year = birth_days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    first_slug = first("slug")
    last_slug1 = pools.last.take(last_index, "slug")
    last_slug = pc.if_else(
        double, concat(last_slug1, pools.last.take(second_index, "slug")), last_slug1
    )
    pattern = rng.choice(4, size=n, p=EMAIL_PATTERNS)
    head = pc.if_else(
        mask_array(pattern == 2), pc.utf8_slice_codeunits(first_slug, 0, 1), first_slug
    )
    number = np.where(rng.random(n) < 0.35, birth_year, rng.integers(1, 1000, size=n))
    domain = country * len(_DOMAIN_WEIGHTS) + rng.choice(
        len(_DOMAIN_WEIGHTS), size=n, p=_DOMAIN_WEIGHTS
    )
    email = concat(
        head,
        choose_text((".", "_", "", ""), pattern),
        last_slug,
        int_text(number),
        "@",
        _domains().take(pa.array(domain, pa.int64())),
    )

    person = Person(
        birth_days=birth_days,
        gender=gender,
        first_code=first("it_code"),
        last_code=pools.last.take(last_index, "it_code"),
    )
    streets = pools.street.take(pools.street.pick(country, rng.random(n) ** 1.5))
    text: dict[str, Any] = {
        "customer_id": concat("C", zero_pad(index + 1, 9)),
        "full_name": full_name,
        "email": email,
        "phone": by_group(country, len(COUNTRIES), lambda c, rows: phone(rng, c, rows.size)),
        "national_id": by_group(
            country, len(COUNTRIES), lambda c, rows: national_id(rng, c, rows, person)
        ),
        "birth_date": _date_text(birth_days),
        "street_address": by_group(
            country,
            len(COUNTRIES),
            lambda c, rows: street_address(rng, c, streets.take(pa.array(rows, pa.int64()))),
        ),
        "city": pools.city.take(pools.city.pick(country, rng.random(n) ** 1.5)),
        "postal_code": by_group(
            country, len(COUNTRIES), lambda c, rows: postal_code(rng, c, rows.size)
        ),
        "country": choose_text(COUNTRIES, country),
        "gender": choose_text(GENDERS, gender),
    }
    age = (REFERENCE_DAY - birth_days) / 365.2425
    income = _income_cents(rng, age)
    marketing = rng.random(n) < 0.38
    created, updated = _timestamps(rng, birth_days)
    text |= {
        "income": format_cents(income),
        "credit_score": int_text(_credit_score(rng, income, age)),
        "consent_marketing": _bool_text(marketing),
        "consent_research": _bool_text(rng.random(n) < np.where(marketing, 0.35, 0.15)),
        "created_at": _timestamp_text(created),
        "updated_at": _timestamp_text(updated),
    }
    text = {column: text[column] for column in CUSTOMER_COLUMNS}

    # What transactions need: cards, a home IP address, how active each customer is.
    activity = ctx.rng(Stream.ACTIVITY, block)
    counts = _transaction_counts(activity, n, ctx.transactions_per_customer)
    card_count = 1 + (activity.random(n) < 0.3).astype(np.int64)
    home_ip = ipv4(activity, n)
    cards = (card_numbers(ctx.visa, index), card_numbers(ctx.mastercard, index))
    if k:
        counts[:k] = 2
        card_count[:k] = 1
        for column in CANARY_CUSTOMER_COLUMNS:
            text[column] = _head(text[column], [p.customer_values()[column] for p in people])
        cards = (_head(cards[0], [p.card_number for p in people]), cards[1])

    # Bad rows: never the canaries; preferably customers without transactions, so that every
    # good transaction references a good customer whenever the block allows it.
    customer_id = text["customer_id"]
    bad_rng = ctx.rng(Stream.BAD_CUSTOMERS, block)
    eligible = np.arange(n) >= k
    rows = choose_bad_rows(
        bad_rng, bad_count(start, start + n, ctx.bad_fraction), eligible, counts == 0
    )
    as_string: dict[str, Mask] = {}
    bad_kinds = apply_bad_rows(bad_rng, text, as_string, rows, CUSTOMER_BAD_KINDS)
    return CustomerBlock(
        start=start,
        text=text,
        as_string=as_string,
        bad_kinds=bad_kinds,
        customer_id=customer_id,
        country=country,
        created=created,
        cards=cards,
        card_count=card_count,
        home_ip=home_ip,
        transaction_count=counts,
        canaries=k,
    )


def _head(column: Any, values: list[str]) -> Any:
    """`column` with its first rows replaced by `values`."""
    return pa.concat_arrays([pa.array(values, pa.string()), column.slice(len(values))])
