"""The torch executor: the weightinit stream written into torch tensors on their own device.

:func:`fill_` writes ``x[region]`` of a tensor ``x`` of a global ``shape``,
drawn from a weightinit distribution under a :class:`weightinit.Stream`, into
a torch tensor in place:

* CPU, contiguous: the compiled core (or the NumPy reference) writes straight
  into the tensor's memory through a NumPy view; no copy, no temporary.
* CPU, non-contiguous: generated into a contiguous temporary, then copied.
* CUDA with Triton, a run of consecutive indices with float32 compute (float16,
  bfloat16, float32 outputs): one Triton kernel (``_triton_kernel``), compiled
  without FP fusion, with IEEE ``div_rn`` / ``sqrt_rn``.
* other devices, regions of several runs, float64 (or ``WEIGHTINIT_NO_TRITON=1``):
  pure torch ops implementing
  docs/random.md on the tensor's device, in chunks of :data:`DEVICE_CHUNK`
  values so memory stays bounded.  Philox uses int64 tensors holding uint32
  words, with 32x32-bit products assembled from 16-bit halves (no overflow);
  log and ndtri are the spec's IEEE basic operations in the compute dtype, each
  its own eager op, so nothing is contracted into an FMA.

On CPU every value equals the NumPy reference bit for bit.  On CUDA the Philox
words, the uniform values and (as measured, docs/performance.md) the normal and
truncated-normal values do too; the specification only promises normals within
1 ulp of the compute precision there.

:func:`orthogonal_` fills a tensor with a (semi-)orthogonal matrix: the normal
input matrix is generated on the tensor's device, ``torch.linalg.qr`` runs in
float32 (float64 for float64 tensors) and the result is cast.
"""

from __future__ import annotations

import functools
import math
import os

import ml_dtypes
import numpy as np

import torch
from weightinit.common.checks import real_number
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.common.shapes import RegionPlan, normalize_shape
from weightinit.executors import compiled as _compiled
from weightinit.random.constants import (
    F32_EXP_BIAS,
    F32_MANTISSA_BITS,
    F32_MANTISSA_MASK,
    F32_ONE_BITS,
    F64_EXP_BIAS,
    F64_MANTISSA_BITS,
    F64_MANTISSA_MASK,
    F64_ONE_BITS,
    HALF_NORMAL32_MASK,
    HALF_NORMAL32_SCALE,
    HALF_NORMAL64_HI_MASK,
    HALF_NORMAL64_SCALE,
    LOG32,
    LOG64,
    OPEN32_SHIFT,
    OPEN64_HI_SHIFT,
    OPEN64_LO_SHIFT,
    PHILOX_M0,
    PHILOX_M1,
    PHILOX_ROUNDS,
    PHILOX_W0,
    PHILOX_W1,
    PPND7,
    PPND16,
    U32_SCALE,
    U32_SHIFT,
    U64_HI_SHIFT,
    U64_LO_SHIFT,
    U64_SCALE,
    WORD_MASK,
)
from weightinit.random.distributions import Plan, make_plan
from weightinit.random.float8 import FORMATS as _FP8_FORMATS
from weightinit.random.float8 import round_bits as _fp8_round_bits
from weightinit.random.orthogonal import STANDARD_NORMAL, gaussian_shape, qr_signs
from weightinit.random.sampling import sample

__all__ = ["fill_", "orthogonal_", "DEVICE_CHUNK", "numpy_view"]

DEVICE_CHUNK = 1 << 20
"""Values generated per chunk by the torch-ops (non-CPU) path."""

