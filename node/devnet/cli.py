"""``tally-devnet``'s command line: each subcommand parsed, run, and its answer printed.

    tally-devnet up [--nodes 3] [--base-port P] [--block-time S] [--network regtest|test]
    tally-devnet status | down
    tally-devnet mine N [--node I] [--to ADDR]
    tally-devnet automine off|tx|interval S
    tally-devnet time show|set UNIX|advance SECONDS
    tally-devnet snapshot NAME | revert NAME | snapshots | reset
    tally-devnet partition 0,1 2 | heal
    tally-devnet reorg DEPTH [--drop TXID]...
    tally-devnet invalidate HASH | reconsider HASH
    tally-devnet mempool clear
    tally-devnet faucet ADDRESS AMOUNT
    tally-devnet traffic [--rate R] [--wallets N] [--count N]

Every subcommand takes ``--dir`` (default ``$TALLY_DEVNET_DIR``, else ``.devnet``) and ``--json``
(one JSON document on stdout, the readable lines go to stderr). Process management is
``node.devnet.processes``; the toolkit commands, which span every node and return when the nodes
agree, are ``client.devnet.DevnetControl``'s, so ``client.testing`` runs the very same code.
Each toolkit command is appended to ``<dir>/toolkit.log`` with what it changed. Errors are one
line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from client import ClientError
from client.devnet import DevnetCommandError, DevnetControl
from client.traffic import Traffic
from node.devnet.processes import DEFAULTS, Devnet, DevnetError

DIR_ENV = "TALLY_DEVNET_DIR"
LOG_FILE = "toolkit.log"

EPILOG = f"""\
environment: {DIR_ENV} is the default --dir (``source .devnet/env`` sets it). The nodes it
starts inherit the TALLY_* variables of 'tally-node run' (TALLY_LOG_LEVEL=debug, say), and the
flags it gives them (--network, --datadir, --port, --peer) win over those."""


def build_parser() -> argparse.ArgumentParser:
    default_dir = os.environ.get(DIR_ENV) or ".devnet"

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=text,
            description=textwrap.fill(text, 79),
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--dir", default=default_dir, help=f"the devnet's folder (default: {default_dir})"
        )
        p.add_argument(
            "--json",
            action="store_true",
            help="print one JSON document on stdout (default: readable lines)",
        )
        return p

    parser = argparse.ArgumentParser(
        prog="tally-devnet",
        description="A local Tally network, and the toolkit to control it (regtest).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    last = "default: the last up's, else "
    up = command(
        "up",
        "start the devnet, or bring a running one to these settings (restarting nodes that "
        "are not running); settings not given stay as the last 'up' left them",
    )
    up.add_argument(
        "--nodes",
        type=int,
        metavar="N",
        help=f"how many nodes, 1 to 20 ({last}{DEFAULTS['nodes']})",
    )
    up.add_argument(
        "--base-port",
        type=int,
        metavar="P",
        help=f"node i listens on P+i ({last}the network's port + 100: 18944 on regtest)",
    )
    up.add_argument(
        "--block-time",
        type=float,
        metavar="S",
        help=f"node 0 mines a block every S seconds ({last}{DEFAULTS['block_time']:g})",
    )
    up.add_argument(
        "--network",
        choices=["regtest", "test"],
        help=f"regtest, or test for real proof of work ({last}{DEFAULTS['network']}; "
        "an existing devnet keeps its network)",
    )
    command("status", "show each node's height, peers and mempool")
    command("down", "stop every node of the devnet")

    mine = command("mine", "mine N blocks now, and wait until every node has them")
    mine.add_argument("count", type=int, metavar="N", help="how many blocks, 1 to 10,000")
    mine.add_argument(
        "--node", type=int, default=0, metavar="I", help="the node that mines (default: 0)"
    )
    mine.add_argument(
        "--to", metavar="ADDR", help="where the coinbases pay (default: the dev wallet)"
    )

    auto = command(
        "automine",
        "how node 0 mines: 'off' (only on demand), 'tx' (a block as soon as transactions "
        "arrive) or 'interval S' (a block every S seconds)",
    )
    auto.add_argument("mode", choices=["off", "tx", "interval"], help="the mining mode")
    auto.add_argument(
        "seconds", nargs="?", type=float, metavar="S", help="interval's seconds between blocks"
    )

    clock = command(
        "time",
        "every node's clock, as Core's setmocktime: block times, median time past and "
        "time-too-new follow it",
    )
    clock.add_argument("action", choices=["show", "set", "advance"], help="what to do")
    clock.add_argument(
        "value",
        nargs="?",
        type=int,
        metavar="UNIX|SECONDS",
        help="set: the Unix time to set; advance: seconds to add",
    )

    snap = command("snapshot", "save every node's chain and mempool and the dev wallet as NAME")
    snap.add_argument("name", metavar="NAME", help="letters, digits, _ . - (at most 64)")
    rev = command("revert", "put every node and the dev wallet back exactly as at snapshot NAME")
    rev.add_argument("name", metavar="NAME", help="a snapshot's name (see snapshots)")
    command("snapshots", "list the devnet's snapshots")
    command("reset", "put the devnet back as 'up' made it: funded, no other history")

    part = command(
        "partition",
        "split the devnet into groups that cannot reach each other, e.g. 'partition 0 1,2'",
    )
    part.add_argument(
        "groups", nargs="+", metavar="GROUP", help="node numbers, comma-separated (every node once)"
    )
    command("heal", "let every node reach every other again; returns when they agree")

    reorg = command(
        "reorg",
        "replace the tip with a longer branch from DEPTH blocks back; the disconnected "
        "transactions return to the mempool, except those dropped",
    )
    reorg.add_argument(
        "depth", type=int, metavar="DEPTH", help="blocks replaced (1 to the height - 1)"
    )
    reorg.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="TXID",
        help="a transaction to leave out of every mempool, repeatable (default: none)",
    )

    inv = command("invalidate", "every node marks a block invalid, and leaves its branch")
    inv.add_argument("hash", metavar="HASH", help="a block hash")
    rec = command("reconsider", "every node takes back an invalidate")
    rec.add_argument("hash", metavar="HASH", help="a block hash")

    pool = command("mempool", "the mempools: 'mempool clear' empties every node's")
    pool.add_argument("action", choices=["clear"], help="clear: empty every mempool")

    faucet = command("faucet", "pay AMOUNT TLY from the dev wallet and confirm it in a block")
    faucet.add_argument("address", metavar="ADDRESS", help="who is paid")
    faucet.add_argument("amount", metavar="AMOUNT", help="TLY, as 1.5")

    traffic = command(
        "traffic",
        "payments among dev wallets at a steady rate with varied fees, until stopped "
        "(Ctrl-C) or --count payments",
    )
    traffic.add_argument(
        "--rate", type=float, default=2.0, metavar="R", help="payments a second (default: 2)"
    )
    traffic.add_argument(
        "--wallets", type=int, default=5, metavar="N", help="how many wallets (default: 5)"
    )
    traffic.add_argument(
        "--count", type=int, metavar="N", help="stop after N payments (default: until Ctrl-C)"
    )
    return parser


# --- output --------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-ready copy of a toolkit answer (models, dataclasses, frozensets)."""
    return json.loads(msgspec.json.encode(value, enc_hook=_enc_hook))


