"""``tally-wallet``: the wallet command line (SPEC 4).

Synopsis::

    tally-wallet [--wallet FILE] [--node URL] [--network N] [--json] [--password-file F] COMMAND
      create [--words 12|24] [--bip39-passphrase]
      restore [--bip39-passphrase]            mnemonic from stdin, or a prompt
      address [--new]
      balance
      send ADDRESS AMOUNT [ADDRESS AMOUNT]... [--fee-rate R] [--dry-run] [--wait [N]]
      bump-fee TXID [--fee-rate R] [--dry-run] [--wait [N]]
      history [--limit N] [--page P] [--csv]
      utxos
      info
      request, watch, sign-message, verify-message         (wallet.cli_payments)
      sendall, cpfp, freeze, unfreeze, label               (wallet.cli_spending)
      create --watch-only XPUB, sign, broadcast            (wallet.cli_offline)

Defaults: ``--network`` from ``TALLY_NETWORK``, else ``main`` (as ``tally-node``), except that
``create``/``restore`` given a node take the node's network (a disagreeing ``--network`` is an
error); the wallet file from ``--wallet``, else ``TALLY_WALLET``, else
``~/.tally/wallet-<network>.json`` (an existing file's own network wins, and a different
``--network`` is an error); the node from ``--node``, else ``TALLY_NODE`` (or the older
``TALLY_NODE_URL``), else the URL the wallet file remembers, else
``http://127.0.0.1:<the network's default port>``. Passwords: ``--password-file`` (its first line),
else ``TALLY_WALLET_PASSWORD``, else a prompt on the terminal. A BIP39 passphrase
(``--bip39-passphrase``) comes from ``TALLY_WALLET_BIP39_PASSPHRASE`` or a prompt.

Amounts are decimal TLY (``1.5``); fee rates base units per byte. With ``--json`` each command
prints one JSON document on stdout (amounts in integer base units, as the node's API); otherwise
aligned tables. Progress (``--wait``) and warnings go to stderr. ``send`` and ``bump-fee`` check
every argument before anything is broadcast and print their summary before waiting; a wait that
cannot finish says "sent, still unconfirmed". Prompts are read from the terminal (``/dev/tty``,
echo off for secrets), never from stdin.

Errors: one line ``tally-wallet: <what is wrong>`` on stderr and exit status 1 (2 for a usage
error, 130 if interrupted); never a traceback (set ``TALLY_WALLET_DEBUG=1`` to get one for an
unexpected error). Options may come before or after the command.

What the commands here and in the three modules adding commands share (``Context``, the settings'
names, ``table``, ``finish_send``, ``fail``) is ``wallet.cli_common``'s, re-exported here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NoReturn, TextIO

from client.http import NodeError, NodeUnreachableError
from consensus import NETWORKS, AddressError, get_params
from wallet import cli_offline, cli_payments, cli_spending, keystore
from wallet.amounts import AmountError, parse_amount, parse_fee_rate
from wallet.builder import BuildError
from wallet.cli_common import (
    NETWORK_ENV,
    NODE_ENV,
    NODE_ENV_ALIAS,
    PASSPHRASE_ENV,
    PASSWORD_ENV,
    PROG,
    WALLET_ENV,
    Context,
    UsageError,
    default_wallet_path,
    fail,
    finish_send,
    table,
    tly,
)
from wallet.coinselect import SelectionError
from wallet.keys import (
    CHANGE,
    RECEIVE,
    WORD_COUNTS,
    MnemonicError,
    account_path,
    new_mnemonic,
    normalize_mnemonic,
)
from wallet.message import MessageSignatureError
from wallet.payments import WatchTimeoutError
from wallet.qr import QRError
from wallet.service import FEE_TARGET, Wallet, WalletError, parse_address
from wallet.spending import FeeCapError
from wallet.unsigned import UnsignedError
from wallet.uri import PaymentURIError
from wallet.watchonly import WatchOnlyError

DEBUG_ENV = "TALLY_WALLET_DEBUG"
HISTORY_PAGE = 20
"""Rows ``history`` shows at once unless ``--limit`` says otherwise."""


EXTRA_ERRORS: tuple[type[Exception], ...] = (
    UnsignedError,
    WatchOnlyError,
    PaymentURIError,
    QRError,
    MessageSignatureError,
    AddressError,
    WatchTimeoutError,
    FeeCapError,
)
"""Errors of the payment, spending and offline modules: one line each, like the others."""


# --- arguments -----------------------------------------------------------------------------------


ENVIRONMENT = f"""\
environment:
  {NETWORK_ENV:<31}the network when --network is not given (default: main)
  {NODE_ENV:<31}the node's URL when --node is not given
  {PASSWORD_ENV:<31}the wallet password (instead of the prompt)
  {PASSPHRASE_ENV:<31}the BIP39 passphrase (instead of the prompt)
  {DEBUG_ENV:<31}1: a traceback for an unexpected error"""
"""The epilog of every ``tally-wallet`` command (as ``bitcoind -help`` ends with its settings)."""


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The global options; on subcommands with SUPPRESS defaults so either position works."""
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument(
        "--wallet",
        metavar="FILE",
        help="the wallet file (default: ~/.tally/wallet-<network>.json)",
        **d,
    )
    parser.add_argument(
        "--node",
        metavar="URL",
        help=f"the node's root URL, e.g. http://127.0.0.1:18944 (default: ${NODE_ENV}, else "
        "http://127.0.0.1:<the network's port>)",
        **d,
    )
    parser.add_argument(
        "--network",
        choices=sorted(NETWORKS),
        help=f"main, test or regtest (default: ${NETWORK_ENV}, else main; an existing "
        "wallet file's own network wins)",
        **d,
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON document on stdout, amounts in base units (default: tables)",
        **d,
    )
    parser.add_argument(
        "--password-file",
        metavar="F",
        help=f"read the password from F's first line (default: ${PASSWORD_ENV}, else a prompt)",
        **d,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tally wallet: keys, balances and payments, talking to a node.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=ENVIRONMENT,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _common(p, suppress=True)
        return p

    p = command("create", "create a new wallet and show its mnemonic once")
    p.add_argument(
        "--words",
        type=int,
        choices=sorted(WORD_COUNTS),
        default=12,
        help="length of the mnemonic (default: 12)",
    )
    p.add_argument(
        "--bip39-passphrase",
        action="store_true",
        help=f"also use a BIP39 passphrase (from ${PASSPHRASE_ENV} or a prompt; default: none)",
    )
    cli_offline.add_watch_only_option(p)
    p = command("restore", "restore a wallet from its mnemonic (stdin or prompt)")
    p.add_argument(
        "--bip39-passphrase",
        action="store_true",
        help=f"the wallet has a BIP39 passphrase (from ${PASSPHRASE_ENV} or a prompt; "
        "default: none)",
    )
    p = command("address", "show the current receive address")
    p.add_argument(
        "--new",
        action="store_true",
        help="hand out a fresh receive address (default: show the current one)",
    )
    command("balance", "confirmed, unconfirmed and immature balance")
    for name, text in (
        ("send", "send TLY to one or more addresses"),
        ("bump-fee", "replace an unconfirmed transaction by one paying a higher fee"),
    ):
        p = command(name, text)
        if name == "send":
            p.add_argument(
                "pairs",
                nargs="+",
                metavar="ADDRESS AMOUNT",
                help="recipients and amounts in TLY (1.5), as many pairs as wanted; or one "
                "payment URI (tally:ADDRESS?amount=...)",
            )
        else:
            p.add_argument("txid", metavar="TXID", help="the unconfirmed transaction to replace")
        p.add_argument(
            "--fee-rate",
            metavar="R",
            help=f"base units per byte (default: the node's estimate for {FEE_TARGET} blocks, "
            "at least 1)",
        )
        p.add_argument(
            "--dry-run", action="store_true", help="build and sign, do not send (default: send)"
        )
        p.add_argument(
            "--wait",
            nargs="?",
            type=_positive_int,
            const=1,
            default=None,
            metavar="N",
            help="after sending, wait for N confirmations (N default 1; without --wait: "
            "do not wait)",
        )
        cli_spending.add_send_options(p, name)
    p = command("history", "the wallet's transactions, newest first")
    p.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help=f"at most N rows (default {HISTORY_PAGE} in the table, all with --json)",
    )
    p.add_argument(
        "--page",
        type=_positive_int,
        default=1,
        metavar="P",
        help="which page of --limit rows, 1 the newest (default 1)",
    )
    cli_spending.add_history_options(p)
    command("utxos", "the wallet's unspent outputs")
    command("info", "network, derivation path, keystore and node")
    for module in EXTRA_COMMANDS:
        module.add_commands(command)
    return parser


