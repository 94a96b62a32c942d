"""How fast the scheduling core answers new peers.

10,000 hosts; one task with 5,000 peers already downloading (each fed by a parent, holding
part of the content); then 5,000 new peers on the other hosts register, and each gets its
first decision. We time only the registrations (register + schedule), on one core.

Usage: python benchmarks/core_schedule.py [--hosts 10000] [--running 5000] [--repeat 3]
The last line printed is one JSON object of figures; its "compiled" says which build ran
(time the compiled build with its interpreter, e.g. .venv-compiled/bin/python).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from random import Random

import damselfly
from damselfly.scheduling import HostKind, Parents, Scheduler, SchedulerConfig

URL = "https://registry.example/v2/library/app/blobs/sha256:0123"
CONTENT_LENGTH = 1024**3
PIECE_LENGTH = 4 * 1024**2


def build(hosts: int, running: int, seed: int) -> Scheduler:
    rng = Random(seed)
    scheduler = Scheduler(SchedulerConfig(), rng=Random(seed))
    for index in range(hosts):
        scheduler.announce_host(
            0.0,
            f"h{index:05d}",
            upload_rate=125e6 if index else 1.25e9,
            kind=HostKind.SEED if index == 0 else HostKind.NORMAL,
            idc=f"idc{index % 3}",
            location=f"cn|idc{index % 3}|rack{index % 40}",
        )
    # The seed first, then peers that got parents and part of the content.
    for index in range(running + 1):
        scheduler.register_peer(
            0.0,
            f"p{index:05d}",
            host_id=f"h{index:05d}",
            url=URL,
            content_length=CONTENT_LENGTH,
            forced_piece_length=PIECE_LENGTH,
        )
    now = 1.0
    for index in range(1, running + 1):
        peer = scheduler.peers[f"p{index:05d}"]
        parent_id = next(iter(peer.parents), None)
        for piece in rng.sample(range(peer.task.piece_count), rng.randrange(1, 64)):
            scheduler.piece_finished(
                now, peer.id, piece, length=PIECE_LENGTH, parent_id=parent_id, duration=0.05
            )
    return scheduler


def measure(hosts: int, running: int, seed: int) -> tuple[int, float, int]:
    scheduler = build(hosts, running, seed)
    new_hosts = [f"h{index:05d}" for index in range(running + 1, hosts)]
    now = 2.0
    # Collect the setup's garbage before the clock starts. Otherwise whether a full
    # collection of it (tens of milliseconds) falls inside the timed part depends on how
    # many tracked objects the setup happened to allocate, and it moved the figure by 40%
    # between two builds that decide identically and equally fast without it.
    gc.collect()
    started = time.perf_counter()
    parents = 0
    for index, host_id in enumerate(new_hosts):
        decisions = scheduler.register_peer(
            now,
            f"n{index:05d}",
            host_id=host_id,
            url=URL,
            content_length=CONTENT_LENGTH,
            forced_piece_length=PIECE_LENGTH,
        )
        parents += any(isinstance(decision, Parents) for decision in decisions)
    elapsed = time.perf_counter() - started
    return len(new_hosts), elapsed, parents


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--running", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates = []
    for repeat in range(args.repeat):
        decisions, elapsed, with_parents = measure(args.hosts, args.running, seed=repeat)
        rates.append(decisions / elapsed)
        print(
            f"run {repeat + 1}: {decisions} decisions in {elapsed:.3f} s "
            f"({decisions / elapsed:,.0f}/s), {with_parents} got parents at once"
        )
    print(
        json.dumps(
            {
                "decisions_per_s": round(statistics.median(rates)),
                "hosts": args.hosts,
                "running_peers": args.running,
                "new_peers": decisions,
                "parents_at_once": with_parents,
                "python": platform.python_version(),
                "compiled": damselfly.compiled(),
                "machine": f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()
