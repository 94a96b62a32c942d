"""The simulator end to end, on cases whose answer is known."""

from __future__ import annotations

import itertools
import json
from typing import Any

import networkx as nx
import pytest

from damselfly.results import Result
from damselfly.scheduling import PlannerConfig, SchedulerConfig
from damselfly.sim import SimOptions, Simulation, simulate
from damselfly.sim.workload import Arrivals, Faults, Workload, image

MiB = 1024 * 1024
LATENCY = 0.001  # one way, per edge


def flat(n: int, nic: float, origin_rate: float, seeds: int = 0, latency: float = LATENCY):
    g = nx.Graph()
    g.add_node("switch", role="switch")
    g.add_node("origin", role="origin", upload_rate=origin_rate)
    g.add_edge("origin", "switch", capacity=origin_rate, latency=latency)
    hosts = [(f"seed-{i}", "seed") for i in range(seeds)] + [(f"h{i}", "normal") for i in range(n)]
    for name, kind in hosts:
        g.add_node(
            name,
            role="host",
            kind=kind,
            idc="a",
            location="a|b",
            upload_rate=nic,
            download_rate=nic,
        )
        g.add_edge(name, "switch", capacity=nic, latency=latency)
    return g


def test_one_peer_alone_takes_size_over_the_narrowest_rate() -> None:
    g = flat(1, 50e6, 100e6)
    result = simulate(g, Workload.file(64 * MiB), seed=1)
    (peer,) = result.peers
    assert peer.outcome == "succeeded" and peer.back_to_source
    # Register (one way) and its answer (one way), then the first piece's round trip: 8 ms.
    latency_terms = 4 * 2 * LATENCY
    expected = latency_terms + 64 * MiB / 50e6
    assert peer.finished_at == pytest.approx(expected, rel=0.01)
    assert result.efficiency is not None and result.efficiency <= 1.0
    assert result.totals["origin_bytes"] == 64 * MiB


def test_all_back_to_source_is_limited_by_the_origin() -> None:
    n, size, origin_rate = 20, 32 * MiB, 100e6
    g = flat(n, 1e9, origin_rate)
    config = SchedulerConfig(enable_peer_to_peer=False)
    result = simulate(g, Workload.file(size), config, seed=2)
    assert result.outcomes("normal")["succeeded"] == n
    assert result.t_last_finish == pytest.approx(n * size / origin_rate, rel=0.02)
    assert result.totals["origin_egress_ratio"] == pytest.approx(n)
    assert result.efficiency is not None and result.efficiency <= 1.0


def run(n: int = 30, size: int = 64 * MiB, seeds: int = 1, seed: int = 3, **workload_args):
    g = flat(n, 125e6, 1250e6, seeds=seeds)
    sim = Simulation(g, Workload.file(size, **workload_args), SchedulerConfig(), seed)
    return sim, sim.run()


@pytest.mark.parametrize(("seeds", "seed"), [(0, 1), (1, 2), (2, 3)])
def test_swarms_obey_physics_and_conserve_bytes(seeds: int, seed: int) -> None:
    sim, result = run(n=25, seeds=seeds, seed=seed)
    assert result.outcomes("normal")["succeeded"] == 25
    assert result.efficiency is not None and 0.0 < result.efficiency <= 1.0
    totals = result.totals
    assert totals["bytes_sent"] == pytest.approx(totals["bytes_received"], rel=1e-12)
    received = sum(sum(p.bytes_from.values()) for p in result.peers)
    assert totals["bytes_received"] == pytest.approx(received, rel=1e-6)  # partial bytes: ints
    for peer in sim.peers.values():
        assert peer.have.count == peer.piece_count
        assert not peer.links, "a peer that is over keeps no routes"
    # Every finished peer received at least the content; the excess is waste.
    useful = (
        sum(
            p.bytes_from["origin"] + p.bytes_from["seed"] + p.bytes_from["peer"]
            for p in result.peers
        )
        - totals["wasted_bytes"]
    )
    assert useful == pytest.approx(len(result.peers) * 64 * MiB, rel=1e-6)
    for record in result.peers:
        assert record.first_byte_at is not None and record.registered_at is not None
        assert record.registered_at < record.first_byte_at < record.finished_at
    if seeds:
        assert result.decisions.get("TriggerSeed", 0) == 1
        assert totals["origin_egress_ratio"] == pytest.approx(1.0)


