"""`damselfly sim`: simulate a scenario, or a rollout on a flat network, and summarise it.

Thin: parse the flags (human units through damselfly.units) or load the scenario, call the
simulator, print a table, optionally write the JSON result and the report.
"""

from __future__ import annotations

import sys
import time

import click

from damselfly.cli import prepare_simulator
from damselfly.units import (
    UnitError,
    format_duration,
    format_rate,
    format_size,
    parse_duration,
    parse_rate,
    parse_size,
)

# A run longer than this shows a progress bar.
PROGRESS_AFTER_S = 2.0


@click.command("sim")
@click.argument("scenario", required=False)
@click.option(
    "--peers",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Normal hosts that download the content.",
)
@click.option("--size", default="1GiB", show_default=True, help="Content size, e.g. 2GiB.")
@click.option(
    "--seeds", type=click.IntRange(min=0), default=1, show_default=True, help="Seed peers."
)
@click.option(
    "--evaluator", default="default", show_default=True, help="Parent evaluator, by name."
)
@click.option(
    "--seed",
    "random_seed",
    type=int,
    default=1,
    show_default=True,
    help="Random seed: the same seed gives the same result.",
)
@click.option(
    "--host-rate",
    default="1Gbit/s",
    show_default=True,
    help="Upload and download rate of every host.",
)
@click.option(
    "--origin-rate", default="10Gbit/s", show_default=True, help="Upload rate of the origin."
)
@click.option(
    "--latency", default="0.25ms", show_default=True, help="One-way latency of every access link."
)
@click.option("--no-p2p", is_flag=True, help="Send every peer to the origin (a baseline).")
@click.option(
    "--quantum",
    help="Re-rate the network's flows at most once per this interval, e.g. 1ms: faster where "
    "many flows share busy links (rollout-10k: 2x at 5ms), at the cost of finish times that "
    "move (there, at 5ms, the last finish 2% later and the median 12% earlier; "
    "docs/benchmarks.md): check a quantum against an exact run. "
    "Default: exact, or the scenario's [run] quantum.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="Write the JSON result here."
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    help="Write the HTML and Markdown report (and result.json) into this directory.",
)
@click.pass_context
def sim(
    ctx: click.Context,
    scenario: str | None,
    peers: int,
    size: str,
    seeds: int,
    evaluator: str,
    random_seed: int,
    host_rate: str,
    origin_rate: str,
    latency: str,
    no_p2p: bool,
    quantum: str | None,
    out: str | None,
    report_dir: str | None,
) -> None:
    """Simulate a distribution and print a summary.

    With SCENARIO (a TOML file or a built-in name, see `damselfly scenarios list`), run that
    study; --seed and --evaluator override its values. Without it, distribute one file of
    --size to --peers hosts of --host-rate on one flat switch.

    Examples:

        damselfly sim --peers 1000 --size 1GiB --seeds 1 --report report/

        damselfly sim rollout-10k --out rollout.json
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from damselfly.scheduling import DamselflyError, SchedulerConfig, evaluator_names
    from damselfly.sim import SimOptions, Workload, simulate
    from damselfly.topologies import flat

    flat_only = ("peers", "size", "seeds", "host_rate", "origin_rate", "latency", "no_p2p")
    given = [
        name
        for name in flat_only
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if scenario is not None and given:
        option = "--" + given[0].replace("_", "-")
        raise click.UsageError(f"{option} describes the flat network; a scenario brings its own")
    try:
        content_length = parse_size(size)
        rate = parse_rate(host_rate)
        origin = parse_rate(origin_rate)
        one_way = parse_duration(latency)
    except UnitError as error:
        raise click.BadParameter(str(error)) from None
    try:
        batching = None if quantum is None else parse_duration(quantum)
    except UnitError as error:
        raise click.BadParameter(str(error), param_hint="--quantum") from None
    if evaluator not in evaluator_names():
        raise click.BadParameter(
            f"unknown evaluator {evaluator!r} (known: {', '.join(evaluator_names())})",
            param_hint="--evaluator",
        )
    if rate <= 0 or origin <= 0:
        raise click.BadParameter("rates must be > 0")

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} peers done, t={task.fields[now]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    bar = progress.add_task("sim", total=peers, now="0 s", visible=False)
    started = time.perf_counter()
    shown = False

    def report(finished: int, total: int, now: float) -> None:
        nonlocal shown
        if not shown and time.perf_counter() - started > PROGRESS_AFTER_S:
            shown = True
            progress.start()
            progress.update(bar, visible=True)
        if shown:
            progress.update(bar, completed=finished, total=total, now=format_duration(now))

    if scenario is not None:
        from damselfly.cli import InputError
        from damselfly.scenarios import ScenarioError, load_scenario
        from damselfly.scenarios.build import build

        try:
            study = load_scenario(scenario)
            if ctx.get_parameter_source("evaluator") is not click.core.ParameterSource.DEFAULT:
                study = study.with_values({"scheduler.evaluator": evaluator})
            seed_given = ctx.get_parameter_source("random_seed")
            inputs = build(
                study,
                seed=random_seed if seed_given is not click.core.ParameterSource.DEFAULT else None,
            )
        except ScenarioError as error:
            raise InputError(str(error)) from None
        graph, workload, config = inputs.topology, inputs.workload, inputs.scheduler_config
        options = inputs.options
        options.progress = report
        random_seed = inputs.seed
        evaluator = options.evaluator
        peers = inputs.description["peers"]
        seeds = inputs.description["seeds"]
        content_length = workload.content_bytes
        title = f"{study.name}: "
        description = inputs.description
    else:
        workload = Workload.file(content_length)
        config = SchedulerConfig(enable_peer_to_peer=not no_p2p)
        options = SimOptions(evaluator=evaluator, progress=report)
        title = ""
        graph = None
        description = {}
    if batching is not None:
        options.quantum = batching
    prepare_simulator()
    try:
        if graph is None:
            graph = flat(
                peers,
                upload_rate=rate,
                download_rate=rate,
                latency=one_way,
                origin_upload_rate=origin,
                seeds=seeds,
            )
        result = simulate(graph, workload, config, seed=random_seed, options=options)
        result.scenario = {**result.scenario, **description}
    except (DamselflyError, ValueError) as error:  # TopologyError is a DamselflyError
        click.echo(f"damselfly sim: {error}", err=True)
        sys.exit(1)
    finally:
        if shown:
            progress.stop()

    outcomes = result.outcomes("normal")
    times = result.finish_times()
    table = Table(
        title=f"{title}{peers} peers, {format_size(content_length)}, {seeds} seed(s), "
        f"evaluator {evaluator}, seed {random_seed}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        (
            "succeeded / failed / crashed / unfinished",
            " / ".join(str(outcomes[k]) for k in ("succeeded", "failed", "crashed", "unfinished")),
        ),
        ("first finish", format_duration(float(times[0])) if len(times) else "never"),
        (
            "median finish",
            format_duration(float(times[len(times) // 2])) if len(times) else "never",
        ),
        ("last finish", format_duration(result.t_last_finish or float("inf"))),
        ("fluid lower bound T_min", format_duration(result.t_min)),
        (
            "efficiency (T_min / last)",
            "-" if result.efficiency is None else f"{result.efficiency:.3f}",
        ),
        ("origin egress / content", f"{result.totals['origin_egress_ratio']:.2f}"),
        (
            "bytes from origin / seed / peer",
            " / ".join(
                format_size(result.totals[k]) for k in ("origin_bytes", "seed_bytes", "peer_bytes")
            ),
        ),
        ("mean host upload use", f"{result.links['host_upload']['mean']:.1%}"),
        *(
            [("host rate / origin rate", f"{format_rate(rate)} / {format_rate(origin)}")]
            if scenario is None
            else []
        ),
        ("decisions", ", ".join(f"{k} {v}" for k, v in sorted(result.decisions.items()))),
        ("piece transfers", f"{result.totals['piece_transfers']:,}"),
        (
            "wall time",
            format_duration(result.wall_time_s)
            + (" (compiled core)" if result.extra.get("compiled") else " (Python core)"),
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
    if out:
        try:
            result.write(out)
        except OSError as error:
            click.echo(f"damselfly sim: cannot write {out}: {error.strerror}", err=True)
            sys.exit(1)
        click.echo(f"wrote {out}")
    if report_dir:
        from pathlib import Path

        from damselfly.reports import write_report

        directory = Path(report_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            result.write(directory / "result.json")
            files = write_report([(result.scenario.get("name", "run"), result)], directory)
        except OSError as error:
            click.echo(f"damselfly sim: cannot write the report: {error.strerror}", err=True)
            sys.exit(1)
        click.echo(f"report: {files.html}")
