"""`damselfly scheduler`, `daemon`, `get` and `cluster`: the real runtime's commands.

Thin: parse flags, build a config (TOML file < environment < flags, see
:mod:`damselfly.runtime.config`), call :mod:`damselfly.runtime`, print. Failures are one line
on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from damselfly.cli import InputError

COMMAND = [sys.executable, "-c", "import sys; from damselfly.cli import main; sys.exit(main())"]
DEFAULT_SOCKET = "/run/damselfly/daemon.sock"


def _config_error(error: Exception) -> InputError:
    return InputError(str(error))


def _token_options(function: Any) -> Any:
    function = click.option(
        "--token-file", type=click.Path(dir_okay=False), help="File holding the cluster token."
    )(function)
    function = click.option(
        "--token", help="Cluster token (or DAMSELFLY_TOKEN); requests without it get 401."
    )(function)
    return function


# -- scheduler ------------------------------------------------------------------------------


@click.command()
@click.option("--listen", help="HOST:PORT to listen on (default 127.0.0.1:8002).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config.")
@click.option("--evaluator", help="Parent evaluator (default, random, bandwidth, ...).")
@click.option("--seed", type=int, help="Random seed of the scheduler.")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log format.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key for --tls-cert.")
@_token_options
def scheduler(**options: Any) -> None:
    """Run the scheduler service."""
    from damselfly.runtime.config import (
        ConfigError,
        SchedulerServiceConfig,
        load_config,
        read_token,
        server_tls,
        split_listen,
    )
    from damselfly.runtime.process import run_until_signalled, setup_logging
    from damselfly.runtime.service import SchedulerService, make_app
    from damselfly.scheduling import SchedulerConfig, UsageError

    try:
        token = read_token(options.pop("token"), options.pop("token_file"))
        path = options.pop("config_path")
        config = load_config(
            SchedulerServiceConfig, "scheduler", path=path, flags={**options, "token": token}
        )
        host, port = split_listen(config.listen)
        tls = server_tls(config.tls_cert, config.tls_key)
        core_config = SchedulerConfig(
            retry_interval=config.retry_interval,
            host_ttl=config.host_ttl,
            peer_idle_timeout=config.peer_idle_timeout,
        )
        service = SchedulerService(core_config, evaluator=config.evaluator, seed=config.seed)
    except (ConfigError, UsageError) as error:
        raise _config_error(error) from None
    setup_logging(config.log_format)

    async def main() -> None:
        from aiohttp import web

        runner = web.AppRunner(make_app(service, token=config.token), access_log=None)

        async def start() -> dict[str, Any]:
            await runner.setup()
            await web.TCPSite(runner, host, port, ssl_context=tls).start()
            bound = runner.addresses[0]
            scheme = "https" if tls is not None else "http"
            return {"component": "scheduler", "address": f"{scheme}://{host}:{bound[1]}"}

        await run_until_signalled(start, runner.cleanup)

    try:
        asyncio.run(main())
    except OSError as error:
        raise click.ClickException(f"scheduler: {error}") from None


# -- daemon ---------------------------------------------------------------------------------


@click.command()
@click.option("--scheduler", "scheduler_url", help="Scheduler URL (http://HOST:PORT).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where tasks are stored.")
@click.option("--listen", help="HOST:PORT of the upload server (default 127.0.0.1:0).")
@click.option("--advertise", help="URL other peers use to reach the upload server.")
@click.option("--socket", "socket_path", help="Unix socket of the local API for `get`.")
@click.option("--seed/--no-seed", default=None, help="Run as a seed peer.")
@click.option(
    "--super-seeding/--no-super-seeding",
    default=None,
    help="A seed offers each piece to one child before offering any twice (default on; "
    "no effect without --seed).",
)
@click.option("--host-id", help="This host's id (default: hostname and a random suffix).")
@click.option("--idc", help="Data centre name (for affinity).")
@click.option("--location", help="Location, '|'-separated (for affinity).")
@click.option("--upload-rate", help="Announced upload capacity, e.g. 10Gbit/s.")
@click.option("--upload-slots", type=int, help="Uploads served at once.")
@click.option(
    "--upload-rate-limit",
    help="Rate limit on serving pieces, e.g. 1Gbit/s (default 10GiB/s; 'off' disables it).",
)
@click.option(
    "--download-rate",
    help="Rate limit on pieces from peers, e.g. 1Gbit/s (default 10GiB/s; 'off' disables it).",
)
@click.option(
    "--back-to-source-rate",
    help="Rate limit on fetching from the origin (default 10GiB/s; 'off' disables it).",
)
@click.option(
    "--download-capacity",
    help="What this host can receive, e.g. 10Gbit/s: a download from peers below half of it "
    "for a second asks the scheduler for other parents (default: unset, off).",
)
@click.option("--quota", help="Disk quota, e.g. 20GiB (LRU eviction of finished tasks).")
@click.option("--parent-wait", help="Go to the origin after this long without progress.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config.")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log format.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key for --tls-cert.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="Extra CA bundle to trust.")
@_token_options
def daemon(**options: Any) -> None:
    """Run the peer daemon on this node."""
    from damselfly.runtime.config import (
        ConfigError,
        DaemonConfig,
        load_config,
        read_token,
        server_tls,
    )
    from damselfly.runtime.daemon import Daemon
    from damselfly.runtime.process import run_until_signalled, setup_logging

    try:
        token = read_token(options.pop("token"), options.pop("token_file"))
        options["scheduler"] = options.pop("scheduler_url")
        options["socket"] = options.pop("socket_path")
        path = options.pop("config_path")
        config = load_config(DaemonConfig, "daemon", path=path, flags={**options, "token": token})
        server_tls(config.tls_cert, config.tls_key)  # a bad certificate is a one-line error
    except ConfigError as error:
        raise _config_error(error) from None
    setup_logging(config.log_format)

    async def main() -> None:
        node = Daemon(config)

        async def start() -> dict[str, Any]:
            await node.start()
            return {
                "component": "seed" if config.seed else "daemon",
                "address": node.address,
                "host_id": node.host_id,
                "socket": node.socket_path,
            }

        await run_until_signalled(start, node.stop)

    try:
        asyncio.run(main())
    except (OSError, ConfigError) as error:
        raise click.ClickException(f"daemon: {error}") from None


# -- get ------------------------------------------------------------------------------------


@click.command()
@click.argument("url")
@click.option("-O", "--output", required=True, type=click.Path(dir_okay=False), help="Path.")
@click.option("--digest", default="", help="sha256:HEX of the whole content.")
@click.option("--header", "headers", multiple=True, help="K:V forwarded to the origin.")
@click.option("--timeout", default="1h", show_default=True, help="Give up after this long.")
@click.option("--disable-back-to-source", is_flag=True, help="Never fetch from the origin.")
@click.option("--daemon", "socket_path", help=f"Local daemon socket (default {DEFAULT_SOCKET}).")
@click.option("--scheduler", "scheduler_url", help="Scheduler for an in-process peer.")
@click.option("--token", help="Cluster token for an in-process peer (or DAMSELFLY_TOKEN).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File holding the cluster token, for an in-process peer.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def get(**options: Any) -> None:
    """Download a URL through the peer-to-peer network."""
    from damselfly import units
    from damselfly.runtime.api import BadRequest, check_headers, url_problem

    # Every input is checked before anything is downloaded.
    url: str = options["url"]
    digest: str = options["digest"]
    problem = url_problem(url)
    if problem is not None:
        raise InputError(f"{url[:200]!r} is not a URL to fetch: {problem}")
    if digest and not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", digest):
        raise InputError("--digest must be sha256:<64 hex digits>")
    headers: dict[str, str] = {}
    for header in options["headers"]:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise InputError(f"--header {header[:80]!r} is not K:V")
        headers[name.strip()] = value.strip()
    try:
        check_headers(headers)
    except BadRequest as error:
        raise InputError(f"--header: {error}") from None
    try:
        timeout = units.parse_duration(options["timeout"])
    except ValueError as error:
        raise InputError(f"--timeout: {error}") from None
    output = Path(options["output"])
    if not output.parent.is_dir():
        raise InputError(f"directory {output.parent} does not exist")
    _check_writable(output.parent)
    request = {
        "url": url,
        "digest": digest,
        "headers": headers,
        "disable_back_to_source": options["disable_back_to_source"],
    }
    socket_path = options["socket_path"] or os.environ.get("DAMSELFLY_DAEMON_SOCKET")
    if socket_path is None and _answers(DEFAULT_SOCKET):
        # Only a daemon that accepts connections: a socket file left by one that crashed
        # must not stop `get` from running a peer in process.
        socket_path = DEFAULT_SOCKET
    scheduler_url = options["scheduler_url"] or os.environ.get("DAMSELFLY_SCHEDULER")
    import logging

    from damselfly.runtime.config import ConfigError, read_token

    # An in-process peer logs like a daemon; `get` speaks for it in one line of outcome (and
    # a progress bar), so its log records go nowhere rather than to Python's last resort.
    logging.getLogger("damselfly").addHandler(logging.NullHandler())
    try:
        token = read_token(
            options["token"] or os.environ.get("DAMSELFLY_TOKEN"), options["token_file"]
        )
    except ConfigError as error:
        raise InputError(str(error)) from None
    asyncio.run(
        _with_timeout(
            _get(request, output, socket_path, scheduler_url, token, options["quiet"]),
            timeout,
            options["timeout"],
        )
    )


def _answers(path: str) -> bool:
    """Whether something accepts connections on the Unix socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _check_writable(directory: Path) -> None:
    """Fail now, not after the download, when ``directory`` cannot take the output."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".damselfly-probe-", dir=directory)
    except OSError as error:
        raise click.ClickException(
            f"cannot write to {directory}: {error.strerror or error}"
        ) from None
    os.close(handle)
    os.unlink(probe)


async def _with_timeout(work: Any, seconds: float, text: str) -> None:
    job = asyncio.ensure_future(work)
    done, _ = await asyncio.wait([job], timeout=seconds)
    if not done:
        job.cancel()
        with contextlib.suppress(BaseException):
            await job
        raise click.ClickException(f"timed out after {text}")
    job.result()


async def _get(
    request: dict[str, Any],
    output: Path,
    socket_path: str | None,
    scheduler_url: str | None,
    token: str | None,
    quiet: bool,
) -> None:
    import aiohttp

    if socket_path is not None:
        connector = aiohttp.UnixConnector(path=socket_path)
        try:
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.post("http://daemon/api/v1/downloads", json=request) as response,
            ):
                if response.status != 200:
                    raise click.ClickException(await _error_text(response))
                result = await _follow_progress(response.content, quiet)
        except (aiohttp.ClientConnectionError, FileNotFoundError) as error:
            raise click.ClickException(
                f"cannot reach the daemon at {socket_path}: {error}"
            ) from None
        _export(Path(result["path"]), output)
        return
    # No daemon: an in-process peer with a throw-away data dir.
    from damselfly.runtime.config import DaemonConfig
    from damselfly.runtime.daemon import Daemon
    from damselfly.runtime.download import DownloadError

    with tempfile.TemporaryDirectory(prefix="damselfly-get-") as data_dir:
        node = Daemon(
            DaemonConfig(data_dir=data_dir, scheduler=scheduler_url, token=token, parent_wait=10.0)
        )
        await node.start()
        try:
            job = node.download(
                request["url"],
                request["digest"],
                headers=request["headers"],
                disable_back_to_source=request["disable_back_to_source"],
            )
            peer_task = node.peer_tasks[next(iter(node.peer_tasks))]
            progress = _ProgressBar(quiet)
            with progress:
                while not job.done():
                    progress.update(_as_event(peer_task))
                    await asyncio.wait([job], timeout=0.25)
            try:
                store = job.result()
            except DownloadError as error:
                raise click.ClickException(str(error)) from None
            _export(store.data_path, output)
        finally:
            await node.stop()


def _as_event(peer_task: Any) -> dict[str, Any]:
    progress = peer_task.progress
    return {
        "content_length": progress.content_length,
        "completed_bytes": progress.completed_bytes,
        "bytes_from": progress.bytes_from,
    }


async def _error_text(response: Any) -> str:
    try:
        return str((await response.json())["error"]["message"])
    except Exception:
        return f"the daemon answered {response.status}"


async def _follow_progress(stream: Any, quiet: bool) -> dict[str, Any]:
    progress = _ProgressBar(quiet)
    with progress:
        async for line in stream:
            event = json.loads(line)
            if event["event"] == "progress":
                progress.update(event)
            elif event["event"] == "error":
                raise click.ClickException(event["message"])
            elif event["event"] == "done":
                progress.update({**event, "completed_bytes": event["content_length"]})
                return dict(event)
    raise click.ClickException("the daemon closed the stream before the download ended")


class _ProgressBar:
    """A rich progress bar with rate and bytes by source (silent when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        if quiet:
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[sources]}"),
            transient=False,
        )
        self.task = self.bar.add_task("download", total=None, sources="")

    def __enter__(self) -> _ProgressBar:
        if not self.quiet:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.quiet:
            self.bar.stop()

    def update(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        sources = event.get("bytes_from") or {}
        text = " ".join(f"{k}:{v >> 20}MiB" for k, v in sources.items() if v)
        self.bar.update(
            self.task,
            total=event.get("content_length"),
            completed=event.get("completed_bytes", 0),
            sources=text,
        )


def _export(source: Path, output: Path) -> None:
    """Copy ``source`` to ``output`` atomically: a temporary file, fsync, rename. The file
    gets mode 0666 less the umask, as curl's would. Raises ClickException on any OSError."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes it 0600
        with os.fdopen(handle, "wb") as target, open(source, "rb") as data:
            shutil.copyfileobj(data, target, 4 * 1024 * 1024)
            target.flush()
            os.fsync(target.fileno())
        os.replace(temporary, output)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise click.ClickException(
                f"cannot write {output}: {error.strerror or error}"
            ) from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


# -- cluster --------------------------------------------------------------------------------


@click.group()
def cluster() -> None:
    """Start or stop a local cluster on loopback."""


def _state_file(state_dir: str) -> Path:
    return Path(state_dir) / "cluster.json"


def _read_state(path: Path) -> dict[str, Any] | None:
    """The state `up` wrote (None when there is none); a corrupt file is a one-line error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from None
    try:
        state = json.loads(text)
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        int(state.get("pid", 0))
        for child in state.get("children", []):
            int(child["pid"])
    except (ValueError, TypeError, KeyError) as error:
        raise click.ClickException(
            f"{path} is corrupt ({error}); stop its processes by hand and delete it"
        ) from None
    return state


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), to tell it from a
    later process that reused its pid; None where /proc is missing or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    if len(fields) < 20 or fields[0] == "Z":  # a zombie has finished
        return None
    return fields[19]


