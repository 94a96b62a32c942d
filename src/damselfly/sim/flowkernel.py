"""The flow network's compiled kernel: flows, constraints and the completion heap as arrays.

:mod:`damselfly.sim.network` documents the model; this module holds its state and the hot
path (start, activate, complete, cancel, max-min re-rate, the heap), compiled with numba
(``cache=True``: compiled once per machine, then loaded from ``__pycache__``).

State lives in two flat arrays, one float64 (``F``) and one int64 (``I``), so that a call
from Python unboxes two arrays (each extra array argument costs about 55 ns a call). Each
array is cut into *regions*, one per field, whose offsets sit in the header of ``I``; the
kernel reads them through a named tuple of offsets (:func:`views`). Regions are sized by:

- ``flow``: flow *slots* (a live flow holds one; freed slots are reused, last freed first);
- ``node``: slots x ``kw``, the constraint ids a flow crosses (its sender's upload, its
  receiver's download, then its path's links) and, per (flow, constraint) membership, the
  links of that constraint's doubly linked list of flows (insertion order, so iteration
  never depends on memory addresses);
- ``con``: constraints (capacity, rate in use, bytes carried, the list heads, dirty marks);
- ``heap``: the completion heap, entries (time, seq, slot); an entry is valid while its
  seq is the flow's current one (a freed and reused slot never matches an old entry);
- ``path``: distinct link sequences, so a start passes one path id;
- ``work``: scratch for the progressive filling's heap of fair shares.

Python grows the arrays (:func:`grow`), copying every region; node ids (``slot * kw + k``)
are renumbered when ``kw`` grows.
"""

# The two state arrays are F (floats) and I (ints) everywhere in this module.
# ruff: noqa: E741
# The compiled functions are typed by numba at their first call, not annotated.
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False

from __future__ import annotations

import math
from collections import namedtuple

import numba
import numpy as np

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "DONE",
    "PENDING",
    "advance",
    "allocate",
    "cancel",
    "flows_on",
    "grow",
    "mark_dirty",
    "start",
]

# A completion is taken when the remaining transfer time is below this (seconds). At
# 10 Gbit/s it is about 1 byte. Heap entries this close are one event instant.
TIME_TOLERANCE = 1e-9
# A constraint counts as saturated when its use is within this factor of its capacity.
SATURATED = 1.0 - 1e-9

# Flow states (a flow only moves forward).
PENDING = 0  # started, first byte still on its way
ACTIVE = 1  # rated, moving bytes
DONE = 2  # every byte delivered
CANCELLED = 3  # stopped early

MODE_LOCAL = 0
MODE_COMPONENT = 1

# Header of I: sizes, counters, then region offsets.
H_CAP = 0  # flow slots
H_KW = 1  # constraint ids per slot
H_CCAP = 2  # constraint room
H_HCAP = 3  # heap room
H_PCAP = 4  # path room
H_WCAP = 5  # scratch room
H_NC = 6  # constraints in use
H_NP = 7  # paths in use
H_HEAP_N = 8
H_SEQ = 9
H_ACTIVE = 10
H_COMPLETED = 11
H_RERATES = 12
H_FREE = 13  # first free slot, -1 when none
H_DIRTY_N = 14
H_MODE = 15
H_EPOCH = 16
H_KWSHIFT = 17  # kw is a power of two: node ids are (slot << shift) + k
H_FLAT_FILL = 18  # 1: the flat fast path of the re-rate is on (0 only to test it)
H_OFFSETS = 32
I_HEADER = 96
# Header of F.
F_LAST_RERATE = 0
F_QUANTUM = 1
F_HEADER = 8

