"""Watch-only wallets: an account known by its extended public key alone (SPEC 4, offline signing).

``PublicAccount`` has the public half of ``wallet.keys.Account``'s interface: addresses, public
keys and derivation paths of ``m/44'/<coin type>'/0'/<chain>/<index>`` from the account xpub
(``Rpub...`` on regtest, ``consensus.extkey``), and no private key: ``privkey`` raises.

``scan_account`` asks the node's account routes (SPEC 3.5 ``/xpub/{xpub}``, ``/xpub/{xpub}/utxo``)
instead of one request per address: one summary (totals, used addresses with their paths, the
next unused index of each chain, gap limit 20 on the node's side) and the unspent outputs in
pages. The node's figures are taken as the balance, as a full wallet takes the sum of its
addresses'.

Invariant: nothing here ever holds, derives or asks for a secret. Left to others: the file
(``wallet.keystore.watch_only``), writing unsigned transactions (``wallet.unsigned``). The
``Scan`` it returns is ``wallet.model``'s; ``wallet.service`` is imported only for annotations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bip32 import BIP32  # type: ignore[import-untyped]

from client import models as m
from consensus import ExtendedKeyError, NetworkParams, decode_xpub
from wallet.coinselect import Utxo
from wallet.keys import CHANGE, HARDENED, RECEIVE, AccountKeys, KeyId, account_path
from wallet.model import AddressState, Balance, Scan

if TYPE_CHECKING:
    from wallet.service import Wallet

MAX_UTXO_PAGES = 1000
"""Pages of ``/xpub/{xpub}/utxo`` read at most (a bound on what a node can make us hold)."""
NO_STATS = m.AddressStats(funded_sum=0, spent_sum=0, tx_count=0)


class WatchOnlyError(Exception):
    """A watch-only wallet was asked for something only keys can do."""


class PublicAccount(AccountKeys):
    """BIP44 account 0 from its extended public key: addresses only, no signing keys."""

    def __init__(self, xpub: str, params: NetworkParams) -> None:
        try:
            key = decode_xpub(xpub.strip(), params)
        except ExtendedKeyError as err:
            raise WatchOnlyError(f"not an account key for {params.name}: {err}") from None
        if key.depth != 3:
            raise WatchOnlyError(
                f"this extended key is at depth {key.depth}; a watch-only wallet takes the "
                f"account key (depth 3, {account_path(params)}, as 'tally-wallet info' shows it)"
            )
        self.account_xpub = xpub.strip()
        self.master_fingerprint = None
        """Unknown: the xpub names only its parent's fingerprint."""
        try:
            account = BIP32(chaincode=key.chain_code, pubkey=key.pubkey)
            chains: dict[int, Any] = {}
            for chain in (RECEIVE, CHANGE):
                cc, pk = account.get_extended_pubkey_from_path([chain])
                chains[chain] = BIP32(chaincode=cc, pubkey=pk)
        except Exception as err:  # the bip32 package raises several types for a bad point
            raise WatchOnlyError(f"the account key is not a point on the curve: {err}") from None
        super().__init__(params, chains)

    def privkey(self, chain: int, index: int) -> bytes:
        raise WatchOnlyError(
            "this is a watch-only wallet: it holds no private keys (write the transaction with "
            "--unsigned FILE and sign it with the wallet that has the keys)"
        )


def parse_path(path: str) -> tuple[int, int]:
    """``"<chain>/<index>"`` (as the node's account routes give it) as two integers."""
    chain_text, _, index_text = path.partition("/")
    if not (chain_text.isdigit() and index_text.isdigit()):
        raise ValueError(f"bad derivation path {path!r}")
    chain, index = int(chain_text), int(index_text)
    if chain not in (RECEIVE, CHANGE) or index >= HARDENED:
        raise ValueError(f"bad derivation path {path!r}")
    return chain, index


def scan_account(wallet: Wallet, with_utxos: bool) -> Scan:
    """The watch-only wallet's ``Scan`` from the node's account routes (one summary request,
    and the unspent outputs a page at a time), and its indexes moved past the used addresses."""
    client = wallet.client
    info = wallet.check_node()
    xpub = wallet.store.watch_xpub
    assert xpub is not None
    summary = client.xpub(xpub)
    states: list[AddressState] = []
    for item in summary.addresses:
        chain, index = parse_path(item.path)
        key = KeyId(chain, index)
        address = wallet.account.address(chain, index)
        if address != item.address:
            raise WatchOnlyError(f"the node derived {item.address} at {item.path}, not ours")
        # the account route gives each address's count and balance, not its sums: what the
        # scan needs of a summary (used, the balance) is taken from those
        one = m.AddressSummary(
            address=address,
            chain_stats=m.AddressStats(funded_sum=0, spent_sum=0, tx_count=item.tx_count),
            mempool_stats=NO_STATS,
            balance=m.Balance(confirmed=item.balance, unconfirmed=0, immature=0),
        )
        states.append(AddressState(key, address, wallet.account.pubkey_hash(chain, index), one))
    b = summary.balance
    scan = Scan(info.height, states, totals=Balance(b.confirmed, b.unconfirmed, b.immature))
    store = wallet.store
    next_receive = summary.next_receive_index
    wallet.save(
        store.with_indexes(
            receive_index=max(store.receive_index, next_receive),
            receive_used=max(store.receive_used, next_receive - 1),
            change_index=max(store.change_index, summary.next_change_index),
        )
    )
    if with_utxos:
        for u in client.xpub_utxos(xpub, MAX_UTXO_PAGES):
            chain, index = parse_path(u.path)
            scan.utxos.append(
                Utxo(
                    bytes.fromhex(u.txid)[::-1],
                    u.index,
                    u.amount,
                    wallet.account.pubkey_hash(chain, index),
                    u.height,
                    u.coinbase,
                )
            )
        # addresses holding coins but missing from the summary cannot happen on an honest node
        for coin in scan.utxos:
            if coin.pubkey_hash not in scan.by_hash:
                raise WatchOnlyError("the node listed a coin of an address it did not list as used")
    return scan
