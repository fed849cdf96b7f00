"""Profile weightinit.torch.initialize on an FSDP2-sharded GPT on one CUDA device (diagnostic)."""

import cProfile
import os
import pstats
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.simplefilter("ignore")

import torch.distributed as dist  # noqa: E402
from gpu_sharded_smoke import _free_port, _shard  # noqa: E402
from sharded_init import build_model, gpt_config  # noqa: E402

import torch  # noqa: E402
import weightinit.torch as wt  # noqa: E402

os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", str(_free_port()))
dist.init_process_group("nccl", rank=0, world_size=1)
model = _shard(build_model(gpt_config(float(sys.argv[1]) if len(sys.argv) > 1 else 1e9)), torch)
wt.initialize(model, "gpt2", seed=0)
torch.cuda.synchronize()
cProfile.run('wt.initialize(model, "gpt2", seed=0); torch.cuda.synchronize()', "/tmp/p.out")
pstats.Stats("/tmp/p.out").sort_stats("cumulative").print_stats(30)
pstats.Stats("/tmp/p.out").sort_stats("tottime").print_stats(12)
dist.destroy_process_group()