# --- commands ------------------------------------------------------------------------------------


def cmd_create(ctx: Context) -> int:
    network, node = ctx.new_wallet_network()
    if ctx.args.watch_only is not None:
        return cli_offline.create_watch_only(ctx, network, node)
    if ctx.path.exists():
        raise WalletError(f"a wallet already exists at {ctx.path}; it was left as it is")
    params = get_params(network)
    password = ctx.password(new=True)
    passphrase = ctx.bip39_passphrase(ctx.args.bip39_passphrase, new=True)
    mnemonic = new_mnemonic(ctx.args.words)
    store = keystore.seal(
        keystore.Secrets(mnemonic, passphrase),
        password,
        network,
        params.coin_type,
        account_path(params),
    ).with_node(node)
    keystore.save(ctx.path, store, exclusive=True)
    wallet = Wallet(ctx.path, store, keystore.Secrets(mnemonic, passphrase), None)
    key, address = wallet.receive_address()
    words = mnemonic.split()
    grid = [
        "  ".join(f"{i + 1:>2}. {w:<9}" for i, w in list(enumerate(words))[row : row + 4]).rstrip()
        for row in range(0, len(words), 4)
    ]
    ctx.emit(
        {
            "wallet": str(ctx.path),
            "network": network,
            "coin_type": params.coin_type,
            "derivation_path": account_path(params),
            "mnemonic": mnemonic,
            "address": address,
            "address_path": wallet.account.key_path(key),
            "node": node,
        },
        "\n".join(
            [
                f"Created wallet {ctx.path} ({network})",
                f"Write down these {len(words)} words, in order. They are the only way to "
                "restore this wallet, and they are not shown again:",
                "",
                *grid,
                "",
                f"Receive address: {address}",
            ]
        ),
    )
    return 0


