"""Both signature engines against third-party secp256k1 vectors, and against each other.

- RFC 6979 vectors (python-ecdsa, bitcoinjs-lib, haskoin-core): ``sign`` must give the published
  low-S ``r || s``; ``r`` is also tied to the published nonce ``k`` (``r == x(k*G) mod n``).
- Wycheproof (C2SP): the Bitcoin variant (DER + low-S), the plain DER file and the P1363 file.
  DER signatures go through a strict DER parser written here; only signatures that are strict DER
  with ``r, s < 2**256`` can be written as the protocol's 64-byte ``r || s``, the rest are not
  expressible and left out (their count is asserted).
- A differential test: the two engines agree on random and mutated inputs.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coincurve
import pytest

from consensus import engine

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = N // 2
P = 2**256 - 2**32 - 977
ENGINES = ["coincurve", "ecdsa"]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b32(n: int) -> bytes:
    return n.to_bytes(32, "big")


def compress(uncompressed: bytes) -> bytes:
    assert len(uncompressed) == 65 and uncompressed[0] == 4
    return bytes([2 + (uncompressed[64] & 1)]) + uncompressed[1:33]


def x_of_multiple(k: int) -> int:
    """x(k*G), computed by libsecp256k1 directly (not through the engine under test)."""
    return int.from_bytes(
        coincurve.PrivateKey(b32(k)).public_key.format(compressed=True)[1:], "big"
    )


# --- strict DER ---------------------------------------------------------------------------------


class NotDERError(ValueError):
    pass


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise NotDERError("missing length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 4 or pos + count > len(data):
        raise NotDERError("indefinite or oversized length")
    if data[pos] == 0:
        raise NotDERError("length with leading zero")
    value = int.from_bytes(data[pos : pos + count], "big")
    if value < 0x80:
        raise NotDERError("long form for a short length")
    return value, pos + count


def _der_integer(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data) or data[pos] != 0x02:
        raise NotDERError("expected INTEGER")
    length, pos = _der_length(data, pos + 1)
    content = data[pos : pos + length]
    if length == 0 or len(content) != length:
        raise NotDERError("empty or truncated INTEGER")
    if content[0] & 0x80:
        raise NotDERError("negative INTEGER")
    if content[0] == 0 and length > 1 and not content[1] & 0x80:
        raise NotDERError("non-minimal INTEGER")
    return int.from_bytes(content, "big"), pos + length


def parse_der_strict(data: bytes) -> tuple[int, int]:
    """``SEQUENCE { INTEGER r, INTEGER s }`` in DER, nothing more; ``NotDERError`` otherwise."""
    if not data or data[0] != 0x30:
        raise NotDERError("expected SEQUENCE")
    length, pos = _der_length(data, 1)
    if pos + length != len(data):
        raise NotDERError("sequence length does not cover the input exactly")
    r, pos = _der_integer(data, pos)
    s, pos = _der_integer(data, pos)
    if pos != len(data):
        raise NotDERError("extra bytes inside the sequence")
    return r, s


def test_strict_der_parser_itself() -> None:
    good = bytes.fromhex("3006020101020102")
    assert parse_der_strict(good) == (1, 2)
    assert parse_der_strict(bytes.fromhex("3007020200ff020102")) == (255, 2)
    for bad in (
        "3007020101020102",  # sequence length too long
        "308106020101020102",  # long-form length for 6
        "300702020001020102",  # non-minimal integer
        "3006020181020102",  # negative integer
        "3008020101020102" + "0000",  # extra bytes inside the sequence
        "3006020101020102" + "00",  # trailing byte
        "3006020101030102",  # wrong tag for s
        "3004020101" + "0200",  # empty integer
        "",
    ):
        with pytest.raises(NotDERError):
            parse_der_strict(bytes.fromhex(bad))


# --- RFC 6979 -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rfc6979(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (vectors / "ecdsa" / "secp256k1_rfc6979_vectors.json").read_text()
    )
    assert int(data["n"], 16) == N
    return data


def _expected_signature(vector: dict[str, Any]) -> tuple[int, int]:
    """The source's own signature when it gave one (compact or DER), else the r/s_low fields."""
    if "compact_low_s" in vector:
        raw = bytes.fromhex(vector["compact_low_s"])
        assert len(raw) == 64
        return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if "der_low_s" in vector:
        return parse_der_strict(bytes.fromhex(vector["der_low_s"]))
    return int(vector["r"], 16), int(vector["s_low"], 16)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_rfc6979_vectors(engine_name: str, rfc6979: dict[str, Any]) -> None:
    eng = engine(engine_name)
    vectors = rfc6979["vectors"]
    assert len(vectors) == 45
    kinds = {"compact_low_s": 0, "der_low_s": 0}
    for v in vectors:
        d = bytes.fromhex(v["d"])
        digest = sha256(v["message"].encode())
        assert digest.hex() == v["msg_hash_sha256"]
        r, s = _expected_signature(v)
        for kind in kinds:
            kinds[kind] += kind in v
        # The published nonce really gives this r, and s is the low half.
        assert r == x_of_multiple(int(v["k"], 16)) % N, v["message"]
        assert r == int(v["r"], 16)
        assert s <= HALF_N and s in (int(v["s_raw"], 16), N - int(v["s_raw"], 16))
        pub = eng.pubkey(d)
        assert pub.hex() == v["pubkey_compressed"]
        assert compress(bytes.fromhex(v["pubkey_uncompressed"])) == pub
        sig = eng.sign(d, digest)
        assert sig == b32(r) + b32(s), v["message"]
        assert eng.verify(pub, sig, digest)
        assert not eng.verify(pub, b32(r) + b32(N - s), digest)  # high-S twin
    assert kinds == {"compact_low_s": 12, "der_low_s": 20}


