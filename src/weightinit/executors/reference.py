"""The NumPy reference executor: the normative implementation of docs/random.md.

It turns a :class:`~weightinit.random.distributions.Plan`, a stream key and flat
indices into values.  Every other executor (compiled CPU core, torch, JAX) is
tested bit for bit against it.  It favours clarity over speed, but works in
chunks so memory stays bounded.
"""

from __future__ import annotations

import numpy as np

from weightinit.random.constants import (
    HALF_NORMAL32_MASK,
    HALF_NORMAL32_SCALE,
    HALF_NORMAL64_HI_MASK,
    HALF_NORMAL64_SCALE,
    OPEN32_SHIFT,
    OPEN64_HI_SHIFT,
    OPEN64_LO_SHIFT,
    U32_SCALE,
    U32_SHIFT,
    U64_HI_SHIFT,
    U64_LO_SHIFT,
    U64_SCALE,
    WORD_MASK,
)
from weightinit.random.distributions import Plan
from weightinit.random.float8 import is_float8, to_float8
from weightinit.random.philox import philox4x32
from weightinit.random.special import ndtri32, ndtri64

__all__ = ["words_for_range", "words_for_indices", "values_from_words", "fill_range", "fill_indices", "NAME"]

NAME = "numpy-reference"
_M32 = np.uint64(WORD_MASK)


def _blocks(key, blocks: np.ndarray) -> np.ndarray:
    """Philox output (4, n) for block counters ``blocks`` (uint64): counter (j_lo, j_hi, 0, 0)."""
    return philox4x32((blocks & _M32, blocks >> np.uint64(32), 0, 0), key)


def words_for_range(key, start: int, n: int, words: int) -> np.ndarray:
    """The words of values ``start .. start + n - 1``: shape (words, n), uint32."""
    per_block = 4 // words
    b0 = start // per_block
    b1 = (start + n - 1) // per_block
    out = _blocks(key, np.arange(b0, b1 + 1, dtype=np.uint64))  # (4, nb)
    flat = out.T.reshape(-1, words)  # value-major: each row is one value's words
    off = start - b0 * per_block
    return flat[off : off + n].T


def words_for_indices(key, flat: np.ndarray, words: int) -> np.ndarray:
    """The words of values at arbitrary flat indices: shape (words, n), uint32."""
    flat = np.asarray(flat, dtype=np.uint64).ravel()
    per_block = np.uint64(4 // words)
    out = _blocks(key, flat // per_block)  # (4, n)
    lane = (flat % per_block).astype(np.intp) * words
    cols = np.arange(flat.size)
    return np.stack([out[lane + w, cols] for w in range(words)])


def _unit32(w: np.ndarray) -> np.ndarray:
    """[0, 1): the top 24 bits of the word, times 2**-24."""
    return (w >> np.uint32(U32_SHIFT)).astype(np.int32).astype(np.float32) * np.float32(U32_SCALE)


def _open32(w: np.ndarray) -> np.ndarray:
    """(0, 1): midpoints (2k + 1) * 2**-24 of the top 23 bits."""
    k = (w >> np.uint32(OPEN32_SHIFT)).astype(np.int32)
    return (k * 2 + 1).astype(np.float32) * np.float32(U32_SCALE)


def _unit64(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    k = (hi.astype(np.uint64) << np.uint64(U64_HI_SHIFT)) | (lo.astype(np.uint64) >> np.uint64(U64_LO_SHIFT))
    return k.astype(np.int64).astype(np.float64) * np.float64(U64_SCALE)


def _open64(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    k = (hi.astype(np.uint64) << np.uint64(OPEN64_HI_SHIFT)) | (lo.astype(np.uint64) >> np.uint64(OPEN64_LO_SHIFT))
    return (k.astype(np.int64) * 2 + 1).astype(np.float64) * np.float64(U64_SCALE)


def _half_normal_p(w: np.ndarray, lo: np.ndarray | None):
    """Sign and p in (0, 1/2] of the symmetric normal transform."""
    if lo is None:
        sign = (w >> np.uint32(31)).astype(bool)
        k = ((w >> np.uint32(1)) & np.uint32(HALF_NORMAL32_MASK)).astype(np.int32)
        p = (k * 2 + 1).astype(np.float32) * np.float32(HALF_NORMAL32_SCALE)
        return sign, p
    sign = (w >> np.uint32(31)).astype(bool)
    k = ((w.astype(np.uint64) & np.uint64(HALF_NORMAL64_HI_MASK)) << np.uint64(U64_HI_SHIFT)) | (
        lo.astype(np.uint64) >> np.uint64(U64_LO_SHIFT)
    )
    p = (k.astype(np.int64) * 2 + 1).astype(np.float64) * np.float64(HALF_NORMAL64_SCALE)
    return sign, p


def values_from_words(plan: Plan, w: np.ndarray) -> np.ndarray:
    """Apply the plan's per-value steps to words ``w`` of shape (plan.words, n)."""
    c = plan.consts
    is64 = plan.words == 2
    hi, lo = (w[0], w[1]) if is64 else (w[0], None)
    if plan.kind == "uniform":
        u = _unit64(hi, w[1]) if is64 else _unit32(hi)
        y = u * c["scale"]
        y = y + c["offset"]
    elif plan.kind == "normal":
        sign, p = _half_normal_p(hi, lo)
        z = ndtri64(p) if is64 else ndtri32(p)
        x = np.where(sign, -z, z)
        y = c["std"] * x
        y = y + c["mean"]
    elif plan.kind == "truncated_normal":
        wide = plan.compute == np.float64  # float64 outputs, and narrow float32 intervals (one word each)
        u = _open64(hi, w[1]) if is64 else _open32(hi)
        if wide and not is64:
            u = u.astype(np.float64)  # exact
        p = u * c["d"]
        p = p + c["pa"]
        p = np.minimum(np.maximum(p, c["pmin"]), c["pmax"])
        z = ndtri64(p) if wide else ndtri32(p)
        y = c["sstd"] * z
        y = y + c["mean"]
    else:  # pragma: no cover - plans are built by make_plan
        raise ValueError(plan.kind)
    # one rounding to the output dtype (8-bit floats: the stream's rounding, weightinit.random.float8)
    y = to_float8(y, plan.dtype) if is_float8(plan.dtype) else y.astype(plan.dtype)
    if plan.clip is not None:
        y = np.minimum(np.maximum(y, plan.clip[0]), plan.clip[1])
    return y


def fill_range(plan: Plan, key, start: int, out: np.ndarray) -> None:
    """Write the values at flat indices ``start .. start + out.size - 1`` into the 1-D buffer ``out``."""
    if out.size:
        out[...] = values_from_words(plan, words_for_range(key, start, out.size, plan.words))


def fill_indices(plan: Plan, key, flat: np.ndarray, out: np.ndarray) -> None:
    """Write the values at the given flat indices into the 1-D buffer ``out``."""
    if out.size:
        out[...] = values_from_words(plan, words_for_indices(key, flat, plan.words))
