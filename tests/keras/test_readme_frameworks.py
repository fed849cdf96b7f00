"""The README's "In your framework" code blocks run as written (Keras, PyTorch, JAX/Flax, Haiku)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## In your framework", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_framework_blocks_run():
    for mod in ("keras", "torch", "jax", "flax", "haiku"):
        pytest.importorskip(mod)
    blocks = _blocks()
    assert len(blocks) == 3
    ns: dict = {}
    exec(blocks[0], ns)
    import keras
    import weightinit.keras as wik

    assert type(ns["layer"].kernel_initializer) is wik.HeNormal
    ns["mha"].build((None, 5, 16), (None, 5, 16))
    assert type(ns["mha"]._kernel_initializer) is wik.GlorotUniform
    assert type(keras.layers.Dense(2, kernel_initializer="glorot_uniform").kernel_initializer) is not wik.GlorotUniform
    ns = {}
    exec(blocks[1], ns)
    assert ns["report"] is not None and ns["lin"].weight.shape == (64, 32)
    ns = {}
    exec(blocks[2], ns)
    assert ns["params"]["params"]["kernel"].shape == (32, 64)
    assert ns["hk_params"]["linear"]["w"].shape == (32, 64)
