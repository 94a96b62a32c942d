"""`damselfly get` as a user runs it: through a daemon, in process, and failing cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest

from tests.runtime.conftest import COMMAND, TOKEN, Origin, Swarm, make_content

pytestmark = pytest.mark.slow


async def run_get(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "get",
        *args,
        "--quiet",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DAMSELFLY_TOKEN": TOKEN},
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_get_through_a_daemon_with_a_digest(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, digest = make_content(origin.root, "f.bin", 9 * 1024 * 1024)
    await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True)
    await swarm.start_daemon("peer0")
    output = tmp_path / "out.bin"
    code, stderr = await run_get(
        f"{origin.url}/f.bin", "-O", str(output), "--digest", digest,
        "--daemon", str(tmp_path / "peer0.sock"),
    )  # fmt: skip
    assert code == 0, stderr
    assert output.read_bytes() == data


async def test_get_in_process_without_a_daemon(origin: Origin, tmp_path: Path) -> None:
    data, _ = make_content(origin.root, "f.bin", 5 * 1024 * 1024 + 3)
    output = tmp_path / "out.bin"
    code, stderr = await run_get(f"{origin.url}/f.bin", "-O", str(output), "--header", "X-Trace: 1")
    assert code == 0, stderr
    assert hashlib.sha256(output.read_bytes()).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("missing.bin", [], "404"),
        ("f.bin", ["--digest", "sha256:" + "0" * 64], "does not match"),
        ("f.bin", ["--disable-back-to-source"], "back-to-source is disabled"),
    ],
)
async def test_get_fails_with_one_line_and_leaves_no_file(
    origin: Origin, tmp_path: Path, name: str, extra: list[str], expected: str
) -> None:
    make_content(origin.root, "f.bin", 1024)
    output = tmp_path / "out.bin"
    code, stderr = await run_get(f"{origin.url}/{name}", "-O", str(output), *extra)
    assert code != 0
    assert expected in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.bin")]


async def test_get_rejects_bad_flags_with_exit_2(tmp_path: Path) -> None:
    code, stderr = await run_get("not-a-url", "-O", str(tmp_path / "x"))
    assert code == 2 and "not a URL" in stderr
    code, stderr = await run_get("http://x/y", "-O", str(tmp_path / "x"), "--digest", "md5:1")
    assert code == 2


def test_the_cli_module_has_the_four_commands() -> None:
    from damselfly.cli import runtime

    for name in ("scheduler", "daemon", "get", "cluster"):
        assert hasattr(runtime, name)
    assert sys.executable


async def test_cluster_up_then_down(origin: Origin, tmp_path: Path) -> None:
    import aiohttp

    from tests.runtime.conftest import get

    data, _ = make_content(origin.root, "f.bin", 5 * 1024 * 1024)
    state = tmp_path / "state"
    up = await asyncio.create_subprocess_exec(
        *COMMAND, "cluster", "up", "--peers", "1", "--seeds", "1",
        "--origin", str(origin.root), "--state-dir", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert up.stdout is not None
    lines = []
    for _ in range(20):
        line = (await asyncio.wait_for(up.stdout.readline(), timeout=60)).decode()
        lines.append(line)
        if not line or line.startswith("Ctrl-C"):
            break
    addresses = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    scheduler_url = addresses["scheduler"][0]
    cluster_origin = addresses["origin"][0]
    result = await get(str(state / "peer0.sock"), f"{cluster_origin}/f.bin")
    assert result["event"] == "done"
    assert Path(result["path"]).read_bytes() == data

    down = await asyncio.create_subprocess_exec(
        *COMMAND, "cluster", "down", "--state-dir", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert await asyncio.wait_for(down.wait(), timeout=60) == 0
    assert await asyncio.wait_for(up.wait(), timeout=30) == 0
    assert not (state / "cluster.json").exists()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(scheduler_url + "/healthz")


async def test_empty_content_through_a_daemon_and_in_process(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    (origin.root / "empty").write_bytes(b"")
    await swarm.start_scheduler()
    await swarm.start_daemon("peer0")
    for index, extra in enumerate((["--daemon", str(tmp_path / "peer0.sock")], [])):
        output = tmp_path / f"empty{index}"
        code, stderr = await run_get(f"{origin.url}/empty", "-O", str(output), *extra)
        assert code == 0, stderr
        assert output.read_bytes() == b""


async def test_a_get_that_goes_away_leaves_the_download_running(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    from tests.runtime.conftest import get

    data, _ = make_content(origin.root, "f.bin", 12 * 1024 * 1024)
    url = f"{origin.url}/f.bin"
    await swarm.start_daemon("lone", extra=["--back-to-source-rate", "64Mbit/s"])
    impatient = asyncio.create_task(get(str(tmp_path / "lone.sock"), url))
    await asyncio.sleep(0.5)
    impatient.cancel()
    result = await asyncio.wait_for(get(str(tmp_path / "lone.sock"), url), timeout=60)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    await asyncio.sleep(0.3)
    assert "unhandled error" not in (tmp_path / "lone.log").read_text()


async def test_get_in_process_reads_the_cluster_token_from_a_file(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", 1024 * 1024 + 5)
    scheduler = await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True)
    (tmp_path / "right").write_text(TOKEN + "\n")
    (tmp_path / "wrong").write_text("not-the-token\n")

    async def get_with(token_file: str) -> tuple[int, str, Path]:
        output = tmp_path / f"{Path(token_file).name}.bin"
        process = await asyncio.create_subprocess_exec(
            *COMMAND, "get", f"{origin.url}/f.bin", "-O", str(output),
            "--scheduler", scheduler.address, "--token-file", token_file,
            "--disable-back-to-source", "--timeout", "60s", "--quiet",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "DAMSELFLY_TOKEN": "not-the-token-either"},
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
        assert process.returncode is not None
        return process.returncode, stderr.decode(), output

    # The file's token wins over the environment's: the scheduler takes the peer, whose
    # bytes then come from the seed (the origin is off limits).
    code, stderr, output = await get_with(str(tmp_path / "right"))
    assert code == 0, stderr
    assert output.read_bytes() == data
    code, stderr, output = await get_with(str(tmp_path / "wrong"))
    assert code != 0 and len(stderr.strip().splitlines()) == 1, stderr
    assert not output.exists()
    code, stderr, output = await get_with(str(tmp_path / "missing"))
    assert code == 2 and "token file" in stderr and len(stderr.strip().splitlines()) == 1, stderr
