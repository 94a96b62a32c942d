"""`damselfly sim` parses, runs, prints and writes the results schema."""

from __future__ import annotations

from click.testing import CliRunner

from damselfly.cli import cli
from damselfly.results import Result


def test_sim_writes_a_result_and_prints_a_summary(tmp_path) -> None:
    out = tmp_path / "run.json"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["sim", "--peers", "8", "--size", "32MiB", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "efficiency" in result.output
    document = Result.read(out)
    assert document.seed == 3 and document.outcomes("normal")["succeeded"] == 8


def test_sim_rejects_bad_input_in_one_line() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["sim", "--size", "lots"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = runner.invoke(cli, ["sim", "--evaluator", "psychic"])
    assert result.exit_code == 2 and "unknown evaluator" in result.output
