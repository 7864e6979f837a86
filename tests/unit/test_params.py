"""The three networks (SPEC 2.6): genesis blocks, distinct identities, subsidy and retargeting.

The genesis hashes are pinned below as a regression check: a change to the genesis
construction, the encoding or the txid rule shows up here first. The main genesis needs about
2**32 hashes and its nonce is mined separately (``scripts/mine_genesis.py``);
``test_main_genesis_passes_check_block`` checks that the constant in ``consensus/params.py``
really meets Bitcoin's 0x1d00ffff.

Test-network blocks are never mined here (about 30 s each): its retarget is checked
arithmetically, and ``verify_header`` does not look at proof of work.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consensus import (
    COIN,
    MAX_MONEY,
    NETWORKS,
    BlockHeader,
    Coin,
    MemoryCoinsView,
    OutPoint,
    ValidationError,
    bits_to_target,
    block_subsidy,
    check_block,
    connect_block,
    get_params,
    merkle_root,
    next_bits,
    required_bits,
    target_to_bits,
    verify_block_context,
    verify_header,
)

ALL = ["main", "test", "regtest"]
MINED = ["test", "regtest"]
GENESIS_HASHES = {  # internal byte order
    "regtest": "5b4b44a7f234157c4c1b4348f6cffec748d8c39603382c9260a4232b2db64a4c",
    "test": "da95b8fe548f7b91cb0a94c7d2b93f6238a798d88eaa98d2b0686b561d000000",
    "main": "d1b65d79b65c90d526bb867432ca3e3a1c4530def860481030ab7fb300000000",
}
BITCOIN_VERSIONS = {0x00, 0x05, 0x6F, 0xC4}
TEST = get_params("test")
MAIN = get_params("main")
REGTEST = get_params("regtest")


# --- genesis ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MINED)
def test_genesis_passes_check_block(name: str) -> None:
    params = get_params(name)
    check_block(params.genesis, params)


def test_main_genesis_passes_check_block() -> None:
    """The mined main genesis nonce (``consensus/params.py``) meets Bitcoin's 0x1d00ffff."""
    params = get_params("main")
    assert params.genesis.header.bits == 0x1D00FFFF
    check_block(params.genesis, params)
    assert params.genesis.hash_hex().startswith("00000000")


@pytest.mark.parametrize("name", ALL)
def test_genesis_hash_is_pinned(name: str) -> None:
    params = get_params(name)
    assert params.genesis.hash().hex() == GENESIS_HASHES[name]
    assert params.genesis_hash == params.genesis.hash()
    assert params.genesis.hash_hex() == bytes.fromhex(GENESIS_HASHES[name])[::-1].hex()


@pytest.mark.parametrize("name", ALL)
def test_genesis_connects_at_height_zero_on_an_empty_view(name: str) -> None:
    params = get_params(name)
    genesis = params.genesis
    view = MemoryCoinsView()
    undo = connect_block(genesis, 0, view, params)
    assert undo.spent == ()
    cb = genesis.txs[0]
    assert view.coins == {OutPoint(cb.txid(), 0): Coin(cb.outputs[0], 0, True)}
    assert cb.outputs[0].amount == block_subsidy(0, params) == 50 * COIN


@pytest.mark.parametrize("name", ALL)
def test_genesis_shape(name: str) -> None:
    params = get_params(name)
    genesis = params.genesis
    assert len(genesis.txs) == 1 and genesis.txs[0].is_coinbase()
    assert genesis.txs[0].inputs[0].signature[:4] == (0).to_bytes(4, "little")
    verify_block_context(genesis, 0)  # coinbase height 0
    with pytest.raises(ValidationError):
        verify_block_context(genesis, 1)
    assert genesis.header.bits == params.pow_limit_bits
    assert genesis.header.prev_hash == b"\x00" * 32
    assert genesis.header.merkle_root == merkle_root([genesis.txs[0].txid()])[0]
    # The first header needs no ancestors: bits and time are what the network asks for.
    verify_header(
        genesis.header, 0, params.pow_limit_bits, lambda h: 0, params, genesis.header.time
    )


# --- identities -------------------------------------------------------------------------------


def test_networks_are_exactly_the_three() -> None:
    assert sorted(NETWORKS) == sorted(ALL)
    for name in ALL:
        assert get_params(name).name == name


@pytest.mark.parametrize(
    "attr", ["magic", "default_port", "address_version", "genesis_hash", "genesis_message"]
)
def test_networks_are_distinct(attr: str) -> None:
    values = [getattr(get_params(n), attr) for n in ALL]
    assert len(set(values)) == 3, values


