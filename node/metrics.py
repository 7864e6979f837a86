"""Prometheus metrics of one node (``GET /metrics``), in a registry of its own.

Each ``NodeMetrics`` owns a ``CollectorRegistry`` rather than using the global one, so several
nodes can live in one process (tests) without mixing their numbers. Gauges that mirror state
(height, peers, mempool) are refreshed by the service just before each scrape.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "NodeMetrics"]


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("tally_height", "Height of the active chain's tip", registry=r)
        self.peers = Gauge("tally_peers", "Connected peers", registry=r)
        self.mempool_transactions = Gauge(
            "tally_mempool_transactions", "Transactions in the mempool", registry=r
        )
        self.mempool_bytes = Gauge("tally_mempool_bytes", "Bytes in the mempool", registry=r)
        self.blocks_accepted = Counter(
            "tally_blocks_accepted",
            "Blocks connected to the active chain, from any source",
            registry=r,
        )
        self.blocks_rejected = Counter(
            "tally_blocks_rejected", "Blocks rejected, by reject code", ["code"], registry=r
        )
        self.txs_accepted = Counter(
            "tally_transactions_accepted", "Transactions accepted into the mempool", registry=r
        )
        self.txs_rejected = Counter(
            "tally_transactions_rejected",
            "Transactions rejected, by reject code",
            ["code"],
            registry=r,
        )
        self.validation_seconds = Histogram(
            "tally_validation_seconds",
            "Time to validate a block or transaction",
            ["kind"],
            registry=r,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )
        self.p2p_downloaded = Counter(
            "tally_p2p_downloaded",
            "Blocks and transactions downloaded from peers (bodies, not announcements)",
            ["kind"],
            registry=r,
        )
        self.p2p_misbehaviour = Counter(
            "tally_p2p_misbehaviour_points", "Misbehaviour points given to peers", registry=r
        )
        self.request_seconds = Histogram(
            "tally_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