def test_a_mesh_lets_peers_download_from_each_other_and_conserves_bytes() -> None:
    # With the scheduler's cycle test off, a peer may be its own parent's parent.
    config = SchedulerConfig(acyclic=False, candidate_parent_limit=8, filter_parent_limit=40)
    options = SimOptions(evaluator="random", planner=PlannerConfig(max_per_parent=1))
    sim = Simulation(flat(30, 125e6, 1250e6, seeds=1), Workload.file(64 * MiB), config, 4, options)
    mutual = 0

    def watch() -> Any:
        nonlocal mutual
        while sim.unfinished > 0:
            yield sim.env.timeout(0.05)
            mutual += sum(
                1
                for peer in sim.scheduler.peers.values()
                for parent in peer.parents.values()
                if peer.id in parent.parents
            )

    sim.env.process(watch())
    result = sim.run()
    assert mutual > 0
    assert result.outcomes("normal")["succeeded"] == 30
    assert result.efficiency is not None and 0.0 < result.efficiency <= 1.0
    totals = result.totals
    assert totals["bytes_sent"] == pytest.approx(totals["bytes_received"], rel=1e-12)
    assert totals["origin_egress_ratio"] == pytest.approx(1.0)


def test_same_seed_same_json_other_seed_differs() -> None:
    def document(seed: int) -> dict:
        _, result = run(n=15, seed=seed)
        data = json.loads(result.to_json())
        data.pop("wall_time_s")
        return data

    first = document(7)
    assert document(7) == first
    assert document(8) != first


def test_result_json_round_trips() -> None:
    _, result = run(n=5)
    again = Result.from_json(result.to_json())
    assert again.to_json() == result.to_json()


def test_crashed_hosts_are_accounted_for() -> None:
    faults = Faults(crash_at={"h0": 0.3, "h1": 0.6}, crash_rate=0.01)
    _sim, result = run(n=20, faults=faults)
    outcomes = result.outcomes()
    assert outcomes["crashed"] >= 2
    assert sum(outcomes.values()) == len(result.peers)
    crashed = {p.host_id for p in result.peers if p.outcome == "crashed"}
    assert {"h0", "h1"} <= crashed
    assert outcomes["succeeded"] + outcomes["crashed"] == len(result.peers)
    assert result.totals["bytes_sent"] == pytest.approx(result.totals["bytes_received"])
    # The totals by source class are the peers' records summed, crashed peers included
    # (their partial pieces count as received).
    for source in ("origin", "seed", "peer"):
        assert result.totals[f"{source}_bytes"] == sum(p.bytes_from[source] for p in result.peers)
    assert any(sum(p.bytes_from.values()) for p in result.peers if p.outcome == "crashed")


def test_a_failing_seed_does_not_stop_the_swarm() -> None:
    _sim, result = run(n=15, faults=Faults(seed_crash_at=0.5))
    assert result.outcomes("normal")["succeeded"] == 15
    seed_record = next(p for p in result.peers if p.kind == "seed")
    assert seed_record.crashed_at == pytest.approx(0.5)


def test_scheduler_outage_sends_peers_back_to_the_source() -> None:
    faults = Faults(scheduler_outage=(0.0, 5.0))
    _sim, result = run(n=10, faults=faults)
    assert result.outcomes("normal")["succeeded"] == 10
    assert all(p.back_to_source for p in result.peers if p.kind == "normal")
    assert result.extra["lost_messages"] >= 10
    assert result.totals["origin_egress_ratio"] == pytest.approx(10.0)


@pytest.mark.timeout(20)
def test_a_scheduler_outage_with_a_retry_due_lets_time_go_on() -> None:
    # The first peer is told to retry (the seed is on its way) just before the scheduler
    # goes down; its retry falls due in the outage. The scheduler's timers must wait for
    # it to come back, not fire again and again at the same instant.
    _sim, result = run(n=4, faults=Faults(scheduler_outage=(0.01, 1.0)), max_time=60.0)
    assert result.decisions.get("Retry", 0) >= 1
    assert result.outcomes("normal")["succeeded"] == 4
    assert result.t_last_finish is not None and result.t_last_finish < 60.0


