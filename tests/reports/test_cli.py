"""`damselfly report` from the command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from damselfly.cli import cli
from damselfly.results import Result


def test_report_command_writes_the_page(tmp_path: Path, small_result: Result) -> None:
    small_result.write(tmp_path / "run.json")
    outcome = CliRunner().invoke(
        cli, ["report", str(tmp_path / "run.json"), "--out", str(tmp_path / "r")]
    )
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "r" / "report.html").exists()
    assert "report.html" in outcome.output


def test_report_command_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"not": "a result"}')
    for target in (tmp_path / "missing.json", tmp_path / "x.json", tmp_path / "empty"):
        if target.name == "empty":
            target.mkdir()
        outcome = CliRunner().invoke(cli, ["report", str(target), "--out", str(tmp_path / "o")])
        assert outcome.exit_code == 2
        assert outcome.output.count("\n") == 1 and outcome.output.startswith("Error: ")
        assert "Traceback" not in outcome.output
