"""The API answers as docs/API.md says (issue 17, item 11), against a real node.

- ``after_txid`` naming a transaction that is not the address's answers 404 (it used to page on
  from that transaction's place in the chain, showing a page that belongs to no cursor).
- Integer parameters take ASCII digits only: ``/block-height/٣٣`` (Arabic-Indic digits, which
  Python's ``int`` accepts) used to answer 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key

API = "/api/v1"
A0, A1 = address_of(key(0).pubkey_hash), address_of(key(1).pubkey_hash)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(Path(tmp_path_factory.mktemp("api-doc")) / "n") as n:
        n.generate(3, A0)
        n.generate(2, A1)
        yield n


def test_after_txid_of_another_address_is_404(node: NodeProcess) -> None:
    mine = node.get(f"{API}/address/{A0}/txs").json()
    theirs = node.get(f"{API}/address/{A1}/txs").json()
    assert len(mine) == 3 and len(theirs) == 2
    # Positive control: a cursor of this address pages on.
    page = node.get(f"{API}/address/{A0}/txs?after_txid={mine[0]['txid']}")
    assert page.status == 200 and [t["txid"] for t in page.json()] == [t["txid"] for t in mine[1:]]
    foreign = node.get(f"{API}/address/{A0}/txs?after_txid={theirs[0]['txid']}")
    assert foreign.status == 404, foreign.body
    assert foreign.json()["error"]["code"] == "not-found"


@pytest.mark.parametrize(
    "path",
    [
        "/block-height/\u0663",  # Arabic-Indic 3
        "/block-height/\uff11",  # full-width 1
        "/block-height/1_0",
        "/block-height/+1",
        "/block-height/%201",
        "/blocks?start_height=\u0662",
        "/block-height/" + "9" * 40,
    ],
)
def test_integers_are_ascii_digits(node: NodeProcess, path: str) -> None:
    from urllib.parse import quote

    answer = node.get(API + quote(path, safe="/?=%"))
    assert answer.status == 400, (path, answer.body)
    assert answer.json()["error"]["code"] == "bad-request"


def test_ascii_integers_still_work(node: NodeProcess) -> None:
    assert node.get(f"{API}/block-height/3").status == 200
    assert node.get(f"{API}/blocks?start_height=2").json()[0]["height"] == 2