@pytest.mark.parametrize("engine_name", ENGINES)
def test_rfc6979_first_nonce(engine_name: str, rfc6979: dict[str, Any]) -> None:
    """bitcoinjs' k0 (the first RFC 6979 candidate) is the nonce our signature used."""
    eng = engine(engine_name)
    retry = rfc6979["rfc6979_retry_vectors_bitcoinjs"]["vectors"]
    assert len(retry) == 10
    for v in retry:
        digest = sha256(v["message"].encode())
        assert digest.hex() == v["msg_hash_sha256"]
        sig = eng.sign(bytes.fromhex(v["d"]), digest)
        assert int.from_bytes(sig[:32], "big") == x_of_multiple(int(v["k0"], 16)) % N
        assert int.from_bytes(sig[32:], "big") <= HALF_N
        assert eng.verify(eng.pubkey(bytes.fromhex(v["d"])), sig, digest)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_bitcoinjs_invalid_signatures(engine_name: str, rfc6979: dict[str, Any]) -> None:
    eng = engine(engine_name)
    cases = rfc6979["invalid_signatures_bitcoinjs"]["vectors"]
    assert len(cases) == 8
    checked = 0
    for case in cases:
        pub = eng.pubkey(b32(int(case["d"], 16)))
        digest = sha256(case["message"].encode())
        assert digest.hex() == case["msg_hash_sha256"]
        r_text, s_text = case["signature"]["r"], case["signature"]["s"]
        if r_text.startswith("-") or s_text.startswith("-"):
            continue  # a negative integer has no 64-byte r || s form
        sig = b32(int(r_text, 16)) + b32(int(s_text, 16))
        assert eng.verify(pub, sig, digest) is False, case["description"]
        checked += 1
    assert checked == 5


# --- Wycheproof ---------------------------------------------------------------------------------

Case = tuple[bytes, bytes, bytes, bool, int]


