"""Bit-equality of the torch executor on a GPU against the NumPy reference (docs/performance.md).

``python benchmarks/gpu_check.py [--device cuda] [--json out.json]``: for every distribution and
dtype, fills a tensor region on the device (odd offsets, flat indices beyond 2**32) and counts the
values whose bits equal the reference's, and the largest distance in units in the last place.
"""

from __future__ import annotations

import argparse
import json

import ml_dtypes
import numpy as np

import torch
import weightinit as wi
from weightinit.executors.torch import fill_, numpy_view, philox_blocks

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
    args = parser.parse_args()
    ref_ex = wi.random.sampling._EXECUTORS["numpy-reference"]
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
                    "torch": torch.__version__,
                    "results": results,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
