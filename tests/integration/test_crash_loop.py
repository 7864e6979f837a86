"""Crash loop (issue 11, point 2): a mining and syncing node killed with SIGKILL 50 times under
load comes back every time at a consistent tip, loses no confirmed transaction, and gets its
mempool back.

Two real ``tally-node`` processes: A mines a block every 0.3 s; B mines one every second
(``--mine-to``) and syncs from A (``--peer A``), so B's blocks race A's and B reorganises now and
then. A client thread submits pre-signed, independent transactions to B (150 a second, each
spending its own coin of a fan-out prepared beforehand) through every kill and restart.

B is killed (SIGKILL to its process group, proof-of-work workers included) 50 times at seeded
random moments: most while it runs under load; after a kill, with chance 0.3 the next one lands
in the restart itself, half of those within 60 ms of its "starting" log line (opening the
database, restoring the mempool), the others within 1.2 s (reconnecting, catching up).

After every restart that is not itself killed:

- Mempool restored: B's log says how many transactions it restored and at which tip it opened.
  Every transaction B had answered 200 for that is not in the chain up to that tip must be among
  them. SIGKILL loses no write LevelDB made before the answer (the process dies, the kernel keeps
  its page cache), so there is no tolerance window: a transaction accepted 1 ms before the kill
  must come back. A request cut off by a kill may or may not have been accepted: those widen the
  allowed count by one each, and one found in B later is tracked like the others from then on.
- Then the test pauses mining on both nodes, lets A mine one more block (so an equal-work fork
  cannot stall) and waits until B's tip equals A's. B's UTXO set info (height, best hash,
  count, total, order-independent hash) must equal A's, which validated the same chain
  without ever crashing.
- Every transaction B accepted is, on B, in a block of the best chain or in the mempool; every
  one seen in a block at an earlier check still is (or, after a reorganisation, is back in the
  mempool); and the transaction index agrees for a seeded sample. At the end the whole best
  chain is read again and holds every transaction ever seen confirmed.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from pathlib import Path

import pytest

from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key
from tests.integration.fake_peer import (
    API,
    Cluster,
    height,
    hx,
    mempool,
    tip,
    tx_status,
    utxo_info,
)
from tests.integration.hardening_support import (
    ApiClient,
    chain_txids,
    fan_out,
    is_refused_connection,
    set_mining,
    spends,
)

SEED = 20261111
KILLS = 50
COINS = 24_000
RATE = 150  # transactions a second submitted to B
A_BLOCK_TIME = 0.3
B_BLOCK_TIME = 1.0
STARTUP_KILL_CHANCE = 0.3  # after a kill, the chance that the next one lands in the restart
STARTING = "node.service: starting Tally"
RESTORED = re.compile(r"mempool: (\d+) transaction\(s\) restored")
OPENED_AT = re.compile(r"chain tip at height \d+ \(([0-9a-f]{64})\)")
SAMPLE = 10  # transactions whose index entry is read at each check (new, and older)


class Submitter(threading.Thread):
    """Submits its transactions to one node, in order, at ``rate`` a second, through crashes."""

    def __init__(self, port: int, raws: list[tuple[str, bytes]], rate: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.raws = raws
        self.rate = rate
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.accepted: dict[str, float] = {}  # txid -> monotonic time of the 200
        self.refused: list[tuple[str, int, str | None, bytes]] = []
        self.unanswered: list[str] = []  # cut off by a kill: fate unknown until a check
        self.sent = 0

    def run(self) -> None:
        client = ApiClient(self.port, timeout=20)
        started = time.monotonic()
        for txid, raw in self.raws:
            while not self.stopping.is_set():
                try:
                    answer = client.post_tx(raw)
                except Exception as err:
                    if is_refused_connection(err):  # never reached a node: send it again
                        time.sleep(0.02)
                        continue
                    with self.lock:
                        self.unanswered.append(txid)
                    time.sleep(0.02)
                    break
                with self.lock:
                    if answer.status == 200:
                        self.accepted[txid] = time.monotonic()
                    else:
                        self.refused.append((txid, answer.status, answer.code, answer.body[:300]))
                break
            if self.stopping.is_set():
                break
            self.sent += 1
            delay = started + self.sent / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        client.close()

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return dict(self.accepted)


class ChainMirror:
    """A copy of a node's best chain above ``base``: height -> (block hash, txids).

    ``refresh`` reads the chain from the tip down until it meets a block it already has (a
    block hash commits to its parent, so everything below is unchanged), and returns every
    txid in the chain.
    """

    def __init__(self, node: NodeProcess, base: int) -> None:
        self.node = node
        self.base = base
        self.blocks: dict[int, tuple[str, list[str]]] = {}

    def refresh(self) -> set[str]:
        client = ApiClient(self.node.port)
        try:
            top = int(client.request("GET", f"{API}/blocks/tip/height").body)
            for h in [h for h in self.blocks if h > top]:
                del self.blocks[h]
            for h in range(top, self.base, -1):
                block_hash = client.request("GET", f"{API}/block-height/{h}").body.decode()
                cached = self.blocks.get(h)
                if cached is not None and cached[0] == block_hash:
                    break
                self.blocks[h] = (block_hash, client.get_json(f"{API}/block/{block_hash}/txids"))
        finally:
            client.close()
        return {txid for _, txids in self.blocks.values() for txid in txids}

    def chain_to(self, block_hash: str) -> set[str]:
        """The txids of the chain ending at ``block_hash`` (a block the node stores, active or
        not), read down to where it meets the copy."""
        client = ApiClient(self.node.port)
        found: set[str] = set()
        try:
            while True:
                block = client.get_json(f"{API}/block/{block_hash}")
                h = block["height"]
                cached = self.blocks.get(h)
                if h <= self.base or (cached is not None and cached[0] == block_hash):
                    break
                found.update(client.get_json(f"{API}/block/{block_hash}/txids"))
                block_hash = block["prev_hash"]
        finally:
            client.close()
        below = (txid for g, (_, txids) in self.blocks.items() if g <= h for txid in txids)
        return found.union(below)


def start_in_background(node: NodeProcess) -> threading.Thread:
    """``node.start()`` in a thread, returning once the process exists (so it can be killed)."""
    node.proc = None

    def run() -> None:
        with contextlib.suppress(Exception):  # killed before it answered: expected
            node.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while node.proc is None:
        time.sleep(0.001)
    return thread


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_50_times_under_load(tmp_path: Path) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    miner_a, miner_b, owner, payee = key(601), key(602), key(603), key(604)
    addr_a, addr_b = address_of(miner_a.pubkey_hash), address_of(miner_b.pubkey_hash)
    cluster = Cluster(tmp_path)
    submitter: Submitter | None = None
    try:
        a = cluster.start("a")
        coins = fan_out(a, owner, COINS)
        txs = spends(coins, payee)
        raws = [(hx(tx.txid()), tx.serialize()) for tx in txs]
        b = cluster.start(
            "b", "--peer", a.url, "--mine-to", addr_b, "--block-time", str(B_BLOCK_TIME)
        )
        base_height = height(a)
        cluster.wait(lambda: tip(b) == tip(a), "B to sync the fan-out", 60)
        set_mining(a, True, addr_a, A_BLOCK_TIME)
        prepared = time.monotonic() - began

        submitter = Submitter(b.port, raws, RATE)
        submitter.start()
        pending: dict[str, float] = {}  # accepted by B, not yet seen confirmed
        confirmed: set[str] = set()
        lost: list[str] = []
        kills = startup_kills = checks = reorg_returns = 0
        last_kill = 0.0
        mirror = ChainMirror(b, base_height)
        seen_unanswered: list[str] = []
        adopted: set[str] = set()  # cut off by a kill, yet accepted

        def pause_and_converge() -> None:
            set_mining(a, False)
            set_mining(b, False)
            a.generate(1, addr_a)
            deadline = time.monotonic() + 3
            while tip(b) != tip(a):
                if time.monotonic() > deadline:  # an equal-work fork: one more block decides
                    a.generate(1, addr_a)
                    deadline = time.monotonic() + 3
                time.sleep(0.05)

        def check(label: str, resume: bool = True) -> None:
            nonlocal checks, reorg_returns
            checks += 1
            assert b.get(f"{API}/info").status == 200
            pause_and_converge()
            info_a, info_b = utxo_info(a), utxo_info(b)
            assert info_b == info_a, f"{label}: B's UTXO set differs from A's at the same tip"
            assert info_b["best_hash"] == tip(b)
            accepted = submitter.snapshot()  # before reading the mempool: see below
            with submitter.lock:
                unanswered = submitter.unanswered[len(seen_unanswered) :]
            in_mempool = mempool(b)
            on_chain = mirror.refresh()
            for txid in accepted.keys() - confirmed:
                pending.setdefault(txid, accepted[txid])
            # A request cut off by a kill may have been accepted: if B has it, it is tracked
            # from now on like the others (its acceptance dated to the kill).
            for txid in unanswered:
                seen_unanswered.append(txid)
                if txid in in_mempool or txid in on_chain:
                    adopted.add(txid)
                    if txid in on_chain:
                        confirmed.add(txid)
                    else:
                        pending.setdefault(txid, last_kill)
            newly: list[str] = []
            for txid, when in list(pending.items()):
                if txid in in_mempool:
                    continue
                del pending[txid]
                if txid in on_chain:
                    confirmed.add(txid)
                    newly.append(txid)
                else:
                    lost.append(
                        f"{label}: {txid} accepted {last_kill - when:.3f} s before the last kill "
                        "is neither in a block of the best chain nor in B's mempool"
                    )
            for txid in confirmed - on_chain:
                if txid in in_mempool:  # a reorganisation returned it: not lost
                    reorg_returns += 1
                    confirmed.discard(txid)
                    pending[txid] = accepted.get(txid, last_kill)
                else:
                    lost.append(f"{label}: {txid}, confirmed at an earlier check, is gone")
            # The transaction index agrees (a sample: each lookup reads a whole block).
            older = sorted(confirmed.difference(newly))
            for txid in rng.sample(newly, min(SAMPLE, len(newly))) + rng.sample(
                older, min(SAMPLE, len(older))
            ):
                status = tx_status(b, txid)
                if status is None or not status["confirmed"]:
                    lost.append(f"{label}: {txid} is in a block but its status is {status}")
            assert not lost, "\n".join(lost[:20]) + f"\n({len(lost)} in all)\n{cluster.logs()}"
            if resume:
                set_mining(a, True, addr_a, A_BLOCK_TIME)
                set_mining(b, True, addr_b, B_BLOCK_TIME)

        def check_restored(label: str, before: dict[str, float], unanswered: int) -> None:
            """The mempool B restored at start-up holds every transaction it had answered 200
            for that is not in the chain it opened at (read from its log, which says both)."""
            log = b.log()
            restored = int(RESTORED.findall(log)[-1])
            opened_at = OPENED_AT.findall(log)[-1]
            expected = (before.keys() | adopted) - mirror.chain_to(opened_at)
            if not len(expected) <= restored <= len(expected) + unanswered:
                lost.append(
                    f"{label}: B restored {restored} mempool transaction(s); it had accepted "
                    f"{len(expected)} not in the chain it opened at ({opened_at}), and "
                    f"{unanswered} request(s) were cut off by the kill"
                )

        def kill_during_startup() -> None:
            """Start B and kill it while it starts: half the time while it opens its database
            and restores its mempool (within 60 ms of its "starting" line), else any time within
            1.2 s (reconnecting, catching up, first answers)."""
            starts = b.log().count(STARTING)
            starter = start_in_background(b)
            if rng.random() < 0.5:
                deadline = time.monotonic() + 10
                while b.log().count(STARTING) == starts and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.06))
            else:
                time.sleep(rng.uniform(0.0, 1.2))
            b.kill()
            starter.join(30)

        check("before the first kill")
        loop_began = time.monotonic()
        round_seconds: list[float] = []
        while kills < KILLS:
            round_began = time.monotonic()
            unanswered_mark = len(submitter.unanswered)
            time.sleep(rng.uniform(0.2, 1.5))  # B runs under load, mining and syncing
            b.kill()
            kills += 1
            last_kill = time.monotonic()
            while kills < KILLS and rng.random() < STARTUP_KILL_CHANCE:
                kill_during_startup()
                kills += 1
                startup_kills += 1
                last_kill = time.monotonic()
            time.sleep(0.05)  # answers already in the client's socket are read
            before = submitter.snapshot()  # every 200 in it came from a process now dead
            b.start()
            check_restored(
                f"after kill {kills}", before, len(submitter.unanswered) - unanswered_mark
            )
            check(f"after kill {kills}")
            round_seconds.append(time.monotonic() - round_began)
        loop_seconds = time.monotonic() - loop_began

        submitter.stopping.set()
        submitter.join(30)
        check("at the end", resume=False)
        # Every transaction ever seen confirmed is in a block of B's best chain, read afresh.
        on_chain = chain_txids(b, range(base_height + 1, height(b) + 1))
        missing = confirmed - on_chain
        assert not missing, f"{len(missing)} confirmed transactions left B's best chain"
        assert on_chain == mirror.refresh()
        assert not submitter.refused, f"B refused transactions: {submitter.refused[:5]}"
        assert submitter.sent < len(raws), "the client ran out of transactions before the end"
        cluster.check_logs()
        print(
            f"\ncrash loop: {kills} kills ({startup_kills} during start-up), {checks} checks, "
            f"{len(confirmed)} confirmed + {len(pending)} in the mempool of "
            f"{len(submitter.snapshot())} accepted, {len(submitter.unanswered)} cut off by a "
            f"kill ({len(adopted)} of them accepted), {reorg_returns} returned by "
            f"reorganisations; final height {height(b)}; "
            f"prepared in {prepared:.1f} s, loop {loop_seconds:.1f} s "
            f"(round {min(round_seconds):.2f}-{max(round_seconds):.2f} s)"
        )
    finally:
        if submitter is not None:
            submitter.stopping.set()
        cluster.close()
