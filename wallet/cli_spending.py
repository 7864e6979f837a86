"""``tally-wallet`` commands for spending control and bookkeeping (SPEC 4): ``sendall``, ``cpfp``,
``freeze``/``unfreeze``, ``label``, ``history --csv``, and the options ``send`` and ``bump-fee``
take for them (``--subtract-fee``, ``--from TXID:N``, ``--max-fee``, ``--unsigned FILE``).

The selection rules are ``wallet.spending``'s; frozen coins and labels are kept in the wallet
file (encrypted in a wallet with keys, ``wallet.keystore``). Argument definitions live here
(``add_commands``, ``add_send_options``), registered by ``wallet.cli``.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from consensus import AddressError, decode_address, get_params
from wallet import spending, unsigned
from wallet.amounts import format_amount, parse_amount, parse_fee_rate
from wallet.cli_common import Context, finish_send
from wallet.service import SendResult, Wallet, WalletError, outpoint_text

MAX_FEE_HELP = (
    f"refuse, before signing, a fee above this many TLY "
    f"(default {format_amount(spending.DEFAULT_MAX_FEE)})"
)


def add_send_options(p: argparse.ArgumentParser, name: str) -> None:
    """The spending-control options of ``send`` (all) and ``bump-fee`` (``--max-fee``)."""
    p.add_argument("--max-fee", metavar="TLY", default=None, help=MAX_FEE_HELP)
    if name != "send":
        return
    p.add_argument(
        "--subtract-fee",
        action="store_true",
        help="take the fee from the amount paid (default: the fee is paid on top)",
    )
    p.add_argument(
        "--from",
        dest="from_coins",
        metavar="TXID:N",
        action="append",
        default=None,
        help="spend exactly this coin (repeat for more; default: the wallet chooses)",
    )
    p.add_argument(
        "--unsigned",
        metavar="FILE",
        default=None,
        help="write the unsigned transaction to FILE for 'sign' instead of sending "
        "(default: sign and send)",
    )


def max_fee(ctx: Context) -> int:
    text = getattr(ctx.args, "max_fee", None)
    return spending.DEFAULT_MAX_FEE if text is None else parse_amount(text)


def send_options(ctx: Context, wallet: Wallet, sweep: bool = False) -> dict[str, Any]:
    """``Wallet.send``'s keyword arguments from the command line (``sweep``: only ``sign``)."""
    to_file = ctx.args.unsigned
    if wallet.watch_only and to_file is None:
        raise WalletError(
            "this is a watch-only wallet: write the payment with --unsigned FILE and sign it "
            "with the wallet that has the keys"
        )
    if to_file is not None and Path(to_file).exists():
        raise WalletError(f"{to_file} exists already; it was left as it is")
    if sweep:
        return {"sign": to_file is None}
    return {
        "subtract_fee": ctx.args.subtract_fee,
        "coins": tuple(ctx.args.from_coins or ()),
        "max_fee": max_fee(ctx),
        "sign": to_file is None,
    }


def finish_unsigned(ctx: Context, wallet: Wallet, result: SendResult) -> int:
    """``send --unsigned FILE``: write the file (nothing secret in it) and say what it pays."""
    doc = unsigned.from_selection(result.selection, wallet)
    path = Path(ctx.args.unsigned)
    unsigned.write(path, doc, exclusive=True)
    ctx.emit(
        {
            "file": str(path),
            "txid": doc.txid,
            "signed": False,
            "fee": doc.fee,
            "size": doc.size,
            "inputs": [vars(i) for i in doc.inputs],
            "outputs": [vars(o) for o in doc.outputs],
        },
        f"Unsigned transaction {doc.txid} written to {path} (fee {format_amount(doc.fee)} TLY); "
        "sign it with 'tally-wallet sign' on the wallet with the keys",
    )
    return 0


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("sendall", "send every spendable coin to one address (the fee from the amount)")
    p.add_argument("address", metavar="ADDRESS", help="where everything goes")
    _fee_options(p)
    p.add_argument(
        "--unsigned",
        metavar="FILE",
        default=None,
        help="write the unsigned sweep to FILE for 'sign' instead of sending "
        "(default: sign and send)",
    )
    p = command("cpfp", "child pays for parent: a child making a stuck payment to us confirm")
    p.add_argument("txid", metavar="TXID", help="the unconfirmed transaction paying this wallet")
    _fee_options(p)
    for name, text in (
        ("freeze", "never spend this coin (until unfreeze)"),
        ("unfreeze", "let this coin be spent again"),
    ):
        p = command(name, text)
        p.add_argument("outpoint", metavar="TXID:N", help="the coin")
    p = command("label", "attach a note to an address or a transaction (empty text removes it)")
    p.add_argument("target", metavar="ADDRESS|TXID", help="what the note is about")
    p.add_argument("text", metavar="TEXT", help="the note")


