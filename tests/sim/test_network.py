"""The flow network on cases whose answer is known by hand."""

from __future__ import annotations

import random

import networkx as nx
import pytest
import simpy

from damselfly.sim.network import Flow, FlowNetwork, FlowState, network_from_graph, run, send

MODES = ["local", "component"]


def make_network(mode: str, hosts: list[tuple[float, float]], links: dict[str, float]):
    """Hosts h0..hn with (upload, download); named links; paths set by the caller."""
    env = simpy.Environment()
    net = FlowNetwork(env, rerate=mode)
    for i, (up, down) in enumerate(hosts):
        net.add_host(f"h{i}", up, down)
    link_ids = {name: net.add_link(name, cap) for name, cap in links.items()}
    return env, net, link_ids


def routes(net: FlowNetwork, table: dict[tuple[int, int], tuple[tuple[int, ...], float]]):
    net.set_path_function(lambda s, d: table.get((s, d), ((), 0.0)))


def rates_at(env: simpy.Environment, t: float, flows: list[Flow]) -> list[float]:
    env.run(until=t)
    return [f.rate for f in flows]


@pytest.mark.parametrize("mode", MODES)
def test_one_flow_gets_the_smallest_capacity(mode: str) -> None:
    env, net, links = make_network(mode, [(100.0, 1e9), (1e9, 40.0)], {"L": 70.0})
    routes(net, {(0, 1): ((links["L"],), 0.25)})
    done: list[tuple[int, float]] = []
    flow = net.start(0, 1, 400, on_done=lambda f: done.append((f.flow_id, env.now)))
    assert rates_at(env, 0.1, [flow]) == [0.0]  # the first byte has not arrived
    assert rates_at(env, 1.0, [flow]) == [40.0]
    env.run()
    assert done == [(flow.flow_id, pytest.approx(0.25 + 400 / 40.0, rel=1e-12))]
    assert flow.state == FlowState.DONE


@pytest.mark.parametrize("mode", MODES)
def test_two_flows_share_a_bottleneck_equally(mode: str) -> None:
    env, net, _ = make_network(mode, [(1e3, 1e3), (1e3, 1e3), (1e3, 100.0)], {})
    a = net.start(0, 2, 1e4)
    b = net.start(1, 2, 1e4)
    assert rates_at(env, 1.0, [a, b]) == [50.0, 50.0]


@pytest.mark.parametrize("mode", MODES)
def test_three_flows_max_min_by_hand(mode: str) -> None:
    # f1 crosses L1; f2 crosses L1 and L2; f3 crosses L2. L1 = 10, L2 = 4.
    # L2 binds first at 2 each (f2, f3); f1 takes what L1 has left: 10 - 2 = 8.
    env, net, links = make_network(mode, [(1e3, 1e3)] * 6, {"L1": 10.0, "L2": 4.0})
    l1, l2 = links["L1"], links["L2"]
    routes(net, {(0, 1): ((l1,), 0.0), (2, 3): ((l1, l2), 0.0), (4, 5): ((l2,), 0.0)})
    flows = [net.start(0, 1, 1e6), net.start(2, 3, 1e6), net.start(4, 5, 1e6)]
    assert rates_at(env, 1.0, flows) == pytest.approx([8.0, 2.0, 2.0])


@pytest.mark.parametrize("mode", MODES)
def test_a_flow_limited_elsewhere_leaves_the_rest(mode: str) -> None:
    env, net, links = make_network(mode, [(3.0, 1e3), (1e3, 1e3), (1e3, 1e3)], {"L": 10.0})
    routes(net, {(0, 2): ((links["L"],), 0.0), (1, 2): ((links["L"],), 0.0)})
    slow = net.start(0, 2, 1e6)
    other = net.start(1, 2, 1e6)
    assert rates_at(env, 1.0, [slow, other]) == pytest.approx([3.0, 7.0])


