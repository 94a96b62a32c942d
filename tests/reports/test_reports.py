"""Reports draw what results hold, into self-contained pages."""

from __future__ import annotations

import copy
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from damselfly.reports import ReportError, headline, load_results, warnings, write_report
from damselfly.reports.figures import (
    completion_cdf,
    completions_over_time,
    download_times,
    metric_against_parameter,
)
from damselfly.reports.stats import mean_interval, t_critical_95
from damselfly.results import Result


def line_with_gid(figure, gid: str):  # type: ignore[no-untyped-def]
    for axes in figure.axes:
        for line in axes.get_lines():
            if line.get_gid() == gid:
                return line
    raise AssertionError(f"no line {gid!r} in the figure")


def test_cdf_spans_exactly_the_fastest_and_slowest_peer(small_result: Result) -> None:
    times = [
        p.finished_at - p.registered_at
        for p in small_result.peers
        if p.outcome == "succeeded" and p.kind == "normal"
    ]
    line = line_with_gid(completion_cdf(small_result), "cdf:all peers")
    x, y = line.get_xdata(), line.get_ydata()
    assert x[1] == pytest.approx(min(times)) and x[-1] == pytest.approx(max(times))
    assert y[-1] == pytest.approx(1.0)
    assert np.all(np.diff(y) >= 0)


def test_cdf_draws_the_fluid_bound(small_result: Result) -> None:
    figure = completion_cdf(small_result)
    bounds = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert bounds and bounds[0].get_xdata()[0] == pytest.approx(small_result.t_min)


def test_completions_end_at_the_number_of_finished_peers(small_result: Result) -> None:
    line = line_with_gid(completions_over_time(small_result), "completions")
    finished = sum(1 for p in small_result.peers if p.outcome == "succeeded" and p.kind == "normal")
    assert line.get_ydata()[-1] == finished


def test_headline_figures_match_the_result(small_result: Result) -> None:
    summary = headline(small_result)
    times = download_times(small_result.peers)
    assert summary.peers == 60 and summary.succeeded == 60
    assert summary.p100 == pytest.approx(times.max())
    assert summary.p50 == pytest.approx(float(np.percentile(times, 50)))
    assert summary.origin_egress_ratio == pytest.approx(small_result.totals["origin_egress_ratio"])


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.references.append(value)


def test_report_is_self_contained(tmp_path: Path, small_result: Result) -> None:
    files = write_report([("rollout", small_result)], tmp_path)
    page = files.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    collector = _Collector()
    collector.feed(page)
    assert collector.tags.count("img") == 4
    assert collector.references and all(
        ref.startswith("data:image/png;base64,") for ref in collector.references
    )
    assert "://" not in page.replace("data:image/png;base64,", "")
    assert {path.suffix for path in files.figures} == {".png", ".svg"}
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "p95 download time" in markdown and "rollout" in markdown


def test_warnings_for_unfinished_peers_and_a_saturated_origin(small_result: Result) -> None:
    assert warnings(small_result) == [] or all(isinstance(w, str) for w in warnings(small_result))
    broken = copy.deepcopy(small_result)
    broken.peers[0].outcome = "crashed"
    broken.peers[0].finished_at = None
    broken.links["busiest"] = [{"name": "origin:up", "mean_utilisation": 0.97}]
    found = " ".join(warnings(broken))
    assert "never finished" in found
    assert "origin" in found and "bottleneck" in found


def test_load_results_from_a_directory_skips_other_json(
    tmp_path: Path, small_result: Result
) -> None:
    small_result.write(tmp_path / "a.json")
    small_result.write(tmp_path / "b.json")
    (tmp_path / "index.json").write_text(json.dumps({"cells": []}))
    names = [name for name, _ in load_results(tmp_path)]
    assert names == ["a", "b"]
    files = write_report(load_results(tmp_path), tmp_path / "out")
    assert "Overview" in files.html.read_text(encoding="utf-8")


@pytest.mark.parametrize("setup", ["missing", "empty-dir", "not-a-result"])
def test_load_results_errors(tmp_path: Path, setup: str) -> None:
    target = tmp_path / "x"
    if setup == "empty-dir":
        target.mkdir()
    elif setup == "not-a-result":
        target = tmp_path / "x.json"
        target.write_text("{}")
    with pytest.raises(ReportError):
        load_results(target)


def test_mean_interval_matches_a_hand_computed_t_interval() -> None:
    interval = mean_interval([10.0, 12.0, 14.0])
    # mean 12, s = 2, se = 2/sqrt(3), t(2) = 4.303
    assert interval.mean == 12.0
    assert interval.half_width == pytest.approx(4.303 * 2 / math.sqrt(3))
    assert math.isnan(mean_interval([5.0]).half_width)
    assert t_critical_95(1000) == 1.96


def test_metric_against_parameter_plots_means_with_intervals() -> None:
    figure = metric_against_parameter(
        {1: [10.0, 12.0, 14.0], 2: [6.0, 6.0, 6.0]}, parameter="seed peers", metric="p95 (s)"
    )
    line = figure.axes[0].get_lines()[0]
    assert list(line.get_ydata()) == [12.0, 6.0]
    assert figure.axes[0].get_xlabel() == "seed peers"