def _wycheproof(path: Path, der: bool, low_s_rule: bool) -> tuple[list[Case], int, int]:
    """``(cases, tests in file, valid tests in file)``; each case is
    ``(pub33, sig64, digest, expected, tcId)``."""
    data = json.loads(path.read_text())
    cases: list[Case] = []
    total = valid = 0
    for group in data["testGroups"]:
        pub = compress(bytes.fromhex(group["publicKey"]["uncompressed"]))
        for test in group["tests"]:
            total += 1
            valid += test["result"] == "valid"
            sig = bytes.fromhex(test["sig"])
            if der:
                try:
                    r, s = parse_der_strict(sig)
                except NotDERError:
                    continue
            else:
                if len(sig) != 64:
                    continue
                r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            if r >= 2**256 or s >= 2**256:
                continue
            expected = test["result"] == "valid"
            if low_s_rule and s > HALF_N:
                expected = False  # the protocol accepts only low-S
            digest = sha256(bytes.fromhex(test["msg"]))
            cases.append((pub, b32(r) + b32(s), digest, expected, test["tcId"]))
    return cases, total, valid


def _mismatches(engine_name: str, cases: list[Case]) -> Iterator[tuple[int, str]]:
    eng = engine(engine_name)
    for pub, sig, digest, expected, tc_id in cases:
        try:
            got = eng.verify(pub, sig, digest)
        except Exception as exc:  # verify must never raise
            yield tc_id, f"raised {exc!r}"
            continue
        if got is not expected:
            yield tc_id, f"returned {got!r}, expected {expected!r}"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_wycheproof_bitcoin(engine_name: str, vectors: Path) -> None:
    path = vectors / "ecdsa" / "wycheproof" / "ecdsa_secp256k1_sha256_bitcoin_test.json"
    cases, total, valid = _wycheproof(path, der=True, low_s_rule=False)
    assert total == 463
    assert len(cases) >= 200
    # Every valid Bitcoin signature is strict DER, low-S, so all of them are covered.
    assert sum(c[3] for c in cases) == valid > 100
    assert sum(not c[3] for c in cases) > 50
    assert all(int.from_bytes(c[1][32:], "big") <= HALF_N for c in cases if c[3])
    assert list(_mismatches(engine_name, cases)) == []


@pytest.mark.parametrize("engine_name", ENGINES)
def test_wycheproof_der_with_low_s_rule(engine_name: str, vectors: Path) -> None:
    path = vectors / "ecdsa" / "wycheproof" / "ecdsa_secp256k1_sha256_test.json"
    cases, total, _ = _wycheproof(path, der=True, low_s_rule=True)
    assert total == 476
    assert len(cases) >= 200
    assert sum(c[3] for c in cases) > 50 and sum(not c[3] for c in cases) > 50
    assert list(_mismatches(engine_name, cases)) == []


@pytest.mark.parametrize("engine_name", ENGINES)
def test_wycheproof_p1363(engine_name: str, vectors: Path) -> None:
    path = vectors / "ecdsa" / "wycheproof" / "ecdsa_secp256k1_sha256_p1363_test.json"
    data = json.loads(path.read_text())
    high_s_valid = sum(
        1
        for g in data["testGroups"]
        for t in g["tests"]
        if t["result"] == "valid" and len(t["sig"]) == 128 and int(t["sig"][64:], 16) > HALF_N
    )
    assert high_s_valid > 0  # so the low-S rule is exercised
    cases, total, _ = _wycheproof(path, der=False, low_s_rule=True)
    assert total == 252
    assert len(cases) >= 200
    assert sum(c[3] for c in cases) > 50 and sum(not c[3] for c in cases) > high_s_valid
    assert list(_mismatches(engine_name, cases)) == []


@pytest.mark.parametrize("engine_name", ENGINES)
def test_point_at_infinity_during_verify_is_false(engine_name: str, vectors: Path) -> None:
    """Wycheproof cases where u1*G + u2*Q is the point at infinity: verify says False."""
    path = vectors / "ecdsa" / "wycheproof" / "ecdsa_secp256k1_sha256_bitcoin_test.json"
    cases, _, _ = _wycheproof(path, der=True, low_s_rule=False)
    chosen = [c for c in cases if c[4] in (386, 424, 425, 439, 440)]
    assert len(chosen) == 5
    assert list(_mismatches(engine_name, chosen)) == []


# --- differential and malformed input ------------------------------------------------------------


