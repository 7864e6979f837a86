"""``tally-devnet``: a local network of nodes in one command, like ``anvil`` or ``nigiri start``,
and the toolkit to control it (SPEC 6).

``node.devnet.processes`` starts, restarts and stops the node processes and writes the devnet's
files (``devnet.json``, ``env``, the dev wallet); ``node.devnet.cli`` is the command line. The
toolkit commands (mine, automine, time, snapshots, partitions, reorgs, ...) are
``client.devnet.DevnetControl``'s, which talks to the nodes' admin routes only, so
``client.testing`` drives a devnet with the same code.
"""

from client.devnet import DEV_PASSWORD
from node.devnet.cli import build_parser, main

__all__ = ["DEV_PASSWORD", "build_parser", "main"]
