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
When flows start or end, their constraints become *dirty*. A re-rate takes every active
flow that crosses a dirty constraint (the set F), holds every other flow's rate fixed, and
computes the exact max-min fair allocation of F over all the constraints F crosses, each
with the capacity the fixed flows leave free. Two modes:

- ``rerate="component"``: the dirty set is first grown to the whole connected component
  of the flow-constraint graph, so the result is the exact global max-min allocation.
  Cost grows with the component, which in a swarm is the whole swarm: for tests and for
  measuring the error of the local mode.
- ``rerate="local"`` (the default): only the dirty constraints' flows are re-rated, one
  event's constraints at a time (those that gained a flow first; each constraint at most
  once per re-rate). The
  allocation is always feasible (no capacity is ever exceeded, so the model never beats
  physics) and it is max-min fair on the dirty constraints given the rest, but capacity that
  a re-rate frees at a *non*-dirty constraint (a flow slowed down by its sender leaves slack
  at its receiver) is only handed out when that constraint next has an event of its own.
  In a swarm every constraint has events every few hundred milliseconds (each piece start
  and end), so the slack is short-lived; tests/sim measure the throughput gap against the
  exact mode on random instances (makespans within 0.5% on the test's instances; the
  test allows 2%).

  Fast paths of the local mode, both exact for the subproblem: when every flow crosses
  just an upload and a download (a flat network), a start or end re-rates that pair of
  constraints by two water-fillings (sorted bounds) instead of general progressive
  filling; and a flow that ends re-rates only the sides it leaves that were saturated (on
  an unsaturated constraint every flow is held by its other end, which did not change).

Batching: re-rates happen once per event instant (all starts and ends at the same time
share one re-rate, which is exact). With ``quantum > 0`` dirty constraints are re-rated at
most once per ``quantum`` seconds: completions stay exact under the current rates, but
freed capacity idles and new flows wait (at rate zero) until the next re-rate, for up to
``quantum`` seconds. It is off by default (measured in swarms: makespan +2% to +4% at 1 to
5 ms, and no speed gain, since the cost is per constraint re-rated, not per re-rate).

Scheduling: the network keeps one completion heap of its own, ordered by time, and drives
it with simpy timeouts (which cannot be cancelled: a timeout whose generation is stale does
nothing). A heap entry may be early (a flow slowed down after it was pushed); when it pops,
the flow's true finish time is recomputed and the entry re-pushed if needed, so slowing a
flow down costs no heap push at all. Flows report completion through a plain callback.

Units: bytes as floats internally (rates times times), reported per flow as its int size.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import simpy

__all__ = ["Flow", "FlowNetwork", "FlowState"]

# A completion is taken when the remaining transfer time is below this (seconds). At
# 10 Gbit/s it is about 1 byte.
_TIME_TOLERANCE = 1e-9
_INF = math.inf
# A constraint counts as saturated when its use is within this factor of its capacity.
_SATURATED = 1.0 - 1e-9
_UP_SIDE = 1
_DOWN_SIDE = 2
_BOTH_SIDES = 3


class FlowState:
    """States of a flow (small ints for speed; a flow only moves forward)."""

    PENDING = 0  # started, first byte still on its way
    ACTIVE = 1  # rated, moving bytes
    DONE = 2  # every byte delivered, callback made
    CANCELLED = 3  # stopped early (a crash); partial bytes counted


class Flow:
    """One transfer of ``size`` bytes from host ``src`` to host ``dst`` (host indices)."""

    __slots__ = (
        "activated_at",
        "constraints",
        "done_bytes",
        "dst",
        "flow_id",
        "heap_time",
        "mark_time",
        "on_done",
        "rate",
        "size",
        "src",
        "started_at",
        "state",
        "tag",
    )

    def __init__(
        self,
        flow_id: int,
        src: int,
        dst: int,
        size: float,
        constraints: tuple[int, ...],
        on_done: Callable[[Flow], None] | None,
        tag: Any,
        now: float,
    ) -> None:
        self.flow_id = flow_id
        self.src = src
        self.dst = dst
        self.size = size
        self.constraints = constraints
        self.on_done = on_done
        self.tag = tag
        self.state = FlowState.PENDING
        self.rate = 0.0
        self.done_bytes = 0.0
        self.mark_time = now
        self.heap_time = _INF
        self.started_at = now
        self.activated_at = _INF

    def bytes_at(self, now: float) -> float:
        """Bytes delivered by time ``now`` (exact for the current rate)."""
        if self.state == FlowState.ACTIVE:
            return min(self.size, self.done_bytes + self.rate * (now - self.mark_time))
        return self.done_bytes

    def __repr__(self) -> str:
        return (
            f"Flow({self.flow_id}, {self.src}->{self.dst}, size={self.size:g}, "
            f"state={self.state}, rate={self.rate:g})"
        )


