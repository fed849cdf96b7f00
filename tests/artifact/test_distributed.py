"""Artifacts on 1, 2 and 4 gloo ranks equal the single-process ones (one process group per world size).

The group runs tests/artifact/_dist_worker.py; see there for what each rank does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import weightinit as wi  # noqa: E402

WORKER = Path(__file__).with_name("_dist_worker.py")
SPEC, RECIPE, SEED = "tiny-llama", "gpt2", 11
BN_SPEC = f"{WORKER}:bn_net"  # a model with BatchNorm buffers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world: int, out: Path, dcp_single: Path) -> dict:
    port = _free_port()
    procs, logs = [], []
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
        )
        log = open(out / f"rank{world}-{rank}.log", "w+")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(out), str(dcp_single)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        for p in procs:
            p.wait(timeout=240)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(p.returncode for p in procs):
        text = []
        for log in logs:
            log.seek(0)
            text.append(log.read()[-3000:])
        raise AssertionError(f"world {world}: exit codes {[p.returncode for p in procs]}\n" + "\n---\n".join(text))
    for log in logs:
        log.close()
    return json.loads((out / f"world{world}.json").read_text())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process artifacts every group is compared with."""
    out = tmp_path_factory.mktemp("artifact_single")
    r = wi.materialize(SPEC, RECIPE, SEED, out / "st_single", max_shard_size="40KB")
    wi.materialize(SPEC, RECIPE, SEED, out / "dcp_single", format="dcp")
    wi.materialize(BN_SPEC, "torch", 3, out / "bn_single")
    return out, r


def _files(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix in (".safetensors", ".json")}


# One test per world size, so that under pytest-xdist each process group is launched exactly once.
@pytest.mark.parametrize("world", [1, 2, 4])
def test_process_group(single, tmp_path, world):
    ref_dir, ref = single
    r = _launch(world, tmp_path, ref_dir / "dcp_single")
    want = wi.fingerprint(SPEC, RECIPE, SEED).hex
    # safetensors written by N ranks: the same bytes as one process (several shard files, the index, weightinit.json)
    expect = _files(ref_dir / "st_single")
    assert len([n for n in expect if n.endswith(".safetensors")]) > 1
    assert _files(tmp_path / f"st{world}") == expect
    # digests: written == planned == FSDP2 per-shard fingerprint (each rank hashed only its shards' chunks)
    assert ref.digest == want and r["st_digest"] == want and r["fsdp_fingerprint"] == want
    # DCP written by N ranks loads in one process; one written by one process loads into FSDP2 on N ranks
    assert wi.verify(tmp_path / f"dcp{world}", RECIPE, SEED, model=SPEC)
    assert r["dcp_single_into_fsdp_ok"]
    # verify on FSDP2 shards, and one flipped bit on the last rank's shard (its last value is the tensor's last)
    assert r["verify_ok"] and r["others_ok"]
    assert r["flipped"] == {"status": "differs", "n": 1, "first": [63, 31]}
    # the CLI run inside the group (ranks share the work) writes the same bytes
    if world > 1:
        assert r["cli_rc"] == 0 and _files(tmp_path / f"st_cli{world}") == expect
    # persistent buffers (BatchNorm statistics): the same bytes from N ranks, hashed per rank, verified on FSDP2
    bn = _files(ref_dir / "bn_single")
    assert b"running_var" in bn["model.safetensors"] and _files(tmp_path / f"bn{world}") == bn
    assert r["bn_digest"] == r["bn_fsdp_fingerprint"] == wi.fingerprint(BN_SPEC, "torch", 3).hex
    assert r["bn_verify_ok"]
