"""Country-specific formats of phones, national ids, postal codes and street addresses; cards
and IP addresses.

Every builder is vectorised over the rows of one country. Ranges that the canaries use
(`canaries.py`) are never produced here, so a canary value cannot occur by chance:
US exchange 555, London numbers starting with 7, German numbers starting with 1, SSN area
987, the NINO prefix QQ, German tax ids starting with 9, the card BIN 424242 and the
documentation networks 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from gateway.datagen.text import (
    Ints,
    ascii_matrix,
    by_group,
    choose_text,
    concat,
    fixed,
    int_text,
    mask_array,
    zero_pad,
)

__all__ = [
    "CANARY_BIN",
    "CardScheme",
    "Person",
    "card_numbers",
    "de_tax_id_check",
    "ipv4",
    "luhn_check_digit",
    "national_id",
    "phone",
    "postal_code",
    "street_address",
    "template",
]

DE, FR, GB, US, NL, ES, IT = range(7)

# Template placeholders: each lowercase letter draws one character from its alphabet.
_PLACEHOLDERS: Final[dict[str, str]] = {
    "d": "0123456789",
    "n": "123456789",
    "p": "2345678",
    "f": "1234567",
    "m": "456789",
    "s": "38",
    "e": "679",
    "c": "ABDEFGHJLNPQRSTUWXYZ",
    "u": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
}


def template(rng: np.random.Generator, n: int, pattern: str) -> Any:
    """Fixed-width random text: `+44 20 sddd dddd` → `+44 20 3141 5926`.

    Lowercase letters are placeholders (see `_PLACEHOLDERS`), every other character is literal.
    """
    codes = np.empty((n, len(pattern)), dtype=np.uint8)
    for j, ch in enumerate(pattern):
        alphabet = _PLACEHOLDERS.get(ch)
        if alphabet is None:
            codes[:, j] = ord(ch)
        else:
            table = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
            codes[:, j] = table[rng.integers(0, len(table), size=n)]
    return ascii_matrix(codes)


def _pick(rng: np.random.Generator, values: tuple[str, ...], n: int) -> Any:
    return choose_text(values, rng.integers(0, len(values), size=n))


# --- phones -------------------------------------------------------------------------------

_DE_AREAS = ("30", "40", "69", "89", "221", "211", "711", "341", "351", "511", "911", "228")
_GB_AREAS = ("121", "131", "141", "151", "161", "113", "114", "115", "116", "117", "118")
_US_AREAS = (
    "212", "213", "305", "312", "404", "415", "512", "617", "702", "713",
    "206", "303", "646", "718", "202", "214", "602", "619", "704", "919",
)  # fmt: skip
_NL_AREAS = ("20", "10", "70", "30", "40", "50", "13", "26")
_IT_AREAS = ("2", "6", "11", "55", "81", "51", "41")


def phone(rng: np.random.Generator, country: int, n: int) -> Any:
    """E.164 numbers with the usual national grouping, e.g. `+49 30 2345678`."""
    if country == DE:
        return concat("+49 ", _pick(rng, _DE_AREAS, n), " ", template(rng, n, "pdddddd"))
    if country == FR:
        return template(rng, n, "+33 f dd dd dd dd")
    if country == GB:
        kind = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])

        def gb(k: int, rows: Ints) -> Any:
            m = rows.size
            if k == 0:
                return template(rng, m, "+44 20 sddd dddd")
            if k == 1:
                return concat("+44 ", _pick(rng, _GB_AREAS, m), " ", template(rng, m, "pdd dddd"))
            return template(rng, m, "+44 7mdd dddddd")

        return by_group(kind, 3, gb)
    if country == US:
        exchange = rng.integers(200, 999, size=n)
        exchange = exchange + (exchange >= 555)  # 555 is the fictional exchange: canaries only
        return concat(
            "+1 ", _pick(rng, _US_AREAS, n), " ", int_text(exchange), " ", template(rng, n, "dddd")
        )
    if country == NL:
        mobile = (rng.random(n) < 0.5).astype(np.int64)

        def nl(k: int, rows: Ints) -> Any:
            m = rows.size
            if k == 1:
                return template(rng, m, "+31 6 dddd dddd")
            return concat("+31 ", _pick(rng, _NL_AREAS, m), " ", template(rng, m, "pdd dddd"))

        return by_group(mobile, 2, nl)
    if country == ES:
        return template(rng, n, "+34 edd ddd ddd")
    mobile = (rng.random(n) < 0.6).astype(np.int64)

    def it(k: int, rows: Ints) -> Any:
        m = rows.size
        if k == 1:
            return template(rng, m, "+39 3dd ddd dddd")
        return concat("+39 0", _pick(rng, _IT_AREAS, m), " ", template(rng, m, "dddd dddd"))

    return by_group(mobile, 2, it)


# --- national ids -------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """Per-row facts a national id may encode (block-aligned arrays)."""

    birth_days: Ints  # days since 1970-01-01
    gender: Ints  # index into GENDERS: 0 F, 1 M, 2 X
    first_code: Any  # codice fiscale letters of the given name (StringArray)
    last_code: Any  # codice fiscale letters of the surname (StringArray)


_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
_NINO_PREFIXES = tuple(
    a + b
    for a in _NINO_FIRST
    for b in _NINO_SECOND
    if a + b not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
)
_FR_DEPARTMENTS = tuple(f"{d:02d}" for d in range(1, 96) if d != 20)
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_CF_MONTHS = "ABCDEHLMPRST"
_CF_PLACES = ("H501", "F205", "F839", "L219", "G273", "A944", "D612", "L736", "D969", "C351")
_CF_ODD_VALUES = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21) * 2 + (
    2,
    4,
    18,
    20,
    11,
    3,
    6,
    8,
    12,
    14,
    16,
    10,
    22,
    25,
    24,
    23,
)  # digits 0-9, then letters A-Z (A-J repeat the digits' values)
_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", _CF_ODD_VALUES, strict=True))


def de_tax_id_check(digits: Ints) -> Ints:
    """ISO 7064 MOD 11,10 check digit of (n, 10) digit matrices (German Steuer-ID)."""
    product = np.full(digits.shape[0], 10, dtype=np.int64)
    for j in range(digits.shape[1]):
        total = (digits[:, j] + product) % 10
        total[total == 0] = 10
        product = (total * 2) % 11
    check: Ints = (11 - product) % 10
    return check


def _bsn(rng: np.random.Generator, n: int) -> Ints:
    """(n, 9) digit matrices passing the Dutch BSN eleven-test."""
    digits = np.zeros((n, 9), dtype=np.int64)
    todo = np.arange(n)
    weights = np.arange(9, 1, -1, dtype=np.int64)
    while todo.size:
        head = rng.integers(0, 10, size=(todo.size, 8))
        head[:, 0] = rng.integers(1, 10, size=todo.size)
        rest = (head @ weights) % 11
        ok = rest < 10
        digits[todo[ok], :8] = head[ok]
        digits[todo[ok], 8] = rest[ok]
        todo = todo[~ok]
    return digits


def _dates(days: Ints) -> tuple[Ints, Ints, Ints]:
    dates = days.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    return years, months, day


def _codice_fiscale(rng: np.random.Generator, rows: Ints, person: Person) -> Any:
    n = rows.size
    years, months, day = _dates(person.birth_days[rows])
    female = person.gender[rows] == 0
    body = concat(
        person.last_code.take(pa.array(rows)),
        person.first_code.take(pa.array(rows)),
        zero_pad(years % 100, 2),
        choose_text(tuple(_CF_MONTHS), months - 1),
        zero_pad(day + 40 * female, 2),
        _pick(rng, _CF_PLACES, n),
    )
    codes = np.frombuffer(body.buffers()[2], dtype=np.uint8, count=n * 15).reshape(n, 15)
    odd = np.zeros(256, dtype=np.int64)
    even = np.zeros(256, dtype=np.int64)
    for ch, value in _CF_ODD.items():
        odd[ord(ch)] = value
        even[ord(ch)] = int(ch) if ch.isdigit() else ord(ch) - ord("A")
    total = odd[codes[:, 0::2]].sum(axis=1) + even[codes[:, 1::2]].sum(axis=1)
    return concat(body, choose_text(tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), total % 26))


def national_id(rng: np.random.Generator, country: int, rows: Ints, person: Person) -> Any:
    """SSN `123-45-6789`, Steuer-ID (11 digits), NIR (15 digits), NINO `AB123456C`, BSN
    (9 digits), DNI `12345678Z`, codice fiscale (16 characters)."""
    n = rows.size
    if country == US:
        area = rng.integers(1, 899, size=n)
        area = area + (area >= 666)  # never 666, never 9xx (987-65-432x is the canary range)
        group = rng.integers(1, 100, size=n)
        serial = rng.integers(1, 10000, size=n)
        return concat(zero_pad(area, 3), "-", zero_pad(group, 2), "-", zero_pad(serial, 4))
    if country == DE:
        digits = rng.integers(0, 10, size=(n, 11))
        digits[:, 0] = rng.integers(1, 9, size=n)  # 1-8; 9 is reserved for the canaries
        digits[:, 10] = de_tax_id_check(digits[:, :10])
        return fixed(digits)
    if country == FR:
        gender = person.gender[rows]
        sex = np.where(gender == 0, 2, np.where(gender == 1, 1, rng.integers(1, 3, size=n)))
        years, months, _ = _dates(person.birth_days[rows])
        department = rng.integers(0, len(_FR_DEPARTMENTS), size=n)
        dept = np.array([int(d) for d in _FR_DEPARTMENTS], dtype=np.int64)[department]
        commune = rng.integers(1, 991, size=n)
        order = rng.integers(1, 1000, size=n)
        n13 = (
            sex * 10**12
            + (years % 100) * 10**10
            + months * 10**8
            + dept * 10**6
            + commune * 10**3
            + order
        )
        return concat(zero_pad(n13, 13), zero_pad(97 - n13 % 97, 2))
    if country == GB:
        suffix = _pick(rng, ("A", "B", "C", "D"), n)
        return concat(_pick(rng, _NINO_PREFIXES, n), template(rng, n, "dddddd"), suffix)
    if country == NL:
        return fixed(_bsn(rng, n))
    if country == ES:
        number = rng.integers(0, 10**8, size=n)
        return concat(zero_pad(number, 8), choose_text(tuple(_DNI_LETTERS), number % 23))
    return _codice_fiscale(rng, rows, person)


# --- postal codes and street addresses ----------------------------------------------------

_POSTAL_RANGES = {DE: (1067, 99999), FR: (1000, 96000), US: (501, 99951), ES: (1001, 53000),
                  IT: (10, 98169)}  # fmt: skip
_GB_POST_AREAS = (
    "B", "BS", "CB", "CF", "E", "EC", "EH", "G", "L", "LS", "M", "N", "NE", "NG", "NW", "OX",
    "S", "SE", "SW", "W", "WC", "BT", "CV", "LE", "RG", "YO", "BN", "PO", "SO", "GL",
)  # fmt: skip
_NL_LETTERS = tuple(
    a + b
    for a in "ABCDEFGHJKLMNPRSTVWXZ"
    for b in "ABCDEFGHJKLMNPRSTVWXZ"
    if a + b not in {"SA", "SD", "SS"}
)


def postal_code(rng: np.random.Generator, country: int, n: int) -> Any:
    """5 digits (DE, FR, US, ES, IT), `SW1 4AB` style (GB), `1234 AB` (NL)."""
    if country == GB:
        district = rng.integers(1, 30, size=n)
        return concat(_pick(rng, _GB_POST_AREAS, n), int_text(district), template(rng, n, " dcc"))
    if country == NL:
        return concat(int_text(rng.integers(1000, 10000, size=n)), " ", _pick(rng, _NL_LETTERS, n))
    low, high = _POSTAL_RANGES[country]
    return zero_pad(rng.integers(low, high, size=n), 5)


def street_address(rng: np.random.Generator, country: int, street: Any) -> Any:
    """Street name and house number in the local order (`Hauptstraße 12`, `12 rue …`,
    `Calle Mayor, 12`)."""
    n = len(street)
    number = 1 + np.floor(149 * rng.random(n) ** 2).astype(np.int64)
    if country == US:
        number = rng.integers(100, 10000, size=n)
        address = concat(int_text(number), " ", street)
        apartment = rng.random(n) < 0.12
        suffix = concat(" Apt. ", int_text(rng.integers(1, 40, size=n)))
        return pc.if_else(mask_array(apartment), concat(address, suffix), address)
    if country == DE:
        letter = np.where(rng.random(n) < 0.05, rng.choice(np.array(["a", "b"]), size=n), "")
        return concat(street, " ", int_text(number), pa.array(letter, pa.string()))
    if country == NL:
        return concat(street, " ", int_text(number))
    if country in (ES, IT):
        return concat(street, ", ", int_text(number))
    return concat(int_text(number), " ", street)


# --- cards and IP addresses ---------------------------------------------------------------

CANARY_BIN: Final = "424242"


def luhn_check_digit(payload: Ints) -> Ints:
    """Luhn check digits of (n, k) digit matrices, for a k + 1 digit number."""
    k = payload.shape[1]
    doubled = (k - np.arange(k)) % 2 == 1  # positions an odd distance from the check digit
    values = np.where(doubled, payload * 2, payload)
    values = np.where(values > 9, values - 9, values)
    check: Ints = (10 - values.sum(axis=1) % 10) % 10
    return check


@dataclass(frozen=True)
class CardScheme:
    """Card numbers of one slot (first or second card): BIN pool and a bijective body.

    The nine-digit body is `(a * customer + b) mod 10**9` with `a` coprime to 10, a bijection
    on customer indices, so no two customers ever share a card.
    """

    bins: tuple[str, ...]
    a: int
    b: int

    @classmethod
    def create(cls, rng: np.random.Generator, brand: str) -> CardScheme:
        bins: list[str] = []
        while len(bins) < 24:
            if brand == "visa":
                candidate = "4" + "".join(str(d) for d in rng.integers(0, 10, size=5))
            else:
                candidate = f"5{int(rng.integers(1, 6))}" + "".join(
                    str(d) for d in rng.integers(0, 10, size=4)
                )
            if candidate != CANARY_BIN and candidate not in bins:
                bins.append(candidate)
        a = int(rng.integers(10**8, 10**9)) | 1
        if a % 5 == 0:
            a += 2
        return cls(tuple(bins), a, int(rng.integers(0, 10**9)))


def card_numbers(scheme: CardScheme, customer: Ints) -> Any:
    """16-digit Luhn-valid card numbers, one per customer index, stable for that customer."""
    body = (scheme.a * customer + scheme.b) % 10**9
    bin_index = (customer * 7919 + scheme.b) % len(scheme.bins)
    bins = np.array([[int(c) for c in b] for b in scheme.bins], dtype=np.int64)[bin_index]
    powers = 10 ** np.arange(8, -1, -1, dtype=np.int64)
    payload = np.concatenate([bins, (body[:, None] // powers) % 10], axis=1)
    return fixed(np.concatenate([payload, luhn_check_digit(payload)[:, None]], axis=1))


_PUBLIC_FIRST_OCTETS = np.array(
    [o for o in range(1, 224) if o not in {10, 100, 127, 169, 172, 192, 198, 203}],
    dtype=np.int64,
)


def ipv4(rng: np.random.Generator, n: int) -> Any:
    """Public-looking IPv4 addresses (no private, loopback, link-local, CGNAT, multicast or
    documentation ranges)."""
    first = _PUBLIC_FIRST_OCTETS[rng.integers(0, _PUBLIC_FIRST_OCTETS.size, size=n)]
    rest = rng.integers(0, 256, size=(n, 2))
    last = rng.integers(1, 255, size=n)
    return concat(
        int_text(first), ".", int_text(rest[:, 0]), ".", int_text(rest[:, 1]), ".", int_text(last)
    )
