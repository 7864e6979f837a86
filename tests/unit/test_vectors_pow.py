"""Compact ``bits``, targets, work and Bitcoin's retarget against real third-party data.

Sources (see ``vectors/SOURCES.md``): all 413 real mainnet retargets (expected bits are the
on-chain ``nBits``, not computed), Bitcoin Core's ``pow_tests`` and ``bignum_SetCompact``
cases, bitcoinjs-lib's targets and 473 Electrum checkpoint targets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consensus import (
    BlockHeader,
    bits_to_target,
    block_work,
    check_proof_of_work,
    decode_compact,
    get_params,
    next_bits,
    required_bits,
    target_to_bits,
)

MAIN = get_params("main")


@pytest.fixture(scope="module")
def retarget(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (vectors / "headers" / "mainnet_retarget_cases.json").read_text()
    )
    return data


@pytest.fixture(scope="module")
def compact(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (vectors / "compact" / "compact_bits_target_vectors.json").read_text()
    )
    return data


def test_main_params_match_bitcoin(retarget: dict[str, Any]) -> None:
    assert MAIN.target_timespan == retarget["target_timespan"] == 1_209_600
    assert MAIN.retarget_interval == 2016
    # Core's powLimit is 0x00000000ffff...ff; as compact bits that is 0x1d00ffff.
    assert target_to_bits(int(retarget["pow_limit"], 16)) == MAIN.pow_limit_bits == 0x1D00FFFF


def test_all_mainnet_retargets(retarget: dict[str, Any]) -> None:
    cases = retarget["cases"]
    assert len(cases) == 413
    wrong = []
    for case in cases:
        got = next_bits(
            MAIN, int(case["last_bits"], 16), case["first_block_time"], case["last_block_time"]
        )
        if got != int(case["expected_new_bits"], 16):
            wrong.append((case["height"], f"{got:08x}", case["expected_new_bits"]))
    assert wrong == []
    notes = {n for case in cases for n in case["notes"]}
    assert "actual_timespan_clamped_to_min(1/4)" in notes
    assert "new_target_clamped_to_pow_limit" in notes


def test_retarget_cases_match_their_raw_headers(retarget: dict[str, Any]) -> None:
    """The case fields really are those of the three real headers (so the inputs are real)."""
    for case in retarget["cases"]:
        first = BlockHeader.deserialize(bytes.fromhex(case["first_header_hex"]))
        last = BlockHeader.deserialize(bytes.fromhex(case["last_header_hex"]))
        new = BlockHeader.deserialize(bytes.fromhex(case["new_header_hex"]))
        h = case["height"]
        assert case["first_block_height"] == h - 2016 and case["last_block_height"] == h - 1
        assert first.time == case["first_block_time"]
        assert last.time == case["last_block_time"]
        assert last.bits == int(case["last_bits"], 16)
        assert new.bits == int(case["expected_new_bits"], 16)
        assert new.prev_hash == last.hash()
        assert check_proof_of_work(new.hash(), new.bits, MAIN.pow_limit)


def test_required_bits_uses_retarget_times(retarget: dict[str, Any]) -> None:
    def no_lookup(height: int) -> int:
        raise AssertionError(f"time_at({height}) called at a non-retarget height")

    for case in retarget["cases"]:
        h = case["height"]
        times = {
            case["first_block_height"]: case["first_block_time"],
            case["last_block_height"]: case["last_block_time"],
        }
        last_bits = int(case["last_bits"], 16)
        new_bits = int(case["expected_new_bits"], 16)
        assert required_bits(MAIN, h, last_bits, times.__getitem__) == new_bits, h
        # In between retargets the previous bits carry over, without looking at any time.
        assert required_bits(MAIN, h + 1, new_bits, no_lookup) == new_bits
        assert required_bits(MAIN, h - 1, last_bits, no_lookup) == last_bits
    assert required_bits(MAIN, 0, 0x1D00FFFF, no_lookup) == 0x1D00FFFF


def test_required_bits_regtest_never_retargets() -> None:
    regtest = get_params("regtest")

    def no_lookup(height: int) -> int:
        raise AssertionError("regtest must not look at times")

    for height in (1, 2016, 4032):
        assert required_bits(regtest, height, 0x1D00FFFF, no_lookup) == regtest.pow_limit_bits


def test_bitcoin_core_pow_tests(compact: dict[str, Any]) -> None:
    cases = compact["bitcoin_core_pow_tests_retarget"]["cases"]
    assert len(cases) == 4
    for case in cases:
        got = next_bits(
            MAIN, int(case["last_bits"], 16), case["first_block_time"], case["last_time"]
        )
        assert got == int(case["expected"], 16), case["name"]


def test_bitcoin_core_setcompact(compact: dict[str, Any]) -> None:
    section = compact["bitcoin_core_setcompact"]
    cases = section["cases"]
    assert len(cases) == 20
    for case in cases:
        bits = int(case["compact"], 16)
        value, negative, overflow = decode_compact(bits)
        assert (negative, overflow) == (case["negative"], case["overflow"]), case["compact"]
        if case["target_hex"] is not None:
            assert value == int(case["target_hex"], 16), case["compact"]
        if negative or overflow:
            with pytest.raises(ValueError):
                bits_to_target(bits)
        else:
            assert bits_to_target(bits) == int(case["target_hex"], 16)
        if case["get_compact"] is not None:
            again = target_to_bits(value, negative=case["get_compact_called_with_negative"])
            assert again == int(case["get_compact"], 16), case["compact"]
    (extra,) = section["extra"]
    assert target_to_bits(int(extra["number_hex"], 16)) == int(extra["get_compact"], 16)


def test_bitcoinjs_targets(compact: dict[str, Any]) -> None:
    cases = compact["bitcoinjs_targets"]["cases"]
    assert len(cases) == 6
    for case in cases:
        bits = int(case["compact"], 16)
        value, negative, overflow = decode_compact(bits)
        assert value == int(case["target_hex"], 16)
        assert negative == case["bitcoin_core_negative_flag"]
        assert overflow == case["bitcoin_core_overflow_flag"]
        if negative:
            with pytest.raises(ValueError):
                bits_to_target(bits)
            # A negative target is never valid proof of work, even for a zero hash.
            assert not check_proof_of_work(b"\x00" * 32, bits, 2**256 - 1)
        else:
            assert bits_to_target(bits) == value


def test_mainnet_real_bits_target_pairs(compact: dict[str, Any]) -> None:
    cases = compact["mainnet_real_bits_target_pairs"]["cases"]
    assert len(cases) == 473
    real = [c for c in cases if c["compact_source"].startswith("nBits of real")]
    assert len(real) == 413
    for case in cases:
        bits = int(case["compact"], 16)
        target = int(case["target_hex"], 16)
        assert bits_to_target(bits) == target, case["period_start_height"]
        assert target_to_bits(target) == bits, case["period_start_height"]
        assert block_work(bits) == (1 << 256) // (target + 1)


def test_block_work_of_pow_limit() -> None:
    assert block_work(0x1D00FFFF) == 0x100010001
    # Invalid bits carry no work.
    for bits in (0, 0x1D80FFFF, 0xFF123456):
        assert block_work(bits) == 0


def test_check_proof_of_work_rules(vectors: Path) -> None:
    raw = bytes.fromhex(
        json.loads((vectors / "headers" / "genesis.json").read_text())["header_hex"]
    )
    genesis_hash = BlockHeader.deserialize(raw).hash()
    assert check_proof_of_work(genesis_hash, 0x1D00FFFF, MAIN.pow_limit)
    assert not check_proof_of_work(genesis_hash, 0x1D80FFFF, MAIN.pow_limit)  # negative
    assert not check_proof_of_work(b"\x00" * 32, 0x1E00FFFF, MAIN.pow_limit)  # above the limit
    assert not check_proof_of_work(b"\x00" * 32, 0, MAIN.pow_limit)  # zero target
    assert not check_proof_of_work(b"\x00" * 32, 0xFF123456, 2**256 - 1)  # overflow
    # The same real hash against a harder target than it met fails.
    assert int.from_bytes(genesis_hash, "little") > bits_to_target(0x1B00FFFF)
    assert not check_proof_of_work(genesis_hash, 0x1B00FFFF, MAIN.pow_limit)