@pytest.mark.parametrize("mode", MODES)
def test_completion_times_exact_for_piecewise_constant_rates(mode: str) -> None:
    # f1 (100 B) alone at 10 B/s for 5 s; f2 (20 B) joins: both at 5 B/s, f2 ends at 9;
    # f1 then has 100 - 50 - 20 = 30 B left at 10 B/s: it ends at 12.
    env, net, _ = make_network(mode, [(10.0, 1e3), (1e3, 1e3), (1e3, 1e3)], {})
    log: list[tuple[str, float]] = []
    net.start(0, 1, 100, on_done=lambda f: log.append(("f1", env.now)))

    def later(env: simpy.Environment):
        yield env.timeout(5.0)
        net.start(0, 2, 20, on_done=lambda f: log.append(("f2", env.now)))

    env.process(later(env))
    env.run()
    assert [name for name, _ in log] == ["f2", "f1"]
    assert [t for _, t in log] == pytest.approx([9.0, 12.0], rel=1e-12)
    assert net.bytes_sent[0] == pytest.approx(120.0)
    assert net.bytes_received[1] + net.bytes_received[2] == pytest.approx(120.0)


@pytest.mark.parametrize("mode", MODES)
def test_cancel_counts_partial_bytes_and_frees_capacity(mode: str) -> None:
    env, net, _ = make_network(mode, [(10.0, 1e3), (1e3, 1e3), (1e3, 1e3)], {})
    ends: list[float] = []
    a = net.start(0, 1, 100)
    b = net.start(0, 2, 100, on_done=lambda f: ends.append(env.now))
    env.run(until=4.0)  # both at 5 B/s: 20 B each
    assert net.cancel(a) == pytest.approx(20.0)
    env.run(until=5.0)
    assert b.rate == 10.0
    env.run()
    assert b.state == FlowState.DONE
    assert ends == [pytest.approx(4.0 + 80 / 10.0)]  # (stale timers may run env.now on)
    assert sum(net.bytes_sent) == pytest.approx(sum(net.bytes_received))
    assert sum(net.bytes_sent) == pytest.approx(120.0)


def check_feasible(net: FlowNetwork) -> None:
    for c, flows in enumerate(net.flows_on):
        total = sum(f.rate for f in flows.values())
        assert total <= net.capacity[c] * (1 + 1e-9) + 1e-9
        assert total == pytest.approx(net.used[c], rel=1e-9, abs=1e-6)


def check_max_min(net: FlowNetwork, flows: list[Flow]) -> None:
    """Every active flow has a bottleneck: a saturated constraint where it is the fastest."""
    for flow in flows:
        if flow.state != FlowState.ACTIVE:
            continue
        has_bottleneck = False
        for c in flow.constraints:
            saturated = net.used[c] >= net.capacity[c] * (1 - 1e-9)
            fastest = all(o.rate <= flow.rate * (1 + 1e-9) for o in net.flows_on[c].values())
            has_bottleneck |= saturated and fastest
        assert has_bottleneck, flow


def random_swarm(mode: str, seed: int, n_hosts: int = 12, n_flows: int = 60):
    rng = random.Random(seed)
    env = simpy.Environment()
    net = FlowNetwork(env, rerate=mode)
    for i in range(n_hosts):
        net.add_host(f"h{i}", rng.uniform(1.0, 10.0), rng.uniform(1.0, 10.0))
    trunk = net.add_link("trunk", 12.0)
    routes(
        net,
        {
            (s, d): ((trunk,) if (s < 6) != (d < 6) else (), 0.0)
            for s in range(n_hosts)
            for d in range(n_hosts)
        },
    )
    flows: list[Flow] = []

    def arrivals(env: simpy.Environment):
        for _ in range(n_flows):
            yield env.timeout(rng.expovariate(4.0))
            src, dst = rng.sample(range(n_hosts), 2)
            flows.append(net.start(src, dst, rng.uniform(1.0, 20.0)))

    env.process(arrivals(env))
    return env, net, flows


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_swarms_stay_feasible_and_conserve_bytes(mode: str, seed: int) -> None:
    env, net, flows = random_swarm(mode, seed)
    for t in range(1, 40):
        env.run(until=t * 0.5)
        check_feasible(net)
        if mode == "component":
            check_max_min(net, flows)
    env.run()
    assert all(f.state == FlowState.DONE for f in flows)
    assert sum(net.bytes_sent) == pytest.approx(sum(f.size for f in flows))
    assert sum(net.bytes_received) == pytest.approx(sum(net.bytes_sent))


