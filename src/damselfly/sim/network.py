"""The flow network: piece transfers as flows sharing capacities max-min fairly.

Model
-----
Every host (and the origin) has two capacities, an upload and a download rate (bytes/s);
every link of the topology has one capacity per direction (links are full duplex). A
piece transfer is a *flow* from a sender to a receiver. It crosses a set of *constraints*:
the sender's upload, the receiver's download, and each directed link on its path. Rates
follow max-min fair sharing (progressive filling) over those constraints, and a flow's
bytes move at its rate, which is constant between re-rates, so completion times are exact
for the piecewise-constant rates the model produces.

Latency: a flow is *pending* for the one-way path latency after it is started (the first
byte's trip), or for the delay its caller gives (the simulator passes the request's round
trip), and takes no capacity meanwhile; then it is *active* and is rated.

Pruning: an access link (a host's own edge) whose capacity is at least the host's NIC rate
in that direction can never bind, since everything crossing it also crosses that NIC
constraint; such directed links are dropped (``damselfly.topologies.Paths`` decides, and
gives the routes). On a flat network (every host on one non-blocking switch) no link
constraint remains, and flows cross exactly two constraints.

Re-rating (what is exact and what is not)
-----------------------------------------
When flows start or end, their constraints become *dirty*: every constraint of a flow that
becomes active, and each constraint a flow leaves that was saturated (on an unsaturated
constraint every flow is held by another constraint, which the departure leaves as it
was). Once per event instant, after every start and end of that instant, a re-rate takes
every active flow that crosses a dirty constraint (the set F), holds every other flow's
rate fixed, and computes the exact max-min fair allocation of F over all the constraints F
crosses, each with the capacity the fixed flows leave free (progressive filling). Two
modes:

- ``rerate="component"``: the dirty set is first grown to the whole connected component
  of the flow-constraint graph, so the result is the exact global max-min allocation.
  Cost grows with the component, which in a swarm is the whole swarm: for tests and for
  measuring the error of the local mode.
- ``rerate="local"`` (the default): only the dirty constraints' flows are re-rated. The
  allocation is always feasible (no capacity is ever exceeded, so the model never beats
  physics) and it is max-min fair on the dirty constraints given the rest, but capacity that
  a re-rate frees at a *non*-dirty constraint (a flow slowed down by its sender leaves slack
  at its receiver) is only handed out when that constraint next has an event of its own.
  In a swarm every constraint has events every few hundred milliseconds (each piece start
  and end), so the slack is short-lived. Measured against the exact mode on 20 random
  instances each: makespans within 1.1% (mean +0.13%) with a shared trunk link, within
  0.12% (mean +0.02%) on a flat network; tests/sim check it (the test allows 2%).

  The flat case (every re-rated flow crosses just an upload and a download, at most two
  constraints dirty) is filled by water-filling each dirty constraint against per-flow
  bounds instead of general progressive filling: the same allocation, cheaper (tests/sim
  compare the two).

Batching: with ``quantum > 0`` dirty constraints are re-rated at most once per ``quantum``
seconds: completions stay exact under the current rates, but freed capacity idles and new
flows wait (at rate zero) until the next re-rate, for up to ``quantum`` seconds. It is off
by default (measured in swarms: makespan +2% to +4% at 1 to 5 ms, and no speed gain, since
the cost is per constraint re-rated, not per re-rate).

Scheduling: the network keeps one completion heap of its own, ordered by (time, push
order), and drives it with wake-ups in simpy's queue (:class:`Message`s, which cannot be
cancelled: a wake-up whose generation is stale does nothing). A heap entry may be early
(a flow slowed down after it was pushed); when it pops, the flow's true finish time is
recomputed and the entry re-pushed if needed, so slowing a flow down costs no heap push
at all. Completions are reported one at a time, in heap order, each through its flow's
plain callback at its exact time; a callback may start and cancel flows, and the
instant's re-rate comes after the last of them. Activations and re-rates that fall before
the environment's next event of any other kind (``env.peek()``) are processed at their
own times without a simpy event of their own: nothing can observe the network in between,
so this changes no result. So are completions, on a plain ``simpy.Environment``: the
network moves the environment's clock to the completion's time (``env._now``, as
``Environment.step`` itself does) and makes the callback there, instead of scheduling a
timeout that nothing else could precede. Events at the same time as the next scheduled
one keep simpy's order (the look-ahead stops short of it).

:func:`run` runs an environment as ``env.run(until=...)`` does, delivering the messages
itself and handing every other event to ``env.step()``: the same events in the same order,
without simpy's interpreted loop around each message.

Implementation: flows, constraints and the heap are arrays in
:mod:`damselfly.sim.flowkernel`, compiled with numba; this module keeps the API, a
:class:`Flow` handle per flow (its fields are read from the arrays while it is live) and the
callbacks. Everything iterates in insertion order (flows on a constraint in the order they
joined it, dirty constraints in the order they became dirty): the same inputs give the
same events at the same times.

Units: bytes as floats internally (rates times times), reported per flow as its int size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from heapq import heappop, heappush
from typing import Any, Final

import numpy as np
import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL

from damselfly.sim import flowkernel as kernel

__all__ = ["Flow", "FlowNetwork", "FlowState", "run", "send", "warm_up"]

_INF = math.inf
# Initial room; every array doubles when full.
_INITIAL_SLOTS = 256
_INITIAL_CONSTRAINTS = 64
_INITIAL_PATHS = 16
_MAX_LINKS = 62  # links on one path (node ids are slot * width + k)


class FlowState:
    """States of a flow (small ints for speed; a flow only moves forward)."""

    PENDING: Final = kernel.PENDING  # started, first byte still on its way
    ACTIVE: Final = kernel.ACTIVE  # rated, moving bytes
    DONE: Final = kernel.DONE  # every byte delivered, callback made
    CANCELLED: Final = kernel.CANCELLED  # stopped early (a crash); partial bytes counted


class Message:
    """``fn(*args)`` due at a later instant: what simpy's ``Environment.step`` needs of an
    event (its callbacks, and ``_ok``), and nothing more.

    The network's wake-ups and the simulation's messages (a call reaching the scheduler, a
    decision reaching a host, a timer) are these, not simpy ``Timeout`` events with a
    closure appended to their callbacks: millions of them per run made that a measurable
    share of the run (a ``Timeout``'s ``__init__`` runs interpreted even in the compiled
    build). :func:`send` puts a message into the environment's queue as
    ``Environment.schedule`` would, at the time and priority the timeout would have had,
    with an event id from the same counter, so events keep exactly their order. It is never
    yielded on or waited for, and it never fails (``_ok``), which is all ``step`` checks:
    ``step`` delivers it if called, and :func:`run` delivers it without ``step``.
    """

    __slots__ = ("args", "callbacks", "fn")

    _ok = True

    def __init__(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.callbacks: tuple[Callable[[Message], None], ...] | None = _DELIVER


def _deliver(message: Message) -> None:
    message.fn(*message.args)


def send(env: simpy.Environment, delay: float, fn: Callable[..., None], *args: Any) -> None:
    """Call ``fn(*args)`` ``delay`` seconds from now (0 if negative), as a :class:`Message`
    in ``env``'s queue.

    What ``env.schedule`` does, written out: ``schedule`` runs interpreted even in the
    compiled build, and a run sends a message or more per piece."""
    queue: list[Any] = env._queue  # of (time, priority, event id, event)
    heappush(
        queue,
        (env._now + (delay if delay > 0.0 else 0.0), NORMAL, next(env._eid), Message(fn, args)),
    )


def run(env: simpy.Environment, until: simpy.Event) -> Any:
    """``env.run(until=until)`` for an event ``until``, with the messages of :func:`send`
    delivered by this loop.

    Every other event goes through ``env.step()``, and every event comes off the same
    queue in the same order, so nothing changes but the cost: simpy's ``run`` and ``step``
    run interpreted even in the compiled build, at a message or more per piece. A message
    needs none of ``step``'s work (its one callback is :func:`_deliver`, and it never
    fails), so it is popped and delivered here; a ``step`` patched to watch events sees
    the other events only. An environment of another type (the real-time one paces its
    steps) runs through its own ``run``.
    """
    if type(env) is not simpy.Environment:
        return env.run(until=until)
    # Read through an untyped name: simpy declares a list, but a processed event's
    # callbacks are None, and the compiled build checks a typed read against its type.
    event: Any = until
    callbacks = event.callbacks
    if callbacks is None:
        return until.value  # already processed
    callbacks.append(StopSimulation.callback)
    queue: list[Any] = env._queue
    try:
        while queue:
            entry = queue[0]
            head = entry[3]
            if type(head) is Message:
                heappop(queue)
                env._now = entry[0]
                head.callbacks = None
                head.fn(*head.args)
            else:
                env.step()
    except StopSimulation as stop:
        return stop.args[0]
    except EmptySchedule:
        pass  # from a callback's own step: as simpy's run, the error below
    raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}')


# One callbacks tuple shared by every message (``step`` replaces an event's callbacks with
# None once it has run them; it never appends to them).
_DELIVER = (_deliver,)


class Flow:
    """One transfer of ``size`` bytes from host ``src`` to host ``dst`` (host indices).

    While the flow is live its state, rate and progress are read from the network's
    arrays; once it is over they are kept here.
    """

    __slots__ = (
        "_activated_at",
        "_done_bytes",
        "_net",
        "_slot",
        "_state",
        "dst",
        "flow_id",
        "on_done",
        "size",
        "src",
        "started_at",
        "tag",
    )

    def __init__(
        self,
        network: FlowNetwork,
        slot: int,
        flow_id: int,
        src: int,
        dst: int,
        size: float,
        on_done: Callable[[Flow], None] | None,
        tag: Any,
        now: float,
    ) -> None:
        self._net = network
        self._slot = slot
        self.flow_id = flow_id
        self.src = src
        self.dst = dst
        self.size = size
        self.on_done = on_done
        self.tag = tag
        self.started_at = now
        # _state, _done_bytes and _activated_at are set when the flow is over.

    def _field(self, name: str) -> float:
        net = self._net
        return float(net._F[net._offset[name] + (self._slot << kernel.FLOW_FLOATS_SHIFT)])

    @property
    def state(self) -> int:
        """A :class:`FlowState` value."""
        if self._slot < 0:
            return self._state
        net = self._net
        return int(net._I[net._offset["state"] + (self._slot << net._flow_shift)])

    @property
    def rate(self) -> float:
        """Current rate (bytes/s); 0 once over."""
        return self._field("rate") if self._slot >= 0 else 0.0

    @property
    def done_bytes(self) -> float:
        """Bytes delivered up to the last re-rate of this flow (see :meth:`bytes_at`)."""
        return self._field("done") if self._slot >= 0 else self._done_bytes

    @property
    def activated_at(self) -> float:
        """When the first byte arrived and the flow was rated (inf while pending)."""
        return self._field("act") if self._slot >= 0 else self._activated_at

    @property
    def constraints(self) -> tuple[int, ...]:
        """Constraint ids this flow crosses: upload, download, then its links."""
        links, _ = self._net.path(self.src, self.dst)
        return (2 * self.src, 2 * self.dst + 1, *links)

    def bytes_at(self, now: float) -> float:
        """Bytes delivered by time ``now`` (exact for the current rate)."""
        if self._slot < 0 or self.state != FlowState.ACTIVE:
            return self.done_bytes
        mark = self._field("mark")
        return min(self.size, self._field("done") + self._field("rate") * (now - mark))

    def _finish(self, state: int, done_bytes: float, activated_at: float) -> None:
        self._activated_at = activated_at
        self._state = state
        self._done_bytes = done_bytes
        self._slot = -1

    def __repr__(self) -> str:
        return (
            f"Flow({self.flow_id}, {self.src}->{self.dst}, size={self.size:g}, "
            f"state={self.state}, rate={self.rate:g})"
        )


class FlowNetwork:
    """Hosts, links and the flows between them, advanced on a simpy environment.

    Build it with :meth:`add_host` and :meth:`add_link` (or :func:`network_from_graph`),
    then :meth:`start` flows. Host and link ids returned are small ints. ``capacity``,
    ``used`` and ``carried_bytes`` (per constraint) and ``bytes_sent`` and
    ``bytes_received`` (per host) are numpy views of the live arrays: read them, do not
    keep them across starts (the arrays are replaced when they grow).
    """

    def __init__(
        self, env: simpy.Environment, *, rerate: str = "local", quantum: float = 0.0
    ) -> None:
        if rerate not in ("local", "component"):
            raise ValueError(f"rerate must be 'local' or 'component', got {rerate!r}")
        if quantum < 0:
            raise ValueError("quantum must be >= 0")
        self.env = env
        self.rerate_mode = rerate
        self.quantum = quantum
        mode = kernel.MODE_COMPONENT if rerate == "component" else kernel.MODE_LOCAL
        self._F, self._I = kernel.allocate(
            _INITIAL_SLOTS, 2, _INITIAL_CONSTRAINTS, _INITIAL_PATHS, mode=mode, quantum=quantum
        )
        self._offset = kernel.offsets(self._I)
        self._flow_shift = int(self._I[kernel.H_FSHIFT])
        self._handles: list[Flow | None] = [None] * _INITIAL_SLOTS
        self.constraint_name: list[str] = []
        # Per host.
        self.host_names: list[Hashable] = []
        self.host_index: dict[Hashable, int] = {}
        # Paths. Each distinct (link constraints, one-way latency, kernel path id) is a
        # route, kept once; a host pair maps to its route's index under the int key
        # src << 32 | dst. A dict of ints holds no object the garbage collector tracks,
        # so the cache (a swarm's pairs number in the millions) costs collections nothing.
        self._path_fn: Callable[[int, int], tuple[tuple[int, ...], float]] | None = None
        self._pair_route: dict[int, int] = {}
        self._routes: list[tuple[tuple[int, ...], float, int]] = []
        self._route_index: dict[tuple[tuple[int, ...], float], int] = {}
        self._path_ids: dict[tuple[int, ...], int] = {(): 0}
        self._next_flow_id = 0
        self._timer_at = _INF
        self._timer_generation = 0
        # Completions may move the clock of a plain Environment themselves (see the module
        # doc); a subclass (the real-time one) keeps every step its own.
        self._forward = type(env) is simpy.Environment

    # -- arrays -----------------------------------------------------------------------

    def _constraint_field(self, name: str, n: int) -> np.ndarray:
        """A strided view of one float field of the first ``n`` constraints."""
        start = self._offset[name]
        return self._F[
            start : start + (n << kernel.CON_FLOATS_SHIFT) : 1 << kernel.CON_FLOATS_SHIFT
        ]

    def _grow(self, **room: int) -> None:
        self._F, self._I = kernel.grow(self._F, self._I, **room)
        self._offset = kernel.offsets(self._I)
        self._flow_shift = int(self._I[kernel.H_FSHIFT])
        cap = int(self._I[kernel.H_CAP])
        self._handles.extend([None] * (cap - len(self._handles)))

    @property
    def capacity(self) -> np.ndarray:
        """Capacity per constraint (bytes/s); change one with :meth:`set_capacity`."""
        return self._constraint_field("ccap", len(self.constraint_name))

    @property
    def used(self) -> np.ndarray:
        """Rate in use per constraint (bytes/s)."""
        return self._constraint_field("used", len(self.constraint_name))

    @property
    def carried_bytes(self) -> np.ndarray:
        """Bytes of completed and cancelled flows per constraint."""
        return self._constraint_field("carried", len(self.constraint_name))

    @property
    def bytes_sent(self) -> np.ndarray:
        """Bytes each host has sent (completed flows and cancelled flows' parts)."""
        return self._constraint_field("carried", 2 * len(self.host_names))[0::2]

    @property
    def bytes_received(self) -> np.ndarray:
        """Bytes each host has received."""
        return self._constraint_field("carried", 2 * len(self.host_names))[1::2]

    @property
    def active_flows(self) -> int:
        return int(self._I[kernel.H_ACTIVE])

    @property
    def completed_flows(self) -> int:
        return int(self._I[kernel.H_COMPLETED])

    @property
    def rerates(self) -> int:
        return int(self._I[kernel.H_RERATES])

    @property
    def flows_on(self) -> list[dict[int, Flow]]:
        """Per constraint, its active flows by id in the order they joined it (a copy,
        built on each call: for tests and inspection)."""
        handles = self._handles
        found = []
        for c in range(len(self.constraint_name)):
            flows = [handles[slot] for slot in kernel.flows_on(self._F, self._I, c)]
            found.append({f.flow_id: f for f in flows if f is not None})
        return found

    # -- building ---------------------------------------------------------------------

    def _add_constraint(self, capacity: float, name: str) -> int:
        if not capacity > 0:
            raise ValueError(f"capacity of {name} must be > 0, got {capacity!r}")
        c = len(self.constraint_name)
        if c == int(self._I[kernel.H_CCAP]):
            self._grow(ccap=2 * c)
        self._F[self._offset["ccap"] + (c << kernel.CON_FLOATS_SHIFT)] = float(capacity)
        self.constraint_name.append(name)
        self._I[kernel.H_NC] = c + 1
        return c

    def add_host(self, name: Hashable, upload_rate: float, download_rate: float) -> int:
        """Add a host; its upload is constraint ``2*h`` and download ``2*h + 1``.

        Hosts must be added before any link so that those constraint ids hold.
        """
        if len(self.constraint_name) != 2 * len(self.host_names):
            raise ValueError("add every host before the first link")
        if name in self.host_index:
            raise ValueError(f"host {name!r} added twice")
        index = len(self.host_names)
        self._add_constraint(upload_rate, f"{name}:up")
        self._add_constraint(download_rate, f"{name}:down")
        self.host_names.append(name)
        self.host_index[name] = index
        return index

    def add_link(self, name: str, capacity: float) -> int:
        """Add one directed link constraint and return its id."""
        return self._add_constraint(capacity, name)

    def set_path_function(
        self, path_fn: Callable[[int, int], tuple[tuple[int, ...], float]]
    ) -> None:
        """Set how a (src, dst) host pair maps to (link constraint ids, one-way latency)."""
        self._path_fn = path_fn
        self._pair_route.clear()

    def _lookup(self, src: int, dst: int) -> tuple[tuple[int, ...], float, int]:
        links, latency = self._path_fn(src, dst) if self._path_fn is not None else ((), 0.0)
        if links:
            links = tuple(map(int, links))
            path_id = self._path_ids.get(links)
            if path_id is None:
                path_id = self._add_path(links)
        else:
            links, path_id = (), 0
        latency = float(latency)
        index = self._route_index.get((links, latency))
        if index is None:
            index = len(self._routes)
            self._routes.append((links, latency, path_id))
            self._route_index[(links, latency)] = index
        self._pair_route[src << 32 | dst] = index
        return self._routes[index]

    def _add_path(self, links: tuple[int, ...]) -> int:
        if len(links) > _MAX_LINKS:
            raise ValueError(f"a path crosses {len(links)} links; at most {_MAX_LINKS}")
        n_constraints = len(self.constraint_name)
        if any(not 2 * len(self.host_names) <= c < n_constraints for c in links):
            raise ValueError(f"a path names constraints that are not links: {links}")
        path_id = int(self._I[kernel.H_NP])
        width = int(self._I[kernel.H_KW])
        if len(links) + 2 > width or path_id == int(self._I[kernel.H_PCAP]):
            self._grow(kw=len(links) + 2, pcap=2 * path_id)
            width = int(self._I[kernel.H_KW])
        self._I[self._offset["pn"] + path_id] = len(links)
        start = self._offset["plinks"] + path_id * width
        self._I[start : start + len(links)] = links
        self._I[kernel.H_NP] = path_id + 1
        self._path_ids[links] = path_id
        return path_id

    def path(self, src: int, dst: int) -> tuple[tuple[int, ...], float]:
        """The link constraints and the one-way latency from host ``src`` to ``dst``."""
        found = self.route(src, dst)
        return found[0], found[1]

    def route(self, src: int, dst: int) -> tuple[tuple[int, ...], float, int]:
        """The route from host ``src`` to ``dst`` (its link constraints, its one-way latency
        and the kernel's path id), for :meth:`start`'s ``route``: a caller that starts many
        flows between the same two hosts keeps it and skips the look-up. A kept route is
        valid until :meth:`set_path_function` is called again."""
        index = self._pair_route.get(src << 32 | dst)
        return self._lookup(src, dst) if index is None else self._routes[index]

    def latency(self, src: int, dst: int) -> float:
        """One-way latency between two hosts (seconds)."""
        return self.route(src, dst)[1]

    def set_capacity(self, constraint: int, capacity: float) -> None:
        """Change a capacity now (a slow host); the constraint is re-rated."""
        if not capacity > 0:
            raise ValueError("capacity must be > 0")
        self._F[self._offset["ccap"] + (constraint << kernel.CON_FLOATS_SHIFT)] = float(capacity)
        due = float(kernel.mark_dirty(self._F, self._I, constraint))
        self._request(max(self.env.now, due))

    # -- flows ------------------------------------------------------------------------

    def start(
        self,
        src: int,
        dst: int,
        size: float,
        on_done: Callable[[Flow], None] | None = None,
        tag: Any = None,
        *,
        first_byte_delay: float | None = None,
        route: tuple[tuple[int, ...], float, int] | None = None,
    ) -> Flow:
        """Start a transfer of ``size`` bytes; its bytes flow after the path latency.

        ``on_done(flow)`` is called at the exact completion time. ``first_byte_delay``
        overrides the path latency (seconds). ``route`` is what :meth:`route` returned for
        ``src`` and ``dst``, if the caller kept it. Returns the flow, which can be cancelled.
        """
        if src == dst:
            raise ValueError("a flow needs two different hosts")
        found = route if route is not None else self.route(src, dst)
        now = self.env._now
        when = now + (found[1] if first_byte_delay is None else first_byte_delay)
        size = float(size)
        slot = kernel.start(self._F, self._I, src, dst, size, now, when, found[2])
        if slot < 0:
            self._grow(cap=2 * len(self._handles))
            slot = kernel.start(self._F, self._I, src, dst, size, now, when, found[2])
        flow = Flow(self, slot, self._next_flow_id, src, dst, size, on_done, tag, now)
        self._next_flow_id += 1
        self._handles[slot] = flow
        if when < self._timer_at:
            self._arm(when)
        return flow

    def cancel(self, flow: Flow) -> float:
        """Stop a flow now; return the bytes it had delivered (counted as sent/received)."""
        slot = flow._slot
        if slot < 0:
            return flow._done_bytes
        activated_at = flow._field("act")
        delivered, due = kernel.cancel(self._F, self._I, slot, self.env.now)
        self._handles[slot] = None
        flow._finish(FlowState.CANCELLED, delivered, activated_at)
        self._request(due)
        return float(delivered)

    def _request(self, when: float) -> None:
        """Something is due at ``when`` (a re-rate): make sure a timer fires by then."""
        if when < self._timer_at:
            self._arm(when)

    # -- the clock --------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        self._timer_at = when
        self._timer_generation += 1
        send(self.env, when - self.env._now, self._on_timer, self._timer_generation)

    def _on_timer(self, generation: int) -> None:
        if generation != self._timer_generation:
            return  # a stale timer (an earlier one was armed since)
        env = self.env
        now = env._now
        queue = env._queue
        # While processing, pretend a timer is armed for now: requests made by callbacks
        # for now or later arm nothing (the loop below covers them).
        self._timer_at = now
        advance = kernel.advance
        handles = self._handles
        done = FlowState.DONE
        forward = self._forward
        while True:
            # The environment's next event (``env.peek()``, without its interpreted frame).
            upcoming = queue[0][0] if queue else _INF
            slot, when, activated_at = advance(self._F, self._I, now, upcoming, forward)
            if slot < 0:
                break
            if when != now:
                # A completion before the environment's next event: move the clock to it
                # rather than schedule a timer for it (see the module doc).
                env._now = now = when
                self._timer_at = now
            flow: Flow = handles[slot]
            handles[slot] = None
            flow._finish(done, flow.size, activated_at)
            if flow.on_done is not None:
                flow.on_done(flow)
            handles = self._handles  # a callback's start may have grown the arrays
        self._timer_at = _INF
        if when < _INF:
            self._arm(when)

    # -- inspection -------------------------------------------------------------------

    def rates(self, flows: Iterable[Flow]) -> list[float]:
        """Current rates of ``flows`` (bytes/s)."""
        return [flow.rate for flow in flows]

    def utilisation(self, constraint: int) -> float:
        """Fraction of a constraint's capacity in use now."""
        return float(self.used[constraint] / self.capacity[constraint])


def network_from_graph(
    env: simpy.Environment, graph: Any, *, rerate: str = "local", quantum: float = 0.0
) -> FlowNetwork:
    """Build a :class:`FlowNetwork` from a topology graph (see ``damselfly.topologies``).

    Nodes with ``role`` "host" or "origin" become hosts (the origin's download is never
    used); switches are free. Routes, their latencies and which directed links can bind
    come from :class:`damselfly.topologies.Paths` (lowest-latency routes, ECMP by a stable
    hash of the host pair, access links that cannot bind pruned: see the module doc); each
    directed link that can bind becomes one constraint named ``"a->b"``. Host index ``i``
    is the ``i``-th host node in graph order; ``network.host_index`` maps ids to indices.
    """
    from damselfly.topologies import Paths

    network = FlowNetwork(env, rerate=rerate, quantum=quantum)
    for node, data in graph.nodes(data=True):
        if data.get("role") in ("host", "origin"):
            upload = float(data["upload_rate"])
            network.add_host(node, upload, float(data.get("download_rate", upload)))
    paths = Paths(graph)
    link_of = {
        (a, b): network.add_link(f"{a}->{b}", float(capacity))
        for (a, b), capacity in paths.constraining_links().items()
    }
    names = network.host_names

    def path_fn(src: int, dst: int) -> tuple[tuple[int, ...], float]:
        route = paths.route(names[src], names[dst])  # type: ignore[arg-type]
        return tuple(link_of[link] for link in route.links), float(route.latency)

    network.set_path_function(path_fn)
    return network


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every kernel the network uses; returns the
    seconds it took. The first call on a machine compiles, which takes tens of seconds;
    later processes load the cache in about a second. Callers with a user waiting (the CLI)
    call it under a status line, so the first run does not look hung."""
    import time

    began = time.perf_counter()
    env = simpy.Environment()
    network = FlowNetwork(env)
    for host in range(3):
        network.add_host(host, 100.0, 100.0)
    link = network.add_link("shared", 50.0)
    network.set_path_function(lambda src, dst: ((link,) if dst == 2 else (), 0.001))
    network.start(0, 1, 10.0)  # the flat fast path
    network.start(0, 2, 10.0)  # a flow crossing a link: the general re-rate
    cancelled = network.start(1, 2, 10.0)
    env.run(until=0.01)
    network.cancel(cancelled)
    network.set_capacity(link, 60.0)
    env.run()
    return time.perf_counter() - began
