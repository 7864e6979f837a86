"""Bitcoin's merkle tree over a list of hashes, with CVE-2012-2459 mutation detection, and proofs.

Generic: the functions take any list of 32-byte leaves (Bitcoin's test vectors use txids). A
Tally block header commits to its transactions' **wtxids** (``consensus.block.block_merkle_root``).

The tree hashes pairs with SHA256d; a level with an odd count pairs its last hash with itself.
That duplication makes two different leaf lists share a root (``[a, b, c]`` and
``[a, b, c, c]``); like Bitcoin Core's ``ComputeMerkleRoot``, ``merkle_root`` reports a list as
*mutated* when any level holds two equal hashes side by side, and block validation rejects it.

Proofs: ``merkle_branch(leaves, i)`` lists the sibling hash at each level, bottom up;
``merkle_root_from_branch`` folds it back, the index's bits choosing left or right.
All hashes are in internal byte order.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.hashing import sha256d

ZERO_HASH = b"\x00" * 32


def merkle_root(hashes: Sequence[bytes]) -> tuple[bytes, bool]:
    """Return ``(root, mutated)``. The root of an empty list is 32 zero bytes."""
    if not hashes:
        return ZERO_HASH, False
    level = list(hashes)
    mutated = False
    while len(level) > 1:
        for pos in range(0, len(level) - 1, 2):
            if level[pos] == level[pos + 1]:
                mutated = True
        if len(level) & 1:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0], mutated


def merkle_branch(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes from leaf ``index`` up to (not including) the root."""
    if not 0 <= index < len(hashes):
        raise IndexError(f"index {index} outside 0..{len(hashes) - 1}")
    level = list(hashes)
    branch: list[bytes] = []
    while len(level) > 1:
        if len(level) & 1:
            level.append(level[-1])
        branch.append(level[index ^ 1])
        index >>= 1
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return branch


def merkle_root_from_branch(leaf: bytes, index: int, branch: Sequence[bytes]) -> bytes:
    """Fold a branch back to the root it proves ``leaf`` (at position ``index``) under."""
    node = leaf
    for sibling in branch:
        node = sha256d(sibling + node) if index & 1 else sha256d(node + sibling)
        index >>= 1
    return node


def verify_merkle_proof(leaf: bytes, index: int, branch: Sequence[bytes], root: bytes) -> bool:
    """True if ``branch`` proves ``leaf`` at ``index`` under ``root``."""
    if index < 0 or index >> len(branch):
        return False
    return merkle_root_from_branch(leaf, index, branch) == root
