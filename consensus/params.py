"""The three networks of SPEC 2.6 (``main``, ``test``, ``regtest``) and their genesis blocks.

A ``NetworkParams`` is plain data handed to every rule that needs it; nothing in ``consensus``
reads a global network. Each network has its own magic (which the signature hash commits to, so a
signature is never valid on another network), default port, BIP44 coin type and address version
byte. The version bytes differ from each other and from Bitcoin's (0x00, 0x05, 0x6f, 0xc4), so an
address can never be used on the wrong network. Extended keys (BIP32) have version bytes of each
network's own, unlike Bitcoin's ``xpub``/``tpub`` and SLIP-132's, so an account key is never taken
for another network's: ``Tpub``/``Tprv`` on main, ``Spub``/``Sprv`` on test, ``Rpub``/``Rprv`` on
regtest (``consensus/extkey.py``).

========  =======  =========  ===========  =========  =================
network   version  addresses  magic        port       BIP44 coin type
========  =======  =========  ===========  =========  =================
main      0x41     ``T...``   ``f1a7c0de``  8833       1987
test      0x80     ``t...``   ``0b7a11e5``  18833      1 (all testnets)
regtest   0x7a     ``r...``   ``fa1bdab5``  18844      1 (all testnets)
========  =======  =========  ===========  =========  =================

Every genesis block is valid under its network's own rules, proof of work included: the nonces
below were found by ``scripts/mine_genesis.py`` (``main`` needs about 2**32 hashes at Bitcoin's
0x1d00ffff) and are kept as constants; ``tests/unit/test_params.py`` checks the hashes.
The genesis coinbase pays 50 TLY to the all-zero public key hash, which nobody can spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from consensus.block import Block, BlockHeader, block_merkle_root
from consensus.pow import bits_to_target
from consensus.tx import COIN, NULL_OUTPOINT, Transaction, TxIn, TxOut

GENESIS_VERSION = 1
GENESIS_PUBKEY_HASH = b"\x00" * 20
INITIAL_SUBSIDY = 50 * COIN
"""New coins a block may create before the first halving (SPEC 2.4), on every network."""
GENESIS_REWARD = INITIAL_SUBSIDY
"""The genesis coinbase pays the subsidy of height 0."""


@dataclass(frozen=True)
class NetworkParams:
    """Consensus parameters of one network."""

    name: str
    magic: bytes
    default_port: int
    address_version: int
    coin_type: int
    pow_limit_bits: int
    retarget_interval: int | None
    """Blocks between retargets; ``None`` means never (regtest: bits always ``pow_limit``)."""
    target_spacing: int
    halving_interval: int
    coinbase_maturity: int
    allow_generate: bool
    """Whether the admin ``generate`` call (mine N blocks at once) is offered."""
    genesis_message: bytes
    genesis_time: int
    genesis_nonce: int
    xpub_version: int = 0x02042A35
    """BIP32 version bytes of an extended public key on this network (regtest's ``Rpub...``)."""
    xprv_version: int = 0x020425FB
    """BIP32 version bytes of an extended private key on this network (regtest's ``Rprv...``)."""

    @property
    def pow_limit(self) -> int:
        """The easiest target allowed, as a number."""
        return bits_to_target(self.pow_limit_bits)

    @property
    def target_timespan(self) -> int:
        """Seconds one retarget interval should take (Bitcoin's ``nPowTargetTimespan``)."""
        return (self.retarget_interval or 1) * self.target_spacing

    @cached_property
    def genesis(self) -> Block:
        """The genesis block."""
        return build_genesis(self, self.genesis_nonce)

    @cached_property
    def genesis_hash(self) -> bytes:
        return self.genesis.hash()


def build_genesis(params: NetworkParams, nonce: int, time: int | None = None) -> Block:
    """The genesis block of ``params`` with the given nonce (and time, default its own)."""
    coinbase = Transaction(
        version=1,
        inputs=(TxIn(NULL_OUTPOINT, b"", (0).to_bytes(4, "little") + params.genesis_message),),
        outputs=(TxOut(GENESIS_REWARD, GENESIS_PUBKEY_HASH),),
        locktime=0,
    )
    root, _ = block_merkle_root([coinbase])  # its txid is its wtxid: the same root either way
    header = BlockHeader(
        version=GENESIS_VERSION,
        prev_hash=b"\x00" * 32,
        merkle_root=root,
        time=params.genesis_time if time is None else time,
        bits=params.pow_limit_bits,
        nonce=nonce,
    )
    return Block(header, (coinbase,))


MAIN = NetworkParams(
    name="main",
    magic=bytes.fromhex("f1a7c0de"),
    default_port=8833,
    address_version=0x41,
    coin_type=1987,
    pow_limit_bits=0x1D00FFFF,
    retarget_interval=2016,
    target_spacing=600,
    halving_interval=210_000,
    coinbase_maturity=100,
    allow_generate=False,
    genesis_message=b"Tally main 2026-11-22: Bitcoin's rules, written in Python",
    genesis_time=1795305600,
    genesis_nonce=906500163,
    xpub_version=0x022DBF5D,
    xprv_version=0x022DBB23,
)

TEST = NetworkParams(
    name="test",
    magic=bytes.fromhex("0b7a11e5"),
    default_port=18833,
    address_version=0x80,
    coin_type=1,
    # About 2**25 hashes a block: some 30 s for one Python core at ~1.2M SHA256d/s.
    pow_limit_bits=0x1D7FFFFF,
    retarget_interval=60,
    target_spacing=30,
    halving_interval=210_000,
    coinbase_maturity=100,
    allow_generate=False,
    genesis_message=b"Tally test 2026-11-22: thirty-second blocks",
    genesis_time=1795305600,
    genesis_nonce=2119027,
    xpub_version=0x0218F4C9,
    xprv_version=0x0218F08F,
)

REGTEST = NetworkParams(
    name="regtest",
    magic=bytes.fromhex("fa1bdab5"),
    default_port=18844,
    address_version=0x7A,
    coin_type=1,
    pow_limit_bits=0x207FFFFF,
    retarget_interval=None,
    target_spacing=600,
    halving_interval=150,
    coinbase_maturity=100,
    allow_generate=True,
    genesis_message=b"Tally regtest",
    genesis_time=1795305600,
    genesis_nonce=1,
    xpub_version=0x02042A35,
    xprv_version=0x020425FB,
)

NETWORKS: dict[str, NetworkParams] = {p.name: p for p in (MAIN, TEST, REGTEST)}


def get_params(name: str) -> NetworkParams:
    """The parameters of network ``name`` (``main``, ``test`` or ``regtest``)."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; expected one of {sorted(NETWORKS)}") from None
