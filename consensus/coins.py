"""Coins (unspent outputs), the coins-view interface, and undo data.

A *coins view* maps an ``OutPoint`` to the ``Coin`` it holds, if unspent. ``connect_block`` and
``disconnect_block`` work against any object with ``get_coin``, ``add_coin`` and ``spend_coin``:
the node passes its LevelDB-backed view, the tests a ``MemoryCoinsView``. ``CoinsViewCache``
layers changes over another view and writes them down only on ``flush()``, which is how a block is
validated without touching the chainstate until it is known to be good (Bitcoin Core's
``CCoinsViewCache``).

Undo data (``BlockUndo``) lists, for each non-coinbase transaction of a block in order, the coins
its inputs spent, in input order: exactly what ``disconnect_block`` needs to put them back, and
what ``tx_fee`` needs to give a confirmed transaction's fee.
Encoding (canonical msgpack)::

    BlockUndo = [[Coin, ...] per non-coinbase tx]
    Coin      = [amount i64, pubkey_hash bin20, height u32, is_coinbase 0|1]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from consensus.encoding import (
    expect_array,
    expect_bytes,
    expect_int64,
    expect_uint,
    pack,
    unpack_canonical,
)
from consensus.tx import OutPoint, Transaction, TxOut


@dataclass(frozen=True)
class Coin:
    """An unspent output with the height of the block that created it."""

    output: TxOut
    height: int
    is_coinbase: bool

    def to_obj(self) -> list[Any]:
        return [self.output.amount, self.output.pubkey_hash, self.height, int(self.is_coinbase)]

    @classmethod
    def from_obj(cls, obj: Any) -> Coin:
        f = expect_array(obj, 4, "coin")
        return cls(
            TxOut(expect_int64(f[0], "amount"), expect_bytes(f[1], "pubkey_hash", 20)),
            expect_uint(f[2], 32, "height"),
            bool(expect_uint(f[3], 1, "is_coinbase")),
        )

    def serialize(self) -> bytes:
        return pack(self.to_obj())

    @classmethod
    def deserialize(cls, data: bytes) -> Coin:
        return cls.from_obj(unpack_canonical(data))


_ABSENT = object()


class CoinsView(Protocol):
    """Read access: the coin at ``outpoint``, or ``None`` if there is none (or it is spent)."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...


class MutableCoinsView(CoinsView, Protocol):
    """A view that blocks can be connected to and disconnected from."""

    def add_coin(self, outpoint: OutPoint, coin: Coin) -> None: ...

    def spend_coin(self, outpoint: OutPoint) -> Coin | None:
        """Remove and return the coin (``None`` if there was none)."""
        ...


class MemoryCoinsView:
    """A complete coins view in a dict: for tests, benchmarks and as a cache's base."""

    def __init__(self, coins: dict[OutPoint, Coin] | None = None) -> None:
        self.coins: dict[OutPoint, Coin] = dict(coins or {})

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get(outpoint)

    def add_coin(self, outpoint: OutPoint, coin: Coin) -> None:
        self.coins[outpoint] = coin

    def spend_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.pop(outpoint, None)

    def __len__(self) -> int:
        return len(self.coins)

    def items(self) -> Iterator[tuple[OutPoint, Coin]]:
        return iter(self.coins.items())


class CoinsViewCache:
    """Changes layered over ``base``; ``flush()`` writes them down, dropping the cache discards.

    ``changes`` maps an outpoint to its new coin, or to ``None`` when a coin of the base was
    spent. A coin both created and spent inside the cache leaves no trace (Core's FRESH rule).
    """

    def __init__(self, base: MutableCoinsView) -> None:
        self.base = base
        self.changes: dict[OutPoint, Coin | None] = {}
        self._fresh: set[OutPoint] = set()

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        coin = self.changes.get(outpoint, _ABSENT)
        if coin is _ABSENT:
            return self.base.get_coin(outpoint)
        return coin  # type: ignore[return-value]

    def add_coin(self, outpoint: OutPoint, coin: Coin) -> None:
        if outpoint not in self.changes:
            self._fresh.add(outpoint)
        self.changes[outpoint] = coin

    def spend_coin(self, outpoint: OutPoint) -> Coin | None:
        coin = self.get_coin(outpoint)
        if coin is None:
            return None
        if outpoint in self._fresh:
            del self.changes[outpoint]
            self._fresh.discard(outpoint)
        else:
            self.changes[outpoint] = None
        return coin

    def flush(self) -> None:
        """Apply every change to the base view and empty the cache."""
        for outpoint, coin in self.changes.items():
            if coin is None:
                self.base.spend_coin(outpoint)
            else:
                self.base.add_coin(outpoint, coin)
        self.changes.clear()
        self._fresh.clear()


def tx_fee(tx: Transaction, spent: Iterable[Coin]) -> int:
    """The fee of non-coinbase ``tx``: what the coins it ``spent`` (its undo data, or the coins
    its inputs look up) hold, less what its outputs pay. The one place a fee is summed from
    spent coins; ``verify_tx_inputs`` has already refused a negative one."""
    return sum(coin.output.amount for coin in spent) - tx.total_out()


@dataclass(frozen=True)
class BlockUndo:
    """The coins each non-coinbase transaction of a block spent, in order."""

    spent: tuple[tuple[Coin, ...], ...]

    def serialize(self) -> bytes:
        return pack([[c.to_obj() for c in coins] for coins in self.spent])

    @classmethod
    def deserialize(cls, data: bytes) -> BlockUndo:
        obj = expect_array(unpack_canonical(data), None, "undo")
        return cls(
            tuple(
                tuple(Coin.from_obj(c) for c in expect_array(coins, None, "tx undo"))
                for coins in obj
            )
        )