def test_engines_agree_on_random_and_mutated() -> None:
    fast, slow = engine("coincurve"), engine("ecdsa")
    rng = random.Random(20261122)
    for _ in range(50):
        d = b32(rng.randrange(1, N))
        digest = rng.randbytes(32)
        sig = fast.sign(d, digest)
        assert slow.sign(d, digest) == sig
        pub = fast.pubkey(d)
        assert slow.pubkey(d) == pub
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        assert s <= HALF_N
        trials: list[tuple[bytes, bytes, bytes, bool]] = [(pub, sig, digest, True)]
        trials.append((pub, b32(r) + b32(N - s), digest, False))  # high-S twin
        bit = rng.randrange(256)
        trials.append((pub, b32(r ^ (1 << bit)) + sig[32:], digest, False))
        trials.append((pub, sig[:32] + b32(s ^ (1 << rng.randrange(255))), digest, False))
        flipped_digest = bytearray(digest)
        flipped_digest[rng.randrange(32)] ^= 1 << rng.randrange(8)
        trials.append((pub, sig, bytes(flipped_digest), False))
        flipped_pub = bytearray(pub)
        flipped_pub[1 + rng.randrange(32)] ^= 1 << rng.randrange(8)
        trials.append((bytes(flipped_pub), sig, digest, False))
        trials.append((bytes([pub[0] ^ 1]) + pub[1:], sig, digest, False))  # negated key
        trials.append((pub, rng.randbytes(64), digest, False))
        for t_pub, t_sig, t_digest, expected in trials:
            assert fast.verify(t_pub, t_sig, t_digest) is expected
            assert slow.verify(t_pub, t_sig, t_digest) is expected


def _x_not_on_curve(start: int) -> int:
    x = start
    while pow(x**3 + 7, (P - 1) // 2, P) == 1:
        x += 1
    return x


@pytest.mark.parametrize("engine_name", ENGINES)
def test_malformed_inputs_are_false(engine_name: str) -> None:
    eng = engine(engine_name)
    d = b32(0xC0FFEE)
    digest = sha256(b"tally")
    pub = eng.pubkey(d)
    sig = eng.sign(d, digest)
    assert eng.verify(pub, sig, digest)
    full = coincurve.PrivateKey(d).public_key.format(compressed=False)
    bad_pubs = (
        [bytes([prefix]) + pub[1:] for prefix in (0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xFF)]
        + [
            bytes([2]) + b32(_x_not_on_curve(5)),
            bytes([3]) + b32(_x_not_on_curve(2**255)),
            bytes([2]) + b32(P),  # x not a field element
            bytes([2]) + b"\xff" * 32,
            b"\x00" * 33,
            full,  # a valid key, but uncompressed: not the protocol's form
            pub[:32],
            pub + b"\x00",
            b"",
        ]
    )
    for bad_pub in bad_pubs:
        assert eng.verify(bad_pub, sig, digest) is False, bad_pub.hex()
    r = sig[:32]
    bad_sigs = [
        sig[:63],
        sig + b"\x00",
        b"",
        b"\x00" * 64,
        r + b32(0),
        b32(0) + sig[32:],
        b32(N) + sig[32:],
        r + b32(N),
        b"\xff" * 64,
        sig + sig,
    ]
    for bad_sig in bad_sigs:
        assert eng.verify(pub, bad_sig, digest) is False, bad_sig.hex()
    for bad_digest in (digest[:31], digest + b"\x00", b""):
        assert eng.verify(pub, sig, bad_digest) is False


@pytest.mark.parametrize("engine_name", ENGINES)
def test_sign_rejects_invalid_private_keys(engine_name: str, vectors: Path) -> None:
    """bitcoinjs' out-of-range private keys (0, n, n+1) cannot sign."""
    data = json.loads((vectors / "base58" / "privkey_pubkey_address_wif.json").read_text())
    keys = [c["d"] for c in data["invalid"]["constructor"] if "range" in c["exception"]]
    assert len(keys) == 3
    eng = engine(engine_name)
    for d in keys:
        with pytest.raises(ValueError):
            eng.sign(bytes.fromhex(d), sha256(b"x"))
