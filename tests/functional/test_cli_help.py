"""Every ``--help`` of ``tally-node``, ``tally-wallet`` and ``tally-devnet`` says what each option
does, with its default where it has one, and ends with the environment variables the command
reads, as ``bitcoind -help`` does (issue 15, point 4).

The argparse trees are walked from each command's ``build_parser`` (every subcommand, every
action), and each help is also printed by the installed command in a subprocess, the way a
person reads it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from node import cli as node_cli
from node import devnet
from node.config import SETTING_NAMES, env_name
from wallet import cli as wallet_cli

BIN = Path(sys.executable).parent
PARSERS = {
    "tally-node": node_cli.build_parser,
    "tally-wallet": wallet_cli.build_parser,
    "tally-devnet": devnet.build_parser,
}
VARIABLES = {
    "tally-node": [env_name(n) for n in SETTING_NAMES] + ["TALLY_CONFIG"],
    "tally-wallet": [
        wallet_cli.NETWORK_ENV,
        wallet_cli.NODE_ENV,
        wallet_cli.PASSWORD_ENV,
        wallet_cli.PASSPHRASE_ENV,
        wallet_cli.DEBUG_ENV,
    ],
    "tally-devnet": ["TALLY_"],  # it reads none itself and says what its nodes inherit
}


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, (*path, name))


def commands() -> list[tuple[str, tuple[str, ...]]]:
    return [(prog, path) for prog, build in PARSERS.items() for path, _ in walk(build())]


def test_the_walk_reaches_every_subcommand() -> None:
    found = {(prog, path) for prog, path in commands()}
    for sub in ("run", "info", "stop", "reindex", "generate", "add-peer"):
        assert ("tally-node", (sub,)) in found
    for sub in wallet_cli.COMMANDS:
        assert ("tally-wallet", (sub,)) in found
    for sub in ("up", "status", "down"):
        assert ("tally-devnet", (sub,)) in found


@pytest.mark.parametrize(("prog", "path"), commands())
def test_every_option_is_described_with_its_default(prog: str, path: tuple[str, ...]) -> None:
    parser = dict(walk(PARSERS[prog]()))[path]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{prog} {path}: {name}"
        assert len(action.help.split()) >= 2, f"{prog} {path}: {name}: {action.help!r}"
        if action.option_strings and not action.required:
            # an option not given does something: the help says what (its default)
            assert "default" in action.help, f"{prog} {path}: {name}: {action.help!r}"
        default = action.default
        if default not in (None, argparse.SUPPRESS, False, []):
            assert str(default) in action.help or f"{default:g}" in action.help, (
                f"{prog} {path}: {name}: default {default!r} not in {action.help!r}"
            )


@pytest.mark.parametrize(("prog", "path"), commands())
def test_help_ends_with_the_environment(prog: str, path: tuple[str, ...]) -> None:
    """Printed by the installed command: exit 0, and the last block names every variable."""
    done = subprocess.run(
        [str(BIN / prog), *path, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    last_block = done.stdout.rstrip().split("\n\n")[-1]
    assert last_block.startswith("environment"), done.stdout
    for variable in VARIABLES[prog]:
        assert variable in last_block, f"{prog} {' '.join(path)}: {variable} missing"
    width = max(len(line) for line in done.stdout.splitlines())
    assert width <= 100, f"{prog} {' '.join(path)}: a help line of {width} characters"
