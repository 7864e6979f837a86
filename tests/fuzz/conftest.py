"""How many cases each fuzz target runs, and a count of what each one did.

Every fuzz test uses the hypothesis settings profile ``tally-fuzz`` (``settings.get_profile``,
applied per test, so the rest of the suite keeps its own settings). Its ``max_examples`` comes
from, in order: ``--fuzz-examples N`` (an option of this folder's conftest, so it is known only
when pytest is pointed at ``tests/fuzz``), the ``TALLY_FUZZ_EXAMPLES`` environment variable, or
``DEFAULT_EXAMPLES`` (the bounded run of the normal suite). Deadlines are off: a hang is caught by
each target's own time bound instead (in-process decoders) or by the HTTP client's timeout.
Tests call the session fixture ``fuzz_stats.hit()`` once per case.

``scripts/fuzz.sh`` is the long mode: 100,000 cases a target, with a progress line every
``TALLY_FUZZ_PROGRESS`` cases (unset or 0: no progress lines). At the end of the session a table
shows how many cases each target ran, in how many seconds (in the normal suite only the total,
unless ``-v``).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

HERE = Path(__file__).resolve().parent
PROFILE = "tally-fuzz"
DEFAULT_EXAMPLES = 60
"""Cases per target in the normal suite (the whole folder stays under about a minute)."""


class FuzzStats:
    """Cases run per target (a test's node id), their wall time, and optional progress lines."""

    def __init__(self, config: pytest.Config, progress_every: int) -> None:
        self.config = config
        self.progress_every = progress_every
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}
        self.current = "?"
        self.started = time.monotonic()

    def hit(self) -> None:
        """One more case for the running target."""
        self.counts[self.current] += 1
        n = self.counts[self.current]
        if self.progress_every and n % self.progress_every == 0:
            rate = n / max(1e-9, time.monotonic() - self.started)
            self.say(f"fuzz progress: {self.current}: {n} cases ({rate:.0f}/s)")

    def say(self, line: str) -> None:
        capman: Any = self.config.pluginmanager.getplugin("capturemanager")
        if capman is None:
            print(line, file=sys.stderr, flush=True)
            return
        with capman.global_and_fixture_disabled():
            print(line, file=sys.stderr, flush=True)


STATS = pytest.StashKey[FuzzStats]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        help="hypothesis max_examples for each fuzz target (else $TALLY_FUZZ_EXAMPLES, "
        f"else {DEFAULT_EXAMPLES})",
    )


def fuzz_examples(config: pytest.Config) -> int:
    given = config.getoption("--fuzz-examples", default=None)
    if given is None:
        given = int(os.environ.get("TALLY_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
    if given < 1:
        raise pytest.UsageError("the number of fuzz examples must be at least 1")
    return int(given)


def pytest_configure(config: pytest.Config) -> None:
    settings.register_profile(
        PROFILE,
        max_examples=fuzz_examples(config),
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )
    config.stash[STATS] = FuzzStats(config, int(os.environ.get("TALLY_FUZZ_PROGRESS", "0")))


@pytest.fixture(scope="session")
def fuzz_stats(pytestconfig: pytest.Config) -> FuzzStats:
    """Call ``fuzz_stats.hit()`` once per case."""
    return pytestconfig.stash[STATS]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    stats = item.config.stash.get(STATS, None)
    if stats is None or item.path.parent != HERE:
        yield
        return
    stats.current = item.nodeid
    started = time.monotonic()
    stats.started = started
    try:
        yield
    finally:
        stats.seconds[item.nodeid] = stats.seconds.get(item.nodeid, 0.0) + (
            time.monotonic() - started
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    stats = config.stash.get(STATS, None)
    if stats is None or not stats.counts:
        return
    terminalreporter.section("fuzz cases per target")
    if stats.progress_every or config.get_verbosity() > 0:  # the long mode, or asked for
        for nodeid in sorted(stats.counts):
            seconds = stats.seconds.get(nodeid, 0.0)
            name = nodeid.split("::", 1)[-1]
            terminalreporter.write_line(
                f"{stats.counts[nodeid]:>9} cases {seconds:>8.1f} s  {name}"
            )
    terminalreporter.write_line(
        f"{sum(stats.counts.values()):>9} cases in all over {len(stats.counts)} targets, "
        f"max_examples={fuzz_examples(config)} a target (-v or scripts/fuzz.sh: one line each)"
    )
