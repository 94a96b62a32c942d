"""The flow network's compiled kernel: flows, constraints and the completion heap as arrays.

:mod:`damselfly.sim.network` documents the model; this module holds its state and the hot
path (start, activate, complete, cancel, max-min re-rate, the heap), compiled with numba
(``cache=True``: compiled once per machine, then loaded from ``__pycache__``).

State lives in two flat arrays, one float64 (``F``) and one int64 (``I``), so that a call
from Python unboxes two arrays (each extra array argument costs about 55 ns a call). Each
array holds *tables* of records (one record per flow slot, per constraint, per heap entry;
a record's fields are adjacent, so touching a flow costs one or two cache lines), and the
offset of every field sits in the header of ``I``; the kernel reads them through a named
tuple of offsets (:func:`views`). Tables are sized by:

- ``flow``: flow *slots* (a live flow holds one; freed slots are reused, last freed first).
  A flow's ints end with the constraint ids it crosses (its sender's upload, its
  receiver's download, then its path's links) and, per (flow, constraint) membership, its
  position in that constraint's block of the member pool; a membership's node id is
  ``(slot << shift) + k``;
- ``con``: constraints (capacity, rate in use, bytes carried, where their block of the
  member pool is, dirty marks);
- ``pool``: the member pool. Each constraint's flows are a contiguous block of node ids
  in the order they joined it (so iteration never depends on memory addresses); a flow
  that leaves leaves a hole (-1) that iteration skips. A block is compacted in place, in
  order, when a departure leaves more than ``MIN_BLOCK`` more holes than flows in it, or
  when it is full and at most half of it is flows; a full block with more flows moves to
  one twice its size at the end of the pool, which is packed when its end is reached
  (:func:`_pack`). A re-rate reads a constraint's flows from one run of memory
  instead of chasing a linked list from flow to flow (a cache miss per flow, one after
  the other: a third of a re-rate's time on a leaf-spine network);
- ``heap``: the completion heap, entries (time, seq, slot); an entry is valid while its
  seq is the flow's current one (a freed and reused slot never matches an old entry);
- ``path``: distinct link sequences, so a start passes one path id;
- ``work``: scratch for a re-rate.

Python grows the arrays (:func:`grow`), copying every table; node ids are renumbered when
a flow's record widens (a path with more links than any before).
"""

# The two state arrays are F (floats) and I (ints) everywhere in this module.
# ruff: noqa: E741
# The compiled functions are typed by numba at their first call, not annotated.
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False

from __future__ import annotations

import math
from collections import namedtuple

import llvmlite.ir
import numba
import numpy as np
from numba.core import cgutils
from numba.extending import intrinsic

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
H_FSHIFT = 17  # a flow's ints are 1 << H_FSHIFT apart; node ids: (slot << it) + k
H_FLAT_FILL = 18  # 1: the flat fast path of the re-rate is on (0 only to test it)
H_POOL_END = 19  # the member pool's first never-used element
H_POOL_CAP = 20  # the member pool's size
H_PACKS = 21  # times the member pool was packed
H_OFFSETS = 32
I_HEADER = 96
# Header of F.
F_LAST_RERATE = 0
F_QUANTUM = 1
F_HEADER = 8

# Tables: (name, size class, fields). A table is an array of records, one per flow slot,
# constraint or heap entry; a record's stride is a power of two (so that records do not
# straddle more cache lines than they must, and an index is a shift). A flow's ints end
# with two kw-wide columns: the constraint ids it crosses (its sender's upload, its
# receiver's download, then its path's links), then, per (flow, constraint) membership,
# its position in that constraint's block of the member pool.
F_TABLES = (
    (
        "flowf",
        "flow",
        (
            "size",
            "done",  # bytes delivered up to ``mark``
            "rate",
            "mark",  # when ``done`` was last brought up to date
            "act",  # activation time (inf while pending)
            "htime",  # time of the flow's valid heap entry (inf: none)
            "new",  # scratch: the rate (or the bound) a re-rate computes
        ),
    ),
    ("conf", "con", ("ccap", "used", "carried", "free")),  # free: scratch of a re-rate
    ("heap", "heap", ("ht", "hseq", "hslot")),  # seq and slot as exact floats
    ("ws", "work", ("ws",)),
)
I_TABLES = (
    (
        "flowi",
        "flow",
        (
            "state",
            "ncons",
            "fseq",  # seq of the flow's valid heap entry (-1: none)
            "epin",  # epoch of the last re-rate that took the flow in
            "eprated",  # epoch of the last re-rate that rated it
            "nextfree",
        ),
    ),
    (
        "coni",
        "con",
        (
            "mstart",  # where the constraint's block starts in the member pool
            "mlen",  # entries in use in the block, holes included
            "count",  # flows on the constraint
            "dirty",
            "cep",  # epoch of the last re-rate that touched the constraint
            "cn",  # scratch: re-rated flows on it (still unrated, in progressive filling)
            "cpart",  # scratch: the dirty constraint its re-rated flows share, or
            # (progressive filling) where its re-rated flows start in ``csr``
            "cend",  # scratch: where they end in ``csr``
        ),
    ),
    ("mcap", "con", ("mcap",)),  # the size of the constraint's block in the member pool
    ("pool", "pool", ("pool",)),
    ("dlist", "con", ("dlist",)),  # dirty constraints, in the order they became dirty
    ("touched", "con", ("touched",)),
    ("pn", "path", ("pn",)),
    ("plinks", "pathnode", ("plinks",)),
    ("wc", "work", ("wc",)),
    ("wflows", "flow", ("wflows",)),
    ("csr", "work", ("csr",)),  # scratch: the re-rated flows of each touched constraint
)
NODE_FIELDS = ("cons", "mpos")  # kw-wide columns at the end of a flow's ints
FIELDS = tuple(f for _, _, fs in F_TABLES for f in fs) + tuple(
    f for _, _, fs in I_TABLES for f in fs + (NODE_FIELDS if fs[0] == "state" else ())
)
# Field offsets by name, for the kernel (see views); plus the shift of a flow's ints.
Views = namedtuple("Views", (*FIELDS, "fshift"))  # type: ignore[misc]
FIELD_INDEX = {name: i for i, name in enumerate(FIELDS)}
FLOW_FLOATS_SHIFT = 3  # 8 floats a flow
CON_FLOATS_SHIFT = 2  # 4 floats a constraint
HEAP_SHIFT = 2  # 4 floats an entry
CON_INTS_SHIFT = 3  # 8 ints a constraint
MIN_BLOCK = 4  # the smallest block of the member pool


