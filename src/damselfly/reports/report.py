"""The report: one self-contained HTML page and a Markdown summary of one or more results.

``write_report`` draws the figures (PNG and SVG under ``figures/``), embeds the PNGs in the
HTML as data URIs so the page opens anywhere with no network, and writes ``report.md`` with
the same headline figures and warnings for terminals and pull requests.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from damselfly.reports.figures import (
    bytes_by_source,
    completion_cdf,
    completions_over_time,
    link_utilisation,
    metric_against_parameter,
    save_figure,
)
from damselfly.reports.summary import describe_scenario, headline, warnings
from damselfly.results import Result, SchemaError

__all__ = ["ReportError", "ReportFiles", "load_results", "write_report"]

# A directory of hundreds of sweep cells gets an overview row for each, and full figures
# for the first few only: the page must stay quick to open.
MAX_DETAILED_RESULTS = 12


class ReportError(ValueError):
    """Nothing to report on, or a file that is not a result."""


@dataclass(slots=True)
class ReportFiles:
    html: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)


def load_results(path: str | Path) -> list[tuple[str, Result]]:
    """Results from a result file, or from every result file in a directory (sorted).

    Raises ReportError when the path is missing, a named file is not a result, or a
    directory holds none.
    """
    path = Path(path)
    if path.is_file():
        try:
            return [(path.stem, Result.read(path))]
        except (SchemaError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ReportError(f"{path}: not a Damselfly result ({error})") from None
    if path.is_dir():
        found = []
        for candidate in sorted(path.rglob("*.json")):
            try:
                found.append(
                    (str(candidate.relative_to(path).with_suffix("")), Result.read(candidate))
                )
            except (SchemaError, json.JSONDecodeError, UnicodeDecodeError, OSError):
                continue  # indexes and other JSON files live beside results
        if not found:
            raise ReportError(f"{path}: no Damselfly result files in this directory")
        return found
    raise ReportError(f"{path}: no such file or directory")


def _group_by(result: Result) -> str | None:
    for key in ("idc", "bandwidth", "rack"):
        values = {str((getattr(p, "labels", None) or {}).get(key)) for p in result.peers}
        values.discard("None")
        if len(values) > 1:
            return key
    return None


def _embed(figure: Figure, directory: Path, name: str, files: list[Path]) -> str:
    paths = save_figure(figure, directory, name)
    files.extend(paths.values())
    data = base64.b64encode(paths["png"].read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;
text-align:left}th{background:#f3f3f3}.warn{background:#fff4e5;border-left:4px solid #D55E00;
padding:.5rem 1rem;margin:.5rem 0}.ok{background:#eef7f1;border-left:4px solid #009E73;
padding:.5rem 1rem}img{max-width:100%;height:auto;margin:.5rem 0}.muted{color:#666}
"""


