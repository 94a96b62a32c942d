"""The HTTP edge shared by the scheduler service and the daemon: routes, schemas, errors, auth.

A route is declared once, as a :class:`Route` (method, path, handler, summary, JSON schema of
its body). The same declaration registers the aiohttp handler, validates request bodies and
produces the OpenAPI 3 document, so the document cannot drift from the app.

Errors: every failure reaches the client as ``{"error": {"status", "reason", "message"}}``
with a 4xx status. Core :class:`UsageError` s map to 400/404/409, :class:`PeerMisbehavedError`
to 422, a bad body to 400, an oversized body to 413, a missing or wrong cluster token to 401.
A 500 is a bug; the middleware still answers it in JSON and logs the traceback.

The schema validator understands the small subset of JSON Schema the routes use: ``type``
(object, array, string, integer, number, boolean, null, or a list of them), ``properties``,
``required``, ``additionalProperties`` (false or a schema), ``maxProperties``, ``items``,
``maxItems``, ``minimum``,
``maximum``, ``minLength``, ``maxLength``, ``pattern`` and ``enum``.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from damselfly.scheduling import (
    InvalidTransitionError,
    PeerMisbehavedError,
    UnknownHostError,
    UnknownPeerError,
    UnknownTaskError,
    UsageError,
)

__all__ = [
    "ID_PATTERN",
    "MAX_BODY_BYTES",
    "TASK_ID_PATTERN",
    "BadRequest",
    "OnceFileResponse",
    "Route",
    "add_routes",
    "auth_middleware",
    "check_headers",
    "check_origin_url",
    "check_url",
    "error_middleware",
    "json_body",
    "openapi_document",
    "url_problem",
    "validate",
]

log = logging.getLogger("damselfly.runtime")

MAX_BODY_BYTES = 1024 * 1024
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,200}$"
TASK_ID_PATTERN = r"^[0-9a-f]{64}$"
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/api/v1/openapi.json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OnceFileResponse(web.FileResponse):
    """A FileResponse that a handler may prepare itself (to hold a slot or count bytes while
    the file is sent); aiohttp's second ``prepare`` after the handler returns is a no-op."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return None
        return await super().prepare(request)


class BadRequest(Exception):
    """A request body or parameter that does not follow its schema (answered 400)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    """One HTTP route: the single declaration behind the handler, validation and the docs."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: dict[str, Any] | None = None
    responses: dict[str, str] = field(default_factory=lambda: {"200": "OK"})
    websocket: bool = False
    public: bool = False


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Register every route's handler on ``app`` (a GET also answers HEAD)."""
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)


# -- errors and auth ------------------------------------------------------------------------


def _error(status: int, message: str) -> web.Response:
    reason = web.Response(status=status).reason
    body = {"error": {"status": status, "reason": reason, "message": message}}
    return web.json_response(body, status=status)


def _status_of(error: Exception) -> int:
    if isinstance(error, UnknownHostError | UnknownPeerError | UnknownTaskError):
        return 404
    if isinstance(error, InvalidTransitionError):
        return 409
    if isinstance(error, PeerMisbehavedError):
        return 422
    return 400


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception into a JSON error body (see the module docstring)."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error(error.status, error.text or error.reason)
    except BadRequest as error:
        return _error(400, str(error))
    except (UsageError, PeerMisbehavedError) as error:
        return _error(_status_of(error), str(error))
    except Exception:  # a bug: still JSON, and logged with its traceback
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error")


