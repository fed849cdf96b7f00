"""Sharded PyTorch initialization equals single-process initialization, bit for bit.

The test spawns 2 and 4 CPU processes (gloo, 127.0.0.1, a port chosen by the
OS), builds DTensors with Shard(0), Shard(1), Replicate, 2x2 meshes, uneven
and empty shards, _StridedShard and FSDP2 ``fully_shard``, fills them with
``fill_dtensor_`` (and weightinit.torch's public API where it exists),
gathers them with ``full_tensor()`` and compares with a single process.

This file is also the worker: ``python test_sharded_torch.py worker OUT``
with torchrun's environment variables (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch") if __name__ != "__main__" else __import__("torch")

import weightinit as wi  # noqa: E402
from weightinit.initializers.base import generate  # noqa: E402

# The 4-rank world takes ~35 s on an idle 2-core machine and ~75 s at load average 6 (4 processes importing
# torch and running gloo collectives on 2 cores; the tensors are already tiny); the limit leaves room for a
# loaded machine instead of failing there.
WORKER_TIMEOUT_S = 300


def _cases(world: int) -> list[dict]:
    """Every case: name, global shape, mesh shape, placements (as strings), initializer factory name, dtype."""
    S0, S1, R = "S0", "S1", "R"
    out = []

    def add(name, shape, mesh, placements, init="he_normal", dtype="float32", strategy="replicate"):
        out.append(
            dict(
                name=f"w{world}-{name}",
                shape=shape,
                mesh=mesh,
                placements=placements,
                init=init,
                dtype=dtype,
                strategy=strategy,
            )
        )

    if world == 2:
        m = (2,)
        add("shard0", (8, 6), m, [S0])
        add("shard1-uneven", (6, 7), m, [S1], "glorot_uniform")
        add("replicate", (5, 3), m, [R], "truncated_normal")
        add("shard0-uneven-3x4", (3, 4), m, [S0], "lecun_uniform")
        add("bias-1d-uneven", (5,), m, [S0], "random_uniform")
        add("conv3d-shard1", (4, 3, 5, 5), m, [S1], "he_uniform")
        add("float64", (7, 3), m, [S0], "random_normal", "float64")
        add("bfloat16", (6, 5), m, [S1], "truncated_normal", "bfloat16")
        add("float16", (6, 5), m, [S0], "glorot_normal", "float16")
        add("zeros", (4, 4), m, [S0], "zeros")
        add("constant", (5, 2), m, [S1], "constant")
        add("identity", (5, 5), m, [S1], "identity")
        add("orthogonal-shard1", (6, 4), m, [S1], "orthogonal")
        add("orthogonal-scatter", (5, 8), m, [S0], "orthogonal", strategy="scatter")
        add("stft-shard0", (8, 1, 6), m, [S0], "stft")
        add("user-callable", (5, 4), m, [S0], "user")
        add("seedgen", (6, 4), m, [S0], "seedgen")
        add("big-blocks", (300, 7), m, [S1], "he_normal")  # > the test's block size: several blocks
    else:
        add("shard0-7x5", (7, 5), (4,), [S0])
        add("shard1-7x5-empty", (7, 5), (4,), [S1], "glorot_uniform")  # 5 cols over 4: 2, 2, 1, 0
        add("replicate", (3, 5), (4,), [R], "truncated_normal")
        add("2x2-s0s1", (8, 6), (2, 2), [S0, S1])
        add("2x2-s1s0-uneven", (7, 5), (2, 2), [S1, S0], "lecun_normal")
        add("2x2-s0s0-uneven", (7, 3), (2, 2), [S0, S0], "random_uniform")
        add("2x2-rs1", (4, 7), (2, 2), [R, S1], "he_uniform")
        add("2x2-s0r", (5, 4), (2, 2), [S0, R], "random_normal", "float64")
        add("2x2-strided", (9, 3), (2, 2), ["SS0:2", S0], "he_normal")
        add("2x2-strided-even", (8, 3), (2, 2), ["SS0:2", S0], "glorot_normal")
        add("2x2-orthogonal", (6, 5), (2, 2), [S0, S1], "orthogonal")
        add("2x2-orthogonal-scatter", (6, 5), (2, 2), [S1, S0], "orthogonal", strategy="scatter")
        add("2x2-bf16", (5, 6), (2, 2), [S1, S1], "he_normal", "bfloat16")
    return out


def _make_init(name: str, seed: int = 1234):
    if name == "user":
        return lambda shape, dtype=None: np.arange(int(np.prod(shape)), dtype=dtype or "float32").reshape(shape)
    if name == "seedgen":
        return wi.HeNormal(seed=wi.SeedGenerator(seed))
    if name == "constant":
        return wi.Constant(0.25)
    if name in ("zeros", "identity", "stft"):
        return wi.get(name)
    if name == "orthogonal":
        return wi.Orthogonal(gain=2.0, seed=seed)
    return wi.get({"class_name": name, "config": {"seed": seed}})


def _reference(case: dict) -> list[np.ndarray]:
    init = _make_init(case["init"])
    n = 2 if case["init"] == "seedgen" else 1
    return [np.asarray(generate(init, case["shape"], case["dtype"])) for _ in range(n)]


def _as_bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint8) if a.dtype.itemsize else a


# --------------------------------------------------------------------------------------------- worker


def _placements(spec: list[str]):
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.placement_types import _StridedShard

    out = []
    for p in spec:
        if p == "R":
            out.append(Replicate())
        elif p.startswith("SS"):
            d, sf = p[2:].split(":")
            out.append(_StridedShard(int(d), split_factor=int(sf)))
        else:
            out.append(Shard(int(p[1:])))
    return out


def _empty_dtensor(mesh, shape, placements, dtype):
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    local_shape, _ = compute_local_shape_and_global_offset(shape, mesh, placements)
    local = torch.full(local_shape, float("nan"), dtype=dtype)
    stride = torch.empty(shape, device="meta").stride()
    return DTensor.from_local(local, mesh, placements, run_check=False, shape=torch.Size(shape), stride=stride)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(wi.standardize_dtype("bfloat16"))
    return t.numpy()


def _worker(out_dir: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from weightinit.torch import dtensor as _dtensor

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    from datetime import timedelta

    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        results: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        meshes = {}
        for case in _cases(world):
            mesh_shape = tuple(case["mesh"])
            if mesh_shape not in meshes:
                meshes[mesh_shape] = init_device_mesh("cpu", mesh_shape)
            mesh = meshes[mesh_shape]
            pl = _placements(case["placements"])
            tdt = getattr(torch, case["dtype"])
            init = _make_init(case["init"])
            n = 2 if case["init"] == "seedgen" else 1
            for k in range(n):
                dt = _empty_dtensor(mesh, case["shape"], pl, tdt)
                _dtensor.fill_dtensor_(dt, init, None, case["dtype"], strategy=case["strategy"], block=64)
                full = dt.full_tensor()
                results[f"{case['name']}#{k}"] = _to_numpy(full)
        # local_region agrees with what was filled, for the simple placements
        mesh = meshes[(world,)] if (world,) in meshes else init_device_mesh("cpu", (world,))
        dt = _empty_dtensor(mesh, (7, 5), _placements(["S0"]), torch.float32)
        _, region = _dtensor.local_region(dt)
        _dtensor.fill_dtensor_(dt, wi.HeNormal(seed=3))
        ref = np.asarray(wi.HeNormal(seed=3)((7, 5), "float32", region=region))
        ok = torch.tensor([int(bool((_to_numpy(dt.to_local()) == ref).all()) and dt.to_local().shape == ref.shape)])
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        results[f"w{world}-local_region"] = ok.numpy().astype(np.uint8)
        # Partial is refused with a clear error
        from torch.distributed.tensor import Partial

        try:
            _dtensor.fill_dtensor_(_empty_dtensor(mesh, (4, 4), [Partial()], torch.float32), wi.HeNormal(seed=0))
        except ValueError as e:
            errors["partial"] = str(e)
        # unseeded initializers drawn from OS entropy are caught by verify=True
        try:
            _dtensor.fill_dtensor_(
                _empty_dtensor(mesh, (4, 4), _placements(["S0"]), torch.float32), wi.HeNormal(), verify=True
            )
        except ValueError as e:
            errors["unseeded"] = str(e)
        _public_api(world, results, errors, meshes)
        if world == 2:
            _fsdp2(results, errors)
            _lstm_initialize(results, errors)
            _recipe_initialize(results, errors)
            _lsuv_fix(results, errors)
            _own_init(results, errors)
        if world == 4:
            _tp_fsdp(results, errors)
        if rank == 0:
            np.savez(os.path.join(out_dir, f"world{world}.npz"), **{k: _as_bits(v) for k, v in results.items()})
            np.savez(os.path.join(out_dir, f"world{world}-errors.npz"), **{k: np.array(v) for k, v in errors.items()})
        dist.barrier()
    finally:
        dist.destroy_process_group()


NON_ELEMENTWISE = ("orthogonal_", "sparse_", "eye_", "dirac_")


def _api_calls() -> dict:
    """weightinit.torch functions with fixed arguments: name -> (shape, fn(tensor))."""
    import weightinit.torch as wt

    F = wt if hasattr(wt, "kaiming_normal_") else __import__("weightinit.torch.functions", fromlist=["x"])
    return {
        "uniform_": ((7, 5), lambda t: F.uniform_(t, -1.0, 1.0, seed=1)),
        "normal_": ((7, 5), lambda t: F.normal_(t, 0.0, 2.0, seed=1)),
        "normal_torch_rng": ((7, 5), lambda t: F.normal_(t)),
        "trunc_normal_": ((7, 5), lambda t: F.trunc_normal_(t, 0.0, 1.0, seed=1)),
        "constant_": ((7, 5), lambda t: F.constant_(t, 0.5)),
        "ones_": ((7, 5), F.ones_),
        "zeros_": ((7, 5), F.zeros_),
        "xavier_uniform_": ((7, 5), lambda t: F.xavier_uniform_(t, seed=1)),
        "xavier_normal_": ((7, 5), lambda t: F.xavier_normal_(t, seed=1)),
        "kaiming_uniform_": ((7, 5, 3), lambda t: F.kaiming_uniform_(t, seed=1)),
        "kaiming_normal_": ((7, 5), lambda t: F.kaiming_normal_(t, mode="fan_out", seed=1)),
        "orthogonal_": ((7, 5), lambda t: F.orthogonal_(t, seed=1)),
        "sparse_": ((7, 5), lambda t: F.sparse_(t, 0.3, seed=1)),
        "eye_": ((7, 5), F.eye_),
        "dirac_": ((4, 4, 3), F.dirac_),
    }


def _public_api(world: int, results: dict, errors: dict, meshes: dict) -> None:
    """Every weightinit.torch function on DTensors vs on a plain tensor (same torch seed on all ranks)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import distribute_tensor

    from weightinit.torch.dtensor import dtensor_via_full

    layouts = {"S0": ((world,), ["S0"]), "S1": ((world,), ["S1"])}
    if world == 4:
        layouts["2x2"] = ((2, 2), ["S1", "S0"])
    for lname, (mesh_shape, spec) in layouts.items():
        if mesh_shape not in meshes:
            meshes[mesh_shape] = init_device_mesh("cpu", mesh_shape)
        mesh = meshes[mesh_shape]
        for name, (shape, fn) in _api_calls().items():
            variants = {"api": fn}
            if name in NON_ELEMENTWISE:
                variants["via_full"] = dtensor_via_full(fn)
            for vname, f in variants.items():
                key = f"api-{lname}-{name}-{vname}"
                torch.manual_seed(0)
                ref = f(torch.full(shape, float("nan")))
                torch.manual_seed(0)
                d = distribute_tensor(torch.full(shape, float("nan")), mesh, _placements(spec))
                try:
                    f(d)
                    results[key] = (d.full_tensor().view(torch.int32) == ref.view(torch.int32)).all().numpy()
                except Exception as e:
                    errors[key] = repr(e)


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3))


