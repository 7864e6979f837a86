"""The address page shows the QR code of its payment URI (SPEC 5), as Chromium draws it.

The image the page loads from its own node is screenshotted from the rendered page and decoded by
``zbarimg`` (zbar, nobody's code here): it must give exactly ``tally:<address>``, the text under it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import Chain
from tests.browser.test_explorer import goto, wait_route


def test_the_address_page_shows_a_qr_code_that_scans_to_its_uri(
    page: Page, chain: Chain, tmp_path: Path
) -> None:
    goto(page, chain, f"#/address/{chain.payee}")
    wait_route(page, f"#/address/{chain.payee}")
    figure = page.locator("#address-qr")
    expect(figure.locator("figcaption")).to_have_text(f"tally:{chain.payee}")
    image = figure.locator("img")
    page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=image.element_handle(), timeout=10_000
    )
    shot = tmp_path / "qr.png"
    image.screenshot(path=str(shot), scale="device")
    zbar = shutil.which("zbarimg")
    assert zbar, "zbarimg (zbar-tools) is needed: scripts/test.sh installs it as root"
    done = subprocess.run(
        [zbar, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(shot)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().removesuffix("\n") == f"tally:{chain.payee}"
