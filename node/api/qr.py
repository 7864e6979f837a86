"""QR codes of payment URIs for the explorer's address page (SPEC 5), rendered by the node.

``address_qr_svg(address)`` is an SVG of the QR code of ``tally:<address>`` (error correction M
or better, never Micro QR, a quiet zone of 4 modules), drawn by ``segno``: the page loads it from
the node itself, so nothing comes from outside. Rendering costs ~2 ms, so it runs off the event
loop (the route's business) and the last ``CACHE_SIZE`` codes are kept.

Pure: the address is checked by the caller (``decode_address``), the URI shape is
``consensus.payment_uri``'s.
"""

from __future__ import annotations

import io
from functools import lru_cache

import segno

from consensus import payment_uri

CACHE_SIZE = 256
SCALE = 4
"""SVG units per module."""


@lru_cache(maxsize=CACHE_SIZE)
def address_qr_svg(address: str) -> bytes:
    """The SVG of the QR code of ``address``'s payment URI."""
    code = segno.make(payment_uri(address), error="m", micro=False, boost_error=True)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=SCALE, border=4, xmldecl=False, title=payment_uri(address))
    return out.getvalue()
