"""Sweeps, capacity plans and comparisons, on scenarios small enough to run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damselfly.results import Result
from damselfly.scenarios import read_scenario
from damselfly.scenarios.run import run_scenario
from damselfly.scenarios.studies import Target, compare, metric, plan
from damselfly.scenarios.sweep import run_sweep

MiB = 1024**2

NO_P2P = """
[scenario]
name = "origin-only"
[topology]
generator = "flat"
latency = "0.01ms"
[hosts]
count = 8
upload = "10Gbit/s"
download = "10Gbit/s"
[origin]
upload = "1Gbit/s"
[content]
size = "64MiB"
[scheduler]
enable_peer_to_peer = false
"""

SWARM = """
[scenario]
name = "small-swarm"
[topology]
generator = "flat"
[hosts]
count = 12
upload = "1Gbit/s"
[seeds]
count = 1
[content]
size = "32MiB"
[sweep]
seeds = [0, 1]
repetitions = 2
"""


def scenario_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_target_parsing() -> None:
    assert Target.parse("p95 <= 120s") == Target("p95", 120.0)
    assert Target.parse("all done <= 5min") == Target("all", 300.0)
    for bad in ("p95 < 3s", "fast", "p0 <= 3s", "p95 <= soon"):
        with pytest.raises(ValueError):
            Target.parse(bad)


def test_plan_finds_the_analytic_origin_bandwidth(tmp_path: Path) -> None:
    # Peer-to-peer off: 8 peers share the origin, so all are done at 8 F / u. For all to
    # be done within 4 s the origin needs u = 8 * 64 MiB / 4 s.
    scenario = read_scenario(scenario_file(tmp_path, NO_P2P))
    target = Target("all", 4.0)
    answer = plan(
        scenario,
        "origin",
        target,
        tmp_path / "runs",
        repetitions=1,
        low=1e7,
        high=1e10,
        tolerance=0.02,
        workers=1,
    )
    expected = 8 * 64 * MiB / 4.0
    assert answer.value is not None
    assert expected <= answer.value * 1.01 and answer.value <= expected * 1.05
    # Every value tried below the answer missed the target, every one at or above met it.
    for value, measured in answer.curve.items():
        assert (measured[0] <= 4.0) == (value >= answer.value)


def test_plan_reports_an_unreachable_target(tmp_path: Path) -> None:
    scenario = read_scenario(scenario_file(tmp_path, NO_P2P))
    answer = plan(
        scenario,
        "origin",
        Target("all", 0.001),
        tmp_path / "r",
        repetitions=1,
        low=1e7,
        high=1e8,
        workers=1,
    )
    assert answer.value is None and not answer.met


def test_sweep_runs_every_cell_writes_an_index_and_skips_on_rerun(tmp_path: Path) -> None:
    scenario = read_scenario(scenario_file(tmp_path, SWARM))
    summary = run_sweep(scenario, tmp_path / "out", workers=1)
    assert (summary.ran, summary.skipped, summary.failed) == (4, 0, 0)
    lines = [json.loads(line) for line in summary.index.read_text().splitlines()]
    assert [line["parameters"]["seeds.count"] for line in lines] == [0, 0, 1, 1]
    assert all(line["status"] == "ok" and line["p95_s"] > 0 for line in lines)
    again = run_sweep(scenario, tmp_path / "out", workers=1)
    assert (again.ran, again.skipped) == (0, 4)
    assert again.index.read_text() == summary.index.read_text()


def test_a_failing_cell_does_not_lose_the_others(tmp_path: Path) -> None:
    # A forced piece length of zero is refused by the scheduling core when the run starts:
    # those cells fail, with their parameters, and the others finish.
    text = SWARM.replace("seeds = [0, 1]", '"content.piece_length" = ["4MiB", "0B"]')
    scenario = read_scenario(scenario_file(tmp_path, text))
    summary = run_sweep(scenario, tmp_path / "out", workers=1)
    assert summary.ran == 2 and summary.failed == 2
    failed = [line for line in summary.lines.values() if line["status"] == "failed"]
    assert all(line["parameters"] == {"content.piece_length": 0} for line in failed)
    assert all("piece length" in line["error"] for line in failed)


def test_compare_runs_each_evaluator_on_the_same_seeds(tmp_path: Path) -> None:
    scenario = read_scenario(scenario_file(tmp_path, SWARM.split("[sweep]")[0]))
    results = compare(scenario, ["default", "random"], tmp_path / "cmp", repetitions=2, workers=1)
    assert list(results) == ["default", "random"]
    assert [r.seed for r in results["default"]] == [r.seed for r in results["random"]] == [1, 2]
    for runs in results.values():
        assert all(isinstance(r, Result) and r.outcomes("normal")["succeeded"] == 12 for r in runs)


def test_scenario_runs_are_deterministic(tmp_path: Path) -> None:
    scenario = read_scenario(scenario_file(tmp_path, SWARM.split("[sweep]")[0]))
    first, second = run_scenario(scenario, seed=5), run_scenario(scenario, seed=5)
    assert metric(first, "p95") == metric(second, "p95")
    assert [p.finished_at for p in first.peers] == [p.finished_at for p in second.peers]


def test_each_host_pulls_one_of_several_images(tmp_path: Path) -> None:
    text = """
