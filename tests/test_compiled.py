"""The compiled build (``DAMSELFLY_COMPILE=1``, see setup.py) is the same code as the Python
one: it must give identical results.

``scripts/test.sh`` runs the suites of the scheduling core and the simulator a second time
against a compiled install, with ``DAMSELFLY_EXPECT_COMPILED=1``; then this module checks
that the compiled modules were really the ones tested, and compares a simulation that goes
through most of the engine's paths (layers, Poisson arrivals, crashes, slow and corrupt
hosts, a seed failure, a scheduler outage, uploads queued at busy parents, a leaf-spine
network) with the same simulation
run by the Python sources in a child process.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import damselfly
from damselfly.cli import cli
from damselfly.scenarios import load_scenario
from damselfly.scenarios.run import run_scenario

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "src"

SCENARIO = """
[scenario]
name = "every-path"
description = "A small run through most of the simulator's paths."

[topology]
generator = "leaf-spine"
hosts_per_rack = 8
spines = 2
oversubscription = 2.0

[hosts]
count = 40
upload = "1Gbit/s"
download = "1Gbit/s"

[origin]
upload = "2Gbit/s"

[seeds]
count = 1
upload = "2Gbit/s"

[content]
layers = ["24MiB", "8MiB"]

[arrivals]
kind = "poisson"
rate = 40
duration = "1s"

[faults]
crash_fraction = 0.1
crash_window = ["0.2s", "0.6s"]
slow_fraction = 0.1
slow_factor = 4
corrupt_fraction = 0.15
seed_crash_at = "0.5s"
scheduler_outage = ["0.3s", "0.5s"]

[daemon]
upload_concurrency = 2

[run]
seed = 3
"""

# Run by the Python sources, whatever build the test process has.
CHILD = """
import json, sys
from click.testing import CliRunner

import damselfly
from damselfly import scheduling
from damselfly.cli import cli
from damselfly.scenarios import load_scenario
from damselfly.scenarios.run import run_scenario
result = run_scenario(load_scenario(sys.argv[1]))
print(json.dumps({"compiled": damselfly.compiled(), "result": result.to_dict()}))
"""


def _comparable(document: dict[str, Any]) -> str:
    """The document as JSON text (so 1 and 1.0 differ) without what may differ between
    builds: the wall time and the build flag."""
    document = dict(document)
    document.pop("wall_time_s")
    document["extra"] = {k: v for k, v in document["extra"].items() if k != "compiled"}
    return json.dumps(document)


def _compiled_modules() -> list[str]:
    """The modules setup.py compiles, by the list it reads (pyproject.toml)."""
    sys.path.insert(0, str(ROOT))
    try:
        from setup import compiled_sources
    finally:
        sys.path.remove(str(ROOT))
    modules = []
    for path in compiled_sources(ROOT):
        parts = path.relative_to(SOURCES).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_the_build_under_test_is_the_one_expected() -> None:
    expected = os.environ.get("DAMSELFLY_EXPECT_COMPILED", "0") == "1"
    assert damselfly.compiled() is expected
    modules = _compiled_modules()
    assert len(modules) > 10
    for name in modules:
        module = importlib.import_module(name)
        is_extension = str(module.__file__).endswith(tuple(EXTENSION_SUFFIXES))
        assert is_extension is expected, f"{name} from {module.__file__}"


def test_version_says_which_build_runs() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    build = "compiled core (mypyc)" if damselfly.compiled() else "Python core"
    assert result.output == f"damselfly {damselfly.__version__}, {build}\n"


def test_compiled_and_python_builds_give_identical_results(tmp_path: Path) -> None:
    path = tmp_path / "every-path.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    here = run_scenario(load_scenario(path))
    assert here.extra["compiled"] is damselfly.compiled()
    outcomes = here.outcomes("normal")
    assert outcomes["crashed"] > 0 and outcomes["succeeded"] > 0
    assert here.extra["corrupt_pieces"] > 0
    assert here.extra["queued_requests"] > 0
    assert here.extra["lost_messages"] > 0

    environment = {**os.environ, "PYTHONPATH": str(SOURCES)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
        check=True,
    )
    there = json.loads(child.stdout.splitlines()[-1])
    assert there["compiled"] is False
    assert _comparable(there["result"]) == _comparable(json.loads(here.to_json()))
