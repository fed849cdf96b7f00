"""Bit-equality of the torch and JAX executors on a GPU against the NumPy reference (docs/performance.md).

``python benchmarks/gpu_check.py [--device cuda] [--json out.json] [--skip-jax]``: for every
distribution and dtype, fills a tensor region on the device (odd offsets, flat indices beyond 2**32)
and counts the values whose bits equal the reference's, and the largest distance in units in the
last place.  Then the same for the JAX executor (``weightinit.executors.jax.sample`` under
``jax.jit`` on JAX's default device, float64 with ``jax_enable_x64``, plus the two fp8 formats),
when JAX sees an accelerator.
"""

from __future__ import annotations

import argparse
import json

import ml_dtypes
import numpy as np

import torch
import weightinit as wi
from weightinit.executors.torch import fill_, numpy_view, philox_blocks
from weightinit.random import sampling

DISTS = {
    "uniform": wi.Uniform(-0.3, 0.7),
    "normal": wi.Normal(0.1, 2.0),
    "trunc_normal": wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0),
    "trunc_normal_mirror_tail": wi.TruncatedNormalDistribution(1.0, 0.5, 1.2, 9.0),
    "trunc_normal_far_tail": wi.TruncatedNormalDistribution(0.0, 1.0, -np.inf, -6.0),
}
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
CASES = [((1000, 1001), (slice(3, 999), slice(1, 1000))), ((2**31 + 7, 8), (slice(2**31 - 3000, 2**31 + 5),))]


def _ordered(bits: np.ndarray) -> np.ndarray:
    """Map float bit patterns to integers whose differences are ulp distances."""
    nbits = 8 * bits.dtype.itemsize
    mag = (bits & bits.dtype.type((1 << (nbits - 1)) - 1)).astype(np.int64)
    return np.where(bits >> bits.dtype.type(nbits - 1), -mag, mag)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", default=None)
    parser.add_argument("--skip-jax", action="store_true")
    args = parser.parse_args()
    ref_ex = sampling._EXECUTORS["numpy-reference"]
    results = []
    # Philox words on the device.
    j = torch.arange(0, 1 << 20, dtype=torch.int64, device=args.device) + (2**32 - 100)
    words = torch.stack(philox_blocks(j & 0xFFFFFFFF, j >> 32, (123, 456)), 1).cpu().numpy().astype(np.uint32)
    from weightinit.random.philox import philox4x32

    jn = np.arange(0, 1 << 20, dtype=np.uint64) + np.uint64(2**32 - 100)
    ref_words = philox4x32((jn & np.uint64(0xFFFFFFFF), jn >> np.uint64(32), 0, 0), (123, 456)).T
    print(f"philox words equal: {np.array_equal(words, ref_words)}")
    for dname, dist in DISTS.items():
        for tname, tdt in DTYPES.items():
            npdt = np.dtype(ml_dtypes.bfloat16) if tname == "bfloat16" else np.dtype(tname)
            equal = total = 0
            max_ulp = 0
            for shape, region in CASES:
                s = wi.Stream(17).child(dname)
                ref = wi.sample(dist, s, shape, npdt, region, executor=ref_ex)
                t = torch.empty(ref.shape, dtype=tdt, device=args.device)
                fill_(t, dist, s, shape=shape, region=region)
                got = numpy_view(t.cpu())
                u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[npdt.itemsize]
                a, b = got.view(u).ravel(), ref.view(u).ravel()
                equal += int((a == b).sum())
                total += a.size
                max_ulp = max(max_ulp, int(np.abs(_ordered(a) - _ordered(b)).max()))
            row = {"dist": dname, "dtype": tname, "values": total, "bit_equal": equal, "max_ulp": max_ulp}
            results.append(row)
            print(f"{dname:26s} {tname:9s} bit-equal {equal}/{total}  max ulp {max_ulp}")
    jax_info = {} if args.skip_jax else _jax_check()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
                    "torch": torch.__version__,
                    "results": results,
                    **jax_info,
                },
                f,
                indent=1,
            )
    return 0


def _jax_check() -> dict:
    """The JAX executor's bits on JAX's default device, for every distribution and dtype."""
    try:
        import jax
    except ImportError as exc:
        print(f"jax: not checked ({exc})")
        return {"jax": None}
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from weightinit.executors import jax as jex

    if jax.default_backend() == "cpu":
        print("jax: not checked (no accelerator backend)")
        return {"jax": None}
    ref_ex = sampling._EXECUTORS["numpy-reference"]
    dtypes = ["float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2"]
    rows = []
    for dname, dist in DISTS.items():
        for tname in dtypes:
            npdt = np.dtype(getattr(ml_dtypes, tname, tname))
            equal = total = max_ulp = 0
            for shape, region in CASES:
                s = wi.Stream(17).child(dname)
                ref = wi.sample(dist, s, shape, npdt, region, executor=ref_ex)
                key = jnp.asarray(np.array(s.key, np.uint32))
                f = jax.jit(lambda k, d=dist, sh=shape, r=region, t=tname: jex.sample(d, k, sh, t, r))
                got = np.asarray(f(key))
                u = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[npdt.itemsize]
                a, b = got.view(u).ravel(), ref.view(u).ravel()
                equal += int((a == b).sum())
                total += a.size
                max_ulp = max(max_ulp, int(np.abs(_ordered(a) - _ordered(b)).max()))
            rows.append({"dist": dname, "dtype": tname, "values": total, "bit_equal": equal, "max_ulp": max_ulp})
            print(f"jax {dname:22s} {tname:13s} bit-equal {equal}/{total}  max ulp {max_ulp}")
    return {"jax": {"version": jax.__version__, "device": str(jax.devices()[0]), "results": rows}}


if __name__ == "__main__":
    raise SystemExit(main())