def write_report(
    results: Sequence[tuple[str, Result]],
    out_dir: str | Path,
    *,
    title: str = "Damselfly report",
) -> ReportFiles:
    """Write ``report.html``, ``report.md`` and ``figures/`` into ``out_dir``."""
    if not results:
        raise ReportError("no results to report on")
    out = Path(out_dir)
    figures_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    body: list[str] = [f"<h1>{html.escape(title)}</h1>"]
    markdown: list[str] = [f"# {title}", ""]

    if len(results) > 1:
        body.append("<h2>Overview</h2>")
        body.append(_overview_table_html(results))
        markdown.extend(_overview_table_markdown(results))
        for parameter, figure in sweep_figures(results):
            name = f"sweep-{_slug(parameter)}"
            body.append(_embed(figure, figures_dir, name, files))
            markdown.extend([f"![{name}](figures/{name}.svg)", ""])

    for index, (name, result) in enumerate(results):
        summary = headline(result)
        found = warnings(result)
        slug = _slug(name) or f"result{index}"
        body.append(f"<h2>{html.escape(name)}</h2>")
        body.append(f"<p>{html.escape(describe_scenario(result))}</p>")
        markdown.extend([f"## {name}", "", describe_scenario(result), ""])
        if found:
            body.extend(f'<div class="warn">⚠ {html.escape(text)}</div>' for text in found)
            markdown.extend(f"- **Warning:** {text}" for text in found)
        else:
            body.append(
                '<div class="ok">No warnings: every peer finished, nothing saturated.</div>'
            )
            markdown.append("- No warnings.")
        markdown.append("")
        rows = summary.rows()
        body.append(
            "<table><tr><th>figure</th><th>value</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows
            )
            + "</table>"
        )
        markdown.extend(["| figure | value |", "| --- | --- |"])
        markdown.extend(f"| {k} | {v} |" for k, v in rows)
        markdown.append("")
        if index >= MAX_DETAILED_RESULTS:
            body.append('<p class="muted">Figures omitted: see the overview.</p>')
            continue
        drawings = [
            ("completion-cdf", completion_cdf(result, _group_by(result))),
            ("completions", completions_over_time(result)),
            ("bytes-by-source", bytes_by_source(result)),
            ("links", link_utilisation(result)),
        ]
        for figure_name, figure in drawings:
            body.append(_embed(figure, figures_dir, f"{slug}-{figure_name}", files))
            markdown.append(f"![{figure_name}](figures/{slug}-{figure_name}.svg)")
        markdown.append("")

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + '<p class="muted">Written by Damselfly from results in the damselfly.result schema.</p>'
        + "</body></html>\n"
    )
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    markdown_path = out / "report.md"
    markdown_path.write_text("\n".join(markdown) + "\n", encoding="utf-8")
    return ReportFiles(html=html_path, markdown=markdown_path, figures=files)


def sweep_points(
    results: Sequence[tuple[str, Result]], parameter: str
) -> dict[float | str, list[float]]:
    """p95 download time of each sweep cell, grouped by the value of ``parameter``."""
    points: dict[float | str, list[float]] = {}
    for _, result in results:
        value = result.scenario.get("sweep", {}).get("parameters", {}).get(parameter)
        if value is None:
            continue
        key = (
            value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
        )
        points.setdefault(key, []).append(headline(result).p95)
    return dict(sorted(points.items(), key=lambda item: (isinstance(item[0], str), item[0])))


def sweep_figures(results: Sequence[tuple[str, Result]]) -> list[tuple[str, Figure]]:
    """For a sweep, p95 against each swept parameter, mean and 95% CI over the other cells."""
    parameters: list[str] = []
    for _, result in results:
        for name in result.scenario.get("sweep", {}).get("parameters", {}):
            if name not in parameters:
                parameters.append(name)
    figures = []
    for parameter in parameters:
        points = sweep_points(results, parameter)
        if len(points) > 1:
            figure = metric_against_parameter(
                points, parameter=parameter, metric="p95 download time (s)"
            )
            figure.axes[0].set_title(f"p95 download time against {parameter}")
            figures.append((parameter, figure))
    return figures


def _overview_rows(results: Sequence[tuple[str, Result]]) -> list[list[str]]:
    rows = []
    for name, result in results:
        summary = headline(result)
        rows.append(
            [
                name,
                f"{summary.succeeded}/{summary.peers}",
                f"{summary.p50:.1f}",
                f"{summary.p95:.1f}",
                f"{summary.p100:.1f}",
                f"{summary.origin_egress_ratio:.3g}",
                "n/a" if summary.efficiency is None else f"{summary.efficiency:.3f}",
            ]
        )
    return rows


_OVERVIEW_HEADER = ["result", "done", "p50 (s)", "p95 (s)", "p100 (s)", "origin x", "efficiency"]


def _overview_table_html(results: Sequence[tuple[str, Result]]) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in _OVERVIEW_HEADER)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in _overview_rows(results)
    )
    return f"<table><tr>{header}</tr>{rows}</table>"


def _overview_table_markdown(results: Sequence[tuple[str, Result]]) -> list[str]:
    lines = ["| " + " | ".join(_OVERVIEW_HEADER) + " |", "|" + " --- |" * len(_OVERVIEW_HEADER)]
    lines.extend("| " + " | ".join(row) + " |" for row in _overview_rows(results))
    lines.append("")
    return lines


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name).strip("-")
