"""Building and signing: a ``Selection`` becomes a signed ``Transaction``.

The transaction is version 1, locktime 0, inputs in the selection's order, outputs as selected
(change last). Every input gets the signature ``consensus.sign`` (RFC 6979, low-S) makes over
``consensus.signature_hash``: what ``consensus.sign_transaction`` does, except that the key and
its public key are worked out once per distinct address rather than once per input (deriving a
public key costs more than a signature, and a wallet with many coins on one address signs many
inputs with one key). The private key comes from the caller's ``key_for(pubkey_hash)`` and is
used only here, in this process; its public key must hash to the spent output's pubkey hash.

Invariant checked on every build: the signed transaction's size is exactly the size the coin
selection computed, and its fee (inputs minus outputs) is exactly the selection's fee, so the fee
rate a person was shown is the fee rate the node sees. A mismatch is a bug and raises
``BuildError`` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable

from consensus import (
    NetworkParams,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    hash160,
    pubkey_from_privkey,
    sign,
    signature_hash,
)
from wallet.coinselect import TX_LOCKTIME, TX_VERSION, Selection


class BuildError(Exception):
    """The signed transaction does not match its selection (a bug, never sent)."""


def unsigned_transaction(selection: Selection) -> Transaction:
    """The transaction of ``selection`` with empty public keys and signatures."""
    return Transaction(
        TX_VERSION,
        tuple(TxIn(OutPoint(u.txid, u.index)) for u in selection.inputs),
        selection.outputs,
        TX_LOCKTIME,
    )


def build_signed(
    selection: Selection,
    key_for: Callable[[bytes], bytes],
    params: NetworkParams,
) -> Transaction:
    """Sign every input of ``selection``'s transaction; checks size and fee (see module doc)."""
    tx = unsigned_transaction(selection)
    keys: dict[bytes, tuple[bytes, bytes]] = {}
    inputs = []
    for n, u in enumerate(selection.inputs):
        pair = keys.get(u.pubkey_hash)
        if pair is None:
            privkey = key_for(u.pubkey_hash)
            pubkey = pubkey_from_privkey(privkey)
            if hash160(pubkey) != u.pubkey_hash:
                raise BuildError(f"the key given for input {n} does not own it")
            pair = keys[u.pubkey_hash] = (privkey, pubkey)
        digest = signature_hash(tx, n, TxOut(u.amount, u.pubkey_hash), params)
        inputs.append(TxIn(tx.inputs[n].prevout, pair[1], sign(pair[0], digest)))
    signed = Transaction(tx.version, tuple(inputs), tx.outputs, tx.locktime)
    if signed.size() != selection.size:
        raise BuildError(f"signed size {signed.size()} differs from computed {selection.size}")
    fee = selection.total_in - signed.total_out()
    if fee != selection.fee:
        raise BuildError(f"fee {fee} differs from computed {selection.fee}")
    return signed