def _enc_hook(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"cannot encode {type(value).__name__}")


def log_command(directory: Path, words: list[str], outcome: str) -> None:
    """One line in ``<dir>/toolkit.log``: when, what was asked, what it did."""
    with contextlib.suppress(OSError), (directory / LOG_FILE).open("a") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        log.write(f"{stamp} {' '.join(words)}: {outcome}\n")


def groups_of(texts: list[str]) -> list[list[int]]:
    groups = []
    for text in texts:
        try:
            groups.append([int(part) for part in text.split(",") if part.strip()])
        except ValueError:
            raise DevnetCommandError(
                f"a group is node numbers separated by commas (e.g. 0,1), not {text!r}"
            ) from None
    return groups


# --- the toolkit commands ------------------------------------------------------------------------


def run_toolkit(args: argparse.Namespace, control: DevnetControl) -> tuple[Any, str]:
    """Run one toolkit command: (its JSON answer, a readable summary)."""
    c = args.command
    if c == "mine":
        if not 1 <= args.count <= 10_000:
            raise DevnetCommandError("mine takes 1 to 10,000 blocks")
        hashes = control.mine(args.count, args.node, args.to)
        height = control.nodes[0].info().height
        return {"hashes": hashes, "height": height}, (
            f"mined {len(hashes)} block(s) on node {args.node}; every node is at {height} "
            f"({hashes[-1]})"
        )
    if c == "automine":
        if args.mode != "interval" and args.seconds is not None:
            raise DevnetCommandError(f"automine {args.mode} takes no number")
        state = control.automine(args.mode, args.seconds)
        every = f" every {state.interval:g} s" if state.mode == "interval" else ""
        return state, f"automine {state.mode}{every} on node 0"
    if c == "time":
        if args.action == "show":
            clocks = control.time_show()
        elif args.value is None:
            raise DevnetCommandError(f"time {args.action} needs a number")
        elif args.action == "set":
            clocks = control.time_set(args.value)
        else:
            clocks = control.time_advance(args.value)
        lines = [
            f"node {i}: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(k.now))} UTC "
            f"({k.now}, offset {k.offset:+d} s)"
            for i, k in enumerate(clocks)
        ]
        return clocks, "\n".join(lines)
    if c == "snapshot":
        record = control.snapshot(args.name)
        return record, (
            f"snapshot {record['name']}: height {record['height']}, {record['mempool']} "
            f"transaction(s) in the mempool, {record['nodes']} nodes and the dev wallet"
        )
    if c == "revert":
        record = control.revert(args.name)
        return record, f"reverted to {record['name']}: height {record['height']} on every node"
    if c == "snapshots":
        records = control.snapshots()
        if not records:
            return records, "no snapshots"
        lines = [
            f"{r['name']:<20} height {r['height']:<7} mempool {r['mempool']:<6} "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['created']))} UTC"
            for r in records
        ]
        return records, "\n".join(lines)
    if c == "reset":
        record = control.reset()
        return record, f"reset: the devnet is as 'up' made it (height {record['height']})"
    if c == "partition":
        groups = control.partition(groups_of(args.groups))
        return {"groups": groups}, "partitioned: " + " | ".join(
            ",".join(str(i) for i in g) for g in groups
        )
    if c == "heal":
        states = control.heal()
        return {"height": states[0].height, "best_hash": states[0].tip}, (
            f"healed: every node is at {states[0].height} ({states[0].tip})"
        )
    if c == "reorg":
        answer = control.reorg(args.depth, args.drop)
        return answer, (
            f"reorg {args.depth}: tip {answer.old_tip} -> {answer.new_tip} at height "
            f"{answer.height}; dropped {len(answer.dropped)} transaction(s)"
        )
    if c in ("invalidate", "reconsider"):
        mark = control.invalidate if c == "invalidate" else control.reconsider
        states = mark(args.hash.lower())
        return {"height": states[0].height, "best_hash": states[0].tip}, (
            f"{c}d {args.hash.lower()}: every node is at {states[0].height} ({states[0].tip})"
        )
    if c == "mempool":
        removed = control.mempool_clear()
        return {"removed": removed}, f"cleared {removed} transaction(s) from every mempool"
    if c == "faucet":
        paid = control.faucet(args.address, args.amount)
        return paid, f"paid {args.amount} TLY to {args.address}: {paid['txid']}, in {paid['block']}"
    if c == "traffic":
        traffic = Traffic(control, wallets=args.wallets, rate=args.rate)
        try:
            sent = traffic.run(count=args.count)
        except KeyboardInterrupt:
            sent = traffic.sent
        return {"sent": sent}, f"sent {sent} payment(s)"
    raise DevnetCommandError(f"unknown command {c}")


