"""A static origin server: a directory over HTTP with Range support, counting bytes served.

Used by ``damselfly cluster up --origin DIR``, by the tests and by the benchmarks, so they
can tell how much the origin served (Damselfly's whole point is to keep that near one copy).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from damselfly.runtime.api import OnceFileResponse

__all__ = ["ORIGIN_KEY", "OriginStats", "make_origin_app"]


class OriginStats:
    """Bytes and requests served so far."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.bytes_served = 0
        self.requests = 0


ORIGIN_KEY = web.AppKey("origin", OriginStats)


async def serve_file(request: web.Request) -> web.StreamResponse:
    stats = request.app[ORIGIN_KEY]
    name = request.match_info["name"]
    path = (stats.root / name).resolve()
    if stats.root not in path.parents or not path.is_file():
        raise web.HTTPNotFound(text="no such file")
    stats.requests += 1
    response = OnceFileResponse(path, chunk_size=1024 * 1024)
    await response.prepare(request)
    if response.content_length:
        stats.bytes_served += response.content_length
    return response


async def origin_stats(request: web.Request) -> web.Response:
    stats = request.app[ORIGIN_KEY]
    return web.json_response({"bytes_served": stats.bytes_served, "requests": stats.requests})


def make_origin_app(root: Path) -> web.Application:
    """An app serving files under ``root`` at ``/<name>``, and ``/_stats``."""
    app = web.Application()
    app[ORIGIN_KEY] = OriginStats(root)
    app.router.add_get("/_stats", origin_stats)
    app.router.add_get("/{name:.+}", serve_file)
    return app