def _alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not) and, when ``started`` is known, is still the
    process that started then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    now = _start_time(pid)
    if now is None:
        return not Path("/proc/self/stat").exists()  # no /proc: trust kill(0)
    return started is None or now == started


def _cluster_running(state: dict[str, Any]) -> bool:
    """Whether `up` or any child it recorded still runs."""
    return _alive(int(state.get("pid", 0)), state.get("started")) or any(
        _alive(int(child["pid"]), child.get("started")) for child in state.get("children", [])
    )


def _write_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, path)


def _spawn(
    args: list[str], env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=open(log, "a"),  # noqa: SIM115 (the child owns it)
        text=True,
        env=env,
        # Its own session: Ctrl-C reaches `up` alone, which stops the cluster in order.
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise click.ClickException(f"{args[0]} did not start; see {log}")
    return process, json.loads(line)


def _stop_children(children: list[dict[str, Any]], grace: float) -> list[int]:
    """SIGTERM every child still ours, SIGKILL those that outlive ``grace`` seconds; returns
    the pids that were running."""
    running = [c for c in children if _alive(int(c["pid"]), c.get("started"))]
    for child in running:
        with contextlib.suppress(OSError):
            os.kill(int(child["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(
        _alive(int(c["pid"]), c.get("started")) for c in running
    ):
        time.sleep(0.1)
    for child in running:
        if _alive(int(child["pid"]), child.get("started")):
            with contextlib.suppress(OSError):
                os.kill(int(child["pid"]), signal.SIGKILL)
    return [int(c["pid"]) for c in running]


@cluster.command("up")
@click.option("--peers", default=3, show_default=True, help="Normal daemons.")
@click.option("--seeds", default=1, show_default=True, help="Seed daemons.")
@click.option("--origin", type=click.Path(file_okay=False, exists=True), help="Serve a dir.")
@click.option(
    "--state-dir",
    default=os.path.join(tempfile.gettempdir(), "damselfly-cluster"),
    show_default=True,
    help="Data, sockets, logs and the state file.",
)
def cluster_up(peers: int, seeds: int, origin: str | None, state_dir: str) -> None:
    """Start a scheduler, seeds and daemons as processes on 127.0.0.1; Ctrl-C, SIGTERM,
    SIGHUP or `cluster down` stops them."""
    if peers < 0 or seeds < 0:
        raise InputError("--peers and --seeds must be >= 0")
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    path = _state_file(state_dir)
    known = _read_state(path)
    if known is not None and _cluster_running(known):
        raise click.ClickException(
            f"a cluster is already up (pid {known.get('pid')}); `damselfly cluster down "
            f"--state-dir {state_dir}` stops it"
        )
    token = secrets.token_hex(16)
    env = {**os.environ, "DAMSELFLY_TOKEN": token}
    children: list[subprocess.Popen[str]] = []
    members: list[dict[str, Any]] = []
    record: dict[str, Any] = {
        "pid": os.getpid(),
        "started": _start_time(os.getpid()),
        "children": [],
        "members": members,
        "token": token,
    }
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    # A closed terminal (SIGHUP) stops the cluster like Ctrl-C, instead of orphaning it.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, stop)

    def started(process: subprocess.Popen[str], name: str, info: dict[str, Any]) -> None:
        children.append(process)
        members.append(info)
        record["children"].append(
            {"pid": process.pid, "started": _start_time(process.pid), "name": name}
        )
        _write_state(path, record)  # at once: `down` finds every child even if `up` dies

    try:
        process, info = _spawn(
            ["scheduler", "--listen", "127.0.0.1:0"], env, state / "scheduler.log"
        )
        started(process, "scheduler", info)
        scheduler_url = info["address"]
        for index in range(seeds + peers):
            if stopping:
                break
            is_seed = index < seeds
            name = f"seed{index}" if is_seed else f"peer{index - seeds}"
            args = [
                "daemon",
                "--scheduler",
                scheduler_url,
                "--data-dir",
                str(state / name),
                "--socket",
                str(state / f"{name}.sock"),
                "--host-id",
                name,
            ]
            if is_seed:
                args.append("--seed")
            process, info = _spawn(args, env, state / f"{name}.log")
            started(process, name, info)
        origin_url = None
        if origin is not None and not stopping:
            origin_url = _start_origin_thread(Path(origin))
        if not stopping:
            for member in members:
                click.echo(
                    f"{member['component']:9} {member['address']}  {member.get('socket') or ''}"
                )
            if origin_url:
                click.echo(f"origin    {origin_url}")
            example = f"{origin_url}/FILE" if origin_url else "http://HOST/FILE"
            last = members[-1].get("socket") if len(members) > 1 else None
            where = f"--daemon {last}" if last else f"--scheduler {scheduler_url} --token {token}"
            click.echo(f"token     {token}")
            click.echo(f"try:      damselfly get {example} -O /tmp/FILE {where}")
            click.echo("Ctrl-C or `damselfly cluster down` stops it.")
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            if child.poll() is None:
                child.kill()
                child.wait()
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
        click.echo("cluster stopped")


def _start_origin_thread(root: Path) -> str:
    """Serve ``root`` from a thread of this process; returns its URL."""
    import threading

    from aiohttp import web

    from damselfly.runtime.origin import make_origin_app

    ready: dict[str, str] = {}
    event = threading.Event()

    def serve() -> None:
        async def main() -> None:
            runner = web.AppRunner(make_origin_app(root), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            ready["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
            event.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    event.wait(10)
    return ready["url"]


@cluster.command("down")
@click.option(
    "--state-dir",
    default=os.path.join(tempfile.gettempdir(), "damselfly-cluster"),
    show_default=True,
)
def cluster_down(state_dir: str) -> None:
    """Stop the cluster started by `cluster up` (its processes, even when `up` is gone)."""
    path = _state_file(state_dir)
    state = _read_state(path)
    if state is None:
        raise click.ClickException(f"no cluster is up (no {path})")
    pid = int(state.get("pid", 0))
    children = list(state.get("children", []))
    if _alive(pid, state.get("started")):
        os.kill(pid, signal.SIGTERM)  # `up` stops its children in order
        deadline = time.monotonic() + 30
        while _alive(pid, state.get("started")) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid, state.get("started")):
            raise click.ClickException(f"the cluster (pid {pid}) did not stop in 30 s")
        stopped = True
    else:
        stopped = False
    # Children `up` left behind (it was killed, or did not stop them): stop them here.
    stopped = bool(_stop_children(children, grace=15)) or stopped
    path.unlink(missing_ok=True)
    if not stopped:
        raise click.ClickException("the cluster's processes are gone; state cleaned up")
    click.echo("cluster stopped")
