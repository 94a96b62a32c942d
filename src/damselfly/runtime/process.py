"""Running a runtime component as a process: logging, a ready line, a clean stop on signals.

Every long-running command (scheduler, daemon, origin) prints one JSON line on stdout once
it listens (``{"event": "ready", "component": ..., "address": ...}``), so scripts and tests
learn the port it bound, then runs until SIGINT or SIGTERM and stops cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["JsonFormatter", "run_until_signalled", "setup_logging"]


class JsonFormatter(logging.Formatter):
    """One JSON object per log record (``--log-format json``)."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body)


def setup_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def run_until_signalled(
    start: Callable[[], Awaitable[dict[str, Any]]],
    stop: Callable[[], Awaitable[None]],
) -> None:
    """``start()``, print its ready line, wait for SIGINT/SIGTERM, then ``stop()``."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stopping.set)
    info = await start()
    print(json.dumps({"event": "ready", **info}), flush=True)
    try:
        await stopping.wait()
    finally:
        await stop()