def auth_middleware(token: str | None) -> Any:
    """A middleware that answers 401 unless ``Authorization: Bearer <token>`` is sent.

    Paths in :data:`PUBLIC_PATHS` stay open; ``token=None`` turns authentication off.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None and request.path not in PUBLIC_PATHS:
            sent = request.headers.get("Authorization", "")
            expected = f"Bearer {token}"
            if not hmac.compare_digest(sent.encode(), expected.encode()):
                return _error(401, "a valid cluster token is required (Authorization: Bearer)")
        return await handler(request)

    return middleware


async def json_body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object, validated against ``schema``; raises BadRequest."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise
    if not raw:
        raw = b"{}"
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not JSON: {error}") from None
    validate(body, schema, "body")
    assert isinstance(body, dict)
    return body


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def check_url(url: str) -> str:
    """``url`` if it can be parsed and encoded; raises BadRequest otherwise."""
    try:
        url.encode("utf-8")
        urlsplit(url).port  # noqa: B018 (parses the host and port, raising on nonsense)
    except (ValueError, UnicodeError) as error:
        raise BadRequest(f"the URL cannot be parsed: {error}") from None
    return url


def url_problem(url: str) -> str | None:
    """Why ``url`` can never be fetched over HTTP (None when it can be tried): not http or
    https, no host, a port outside 1..65535, or something that does not parse."""
    if any(ord(character) < 0x21 or ord(character) == 0x7F for character in url):
        return "it contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError as error:
        return f"it cannot be parsed ({error})"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "no scheme"
        return f"{scheme} is not http or https"
    if not hostname:
        return "it names no host"
    if port is not None and not 1 <= port <= 65535:
        return f"port {port} is not in 1..65535"
    return None


def check_origin_url(url: str) -> str:
    """``url`` if an origin could serve it (see :func:`url_problem`); raises BadRequest."""
    problem = url_problem(url)
    if problem is not None:
        raise BadRequest(f"{url[:200]!r} is not a usable URL: {problem}")
    return url


def check_headers(headers: Any) -> dict[str, str]:
    """Origin request headers as names to values; raises BadRequest unless every name is an
    HTTP token and every value printable ASCII."""
    if not isinstance(headers, dict):
        raise BadRequest("headers must be an object")
    for name, value in headers.items():
        if not isinstance(value, str) or not _HEADER_NAME.fullmatch(name):
            raise BadRequest(f"header {str(name)[:40]!r} is not a valid header")
        if not _HEADER_VALUE.fullmatch(value):
            raise BadRequest(f"header {name!r} has characters HTTP does not allow")
    return dict(headers)


def path_id(request: web.Request, name: str, pattern: str = ID_PATTERN) -> str:
    """A path parameter checked against ``pattern``; raises BadRequest."""
    value = request.match_info.get(name, "")
    if not re.fullmatch(pattern.strip("^$"), value):
        raise BadRequest(f"{name} {value[:80]!r} is not a valid id")
    return value


# -- a small JSON Schema subset ---------------------------------------------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(value: Any, schema: dict[str, Any], where: str) -> None:
    """Check ``value`` against ``schema``; raises BadRequest naming the first bad field."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[kind](value) for kind in kinds):
            raise BadRequest(f"{where} must be {' or '.join(kinds)}")
    if "enum" in schema and value not in schema["enum"]:
        raise BadRequest(f"{where} must be one of {schema['enum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise BadRequest(f"{where}.{name} is required")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise BadRequest(f"{where} has more than {schema['maxProperties']} fields")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], f"{where}.{name}")
            elif extra is False:
                raise BadRequest(f"{where}.{str(name)[:40]} is not a known field")
            elif isinstance(extra, dict):
                validate(item, extra, f"{where}.{str(name)[:40]}")
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise BadRequest(f"{where} has more than {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                validate(item, schema["items"], f"{where}[{index}]")
    elif isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise BadRequest(f"{where} is too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise BadRequest(f"{where} is longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise BadRequest(f"{where} does not match {schema['pattern']}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            raise BadRequest(f"{where} must be finite")
        if "minimum" in schema and value < schema["minimum"]:
            raise BadRequest(f"{where} must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise BadRequest(f"{where} must be <= {schema['maximum']}")


# -- OpenAPI ----------------------------------------------------------------------------------

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "status": {"type": "integer"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
            },
        }
    },
}


def openapi_document(title: str, version: str, routes: Iterable[Route]) -> dict[str, Any]:
    """An OpenAPI 3.0 document describing ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        responses: dict[str, Any] = {
            code: {"description": text} for code, text in route.responses.items()
        }
        if not route.public:
            responses["401"] = {"description": "missing or wrong cluster token"}
        responses["4XX"] = {
            "description": "bad request",
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "parameters": parameters,
            "responses": responses,
        }
        if route.websocket:
            operation["description"] = "A WebSocket stream (upgrade with GET)."
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": route.body}},
            }
        if route.public:
            operation["security"] = []
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "components": {"securitySchemes": {"clusterToken": {"type": "http", "scheme": "bearer"}}},
        "security": [{"clusterToken": []}],
        "paths": paths,
    }
