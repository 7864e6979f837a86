"""Block bodies and undo data on disk.

Job: store and read blocks (``b`` + hash, canonical msgpack) and the undo data of the blocks on
the active chain (``u`` + hash, ``consensus.BlockUndo``).

State owned: the ``b`` and ``u`` prefixes (``node.chainstate.schema``). No cache: a body is
read, and decoded, when it is asked for.

Invariants:
- A stored body is the block its header commits to: the chain stores one only after
  ``check_block`` passed, and ``reindex`` drops one that does not match (``delete_block``).
- Undo data exists exactly for the blocks of the active chain: it is written in the batch that
  connects a block and deleted in the one that disconnects it.
- Writes go only into batches the caller commits; this module never commits on its own, so the
  caller decides the batch boundaries and sync flags.

Left to others: which blocks are kept and when (``node.chainstate.chain``), validation
(``consensus``), the block index (``h``, also the chain's).
"""

from __future__ import annotations

from consensus import Block, BlockUndo
from node.chainstate import schema as k
from node.storage import KeyValueStore, WriteBatch


class BlockStore:
    """Blocks and undo data in the node's key-value store."""

    prefixes = (k.P_BLOCK, k.P_UNDO)

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    def get_block(self, block_hash: bytes) -> Block | None:
        raw = self._store.get(k.block_key(block_hash))
        return None if raw is None else Block.deserialize(raw)

    def get_block_bytes(self, block_hash: bytes) -> bytes | None:
        return self._store.get(k.block_key(block_hash))

    def get_undo(self, block_hash: bytes) -> BlockUndo | None:
        raw = self._store.get(k.undo_key(block_hash))
        return None if raw is None else BlockUndo.deserialize(raw)

    def put_block(self, batch: WriteBatch, block: Block) -> None:
        batch.put(k.block_key(block.hash()), block.serialize())

    def delete_block(self, batch: WriteBatch, block_hash: bytes) -> None:
        batch.delete(k.block_key(block_hash))

    def put_undo(self, batch: WriteBatch, block_hash: bytes, undo: BlockUndo) -> None:
        batch.put(k.undo_key(block_hash), undo.serialize())

    def delete_undo(self, batch: WriteBatch, block_hash: bytes) -> None:
        batch.delete(k.undo_key(block_hash))
