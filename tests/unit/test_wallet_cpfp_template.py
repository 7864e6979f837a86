"""The wallet's CPFP child against the node's block template (SPEC 3.3's ancestor packages): a
low-fee parent that two better-paying rivals keep out of a full block gets in, with its child,
once the child made by ``wallet.spending.child_selection`` raises the package above them."""

from __future__ import annotations

from decimal import Decimal

from node.miner.template import select_transactions
from tests.helpers import REGTEST
from tests.unit.test_mempool import ALICE, BOB, Node, at_rate
from wallet.builder import build_signed
from wallet.coinselect import Utxo
from wallet.spending import child_selection


def test_a_wallet_child_pulls_its_stuck_parent_into_the_next_template() -> None:
    node = Node()
    coins = node.coins
    parent = at_rate([coins[0]], 1)  # pays ALICE; the lowest rate the node relays
    rivals = [at_rate([coins[1]], 3), at_rate([coins[2]], 3)]
    for tx in (parent, *rivals):
        node.accept(tx)
    mine = Utxo(parent.txid(), 0, parent.outputs[0].amount, ALICE.pubkey_hash, None)
    fee = node.mp.entries[parent.txid()].fee
    selection = child_selection([mine], fee, parent.size(), Decimal(6), BOB.pubkey_hash)
    child = build_signed(selection, {ALICE.pubkey_hash: ALICE.privkey}.__getitem__, REGTEST)
    budget = parent.size() + child.size()  # a block with room for two transactions
    assert sum(r.size() for r in rivals) <= budget < sum(r.size() for r in rivals) + parent.size()

    # without the child, the rivals fill the block and the parent is stuck
    assert [e.txid for e in select_transactions(node.mp, budget)] == [r.txid() for r in rivals]
    node.accept(child)
    package_rate = (fee + selection.fee) / (parent.size() + child.size())
    assert 6 <= package_rate < 6 + 1 / (parent.size() + child.size()) + 1e-9
    assert [e.txid for e in select_transactions(node.mp, budget)] == [parent.txid(), child.txid()]
    block = node.mine([parent, child])  # and the two are valid on the chain, child signed
    assert {tx.txid() for tx in block.txs[1:]} == {parent.txid(), child.txid()}