def _fill_model(model, seed: int) -> None:
    from weightinit.torch import dtensor as _dtensor

    root = wi.Stream(seed)
    for name, p in model.named_parameters():
        init = wi.HeNormal() if p.ndim > 1 else wi.RandomUniform(-0.1, 0.1)
        _dtensor.fill_dtensor_(p, init, root.child(name), block=16)


def _fsdp2(results: dict, errors: dict) -> None:
    try:
        from torch.distributed.fsdp import fully_shard
    except Exception as e:  # pragma: no cover
        errors["fsdp2-skip"] = f"fully_shard unavailable: {e!r}"
        return
    with torch.device("meta"):
        model = _mlp()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    model.to_empty(device="cpu")
    _fill_model(model, 7)
    for name, p in model.named_parameters():
        results[f"fsdp2-{name}"] = _to_numpy(p.full_tensor())
        errors[f"fsdp2-placement-{name}"] = str(p.placements)


def _tp_fsdp(results: dict, errors: dict) -> None:
    """Tensor parallel (Colwise/Rowwise) on a 2x2 mesh's "tp" dim, then FSDP2 on "dp": _StridedShard appears."""
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
    except Exception as e:  # pragma: no cover
        errors["tp-skip"] = f"tensor parallel unavailable: {e!r}"
        return
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    with torch.device("meta"):
        model = _mlp()
    parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})
    fully_shard(model, mesh=mesh["dp"])
    model.to_empty(device="cpu")
    _fill_model(model, 7)
    for name, p in model.named_parameters():
        results[f"tpfsdp-{name}"] = _to_numpy(p.full_tensor())
        errors[f"tpfsdp-placement-{name}"] = str(p.placements)


