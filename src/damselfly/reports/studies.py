"""Drawing the answers of studies: a capacity plan's curve, an evaluator comparison.

The studies themselves run in ``damselfly.scenarios.studies``; this module only turns their
results into tables, CSV and figures.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from damselfly.reports.figures import download_times, metric_against_parameter
from damselfly.reports.stats import MeanInterval, mean_interval, percentile
from damselfly.reports.style import PALETTE, new_figure
from damselfly.results import Result

__all__ = [
    "COMPARISON_COLUMNS",
    "ComparisonRow",
    "comparison_figure",
    "comparison_rows",
    "plan_figure",
    "write_comparison_csv",
]

# (column, label, unit): the figures a comparison reports for each evaluator.
COMPARISON_COLUMNS = (
    ("p50_s", "p50", "s"),
    ("p95_s", "p95", "s"),
    ("p100_s", "p100", "s"),
    ("origin_egress_ratio", "origin egress", "x content"),
    ("cross_idc_gib", "cross-IDC", "GiB"),
)


def _figures(result: Result) -> dict[str, float]:
    times = download_times(result.peers)
    wan = result.totals.get("wan_bytes")
    return {
        "p50_s": percentile(times, 50),
        "p95_s": percentile(times, 95),
        "p100_s": percentile(times, 100),
        "origin_egress_ratio": float(result.totals.get("origin_egress_ratio", math.nan)),
        "cross_idc_gib": math.nan if wan is None else float(wan) / 1024**3,
    }


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One evaluator: each column's mean and 95% interval over repetitions."""

    evaluator: str
    runs: int
    values: dict[str, MeanInterval]


def comparison_rows(results: Mapping[str, Sequence[Result]]) -> list[ComparisonRow]:
    """A row per evaluator, in the order given."""
    rows = []
    for evaluator, runs in results.items():
        per_run = [_figures(result) for result in runs]
        values = {
            column: mean_interval([figures[column] for figures in per_run])
            for column, _, _ in COMPARISON_COLUMNS
        }
        rows.append(ComparisonRow(evaluator, len(runs), values))
    return rows


def write_comparison_csv(rows: Sequence[ComparisonRow], path: str | Path) -> Path:
    """The table as CSV: per column, its mean and the half-width of the 95% interval."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = ["evaluator", "runs"]
        for column, _, _ in COMPARISON_COLUMNS:
            header += [f"{column}_mean", f"{column}_ci95"]
        writer.writerow(header)
        for row in rows:
            line: list[object] = [row.evaluator, row.runs]
            for column, _, _ in COMPARISON_COLUMNS:
                interval = row.values[column]
                line += [_number(interval.mean), _number(interval.half_width)]
            writer.writerow(line)
    return path


def _number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def comparison_figure(rows: Sequence[ComparisonRow]) -> Figure:
    """p50, p95 and p100 download times per evaluator, grouped bars with 95% intervals."""
    figure, axes = new_figure(7.5, 4.0)
    columns = COMPARISON_COLUMNS[:3]
    width = 0.8 / max(1, len(rows))
    positions = np.arange(len(columns))
    for index, row in enumerate(rows):
        means = [row.values[column].mean for column, _, _ in columns]
        errors = [
            0.0 if math.isnan(row.values[column].half_width) else row.values[column].half_width
            for column, _, _ in columns
        ]
        axes.bar(
            positions + (index - (len(rows) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=3,
            color=PALETTE[index % len(PALETTE)],
            label=f"{row.evaluator} (n={row.runs})",
            gid=f"bars:{row.evaluator}",
        )
    axes.set_xticks(positions, [label for _, label, _ in columns])
    axes.set_ylabel("download time (s), mean with 95% CI")
    axes.set_title("Evaluators compared on the same seeds")
    axes.legend()
    return figure


def plan_figure(
    curve: Mapping[float, Sequence[float]],
    *,
    knob: str,
    unit: str,
    target_metric: str,
    limit: float,
    answer: float | None,
) -> Figure:
    """The metric against the knob values tried, the target line and the answer."""
    figure, axes = new_figure()
    points = {value: curve[value] for value in sorted(curve)}
    finite = {value: [v for v in values if math.isfinite(v)] for value, values in points.items()}
    metric_against_parameter(
        {value: values for value, values in finite.items() if values},
        parameter=f"{knob} ({unit})",
        metric=f"{target_metric} (s)",
        figure_axes=(figure, axes),
    )
    axes.axhline(limit, color="#000000", linestyle="--", linewidth=1, label=f"target {limit:g} s")
    if answer is not None:
        axes.axvline(
            answer, color=PALETTE[2], linestyle=":", linewidth=1.5, label=f"answer {answer:.4g}"
        )
    if unit == "bytes/s":
        axes.set_xscale("log")
    axes.legend()
    axes.set_title(f"Capacity plan: smallest {knob} with {target_metric} <= {limit:g} s")
    return figure
