"""The one place that knows how content is cut into pieces.

Dragonfly's rule: the piece length is the next power of two of ``content_length / 500``
(the quotient truncated to whole bytes first), clamped to 4 MiB .. 64 MiB, so a piece count
stays near 500 or below for large content and small files are one or a few 4 MiB pieces.
A caller may force a fixed length instead.
"""

from __future__ import annotations

from damselfly.scheduling.errors import InvalidValueError, PieceOutOfRangeError

__all__ = [
    "MAX_PIECE_LENGTH",
    "MIN_PIECE_LENGTH",
    "TARGET_PIECE_COUNT",
    "piece_count",
    "piece_length",
    "piece_range",
]

MIN_PIECE_LENGTH = 4 * 1024 * 1024
MAX_PIECE_LENGTH = 64 * 1024 * 1024
TARGET_PIECE_COUNT = 500


def piece_length(content_length: int, forced: int | None = None) -> int:
    """Return the piece length in bytes for content of ``content_length`` bytes.

    ``forced`` overrides the rule (it must be > 0). Raises InvalidValueError on a negative
    content length or a non-positive forced length.
    """
    if content_length < 0:
        raise InvalidValueError(f"content length must be >= 0, got {content_length}")
    if forced is not None:
        if forced <= 0:
            raise InvalidValueError(f"a forced piece length must be > 0, got {forced}")
        return forced
    # Truncated, as Dragonfly's client does, then rounded up to a power of two.
    wanted = content_length // TARGET_PIECE_COUNT
    power = 1 << max(0, wanted - 1).bit_length()
    return min(MAX_PIECE_LENGTH, max(MIN_PIECE_LENGTH, power))


def piece_count(content_length: int, length: int) -> int:
    """Number of pieces of ``length`` bytes that cover ``content_length`` bytes."""
    if content_length < 0 or length <= 0:
        raise InvalidValueError(f"bad content/piece length {content_length}/{length}")
    return -(-content_length // length)


def piece_range(content_length: int, length: int, index: int) -> tuple[int, int]:
    """Byte range ``(start, size)`` of piece ``index``; the last piece may be short."""
    count = piece_count(content_length, length)
    if not 0 <= index < count:
        raise PieceOutOfRangeError(f"piece {index} is outside 0..{count - 1}")
    start = index * length
    return start, min(length, content_length - start)
