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
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact_dist")
    single = wi.materialize(SPEC, RECIPE, SEED, out / "st_single", max_shard_size="40KB")
    wi.materialize(SPEC, RECIPE, SEED, out / "dcp_single", format="dcp")
    return out, single, {w: _launch(w, out, out / "dcp_single") for w in (1, 2, 4)}


def _files(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix in (".safetensors", ".json")}


@pytest.mark.parametrize("world", [1, 2, 4])
def test_safetensors_bytes_equal_single_process(runs, world):
    out, _single, _ = runs
    ref, got = _files(out / "st_single"), _files(out / f"st{world}")
    assert sorted(got) == sorted(ref) and len([n for n in ref if n.endswith(".safetensors")]) > 1
    for name in ref:
        assert got[name] == ref[name], name


@pytest.mark.parametrize("world", [1, 2, 4])
def test_digests_equal_across_rank_counts(runs, world):
    _, single, res = runs
    want = wi.fingerprint(SPEC, RECIPE, SEED).hex
    assert single.digest == want
    assert res[world]["st_digest"] == want
    assert res[world]["fsdp_fingerprint"] == want  # each rank hashed only the chunks its FSDP2 shards own


@pytest.mark.parametrize("world", [1, 2, 4])
def test_dcp_written_by_n_ranks_loads_in_one_process(runs, world):
    out, _, _ = runs
    assert wi.verify(out / f"dcp{world}", RECIPE, SEED, model=SPEC)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_fsdp2_verify_and_single_bit_flip(runs, world):
    _, _, res = runs
    r = res[world]
    assert r["verify_ok"] and r["others_ok"]
    assert r["flipped"]["status"] == "differs" and r["flipped"]["n"] == 1
    assert r["flipped"]["first"] == [63, 31]  # the last value of the last rank's shard is the tensor's last value
    assert r["dcp_single_into_fsdp_ok"]


@pytest.mark.parametrize("world", [2, 4])
def test_cli_on_n_ranks_writes_the_same_bytes(runs, world):
    out, _, res = runs
    assert res[world]["cli_rc"] == 0
    assert _files(out / f"st_cli{world}") == _files(out / "st_single")
