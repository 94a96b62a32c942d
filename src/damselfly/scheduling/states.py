"""Every state machine of the core, as data: an Enum of states, one of events, one table.

A move not in the table raises :class:`InvalidTransitionError` and changes nothing. The
peer machine follows Dragonfly's (pending, received-normal, running, back-to-source,
succeeded, failed, left)::

    pending ──register──► received_normal ──download──► running ──succeed──► succeeded
                               │    └───────back_to_source──┐  │ └─back_to_source─┐
                               │                            ▼  ▼                  ▼
                               └──────────────fail──────► failed ◄─fail── back_to_source
    any state except left ──leave──► left

:func:`transition_diagram` renders the table as Mermaid, so the docs can be generated
from the same table the code obeys.
"""

from __future__ import annotations

import enum

from damselfly.scheduling.errors import InvalidTransitionError

__all__ = [
    "PEER_TRANSITIONS",
    "TERMINAL_PEER_STATES",
    "HostKind",
    "PeerEvent",
    "PeerState",
    "next_peer_state",
    "transition_diagram",
]


class HostKind(enum.Enum):
    """A normal node, or a seed peer that fetches from the origin first."""

    NORMAL = "normal"
    SEED = "seed"


class PeerState(enum.Enum):
    PENDING = "pending"
    RECEIVED_NORMAL = "received-normal"
    RUNNING = "running"
    BACK_TO_SOURCE = "back-to-source"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LEFT = "left"


class PeerEvent(enum.Enum):
    REGISTER = "register"
    DOWNLOAD = "download"
    BACK_TO_SOURCE = "back-to-source"
    SUCCEED = "succeed"
    FAIL = "fail"
    LEAVE = "leave"


_S = PeerState
_E = PeerEvent

PEER_TRANSITIONS: dict[tuple[PeerState, PeerEvent], PeerState] = {
    (_S.PENDING, _E.REGISTER): _S.RECEIVED_NORMAL,
    (_S.RECEIVED_NORMAL, _E.DOWNLOAD): _S.RUNNING,
    (_S.RECEIVED_NORMAL, _E.BACK_TO_SOURCE): _S.BACK_TO_SOURCE,
    (_S.RUNNING, _E.BACK_TO_SOURCE): _S.BACK_TO_SOURCE,
    # Empty content is done the moment it is registered.
    (_S.RECEIVED_NORMAL, _E.SUCCEED): _S.SUCCEEDED,
    (_S.RUNNING, _E.SUCCEED): _S.SUCCEEDED,
    (_S.BACK_TO_SOURCE, _E.SUCCEED): _S.SUCCEEDED,
    (_S.PENDING, _E.FAIL): _S.FAILED,
    (_S.RECEIVED_NORMAL, _E.FAIL): _S.FAILED,
    (_S.RUNNING, _E.FAIL): _S.FAILED,
    (_S.BACK_TO_SOURCE, _E.FAIL): _S.FAILED,
    **{(state, _E.LEAVE): _S.LEFT for state in PeerState if state is not _S.LEFT},
}

TERMINAL_PEER_STATES = frozenset({_S.SUCCEEDED, _S.FAILED, _S.LEFT})


def next_peer_state(state: PeerState, event: PeerEvent) -> PeerState:
    """The state after ``event`` in ``state``; raises InvalidTransitionError if illegal."""
    try:
        return PEER_TRANSITIONS[state, event]
    except KeyError:
        raise InvalidTransitionError(
            f"a peer in state {state.value} cannot {event.value}"
        ) from None


def transition_diagram() -> str:
    """The peer state machine as a Mermaid state diagram."""
    lines = ["stateDiagram-v2"]
    for (source, event), target in PEER_TRANSITIONS.items():
        lines.append(f"    {source.name.lower()} --> {target.name.lower()}: {event.value}")
    return "\n".join(lines)
