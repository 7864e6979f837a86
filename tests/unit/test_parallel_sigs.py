"""A block's signatures checked in one batch on the signature pool (issue 22).

- ``consensus.connect_block`` with a ``BatchVerifier``: the same result as one by one, the first
  failing check in block order attributed to its transaction and input, every other rule in its
  place (a bad signature before a later broken rule is what is reported, as before).
- ``node.sigpool.SignaturePool``: results in input order whatever order the pieces finish in.
- ``Chainstate`` with the node's wiring (``SignatureCache.verify_batch`` over a two-worker pool):
  a 1,000-transaction block with one bad signature (first, middle, last) is refused with
  ``bad-txns-signature``, nothing of it written, the cache holding only good signatures; the
  good block connects to the same state as the one-by-one path. ``TALLY_CHECK_THREADS=1`` is on
  (tests/conftest.py): the workers touching the chainstate or the cache would raise.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from functools import cache

import pytest

from consensus import (
    Block,
    CoinsViewCache,
    SignatureCheck,
    Transaction,
    ValidationError,
    block_signature_checks,
    check_block,
    connect_block,
    sign,
    verify_signature,
)
from consensus import errors as codes
from node.chainstate import Chainstate
from node.chainstate import schema as k
from node.sigcache import SignatureCache
from node.sigpool import SignaturePool, default_workers
from node.storage import MemoryStore
from tests.helpers import REGTEST, ChainBuilder, block_of_spends

FEE = 1000
NTX = 1000


@cache
def fixture() -> tuple[tuple[Block, ...], tuple[Transaction, ...]]:
    """Blocks 1..101 and the 1,000 spends a block 102 may carry (built once per session)."""
    builder, txs = block_of_spends(NTX, fee=FEE)
    return tuple(builder.blocks[1:]), tuple(txs)


def block_102(txs: Sequence[Transaction]) -> Block:
    prefix, _ = fixture()
    builder = ChainBuilder()
    for block in prefix:
        builder.add(block)
    return builder.next_block(txs, fees=FEE * len(txs))


def with_bad_signature(txs: Sequence[Transaction], pos: int) -> list[Transaction]:
    """``txs`` with the signature of ``txs[pos]`` replaced by a well-formed, wrong one."""
    out = list(txs)
    txin = out[pos].inputs[0]
    wrong = sign((b"\x01" * 32), b"\x02" * 32)  # low-S, 64 bytes: refused by verification only
    out[pos] = dataclasses.replace(out[pos], inputs=(dataclasses.replace(txin, signature=wrong),))
    return out


def far_future() -> float:
    return 4_000_000_000.0


def chainstate(**kwargs: object) -> Chainstate:
    cs = Chainstate(MemoryStore(), REGTEST, clock=far_future, sync=False, **kwargs)  # type: ignore[arg-type]
    for block in fixture()[0]:
        cs.process_block(block)
    return cs


def derived(cs: Chainstate) -> dict[bytes, bytes]:
    """Every key describing the active chain (UTXO set, undo data, indexes, heights, tip)."""
    state: dict[bytes, bytes] = {}
    for prefix in k.DERIVED_PREFIXES:
        state.update(cs.store.iterate(prefix))
    state[k.K_TIP] = cs.store.get(k.K_TIP) or b""
    return state


# --- consensus ----------------------------------------------------------------------------------


def small_chain() -> tuple[ChainBuilder, list[Transaction]]:
    return block_of_spends(6, fee=FEE)


def test_batch_path_gives_the_sequential_undo_and_view() -> None:
    builder, txs = small_chain()
    block = builder.next_block(txs, fees=FEE * len(txs))
    height = builder.height + 1
    one_by_one = CoinsViewCache(builder.view)
    batched = CoinsViewCache(builder.view)
    seen: list[SignatureCheck] = []

    def batch(checks: Sequence[SignatureCheck]) -> list[bool]:
        seen.extend(checks)
        return [verify_signature(c.pubkey, c.signature, c.digest) for c in checks]

    undo = connect_block(block, height, one_by_one, REGTEST)
    assert connect_block(block, height, batched, REGTEST, batch_verify=batch) == undo
    assert batched.changes == one_by_one.changes
    assert [(c.tx_index, c.input_index) for c in seen] == [(i, 0) for i in range(1, 7)]
    assert seen == block_signature_checks(block, height, CoinsViewCache(builder.view), REGTEST)


@pytest.mark.parametrize("bad", [1, 3, 6])
def test_a_failing_result_is_attributed_to_its_transaction(bad: int) -> None:
    """The verifier's results are read in order: result k condemns check k's transaction."""
    builder, txs = small_chain()
    block = builder.next_block(txs, fees=FEE * len(txs))
    view = CoinsViewCache(builder.view)

    def batch(checks: Sequence[SignatureCheck]) -> list[bool]:
        return [c.tx_index != bad for c in checks]

    with pytest.raises(ValidationError) as err:
        connect_block(block, builder.height + 1, view, REGTEST, batch_verify=batch)
    assert err.value.code == codes.BAD_TXNS_SIGNATURE
    assert f"transaction {bad} ({block.txs[bad].txid()[::-1].hex()}) input 0" in err.value.message
    assert view.changes == {}


def test_a_bad_signature_before_a_later_broken_rule_is_reported_first() -> None:
    builder, txs = small_chain()
    txs = with_bad_signature(txs, 1)
    txs.append(txs[0])  # spends a coin already spent: bad-txns-inputs-missingorspent, later
    block = builder.next_block(txs, fees=FEE * len(txs))
    for batch_verify in (
        None,
        lambda cs: [verify_signature(c.pubkey, c.signature, c.digest) for c in cs],
    ):
        with pytest.raises(ValidationError) as err:
            connect_block(
                block,
                builder.height + 1,
                CoinsViewCache(builder.view),
                REGTEST,
                batch_verify=batch_verify,
            )
        assert err.value.code == codes.BAD_TXNS_SIGNATURE
        assert "transaction 2 " in err.value.message


def test_a_broken_rule_before_a_bad_signature_keeps_its_code() -> None:
    builder, txs = small_chain()
    txs = with_bad_signature(txs, 4)
    txs.insert(2, txs[0])  # the double spend now comes before the bad signature
    block = builder.next_block(txs, fees=FEE * len(txs))
    for batch_verify in (
        None,
        lambda cs: [verify_signature(c.pubkey, c.signature, c.digest) for c in cs],
    ):
        with pytest.raises(ValidationError) as err:
            connect_block(
                block,
                builder.height + 1,
                CoinsViewCache(builder.view),
                REGTEST,
                batch_verify=batch_verify,
            )
        assert err.value.code == codes.BAD_TXNS_INPUTS_MISSINGORSPENT


def test_a_verifier_giving_the_wrong_number_of_results_is_an_error() -> None:
    builder, txs = small_chain()
    block = builder.next_block(txs, fees=FEE * len(txs))
    with pytest.raises(ValueError, match="results"):
        connect_block(
            block,
            builder.height + 1,
            CoinsViewCache(builder.view),
            REGTEST,
            batch_verify=lambda cs: [True],
        )


# --- the pool -----------------------------------------------------------------------------------


def test_pool_results_keep_the_input_order_when_pieces_finish_out_of_order() -> None:
    """Early pieces are made slow, so later ones finish first; the results still line up."""
    pool = SignaturePool(2, inline_below=1)
    triples = [(bytes([i % 256]) * 33, bytes([i // 256]) * 64, b"\x00" * 32) for i in range(40)]
    answers = {t: i % 3 == 0 for i, t in enumerate(triples)}
    threads: set[str] = set()

    def engine(p: bytes, s: bytes, d: bytes) -> bool:
        threads.add(threading.current_thread().name)
        index = triples.index((p, s, d))
        time.sleep(0.002 * (40 - index) / 40)
        return answers[(p, s, d)]

    try:
        assert pool.verify(triples, engine) == [answers[t] for t in triples]
    finally:
        pool.shutdown()
    assert threads and all(name.startswith("sigverify") for name in threads)


def test_pool_verifies_small_batches_and_a_one_worker_pool_inline() -> None:
    names: list[str] = []

    def engine(p: bytes, s: bytes, d: bytes) -> bool:
        names.append(threading.current_thread().name)
        return True

    here = threading.current_thread().name
    small = SignaturePool(2, inline_below=16)
    one = SignaturePool(1, inline_below=1)
    try:
        assert small.verify([(b"", b"", b"")] * 15, engine) == [True] * 15
        assert one.verify([(b"", b"", b"")] * 100, engine) == [True] * 100
    finally:
        small.shutdown()
        one.shutdown()
    assert set(names) == {here}


def test_pool_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_SIG_WORKERS", "1")
    assert default_workers() == 1 and SignaturePool().workers == 1
    monkeypatch.setenv("TALLY_SIG_WORKERS", "0")
    with pytest.raises(ValueError):
        default_workers()
    monkeypatch.delenv("TALLY_SIG_WORKERS")
    assert default_workers() >= 1


# --- the chainstate, wired as the node wires it -------------------------------------------------


@pytest.fixture(scope="module")
def sequential() -> tuple[dict[bytes, bytes], object]:
    """The derived state and UTXO set info after connecting the good block 102 one signature at
    a time (no batch verifier: the path of every release before this one)."""
    cs = chainstate()
    _, txs = fixture()
    assert cs.process_block(block_102(txs)).status == "active"
    return derived(cs), cs.utxo_set_info()


@pytest.mark.parametrize("bad", [0, NTX // 2, NTX - 1])
def test_one_bad_signature_in_1000_refuses_the_block_and_writes_nothing(
    bad: int, sequential: tuple[dict[bytes, bytes], object]
) -> None:
    pool = SignaturePool(2, inline_below=1)
    sigcache = SignatureCache(pool=pool)
    try:
        cs = chainstate(verify=sigcache.verify, batch_verify=sigcache.verify_batch)
        _, txs = fixture()
        bad_block = block_102(with_bad_signature(txs, bad))
        check_block(bad_block, REGTEST)
        before, info_before = derived(cs), cs.utxo_set_info()
        learnt_before = len(sigcache)
        with pytest.raises(ValidationError) as err:
            cs.process_block(bad_block)
        assert err.value.code == codes.BAD_TXNS_SIGNATURE
        # The connect batch was not committed: UTXO set, undo data, indexes, tip, heights as
        # they were (only the failed block's body and its index entry, marked, were stored).
        assert derived(cs) == before and cs.utxo_set_info() == info_before
        assert cs.tip.hash == fixture()[0][-1].hash()
        entry = cs.get_entry(bad_block.hash())
        assert entry is not None and entry.failed and entry.reject_code == codes.BAD_TXNS_SIGNATURE
        # The cache learnt the 999 good signatures, not the bad one ...
        assert len(sigcache) == learnt_before + NTX - 1
        # ... so the good block costs one engine call, and connects to the one-by-one state.
        misses = sigcache.misses
        assert cs.process_block(block_102(txs)).status == "active"
        assert sigcache.misses == misses + 1
        assert (derived(cs), cs.utxo_set_info()) == sequential
    finally:
        pool.shutdown()
