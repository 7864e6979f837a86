"""``--whitelist NET`` from a flag, ``TALLY_WHITELIST`` and the TOML file (SPEC 3.4, 3.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, Settings, resolve
from node.p2p.banman import BanMan, parse_networks
from node.storage import LevelDBStore


def test_whitelist_from_each_source(tmp_path: Path) -> None:
    conf = tmp_path / "tally.toml"
    conf.write_text('whitelist = ["10.0.0.0/8"]\n')
    assert Settings().whitelist == ()
    assert resolve({}, {}, conf).whitelist == ("10.0.0.0/8",)
    env = {"TALLY_WHITELIST": "127.0.0.0/8, ::1/128"}
    assert resolve({}, env, conf).whitelist == ("127.0.0.0/8", "::1/128")
    assert resolve({"whitelist": ["192.168.1.0/24"]}, env, conf).whitelist == ("192.168.1.0/24",)


def test_a_bad_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="whitelist"):
        resolve({"whitelist": ["not-a-network"]}, {})
    with pytest.raises(ConfigError, match="TALLY_WHITELIST"):
        resolve({}, {"TALLY_WHITELIST": "300.1.1.1/8"})


def test_whitelisted_networks_are_matched(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    bans = BanMan(store, whitelist=parse_networks(["127.0.0.0/8", "::1/128"]))
    assert bans.whitelisted("127.0.0.5") and bans.whitelisted("::1")
    assert not bans.whitelisted("128.0.0.1") and not bans.whitelisted("localhost")
    store.close()
