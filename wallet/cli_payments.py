"""``tally-wallet`` commands for being paid and proving an address: ``request``, ``watch``,
``sign-message``, ``verify-message`` (SPEC 4); and ``send URI``'s reading of a payment URI.

``request AMOUNT`` prints a payment URI (``wallet.uri``) for a fresh receive address
(``wallet.payments.request_address``) and its QR code in the terminal (``--qr FILE`` also writes
it as PNG or SVG, ``wallet.qr``). ``watch ADDRESS|URI`` waits for the payment (``wallet.payments
.watch``, polling until the node has an event stream): progress lines on stderr, exit status 0
once confirmed, 1 on ``--timeout``. ``sign-message`` signs with the key of one of the wallet's
addresses (``wallet.message``); ``verify-message`` needs no keys and exits 0 when the signature
is valid, 1 when it is not.

Argument definitions live here (``add_commands``), registered by ``wallet.cli``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from client.models import GAP_LIMIT
from consensus import NetworkParams, decode_address, get_params
from wallet import keystore, payments, qr
from wallet.amounts import parse_amount
from wallet.cli_common import Context
from wallet.keys import CHANGE, RECEIVE
from wallet.message import sign_message, verify_message
from wallet.service import Wallet, WalletError
from wallet.uri import PaymentRequest, format_tly, format_uri, looks_like_uri, parse_uri

DEFAULT_CONFIRMATIONS = 1


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("request", "ask to be paid: a payment URI and its QR code")
    p.add_argument("amount", metavar="AMOUNT", help="decimal TLY to ask for, e.g. 1.25")
    p.add_argument("--label", metavar="L", default=None, help="who is paid (default: none)")
    p.add_argument("--message", metavar="M", default=None, help="what for (default: none)")
    p.add_argument(
        "--qr",
        metavar="FILE",
        default=None,
        help="also write the QR code to FILE.png or FILE.svg (default: terminal only)",
    )
    p = command("watch", "wait for a payment to an address or payment URI")
    p.add_argument("target", metavar="ADDRESS|URI", help="the address, or a request's URI")
    p.add_argument(
        "--confirmations",
        type=int,
        default=DEFAULT_CONFIRMATIONS,
        metavar="N",
        help=f"confirmations to wait for (default {DEFAULT_CONFIRMATIONS})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up after S seconds, exit status 1 (default: wait until interrupted)",
    )
    p = command("sign-message", "sign a text with the key of one of this wallet's addresses")
    p.add_argument("address", metavar="ADDRESS", help="an address of this wallet")
    p.add_argument("text", metavar="TEXT", help="the message (UTF-8)")
    p = command("verify-message", "check a message signature (exit 0 valid, 1 not valid)")
    p.add_argument("address", metavar="ADDRESS", help="the address said to have signed")
    p.add_argument("signature", metavar="SIGNATURE", help="base64, as sign-message prints it")
    p.add_argument("text", metavar="TEXT", help="the message (UTF-8)")


def payment_from_uri(text: str, params: NetworkParams) -> tuple[str, int]:
    """``send URI``: the address and amount a payment URI asks for (it must name an amount)."""
    request = parse_uri(text, params)
    if request.amount is None:
        raise WalletError("the payment URI names no amount: use 'send ADDRESS AMOUNT'")
    return request.address, request.amount


def is_uri(pairs: list[str]) -> bool:
    return len(pairs) == 1 and looks_like_uri(pairs[0])


def cmd_request(ctx: Context) -> int:
    amount = parse_amount(ctx.args.amount)
    qr_file = Path(ctx.args.qr) if ctx.args.qr else None
    if qr_file is not None and qr_file.suffix.lower() not in qr.SUFFIXES:
        raise WalletError(f"--qr takes a .png or .svg file, not {qr_file.name!r}")
    wallet = ctx.open()
    wallet.check_node()
    key, address = payments.request_address(wallet)
    request = PaymentRequest(address, amount, ctx.args.label, ctx.args.message)
    uri = format_uri(request)
    label = ctx.args.message or ctx.args.label or payments.REQUEST_LABEL
    wallet.save_meta(wallet.meta.with_label(address, label))
    if qr_file is not None:
        qr.write_qr(uri, qr_file)
    ctx.emit(
        {
            "uri": uri,
            "address": address,
            "path": wallet.account.key_path(key),
            "amount": amount,
            "label": ctx.args.label,
            "message": ctx.args.message,
            "qr_file": None if qr_file is None else str(qr_file),
        },
        uri
        + "\n\n"
        + qr.terminal_text(uri)
        + (f"\nQR code written to {qr_file}" if qr_file else ""),
    )
    return 0


def cmd_watch(ctx: Context) -> int:
    store = ctx.load()
    params = get_params(store.network)
    n = ctx.args.confirmations
    if n < 0:
        raise WalletError("--confirmations takes a number from 0")
    timeout = ctx.args.timeout
    if timeout is not None and timeout <= 0:
        raise WalletError("--timeout takes a number of seconds above 0")
    target = ctx.args.target.strip()
    amount: int | None = None
    if looks_like_uri(target):
        request = parse_uri(target, params)
        address, amount = request.address, request.amount
    else:
        address = target
        decode_address(address, params)
    client = ctx.client(store.network, store)
    wanted = "any amount" if amount is None else f"{format_tly(amount)} TLY"
    ctx.note(f"watching {address} for {wanted}, {n} confirmation{'s' if n != 1 else ''}")

    def report(p: payments.Progress) -> None:
        txids = ", ".join(p.txids)
        ctx.note(
            f"{p.stage}: {format_tly(p.received)} TLY to {address} in {txids} "
            f"({p.confirmations} confirmation{'s' if p.confirmations != 1 else ''})"
        )

    done = payments.watch(client, address, amount, n, timeout, report)
    ctx.emit(
        {
            "address": address,
            "requested": amount,
            "received": done.received,
            "confirmations": done.confirmations,
            "txids": list(done.txids),
            "status": done.stage,
        },
        f"paid: {format_tly(done.received)} TLY to {address}, confirmed",
    )
    return 0


def _own_key(wallet: Wallet, address: str) -> tuple[int, int]:
    """The chain and index of ``address`` among the wallet's handed-out addresses (and the
    gap limit past them)."""
    store = wallet.store
    for chain, issued in ((RECEIVE, store.receive_index), (CHANGE, store.change_index)):
        for index in range(issued + GAP_LIMIT + 1):
            if wallet.account.address(chain, index) == address:
                return chain, index
    raise WalletError(f"{address} is not an address of this wallet")


def cmd_sign_message(ctx: Context) -> int:
    store = ctx.load()
    params = get_params(store.network)
    address = ctx.args.address.strip()
    decode_address(address, params)
    if store.watch_only:
        raise WalletError("this is a watch-only wallet: it holds no keys to sign with")
    wallet = ctx.open(store, node=False)
    chain, index = _own_key(wallet, address)
    signature = sign_message(wallet.account.privkey(chain, index), ctx.args.text)
    ctx.emit({"address": address, "signature": signature, "message": ctx.args.text}, signature)
    return 0


def cmd_verify_message(ctx: Context) -> int:
    network = ctx.network
    if ctx.path.exists() and not ctx.network_given:
        network = keystore.load(ctx.path).network
    params = get_params(network)
    valid = verify_message(ctx.args.address.strip(), ctx.args.signature, ctx.args.text, params)
    ctx.emit(
        {"valid": valid, "address": ctx.args.address.strip(), "network": network},
        "valid" if valid else "NOT valid: the signature is not by this address over this text",
    )
    return 0 if valid else 1


COMMANDS: dict[str, Callable[[Context], int]] = {
    "request": cmd_request,
    "watch": cmd_watch,
    "sign-message": cmd_sign_message,
    "verify-message": cmd_verify_message,
}
