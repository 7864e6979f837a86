"""Node settings from flags, ``TALLY_*`` environment variables and a TOML file (SPEC 3.6).

Precedence: a command-line flag wins, then the environment, then the config file, then the
defaults. Every setting has the same name in all three places::

    flag              environment            TOML key     default
    --network         TALLY_NETWORK          network      main
    --datadir         TALLY_DATADIR          datadir      ~/.tally/<network>
    --bind            TALLY_BIND             bind         127.0.0.1
    --port            TALLY_PORT             port         the network's default port
    --peer (repeat)   TALLY_PEERS (a,b,...)  peers        []
    --mine-to         TALLY_MINE_TO          mine_to      (none: no mining)
    --block-time      TALLY_BLOCK_TIME       block_time   (none: back to back when mining)
    --log-level       TALLY_LOG_LEVEL        log_level    info
    --allow-host NAME (repeat)
                      TALLY_ALLOW_HOST (a,b) allow_host   [] (the bind address, and the loopback
                                                          names when bound to loopback, always)
    --whitelist (rep) TALLY_WHITELIST (a,b)  whitelist    []   (CIDR networks scored per URL)
    --config          TALLY_CONFIG           -            (none)

A wrong value anywhere is a ``ConfigError`` naming where it came from. This module reads the
environment and the file it is told about; it starts nothing.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus import NETWORKS, NetworkParams, get_params
from node.api.guards import normalize_host_name

LOG_LEVELS = ("debug", "info", "warning", "error")
SETTING_NAMES = (
    "network",
    "datadir",
    "bind",
    "port",
    "peers",
    "mine_to",
    "block_time",
    "log_level",
    "allow_host",
    "whitelist",
)


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    network: str = "main"
    datadir: Path = field(default_factory=lambda: default_datadir("main"))
    bind: str = "127.0.0.1"
    port: int = 0
    peers: tuple[str, ...] = ()
    mine_to: str | None = None
    block_time: float | None = None
    log_level: str = "info"
    allow_host: tuple[str, ...] = ()
    """Extra names a request's ``Host`` may give (``node.api.guards``), normalized."""
    whitelist: tuple[str, ...] = ()
    """Networks (CIDR) whose peers are scored and banned per listening URL, not per IP."""

    @property
    def params(self) -> NetworkParams:
        return get_params(self.network)


def default_datadir(network: str) -> Path:
    return Path.home() / ".tally" / network


def _convert(name: str, value: Any, source: str) -> Any:
    """Check and convert one raw value (from a flag, the environment or TOML)."""
    try:
        if name == "network":
            if value not in NETWORKS:
                raise ValueError(f"expected one of {', '.join(sorted(NETWORKS))}")
            return value
        if name == "datadir":
            return Path(str(value)).expanduser()
        if name == "bind":
            if not isinstance(value, str) or not value:
                raise ValueError("expected a host name or address")
            return value
        if name == "port":
            port = int(value)
            if isinstance(value, bool) or not 0 < port < 65536:
                raise ValueError("expected a port between 1 and 65535")
            return port
        if name == "peers":
            if isinstance(value, str):
                value = [p for p in (v.strip() for v in value.split(",")) if p]
            if not isinstance(value, list | tuple) or not all(isinstance(p, str) for p in value):
                raise ValueError("expected a list of URLs")
            for url in value:
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"{url!r} is not an http:// URL")
            return tuple(value)
        if name == "whitelist":
            if isinstance(value, str):
                value = [p for p in (v.strip() for v in value.split(",")) if p]
            if not isinstance(value, list | tuple) or not all(isinstance(p, str) for p in value):
                raise ValueError("expected a list of networks (CIDR)")
            for net in value:
                ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
            return tuple(value)
        if name == "mine_to":
            return None if value in (None, "") else str(value)
        if name == "block_time":
            if value in (None, ""):
                return None
            seconds = float(value)
            if isinstance(value, bool) or not seconds > 0:
                raise ValueError("expected a positive number of seconds")
            return seconds
        if name == "allow_host":
            if isinstance(value, str):
                value = [h for h in (v.strip() for v in value.split(",")) if h]
            if not isinstance(value, list | tuple) or not all(isinstance(h, str) for h in value):
                raise ValueError("expected a list of host names")
            return tuple(normalize_host_name(h) for h in value)
        if name == "log_level":
            level = str(value).lower()
            if level not in LOG_LEVELS:
                raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
            return level
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {name} = {value!r}: {err}") from None
    raise ConfigError(f"{source}: unknown setting {name!r}")


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: {err}") from None
    unknown = sorted(set(data) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return {name: _convert(name, value, f"config file {path}") for name, value in data.items()}


def env_name(name: str) -> str:
    """The environment variable of setting ``name`` (``peers``: ``TALLY_PEERS``)."""
    return f"TALLY_{name.upper()}"


def flag_name(name: str) -> str:
    """The command-line flag of setting ``name`` (``peers``: ``--peer``, repeated)."""
    return "--peer" if name == "peers" else "--" + name.replace("_", "-")


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in SETTING_NAMES:
        var = env_name(name)
        if var in environ:
            found[name] = _convert(name, environ[var], f"environment {var}")
    return found


def resolve(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_path: Path | str | None = None,
) -> Settings:
    """Settings from ``flags`` (only those given: None means "not given"), the environment and
    the config file (``config_path`` or ``TALLY_CONFIG``)."""
    environ = os.environ if environ is None else environ
    path = config_path or environ.get("TALLY_CONFIG") or None
    merged: dict[str, Any] = {}
    if path:
        merged.update(read_config_file(Path(path).expanduser()))
    merged.update(read_environment(environ))
    for name, value in flags.items():
        if value is not None and value != [] and name in SETTING_NAMES:
            merged[name] = _convert(name, value, f"flag --{name.replace('_', '-')}")
    network = merged.get("network", "main")
    merged.setdefault("network", network)
    merged.setdefault("datadir", default_datadir(network))
    merged.setdefault("port", get_params(network).default_port)
    return Settings(**merged)
