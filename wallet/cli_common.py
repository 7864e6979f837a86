"""What every ``tally-wallet`` command shares: the ``Context``, the settings' names, tables, and
the end of a send.

``Context`` is what a command gets: the parsed arguments, the network, the wallet file, the node,
the password and passphrase (``--password-file``, the environment, else a prompt on the terminal,
never stdin), printing (a table or one JSON document) and opening the wallet. ``finish_send``
prints a send's summary (txid, amounts, fee) and then, with ``--wait``, waits for confirmations:
once a transaction is out, no failure may read as if nothing had been sent. ``fail`` prints the
one-line error and gives the exit status.

This module is below ``wallet.cli`` and the modules adding commands to it
(``wallet.cli_offline``, ``wallet.cli_payments``, ``wallet.cli_spending``): they all import it,
and it imports none of them. Left to others: the argument parser, the commands and the entry point
with its error handling (``wallet.cli``, which re-exports the public names here), the wallet's
operations (``wallet.service``).
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from client.http import Client, NodeError, NodeUnreachableError
from client.models import TxStatus
from consensus import NETWORKS, encode_address, get_params
from wallet import keystore
from wallet.amounts import format_amount
from wallet.service import SendResult, Wallet, WalletError, confirmations_of, fee_rate_of

PROG = "tally-wallet"
PASSWORD_ENV = "TALLY_WALLET_PASSWORD"  # noqa: S105 - the variable's name, not a password
PASSPHRASE_ENV = "TALLY_WALLET_BIP39_PASSPHRASE"  # noqa: S105
NODE_ENV = "TALLY_NODE"
NODE_ENV_ALIAS = "TALLY_NODE_URL"
"""The older name of ``TALLY_NODE``, still read (after it)."""
WALLET_ENV = "TALLY_WALLET"
NETWORK_ENV = "TALLY_NETWORK"


class UsageError(Exception):
    """A command line that does not make sense (exit status 2)."""


# --- settings ------------------------------------------------------------------------------------


class Context:
    """What every command needs: where the wallet is, which network, which node, how to print."""

    def __init__(self, args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO):
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        network = getattr(args, "network", None)
        wallet = getattr(args, "wallet", None)
        self.network_given = network is not None
        """``--network`` on the command line (an existing file's network must then match)."""
        self.network_chosen = self.network_given or bool(os.environ.get(NETWORK_ENV))
        """``--network`` or ``TALLY_NETWORK``: what a new wallet's node must agree with."""
        self.network: str = network or os.environ.get(NETWORK_ENV) or "main"
        if self.network not in NETWORKS:
            raise UsageError(f"unknown network {self.network!r} (from {NETWORK_ENV})")
        wallet = wallet or os.environ.get(WALLET_ENV)
        self.path_given = bool(wallet)
        if wallet:
            self.path = Path(wallet).expanduser()
        else:
            self.path = default_wallet_path(self.network)
        self._node_arg: str | None = getattr(args, "node", None)

    def explicit_node(self) -> str | None:
        """The node named on this command line or in the environment, if any."""
        return self._node_arg or os.environ.get(NODE_ENV) or os.environ.get(NODE_ENV_ALIAS)

    def node_url(self, network: str, store: keystore.Keystore | None = None) -> str:
        url = self.explicit_node() or (store.node_url if store is not None else None)
        return url or f"http://127.0.0.1:{get_params(network).default_port}"

    def client(self, network: str, store: keystore.Keystore | None = None) -> Client:
        try:
            return Client(self.node_url(network, store))
        except ValueError as err:
            raise UsageError(str(err)) from None

    def new_wallet_network(self) -> tuple[str, str | None]:
        """For ``create``/``restore``: the network (the node's, when a node is named) and the
        node URL to remember; a ``--network`` the node disagrees with is an error."""
        url = self.explicit_node()
        if url is None:
            return self.network, None
        try:
            info = Client(url).info()
        except ValueError as err:
            raise UsageError(str(err)) from None
        except NodeUnreachableError as err:
            if not self.network_chosen:
                raise WalletError(
                    f"{err}; the wallet's network comes from its node: start the node, or give "
                    "--network to make the wallet without it"
                ) from None
            self.note(f"{PROG}: warning: {err}; the wallet is made for {self.network}")
            return self.network, url
        network = info.network
        if network not in NETWORKS:
            raise WalletError(f"the node at {url} is on an unknown network {network!r}")
        if self.network_chosen and network != self.network:
            raise WalletError(
                f"the node at {url} is on the {network} network, not {self.network} "
                "(--network or TALLY_NETWORK only overrides; leave it out to follow the node)"
            )
        if not self.path_given:
            self.path = default_wallet_path(network)
        return str(network), url

    # --- output ---

    def out(self, text: str) -> None:
        print(text, file=self.stdout)

    def emit(self, data: Any, text: str) -> None:
        if self.json:
            json.dump(data, self.stdout, indent=2)
            self.stdout.write("\n")
        else:
            self.out(text)

    def note(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)

    # --- secrets ---

    @staticmethod
    def _tty() -> TextIO | None:
        """The controlling terminal, read and written unbuffered as ``getpass`` does (a text
        file opened ``"r+"`` on a terminal is not seekable: ``io.UnsupportedOperation``)."""
        try:
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        except OSError:
            return None
        try:
            return io.TextIOWrapper(io.FileIO(fd, "r+"), encoding="utf-8", write_through=True)
        except (OSError, ValueError):
            os.close(fd)
            return None

    def _ask(self, prompt: str, hidden: bool = True) -> str:
        """Ask on the terminal (echo off when ``hidden``), never on stdin, which may be a pipe
        carrying something else (the mnemonic of ``restore``)."""
        tty = self._tty()
        if tty is None:
            raise WalletError(
                f"no terminal to ask for {prompt.rstrip(': ').lower()}: set {PASSWORD_ENV} "
                "or use --password-file"
            )
        try:
            with tty:
                if hidden:
                    return getpass.getpass(prompt, stream=tty)
                tty.write(prompt)
                tty.flush()
                line = tty.readline()
                if not line:
                    raise EOFError
                return line.rstrip("\n")
        except EOFError:
            raise WalletError(
                f"no {prompt.rstrip(': ').lower()} given (end of input); nothing was changed"
            ) from None

    def password(self, new: bool = False) -> str:
        file = getattr(self.args, "password_file", None)
        if file:
            try:
                lines = Path(file).expanduser().read_text(encoding="utf-8").splitlines()
            except OSError as err:
                raise WalletError(f"cannot read password file {file}: {err.strerror}") from None
            password = lines[0] if lines else ""
        elif PASSWORD_ENV in os.environ:
            password = os.environ[PASSWORD_ENV]
        else:
            password = self._ask("Wallet password: " if not new else "New wallet password: ")
            if new and self._ask("Repeat the password: ") != password:
                raise WalletError("the two passwords differ; nothing was written")
        if not password:
            raise WalletError("the wallet password is empty; choose one (nothing was written)")
        return password

    def bip39_passphrase(self, wanted: bool, new: bool) -> str:
        if not wanted:
            return ""
        if PASSPHRASE_ENV in os.environ:
            return os.environ[PASSPHRASE_ENV]
        passphrase = self._ask("BIP39 passphrase: ")
        if new and self._ask("Repeat the BIP39 passphrase: ") != passphrase:
            raise WalletError("the two passphrases differ; nothing was written")
        return passphrase

    # --- opening ---

    def load(self) -> keystore.Keystore:
        store = keystore.load(self.path)
        if self.network_given and store.network != self.network:
            raise WalletError(
                f"wallet {self.path} is for the {store.network} network, not {self.network}"
            )
        return store

    def open(self, store: keystore.Keystore | None = None, node: bool = True) -> Wallet:
        store = store or self.load()
        secret, key = (None, None) if store.watch_only else store.unlock_with_key(self.password())
        client = self.client(store.network, store) if node else None
        wallet = Wallet(self.path, store, secret, client, key)
        wallet.upgrade_format()
        return wallet


def default_wallet_path(network: str) -> Path:
    return Path.home() / ".tally" / f"wallet-{network}.json"


# --- formatting ----------------------------------------------------------------------------------


def table(
    headers: Sequence[str] | None, rows: Sequence[Sequence[Any]], right: Sequence[int] = ()
) -> str:
    """Columns aligned; ``right`` lists the columns aligned right (numbers); no header line
    and rule if ``headers`` is None."""
    cells = [[str(c) for c in r] for r in rows]
    if headers is not None:
        cells.insert(0, [str(h) for h in headers])
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = []
    for n, r in enumerate(cells):
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(parts).rstrip())
        if n == 0 and headers is not None:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def tly(units: int, sign: bool = False) -> str:
    return format_amount(units, sign)


