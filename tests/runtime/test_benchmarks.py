"""The runtime swarm benchmark writes a real run in the results schema, which
`damselfly report` renders with its headline figures (fluid bound, efficiency)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from damselfly.cli import cli
from damselfly.results import Result

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_swarm_run_loads_and_renders_with_its_bound(tmp_path: Path) -> None:
    out = tmp_path / "swarm.json"
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "runtime_swarm.py"), "--peers", "2", "--size", "8MiB",
         "--out", str(out), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert '"origin_egress_ratio"' in run.stdout.strip().splitlines()[-1]

    result = Result.read(out)
    assert result.driver == "runtime"
    assert len(result.peers) == 2 and all(p.outcome == "succeeded" for p in result.peers)
    size = 8 * 1024 * 1024
    hop, origin = result.extra["hop_rate"], result.extra["origin_upload_rate"]
    assert hop > 0 and origin > 0
    assert result.t_min == pytest.approx(
        max(size / origin, size / hop, 2 * size / (origin + 3 * hop))
    )
    assert result.t_last_finish is not None and result.t_last_finish > 0
    assert result.efficiency == pytest.approx(result.t_min / result.t_last_finish)

    outcome = CliRunner().invoke(cli, ["report", str(out), "--out", str(tmp_path / "report")])
    assert outcome.exit_code == 0, outcome.output
    page = (tmp_path / "report" / "report.html").read_text()
    assert "fluid lower bound" in page
    assert f"{result.efficiency:.3f}" in page
