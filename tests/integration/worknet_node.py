"""``tally-node`` on the ``worktest`` network of ``tests/workchain.py``: a test-only launcher.

The node offers only the stock networks (``--network main|test|regtest``), and none of them can
make chains of differing work in a test: regtest's bits are always ``pow_limit`` (a block with
any other bits is ``bad-diffbits``), and the test network needs about 2**25 hashes a block and
60 blocks before its first retarget. So this process adds ``WORK_PARAMS`` to the table of
networks and then runs ``node.cli.main``, the function behind the installed ``tally-node``
command, unchanged: run it as ``python -m tests.integration.worknet_node run --datadir D
--port P`` from the repository root with ``TALLY_NETWORK=worktest`` in the environment (the
``--network`` flag's choices are fixed; the environment goes through the same check against
the table). Everything after start-up is the real node: HTTP, the service, the chainstate on
LevelDB.
"""

from __future__ import annotations

import sys

from consensus.params import NETWORKS
from tests.workchain import WORK_PARAMS

NETWORKS[WORK_PARAMS.name] = WORK_PARAMS

from node.cli import main  # noqa: E402  # after the network is registered

if __name__ == "__main__":
    sys.exit(main())