def test_hosts_stay_known_to_the_scheduler_past_its_host_ttl() -> None:
    # Arrivals spread over twice the scheduler's host TTL (10 min): a host that arrives
    # late is still a host the scheduler knows, and it downloads from its peers, not
    # from the origin (only the seed does).
    workload = Workload.file(16 * MiB, arrivals=Arrivals(kind="ramp", duration=1200.0))
    options = SimOptions(sample_period=1.0)
    result = simulate(flat(6, 125e6, 1250e6, seeds=1), workload, seed=3, options=options)
    assert result.outcomes("normal")["succeeded"] == 6
    assert "HostEvicted" not in result.decisions
    assert result.extra["scheduler_errors"] == 0
    assert not any(p.back_to_source for p in result.peers if p.kind == "normal")
    assert result.totals["origin_egress_ratio"] == pytest.approx(1.0)


def test_corrupt_pieces_are_refetched_and_the_parent_blocked() -> None:
    sim, result = run(n=20, faults=Faults(corrupt_fraction=0.2), seed=5)
    assert result.extra["corrupt_pieces"] > 0
    assert result.outcomes("normal")["succeeded"] == 20
    for peer in sim.peers.values():
        assert peer.have.count == peer.piece_count
    # The scheduler blocked the corrupt parents for the peers that saw them.
    corrupt = {h.host_id for h in sim.hosts.values() if h.corrupt}
    blocked = set()
    for core_peer in sim.scheduler.peers.values():
        blocked |= {pid.split("/")[0] for pid in core_peer.blocked}
    assert blocked and blocked <= corrupt


def test_slow_hosts_finish_later() -> None:
    sim, result = run(n=20, faults=Faults(slow_fraction=0.25, slow_factor=0.2), seed=4)
    assert result.outcomes("normal")["succeeded"] == 20
    slow = {h.host_id for h in sim.hosts.values() if h.kind == "normal" and h.upload_rate < 125e6}
    assert len(slow) == 5
    assert result.efficiency is not None and result.efficiency <= 1.0


def test_image_layers_and_poisson_arrivals() -> None:
    layers = image("app", [8 * MiB, 24 * MiB, 1 * MiB])
    workload = Workload(contents=layers, arrivals=Arrivals(kind="poisson", rate=20.0))
    g = flat(12, 125e6, 1250e6, seeds=1)
    result = simulate(g, workload, seed=6)
    assert result.outcomes("normal")["succeeded"] == 12 * 3
    assert result.content_bytes == 33 * MiB
    registered = sorted({p.registered_at for p in result.peers if p.kind == "normal"})
    assert len(registered) == 12  # one arrival per host, its three layers at once
    assert result.efficiency is not None and result.efficiency <= 1.0


def test_linear_ramp_spreads_registrations() -> None:
    _, result = run(n=10, arrivals=Arrivals(kind="ramp", duration=2.0))
    times = sorted(p.registered_at for p in result.peers if p.kind == "normal")
    assert times[0] == 0.0 and times[-1] == pytest.approx(1.8)


def test_options_reach_the_network_and_a_bound_stops_the_run() -> None:
    g = flat(5, 125e6, 1250e6, seeds=1)
    options = SimOptions(rerate="component", sample_period=0.1)
    result = simulate(g, Workload.file(64 * MiB, max_time=0.2), seed=1, options=options)
    assert result.outcomes("normal")["unfinished"] == 5
    assert result.efficiency is None
    assert result.scenario["rerate"] == "component"


def test_an_error_in_a_simulation_process_stops_the_run_with_that_error() -> None:
    # A process that fails (here the sampler, through a progress callback that raises) ends
    # the run with its error: it is not lost, and the run does not go on without it.
    def progress(finished: int, total: int, now: float) -> None:
        if now > 0.05:
            raise ValueError(f"stopped at {finished} of {total}")

    options = SimOptions(sample_period=0.01, progress=progress)
    with pytest.raises(ValueError, match="stopped at 0 of 3"):
        simulate(flat(3, 125e6, 1250e6, seeds=1), Workload.file(64 * MiB), seed=1, options=options)


