"""Real Bitcoin mainnet headers (third-party data in ``vectors/headers``) through the library.

Every header is parsed, re-serialized, linked by ``prev_hash`` and checked for proof of work;
block hashes are compared with the hashes the sources list; summed ``block_work`` is compared with
the chainwork the ckb data set records; and the ``bits`` of every header are re-derived with
``required_bits`` from the chain's own times (the retarget rule, on real history).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from consensus import (
    BlockHeader,
    ValidationError,
    bits_to_target,
    block_work,
    check_proof_of_work,
    get_params,
    required_bits,
    sha256d,
)

MAIN = get_params("main")
GENESIS_HASH = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
BLOCK_1_HASH = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"


@dataclass(frozen=True)
class Row:
    height: int
    raw: bytes
    header: BlockHeader
    listed_hash: str | None


def _read_rows(path: Path) -> list[Row]:
    """``height header_hex hash`` lines (``#`` comments skipped)."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        height, header_hex, block_hash = line.split()
        raw = bytes.fromhex(header_hex)
        rows.append(Row(int(height), raw, BlockHeader.deserialize(raw), block_hash))
    return rows


@pytest.fixture(scope="module")
def early(vectors: Path) -> list[Row]:
    """Mainnet heights 0..9999 (line N after the comment line = height N)."""
    lines = (vectors / "headers" / "mainnet_0_9999_headers.txt").read_text().splitlines()
    assert lines[0].startswith("#")
    rows = []
    for height, line in enumerate(lines[1:]):
        raw = bytes.fromhex(line.strip())
        rows.append(Row(height, raw, BlockHeader.deserialize(raw), None))
    return rows


@pytest.fixture(scope="module")
def recent(vectors: Path) -> list[Row]:
    """Mainnet heights 822528..830592."""
    return _read_rows(vectors / "headers" / "mainnet_822528_830592_continuous.txt")


@pytest.fixture(scope="module")
def chainwork(vectors: Path) -> dict[int, int]:
    out = {}
    for line in (vectors / "headers" / "mainnet_chainwork_raw.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        height, raw = line.split()
        out[int(height)] = int(raw, 16)  # big-endian, see SOURCES.md
    return out


def _check_chain(rows: list[Row]) -> None:
    """Round trip, linkage, proof of work (both ways) and listed hashes for consecutive rows."""
    for i, row in enumerate(rows):
        h = row.header
        assert h.serialize() == row.raw, row.height
        block_hash = h.hash()
        assert block_hash == sha256d(row.raw)
        assert h.hash_hex() == block_hash[::-1].hex()
        if row.listed_hash is not None:
            assert h.hash_hex() == row.listed_hash, row.height
        if i:
            assert rows[i - 1].height + 1 == row.height
            assert h.prev_hash == rows[i - 1].header.hash(), row.height
        assert int.from_bytes(block_hash, "little") <= bits_to_target(h.bits), row.height
        assert check_proof_of_work(block_hash, h.bits, MAIN.pow_limit), row.height


def test_genesis_json(vectors: Path) -> None:
    g = json.loads((vectors / "headers" / "genesis.json").read_text())
    raw = bytes.fromhex(g["header_hex"])
    header = BlockHeader.deserialize(raw)
    assert header.serialize() == raw
    assert header.hash_hex() == GENESIS_HASH == g["block_hash"]
    assert header.hash().hex() == g["sha256d_raw_digest_hex"]
    assert header.version == int(g["version"])
    assert header.prev_hash == bytes.fromhex(g["prev_hash"])[::-1]
    assert header.merkle_root == bytes.fromhex(g["merkle_root"])[::-1]
    assert header.time == int(g["time"])
    assert header.bits == int(g["bits"], 16)
    assert header.nonce == int(g["nonce"])
    assert bits_to_target(header.bits) == int(g["target_hex"], 16)
    assert block_work(header.bits) == int(g["chainwork_hex"], 16)
    assert check_proof_of_work(header.hash(), header.bits, MAIN.pow_limit)
    # The full genesis block starts with the same 80 bytes.
    assert bytes.fromhex(g["block_hex"])[:80] == raw


def test_mainnet_0_9999(early: list[Row]) -> None:
    assert len(early) == 10_000
    assert early[0].header.hash_hex() == GENESIS_HASH
    assert early[0].header.prev_hash == b"\x00" * 32
    assert early[1].header.hash_hex() == BLOCK_1_HASH
    _check_chain(early)


def test_mainnet_822528_830592(recent: list[Row]) -> None:
    assert len(recent) == 8065
    assert (recent[0].height, recent[-1].height) == (822528, 830592)
    _check_chain(recent)


def test_retarget_boundary_headers(vectors: Path) -> None:
    """The headers on both sides of every retarget: listed hash, PoW, and 2016k links to 2016k-1."""
    rows = _read_rows(vectors / "headers" / "mainnet_retarget_boundary_headers.txt")
    assert len(rows) == 827
    by_height = {r.height: r for r in rows}
    for row in rows:
        assert row.header.serialize() == row.raw
        assert row.header.hash_hex() == row.listed_hash, row.height
        assert check_proof_of_work(row.header.hash(), row.header.bits, MAIN.pow_limit)
        if row.height and row.height % 2016 == 0:
            assert row.header.prev_hash == by_height[row.height - 1].header.hash(), row.height


def test_electrum_checkpoints_agree_with_headers(vectors: Path) -> None:
    """Electrum entry i: hash of block 2016(i+1)-1 and the target of the period after it."""
    checkpoints = json.loads(
        (vectors / "headers" / "electrum_mainnet_checkpoints.json").read_text()
    )
    rows = _read_rows(vectors / "headers" / "mainnet_retarget_boundary_headers.txt")
    by_height = {r.height: r for r in rows}
    checked = 0
    for i, (block_hash, target) in enumerate(checkpoints):
        last = 2016 * (i + 1) - 1
        if last + 1 not in by_height:
            continue
        assert by_height[last].header.hash_hex() == block_hash, last
        assert bits_to_target(by_height[last + 1].header.bits) == target, last + 1
        checked += 1
    assert checked == 413


def test_bits_follow_the_retarget_rule(early: list[Row], recent: list[Row]) -> None:
    """Each header's ``bits`` equal ``required_bits`` computed from its ancestors' real times."""
    for rows in (early, recent):
        times = {r.height: r.header.time for r in rows}
        for prev, row in itertools.pairwise(rows):
            expected = required_bits(MAIN, row.height, prev.header.bits, times.__getitem__)
            assert row.header.bits == expected, row.height
    # The recent range has four real retargets, and each one changed the bits.
    changes = [r.height for p, r in itertools.pairwise(recent) if p.header.bits != r.header.bits]
    assert changes == [824544, 826560, 828576, 830592]


def test_changed_nonce_fails_pow(early: list[Row], recent: list[Row]) -> None:
    picks = [early[0], early[1], early[2016], early[9999], recent[0], recent[2016], recent[-1]]
    for row in picks:
        for byte in range(76, 80):  # the nonce is the last 4 bytes
            for flip in (0x01, 0x80):
                raw = bytearray(row.raw)
                raw[byte] ^= flip
                header = BlockHeader.deserialize(bytes(raw))
                assert header.nonce != row.header.nonce
                block_hash = header.hash()
                assert int.from_bytes(block_hash, "little") > bits_to_target(header.bits)
                assert not check_proof_of_work(block_hash, header.bits, MAIN.pow_limit)


def test_chainwork_from_genesis(early: list[Row], chainwork: dict[int, int]) -> None:
    """Cumulative work from genesis equals the recorded chainwork at every listed height < 10000."""
    listed = sorted(h for h in chainwork if h < 10_000)
    assert listed[0] == 0 and len(listed) >= 5
    total = 0
    for row in early:
        total += block_work(row.header.bits)
        if row.height in chainwork:
            assert total == chainwork[row.height], row.height


def test_chainwork_deltas_recent(recent: list[Row], chainwork: dict[int, int]) -> None:
    """chainwork[h2] - chainwork[h1] == sum of block_work over heights h1+1..h2."""
    work = {r.height: block_work(r.header.bits) for r in recent}
    listed = sorted(h for h in chainwork if recent[0].height <= h <= recent[-1].height)
    assert len(listed) >= 8
    for h1, h2 in itertools.pairwise(listed):
        assert chainwork[h2] - chainwork[h1] == sum(work[h] for h in range(h1 + 1, h2 + 1)), h2


def test_stale_header_823226(vectors: Path, recent: list[Row]) -> None:
    (stale,) = _read_rows(vectors / "headers" / "mainnet_stale_headers.txt")
    by_height = {r.height: r for r in recent}
    assert stale.height == 823226
    assert stale.header.serialize() == stale.raw
    assert stale.header.hash_hex() == stale.listed_hash
    assert check_proof_of_work(stale.header.hash(), stale.header.bits, MAIN.pow_limit)
    assert stale.header.prev_hash == by_height[823225].header.hash()
    assert stale.header.hash() != by_height[823226].header.hash()
    assert stale.header.bits == by_height[823226].header.bits


def test_deserialize_rejects_wrong_length(early: list[Row]) -> None:
    raw = early[0].raw
    for bad in (raw[:79], raw + b"\x00", b""):
        with pytest.raises(ValidationError):
            BlockHeader.deserialize(bad)
