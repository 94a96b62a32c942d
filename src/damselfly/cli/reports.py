"""`damselfly report`: turn result files into an HTML page and a Markdown summary."""

from __future__ import annotations

from pathlib import Path

import click

from damselfly.cli import InputError
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