# Regions: (name, size class), in order; an index constant per region below.
F_REGIONS = (
    ("size", "flow"),
    ("done", "flow"),  # bytes delivered up to ``mark``
    ("rate", "flow"),
    ("mark", "flow"),  # when ``done`` was last brought up to date
    ("act", "flow"),  # activation time (inf while pending)
    ("htime", "flow"),  # time of the flow's valid heap entry (inf: none)
    ("new", "flow"),  # scratch: the rate a re-rate computes
    ("ccap", "con"),
    ("used", "con"),
    ("carried", "con"),
    ("free", "con"),  # scratch: capacity left to the re-rated flows
    ("ht", "heap"),
    ("ws", "work"),
)
I_REGIONS = (
    ("state", "flow"),
    ("ncons", "flow"),
    ("fseq", "flow"),  # seq of the flow's valid heap entry (-1: none)
    ("epin", "flow"),  # epoch of the last re-rate that took the flow in
    ("eprated", "flow"),  # epoch of the last re-rate that rated it
    ("nextfree", "flow"),
    ("cons", "node"),
    ("lnext", "node"),
    ("lprev", "node"),
    ("head", "con"),
    ("tail", "con"),
    ("count", "con"),
    ("dirty", "con"),
    ("cep", "con"),  # epoch of the last re-rate that touched the constraint
    ("cn", "con"),  # scratch: re-rated flows still unrated on it
    ("dlist", "con"),  # dirty constraints, in the order they became dirty
    ("touched", "con"),
    ("hseq", "heap"),
    ("hslot", "heap"),
    ("pn", "path"),
    ("plinks", "pathnode"),
    ("wc", "work"),
    ("wflows", "flow"),
    ("cpart", "con"),  # scratch: the dirty constraint a touched constraint's flows share
)
# Region offsets by name, for the kernel (see views).
Views = namedtuple("Views", [name for name, _ in F_REGIONS + I_REGIONS])  # type: ignore[misc]
F_INDEX = {name: i for i, (name, _) in enumerate(F_REGIONS)}
I_INDEX = {name: len(F_REGIONS) + i for i, (name, _) in enumerate(I_REGIONS)}


def _sizes(cap: int, kw: int, ccap: int, hcap: int, pcap: int) -> dict[str, int]:
    return {
        "flow": cap,
        "node": cap * kw,
        "con": ccap,
        "heap": hcap,
        "path": pcap,
        "pathnode": pcap * kw,
        "work": ccap + kw * cap,
    }


def offsets(I: np.ndarray) -> dict[str, int]:
    """Region name -> offset into its array (F or I)."""
    found = {}
    for name, index in F_INDEX.items():
        found[name] = int(I[H_OFFSETS + index])
    for name, index in I_INDEX.items():
        found[name] = int(I[H_OFFSETS + index])
    return found


