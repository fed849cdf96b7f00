"""The JAX executor gives the NumPy reference's bits (docs/random.md section 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import weightinit as wi  # noqa: E402
from weightinit.executors import jax as ex  # noqa: E402

DISTS = [
    wi.Uniform(-1.5, 2.0),
    wi.Normal(0.3, 2.0),
    wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0),
    wi.TruncatedNormalDistribution(1.0, 0.5, 1.2, 3.0),
    wi.TruncatedNormalDistribution(0.0, 1.0, -np.inf, -3.0),
]
CASES = [
    ((7, 13), None),
    ((64, 96), None),
    ((3,), None),
    ((5, 8), (slice(1, 4), slice(4, 8))),
    ((50, 53), (slice(3, 45, 7), slice(1, 50, 3))),
    ((9, 11), (slice(8, 1, -2), slice(10, 0, -3))),
    ((2**20, 2**20), (slice(2**20 - 3, None), slice(5, 17))),  # flat indices beyond 2**32, odd offset
    ((2**20, 2**20), (slice(2**20 - 3, None), slice(4, 16))),  # ... block-aligned
    ((3, 2**31 + 5), (slice(1, 3), slice(2**31 - 6, 2**31 + 3))),
    ((2**34,), (slice(2**34 - 11, 2**34 - 40, -3),)),
]


def _bits(a):
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _check(got, ref):
    """Bit equality on every platform: the executor builds IEEE division and square root from
    exact operations off CPU (docs/random.md section 7), so a device gives the reference's bits too."""
    got = np.asarray(got)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert np.array_equal(_bits(got), _bits(ref))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("dist", DISTS, ids=lambda d: type(d).__name__)
def test_bitwise_equal_to_reference(dist, dtype):
    stream = wi.Stream(7)
    key = jnp.asarray(np.array(stream.key, np.uint32))
    for shape, region in CASES:
        ref = wi.sample(dist, stream, shape, dtype, region, executor=wi.random.sampling._EXECUTORS["numpy-reference"])
        _check(ex.sample(dist, stream, shape, dtype, region), ref)
        jitted = jax.jit(lambda k, shape=shape, region=region: ex.sample(dist, k, shape, dtype, region))
        _check(jitted(key), ref)


def test_philox_known_answer():
    out = ex.philox4x32(0, 0, 0, 0, 0, 0)
    assert hex(int(out[0])) == "0x6627e8d5"
    w = [0xFFFFFFFF] * 4
    got = [int(x) for x in ex.philox4x32(*w, 0xFFFFFFFF, 0xFFFFFFFF)]
    assert got == [int(x) for x in wi.random.philox.philox4x32(tuple(w), (0xFFFFFFFF, 0xFFFFFFFF))]


def test_key_forms_agree_and_errors():
    d = wi.Normal(0.0, 1.0)
    a = ex.sample(d, wi.Stream(3), (4, 4), "float32")
    b = ex.sample(d, wi.Stream(3).key, (4, 4), "float32")
    c = ex.sample(d, jnp.asarray(np.array(wi.Stream(3).key, np.uint32)), (4, 4), "float32")
    assert np.array_equal(a, b) and np.array_equal(a, c)
    with pytest.raises(TypeError, match="`key`"):
        ex.sample(d, jnp.zeros(3, jnp.uint32), (2,), "float32")
    with pytest.raises(ValueError, match="dtype"):
        ex.sample(d, wi.Stream(0), (2,), "float64")


def test_empty_region():
    assert ex.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (0, 3), "float32").shape == (0, 3)


