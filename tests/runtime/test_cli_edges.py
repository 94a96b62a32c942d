"""The commands at their edges, as real processes: `get`'s input checks, output mode,
timeout and sockets; `cluster` stopping on every signal and after its `up` died; a daemon
that cannot start; config values that cannot work. Each failure is one line on stderr."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import COMMAND, TOKEN, Origin, Swarm, make_content

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


async def run(
    *args: str, env: dict[str, str] | None = None, umask: int | None = None, command: list[str]
) -> tuple[int, str, str]:
    """Run a command to its end (bounded: 90 s); returns (exit status, stdout, stderr)."""

    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DAMSELFLY_TOKEN": TOKEN, **(env or {})},
        preexec_fn=set_umask,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def damselfly(*args: str, **kwargs: object) -> tuple[int, str, str]:
    return await run(*args, command=COMMAND, **kwargs)  # type: ignore[arg-type]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- get: input checked before anything is downloaded ------------------------------------


@pytest.mark.parametrize(
    ("url", "extra", "expected"),
    [
        ("http://[x/", [], "cannot be parsed"),
        ("://x", [], "not http or https"),
        ("ftp://127.0.0.1/f.bin", [], "ftp is not http or https"),
        ("http://127.0.0.1:99999/f.bin", [], "Port out of range"),
        ("ORIGIN", ["--header", "X-Bad: a\x01b"], "characters HTTP does not allow"),
        ("ORIGIN", ["--header", "X Bad: a"], "not a valid header"),
        ("ORIGIN", ["--digest", "sha256:"], "64 hex digits"),
        ("ORIGIN", ["--digest", "sha256:" + "g" * 64], "64 hex digits"),
    ],
)
async def test_get_checks_its_input_before_downloading(
    origin: Origin, tmp_path: Path, url: str, extra: list[str], expected: str
) -> None:
    make_content(origin.root, "f.bin", MiB)
    url = url.replace("ORIGIN", f"{origin.url}/f.bin")
    code, _, stderr = await damselfly("get", url, "-O", str(tmp_path / "out"), "--quiet", *extra)
    assert code != 0
    assert expected in one_line(stderr)
    assert origin.stats.requests == 0
    assert list(tmp_path.iterdir()) == [tmp_path / "origin"]


async def test_get_into_an_unwritable_directory_fails_before_downloading(
    origin: Origin, tmp_path: Path
) -> None:
    make_content(origin.root, "f.bin", MiB)
    code, _, stderr = await damselfly("get", f"{origin.url}/f.bin", "-O", "/sys/x", "--quiet")
    assert code == 1
    assert "cannot write to /sys" in one_line(stderr)
    assert origin.stats.requests == 0


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
async def test_get_output_follows_the_umask(
    origin: Origin, tmp_path: Path, umask: int, mode: int
) -> None:
    data, _ = make_content(origin.root, "f.bin", MiB)
    output = tmp_path / "out.bin"
    code, _, stderr = await damselfly(
        "get", f"{origin.url}/f.bin", "-O", str(output), "--quiet", umask=umask
    )
    assert code == 0, stderr
    assert output.read_bytes() == data
    assert output.stat().st_mode & 0o777 == mode


async def test_get_timeout_is_one_line(origin: Origin, tmp_path: Path) -> None:
    make_content(origin.root, "f.bin", 4 * MiB)
    output = tmp_path / "out.bin"
    for timeout in ("1ms", "50ms"):
        code, _, stderr = await damselfly(
            "get", f"{origin.url}/f.bin", "-O", str(output), "--quiet", "--timeout", timeout
        )
        assert code == 1
        assert one_line(stderr) == f"Error: timed out after {timeout}"
        assert not output.exists()


# -- get: which daemon ---------------------------------------------------------------------


def stale_socket(path: Path) -> None:
    """A socket file nobody listens on (a daemon that crashed left it)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()
    assert path.exists()


async def test_a_stale_default_socket_falls_back_to_an_in_process_peer(
    origin: Origin, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", MiB)
    default = tmp_path / "daemon.sock"
    stale_socket(default)
    # The default socket path, pointed at the stale one.
    command = [
        sys.executable,
        "-c",
        "import sys; import damselfly.cli.runtime as r; r.DEFAULT_SOCKET = sys.argv.pop(1); "
        "from damselfly.cli import main; sys.exit(main())",
        str(default),
    ]
    output = tmp_path / "out.bin"
    code, _, stderr = await run(
        "get", f"{origin.url}/f.bin", "-O", str(output), "--quiet", command=command
    )
    assert code == 0, stderr
    assert output.read_bytes() == data
    # Named explicitly, the same socket is an error.
    code, _, stderr = await damselfly(
        "get", f"{origin.url}/f.bin", "-O", str(output), "--quiet", "--daemon", str(default)
    )
    assert code == 1
    assert "cannot reach the daemon" in one_line(stderr)


async def test_a_daemon_removes_its_socket_when_it_stops(swarm: Swarm, tmp_path: Path) -> None:
    await swarm.start_daemon("peer0")
    assert (tmp_path / "peer0.sock").exists()
    await swarm.daemons["peer0"].stop()
    assert swarm.daemons["peer0"].process.returncode == 0
    assert not (tmp_path / "peer0.sock").exists()


# -- a daemon that cannot start, settings that cannot work --------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--listen", "1.2.3.4:5"], "daemon:"),
        (["--socket", "/proc/nope/x.sock"], "daemon:"),
    ],
)
async def test_a_daemon_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    code, stdout, stderr = await damselfly("daemon", "--data-dir", str(tmp_path / "d"), *extra)
    assert code != 0 and stdout == ""
    assert expected in one_line(stderr)


