"""Deterministic ids.

A task id names the content, not the request: the same URL and digest give the same task
on every scheduler, whichever peer asks first. Query parameters that change per request
(signatures, expiry stamps) are filtered out first, so pre-signed URLs for the same object
share one task. The id is the hex SHA-256 of the canonical URL, digest, tag and application.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["canonical_url", "task_id"]


def canonical_url(url: str, filtered_query_params: Iterable[str] = ()) -> str:
    """``url`` without the named query parameters, the rest sorted by key."""
    parts = urlsplit(url)
    filtered = {name.strip() for name in filtered_query_params if name.strip()}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in filtered]
    query.sort()
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def task_id(
    url: str,
    *,
    digest: str = "",
    tag: str = "",
    application: str = "",
    filtered_query_params: Iterable[str] = (),
) -> str:
    """The id of the task that downloads ``url`` (see the module docstring)."""
    material = "\x00".join((canonical_url(url, filtered_query_params), digest, tag, application))
    return hashlib.sha256(material.encode()).hexdigest()