def test_float64_with_x64_subprocess():
    code = textwrap.dedent(
        """
        import numpy as np, jax, jax.numpy as jnp, weightinit as wi
        jax.config.update("jax_enable_x64", True)
        from weightinit.executors import jax as ex
        dists = [wi.Uniform(-1.5, 2.0), wi.Normal(0.3, 2.0), wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0),
                 wi.TruncatedNormalDistribution(0.0, 1.0, -np.inf, -3.0)]
        cases = [((7, 13), None), ((64, 96), None), ((50, 53), (slice(3, 45, 7), slice(1, 50, 3))),
                 ((2**20, 2**20), (slice(2**20 - 3, None), slice(5, 17)))]
        key = jnp.asarray(np.array(wi.Stream(7).key, np.uint32))
        for d in dists:
            for shape, region in cases:
                ref = wi.sample(d, wi.Stream(7), shape, "float64", region)
                for got in (ex.sample(d, wi.Stream(7), shape, "float64", region),
                            jax.jit(lambda k: ex.sample(d, k, shape, "float64", region))(key)):
                    got = np.asarray(got)
                    assert got.dtype == np.float64 and np.array_equal(got.view(np.uint64), ref.view(np.uint64)), (d, shape)
        print("ok")
        """
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


def test_sharded_generation_matches_unsharded_subprocess():
    code = textwrap.dedent(
        """
        import numpy as np, jax, jax.numpy as jnp, weightinit as wi
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from weightinit.executors import jax as ex
        mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
        d = wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0)
        shape = (6, 10)
        ref = wi.sample(d, wi.Stream(1), shape, "float32")
        sh = NamedSharding(mesh, P("a", "b"))
        arr = jax.make_array_from_callback(shape, sh, lambda idx: ex.sample(d, wi.Stream(1), shape, "float32", idx))
        assert np.array_equal(np.asarray(arr), ref)
        key = jnp.asarray(np.array(wi.Stream(1).key, np.uint32))
        out = jax.jit(lambda k: ex.sample(d, k, shape, "float32"), out_shardings=sh)(key)
        assert np.array_equal(np.asarray(out), ref)
        print("ok")
        """
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


# ---------------------------------------------------------------------------
# IEEE division and square root from exact operations (ex.div32, ex.sqrt32): what makes the
# normals bit-exact on GPUs, where XLA's float32 division is PTX div.full (up to 2 ulp).
# ---------------------------------------------------------------------------

TINY = np.finfo(np.float32).tiny


@pytest.fixture
def patched(monkeypatch):
    """``monkeypatch`` for the executor's trace-time globals (``_approx_div``, ``_NATIVE_PLATFORMS``, ...).

    JAX caches a traced function by the function, not by the module globals its trace read, so a
    ``jax.jit(ex.div32)`` after a patch could run an earlier test's trace: the caches are cleared
    on both sides of the patch.
    """
    jax.clear_caches()
    yield monkeypatch
    monkeypatch.undo()
    jax.clear_caches()


def _off_by(fn, spread):
    """``fn`` whose float32 result is moved by a per-value offset in [-spread, spread] ulp."""

    def guess(*args):
        q = fn(*args)
        b = jax.lax.bitcast_convert_type(q, jnp.int32)
        off = (b % jnp.int32(2 * spread + 1)) - jnp.int32(spread)
        return jax.lax.bitcast_convert_type(b + off, jnp.float32)

    return guess


def _normal_floats(rng, n):
    """float32 values with random bits, normal range only (both signs)."""
    x = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return x[np.isfinite(x) & (np.abs(x) >= TINY)]


@pytest.mark.parametrize("spread", [0, 1, 3, ex._GUESS_ULP - 1])
def test_div32_sqrt32_are_ieee_for_any_guess_within_bound(patched, spread):
    patched.setattr(ex, "_approx_div", _off_by(ex._approx_div, spread) if spread else ex._approx_div)
    patched.setattr(ex, "_approx_sqrt", _off_by(ex._approx_sqrt, spread) if spread else ex._approx_sqrt)
    rng = np.random.default_rng(spread)
    a, b = _normal_floats(rng, 400_000), _normal_floats(rng, 400_000)
    m = min(a.size, b.size)
    a, b = a[:m], b[:m]
    with np.errstate(over="ignore", under="ignore"):
        q = a / b
    ok = (np.abs(q) >= TINY) & (np.abs(q) < 2.0**126)
    got = np.asarray(jax.jit(ex.div32)(a, b))
    assert ok.mean() > 0.7
    assert np.array_equal(_bits(got[ok]), _bits(q[ok]))
    # a / a == 1 for every significand (div.full fails it for 16% of them), and quotients whose
    # significands straddle 1 and 2 (the binade switch of the guess).
    sig = (np.arange(1 << 23, dtype=np.uint32) | np.uint32(0x3F800000)).view(np.float32)
    assert np.array_equal(np.asarray(jax.jit(ex.div32)(sig, sig)), np.ones_like(sig))
    nxt = np.nextafter(sig, np.float32(3.0))
    assert np.array_equal(_bits(np.asarray(jax.jit(ex.div32)(sig, nxt))), _bits(sig / nxt))
    # sqrt: every float32 in [1, 4) (2**24 values: both exponent parities), and random ones.
    x = (np.arange(1 << 24, dtype=np.uint32) + np.uint32(0x3F800000)).view(np.float32)
    assert np.array_equal(_bits(np.asarray(jax.jit(ex.sqrt32)(x))), _bits(np.sqrt(x)))
    y = np.abs(a)
    assert np.array_equal(_bits(np.asarray(jax.jit(ex.sqrt32)(y))), _bits(np.sqrt(y)))


def test_div32_sqrt32_detect_a_guess_beyond_bound(patched):
    """The bound is real: a guess 200 ulp too high gives wrong bits (so the test above can fail)."""
    far = 200
    patched.setattr(
        ex,
        "_approx_div",
        lambda a, b: jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(a / b, jnp.int32) + far, jnp.float32),
    )
    patched.setattr(
        ex,
        "_approx_sqrt",
        lambda x: jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(jnp.sqrt(x), jnp.int32) + far, jnp.float32),
    )
    a = np.linspace(1.0, 9.0, 10_001, dtype=np.float32)
    assert not np.array_equal(np.asarray(jax.jit(ex.div32)(a, np.float32(3.0))), a / np.float32(3.0))
    assert not np.array_equal(np.asarray(jax.jit(ex.sqrt32)(a)), np.sqrt(a))