async def test_log_format_from_toml_and_environment_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "scheduler.toml"
    config.write_text('log_format = "xml"\n')
    code, _, stderr = await damselfly("scheduler", "--config", str(config))
    assert code == 2
    assert "setting log_format: 'xml' is not one of text, json" in one_line(stderr)
    code, _, stderr = await damselfly(
        "daemon", "--data-dir", str(tmp_path / "d"), env={"DAMSELFLY_DAEMON_LOG_FORMAT": "xml"}
    )
    assert code == 2
    assert "log_format" in one_line(stderr)


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        ("127.0.0.1:8002", "is not usable (no scheme is not http or https)"),
        ("http://127.0.0.1:9", "downloads go to their origin until it answers"),
    ],
)
async def test_a_daemon_warns_about_a_scheduler_it_cannot_use(
    origin: Origin, swarm: Swarm, tmp_path: Path, scheduler: str, expected: str
) -> None:
    from tests.runtime.conftest import get

    data, _ = make_content(origin.root, "f.bin", MiB)
    await swarm.start_daemon("peer0", extra=["--scheduler", scheduler])
    log = (tmp_path / "peer0.log").read_text()
    assert expected in log
    result = await asyncio.wait_for(get(str(tmp_path / "peer0.sock"), f"{origin.url}/f.bin"), 60)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data


async def test_an_origin_that_can_never_answer_is_not_retried(tmp_path: Path) -> None:
    from damselfly.runtime.config import DaemonConfig
    from damselfly.runtime.daemon import Daemon
    from damselfly.runtime.download import DownloadError

    # A backoff of 10 s: five tries would take well over a minute.
    node = Daemon(DaemonConfig(data_dir=str(tmp_path / "d"), source_backoff=10.0))
    await node.start()
    try:
        for url, expected in [
            ("ftp://127.0.0.1/f.bin", "ftp is not http or https"),
            ("http://127.0.0.1:0/f.bin", "port 0 is not in 1..65535"),
        ]:
            with pytest.raises(DownloadError, match=expected):
                await asyncio.wait_for(node.download(url), timeout=20)
        # A closed port may open later: retried, and the message says what failed.
        quick = Daemon(
            DaemonConfig(data_dir=str(tmp_path / "q"), source_backoff=0.01, source_retries=2)
        )
        await quick.start()
        try:
            with pytest.raises(
                DownloadError, match=r"failed 2 times: cannot connect to 127\.0\.0\.1:9"
            ):
                await asyncio.wait_for(quick.download("http://127.0.0.1:9/f.bin"), timeout=20)
        finally:
            await quick.stop()
    finally:
        await node.stop()


# -- cluster: stopped on every signal, and by `down` after `up` died ----------------------


async def cluster_up(state: Path) -> asyncio.subprocess.Process:
    """`cluster up` with one daemon; returns once it printed its addresses (bounded)."""
    up = await asyncio.create_subprocess_exec(
        *COMMAND, "cluster", "up", "--peers", "1", "--seeds", "0", "--state-dir", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert up.stdout is not None
    for _ in range(20):
        line = (await asyncio.wait_for(up.stdout.readline(), timeout=60)).decode()
        if not line or line.startswith("Ctrl-C"):
            break
    assert line.startswith("Ctrl-C"), line
    return up


def recorded_children(state: Path) -> list[int]:
    body = json.loads((state / "cluster.json").read_text())
    pids = [int(child["pid"]) for child in body["children"]]
    assert len(pids) == 2  # the scheduler and one daemon
    return pids


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def wait_gone(pids: list[int], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not [pid for pid in pids if running(pid)]


async def test_cluster_up_stops_its_processes_on_sighup(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = await cluster_up(state)
    children = recorded_children(state)
    assert all(running(pid) for pid in children)
    up.send_signal(signal.SIGHUP)  # the terminal was closed
    assert await asyncio.wait_for(up.wait(), timeout=30) == 0
    await wait_gone(children)
    assert not (state / "cluster.json").exists()


async def test_cluster_down_stops_the_processes_of_a_killed_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = await cluster_up(state)
    children = recorded_children(state)
    up.send_signal(signal.SIGKILL)
    await asyncio.wait_for(up.wait(), timeout=30)
    assert all(running(pid) for pid in children)  # orphans, until `down`
    code, stdout, stderr = await damselfly("cluster", "down", "--state-dir", str(state))
    assert code == 0, stderr
    assert "cluster stopped" in stdout
    await wait_gone(children)
    assert not (state / "cluster.json").exists()
    code, _, stderr = await damselfly("cluster", "down", "--state-dir", str(state))
    assert code == 1 and "no cluster is up" in one_line(stderr)


async def test_a_corrupt_cluster_state_is_a_one_line_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "cluster.json").write_text('{"pid": ')
    for command in ("down", "up"):
        code, _, stderr = await damselfly("cluster", command, "--state-dir", str(state))
        assert code == 1
        assert "cluster.json is corrupt" in one_line(stderr)
