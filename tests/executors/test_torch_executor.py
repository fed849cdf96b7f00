"""The torch executor equals the NumPy reference bit for bit on CPU.

Both CPU paths are covered: the compiled core writing through a NumPy view (contiguous,
non-contiguous, regions) and the pure-torch-ops path that runs on GPUs, run here on CPU.
The JAX executor, when present, is checked too.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import weightinit as wi
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.common.shapes import RegionPlan
from weightinit.executors import reference as _reference
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform, make_plan

torch = pytest.importorskip("torch")
from weightinit.executors.torch import fill_, fill_device_, numpy_view, orthogonal_  # noqa: E402

TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
DISTS = {
    "uniform": Uniform(-0.3, 0.7),
    "uniform_tiny": Uniform(0.0, 1e-6),
    "normal": Normal(0.1, 2.0),
    "tn_sym": TruncatedNormal(0.0, 1.0, -2.0, 2.0),
    "tn_mirror": TruncatedNormal(1.0, 0.5, 1.2, 9.0),
    "tn_far_tail": TruncatedNormal(0.0, 1.0, -np.inf, -6.0),
}
REF = wi.random.sampling._EXECUTORS[_reference.NAME]


def bits(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = numpy_view(x.contiguous())
    x = np.ascontiguousarray(x)
    return x.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]).ravel()


def reference(dist, stream, shape, dtype, region=None) -> np.ndarray:
    return wi.sample(dist, stream, shape, dtype, region, executor=REF)


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
@pytest.mark.parametrize("dist", list(DISTS))
def test_cpu_contiguous(dist, dtype):
    s = wi.Stream(3)
    t = torch.empty(33, 17, dtype=TORCH_DTYPES[dtype])
    assert fill_(t, DISTS[dist], s) is t
    assert np.array_equal(bits(t), bits(reference(DISTS[dist], s, (33, 17), dtype)))


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_cpu_non_contiguous_and_region(dtype):
    s = wi.Stream(4).child("x")
    base = torch.zeros(40, 30, dtype=TORCH_DTYPES[dtype])
    t = base.T  # (30, 40), non-contiguous
    fill_(t, DISTS["normal"], s)
    assert np.array_equal(bits(t), bits(reference(DISTS["normal"], s, (30, 40), dtype)))
    region = (slice(3, 21), slice(5, 37, 2))
    r = torch.empty(18, 16, dtype=TORCH_DTYPES[dtype])
    fill_(r, DISTS["tn_mirror"], s, shape=(30, 40), region=region)
    assert np.array_equal(bits(r), bits(reference(DISTS["tn_mirror"], s, (30, 40), dtype, region)))


# Regions that are one contiguous run starting past a leading-dimension offset: the single-run
# fast paths must start at the run's full flat index, not only the tail's offset.
SINGLE_RUN_REGIONS = [(slice(2, 3), slice(5, 10)), (slice(1, 2),), (slice(2, 3), slice(1, 2), slice(None))]


@pytest.mark.parametrize("region", SINGLE_RUN_REGIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_single_run_region_after_leading_offset(region, dtype):
    shape = (3, 10) if len(region) < 3 else (3, 2, 10)
    s = wi.Stream(9)
    ref = reference(DISTS["normal"], s, shape, dtype, region)
    out = torch.empty(ref.shape, dtype=TORCH_DTYPES[dtype])
    fill_(out, DISTS["normal"], s, shape=shape, region=region)
    assert np.array_equal(bits(out), bits(ref))
    dev = torch.empty(ref.shape, dtype=TORCH_DTYPES[dtype])
    fill_device_(dev, make_plan(DISTS["normal"], dtype), s.key, RegionPlan(shape, region))
    assert np.array_equal(bits(dev), bits(ref))


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
@pytest.mark.parametrize("dist", list(DISTS))
@pytest.mark.parametrize(
    "shape,region",
    [
        ((1031,), None),
        ((7, 301), (slice(1, 6), slice(3, 300))),  # gathered runs at odd offsets
        ((2**31 + 11, 4), (slice(2**31 - 5, 2**31 + 9),)),  # beyond 2**32 (one run)
        ((2**31 + 11, 4), (slice(2**31 - 5, 2**31 + 9), slice(1, 4))),  # beyond 2**32 (gathered)
    ],
)
def test_torch_ops_path_matches_reference(dist, dtype, shape, region):
    """The device path (pure torch ops), run on CPU, in chunks smaller than the tensor."""
    s = wi.Stream(5)
    rp = RegionPlan(shape, region)
    t = torch.empty(rp.out_shape, dtype=TORCH_DTYPES[dtype])
    fill_device_(
        t, make_plan(DISTS[dist], np.dtype(dtype if dtype != "bfloat16" else ml_dtypes.bfloat16)), s.key, rp, 97
    )
    assert np.array_equal(bits(t), bits(reference(DISTS[dist], s, shape, dtype, region)))


def test_meta_and_errors():
    m = torch.empty(3, 3, device="meta")
    assert fill_(m, DISTS["normal"], wi.Stream(0)) is m
    with pytest.raises(InitializerTypeError):
        fill_(torch.empty(3, dtype=torch.int32), DISTS["normal"], wi.Stream(0))
    with pytest.raises(InitializerValueError):
        fill_(torch.empty(3), DISTS["normal"], wi.Stream(0), shape=(5,))


def test_requires_grad_parameter():
    p = torch.nn.Parameter(torch.empty(8, 8))
    fill_(p, DISTS["uniform"], wi.Stream(1))
    assert np.array_equal(bits(p.detach()), bits(reference(DISTS["uniform"], wi.Stream(1), (8, 8), "float32")))


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (4, 8, 16)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_orthogonal(shape, dtype):
    t = torch.empty(shape, dtype=TORCH_DTYPES[dtype])
    orthogonal_(t, 1.5, wi.Stream(9))
    ref = wi.Orthogonal(gain=1.5, seed=wi.Stream(9))(shape, dtype)
    tol = 1e-2 if dtype == "bfloat16" else 1e-5
    np.testing.assert_allclose(t.double().numpy(), ref.astype(np.float64), atol=tol)
    q = t.double().reshape(-1, shape[-1])
    g = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    np.testing.assert_allclose(g.numpy(), 2.25 * np.eye(min(q.shape)), atol=20 * tol)


def test_orthogonal_torch_layout():
    t = torch.empty(8, 2, 3)
    orthogonal_(t, 1.0, wi.Stream(2), layout="torch")
    q = t.reshape(8, 6).double()
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(6), atol=1e-5)
    with pytest.raises(InitializerValueError):
        orthogonal_(torch.empty(3), 1.0, wi.Stream(0))


def test_jax_executor_matches_reference():
    jax_exec = pytest.importorskip("weightinit.executors.jax")
    for name in ("uniform", "normal", "tn_sym", "tn_mirror"):
        for dtype in ("float16", "bfloat16", "float32"):
            s = wi.Stream(11)
            region = (slice(3, 17), slice(5, 40))
            got = np.asarray(jax_exec.sample(DISTS[name], s, (20, 41), dtype, region))
            assert np.array_equal(bits(got), bits(reference(DISTS[name], s, (20, 41), dtype, region))), (name, dtype)


def _ordered(bits: np.ndarray) -> np.ndarray:
    """Map float bit patterns to integers whose differences are ulp distances."""
    nbits = 8 * bits.dtype.itemsize
    mag = (bits & bits.dtype.type((1 << (nbits - 1)) - 1)).astype(np.int64)
    return np.where(bits >> bits.dtype.type(nbits - 1), -mag, mag)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
@pytest.mark.parametrize("dist", list(DISTS))
def test_cuda_matches_reference(dist, dtype):
    """On CUDA: uniform values bitwise equal; normals equal or within 1 ulp (docs/random.md, section 7)."""
    s = wi.Stream(6)
    shape, region = (2**31 + 11, 4), (slice(2**31 - 2000, 2**31 + 9), slice(1, 4))
    ref = reference(DISTS[dist], s, shape, dtype, region)
    t = torch.empty(ref.shape, dtype=TORCH_DTYPES[dtype], device="cuda")
    fill_(t, DISTS[dist], s, shape=shape, region=region)
    a, b = bits(t.cpu()), bits(ref)
    if dist.startswith("uniform"):
        assert np.array_equal(a, b)
    else:
        assert int(np.abs(_ordered(a) - _ordered(b)).max()) <= 1
