"""GPU smoke test of sharded initialization: NCCL, FSDP2, one CUDA device.

Builds the GPT-style model of ``benchmarks/sharded_init.py`` on the meta device, shards it with
FSDP2 ``fully_shard`` on a one-GPU NCCL mesh, materializes it on CUDA and initializes it with
``weightinit.torch.initialize`` (preset "gpt2"). It then checks the gathered parameters bit for
bit against the same model initialized on the CPU in a single process, and times weightinit
against torch's own ``reset_parameters`` on the same sharded CUDA model.

Run on a machine with a CUDA GPU:  python benchmarks/gpu_sharded_smoke.py --params 1e9
It prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sharded_init import build_model, gpt_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard(model, torch):
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    model.to_empty(device="cuda")
    return model


def _torch_init(model, torch) -> None:
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=float, default=1e9)
    ap.add_argument("--check", type=float, default=2e7, help="parameters of the model checked bitwise against CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch.distributed as dist

    import torch
    import weightinit.torch as wt

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1)
    torch.cuda.set_device(0)
    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    try:
        # 1. Bitwise: sharded CUDA initialization == single-process CPU initialization.
        cfg = gpt_config(args.check)
        sharded = _shard(build_model(cfg), torch)
        wt.initialize(sharded, "gpt2", seed=args.seed)
        cpu = build_model(cfg).to_empty(device="cpu")
        wt.initialize(cpu, "gpt2", seed=args.seed)
        mismatched = []
        cpu_params = dict(cpu.named_parameters())
        for name, p in sharded.named_parameters():
            full = p.full_tensor().cpu()
            if not torch.equal(full.view(torch.int32), cpu_params[name].detach().view(torch.int32)):
                diff = (full.double() - cpu_params[name].double()).abs().max().item()
                mismatched.append((name, diff))
        out["check_params"] = sum(p.numel() for p in cpu.parameters())
        out["bitwise_equal"] = not mismatched
        out["mismatched"] = mismatched[:10]
        del sharded, cpu
        torch.cuda.empty_cache()
        # 2. Time: weightinit vs torch's own init of the same sharded CUDA model.
        cfg = gpt_config(args.params)
        model = _shard(build_model(cfg), torch)
        out["params"] = sum(p.numel() for p in model.parameters())
        for name, fn in (
            ("torch reset_parameters", lambda: _torch_init(model, torch)),
            ("weightinit initialize gpt2", lambda: wt.initialize(model, "gpt2", seed=args.seed)),
            ("torch reset_parameters (2nd)", lambda: _torch_init(model, torch)),
            ("weightinit initialize gpt2 (2nd)", lambda: wt.initialize(model, "gpt2", seed=args.seed)),
        ):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            out[name] = {
                "seconds": round(time.perf_counter() - t0, 3),
                "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            }
    finally:
        dist.destroy_process_group()
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0 if out.get("bitwise_equal") else 1


if __name__ == "__main__":
    sys.exit(main())