def _fee_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fee-rate", metavar="R", default=None, help="base units per byte (default: estimate)"
    )
    p.add_argument("--max-fee", metavar="TLY", default=None, help=MAX_FEE_HELP)
    p.add_argument(
        "--dry-run", action="store_true", help="build and sign, do not send (default: send)"
    )
    p.add_argument(
        "--wait",
        nargs="?",
        type=int,
        const=1,
        default=None,
        metavar="N",
        help="wait for N confirmations (default: do not wait; N defaults to 1)",
    )


def _rate(ctx: Context) -> Decimal | None:
    text = ctx.args.fee_rate
    return None if text is None else parse_fee_rate(text)


def cmd_sendall(ctx: Context) -> int:
    store = ctx.load()
    rate, cap = _rate(ctx), max_fee(ctx)
    wallet = ctx.open(store)
    sign = bool(send_options(ctx, wallet, sweep=True)["sign"])
    result = spending.sendall(wallet, ctx.args.address, rate, cap, ctx.args.dry_run, sign)
    if not sign:
        return finish_unsigned(ctx, wallet, result)
    return finish_send(ctx, wallet, result)


def cmd_cpfp(ctx: Context) -> int:
    store = ctx.load()
    rate, cap = _rate(ctx), max_fee(ctx)
    wallet = ctx.open(store)
    result = spending.cpfp(wallet, ctx.args.txid, rate, cap, ctx.args.dry_run)
    return finish_send(ctx, wallet, result)


def _freeze(ctx: Context, frozen: bool) -> int:
    outpoint = spending.parse_outpoint(ctx.args.outpoint)
    wallet = ctx.open()
    scan = wallet.scan()
    coins = {outpoint_text(u): u for u in [*scan.utxos, *scan.frozen]}
    if outpoint not in coins:
        raise WalletError(f"coin {outpoint} is not an unspent coin of this wallet")
    was = outpoint in wallet.meta.frozen
    if not frozen and not was:
        raise WalletError(f"coin {outpoint} is not frozen")
    wallet.save_meta(wallet.meta.with_frozen(outpoint, frozen))
    amount = coins[outpoint].amount
    word = "frozen" if frozen else "unfrozen"
    ctx.emit(
        {"outpoint": outpoint, "amount": amount, "frozen": frozen},
        f"{outpoint} ({format_amount(amount)} TLY) {word}",
    )
    return 0


def cmd_freeze(ctx: Context) -> int:
    return _freeze(ctx, True)


def cmd_unfreeze(ctx: Context) -> int:
    return _freeze(ctx, False)


def cmd_label(ctx: Context) -> int:
    store = ctx.load()
    target = ctx.args.target.strip()
    lowered = target.lower()
    if len(lowered) == 64 and all(c in "0123456789abcdef" for c in lowered):
        target = lowered
    else:
        try:
            decode_address(target, get_params(store.network))
        except AddressError as err:
            raise WalletError(f"{target!r} is neither a txid nor an address here: {err}") from None
    wallet = ctx.open(store, node=False)
    wallet.save_meta(wallet.meta.with_label(target, ctx.args.text))
    ctx.emit(
        {"target": target, "label": ctx.args.text or None},
        f"{target}: {ctx.args.text}" if ctx.args.text else f"{target}: label removed",
    )
    return 0


def add_history_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--csv",
        action="store_true",
        help="comma-separated values for spreadsheets, amounts in TLY (default: a table)",
    )


CSV_COLUMNS = ("date", "txid", "height", "confirmations", "amount", "fee", "label")


def history_csv(ctx: Context) -> int:
    """``history --csv``: one row a transaction, newest first; amounts decimal TLY (signed),
    dates ISO 8601 UTC (empty while unconfirmed), the transaction's label."""
    wallet = ctx.open()
    scan = wallet.scan(with_utxos=False)
    labels = wallet.meta.label_map
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in wallet.history(scan):
        date = (
            ""
            if r["time"] is None
            else datetime.fromtimestamp(int(r["time"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        writer.writerow(
            [
                date,
                r["txid"],
                "" if r["height"] is None else r["height"],
                r["confirmations"],
                format_amount(r["net"], True),
                "" if r["fee"] is None else format_amount(r["fee"]),
                labels.get(r["txid"], ""),
            ]
        )
    ctx.stdout.write(buf.getvalue())
    return 0


COMMANDS: dict[str, Callable[[Context], int]] = {
    "sendall": cmd_sendall,
    "cpfp": cmd_cpfp,
    "freeze": cmd_freeze,
    "unfreeze": cmd_unfreeze,
    "label": cmd_label,
}
