"""The CUDA Triton kernel (weightinit/executors/triton.py) against the NumPy reference, on CPU.

CI has no GPU, so the kernel runs under Triton's interpreter (``TRITON_INTERPRET=1``), which
executes the same kernel source with NumPy operations on CPU tensors.  That proves what the
kernel computes: every stream constant, the order of the float operations, the Philox rounds,
the word-to-value steps, the clip, the interleaved store and its mask at odd offsets and past
2**32 Philox counters.  One operation of the interpreter is replaced: its float32 -> bfloat16
cast truncates, where the GPU rounds to nearest even.  It does not prove the GPU's rounding of each operation (``div_rn`` /
``sqrt_rn`` and ``enable_fp_fusion=False`` promise it; benchmarks/gpu_check.py measures it on a
device, docs/performance.md).

The interpreter is chosen when Triton is imported, so the kernel runs in a subprocess that
writes its outputs; the comparison happens here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import weightinit as wi
from weightinit.random import sampling

pytest.importorskip("torch")
pytest.importorskip("triton", reason="Triton is not installed (the test extra installs it on x86-64 Linux)")


def _gpu_check():
    """benchmarks/gpu_check.py, whose distributions (the device check's) this test runs too."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DISTS = _gpu_check().DISTS
DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
# (first flat index, count): an odd start; a start inside a Philox block whose counter crosses 2**32
# (flat index 2**34 is counter 2**32, so word 1 of the counter becomes nonzero); a count that is
# not a multiple of 4 or of the kernel's block.
RUNS = [(7, 3001), (2**34 - 1003, 2203)]
SEED = 41

_KERNEL_RUN = textwrap.dedent(
    """
    import importlib.util
    import sys

    import ml_dtypes
    import numpy as np
    import torch
    import triton.language as tl
    from triton.runtime import interpreter

    # The interpreter's float32 -> bfloat16 cast truncates (its _convert_float with no rounding
    # mode); the GPU's cvt.rn.bf16.f32, like every other cast here, rounds to nearest even.
    _cast = interpreter.InterpreterBuilder.cast_impl

    def _cast_rne(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            return interpreter.TensorHandle(src.data.astype(ml_dtypes.bfloat16).view(np.uint16), tl.bfloat16)
        return _cast(self, src, dst_type)

    interpreter.InterpreterBuilder.cast_impl = _cast_rne

    import weightinit as wi
    from weightinit.executors import triton as kernel
    from weightinit.random.distributions import make_plan

    spec = importlib.util.spec_from_file_location("cases", sys.argv[2])
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    DISTS, DTYPES, RUNS, SEED = cases.DISTS, cases.DTYPES, cases.RUNS, cases.SEED
    assert type(kernel._kernel).__name__ == "InterpretedFunction", type(kernel._kernel)

    torch_dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    out = {}
    for dname, dist in DISTS.items():
        stream = wi.Stream(SEED).child(dname)
        for tname, npdt in DTYPES.items():
            for start, n in RUNS:
                t = torch.empty(n, dtype=torch_dtypes[tname])
                kernel.launch(t, make_plan(dist, npdt), stream.key, start)
                out[f"{dname}/{tname}/{start}"] = t.view(torch.int16 if t.element_size() == 2 else torch.int32).numpy()
    # The same runs in launches of 1000 values (whole tensors above 2**30 values are split so).
    kernel.LAUNCH_VALUES = 1000
    for start, n in RUNS:
        t = torch.empty(n, dtype=torch.float32)
        kernel.launch(t, make_plan(DISTS["normal"], DTYPES["float32"]), wi.Stream(SEED).child("normal").key, start)
        out[f"normal/float32/{start}/split"] = t.view(torch.int32).numpy()
    np.savez(sys.argv[1], **out)
    """
)


@pytest.fixture(scope="module")
def kernel_outputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("triton") / "out.npz"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _KERNEL_RUN, str(path), os.path.abspath(__file__)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _reference_bits(dist, npdt, start, n):
    stream = wi.Stream(SEED).child(next(k for k, v in DISTS.items() if v is dist))
    ref = wi.sample(
        dist, stream, (start + n,), npdt, (slice(start, start + n),), executor=sampling._EXECUTORS["numpy-reference"]
    )
    return ref.view(np.int16 if npdt.itemsize == 2 else np.int32)


@pytest.mark.parametrize("start,n", RUNS)
@pytest.mark.parametrize("tname", list(DTYPES))
@pytest.mark.parametrize("dname", list(DISTS))
def test_kernel_gives_the_reference_bits(kernel_outputs, dname, tname, start, n):
    got = kernel_outputs[f"{dname}/{tname}/{start}"]
    ref = _reference_bits(DISTS[dname], DTYPES[tname], start, n)
    assert got.shape == ref.shape
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, f"{bad.size} of {n} values differ, first at flat index {start + int(bad[0])}"


@pytest.mark.parametrize("start,n", RUNS)
def test_split_launches_give_the_same_bits(kernel_outputs, start, n):
    assert np.array_equal(kernel_outputs[f"normal/float32/{start}/split"], kernel_outputs[f"normal/float32/{start}"])


def test_the_comparison_can_fail(kernel_outputs):
    """A shifted run (one value off) or another stream differs: equality above is not vacuous."""
    dist, npdt = DISTS["normal"], DTYPES["float32"]
    start, n = RUNS[0]
    got = kernel_outputs[f"normal/float32/{start}"]
    assert not np.array_equal(got[1:], _reference_bits(dist, npdt, start, n)[:-1])
    assert not np.array_equal(got, kernel_outputs[f"trunc_normal/float32/{start}"])
