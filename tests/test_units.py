"""The one units parser: what people write in scenario files and on command lines."""

from __future__ import annotations

import math

import pytest

from damselfly.units import (
    UnitError,
    format_duration,
    format_rate,
    format_size,
    parse_duration,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GiB", 2 * 1024**3),
        ("500MB", 500_000_000),
        ("4 MiB", 4 * 1024**2),
        ("1.5KiB", 1536),
        ("0", 0),
        ("123", 123),
        (1024, 1024),
        ("3GB", 3_000_000_000),
        ("1TiB", 1024**4),
        ("7B", 7),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10Gbit/s", 1.25e9),
        ("1Gbps", 1.25e8),
        ("100Mbit/s", 12.5e6),
        ("1Gb/s", 1.25e8),
        ("300MB/s", 300e6),
        ("1GiB/s", float(1024**3)),
        (125e6, 125e6),
        ("0", 0.0),
    ],
)
def test_parse_rate(text: str | float, expected: float) -> None:
    assert math.isclose(parse_rate(text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5ms", 0.005), ("2m", 120.0), ("1.5h", 5400.0), ("30", 30.0), ("250us", 250e-6), (2, 2.0)],
)
def test_parse_duration(text: str | int, expected: float) -> None:
    assert math.isclose(parse_duration(text), expected)


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (parse_size, "-1GiB"),
        (parse_size, "2 furlongs"),
        (parse_size, "0.5B"),
        (parse_size, ""),
        (parse_size, True),
        (parse_rate, "10Gbit"),
        (parse_rate, "fast"),
        (parse_duration, "5 fortnights"),
        (parse_duration, "-3s"),
        (parse_size, "nan"),
    ],
)
def test_bad_quantities_raise_unit_error(parser, text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnitError):
        parser(text)


def test_format_round_trips_are_readable() -> None:
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 * 1024**3) == "3 GiB"
    assert format_rate(1.25e9) == "10 Gbit/s"
    assert format_duration(0.0042) == "4.2 ms"
    assert format_duration(95) == "1m35s"
    assert format_duration(math.inf) == "never"


def test_formatted_figures_never_use_exponents() -> None:
    # Binary prefixes step by 1024, so 1,000 to 1,023 of a unit must still read plainly.
    assert format_size(1010 * 1024**3) == "1,010 GiB"
    assert format_size(1000 * 1024**2) == "1,000 MiB"
    assert format_size(999 * 1024**2) == "999 MiB"
    assert format_rate(999.7e9 / 8) == "1,000 Gbit/s"
    assert format_duration(0.9997) == "1,000 ms"
    assert format_duration(59.99) == "60 s"