def _lstm_model():
    return torch.nn.LSTM(6, 5, num_layers=1)


LSTM_RULES = [("*weight_hh*", "orthogonal"), ("*weight_ih*", "glorot_uniform"), ("*bias*", "zeros")]


def _lstm_initialize(results: dict, errors: dict) -> None:
    """weightinit.torch.initialize on an FSDP2-sharded LSTM: per-gate, non-elementwise blocks on DTensors."""
    try:
        from torch.distributed.fsdp import fully_shard
    except Exception as e:  # pragma: no cover
        errors["lstm-skip"] = f"fully_shard unavailable: {e!r}"
        return
    from weightinit.torch import initialize

    with torch.device("meta"):
        model = _lstm_model()
    fully_shard(model)
    model.to_empty(device="cpu")
    initialize(model, recipe=LSTM_RULES, seed=5)
    for name, p in model.named_parameters():
        results[f"lstm-{name}"] = _to_numpy(p.full_tensor())


def _recipe_initialize(results: dict, errors: dict) -> None:
    """A whole-model recipe (megatron: scaled residual projection) on an FSDP2-sharded MLP."""
    try:
        from torch.distributed.fsdp import fully_shard
    except Exception as e:  # pragma: no cover
        errors["recipe-skip"] = f"fully_shard unavailable: {e!r}"
        return
    from weightinit.torch import initialize

    with torch.device("meta"):
        model = _mlp()
    fully_shard(model)
    model.to_empty(device="cpu")
    initialize(model, "megatron", seed=8, residual_projections=["2"], n_layers=1)
    for name, p in model.named_parameters():
        results[f"recipe-{name}"] = _to_numpy(p.full_tensor())


