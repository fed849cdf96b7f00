"""Materializing a Llama-style checkpoint to disk: generator and disk GB/s, end to end, peak RSS, projections.

    python benchmarks/materialize.py [--spec llama-7b] [--dtype float32] [--out /tmp/wi-bench] [--keep]

Measured in one process, side by side:

1. the generator: weightinit's values for a 11008 x 4096 ``nn.Linear`` weight
   (``kaiming_uniform``, the "torch" recipe) and a 32000 x 4096 embedding
   (N(0, 1)), in blocks of ``BLOCK`` values, against torch's own
   ``reset_parameters`` of the same tensors (``nn.init`` on a whole tensor);
2. the disk: ``os.pwrite`` of 2 GiB from memory then ``fsync``;
3. end to end: ``weightinit materialize SPEC --recipe torch`` in a child
   process (safetensors, 5 GB shards, digests on), its wall time, bytes and
   peak RSS (``ru_maxrss``), against the RSS of the same child that only
   imports weightinit and plans the model on meta (the constant);
4. projections for 70B and 405B Llama shapes at the measured end-to-end rate.

The output directory is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

CHILD = r"""
import json, resource, sys, time
import weightinit as wi
from weightinit.artifact.models import build_meta
from weightinit.artifact._torch import plan_model
spec, out, dtype, mode = sys.argv[1:5]
import torch
model = build_meta(spec)
if dtype != "float32":
    model = model.to(getattr(torch, dtype))
t = time.perf_counter()
if mode == "plan":
    plan_model(model, "torch", 0)
    r = None
else:
    r = wi.materialize(model, "torch", 0, out, max_shard_size="5GB", progress=True)
dt = time.perf_counter() - t
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({"seconds": dt, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "rss_now_kib": int(status["VmRSS"].split()[0]),
                  "bytes": r.bytes_written if r else 0, "params": r.n_params if r else 0,
                  "files": r.files if r else [], "digest": r.digest if r else None}))
"""

LLAMA = {  # (hidden, ffn, layers, vocab, kv heads / heads): Llama-2-70B and Llama-3.1-405B shapes
    "70B": (8192, 28672, 80, 32000, 8 / 64),
    "405B": (16384, 53248, 126, 128256, 8 / 128),
}


BLOCK_BYTES = {"float32": 4 * (1 << 22), "bfloat16": 2 * (1 << 22)}


def llama_params(d, ff, layers, vocab, kv):
    per_layer = d * d * (2 + 2 * kv) + 3 * d * ff + 2 * d
    return layers * per_layer + 2 * vocab * d + d


def _gbps(nbytes, seconds):
    return nbytes / seconds / 1e9


def generator_rates(dtype):
    import torch
    import weightinit.torch as wt
    from weightinit.artifact._torch import plan_source
    from weightinit.artifact.materialize import BLOCK

    rows = []
    with torch.device("meta"):
        net = torch.nn.ModuleDict(
            {"proj": torch.nn.Linear(4096, 11008, bias=False), "emb": torch.nn.Embedding(32000, 4096)}
        )
    net = net.to(getattr(torch, dtype))
    plan = wt.plan(net, "torch", seed=0)
    for entry in plan.params:
        src = plan_source(entry)
        t = time.perf_counter()
        for a in range(0, src.numel, BLOCK):
            src.values(a, min(a + BLOCK, src.numel))
        wi_s = time.perf_counter() - t
        nbytes = src.numel * src.dtype.itemsize
        ref = torch.empty(entry.shape, dtype=getattr(torch, dtype))
        mod = torch.nn.Linear(1, 1) if "proj" in entry.path else torch.nn.Embedding(1, 1)
        mod.weight = torch.nn.Parameter(ref)
        t = time.perf_counter()
        mod.reset_parameters()
        torch_s = time.perf_counter() - t
        rows.append((entry.path, entry.shape, nbytes, wi_s, torch_s))
        del ref, mod
    return rows


def disk_rate(path, nbytes=2 << 30):
    buf = np.random.default_rng(0).integers(0, 255, size=64 << 20, dtype=np.uint8)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    t = time.perf_counter()
    try:
        for off in range(0, nbytes, buf.size):
            os.pwrite(fd, buf, off)
        os.fsync(fd)
    finally:
        os.close(fd)
    dt = time.perf_counter() - t
    os.remove(path)
    return _gbps(nbytes, dt)


def child(spec, out, dtype, mode):
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-c", CHILD, spec, out, dtype, mode], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"child failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="llama-7b")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--out", default="/tmp/wi-bench-materialize")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")
    total = du = shutil.disk_usage(os.path.dirname(os.path.abspath(args.out)) or ".")
    print(f"disk free at {os.path.dirname(os.path.abspath(args.out))}: {du.free / 1e9:.1f} GB")

    print("\n1. generator (values in blocks, no disk) vs torch reset_parameters (whole tensor, in place)")
    for path, shape, nbytes, wi_s, torch_s in generator_rates(args.dtype):
        print(
            f"  {path:<12} {tuple(shape)!s:<16} weightinit {_gbps(nbytes, wi_s):6.3f} GB/s   torch "
            f"{_gbps(nbytes, torch_s):6.3f} GB/s   ratio {torch_s / wi_s:5.2f}x"
        )

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    disk = disk_rate(args.out + ".disk-probe")
    print(f"\n2. disk: os.pwrite + fsync of 2 GiB: {disk:.3f} GB/s")

    base = child(args.spec, args.out, args.dtype, "plan")
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    run = child(args.spec, args.out, args.dtype, "write")
    gb = run["bytes"] / 1e9
    rate = _gbps(run["bytes"], run["seconds"])
    print(
        f"\n3. materialize {args.spec} ({run['params'] / 1e9:.2f} B params, {args.dtype}): {gb:.2f} GB in "
        f"{run['seconds']:.1f} s = {rate:.3f} GB/s, {run['params'] / run['seconds'] / 1e6:.0f} M params/s, "
        f"{len([f for f in run['files'] if f.endswith('.safetensors')])} shard files"
    )
    print(
        f"   peak RSS {run['rss_kib'] / 1024:.0f} MiB (at the end {run['rss_now_kib'] / 1024:.0f} MiB); the same "
        f"child that only imports and plans on meta: peak {base['rss_kib'] / 1024:.0f} MiB (at the end "
        f"{base['rss_now_kib'] / 1024:.0f} MiB); one shard file is 5 GB, one write block "
        f"{BLOCK_BYTES[args.dtype] / 2**20:.0f} MiB"
    )
    print("\n4. projected at the measured end-to-end rate (same machine, same recipe)")
    item = 4 if args.dtype == "float32" else 2
    for name, cfg in LLAMA.items():
        n = llama_params(*cfg)
        b = n * item
        print(
            f"  Llama {name}: {n / 1e9:.1f} B params, {b / 1e9:.0f} GB: {b / 1e9 / rate / 60:.0f} min at {rate:.3f} GB/s"
        )
    if not args.keep and os.path.exists(args.out):
        shutil.rmtree(args.out)
        print(f"\n(deleted {args.out})")
    del total


if __name__ == "__main__":
    main()