def test_address_versions_differ_from_bitcoin() -> None:
    for name in ALL:
        version = get_params(name).address_version
        assert 0 <= version <= 255 and version not in BITCOIN_VERSIONS


@pytest.mark.parametrize("name", ["nope", "", "Main", "testnet", "regtest "])
def test_unknown_network(name: str) -> None:
    with pytest.raises(ValueError):
        get_params(name)


def test_parameters_match_the_spec_table() -> None:
    assert (MAIN.target_spacing, MAIN.retarget_interval, MAIN.pow_limit_bits) == (
        600,
        2016,
        0x1D00FFFF,
    )
    assert (TEST.target_spacing, TEST.retarget_interval) == (30, 60)
    assert (REGTEST.retarget_interval, REGTEST.pow_limit_bits) == (None, 0x207FFFFF)
    assert [get_params(n).halving_interval for n in ALL] == [210_000, 210_000, 150]
    assert {get_params(n).coinbase_maturity for n in ALL} == {100}
    assert [get_params(n).allow_generate for n in ALL] == [False, False, True]
    for name in ALL:
        assert len(get_params(name).magic) == 4
    # The test network is easier than main, harder than regtest.
    assert MAIN.pow_limit < TEST.pow_limit < REGTEST.pow_limit


# --- subsidy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "expected"),
    [
        (0, 50 * COIN),
        (1, 50 * COIN),
        (149, 50 * COIN),
        (150, 25 * COIN),
        (299, 25 * COIN),
        (300, 1_250_000_000),
        (450, 625_000_000),
        (150 * 32, (50 * COIN) >> 32),
        (150 * 33, 0),
        (150 * 64 - 1, 0),
        (150 * 64, 0),
        (150 * 1000, 0),
        (2**32 - 1, 0),
    ],
)
def test_regtest_subsidy(height: int, expected: int) -> None:
    assert block_subsidy(height, REGTEST) == expected


def test_main_subsidy_halvings() -> None:
    assert block_subsidy(209_999, MAIN) == 50 * COIN
    assert block_subsidy(210_000, MAIN) == 25 * COIN
    assert block_subsidy(420_000, MAIN) == 1_250_000_000
    assert block_subsidy(210_000 * 64, MAIN) == 0
    assert block_subsidy(210_000 * 64 + 12345, MAIN) == 0


@pytest.mark.parametrize("name", ALL)
def test_total_supply_stays_below_max_money(name: str) -> None:
    params = get_params(name)
    total = sum(params.halving_interval * block_subsidy(k * params.halving_interval, params)
                for k in range(70))  # fmt: skip
    assert 0 < total <= MAX_MONEY


# --- retarget arithmetic -------------------------------------------------------------------------


def rounded(target: int) -> int:
    """``target`` as compact bits can hold it."""
    return bits_to_target(target_to_bits(target))


TIMESPAN = 60 * 30
HARD = 0x1C3FFFFF  # far below the test network's limit, so 4x easier is not capped


def test_test_network_timespan() -> None:
    assert TEST.target_timespan == TIMESPAN
    assert MAIN.target_timespan == 2016 * 600


def test_exact_timespan_keeps_bits() -> None:
    for bits in (HARD, TEST.pow_limit_bits, 0x1B0404CB):
        assert next_bits(TEST, bits, 1000, 1000 + TIMESPAN) == bits


