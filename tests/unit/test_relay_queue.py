"""``node.p2p.relay``: batched announcements, and an ``inv`` refused for rate (429) sent again
later, in order, nothing lost (SPEC 3.4; issue 16 "Load")."""

from __future__ import annotations

import asyncio
from typing import Any

from consensus import get_params
from node.metrics import NodeMetrics
from node.p2p import policy
from node.p2p.peers import Peer, PeerError
from node.p2p.relay import Relay

URL = "http://127.0.0.1:1"


class Refusing:
    """A transport whose first ``refusals`` ``inv``s are refused with 429."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.sent: list[list[bytes]] = []

    async def post(
        self, url: str, route: str, message: dict[str, Any], answer: str, timeout: float
    ) -> Any:
        assert route == "inv" and len(message["hashes"]) <= policy.MAX_INV
        if self.refusals:
            self.refusals -= 1
            raise PeerError("inv refused with HTTP 429", 429)
        self.sent.append(list(message["hashes"]))
        return {}


class Peers:
    def __init__(self) -> None:
        self.peers = {URL: Peer(URL, URL, outbound=True)}


def relay_with(transport: Refusing) -> Relay:
    return Relay(
        get_params("regtest"),
        None,  # type: ignore[arg-type]  (not used by announcing)
        None,  # type: ignore[arg-type]
        NodeMetrics(),
        None,  # type: ignore[arg-type]
        Peers(),  # type: ignore[arg-type]
        transport,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )


def test_refused_announcements_are_sent_again_in_batches_in_order() -> None:
    async def run() -> list[list[bytes]]:
        transport = Refusing(refusals=2)
        relay = relay_with(transport)
        hashes = [n.to_bytes(32, "big") for n in range(2_500)]
        for h in hashes:
            relay.announce("tx", h)
        task = asyncio.get_running_loop().create_task(relay.announcer())
        for _ in range(400):
            await asyncio.sleep(0.05)
            if sum(len(b) for b in transport.sent) == len(hashes):
                break
        task.cancel()
        return transport.sent

    sent = asyncio.run(run())
    flat = [h for batch in sent for h in batch]
    assert flat == [n.to_bytes(32, "big") for n in range(2_500)]  # all, once each, in order
    assert [len(b) for b in sent] == [1_000, 1_000, 500]  # one inv a batch, none over MAX_INV
