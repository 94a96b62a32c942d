"""A real swarm on loopback: 1 seed and 16 daemons get one 256 MiB file at once.

A static origin, a scheduler, one seed daemon and N daemons run as separate processes on
127.0.0.1. Every daemon is asked for the file at the same moment (through its local API);
the run ends when all are done. Figures: ``origin_egress_ratio`` (bytes the origin served
/ file size; target <= 1.05, against N for direct downloads) and ``wall_s``. The run is
also written in the one results schema (:mod:`damselfly.results`, driver "runtime"), so
``damselfly report`` renders it beside simulated runs.

The fluid lower bound needs rates, and loopback has no declared capacities. So, once the
swarm has stopped (the machine idle again), the script measures them the way the hop
benchmark does: one daemon gets the file from the origin alone (origin upload ``u_s``), then
another daemon gets it from the first alone (one hop, verified and written: each daemon's
upload and download ``r``). ``t_min = max(F/u_s, F/r, N*F/(u_s + (N+1)*r))`` (the seed
uploads too but need not count as a receiver) and ``efficiency = t_min / t_last_finish``.
All processes share one machine's cores, which the fluid model does not know, so a swarm on
a small machine scores well below 1: the figure says how far the machine's shared CPU and
disk, not the network, stretch the rollout beyond one lone hop.

The seed super-seeds (the daemon's default, as the simulator's seeds do);
``--no-super-seeding`` runs the same swarm with a seed that offers every piece it holds.

Usage: python benchmarks/runtime_swarm.py [--peers 16] [--size 256MiB] [--out FILE]
                                          [--no-super-seeding]
The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from damselfly.results import PeerRecord, Result, fluid_lower_bound, utilisation_summary
from damselfly.units import parse_size
from runtime_hop import Process, daemon_get, origin_bytes, p2p_seconds, start_origin, write_file

TIMELINE_PERIOD = 0.25


async def scheduler_decisions(address: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(address + "/metrics") as response:
        text = await response.text()
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("damselfly_scheduler_decisions_total{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            counts[kind] = int(float(line.rsplit(" ", 1)[1]))
    return counts


async def run(
    peers: int, size: int, work: Path, *, super_seeding: bool = True
) -> tuple[Result, dict[str, Any]]:
    root = work / "www"
    root.mkdir()
    write_file(root / "blob.bin", size)
    origin, origin_url = start_origin(root, work / "origin.log")
    scheduler = Process(["scheduler", "--listen", "127.0.0.1:0"], work / "scheduler.log")
    daemons: list[Process] = []
    try:
        seed = Process(
            ["daemon", "--scheduler", scheduler.address, "--data-dir", str(work / "seed"),
             "--host-id", "seed0", "--seed",
             "--super-seeding" if super_seeding else "--no-super-seeding"],
            work / "seed.log",
        )  # fmt: skip
        daemons.append(seed)
        names = [f"peer{index:02d}" for index in range(peers)]
        for name in names:
            args = ["daemon", "--scheduler", scheduler.address, "--data-dir", str(work / name)]
            args += ["--socket", str(work / f"{name}.sock"), "--host-id", name]
            daemons.append(Process(args, work / f"{name}.log"))
        url = f"{origin_url}/blob.bin"
        started = time.monotonic()
        jobs = [asyncio.create_task(daemon_get(str(work / f"{n}.sock"), url)) for n in names]
        timeline: dict[str, list[float]] = {
            "t": [],
            "finished_peers": [],
            "bytes_in_flight_rate": [],
            "bytes_received": [],
        }
        while not all(job.done() for job in jobs):
            await asyncio.wait(jobs, timeout=TIMELINE_PERIOD)
            timeline["t"].append(time.monotonic() - started)
            timeline["finished_peers"].append(float(sum(job.done() for job in jobs)))
        results = [job.result() for job in jobs]
        wall = time.monotonic() - started
        served = await origin_bytes(origin_url)
        decisions = await scheduler_decisions(scheduler.address)
    finally:
        for daemon in daemons:
            daemon.stop()
        scheduler.stop()
        origin.terminate()
        origin.wait()

    calibration = work / "calibration"
    calibration.mkdir()
    hop_times, _, origin_seconds = await p2p_seconds(root, "blob.bin", calibration, 1)
    origin_rate, hop_rate = size / origin_seconds, size / hop_times[0]

    records = []
    totals = {"origin": 0, "seed": 0, "peer": 0}
    arrivals: list[tuple[float, int]] = []
    for name, events in zip(names, results, strict=True):
        first_byte = next((t - started for t, e in events if e.get("completed_bytes", 0) > 0), None)
        done_at, done = events[-1]
        previous = 0
        for t, event in events:
            completed = int(event.get("completed_bytes") or event.get("content_length") or 0)
            if completed > previous:
                arrivals.append((t - started, completed - previous))
                previous = completed
        bytes_from = {k: int(v) for k, v in done["bytes_from"].items()}
        for key, value in bytes_from.items():
            totals[key] += value
        records.append(
            PeerRecord(
                peer_id=name,
                host_id=name,
                task="blob.bin",
                registered_at=0.0,
                first_byte_at=first_byte,
                finished_at=done_at - started,
                outcome="succeeded",
                bytes_from=bytes_from,
                back_to_source=bytes_from["origin"] > 0,
            )
        )
    arrivals.sort()
    received, cursor = 0, 0
    for index, t in enumerate(timeline["t"]):
        window = 0
        while cursor < len(arrivals) and arrivals[cursor][0] <= t:
            received += arrivals[cursor][1]
            window += arrivals[cursor][1]
            cursor += 1
        timeline["bytes_received"].append(float(received))
        span = t - (timeline["t"][index - 1] if index else 0.0)
        timeline["bytes_in_flight_rate"].append(window / span if span > 0 else 0.0)
    received_total = sum(totals.values())
    t_last = max(r.finished_at or 0.0 for r in records)
    t_min = fluid_lower_bound(size, origin_rate, [hop_rate] * (peers + 1), [hop_rate] * peers)
    result = Result(
        driver="runtime",
        content_bytes=size,
        peers=records,
        totals={
            "bytes_sent": float(received_total),
            "bytes_received": float(received_total),
            "origin_bytes": float(served),
            "seed_bytes": float(totals["seed"]),
            "peer_bytes": float(totals["peer"]),
            "wasted_bytes": 0.0,
            "piece_transfers": float(received_total // (4 * 1024 * 1024)),
            "origin_egress_ratio": served / size,
        },
        links={
            "host_upload": utilisation_summary([]),
            "host_download": utilisation_summary([]),
            "link": utilisation_summary([]),
            "busiest": [],
        },
        timeline=timeline,
        decisions=decisions,
        wall_time_s=wall,
        t_min=t_min,
        t_last_finish=t_last,
        efficiency=t_min / t_last if t_last > 0 else None,
        scenario={
            "name": "runtime-swarm",
            "peers": peers,
            "seeds": 1,
            "super_seeding": super_seeding,
            "content_bytes": size,
            "network": "loopback, one machine",
            "rates": "measured alone after the run: origin to one daemon, daemon to daemon",
        },
        extra={
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "origin_upload_rate": origin_rate,
            "hop_rate": hop_rate,
        },
    )
    return result, {"origin_bytes": served, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=16)
    parser.add_argument("--size", default="256MiB")
    parser.add_argument("--out", default="runtime-swarm.json", help="Results JSON file.")
    parser.add_argument("--workdir", help="Where files go (default: a temporary dir).")
    parser.add_argument(
        "--no-super-seeding",
        dest="super_seeding",
        action="store_false",
        help="The seed offers every piece it holds (default: it super-seeds).",
    )
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="damselfly-swarm-", dir=args.workdir) as directory:
        result, figures = asyncio.run(
            run(args.peers, size, Path(directory), super_seeding=args.super_seeding)
        )
    result.write(args.out)
    for record in result.peers:
        print(
            f"{record.peer_id}: finished at {record.finished_at:.2f} s, "
            f"bytes from {record.bytes_from}"
        )
    print(f"results written to {args.out}")
    print(
        json.dumps(
            {
                "origin_egress_ratio": round(figures["origin_bytes"] / size, 4),
                "wall_s": round(figures["wall_s"], 2),
                "t_min_s": round(result.t_min, 3),
                "efficiency": None if result.efficiency is None else round(result.efficiency, 3),
                "hop_mib_s": round(result.extra["hop_rate"] / 1024**2, 1),
                "origin_mib_s": round(result.extra["origin_upload_rate"] / 1024**2, 1),
                "peers": args.peers,
                "seeds": 1,
                "super_seeding": args.super_seeding,
                "size_bytes": size,
                "peer_bytes": int(result.totals["peer_bytes"]),
                "seed_bytes": int(result.totals["seed_bytes"]),
                "origin_bytes_to_peers": int(sum(r.bytes_from["origin"] for r in result.peers)),
                "results": args.out,
                "python": platform.python_version(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()
