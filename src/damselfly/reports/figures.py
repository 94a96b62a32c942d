"""Figures from results: each function takes results and returns a matplotlib Figure.

Figures never run anything; they draw what a :class:`~damselfly.results.Result` holds.
:func:`save_figure` writes a figure as PNG and SVG. Every axis says its unit.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from damselfly.reports.stats import mean_interval
from damselfly.reports.style import PALETTE, SOURCE_COLOURS, new_figure
from damselfly.results import PeerRecord, Result

__all__ = [
    "bytes_by_source",
    "completion_cdf",
    "completions_over_time",
    "download_times",
    "link_utilisation",
    "metric_against_parameter",
    "save_figure",
]

GiB = 1024**3


def download_times(peers: Sequence[PeerRecord]) -> np.ndarray:
    """Seconds from registration to finish of every succeeded normal peer, sorted."""
    times = [
        peer.finished_at - (peer.registered_at or 0.0)
        for peer in peers
        if peer.outcome == "succeeded" and peer.kind == "normal" and peer.finished_at is not None
    ]
    return np.sort(np.asarray(times, dtype=float))


def peer_group(peer: PeerRecord, group_by: str | None) -> str:
    """The group a peer belongs to: one of its labels (idc, rack, bandwidth...) or 'all'."""
    if not group_by:
        return "all peers"
    labels = getattr(peer, "labels", None) or {}
    return str(labels.get(group_by, "unlabelled"))


def completion_cdf(result: Result, group_by: str | None = None) -> Figure:
    """Fraction of peers done against download time, per group, with the fluid bound."""
    figure, axes = new_figure()
    groups: dict[str, list[PeerRecord]] = defaultdict(list)
    for peer in result.peers:
        groups[peer_group(peer, group_by)].append(peer)
    total = sum(1 for peer in result.peers if peer.kind == "normal")
    for index, (name, members) in enumerate(sorted(groups.items())):
        times = download_times(members)
        if times.size == 0:
            continue
        size = sum(1 for peer in members if peer.kind == "normal")
        fraction = np.arange(1, times.size + 1) / max(1, size)
        axes.step(
            np.concatenate(([0.0], times)),
            np.concatenate(([0.0], fraction)),
            where="post",
            color=PALETTE[index % len(PALETTE)],
            label=f"{name} ({times.size}/{size})",
            gid=f"cdf:{name}",
        )
    if result.t_min and math.isfinite(result.t_min):
        axes.axvline(
            result.t_min, color="#000000", linestyle="--", linewidth=1, label="fluid lower bound"
        )
    axes.set_xlabel("download time (s), registration to finish")
    axes.set_ylabel("fraction of peers done")
    axes.set_ylim(0, 1.02)
    axes.set_xlim(left=0)
    axes.set_title(f"Completion time CDF ({total} peers)")
    axes.legend(loc="lower right")
    return figure


def completions_over_time(result: Result) -> Figure:
    """Peers finished against time since the run started.

    Drawn from every peer's own finish time, so it is exact (the sampled timeline is
    coarser and may stop before the last finish).
    """
    figure, axes = new_figure()
    ends = np.sort(
        [p.finished_at for p in result.peers if p.finished_at is not None and p.kind == "normal"]
    )
    axes.step(
        np.concatenate(([0.0], ends)),
        np.arange(0, len(ends) + 1),
        where="post",
        color=PALETTE[0],
        gid="completions",
    )
    axes.set_xlabel("time since start (s)")
    axes.set_ylabel("peers finished")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_title("Completions over time")
    return figure


def bytes_by_source(result: Result) -> Figure:
    """Bytes received over time, stacked by where they came from (origin, seed, peer).

    Uses the timeline's per-source series when the result has them; otherwise it shows
    the totals per source as bars.
    """
    figure, axes = new_figure()
    timeline = result.timeline
    times = np.asarray(timeline.get("t", []), dtype=float)
    series = {
        source: np.asarray(timeline.get(f"{source}_bytes", []), dtype=float) / GiB
        for source in ("origin", "seed", "peer")
    }
    if times.size and all(values.size == times.size for values in series.values()):
        axes.stackplot(
            times,
            *series.values(),
            labels=list(series),
            colors=[SOURCE_COLOURS[source] for source in series],
            alpha=0.85,
        )
        axes.set_xlabel("time since start (s)")
        axes.set_ylabel("bytes received (GiB, cumulative)")
        axes.set_xlim(left=0)
        axes.legend(loc="upper left")
    else:
        totals = [result.totals.get(f"{source}_bytes", 0.0) / GiB for source in series]
        axes.bar(list(series), totals, color=[SOURCE_COLOURS[s] for s in series])
        axes.set_ylabel("bytes received (GiB)")
    axes.set_title("Bytes by source")
    return figure


def link_utilisation(result: Result, top: int = 12) -> Figure:
    """Mean utilisation of the busiest links (origin and host NICs included), 0..1."""
    busiest = list(result.links.get("busiest", []))[:top]
    figure, axes = new_figure(7.0, max(2.5, 0.35 * len(busiest) + 1.2))
    if busiest:
        names = [str(entry["name"]) for entry in busiest][::-1]
        values = [float(entry["mean_utilisation"]) for entry in busiest][::-1]
        colours = [SOURCE_COLOURS["origin"] if "origin" in name else PALETTE[0] for name in names]
        axes.barh(names, values, color=colours)
        axes.axvline(1.0, color="#000000", linewidth=0.8)
    else:
        axes.text(0.5, 0.5, "no link measurements in this result", ha="center", va="center")
    axes.set_xlabel("mean utilisation over the run (fraction of capacity)")
    axes.set_xlim(0, 1.05)
    axes.set_title("Busiest links")
    return figure


def metric_against_parameter(
    points: Mapping[float | str, Sequence[float]],
    *,
    parameter: str,
    metric: str,
    series: str | None = None,
    figure_axes: tuple[Figure, object] | None = None,
    colour_index: int = 0,
) -> Figure:
    """A metric against a swept parameter: the mean over repetitions with its 95% interval."""
    figure, axes = figure_axes if figure_axes is not None else new_figure()
    keys = list(points)
    numeric = all(isinstance(key, int | float) for key in keys)
    positions = [float(key) for key in keys] if numeric else list(range(len(keys)))
    intervals = [mean_interval(points[key]) for key in keys]
    means = [interval.mean for interval in intervals]
    errors = [0.0 if math.isnan(i.half_width) else i.half_width for i in intervals]
    axes.errorbar(  # type: ignore[attr-defined]
        positions,
        means,
        yerr=errors,
        marker="o",
        capsize=4,
        color=PALETTE[colour_index % len(PALETTE)],
        label=series,
    )
    if not numeric:
        axes.set_xticks(positions, [str(key) for key in keys])  # type: ignore[attr-defined]
    axes.set_xlabel(parameter)  # type: ignore[attr-defined]
    axes.set_ylabel(f"{metric} (mean, 95% CI)")  # type: ignore[attr-defined]
    if series:
        axes.legend()  # type: ignore[attr-defined]
    return figure


def save_figure(figure: Figure, directory: str | Path, name: str) -> dict[str, Path]:
    """Write ``name.png`` and ``name.svg`` into ``directory``; return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for extension in ("png", "svg"):
        path = directory / f"{name}.{extension}"
        figure.savefig(path, format=extension)
        paths[extension] = path
    return paths