@pytest.mark.parametrize("actual", [TIMESPAN // 2, TIMESPAN - 1, TIMESPAN // 3, 451])
def test_faster_blocks_give_a_harder_target(actual: int) -> None:
    old = bits_to_target(HARD)
    new = bits_to_target(next_bits(TEST, HARD, 5000, 5000 + actual))
    assert new < old
    assert new == rounded(old * actual // TIMESPAN)


@pytest.mark.parametrize("actual", [TIMESPAN + 1, TIMESPAN * 2, TIMESPAN * 4 - 1])
def test_slower_blocks_give_an_easier_target(actual: int) -> None:
    old = bits_to_target(HARD)
    new = bits_to_target(next_bits(TEST, HARD, 5000, 5000 + actual))
    assert new > old
    assert new == rounded(old * actual // TIMESPAN)


@pytest.mark.parametrize("actual", [TIMESPAN // 4, TIMESPAN // 5, 1, 0, -10_000])
def test_harder_clamps_at_a_quarter_of_the_timespan(actual: int) -> None:
    old = bits_to_target(HARD)
    assert next_bits(TEST, HARD, 10**6, 10**6 + actual) == target_to_bits(old // 4)


@pytest.mark.parametrize("actual", [TIMESPAN * 4, TIMESPAN * 5, TIMESPAN * 1000])
def test_easier_clamps_at_four_times_the_timespan(actual: int) -> None:
    old = bits_to_target(HARD)
    assert next_bits(TEST, HARD, 10**6, 10**6 + actual) == target_to_bits(old * 4)


@pytest.mark.parametrize("actual", [TIMESPAN + 1, TIMESPAN * 4, TIMESPAN * 100])
def test_never_easier_than_pow_limit(actual: int) -> None:
    assert next_bits(TEST, TEST.pow_limit_bits, 0, actual) == TEST.pow_limit_bits
    near = target_to_bits(TEST.pow_limit // 2)
    assert bits_to_target(next_bits(TEST, near, 0, actual)) <= TEST.pow_limit
    assert next_bits(TEST, near, 0, TIMESPAN * 4) == TEST.pow_limit_bits


@pytest.mark.parametrize(
    ("last_bits", "first_time", "last_time", "expected"),
    [
        # Bitcoin Core's src/test/pow_tests.cpp, on main's parameters.
        (0x1D00FFFF, 1261130161, 1262152739, 0x1D00D86A),  # get_next_work
        (0x1D00FFFF, 1231006505, 1233061996, 0x1D00FFFF),  # get_next_work_pow_limit
        (0x1C05A3F4, 1279008237, 1279297671, 0x1C0168FD),  # lower_limit_actual
        (0x1C387F6F, 1263163443, 1269211443, 0x1D00E1FD),  # upper_limit_actual
    ],
)
def test_next_bits_matches_bitcoin_core(
    last_bits: int, first_time: int, last_time: int, expected: int
) -> None:
    assert next_bits(MAIN, last_bits, first_time, last_time) == expected


def recording(times: Callable[[int], int]) -> tuple[Callable[[int], int], list[int]]:
    asked: list[int] = []

    def time_at(h: int) -> int:
        asked.append(h)
        return times(h)

    return time_at, asked


def test_required_bits_reads_the_right_ancestors() -> None:
    time_at, asked = recording(lambda h: 1000 + 15 * h)
    # Between retargets: the parent's bits, no ancestor consulted.
    for height in (1, 59, 61, 119):
        assert required_bits(TEST, height, HARD, time_at) == HARD
    assert asked == []
    # At a retarget: first and last blocks of the interval that just ended.
    bits_60 = required_bits(TEST, 60, HARD, time_at)
    assert sorted(asked) == [0, 59]
    assert bits_60 == next_bits(TEST, HARD, 1000, 1000 + 15 * 59)
    asked.clear()
    required_bits(TEST, 120, HARD, time_at)
    assert sorted(asked) == [60, 119]
    # Regtest: always the limit, whatever the parent's bits.
    assert required_bits(REGTEST, 2016, HARD, time_at) == REGTEST.pow_limit_bits


@pytest.mark.parametrize("spacing", [30, 15, 7, 120])
def test_verify_header_accepts_a_test_network_chain_through_two_retargets(spacing: int) -> None:
    """121 headers (no proof of work: verify_header does not check it) at a steady spacing."""
    start = TEST.genesis_time
    times = [start + spacing * h for h in range(121)]
    bits = [TEST.pow_limit_bits]
    prev_hash = TEST.genesis_hash
    for height in range(1, 121):
        expected = required_bits(TEST, height, bits[-1], lambda h: times[h])
        header = BlockHeader(1, prev_hash, b"\x00" * 32, times[height], expected, 0)
        verify_header(header, height, bits[-1], lambda h: times[h], TEST, now=times[height])
        bits.append(expected)
        prev_hash = header.hash()
    assert len(set(bits[:60])) == 1 and len(set(bits[60:120])) == 1
    limit = TEST.pow_limit
    measured = spacing * 59  # Bitcoin's off-by-one: 59 gaps per 60-block interval
    clamped = min(max(measured, TIMESPAN // 4), TIMESPAN * 4)
    assert bits_to_target(bits[60]) == rounded(min(limit * clamped // TIMESPAN, limit))
    if spacing <= 30:  # even exactly 30 s measures 1770 s of 1800: harder each time
        assert bits_to_target(bits[120]) < bits_to_target(bits[60]) < limit
    else:  # slower than the target: capped at the limit
        assert bits[60] == bits[120] == TEST.pow_limit_bits
