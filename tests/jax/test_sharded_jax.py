"""Sharded JAX initialization equals the unsharded array, bit for bit.

A child process sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
before importing jax, then checks on meshes (8,), (4, 2) and (2, 4) with the
PartitionSpecs P('a','b'), P('b','a'), P(None,'a'), P(('a','b'), None):

* ``jax.make_array_from_callback`` with the core's ``region=``: each device's
  shard is generated alone (and only addressable shards are requested);
* ``jax.jit(..., out_shardings=...)`` of the JAX executor: the compiled SPMD
  program has no collectives, each device computes its shard;
* weightinit.jax's public initializers and Keras 3 with a
  ``keras.distribution`` layout, where they exist.

This file is also the child: ``python test_sharded_jax.py child OUT.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

# A hang guard, not a speed check: the child takes about 170 s alone on 2 cores and timed out at 240 s
# when a second test job shared them.
CHILD_TIMEOUT_S = 600
MESHES = {"8": ((8,), ("a",)), "4x2": ((4, 2), ("a", "b")), "2x4": ((2, 4), ("a", "b"))}
SPECS = {
    "P(a,b)": ("a", "b"),
    "P(b,a)": ("b", "a"),
    "P(None,a)": (None, "a"),
    "P((a,b),None)": (("a", "b"), None),
}
SHAPES = [(16, 24), (24, 8)]  # NamedSharding in jax 0.10 refuses dimensions the mesh does not divide
INITS = ["he_normal", "glorot_uniform", "truncated_normal", "lecun_uniform"]


def _specs_for(mesh_name: str) -> dict:
    if mesh_name == "8":
        return {"P(a,None)": ("a", None), "P(None,a)": (None, "a"), "P(a)": ("a",)}
    return SPECS


# --------------------------------------------------------------------------------------------- child


def _child(out_path: str) -> None:
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import jax
    import weightinit as wi

    assert len(jax.devices()) == 8, jax.devices()
    from weightinit.executors import jax as _executor  # an import error fails the child, so the test fails

    results: dict[str, object] = {}

    combo = 0
    for mname, (mshape, axes) in MESHES.items():
        mesh = Mesh(np.array(jax.devices()).reshape(mshape), axes)
        for sname, spec in _specs_for(mname).items():
            sharding = NamedSharding(mesh, P(*spec))
            for shape in SHAPES:
                combo += 1
                for iname in INITS:
                    init = wi.get({"class_name": iname, "config": {"seed": 42}})
                    ref = np.asarray(init(shape, "float32"))
                    key = f"{mname}|{sname}|{shape}|{iname}"
                    # 1. the core's region= through make_array_from_callback
                    requested = []

                    def cb(index, init=init, shape=shape, requested=requested):
                        requested.append(index)
                        return init(shape, "float32", region=index)

                    try:
                        arr = jax.make_array_from_callback(shape, sharding, cb)
                        shard_elems = sum(int(np.prod(np.asarray(s.data.shape))) for s in arr.addressable_shards)
                        gen_elems = sum(int(np.prod(ref[i].shape)) for i in requested)
                        results[f"callback|{key}"] = (
                            bool(np.array_equal(np.asarray(arr).view(np.uint32), ref.view(np.uint32)))
                            and gen_elems <= shard_elems
                        )
                    except Exception as e:
                        results[f"callback|{key}"] = f"error: {e!r}"[:300]
                    # 2. the JAX executor under jit with out_shardings
                    # jit is slow to compile: one distribution per layout and shape, rotating through them
                    if iname != INITS[combo % 3]:
                        continue
                    dist = init.distribution_for(shape)
                    stream = wi.Stream(42)
                    fn = jax.jit(
                        lambda s=shape, d=dist, st=stream: _executor.sample(d, st, s, "float32"), out_shardings=sharding
                    )
                    try:
                        whole = np.asarray(
                            jax.jit(lambda s=shape, d=dist, st=stream: _executor.sample(d, st, s, "float32"))()
                        )
                        results[f"jitref|{key}"] = bool(np.array_equal(whole.view(np.uint32), ref.view(np.uint32)))
                        out = fn()
                        hlo = fn.lower().compile().as_text()
                        collectives = [
                            c for c in ("all-gather", "all-reduce", "collective-permute", "all-to-all") if c in hlo
                        ]
                        per_dev = {tuple(s.data.shape) for s in out.addressable_shards}
                        expect = {tuple(sharding.shard_shape(shape))}
                        results[f"jit|{key}"] = bool(
                            np.array_equal(np.asarray(out).view(np.uint32), whole.view(np.uint32))
                        ) and (per_dev == expect or f"shards={per_dev}")
                        results[f"jitcomm|{key}"] = not collectives or f"collectives={collectives}"
                        # Known limitation: Philox blocks of 4 values split across shards (see docs/distributed.md).
                        last, shard_last = shape[-1], sharding.shard_shape(shape)[-1]
                        results[f"jitblocksplit|{key}"] = last % 4 == 0 and shard_last % 4 != 0
                    except Exception as e:
                        results[f"jit|{key}"] = f"error: {e!r}"[:300]

    _public_jax(results, MESHES, jax, Mesh, NamedSharding, P, wi)
    _explicit_axes(results, jax, NamedSharding, P)
    _keras(results)
    with open(out_path, "w") as f:
        json.dump(results, f)


def _public_jax(results, meshes, jax, Mesh, NamedSharding, P, wi) -> None:
    """weightinit.jax's jax.nn.initializers API: sharded jit equals unsharded jit, bitwise."""
    import weightinit.jax as wj  # an import error fails the child, so the test fails

    key = jax.random.key(0)
    for n in ("he_normal", "glorot_uniform"):  # jit compiles dominate the run time
        try:
            init = getattr(wj, n)()
        except Exception as e:
            results[f"public|{n}"] = f"error building: {e!r}"[:300]
            continue
        for mname, (mshape, axes) in meshes.items():
            if mname == "2x4":
                continue
            mesh = Mesh(np.array(jax.devices()).reshape(mshape), axes)
            for sname, spec in _specs_for(mname).items():
                sharding = NamedSharding(mesh, P(*spec))
                shape = (16, 24)
                try:
                    ref = np.asarray(jax.jit(lambda k, i=init, s=shape: i(k, s, jax.numpy.float32))(key))
                    out = jax.jit(lambda k, i=init, s=shape: i(k, s, jax.numpy.float32), out_shardings=sharding)(key)
                    results[f"public|{n}|{mname}|{sname}"] = bool(
                        np.array_equal(np.asarray(out).view(np.uint32), ref.view(np.uint32))
                    )
                except Exception as e:
                    results[f"public|{n}|{mname}|{sname}"] = f"error: {e!r}"[:300]


