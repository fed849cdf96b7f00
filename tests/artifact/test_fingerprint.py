"""The digest of docs/artifact.md: frozen golden values, an independent implementation, shards, executors, threads."""

from __future__ import annotations

import hashlib
import importlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import weightinit as wi
from weightinit.artifact.fingerprint import CHUNK, array_source, combine, shard_digest, tensor_digest

fp = importlib.import_module("weightinit.artifact.fingerprint")  # the module (the package exports the function)
GOLDEN = Path(__file__).with_name("digest_v1.json")

# (initializer, shape, dtype, seed): several chunks, a partial last chunk, every hashed dtype, a 0-d and an empty tensor
CASES = [
    ("glorot_uniform", (300, 500), "float32", 0),
    ("he_normal", (3, 3, 64, 40), "bfloat16", 1),
    ("truncated_normal", (70000,), "float16", 2),
    ("lecun_uniform", (129, 257), "float64", 3),
    ("orthogonal", (96, 64), "float32", 4),
    ("ones", (), "float32", 0),
    ("zeros", (0, 5), "float32", 0),
]


def _spec_digest(x: np.ndarray) -> str:
    """docs/artifact.md section 2, written from the text: header, then SHA-256 of each 2**16-element chunk."""
    name = x.dtype.name  # float16, bfloat16, float32, float64, complex64, complex128
    head = b"weightinit.tensor.v1\x00" + name.encode() + b"\x00" + struct.pack("<Q", x.ndim)
    head += b"".join(struct.pack("<Q", d) for d in x.shape) + struct.pack("<Q", 65536)
    raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8).tobytes()
    step = 65536 * x.dtype.itemsize
    h = hashlib.sha256(head)
    for i in range(0, len(raw), step):
        h.update(hashlib.sha256(raw[i : i + step]).digest())
    return h.hexdigest()


def _values(name, shape, dtype, seed):
    return np.asarray(wi.get(name)(shape, dtype, stream=wi.Stream(seed)))


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_digest_matches_the_written_definition(case):
    name, shape, dtype, seed = case
    x = _values(*case)
    assert fp.fingerprint(name, shape, dtype, wi.Stream(seed)).hex == _spec_digest(x.reshape(shape))


def test_complex_digest_hashes_real_then_imaginary_parts():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((70000,)) + 1j * rng.standard_normal((70000,))).astype(np.complex64)
    assert tensor_digest(array_source(x)).hex == _spec_digest(x)
    interleaved = np.stack([x.real, x.imag], axis=-1).reshape(-1)  # the bytes: re0, im0, re1, im1, ...
    assert np.ascontiguousarray(x).view(np.float32).tobytes() == interleaved.tobytes()


def test_golden_digests_frozen():
    golden = json.loads(GOLDEN.read_text())
    got = {
        f"{n}/{'x'.join(map(str, s))}/{d}/{seed}": fp.fingerprint(n, s, d, wi.Stream(seed)).hex
        for n, s, d, seed in CASES
    }
    got["model/tiny-llama/torch/0"] = wi.fingerprint("tiny-llama", "torch", 0).hex
    got["model/tiny-llama-tied/gpt2/5"] = wi.fingerprint("tiny-llama-tied", "gpt2", 5).hex
    assert got == golden


def test_single_flipped_bit_changes_the_digest():
    x = _values("glorot_uniform", (300, 500), "float32", 0)
    y = x.copy()
    y.view(np.uint32)[123, 456] ^= 1
    assert tensor_digest(array_source(x)).hex != tensor_digest(array_source(y)).hex


@pytest.mark.parametrize(
    "shards",
    [
        [(slice(0, 150),), (slice(150, 300),)],  # rows, boundaries inside chunks
        [(slice(None), slice(0, 167)), (slice(None), slice(167, 334)), (slice(None), slice(334, 500))],  # columns
        [(slice(0, 1),), (slice(1, 299),), (slice(299, 300),), (slice(0, 0),)],  # uneven and empty
        [(slice(0, 300),), (slice(0, 300),)],  # replicated
        [(np.arange(0, 300, 2),), (np.arange(1, 300, 2),)],  # interleaved rows (strided shards)
    ],
    ids=["rows", "columns", "uneven", "replicated", "interleaved"],
)
def test_shard_digests_combine_to_the_single_device_digest(shards):
    args = ("glorot_uniform", (300, 500), "float32", wi.Stream(0))
    parts = [fp.fingerprint(*args, shard=s) for s in shards]
    assert combine(parts).hex == fp.fingerprint(*args).hex


def test_missing_or_conflicting_shards_are_errors():
    args = ("glorot_uniform", (300, 500), "float32", wi.Stream(0))
    with pytest.raises(wi.InitializerValueError, match="do not cover"):
        combine([fp.fingerprint(*args, shard=(slice(0, 150),))])
    a = fp.fingerprint(*args, shard=(slice(0, 300),))
    b = shard_digest(array_source(np.zeros((300, 500), np.float32)), None)
    with pytest.raises(wi.InitializerValueError, match="different values"):
        combine([a, b])


def test_memory_is_bounded_by_one_block():
    requested = []
    src = fp.initializer_source("he_normal", (4096, 2048), "float32", wi.Stream(0))
    inner = src._values
    src._values = lambda a, b: (requested.append(b - a), inner(a, b))[1]
    tensor_digest(src)
    assert max(requested) <= fp.BLOCK_CHUNKS * CHUNK < 4096 * 2048
    assert sum(requested) == 4096 * 2048


def test_executors_and_thread_counts_give_the_same_digest():
    args = ("he_normal", (1024, 600), "float32", wi.Stream(9))
    before = wi.current_executor().name
    names = wi.executors()
    assert {"numpy-reference", "compiled"} <= set(names), names
    try:
        digests = set()
        for name in names:
            wi.use_executor(name)
            digests.add(fp.fingerprint(*args).hex)
        wi.use_executor(before)
        old = wi.get_num_threads()
        for n in (1, 2):
            wi.set_num_threads(n)
            digests.add(fp.fingerprint(*args).hex)
        wi.set_num_threads(old)
    finally:
        wi.use_executor(before)
    assert len(digests) == 1


def test_bad_input():
    with pytest.raises(wi.InitializerValueError, match="dtype"):
        fp.fingerprint("ones", (3,), "int32", wi.Stream(0))
    with pytest.raises(wi.InitializerTypeError, match="stream"):
        fp.fingerprint("ones", (3,), "float32", 0)
    with pytest.raises(wi.InitializerTypeError, match="four arguments"):
        fp.fingerprint("ones", (3,), "float32")
    with pytest.raises(wi.InitializerValueError, match="seed"):
        wi.fingerprint("tiny-llama", "torch", None)
    with pytest.raises(wi.InitializerValueError, match="MODEL_SPEC"):
        wi.fingerprint("no-such-model", "torch", 0)