class FlowNetwork:
    """Hosts, links and the flows between them, advanced on a simpy environment.

    Build it with :meth:`add_host` and :meth:`add_link` (or :meth:`from_graph`), then
    :meth:`start` flows. Host and link ids returned are small ints.
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
        # Per constraint (flat lists): capacity, rate in use, active flows by id (insertion
        # ordered dicts: iteration order must not depend on memory addresses).
        self.capacity: list[float] = []
        self.used: list[float] = []
        self.flows_on: list[dict[int, Flow]] = []
        self.carried_bytes: list[float] = []  # completed and cancelled bytes per constraint
        self.constraint_name: list[str] = []
        # Per host.
        self.host_names: list[Hashable] = []
        self.host_index: dict[Hashable, int] = {}
        self.bytes_sent: list[float] = []
        self.bytes_received: list[float] = []
        # Paths: (src, dst) -> (link constraints, one-way latency)
        self._path_fn: Callable[[int, int], tuple[tuple[int, ...], float]] | None = None
        self._path_cache: dict[tuple[int, int], tuple[tuple[int, ...], float]] = {}
        self._heap: list[tuple[float, int, Flow]] = []
        self._seq = 0
        self._next_flow_id = 0
        self._has_links = False
        self._dirty: dict[int, None] = {}
        # (upload, download) pairs of flows that crossed no link (the flat-network case).
        # and which sides of them need a re-rate (bit 1: the upload, bit 2: the download).
        self._dirty_pairs: dict[tuple[int, ...], int] = {}
        self._timer_at = _INF
        self._timer_generation = 0
        self._last_rerate = -_INF
        self.active_flows = 0
        self.completed_flows = 0
        self.rerates = 0

    # -- building ---------------------------------------------------------------------

    def _add_constraint(self, capacity: float, name: str) -> int:
        if not capacity > 0:
            raise ValueError(f"capacity of {name} must be > 0, got {capacity!r}")
        self.capacity.append(float(capacity))
        self.used.append(0.0)
        self.flows_on.append({})
        self.carried_bytes.append(0.0)
        self.constraint_name.append(name)
        return len(self.capacity) - 1

    def add_host(self, name: Hashable, upload_rate: float, download_rate: float) -> int:
        """Add a host; its upload is constraint ``2*h`` and download ``2*h + 1``.

        Hosts must be added before any link so that those constraint ids hold.
        """
        if len(self.capacity) != 2 * len(self.host_names):
            raise ValueError("add every host before the first link")
        if name in self.host_index:
            raise ValueError(f"host {name!r} added twice")
        index = len(self.host_names)
        self.host_names.append(name)
        self.host_index[name] = index
        self.bytes_sent.append(0.0)
        self.bytes_received.append(0.0)
        self._add_constraint(upload_rate, f"{name}:up")
        self._add_constraint(download_rate, f"{name}:down")
        return index

    def add_link(self, name: str, capacity: float) -> int:
        """Add one directed link constraint and return its id."""
        self._has_links = True
        return self._add_constraint(capacity, name)

    def set_path_function(
        self, path_fn: Callable[[int, int], tuple[tuple[int, ...], float]]
    ) -> None:
        """Set how a (src, dst) host pair maps to (link constraint ids, one-way latency)."""
        self._path_fn = path_fn
        self._path_cache.clear()

    def path(self, src: int, dst: int) -> tuple[tuple[int, ...], float]:
        """The link constraints and the one-way latency from host ``src`` to ``dst``."""
        key = (src, dst)
        found = self._path_cache.get(key)
        if found is None:
            found = self._path_fn(src, dst) if self._path_fn is not None else ((), 0.0)
            self._path_cache[key] = found
        return found

    def latency(self, src: int, dst: int) -> float:
        """One-way latency between two hosts (seconds)."""
        return self.path(src, dst)[1]

    def set_capacity(self, constraint: int, capacity: float) -> None:
        """Change a capacity now (a slow host); the constraint is re-rated."""
        if not capacity > 0:
            raise ValueError("capacity must be > 0")
        self.capacity[constraint] = float(capacity)
        self._mark_dirty(constraint)

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
    ) -> Flow:
        """Start a transfer of ``size`` bytes; its bytes flow after the path latency.

        ``on_done(flow)`` is called at the exact completion time. ``first_byte_delay``
        overrides the path latency (seconds). Returns the flow, which can be cancelled.
        """
        if src == dst:
            raise ValueError("a flow needs two different hosts")
        links, latency = self.path(src, dst)
        now = self.env.now
        constraints = (2 * src, 2 * dst + 1, *links)
        flow = Flow(self._next_flow_id, src, dst, float(size), constraints, on_done, tag, now)
        self._next_flow_id += 1
        delay = latency if first_byte_delay is None else first_byte_delay
        when = now + delay
        # An activation entry: a PENDING flow popping from the heap becomes ACTIVE.
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, flow))
        flow.heap_time = when
        if when < self._timer_at:
            self._arm(when)
        return flow

    def cancel(self, flow: Flow) -> float:
        """Stop a flow now; return the bytes it had delivered (counted as sent/received)."""
        if flow.state >= FlowState.DONE:
            return flow.done_bytes if flow.state == FlowState.CANCELLED else flow.size
        now = self.env.now
        delivered = flow.bytes_at(now)
        if flow.state == FlowState.ACTIVE:
            self._detach(flow, delivered)
        flow.state = FlowState.CANCELLED
        flow.done_bytes = delivered
        flow.rate = 0.0
        flow.heap_time = _INF
        return delivered

    def _detach(self, flow: Flow, delivered: float) -> None:
        fid = flow.flow_id
        rate = flow.rate
        used = self.used
        flows_on = self.flows_on
        carried = self.carried_bytes
        constraints = flow.constraints
        if len(constraints) == 2:
            self._mark_pair_after_removal(constraints)
        for c in constraints:
            del flows_on[c][fid]
            used[c] -= rate
            carried[c] += delivered
        if len(constraints) != 2:
            self._dirty.update(dict.fromkeys(constraints))
        self.bytes_sent[flow.src] += delivered
        self.bytes_received[flow.dst] += delivered
        self.active_flows -= 1
        self._request_rerate()

    def _mark_pair_after_removal(self, pair: tuple[int, ...]) -> None:
        """A flow is about to leave ``pair``: only a saturated side can give its share to
        the flows left there (on an unsaturated side, every flow is held by its other end,
        which this removal does not change), so only saturated sides are re-rated."""
        used = self.used
        capacity = self.capacity
        up, down = pair
        sides = 0
        if used[up] >= capacity[up] * _SATURATED:
            sides = _UP_SIDE
        if used[down] >= capacity[down] * _SATURATED:
            sides |= _DOWN_SIDE
        if sides:
            dirty = self._dirty_pairs
            dirty[pair] = dirty.get(pair, 0) | sides

    def _mark_dirty(self, constraint: int) -> None:
        self._dirty[constraint] = None
        self._request_rerate()

    def _request_rerate(self) -> None:
        now = self.env.now
        when = max(now, self._last_rerate + self.quantum)
        if when < self._timer_at:
            self._arm(when)

    # -- the clock --------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        self._timer_at = when
        self._timer_generation += 1
        delay = when - self.env.now
        timeout = self.env.timeout(delay if delay > 0.0 else 0.0, self._timer_generation)
        timeout.callbacks.append(self._on_timer)

    def _on_timer(self, event: simpy.Event) -> None:
        if event.value != self._timer_generation:
            return  # a stale timer (an earlier one was armed since)
        now = self.env.now
        # While processing, pretend a timer is armed for now: requests made by callbacks
        # for now or later arm nothing (this loop and the tail below cover them).
        self._timer_at = now
        heap = self._heap
        limit = now + _TIME_TOLERANCE
        pop = heapq.heappop
        push = heapq.heappush
        pending = FlowState.PENDING
        active = FlowState.ACTIVE
        while heap and heap[0][0] <= limit:
            when, _, flow = pop(heap)
            if when != flow.heap_time:
                continue  # superseded by an earlier entry, or the flow is over
            state = flow.state
            if state == pending:
                self._activate(flow, now)
            elif state == active:
                rate = flow.rate
                remaining = flow.size - flow.done_bytes - rate * (now - flow.mark_time)
                if rate > 0.0 and remaining <= rate * _TIME_TOLERANCE:
                    self._complete(flow, now)
                else:
                    # The entry was early: the flow slowed down after it was pushed.
                    finish = now + remaining / rate if rate > 0.0 else _INF
                    flow.heap_time = finish
                    if finish < _INF:
                        self._seq += 1
                        push(heap, (finish, self._seq, flow))
        while heap and heap[0][0] != heap[0][2].heap_time:
            pop(heap)  # stale: arming a timer for it would be wasted (and move the clock)
        next_time = heap[0][0] if heap else _INF
        if self._dirty or self._dirty_pairs:
            due = self._last_rerate + self.quantum
            if now >= due - _TIME_TOLERANCE:
                self._rerate(now)
                while heap and heap[0][0] != heap[0][2].heap_time:
                    pop(heap)
                next_time = heap[0][0] if heap else _INF
            elif due < next_time:
                next_time = due
        self._timer_at = _INF
        if next_time < _INF:
            self._arm(next_time)

    def _activate(self, flow: Flow, now: float) -> None:
        flow.state = FlowState.ACTIVE
        flow.activated_at = now
        flow.mark_time = now
        flow.heap_time = _INF
        fid = flow.flow_id
        flows_on = self.flows_on
        constraints = flow.constraints
        for c in constraints:
            flows_on[c][fid] = flow
        if len(constraints) == 2:
            self._dirty_pairs[constraints] = _BOTH_SIDES
        else:
            self._dirty.update(dict.fromkeys(constraints))
        self.active_flows += 1

    def _complete(self, flow: Flow, now: float) -> None:
        flow.state = FlowState.DONE
        size = flow.size
        flow.done_bytes = size
        fid = flow.flow_id
        rate = flow.rate
        used = self.used
        flows_on = self.flows_on
        carried = self.carried_bytes
        constraints = flow.constraints
        if len(constraints) == 2:
            self._mark_pair_after_removal(constraints)
        for c in constraints:
            del flows_on[c][fid]
            used[c] -= rate
            carried[c] += size
        if len(constraints) != 2:
            self._dirty.update(dict.fromkeys(constraints))
        flow.rate = 0.0
        flow.heap_time = _INF
        self.bytes_sent[flow.src] += size
        self.bytes_received[flow.dst] += size
        self.active_flows -= 1
        self.completed_flows += 1
        if flow.on_done is not None:
            flow.on_done(flow)

    # -- max-min re-rating ------------------------------------------------------------

    def _dirty_component(self) -> list[int]:
        """Grow the dirty set to its connected component (for ``rerate='component'``)."""
        seen = dict(self._dirty)
        stack = list(seen)
        flows_on = self.flows_on
        while stack:
            c = stack.pop()
            for flow in flows_on[c].values():
                for other in flow.constraints:
                    if other not in seen:
                        seen[other] = None
                        stack.append(other)
        return list(seen)

    def _rerate(self, now: float) -> None:
        """Re-rate what the events since the last re-rate touched (see the module doc)."""
        self._last_rerate = now
        self.rerates += 1
        pairs = self._dirty_pairs
        self._dirty_pairs = {}
        if self.rerate_mode == "component":
            for pair in pairs:
                self._dirty.update(dict.fromkeys(pair))
            dirty = self._dirty_component()
            self._dirty = {}
            self._rerate_constraints(dirty, now)
            return
        # Pairs that gained a flow first (they need the joint fill); then lone sides that
        # no pair of this re-rate has just re-rated (re-rating them again would change
        # nothing: everything on them was filled against the current state).
        covered: set[int] = set()
        for (upload, download), sides in pairs.items():
            if sides == _BOTH_SIDES:
                self._rerate_pair(upload, download, now)
                covered.add(upload)
                covered.add(download)
        for (upload, download), sides in pairs.items():
            if sides == _UP_SIDE and upload not in covered:
                self._rerate_side(upload, sides, now)
                covered.add(upload)
            elif sides == _DOWN_SIDE and download not in covered:
                self._rerate_side(download, sides, now)
                covered.add(download)
        if self._dirty:
            dirty = list(self._dirty)
            self._dirty = {}
            self._rerate_constraints(dirty, now)

    def _rerate_pair(self, upload: int, download: int, now: float) -> None:
        """Exact max-min for the flows on one upload and one download constraint.

        The fast path of the flat network: every flow crosses exactly its sender's upload
        and its receiver's download. Flows on ``upload`` (to other receivers) are bounded by
        what their receivers' downloads leave free, flows on ``download`` by their senders'
        uploads; flows from this sender to this receiver cross both. Progressive filling
        then saturates whichever constraint has the lower water level first, freezes its
        flows, and fills the other with those fixed: exact for this subproblem.
        """
        flows_on = self.flows_on
        up_flows = flows_on[upload]
        down_flows = flows_on[download]
        if not up_flows and not down_flows:
            return
        if self._has_links and self._any_linked(up_flows, down_flows):
            self._rerate_constraints([upload, download], now)
            return
        capacity = self.capacity
        used = self.used
        up_list = list(up_flows.values())
        down_list = list(down_flows.values())
        # Flows from this sender to this receiver cross both constraints.
        shared = up_flows.keys() & down_flows.keys() if up_list and down_list else ()
        # Bounds from the other end of each flow: what it leaves free to the flow.
        up_bounds = _end_bounds(up_list, 1, capacity, used, shared)
        down_bounds = _end_bounds(down_list, 0, capacity, used, shared)
        level_up = _water_level(capacity[upload], up_bounds)
        level_down = _water_level(capacity[download], down_bounds)
        if not shared:
            # Independent: each side is one water-filling.
            self._apply_pair(up_list, up_bounds, level_up, now)
            self._apply_pair(down_list, down_bounds, level_down, now)
            return
        # Progressive filling saturates the lower level first; its shared flows are then
        # fixed for the other side (their rate is at most the lower level, so the other
        # side's level can only rise: the order is consistent).
        if level_up <= level_down:
            fixed = {f.flow_id: min(b, level_up) for f, b in zip(up_list, up_bounds, strict=True)}
            down_bounds = [
                fixed[f.flow_id] if f.flow_id in shared else b
                for f, b in zip(down_list, down_bounds, strict=True)
            ]
            level_down = _water_level(capacity[download], down_bounds)
        else:
            fixed = {
                f.flow_id: min(b, level_down) for f, b in zip(down_list, down_bounds, strict=True)
            }
            up_bounds = [
                fixed[f.flow_id] if f.flow_id in shared else b
                for f, b in zip(up_list, up_bounds, strict=True)
            ]
            level_up = _water_level(capacity[upload], up_bounds)
        self._apply_pair(up_list, up_bounds, level_up, now)
        # Shared flows already hold their rate; the download side leaves them as they are.
        self._apply_pair(down_list, down_bounds, level_down, now)

    @staticmethod
    def _any_linked(first: dict[int, Flow], second: dict[int, Flow]) -> bool:
        """Whether a flow here crosses a link (the pair fast path needs none to)."""
        for flows in (first, second):
            for flow in flows.values():
                if len(flow.constraints) != 2:
                    return True
        return False

    def _rerate_side(self, constraint: int, side: int, now: float) -> None:
        """Max-min on one constraint alone, every other constraint held (a removal)."""
        flows = list(self.flows_on[constraint].values())
        if not flows:
            return
        if self._has_links and self._any_linked(self.flows_on[constraint], {}):
            self._rerate_constraints([constraint], now)
            return
        # Flows on an upload are bounded by their receivers (constraints[1]), and the
        # other way round.
        bounds = _end_bounds(flows, 1 if side == _UP_SIDE else 0, self.capacity, self.used, ())
        self._apply_pair(flows, bounds, _water_level(self.capacity[constraint], bounds), now)

    def _apply_pair(self, flows: list[Flow], bounds: list[float], level: float, now: float) -> None:
        """Give each flow ``min(bound, level)``; flows crossing exactly two constraints."""
        used = self.used
        heap = self._heap
        for flow, bound in zip(flows, bounds, strict=True):
            rate = bound if bound < level else level
            old = flow.rate
            if rate == old:
                continue
            done = flow.done_bytes + old * (now - flow.mark_time)
            flow.done_bytes = done
            flow.mark_time = now
            flow.rate = rate
            delta = rate - old
            up, down = flow.constraints
            used[up] += delta
            used[down] += delta
            if rate > 0.0:
                finish = now + (flow.size - done) / rate
                if finish < flow.heap_time:
                    flow.heap_time = finish
                    self._seq += 1
                    heapq.heappush(heap, (finish, self._seq, flow))

    def _apply(self, flows: list[Flow], rates: list[float], now: float) -> None:
        """Give ``flows`` their new ``rates``: move progress marks, keep ``used`` exact."""
        used = self.used
        heap = self._heap
        for flow, rate in zip(flows, rates, strict=True):
            old = flow.rate
            if rate == old:
                continue
            flow.done_bytes += old * (now - flow.mark_time)
            flow.mark_time = now
            flow.rate = rate
            delta = rate - old
            for c in flow.constraints:
                used[c] += delta
            if rate > 0.0:
                finish = now + (flow.size - flow.done_bytes) / rate
                if finish < flow.heap_time:
                    flow.heap_time = finish
                    self._seq += 1
                    heapq.heappush(heap, (finish, self._seq, flow))
            # A slower flow keeps its early entry; it is re-pushed when that entry pops.
            # A flow at rate zero keeps it too and is dropped (pushed at infinity) then.

    def _rerate_constraints(self, dirty: list[int], now: float) -> None:
        """Exact max-min for every flow crossing a ``dirty`` constraint, others held fixed."""
        flows_on = self.flows_on
        flows: dict[int, Flow] = {}
        for c in dirty:
            flows.update(flows_on[c])
        if not flows:
            return
        capacity = self.capacity
        used = self.used
        # Capacity left to the re-rated flows on each constraint they cross, and how many
        # of them cross it.
        free: dict[int, float] = {}
        count: dict[int, int] = {}
        for flow in flows.values():
            rate = flow.rate
            for c in flow.constraints:
                if c in free:
                    free[c] += rate
                    count[c] += 1
                else:
                    free[c] = capacity[c] - used[c] + rate
                    count[c] = 1
        # Progressive filling with a lazy heap of fair shares; a constraint's share only
        # grows as flows freeze at the current (lowest) level, so stale entries are skipped.
        shares = [(free[c] / n, c) for c, n in count.items()]
        heapq.heapify(shares)
        new_rate: dict[int, float] = {}
        pop = heapq.heappop
        push = heapq.heappush
        while shares:
            share, c = pop(shares)
            n = count[c]
            if n == 0 or share != free[c] / n:
                continue
            level = share if share > 0.0 else 0.0
            for fid, flow in flows_on[c].items():
                if fid in new_rate or fid not in flows:
                    continue
                new_rate[fid] = level
                for other in flow.constraints:
                    free[other] -= level
                    m = count[other] - 1
                    count[other] = m
                    if m > 0 and other != c:
                        push(shares, (free[other] / m, other))
        flow_list = list(flows.values())
        self._apply(flow_list, [new_rate[f.flow_id] for f in flow_list], now)

    # -- inspection -------------------------------------------------------------------

    def rates(self, flows: Iterable[Flow]) -> list[float]:
        """Current rates of ``flows`` (bytes/s)."""
        return [flow.rate for flow in flows]

    def utilisation(self, constraint: int) -> float:
        """Fraction of a constraint's capacity in use now."""
        return self.used[constraint] / self.capacity[constraint]


