"""Scenarios: a what-if study in one TOML file, and the studies that run many of them.

- :func:`load_scenario` reads a file or a built-in by name (``rollout-10k``,
  ``model-3idc``, ``cicd-burst``, ``edge-sites``, ``churn``, ``kraken-bench``), validated by
  :mod:`damselfly.scenarios.spec` with one-line errors.
- :func:`run_scenario` builds the topology and workload and runs the simulator.
- :mod:`damselfly.scenarios.sweep` runs a scenario's grid on local processes or Dask.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from damselfly.scenarios.spec import Scenario, ScenarioError, parse_scenario, read_scenario

__all__ = [
    "Scenario",
    "ScenarioError",
    "builtin_names",
    "builtin_text",
    "load_scenario",
    "parse_scenario",
    "read_scenario",
]


def builtin_names() -> list[str]:
    """Names of the scenarios that ship with Damselfly."""
    folder = resources.files("damselfly.scenarios") / "builtin"
    return sorted(
        item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml")
    )


def builtin_text(name: str) -> str:
    """The TOML text of built-in scenario ``name``; raises ScenarioError if unknown."""
    if name not in builtin_names():
        raise ScenarioError(
            f"{name}: no such built-in scenario (known: {', '.join(builtin_names())})"
        )
    return (resources.files("damselfly.scenarios") / "builtin" / f"{name}.toml").read_text(
        encoding="utf-8"
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario from a file path, or a built-in by name."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return read_scenario(path)
    if str(name_or_path) in builtin_names():
        traversable = resources.files("damselfly.scenarios") / "builtin" / f"{name_or_path}.toml"
        return parse_scenario(
            traversable.read_text(encoding="utf-8"), source=Path(str(traversable))
        )
    raise ScenarioError(
        f"{name_or_path}: neither a scenario file nor a built-in scenario "
        f"(built-ins: {', '.join(builtin_names())})"
    )