def _read_mnemonic(ctx: Context) -> str:
    if ctx.stdin.isatty():
        text = ctx._ask("Mnemonic (12 or 24 words): ", hidden=False)
    else:
        text = ctx.stdin.read()
    return normalize_mnemonic(text)


def cmd_restore(ctx: Context) -> int:
    network, node = ctx.new_wallet_network()
    if ctx.path.exists():
        raise WalletError(f"a wallet already exists at {ctx.path}; it was left as it is")
    params = get_params(network)
    mnemonic = _read_mnemonic(ctx)
    password = ctx.password(new=True)
    passphrase = ctx.bip39_passphrase(ctx.args.bip39_passphrase, new=True)
    secret = keystore.Secrets(mnemonic, passphrase)
    store = keystore.seal(secret, password, network, params.coin_type, account_path(params))
    store = store.with_node(node)
    keystore.save(ctx.path, store, exclusive=True)
    wallet = Wallet(ctx.path, store, secret, ctx.client(network, store))
    data: dict[str, Any] = {
        "wallet": str(ctx.path),
        "network": network,
        "derivation_path": account_path(params),
        "master_fingerprint": wallet.account.master_fingerprint,
        "scanned": False,
    }
    lines = [f"Restored wallet {ctx.path} ({network})"]
    try:
        scan = wallet.scan(with_utxos=False)
    except (NodeUnreachableError, NodeError, WalletError) as err:
        ctx.note(f"{PROG}: warning: not scanned for coins ({err}); 'balance' will scan later")
    else:
        balance = scan.balance()
        used = [a for a in scan.addresses if a.used]
        data.update(
            scanned=True,
            used_addresses=len(used),
            receive_index=wallet.store.receive_index,
            change_index=wallet.store.change_index,
            balance={
                "confirmed": balance.confirmed,
                "unconfirmed": balance.unconfirmed,
                "immature": balance.immature,
                "total": balance.total,
            },
        )
        lines.append(f"Found {len(used)} used addresses; balance {tly(balance.total)} TLY")
    ctx.emit(data, "\n".join(lines))
    return 0


