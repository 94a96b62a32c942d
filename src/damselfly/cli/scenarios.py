"""`damselfly scenarios` (list, show) and `damselfly sweep`."""

from __future__ import annotations

from pathlib import Path

import click

from damselfly.cli import InputError, prepare_simulator, workers_option


@click.group()
def scenarios() -> None:
    """The scenarios that ship with Damselfly.

    Run one with `damselfly sim NAME`; copy one with `damselfly scenarios show NAME >
    mine.toml` to start your own study.
    """


@scenarios.command("list")
def list_scenarios() -> None:
    """Name and one-line description of every built-in scenario."""
    from damselfly.scenarios import builtin_names, load_scenario

    for name in builtin_names():
        description = load_scenario(name).description
        click.echo(f"{name:<14} {description}")


@scenarios.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Print built-in scenario NAME as TOML."""
    from damselfly.scenarios import ScenarioError, builtin_text

    try:
        click.echo(builtin_text(name), nl=False)
    except ScenarioError as error:
        raise InputError(str(error)) from None


def load(name_or_path: str):  # type: ignore[no-untyped-def]
    """A scenario for a command, or a one-line error with exit 2."""
    from damselfly.scenarios import ScenarioError, load_scenario

    try:
        return load_scenario(name_or_path)
    except ScenarioError as error:
        raise InputError(str(error)) from None


def progress_bar(total: int, description: str):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr, and the callback that advances it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = bar.add_task(description, total=total)

    def advance(done: int, _total: int, name: str) -> None:
        bar.update(task, completed=done, description=f"{description}: {name}")

    return bar, advance


@click.command()
@click.argument("scenario")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for cells/*.json and index.jsonl; a re-run skips finished cells.",
)
@click.option(
    "--executor",
    default="local",
    show_default=True,
    help="'local' (a process pool on this machine) or 'dask://HOST:PORT'.",
)
@workers_option
def sweep(scenario: str, out_dir: Path, executor: str, workers: int | None) -> None:
    """Run every cell of SCENARIO's [sweep] grid (a file or a built-in name).

    Each cell is one simulation; its result goes to OUT/cells/ and its headline figures to
    OUT/index.jsonl. A failed cell is reported with its parameters and the others go on.
    Example: damselfly sweep study.toml --out sweep/ && damselfly report sweep/cells --out r/
    """
    from damselfly.scenarios import ScenarioError
    from damselfly.scenarios.sweep import cells, run_sweep

    study = load(scenario)
    total = len(cells(study))
    prepare_simulator()
    bar, advance = progress_bar(total, study.name)
    try:
        with bar:
            summary = run_sweep(
                study, out_dir, executor=executor, workers=workers, progress=advance
            )
    except ScenarioError as error:
        raise InputError(str(error)) from None
    click.echo(
        f"{summary.ran} cells ran, {summary.skipped} already done, {summary.failed} failed; "
        f"index: {summary.index}"
    )
    for line in summary.lines.values():
        if line["status"] != "ok":
            click.echo(f"failed: {line['cell']} {line['parameters']}: {line['error']}", err=True)
    if summary.failed:
        raise SystemExit(1)
