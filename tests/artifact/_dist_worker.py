"""One rank of the artifact tests' gloo process groups (run by test_distributed.py, one group per world size).

Each rank: materializes tiny-llama as safetensors and as DCP (the ranks share
the work), fingerprints an FSDP2-sharded model (each rank hashes its shards),
verifies an FSDP2 model initialized by ``weightinit.torch.initialize``, then
flips one bit of one rank's shard and verifies again, and loads a DCP written
by a single process into the FSDP2 model.  The same for a model with BatchNorm
(:func:`bn_net`): its persistent buffers are written, hashed and verified too.
Rank 0 writes the results as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

import torch.distributed as dist

import torch


def bn_net():
    """A model with persistent buffers (BatchNorm statistics), as a MODEL_SPEC factory (``_dist_worker.py:bn_net``)."""
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 4))


def main(out_dir: str, dcp_single: str) -> None:
    from torch.distributed.fsdp import fully_shard

    import weightinit as wi
    import weightinit.torch as wt
    from weightinit.artifact.models import build_meta

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    res: dict = {"world": world}
    spec, recipe, seed = "tiny-llama", "gpt2", 11

    r = wi.materialize(spec, recipe, seed, os.path.join(out_dir, f"st{world}"), max_shard_size="40KB")
    res["st_digest"] = r.digest
    wi.materialize(spec, recipe, seed, os.path.join(out_dir, f"dcp{world}"), format="dcp")
    from weightinit.cli.main import main as cli

    argv = ["materialize", spec, "--recipe", recipe, "--seed", str(seed), "--max-shard-size", "40KB", "--quiet"]
    if world > 1:  # the ranks of the group share the CLI's work too
        res["cli_rc"] = cli(argv + ["--out", os.path.join(out_dir, f"st_cli{world}")])

    def sharded():
        model = build_meta(spec)
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model

    res["fsdp_fingerprint"] = wi.fingerprint(sharded(), recipe, seed).hex

    model = sharded()
    model.to_empty(device="cpu")
    wt.initialize(model, recipe, seed=seed)
    res["verify_ok"] = bool(wi.verify(model, recipe, seed))
    p = model.model.layers[1].mlp.up_proj.weight
    local = p.to_local()
    if rank == world - 1 and local.numel():
        with torch.no_grad():
            bits = local.view(torch.int32)
            bits[-1, -1] ^= 1  # the lowest mantissa bit of this shard's last value
    result = wi.verify(model, recipe, seed, raise_on_mismatch=False)
    check = result["model.layers.1.mlp.up_proj.weight"]
    res["flipped"] = {"status": check.status, "n": check.n_different, "first": list(check.first_index or ())}
    res["others_ok"] = all(c.ok for k, c in result.checks.items() if k != "model.layers.1.mlp.up_proj.weight")

    import torch.distributed.checkpoint as dcp

    model = sharded()
    model.to_empty(device="cpu")
    state = model.state_dict()
    dcp.load(state, checkpoint_id=dcp_single)
    model.load_state_dict(state)
    res["dcp_single_into_fsdp_ok"] = bool(wi.verify(model, recipe, seed, raise_on_mismatch=False))

    bn_spec = os.path.abspath(__file__) + ":bn_net"
    res["bn_digest"] = wi.materialize(bn_spec, "torch", 3, os.path.join(out_dir, f"bn{world}")).digest
    model = build_meta(bn_spec)
    fully_shard(model)
    res["bn_fsdp_fingerprint"] = wi.fingerprint(model, "torch", 3).hex
    model = build_meta(bn_spec)
    fully_shard(model)
    model.to_empty(device="cpu")
    wt.initialize(model, "torch", seed=3)
    res["bn_verify_ok"] = bool(wi.verify(model, "torch", 3, raise_on_mismatch=False))

    if rank == 0:
        with open(os.path.join(out_dir, f"world{world}.json"), "w") as f:
            json.dump(res, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
