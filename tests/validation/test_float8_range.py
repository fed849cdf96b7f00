"""fp8 outputs are range-checked like float16: parameters whose values cannot be held are refused, never saturated.

float8_e4m3fn's finite range is +-448 (a cast beyond saturates in torch, gives NaN in ml_dtypes/JAX),
float8_e5m2's is +-57344 (beyond is inf).  docs/random.md section 6.1.
"""

from __future__ import annotations

import numpy as np
import pytest

import weightinit as wi
from weightinit.common.validate import dtype_range

E4, E5 = "float8_e4m3fn", "float8_e5m2"
E = wi.InitializerValueError


def test_ranges_are_the_formats():
    assert dtype_range(np.dtype(getattr(__import__("ml_dtypes"), E4))) == (-448.0, 448.0)
    assert dtype_range(np.dtype(getattr(__import__("ml_dtypes"), E5))) == (-57344.0, 57344.0)


@pytest.mark.parametrize(
    ("make", "dtype", "arg"),
    [
        (lambda: wi.RandomNormal(0.0, 100.0, seed=0), E4, "dtype"),  # reaches 6.24 * 100 = 624 > 448
        (lambda: wi.RandomNormal(0.0, 1e4, seed=0), E5, "dtype"),  # 62400 > 57344
        (lambda: wi.RandomNormal(440.0, 2.0, seed=0), E4, "dtype"),  # mean near the edge: 452.5 > 448
        (lambda: wi.RandomUniform(-500.0, 500.0, seed=0), E4, "dtype"),
        (lambda: wi.RandomUniform(0.0, 6e4, seed=0), E5, "dtype"),
        (lambda: wi.RandomUniform(447.0, 447.5, seed=0), E4, "dtype"),  # no e4m3fn value in [447, 447.5)
        (lambda: wi.VarianceScaling(1e6, seed=0), E4, "dtype"),
        (lambda: wi.Constant(500.0), E4, "value"),
        (lambda: wi.Constant(-6e4), E5, "value"),
        (lambda: wi.Orthogonal(gain=1000.0, seed=0), E4, "gain"),
        (lambda: wi.Identity(gain=1000.0), E4, "gain"),
    ],
)
def test_out_of_range_parameters_are_refused(make, dtype, arg):
    with pytest.raises(E) as info:
        make()((8, 8), dtype)
    msg = str(info.value)
    assert f"`{arg}`" in msg and ("448" in msg or "57344" in msg or "No float8_e4m3fn value" in msg), msg


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda: wi.RandomNormal(0.0, 70.0, seed=0), E4),  # reaches 437
        (lambda: wi.RandomNormal(0.0, 100.0, seed=0), E5),
        (lambda: wi.TruncatedNormal(0.0, 100.0, seed=0), E4),  # truncated at 2 std: within +-200
        (lambda: wi.TruncNormal(0.0, 1e3, -400.0, 400.0, bounds="absolute", seed=0), E4),  # bounds cut the reach
        (lambda: wi.RandomUniform(-448.0, 448.0, seed=0), E4),
        (lambda: wi.Constant(448.0), E4),
        (lambda: wi.HeNormal(seed=0), E4),
    ],
)
def test_in_range_parameters_give_values_within_the_range(make, dtype):
    w = make()((64, 64), dtype)
    f = np.asarray(w).astype(np.float64)
    lo, hi = dtype_range(np.asarray(w).dtype)
    assert np.isfinite(f).all() and (f >= lo).all() and (f <= hi).all()


def test_saturation_does_not_hide_a_refusal():
    """Before: RandomNormal(0, 3e4) in e4m3fn pinned most values at +-448 and e5m2 gave inf. Now both are refused."""
    for dtype in (E4, E5):
        with pytest.raises(E, match=r"cannot hold the values of N\(mean=0.0, std=30000.0\)"):
            wi.RandomNormal(0.0, 3e4, seed=0)((4, 4), dtype)


def test_torch_dropins_refuse_out_of_range_fp8():
    torch = pytest.importorskip("torch")
    import weightinit.torch as wt

    t = torch.empty(8, 8, dtype=torch.float8_e4m3fn)
    for call, arg in (
        (lambda: wt.normal_(t, 0.0, 100.0, seed=0), "dtype"),
        (lambda: wt.uniform_(t, -500.0, 500.0, seed=0), "a"),
        (lambda: wt.constant_(t, 500.0), "val"),
        (lambda: wt.orthogonal_(t, 1000.0, seed=0), "gain"),
    ):
        with pytest.raises(E, match=rf"`{arg}`"):
            call()
    out = wt.normal_(t, 0.0, 70.0, seed=0).float()
    assert torch.isfinite(out).all() and out.abs().max() <= 448


def test_weightinit_jax_fp8():
    jax = pytest.importorskip("jax")
    import weightinit.jax as wj

    key = jax.random.key(0)
    with pytest.raises(E, match=r"`dtype` float8_e4m3fn cannot hold"):
        wj.normal(100.0, E4)(key, (4, 4))
    with pytest.raises(E, match=r"`value` must lie within float8_e4m3fn's range"):
        wj.constant(500.0, E4)(key, (4, 4))  # jnp.full gives NaN here
    with pytest.raises(E, match=r"`value` is not exactly representable in int8"):
        wj.constant(300, "int8")(key, (2,))  # jnp.full wraps to 44
    # weightinit.jax draws fp8 (it refused fp8 dtypes before), within the range
    got = wj.normal(1.0, E4)(key, (8, 8))
    assert got.dtype.name == E4
    f = np.asarray(got).astype(np.float32)
    assert np.isfinite(f).all() and np.abs(f).max() <= 448
