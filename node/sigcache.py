"""The signature cache shared by the mempool and block validation.

A signature that verified once (same public key, signature and digest) is not verified again:
when a block arrives whose transactions already passed the mempool, connecting it costs no
elliptic-curve work. Only successes are cached; a failure is always re-checked.

The cache is bounded (oldest entries go first) and keyed by the exact bytes checked, so a hit can
never accept something the engine would refuse. ``verify`` has the signature of
``consensus.verify_signature`` and is what the node injects into ``Mempool`` (one transaction,
verified inline). ``verify_batch`` is the ``consensus.BatchVerifier`` injected into
``Chainstate``: on the calling (state) thread it answers the hits from the table, hands the
misses to the ``SignaturePool`` (``node.sigpool``: worker threads, pure calls on bytes), then
learns the good ones, again on the calling thread. The table is the state thread's alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from consensus import SignatureCheck, verify_signature
from node.sigpool import SignaturePool
from node.state import state_owned

DEFAULT_MAX_ENTRIES = 200_000


@state_owned
class SignatureCache:
    """A bounded set of (pubkey, signature, digest) triples known to verify."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        engine: Callable[[bytes, bytes, bytes], bool] = verify_signature,
        *,
        pool: SignaturePool | None = None,
    ) -> None:
        self._max = max_entries
        self._engine = engine
        self._pool = pool
        self._valid: dict[bytes, None] = {}
        self.hits = 0
        self.misses = 0

    def verify(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        if len(pubkey) != 33 or len(signature) != 64 or len(digest) != 32:
            return False  # the engines refuse these too; checked so that keys are unambiguous
        key = pubkey + signature + digest
        if key in self._valid:
            self.hits += 1
            return True
        self.misses += 1
        if not self._engine(pubkey, signature, digest):
            return False
        self._learn(key)
        return True

    def verify_batch(self, checks: Sequence[SignatureCheck]) -> list[bool]:
        """``verify`` for each check, in order; the misses verified together on the pool (or
        here, without one). The table is read and written on this thread only."""
        results: list[bool] = [False] * len(checks)
        missed: list[int] = []
        triples: list[tuple[bytes, bytes, bytes]] = []
        for i, c in enumerate(checks):
            if len(c.pubkey) != 33 or len(c.signature) != 64 or len(c.digest) != 32:
                continue  # refused, as in ``verify``
            if c.pubkey + c.signature + c.digest in self._valid:
                self.hits += 1
                results[i] = True
            else:
                missed.append(i)
                triples.append((c.pubkey, c.signature, c.digest))
        if not triples:
            return results
        self.misses += len(triples)
        if self._pool is not None:
            verified = self._pool.verify(triples, self._engine)
        else:
            verified = [self._engine(p, s, d) for p, s, d in triples]
        for i, (p, s, d), ok in zip(missed, triples, verified, strict=True):
            if ok:
                results[i] = True
                self._learn(p + s + d)
        return results

    def _learn(self, key: bytes) -> None:
        if self._max <= 0:
            return
        if len(self._valid) >= self._max:
            del self._valid[next(iter(self._valid))]
        self._valid[key] = None

    def __len__(self) -> int:
        return len(self._valid)
