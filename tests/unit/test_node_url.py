"""Where ``tally-node``'s client commands look for the node (SPEC 3.7, issue 15 point 5): the
URL in ``<datadir>/.url`` unless ``--bind``/``--port`` are given on the command line; without
either, the settings' bind and port. A file that is not an http(s) URL is ignored."""

from __future__ import annotations

from pathlib import Path

from node.cli import node_url
from node.config import resolve
from node.service import read_url, write_url


def test_the_url_file_wins_unless_a_port_or_bind_is_given(tmp_path: Path) -> None:
    settings = resolve({"network": "regtest", "datadir": str(tmp_path)}, environ={})
    assert node_url(settings, explicit=False) == "http://127.0.0.1:18844"  # no file yet
    write_url(tmp_path, "http://127.0.0.1:27123")
    assert read_url(tmp_path) == "http://127.0.0.1:27123"
    assert node_url(settings, explicit=False) == "http://127.0.0.1:27123"
    given = resolve({"datadir": str(tmp_path), "port": 27999}, environ={})
    assert node_url(given, explicit=True) == "http://127.0.0.1:27999"
    wildcard = resolve({"datadir": str(tmp_path), "bind": "::", "port": 1}, environ={})
    assert node_url(wildcard, explicit=True) == "http://127.0.0.1:1"
    v6 = resolve({"datadir": str(tmp_path), "bind": "::1", "port": 2}, environ={})
    assert node_url(v6, explicit=True) == "http://[::1]:2"


def test_a_url_file_that_is_not_a_url_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".url").write_text("file:///etc/passwd\n")
    assert read_url(tmp_path) is None
    settings = resolve({"network": "regtest", "datadir": str(tmp_path)}, environ={})
    assert node_url(settings, explicit=False) == "http://127.0.0.1:18844"
