"""Sweeps: every cell of a scenario's grid, repeated, on local processes or a Dask cluster.

A scenario's ``[sweep]`` table names values for some keys (``"seeds.count" = [1, 2, 4]``)
and a number of repetitions. Each combination and repetition is a cell; repetition ``r``
uses run seed ``base + r`` in every combination, so combinations are compared on the same
seeds. Each cell writes ``<out>/cells/<name>.json`` (a result) and one line of
``<out>/index.jsonl`` with its parameters and headline figures; a failed cell writes a line
with its error and the others go on. A re-run skips cells whose result file exists.

Executors: ``"local"`` (a process pool, the default), ``"dask://HOST:PORT"`` (an existing
dask.distributed scheduler; install ``damselfly[dask]``), or a ``distributed.Client``
passed from Python. The job runner is Dask's or the standard library's, never our own.
"""

from __future__ import annotations

import itertools
import json
import math
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damselfly.reports.summary import headline
from damselfly.results import Result
from damselfly.scenarios.spec import Scenario, ScenarioError, parse_scenario

__all__ = ["Cell", "SweepSummary", "cells", "run_cell", "run_sweep"]


@dataclass(frozen=True, slots=True)
class Cell:
    """One run of a sweep: parameter overrides and a repetition."""

    overrides: tuple[tuple[str, Any], ...]
    repetition: int
    seed: int

    @property
    def name(self) -> str:
        parts = [f"{path}={_render(value)}" for path, value in self.overrides]
        parts.append(f"rep{self.repetition}")
        return "_".join(part.replace("/", "-").replace(" ", "") for part in parts)

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.overrides)


def _render(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def cells(scenario: Scenario) -> list[Cell]:
    """Every cell of ``scenario``'s grid (one cell when it has no grid)."""
    base_seed = scenario.get("run", "seed", 1)
    paths = list(scenario.grid)
    combinations = itertools.product(*(scenario.grid[path] for path in paths)) if paths else [()]
    found = []
    for combination in combinations:
        overrides = tuple(zip(paths, combination, strict=True))
        for repetition in range(scenario.repetitions):
            found.append(Cell(overrides, repetition, base_seed + repetition))
    return found


def run_cell(document: str, source: str | None, cell: Cell) -> dict[str, Any]:
    """Run one cell (in a worker process or on a Dask worker).

    Returns ``{"status": "ok", "result": json text}`` or ``{"status": "failed", "error":
    one line}``: a failing cell never takes the sweep down.
    """
    from damselfly.scenarios.run import run_scenario

    try:
        scenario = parse_scenario(document, source=Path(source) if source else None)
        result = run_scenario(scenario.with_values(cell.parameters), seed=cell.seed)
        result.scenario["sweep"] = {"parameters": cell.parameters, "repetition": cell.repetition}
        return {"status": "ok", "result": result.to_json()}
    except Exception as error:
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return {"status": "failed", "error": last}


def headline_figures(result: Result) -> dict[str, float | None]:
    """The figures an index line carries (the report's headline, in seconds and ratios)."""
    summary = headline(result)

    def finite(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    return {
        "p50_s": finite(summary.p50),
        "p95_s": finite(summary.p95),
        "p100_s": finite(summary.p100),
        "finished_fraction": summary.succeeded / summary.peers if summary.peers else None,
        "origin_egress_ratio": finite(summary.origin_egress_ratio),
        "wan_bytes": summary.wan_bytes,
        "efficiency": result.efficiency,
        "wall_s": result.wall_time_s,
    }


@dataclass(slots=True)
class SweepSummary:
    """What a sweep did: lines of the index, by cell name."""

    out_dir: Path
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.out_dir / "index.jsonl"


def _index_line(cell: Cell, status: str, **extra: Any) -> dict[str, Any]:
    line = {
        "cell": cell.name,
        "parameters": cell.parameters,
        "repetition": cell.repetition,
        "seed": cell.seed,
        "status": status,
        **extra,
    }
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in line.items()
    }


def run_sweep(
    scenario: Scenario,
    out_dir: str | Path,
    *,
    executor: Any = "local",
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> SweepSummary:
    """Run every cell of ``scenario`` not already in ``out_dir``; see the module docstring.

    ``progress(done, total, cell name)`` is called as cells end. Raises ScenarioError for an
    unknown executor or an unreachable Dask scheduler.
    """
    out = Path(out_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    summary = SweepSummary(out_dir=out)
    all_cells = cells(scenario)
    pending: list[Cell] = []
    for cell in all_cells:
        path = out / "cells" / f"{cell.name}.json"
        if path.exists():
            try:
                result = Result.read(path)
            except (ValueError, OSError):
                pending.append(cell)  # a torn or foreign file: run it again
                continue
            summary.skipped += 1
            summary.lines[cell.name] = _index_line(
                cell, "ok", result=str(path.relative_to(out)), **headline_figures(result)
            )
        else:
            pending.append(cell)
    document = _document(scenario)
    source = str(scenario.source) if scenario.source else None
    done = summary.skipped
    total = len(all_cells)
    for cell, outcome in _execute(executor, workers, document, source, pending):
        path = out / "cells" / f"{cell.name}.json"
        if outcome["status"] == "ok":
            temporary = path.with_suffix(".json.tmp")
            temporary.write_text(outcome["result"] + "\n", encoding="utf-8")
            temporary.replace(path)
            result = Result.from_json(outcome["result"])
            summary.ran += 1
            summary.lines[cell.name] = _index_line(
                cell, "ok", result=str(path.relative_to(out)), **headline_figures(result)
            )
        else:
            summary.failed += 1
            summary.lines[cell.name] = _index_line(cell, "failed", error=outcome["error"])
        done += 1
        if progress is not None:
            progress(done, total, cell.name)
    ordered = [summary.lines[cell.name] for cell in all_cells if cell.name in summary.lines]
    summary.index.write_text("".join(json.dumps(line) + "\n" for line in ordered), encoding="utf-8")
    return summary


def _document(scenario: Scenario) -> str:
    if scenario.source is not None and Path(scenario.source).exists():
        return Path(scenario.source).read_text(encoding="utf-8")
    raise ScenarioError("a sweep needs a scenario read from a file or a built-in")


def _execute(
    executor: Any, workers: int | None, document: str, source: str | None, pending: list[Cell]
) -> Iterator[tuple[Cell, dict[str, Any]]]:
    if not pending:
        return
    if executor == "local":
        if workers == 1:
            for cell in pending:
                yield cell, run_cell(document, source, cell)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_cell, document, source, cell): cell for cell in pending}
            for future in as_completed(futures):
                yield futures[future], future.result()
        return
    client, owned = _dask_client(executor)
    try:
        from distributed import as_completed as dask_completed

        futures = {
            client.submit(run_cell, document, source, cell, pure=False): cell for cell in pending
        }
        for future in dask_completed(list(futures)):
            yield futures[future], future.result()
    finally:
        if owned:
            client.close()


def _dask_client(executor: Any) -> tuple[Any, bool]:
    try:
        import distributed
    except ImportError:
        raise ScenarioError(
            "Dask executors need dask.distributed: pip install 'damselfly[dask]'"
        ) from None
    if isinstance(executor, distributed.Client):
        return executor, False
    if isinstance(executor, str) and executor.startswith("dask://"):
        address = "tcp://" + executor.removeprefix("dask://")
        try:
            return distributed.Client(address, timeout="10s"), True
        except (OSError, TimeoutError) as error:
            raise ScenarioError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    raise ScenarioError(f"unknown executor {executor!r}: use 'local' or 'dask://HOST:PORT'")
