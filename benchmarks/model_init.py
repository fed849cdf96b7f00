"""Whole-model init of a 1B-parameter Llama-style model: weightinit.torch.initialize vs the model's own init.

The model is Hugging Face transformers' ``LlamaForCausalLM`` in TinyLlama-1.1B's shape (hidden 2048,
22 layers, 32 heads with 4 key/value heads, MLP 5632, vocabulary 32000, untied head: 1.10e9
parameters), built on the ``meta`` device and
materialized on the CPU with ``to_empty``, as large models are built. In one process, side by side:

* the model's own init: ``model.apply(model._init_weights)`` (what ``post_init`` runs: N(0, 0.02) weights,
  zero biases, ones for norms);
* ``weightinit.torch.initialize(model, "hf_llama", seed=0)``: the same distribution, from weightinit's
  counter-based stream (the same bits on every device and thread count);
* ``weightinit.torch.initialize(model, "torchtitan_llama3", seed=0)``: a recipe that needs roles, so it also
  runs the recorded forward pass that finds them (on the meta device: shapes only).

It prints each wall time, the ratio, and each run's peak resident memory above the materialized
parameters (sampled from /proc/self/statm every millisecond). Run: ``python benchmarks/model_init.py``
(``--scale 0.1`` for fewer layers, ``--repeat 3`` for the best of three, ``--json PATH`` to record the run; the
figures in docs/recipes.md are ``benchmarks/results/model_init_cpu_2core.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import transformers  # noqa: E402

import torch  # noqa: E402
import weightinit.torch as wt  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Peak:
    """Peak RSS while the block runs, sampled every millisecond."""

    def __enter__(self):
        self.peak, self._stop = rss(), False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, rss())


def build(scale: float):
    layers = max(1, round(22 * scale))
    cfg = transformers.LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # touch every page, so the baseline RSS holds the parameters
    return model


def timed(fn, repeat: int):
    best, peak = float("inf"), 0
    for _ in range(repeat):
        base = rss()
        with Peak() as pk:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        peak = max(peak, pk.peak - base)
    return best, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the 22 layers")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", metavar="PATH", help="also write the figures, the load average and the commit here")
    a = ap.parse_args()
    load_start = os.getloadavg()[0]
    transformers.logging.set_verbosity_error()
    model = build(a.scale)
    n = sum(p.numel() for p in model.parameters())
    gb = n * 4 / 2**30
    print(
        f"LlamaForCausalLM, {n / 1e9:.3f}e9 parameters ({gb:.2f} GiB float32), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    )
    own_t, own_m = timed(lambda: model.apply(model._init_weights), a.repeat)
    w = model.model.layers[0].mlp.down_proj.weight
    assert 0.015 < float(w.detach().std()) < 0.025, "the model's own init did not run"
    wi_t, wi_m = timed(lambda: wt.initialize(model, "hf_llama", seed=0), a.repeat)
    assert 0.015 < float(w.detach().std()) < 0.025
    tt_t, tt_m = timed(lambda: wt.initialize(model, "torchtitan_llama3", seed=0), a.repeat)
    print(f"{'run':42s} {'seconds':>8s} {'ratio':>7s} {'peak RSS above params':>22s}")
    rows = [
        ("model._init_weights (HF post_init)", own_t, own_m),
        ('wt.initialize(model, "hf_llama")', wi_t, wi_m),
        ('wt.initialize(model, "torchtitan_llama3")', tt_t, tt_m),
    ]
    for name, t, m in rows:
        print(f"{name:42s} {t:8.2f} {own_t / t:7.2f} {m / 2**20:19.0f} MiB")
    print(f"speedup (own init / weightinit hf_llama): {own_t / wi_t:.2f}x; parameters {gb:.2f} GiB")
    if a.json:
        record = {
            "parameters": n,
            "repeat": a.repeat,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_avg_1min_start": round(load_start, 2),
            "load_avg_1min_end": round(os.getloadavg()[0], 2),
            "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "commit": _commit(),
            "rows": [{"run": r, "seconds": round(t, 3), "ratio": round(own_t / t, 3), "peak_mib": round(m / 2**20)}
                     for r, t, m in rows],
        }  # fmt: skip
        with open(a.json, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


if __name__ == "__main__":
    main()