def allocate(
    cap: int, kw: int, ccap: int, pcap: int, *, mode: int, quantum: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fresh arrays: no constraint, no flow, one empty path (id 0)."""
    F = np.zeros(F_HEADER, dtype=np.float64)
    I = np.zeros(I_HEADER, dtype=np.int64)
    I[H_FREE] = -1
    I[H_MODE] = mode
    I[H_FLAT_FILL] = 1
    F[F_LAST_RERATE] = -math.inf
    F[F_QUANTUM] = quantum
    F, I = grow(F, I, cap=cap, kw=kw, ccap=ccap, pcap=pcap)
    I[H_NP] = 1  # path 0: no link
    return F, I


def grow(
    F: np.ndarray,
    I: np.ndarray,
    *,
    cap: int | None = None,
    kw: int | None = None,
    ccap: int | None = None,
    pcap: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``F`` and ``I`` with more room; every region is carried over."""
    old_cap, old_kw = int(I[H_CAP]), int(I[H_KW])
    old_ccap, old_pcap = int(I[H_CCAP]), int(I[H_PCAP])
    cap = max(cap or 0, old_cap)
    kw = max(kw or 0, old_kw)
    kw = 1 << (kw - 1).bit_length()  # a power of two, so node ids split by shifts
    ccap = max(ccap or 0, old_ccap)
    pcap = max(pcap or 0, old_pcap)
    hcap = 2 * cap + 16  # room left after dropping stale entries: see _push
    old_hcap = int(I[H_HCAP])
    old = _sizes(old_cap, old_kw, old_ccap, old_hcap, old_pcap)
    new = _sizes(cap, kw, ccap, hcap, pcap)
    old_off = offsets(I) if old_cap or old_ccap else None
    new_f = np.zeros(F_HEADER + sum(new[k] for _, k in F_REGIONS), dtype=np.float64)
    new_i = np.zeros(I_HEADER + sum(new[k] for _, k in I_REGIONS), dtype=np.int64)
    new_f[:F_HEADER] = F[:F_HEADER]
    new_i[:I_HEADER] = I[:I_HEADER]
    position = F_HEADER
    for name, kind in F_REGIONS:
        new_i[H_OFFSETS + F_INDEX[name]] = position
        position += new[kind]
    position = I_HEADER
    for name, kind in I_REGIONS:
        new_i[H_OFFSETS + I_INDEX[name]] = position
        position += new[kind]
    new_off = offsets(new_i)

    def region(array: np.ndarray, off: dict[str, int], name: str, size: int) -> np.ndarray:
        return array[off[name] : off[name] + size]

    for regions, src, dst in ((F_REGIONS, F, new_f), (I_REGIONS, I, new_i)):
        for name, kind in regions:
            target = region(dst, new_off, name, new[kind])
            # Defaults for the new room.
            if name in ("act", "htime", "ht"):
                target[:] = math.inf
            elif name in ("fseq", "epin", "eprated", "head", "tail", "cep", "lnext", "lprev"):
                target[:] = -1
            if old_off is None or kind == "work":
                continue
            before = region(src, old_off, name, old[kind])
            if kind in ("node", "pathnode"):
                rows = old_cap if kind == "node" else old_pcap
                shaped = target.reshape(-1, kw)
                shaped[:rows, :old_kw] = before.reshape(rows, old_kw)
            else:
                target[: old[kind]] = before
    if old_off is not None and kw != old_kw:
        # Node ids are slot * kw + k: renumber every stored one.
        for name in ("lnext", "lprev", "head", "tail"):
            kind = "node" if name in ("lnext", "lprev") else "con"
            ids = region(new_i, new_off, name, new[kind])
            live = ids >= 0
            ids[live] = (ids[live] // old_kw) * kw + ids[live] % old_kw
    # New slots join the free list (lowest first), ahead of the slots already free.
    nextfree = region(new_i, new_off, "nextfree", cap)
    if cap > old_cap:
        nextfree[old_cap : cap - 1] = np.arange(old_cap + 1, cap)
        nextfree[cap - 1] = I[H_FREE] if old_cap else -1
        new_i[H_FREE] = old_cap
    new_i[H_CAP], new_i[H_KW], new_i[H_CCAP] = cap, kw, ccap
    new_i[H_KWSHIFT] = kw.bit_length() - 1
    new_i[H_HCAP], new_i[H_PCAP], new_i[H_WCAP] = hcap, pcap, new["work"]
    return new_f, new_i


# -- compiled part ------------------------------------------------------------------------

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# Helpers are inlined into the entry points: a call that passes the views by value would
# copy and reference-count every array.
_inline = numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")


@_inline
def views(F, I):
    """The offset of every region (an array's element ``x`` of region ``r`` is
    ``F[v.r + x]`` or ``I[v.r + x]``). Offsets, not array views: numba reference-counts
    an array each time it is taken out of a tuple, which costs more than the work."""
    o = H_OFFSETS
    return Views(  # type: ignore[call-arg]
        I[o + 0],
        I[o + 1],
        I[o + 2],
        I[o + 3],
        I[o + 4],
        I[o + 5],
        I[o + 6],
        I[o + 7],
        I[o + 8],
        I[o + 9],
        I[o + 10],
        I[o + 11],
        I[o + 12],
        I[o + 13],
        I[o + 14],
        I[o + 15],
        I[o + 16],
        I[o + 17],
        I[o + 18],
        I[o + 19],
        I[o + 20],
        I[o + 21],
        I[o + 22],
        I[o + 23],
        I[o + 24],
        I[o + 25],
        I[o + 26],
        I[o + 27],
        I[o + 28],
        I[o + 29],
        I[o + 30],
        I[o + 31],
        I[o + 32],
        I[o + 33],
        I[o + 34],
        I[o + 35],
        I[o + 36],
    )


# The completion heap: a binary heap on (time, seq); seq grows with every push.


@_inline
def _entry_less(F, I, v, i, j):
    ti = F[v.ht + i]
    tj = F[v.ht + j]
    return ti < tj or (ti == tj and I[v.hseq + i] < I[v.hseq + j])


@_inline
def _sift_down(F, I, v, i, n):
    t = F[v.ht + i]
    seq = I[v.hseq + i]
    slot = I[v.hslot + i]
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _entry_less(F, I, v, child + 1, child):
            child += 1
        ct = F[v.ht + child]
        if ct < t or (ct == t and I[v.hseq + child] < seq):
            F[v.ht + i] = ct
            I[v.hseq + i] = I[v.hseq + child]
            I[v.hslot + i] = I[v.hslot + child]
            i = child
        else:
            break
    F[v.ht + i] = t
    I[v.hseq + i] = seq
    I[v.hslot + i] = slot


@_inline
def _compact(F, I, v):
    """Drop stale entries (their flow moved on) and re-heapify; returns the new size."""
    n = I[H_HEAP_N]
    kept = 0
    for i in range(n):
        slot = I[v.hslot + i]
        if I[v.fseq + slot] == I[v.hseq + i]:
            F[v.ht + kept] = F[v.ht + i]
            I[v.hseq + kept] = I[v.hseq + i]
            I[v.hslot + kept] = slot
            kept += 1
    for i in range(kept // 2 - 1, -1, -1):
        _sift_down(F, I, v, i, kept)
    I[H_HEAP_N] = kept
    return kept


@_inline
def _push(F, I, v, t, slot):
    """Make (t, new seq) the flow's one valid entry. Valid entries are at most one per
    slot, so after dropping stale ones a heap of 2 * slots + 16 always has room."""
    n = I[H_HEAP_N]
    if n == I[H_HCAP]:
        n = _compact(F, I, v)
    seq = I[H_SEQ] + 1
    I[H_SEQ] = seq
    i = n
    # The new seq is the largest, so the entry only passes parents with a later time.
    while i > 0:
        parent = (i - 1) >> 1
        if F[v.ht + parent] <= t:
            break
        F[v.ht + i] = F[v.ht + parent]
        I[v.hseq + i] = I[v.hseq + parent]
        I[v.hslot + i] = I[v.hslot + parent]
        i = parent
    F[v.ht + i] = t
    I[v.hseq + i] = seq
    I[v.hslot + i] = slot
    I[H_HEAP_N] = n + 1
    I[v.fseq + slot] = seq
    F[v.htime + slot] = t


@_inline
def _pop(F, I, v):
    n = I[H_HEAP_N] - 1
    I[H_HEAP_N] = n
    if n > 0:
        F[v.ht + 0] = F[v.ht + n]
        I[v.hseq + 0] = I[v.hseq + n]
        I[v.hslot + 0] = I[v.hslot + n]
        _sift_down(F, I, v, 0, n)


@_inline
def _top_valid(F, I, v):
    """Drop stale entries from the top; the time of the first valid one (inf: none)."""
    while I[H_HEAP_N] > 0:
        if I[v.fseq + I[v.hslot + 0]] == I[v.hseq + 0]:
            return F[v.ht + 0]
        _pop(F, I, v)
    return math.inf


# Constraint membership: per constraint a doubly linked list of nodes (slot << shift) + k.


@_inline
def _link(F, I, v, slot, shift):
    base = slot << shift
    for k in range(I[v.ncons + slot]):
        node = base + k
        c = I[v.cons + node]
        tail = I[v.tail + c]
        I[v.lprev + node] = tail
        I[v.lnext + node] = -1
        if tail >= 0:
            I[v.lnext + tail] = node
        else:
            I[v.head + c] = node
        I[v.tail + c] = node
        I[v.count + c] += 1


@_inline
def _unlink(F, I, v, slot, shift):
    base = slot << shift
    for k in range(I[v.ncons + slot]):
        node = base + k
        c = I[v.cons + node]
        prev = I[v.lprev + node]
        after = I[v.lnext + node]
        if prev >= 0:
            I[v.lnext + prev] = after
        else:
            I[v.head + c] = after
        if after >= 0:
            I[v.lprev + after] = prev
        else:
            I[v.tail + c] = prev
        I[v.count + c] -= 1
        I[v.lnext + node] = -1
        I[v.lprev + node] = -1


@_inline
def _mark(F, I, v, c):
    if I[v.dirty + c] == 0:
        I[v.dirty + c] = 1
        n = I[H_DIRTY_N]
        I[v.dlist + n] = c
        I[H_DIRTY_N] = n + 1


@_jit
def mark_dirty(F, I, c):
    """Constraint ``c`` changed (its capacity): every flow on it is re-rated. Returns when
    the next re-rate may happen."""
    v = views(F, I)
    _mark(F, I, v, c)
    return F[F_LAST_RERATE] + F[F_QUANTUM]


# Flow life.


@_jit
def start(F, I, src, dst, size, now, when, path):
    """Take a slot for a flow of ``size`` bytes, pending until ``when``; -1 when full."""
    slot = I[H_FREE]
    if slot < 0:
        return -1
    v = views(F, I)
    I[H_FREE] = I[v.nextfree + slot]
    shift = I[H_KWSHIFT]
    base = slot << shift
    I[v.cons + base] = 2 * src
    I[v.cons + base + 1] = 2 * dst + 1
    n = I[v.pn + path]
    pbase = path << shift
    for k in range(n):
        I[v.cons + base + 2 + k] = I[v.plinks + pbase + k]
    I[v.ncons + slot] = n + 2
    I[v.state + slot] = PENDING
    F[v.size + slot] = size
    F[v.done + slot] = 0.0
    F[v.rate + slot] = 0.0
    F[v.mark + slot] = now
    F[v.act + slot] = math.inf
    _push(F, I, v, when, slot)
    return slot


@_inline
def _activate(F, I, v, slot, t):
    I[v.state + slot] = ACTIVE
    F[v.act + slot] = t
    F[v.mark + slot] = t
    F[v.htime + slot] = math.inf
    I[v.fseq + slot] = -1
    shift = I[H_KWSHIFT]
    _link(F, I, v, slot, shift)
    base = slot << shift
    for k in range(I[v.ncons + slot]):
        _mark(F, I, v, I[v.cons + base + k])
    I[H_ACTIVE] += 1


@_inline
def _release(F, I, v, slot, delivered):
    """An active flow leaves its constraints having moved ``delivered`` bytes. Only a
    saturated constraint can give its share to the flows left on it (on one that is not,
    every flow is held elsewhere, by a constraint this removal leaves as it was)."""
    shift = I[H_KWSHIFT]
    base = slot << shift
    rate = F[v.rate + slot]
    for k in range(I[v.ncons + slot]):
        c = I[v.cons + base + k]
        if F[v.used + c] >= F[v.ccap + c] * SATURATED:
            _mark(F, I, v, c)
        F[v.used + c] -= rate
        F[v.carried + c] += delivered
    _unlink(F, I, v, slot, shift)
    I[H_ACTIVE] -= 1


@_inline
def _free(F, I, v, slot, state):
    I[v.state + slot] = state
    F[v.rate + slot] = 0.0
    I[v.fseq + slot] = -1
    F[v.htime + slot] = math.inf
    I[v.nextfree + slot] = I[H_FREE]
    I[H_FREE] = slot


@_jit
def cancel(F, I, slot, now):
    """Stop a live flow now; returns (bytes delivered, when the next re-rate may happen:
    inf if none is needed). The slot is free afterwards."""
    v = views(F, I)
    delivered = 0.0
    if I[v.state + slot] == ACTIVE:
        delivered = F[v.done + slot] + F[v.rate + slot] * (now - F[v.mark + slot])
        if delivered > F[v.size + slot]:
            delivered = F[v.size + slot]
        F[v.done + slot] = delivered
        _release(F, I, v, slot, delivered)
    _free(F, I, v, slot, CANCELLED)
    due = math.inf
    if I[H_DIRTY_N] > 0:
        due = max(now, F[F_LAST_RERATE] + F[F_QUANTUM])
    return delivered, due


# Max-min re-rating by progressive filling, with a lazy heap of fair shares (share, c).


@_inline
def _share_push(F, I, v, n, share, c):
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        ps = F[v.ws + parent]
        if ps < share or (ps == share and I[v.wc + parent] <= c):
            break
        F[v.ws + i] = ps
        I[v.wc + i] = I[v.wc + parent]
        i = parent
    F[v.ws + i] = share
    I[v.wc + i] = c
    return n + 1


@_inline
def _share_pop(F, I, v, n):
    """Remove the root of a share heap of size n; returns the new size."""
    n -= 1
    if n == 0:
        return 0
    share = F[v.ws + n]
    c = I[v.wc + n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n:
            a = F[v.ws + child + 1]
            b = F[v.ws + child]
            if a < b or (a == b and I[v.wc + child + 1] < I[v.wc + child]):
                child += 1
        cs = F[v.ws + child]
        if cs < share or (cs == share and I[v.wc + child] < c):
            F[v.ws + i] = cs
            I[v.wc + i] = I[v.wc + child]
            i = child
        else:
            break
    F[v.ws + i] = share
    I[v.wc + i] = c
    return n


@_inline
def _level(F, I, v, d, shift):
    """The water level L of dirty constraint ``d``: sum(min(bound, L)) over its flows is
    what it has free (inf if their bounds never fill it). Every flow on ``d`` is being
    re-rated; ``new`` holds each one's bound."""
    n = I[v.count + d]
    free = F[v.free + d]
    share = free / n
    lowest = math.inf
    node = I[v.head + d]
    while node >= 0:
        bound = F[v.new + (node >> shift)]
        if bound < lowest:
            lowest = bound
        node = I[v.lnext + node]
    if lowest >= share:
        return share if share > 0.0 else 0.0  # the common case: nobody held below it
    i = 0
    node = I[v.head + d]
    while node >= 0:
        F[v.ws + i] = F[v.new + (node >> shift)]
        i += 1
        node = I[v.lnext + node]
    bounds = F[v.ws : v.ws + n]
    bounds.sort()
    remaining = free
    for i in range(n):
        share = remaining / (n - i)
        if bounds[i] >= share:
            return share if share > 0.0 else 0.0
        remaining -= bounds[i]
    return math.inf


@_inline
def _fill_flat(F, I, v, nf, nd, shift):
    """Max-min for the flat case by water-filling instead of progressive filling: when
    every re-rated flow crosses just an upload and a download, at most two constraints
    are dirty, and the flows on each other (clean) constraint all share one dirty
    constraint (they are identical in this subproblem, so they split it equally), the
    clean constraints are per-flow bounds and each dirty constraint is one water-filling.
    Flows crossing both dirty constraints (a new flow's sender and receiver) are fixed at
    the lower of the two levels, which saturates first, and the other level is filled
    again with them held: exact, as progressive filling is. Writes ``new``; returns
    False, having written nothing that matters, when the case does not apply."""
    d0 = I[v.dlist]
    d1 = I[v.dlist + 1] if nd == 2 else -1
    shared = 0
    for j in range(nf):
        slot = I[v.wflows + j]
        if I[v.ncons + slot] != 2:
            return False
        base = slot << shift
        up = I[v.cons + base]
        down = I[v.cons + base + 1]
        up_dirty = up in (d0, d1)
        down_dirty = down in (d0, d1)
        if up_dirty and down_dirty:
            F[v.new + slot] = math.inf
            shared += 1
            continue
        other = down if up_dirty else up
        dirty = up if up_dirty else down
        partner = I[v.cpart + other]
        if partner == -1:
            I[v.cpart + other] = dirty
        elif partner != dirty:
            return False
        F[v.new + slot] = F[v.free + other] / I[v.cn + other]
    level0 = _level(F, I, v, d0, shift)
    level1 = _level(F, I, v, d1, shift) if d1 >= 0 else math.inf
    if shared:
        low = level0 if level0 <= level1 else level1
        for j in range(nf):
            slot = I[v.wflows + j]
            if F[v.new + slot] == math.inf:
                F[v.new + slot] = low
        if level0 <= level1:
            level1 = _level(F, I, v, d1, shift)
        else:
            level0 = _level(F, I, v, d0, shift)
    for d, level in ((d0, level0), (d1, level1)):
        if d < 0:
            continue
        node = I[v.head + d]
        while node >= 0:
            slot = node >> shift
            if F[v.new + slot] > level:
                F[v.new + slot] = level
            node = I[v.lnext + node]
    return True


@_inline
def _rerate(F, I, v, t):
    """Exact max-min for every active flow crossing a dirty constraint, every other flow
    held (in component mode the dirty set first grows to its whole connected component)."""
    F[F_LAST_RERATE] = t
    I[H_RERATES] += 1
    epoch = I[H_EPOCH] + 1
    I[H_EPOCH] = epoch
    shift = I[H_KWSHIFT]
    nd = I[H_DIRTY_N]
    if I[H_MODE] == MODE_COMPONENT:
        i = 0
        while i < nd:
            node = I[v.head + I[v.dlist + i]]
            i += 1
            while node >= 0:
                slot = node >> shift
                base = slot << shift
                for k in range(I[v.ncons + slot]):
                    other = I[v.cons + base + k]
                    if I[v.dirty + other] == 0:
                        I[v.dirty + other] = 1
                        I[v.dlist + nd] = other
                        nd += 1
                node = I[v.lnext + node]
    # The flows to re-rate, in the order of their dirty constraints' lists.
    nf = 0
    for i in range(nd):
        c = I[v.dlist + i]
        I[v.dirty + c] = 0
        node = I[v.head + c]
        while node >= 0:
            slot = node >> shift
            if I[v.epin + slot] != epoch:
                I[v.epin + slot] = epoch
                I[v.wflows + nf] = slot
                nf += 1
            node = I[v.lnext + node]
    I[H_DIRTY_N] = 0
    if nf == 0:
        return
    # Capacity left to them on each constraint they cross, and how many cross it.
    nt = 0
    for j in range(nf):
        slot = I[v.wflows + j]
        rate = F[v.rate + slot]
        base = slot << shift
        for k in range(I[v.ncons + slot]):
            c = I[v.cons + base + k]
            if I[v.cep + c] != epoch:
                I[v.cep + c] = epoch
                F[v.free + c] = F[v.ccap + c] - F[v.used + c] + rate
                I[v.cn + c] = 1
                I[v.cpart + c] = -1
                I[v.touched + nt] = c
                nt += 1
            else:
                F[v.free + c] += rate
                I[v.cn + c] += 1
    flat = (
        nd <= 2
        and I[H_MODE] == MODE_LOCAL
        and I[H_FLAT_FILL] == 1
        and _fill_flat(F, I, v, nf, nd, shift)
    )
    if not flat:
        hn = 0
        for j in range(nt):
            c = I[v.touched + j]
            hn = _share_push(F, I, v, hn, F[v.free + c] / I[v.cn + c], c)
        # Progressive filling: the constraint with the lowest fair share saturates first and
        # freezes its flows at that level. A share only grows as flows freeze, so an entry
        # that no longer matches its constraint is stale and skipped.
        while hn > 0:
            share = F[v.ws + 0]
            c = I[v.wc + 0]
            hn = _share_pop(F, I, v, hn)
            n = I[v.cn + c]
            if n == 0 or share != F[v.free + c] / n:
                continue
            level = share if share > 0.0 else 0.0
            node = I[v.head + c]
            while node >= 0:
                slot = node >> shift
                if I[v.epin + slot] == epoch and I[v.eprated + slot] != epoch:
                    I[v.eprated + slot] = epoch
                    F[v.new + slot] = level
                    base = slot << shift
                    for k in range(I[v.ncons + slot]):
                        other = I[v.cons + base + k]
                        F[v.free + other] -= level
                        m = I[v.cn + other] - 1
                        I[v.cn + other] = m
                        if m > 0 and other != c:
                            hn = _share_push(F, I, v, hn, F[v.free + other] / m, other)
                node = I[v.lnext + node]
    # New rates: move progress marks, keep `used` exact, push earlier completions. A
    # slower flow keeps its early entry; it is re-pushed when that entry pops.
    for j in range(nf):
        slot = I[v.wflows + j]
        rate = F[v.new + slot]
        old = F[v.rate + slot]
        if rate == old:
            continue
        done = F[v.done + slot] + old * (t - F[v.mark + slot])
        F[v.done + slot] = done
        F[v.mark + slot] = t
        F[v.rate + slot] = rate
        delta = rate - old
        base = slot << shift
        for k in range(I[v.ncons + slot]):
            F[v.used + I[v.cons + base + k]] += delta
        if rate > 0.0:
            finish = t + (F[v.size + slot] - done) / rate
            if finish < F[v.htime + slot]:
                _push(F, I, v, finish, slot)


@_jit
def advance(F, I, now, horizon):
    """Process what is due at ``now``, then look ahead up to (not including) ``horizon``.

    At ``now``: due activations; due completions one at a time (returns ``(slot, now)``
    for the caller to report, then to call again); once nothing is due, the re-rate.
    Beyond ``now``, while the next event is before ``horizon`` (the next event of anyone
    else, so nobody can observe the state in between): activations and re-rates happen at
    their own times; a completion stops the look-ahead (its callback needs the clock at
    its time). Returns ``(-1, t)``: call again at ``t`` (inf: nothing is due, ever).
    """
    v = views(F, I)
    t = now
    quantum = F[F_QUANTUM]
    while True:
        top = _top_valid(F, I, v)
        if top <= t + TIME_TOLERANCE:
            slot = I[v.hslot + 0]
            if I[v.state + slot] == PENDING:
                _pop(F, I, v)
                _activate(F, I, v, slot, t)
                continue
            rate = F[v.rate + slot]
            remaining = F[v.size + slot] - F[v.done + slot] - rate * (t - F[v.mark + slot])
            if rate > 0.0 and remaining <= rate * TIME_TOLERANCE:
                if t != now:
                    return -1, t
                _pop(F, I, v)
                F[v.done + slot] = F[v.size + slot]
                _release(F, I, v, slot, F[v.size + slot])
                _free(F, I, v, slot, DONE)
                I[H_COMPLETED] += 1
                return slot, now
            # The entry was early: the flow slowed down after it was pushed.
            _pop(F, I, v)
            I[v.fseq + slot] = -1
            F[v.htime + slot] = math.inf
            if rate > 0.0:
                _push(F, I, v, t + remaining / rate, slot)
            continue
        following = top
        if I[H_DIRTY_N] > 0:
            due = F[F_LAST_RERATE] + quantum
            if t >= due - TIME_TOLERANCE:
                _rerate(F, I, v, t)
                continue
            if due < following:
                following = due
        if following < horizon and following < math.inf:
            t = following
            continue
        return -1, following


@_jit
def flows_on(F, I, c):
    """Slots of the active flows on constraint ``c``, in the order they joined it."""
    v = views(F, I)
    shift = I[H_KWSHIFT]
    out = np.empty(I[v.count + c], dtype=np.int64)
    node = I[v.head + c]
    i = 0
    while node >= 0:
        out[i] = node >> shift
        i += 1
        node = I[v.lnext + node]
    return out
