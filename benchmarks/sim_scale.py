"""How fast the simulator runs a rollout, and how close to physics the rollout gets.

Flat topology, homogeneous 1 Gbit/s hosts, a 10 Gbit/s origin, one 1 GiB file (4 MiB
pieces, 256 of them), one seed peer, every peer arriving at once; the default evaluator.
Figures: wall seconds, peak RSS, piece transfers simulated per wall second, efficiency
against the fluid bound, origin egress over the content size.

Usage: python benchmarks/sim_scale.py [--peers 10000] [--size 1GiB] [--seed 1]
       python benchmarks/sim_scale.py --scaling   (1,000 / 3,000 / 10,000 peers and the
                                                   fitted exponent of wall time in peers)
       python benchmarks/sim_scale.py --network-only --peers 2000 --transfers 100000
           (the flow network alone, no scheduling: every host keeps 8 downloads of 4 MiB
            going from random senders until that many transfers have finished; it prints
            wall and CPU time per transfer, CPU time being the one to compare on a machine
            shared with other work)
The last line printed is one JSON object of figures; its "compiled" says which build ran
(time the compiled build with its interpreter, e.g. .venv-compiled/bin/python, which
scripts/test.sh installs).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys

import damselfly
from damselfly.scheduling import SchedulerConfig
from damselfly.sim import SimOptions, Workload, simulate
from damselfly.topologies import flat
from damselfly.units import parse_duration, parse_rate, parse_size


def run_once(peers: int, size: int, seed: int, quantum: float) -> dict[str, object]:
    graph = flat(
        peers,
        upload_rate=parse_rate("1Gbit/s"),
        download_rate=parse_rate("1Gbit/s"),
        latency=parse_duration("0.25ms"),
        origin_upload_rate=parse_rate("10Gbit/s"),
        seeds=1,
    )
    options = SimOptions(quantum=quantum)
    result = simulate(graph, Workload.file(size), SchedulerConfig(), seed=seed, options=options)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    transfers = result.totals["piece_transfers"]
    return {
        "peers": peers,
        "wall_s": round(result.wall_time_s, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "deliveries_per_s": round(transfers / result.wall_time_s),
        "efficiency": None if result.efficiency is None else round(result.efficiency, 3),
        "origin_egress_ratio": round(result.totals["origin_egress_ratio"], 3),
        "t_last_finish_s": result.t_last_finish,
        "t_min_s": round(result.t_min, 3),
        "piece_transfers": transfers,
        "succeeded": result.outcomes("normal")["succeeded"],
        "quantum": quantum,
        "python": platform.python_version(),
        "compiled": damselfly.compiled(),
    }


def network_only(peers: int, transfers: int, seed: int, quantum: float) -> dict[str, object]:
    """The flow network's own cost: no scheduler, no planner, random senders."""
    import random
    import time

    import simpy

    from damselfly.sim import FlowNetwork

    env = simpy.Environment()
    network = FlowNetwork(env, quantum=quantum)
    rate = parse_rate("1Gbit/s")
    for host in range(peers):
        network.add_host(host, rate, rate)
    route = ((), 2 * parse_duration("0.25ms"))  # two access links, no link can bind
    network.set_path_function(lambda src, dst: route)
    rng = random.Random(seed)
    started = 0
    size = 4 * 1024 * 1024

    def sender(receiver: int) -> int:
        src = rng.randrange(peers - 1)
        return src + 1 if src >= receiver else src

    def on_done(flow: object) -> None:
        nonlocal started
        if started < transfers:
            started += 1
            receiver = flow.dst  # type: ignore[attr-defined]
            network.start(sender(receiver), receiver, size, on_done)

    for receiver in range(peers):
        for _ in range(8):
            if started < transfers:
                started += 1
                network.start(sender(receiver), receiver, size, on_done)
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    env.run()
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    return {
        "network_only": True,
        "peers": peers,
        "transfers": network.completed_flows,
        "wall_s": round(wall, 2),
        "us_per_transfer": round(1e6 * wall / max(1, network.completed_flows), 1),
        # CPU time of this process: the figure to compare on a machine shared with others.
        "cpu_s": round(cpu, 2),
        "cpu_us_per_transfer": round(1e6 * cpu / max(1, network.completed_flows), 1),
        "rerates": network.rerates,
        "quantum": quantum,
        "sim_time_s": round(env.now, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quantum", type=float, default=0.0, help="re-rate batching (s)")
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--network-only", action="store_true")
    parser.add_argument("--transfers", type=int, default=100_000)
    args = parser.parse_args()
    if args.network_only:
        print(json.dumps(network_only(args.peers, args.transfers, args.seed, args.quantum)))
        return
    size = parse_size(args.size)
    if not args.scaling:
        print(json.dumps(run_once(args.peers, size, args.seed, args.quantum)))
        return
    # One process per size, so that peak RSS is each run's own.
    rows = []
    for peers in (1_000, 3_000, 10_000):
        command = [
            sys.executable,
            __file__,
            "--peers",
            str(peers),
            "--size",
            args.size,
            "--seed",
            str(args.seed),
            "--quantum",
            str(args.quantum),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    xs = [math.log(row["peers"]) for row in rows]
    ys = [math.log(row["wall_s"]) for row in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    last = dict(rows[-1])
    last["scaling_exponent"] = round(slope, 2)
    last["scaling"] = [{"peers": r["peers"], "wall_s": r["wall_s"]} for r in rows]
    print(json.dumps(last))


if __name__ == "__main__":
    main()
