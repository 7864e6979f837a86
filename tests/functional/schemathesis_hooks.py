"""Schemathesis hooks for the node's OpenAPI document: positive cases the node's real rules accept.

Job: some of what the node checks is no schema's to say. A positive case (one the document
admits) that breaks such a rule is a documented 400 or 404, and an operation none of whose
positive cases is served gets Schemathesis's "schema validation mismatch" warning. So:

- the custom ``format``s (``node.api.openapi.ADDRESS_FORMAT``, ``XPUB_FORMAT``: a Base58Check
  text whose checksum holds, of the node's network) get generators: half the drawn values are
  real regtest addresses (keys 0 to 3 of ``tests.helpers``) or a real account key, half random
  Base58 text within the pattern and lengths (a 400 ``bad-address``/``bad-xpub``);
- ``map_case`` makes a positive case's values real where the node needs state to accept them:
  an ``after_txid`` cursor becomes a txid of the list it pages (or is left out when the list is
  empty: an unknown cursor is a 404), a ``POST /tx`` JSON body (``{"raw": hex}``) a new
  transaction spending a mature coin of key 0, a ``POST /block`` one a new coinbase-only block
  on the node's tip. (A ``application/msgpack`` body is left as drawn: Schemathesis counts a
  case whose body a hook set to bytes as negative, as it cannot check bytes against a schema.)
  It does so for every positive case of the coverage phase (which draws no ``format`` and
  boundary values only) and, in the other phases, for half of them (chosen by a CRC of the
  drawn value, so Hypothesis's replay and shrinking see one function), so the node's refusals
  of schema-valid garbage stay exercised. Negative cases are left as drawn.

Invariants: a value is made real only through the node's public API (read at the base URL the
run targets: ``case.operation.schema.get_base_url()``, which ``--url`` sets on the command
line), and what it becomes still matches the document (Schemathesis revalidates the case and
would count it negative otherwise). A coin the hook spent is not spent again in this process
(a case may be drawn and not sent); when no mature coin of key 0 is left, or the node cannot be
read, the drawn value is kept (a 400, as without the hook).

Used by ``tests/functional/test_openapi.py`` (imported; it applies ``map_case`` to the coverage
cases it builds itself) and by ``schemathesis run`` from the command line
(``SCHEMATHESIS_HOOKS=tests.functional.schemathesis_hooks``, docs/API.md) against a regtest node
whose chain pays key 0 (``tally-node generate 105 --to`` its address ``MINER_ADDRESS``). Regtest
only: a node of another network refuses the real values as well.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.meta import TestPhase

from client import Client, ClientError, models
from consensus import (
    ExtendedPublicKey,
    OutPoint,
    TxOut,
    encode_address,
    encode_xpub,
    get_params,
)
from node.api.openapi import ADDRESS_FORMAT, ADDRESS_LENGTHS, JSON, XPUB_FORMAT, XPUB_LENGTHS
from tests.helpers import key, mine_block, spend

REGTEST = get_params("regtest")
ADDRESSES = [encode_address(key(i).pubkey_hash, REGTEST) for i in range(4)]
MINER_ADDRESS = ADDRESSES[0]
"""Key 0's address: the chain the fuzzed node was given pays it (its coins fund the spends)."""
XPUB = encode_xpub(
    ExtendedPublicKey(3, bytes(4), 0x80000000, bytes(range(32)), key(1).pubkey), REGTEST
)
"""A well-formed regtest account key (nothing uses its addresses)."""
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
assert models.BASE58_PATTERN == "^[1-9A-HJ-NP-Za-km-z]+$"  # the alphabet above
FEE = 10_000
"""What each spend pays: above the minimum relay fee of a one-input, one-output spend."""
BLOCK_PAYEE = key(2)
"""Who the hook's blocks pay (not key 0: its coins stay those of the set-up chain)."""


