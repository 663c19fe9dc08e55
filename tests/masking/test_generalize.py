"""`bucket`, `round`, `generalize_date`, `age_band` and `ip_prefix` truth tables, including
the extremes of every numeric type."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pytest

from masking import DataType

pytestmark = pytest.mark.spark

S, INT, L, D = DataType.STRING, DataType.INTEGER, DataType.LONG, DataType.DOUBLE
INT_MIN, INT_MAX, LONG_MIN, LONG_MAX = -(2**31), 2**31 - 1, -(2**63), 2**63 - 1


@pytest.mark.parametrize(
    ("data_type", "params", "values", "expected"),
    [
        # integer width buckets, no '.0'; negative values floor downwards
        (INT, {"width": 10}, [45, 0, -1, None], ["[40, 50)", "[0, 10)", "[-10, 0)", None]),
        # integer extremes are exact (decimal arithmetic, no overflow)
        (
            INT,
            {"width": 10},
            [INT_MAX, INT_MIN],
            ["[2147483640, 2147483650)", "[-2147483650, -2147483640)"],
        ),
        (
            L,
            {"width": 10, "origin": 5},
            [LONG_MAX, LONG_MIN],
            [
                "[9223372036854775805, 9223372036854775815)",
                "[-9223372036854775815, -9223372036854775805)",
            ],
        ),
        # fractional widths on doubles, edges rounded to the width's decimals
        (D, {"width": 0.1}, [0.35, -0.35, 0.0], ["[0.3, 0.4)", "[-0.4, -0.3)", "[0, 0.1)"]),
        # NaN and infinities have no width bucket; 1e308 still gets one (degenerate in floats)
        (
            D,
            {"width": 10},
            [math.nan, math.inf, -math.inf, 1e308],
            [None, None, None, "[1.0E308, 1.0E308)"],
        ),
        # explicit bins with open ends
        (
            INT,
            {"bins": [0, 18, 65]},
            [-5, 0, 17, 18, 64, 65, INT_MAX, None],
            [
                "[-inf, 0)",
                "[0, 18)",
                "[0, 18)",
                "[18, 65)",
                "[18, 65)",
                "[65, inf)",
                "[65, inf)",
                None,
            ],
        ),
        # explicit bins on doubles: infinities fall in the open ends, NaN is null
        (
            D,
            {"bins": [0, 0.5]},
            [-math.inf, 0.25, math.inf, math.nan, -1e308],
            ["[-inf, 0)", "[0, 0.5)", "[0.5, inf)", None, "[-inf, 0)"],
        ),
    ],
)
def test_when_bucketed_then_interval_labels(
    mask: Any,
    data_type: DataType,
    params: dict[str, Any],
    values: list[Any],
    expected: list[Any],
) -> None:
    assert mask(values, data_type, "bucket", params) == expected


@pytest.mark.parametrize(
    ("data_type", "params", "values", "expected"),
    [
        (INT, {"digits": -3}, [1499, 1500, -1500, None], [1000, 2000, -2000, None]),  # halves up
        # near the type's range the result steps toward zero instead of overflowing
        (INT, {"digits": -3}, [INT_MAX, INT_MIN], [2147483000, -2147483000]),
        (L, {"to": 10}, [LONG_MAX, LONG_MIN, 45], [9223372036854775800, -9223372036854775800, 50]),
        (INT, {"to": 5}, [7, 8, -7, -8, 0], [5, 10, -5, -10, 0]),  # multiples of five
        (INT, {"digits": 2}, [123, INT_MAX], [123, INT_MAX]),  # positive digits: integers unchanged
        (D, {"digits": 1}, [0.35, -0.35, 2.25], [0.4, -0.4, 2.3]),  # Spark's decimal HALF_UP
        (D, {"to": 0.1}, [0.35, 1.04], [0.4, 1.0]),  # a power of ten rounds like digits
        (D, {"to": 2.5}, [3.7, -3.7, 1.25, -1.25], [2.5, -2.5, 2.5, -2.5]),  # other multiples
        (D, {}, [1e308, -1e308, 0.5, -0.5], [1e308, -1e308, 1.0, -1.0]),  # extremes, digits 0
        (D, {"to": 5}, [1e308, math.inf, -math.inf], [1e308, math.inf, -math.inf]),  # huge/inf
    ],
)
def test_when_rounded_then_nearest_step(
    mask: Any,
    data_type: DataType,
    params: dict[str, Any],
    values: list[Any],
    expected: list[Any],
) -> None:
    assert mask(values, data_type, "round", params) == expected


def test_when_rounding_nan_then_nan(mask: Any) -> None:
    assert all(math.isnan(v) for v in mask([math.nan, math.nan], D, "round", {"to": 5}))


@pytest.mark.parametrize(
    ("data_type", "unit", "value", "expected"),
    [
        (DataType.DATE, "year", date(2024, 5, 17), date(2024, 1, 1)),  # year start
        (DataType.DATE, "quarter", date(2024, 5, 17), date(2024, 4, 1)),  # quarter start
        (DataType.DATE, "month", date(2024, 2, 29), date(2024, 2, 1)),  # leap day
        (DataType.DATE, "week", date(2024, 5, 17), date(2024, 5, 13)),  # Monday
        (DataType.DATE, "day", date(2024, 5, 17), date(2024, 5, 17)),  # dates are days
        (DataType.DATE, "year", date(9999, 12, 31), date(9999, 1, 1)),  # calendar end
        (DataType.DATE, "month", None, None),  # null
        (DataType.TIMESTAMP, "day", datetime(2024, 5, 17, 13, 45), datetime(2024, 5, 17)),
        (DataType.TIMESTAMP, "hour", datetime(2024, 5, 17, 13, 45, 9), datetime(2024, 5, 17, 13)),
        (DataType.TIMESTAMP, "quarter", datetime(2024, 12, 31, 23, 59), datetime(2024, 10, 1)),
    ],
)
def test_when_date_generalised_then_truncated_to_the_unit(
    mask_frame: Any, data_type: DataType, unit: str, value: Any, expected: Any
) -> None:
    df = mask_frame([value], data_type, "generalize_date", {"unit": unit})
    assert [r.out for r in df.collect()] == [expected]
    assert df.schema["out"].dataType.simpleString() == data_type.spark_sql  # type kept


@pytest.mark.parametrize(
    ("data_type", "params", "values", "expected"),
    [
        # ages at 2024-06-30: birthday passed / not yet / on the day
        (
            DataType.DATE,
            {"as_of": "2024-06-30"},
            [date(1980, 6, 30), date(1980, 7, 1), date(2000, 1, 1), None],
            ["[40, 50)", "[40, 50)", "[20, 30)", None],
        ),
        # 1984-07-01 is 39 on 2024-06-30, 40 the next day
        (DataType.DATE, {"as_of": "2024-06-30"}, [date(1984, 7, 1)], ["[30, 40)"]),
        # a 29 February birthday counts from 1 March in other years
        (DataType.DATE, {"as_of": "2023-02-28", "width": 1}, [date(2000, 2, 29)], ["[22, 23)"]),
        (DataType.DATE, {"as_of": "2023-03-01", "width": 1}, [date(2000, 2, 29)], ["[23, 24)"]),
        # born after the reference date: null; top-coding at 90
        (
            DataType.DATE,
            {"as_of": "2024-01-01", "top": 90},
            [date(2030, 1, 1), date(1920, 1, 1), date(1, 1, 1)],
            [None, "[90, inf)", "[90, inf)"],
        ),
        # timestamps use their date
        (
            DataType.TIMESTAMP,
            {"as_of": "2024-06-30", "width": 5},
            [datetime(2000, 6, 30, 23, 59)],
            ["[20, 25)"],
        ),
        # an age column directly; top not aligned to the width caps the band below it
        (
            INT,
            {"width": 10, "top": 85},
            [0, 9, 10, 84, 85, 200, -1, None],
            ["[0, 10)", "[0, 10)", "[10, 20)", "[80, 85)", "[85, inf)", "[85, inf)", None, None],
        ),
        # extremes of the type
        (INT, {}, [INT_MAX, INT_MIN], ["[2147483640, 2147483650)", None]),
        (L, {}, [LONG_MAX], ["[9223372036854775800, 9223372036854775810)"]),
    ],
)
def test_when_age_banded_then_whole_years_in_bands(
    mask: Any,
    data_type: DataType,
    params: dict[str, Any],
    values: list[Any],
    expected: list[Any],
) -> None:
    assert mask(values, data_type, "age_band", params) == expected


def test_when_age_band_as_of_today_then_current_date_is_used(mask: Any) -> None:
    today = date.today()
    born = date(today.year - 45, 1, 1)
    assert mask([born], DataType.DATE, "age_band", {"as_of": "today"}) == ["[40, 50)"]


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({}, "192.168.1.77", "192.168.1.0"),  # /24 (default)
        ({"ipv4": 16}, "192.168.1.77", "192.168.0.0"),  # /16
        ({"ipv4": 8}, "10.20.30.40", "10.0.0.0"),  # /8
        ({}, "255.255.255.255", "255.255.255.0"),  # top of the range
        ({}, "0.0.0.0", "0.0.0.0"),  # bottom of the range
        ({}, "256.1.1.1", None),  # octet out of range
        ({}, "01.2.3.4", None),  # leading zero (octal ambiguity)
        ({}, "1.2.3", None),  # three octets
        ({}, " 1.2.3.4", None),  # whitespace
        ({}, "1.2.3.4\n", None),  # trailing newline
        ({}, "2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::"),  # /48 (default)
        ({"ipv6": 32}, "2001:0DB8:85a3:0000:0000:8a2e:0370:7334", "2001:db8::"),  # /32, case
        ({"ipv6": 64}, "2001:db8:0:1:2:3:4:5", "2001:db8:0:1::"),  # /64 keeps a zero group
        ({"ipv6": 64}, "2001:db8::", "2001:db8::"),  # already a network
        ({"ipv6": 64}, "fe80::1", "fe80::"),  # link-local
        ({}, "::1", "::"),  # loopback
        ({}, "::", "::"),  # unspecified
        ({}, "::ffff:192.0.2.128", "::"),  # IPv4-mapped: the v4 part is host bits
        ({"ipv6": 32}, "64:ff9b::192.0.2.33", "64:ff9b::"),  # NAT64 with dotted quad
        ({}, "2001:db8::1::2", None),  # two '::'
        ({}, "2001:db8:1:2:3:4:5:6:7", None),  # nine groups
        ({}, "2001:db8:1:2:3:4:5", None),  # seven groups without '::'
        ({}, "2001:db8::12345", None),  # group of five hex digits
        ({}, "2001:db8::g", None),  # not hex
        ({}, ":2001:db8::1", None),  # leading single colon
        ({}, "fe80::1%eth0", None),  # zone id
        ({}, "::ffff:999.0.2.128", None),  # bad embedded IPv4
        ({}, "not an ip", None),  # text
        ({}, "", None),  # empty
        ({}, None, None),  # null
        ({}, "1" * 10_000, None),  # 10,000 characters
    ],
)
def test_when_ip_prefix_then_host_bits_zeroed(
    mask: Any, params: dict[str, Any], value: str | None, expected: str | None
) -> None:
    assert mask([value], S, "ip_prefix", params) == [expected]


def test_when_ipv6_prefixed_then_python_ipaddress_agrees(mask: Any) -> None:
    import ipaddress

    values = [
        "2001:db8:85a3::8a2e:370:7334",
        "::1",
        "ff02::1:ff00:42",
        "0:0:0:1:0:0:0:1",
        "2001:db8:0:0:1::1",
        "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
    ]
    for prefix in (32, 48, 64):
        out = mask(values, S, "ip_prefix", {"ipv6": prefix})
        expected = [
            str(ipaddress.ip_network(f"{v}/{prefix}", strict=False).network_address) for v in values
        ]
        assert out == expected