_LINE = 8  # elements in a 64-byte cache line: tables start on one, so records do not
# straddle two


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _aligned_zeros(n: int, dtype: type) -> np.ndarray:
    """Zeros whose first element starts a cache line (numpy aligns to 16 bytes only)."""
    buffer = np.zeros(n + _LINE, dtype=dtype)
    skip = (-buffer.ctypes.data // buffer.itemsize) % _LINE
    return buffer[skip : skip + n]


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _strides(kw: int) -> dict[str, int]:
    """Record stride per table (elements)."""
    strides = {
        "flowf": 1 << FLOW_FLOATS_SHIFT,
        "conf": 1 << CON_FLOATS_SHIFT,
        "heap": 1 << HEAP_SHIFT,
        "flowi": _pow2(6 + len(NODE_FIELDS) * kw),
        "coni": 1 << CON_INTS_SHIFT,
    }
    for name, _, fields in F_TABLES + I_TABLES:
        assert name not in strides or len(fields) <= strides[name]
        strides.setdefault(name, 1)
    return strides


def _rows(cap: int, kw: int, ccap: int, hcap: int, pcap: int) -> dict[str, int]:
    return {
        "flow": cap,
        "con": ccap,
        "heap": hcap + 4,  # entry i at record i + 3: see _hpos
        "path": pcap,
        "pathnode": pcap * kw,
        "work": ccap + kw * cap,
        # After a packing the blocks hold at most 4 times the memberships plus MIN_BLOCK a
        # constraint (see _pack), and the block then moved is under 4 times its flows: so
        # 8 * kw * cap + MIN_BLOCK * ccap always suffices; twice the first term is
        # reserved. Never touched unless used (the array is allocated zeroed, so untouched
        # pages cost no memory).
        "pool": 16 * kw * cap + MIN_BLOCK * ccap,
    }


def offsets(I: np.ndarray) -> dict[str, int]:
    """Field name -> offset of its first element in its array (F or I)."""
    return {name: int(I[H_OFFSETS + i]) for name, i in FIELD_INDEX.items()}


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


# Defaults of the fields in new room (zero otherwise).
_DEFAULTS = {
    "act": math.inf,
    "htime": math.inf,
    "ht": math.inf,
    "fseq": -1,
    "epin": -1,
    "eprated": -1,
    "cep": -1,
}


def grow(
    F: np.ndarray,
    I: np.ndarray,
    *,
    cap: int | None = None,
    kw: int | None = None,
    ccap: int | None = None,
    pcap: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``F`` and ``I`` with more room; every table is carried over."""
    old_cap, old_kw = int(I[H_CAP]), int(I[H_KW])
    old_ccap, old_pcap, old_hcap = int(I[H_CCAP]), int(I[H_PCAP]), int(I[H_HCAP])
    cap = max(cap or 0, old_cap)
    kw = _pow2(max(kw or 0, old_kw, 2))
    ccap = max(ccap or 0, old_ccap)
    pcap = max(pcap or 0, old_pcap)
    hcap = 2 * cap + 16  # room left after dropping stale entries: see _push
    old_rows = _rows(old_cap, old_kw, old_ccap, old_hcap, old_pcap)
    rows = _rows(cap, kw, ccap, hcap, pcap)
    old_strides = _strides(old_kw) if old_kw else None
    strides = _strides(kw)
    arrays = []
    starts: dict[str, int] = {}
    for tables, header, dtype in ((F_TABLES, F_HEADER, np.float64), (I_TABLES, I_HEADER, np.int64)):
        position = header
        for name, kind, _ in tables:
            starts[name] = position
            position += _round_up(rows[kind] * strides[name], _LINE)
        arrays.append(_aligned_zeros(position, dtype))
    new_f, new_i = arrays
    new_f[:F_HEADER] = F[:F_HEADER]
    new_i[:I_HEADER] = I[:I_HEADER]
    old_starts = {}
    if old_strides is not None:
        old_off = offsets(I)
        for name, _, fields in F_TABLES + I_TABLES:
            old_starts[name] = old_off[fields[0]]

    def table(array: np.ndarray, start: int, n: int, stride: int) -> np.ndarray:
        return array[start : start + n * stride].reshape(n, stride)

    for tables, src, dst in ((F_TABLES, F, new_f), (I_TABLES, I, new_i)):
        for name, kind, fields in tables:
            target = table(dst, starts[name], rows[kind], strides[name])
            for column, field in enumerate(fields):
                if field in _DEFAULTS:
                    target[:, column] = _DEFAULTS[field]
            if name == "flowi":
                target[:, 6 + kw :] = -1  # pool positions: none
            if old_strides is None or kind == "work" or old_rows[kind] == 0:
                continue
            before = table(src, old_starts[name], old_rows[kind], old_strides[name])
            n = old_rows[kind]
            if name == "flowi":
                target[:n, :6] = before[:, :6]
                for column in range(len(NODE_FIELDS)):  # kw-wide each
                    target[:n, 6 + column * kw : 6 + column * kw + old_kw] = before[
                        :, 6 + column * old_kw : 6 + (column + 1) * old_kw
                    ]
            elif name == "pool":  # the part ever used: the rest is zero pages
                used = int(I[H_POOL_END])
                target[:used] = before[:used]
            elif name == "plinks":
                target.reshape(-1, kw)[:old_pcap, :old_kw] = before.reshape(-1, old_kw)
            else:
                width = min(strides[name], old_strides[name])
                target[:n, :width] = before[:, :width]
    if old_strides is not None and strides["flowi"] != old_strides["flowi"]:
        # Node ids are (slot << flow shift) + k: renumber every stored one.
        old_shift = old_strides["flowi"].bit_length() - 1
        shift = strides["flowi"].bit_length() - 1
        ids = new_i[starts["pool"] : starts["pool"] + int(I[H_POOL_END])]
        live = ids >= 0
        ids[live] = ((ids[live] >> old_shift) << shift) + (ids[live] & ((1 << old_shift) - 1))
    # Field offsets.
    for tables in (F_TABLES, I_TABLES):
        for name, _, fields in tables:
            for column, field in enumerate(fields):
                new_i[H_OFFSETS + FIELD_INDEX[field]] = starts[name] + column
    for column, field in enumerate(NODE_FIELDS):
        new_i[H_OFFSETS + FIELD_INDEX[field]] = starts["flowi"] + 6 + column * kw
    # New slots join the free list (lowest first), ahead of the slots already free.
    if cap > old_cap:
        flows = table(new_i, starts["flowi"], cap, strides["flowi"])
        nextfree = flows[:, 5]
        nextfree[old_cap : cap - 1] = np.arange(old_cap + 1, cap)
        nextfree[cap - 1] = I[H_FREE] if old_cap else -1
        new_i[H_FREE] = old_cap
    new_i[H_CAP], new_i[H_KW], new_i[H_CCAP] = cap, kw, ccap
    new_i[H_FSHIFT] = strides["flowi"].bit_length() - 1
    new_i[H_HCAP], new_i[H_PCAP], new_i[H_WCAP] = hcap, pcap, rows["work"]
    new_i[H_POOL_CAP] = rows["pool"]
    return new_f, new_i


# -- compiled part ------------------------------------------------------------------------

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the processor to bring ``array[index]``'s cache line in for reading, without
    waiting for it: the loads of the flows a re-rate gathers then overlap instead of
    each stalling in turn."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte = llvmlite.ir.IntType(8).as_pointer()
        address = builder.bitcast(builder.gep(data, [args[1]]), byte)
        i32 = llvmlite.ir.IntType(32)
        kind = llvmlite.ir.FunctionType(llvmlite.ir.VoidType(), [byte, i32, i32, i32])
        # The intrinsic's name carries the pointer type as llvmlite writes it (p0 or p0i8).
        name = "llvm.prefetch." + byte.intrinsic_name
        function = cgutils.get_or_insert_function(builder.module, kind, name)
        # read (0), keep in every cache level (3), data (1)
        builder.call(function, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return numba.types.void(array, index), codegen


# Helpers are inlined into the entry points: a call that passes the views by value would
# copy and reference-count every array.
_inline = numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")


@_inline
def views(F, I):
    """The offset of every field (see FIELDS): element ``x`` of field ``f`` is
    ``F[v.f + (x << shift)]`` or ``I[...]``, the shift being its table's. Offsets, not
    array views: numba reference-counts an array each time it is taken out of a tuple,
    which costs more than the work."""
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
        I[o + 37],
        I[o + 38],
        I[o + 39],
        I[H_FSHIFT],
    )


# The completion heap: a 4-ary heap on (time, seq); seq grows with every push. Entry i
# sits at record i + 3, so the four children of any entry (4i + 1 .. 4i + 4) fill two
# whole cache lines: half the depth of a binary heap, and a level costs the same lines.


@_inline
def _hpos(i):
    return (i + 3) << HEAP_SHIFT


@_inline
def _sift_down(F, I, v, i, n):
    at = _hpos(i)
    t = F[v.ht + at]
    seq = F[v.hseq + at]
    slot = F[v.hslot + at]
    while True:
        first = 4 * i + 1
        if first >= n:
            break
        best = first
        at = _hpos(first)
        best_t = F[v.ht + at]
        best_seq = F[v.hseq + at]
        last = first + 4 if first + 4 < n else n
        for child in range(first + 1, last):
            at = _hpos(child)
            ct = F[v.ht + at]
            if ct < best_t or (ct == best_t and F[v.hseq + at] < best_seq):
                best = child
                best_t = ct
                best_seq = F[v.hseq + at]
        if best_t < t or (best_t == t and best_seq < seq):
            here = _hpos(i)
            there = _hpos(best)
            F[v.ht + here] = best_t
            F[v.hseq + here] = best_seq
            F[v.hslot + here] = F[v.hslot + there]
            i = best
        else:
            break
    at = _hpos(i)
    F[v.ht + at] = t
    F[v.hseq + at] = seq
    F[v.hslot + at] = slot


@_inline
def _compact(F, I, v):
    """Drop stale entries (their flow moved on) and re-heapify; returns the new size."""
    n = I[H_HEAP_N]
    kept = 0
    for i in range(n):
        at = _hpos(i)
        slot = int(F[v.hslot + at])
        if I[v.fseq + (slot << v.fshift)] == F[v.hseq + at]:
            to = _hpos(kept)
            F[v.ht + to] = F[v.ht + at]
            F[v.hseq + to] = F[v.hseq + at]
            F[v.hslot + to] = slot
            kept += 1
    for i in range((kept - 2) // 4, -1, -1):
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
        parent = (i - 1) >> 2
        above = _hpos(parent)
        if F[v.ht + above] <= t:
            break
        here = _hpos(i)
        F[v.ht + here] = F[v.ht + above]
        F[v.hseq + here] = F[v.hseq + above]
        F[v.hslot + here] = F[v.hslot + above]
        i = parent
    at = _hpos(i)
    F[v.ht + at] = t
    F[v.hseq + at] = seq
    F[v.hslot + at] = slot
    I[H_HEAP_N] = n + 1
    I[v.fseq + (slot << v.fshift)] = seq
    F[v.htime + (slot << 3)] = t


@_inline
def _pop(F, I, v):
    n = I[H_HEAP_N] - 1
    I[H_HEAP_N] = n
    if n > 0:
        top = _hpos(0)
        at = _hpos(n)
        F[v.ht + top] = F[v.ht + at]
        F[v.hseq + top] = F[v.hseq + at]
        F[v.hslot + top] = F[v.hslot + at]
        _sift_down(F, I, v, 0, n)


@_inline
def _top_slot(F, v):
    return int(F[v.hslot + _hpos(0)])


@_inline
def _top_valid(F, I, v):
    """Drop stale entries from the top; the time of the first valid one (inf: none)."""
    top = _hpos(0)
    while I[H_HEAP_N] > 0:
        if I[v.fseq + (int(F[v.hslot + top]) << v.fshift)] == F[v.hseq + top]:
            return F[v.ht + top]
        _pop(F, I, v)
    return math.inf


# Constraint membership: per constraint a block of the member pool, node ids
# (slot << shift) + k in the order they joined, holes (-1) where flows left.


@_inline
def _move_block(I, v, c, to):
    """Copy constraint ``c``'s flows, holes dropped and order kept, to pool position
    ``to`` (at or before the block's start, or in free room); returns how many."""
    start = I[v.mstart + (c << 3)]
    n = 0
    for j in range(start, start + I[v.mlen + (c << 3)]):
        node = I[v.pool + j]
        if node >= 0:
            I[v.pool + to + n] = node
            I[v.mpos + node] = n
            n += 1
    I[v.mstart + (c << 3)] = to
    I[v.mlen + (c << 3)] = n
    return n


@_inline
def _pack(I, v):
    """Move every block to the front of the pool, in pool order, holes dropped, each one
    cut to at most twice its flows rounded up to a power of two (at least MIN_BLOCK),
    never grown: so a block is never written past the start of the next one. Afterwards
    the blocks hold at most 4 times the memberships plus MIN_BLOCK a constraint."""
    nc = I[H_NC]
    starts = np.empty(nc, dtype=np.int64)
    for c in range(nc):
        starts[c] = I[v.mstart + (c << 3)] if I[v.mcap + c] > 0 else -1
    to = 0
    for c in np.argsort(starts, kind="mergesort"):
        room = I[v.mcap + c]
        if room == 0:
            continue
        n = _move_block(I, v, c, to)
        cut = MIN_BLOCK
        while cut < 2 * n:
            cut *= 2
        if cut < room:
            room = cut
        I[v.mcap + c] = room
        to += room
    I[H_POOL_END] = to
    I[H_PACKS] += 1


@_inline
def _make_room(I, v, c):
    """Room for one more flow in constraint ``c``'s block; returns its entries in use.
    A block at most half full of flows is compacted in place; otherwise it moves to a
    block twice its size at the end of the pool (packing the pool first if needed)."""
    room = I[v.mcap + c]
    if room > 0 and 2 * I[v.count + (c << 3)] <= room:
        return _move_block(I, v, c, I[v.mstart + (c << 3)])
    room = 2 * room if room > 0 else MIN_BLOCK
    if I[H_POOL_END] + room > I[H_POOL_CAP]:
        _pack(I, v)
        if I[H_POOL_END] + room > I[H_POOL_CAP]:
            raise RuntimeError("flow network: member pool exhausted")
    to = I[H_POOL_END]
    I[H_POOL_END] = to + room
    I[v.mcap + c] = room
    return _move_block(I, v, c, to)


@_inline
def _link(F, I, v, slot, shift):
    base = slot << shift
    for k in range(I[v.ncons + (slot << v.fshift)]):
        node = base + k
        c = I[v.cons + node]
        n = I[v.mlen + (c << 3)]
        if n == I[v.mcap + c]:
            n = _make_room(I, v, c)
        I[v.pool + I[v.mstart + (c << 3)] + n] = node
        I[v.mpos + node] = n
        I[v.mlen + (c << 3)] = n + 1
        I[v.count + (c << 3)] += 1


@_inline
def _unlink(F, I, v, slot, shift):
    base = slot << shift
    for k in range(I[v.ncons + (slot << v.fshift)]):
        node = base + k
        c = I[v.cons + node]
        start = I[v.mstart + (c << 3)]
        I[v.pool + start + I[v.mpos + node]] = -1
        I[v.mpos + node] = -1
        count = I[v.count + (c << 3)] - 1
        I[v.count + (c << 3)] = count
        n = I[v.mlen + (c << 3)]
        while n > 0 and I[v.pool + start + n - 1] < 0:
            n -= 1
        I[v.mlen + (c << 3)] = n
        if n > 2 * count + MIN_BLOCK:  # holes outnumber flows: iteration would pay
            _move_block(I, v, c, start)


@_inline
def _mark(F, I, v, c):
    if I[v.dirty + (c << 3)] == 0:
        I[v.dirty + (c << 3)] = 1
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
    I[H_FREE] = I[v.nextfree + (slot << v.fshift)]
    shift = v.fshift
    base = slot << shift
    I[v.cons + base] = 2 * src
    I[v.cons + base + 1] = 2 * dst + 1
    n = I[v.pn + path]
    pbase = path * I[H_KW]
    for k in range(n):
        I[v.cons + base + 2 + k] = I[v.plinks + pbase + k]
    I[v.ncons + (slot << v.fshift)] = n + 2
    I[v.state + (slot << v.fshift)] = PENDING
    F[v.size + (slot << 3)] = size
    F[v.done + (slot << 3)] = 0.0
    F[v.rate + (slot << 3)] = 0.0
    F[v.mark + (slot << 3)] = now
    F[v.act + (slot << 3)] = math.inf
    _push(F, I, v, when, slot)
    return slot


@_inline
def _activate(F, I, v, slot, t):
    I[v.state + (slot << v.fshift)] = ACTIVE
    F[v.act + (slot << 3)] = t
    F[v.mark + (slot << 3)] = t
    F[v.htime + (slot << 3)] = math.inf
    I[v.fseq + (slot << v.fshift)] = -1
    shift = v.fshift
    _link(F, I, v, slot, shift)
    base = slot << shift
    for k in range(I[v.ncons + (slot << v.fshift)]):
        _mark(F, I, v, I[v.cons + base + k])
    I[H_ACTIVE] += 1


@_inline
def _release(F, I, v, slot, delivered):
    """An active flow leaves its constraints having moved ``delivered`` bytes. Only a
    saturated constraint can give its share to the flows left on it (on one that is not,
    every flow is held elsewhere, by a constraint this removal leaves as it was)."""
    shift = v.fshift
    base = slot << shift
    rate = F[v.rate + (slot << 3)]
    for k in range(I[v.ncons + (slot << v.fshift)]):
        c = I[v.cons + base + k]
        if F[v.used + (c << 2)] >= F[v.ccap + (c << 2)] * SATURATED:
            _mark(F, I, v, c)
        F[v.used + (c << 2)] -= rate
        F[v.carried + (c << 2)] += delivered
    _unlink(F, I, v, slot, shift)
    I[H_ACTIVE] -= 1


@_inline
def _free(F, I, v, slot, state):
    I[v.state + (slot << v.fshift)] = state
    F[v.rate + (slot << 3)] = 0.0
    I[v.fseq + (slot << v.fshift)] = -1
    F[v.htime + (slot << 3)] = math.inf
    I[v.nextfree + (slot << v.fshift)] = I[H_FREE]
    I[H_FREE] = slot


@_jit
def cancel(F, I, slot, now):
    """Stop a live flow now; returns (bytes delivered, when the next re-rate may happen:
    inf if none is needed). The slot is free afterwards."""
    v = views(F, I)
    delivered = 0.0
    if I[v.state + (slot << v.fshift)] == ACTIVE:
        delivered = F[v.done + (slot << 3)] + F[v.rate + (slot << 3)] * (
            now - F[v.mark + (slot << 3)]
        )
        if delivered > F[v.size + (slot << 3)]:
            delivered = F[v.size + (slot << 3)]
        F[v.done + (slot << 3)] = delivered
        _release(F, I, v, slot, delivered)
    _free(F, I, v, slot, CANCELLED)
    due = math.inf
    if I[H_DIRTY_N] > 0:
        due = max(now, F[F_LAST_RERATE] + F[F_QUANTUM])
    return delivered, due


# Max-min re-rating by progressive filling, with a lazy heap of fair shares (share, c).


@_inline
def _share_push(F, I, v, n, share, c):
    """Push (share, c) on the share heap of size n (4-ary: half the depth of a binary
    heap, and a constraint's entries are compared as (share, c), a total order, so the
    constraints come out in the same order whatever the heap's shape); returns n + 1."""
    i = n
    while i > 0:
        parent = (i - 1) >> 2
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
        first = 4 * i + 1
        if first >= n:
            break
        best = first
        best_share = F[v.ws + first]
        best_c = I[v.wc + first]
        last = first + 4 if first + 4 < n else n
        for child in range(first + 1, last):
            a = F[v.ws + child]
            if a < best_share or (a == best_share and I[v.wc + child] < best_c):
                best = child
                best_share = a
                best_c = I[v.wc + child]
        if best_share < share or (best_share == share and best_c < c):
            F[v.ws + i] = best_share
            I[v.wc + i] = best_c
            i = best
        else:
            break
    F[v.ws + i] = share
    I[v.wc + i] = c
    return n


@_inline
def _level(F, I, v, d, side, nf):
    """The water level L of dirty constraint ``d``: sum(min(bound, L)) over its flows is
    what it has free (inf if their bounds never fill it). Every flow on ``d`` is being
    re-rated; ``new`` holds each one's bound and ``eprated`` its dirty sides (a bit per
    dirty constraint; ``side`` is d's). The re-rated flows are walked in their list of
    slots (at most two dirty constraints share it), not in d's block of node ids."""
    n = I[v.count + (d << 3)]
    free = F[v.free + (d << 2)]
    share = free / n
    lowest = math.inf
    for j in range(nf):
        slot = I[v.wflows + j]
        if I[v.eprated + (slot << v.fshift)] & side:
            bound = F[v.new + (slot << 3)]
            if bound < lowest:
                lowest = bound
    if lowest >= share:
        return share if share > 0.0 else 0.0  # the common case: nobody held below it
    i = 0
    for j in range(nf):
        slot = I[v.wflows + j]
        if I[v.eprated + (slot << v.fshift)] & side:
            F[v.ws + i] = F[v.new + (slot << 3)]
            i += 1
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
    again with them held: exact, as progressive filling is. Writes ``new`` (and, as
    scratch, ``eprated``, which progressive filling resets); returns False, having
    written nothing that matters, when the case does not apply."""
    d0 = I[v.dlist]
    d1 = I[v.dlist + 1] if nd == 2 else -1
    shared = 0
    for j in range(nf):
        slot = I[v.wflows + j]
        if I[v.ncons + (slot << v.fshift)] != 2:
            return False
        base = slot << shift
        up = I[v.cons + base]
        down = I[v.cons + base + 1]
        sides = (1 if up == d0 or down == d0 else 0) | (2 if up == d1 or down == d1 else 0)
        I[v.eprated + (slot << v.fshift)] = sides
        if sides == 3:
            F[v.new + (slot << 3)] = math.inf
            shared += 1
            continue
        up_dirty = up in (d0, d1)
        other = down if up_dirty else up
        dirty = up if up_dirty else down
        partner = I[v.cpart + (other << 3)]
        if partner == -1:
            I[v.cpart + (other << 3)] = dirty
        elif partner != dirty:
            return False
        F[v.new + (slot << 3)] = F[v.free + (other << 2)] / I[v.cn + (other << 3)]
    level0 = _level(F, I, v, d0, 1, nf)
    level1 = _level(F, I, v, d1, 2, nf) if d1 >= 0 else math.inf
    if shared:
        low = level0 if level0 <= level1 else level1
        for j in range(nf):
            slot = I[v.wflows + j]
            if I[v.eprated + (slot << v.fshift)] == 3:
                F[v.new + (slot << 3)] = low
        if level0 <= level1:
            level1 = _level(F, I, v, d1, 2, nf)
        else:
            level0 = _level(F, I, v, d0, 1, nf)
    for j in range(nf):
        slot = I[v.wflows + j]
        sides = I[v.eprated + (slot << v.fshift)]
        rate = F[v.new + (slot << 3)]
        if sides & 1 and rate > level0:
            rate = level0
        if sides & 2 and rate > level1:
            rate = level1
        F[v.new + (slot << 3)] = rate
    return True


@_inline
def _rerate(F, I, v, t):
    """Exact max-min for every active flow crossing a dirty constraint, every other flow
    held (in component mode the dirty set first grows to its whole connected component)."""
    F[F_LAST_RERATE] = t
    I[H_RERATES] += 1
    epoch = I[H_EPOCH] + 1
    I[H_EPOCH] = epoch
    shift = v.fshift
    nd = I[H_DIRTY_N]
    if I[H_MODE] == MODE_COMPONENT:
        i = 0
        while i < nd:
            c = I[v.dlist + i]
            i += 1
            start = I[v.mstart + (c << 3)]
            for j in range(start, start + I[v.mlen + (c << 3)]):
                node = I[v.pool + j]
                if node < 0:
                    continue
                slot = node >> shift
                base = slot << shift
                for k in range(I[v.ncons + (slot << v.fshift)]):
                    other = I[v.cons + base + k]
                    if I[v.dirty + (other << 3)] == 0:
                        I[v.dirty + (other << 3)] = 1
                        I[v.dlist + nd] = other
                        nd += 1
    # The flows to re-rate, in the order of their dirty constraints' blocks.
    nf = 0
    for i in range(nd):
        c = I[v.dlist + i]
        I[v.dirty + (c << 3)] = 0
        start = I[v.mstart + (c << 3)]
        for j in range(start, start + I[v.mlen + (c << 3)]):
            node = I[v.pool + j]
            if node < 0:
                continue
            slot = node >> shift
            if I[v.epin + (slot << v.fshift)] != epoch:
                I[v.epin + (slot << v.fshift)] = epoch
                I[v.wflows + nf] = slot
                nf += 1
                # What the next pass reads of it: its rate and its constraint ids (the
                # first ones share a line with ``epin``; the last may not).
                _prefetch(F, v.rate + (slot << 3))
                at = slot << v.fshift
                _prefetch(I, v.cons + at + I[v.ncons + at] - 1)
    I[H_DIRTY_N] = 0
    if nf == 0:
        return
    # Capacity left to them on each constraint they cross, and how many cross it.
    nt = 0
    for j in range(nf):
        slot = I[v.wflows + j]
        rate = F[v.rate + (slot << 3)]
        base = slot << shift
        for k in range(I[v.ncons + (slot << v.fshift)]):
            c = I[v.cons + base + k]
            if I[v.cep + (c << 3)] != epoch:
                I[v.cep + (c << 3)] = epoch
                F[v.free + (c << 2)] = F[v.ccap + (c << 2)] - F[v.used + (c << 2)] + rate
                I[v.cn + (c << 3)] = 1
                I[v.cpart + (c << 3)] = -1
                I[v.touched + nt] = c
                nt += 1
            else:
                F[v.free + (c << 2)] += rate
                I[v.cn + (c << 3)] += 1
    flat = (
        nd <= 2
        and I[H_MODE] == MODE_LOCAL
        and I[H_FLAT_FILL] == 1
        and _fill_flat(F, I, v, nf, nd, shift)
    )
    if not flat:
        # Each touched constraint's re-rated flows, contiguous in ``csr``: the filling
        # below visits those only, not every flow on the constraint.
        position = 0
        for j in range(nt):
            c = I[v.touched + j]
            I[v.cpart + (c << 3)] = position
            I[v.cend + (c << 3)] = position
            position += I[v.cn + (c << 3)]
        for j in range(nf):
            slot = I[v.wflows + j]
            I[v.eprated + (slot << v.fshift)] = -1  # the flat path may have left sides
            base = slot << shift
            for k in range(I[v.ncons + (slot << v.fshift)]):
                c = I[v.cons + base + k]
                end = I[v.cend + (c << 3)]
                I[v.csr + end] = slot
                I[v.cend + (c << 3)] = end + 1
        hn = 0
        for j in range(nt):
            c = I[v.touched + j]
            hn = _share_push(F, I, v, hn, F[v.free + (c << 2)] / I[v.cn + (c << 3)], c)
        # Progressive filling: the constraint with the lowest fair share saturates first and
        # freezes its flows at that level. A share only grows as flows freeze elsewhere, so
        # each constraint keeps one entry, a lower bound of its share, and is pushed again
        # with its share when that entry pops out of date: one push per pop, not one per
        # frozen flow (a link's share changes with every flow frozen on it). The order of
        # the constraints taken is the same as with an entry pushed at every change, up to
        # rounding: a share that rounds a hair lower after a change can break a tie the
        # other way (measured on random swarms: completion times within 3e-14).
        unrated = nf  # once every flow is rated, the constraints left have nothing to do
        while hn > 0 and unrated > 0:
            share = F[v.ws]
            c = I[v.wc]
            hn = _share_pop(F, I, v, hn)
            n = I[v.cn + (c << 3)]
            if n == 0:
                continue
            current = F[v.free + (c << 2)] / n
            if share != current:
                hn = _share_push(F, I, v, hn, current, c)
                continue
            level = share if share > 0.0 else 0.0
            for index in range(I[v.cpart + (c << 3)], I[v.cend + (c << 3)]):
                slot = I[v.csr + index]
                if I[v.eprated + (slot << v.fshift)] == epoch:
                    continue
                I[v.eprated + (slot << v.fshift)] = epoch
                unrated -= 1
                F[v.new + (slot << 3)] = level
                base = slot << shift
                for k in range(I[v.ncons + (slot << v.fshift)]):
                    other = I[v.cons + base + k]
                    F[v.free + (other << 2)] -= level
                    I[v.cn + (other << 3)] -= 1
    # New rates: move progress marks, keep `used` exact, push earlier completions. A
    # slower flow keeps its early entry; it is re-pushed when that entry pops.
    for j in range(nf):
        slot = I[v.wflows + j]
        rate = F[v.new + (slot << 3)]
        old = F[v.rate + (slot << 3)]
        if rate == old:
            continue
        done = F[v.done + (slot << 3)] + old * (t - F[v.mark + (slot << 3)])
        F[v.done + (slot << 3)] = done
        F[v.mark + (slot << 3)] = t
        F[v.rate + (slot << 3)] = rate
        delta = rate - old
        base = slot << shift
        for k in range(I[v.ncons + (slot << v.fshift)]):
            F[v.used + ((I[v.cons + base + k]) << 2)] += delta
        if rate > 0.0:
            finish = t + (F[v.size + (slot << 3)] - done) / rate
            if finish < F[v.htime + (slot << 3)]:
                _push(F, I, v, finish, slot)


@_jit
def advance(F, I, now, horizon, forward):
    """Process what is due at ``now``, then look ahead up to (not including) ``horizon``.

    At ``now``: due activations; due completions one at a time (returns
    ``(slot, now, activated_at)`` for the caller to report, then to call again); once
    nothing is due, the re-rate. Beyond ``now``, while the next event is before
    ``horizon`` (the next event of anyone else, so nobody can observe the state in
    between): activations and re-rates happen at their own times; a completion stops the
    look-ahead (its callback needs the clock at its time), or, with ``forward``, is taken
    at its time ``t`` and returned as ``(slot, t, activated_at)`` (the caller moves its
    clock to ``t``). Otherwise returns ``(-1, t, 0)``: call again at ``t`` (inf: nothing is
    due, ever).
    """
    v = views(F, I)
    t = now
    quantum = F[F_QUANTUM]
    while True:
        top = _top_valid(F, I, v)
        if top <= t + TIME_TOLERANCE:
            slot = _top_slot(F, v)
            if I[v.state + (slot << v.fshift)] == PENDING:
                _pop(F, I, v)
                _activate(F, I, v, slot, t)
                continue
            rate = F[v.rate + (slot << 3)]
            remaining = (
                F[v.size + (slot << 3)]
                - F[v.done + (slot << 3)]
                - rate * (t - F[v.mark + (slot << 3)])
            )
            # Done when the bytes left take at most the tolerance, or, since the heap is
            # compared in absolute time, when the finish time rounds into it (a hair more
            # than the tolerance, re-pushed below, would pop here again without end).
            if rate > 0.0 and (
                remaining <= rate * TIME_TOLERANCE or t + remaining / rate <= t + TIME_TOLERANCE
            ):
                if t != now and not forward:
                    return -1, t, 0.0
                _pop(F, I, v)
                F[v.done + (slot << 3)] = F[v.size + (slot << 3)]
                _release(F, I, v, slot, F[v.size + (slot << 3)])
                _free(F, I, v, slot, DONE)
                I[H_COMPLETED] += 1
                return slot, t, F[v.act + (slot << 3)]
            # The entry was early: the flow slowed down after it was pushed.
            _pop(F, I, v)
            I[v.fseq + (slot << v.fshift)] = -1
            F[v.htime + (slot << 3)] = math.inf
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
        return -1, following, 0.0


@_jit
def flows_on(F, I, c):
    """Slots of the active flows on constraint ``c``, in the order they joined it."""
    v = views(F, I)
    shift = v.fshift
    out = np.empty(I[v.count + (c << 3)], dtype=np.int64)
    start = I[v.mstart + (c << 3)]
    i = 0
    for j in range(start, start + I[v.mlen + (c << 3)]):
        node = I[v.pool + j]
        if node >= 0:
            out[i] = node >> shift
            i += 1
    return out
