"""The signature cache (``node.sigcache``): successes cached, failures always re-checked, exact
keys, a bound that evicts the oldest entry first, and malformed lengths refused without the
engine. The end-to-end property (a block of mempool transactions connects with no engine call)
is in ``test_mempool.py``.
"""

from __future__ import annotations

import hashlib

import pytest

from consensus import sign, verify_signature
from node.sigcache import SignatureCache
from tests.helpers import key

Triple = tuple[bytes, bytes, bytes]


def triple(n: int) -> Triple:
    """A genuine (pubkey, signature, digest) triple."""
    k = key(100 + n)
    digest = hashlib.sha256(b"message %d" % n).digest()
    return k.pubkey, sign(k.privkey, digest), digest


class Engine:
    """Counts calls; says yes to the triples in ``valid``."""

    def __init__(self, *valid: Triple) -> None:
        self.valid = set(valid)
        self.calls: list[Triple] = []

    def __call__(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        self.calls.append((pubkey, signature, digest))
        return (pubkey, signature, digest) in self.valid


def test_a_success_is_verified_once() -> None:
    t = triple(1)
    engine = Engine(t)
    cache = SignatureCache(engine=engine)
    assert cache.verify(*t) and cache.verify(*t) and cache.verify(*t)
    assert len(engine.calls) == 1 and len(cache) == 1
    assert (cache.hits, cache.misses) == (2, 1)


def test_a_failure_is_not_cached() -> None:
    t = triple(1)
    engine = Engine()
    cache = SignatureCache(engine=engine)
    assert not cache.verify(*t)
    assert not cache.verify(*t)
    assert len(engine.calls) == 2 and len(cache) == 0
    engine.valid.add(t)  # a later success is believed and then cached
    assert cache.verify(*t) and cache.verify(*t) and len(engine.calls) == 3


def test_a_hit_needs_the_exact_triple() -> None:
    pub, sig, digest = triple(1)
    other_pub, other_sig, other_digest = triple(2)
    engine = Engine((pub, sig, digest))
    cache = SignatureCache(engine=engine)
    assert cache.verify(pub, sig, digest)
    for variant in ((other_pub, sig, digest), (pub, other_sig, digest), (pub, sig, other_digest)):
        assert not cache.verify(*variant)
    assert len(engine.calls) == 4 and len(cache) == 1


def test_the_default_engine_is_the_real_one() -> None:
    pub, sig, digest = triple(1)
    cache = SignatureCache()
    assert cache.verify(pub, sig, digest) and cache.verify(pub, sig, digest)
    assert (cache.hits, cache.misses) == (1, 1)
    wrong = hashlib.sha256(b"another").digest()
    assert not cache.verify(pub, sig, wrong) and not verify_signature(pub, sig, wrong)


def test_the_bound_evicts_the_oldest_entry_first() -> None:
    t1, t2, t3, t4 = (triple(n) for n in range(1, 5))
    engine = Engine(t1, t2, t3, t4)
    cache = SignatureCache(max_entries=3, engine=engine)
    for t in (t1, t2, t3):
        assert cache.verify(*t)
    assert cache.verify(*t1)  # a hit does not make t1 younger: it is still the oldest
    assert len(engine.calls) == 3
    assert cache.verify(*t4)
    assert len(cache) == 3 and len(engine.calls) == 4
    assert cache.verify(*t2) and cache.verify(*t3) and cache.verify(*t4)
    assert len(engine.calls) == 4  # all three still cached
    assert cache.verify(*t1)  # evicted: verified again, evicting t2 in turn
    assert engine.calls[-1] == t1 and len(engine.calls) == 5 and len(cache) == 3
    assert cache.verify(*t2) and engine.calls[-1] == t2 and len(engine.calls) == 6


def test_a_zero_bound_caches_nothing() -> None:
    t = triple(1)
    engine = Engine(t)
    cache = SignatureCache(max_entries=0, engine=engine)
    assert cache.verify(*t) and cache.verify(*t)
    assert len(engine.calls) == 2 and len(cache) == 0


@pytest.mark.parametrize(
    ("pub_len", "sig_len", "digest_len"),
    [(32, 64, 32), (34, 64, 32), (33, 63, 32), (33, 65, 32), (33, 64, 31), (33, 64, 33), (0, 0, 0)],
)
def test_wrong_lengths_are_refused_without_the_engine(
    pub_len: int, sig_len: int, digest_len: int
) -> None:
    calls: list[Triple] = []

    def yes(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        calls.append((pubkey, signature, digest))
        return True

    cache = SignatureCache(engine=yes)
    assert cache.verify(b"\x02" * 33, b"\x01" * 64, b"\x00" * 32)  # the right shape passes
    assert not cache.verify(b"\x02" * pub_len, b"\x01" * sig_len, b"\x00" * digest_len)
    assert len(calls) == 1 and len(cache) == 1