def test_local_mode_stays_close_to_exact_max_min() -> None:
    """The local re-rate's makespan against the exact one on random swarms (within 2%)."""
    for seed in (4, 5, 6):
        ends = {}
        for mode in MODES:
            env, _, _ = random_swarm(mode, seed, n_flows=80)
            env.run()
            ends[mode] = env.now
        assert ends["local"] == pytest.approx(ends["component"], rel=0.02)


def test_quantum_batches_rerates_and_stays_feasible() -> None:
    env = simpy.Environment()
    net = FlowNetwork(env, quantum=0.5)
    for i in range(3):
        net.add_host(f"h{i}", 10.0, 10.0)
    a = net.start(0, 1, 100)
    env.run(until=0.1)
    assert a.rate == 10.0  # the first re-rate happens at once
    b = net.start(2, 1, 100)
    env.run(until=0.3)
    assert b.rate == 0.0  # waits for the next re-rate, at 0.5
    env.run(until=0.6)
    assert (a.rate, b.rate) == (5.0, 5.0)
    check_feasible(net)


def flat_graph(n: int, nic: float, origin_rate: float, latency: float) -> nx.Graph:
    g = nx.Graph()
    g.add_node("switch", role="switch")
    g.add_node("origin", role="origin", upload_rate=origin_rate)
    g.add_edge("origin", "switch", capacity=origin_rate, latency=latency)
    for i in range(n):
        g.add_node(
            f"host-{i}",
            role="host",
            kind="normal",
            idc="a",
            location="a|r1",
            upload_rate=nic,
            download_rate=nic,
        )
        g.add_edge(f"host-{i}", "switch", capacity=nic, latency=latency)
    return g


def test_flat_graph_prunes_every_access_link() -> None:
    env = simpy.Environment()
    net = network_from_graph(env, flat_graph(3, 100.0, 1000.0, 0.001))
    assert len(net.capacity) == 2 * 4
    origin = net.host_index["origin"]
    links, latency = net.path(origin, net.host_index["host-2"])
    assert links == () and latency == pytest.approx(0.002)


def test_tree_graph_keeps_a_binding_uplink() -> None:
    g = nx.Graph()
    for name in ("core", "rack1", "rack2"):
        g.add_node(name, role="switch")
    g.add_edge("core", "rack1", capacity=50.0, latency=0.01)
    g.add_edge("core", "rack2", capacity=50.0, latency=0.01)
    for i, rack in enumerate(["rack1", "rack1", "rack2"]):
        g.add_node(f"h{i}", role="host", upload_rate=100.0, download_rate=100.0)
        g.add_edge(f"h{i}", rack, capacity=100.0, latency=0.001)
    env = simpy.Environment()
    net = network_from_graph(env, g)
    h = net.host_index
    links, latency = net.path(h["h0"], h["h2"])
    assert [net.constraint_name[c] for c in links] == ["rack1->core", "core->rack2"]
    assert latency == pytest.approx(0.022)
    assert net.path(h["h0"], h["h1"]) == ((), pytest.approx(0.002))
    flow = net.start(h["h0"], h["h2"], 1000)
    env.run(until=1.0)
    assert flow.rate == 50.0


