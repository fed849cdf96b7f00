"""Sharded initialization of a GPT-style model: weightinit vs torch's own init, per rank.

The model (embedding + ``n_layers`` transformer blocks: qkv, proj, fc, fc2,
two LayerNorms) is built on the meta device, sharded with FSDP2
``fully_shard`` (Shard(0) over all ranks), materialized with ``to_empty`` and
initialized GPT-2 style (weights N(0, 0.02), biases 0, LayerNorm weights 1):

* ``weightinit``: :func:`weightinit.torch.dtensor.fill_dtensor_` per
  parameter, stream ``Stream(seed).child(name)``: each rank generates only
  its shard, and the values do not depend on the number of ranks;
* ``torch``: ``torch.nn.init.normal_/zeros_/ones_`` on the same DTensors.

Each (method, ranks) pair runs in fresh processes (gloo, 127.0.0.1), so the
peak RSS (``ru_maxrss``) is that run's.  The table reports the slowest
rank's init time, the peak RSS per rank, the shard size per rank, and a
SHA-256 of one gathered weight (equal across rank counts for weightinit).

    python benchmarks/sharded_init.py                    # ~1e9 parameters, 1, 2 and 4 ranks
    python benchmarks/sharded_init.py --params 1e8 --ranks 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import time


def gpt_config(params: float) -> dict:
    """d_model, n_layers, vocab for about ``params`` parameters (12 d^2 per block + vocab * d)."""
    if params >= 4e8:
        d, vocab = 2048, 50304
    elif params >= 4e7:
        d, vocab = 1024, 50304
    else:
        d, vocab = 256, 8192
    layers = max(1, round((params - vocab * d) / (12 * d * d + 13 * d)))
    return {"d_model": d, "n_layers": layers, "vocab": vocab}


def build_model(cfg: dict):
    import torch
    from torch import nn

    d = cfg["d_model"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(cfg["vocab"], d)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["n_layers"]))
            self.ln_f = nn.LayerNorm(d)

    with torch.device("meta"):
        return GPT()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(method: str, params: float, seed: int) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    import torch
    import weightinit as wi
    from weightinit.torch.dtensor import fill_dtensor_

    dist.init_process_group("gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        cfg = gpt_config(params)
        model = build_model(cfg)
        for blk in model.blocks:
            fully_shard(blk)
        fully_shard(model)
        model.to_empty(device="cpu")
        shard_bytes = sum(p.to_local().numel() * p.element_size() for p in model.parameters())
        n_params = sum(p.numel() for p in model.parameters())
        rss_before = _rss_mib()
        root = wi.Stream(seed)
        normal, zeros, ones = wi.RandomNormal(0.0, 0.02), wi.Zeros(), wi.Ones()
        dist.barrier()
        t0 = time.perf_counter()
        with torch.no_grad():
            for name, p in model.named_parameters():
                is_ln = ".ln" in f".{name}" and name.endswith("weight")
                if method == "weightinit":
                    init = ones if is_ln else (zeros if name.endswith("bias") else normal)
                    fill_dtensor_(p, init, root.child(name))
                else:
                    if is_ln:
                        torch.nn.init.ones_(p)
                    elif name.endswith("bias"):
                        torch.nn.init.zeros_(p)
                    else:
                        torch.nn.init.normal_(p, 0.0, 0.02)
        elapsed = time.perf_counter() - t0
        peak = _rss_mib()
        w = model.blocks[0].qkv.weight.detach().full_tensor()
        digest = hashlib.sha256(w.numpy().tobytes()).hexdigest()[:16]
        stats = torch.tensor([elapsed, peak, rss_before, shard_bytes / 2**20], dtype=torch.float64)
        out = [torch.zeros_like(stats) for _ in range(world)]
        dist.all_gather(out, stats)
        if rank == 0:
            rows = torch.stack(out)
            print(
                json.dumps(
                    {
                        "method": method,
                        "ranks": world,
                        "params": n_params,
                        "config": cfg,
                        "time_s_max": float(rows[:, 0].max()),
                        "peak_rss_mib_max": float(rows[:, 1].max()),
                        "rss_before_init_mib_max": float(rows[:, 2].max()),
                        "shard_mib_max": float(rows[:, 3].max()),
                        "qkv0_sha256": digest,
                    }
                ),
                flush=True,
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def launch(method: str, ranks: int, params: float, seed: int, timeout: float) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = max(1, (os.cpu_count() or 1) // ranks)
    procs = []
    for r in range(ranks):
        env = dict(
            os.environ,
            RANK=str(r),
            LOCAL_RANK=str(r),
            WORLD_SIZE=str(ranks),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            GLOO_SOCKET_IFNAME="lo",
            OMP_NUM_THREADS=str(threads),
        )
        cmd = [sys.executable, __file__, "--worker", method, "--params", str(params), "--seed", str(seed)]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if r == 0 else subprocess.DEVNULL, text=True)
        )
    try:
        out, _ = procs[0].communicate(timeout=timeout)
        for p in procs[1:]:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"{method} with {ranks} ranks failed: exit codes {[p.returncode for p in procs]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=float, default=1e9, help="target parameter count (default 1e9)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--methods", nargs="+", default=["weightinit", "torch"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per run before its processes are killed")
    ap.add_argument("--json", default="sharded_init.json", help="where to write the results")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.params, args.seed)
        return
    rows = []
    for ranks in args.ranks:
        for method in args.methods:
            rows.append(launch(method, ranks, args.params, args.seed, args.timeout))
            r = rows[-1]
            print(
                f"{r['method']:>10} ranks={r['ranks']} params={r['params'] / 1e9:.3f}B time={r['time_s_max']:.2f}s "
                f"peak_rss={r['peak_rss_mib_max']:.0f}MiB shard={r['shard_mib_max']:.0f}MiB sha={r['qkv0_sha256']}",
                flush=True,
            )
    print()
    print(
        "| method | ranks | params | init time (slowest rank) | peak RSS / rank | RSS before init | shard / rank | qkv0 sha256 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['ranks']} | {r['params'] / 1e9:.3f} B | {r['time_s_max']:.2f} s | "
            f"{r['peak_rss_mib_max']:.0f} MiB | {r['rss_before_init_mib_max']:.0f} MiB | {r['shard_mib_max']:.0f} MiB | "
            f"`{r['qkv0_sha256']}` |"
        )
    with open(args.json, "w") as f:
        json.dump({"host": socket.gethostname(), "cpus": os.cpu_count(), "rows": rows}, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
