"""The scenario, sweep, plan and compare commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from damselfly.cli import cli

SMALL = """
[scenario]
name = "small"
[topology]
generator = "flat"
[hosts]
count = 8
upload = "1Gbit/s"
[seeds]
count = 1
[content]
size = "16MiB"
"""


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def test_scenarios_list_and_show() -> None:
    listing = invoke("scenarios", "list")
    assert listing.exit_code == 0
    assert "rollout-10k" in listing.output and "kraken-bench" in listing.output
    shown = invoke("scenarios", "show", "churn")
    assert shown.exit_code == 0 and "crash_fraction = 0.2" in shown.output
    missing = invoke("scenarios", "show", "nope")
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_sweep_command(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(SMALL + "[sweep]\nseeds = [0, 1]\n", encoding="utf-8")
    outcome = invoke("sweep", str(study), "--out", str(tmp_path / "out"), "--workers", "1")
    assert outcome.exit_code == 0, outcome.output
    assert "2 cells ran" in outcome.output
    assert len((tmp_path / "out" / "index.jsonl").read_text().splitlines()) == 2


def test_bad_scenario_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    study = tmp_path / "bad.toml"
    study.write_text("[hosts]\ncount = -3\n[content]\nsize = '1GiB'\n", encoding="utf-8")
    for command in (
        ["sweep", str(study), "--out", str(tmp_path / "o")],
        ["compare", str(study), "--out", str(tmp_path / "c")],
    ):
        outcome = invoke(*command)
        assert outcome.exit_code == 2
        assert outcome.output.strip().count("\n") == 0
        assert "hosts.count" in outcome.output and "Traceback" not in outcome.output


def test_compare_command_table_matches_csv(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(SMALL, encoding="utf-8")
    outcome = invoke(
        "compare",
        str(study),
        "--evaluators",
        "default,random",
        "--repeat",
        "2",
        "--out",
        str(tmp_path / "cmp"),
        "--workers",
        "1",
    )
    assert outcome.exit_code == 0, outcome.output
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [row["evaluator"] for row in rows] == ["default", "random"]
    assert all(row["runs"] == "2" for row in rows)
    # The printed table carries the same p50 means as the CSV.
    for row in rows:
        lines = outcome.output.splitlines()
        line = next(text for text in lines if text.startswith(row["evaluator"]))
        assert f"{float(row['p50_s_mean']):.4g}" in line
    assert (tmp_path / "cmp" / "compare.png").exists()
    unknown = invoke("compare", str(study), "--evaluators", "psychic", "--out", str(tmp_path / "x"))
    assert unknown.exit_code == 2 and "psychic" in unknown.output


def test_plan_command(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(SMALL, encoding="utf-8")
    outcome = invoke(
        "plan",
        str(study),
        "--knob",
        "seeds",
        "--target",
        "all done <= 10min",
        "--low",
        "0",
        "--high",
        "2",
        "--repeat",
        "1",
        "--out",
        str(tmp_path / "p"),
        "--workers",
        "1",
    )
    assert outcome.exit_code == 0, outcome.output
    answer = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert answer["answer"] == 0.0  # generous target: no seed needed
    assert "answer: seeds = 0" in outcome.output
    bad = invoke(
        "plan", str(study), "--knob", "seeds", "--target", "soon", "--out", str(tmp_path / "q")
    )
    assert bad.exit_code == 2 and "target" in bad.output
