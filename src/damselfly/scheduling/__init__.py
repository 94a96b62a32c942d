"""The scheduling core: who downloads what from whom. Sans-IO, like h11.

State in, decisions out. Time enters as ``now`` arguments and randomness as an injected
``random.Random``; nothing here sleeps, reads a clock, opens a socket or a file. The same
objects run inside the simpy simulator and behind the runtime's HTTP service.

- :class:`Scheduler` (scheduler side): hosts, tasks and peers; every call returns decisions
  (:class:`Parents`, :class:`BackToSource`, :class:`TriggerSeed`, :class:`Retry`,
  :class:`Fail`, :class:`PeerEvicted`, :class:`HostEvicted`, :class:`AlreadyComplete`).
- :class:`PiecePlanner` (peer side): the next (piece, parent) requests.
- :class:`PieceOffer` (upload side): the pieces a parent offers its children (a seed's
  super-seeding).
- Evaluators rank candidate parents and are found by name (:func:`make_evaluator`).
- :func:`piece_length` is the one place that knows how content is cut.
"""

from __future__ import annotations

from damselfly.scheduling.bitfield import Bitfield
from damselfly.scheduling.config import SchedulerConfig
from damselfly.scheduling.decisions import (
    AlreadyComplete,
    BackToSource,
    Decision,
    Fail,
    HostEvicted,
    Parents,
    PeerEvicted,
    Retry,
    TriggerSeed,
)
from damselfly.scheduling.errors import (
    DamselflyError,
    InvalidTransitionError,
    InvalidValueError,
    PeerMisbehavedError,
    PieceOutOfRangeError,
    UnknownEvaluatorError,
    UnknownHostError,
    UnknownPeerError,
    UnknownTaskError,
    UsageError,
)
from damselfly.scheduling.evaluators import (
    Evaluator,
    evaluator_names,
    make_evaluator,
    register_evaluator,
)
from damselfly.scheduling.hashring import HashRing
from damselfly.scheduling.ids import canonical_url, task_id
from damselfly.scheduling.model import Host, Peer, Task
from damselfly.scheduling.offer import PieceOffer
from damselfly.scheduling.pieces import piece_count, piece_length, piece_range
from damselfly.scheduling.planner import (
    PiecePlanner,
    PiecePolicy,
    PieceRequest,
    PlannerConfig,
    SlowDownloadWatch,
)
from damselfly.scheduling.scheduler import PieceReport, Scheduler
from damselfly.scheduling.states import (
    PEER_TRANSITIONS,
    HostKind,
    PeerEvent,
    PeerState,
    transition_diagram,
)

__all__ = [
    "PEER_TRANSITIONS",
    "AlreadyComplete",
    "BackToSource",
    "Bitfield",
    "DamselflyError",
    "Decision",
    "Evaluator",
    "Fail",
    "HashRing",
    "Host",
    "HostEvicted",
    "HostKind",
    "InvalidTransitionError",
    "InvalidValueError",
    "Parents",
    "Peer",
    "PeerEvent",
    "PeerEvicted",
    "PeerMisbehavedError",
    "PeerState",
    "PieceOffer",
    "PieceOutOfRangeError",
    "PiecePlanner",
    "PiecePolicy",
    "PieceReport",
    "PieceRequest",
    "PlannerConfig",
    "Retry",
    "Scheduler",
    "SchedulerConfig",
    "SlowDownloadWatch",
    "Task",
    "TriggerSeed",
    "UnknownEvaluatorError",
    "UnknownHostError",
    "UnknownPeerError",
    "UnknownTaskError",
    "UsageError",
    "canonical_url",
    "evaluator_names",
    "make_evaluator",
    "piece_count",
    "piece_length",
    "piece_range",
    "register_evaluator",
    "task_id",
    "transition_diagram",
]
