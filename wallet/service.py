"""The wallet's operations: open, scan, balance, UTXOs, history, send, bump-fee, wait.

``Wallet`` joins an unlocked keystore (``wallet.keystore``), the keys it holds (``wallet.keys``;
for a watch-only wallet only the account's public keys, ``wallet.watchonly``) and a node
(``client.http.Client``, whose answers are ``client.models``' typed shapes). Everything the wallet
knows about coins comes from the node's public address routes (a watch-only wallet: its account
routes, ``/xpub/...``), asked fresh on every command; the only state kept between commands is in
the keystore: the receive and change indexes, the node URL, labels and frozen coins
(``Wallet.meta``, saved encrypted again under the key derived at unlock). Frozen coins are put
apart by every scan (``Scan.frozen``), so no selection ever sees them; sweeps, fees from the
amount, named coins, CPFP and the fee cap are ``wallet.spending``'s.

The scan (``Wallet.scan``) walks each BIP44 chain from index 0 and stops after ``GAP_LIMIT`` (20)
unused addresses in a row past the last used address (and never before the last one handed out,
which ``address --new`` keeps within 20 of the last used one); an address
is used if the node has seen any transaction touching it, confirmed or in the mempool. So a
restored wallet finds every coin sent to an address within 20 of a used one, and a scan moves the
indexes past every used address: the change address of a new transaction is always fresh.

Balances are the sum over the wallet's addresses of the node's own figures (``confirmed``,
``unconfirmed``, ``immature``, SPEC 3.5), so the wallet and the explorer never disagree.

The node's relay policy (minimum relay fee rate, incremental relay fee rate, largest standard
transaction) comes from its ``/info`` (``Wallet.policy``, read with the network check), so the
wallet builds what that node accepts without a copy of the node's values (docs/DECISIONS.md);
consensus values (coinbase maturity) come from ``consensus``' parameters of the wallet's network,
which the node must be on.

Raises ``WalletError`` (a message for people) for anything a person can fix; node failures come
as ``client.http`` exceptions (``NodeError``, ``NodeUnreachableError``), selection failures as
``wallet.coinselect`` ones. Private keys are derived only to sign, in this process.

The plain types (``Scan``, ``AddressState``, ``Balance``, ``SendResult``), ``WalletError`` and the
small checks ``wallet.spending`` and ``wallet.watchonly`` share with this module are defined in
``wallet.model`` (so that those two need not import this module back) and re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from client import models as m
from client.http import Client, NodeError
from client.models import GAP_LIMIT
from consensus import encode_address, get_params
from wallet import keystore, spending
from wallet.builder import build_signed, unsigned_transaction
from wallet.coinselect import Payment, Selection, Utxo, fee_for, select_coins
from wallet.keys import (
    CHANGE,
    RECEIVE,
    Account,
    KeyId,
    mnemonic_to_seed,
)
from wallet.model import (
    AddressState,
    Balance,
    Scan,
    SendResult,
    WalletError,
    fee_rate_check,
    outpoint_text,
    parse_address,
)
from wallet.watchonly import PublicAccount, scan_account

FEE_TARGET = 3
"""Default confirmation target (blocks) whose ``/fee-estimates`` rate ``send`` uses."""
POLL_SECONDS = 0.5
DEFAULT_MAX_FEE = spending.DEFAULT_MAX_FEE


class Wallet:
    """An unlocked wallet file and, for the commands that need one, a node."""

    def __init__(
        self,
        path: Path,
        store: keystore.Keystore,
        secret: keystore.Secrets | None,
        client: Client | None,
        key: bytes | None = None,
    ) -> None:
        """``secret`` is None for a watch-only wallet; ``key`` (from ``unlock_with_key``) lets
        labels and frozen coins be saved, encrypted again, without asking for the password."""
        self.path = path
        self.store = store
        self.params = get_params(store.network)
        if store.coin_type != self.params.coin_type:
            raise WalletError(
                f"wallet {path} says coin type {store.coin_type}, but {store.network} uses "
                f"{self.params.coin_type}"
            )
        self._secret = secret
        self._key = key
        self.account: Account | PublicAccount
        if secret is None:
            if store.watch_xpub is None:
                raise WalletError(f"wallet {path} is locked")
            self.account = PublicAccount(store.watch_xpub, self.params)
        else:
            self.account = Account(
                mnemonic_to_seed(secret.mnemonic, secret.passphrase), self.params
            )
        if self.account.path != store.account_path:
            raise WalletError(f"wallet {path} uses path {store.account_path}, not supported")
        self._client = client
        self._policy: m.Policy | None = None

    @property
    def watch_only(self) -> bool:
        return self._secret is None

    @property
    def meta(self) -> keystore.Metadata:
        """Labels and frozen coins (in the ciphertext of a full wallet, in clear otherwise)."""
        return self.store.clear_meta if self._secret is None else self._secret.meta

    def save_meta(self, meta: keystore.Metadata) -> None:
        if self._secret is None:
            self.save(replace(self.store, clear_meta=meta))
            return
        if self._key is None:  # pragma: no cover - the CLI always unlocks with the key
            raise WalletError("the wallet was opened without its key; cannot save labels")
        secret = replace(self._secret, meta=meta)
        self.save(self.store.resealed(secret, self._key))
        self._secret = secret

    def upgrade_format(self) -> None:
        """Write a version 1 file as the current version (sealed again under the same key)."""
        if self.store.version < keystore.VERSION and self._secret and self._key:
            self.save(self.store.resealed(self._secret, self._key))

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:  # pragma: no cover - the CLI always passes one
            raise WalletError("no node configured")
        return self._client

    def save(self, store: keystore.Keystore) -> None:
        if store != self.store:
            keystore.save(self.path, store)
            self.store = store

    def check_node(self) -> m.Info:
        """The node's ``/info``; ``WalletError`` if it is on another network than the wallet.
        Its relay policy is kept for the command (``policy``)."""
        info = self.client.info()
        if info.network != self.params.name:
            raise WalletError(
                f"the node at {self.client.url} is on the {info.network} network, "
                f"this wallet is for {self.params.name}"
            )
        self._policy = info.policy
        return info

    @property
    def policy(self) -> m.Policy:
        """The node's relay policy (its ``/info``), asked once per command."""
        if self._policy is None:
            return self.check_node().policy
        return self._policy

    @property
    def min_relay_fee_rate(self) -> Decimal:
        """The node's minimum relay fee rate, base units per byte."""
        return Decimal(self.policy.min_relay_fee_rate)

    def address_of(self, key: KeyId) -> str:
        return self.account.address(key.chain, key.index)

    def receive_address(self) -> tuple[KeyId, str]:
        key = KeyId(RECEIVE, self.store.receive_index)
        return key, self.address_of(key)

    def new_receive_address(self) -> tuple[KeyId, str]:
        """Hand out the next receive address, keeping within the gap limit of the last used."""
        nxt = self.store.receive_index + 1
        if nxt - self.store.receive_used > GAP_LIMIT:
            raise WalletError(
                f"{GAP_LIMIT} unused receive addresses are already handed out; a restore would "
                "not find coins sent past them. Use one of them first (see 'address')"
            )
        self.save(self.store.with_indexes(receive_index=nxt))
        return self.receive_address()

    # --- scanning -------------------------------------------------------------------------------

    def _scan_chain(self, chain: int, issued: int) -> list[AddressState]:
        """Addresses of ``chain`` from 0 until ``GAP_LIMIT`` unused in a row past the last used
        one, and at least the ``issued`` first ones (those handed out)."""
        found: list[AddressState] = []
        last_used = -1
        while True:
            end = max(last_used + 1 + GAP_LIMIT, issued)
            start = len(found)
            if start >= end:
                return found
            keys = [KeyId(chain, i) for i in range(start, end)]
            addresses = [self.address_of(k) for k in keys]
            summaries = self.client.map(self.client.address, addresses)
            for key, address, summary in zip(keys, addresses, summaries, strict=True):
                state = AddressState(
                    key, address, self.account.pubkey_hash(key.chain, key.index), summary
                )
                found.append(state)
                if state.used:
                    last_used = key.index

    def scan(self, with_utxos: bool = True) -> Scan:
        """Ask the node about every address of the wallet (gap limit), then update the indexes;
        frozen coins are put apart (``Scan.frozen``), never among those selected."""
        scan = self._scan(with_utxos)
        frozen = set(self.meta.frozen)
        if frozen:
            scan.frozen = [u for u in scan.utxos if outpoint_text(u) in frozen]
            scan.utxos = [u for u in scan.utxos if outpoint_text(u) not in frozen]
        return scan

    def _scan(self, with_utxos: bool) -> Scan:
        if self.watch_only:
            return scan_account(self, with_utxos)
        info = self.check_node()
        store = self.store
        addresses = self._scan_chain(RECEIVE, store.receive_index + 1)
        addresses += self._scan_chain(CHANGE, store.change_index)
        scan = Scan(info.height, addresses)
        used_receive = scan.last_used(RECEIVE)
        self.save(
            store.with_indexes(
                receive_index=max(store.receive_index, used_receive + 1),
                receive_used=max(store.receive_used, used_receive),
                change_index=max(store.change_index, scan.last_used(CHANGE) + 1),
            )
        )
        if with_utxos:
            holders = [a for a in addresses if a.holds_coins]
            lists = self.client.map(self.client.address_utxos, [a.address for a in holders])
            for state, items in zip(holders, lists, strict=True):
                for u in items:
                    scan.utxos.append(
                        Utxo(
                            bytes.fromhex(u.txid)[::-1],
                            u.index,
                            u.amount,
                            state.pubkey_hash,
                            u.height,
                            u.coinbase,
                        )
                    )
        return scan

    # --- reading --------------------------------------------------------------------------------

    def utxo_rows(self, scan: Scan) -> list[dict[str, Any]]:
        next_height = scan.tip + 1
        rows = []
        frozen = {id(u) for u in scan.frozen}
        for u in [*scan.utxos, *scan.frozen]:
            state = scan.by_hash[u.pubkey_hash]
            rows.append(
                {
                    "txid": u.txid[::-1].hex(),
                    "index": u.index,
                    "amount": u.amount,
                    "address": state.address,
                    "path": self.account.key_path(state.key),
                    "height": u.height,
                    "confirmations": 0 if u.height is None else scan.tip - u.height + 1,
                    "coinbase": u.coinbase,
                    "spendable": u.spendable(next_height, self.params.coinbase_maturity),
                    "frozen": id(u) in frozen,
                }
            )
        rows.sort(key=lambda r: (r["height"] is None, r["height"] or 0, r["txid"], r["index"]))
        return rows

    def history(self, scan: Scan) -> list[dict[str, Any]]:
        """Every transaction touching the wallet, newest first (unconfirmed ones on top), with
        its net effect, direction and counterparty; and the wallet's own replaced transactions
        (``bump-fee``) the node still remembers, marked with what replaced them."""
        used = [a for a in scan.addresses if a.used]
        if self.watch_only:  # one account route instead of one per address
            pages = [self._all_txs(None)]
        else:
            pages = self.client.map(self._all_txs, [a.address for a in used])
        txs: dict[str, m.Transaction] = {}
        for page in pages:
            for tx in page:
                txs.setdefault(tx.txid, tx)
        rows = [history_row(tx, scan.by_address) for tx in txs.values()]
        replaced = self._secret.replaced if self._secret is not None else ()
        originals = [o for o, _ in replaced if o not in txs]
        for original in self.client.map(self._replaced_tx, originals):
            if original is not None:
                rows.append(history_row(original, scan.by_address))
        # Unconfirmed first, a replaced transaction after the live ones (its replacement is the
        # newer), then confirmed ones newest first.
        rows.sort(
            key=lambda r: (
                r["height"] is not None,
                r["direction"] == "replaced",
                -(r["height"] or 0),
                r["txid"],
            ),
        )
        return rows

    def _replaced_tx(self, txid: str) -> m.Transaction | None:
        """``GET /tx/{txid}`` of a transaction this wallet replaced, if the node still knows it
        as replaced (a node that forgot it, or never knew, gives None)."""
        try:
            tx = self.client.tx(txid)
        except NodeError as err:
            if err.status == 404:
                return None
            raise
        return tx if replacement_of(tx.status) is not None else None

    def record_replacement(self, original: str, replacement: str) -> None:
        """Remember (encrypted, in the wallet file) that ``replacement`` replaced ``original``,
        so ``history`` can show it (sealed again under the key the wallet was unlocked with)."""
        if self._secret is None or self._key is None:
            return  # a watch-only wallet holds no encrypted part; the node still knows
        secret = self._secret.with_replacement(original, replacement)
        self.save(self.store.resealed(secret, self._key))
        self._secret = secret

    def _all_txs(self, address: str | None) -> list[m.Transaction]:
        """Every transaction of ``address`` (of the watch-only account if None), paged."""
        out: list[m.Transaction] = []
        after: str | None = None
        while True:
            if address is None:
                assert self.store.watch_xpub is not None
                page = self.client.xpub_txs(self.store.watch_xpub, after)
            else:
                page = self.client.address_txs(address, after)
            out.extend(page)
            if len(page) < 25:
                return out
            after = page[-1].txid

    # --- sending --------------------------------------------------------------------------------

    def default_fee_rate(self) -> Decimal:
        estimates = self.client.fee_estimates()
        rate = estimates.get(FEE_TARGET) or max(estimates.values(), default=1)
        return max(self.min_relay_fee_rate, Decimal(rate))

    def key_for(self, scan: Scan) -> Callable[[bytes], bytes]:
        def key_for(pubkey_hash: bytes) -> bytes:
            key = scan.by_hash[pubkey_hash].key
            return self.account.privkey(key.chain, key.index)

        return key_for

    def send(
        self,
        payments: Sequence[tuple[str, int]],
        fee_rate: Decimal | None,
        dry_run: bool,
        *,
        subtract_fee: bool = False,
        coins: Sequence[str] = (),
        max_fee: int = DEFAULT_MAX_FEE,
        sign: bool = True,
    ) -> SendResult:
        """Pay ``(address, amount)`` pairs; broadcast unless ``dry_run`` or not ``sign`` (then
        the result's transaction is unsigned, for ``--unsigned``). ``coins`` (``TXID:N``) are
        exactly the coins spent; ``subtract_fee`` takes the fee from the payments; a fee above
        ``max_fee`` is refused before signing (``wallet.spending``)."""
        wanted = [Payment(parse_address(a, self.params), amount) for a, amount in payments]
        fee_rate_check(fee_rate, self.min_relay_fee_rate)
        scan = self.scan()
        rate = self.default_fee_rate() if fee_rate is None else fee_rate
        change_key = KeyId(CHANGE, self.store.change_index)
        change_hash = self.account.pubkey_hash(change_key.chain, change_key.index)
        next_height, maturity = scan.tip + 1, self.params.coinbase_maturity
        available: Sequence[Utxo] = scan.utxos
        required: Sequence[Utxo] = ()
        if coins:
            required = spending.named_coins(scan, coins, next_height, maturity)
            available = ()
        if subtract_fee:
            selection = spending.subtract_fee_selection(
                available, wanted, rate, change_hash, next_height, maturity, required
            )
        else:
            selection = select_coins(
                available,
                wanted,
                rate,
                change_hash,
                next_height,
                maturity,
                required=required,
                max_size=self.policy.max_standard_tx_size,
            )
        spending.check_max_fee(
            selection.fee,
            max_fee,
            f"{len(selection.inputs)} inputs, {selection.size} bytes at {rate} base units per byte",
        )
        change_address = (
            self.address_of(change_key) if selection.change_position is not None else None
        )
        if not sign:
            unsigned = unsigned_transaction(selection)
            if change_address is not None:
                self.save(self.store.with_indexes(change_index=change_key.index + 1))
            return SendResult(
                unsigned.txid()[::-1].hex(), unsigned, selection, change_address, False
            )
        tx = build_signed(selection, self.key_for(scan), self.params)
        txid = tx.txid()[::-1].hex()
        if dry_run:
            return SendResult(txid, tx, selection, change_address, False)
        if change_address is not None:
            # Saved before broadcasting, so a change address is never used twice.
            self.save(self.store.with_indexes(change_index=change_key.index + 1))
        sent = self.client.post_tx(tx.serialize())
        return SendResult(sent, tx, selection, change_address, True)

    def bump_fee(
        self,
        txid: str,
        fee_rate: Decimal | None,
        dry_run: bool,
        max_fee: int = DEFAULT_MAX_FEE,
    ) -> SendResult:
        """Replace the wallet's unconfirmed ``txid`` by one paying a higher fee (RBF rules of
        docs/DECISIONS.md): same inputs and payments, less change or more inputs."""
        txid = txid.strip().lower()
        if len(txid) != 64 or any(c not in "0123456789abcdef" for c in txid):
            raise WalletError(f"{txid!r} is not a transaction id (64 hex characters)")
        try:
            original = self.client.tx(txid)
        except NodeError as err:
            if err.status == 404:
                raise WalletError(f"the node does not know transaction {txid}") from None
            raise
        replaced_by = replacement_of(original.status)
        if replaced_by is not None:
            raise WalletError(
                f"transaction {txid} was already replaced by {replaced_by}; bump that one instead"
            )
        if isinstance(original.status, m.TxConfirmed):
            raise WalletError(
                f"transaction {txid} is already confirmed (block "
                f"{original.status.block_height}); there is nothing to bump"
            )
        scan = self.scan()
        required: list[Utxo] = []
        for n, i in enumerate(original.inputs):
            state = scan.by_address.get(i.address or "")
            if state is None or i.amount is None:
                raise WalletError(
                    f"input {n} of {txid} is not this wallet's: only its own transactions "
                    "can be bumped"
                )
            required.append(
                Utxo(bytes.fromhex(i.txid)[::-1], i.index, i.amount, state.pubkey_hash, None)
            )
        payments: list[Payment] = []
        change_hash: bytes | None = None
        for o in original.outputs:
            state = scan.by_address.get(o.address)
            if change_hash is None and state is not None and state.key.chain == CHANGE:
                change_hash = state.pubkey_hash
            else:
                payments.append(Payment(parse_address(o.address, self.params), o.amount))
        if not payments:
            raise WalletError(f"{txid} pays only this wallet's change; nothing to bump")
        evicted_fees, evicted = self._descendants(txid)
        old_fee, old_size = original.fee or 0, original.size
        old_rate = Decimal(old_fee) / Decimal(old_size)
        replaced = old_fee + evicted_fees

        incremental = self.policy.incremental_relay_fee_rate

        def min_fee(size: int) -> int:
            # Above the original's fee rate, and the evicted fees plus the incremental rate.
            beat_rate = (old_fee * size) // old_size + 1
            return max(beat_rate, replaced + incremental * size)

        if fee_rate is None:
            rate = max(self.default_fee_rate(), Decimal(int(old_rate)) + 1)
        elif fee_rate <= old_rate:
            raise WalletError(
                f"a replacement must pay more than the original's {old_rate:.3f} base units per "
                f"byte; --fee-rate {fee_rate} does not"
            )
        else:
            rate = fee_rate
        fresh_change = change_hash is None
        change_key = KeyId(CHANGE, self.store.change_index)
        if change_hash is None:
            change_hash = self.account.pubkey_hash(change_key.chain, change_key.index)
        available = [u for u in scan.utxos if u.txid[::-1].hex() not in evicted]
        selection = select_coins(
            available,
            payments,
            rate,
            change_hash,
            scan.tip + 1,
            self.params.coinbase_maturity,
            required=required,
            min_fee=min_fee,
            max_size=self.policy.max_standard_tx_size,
        )
        reason = f"{selection.size} bytes at {rate} base units per byte"
        if evicted_fees:
            reason = (
                f"it must pay more than the {old_fee + evicted_fees} base units of fees of the "
                f"original and its {len(evicted) - 1} unconfirmed descendants it evicts (a pinned "
                "descendant)"
            )
        spending.check_max_fee(selection.fee, max_fee, reason)
        tx = build_signed(selection, self.key_for(scan), self.params)
        change_address = (
            encode_address(change_hash, self.params)
            if selection.change_position is not None
            else None
        )
        new_txid = tx.txid()[::-1].hex()
        if dry_run:
            return SendResult(new_txid, tx, selection, change_address, False, txid)
        if fresh_change and selection.change_position is not None:
            self.save(self.store.with_indexes(change_index=change_key.index + 1))
        sent = self.client.post_tx(tx.serialize())
        return SendResult(sent, tx, selection, change_address, True, txid)

    def _descendants(self, txid: str) -> tuple[int, set[str]]:
        """Fees of the unconfirmed transactions spending ``txid``'s outputs (recursively), and
        the set of their txids with ``txid`` itself: a replacement evicts them all."""
        seen = {txid}
        todo = [txid]
        fees = 0
        while todo:
            current = todo.pop()
            for spend in self.client.outspends(current):
                if not isinstance(spend, m.SpentBy) or spend.confirmed or spend.txid in seen:
                    continue
                seen.add(spend.txid)
                todo.append(spend.txid)
                fees += self.client.tx(spend.txid).fee or 0
        return fees, seen

    def wait(
        self,
        txid: str,
        confirmations: int,
        progress: Callable[[int], None],
        poll: float = POLL_SECONDS,
    ) -> m.TxStatus:
        """Poll ``/tx/{txid}/status`` until ``confirmations``; ``progress(n)`` on each change."""
        shown = -1
        while True:
            try:
                status = self.client.tx_status(txid)
            except NodeError as err:
                if err.status == 404:
                    raise WalletError(
                        f"transaction {txid} is no longer known to the node (replaced or evicted)"
                    ) from None
                raise
            replaced_by = replacement_of(status)
            if replaced_by is not None:
                raise WalletError(f"transaction {txid} was replaced by {replaced_by}")
            count = confirmations_of(status)
            if count != shown:
                progress(count)
                shown = count
            if count >= confirmations:
                return status
            time.sleep(poll)


