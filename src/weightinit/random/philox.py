"""Philox4x32-10, the counter-based bit generator under every weightinit stream.

Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011) maps a 128-bit counter ``(c0, c1, c2, c3)`` and a 64-bit
key ``(k0, k1)`` to four 32-bit words through ten rounds of::

    (hi0, lo0) = M0 * c0          # 32 x 32 -> 64-bit product
    (hi1, lo1) = M1 * c2
    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
    k = (k0 + W0, k1 + W1)        # "key bump", mod 2**32, between rounds

with the multipliers ``M0``, ``M1`` and Weyl increments ``W0``, ``W1`` of
:mod:`weightinit.random.constants`.  This module is the NumPy reference implementation: the
oracle every executor is tested against (docs/random.md, section "Bits").
"""

from __future__ import annotations

import numpy as np

from weightinit.random.constants import PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0, PHILOX_W1, WORD_MASK

__all__ = ["philox4x32", "philox4x32_scalar", "M0", "M1", "W0", "W1", "ROUNDS"]

M0, M1, W0, W1, ROUNDS = PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1, PHILOX_ROUNDS
"""Short names of :mod:`weightinit.random.constants`' Philox constants (the owner)."""
_MASK = np.uint64(WORD_MASK)
_SHIFT = np.uint64(32)


def philox4x32(
    counter: tuple[np.ndarray | int, np.ndarray | int, np.ndarray | int, np.ndarray | int],
    key: tuple[int, int],
    rounds: int = ROUNDS,
) -> np.ndarray:
    """Apply Philox4x32 to broadcastable counter words under one key.

    Args:
      counter: four arrays (or ints) holding the 32-bit counter words
        ``c0..c3``; they are broadcast against each other.
      key: the two 32-bit key words ``(k0, k1)``.
      rounds: number of rounds (10 for Philox4x32-10; other values exist only
        for the known-answer tests of Random123).

    Returns:
      A ``uint32`` array of shape ``(4,) + broadcast_shape`` holding the four
      output words.

    >>> hex(int(philox4x32((0, 0, 0, 0), (0, 0))[0]))
    '0x6627e8d5'
    """
    c = np.broadcast_arrays(*(np.asarray(x, dtype=np.uint64) for x in counter))
    c0, c1, c2, c3 = (x.copy() for x in c)
    k0 = np.uint64(int(key[0]) & 0xFFFFFFFF)
    k1 = np.uint64(int(key[1]) & 0xFFFFFFFF)
    m0 = np.uint64(M0)
    m1 = np.uint64(M1)
    w0 = np.uint64(W0)
    w1 = np.uint64(W1)
    for r in range(rounds):
        if r:
            k0 = (k0 + w0) & _MASK
            k1 = (k1 + w1) & _MASK
        p0 = c0 * m0
        p1 = c2 * m1
        c0, c1, c2, c3 = (p1 >> _SHIFT) ^ c1 ^ k0, p1 & _MASK, (p0 >> _SHIFT) ^ c3 ^ k1, p0 & _MASK
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def philox4x32_scalar(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """Philox4x32-10 of one counter with Python integers: the same bits as :func:`philox4x32`.

    Key derivations (seeds, child streams) evaluate one counter at a time;
    plain integer arithmetic is several times faster there than NumPy's
    per-call overhead.

    >>> hex(philox4x32_scalar((0, 0, 0, 0), (0, 0))[0])
    '0x6627e8d5'
    """
    m = 0xFFFFFFFF
    c0, c1, c2, c3 = (int(c) & m for c in counter)
    k0, k1 = int(key[0]) & m, int(key[1]) & m
    for r in range(ROUNDS):
        if r:
            k0 = (k0 + W0) & m
            k1 = (k1 + W1) & m
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & m, (p0 >> 32) ^ c3 ^ k1, p0 & m
    return c0, c1, c2, c3