_NP_DTYPES = {
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: np.dtype(ml_dtypes.bfloat16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.float8_e4m3fn: np.dtype(ml_dtypes.float8_e4m3fn),
    torch.float8_e5m2: np.dtype(ml_dtypes.float8_e5m2),
}
_FP8 = {
    torch.float8_e4m3fn: _FP8_FORMATS[np.dtype(ml_dtypes.float8_e4m3fn)],
    torch.float8_e5m2: _FP8_FORMATS[np.dtype(ml_dtypes.float8_e5m2)],
}
_M32 = WORD_MASK


@functools.lru_cache(maxsize=256)
def _plan(dist, dtype: np.dtype) -> Plan:
    return make_plan(dist, dtype)


def _np_dtype(tensor: torch.Tensor) -> np.dtype:
    dt = _NP_DTYPES.get(tensor.dtype)
    if dt is None:
        raise InitializerTypeError(
            "`tensor` must have a floating dtype (float16, bfloat16, float32, float64, float8_e4m3fn or "
            f"float8_e5m2); received a tensor of "
            f"dtype {tensor.dtype}."
        )
    return dt


def numpy_view(tensor: torch.Tensor) -> np.ndarray:
    """A writable NumPy view of a contiguous CPU tensor (bfloat16 and fp8 through ml_dtypes), without a copy."""
    t = tensor.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    if t.dtype in _FP8:
        return t.view(torch.uint8).numpy().view(_NP_DTYPES[t.dtype])
    return t.numpy()


def fill_(tensor: torch.Tensor, dist, stream, *, shape=None, region=None) -> torch.Tensor:
    """Write ``x[region]`` into ``tensor`` in place, where ``x`` of ``shape`` is drawn from ``dist`` under ``stream``.

    Args:
      tensor: a float16, bfloat16, float32 or float64 tensor on any device; its
        shape must be the region's shape.  Meta tensors are returned untouched.
      dist: a :class:`weightinit.Uniform`, :class:`weightinit.Normal` or
        :class:`weightinit.TruncatedNormalDistribution`.
      stream: the tensor's :class:`weightinit.Stream`.
      shape: the shape of the whole tensor ``x`` (default: ``tensor.shape``).
      region: optional tuple of slices of ``x`` (default: all of it).

    Returns:
      ``tensor``.

    >>> import torch, weightinit as wi
    >>> from weightinit.executors.torch import fill_
    >>> t = fill_(torch.empty(2, 3), wi.Normal(0.0, 1.0), wi.Stream(0))
    >>> bool((t.numpy() == wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (2, 3), "float32")).all())
    True
    """
    if not isinstance(tensor, torch.Tensor):
        raise InitializerTypeError(f"`tensor` must be a torch.Tensor; received {type(tensor).__name__}.")
    if tensor.is_meta:
        return tensor
    np_dtype = _np_dtype(tensor)
    full = tuple(tensor.shape) if shape is None else normalize_shape(shape)
    rp = RegionPlan(full, region)
    if tuple(rp.out_shape) != tuple(tensor.shape):
        raise InitializerValueError(
            f"`tensor` must have the region's shape {tuple(rp.out_shape)}; received a tensor of shape "
            f"{tuple(tensor.shape)} for shape={full}, region={region!r}."
        )
    if rp.size == 0:
        return tensor
    with torch.no_grad():
        if tensor.device.type == "cpu":
            _fill_cpu(tensor, dist, stream, full, region, rp, np_dtype)
        else:
            fill_device_(tensor, _plan(dist, np_dtype), stream.key, rp)
    return tensor


def _fill_cpu(tensor, dist, stream, full, region, rp: RegionPlan, np_dtype) -> None:
    target = tensor if tensor.is_contiguous() else torch.empty(tensor.shape, dtype=tensor.dtype)
    view = numpy_view(target)
    if rp.run_length == rp.size and _compiled.available():
        # One run (whole tensor or a contiguous block): a single call of the core, threads inside.
        _compiled.fill_array(_plan(dist, np_dtype), stream.key, rp.first_run_start, view)
    else:
        sample(dist, stream, full, np_dtype, region, out=view)
    if target is not tensor:
        tensor.copy_(target)


# --------------------------------------------------------------------------- torch-ops path


def _mulhilo(a: torch.Tensor, m: int):
    """High and low 32-bit words of ``a * m`` for uint32 values held in int64, without overflow."""
    t = a * (m & 0xFFFF)  # < 2**48
    u = a * (m >> 16) + (t >> 16)  # < 2**49
    lo = ((u & 0xFFFF) << 16) | (t & 0xFFFF)
    return u >> 16, lo


def philox_blocks(c0: torch.Tensor, c1: torch.Tensor, key) -> tuple[torch.Tensor, ...]:
    """Philox4x32-10 of counters ``(c0, c1, 0, 0)`` (int64 tensors of uint32 values): four int64 tensors."""
    k0, k1 = int(key[0]), int(key[1])
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    for _ in range(PHILOX_ROUNDS):
        hi0, lo0 = _mulhilo(c0, PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + PHILOX_W0) & _M32
        k1 = (k1 + PHILOX_W1) & _M32
    return c0, c1, c2, c3


def _flat_indices(rp: RegionPlan, pos: int, n: int, device) -> torch.Tensor:
    """Global flat indices (int64) of output positions ``pos .. pos + n - 1`` of the region."""
    o = torch.arange(pos, pos + n, dtype=torch.int64, device=device)
    L = rp.run_length
    within = o % L
    run = o // L
    start = torch.full_like(o, rp.run_offset)
    for d in range(rp.lead - 1, -1, -1):
        nd = rp.lengths[d]
        first, _, step = rp.ranges[d]
        coord = run % nd
        run = run // nd
        start += (first + coord * step) * rp.strides[d]
    return start + within


def _words(key, words: int, start: int | None, n: int, idx: torch.Tensor | None, device):
    """The ``words`` uint32 words (int64 tensors) of n values: a range from ``start`` or indices ``idx``."""
    per_block = 4 // words
    if idx is None:
        assert start is not None  # a range has a start; indices (idx) do not need one
        b0 = start // per_block
        b1 = (start + n - 1) // per_block
        j = torch.arange(b0, b1 + 1, dtype=torch.int64, device=device)
        out = torch.stack(philox_blocks(j & _M32, j >> 32, key), dim=1).reshape(-1, words)
        off = start - b0 * per_block
        out = out[off : off + n]
        return tuple(out[:, t] for t in range(words))
    j = idx // per_block
    blocks = torch.stack(philox_blocks(j & _M32, j >> 32, key), dim=1)  # (n, 4)
    lane = (idx % per_block) * words
    return tuple(torch.gather(blocks, 1, (lane + t)[:, None])[:, 0] for t in range(words))


def _c(v, dt: torch.dtype) -> float:
    """A constant rounded to the compute precision, as a Python float (exact in that precision)."""
    return float(np.float32(v)) if dt == torch.float32 else float(v)


def _horner(coeffs_low_first, x: torch.Tensor, dt, leading_one: bool = False) -> torch.Tensor:
    cs = [_c(c, dt) for c in coeffs_low_first]
    if leading_one:
        cs = [1.0, *cs]
    acc = torch.full_like(x, cs[-1])
    for c in reversed(cs[:-1]):
        acc = acc * x
        acc = acc + c
    return acc


def _log(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.float32:
        b = x.view(torch.int32).to(torch.int64)
        e = (b >> F32_MANTISSA_BITS) - F32_EXP_BIAS
        m = ((b & F32_MANTISSA_MASK) | F32_ONE_BITS).to(torch.int32).view(torch.float32)
        big = m > _c(LOG32["sqrt2"], torch.float32)
        m = torch.where(big, m * 0.5, m)
        fe = (e + big.to(torch.int64)).to(torch.float32)
        f = m - 1.0
        z = f * f
        y = _horner(tuple(reversed(LOG32["p"])), f, torch.float32)
        y = y * f
        y = y * z
        y = y + fe * _c(LOG32["ln2_lo"], torch.float32)
        y = y + z * -0.5
        r = f + y
        return r + fe * _c(LOG32["ln2_hi"], torch.float32)
    b = x.view(torch.int64)
    e = (b >> F64_MANTISSA_BITS) - F64_EXP_BIAS
    m = ((b & F64_MANTISSA_MASK) | F64_ONE_BITS).view(torch.float64)
    big = m > LOG64["sqrt2"]
    m = torch.where(big, m * 0.5, m)
    dk = (e + big.to(torch.int64)).to(torch.float64)
    lg = LOG64["Lg"]
    f = m - 1.0
    s = f / (f + 2.0)
    z = s * s
    w = z * z
    t1 = w * ((w * ((w * lg[5]) + lg[3])) + lg[1])
    t2 = z * ((w * ((w * ((w * lg[6]) + lg[4])) + lg[2])) + lg[0])
    r = t2 + t1
    hfsq = (f * 0.5) * f
    return dk * LOG64["ln2_hi"] - ((hfsq - (s * (hfsq + r) + dk * LOG64["ln2_lo"])) - f)


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root.

    torch's vectorized CPU ``sqrt`` (AVX-512 build) is not correctly rounded, so on CPU the
    square root goes through NumPy (IEEE ``sqrt``); CUDA's ``sqrt`` is correctly rounded.
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.sqrt(x.contiguous().numpy()))
    return torch.sqrt(x)


def _ndtri(p: torch.Tensor) -> torch.Tensor:
    dt = p.dtype
    coef = PPND7 if dt == torch.float32 else PPND16
    q = p - 0.5
    r = _c(coef["const1"], dt) - q * q
    central = (q * _horner(coef["a"], r, dt)) / _horner(coef["b"], r, dt, leading_one=True)
    inner = q.abs() <= _c(coef["split1"], dt)
    t = torch.where(q < 0, p, 1.0 - p)
    t = torch.where(inner, torch.full_like(t, 0.5), t)
    rr = _sqrt(-_log(t))
    near = rr - _c(coef["const2"], dt)
    tail = _horner(coef["c"], near, dt) / _horner(coef["d"], near, dt, leading_one=True)
    far_m = rr > _c(coef["split2"], dt)
    if bool(far_m.any()):
        far = rr - _c(coef["split2"], dt)
        tail = torch.where(far_m, _horner(coef["e"], far, dt) / _horner(coef["f"], far, dt, leading_one=True), tail)
    tail = torch.where(q < 0, -tail, tail)
    return torch.where(inner, central, tail)


def values_from_words(plan: Plan, w) -> torch.Tensor:
    """The compute-precision values of docs/random.md from words ``w`` (int64 tensors of uint32 values)."""
    c = plan.consts
    if plan.words == 1:
        dt = torch.float32
        x = w[0]
        if plan.kind == "uniform":
            u = (x >> U32_SHIFT).to(dt) * U32_SCALE
            y = u * float(c["scale"])
            return y + float(c["offset"])
        if plan.kind == "normal":
            k = (x >> 1) & HALF_NORMAL32_MASK
            z = _ndtri((k * 2 + 1).to(dt) * HALF_NORMAL32_SCALE)
            xs = torch.where((x >> 31).bool(), -z, z)
            y = xs * float(c["std"])
            return y + float(c["mean"])
        u = ((x >> OPEN32_SHIFT) * 2 + 1).to(dt) * U32_SCALE
        if plan.compute == np.float64:  # a narrow float32 interval: float64 arithmetic (docs/random.md 6)
            u = u.to(torch.float64)
    else:
        dt = torch.float64
        hi, lo = w
        if plan.kind == "uniform":
            u = ((hi << U64_HI_SHIFT) | (lo >> U64_LO_SHIFT)).to(dt) * U64_SCALE
            y = u * float(c["scale"])
            return y + float(c["offset"])
        if plan.kind == "normal":
            k = ((hi & HALF_NORMAL64_HI_MASK) << U64_HI_SHIFT) | (lo >> U64_LO_SHIFT)
            z = _ndtri((k * 2 + 1).to(dt) * HALF_NORMAL64_SCALE)
            xs = torch.where((hi >> 31).bool(), -z, z)
            y = xs * float(c["std"])
            return y + float(c["mean"])
        u = ((((hi << OPEN64_HI_SHIFT) | (lo >> OPEN64_LO_SHIFT)) * 2) + 1).to(dt) * U64_SCALE
    p = u * float(c["d"])
    p = p + float(c["pa"])
    p = torch.clamp(p, min=float(c["pmin"]), max=float(c["pmax"]))
    z = _ndtri(p)
    y = z * float(c["sstd"])
    return y + float(c["mean"])


def _to_float8(y: torch.Tensor, clip, fmt) -> torch.Tensor:
    """float32 chunk -> fp8 codes (uint8) by the stream's integer rounding (weightinit.random.float8).

    The clip runs in float32 before the rounding: the bounds are fp8 values and the rounding is
    monotone, so this equals clipping after it (torch has no clamp for fp8 tensors).
    """
    if clip is not None:
        y = torch.clamp(y, min=clip[0], max=clip[1])
    bits = y.view(torch.int32).to(torch.int64) & _M32
    return _fp8_round_bits(bits, fmt, torch.where).to(torch.uint8)


@functools.lru_cache(maxsize=1)
def _triton():
    """The Triton kernel module, or None when Triton (or a CUDA device) is unavailable."""
    if os.environ.get("WEIGHTINIT_NO_TRITON"):
        return None
    try:
        from weightinit.executors import triton as _triton_kernel
    except Exception:  # any import problem means: use torch ops
        return None
    return _triton_kernel if _triton_kernel.available() else None


def fill_device_(tensor: torch.Tensor, plan: Plan, key, rp: RegionPlan, chunk: int = DEVICE_CHUNK) -> torch.Tensor:
    """Fill ``tensor`` (the region's shape) with torch ops on its device, ``chunk`` values at a time.

    Works on any device, CPU included (the tests run it there against the reference).
    """
    device = tensor.device
    target = tensor if tensor.is_contiguous() else torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
    flat = target.view(-1)
    tdt = tensor.dtype
    clip = None
    if plan.clip is not None:
        clip = (float(plan.clip[0]), float(plan.clip[1]))
    single_run = rp.run_length == rp.size
    # fp8 takes the torch-ops path below (the stream's integer rounding); the Triton kernel stores
    # float16 / bfloat16 / float32 only.
    fp32 = plan.compute == np.float32
    kernel = (
        _triton() if single_run and plan.words == 1 and fp32 and device.type == "cuda" and tdt not in _FP8 else None
    )
    if kernel is not None:
        kernel.launch(flat, plan, key, rp.first_run_start)
        if target is not tensor:
            tensor.copy_(target)
        return tensor
    for pos in range(0, rp.size, chunk):
        n = min(chunk, rp.size - pos)
        if single_run:
            w = _words(key, plan.words, rp.first_run_start + pos, n, None, device)
        else:
            w = _words(key, plan.words, None, n, _flat_indices(rp, pos, n, device), device)
        y = values_from_words(plan, w)
        if tdt in _FP8:
            flat[pos : pos + n] = _to_float8(y, clip, _FP8[tdt]).view(tdt)
            continue
        y = y.to(tdt)
        if clip is not None:
            y = torch.clamp(y, min=clip[0], max=clip[1])
        flat[pos : pos + n] = y
    if target is not tensor:
        tensor.copy_(target)
    return tensor


# --------------------------------------------------------------------------- orthogonal


def orthogonal_(tensor: torch.Tensor, gain: float, stream, layout: str = "keras") -> torch.Tensor:
    """Fill ``tensor`` with ``gain`` times a (semi-)orthogonal matrix, on the tensor's device.

    The input matrix is the stream's standard normals of shape ``(max(r, c), min(r, c))`` in
    float32 (float64 for float64 tensors), exactly as :func:`weightinit.random.orthogonal.orthogonal_matrix`
    draws it; its reduced QR runs through ``torch.linalg.qr`` and the columns of Q are multiplied by
    :func:`weightinit.random.orthogonal.qr_signs` (the signs of R's diagonal, sign(0) = +1).

    Args:
      tensor: at least two-dimensional float tensor.
      gain: multiplicative factor.
      stream: the tensor's :class:`weightinit.Stream`.
      layout: ``"keras"`` flattens to ``(prod(shape[:-1]), shape[-1])``; ``"torch"`` to
        ``(shape[0], prod(shape[1:]))`` as ``torch.nn.init.orthogonal_`` does.

    Returns:
      ``tensor``.
    """
    if tensor.dim() < 2:
        raise InitializerValueError(
            f"The tensor to initialize must be at least two-dimensional; received shape={tuple(tensor.shape)}."
        )
    if layout not in ("keras", "torch"):
        raise InitializerValueError(f"`layout` must be 'keras' or 'torch'; received layout={layout!r}.")
    g = real_number("gain", gain)
    if tensor.is_meta:
        return tensor
    _np_dtype(tensor)
    shape = tuple(tensor.shape)
    if layout == "keras":
        rows, cols = math.prod(shape[:-1]), shape[-1]
    else:
        rows, cols = shape[0], math.prod(shape[1:])
    if rows * cols == 0:
        return tensor
    ct = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        a = torch.empty(gaussian_shape(rows, cols), dtype=ct, device=tensor.device)
        fill_(a, STANDARD_NORMAL, stream)
        q, r = torch.linalg.qr(a, mode="reduced")
        del a
        q.mul_(qr_signs(r, torch))
        del r
        if g != 1.0:
            q.mul_(g)
        if rows < cols:
            q = q.T
        tensor.copy_(q.reshape(shape))
    return tensor