@pytest.mark.slow
def test_default_evaluator_is_efficient_on_a_thousand_homogeneous_peers() -> None:
    # The benchmark's rollout (benchmarks/sim_scale.py): 1 GiB, 1 Gbit/s hosts, one seed.
    g = flat(1000, 125e6, 1250e6, seeds=1, latency=0.000125)
    result = simulate(g, Workload.file(1024 * MiB), seed=1)
    assert result.outcomes("normal")["succeeded"] == 1000
    assert result.efficiency is not None and result.efficiency <= 1.0
    assert result.totals["origin_egress_ratio"] <= 1.05
    if result.efficiency < 0.8:
        # The target; the default scheduling does not reach it (about 0.4: a
        # start of 3-5 s while pieces cross the parent graph one shared upload at a time,
        # a plateau near 0.7 of the capacity and a tail of 5-7 s while the last pieces
        # reach, through an acyclic parent graph, the peers that lack them). No ranking,
        # request limit or parent count tried lifts Dragonfly's acyclic graph above about
        # 0.45; a mesh (acyclic=False) reaches about 0.7: see docs/benchmarks.md,
        # "Efficiency". Physics (<= 1) and origin egress are still enforced above.
        pytest.xfail(f"efficiency {result.efficiency:.2f} < 0.8 with the default scheduling")


def seed_copies(result: Result) -> float:
    return result.timeline["seed_bytes"][-1] / result.content_bytes


@pytest.mark.parametrize("seed", [1, 2])
def test_super_seeding_sends_fewer_copies_from_the_seed(seed: int) -> None:
    g = flat(300, 125e6, 1250e6, seeds=1, latency=0.000125)
    workload = Workload.file(256 * MiB)
    plain = simulate(g, workload, seed=seed, options=SimOptions(super_seeding=False))
    super_seeded = simulate(g, workload, seed=seed)
    for result in (plain, super_seeded):
        assert result.outcomes("normal")["succeeded"] == 300
    assert seed_copies(super_seeded) < 0.85 * seed_copies(plain)
    assert super_seeded.t_last_finish < plain.t_last_finish


def test_peers_with_busy_parents_ask_for_others() -> None:
    g = flat(300, 125e6, 1250e6, seeds=1, latency=0.000125)
    workload = Workload.file(256 * MiB)
    watched = simulate(g, workload, seed=1)
    unwatched = simulate(g, workload, seed=1, options=SimOptions(slow_fraction=0.0))
    assert watched.extra["slow_reschedules"] > 0
    assert unwatched.extra["slow_reschedules"] == 0
    assert watched.t_last_finish < unwatched.t_last_finish


def test_upload_concurrency_queues_requests_without_losing_throughput() -> None:
    n, size, origin_rate = 4, 16 * MiB, 100e6
    g = flat(n, 1e9, origin_rate)
    config = SchedulerConfig(enable_peer_to_peer=False)
    options = SimOptions(upload_concurrency=1)
    sim = Simulation(g, Workload.file(size), config, seed=1, options=options)
    result = sim.run()
    assert result.outcomes("normal")["succeeded"] == n
    assert result.extra["queued_requests"] > 0
    # One upload at a time still keeps the origin busy: the same bound as with no limit
    # (plus one request round trip per piece, since the next piece waits for the last).
    pieces = n * size // (4 * MiB)
    assert result.t_last_finish == pytest.approx(n * size / origin_rate, abs=pieces * 4 * LATENCY)
    assert not sim.origin.queue and not sim.origin.uploads


def test_a_crash_with_requests_queued_at_its_parents_starts_none_of_them() -> None:
    # With one upload at a time, a peer has one request running at a parent and more
    # queued there; when it crashes, cancelling the running one frees the parent, which
    # must skip the crashed peer's queued requests, not start them for nobody.
    g = flat(12, 125e6, 1250e6, seeds=1)
    crash_at = {f"h{i}": 0.4 + 0.05 * i for i in range(6)}
    options = SimOptions(upload_concurrency=1)
    sim = Simulation(
        g,
        Workload.file(64 * MiB, faults=Faults(crash_at=crash_at)),
        SchedulerConfig(),
        seed=1,
        options=options,
    )
    result = sim.run()
    outcomes = result.outcomes("normal")
    assert outcomes["crashed"] == 6
    assert outcomes["succeeded"] == 6
    assert result.totals["bytes_sent"] == pytest.approx(result.totals["bytes_received"])
    for host_id in crash_at:
        assert not sim.hosts[host_id].uploads


