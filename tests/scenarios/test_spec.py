"""Scenario files: the built-ins validate; bad files fail with one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from damselfly.scenarios import (
    ScenarioError,
    builtin_names,
    builtin_text,
    load_scenario,
    read_scenario,
)
from damselfly.scenarios.sweep import cells

GOOD = """
[scenario]
name = "tiny"
[hosts]
count = 10
upload = "1Gbit/s"
[content]
size = "64MiB"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtins_are_listed_and_validate() -> None:
    assert builtin_names() == [
        "churn",
        "cicd-burst",
        "dag-vs-mesh",
        "edge-sites",
        "kraken-bench",
        "model-3idc",
        "rollout-10k",
    ]
    for name in builtin_names():
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.description
        assert "[scenario]" in builtin_text(name)


def test_units_are_parsed_once_at_the_edge(tmp_path: Path) -> None:
    scenario = read_scenario(write(tmp_path, GOOD))
    assert scenario.get("hosts", "upload") == 1.25e8
    assert scenario.get("content", "size") == 64 * 1024**2
    rollout = load_scenario("rollout-10k")
    assert rollout.get("content", "layers")[0] == 400 * 1024**2


def test_sweep_grid_and_repetitions(tmp_path: Path) -> None:
    text = GOOD + '[sweep]\nseeds = [0, 1]\nevaluator = ["default", "random"]\nrepetitions = 3\n'
    scenario = read_scenario(write(tmp_path, text))
    assert scenario.grid == {"seeds.count": (0, 1), "scheduler.evaluator": ("default", "random")}
    grid = cells(scenario)
    assert len(grid) == 12
    assert {cell.seed for cell in grid} == {1, 2, 3}
    assert len({cell.name for cell in grid}) == 12


BAD_FILES = [
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[weather]\nsunny = true\n",
        "[weather]: unknown section",
    ),
    (
        "[hosts]\ncount = 10\ncolour = 'red'\n[content]\nsize = '1GiB'\n",
        "hosts.colour: unknown key",
    ),
    ("[hosts]\ncount = 'ten'\n[content]\nsize = '1GiB'\n", "hosts.count: expected a whole number"),
    ("[hosts]\ncount = 10\n[content]\nsize = '-1GiB'\n", "content.size: expected"),
    ("[hosts]\ncount = 10\n[content]\nsize = '2 parsecs'\n", "content.size: expected"),
    (
        "[hosts]\ncount = 10\nupload = '10Gbit'\n[content]\nsize = '1GiB'\n",
        "hosts.upload: expected",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[scheduler]\nevaluator = 'oracle'\n",
        "scheduler.evaluator: expected an evaluator name",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[arrivals]\nkind = 'sometimes'\n",
        "arrivals.kind: expected one of",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[faults]\ncorrupt_fraction = 1.5\n",
        "faults.corrupt_fraction: expected a fraction",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\nfiles = ['1GiB']\n",
        "content: expected exactly one of",
    ),
    ("[content]\nsize = '1GiB'\n", "hosts.count: expected the number of hosts"),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[sweep]\nplanets = [1, 2]\n",
        "sweep.planets: expected 'section.key'",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[sweep]\nseeds = [1, -2]\n",
        "sweep.seeds: expected a whole number",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[arrivals]\nkind = 'poisson'\n",
        "arrivals.rate: expected a rate",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[faults]\ncrash_fraction = 0.2\n",
        "faults.crash_fraction: expected crash_at",
    ),
    (
        "[hosts]\ncount = 10\nmix = { '10Gbit/s' = 0.7, '1Gbit/s' = 0.2 }\n"
        "[content]\nsize = '1GiB'\n",
        "hosts.mix: expected shares that add up to 1",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n"
        "[faults]\nscheduler_outage = ['40s', '10s']\n",
        "faults.scheduler_outage: expected an end after the start",
    ),
    (
        "[topology]\ngenerator = 'torus'\n[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n",
        "topology.generator: expected one of",
    ),
    ("[hosts]\ncount = 10\n[content\nsize = '1GiB'\n", "not valid TOML"),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[scheduler]\nretry_interval = true\n",
        "scheduler.retry_interval: expected",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[daemon]\nslow_fraction = 2\n",
        "daemon.slow_fraction: expected a fraction",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[daemon]\nsuper_seeding = 'yes'\n",
        "daemon.super_seeding: expected true or false",
    ),
    (
        "[hosts]\ncount = 10\n[content]\nsize = '1GiB'\n[daemon]\nslow_window = '0s'\n",
        "daemon.slow_window: expected a duration above zero",
    ),
]


def test_the_daemon_section_reaches_the_simulator(tmp_path: Path) -> None:
    from damselfly.scenarios.build import build

    text = (
        "[hosts]\ncount = 4\n[content]\nsize = '64MiB'\n[daemon]\nsuper_seeding = false\n"
        "slow_window = '2s'\nslow_fraction = 0.25\nstall_timeout = '1s'\n"
        "report_interval = '50ms'\nupload_concurrency = 4\n"
    )
    options = build(read_scenario(write(tmp_path, text))).options
    assert options.super_seeding is False
    assert (options.slow_window, options.slow_fraction) == (2.0, 0.25)
    assert (options.stall_timeout, options.report_interval) == (1.0, 0.05)
    assert options.upload_concurrency == 4
    defaults = build(
        read_scenario(write(tmp_path, "[hosts]\ncount = 4\n[content]\nsize = '64MiB'\n"))
    ).options
    assert defaults.super_seeding is True and defaults.slow_fraction == 0.5


def test_the_scheduler_section_reaches_the_scheduler(tmp_path: Path) -> None:
    from damselfly.scenarios.build import build

    text = (
        "[hosts]\ncount = 4\n[content]\nsize = '64MiB'\n[scheduler]\nacyclic = false\n"
        "candidate_parent_limit = 8\nmax_per_parent = 1\nsample_all_peers = true\n"
    )
    inputs = build(read_scenario(write(tmp_path, text)))
    assert inputs.scheduler_config.acyclic is False
    assert inputs.scheduler_config.sample_all_peers is True
    assert inputs.scheduler_config.candidate_parent_limit == 8
    assert inputs.options.planner.max_per_parent == 1


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_files_fail_with_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        read_scenario(path)
    error = str(caught.value)
    assert "\n" not in error
    assert error.startswith(str(path))
    assert message in error


def test_unknown_name_or_missing_file() -> None:
    with pytest.raises(ScenarioError, match="built-in"):
        load_scenario("no-such-study")
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario("missing.toml")
