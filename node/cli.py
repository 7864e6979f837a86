"""``tally-node``: run a node, talk to a running one, or rebuild its chainstate (SPEC 3.6).

    tally-node run [--network N] [--datadir DIR] [--bind HOST] [--port N] [--peer URL]...
                   [--mine-to ADDR] [--block-time S] [--allow-host NAME]...
                   [--config FILE] [--log-level L]
    tally-node info | generate N --to ADDR | add-peer URL | stop     (client: reads the cookie)
    tally-node reindex                                               (offline)

Settings come from flags, then ``TALLY_*`` variables, then the TOML file (``node.config``).
Client subcommands find the node at the URL it wrote to ``<datadir>/.url`` (SPEC 3.7), or at
``--bind``/``--port`` when those are given, and authenticate with the token in
``<datadir>/.cookie``; they talk to it through the SDK (``client.http.Client``), so their answers
are the API's models. SIGTERM and SIGINT stop a node cleanly.
Logging is configured here, once, at start-up; errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from client.http import Client, NodeError, NodeUnreachableError
from client.models import Generated
from consensus import get_params
from node.config import SETTING_NAMES, ConfigError, Settings, env_name, flag_name, resolve

log = logging.getLogger("tally")
T = TypeVar("T")


def _environment() -> str:
    """The epilog of every ``tally-node`` command (as ``bitcoind -help`` ends with its
    settings): each setting's variable beside its flag, from ``node.config``."""
    pairs = [(env_name(n), flag_name(n)) for n in SETTING_NAMES] + [("TALLY_CONFIG", "--config")]
    lines = ["environment (a flag wins over its variable, a variable over the --config file):"]
    lines += [f"  {var:<20} {flag}" for var, flag in pairs]
    return "\n".join(lines)


ENVIRONMENT = _environment()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--network",
        choices=["main", "test", "regtest"],
        help="which chain: main, test or regtest (default: main)",
    )
    parser.add_argument(
        "--datadir",
        metavar="DIR",
        help="the node's data directory, with its chain, .cookie and .url "
        "(default: ~/.tally/<network>)",
    )
    parser.add_argument(
        "--bind",
        metavar="HOST",
        help="address the HTTP API listens on (default: 127.0.0.1); client commands: where "
        "to reach the node, instead of <datadir>/.url",
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="N",
        help="HTTP port (default: the network's: "
        + ", ".join(f"{get_params(n).default_port} {n}" for n in ("main", "test", "regtest"))
        + "); client commands: where to reach the node, instead of <datadir>/.url",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file with any of these settings (default: none)"
    )
    parser.add_argument(
        "--log-level",
        dest="log_level",
        metavar="LEVEL",
        help="debug, info, warning or error (default: info)",
    )


def _command(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=text,
        description=text,
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tally-node",
        description="A Tally proof-of-work node and its client commands.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _command(sub, "run", "run a node in the foreground")
    run.add_argument(
        "--peer",
        action="append",
        dest="peers",
        metavar="URL",
        default=[],
        help="a peer's URL, e.g. http://10.0.0.1:18833 (repeatable; default: none)",
    )
    run.add_argument(
        "--mine-to",
        dest="mine_to",
        metavar="ADDR",
        help="mine, paying the blocks to ADDR (default: no mining)",
    )
    run.add_argument(
        "--block-time",
        dest="block_time",
        type=float,
        metavar="S",
        help="when mining, a block every S seconds (default: back to back)",
    )
    run.add_argument(
        "--allow-host",
        action="append",
        dest="allow_host",
        metavar="NAME",
        default=[],
        help="also answer requests whose Host header is NAME (repeatable; e.g. a name that "
        "points at this machine); default: only the bind address, plus localhost, 127.0.0.1 "
        "and [::1] when bound to loopback [env TALLY_ALLOW_HOST, comma-separated]",
    )
    run.add_argument(
        "--whitelist",
        action="append",
        dest="whitelist",
        metavar="NET",
        default=[],
        help="peers in this network (CIDR, e.g. 127.0.0.0/8; repeatable) are scored and "
        "banned per listening URL instead of per IP (default: none)",
    )
    for name, text in (
        ("info", "show a running node's state (found through <datadir>/.url)"),
        ("stop", "ask a running node to stop (needs its <datadir>/.cookie)"),
        ("reindex", "rebuild the chainstate from stored blocks (node must be stopped)"),
    ):
        _command(sub, name, text)
    gen = _command(sub, "generate", "mine N blocks at once (regtest; needs <datadir>/.cookie)")
    gen.add_argument("count", type=int, metavar="N", help="how many blocks")
    gen.add_argument("--to", required=True, metavar="ADDR", help="the address paid (required)")
    peer = _command(sub, "add-peer", "connect a running node to a peer (needs <datadir>/.cookie)")
    peer.add_argument("url", metavar="URL", help="the peer's URL, e.g. http://127.0.0.1:18945")
    return parser


class BadRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a request line over its limit, a bad header) as
    an ERROR with a traceback, though the fault is the client's. The node's server answers and
    logs those itself (``node.api.parser_errors``); this is the backstop for any that still reach
    aiohttp's logger: one line at debug level ("bad request from ...: what was wrong"), shown
    only with ``--log-level debug``."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from aiohttp.http_exceptions import HttpProcessingError

        if not isinstance(exc, HttpProcessingError) or not 400 <= (exc.code or 0) < 500:
            return True
        what = " ".join(str(exc.message).split())[:200]
        try:
            where = record.getMessage().replace("Error handling request", "bad request")
        except (TypeError, ValueError):
            where = "bad request"
        record.msg, record.args = "%s: %d %s", (where, exc.code, what)
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info = record.exc_text = None
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(BadRequestFilter())


