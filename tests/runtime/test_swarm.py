"""End to end on loopback: an origin, a scheduler, 1 seed and 8 daemons get one 64 MiB file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.runtime.conftest import Origin, Swarm, downloaded, get, make_content, metrics

pytestmark = pytest.mark.slow

SIZE = 64 * 1024 * 1024
PIECE = 4 * 1024 * 1024


async def test_one_seed_and_eight_daemons_share_one_origin_copy(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, digest = make_content(origin.root, "model.bin", SIZE)
    await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True)
    names = [f"peer{index}" for index in range(8)]
    # Two daemons serve through the upload token bucket instead of sendfile.
    limited = ["--upload-rate-limit", "4Gbit/s"]
    await asyncio.gather(
        *(swarm.start_daemon(name, extra=limited if name < "peer2" else []) for name in names)
    )

    url = f"{origin.url}/model.bin"
    results = await asyncio.gather(
        *(get(str(tmp_path / f"{name}.sock"), url, digest=digest) for name in names)
    )

    for result in results:
        assert result["event"] == "done", result
        assert Path(result["path"]).read_bytes() == data
    # The origin served the content once (the seed's fetch), give or take a piece.
    assert abs(origin.stats.bytes_served - SIZE) <= PIECE + 1
    from_origin = from_peers = 0.0
    for name in names:
        values = await metrics(swarm.daemons[name].address)
        from_origin += downloaded(values, "origin")
        from_peers += downloaded(values, "peer") + downloaded(values, "seed")
    assert from_peers >= 0.9 * 8 * SIZE
    assert from_origin <= PIECE
    # Peers served each other, not only the seed.
    uploaded = 0.0
    for name in names:
        uploaded += (await metrics(swarm.daemons[name].address)).get(
            "damselfly_daemon_uploaded_bytes_total{}", 0.0
        )
    assert uploaded > 0
