"""The report renders in a real browser (Debian's headless Chromium) without errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from damselfly.reports import write_report
from damselfly.results import Result

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1100,2600",
]


def chromium() -> str:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    return path


def test_report_renders_in_chromium_without_console_errors(
    tmp_path: Path, small_result: Result
) -> None:
    files = write_report([("rollout", small_result)], tmp_path / "report")
    screenshot = tmp_path / "shot.png"
    completed = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            files.html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    console = [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert "net::ERR" not in completed.stderr
    pixels = imread(screenshot)
    assert pixels.shape[0] == 2600 and pixels.shape[1] == 1100
    # Not a blank page: the figures put plenty of non-white pixels on it.
    ink = np.mean(pixels[..., :3] < 0.9)
    assert ink > 0.02, ink


def test_chromium_check_catches_a_console_error(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('x')</script></body></html>")
    completed = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'p'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert any(":CONSOLE" in line for line in completed.stderr.splitlines())
