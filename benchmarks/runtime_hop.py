"""One hop, daemon to daemon on loopback, against curl from nginx.

A 1 GiB file is put on an origin; daemon A fetches it from the origin (not timed). Daemon B
then gets it with A as its only possible parent: every piece crosses loopback over HTTP, is
checked against its sha256 and written durably to B's data dir. That is timed from the
`get` request to the daemon's "done". The baseline is `curl` downloading the same file from
nginx on the same machine to the same disk. Debian's nginx is installed if missing (root).

Usage: python benchmarks/runtime_hop.py [--size 1GiB] [--repeat 3] [--workdir DIR]
The last line printed is one JSON object: p2p_mib_s, curl_mib_s, ratio (target >= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from damselfly.units import parse_size

COMMAND = [sys.executable, "-c", "import sys; from damselfly.cli import main; sys.exit(main())"]
TOKEN = "benchmark"
NGINX_CONF = """
{user}
worker_processes 1;
daemon on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


class Process:
    """A runtime component started as a process; its ready line gives its address."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [*COMMAND, *args],
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),  # noqa: SIM115
            env={**os.environ, "DAMSELFLY_TOKEN": TOKEN, **(env or {})},
            text=True,
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            raise SystemExit(f"{args[0]} did not start; see {log}")
        self.info: dict[str, Any] = json.loads(line)

    @property
    def address(self) -> str:
        return str(self.info["address"])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_origin(root: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """A static origin (aiohttp, counting bytes) in a child process; returns it and its URL."""
    code = (
        "import asyncio, json, sys\n"
        "from pathlib import Path\n"
        "from aiohttp import web\n"
        "from damselfly.runtime.origin import make_origin_app\n"
        "async def main():\n"
        "    runner = web.AppRunner(make_origin_app(Path(sys.argv[1])), access_log=None)\n"
        "    await runner.setup()\n"
        "    await web.TCPSite(runner, '127.0.0.1', 0).start()\n"
        "    print(json.dumps({'address': f'http://127.0.0.1:{runner.addresses[0][1]}'}),"
        " flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    popen = subprocess.Popen(
        [sys.executable, "-c", code, str(root)],
        stdout=subprocess.PIPE,
        stderr=open(log, "ab"),  # noqa: SIM115
        text=True,
    )
    assert popen.stdout is not None
    return popen, json.loads(popen.stdout.readline())["address"]


async def origin_bytes(origin_url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(origin_url + "/_stats") as response:
        return int((await response.json())["bytes_served"])


async def daemon_get(socket: str, url: str, **request: Any) -> list[tuple[float, dict[str, Any]]]:
    """Drive a daemon's local API; returns (monotonic time, event) for every event."""
    events: list[tuple[float, dict[str, Any]]] = []
    connector = aiohttp.UnixConnector(path=socket)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            "http://daemon/api/v1/downloads",
            json={"url": url, **request},
            timeout=aiohttp.ClientTimeout(total=3600),
        ) as response,
    ):
        async for line in response.content:
            events.append((time.monotonic(), json.loads(line)))
    final = events[-1][1] if events else {}
    if final.get("event") != "done":
        raise SystemExit(f"download failed: {final}")
    return events


def write_file(path: Path, size: int) -> None:
    block = os.urandom(4 * 1024 * 1024)
    with open(path, "wb") as file:
        written = 0
        while written < size:
            chunk = block[: size - written]
            file.write(chunk)
            written += len(chunk)


def ensure_nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    print("installing Debian's nginx ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=False, env=env)
    if not Path("/usr/sbin/nginx").exists():
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True, env=env)
    return "/usr/sbin/nginx"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def curl_seconds(nginx: str, root: Path, name: str, work: Path, repeat: int) -> list[float]:
    prefix = work / "nginx"
    prefix.mkdir(exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    # The temporary dir is private to us; as root, nginx's worker must run as root to read it.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, port=port, root=root))
    subprocess.run([nginx, "-c", str(conf), "-p", str(prefix)], check=True)
    try:
        for _ in range(50):
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.1)
        times = []
        for _ in range(repeat):
            target = work / "curl.out"
            target.unlink(missing_ok=True)
            started = time.monotonic()
            subprocess.run(
                ["curl", "-sS", "-f", "-o", str(target), f"http://127.0.0.1:{port}/{name}"],
                check=True,
            )
            with open(target, "rb+") as file:  # same durability as the daemon's pieces
                os.fsync(file.fileno())
            times.append(time.monotonic() - started)
        return times
    finally:
        subprocess.run([nginx, "-c", str(conf), "-p", str(prefix), "-s", "stop"], check=False)


async def p2p_seconds(
    root: Path, name: str, work: Path, repeat: int
) -> tuple[list[float], int, float]:
    """Daemon A gets the file from the origin, then ``repeat`` fresh daemons get it from A.
    Returns the hop times (s), the bytes the origin served and A's time from the origin."""
    origin, origin_url = start_origin(root, work / "origin.log")
    scheduler = Process(["scheduler", "--listen", "127.0.0.1:0"], work / "scheduler.log")
    daemons: list[Process] = []
    try:
        holder = Process(
            ["daemon", "--scheduler", scheduler.address, "--data-dir", str(work / "a"),
             "--socket", str(work / "a.sock"), "--host-id", "holder"],
            work / "a.log",
        )  # fmt: skip
        daemons.append(holder)
        url = f"{origin_url}/{name}"
        fetched = await daemon_get(str(work / "a.sock"), url)  # A holds it now (not in p2p)
        origin_seconds = fetched[-1][0] - fetched[0][0]
        times = []
        for index in range(repeat):
            data_dir = work / f"b{index}"
            receiver = Process(
                ["daemon", "--scheduler", scheduler.address, "--data-dir", str(data_dir),
                 "--socket", str(work / f"b{index}.sock"), "--host-id", f"receiver{index}"],
                work / f"b{index}.log",
            )  # fmt: skip
            daemons.append(receiver)
            events = await daemon_get(str(work / f"b{index}.sock"), url)
            times.append(events[-1][0] - events[0][0])
            sources = events[-1][1]["bytes_from"]
            print(f"p2p run {index + 1}: {times[-1]:.2f} s, bytes from {sources}", flush=True)
            receiver.stop()
            daemons.remove(receiver)
            shutil.rmtree(data_dir, ignore_errors=True)
        served = await origin_bytes(origin_url)
        return times, served, origin_seconds
    finally:
        for daemon in daemons:
            daemon.stop()
        scheduler.stop()
        origin.terminate()
        origin.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="Where files go (default: a temporary dir).")
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="damselfly-hop-", dir=args.workdir) as directory:
        work = Path(directory)
        root = work / "www"
        root.mkdir()
        write_file(root / "blob.bin", size)
        nginx = ensure_nginx()
        curl = curl_seconds(nginx, root, "blob.bin", work, args.repeat)
        for index, seconds in enumerate(curl):
            print(f"curl run {index + 1}: {seconds:.2f} s", flush=True)
        p2p, served, _ = asyncio.run(p2p_seconds(root, "blob.bin", work, args.repeat))
    mib = size / 1024**2
    p2p_rate = mib / statistics.median(p2p)
    curl_rate = mib / statistics.median(curl)
    print(
        json.dumps(
            {
                "p2p_mib_s": round(p2p_rate, 1),
                "curl_mib_s": round(curl_rate, 1),
                "ratio": round(p2p_rate / curl_rate, 3),
                "size_bytes": size,
                "origin_bytes": served,
                "repeat": args.repeat,
                "python": platform.python_version(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()