def base58(lengths: tuple[int, int]) -> st.SearchStrategy[str]:
    return st.text(alphabet=BASE58, min_size=lengths[0], max_size=lengths[1])


schemathesis.openapi.format(
    ADDRESS_FORMAT, st.one_of(st.sampled_from(ADDRESSES), base58(ADDRESS_LENGTHS))
)
schemathesis.openapi.format(XPUB_FORMAT, st.one_of(st.just(XPUB), base58(XPUB_LENGTHS)))


# --- the node's state, read over its API ---------------------------------------------------------


@dataclass
class Node:
    """The fuzzed node, as this process knows it: its client and the coins already spent."""

    client: Client
    spent: set[tuple[str, int]] = field(default_factory=set)


NODES: dict[str, Node] = {}


def node_of(case: Any) -> Node:
    url = case.operation.schema.get_base_url()
    if url not in NODES:
        NODES[url] = Node(Client(url, timeout=30))
    return NODES[url]


def new_transaction(node: Node) -> bytes | None:
    """A spend of the newest mature coin of key 0 not spent yet, back to key 0 less ``FEE``."""
    utxos = node.client.address_utxos(MINER_ADDRESS)
    spendable = [
        u
        for u in utxos
        if u.confirmations >= (REGTEST.coinbase_maturity if u.coinbase else 1)
        and u.amount > FEE
        and (u.txid, u.index) not in node.spent
    ]
    if not spendable:
        return None
    coin = min(spendable, key=lambda u: u.confirmations)
    node.spent.add((coin.txid, coin.index))
    owner = key(0)
    tx = spend(
        [
            (
                OutPoint(bytes.fromhex(coin.txid)[::-1], coin.index),
                TxOut(coin.amount, owner.pubkey_hash),
                owner,
            )
        ],
        [TxOut(coin.amount - FEE, owner.pubkey_hash)],
    )
    return tx.serialize()


def new_block(node: Node) -> bytes:
    """A coinbase-only block on the node's tip (instant proof of work on regtest)."""
    info = node.client.info()
    tip = node.client.block(info.best_hash)
    block = mine_block(
        bytes.fromhex(info.best_hash)[::-1],
        info.height + 1,
        [],
        max(tip.time + 1, int(time.time())),
        BLOCK_PAYEE.pubkey_hash,
    )
    return block.serialize()


def real_cursor(node: Node, path: str, drawn: str) -> str | None:
    """A txid of the first page at ``path`` (picked by ``drawn``), ``None`` if it is empty."""
    page = node.client.get_json(path.removeprefix(models.API))
    txids = [item if isinstance(item, str) else item["txid"] for item in page]
    return txids[zlib.crc32(drawn.encode()) % len(txids)] if txids else None


# --- the hook ------------------------------------------------------------------------------------

SUBMIT = {f"{models.API}/tx": new_transaction, f"{models.API}/block": new_block}


def chosen(case: Any, drawn: Any) -> bool:
    """Every positive coverage case; half the others, by a CRC of the drawn value."""
    if case.meta.phase.name is TestPhase.COVERAGE:
        return True
    return zlib.crc32(repr(drawn).encode()) % 2 == 0


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """A positive case's cursor, transaction or block made real (see the module docstring)."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    path = case.operation.path
    try:
        submit = SUBMIT.get(path) if case.method.upper() == "POST" else None
        if submit is not None and case.media_type == JSON and chosen(case, case.body):
            raw = submit(node_of(case))
            if raw is not None:
                case.body = {"raw": raw.hex()}
        drawn = (case.query or {}).get("after_txid")
        if isinstance(drawn, str) and path.startswith(models.API) and chosen(case, drawn):
            cursor = real_cursor(node_of(case), case.formatted_path, drawn)
            query = {k: v for k, v in case.query.items() if k != "after_txid"}
            case.query = query if cursor is None else {**query, "after_txid": cursor}
    except ClientError:  # the list or the chain cannot be read (a 400 address): keep the draw
        pass
    return case