def _lsuv_mlp():
    L = torch.nn.Linear
    return torch.nn.Sequential(L(16, 32), torch.nn.ReLU(), L(32, 32), torch.nn.ReLU(), L(32, 8))


def _lsuv_batch():
    return torch.randn(64, 16, generator=torch.Generator().manual_seed(11))


def _lsuv_fix(results: dict, errors: dict) -> None:
    """weightinit.fix(mode="lsuv") on an FSDP2-sharded MLP: orthogonal pre-init, then data-driven rescaling."""
    try:
        from torch.distributed.fsdp import fully_shard
    except Exception as e:  # pragma: no cover
        errors["lsuv-skip"] = f"fully_shard unavailable: {e!r}"
        return
    with torch.device("meta"):
        model = _lsuv_mlp()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    model.to_empty(device="cpu")
    _fill_model(model, 9)  # biases (left alone by LSUV) get defined values
    try:
        rep = wi.fix(model, mode="lsuv", inputs=_lsuv_batch(), seed=3, measure=False)
    except Exception as e:
        errors["lsuv-error"] = repr(e)
        return
    for name, p in model.named_parameters():
        results[f"lsuv-{name}"] = _to_numpy(p.full_tensor())
    for name, s in rep.scales.items():
        results[f"lsuv-scale-{name}"] = np.array(s, dtype=np.float64)