def test_div32_sqrt32_outside_the_normal_range_use_the_device():
    a = np.float32([0.0, -0.0, np.inf, 1e-40, 1.0, 3e38])
    b = np.float32([3.0, 3.0, 2.0, 1.0, np.inf, 1e-38])
    got = np.asarray(jax.jit(ex.div32)(a, b))
    native = np.asarray(jax.jit(lambda a, b: a / b)(a, b))
    assert np.array_equal(_bits(got), _bits(native))
    x = np.float32([0.0, -0.0, np.inf, 1e-40])
    assert np.array_equal(_bits(np.asarray(jax.jit(ex.sqrt32)(x))), _bits(np.asarray(jax.jit(jnp.sqrt)(x))))
    assert np.isnan(np.asarray(jax.jit(ex.sqrt32)(np.float32([-1.0])))).all()


EXACT_DISTS = [*DISTS, wi.TruncatedNormalDistribution(0.0, 1.0, -np.inf, -7.5)]  # + the far tail


def _sample_jit(dist, shape, dtype, region=None):
    key = jnp.asarray(np.array(wi.Stream(11).key, np.uint32))
    return np.asarray(jax.jit(lambda k: ex.sample(dist, k, shape, dtype, region))(key))


@pytest.mark.parametrize("dist", EXACT_DISTS, ids=lambda d: f"{type(d).__name__}{getattr(d, 'high', '')}")
def test_exact_path_gives_the_reference_bits_with_inexact_device_ops(patched, dist):
    """What a GPU runs (ex._NATIVE_PLATFORMS off), with a division and square root up to 15 ulp
    off, gives the reference's bits for every distribution (float32 here, the narrow dtypes below)."""
    patched.setattr(ex, "_NATIVE_PLATFORMS", ())
    patched.setattr(ex, "_approx_div", _off_by(ex._approx_div, ex._GUESS_ULP - 1))
    patched.setattr(ex, "_approx_sqrt", _off_by(ex._approx_sqrt, ex._GUESS_ULP - 1))
    shape, region = (300, 301), (slice(1, 299), slice(2, 300))
    ref = wi.sample(dist, wi.Stream(11), shape, "float32", region)
    _check(_sample_jit(dist, shape, "float32", region), ref)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_exact_path_narrow_dtypes(patched, dtype):
    patched.setattr(ex, "_NATIVE_PLATFORMS", ())
    patched.setattr(ex, "_approx_div", _off_by(ex._approx_div, 2))
    patched.setattr(ex, "_approx_sqrt", _off_by(ex._approx_sqrt, 2))
    dist = wi.TruncatedNormalDistribution(0.0, 1.0, -3.0, 3.0)
    ref = wi.sample(dist, wi.Stream(11), (40_000,), dtype)
    got = _sample_jit(dist, (40_000,), dtype)
    assert got.dtype == ref.dtype and np.array_equal(got.view(np.uint8), ref.view(np.uint8))