def _send_json(result: SendResult, wallet: Wallet) -> dict[str, Any]:
    s = result.selection
    outputs = []
    for n, o in enumerate(s.outputs):
        outputs.append(
            {
                "address": _address(o.pubkey_hash, wallet),
                "amount": o.amount,
                "change": n == s.change_position,
            }
        )
    data: dict[str, Any] = {
        "txid": result.txid,
        "sent": result.sent,
        "fee": s.fee,
        "size": s.size,
        # both JSON numbers, base units per byte: what was paid (to 3 decimals) and asked for
        "fee_rate": round(float(fee_rate_of(s)), 3),
        "requested_fee_rate": float(s.fee_rate),
        "inputs": [
            {"txid": u.txid[::-1].hex(), "index": u.index, "amount": u.amount} for u in s.inputs
        ],
        "outputs": outputs,
        "change_address": result.change_address,
        "raw": result.tx.serialize().hex(),
    }
    if result.replaces is not None:
        data["replaces"] = result.replaces
    return data


def _address(pubkey_hash: bytes, wallet: Wallet) -> str:
    return encode_address(pubkey_hash, wallet.params)


def _send_text(result: SendResult, wallet: Wallet) -> str:
    s = result.selection
    rows = []
    for n, o in enumerate(s.outputs):
        rows.append(
            [
                _address(o.pubkey_hash, wallet),
                tly(o.amount),
                "change" if n == s.change_position else "",
            ]
        )
    head = "DRY RUN, not sent" if not result.sent else "Sent"
    if result.replaces:
        head += f" (replaces {result.replaces})"
    summary = table(
        None,
        [
            ["txid", result.txid],
            ["inputs", f"{len(s.inputs)} ({tly(s.total_in)} TLY)"],
            ["fee", f"{tly(s.fee)} TLY ({s.fee} base units)"],
            ["size", f"{s.size} bytes"],
            ["fee rate", f"{fee_rate_of(s):.3f} base units/byte"],
        ],
    ).splitlines()
    return "\n".join([head, *summary, "", table(["to", "amount (TLY)", ""], rows, right=[1])])


