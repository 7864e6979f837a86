"""The explorer's QR code of an address (SPEC 5), rendered by the node, read by zbarimg.

``GET /api/v1/address/{address}/qr.svg`` is rasterised by ``rsvg-convert`` (librsvg) and decoded
by ``zbarimg`` (zbar): neither was written here. It must decode to exactly ``tally:<address>``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from consensus import encode_address, get_params
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key

API = "/api/v1"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(Path(tmp_path_factory.mktemp("qr")) / "n") as n:
        yield n


def decode_svg(svg: bytes, tmp_path: Path) -> str:
    rsvg, zbar = shutil.which("rsvg-convert"), shutil.which("zbarimg")
    assert rsvg and zbar, "rsvg-convert and zbarimg are needed: scripts/test.sh installs them"
    (tmp_path / "qr.svg").write_bytes(svg)
    png = tmp_path / "qr.png"
    subprocess.run(
        [rsvg, "--background-color=white", "--zoom=2", "-o", str(png), str(tmp_path / "qr.svg")],
        check=True,
        timeout=60,
    )
    done = subprocess.run(
        [zbar, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(png)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().removesuffix("\n")


def test_the_qr_decodes_to_the_payment_uri(node: NodeProcess, tmp_path: Path) -> None:
    address = address_of(key(3).pubkey_hash)
    answer = node.get(f"{API}/address/{address}/qr.svg")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("image/svg+xml")
    assert decode_svg(answer.body, tmp_path) == f"tally:{address}"


@pytest.mark.parametrize(
    "address",
    [encode_address(bytes(20), get_params("main")), "r" + "1" * 33, "notbase58!"],
)
def test_a_bad_address_is_400(node: NodeProcess, address: str) -> None:
    answer = node.get(f"{API}/address/{address}/qr.svg")
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "bad-address"