def test_a_fabric_with_binding_links_obeys_physics() -> None:
    from damselfly.topologies import multi_idc

    g = multi_idc(
        [8, 8],
        upload_rate=125e6,
        origin_upload_rate=1250e6,
        wan_capacity=50e6,
        hosts_per_rack=4,
        seeds_per_idc=1,
    )
    sim = Simulation(g, Workload.file(16 * MiB), SchedulerConfig(), seed=2)
    result = sim.run()
    assert result.outcomes("normal")["succeeded"] == 16
    assert result.links["link"]["count"] > 0
    assert 0.0 < result.links["link"]["max"] <= 1.0 + 1e-9
    assert result.efficiency is not None and result.efficiency <= 1.0
    assert result.totals["bytes_sent"] == pytest.approx(result.totals["bytes_received"])
    # Every flow is over and the rate bookkeeping is back to zero on every constraint.
    network = sim.network
    for c, flows in enumerate(network.flows_on):
        assert not flows and network.used[c] == pytest.approx(0.0, abs=1e-3)


def test_a_workload_naming_unknown_hosts_is_refused() -> None:
    g = flat(3, 125e6, 1250e6)
    with pytest.raises(ValueError, match="not normal hosts"):
        simulate(g, Workload.file(MiB, hosts=("h0", "nobody")))
    result = simulate(g, Workload.file(MiB, hosts=("h0", "h2")), seed=1)
    assert sorted(p.host_id for p in result.peers) == ["h0", "h2"]


def test_an_assignment_gives_each_host_its_own_contents() -> None:
    from damselfly.sim.workload import Content

    a = Content(url="https://origin.example/a", length=8 * MiB)
    b = Content(url="https://origin.example/b", length=8 * MiB)
    g = flat(4, 125e6, 125e6, seeds=0)
    hosts = sorted(n for n, d in g.nodes(data=True) if d.get("role") == "host")
    assignment = {hosts[0]: (a.url,), hosts[1]: (a.url, b.url), hosts[2]: (b.url,)}
    result = simulate(g, Workload(contents=(a, b), assignment=assignment), seed=2)
    pulled = sorted((p.host_id, p.task) for p in result.peers if p.kind == "normal")
    assert pulled == sorted(
        [(hosts[0], a.url), (hosts[1], a.url), (hosts[1], b.url), (hosts[2], b.url)]
    )
    with pytest.raises(ValueError, match="unknown content"):
        Workload(contents=(a,), assignment={hosts[0]: ("https://origin.example/zzz",)})


def test_bytes_by_source_over_time_and_across_idcs() -> None:
    from damselfly.topologies import multi_idc

    g = multi_idc(
        [6, 6],
        upload_rate=125e6,
        origin_upload_rate=1.25e9,
        wan_capacity=125e6,
        seeds_per_idc=[1, 0],
        hosts_per_rack=3,
    )
    result = simulate(g, Workload.file(16 * MiB), seed=3)
    timeline = result.timeline
    for source in ("origin", "seed", "peer"):
        series = timeline[f"{source}_bytes"]
        assert len(series) == len(timeline["t"])
        assert all(b >= a for a, b in itertools.pairwise(series))  # cumulative
        assert series[-1] <= result.totals[f"{source}_bytes"]
    # Six hosts of the second IDC must get every byte across the WAN at least once.
    assert result.totals["wan_bytes"] >= 16 * MiB
    assert {p.labels["idc"] for p in result.peers if p.kind == "normal"} == {"idc0", "idc1"}
    single = simulate(flat(4, 125e6, 1.25e9, seeds=1), Workload.file(8 * MiB), seed=3)
    assert single.totals["wan_bytes"] is None