# --- the end of a send ---------------------------------------------------------------------------


def _wait(ctx: Context, wallet: Wallet, txid: str, n: int) -> TxStatus:
    interactive = ctx.stderr.isatty()

    def progress(count: int) -> None:
        text = f"waiting for {txid}: {count}/{n} confirmations"
        if interactive:
            ctx.stderr.write("\r" + text + ("\n" if count >= n else ""))
            ctx.stderr.flush()
        else:
            ctx.note(text)

    return wallet.wait(txid, n, progress)


def finish_send(ctx: Context, wallet: Wallet, result: SendResult) -> int:
    """The summary first (txid, amounts, fee), then the wait: once a transaction is out, no
    failure may read as if nothing had been sent."""
    data = _send_json(result, wallet)
    n = ctx.args.wait
    if not result.sent or n is None:
        ctx.emit(data, _send_text(result, wallet))
        return 0
    if not ctx.json:
        ctx.out(_send_text(result, wallet))
        ctx.stdout.flush()
    try:
        status = _wait(ctx, wallet, result.txid, n)
    except KeyboardInterrupt:
        ctx.note(f"{PROG}: stopped waiting; {result.txid} was sent and stays pending")
        raise
    except (NodeUnreachableError, NodeError, WalletError) as err:
        if ctx.json:
            data.update(confirmations=None, wait_error=str(err))
            ctx.emit(data, "")
        return fail(ctx.stderr, f"sent, still unconfirmed: {result.txid} ({err})")
    if ctx.json:
        data["confirmations"] = confirmations_of(status)
        ctx.emit(data, "")
    return 0


def fail(stderr: TextIO, message: str, status: int = 1) -> int:
    one_line = " ".join(message.split())
    print(f"{PROG}: {one_line}", file=stderr, flush=True)
    return status
