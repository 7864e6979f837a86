"""The standard-size policy (issue 17 item 2; SPEC 2.5 ``tx-size``): over 100,000 bytes refused.

A transaction as large as a block used to be accepted into the mempool, where no template could
take it (the template keeps room for the coinbase), so a pool full of them refused honest
payments for 14 days at no cost. ``consensus.policy.MAX_STANDARD_TX_SIZE`` is the one limit: the
mempool refuses above it, the template keeps room for it, the wallet never builds above it.
"""

from __future__ import annotations

from consensus import MAX_BLOCK_SIZE, Transaction, TxOut
from consensus import errors as codes
from consensus.policy import MAX_STANDARD_TX_SIZE
from node.miner.template import COINBASE_RESERVE
from tests.helpers import spend
from tests.unit.test_mempool import ALICE, Coin3, Node, at_rate, base, check_invariants, rejects
from wallet import coinselect


def sized(coin: Coin3, size: int) -> Transaction:
    """A transaction spending ``coin`` of exactly ``size`` bytes: n outputs of 1 unit, d of
    which are 200 units instead (msgpack: one byte more each) to make up the last bytes."""

    def build(small: int, large: int) -> Transaction:
        outs = [TxOut(1, ALICE.pubkey_hash)] * small + [TxOut(200, ALICE.pubkey_hash)] * large
        change = coin[1].amount - small - 200 * large - 2 * MAX_STANDARD_TX_SIZE
        return spend([coin], [TxOut(change, ALICE.pubkey_hash), *outs])

    per_output = build(2, 0).size() - build(1, 0).size()
    n = (size - build(0, 0).size()) // per_output
    short = size - build(n, 0).size()
    assert 0 <= short < per_output <= n
    tx = build(n - short, short)
    assert tx.size() == size, (tx.size(), size)
    return tx


def test_exactly_the_standard_size_is_accepted_one_byte_more_is_tx_size() -> None:
    coins = base().coins
    node = Node()
    over = sized(coins[0], MAX_STANDARD_TX_SIZE + 1)
    error = rejects(codes.TX_SIZE, lambda: node.mp.accept(over))
    assert f"{MAX_STANDARD_TX_SIZE + 1}" in error.message
    assert len(node.mp) == 0 and node.mp.total_bytes == 0
    limit = sized(coins[1], MAX_STANDARD_TX_SIZE)
    node.accept(limit)
    check_invariants(node.mp, node.store)
    # And the template takes it: a standard transaction always fits beside the coinbase.
    block = node.mine()
    assert limit in block.txs


def test_the_size_is_checked_before_anything_costly() -> None:
    """An oversize transaction is refused before its inputs are looked up or signatures
    checked: it costs the node a decode and a length, not a verification per input."""
    coins = base().coins
    node = Node()
    over = sized(coins[0], MAX_STANDARD_TX_SIZE + 1)
    looked_up: list[object] = []
    chain = node.mp.chain
    node.mp.chain = type(chain)(
        lambda op: looked_up.append(op) or chain.get_coin(op), chain.tip_height,
        chain.has_transaction,
    )  # fmt: skip
    rejects(codes.TX_SIZE, lambda: node.mp.accept(over))
    assert looked_up == []
    node.accept(at_rate([coins[1]], 2))  # the pool still works


def test_one_limit_for_mempool_template_and_wallet() -> None:
    assert MAX_STANDARD_TX_SIZE == 100_000
    assert MAX_STANDARD_TX_SIZE <= MAX_BLOCK_SIZE - COINBASE_RESERVE
    assert coinselect.MAX_TX_SIZE == MAX_STANDARD_TX_SIZE