def cmd_address(ctx: Context) -> int:
    wallet = ctx.open(node=False)
    key, address = wallet.new_receive_address() if ctx.args.new else wallet.receive_address()
    ctx.emit(
        {"address": address, "index": key.index, "path": wallet.account.key_path(key)}, address
    )
    return 0


def cmd_balance(ctx: Context) -> int:
    wallet = ctx.open()
    scan = wallet.scan(with_utxos=bool(wallet.meta.frozen))
    b = scan.balance()
    frozen = scan.frozen_amount()
    ctx.emit(
        {
            "confirmed": b.confirmed,
            "unconfirmed": b.unconfirmed,
            "immature": b.immature,
            "total": b.total,
            "height": scan.tip,
            "frozen": frozen,
        },
        table(
            ["balance", "TLY"],
            [
                ["confirmed", tly(b.confirmed)],
                ["unconfirmed", tly(b.unconfirmed)],
                ["immature", tly(b.immature)],
                ["total", tly(b.total)],
                *([["frozen (in the above)", tly(frozen)]] if frozen else []),
            ],
            right=[1],
        ),
    )
    return 0


def _parse_payments(ctx: Context, pairs: list[str], network: str) -> list[tuple[str, int]]:
    if cli_payments.is_uri(pairs):
        return [cli_payments.payment_from_uri(pairs[0], get_params(network))]
    if len(pairs) % 2:
        raise UsageError("send takes ADDRESS AMOUNT pairs (an amount is missing)")
    params = get_params(network)
    payments = []
    for address, amount in zip(pairs[::2], pairs[1::2], strict=True):
        parse_address(address, params)
        payments.append((address, parse_amount(amount)))
    return payments


def _fee_rate(ctx: Context) -> Decimal | None:
    text = ctx.args.fee_rate
    return None if text is None else parse_fee_rate(text)


