"""Human quantities at the edge: sizes, rates and durations.

Scenario files and command lines speak in strings such as ``"2GiB"``, ``"10Gbit/s"`` or
``"5ms"``. They are parsed here, once, into the units that travel inside Damselfly:
bytes as ``int``, seconds as ``float`` and rates as ``float`` bytes per second. Nothing
else in the project parses a unit.

Sizes take SI (kB, MB, GB, TB: powers of 1000) and IEC (KiB, MiB, GiB, TiB: powers of 1024)
prefixes; ``B`` alone is bytes, and a plain number is bytes. Rates take a size per second
(``"300MB/s"``, ``"1GiB/s"``) or bits per second (``"10Gbit/s"``, ``"100Mbps"``, ``"1Gb/s"``).
Durations take ``us``, ``ms``, ``s``, ``m``/``min``, ``h``; a plain number is seconds.
Every parser raises :class:`UnitError` (a ``ValueError``) with a message that names the text
it could not read and what it expected.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "UnitError",
    "format_duration",
    "format_rate",
    "format_size",
    "parse_duration",
    "parse_rate",
    "parse_size",
]

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

_SIZE_MULTIPLIERS: dict[str, int] = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": KiB,
    "kib": KiB,
    "mi": MiB,
    "mib": MiB,
    "gi": GiB,
    "gib": GiB,
    "ti": TiB,
    "tib": TiB,
}

_BIT_PREFIXES: dict[str, float] = {
    "": 1.0,
    "k": 1e3,
    "m": 1e6,
    "g": 1e9,
    "t": 1e12,
    "ki": float(KiB),
    "mi": float(MiB),
    "gi": float(GiB),
}

_DURATION_MULTIPLIERS: dict[str, float] = {
    "": 1.0,
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
}

_NUMBER = r"(?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)"
_QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>[A-Za-zµ/]*)\s*$")


class UnitError(ValueError):
    """A human quantity could not be read."""


def _split(text: str | int | float, what: str, example: str) -> tuple[float, str]:
    if isinstance(text, bool):
        raise UnitError(f"expected a {what} such as {example!r}, got {text!r}")
    if isinstance(text, int | float):
        value = float(text)
        unit = ""
    elif isinstance(text, str):
        match = _QUANTITY.match(text)
        if match is None:
            raise UnitError(f"expected a {what} such as {example!r}, got {text!r}")
        value = float(match["number"])
        unit = match["unit"]
    else:
        raise UnitError(f"expected a {what} such as {example!r}, got {text!r}")
    if not math.isfinite(value) or value < 0:
        raise UnitError(f"a {what} must be a finite number >= 0, got {text!r}")
    return value, unit


def parse_size(text: str | int | float) -> int:
    """Return the number of bytes in ``text`` ("2GiB", "500MB", "4 MiB", 1024).

    Raises UnitError on anything else, on a negative size, and on a fraction of a byte.
    """
    value, unit = _split(text, "size", "2GiB")
    multiplier = _SIZE_MULTIPLIERS.get(unit.lower())
    if multiplier is None:
        raise UnitError(
            f"unknown size unit {unit!r} in {text!r} (use B, kB, MB, GB, KiB, MiB, GiB)"
        )
    size = value * multiplier
    if abs(size - round(size)) > 1e-6 * max(1.0, size):
        raise UnitError(f"size {text!r} is not a whole number of bytes")
    return round(size)


def parse_rate(text: str | int | float) -> float:
    """Return bytes per second for ``text`` ("10Gbit/s", "300MB/s", "1Gbps", 125e6).

    A plain number is bytes per second. Raises UnitError on anything else.
    """
    value, unit = _split(text, "rate", "10Gbit/s")
    lowered = unit.lower()
    for bits_suffix in ("bit/s", "bits/s", "bps", "b/s"):
        # "b/s" in lower case is ambiguous; only "b/s" written with a lower-case b means bits.
        if lowered.endswith(bits_suffix) and (bits_suffix != "b/s" or unit.endswith("b/s")):
            prefix = lowered[: -len(bits_suffix)]
            if prefix in _BIT_PREFIXES:
                return value * _BIT_PREFIXES[prefix] / 8.0
    if unit == "" or lowered.endswith("/s"):
        size_unit = unit[:-2] if lowered.endswith("/s") else ""
        multiplier = _SIZE_MULTIPLIERS.get(size_unit.lower())
        if multiplier is not None:
            return value * multiplier
    raise UnitError(
        f"unknown rate unit {unit!r} in {text!r} (use e.g. 10Gbit/s, 100Mbps, 300MB/s, 1GiB/s)"
    )


def parse_duration(text: str | int | float) -> float:
    """Return seconds for ``text`` ("5ms", "2m", "1.5h", 30). Raises UnitError otherwise."""
    value, unit = _split(text, "duration", "5ms")
    multiplier = _DURATION_MULTIPLIERS.get(unit.lower() if unit != "µs" else unit)
    if multiplier is None:
        raise UnitError(f"unknown duration unit {unit!r} in {text!r} (use us, ms, s, m, h)")
    return value * multiplier


def _significant(value: float) -> str:
    """Three significant digits, never in exponent form: 1.536 -> '1.54', 1010 -> '1,010'
    (binary prefixes step by 1024, so a value may reach four digits)."""
    if round(abs(value)) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_size(size: float) -> str:
    """Render bytes with an IEC prefix: 1536 -> '1.5 KiB'."""
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(size) >= scale:
            return f"{_significant(size / scale)} {unit}"
    return f"{int(size)} B"


def format_rate(rate: float) -> str:
    """Render bytes per second as bits per second: 125e6 -> '1 Gbit/s'."""
    bits = rate * 8.0
    for unit, scale in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(bits) >= scale:
            return f"{_significant(bits / scale)} {unit}"
    return f"{_significant(bits)} bit/s"


def format_duration(seconds: float) -> str:
    """Render seconds for people: 0.0042 -> '4.2 ms', 95 -> '1m35s'."""
    if not math.isfinite(seconds):
        return "never"
    if seconds < 1e-3:
        return f"{_significant(seconds * 1e6)} us"
    if seconds < 1.0:
        return f"{_significant(seconds * 1e3)} ms"
    if seconds < 60.0:
        return f"{_significant(seconds)} s"
    minutes, rest = divmod(seconds, 60.0)
    if minutes < 60:
        return f"{int(minutes)}m{int(rest):02d}s"
    hours, minutes = divmod(minutes, 60.0)
    return f"{int(hours)}h{int(minutes):02d}m"
