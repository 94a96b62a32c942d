"""`damselfly report`: turn result files into an HTML page and a Markdown summary."""

from __future__ import annotations

from pathlib import Path

import click

from damselfly.cli import InputError, prepare_simulator, workers_option
from damselfly.reports import ReportError, load_results, write_report


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Directory for report.html, report.md and figures/.",
)
@click.option("--title", default="Damselfly report", show_default=True, help="Page title.")
def report(results: Path, out_dir: Path, title: str) -> None:
    """Write a self-contained report of RESULTS (a result JSON file, or a directory of them,
    such as a sweep's output).

    The HTML page embeds its figures and opens without a network; report.md carries the
    same headline figures and warnings. Example:

        damselfly sim --peers 1000 --out run.json && damselfly report run.json --out report/
    """
    try:
        loaded = load_results(results)
        files = write_report(loaded, out_dir, title=title)
    except ReportError as error:
        raise InputError(str(error)) from None
    except OSError as error:
        message = f"cannot write the report: {error.strerror}: {error.filename}"
        raise click.ClickException(message) from None
    click.echo(f"report: {files.html}")
    click.echo(f"summary: {files.markdown}")


@click.command()
@click.argument("scenario")
@click.option(
    "--target",
    required=True,
    help="What must hold, e.g. 'p95 <= 120s' or 'all done <= 5min'.",
)
@click.option(
    "--knob",
    type=click.Choice(["seeds", "origin", "wan", "host"]),
    required=True,
    help="What to turn: seed peers, origin bandwidth, WAN capacity or host bandwidth.",
)
@click.option("--low", help="Smallest value to consider (a count, or a rate such as 1Gbit/s).")
@click.option("--high", help="Largest value to consider (a count, or a rate such as 100Gbit/s).")
@click.option(
    "--repeat", type=click.IntRange(min=1), default=3, show_default=True, help="Seeds per value."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("plan"),
    show_default=True,
    help="Directory for the runs, plan.png/svg and plan.json.",
)
@workers_option
def plan(
    scenario: str,
    target: str,
    knob: str,
    low: str | None,
    high: str | None,
    repeat: int,
    out_dir: Path,
    workers: int | None,
) -> None:
    """Find the smallest KNOB value for which SCENARIO meets TARGET.

    Bisects with the simulator (more seeds or bandwidth never slows a rollout down in the
    model), repeating each value over several seeds; prints the answer and the curve and
    writes the figure. Example:

        damselfly plan rollout-10k --knob seeds --target 'p95 <= 60s' --high 8
    """
    import json

    from damselfly.cli.scenarios import load
    from damselfly.reports.figures import save_figure
    from damselfly.reports.studies import plan_figure
    from damselfly.scenarios import ScenarioError
    from damselfly.scenarios.studies import KNOBS, Target
    from damselfly.scenarios.studies import plan as run_plan
    from damselfly.units import UnitError, format_rate, parse_rate

    study = load(scenario)
    spec = KNOBS[knob]

    def bound(text: str | None) -> float | None:
        if text is None:
            return None
        try:
            return float(int(text)) if spec.integer else parse_rate(text)
        except (ValueError, UnitError) as error:
            raise InputError(f"--low/--high {text!r}: {error}") from None

    def show(value: float) -> str:
        return f"{int(value)}" if spec.integer else format_rate(value)

    def report_progress(value: float, measured: float) -> None:
        click.echo(f"  {knob} = {show(value):>12}: {parsed.metric} = {measured:.2f} s", err=True)

    prepare_simulator()
    try:
        parsed = Target.parse(target)
        click.echo(f"planning {knob} for {study.name}: {parsed}", err=True)
        answer = run_plan(
            study,
            knob,
            parsed,
            out_dir / "runs",
            repetitions=repeat,
            low=bound(low),
            high=bound(high),
            workers=workers,
            progress=report_progress,
        )
    except ScenarioError as error:
        raise InputError(str(error)) from None
    figure = plan_figure(
        answer.curve,
        knob=knob,
        unit=spec.unit,
        target_metric=parsed.metric,
        limit=parsed.limit,
        answer=answer.value,
    )
    paths = save_figure(figure, out_dir, "plan")
    (out_dir / "plan.json").write_text(
        json.dumps(
            {
                "knob": knob,
                "target": str(parsed),
                "answer": answer.value,
                "curve": {str(k): v for k, v in sorted(answer.curve.items())},
            },
            indent=1,
        )
        + "\n"
    )
    click.echo("value          mean of " + parsed.metric)
    for value, values in sorted(answer.curve.items()):
        mean = sum(values) / len(values)
        click.echo(f"{show(value):>12}   {mean:.2f} s")
    if answer.value is None:
        largest = max(answer.curve) if answer.curve else spec.high
        click.echo(f"not met: even {knob} = {show(largest)} misses {parsed}")
        raise SystemExit(1)
    click.echo(f"answer: {knob} = {show(answer.value)} meets {parsed}; figure: {paths['png']}")


@click.command()
@click.argument("scenario")
@click.option(
    "--evaluators",
    default="default,random,bandwidth,topology",
    show_default=True,
    help="Comma-separated evaluator names; any registered evaluator works.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Seeds per evaluator.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("compare"),
    show_default=True,
    help="Directory for the runs, compare.csv and compare.png/svg.",
)
@workers_option
def compare(
    scenario: str, evaluators: str, repeat: int, out_dir: Path, workers: int | None
) -> None:
    """Run SCENARIO with each evaluator on the same seeds and compare them.

    Prints p50/p95/p100 download times, origin egress and cross-IDC bytes as mean ± 95%
    confidence interval, writes the table to compare.csv and a figure. Example:

        damselfly compare model-3idc --evaluators default,topology --repeat 5
    """
    from damselfly.cli.scenarios import load, progress_bar
    from damselfly.reports.figures import save_figure
    from damselfly.reports.studies import (
        COMPARISON_COLUMNS,
        comparison_figure,
        comparison_rows,
        write_comparison_csv,
    )
    from damselfly.scenarios import ScenarioError
    from damselfly.scenarios.studies import compare as run_compare
    from damselfly.scheduling import evaluator_names

    names = [name.strip() for name in evaluators.split(",") if name.strip()]
    unknown = [name for name in names if name not in evaluator_names()]
    if unknown or not names:
        raise InputError(
            f"--evaluators: unknown {', '.join(unknown) or '(none given)'} "
            f"(known: {', '.join(evaluator_names())})"
        )
    study = load(scenario)
    prepare_simulator()
    bar, advance = progress_bar(len(names) * repeat, f"compare {study.name}")
    try:
        with bar:
            results = run_compare(
                study,
                names,
                out_dir / "runs",
                repetitions=repeat,
                workers=workers,
                progress=advance,
            )
    except ScenarioError as error:
        raise InputError(str(error)) from None
    rows = comparison_rows(results)
    csv_path = write_comparison_csv(rows, out_dir / "compare.csv")
    paths = save_figure(comparison_figure(rows), out_dir, "compare")
    header = f"{'evaluator':<12}" + "".join(
        f"{label + ' (' + unit + ')':>27}" for _, label, unit in COMPARISON_COLUMNS
    )
    click.echo(header)
    for row in rows:
        cells = "".join(f"{row.values[column]!s:>27}" for column, _, _ in COMPARISON_COLUMNS)
        click.echo(f"{row.evaluator:<12}{cells}")
    click.echo(f"table: {csv_path}; figure: {paths['png']}")
