"""Seeded pools of Faker values per locale, built once per seed and sampled with numpy.

Faker produces a few thousand values per second and locale; the generator needs millions.
So Faker is called only here, a few thousand times per locale, and rows are then built by
indexing these pools with numpy's seeded `Generator` (see `Pool.pick`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]

from gateway.datagen.schema import CATEGORIES, LOCALES
from gateway.datagen.text import Ints

__all__ = ["Pool", "Pools", "build_pools", "email_slug", "italian_name_code"]

POOL_STREAM = 1000
# How many times Faker is asked per locale; duplicates are dropped, so pools are smaller.
_DRAWS = {"first": 2000, "last": 3000, "street": 2000, "city": 1000, "company": 2400}
# Values that could be confused with the canaries are never pooled.
_RESERVED = re.compile(r"canary|zebedee|quill", re.IGNORECASE)
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_SPECIAL = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "Ae", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "Oe", "ł": "l", "đ": "d"}
)


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def email_slug(name: str, locale: str) -> str:
    """`Jürgen` → `juergen` (de_DE), `José` → `jose`: the name as it would appear in an email."""
    if locale == "de_DE":
        name = name.translate(_GERMAN)
    slug = re.sub(r"[^a-z0-9]", "", _ascii(name).lower())
    return slug or "user"


def italian_name_code(name: str, *, surname: bool) -> str:
    """The three letters a codice fiscale takes from a surname or a given name."""
    letters = re.sub(r"[^A-Z]", "", _ascii(name).upper())
    consonants = [c for c in letters if c not in "AEIOU"]
    vowels = [c for c in letters if c in "AEIOU"]
    if not surname and len(consonants) >= 4:
        return consonants[0] + consonants[2] + consonants[3]
    return "".join([*consonants, *vowels, "X", "X", "X"])[:3]


@dataclass(frozen=True)
class Pool:
    """Values of all locales (or groups) back to back, with each group's slice."""

    values: Any  # pyarrow StringArray
    offset: Ints
    length: Ints
    extra: dict[str, Any]  # parallel StringArrays (email slugs, codice fiscale letters)

    def pick(self, group: Ints, u: npt.NDArray[np.float64]) -> Ints:
        """Pool indices for rows of the given groups; `u` in [0, 1) chooses within a group."""
        length = self.length[group]
        within = np.minimum((u * length).astype(np.int64), length - 1)
        result: Ints = self.offset[group] + within
        return result

    def take(self, index: Ints, field: str = "values") -> Any:
        source = self.values if field == "values" else self.extra[field]
        return source.take(pa.array(index, pa.int64()))


@dataclass(frozen=True)
class Pools:
    first_female: Pool
    first_male: Pool
    last: Pool
    street: Pool
    city: Pool
    merchant: Pool  # groups: country index * len(CATEGORIES) + category index


def _clean(values: Sequence[str]) -> list[str]:
    unique = dict.fromkeys(v.strip() for v in values)
    return [
        v
        for v in unique
        if v and not _RESERVED.search(v) and all(ord(ch) >= 32 and ch != "\x7f" for ch in v)
    ]


def _stabilise(fake: Any) -> None:
    """Sort provider lists that Faker builds from sets (it_IT cities: `list({...})`): their
    order, and so every seeded draw from them, would change with PYTHONHASHSEED."""
    for provider in fake.get_providers():
        cities = getattr(provider, "cities", None)
        if isinstance(cities, list):
            provider.cities = sorted(cities)


def _pool(groups: Sequence[list[str]], extras: dict[str, Callable[[str, int], str]]) -> Pool:
    flat = [v for g in groups for v in g]
    lengths = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    group_of = [i for i, g in enumerate(groups) for _ in g]
    extra = {
        name: pa.array([fn(v, group_of[j]) for j, v in enumerate(flat)], pa.string())
        for name, fn in extras.items()
    }
    return Pool(pa.array(flat, pa.string()), offsets, lengths, extra)


def _name_extras(*, surname: bool) -> dict[str, Callable[[str, int], str]]:
    return {
        "slug": lambda v, g: email_slug(v, LOCALES[g]),
        "it_code": lambda v, g: italian_name_code(v, surname=surname),
    }


@functools.lru_cache(maxsize=8)
def build_pools(seed: int) -> Pools:
    """The pools for one seed (cached: about two seconds of Faker calls per seed, a few MB)."""
    from faker import Faker  # imported here: Faker is slow to import and only needed here

    draws: dict[str, list[list[str]]] = {k: [] for k in ("ff", "fm", "last", "street", "city")}
    merchants: list[list[str]] = []
    for index, locale in enumerate(LOCALES):
        fake = Faker(locale)
        _stabilise(fake)
        state = np.random.SeedSequence([seed, POOL_STREAM, index]).generate_state(2)
        fake.seed_instance(int(state[0]))
        draws["ff"].append(_clean([fake.first_name_female() for _ in range(_DRAWS["first"])]))
        draws["fm"].append(_clean([fake.first_name_male() for _ in range(_DRAWS["first"])]))
        draws["last"].append(_clean([fake.last_name() for _ in range(_DRAWS["last"])]))
        draws["street"].append(_clean([fake.street_name() for _ in range(_DRAWS["street"])]))
        draws["city"].append(_clean([fake.city() for _ in range(_DRAWS["city"])]))
        companies = _clean([fake.company() for _ in range(_DRAWS["company"])])
        # Each merchant belongs to one category; a seeded shuffle decides which.
        order = np.random.default_rng(int(state[1])).permutation(len(companies))
        shuffled = [companies[i] for i in order]
        merchants.extend(shuffled[k :: len(CATEGORIES)] for k in range(len(CATEGORIES)))
    return Pools(
        first_female=_pool(draws["ff"], _name_extras(surname=False)),
        first_male=_pool(draws["fm"], _name_extras(surname=False)),
        last=_pool(draws["last"], _name_extras(surname=True)),
        street=_pool(draws["street"], {}),
        city=_pool(draws["city"], {}),
        merchant=_pool(merchants, {}),
    )
