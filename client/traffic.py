"""``tally-devnet traffic``: payments among throwaway dev wallets at a steady rate (SPEC 6).

Job: ``Traffic`` makes ``wallets`` throwaway keys, funds each with ``COINS_EACH`` coins in one
payment from the dev wallet (``tally-wallet send``, so the dev wallet's keys stay in its process),
confirmed by one block on node 0, then sends a payment every ``1 / rate`` seconds: a random
wallet pays a random other one a random small amount, with a fee rate drawn from ``FEE_RATES``,
change back to itself. Payments are built
and signed here with ``consensus`` (the keys are devnet throwaways, never written anywhere) and
submitted through ``client.http.Client.post_tx`` to a random node, so blocks carry a mix of fee
rates and the explorer's charts have something to show.

Invariants: a coin is spent at most once (it leaves the pool when a payment using it is sent);
a payment the node refuses because its chain of unconfirmed parents is too long (or for any
other reason) is not retried with the same coin until ``RETRY_AFTER`` seconds pass; the loop
stops after ``count`` payments, or on ``KeyboardInterrupt`` (Ctrl-C) with ``sent`` counting
what went out. Nothing is retried forever: ``MAX_FAILURES`` refusals in a row stop it.

Left to others: mining (the devnet's automine), the dev wallet (``client.devnet``).
"""

from __future__ import annotations

import collections
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from client.http import NodeError
from consensus import (
    COIN,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    encode_address,
    get_params,
    hash160,
    pubkey_from_privkey,
    sign_transaction,
)

if TYPE_CHECKING:
    from client.devnet import DevnetControl

COINS_EACH = 10
FUND_EACH = COIN // 2
"""Base units in each coin a wallet is funded with."""
FEE_RATES = (1, 2, 3, 5, 8, 13, 21, 34)
"""Base units per byte the payments draw from."""
RETRY_AFTER = 5.0
MAX_FAILURES = 50
MIN_PAYMENT = COIN // 10_000


@dataclass
class Coin:
    outpoint: OutPoint
    amount: int
    owner: int
    ready_at: float = 0.0


class Traffic:
    """Steady payments among ``wallets`` throwaway wallets on the devnet of ``control``."""

    def __init__(
        self,
        control: DevnetControl,
        wallets: int = 5,
        rate: float = 2.0,
        seed: int | None = None,
    ) -> None:
        if not 2 <= wallets <= 100:
            raise ValueError("traffic needs 2 to 100 wallets")
        if not 0 < rate <= 100:
            raise ValueError("traffic's rate is more than 0 and at most 100 payments a second")
        self.control = control
        self.rate = rate
        self.random = random.Random(seed)  # noqa: S311 - varied traffic, not secrets
        self.params = get_params("regtest")
        self.keys = [os.urandom(32) for _ in range(wallets)]
        self.hashes = [hash160(pubkey_from_privkey(k)) for k in self.keys]
        self.coins: collections.deque[Coin] = collections.deque()
        self.sent = 0

    def addresses(self) -> list[str]:
        return [encode_address(h, self.params) for h in self.hashes]

    def fund(self) -> str:
        """One payment from the dev wallet: ``COINS_EACH`` coins to each wallet."""
        args: list[str] = []
        for address in self.addresses():
            args += [address, f"{FUND_EACH / COIN:.8f}"] * COINS_EACH
        sent = self.control.wallet("send", *args)
        txid = str(sent["txid"])
        outputs = self.control.nodes[0].tx(txid).outputs
        owner_of = {address: i for i, address in enumerate(self.addresses())}
        for index, out in enumerate(outputs):
            if out.address in owner_of and out.amount == FUND_EACH:
                self.coins.append(
                    Coin(
                        OutPoint(bytes.fromhex(txid)[::-1], index),
                        out.amount,
                        owner_of[out.address],
                    )
                )
        # Confirmed at once (one block on node 0): the payments that follow are each a chain
        # of their own, not all descendants of one unconfirmed transaction (the mempool takes
        # 25 of those at most).
        self.control.mine(1)
        return txid

    def payment(self, coin: Coin) -> tuple[Transaction, list[Coin]]:
        """A signed payment spending ``coin``, and the coins it makes (the payee's, the
        change)."""
        payee = self.random.choice([i for i in range(len(self.keys)) if i != coin.owner])
        rate = self.random.choice(FEE_RATES)
        amount = self.random.randint(MIN_PAYMENT, max(MIN_PAYMENT, coin.amount // 4))
        fee = 0
        for _ in range(3):  # the size depends a little on the amounts' encodings
            change = coin.amount - amount - fee
            if change < MIN_PAYMENT:
                raise ValueError("coin too small")
            outputs = (TxOut(amount, self.hashes[payee]), TxOut(change, self.hashes[coin.owner]))
            unsigned = Transaction(1, (TxIn(coin.outpoint),), outputs, 0)
            spent = TxOut(coin.amount, self.hashes[coin.owner])
            tx = sign_transaction(unsigned, [spent], [self.keys[coin.owner]], self.params)
            if fee >= rate * tx.size():
                break
            fee = rate * tx.size()
        txid = tx.txid()
        made = [
            Coin(OutPoint(txid, 0), amount, payee),
            Coin(OutPoint(txid, 1), tx.outputs[1].amount, coin.owner),
        ]
        return tx, made

    def run(self, count: int | None = None) -> int:
        """Fund the wallets, then pay until ``count`` payments went out (forever if None)."""
        self.fund()
        failures = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while count is None or self.sent < count:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(next_at + interval, time.monotonic() - interval)
            coin = self._next_coin()
            if coin is None:
                time.sleep(0.2)
                continue
            try:
                tx, made = self.payment(coin)
            except ValueError:
                continue  # dust: drop the coin
            node = self.random.choice(self.control.nodes)
            try:
                node.post_tx(tx.serialize())
            except NodeError:
                failures += 1
                if failures >= MAX_FAILURES:
                    raise
                coin.ready_at = time.monotonic() + RETRY_AFTER
                self.coins.append(coin)
                continue
            failures = 0
            self.sent += 1
            self.coins.extend(made)
        return self.sent

    def _next_coin(self) -> Coin | None:
        now = time.monotonic()
        for _ in range(len(self.coins)):
            coin = self.coins.popleft()
            if coin.ready_at <= now:
                return coin
            self.coins.append(coin)
        return None