def run(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[int, Any]:
    devnet = Devnet(Path(args.dir))
    if args.command == "up":
        if args.nodes is not None and not 1 <= args.nodes <= 20:
            raise DevnetError("--nodes must be between 1 and 20")
        if args.block_time is not None and not args.block_time > 0:
            raise DevnetError("--block-time must be a positive number of seconds")
        if args.base_port is not None and not 1024 <= args.base_port <= 65535 - 20:
            raise DevnetError("--base-port must be between 1024 and 65515")
        code = devnet.up(args.nodes, args.base_port, args.block_time, args.network)
        return code, devnet.describe()
    if args.command == "status":
        code = devnet.status()
        return code, devnet.describe()
    if args.command == "down":
        return devnet.down(), {"stopped": True}
    state = devnet.load()
    if not state:
        raise DevnetError(f"no devnet in {devnet.dir} (run 'tally-devnet up')")
    if state.get("network") != "regtest":
        raise DevnetError(
            f"the toolkit works on regtest devnets; the one in {devnet.dir} is {state['network']}"
        )
    control = devnet.control(state)
    answer, summary = run_toolkit(args, control)
    say(summary)
    log_command(devnet.dir, sys.argv[1:] or [args.command], summary.splitlines()[0])
    return 0, answer


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout)

    try:
        if args.json:
            with contextlib.redirect_stdout(sys.stderr):
                code, answer = run(args, say)
            print(json.dumps(plain(answer), indent=2))
            return code
        code, _ = run(args, say)
        return code
    except (DevnetError, DevnetCommandError, ClientError, OSError) as err:
        print(f"tally-devnet: {err}", file=sys.stderr)
        return 1