# --------------------------------------------------------------------------------------------- driver


class _Scaled(torch.nn.Module):
    """A parameter and a persistent buffer only the module's own ``reset_parameters`` sets."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.empty(4, 3))
        self.register_buffer("scale", torch.empty(3))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.uniform_(self.w, -1.0, 1.0)
        with torch.no_grad():
            self.scale.normal_()


class _TokenNet(torch.nn.Module):
    """A parameter only the model's own ``init_weights`` sets (as timm's ``cls_token``), beside rule-matched Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 6)
        self.tok = torch.nn.Parameter(torch.empty(4, 8))
        self.sub = _Scaled()
        self.init_weights()

    def init_weights(self) -> None:
        torch.nn.init.trunc_normal_(self.tok, std=0.02)
        for m in self.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=0.5)


def _own_init(results: dict, errors: dict) -> None:
    """The own-init fallback on FSDP2 (DTensor) parameters: the single-process values, only the unmatched written."""
    try:
        from torch.distributed.fsdp import fully_shard
    except Exception as e:  # pragma: no cover
        errors["own-skip"] = f"fully_shard unavailable: {e!r}"
        return
    from weightinit.torch import initialize, plan
    from weightinit.torch.model_init.own import run_own_init

    with torch.device("meta"):
        model = _TokenNet()
    fully_shard(model)
    model.to_empty(device="cpu")
    report = initialize(model, "torch", seed=6)
    errors["own-label"] = report.own_init.get("tok", "")
    errors["own-sub-labels"] = f"{report.own_init.get('sub.w', '')} {report.buffer_init.get('sub.scale', '')}"
    results["own-buffer-sub.scale"] = _to_numpy(model.sub.scale)
    for name, p in model.named_parameters():
        results[f"own-{name}"] = _to_numpy(p.full_tensor())
    errors["own-placement-tok"] = str(model.tok.placements)
    # run alone, the own init writes tok only: every other parameter keeps a sentinel
    with torch.no_grad():
        for p in model.parameters():
            p.to_local().fill_(7.0)
    for own in plan(model, "torch", seed=6).own_inits:
        run_own_init(own, model)
    results["own-alone-tok"] = _to_numpy(model.tok.full_tensor())
    results["own-alone-others"] = np.array(
        [bool((p.full_tensor() == 7.0).all()) for n, p in model.named_parameters() if n not in report.own_init],
        dtype=np.uint8,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world: int, out_dir: Path) -> None:
    port = _free_port()
    procs = []
    logs = []
    for rank in range(world):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            GLOO_SOCKET_IFNAME="lo",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        log = open(out_dir / f"rank{world}-{rank}.log", "w+")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "worker", str(out_dir)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    try:
        for p in procs:
            p.wait(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = [p.returncode for p in procs]
    if any(codes):
        text = []
        for log in logs:
            log.seek(0)
            text.append(log.read()[-3000:])
        for log in logs:
            log.close()
        raise AssertionError(f"world {world}: worker exit codes {codes}\n" + "\n---\n".join(text))
    for log in logs:
        log.close()


@pytest.fixture(scope="module", params=[2, 4], ids=["world2", "world4"])
def world_results(request, tmp_path_factory):
    world = request.param
    out = tmp_path_factory.mktemp(f"sharded{world}")
    _launch(world, out)
    res = dict(np.load(out / f"world{world}.npz"))
    errs = {k: str(v) for k, v in np.load(out / f"world{world}-errors.npz").items()}
    return world, res, errs


def test_gathered_shards_equal_single_process(world_results):
    world, res, _ = world_results
    checked = 0
    for case in _cases(world):
        refs = _reference(case)
        for k, ref in enumerate(refs):
            got = res[f"{case['name']}#{k}"]
            assert got.shape == _as_bits(ref).shape, case["name"]
            np.testing.assert_array_equal(got, _as_bits(ref), err_msg=case["name"])
            checked += 1
    assert checked >= 10


def test_local_region_generates_the_local_shard(world_results):
    world, res, _ = world_results
    assert res[f"w{world}-local_region"].all()


def test_partial_and_unseeded_errors(world_results):
    _, _, errs = world_results
    assert "Partial" in errs["partial"] and "`tensor`" in errs["partial"]
    assert "different streams" in errs["unseeded"]


def test_public_functions_on_dtensors(world_results):
    """Elementwise weightinit.torch functions are single-device equal on DTensors (through place_sharded)."""
    world, res, errs = world_results
    for lname in ("S0", "S1") + (("2x2",) if world == 4 else ()):
        for name in _api_calls():
            if name in NON_ELEMENTWISE:
                key = f"api-{lname}-{name}-via_full"
                assert key in res and bool(res[key]), (key, errs.get(key))
            else:
                key = f"api-{lname}-{name}-api"
                assert key not in errs, errs.get(key)
                assert bool(res[key]), key


def test_non_elementwise_public_functions_on_dtensors(world_results):
    """orthogonal_/sparse_/eye_/dirac_ called directly on a DTensor (needs the dtensor_via_full integration)."""
    world, res, errs = world_results
    pending = []
    for lname in ("S0", "S1") + (("2x2",) if world == 4 else ()):
        for name in NON_ELEMENTWISE:
            key = f"api-{lname}-{name}-api"
            if key in errs or not bool(res.get(key, False)):
                pending.append((key, errs.get(key, "values differ")[:120]))
    assert not pending, pending[:2]


def test_initialize_sharded_lstm_equals_single_process(world_results):
    """Per-gate orthogonal recurrent kernels of a sharded LSTM equal the single-process initialize."""
    world, res, errs = world_results
    if world != 2:
        pytest.skip("run on the 2-rank world only")
    if "lstm-skip" in errs:
        pytest.skip(errs["lstm-skip"])
    from weightinit.torch import initialize

    model = _lstm_model()
    initialize(model, recipe=LSTM_RULES, seed=5)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(res[f"lstm-{name}"], _as_bits(_to_numpy(p.detach())), err_msg=name)


def test_initialize_recipe_on_fsdp2_equals_single_process(world_results):
    """A recipe's per-parameter rules (scaled residual projection) give the same bits sharded and unsharded."""
    world, res, errs = world_results
    if world != 2:
        pytest.skip("run on the 2-rank world only")
    if "recipe-skip" in errs:
        pytest.skip(errs["recipe-skip"])
    from weightinit.torch import initialize

    model = _mlp()
    report = initialize(model, "megatron", seed=8, residual_projections=["2"], n_layers=1)
    assert report["2.weight"].rule == "megatron: residual projection"
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(res[f"recipe-{name}"], _as_bits(_to_numpy(p.detach())), err_msg=name)


def test_lsuv_fix_on_fsdp2_equals_single_process(world_results):
    """weightinit.fix(mode="lsuv") on an FSDP2-sharded MLP gives the unsharded model's weights, bit for bit."""
    world, res, errs = world_results
    if world != 2:
        pytest.skip("run on the 2-rank world only")
    if "lsuv-skip" in errs:
        pytest.skip(errs["lsuv-skip"])
    assert "lsuv-error" not in errs, errs.get("lsuv-error")
    model = _lsuv_mlp()
    root = wi.Stream(9)
    with torch.no_grad():
        for name, p in model.named_parameters():  # what _fill_model gives on one device
            init = wi.HeNormal() if p.ndim > 1 else wi.RandomUniform(-0.1, 0.1)
            p.copy_(torch.from_numpy(np.asarray(generate(init, tuple(p.shape), "float32", stream=root.child(name)))))
    rep = wi.fix(model, mode="lsuv", inputs=_lsuv_batch(), seed=3, measure=False)
    assert len(rep.scales) == 3
    for name, s in rep.scales.items():
        assert res[f"lsuv-scale-{name}"].view(np.float64)[0] == s, name
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(res[f"lsuv-{name}"], _as_bits(_to_numpy(p.detach())), err_msg=name)


def test_own_init_on_fsdp2_writes_only_the_unmatched_parameters_with_single_process_values(world_results):
    """A parameter no rule matches (init_weights) on FSDP2: the gathered value equals the unsharded run's."""
    world, res, errs = world_results
    if world != 2:
        pytest.skip("run on the 2-rank world only")
    if "own-skip" in errs:
        pytest.skip(errs["own-skip"])
    from weightinit.torch import initialize

    assert errs["own-label"].endswith("_TokenNet.init_weights") and "Shard(dim=0)" in errs["own-placement-tok"]
    model = _TokenNet()
    report = initialize(model, "torch", seed=6)
    assert sorted(report.own_init) == ["sub.w", "tok"]
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(res[f"own-{name}"], _as_bits(_to_numpy(p.detach())), err_msg=name)
    np.testing.assert_array_equal(res["own-alone-tok"], _as_bits(_to_numpy(model.tok.detach())))
    assert res["own-alone-others"].size == 2 and res["own-alone-others"].all()
    # a buffer computed by reset_parameters next to DTensor parameters (run with their stand-ins)
    assert errs["own-sub-labels"] == "_Scaled.reset_parameters _Scaled.reset_parameters"
    np.testing.assert_array_equal(res["own-buffer-sub.scale"], _as_bits(_to_numpy(model.sub.scale)))


def test_fsdp2_and_tensor_parallel(world_results):
    world, res, errs = world_results
    prefix = "fsdp2" if world == 2 else "tpfsdp"
    if f"{prefix}-skip" in errs:
        pytest.skip(errs[f"{prefix}-skip"])
    model = _mlp()
    root = wi.Stream(7)
    names = [n for n, _ in model.named_parameters()]
    for name, p in model.named_parameters():
        init = wi.HeNormal() if p.ndim > 1 else wi.RandomUniform(-0.1, 0.1)
        ref = np.asarray(generate(init, tuple(p.shape), "float32", stream=root.child(name)))
        np.testing.assert_array_equal(res[f"{prefix}-{name}"], _as_bits(ref), err_msg=name)
    placements = " ".join(errs[f"{prefix}-placement-{n}"] for n in names)
    assert "Shard(dim=0)" in placements, placements
    if world == 4:  # FSDP2 over tensor parallel shards dim 0 of the colwise weight twice
        assert "_StridedShard" in placements or "_S(0" in placements, placements


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "worker":
    _worker(sys.argv[2])