def _end_bounds(
    flows: list[Flow], end: int, capacity: list[float], used: list[float], shared: Any
) -> list[float]:
    """Per flow, what its constraint ``flow.constraints[end]`` leaves it free.

    Flows in ``shared`` (ids of flows crossing both re-rated constraints) are unbounded.
    Parallel flows sharing their other end split its free capacity equally (they are
    identical flows, so max-min gives them equal rates).
    """
    if not flows:
        return []
    others = [f.constraints[end] for f in flows]
    if len(set(others)) == len(others):
        bounds = [capacity[c] - used[c] + f.rate for f, c in zip(flows, others, strict=True)]
    else:
        free: dict[int, float] = {}
        count: dict[int, int] = {}
        for f, c in zip(flows, others, strict=True):
            if c in free:
                free[c] += f.rate
                count[c] += 1
            else:
                free[c] = capacity[c] - used[c] + f.rate
                count[c] = 1
        bounds = [free[c] / count[c] for c in others]
    if shared:
        for i, f in enumerate(flows):
            if f.flow_id in shared:
                bounds[i] = _INF
    return bounds


def _water_level(capacity: float, bounds: list[float]) -> float:
    """The level L with sum(min(b, L) for b in bounds) == capacity (inf if never reached)."""
    n = len(bounds)
    if n == 0:
        return _INF
    share = capacity / n
    if min(bounds) >= share:
        return share  # the common case: nobody is held below an equal share
    remaining = capacity
    for i, bound in enumerate(sorted(bounds)):
        share = remaining / (n - i)
        if bound >= share:
            return share if share > 0.0 else 0.0
        remaining -= bound
    return _INF


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
