"""QR codes of payment URIs: in the terminal, and as PNG or SVG files (SPEC 4, ``request --qr``).

The code is made by ``segno`` (ISO/IEC 18004, byte mode, error correction at least M, the
smallest version that holds the URI, never a Micro QR code, which many phone scanners do not
read). ``terminal_text`` draws it with Unicode half blocks, two module rows per line, with the
*light* modules drawn as blocks: on the usual light-on-dark terminal the code then appears dark
on light, as scanners expect (the layout ``qrencode -t UTF8`` uses), with a quiet zone of
``TERMINAL_BORDER`` modules. ``write_qr`` writes PNG or SVG by the file's suffix.

What the code encodes is the caller's (``wallet.uri``); nothing here reads the network.
"""

from __future__ import annotations

from pathlib import Path

import segno

TERMINAL_BORDER = 2
"""Quiet-zone modules around the code in the terminal (files get the standard 4)."""
FILE_SCALE = 8
"""Pixels per module in a PNG, SVG units per module in an SVG."""
SUFFIXES = (".png", ".svg")

_GLYPHS = {  # (upper light, lower light) -> character
    (True, True): "\u2588",
    (True, False): "\u2580",
    (False, True): "\u2584",
    (False, False): " ",
}


class QRError(ValueError):
    """The QR code cannot be made or written; the message says why."""


def make_qr(text: str) -> segno.QRCode:
    """The QR code of ``text`` (error correction M or better, never Micro QR)."""
    try:
        return segno.make(text, error="m", micro=False, boost_error=True)
    except (ValueError, segno.DataOverflowError) as err:
        raise QRError(f"cannot make a QR code of this text: {err}") from None


def modules(text: str, border: int = TERMINAL_BORDER) -> list[list[bool]]:
    """The code's modules, ``True`` for dark, with ``border`` light modules around."""
    return [[bool(m) for m in row] for row in make_qr(text).matrix_iter(scale=1, border=border)]


def terminal_text(text: str) -> str:
    """The QR code of ``text`` as lines of half-block characters (no colour codes)."""
    rows = modules(text)
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))  # one more light row: part of the quiet zone
    lines = []
    for upper, lower in zip(rows[0::2], rows[1::2], strict=True):
        lines.append("".join(_GLYPHS[(not u, not d)] for u, d in zip(upper, lower, strict=True)))
    return "\n".join(lines) + "\n"


def write_qr(text: str, path: Path) -> None:
    """Write the QR code of ``text`` to ``path``, a ``.png`` or ``.svg`` file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise QRError(f"a QR code file must end in .png or .svg, not {path.name!r}")
    try:
        make_qr(text).save(str(path), kind=suffix[1:], scale=FILE_SCALE, border=4)
    except OSError as err:
        raise QRError(f"cannot write {path}: {err.strerror}") from None