def test_inexact_division_alone_changes_the_bits(patched):
    """Without the correction, a division 1-2 ulp off (what XLA:GPU's div.full gives) changes the
    normals' bits: the whole-executor checks above can see the fault they guard against."""
    patched.setattr(ex, "_NATIVE_PLATFORMS", ())
    patched.setattr(ex, "div32", _off_by(lambda a, b: a / b, 2))
    dist = wi.Normal(0.0, 1.0)
    ref = wi.sample(dist, wi.Stream(11), (300, 301), "float32")
    got = _sample_jit(dist, (300, 301), "float32")
    assert 0.1 < float(np.mean(_bits(got) != _bits(ref))) < 1.0


def _float_ops(hlo: str):
    """name -> (element type, opcode, operand names, text) for each instruction of an HLO module."""
    import re

    ops = {}
    pat = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\w+)\[[^\]]*\](?:\{[^}]*\})?\s+([\w\-]+)\((.*?)\)")
    for line in hlo.splitlines():
        m = pat.match(line)
        if m:
            name, ety, op, args = m.groups()
            ops[name] = (ety, op, re.findall(r"%([\w.\-]+)", args), line)
    return ops


def _power_of_two_constant(ops, name) -> bool:
    ety, op, args, line = ops[name]
    if op == "broadcast":
        return _power_of_two_constant(ops, args[0])
    if op != "constant":
        return False
    import re

    v = re.search(r"constant\(([^)]*)\)", line)
    if v is None or not ety.startswith(("f", "bf")):
        return False
    try:  # HLO prints 9 significant digits: round to the element type to get the constant back
        x = abs(float(np.asarray(float(v.group(1))).astype({"f32": np.float32}.get(ety, np.float64))))
    except ValueError:
        return False
    return x > 0 and np.frexp(x)[0] == 0.5


def _contractible(hlo: str):
    """Float add/subtract instructions fed directly (or through a negate) by a float multiply that
    is not a scaling by a power of two: the pairs an FMA-contracting compiler may fuse."""
    ops = _float_ops(hlo)
    bad = []
    for name, (ety, op, args, _line) in ops.items():
        if op not in ("add", "subtract") or not ety.startswith(("f", "bf")):
            continue
        for a in args:
            while a in ops and ops[a][1] == "negate":
                a = ops[a][2][0]
            if (
                a in ops
                and ops[a][1] == "multiply"
                and not any(_power_of_two_constant(ops, x) for x in ops[a][2] if x in ops)
            ):
                bad.append((name, a))
    return bad


@pytest.mark.parametrize("native", [True, False], ids=["cpu-path", "device-path"])
def test_no_contractible_multiply_add_in_the_compiled_hlo(patched, native):
    """No float multiply feeds an add in the optimized HLO of any distribution, on the CPU path
    and on the path devices run, so no compiler can contract one into an FMA (docs/random.md 7)."""
    if not native:
        patched.setattr(ex, "_NATIVE_PLATFORMS", ())
    key = np.zeros(2, np.uint32)
    for dist in EXACT_DISTS:
        hlo = jax.jit(lambda k, dist=dist: ex.sample(dist, k, (1000,), "float32")).lower(key).compile().as_text()
        assert " multiply(" in hlo
        assert _contractible(hlo) == [], type(dist).__name__


def test_contraction_check_can_fail():
    x = np.ones(8, np.float32)
    hlo = jax.jit(lambda x: x * x[::-1] + np.float32(1.0)).lower(x).compile().as_text()
    assert _contractible(hlo) != []
    hlo = jax.jit(lambda x: x * np.float32(0.25) + np.float32(1.0)).lower(x).compile().as_text()
    assert _contractible(hlo) == []


def test_device_lowerings_use_the_exact_construction():
    """Lowered for cuda, rocm or tpu (no device needed to lower), the normal carries the integer
    correction of div32/sqrt32; lowered for cpu it uses XLA:CPU's IEEE division directly."""
    import re

    f = jax.jit(lambda k: ex.sample(wi.Normal(0.0, 1.0), k, (1000,), "float32"))
    key = np.zeros(2, np.uint32)

    def int_divides(platform):
        text = f.trace(key).lower(lowering_platforms=(platform,)).as_text()
        return len(re.findall(r"stablehlo\.divide[^\n]*tensor<\d+xi32>", text))

    assert int_divides("cpu") == 0
    for platform in ("cuda", "rocm", "tpu"):
        assert int_divides(platform) >= 4  # three divisions and one square root at least
