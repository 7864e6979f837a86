"""Payment requests as URIs: ``tally:<address>?amount=<TLY>&label=...&message=...`` (SPEC 4).

The shape is BIP21's, with Tally's scheme: the address is the URI's path; ``amount`` is decimal
TLY (what ``parse_amount`` takes, written without trailing zeros); ``label`` (whom to pay) and
``message`` (what for) are UTF-8 text, percent-encoded (RFC 3986). As BIP21 says, a parameter
whose name starts with ``req-`` is one the payer must understand: an unknown one makes the whole
request unusable, while other unknown parameters are ignored. A parameter given twice is refused
(which value the payee meant is unknown).

``format_uri`` writes a request; ``parse_uri`` reads one, for a given network, refusing with a
message that says what is wrong: another scheme, an address that is mistyped or for another
network (the reason from ``consensus.decode_address``), a bad amount, bad percent-encoding. A URI
is at most ``MAX_URI_LENGTH`` characters, so what a QR code or a clipboard hands over is bounded.

Pure functions: showing the QR code (``wallet.qr``), paying and watching are the callers'.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from consensus import PAYMENT_URI_SCHEME, AddressError, NetworkParams, decode_address
from wallet.amounts import DECIMALS, AmountError, format_amount, parse_amount

SCHEME = PAYMENT_URI_SCHEME
MAX_URI_LENGTH = 2048
"""The longest payment URI accepted (BIP21 sets none; this bounds what a scan may hand over)."""
MAX_TEXT_LENGTH = 512
"""The longest label or message, in characters, once decoded."""
KNOWN = ("amount", "label", "message")


class PaymentURIError(ValueError):
    """Not a usable payment request; the message says why, for the person who has it."""


@dataclass(frozen=True)
class PaymentRequest:
    """What a payee asks for: where to pay and, optionally, how much and why."""

    address: str
    amount: int | None = None
    """Base units; ``None`` lets the payer choose."""
    label: str | None = None
    message: str | None = None


def format_tly(units: int) -> str:
    """``units`` as decimal TLY without trailing zeros (``1.25``, ``0.00000001``, ``3``)."""
    text = format_amount(units)
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_uri(request: PaymentRequest) -> str:
    """The URI for ``request`` (parameters in the order amount, label, message)."""
    query: list[str] = []
    if request.amount is not None:
        if request.amount <= 0:
            raise PaymentURIError("a requested amount must be more than zero")
        query.append(f"amount={format_tly(request.amount)}")
    for name, text in (("label", request.label), ("message", request.message)):
        if text:
            if len(text) > MAX_TEXT_LENGTH:
                raise PaymentURIError(f"the {name} is longer than {MAX_TEXT_LENGTH} characters")
            query.append(f"{name}={quote(text, safe='')}")
    uri = f"{SCHEME}:{request.address}" + (f"?{'&'.join(query)}" if query else "")
    if len(uri) > MAX_URI_LENGTH:
        raise PaymentURIError(f"the payment URI would be longer than {MAX_URI_LENGTH} characters")
    return uri


def looks_like_uri(text: str) -> bool:
    """Whether ``text`` is meant as a payment URI (starts with the scheme, in any case)."""
    return text[: len(SCHEME) + 1].lower() == f"{SCHEME}:"


def _decode_text(name: str, value: str) -> str:
    try:
        text = unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise PaymentURIError(f"the {name} is not UTF-8 text once decoded") from None
    if len(text) > MAX_TEXT_LENGTH:
        raise PaymentURIError(f"the {name} is longer than {MAX_TEXT_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise PaymentURIError(f"the {name} holds control characters")
    return text


def parse_uri(text: str, params: NetworkParams) -> PaymentRequest:
    """The request in ``text`` for the network ``params``; ``PaymentURIError`` says what's wrong."""
    if len(text) > MAX_URI_LENGTH:
        raise PaymentURIError(f"a payment URI is at most {MAX_URI_LENGTH} characters")
    uri = text.strip()
    if not looks_like_uri(uri):
        raise PaymentURIError(f"not a payment URI: it must start with '{SCHEME}:'")
    rest = uri[len(SCHEME) + 1 :]
    address, _, query = rest.partition("?")
    if address.startswith("//"):
        address = address[2:]  # some scanners add an authority marker
    try:
        decode_address(address, params)
    except AddressError as err:
        raise PaymentURIError(
            f"the address {address!r} in the URI is unusable ({err.reason}): {err}"
        ) from None
    values: dict[str, str] = {}
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise PaymentURIError(f"parameter {name!r} has no value")
        name = name.lower()
        if name in values:
            raise PaymentURIError(f"parameter {name!r} is given twice")
        if name.startswith("req-"):
            raise PaymentURIError(f"the request needs {name[4:]!r}, which this wallet doesn't know")
        values[name] = value
    amount: int | None = None
    if "amount" in values:
        raw = values["amount"]
        if not raw or raw.startswith(("+", "-")) or "e" in raw.lower():
            raise PaymentURIError(f"amount {raw!r} is not a decimal number of TLY")
        try:
            amount = parse_amount(raw)
        except AmountError as err:
            raise PaymentURIError(str(err)) from None
    label = _decode_text("label", values["label"]) if "label" in values else None
    message = _decode_text("message", values["message"]) if "message" in values else None
    return PaymentRequest(address, amount, label or None, message or None)


__all__ = [
    "DECIMALS",
    "KNOWN",
    "MAX_TEXT_LENGTH",
    "MAX_URI_LENGTH",
    "SCHEME",
    "PaymentRequest",
    "PaymentURIError",
    "format_tly",
    "format_uri",
    "looks_like_uri",
    "parse_uri",
]
