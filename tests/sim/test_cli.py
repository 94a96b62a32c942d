"""`damselfly sim` parses, runs, prints and writes the results schema."""

from __future__ import annotations

from click.testing import CliRunner

from damselfly.cli import cli
from damselfly.results import Result

# The smallest study: six hosts on the default network fetch 16 MiB.
TINY_STUDY = '[scenario]\nname = "tiny"\n[hosts]\ncount = 6\n[content]\nsize = "16MiB"\n'


def write_study(tmp_path, text: str):
    """A scenario file in ``tmp_path`` holding ``text``; returns its path."""
    study = tmp_path / "study.toml"
    study.write_text(text, encoding="utf-8")
    return study


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


def test_sim_runs_a_scenario_file_and_writes_the_report(tmp_path) -> None:
    study = write_study(
        tmp_path,
        '[scenario]\nname = "tiny-dc"\n[topology]\ngenerator = "leaf-spine"\nhosts_per_rack = 4\n'
        '[hosts]\ncount = 12\nupload = "1Gbit/s"\n[seeds]\ncount = 1\n[content]\nsize = "16MiB"\n',
    )
    runner = CliRunner()
    result = runner.invoke(
        cli, ["sim", str(study), "--seed", "4", "--report", str(tmp_path / "report")]
    )
    assert result.exit_code == 0, result.output
    assert "tiny-dc" in result.output
    document = Result.read(tmp_path / "report" / "result.json")
    assert document.seed == 4 and document.scenario["name"] == "tiny-dc"
    assert document.outcomes("normal")["succeeded"] == 12
    assert (tmp_path / "report" / "report.html").exists()


def test_sim_scenario_and_flat_flags_do_not_mix() -> None:
    result = CliRunner().invoke(cli, ["sim", "churn", "--peers", "5"])
    assert result.exit_code == 2 and "--peers" in result.output
    result = CliRunner().invoke(cli, ["sim", "no-such-study"])
    assert result.exit_code == 2 and "built-in" in result.output


def test_sim_quantum_batches_re_rates_and_is_recorded(tmp_path) -> None:
    exact, batched = tmp_path / "exact.json", tmp_path / "batched.json"
    runner = CliRunner()
    arguments = ["sim", "--peers", "12", "--size", "64MiB", "--seed", "2"]
    assert runner.invoke(cli, [*arguments, "--out", str(exact)]).exit_code == 0
    result = runner.invoke(cli, [*arguments, "--quantum", "5ms", "--out", str(batched)])
    assert result.exit_code == 0, result.output
    exact_run, batched_run = Result.read(exact), Result.read(batched)
    assert exact_run.scenario["quantum"] == 0.0 and batched_run.scenario["quantum"] == 0.005
    assert batched_run.extra["rerates"] < exact_run.extra["rerates"]
    assert batched_run.outcomes("normal")["succeeded"] == 12
    assert batched_run.efficiency is not None and batched_run.efficiency <= 1.0


def test_sim_quantum_overrides_a_scenario_and_rejects_bad_values(tmp_path) -> None:
    study = write_study(tmp_path, TINY_STUDY + '[run]\nquantum = "1ms"\n')
    out = tmp_path / "run.json"
    runner = CliRunner()
    result = runner.invoke(cli, ["sim", str(study), "--quantum", "2ms", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Result.read(out).scenario["quantum"] == 0.002
    for bad in ("-1ms", "soon"):
        result = runner.invoke(cli, ["sim", "--quantum", bad])
        assert result.exit_code == 2 and "--quantum" in result.output, result.output
        assert "Traceback" not in result.output


def test_sim_progress_counts_a_scenarios_own_peers(tmp_path, monkeypatch) -> None:
    import rich.progress

    import damselfly.cli.sim as sim_command

    study = write_study(tmp_path, TINY_STUDY)
    totals: list[float | None] = []

    def stop(progress: rich.progress.Progress) -> None:
        (task,) = progress.tasks
        totals.append(task.total)
        original_stop(progress)

    original_stop = rich.progress.Progress.stop
    monkeypatch.setattr(rich.progress.Progress, "stop", stop)
    monkeypatch.setattr(sim_command, "PROGRESS_AFTER_S", -1.0)  # show it at once
    result = CliRunner().invoke(cli, ["sim", str(study)])
    assert result.exit_code == 0, result.output
    assert totals == [6]  # the scenario's hosts, not --peers' default


def test_sim_summary_counts_peers_the_time_cap_left_unfinished(tmp_path) -> None:
    study = write_study(
        tmp_path,
        '[scenario]\nname = "capped"\n[hosts]\ncount = 6\nupload = "100Mbit/s"\n'
        '[content]\nsize = "64MiB"\n[run]\ntime_cap = "50ms"\n',
    )
    result = CliRunner().invoke(cli, ["sim", str(study)])
    assert result.exit_code == 0, result.output
    assert "unfinished" in result.output
    assert "0 / 0 / 0 / 6" in result.output
