"""The signature hash: the 32-byte digest an input's signature signs (SPEC 2.3).

Layout (all fixed-size, so the hash costs the same for every input: no quadratic hashing)::

    sighash = SHA256d( "TALLY/sighash/v1"   16 bytes, domain separation
                     || network magic        4 bytes, so no signature is valid on another network
                     || txid                32 bytes, commits to version, every input's prevout,
                                                       every output and locktime
                     || input index          u32 little-endian
                     || spent amount         i64 little-endian
                     || spent pubkey_hash   20 bytes )

The txid leaves out public keys and signatures, so signing one input never changes another's
digest; the spent amount and pubkey hash are committed as BIP143 does, so a signer cannot be lied
to about the value it spends.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from consensus.crypto import pubkey_from_privkey, sign
from consensus.hashing import hash160, sha256d
from consensus.tx import Transaction, TxIn, TxOut

if TYPE_CHECKING:
    from consensus.params import NetworkParams

SIGHASH_TAG = b"TALLY/sighash/v1"
_INDEX_AMOUNT = struct.Struct("<Iq")


def signature_hash(
    tx: Transaction, input_index: int, spent_output: TxOut, params: NetworkParams
) -> bytes:
    """The digest input ``input_index`` of ``tx`` signs, spending ``spent_output``."""
    if not 0 <= input_index < len(tx.inputs):
        raise IndexError(f"input {input_index} out of range 0..{len(tx.inputs) - 1}")
    return sha256d(
        SIGHASH_TAG
        + params.magic
        + tx.txid()
        + _INDEX_AMOUNT.pack(input_index, spent_output.amount)
        + spent_output.pubkey_hash
    )


def sign_input(
    tx: Transaction,
    input_index: int,
    spent_output: TxOut,
    privkey: bytes,
    params: NetworkParams,
) -> TxIn:
    """The input ``input_index`` of ``tx`` with its public key and signature filled in.

    Because the txid does not cover public keys and signatures, the inputs of one transaction can
    be signed in any order (and in parallel) and put together afterwards.
    """
    pubkey = pubkey_from_privkey(privkey)
    if hash160(pubkey) != spent_output.pubkey_hash:
        raise ValueError("this key does not own the output being spent")
    digest = signature_hash(tx, input_index, spent_output, params)
    return TxIn(tx.inputs[input_index].prevout, pubkey, sign(privkey, digest))


def sign_transaction(
    tx: Transaction,
    spent_outputs: list[TxOut],
    privkeys: list[bytes],
    params: NetworkParams,
) -> Transaction:
    """``tx`` with every input signed; ``spent_outputs`` and ``privkeys`` in input order."""
    if not len(spent_outputs) == len(privkeys) == len(tx.inputs):
        raise ValueError("one spent output and one key per input")
    inputs = tuple(
        sign_input(tx, i, out, key, params)
        for i, (out, key) in enumerate(zip(spent_outputs, privkeys, strict=True))
    )
    return Transaction(tx.version, inputs, tx.outputs, tx.locktime)
