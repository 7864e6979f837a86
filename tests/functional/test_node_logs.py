"""What a node operator reads in the log (issue 15, point 10; SPEC 3.7: words an operator
understands), on a real ``tally-node`` process.

- Mining says which address it pays (the address, not the key hash) and each mined block is one
  line at info level ("block N connected"), not two.
- A request aiohttp's parser refuses (a request line over its 16 KB limit) is answered 414 in
  the API's error shape and logs no ERROR and no traceback: the fault is the client's. With
  ``--log-level debug`` it is one "bad request" line. (A URL between the documented 8,190 bytes
  and the parser's limit is refused by the guards middleware, which logs nothing, as for every
  other refusal: ``tests/functional/test_http_guards.py``.)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.functional.node_process import NodeProcess, address_of, http

MINER = address_of(b"\x0c" * 20)
LONG_URL = "/api/v1/tx/" + "a" * 20_000  # past the parser's own line limit


def wait_height(node: NodeProcess, height: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while int(node.get("/api/v1/blocks/tip/height").body) < height:
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.2)


def test_mining_names_the_address_and_logs_one_line_a_block(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "n", "--mine-to", MINER, "--block-time", "0.2") as node:
        wait_height(node, 3)
        answer = node.get(LONG_URL)
        assert answer.status == 414 and answer.json()["error"]["code"] == "uri-too-long"
        time.sleep(0.5)
        log = node.log()
    assert f"mining to {MINER}" in log, log
    heights = [int(h) for h in re.findall(r"INFO .*block (\d+) connected", log)]
    assert heights[:4] == [0, 1, 2, 3]
    for height in heights[1:]:  # one info line per block, whoever made it
        assert len(re.findall(rf"INFO .*\bblock {height}\b", log)) == 1, log
    assert "ERROR" not in log and "Traceback" not in log, log


def test_a_bad_request_is_one_debug_line(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "n", "--log-level", "debug") as node:
        assert http(node.url + LONG_URL).status == 414
        assert node.get("/api/v1/info").status == 200  # still serving
        time.sleep(0.5)
        log = node.log()
    assert "ERROR" not in log and "Traceback" not in log, log
    lines = [line for line in log.splitlines() if "bad request from 127.0.0.1" in line]
    assert len(lines) == 1 and "DEBUG" in lines[0] and "414" in lines[0], log