def _explicit_axes(results, jax, NamedSharding, P) -> None:
    """``out_sharding=`` under a mesh with Explicit axes: the array has that sharding, as jax.nn.initializers'."""
    import weightinit.jax as wj

    explicit = jax.sharding.AxisType.Explicit
    mesh = jax.make_mesh((2, 4), ("a", "b"), axis_types=(explicit, explicit))
    key = jax.random.key(3)
    shape = (8, 16)
    builders = {
        "zeros": (wj.zeros, jax.nn.initializers.zeros),
        "ones": (wj.ones, jax.nn.initializers.ones),
        "constant": (wj.constant(2.5), jax.nn.initializers.constant(2.5)),
        "uniform": (wj.uniform(), jax.nn.initializers.uniform()),
        "normal": (wj.normal(), jax.nn.initializers.normal()),
        "truncated_normal": (wj.truncated_normal(), jax.nn.initializers.truncated_normal()),
        "he_normal": (wj.he_normal(), jax.nn.initializers.he_normal()),
        "glorot_uniform": (wj.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    }
    with jax.set_mesh(mesh):
        for spec_name, out_sharding in (("named", NamedSharding(mesh, P("a", "b"))), ("spec", P("a", None))):
            for name, (ours, theirs) in builders.items():
                k = f"explicit|{name}|{spec_name}"
                try:
                    ref = np.asarray(ours(key, shape, jax.numpy.float32))
                    expect = theirs(key, shape, jax.numpy.float32, out_sharding=out_sharding).sharding
                    for mode, fn in (("eager", ours), ("jit", jax.jit(ours, static_argnums=(1, 2, 3)))):
                        out = fn(key, shape, jax.numpy.float32, out_sharding)
                        same = np.array_equal(np.asarray(out).view(np.uint32), ref.view(np.uint32))
                        results[f"{k}|{mode}"] = (same and out.sharding == expect) or f"{out.sharding} vs {expect}"
                except Exception as e:
                    results[f"{k}|eager"] = f"error: {e!r}"[:300]


def _keras(results) -> None:
    """Keras 3 on JAX with a keras.distribution layout: a sharded variable equals the unsharded one."""
    # keras is a test dependency and the driver sets KERAS_BACKEND=jax: any failure here fails the child.
    import keras
    import weightinit.keras as wk
    from keras import distribution as kd

    assert keras.backend.backend() == "jax", keras.backend.backend()
    cls = wk.HeNormal
    shape = (16, 24)
    try:
        ref = np.asarray(cls(seed=5)(shape, "float32"))
        mesh = kd.DeviceMesh((2, 4), ["batch", "model"], kd.list_devices())
        layout_map = kd.LayoutMap(mesh)
        layout_map["dense.*kernel"] = (None, "model")
        dist = kd.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
        with dist.scope():
            layer = keras.layers.Dense(24, kernel_initializer=cls(seed=5), name="dense")
            layer.build((None, 16))
        value = layer.kernel.value
        results["keras|sharding"] = str(getattr(value, "sharding", None))
        results["keras|equal"] = bool(np.array_equal(np.asarray(value).view(np.uint32), ref.view(np.uint32)))
        results["keras|sharded"] = len({tuple(s.data.shape) for s in value.addressable_shards}) == 1 and tuple(
            value.addressable_shards[0].data.shape
        ) == (16, 6)
    except Exception as e:
        results["keras|error"] = f"{e!r}"[:400]


# --------------------------------------------------------------------------------------------- driver


@pytest.fixture(scope="module")
def child_results(tmp_path_factory):
    pytest.importorskip("jax")
    out = tmp_path_factory.mktemp("sharded_jax") / "results.json"
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", KERAS_BACKEND="jax", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, __file__, "child", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def _failures(res: dict, prefix: str) -> list:
    return [(k, v) for k, v in res.items() if k.startswith(prefix) and v is not True]


def test_make_array_from_callback_region_is_bitwise_unsharded(child_results):
    n = sum(1 for k in child_results if k.startswith("callback|"))
    assert n >= 3 * 3 * len(SHAPES) * len(INITS)
    assert _failures(child_results, "callback|") == []


def test_jit_out_shardings_executor_is_bitwise_unsharded(child_results):
    assert sum(1 for k in child_results if k.startswith("jit|")) >= 20
    assert _failures(child_results, "jit|") == []


def test_jit_out_shardings_generates_shards_without_communication(child_results):
    """Each device computes only its shard: the partitioned program has no collectives.

    Exception (documented in docs/distributed.md): when the last axis is a multiple of 4, the
    executor computes one Philox block per 4 values, and a sharding that splits those blocks
    (a shard's last axis not a multiple of 4) makes XLA exchange values.
    """
    keys = [k[len("jitcomm|") :] for k in child_results if k.startswith("jitcomm|")]
    assert keys
    clean = [k for k in keys if not child_results[f"jitblocksplit|{k}"]]
    assert len(clean) >= len(keys) // 2
    bad = [(k, child_results[f"jitcomm|{k}"]) for k in clean if child_results[f"jitcomm|{k}"] is not True]
    assert bad == []


def test_jit_executor_equals_numpy_reference(child_results):
    """The unsharded jitted executor against the NumPy reference (the JAX executor's own contract)."""
    assert sum(1 for k in child_results if k.startswith("jitref|")) > 0
    assert _failures(child_results, "jitref|") == []


def test_public_jax_initializers_sharded(child_results):
    assert _failures(child_results, "public|") == []


def test_out_sharding_under_explicit_axes(child_results):
    """Under ``jax.set_mesh`` with Explicit axes, ``out_sharding`` gives JAX's sharding and the unsharded values."""
    keys = [k for k in child_results if k.startswith("explicit|")]
    assert len(keys) == 8 * 2 * 2, keys
    assert _failures(child_results, "explicit|") == []


def test_keras_distribution_layout(child_results):
    assert "keras|error" not in child_results, child_results.get("keras|error")
    assert child_results["keras|equal"] is True
    assert child_results["keras|sharded"] is True, child_results.get("keras|sharding")


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "child":
    _child(sys.argv[2])