[scenario]
name = "ci"
[topology]
generator = "flat"
[hosts]
count = 12
upload = "1Gbit/s"
[seeds]
count = 1
[content]
images = 3
layers = ["8MiB", "4MiB"]
[arrivals]
kind = "poisson"
rate = 20.0
"""
    result = run_scenario(read_scenario(scenario_file(tmp_path, text)))
    normal = [p for p in result.peers if p.kind == "normal"]
    by_host: dict[str, set[str]] = {}
    for peer in normal:
        by_host.setdefault(peer.host_id, set()).add(peer.task.split("/blobs/")[0])
    assert len(by_host) == 12
    assert all(len(images) == 1 for images in by_host.values())  # one image per host
    assert len(normal) == 24  # two layers each
    assert all(p.outcome == "succeeded" for p in normal)
    assert result.efficiency is not None and 0 < result.efficiency <= 1.0
    assert {p.labels.get("bandwidth") for p in normal} == {"1 Gbit/s"}


def test_a_sweep_report_draws_p95_against_each_swept_parameter(tmp_path: Path) -> None:
    from damselfly.reports import load_results, write_report
    from damselfly.reports.report import sweep_figures, sweep_points
    from damselfly.reports.summary import headline

    scenario = read_scenario(scenario_file(tmp_path, SWARM))
    run_sweep(scenario, tmp_path / "out", workers=1)
    results = load_results(tmp_path / "out" / "cells")
    points = sweep_points(results, "seeds.count")
    assert sorted(points) == [0, 1] and all(len(values) == 2 for values in points.values())
    expected = sorted(
        headline(r).p95 for _, r in results if r.scenario["sweep"]["parameters"]["seeds.count"] == 1
    )
    assert sorted(points[1]) == expected
    ((parameter, figure),) = sweep_figures(results)
    line = figure.axes[0].get_lines()[0]
    assert parameter == "seeds.count"
    assert list(line.get_ydata()) == pytest.approx([sum(points[0]) / 2, sum(points[1]) / 2])
    files = write_report(results, tmp_path / "report")
    assert any(path.name == "sweep-seeds-count.svg" for path in files.figures)


def test_the_comparison_table_is_computed_from_the_results(tmp_path: Path) -> None:
    import numpy as np

    from damselfly.reports.figures import download_times
    from damselfly.reports.studies import comparison_rows

    scenario = read_scenario(scenario_file(tmp_path, SWARM.split("[sweep]")[0]))
    results = compare(scenario, ["default", "random"], tmp_path / "cmp", repetitions=3, workers=1)
    rows = {row.evaluator: row for row in comparison_rows(results)}
    for evaluator, runs in results.items():
        p95s = [float(np.percentile(download_times(r.peers), 95)) for r in runs]
        assert rows[evaluator].values["p95_s"].mean == pytest.approx(np.mean(p95s))
        assert rows[evaluator].values["p95_s"].count == 3
        egress = [r.totals["origin_egress_ratio"] for r in runs]
        assert rows[evaluator].values["origin_egress_ratio"].mean == pytest.approx(np.mean(egress))


def test_the_topology_evaluator_runs_on_a_multi_idc_scenario(tmp_path: Path) -> None:
    text = """
[topology]
generator = "multi-idc"
idcs = 2
hosts_per_rack = 4
wan_capacity = "1Gbit/s"
[hosts]
count = 16
upload = "10Gbit/s"
[seeds]
count = 2
[content]
size = "32MiB"
[scheduler]
evaluator = "topology"
max_per_parent = 2
piece_policy = "sequential"
"""
    scenario = read_scenario(scenario_file(tmp_path, text))
    result = run_scenario(scenario)
    assert result.scenario["evaluator"] == "topology"
    assert result.outcomes("normal")["succeeded"] == 16
    assert result.totals["wan_bytes"] is not None and result.totals["wan_bytes"] > 0