# --- run -----------------------------------------------------------------------------------------


async def _run(settings: Settings) -> int:
    from node.service import NodeService

    service = NodeService(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    await service.start()
    try:
        await service.stopped.wait()
    finally:
        try:
            await service.stop()
        except Exception as err:  # closing after a storage failure may fail the same way
            log.error("error while stopping: %s", err)
    if service.failure is not None:
        print(f"tally-node: {service.failure}", file=sys.stderr)
        return 1
    return 0


def cmd_run(settings: Settings) -> int:
    return asyncio.run(_run(settings))


def cmd_reindex(settings: Settings) -> int:
    from node.chainstate import Chainstate
    from node.storage import LevelDBStore

    path = settings.datadir / "chainstate"
    if not path.exists():
        raise SystemExit(f"tally-node: no chainstate in {settings.datadir}")
    with LevelDBStore(path, create_if_missing=False) as store:
        chainstate = Chainstate(store, settings.params, upgrade=True)  # an older schema too
        if not chainstate.reindexed_at_open:
            chainstate.reindex()
        info = chainstate.utxo_set_info()
        print(f"reindexed to height {info.height}: {info.count} coins")
        print(f"UTXO set hash {info.hash.hex()}")
    return 0


# --- client --------------------------------------------------------------------------------------


def node_url(settings: Settings, explicit: bool) -> str:
    """Where a client command reaches the node: ``--bind``/``--port`` when given (``explicit``),
    else the URL the running node wrote to ``<datadir>/.url``, else the settings' bind and
    port."""
    from node.service import read_url

    if not explicit:
        written = read_url(settings.datadir)
        if written is not None:
            return written.rstrip("/")
    host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


CLIENT_TIMEOUT = 600.0
"""Seconds a client command waits for its answer (``generate`` of many blocks takes long)."""


def _client(settings: Settings, base: str, admin: bool = False) -> Client:
    """The SDK's client of the node at ``base``; an admin command reads the token in
    ``<datadir>/.cookie`` first, and without one says so before sending anything."""
    from node.service import read_cookie

    token = None
    if admin:
        try:
            token = read_cookie(settings.datadir)
        except OSError:
            raise SystemExit(
                f"tally-node: no cookie in {settings.datadir}: is the node running with that "
                "--datadir? (admin commands read its .cookie; give the node's --datadir)"
            ) from None
    return Client(base, token=token, timeout=CLIENT_TIMEOUT)


def _call(settings: Settings, call: Callable[[], T]) -> T:
    """``call()``'s answer; the node's error or its absence as ``SystemExit`` with one line."""
    try:
        return call()
    except NodeError as err:
        raise SystemExit(f"tally-node: {err}") from None
    except NodeUnreachableError as err:
        raise SystemExit(
            f"tally-node: {err}; is it running with --datadir {settings.datadir}?"
        ) from None


def _print(answer: msgspec.Struct) -> None:
    print(json.dumps(msgspec.to_builtins(answer), indent=2))


def cmd_info(settings: Settings, base: str) -> int:
    _print(_call(settings, _client(settings, base).info))
    return 0


def cmd_generate(settings: Settings, base: str, count: int, address: str) -> int:
    client = _client(settings, base, admin=True)
    hashes = _call(settings, lambda: client.generate(count, address))
    _print(Generated(hashes=hashes))
    return 0


def cmd_add_peer(settings: Settings, base: str, url: str) -> int:
    client = _client(settings, base, admin=True)
    _print(_call(settings, lambda: client.add_peer(url)))
    return 0


def cmd_stop(settings: Settings, base: str) -> int:
    _call(settings, _client(settings, base, admin=True).stop)
    print("stopping")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    try:
        settings = resolve(flags, config_path=args.config)
    except ConfigError as err:
        print(f"tally-node: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        if args.command == "run":
            return cmd_run(settings)
        if args.command == "reindex":
            return cmd_reindex(settings)
        base = node_url(settings, explicit=args.port is not None or args.bind is not None)
        if args.command == "info":
            return cmd_info(settings, base)
        if args.command == "generate":
            return cmd_generate(settings, base, args.count, args.to)
        if args.command == "add-peer":
            return cmd_add_peer(settings, base, args.url)
        if args.command == "stop":
            return cmd_stop(settings, base)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
            return 1
        raise
    except Exception as err:  # a clear line for the operator; details at debug level
        log.debug("failed", exc_info=True)
        print(f"tally-node: {err}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
