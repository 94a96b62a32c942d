"""The project's exceptions: one small tree under :class:`DamselflyError`.

Two kinds of trouble, kept apart because their callers answer them differently:

- :class:`UsageError`: the caller misused the API (an unknown id, a piece index out of range,
  a negative size, an illegal state transition). The HTTP layer answers 4xx; the CLI prints
  one line and exits 2.
- :class:`PeerMisbehavedError`: a peer or its input misbehaved (a piece whose digest does not
  match what the task already knows). The caller blocks or reports the peer.

Every error leaves the scheduler's state exactly as it was before the call.
"""

from __future__ import annotations

__all__ = [
    "DamselflyError",
    "InvalidTransitionError",
    "InvalidValueError",
    "PeerMisbehavedError",
    "PieceOutOfRangeError",
    "UnknownEvaluatorError",
    "UnknownHostError",
    "UnknownPeerError",
    "UnknownTaskError",
    "UsageError",
]


class DamselflyError(Exception):
    """Base of every error Damselfly raises on purpose."""


class UsageError(DamselflyError):
    """The caller misused the API; nothing was changed."""


class UnknownHostError(UsageError, LookupError):
    """No host with that id is known."""


class UnknownPeerError(UsageError, LookupError):
    """No peer with that id is known."""


class UnknownTaskError(UsageError, LookupError):
    """No task with that id is known."""


class UnknownEvaluatorError(UsageError, LookupError):
    """No evaluator is registered under that name."""


class InvalidTransitionError(UsageError):
    """A state machine was asked for a move its table does not allow."""


class PieceOutOfRangeError(UsageError, IndexError):
    """A piece index outside ``0 <= index < piece_count``."""


class InvalidValueError(UsageError, ValueError):
    """A value of the right type but outside its domain (a negative size, say)."""


class PeerMisbehavedError(DamselflyError):
    """A peer reported something that contradicts what is already known."""
