"""Schemathesis hooks for the node's OpenAPI document: generators for its custom formats.

Job: the document names an address or account key parameter's custom ``format``
(``node.api.openapi.ADDRESS_FORMAT``, ``XPUB_FORMAT``): a Base58Check text whose checksum holds,
of the node's network, which no pattern can say. Without a generator Schemathesis draws random
Base58 text, every one a 400 ``bad-address``, and warns of a schema that does not match the
API. Here half the drawn values are real regtest addresses (keys 0 to 3 of ``tests.helpers``)
or a real account key, half random Base58 text within the pattern and lengths (a 400).

Used by ``tests/functional/test_openapi.py`` (imported) and by ``schemathesis run`` from the
command line (``SCHEMATHESIS_HOOKS=tests.functional.schemathesis_hooks``, docs/API.md). Regtest
only: a node of another network answers the real values with 400 as well.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from client import models
from consensus import ExtendedPublicKey, encode_address, encode_xpub, get_params
from node.api.openapi import ADDRESS_FORMAT, ADDRESS_LENGTHS, XPUB_FORMAT, XPUB_LENGTHS
from tests.helpers import key

REGTEST = get_params("regtest")
ADDRESSES = [encode_address(key(i).pubkey_hash, REGTEST) for i in range(4)]
XPUB = encode_xpub(
    ExtendedPublicKey(3, bytes(4), 0x80000000, bytes(range(32)), key(1).pubkey), REGTEST
)
"""A well-formed regtest account key (nothing uses its addresses)."""
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
assert models.BASE58_PATTERN == "^[1-9A-HJ-NP-Za-km-z]+$"  # the alphabet above


def base58(lengths: tuple[int, int]) -> st.SearchStrategy[str]:
    return st.text(alphabet=BASE58, min_size=lengths[0], max_size=lengths[1])


schemathesis.openapi.format(
    ADDRESS_FORMAT, st.one_of(st.sampled_from(ADDRESSES), base58(ADDRESS_LENGTHS))
)
schemathesis.openapi.format(XPUB_FORMAT, st.one_of(st.just(XPUB), base58(XPUB_LENGTHS)))
