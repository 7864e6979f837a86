"""Bitcoin's merkle tree, mutation detection and inclusion proofs against real mainnet blocks.

The txids come from the vector files AND, for the blocks shipped as raw bytes, from a small
test-only parser of Bitcoin's wire format below (txid = SHA256d of the non-witness
serialization), so the roots do not rest on the listed txids alone. Proofs are checked against
Bitcoin Core ``gettxoutproof`` output: its partial merkle tree is decoded here and must hold
exactly the sibling hashes our ``merkle_branch`` builds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consensus import (
    BlockHeader,
    merkle_branch,
    merkle_root,
    merkle_root_from_branch,
    sha256d,
    verify_merkle_proof,
)

# --- a minimal reader of Bitcoin's block wire format (test-only) -------------------------------


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("read past the end")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def varint(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        value = int.from_bytes(self.take(size), "little")
        if value < {2: 0xFD, 4: 0x10000, 8: 0x100000000}[size]:
            raise ValueError("non-canonical varint")
        return value

    def var_bytes(self) -> bytes:
        return self.take(self.varint())


def read_tx(r: Reader) -> tuple[bytes, bool]:
    """One transaction: ``(txid in internal order, has_witness)``."""
    start = r.pos
    version = r.take(4)
    segwit = r.data[r.pos : r.pos + 2] == b"\x00\x01"
    if segwit:
        r.take(2)
    body_start = r.pos
    n_in = r.varint()
    for _ in range(n_in):
        r.take(36)  # prevout
        r.var_bytes()  # scriptSig
        r.take(4)  # sequence
    for _ in range(r.varint()):
        r.take(8)  # amount
        r.var_bytes()  # scriptPubKey
    body_end = r.pos
    if segwit:
        for _ in range(n_in):
            for _ in range(r.varint()):
                r.var_bytes()
    locktime = r.take(4)
    if segwit:
        stripped = version + r.data[body_start:body_end] + locktime
    else:
        stripped = r.data[start : r.pos]
    return sha256d(stripped), segwit


@dataclass(frozen=True)
class RawBlock:
    header: bytes
    txids: list[bytes]
    segwit_count: int


def parse_block(data: bytes) -> RawBlock:
    r = Reader(data)
    header = r.take(80)
    txs = [read_tx(r) for _ in range(r.varint())]
    if r.pos != len(data):
        raise ValueError("trailing bytes after the last transaction")
    return RawBlock(header, [t for t, _ in txs], sum(w for _, w in txs))


def internal(display_hex: str) -> bytes:
    return bytes.fromhex(display_hex)[::-1]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_blocks(vectors: Path) -> list[dict[str, Any]]:
    """Every block with a txid list: block 100000, 830000 + 831328..831335, 10 small blocks."""
    base = vectors / "blocks"
    b100k = json.loads((base / "mainnet_block_100000.json").read_text())
    recent = json.loads((base / "mainnet_830000_831328-831335_txids.json").read_text())["blocks"]
    small = json.loads((base / "small_real_blocks.json").read_text())["blocks"]
    assert len(recent) == 9 and len(small) == 10
    return [b100k, *recent, *small]


@pytest.fixture(scope="module")
def recent_txids(vectors: Path) -> dict[int, list[bytes]]:
    path = vectors / "blocks" / "mainnet_830000_831328-831335_txids.json"
    blocks = json.loads(path.read_text())["blocks"]
    return {int(b["height"]): [internal(t) for t in b["txids"]] for b in blocks}


# --- roots --------------------------------------------------------------------------------------


def test_listed_txids_give_header_root(all_blocks: list[dict[str, Any]]) -> None:
    assert len(all_blocks) == 20
    for block in all_blocks:
        raw = bytes.fromhex(block["header_hex"])
        header = BlockHeader.deserialize(raw)
        assert header.hash_hex() == block["hash"]
        assert header.merkle_root == raw[36:68] == internal(block["merkle_root"])
        txids = [internal(t) for t in block["txids"]]
        assert len(txids) == int(block["tx_count"])
        assert merkle_root(txids) == (header.merkle_root, False), block["hash"]


def _check_raw_block(data: bytes, listed: dict[str, Any]) -> RawBlock:
    parsed = parse_block(data)
    assert parsed.header.hex() == listed["header_hex"]
    header = BlockHeader.deserialize(parsed.header)
    assert header.hash_hex() == listed["hash"]
    assert [t[::-1].hex() for t in parsed.txids] == listed["txids"]
    assert merkle_root(parsed.txids) == (header.merkle_root, False)
    return parsed


def test_txids_from_raw_small_blocks_and_100000(vectors: Path) -> None:
    base = vectors / "blocks"
    small = json.loads((base / "small_real_blocks.json").read_text())["blocks"]
    b100k = json.loads((base / "mainnet_block_100000.json").read_text())
    segwit = 0
    for block in [*small, b100k]:
        segwit += _check_raw_block(bytes.fromhex(block["block_hex"]), block).segwit_count
    assert segwit > 0  # block 542213 carries witnesses, so the stripping was exercised


def test_txids_from_raw_block_830000(vectors: Path) -> None:
    data = (vectors / "blocks" / "mainnet_block_830000.bin").read_bytes()
    blocks = json.loads(
        (vectors / "blocks" / "mainnet_830000_831328-831335_txids.json").read_text()
    )["blocks"]
    (listed,) = [b for b in blocks if int(b["height"]) == 830000]
    parsed = _check_raw_block(data, listed)
    assert len(parsed.txids) == 1851
    assert parsed.segwit_count > 1000


def test_wire_reader_rejects_truncation_and_trailing_bytes(vectors: Path) -> None:
    b100k = json.loads((vectors / "blocks" / "mainnet_block_100000.json").read_text())
    data = bytes.fromhex(b100k["block_hex"])
    with pytest.raises(ValueError):
        parse_block(data[:-1])
    with pytest.raises(ValueError):
        parse_block(data + b"\x00")


# --- CVE-2012-2459 -----------------------------------------------------------------------------


def test_duplicated_last_txid_same_root_but_mutated(
    all_blocks: list[dict[str, Any]], recent_txids: dict[int, list[bytes]]
) -> None:
    odd_lists = [recent_txids[830000]] + [
        [internal(t) for t in b["txids"]] for b in all_blocks if len(b["txids"]) in (7, 9, 213)
    ]
    assert len(recent_txids[830000]) % 2 == 1
    assert len(odd_lists) >= 3
    for txids in odd_lists:
        root, mutated = merkle_root(txids)
        assert not mutated
        assert merkle_root([*txids, txids[-1]]) == (root, True)


def test_duplicated_pair_in_the_middle_is_mutated(recent_txids: dict[int, list[bytes]]) -> None:
    for height, txids in recent_txids.items():
        root, mutated = merkle_root(txids)
        assert not mutated
        # Repeat the pair at positions (4k, 4k+1): both copies hash to the same parent, and the
        # two equal parents sit side by side one level up.
        k = 4 * (len(txids) // 8)
        forged = txids[: k + 2] + txids[k : k + 2] + txids[k + 2 :]
        forged_root, forged_mutated = merkle_root(forged)
        assert forged_mutated, height
        # A single duplicated txid side by side at the bottom is flagged too.
        assert merkle_root([*txids[:k], txids[k], txids[k], *txids[k + 1 :]])[1], height
        assert forged_root != root


# --- proofs -------------------------------------------------------------------------------------


def decode_partial_merkle_tree(proof: bytes) -> tuple[bytes, int, list[bytes], list[int], bytes]:
    """Bitcoin Core's CMerkleBlock: ``(header, total, hashes, matched indexes, root)``."""
    r = Reader(proof)
    header = r.take(80)
    total = r.u32()
    hashes = [r.take(32) for _ in range(r.varint())]
    flag_bytes = r.var_bytes()
    assert r.pos == len(proof)
    bits = [(flag_bytes[i // 8] >> (i % 8)) & 1 for i in range(len(flag_bytes) * 8)]
    height = 0
    while (total + (1 << height) - 1) >> height > 1:
        height += 1
    used = {"bits": 0, "hashes": 0}
    matched: list[int] = []

    def width(h: int) -> int:
        return (total + (1 << h) - 1) >> h

    def walk(h: int, pos: int) -> bytes:
        flag = bits[used["bits"]]
        used["bits"] += 1
        if h == 0 or not flag:
            node = hashes[used["hashes"]]
            used["hashes"] += 1
            if h == 0 and flag:
                matched.append(pos)
            return node
        left = walk(h - 1, pos * 2)
        right = walk(h - 1, pos * 2 + 1) if pos * 2 + 1 < width(h - 1) else left
        assert right != left or pos * 2 + 1 >= width(h - 1)
        return sha256d(left + right)

    root = walk(height, 0)
    assert used["hashes"] == len(hashes)
    return header, total, hashes, matched, root


def test_txoutproofs(vectors: Path, recent_txids: dict[int, list[bytes]]) -> None:
    proofs = json.loads((vectors / "blocks" / "mainnet_txoutproofs.json").read_text())["proofs"]
    assert len(proofs) == 11
    for case in proofs:
        txids = recent_txids[int(case["block_height"])]
        header_raw, total, proof_hashes, matched, pmt_root = decode_partial_merkle_tree(
            bytes.fromhex(case["proof_hex"])
        )
        header = BlockHeader.deserialize(header_raw)
        assert header.hash_hex() == case["block_hash"]
        assert total == len(txids) == int(case["total_transactions"])
        assert pmt_root == header.merkle_root
        assert matched == list(case["tx_indexes"])
        root = header.merkle_root
        for index, listed in zip(case["tx_indexes"], case["txids"], strict=True):
            leaf = txids[index]
            assert leaf == internal(listed)
            branch = merkle_branch(txids, index)
            assert merkle_root_from_branch(leaf, index, branch) == root
            assert verify_merkle_proof(leaf, index, branch, root)
            for wrong in {(index + 1) % total, index ^ 1, index ^ 2} - {index}:
                if wrong < total:
                    assert not verify_merkle_proof(leaf, wrong, branch, root), (index, wrong)
            assert not verify_merkle_proof(txids[(index + 1) % total], index, branch, root)
            for level, sibling in enumerate(branch):
                flipped = bytearray(sibling)
                flipped[level % 32] ^= 1 << (level % 8)
                bad = [*branch[:level], bytes(flipped), *branch[level + 1 :]]
                assert not verify_merkle_proof(leaf, index, bad, root), (index, level)
            assert not verify_merkle_proof(leaf, index, branch[:-1], root)
            if len(case["tx_indexes"]) == 1:
                # Core's proof holds the leaf and exactly our siblings (a level where the node
                # is paired with itself has no sibling in Core's tree).
                node, expected = leaf, {leaf}
                for level, sibling in enumerate(branch):
                    if sibling != node:
                        expected.add(sibling)
                    bit = (index >> level) & 1
                    node = sha256d(sibling + node) if bit else sha256d(node + sibling)
                assert node == root
                assert set(proof_hashes) == expected and len(proof_hashes) == len(expected)


def test_branches_of_a_large_block(recent_txids: dict[int, list[bytes]]) -> None:
    large = {h: t for h, t in recent_txids.items() if len(t) >= 3000}
    assert len(large) >= 4
    height = max(large, key=lambda h: len(large[h]))
    txids = large[height]
    root, _ = merkle_root(txids)
    checked = 0
    for index in [*range(0, len(txids), 97), len(txids) - 1]:
        branch = merkle_branch(txids, index)
        assert len(branch) == (len(txids) - 1).bit_length()
        assert verify_merkle_proof(txids[index], index, branch, root), index
        wrong = (index + 1) % len(txids)
        assert not verify_merkle_proof(txids[index], wrong, branch, root), index
        checked += 1
    assert checked >= 30


def test_merkle_branch_rejects_bad_index(recent_txids: dict[int, list[bytes]]) -> None:
    txids = recent_txids[830000]
    for index in (-1, len(txids)):
        with pytest.raises(IndexError):
            merkle_branch(txids, index)
    branch = merkle_branch(txids, 0)
    root, _ = merkle_root(txids)
    assert not verify_merkle_proof(txids[0], -1, branch, root)
    assert not verify_merkle_proof(txids[0], 1 << len(branch), branch, root)
