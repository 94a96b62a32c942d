"""The one configuration loader of the runtime: TOML file, then environment, then flags.

Each component (``scheduler``, ``daemon``) has a frozen dataclass of settings. A value comes
from, in rising priority: the dataclass default, the component's TOML file (``--config``;
keys are the field names), the environment (``DAMSELFLY_<COMPONENT>_<FIELD>``, upper case,
plus ``DAMSELFLY_TOKEN`` for the cluster token), and command-line flags (flags win).
Human quantities ("10Gbit/s", "2GiB", "500ms") are parsed here, once, by
:mod:`damselfly.units`; a rate limit may also be ``off``. Errors raise :class:`ConfigError`
with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from damselfly import units
from damselfly.runtime.ratelimit import DEFAULT_RATE_LIMIT

__all__ = [
    "ConfigError",
    "DaemonConfig",
    "SchedulerServiceConfig",
    "client_tls",
    "load_config",
    "read_token",
    "server_tls",
    "split_listen",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting could not be read; the message names it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SchedulerServiceConfig:
    """Settings of ``damselfly scheduler``."""

    listen: str = "127.0.0.1:8002"
    token: str | None = None
    evaluator: str = "default"
    seed: int | None = None
    retry_interval: float = 0.5
    host_ttl: float = 600.0
    peer_idle_timeout: float = 1800.0
    tls_cert: str | None = None
    tls_key: str | None = None
    log_format: str = "text"


@dataclass(frozen=True, kw_only=True, slots=True)
class DaemonConfig:
    """Settings of ``damselfly daemon`` (rates in bytes/s, sizes in bytes, times in s)."""

    data_dir: str = "/var/lib/damselfly"
    scheduler: str | None = None
    listen: str = "127.0.0.1:0"
    advertise: str | None = None
    socket: str | None = None
    seed: bool = False
    host_id: str | None = None
    token: str | None = None
    idc: str = ""
    location: str = ""
    upload_rate: float = 1.25e9
    upload_slots: int | None = None
    upload_rate_limit: float | None = DEFAULT_RATE_LIMIT
    download_rate: float | None = DEFAULT_RATE_LIMIT
    back_to_source_rate: float | None = DEFAULT_RATE_LIMIT
    # What this host can receive (bytes/s); None: unknown, and the slow-download watch is
    # off. Never taken from the rate limits, which are ceilings, not capacities.
    download_capacity: float | None = None
    # A seed offers each piece to one child before offering any twice (see
    # damselfly.scheduling.offer); it has no effect on a normal daemon.
    super_seeding: bool = True
    quota: int | None = None
    max_in_flight: int = 8
    max_per_parent: int = 4
    parent_wait: float = 30.0
    source_retries: int = 5
    source_backoff: float = 0.2
    source_concurrency: int = 4
    heartbeat_interval: float = 30.0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    log_format: str = "text"
    test_corrupt_uploads: bool = False


_LIMITS = {"upload_rate_limit", "download_rate", "back_to_source_rate"}
# Rates that may be absent: `off` (or none, 0) gives None.
_OPTIONAL_RATES = {*_LIMITS, "download_capacity"}
_RATES = {"upload_rate", *_OPTIONAL_RATES}
_NO_LIMIT = {"off", "none", "unlimited", "0"}
_SIZES = {"quota"}
_CHOICES = {"log_format": ("text", "json")}
_DURATIONS = {
    "parent_wait",
    "source_backoff",
    "heartbeat_interval",
    "retry_interval",
    "host_ttl",
    "peer_idle_timeout",
}


def _convert(name: str, value: Any, default: Any) -> Any:
    if value is None:
        return None
    try:
        if name in _OPTIONAL_RATES and str(value).strip().lower() in _NO_LIMIT:
            return None  # a rate limit turned off, or a capacity not given
        if name in _RATES:
            rate = units.parse_rate(value)
            if name in _OPTIONAL_RATES and not rate > 0:
                raise ValueError(f"{value!r} is not a rate above 0 (use 'off' for none)")
            return rate
        if name in _SIZES:
            return units.parse_size(value)
        if name in _DURATIONS:
            return units.parse_duration(value)
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise ValueError(f"{value!r} is not one of {', '.join(_CHOICES[name])}")
            return value
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(f"{value!r} is not a boolean")
            return bool(value)
        if isinstance(default, int) or name in ("upload_slots", "seed"):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"setting {name}: {error}") from None


def load_config(
    cls: type[T],
    component: str,
    *,
    path: str | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build ``cls`` from defaults, the TOML file at ``path``, the environment and ``flags``
    (entries that are None are ignored). Raises ConfigError."""
    environ = os.environ if environ is None else environ
    known = {item.name: item for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as file:
                document = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"config file {path}: {error}") from None
        for key, value in document.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[name] = value
    if "DAMSELFLY_TOKEN" in environ and "token" in known:
        values["token"] = environ["DAMSELFLY_TOKEN"]
    prefix = f"DAMSELFLY_{component.upper()}_"
    for key, value in environ.items():
        if key.startswith(prefix):
            name = key[len(prefix) :].lower()
            if name in known:
                values[name] = value
    for key, value in (flags or {}).items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        if value is not None:
            values[key] = value
    converted = {name: _convert(name, value, known[name].default) for name, value in values.items()}
    return cls(**converted)


def read_token(token: str | None, token_file: str | None) -> str | None:
    """The cluster token: given directly, or the first line of ``token_file``."""
    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip() or None
        except OSError as error:
            raise ConfigError(f"token file {token_file}: {error}") from None
    return token


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context from PEM files (None when no certificate is given)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("TLS needs both a certificate (tls_cert) and a key (tls_key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"TLS certificate {cert}: {error}") from None
    return context


def client_tls(ca: str | None) -> ssl.SSLContext:
    """The client TLS context: the system's trust store plus ``ca`` (a PEM bundle)."""
    context = ssl.create_default_context()
    if ca is not None:
        try:
            context.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"TLS CA bundle {ca}: {error}") from None
    return context


def split_listen(listen: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port); raises ConfigError."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
