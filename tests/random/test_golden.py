"""Golden vectors: the frozen bits of stream v1 (tests/golden/stream_v1.json, made by make_golden.py).

A failure here means generated values changed: a breaking change of the stream (docs/random.md,
"Stability policy").  Do not regenerate the file to make this pass.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest

import weightinit as wi

GOLDEN_DIR = pathlib.Path(__file__).resolve().parents[1] / "golden"
GOLDEN = json.loads((GOLDEN_DIR / "stream_v1.json").read_text())


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN_DIR / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKER = _load_maker()


def _from_hex(text: str, dtype) -> np.ndarray:
    dt = wi.standardize_dtype(dtype)
    ut = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[dt.itemsize]
    return np.array([int(h, 16) for h in text.split()], dtype=ut).view(dt)


def test_header():
    assert GOLDEN["version"] == "stream v1"
    assert GOLDEN["n"] == MAKER.N


@pytest.mark.parametrize("seed", sorted(GOLDEN["keys"]))
def test_keys(seed):
    entry = GOLDEN["keys"][seed]
    st = wi.Stream(int(seed))
    assert " ".join(f"{k:08x}" for k in st.key) == entry["key"]
    for name, key in entry["child"].items():
        assert " ".join(f"{k:08x}" for k in st.child(name).key) == key, name
    for n, key in entry["fold_in"].items():
        assert " ".join(f"{k:08x}" for k in st.fold_in(int(n)).key) == key, n


@pytest.mark.parametrize("name", sorted(GOLDEN["distributions"]))
def test_distributions(name):
    dist = MAKER.dist_of(MAKER.DISTRIBUTIONS[name])
    for seed, by_dtype in GOLDEN["distributions"][name].items():
        for dtype, text in by_dtype.items():
            got = wi.sample(dist, wi.Stream(int(seed)), (GOLDEN["n"],), dtype)
            assert MAKER.hexbits(got) == text, (seed, dtype)


@pytest.mark.parametrize("name", sorted(GOLDEN["initializers"]))
def test_initializers(name):
    cls = type(wi.get(name))
    init = MAKER.make(cls)
    for key, text in GOLDEN["initializers"][name].items():
        shape_text, dtype = key.split("|")
        shape = tuple(int(d) for d in shape_text.strip("()").split(",") if d.strip())
        got = init(shape, dtype).ravel()[: GOLDEN["n"]]
        if cls.elementwise:
            assert MAKER.hexbits(got) == text, key
        else:
            # QR through LAPACK: the input matrix is bit-exact, the last bits of Q may differ by build.
            want = _from_hex(text, dtype).astype(np.float64)
            # fp8: one step of the format where LAPACK's last bits cross a rounding boundary
            tol = {"float64": 1e-12, "float32": 1e-6, "bfloat16": 2**-7, "float8_e4m3fn": 2**-3, "float8_e5m2": 2**-2}
            tol = tol[dtype]
            np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol, err_msg=key)


def test_every_frozen_initializer_is_in_the_golden_file():
    missing = {c.__name__ for c in MAKER.frozen_initializer_classes()} - set(GOLDEN["initializers"])
    assert not missing, f"add them with `python tests/golden/make_golden.py` (additions only): {sorted(missing)}"
    for name in ("RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling", "HeNormal", "Orthogonal"):
        assert name in GOLDEN["initializers"]


def test_golden_covers_all_dtypes_and_tails():
    dists = GOLDEN["distributions"]
    assert {"truncated(0,1,[4,6])", "truncated(1,2,[7,inf])"} <= set(dists)
    for by_seed in dists.values():
        assert len(by_seed) >= 3
        for by_dtype in by_seed.values():
            assert set(by_dtype) == {"float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2"}


def test_a_one_bit_change_is_detected():
    text = GOLDEN["distributions"]["normal(0,1)"]["0"]["float32"]
    got = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (GOLDEN["n"],), "float32")
    assert MAKER.hexbits(got) == text
    got[5] = np.nextafter(got[5], np.float32(np.inf))
    assert MAKER.hexbits(got) != text
    np.testing.assert_array_equal(
        _from_hex(text, "float32"), wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (16,), "float32")
    )