def flat_swarm(seed: int, n_hosts: int = 30, n_flows: int = 400):
    """Hosts of mixed capacities, flows between random pairs (parallel ones included)."""
    rng = random.Random(seed)
    env = simpy.Environment()
    net = FlowNetwork(env)
    for i in range(n_hosts):
        net.add_host(f"h{i}", rng.uniform(1.0, 10.0), rng.uniform(1.0, 10.0))
    flows: list[Flow] = []
    log: list[tuple[int, float]] = []

    def arrivals(env: simpy.Environment):
        for _ in range(n_flows):
            yield env.timeout(rng.expovariate(20.0))
            src, dst = (
                rng.sample(range(n_hosts // 3), 2)
                if rng.random() < 0.3
                else (rng.sample(range(n_hosts), 2))
            )
            flows.append(
                net.start(
                    src,
                    dst,
                    rng.uniform(1.0, 20.0),
                    on_done=lambda f: log.append((f.flow_id, env.now)),
                )
            )

    env.process(arrivals(env))
    return env, net, flows, log


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_flat_water_filling_matches_progressive_filling(seed: int) -> None:
    """The flat fast path of the re-rate gives progressive filling's rates (to rounding)."""
    from damselfly.sim import flowkernel

    runs = []
    for fast in (1, 0):
        env, net, flows, log = flat_swarm(seed)
        net._I[flowkernel.H_FLAT_FILL] = fast
        samples = []
        for t in range(1, 30):
            env.run(until=t * 0.5)
            check_feasible(net)
            samples.append([f.rate for f in flows])
        env.run()
        runs.append((samples, log))
    (fast_samples, fast_log), (slow_samples, slow_log) = runs
    for fast_rates, slow_rates in zip(fast_samples, slow_samples, strict=True):
        assert fast_rates == pytest.approx(slow_rates, rel=1e-6, abs=1e-9)
    assert [fid for fid, _ in fast_log] == [fid for fid, _ in slow_log]
    assert [t for _, t in fast_log] == pytest.approx([t for _, t in slow_log], rel=1e-9)


def test_growing_the_arrays_mid_run_changes_nothing() -> None:
    """Room for flows and for longer paths grows while flows are live; a network that had
    the room from the start gives the same completions at the same times."""

    def run(pregrown: bool) -> list[tuple[int, float]]:
        env = simpy.Environment()
        net = FlowNetwork(env)
        for i in range(40):
            net.add_host(f"h{i}", 10.0 + i % 7, 12.0 + i % 5)
        links = [net.add_link(f"L{j}", 30.0 + j) for j in range(5)]
        linked = [(s, d) for s in range(20, 40) for d in range(20, 40)]
        routes(net, {(s, d): (tuple(links[: (s + d) % 6]), 0.01) for s, d in linked})
        if pregrown:
            net._grow(cap=4096, kw=8)
        log: list[tuple[int, float]] = []
        rng = random.Random(3)

        def arrivals(env: simpy.Environment):
            for n in range(900):
                if n % 300 == 0:
                    yield env.timeout(0.5)
                # Flat pairs first, so paths with links (a wider table) come in mid-run.
                src, dst = rng.sample(range(20 if n < 300 else 40), 2)
                net.start(src, dst, 5.0, on_done=lambda f: log.append((f.flow_id, env.now)))

        env.process(arrivals(env))
        env.run(until=1.2)
        check_feasible(net)
        env.run()
        assert net.active_flows == 0 and net.completed_flows == 900
        return log

    assert run(pregrown=False) == run(pregrown=True)


def test_the_member_pool_compacts_and_packs_without_changing_anything() -> None:
    """Each constraint's flows sit in a block of the member pool: blocks grow as flows
    join, leave holes as they go, are compacted in place, and the pool is packed when
    its end is reached. A pool small enough to be packed again and again gives the same
    completions at the same times, and every constraint lists its flows in the order they
    joined; a pool too small to hold the blocks stops the run with an error."""
    from damselfly.sim import flowkernel

    def run(pool_cap: int | None) -> tuple[list[tuple[int, float]], list[list[int]], int]:
        env = simpy.Environment()
        net = FlowNetwork(env)
        for i in range(30):
            net.add_host(f"h{i}", 100.0, 100.0)
        trunk = net.add_link("trunk", 400.0)
        routes(
            net,
            {
                (s, d): ((trunk,) if (s < 15) != (d < 15) else (), 0.001)
                for s in range(30)
                for d in range(30)
            },
        )
        net._grow(cap=2048, kw=4)  # no growing mid-run, which would size the pool anew
        if pool_cap is not None:
            net._I[flowkernel.H_POOL_CAP] = pool_cap
        log: list[tuple[int, float]] = []
        orders: list[list[int]] = []
        rng = random.Random(5)

        def arrivals(env: simpy.Environment):
            # Waves of flows into one host at a time, so that every host's block grows,
            # then empties, and the trunk's block sees flows come and go throughout.
            for wave in range(30):
                for _ in range(40):
                    src = rng.choice([h for h in range(30) if h != wave])
                    net.start(
                        src,
                        wave,
                        rng.uniform(1.0, 5.0),
                        on_done=lambda f: log.append((f.flow_id, env.now)),
                    )
                yield env.timeout(0.3)
                orders.extend(list(flows) for flows in net.flows_on)

        env.process(arrivals(env))
        env.run()
        assert net.completed_flows == 1200
        return log, orders, int(net._I[flowkernel.H_PACKS])

    log, orders, packs = run(None)
    assert packs == 0
    # Same latency everywhere: flows join their constraints in the order they started.
    assert all(ids == sorted(ids) for ids in orders)
    assert any(len(ids) > 20 for ids in orders)
    small_log, small_orders, small_packs = run(800)
    assert small_packs > 10
    assert (small_log, small_orders) == (log, orders)
    with pytest.raises(RuntimeError, match="member pool exhausted"):
        run(100)


class SteppedEnvironment(simpy.Environment):
    """An Environment subclass: the network gives every completion a simpy step of its own
    on it (it moves only a plain Environment's clock itself)."""


@pytest.mark.parametrize("seed", [11, 12])
def test_moving_the_clock_to_completions_changes_nothing(seed: int) -> None:
    def run(env: simpy.Environment) -> list[tuple[str, int, float]]:
        rng = random.Random(seed)
        net = FlowNetwork(env)
        for i in range(10):
            net.add_host(f"h{i}", rng.uniform(1.0, 10.0), rng.uniform(1.0, 10.0))
        net.set_path_function(lambda s, d: ((), 0.01 * ((s + d) % 3)))
        log: list[tuple[str, int, float]] = []

        def done(flow: Flow) -> None:
            log.append(("done", flow.flow_id, env.now))
            if flow.flow_id % 3 == 0:  # a follow-up at once, and one a little later
                net.start(flow.dst, flow.src, 2.0, on_done=done, first_byte_delay=0.0)
                env.process(later(0.05))

        def later(delay: float):
            yield env.timeout(delay)
            log.append(("tick", -1, env.now))
            src, dst = rng.sample(range(10), 2)
            net.start(src, dst, rng.uniform(1.0, 5.0), on_done=done)

        def arrivals():
            for _ in range(80):
                yield env.timeout(rng.expovariate(8.0))
                src, dst = rng.sample(range(10), 2)
                net.start(src, dst, rng.uniform(1.0, 10.0), on_done=done)

        env.process(arrivals())
        env.run(until=3.0)
        log.append(("until", -1, env.now))
        env.run()
        return log

    plain, stepped = run(simpy.Environment()), run(SteppedEnvironment())
    assert len(plain) > 100
    assert [(what, fid) for what, fid, _ in plain] == [(what, fid) for what, fid, _ in stepped]
    assert [t for *_, t in plain] == pytest.approx([t for *_, t in stepped], rel=1e-12)


@pytest.mark.timeout(60, method="thread")  # a loop in the compiled kernel ignores signals
def test_a_flow_whose_time_left_rounds_into_the_tolerance_completes() -> None:
    # Three 4 MiB flows leave a 1 GB/s upload with a rounding residue in use, so a 1-byte
    # flow after them runs a hair under 1 GB/s: its byte takes a hair over the kernel's
    # time tolerance (1 ns), while its finish time, in absolute time, rounds into it.
    env = simpy.Environment()
    net = FlowNetwork(env)
    for name in ("sender", "a", "b", "c", "d"):
        net.add_host(name, 1e9, 1e9)
    net.set_path_function(lambda s, d: ((), 0.0))
    for receiver in (1, 2, 3):
        net.start(0, receiver, 4 * 1024 * 1024)
    env.run()
    assert 0.0 < net.used[0] < 1e-6  # the residue
    finished: list[float] = []
    flow = net.start(0, 4, 1, on_done=lambda f: finished.append(env.now))
    env.run()
    assert flow.state == FlowState.DONE
    assert finished == [pytest.approx(0.012582912, abs=2e-9)]  # one instant, within 1 ns


def _mixed_events(env: simpy.Environment, trace: list[tuple[float, str]]) -> simpy.Event:
    """Messages, timeouts and a process at equal and different times; returns an event
    that a message succeeds at t = 3 with the value "over"."""
    done = env.event()

    def note(label: str) -> None:
        trace.append((env.now, label))
        if label == "m3":
            done.succeed("over")

    def process() -> object:
        for k in range(4):
            trace.append((env.now, f"p{k}"))
            yield env.timeout(1.0)

    env.process(process())
    for k, delay in enumerate((1.0, 0.0, 1.0, 3.0, 2.5, 5.0)):
        send(env, delay, note, f"m{k}")
    env.timeout(1.0).callbacks.append(lambda _: trace.append((env.now, "t")))
    return done


def test_run_delivers_messages_in_the_order_and_at_the_times_simpy_would() -> None:
    expected: list[tuple[float, str]] = []
    env = simpy.Environment()
    assert env.run(until=_mixed_events(env, expected)) == "over"
    trace: list[tuple[float, str]] = []
    env = simpy.Environment()
    assert run(env, _mixed_events(env, trace)) == "over"
    assert trace == expected
    assert env.now == 3.0 and len(trace) == 10  # the message at 5 s is still queued
    assert run(env, env.timeout(10.0, value="later")) == "later"
    assert env.now == 13.0 and trace[-1] == (5.0, "m5")


def test_run_with_nothing_left_to_trigger_its_event_says_so() -> None:
    env = simpy.Environment()
    send(env, 1.0, lambda: None)
    with pytest.raises(RuntimeError, match="until"):
        run(env, env.event())
    assert env.now == 1.0
    finished = env.timeout(0.5, value=7)
    env.run()
    assert run(env, finished) == 7  # an event already processed gives its value


def test_a_kept_route_starts_the_same_flow_as_a_looked_up_one() -> None:
    env, net, links = make_network("local", [(1e3, 1e3)] * 3, {"L": 30.0})
    routes(net, {(0, 2): ((links["L"],), 0.5), (1, 2): ((), 0.125)})
    kept = net.route(0, 2)
    assert kept[:2] == ((links["L"],), 0.5)
    assert net.route(1, 2)[:2] == ((), 0.125)
    done: list[tuple[int, float]] = []
    a = net.start(0, 2, 60.0, lambda f: done.append((f.flow_id, env.now)), route=kept)
    b = net.start(0, 2, 60.0, lambda f: done.append((f.flow_id, env.now)))
    # The route given is the one used: this flow from host 0 takes host 1's route (no link,
    # an eighth of a second), so it finishes alone before the others start.
    c = net.start(0, 2, 60.0, lambda f: done.append((f.flow_id, env.now)), route=net.route(1, 2))
    assert rates_at(env, 1.0, [a, b]) == [15.0, 15.0]  # both cross L, both after 0.5 s
    env.run()
    assert done == [
        (c.flow_id, pytest.approx(0.125 + 60.0 / 1e3)),
        (a.flow_id, pytest.approx(4.5)),
        (b.flow_id, pytest.approx(4.5)),
    ]
    assert net.carried_bytes[links["L"]] == 120.0
