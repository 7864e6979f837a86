"""``tally-node``: run a node, talk to a running one, or rebuild its chainstate (SPEC 3.6).

    tally-node run [--network N] [--datadir DIR] [--bind HOST] [--port N] [--peer URL]...
                   [--mine-to ADDR] [--block-time S] [--config FILE] [--log-level L]
    tally-node info | generate N --to ADDR | add-peer URL | stop     (client: reads the cookie)
    tally-node reindex                                               (offline)

Settings come from flags, then ``TALLY_*`` variables, then the TOML file (``node.config``).
Client subcommands find the node through the same settings (network, datadir, bind, port) and
authenticate with the token in ``<datadir>/.cookie``. SIGTERM and SIGINT stop a node cleanly.
Logging is configured here, once, at start-up; errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from typing import Any

from node.config import ConfigError, Settings, resolve

log = logging.getLogger("tally")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", choices=["main", "test", "regtest"])
    parser.add_argument("--datadir")
    parser.add_argument("--bind")
    parser.add_argument("--port", type=int)
    parser.add_argument("--config", help="TOML file with settings")
    parser.add_argument("--log-level", dest="log_level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tally-node", description="A Tally proof-of-work node and its client commands."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a node in the foreground")
    _common(run)
    run.add_argument("--peer", action="append", dest="peers", metavar="URL", default=[])
    run.add_argument("--mine-to", dest="mine_to", metavar="ADDR")
    run.add_argument("--block-time", dest="block_time", type=float, metavar="S")
    for name, text in (
        ("info", "show a running node's state"),
        ("stop", "ask a running node to stop"),
        ("reindex", "rebuild the chainstate from stored blocks (node must be stopped)"),
    ):
        _common(sub.add_parser(name, help=text))
    gen = sub.add_parser("generate", help="mine N blocks at once (regtest)")
    _common(gen)
    gen.add_argument("count", type=int)
    gen.add_argument("--to", required=True, metavar="ADDR")
    peer = sub.add_parser("add-peer", help="connect a running node to a peer")
    _common(peer)
    peer.add_argument("url")
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


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


def _request(settings: Settings, method: str, path: str, body: Any = None) -> Any:
    from node.service import read_cookie

    host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind  # noqa: S104
    url = f"http://{host}:{settings.port}/api/v1{path}"
    headers = {"Content-Type": "application/json"}
    if path.startswith("/admin/"):
        try:
            headers["Authorization"] = f"Bearer {read_cookie(settings.datadir)}"
        except OSError:
            raise SystemExit(
                f"tally-node: no cookie in {settings.datadir}: is the node running there?"
            ) from None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        try:
            detail = json.loads(err.read())["error"]
            message = f"{detail['code']}: {detail['message']}"
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {err.code}"
        raise SystemExit(f"tally-node: {message}") from None
    except (urllib.error.URLError, OSError) as err:
        raise SystemExit(f"tally-node: cannot reach the node at {url}: {err}") from None


def cmd_info(settings: Settings) -> int:
    print(json.dumps(_request(settings, "GET", "/info"), indent=2))
    return 0


def cmd_generate(settings: Settings, count: int, address: str) -> int:
    result = _request(settings, "POST", "/admin/generate", {"count": count, "address": address})
    print(json.dumps(result, indent=2))
    return 0


def cmd_add_peer(settings: Settings, url: str) -> int:
    print(json.dumps(_request(settings, "POST", "/admin/peers", {"url": url}), indent=2))
    return 0


def cmd_stop(settings: Settings) -> int:
    _request(settings, "POST", "/admin/stop", {})
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
        if args.command == "info":
            return cmd_info(settings)
        if args.command == "generate":
            return cmd_generate(settings, args.count, args.to)
        if args.command == "add-peer":
            return cmd_add_peer(settings, args.url)
        if args.command == "stop":
            return cmd_stop(settings)
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
