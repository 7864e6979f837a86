"""QR codes of payment URIs decode back to exactly the URI with an independent decoder.

``zbarimg`` (Debian's zbar-tools, which ``scripts/test.sh`` installs as root when missing) reads
each rendering: the PNG file, the SVG file rasterised by ``rsvg-convert`` (librsvg), and the
terminal text turned back into pixels module by module.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from wallet import qr
from wallet.uri import PaymentRequest, format_uri

URIS = [
    format_uri(PaymentRequest("mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef", 125_000_000, "apples")),
    format_uri(
        PaymentRequest(
            "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef",
            1,
            "Café & Co",
            "Order #42: 2 \u00d7 tea, paid at the market stall",
        )
    ),
    "tally:mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef",
]


def zbarimg(image: Path) -> str:
    exe = shutil.which("zbarimg")
    assert exe, "zbarimg (Debian's zbar-tools) is needed: scripts/test.sh installs it as root"
    done = subprocess.run(
        [exe, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode("utf-8").removesuffix("\n")


def write_png(rows: list[list[bool]], path: Path, scale: int = 8) -> None:
    """A greyscale PNG of ``rows`` (True = dark), written with zlib alone."""
    height, width = len(rows) * scale, len(rows[0]) * scale
    raw = bytearray()
    for row in rows:
        line = b"\x00" + b"".join((b"\x00" if dark else b"\xff") * scale for dark in row)
        raw += line * scale

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def terminal_to_rows(text: str) -> list[list[bool]]:
    """Undo ``terminal_text``: two module rows per line, blocks are light modules."""
    light = {
        "\u2588": (True, True),
        "\u2580": (True, False),
        "\u2584": (False, True),
        " ": (False, False),
    }
    rows: list[list[bool]] = []
    for line in text.splitlines():
        pairs = [light[c] for c in line]
        rows.append([not up for up, _ in pairs])
        rows.append([not down for _, down in pairs])
    return rows


@pytest.mark.parametrize("uri", URIS)
def test_png_decodes_to_the_uri(tmp_path: Path, uri: str) -> None:
    path = tmp_path / "request.png"
    qr.write_qr(uri, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert zbarimg(path) == uri


@pytest.mark.parametrize("uri", URIS)
def test_svg_decodes_to_the_uri(tmp_path: Path, uri: str) -> None:
    path = tmp_path / "request.svg"
    qr.write_qr(uri, path)
    assert b"<svg" in path.read_bytes()
    rsvg = shutil.which("rsvg-convert")
    assert rsvg, "rsvg-convert (Debian's librsvg2-bin) is needed: scripts/test.sh installs it"
    png = tmp_path / "request-svg.png"
    subprocess.run(
        [rsvg, "--background-color=white", "-o", str(png), str(path)], check=True, timeout=60
    )
    assert zbarimg(png) == uri


@pytest.mark.parametrize("uri", URIS)
def test_terminal_text_decodes_to_the_uri(tmp_path: Path, uri: str) -> None:
    text = qr.terminal_text(uri)
    assert "\x1b" not in text  # no colour codes: it pastes and pipes as it is
    rows = terminal_to_rows(text)
    # The quiet zone: the terminal text draws it as light modules (blocks) all round.
    assert not any(rows[0]) and not any(r[0] for r in rows)
    path = tmp_path / "terminal.png"
    write_png(rows, path)
    assert zbarimg(path) == uri


def test_other_file_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(qr.QRError, match=r"\.png or \.svg"):
        qr.write_qr(URIS[0], tmp_path / "request.jpg")
    assert not (tmp_path / "request.jpg").exists()


def test_an_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(qr.QRError, match="cannot write"):
        qr.write_qr(URIS[0], tmp_path / "missing" / "request.png")