def history_row(tx: m.Transaction, mine: Mapping[str, Any]) -> dict[str, Any]:
    """One ``history`` row from the node's ``GET /tx`` shape (SPEC 3.5); ``mine`` holds the
    wallet's addresses. ``direction`` is ``received``, ``sent``, ``to self`` (every output is the
    wallet's own), ``mined`` (a coinbase) or ``replaced``; ``counterparty`` is the first address
    on the other side (None for a coinbase or a payment to self), ``counterparties`` all of them."""
    inputs, outputs = tx.inputs, tx.outputs
    received = sum(o.amount for o in outputs if o.address in mine)
    sent = sum(i.amount or 0 for i in inputs if i.address in mine)
    coinbase = bool(inputs and inputs[0].coinbase)
    status = tx.status
    replaced_by = replacement_of(status)
    if sent:
        others = [o.address for o in outputs if o.address not in mine]
    else:
        others = [i.address for i in inputs if i.address and i.address not in mine]
    others = list(dict.fromkeys(others))
    confirmed = status if isinstance(status, m.TxConfirmed) else None
    if replaced_by is not None:
        direction = "replaced"
    elif coinbase:
        direction = "mined"
    elif sent and not others:
        direction = "to self"
    else:
        direction = "sent" if sent else "received"
    return {
        "txid": tx.txid,
        "height": None if confirmed is None else confirmed.block_height,
        "confirmations": confirmations_of(status),
        "time": None if confirmed is None else confirmed.block_time,
        "direction": direction,
        "counterparty": others[0] if others else None,
        "counterparties": others,
        "received": received,
        "sent": sent,
        "net": received - sent,
        "fee": tx.fee if sent else None,
        "coinbase": coinbase,
        "replaced_by": replaced_by,
    }


def replacement_of(status: m.TxStatus) -> str | None:
    """The txid that replaced a transaction, from the node's ``status``
    (``{"confirmed": false, "replaced_by": TXID}``, SPEC 3.5, ``client.models.TxReplaced``), or
    None for the other variants (the client refuses an answer whose ``replaced_by`` is not a
    txid)."""
    return status.replaced_by if isinstance(status, m.TxReplaced) else None


def confirmations_of(status: m.TxStatus) -> int:
    """Confirmations of a transaction in ``status`` (0 unless in a block of the best chain)."""
    return status.confirmations if isinstance(status, m.TxConfirmed) else 0


def fee_rate_of(selection: Selection) -> Decimal:
    """The fee rate a selection actually pays (fee / size)."""
    return Decimal(selection.fee) / Decimal(selection.size)


__all__ = [
    "AddressState",
    "Balance",
    "Scan",
    "SendResult",
    "Wallet",
    "WalletError",
    "confirmations_of",
    "fee_for",
    "fee_rate_check",
    "fee_rate_of",
    "outpoint_text",
    "parse_address",
    "replacement_of",
]
