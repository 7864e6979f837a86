"""The node's clock for chain purposes: the wall clock plus an offset the devnet may set (SPEC 6).

Job: ``NodeClock`` is the one ``clock`` the chainstate (``verify_header``'s ``now``, so
``time-too-new``), the mempool (entry times, expiry, the memory of replacements) and the miner
(template times) are given, so that ``POST /admin/time`` moves all of them at once, as Core's
``setmocktime`` does: block times, median time past and ``time-too-new`` follow it. It is the wall
clock (``base``) plus ``offset`` whole seconds, and it keeps running: setting it to T makes it read
T now and T + 10 ten seconds later (Core's mock time stands still; a devnet whose miner mines
every S seconds needs a clock that moves).

The offset is kept in ``<datadir>/clock.json`` (``{"offset": N}``, written atomically on every
change, read by ``load``), so a node restarted by ``tally-devnet`` keeps its place in time and
still accepts the blocks its peers made on the shifted clock (docs/DECISIONS.md, "Devnet clock").

Invariants: ``offset`` is an ``int`` replaced whole, so a reader on any thread sees the old or the
new value, never a mix; changes are made on the state thread (``NodeService.call``), so they are
ordered with the chain's and the mempool's work. The bounds of what may be set are the API's
(``node.api.routes.toolkit``); ``load`` ignores a file it cannot read or whose offset is out of
``MAX_OFFSET``. Left to others: P2P's bans, scores and timeouts, which stay on the wall clock (a
day of devnet time does not lift a ban), and which networks may shift the clock (regtest only:
``NodeService`` loads the file only there).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

CLOCK_FILE = "clock.json"
MAX_OFFSET = 2**32
"""An offset read back from the file is ignored beyond this many seconds either way (a header's
time is a u32: no useful clock is further off than that)."""


class NodeClock:
    """The wall clock ``base`` shifted by ``offset`` seconds; call it for the time."""

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self.base = base
        self.offset = 0
        self._path: Path | None = None

    def __call__(self) -> float:
        return self.base() + self.offset

    def now(self) -> int:
        """The shifted time in whole Unix seconds (what a block template uses)."""
        return int(self())

    def set_offset(self, offset: int) -> None:
        """Shift the clock to ``base() + offset``, and persist it if ``load`` named a file."""
        self.offset = offset
        if self._path is not None:
            tmp = self._path.with_name(self._path.name + ".tmp")
            tmp.write_text(json.dumps({"offset": offset}) + "\n")
            os.replace(tmp, self._path)

    def set(self, unix: int) -> None:
        """Make the clock read ``unix`` now (it runs on from there)."""
        self.set_offset(unix - int(self.base()))

    def advance(self, seconds: int) -> None:
        self.set_offset(self.offset + seconds)

    def load(self, datadir: Path) -> None:
        """Take the offset kept in ``datadir`` (none: 0), and keep later changes there."""
        self._path = datadir / CLOCK_FILE
        try:
            text = self._path.read_text()
        except FileNotFoundError:
            return
        except OSError as err:
            log.warning("cannot read %s (%s): the clock is not shifted", self._path, err)
            return
        try:
            offset = json.loads(text)["offset"]
        except (ValueError, TypeError, KeyError):
            offset = None
        if not isinstance(offset, int) or isinstance(offset, bool) or abs(offset) > MAX_OFFSET:
            log.warning("ignoring %s: no whole-second offset in it", self._path)
            return
        self.offset = offset
        if offset:
            log.info("the clock runs %+d s from the wall clock (kept in %s)", offset, self._path)