def _positive_int(text: str) -> int:
    """``--wait N`` and ``--limit N``: checked by the parser, before anything is sent."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs a number >= 1, not {value}")
    return value


def cmd_send(ctx: Context) -> int:
    store = ctx.load()
    payments = _parse_payments(ctx, ctx.args.pairs, store.network)
    rate = _fee_rate(ctx)
    wallet = ctx.open(store)
    options = cli_spending.send_options(ctx, wallet)
    result = wallet.send(payments, rate, ctx.args.dry_run, **options)
    if not options["sign"]:
        return cli_spending.finish_unsigned(ctx, wallet, result)
    return finish_send(ctx, wallet, result)


def cmd_bump_fee(ctx: Context) -> int:
    store = ctx.load()
    rate = _fee_rate(ctx)
    wallet = ctx.open(store)
    cap = cli_spending.max_fee(ctx)
    result = wallet.bump_fee(ctx.args.txid, rate, ctx.args.dry_run, cap)
    if result.sent and result.replaces is not None:
        try:
            wallet.record_replacement(result.replaces, result.txid)
        except keystore.KeystoreError as err:  # the replacement is out: say so, then go on
            ctx.note(f"{PROG}: warning: the replacement was not recorded for 'history': {err}")
    return finish_send(ctx, wallet, result)


def _when(row: dict[str, Any]) -> str:
    if row["height"] is None or row["time"] is None:
        return "unconfirmed"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(row["time"])))


def _counterparty(row: dict[str, Any]) -> str:
    others = row["counterparties"]
    if row["direction"] == "mined":
        return "(coinbase)"
    if not others:
        return "(this wallet)"
    return str(others[0]) + (f" (+{len(others) - 1})" if len(others) > 1 else "")


def cmd_history(ctx: Context) -> int:
    if ctx.args.csv:
        return cli_spending.history_csv(ctx)
    wallet = ctx.open()
    scan = wallet.scan(with_utxos=False)
    rows = wallet.history(scan)
    limit: int | None = ctx.args.limit
    if limit is None and not ctx.json:
        limit = HISTORY_PAGE
    page: int = ctx.args.page
    start = 0 if limit is None else (page - 1) * limit
    shown = rows[start:] if limit is None else rows[start : start + limit]
    if ctx.json:
        ctx.emit(shown, "")
        return 0
    if not rows:
        ctx.out("no transactions yet")
        return 0
    if not shown:
        raise UsageError(f"--page {page} is past the end ({len(rows)} transactions)")
    text = table(
        ["date (UTC)", "direction", "counterparty", "amount (TLY)", "fee (TLY)", "confs", "txid"],
        [
            [
                _when(r),
                r["direction"],
                _counterparty(r),
                tly(r["net"], sign=True),
                "" if r["fee"] is None else tly(r["fee"]),
                r["confirmations"],
                r["txid"] + (f"  replaced by {r['replaced_by']}" if r["replaced_by"] else ""),
            ]
            for r in shown
        ],
        right=[3, 4, 5],
    )
    end = start + len(shown)
    footer = f"transactions {start + 1}-{end} of {len(rows)}, newest first"
    if end < len(rows):
        footer += f"; older: --page {page + 1}" + (f" --limit {limit}" if ctx.args.limit else "")
    ctx.out(text + "\n\n" + footer)
    return 0


def cmd_utxos(ctx: Context) -> int:
    wallet = ctx.open()
    scan = wallet.scan()
    rows = wallet.utxo_rows(scan)
    ctx.emit(
        rows,
        table(
            ["outpoint", "amount (TLY)", "confs", "address", ""],
            [
                [
                    f"{r['txid']}:{r['index']}",
                    tly(r["amount"]),
                    r["confirmations"],
                    r["address"],
                    "frozen"
                    if r["frozen"]
                    else ("immature" if not r["spendable"] else "mined")
                    if r["coinbase"]
                    else "",
                ]
                for r in rows
            ],
            right=[1, 2],
        )
        if rows
        else "no unspent outputs",
    )
    return 0


def cmd_info(ctx: Context) -> int:
    wallet = ctx.open()
    store = wallet.store
    node: dict[str, Any] = {"url": wallet.client.url}
    try:
        info = wallet.client.info()
    except (NodeUnreachableError, NodeError) as err:
        node.update(reachable=False, error=str(err))
    else:
        node.update(
            reachable=True,
            network=info.network,
            height=info.height,
            version=info.version,
        )
    kdf = (
        f"scrypt(n={store.kdf.n}, r={store.kdf.r}, p={store.kdf.p})"
        if store.kdf is not None
        else "none (watch-only: no secrets)"
    )
    data: dict[str, Any] = {
        "wallet": str(ctx.path),
        "network": store.network,
        "coin_type": store.coin_type,
        "derivation_path": store.account_path,
        "receive_path": f"{store.account_path}/{RECEIVE}/i",
        "change_path": f"{store.account_path}/{CHANGE}/i",
        "receive_index": store.receive_index,
        "change_index": store.change_index,
        "master_fingerprint": wallet.account.master_fingerprint,
        "account_xpub": wallet.account.account_xpub,
        "keystore": {
            "kdf": kdf,
            "cipher": "aes-256-gcm" if store.kdf is not None else None,
            "version": store.version,
        },
        "watch_only": store.watch_only,
        "node": node,
    }
    node_text = (
        f"{node['url']} ({node['network']}, height {node['height']})"
        if node.get("reachable")
        else f"{node['url']} (not reachable)"
    )
    rows: list[list[Any]] = [
        ["wallet", data["wallet"]],
        ["network", store.network],
        ["coin type", store.coin_type],
        ["derivation path", f"{store.account_path}/<0 receive, 1 change>/i"],
        ["receive index", store.receive_index],
        ["change index", store.change_index],
        ["master fingerprint", data["master_fingerprint"]],
        ["account xpub", data["account_xpub"]],
        ["keystore", f"{kdf} + aes-256-gcm"],
        ["node", node_text],
    ]
    ctx.emit(data, table(None, rows))
    return 0


COMMANDS = {
    "create": cmd_create,
    "restore": cmd_restore,
    "address": cmd_address,
    "balance": cmd_balance,
    "send": cmd_send,
    "bump-fee": cmd_bump_fee,
    "history": cmd_history,
    "utxos": cmd_utxos,
    "info": cmd_info,
}
EXTRA_COMMANDS = (cli_payments, cli_spending, cli_offline)
"""Modules adding commands: each has ``add_commands(command)`` and a ``COMMANDS`` table."""
for _module in EXTRA_COMMANDS:
    COMMANDS.update(_module.COMMANDS)


# --- entry point ---------------------------------------------------------------------------------


def run(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; the exit status (never raises, except SystemExit for --help)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    wallet_path = "the wallet"
    try:
        ctx = Context(args, stdin, stdout, stderr)
        wallet_path = str(ctx.path)
        return COMMANDS[args.command](ctx)
    except UsageError as err:
        parser.print_usage(stderr)
        return fail(stderr, str(err), 2)
    except keystore.WrongPasswordError:
        return fail(stderr, f"wrong password for {wallet_path}; nothing was changed")
    except NodeError as err:
        return fail(stderr, f"the node refused: {err.code}: {err.message}")
    except (
        WalletError,
        keystore.KeystoreError,
        AmountError,
        SelectionError,
        MnemonicError,
        NodeUnreachableError,
        BuildError,
    ) as err:
        return fail(stderr, str(err))
    except EXTRA_ERRORS as err:
        return fail(stderr, str(err))
    except KeyboardInterrupt:
        return fail(stderr, "interrupted", 130)
    except BrokenPipeError:
        return 1
    except Exception as err:  # a bug: still one line unless asked for the traceback
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc(file=stderr)
        return fail(
            stderr,
            f"unexpected error: {type(err).__name__}: {err} (set {DEBUG_ENV}=1 for details)",
        )


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))


__all__ = [
    "COMMANDS",
    "DEBUG_ENV",
    "ENVIRONMENT",
    "EXTRA_COMMANDS",
    "EXTRA_ERRORS",
    "HISTORY_PAGE",
    "NETWORK_ENV",
    "NODE_ENV",
    "NODE_ENV_ALIAS",
    "PASSPHRASE_ENV",
    "PASSWORD_ENV",
    "PROG",
    "WALLET_ENV",
    "Context",
    "UsageError",
    "build_parser",
    "cmd_address",
    "cmd_balance",
    "cmd_bump_fee",
    "cmd_create",
    "cmd_history",
    "cmd_info",
    "cmd_restore",
    "cmd_send",
    "cmd_utxos",
    "default_wallet_path",
    "fail",
    "finish_send",
    "main",
    "run",
    "table",
    "tly",
]
"""The command line's names, with those of ``wallet.cli_common`` it has always offered."""
