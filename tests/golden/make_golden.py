"""Regenerate tests/golden/stream_v1.json, the frozen values of stream v1 (docs/random.md).

Run from the repository root:  python tests/golden/make_golden.py

Only regenerate to *add* entries (new initializers or distributions).  A change to an existing
value is a breaking change of the stream: it needs a new stream version, not a new golden file.
``git diff tests/golden/stream_v1.json`` must show additions only.

Floats are stored as hex bit patterns of their dtype, so comparisons are exact.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

import numpy as np

import weightinit as wi
from weightinit.initializers.base import RandomInitializer
from weightinit.registry.api import builtin_classes

OUT = pathlib.Path(__file__).with_name("stream_v1.json")
N = 16
SEEDS = [0, 1, 42, 2**32 + 5, 2**64 - 1]
DTYPES = ["float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2"]
DISTRIBUTIONS = {
    "uniform(0,1)": ("uniform", 0.0, 1.0),
    "uniform(-3,5)": ("uniform", -3.0, 5.0),
    "normal(0,1)": ("normal", 0.0, 1.0),
    "normal(1.5,0.3)": ("normal", 1.5, 0.3),
    "truncated(0,1,[-2,2])": ("truncated", 0.0, 1.0, -2.0, 2.0),
    "truncated(0,1,[4,6])": ("truncated", 0.0, 1.0, 4.0, 6.0),
    "truncated(0,1,[-6,-4])": ("truncated", 0.0, 1.0, -6.0, -4.0),
    "truncated(1,2,[7,inf])": ("truncated", 1.0, 2.0, 7.0, math.inf),
    "truncated(0,1,[-inf,-1])": ("truncated", 0.0, 1.0, -math.inf, -1.0),
    "truncated(0,1,[-0.5,3])": ("truncated", 0.0, 1.0, -0.5, 3.0),
}
CHILD_NAMES = ["", "dense_1/kernel", "encoder/layer_0/attention/query"]
FOLDS = [0, 1, 2**32, 2**64 - 1]
# Modules whose registered random initializers are frozen here.  Add a module once its
# initializers are final, then run this script (existing entries must not change).
FROZEN_MODULES = (
    "weightinit.initializers.random_values",
    "weightinit.initializers.variance_scaling",
    "weightinit.initializers.orthogonal",
    "weightinit.initializers.truncated",
    "weightinit.initializers.dirac",
    "weightinit.initializers.haiku_extras",
    "weightinit.initializers.sparse",
    "weightinit.initializers.framework_defaults",
    "weightinit.initializers.schemes",
)
# Initializers that need more than a seed, or shapes other than INIT_SHAPES.
CLASS_ARGS = {"TorchLinearBias": {"fan_in": 8}}
CLASS_SHAPES = {
    "DeltaOrthogonal": [(3, 3, 4, 8), (3, 4, 6)],
    "TorchEmbedding": [(4, 5), (6, 3)],
    "Sparse": [(4, 5), (8, 6)],
}
INIT_SEED = 7
INIT_SHAPES = [(4, 5), (3, 3, 4, 8)]
INIT_DTYPES = ["float32", "float64", "bfloat16", "float8_e4m3fn", "float8_e5m2"]


def dist_of(spec):
    if spec[0] == "uniform":
        return wi.Uniform(spec[1], spec[2])
    if spec[0] == "normal":
        return wi.Normal(spec[1], spec[2])
    return wi.TruncatedNormalDistribution(*spec[1:])


def hexbits(x) -> str:
    """The values' bit patterns in their dtype, as space-separated hex words."""
    x = np.ascontiguousarray(x).ravel()
    ut = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]
    width = 2 * x.dtype.itemsize
    return " ".join(f"{int(b):0{width}x}" for b in x.view(ut))


def make(cls):
    """The instance whose values the golden file freezes."""
    return cls(seed=INIT_SEED, **CLASS_ARGS.get(cls.__name__, {}))


def frozen_initializer_classes():
    return [c for c in builtin_classes() if issubclass(c, RandomInitializer) and c.__module__ in FROZEN_MODULES]


def build() -> dict:
    out: dict = {"version": "stream v1", "n": N, "keys": {}, "distributions": {}, "initializers": {}}
    for s in SEEDS:
        st = wi.Stream(s)
        out["keys"][str(s)] = {
            "key": " ".join(f"{k:08x}" for k in st.key),
            "child": {name: " ".join(f"{k:08x}" for k in st.child(name).key) for name in CHILD_NAMES},
            "fold_in": {str(n): " ".join(f"{k:08x}" for k in st.fold_in(n).key) for n in FOLDS},
        }
    for name, spec in DISTRIBUTIONS.items():
        out["distributions"][name] = {
            str(s): {dt: hexbits(wi.sample(dist_of(spec), wi.Stream(s), (N,), dt)) for dt in DTYPES} for s in SEEDS[:3]
        }
    for cls in frozen_initializer_classes():
        init = make(cls)
        entry = {}
        for shape in CLASS_SHAPES.get(cls.__name__, INIT_SHAPES):
            for dt in INIT_DTYPES:
                entry[f"{shape}|{dt}"] = hexbits(init(shape, dt).ravel()[:N])
        out["initializers"][cls.__name__] = entry
    return out


def main() -> int:
    data = build()
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
