"""The examples of docs/artifact.md and README run; a JAX sharding's shards combine to the whole digest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(path: Path, heading: str | None = None) -> list[str]:
    text = path.read_text()
    if heading is not None:
        text = text[text.index(heading) :]
        nxt = re.search(r"\n## ", text[3:])
        text = text[: nxt.start() + 3] if nxt else text
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_artifact_doc_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    block = _python_blocks(ROOT / "docs" / "artifact.md")[0]
    exec(compile(block.replace("/tmp/ckpt", str(tmp_path / "ckpt")), "docs/artifact.md", "exec"), {})


def test_readme_example_runs(tmp_path):
    pytest.importorskip("torch")
    blocks = _python_blocks(ROOT / "README.md", "## Initialization as an artifact")
    assert blocks
    exec(compile(blocks[0].replace("/tmp/ckpt", str(tmp_path / "ckpt")), "README.md", "exec"), {})


def test_jax_sharding_shards_combine_to_the_single_device_digest():
    pytest.importorskip("jax")
    code = textwrap.dedent(
        """
        import jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import weightinit as wi
        from weightinit.artifact import combine
        mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("x", "y"))
        shape = (300, 500)
        whole = wi.fingerprint("he_normal", shape, "bfloat16", wi.Stream(3)).hex
        for spec in (P("x", "y"), P(None, "y"), P("x", None), P()):
            index = NamedSharding(mesh, spec).devices_indices_map(shape)
            parts = [wi.fingerprint("he_normal", shape, "bfloat16", wi.Stream(3), shard=i) for i in index.values()]
            assert combine(parts).hex == whole, spec
        print("ok", len(jax.devices()))
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["ok", "4"]
