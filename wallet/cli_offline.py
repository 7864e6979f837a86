"""``tally-wallet`` commands for offline signing: ``create --watch-only``, ``sign``, ``broadcast``.

A watch-only wallet (``create --watch-only XPUB``) is made from the account's extended public key
that ``tally-wallet info`` shows on the wallet with the keys; it never holds, derives or asks for
a secret (no password prompt at all: its file has nothing to encrypt). It writes unsigned
payments (``send ... --unsigned FILE``, ``wallet.unsigned``); the wallet with the keys signs them
(``sign FILE [--output OUT]``) after checking every input is its own and every spent amount is
what the node says; ``broadcast FILE`` (on either wallet) sends the signed transaction.

Argument definitions live here (``add_commands``), registered by ``wallet.cli``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consensus import get_params
from wallet import keystore, unsigned
from wallet.amounts import format_amount
from wallet.cli_common import Context
from wallet.cli_spending import MAX_FEE_HELP, max_fee
from wallet.keys import account_path
from wallet.service import Wallet, WalletError
from wallet.spending import check_max_fee
from wallet.watchonly import PublicAccount, WatchOnlyError


def add_watch_only_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--watch-only",
        metavar="XPUB",
        default=None,
        help="make a watch-only wallet from an account's extended public key (as 'info' shows "
        "it); no keys, no password (default: a wallet with new keys)",
    )


def create_watch_only(ctx: Context, network: str, node: str | None) -> int:
    """``create --watch-only XPUB``: nothing secret is made, asked for or written."""
    if ctx.path.exists():
        raise WalletError(f"a wallet already exists at {ctx.path}; it was left as it is")
    params = get_params(network)
    xpub = str(ctx.args.watch_only).strip()
    try:
        account = PublicAccount(xpub, params)
    except WatchOnlyError as err:
        raise WalletError(str(err)) from None
    store = keystore.watch_only(xpub, network, params.coin_type, account_path(params), node)
    keystore.save(ctx.path, store, exclusive=True)
    wallet = Wallet(ctx.path, store, None, None)
    key, address = wallet.receive_address()
    ctx.emit(
        {
            "wallet": str(ctx.path),
            "network": network,
            "watch_only": True,
            "account_xpub": account.account_xpub,
            "derivation_path": account.path,
            "address": address,
            "address_path": account.key_path(key),
            "node": node,
        },
        "\n".join(
            [
                f"Created watch-only wallet {ctx.path} ({network}): no private keys",
                f"Receive address: {address}",
            ]
        ),
    )
    return 0


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("sign", "sign an unsigned transaction file with this wallet's keys")
    p.add_argument("file", metavar="FILE", help="the unsigned transaction (send --unsigned)")
    p.add_argument(
        "--output",
        metavar="OUT",
        default=None,
        help="write the signed file here (default: sign FILE in place)",
    )
    p.add_argument("--max-fee", metavar="TLY", default=None, help=MAX_FEE_HELP)
    p = command("broadcast", "send a signed transaction file to the node")
    p.add_argument("file", metavar="FILE", help="a file signed by 'sign'")


def cmd_sign(ctx: Context) -> int:
    path = Path(ctx.args.file)
    doc = unsigned.read(path)
    store = ctx.load()
    if store.watch_only:
        raise WalletError("this is a watch-only wallet: sign with the wallet that has the keys")
    check_max_fee(doc.fee, max_fee(ctx), f"as the file {path} asks, {doc.size} bytes")
    wallet = ctx.open(store)
    signed = unsigned.sign(doc, wallet)
    out = Path(ctx.args.output) if ctx.args.output else path
    unsigned.write(out, signed)
    pays = [f"  {_tly(o.amount)} TLY to {o.address}" for o in signed.outputs if not o.change]
    ctx.emit(
        _summary(signed, str(out)),
        "\n".join(
            [
                f"Signed {signed.txid} ({len(signed.inputs)} inputs, fee {_tly(signed.fee)} TLY)"
                f" -> {out}",
                "It pays:",
                *pays,
            ]
        ),
    )
    return 0


def cmd_broadcast(ctx: Context) -> int:
    doc = unsigned.read(Path(ctx.args.file))
    store = ctx.load()
    if doc.network != store.network:
        raise WalletError(f"the file is for {doc.network}, this wallet for {store.network}")
    raw = doc.signed_raw()
    client = ctx.client(store.network, store)
    txid = client.post_tx(raw)
    ctx.emit(_summary(doc, ctx.args.file) | {"sent": True}, f"Sent {txid}")
    return 0


def _summary(doc: unsigned.UnsignedTx, file: str) -> dict[str, Any]:
    return {
        "file": file,
        "txid": doc.txid,
        "signed": doc.raw is not None,
        "fee": doc.fee,
        "size": doc.size,
        "inputs": [{"txid": i.txid, "index": i.index, "amount": i.amount} for i in doc.inputs],
        "outputs": [{"address": o.address, "amount": o.amount} for o in doc.outputs],
    }


def _tly(units: int) -> str:
    return format_amount(units)


COMMANDS: dict[str, Callable[[Context], int]] = {"sign": cmd_sign, "broadcast": cmd_broadcast}
