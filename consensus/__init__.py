"""Tally's consensus rules: a pure, typed library.

What it does: the types (transactions, headers, blocks) and their one canonical encoding, the
hashes, signatures (libsecp256k1 or pure Python), addresses, merkle trees, proof of work and
retargeting, the three networks, and every rule a transaction or block must obey, returning a
stable reject code when one is broken. Blocks connect to and disconnect from a coins view passed
in, with undo data.

What it does not do: no I/O, no clock (``now`` is a parameter), no storage, no networking, no
logging set-up, no policy (fees, mempool limits): those belong to ``node``, and keys and wallets
to ``wallet``. A test enforces the imports.

Hashes are ``bytes`` in internal order; amounts are ``int`` base units (1 TLY = 10**8).
"""

from consensus.address import (
    PAYMENT_URI_SCHEME,
    AddressError,
    b58check_decode,
    b58check_encode,
    b58decode,
    b58encode,
    decode_address,
    encode_address,
    payment_uri,
)
from consensus.block import Block, BlockHeader, block_merkle_root
from consensus.coins import (
    BlockUndo,
    Coin,
    CoinsView,
    CoinsViewCache,
    MemoryCoinsView,
    MutableCoinsView,
    tx_fee,
)
from consensus.crypto import engine, pubkey_from_privkey, sign, verify_signature
from consensus.encoding import pack, unpack_canonical
from consensus.errors import BlockValidationResult, RejectCategory, ValidationError
from consensus.extkey import (
    ExtendedKeyError,
    ExtendedPublicKey,
    convert_xpub_version,
    decode_xpub,
    encode_xpub,
)
from consensus.hashing import hash160, sha256, sha256d
from consensus.merkle import (
    merkle_branch,
    merkle_root,
    merkle_root_from_branch,
    verify_merkle_proof,
)
from consensus.params import NETWORKS, NetworkParams, get_params
from consensus.pow import (
    bits_to_target,
    block_work,
    check_proof_of_work,
    decode_compact,
    median_time_past,
    median_time_past_at,
    next_bits,
    required_bits,
    target_to_bits,
)
from consensus.sighash import sign_input, sign_transaction, signature_hash
from consensus.tx import COIN, MAX_MONEY, NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from consensus.validation import (
    MAX_BLOCK_SIZE,
    UndoMismatchError,
    block_subsidy,
    check_block,
    check_block_header,
    check_block_merkle_root,
    check_transaction,
    connect_block,
    disconnect_block,
    is_final,
    verify_block_context,
    verify_header,
    verify_tx_inputs,
)

__all__ = [
    "PAYMENT_URI_SCHEME",
    "payment_uri",
    "ExtendedKeyError",
    "ExtendedPublicKey",
    "convert_xpub_version",
    "decode_xpub",
    "encode_xpub",
    "COIN",
    "MAX_BLOCK_SIZE",
    "MAX_MONEY",
    "NETWORKS",
    "NULL_OUTPOINT",
    "AddressError",
    "Block",
    "BlockHeader",
    "BlockUndo",
    "BlockValidationResult",
    "Coin",
    "CoinsView",
    "CoinsViewCache",
    "MemoryCoinsView",
    "MutableCoinsView",
    "NetworkParams",
    "OutPoint",
    "RejectCategory",
    "Transaction",
    "TxIn",
    "TxOut",
    "UndoMismatchError",
    "ValidationError",
    "b58check_decode",
    "b58check_encode",
    "b58decode",
    "b58encode",
    "bits_to_target",
    "block_merkle_root",
    "block_subsidy",
    "block_work",
    "check_block",
    "check_block_header",
    "check_block_merkle_root",
    "check_proof_of_work",
    "check_transaction",
    "connect_block",
    "decode_address",
    "decode_compact",
    "disconnect_block",
    "encode_address",
    "engine",
    "get_params",
    "hash160",
    "is_final",
    "median_time_past",
    "median_time_past_at",
    "merkle_branch",
    "merkle_root",
    "merkle_root_from_branch",
    "next_bits",
    "pack",
    "pubkey_from_privkey",
    "required_bits",
    "sha256",
    "sha256d",
    "sign",
    "sign_input",
    "sign_transaction",
    "signature_hash",
    "target_to_bits",
    "tx_fee",
    "unpack_canonical",
    "verify_block_context",
    "verify_header",
    "verify_merkle_proof",
    "verify_signature",
    "verify_tx_inputs",
]
