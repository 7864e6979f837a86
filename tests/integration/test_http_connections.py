"""Idle and half-sent connections against a real ``tally-node`` (SPEC 3.4; issue 16 defect 7).

On ``bad5a2c`` 1,100 idle sockets made ``/info`` time out (the node ran out of open files) and a
slowly trickled request stayed open for minutes. Now connections are bounded (the oldest idle
one makes room) and closed when silent for ``FIRST_REQUEST_TIMEOUT`` after connecting, when their
headers take longer than ``HEADER_TIMEOUT`` or their body longer than ``BODY_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import socket
import time

from node.p2p import policy
from tests.integration.fake_peer import API, Cluster


def closed(sock: socket.socket) -> bool:
    """The node closed its end (EOF or reset), without waiting (an answer before it is read)."""
    sock.setblocking(False)
    try:
        while sock.recv(65_536):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_idle_and_trickled_connections_are_closed(cluster: Cluster) -> None:
    node = cluster.start("node")
    idle: list[socket.socket] = []
    try:
        for _ in range(1_100):
            idle.append(socket.create_connection(("127.0.0.1", node.port), timeout=10))
        trickled_headers = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        trickled_headers.sendall(b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        trickled_body = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        trickled_body.sendall(
            b"POST /api/v1/tx HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/msgpack\r\nContent-Length: 1000\r\n\r\nab"
        )
        started = time.monotonic()
        r = node.get(f"{API}/info", timeout=10)
        assert r.status == 200 and time.monotonic() - started < 5
        deadline = time.monotonic() + policy.BODY_TIMEOUT + 15
        while time.monotonic() < deadline:
            for sock in (trickled_headers, trickled_body):  # a byte a second: never done
                with contextlib.suppress(OSError):
                    sock.sendall(b"x")
            if not any(not closed(s) for s in idle) and closed(trickled_headers):
                break
            time.sleep(1)
        still_open = sum(1 for s in idle if not closed(s))
        assert still_open == 0, f"{still_open} idle sockets still open"
        assert closed(trickled_headers), "a request trickling its headers was not closed"
        for _ in range(int(policy.BODY_TIMEOUT) + 5):
            if closed(trickled_body):
                break
            with contextlib.suppress(OSError):
                trickled_body.sendall(b"x")
            time.sleep(1)
        assert closed(trickled_body), "a request trickling its body was not closed"
        assert node.get(f"{API}/info", timeout=10).status == 200
    finally:
        for s in idle:
            s.close()
    cluster.check_logs()
