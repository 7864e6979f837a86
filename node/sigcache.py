"""The signature cache shared by the mempool and block validation.

A signature that verified once (same public key, signature and digest) is not verified again:
when a block arrives whose transactions already passed the mempool, connecting it costs no
elliptic-curve work. Only successes are cached; a failure is always re-checked.

The cache is bounded (oldest entries go first) and keyed by the exact bytes checked, so a hit can
never accept something the engine would refuse. ``verify`` has the signature of
``consensus.verify_signature`` and is what the node injects into ``Chainstate`` and ``Mempool``.
"""

from __future__ import annotations

from collections.abc import Callable

from consensus import verify_signature

DEFAULT_MAX_ENTRIES = 200_000


class SignatureCache:
    """A bounded set of (pubkey, signature, digest) triples known to verify."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        engine: Callable[[bytes, bytes, bytes], bool] = verify_signature,
    ) -> None:
        self._max = max_entries
        self._engine = engine
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
        if self._max <= 0:
            return True
        if len(self._valid) >= self._max:
            del self._valid[next(iter(self._valid))]
        self._valid[key] = None
        return True

    def __len__(self) -> int:
        return len(self._valid)
