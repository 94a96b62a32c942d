"""The same sweep on local processes and on a Dask cluster gives the same figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from damselfly.scenarios import ScenarioError, read_scenario
from damselfly.scenarios.sweep import run_sweep

SWEEP = """
[scenario]
name = "dask-sweep"
[topology]
generator = "flat"
[hosts]
count = 10
upload = "1Gbit/s"
[seeds]
count = 1
[content]
size = "16MiB"
[sweep]
evaluator = ["default", "random"]
repetitions = 2
"""

FIGURES = ("p50_s", "p95_s", "p100_s", "origin_egress_ratio", "efficiency")


def figures(index: Path) -> dict[str, tuple[float, ...]]:
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    return {line["cell"]: tuple(line[key] for key in FIGURES) for line in lines}


def test_local_and_dask_executors_agree(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP, encoding="utf-8")
    scenario = read_scenario(path)
    local = run_sweep(scenario, tmp_path / "local", workers=2)
    assert local.ran == 4 and local.failed == 0
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        remote = run_sweep(scenario, tmp_path / "dask", executor=client)
    assert remote.ran == 4 and remote.failed == 0
    assert figures(local.index) == figures(remote.index)
    assert len(figures(local.index)) == 4


def test_unknown_executor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP, encoding="utf-8")
    with pytest.raises(ScenarioError, match="unknown executor"):
        run_sweep(read_scenario(path), tmp_path / "x", executor="carrier-pigeon")
