"""A daemon's view of the scheduler service: JSON calls and decision streams.

:class:`SchedulerClient` raises :class:`SchedulerUnavailable` when the service cannot be
reached (connection refused, timeout, a 5xx), which the daemon answers by working without
it, and :class:`SchedulerRejected` when the service answered 4xx (the daemon's mistake or
a forgotten peer).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

__all__ = ["SchedulerClient", "SchedulerRejected", "SchedulerUnavailable", "auth_headers"]

CALL_TIMEOUT = aiohttp.ClientTimeout(total=10.0, sock_connect=3.0)


class SchedulerUnavailable(Exception):
    """The scheduler could not be reached."""


class SchedulerRejected(Exception):
    """The scheduler answered 4xx; ``status`` and its message are kept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"scheduler answered {status}: {message}")
        self.status = status


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class SchedulerClient:
    """Calls to one scheduler service at ``base_url`` (``http://host:port``)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str | None) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.headers = auth_headers(token)

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One JSON call; returns the decoded answer."""
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                json=body,
                headers=self.headers,
                timeout=CALL_TIMEOUT,
            ) as response:
                text = await response.text()
                if response.status >= 500:
                    raise SchedulerUnavailable(f"scheduler answered {response.status}")
                if response.status >= 400:
                    try:
                        message = json.loads(text)["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        message = text[:200]
                    raise SchedulerRejected(response.status, message)
                result: dict[str, Any] = json.loads(text) if text else {}
                return result
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise SchedulerUnavailable(f"scheduler unreachable: {error}") from None

    async def stream(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON messages of a WebSocket stream, until it closes.

        Raises SchedulerUnavailable when the stream cannot be opened; a stream that closes
        simply ends the iteration.
        """
        try:
            ws = await self.session.ws_connect(
                self.base_url + path,
                headers=self.headers,
                heartbeat=20.0,
                timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
            )
        except aiohttp.WSServerHandshakeError as error:
            if 400 <= error.status < 500:
                raise SchedulerRejected(error.status, error.message) from None
            raise SchedulerUnavailable(f"stream {path}: {error}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise SchedulerUnavailable(f"stream {path}: {error}") from None
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    try:
                        yield json.loads(message.data)
                    except ValueError:
                        continue
                else:
                    break
        finally:
            await ws.close()
