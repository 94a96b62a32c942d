"""The `damselfly` command line: one thin group whose subcommands live in their own modules.

Each subcommand is a click command in a module of this package (``damselfly.cli.sim``,
``damselfly.cli.runtime``, ...). The group imports a module only when its command runs, so
``damselfly --help`` stays fast and a command whose layer is not installed does not break the
others. Commands parse, call the library and print; they hold no logic of their own.

Errors: every command turns the project's exceptions into one line on stderr and a non-zero
exit (2 for bad input, 1 for a failed operation). A traceback reaching a user is a bug.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from damselfly import __version__

# name -> (module, attribute, one-line help). The help is repeated here so that
# `damselfly --help` lists every command without importing its module.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "sim": ("damselfly.cli.sim", "sim", "Simulate a distribution on a network and summarise it."),
    "scenarios": ("damselfly.cli.scenarios", "scenarios", "List and show the built-in scenarios."),
    "sweep": ("damselfly.cli.scenarios", "sweep", "Run every cell of a scenario's grid."),
    "report": ("damselfly.cli.reports", "report", "Write an HTML and Markdown report of results."),
    "plan": ("damselfly.cli.reports", "plan", "Find the smallest knob value that meets a target."),
    "compare": ("damselfly.cli.reports", "compare", "Compare evaluators on the same seeds."),
    "scheduler": ("damselfly.cli.runtime", "scheduler", "Run the scheduler service."),
    "daemon": ("damselfly.cli.runtime", "daemon", "Run the peer daemon on this node."),
    "get": ("damselfly.cli.runtime", "get", "Download a URL through the peer-to-peer network."),
    "cluster": ("damselfly.cli.runtime", "cluster", "Start or stop a local cluster on loopback."),
}


class InputError(click.ClickException):
    """Bad input from the user (a file, a flag value): one line on stderr and exit 2."""

    exit_code = 2


def prepare_simulator() -> None:
    """Load the simulator's compiled network kernel before a run, under a status line: the
    first run on a machine compiles it (tens of seconds), and simulations in worker
    processes then load it from the cache instead of each compiling it."""
    from rich.console import Console

    from damselfly.sim.network import warm_up

    status = "preparing the flow network kernel (compiled once per machine)"
    with Console(stderr=True).status(status):
        warm_up()


workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Simulations run at once in local processes (default: one per core).",
)


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not self._available(cmd_name):
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module_name), attribute, None)
        return command if isinstance(command, click.Command) else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    @staticmethod
    def _available(name: str) -> bool:
        module_name = COMMANDS[name][0]
        return importlib.util.find_spec(module_name) is not None


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from damselfly import compiled

    build = "compiled core (mypyc)" if compiled() else "Python core"
    click.echo(f"damselfly {__version__}, {build}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and whether the core runs compiled, then exit.",
)
def cli() -> None:
    """Damselfly: peer-to-peer distribution of images, models and large files.

    Simulate a rollout before you run it (`damselfly sim`), or run the real thing
    (`damselfly scheduler`, `damselfly daemon`, `damselfly get`).
    """


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `damselfly` console script."""
    return cli.main(args=argv, prog_name="damselfly")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
