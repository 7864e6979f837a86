"""The chainstate's exceptions, shared by its parts (re-exported by ``node.chainstate``)."""

from __future__ import annotations


class ChainstateError(Exception):
    """The database cannot be used: another network's, another schema's, or corrupt."""


class UnknownBlockError(LookupError):
    """No block index entry has this hash."""


class GenesisBlockError(ValueError):
    """The genesis block cannot be invalidated: every chain starts there."""
