"""``weightinit bench``: generation speed against torch.nn.init, NumPy, jax.random and Keras.

Everything runs in one process, on the same cores with the same thread count
(``--threads``, default: the cores available) for weightinit and torch.  Each
row is the median of several timed calls after a warm-up, in million values
per second, and the ratio to the baseline it replaces.  ``fill (memory write)``
fills the same float32 buffer with a constant: the memory-write limit.  Keras
runs in a subprocess per backend (a Keras backend is fixed per process).
BLAS pools are limited to the same thread count through threadpoolctl when it is
installed; XLA (jax) is not, so pin the process (``taskset -c 0,1``) for a fair
comparison.  This is a benchmark, not a test: numbers on a shared machine are noisy.

Usage::

    weightinit bench                          # 1e4, 1e6, 1e8 values; 512^2, 2048^2 orthogonal
    weightinit bench --sizes 1e4,1e6 --json out.json
    weightinit bench --device cuda            # torch executor on a GPU against torch.randn/normal_
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

__all__ = ["add_arguments", "run", "measure"]

_DEFAULT_SIZES = "1e4,1e6,1e8"
_DEFAULT_ORTHO = "512,2048"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to ``parser``."""
    from weightinit.cli.common import positive_float, positive_int

    parser.add_argument("--sizes", default=_DEFAULT_SIZES, help=f"float32 value counts (default {_DEFAULT_SIZES})")
    parser.add_argument(
        "--ortho", default=_DEFAULT_ORTHO, help=f"orthogonal matrix sizes n for n x n ({_DEFAULT_ORTHO})"
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="threads for weightinit and torch (>= 1; default: cores)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu or cuda); non-CPU runs torch only")
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    parser.add_argument("--skip", default="", help="comma-separated libraries to skip: numpy,jax,keras,torch")
    parser.add_argument(
        "--budget", type=positive_float, default=1.0, help="seconds of timed calls per row (default 1.0)"
    )


def measure(fn: Callable[[], object], budget: float = 1.0, sync: Callable[[], object] | None = None) -> float:
    """Median seconds per call of ``fn`` after one warm-up, with about ``budget`` seconds of calls (3 to 200)."""
    fn()
    if sync:
        sync()
    t0 = time.perf_counter()
    fn()
    if sync:
        sync()
    first = time.perf_counter() - t0
    reps = int(min(200, max(3, budget / max(first, 1e-9))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _shape(n: int) -> tuple[int, int]:
    cols = 1000 if n >= 1000 else n
    return (n // cols, cols)


_PEERS = {"torch": ("torch.",), "numpy": ("numpy ",), "jax": ("jax.random",)}
"""Peer rows by name prefix: weightinit rows get the ratio to the fastest of each."""


class _Table:
    def __init__(self, progress: Callable[[str], object] | None = None) -> None:
        self.rows: list[dict] = []
        self.progress = progress

    def add(self, group: str, size: int, name: str, seconds: float, baseline: str | None = None) -> None:
        if self.progress is not None:
            self.progress(f"{group} n={size:.0e} {name}: {size / seconds / 1e6:.1f} M values/s")
        self.rows.append(
            {
                "group": group,
                "n": size,
                "name": name,
                "seconds": seconds,
                "mvals_per_s": size / seconds / 1e6,
                "baseline": baseline,
            }
        )

    def ratios(self) -> None:
        """Speedup vs each row's baseline; for weightinit rows also vs the fastest torch / numpy / jax row of
        the same group and size; and every row's percentage of the memory-write rate (the fastest
        ``memory write`` row of its size)."""
        index = {(r["group"], r["n"], r["name"]): r for r in self.rows}
        for r in self.rows:
            base = index.get((r["group"], r["n"], r["baseline"])) if r["baseline"] else None
            r["speedup"] = base["seconds"] / r["seconds"] if base else None
            same = [q for q in self.rows if q["group"] == r["group"] and q["n"] == r["n"]]
            r["vs"] = {}
            if r["name"].startswith("wi"):
                for peer, prefixes in _PEERS.items():
                    times = [q["seconds"] for q in same if q["name"].startswith(prefixes)]
                    if times:
                        r["vs"][peer] = min(times) / r["seconds"]
            fills = [q["seconds"] for q in self.rows if q["group"] == "memory write" and q["n"] == r["n"]]
            ok = fills and r["group"] not in ("orthogonal", "memory write")
            r["pct_memory_write"] = 100.0 * min(fills) / r["seconds"] if ok else None

    def targets(self, simd: str | None, device: str = "cpu") -> list[dict]:
        """The figures of issue 15 with their targets, per size (call after :meth:`ratios`).

        On CPU: the best in-place weightinit row of normal, truncated normal and uniform as a
        percentage of the memory-write rate (normal and truncated normal >= 35% on the AVX-512 path,
        >= 20% otherwise; uniform >= 40%), and each allocating call's speed over the in-place one
        (>= 0.9).  On a GPU: the torch executor against torch's own in-place initializer
        (normal >= 0.9x, uniform >= 0.95x, truncated normal >= 2x).
        """
        out = []
        in_place = ("wi fill_ (executor)", "wi.sample (NumPy out=)")
        for n in sorted({r["n"] for r in self.rows if r["group"] != "orthogonal"}):
            for group in ("normal", "trunc_normal", "uniform"):
                rows = [r for r in self.rows if r["group"] == group and r["n"] == n]
                best = max((r for r in rows if r["name"] in in_place), key=lambda r: r["mvals_per_s"], default=None)
                if best is None:
                    continue
                if device != "cpu":
                    goal = {"normal": 0.9, "uniform": 0.95, "trunc_normal": 2.0}[group]
                    peer = f"torch.nn.init.{group}_"
                    ex = next((r for r in rows if r["name"] == "wi fill_ (executor)" and r["baseline"] == peer), None)
                    if ex is not None and ex.get("speedup"):
                        out.append(
                            {"n": n, "figure": f"{group}: executor vs {peer}", "value": ex["speedup"],
                             "unit": "x", "target": goal, "met": ex["speedup"] >= goal}
                        )  # fmt: skip
                    continue
                if best.get("pct_memory_write") is not None:
                    goal = 40.0 if group == "uniform" else (35.0 if simd == "avx512" else 20.0)
                    pct = best["pct_memory_write"]
                    out.append(
                        {"n": n, "figure": f"{group} in place ({best['name']}), % of memory write", "value": pct,
                         "unit": "%", "target": goal, "met": pct >= goal}
                    )  # fmt: skip
                for r in rows:
                    if r["name"].endswith("(new array)"):
                        ratio = r["mvals_per_s"] / best["mvals_per_s"]
                        out.append(
                            {"n": n, "figure": f"{group}: {r['name']} / in place", "value": ratio, "unit": "x",
                             "target": 0.9, "met": ratio >= 0.9}
                        )  # fmt: skip
        return out

    @staticmethod
    def render_targets(targets: list[dict]) -> str:
        lines = ["| n | figure | measured | target | met |", "|---:|---|---:|---:|---|"]
        for t in targets:
            fmt = "{:.0f}%" if t["unit"] == "%" else "{:.2f}x"
            lines.append(
                f"| {t['n']:.0e} | {t['figure']} | {fmt.format(t['value'])} | >= {fmt.format(t['target'])} "
                f"| {'yes' if t['met'] else 'no'} |"
            )
        return "\n".join(lines)

    def render(self) -> str:
        lines = [
            "| group | n | implementation | M values/s | ms/call | % of memory write | vs torch | vs numpy | vs jax "
            "| weightinit speedup vs |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.rows:
            sp = f"{r['speedup']:.2f}x vs {r['baseline']}" if r.get("speedup") else ""
            pct = f"{r['pct_memory_write']:.0f}%" if r.get("pct_memory_write") is not None else ""
            vs = " | ".join(f"{r['vs'][p]:.2f}x" if p in r.get("vs", {}) else "" for p in _PEERS)
            lines.append(
                f"| {r['group']} | {r['n']:.0e} | {r['name']} | {r['mvals_per_s']:.1f} | {r['seconds'] * 1e3:.3f} "
                f"| {pct} | {vs} | {sp} |"
            )
        return "\n".join(lines)


def _bench_torch(tab: _Table, sizes, orthos, device: str, budget: float) -> None:
    import torch
    import weightinit as wi
    import weightinit.torch as wt
    from weightinit.executors.torch import fill_, orthogonal_

    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    s = wi.Stream(0)
    for n in sizes:
        t = torch.empty(_shape(n), device=device)
        tn = "torch.nn.init"
        rows = [
            (
                "normal",
                f"{tn}.normal_",
                lambda t=t: torch.nn.init.normal_(t),
                "wi fill_ (executor)",
                lambda t=t: fill_(t, wi.Normal(0.0, 1.0), s),
                "wi.torch.normal_",
                lambda t=t: wt.normal_(t, seed=0),
            ),
            (
                "uniform",
                f"{tn}.uniform_",
                lambda t=t: torch.nn.init.uniform_(t),
                "wi fill_ (executor)",
                lambda t=t: fill_(t, wi.Uniform(0.0, 1.0), s),
                "wi.torch.uniform_",
                lambda t=t: wt.uniform_(t, seed=0),
            ),
            (
                "trunc_normal",
                f"{tn}.trunc_normal_",
                lambda t=t: torch.nn.init.trunc_normal_(t),
                "wi fill_ (executor)",
                lambda t=t: fill_(t, wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0), s),
                "wi.torch.trunc_normal_",
                lambda t=t: wt.trunc_normal_(t, seed=0),
            ),
        ]
        for fn in ("xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"):
            rows.append(
                (
                    fn.rstrip("_"),
                    f"{tn}.{fn}",
                    lambda t=t, fn=fn: getattr(torch.nn.init, fn)(t),
                    None,
                    None,
                    f"wi.torch.{fn}",
                    lambda t=t, fn=fn: getattr(wt, fn)(t, seed=0),
                )
            )
        for group, bname, bfn, ename, efn, aname, afn in rows:
            tab.add(group, n, bname, measure(bfn, budget, sync))
            if efn is not None:
                tab.add(group, n, ename, measure(efn, budget, sync), bname)
            if device == "cpu" or group in ("normal", "uniform"):
                tab.add(group, n, aname, measure(afn, budget, sync), bname)
        tab.add(
            "normal",
            n,
            "torch.randn (new tensor)",
            measure(lambda n=n: torch.randn(_shape(n), device=device), budget, sync),
        )
        if device == "cpu":
            tab.add("uniform", n, "torch.rand (new tensor)", measure(lambda n=n: torch.rand(_shape(n)), budget))
            for group, init, base in (
                ("normal", wi.RandomNormal(seed=0), "torch.randn (new tensor)"),
                ("uniform", wi.RandomUniform(seed=0), "torch.rand (new tensor)"),
            ):
                tab.add(
                    group,
                    n,
                    f"wi.{type(init).__name__}()(shape) (new array)",
                    measure(lambda init=init, n=n: init(_shape(n), "float32"), budget),
                    base,
                )
        tab.add("memory write", n, "tensor.fill_(1.0)", measure(lambda t=t: t.fill_(1.0), budget, sync))
        del t
    for m in orthos:
        t = torch.empty(m, m, device=device)
        base = "torch.nn.init.orthogonal_"
        tab.add("orthogonal", m * m, base, measure(lambda t=t: torch.nn.init.orthogonal_(t), budget, sync))
        tab.add(
            "orthogonal",
            m * m,
            "wi orthogonal_ (executor, torch QR)",
            measure(lambda t=t: orthogonal_(t, 1.0, s, layout="torch"), budget, sync),
            base,
        )
        if device == "cpu":
            tab.add(
                "orthogonal",
                m * m,
                "wi.Orthogonal (NumPy QR)",
                measure(lambda m=m: wi.Orthogonal(seed=0)((m, m)), budget),
                base,
            )


def _bench_numpy(tab: _Table, sizes, budget: float) -> None:
    import numpy as np

    import weightinit as wi

    g = np.random.default_rng(0)
    for n in sizes:
        out = np.empty(n, np.float32)
        tab.add(
            "normal",
            n,
            "numpy Generator.standard_normal",
            measure(lambda out=out: g.standard_normal(out=out, dtype=np.float32), budget),
        )
        tab.add(
            "normal",
            n,
            "wi.sample (NumPy out=)",
            measure(
                lambda out=out, n=n: wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (n,), "float32", out=out), budget
            ),
            "numpy Generator.standard_normal",
        )
        tab.add(
            "uniform", n, "numpy Generator.random", measure(lambda out=out: g.random(out=out, dtype=np.float32), budget)
        )
        tab.add(
            "uniform",
            n,
            "wi.sample (NumPy out=)",
            measure(
                lambda out=out, n=n: wi.sample(wi.Uniform(0.0, 1.0), wi.Stream(0), (n,), "float32", out=out), budget
            ),
            "numpy Generator.random",
        )
        tab.add(  # NumPy has no truncated normal: no peer row, the in-place figure only
            "trunc_normal",
            n,
            "wi.sample (NumPy out=)",
            measure(
                lambda out=out, n=n: wi.sample(
                    wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0), wi.Stream(0), (n,), "float32", out=out
                ),
                budget,
            ),
        )
        tab.add("memory write", n, "ndarray.fill(1.0) (1 thread)", measure(lambda out=out: out.fill(1.0), budget))
        del out


def _bench_jax(tab: _Table, sizes, budget: float) -> None:
    import jax.numpy as jnp

    import jax
    import weightinit as wi

    try:
        from weightinit.executors import jax as jex
    except ImportError:  # pragma: no cover - the JAX executor is optional
        jex = None
    key = jax.random.key(0)
    for n in sizes:
        shp = _shape(n)
        normal = jax.jit(lambda k, shp=shp: jax.random.normal(k, shp, jnp.float32))
        uniform = jax.jit(lambda k, shp=shp: jax.random.uniform(k, shp, jnp.float32))
        trunc = jax.jit(lambda k, shp=shp: jax.random.truncated_normal(k, -2.0, 2.0, shp, jnp.float32))
        tab.add("normal", n, "jax.random.normal (jit)", measure(lambda f=normal: f(key).block_until_ready(), budget))
        tab.add("uniform", n, "jax.random.uniform (jit)", measure(lambda f=uniform: f(key).block_until_ready(), budget))
        tab.add(
            "trunc_normal",
            n,
            "jax.random.truncated_normal (jit)",
            measure(lambda f=trunc: f(key).block_until_ready(), budget),
        )
        if jex is not None:
            for group, dist, base in (
                ("normal", wi.Normal(0.0, 1.0), "jax.random.normal (jit)"),
                ("uniform", wi.Uniform(0.0, 1.0), "jax.random.uniform (jit)"),
                (
                    "trunc_normal",
                    wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0),
                    "jax.random.truncated_normal (jit)",
                ),
            ):
                f = jax.jit(lambda k, dist=dist, shp=shp: jex.sample(dist, k, shp, "float32"))
                kw = jnp.asarray(wi.Stream(0).key, jnp.uint32)
                tab.add(
                    group,
                    n,
                    "wi JAX executor (jit)",
                    measure(lambda f=f, kw=kw: f(kw).block_until_ready(), budget),
                    base,
                )


_KERAS_CODE = """
import json, sys, time, statistics
import keras
from weightinit.cli.bench import measure, _shape
sizes, budget = json.loads(sys.argv[1]), float(sys.argv[2])
rows = []
for n in sizes:
    shp = _shape(n)
    for group, init in (("normal", keras.initializers.RandomNormal(seed=0)), ("uniform", keras.initializers.RandomUniform(seed=0)),
                        ("trunc_normal", keras.initializers.TruncatedNormal(seed=0))):
        rows.append((group, n, measure(lambda: keras.ops.convert_to_numpy(init(shp, "float32")), budget)))
print(json.dumps(rows))
"""


def _bench_keras(tab: _Table, sizes, budget: float) -> None:
    for backend in ("numpy", "jax"):
        env = {**os.environ, "KERAS_BACKEND": backend}
        try:
            out = subprocess.run(
                [sys.executable, "-c", _KERAS_CODE, json.dumps(sizes), str(budget)],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
                check=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"keras ({backend}) skipped: {exc}", file=sys.stderr)
            continue
        for group, n, sec in json.loads(out.stdout.strip().splitlines()[-1]):
            tab.add(group, n, f"keras.initializers ({backend} backend, subprocess)", sec)


def needs(args: argparse.Namespace) -> tuple[str, ...]:
    """The optional modules this run imports (checked before it starts by ``weightinit.cli.main``)."""
    return () if "torch" in {x.strip() for x in args.skip.split(",")} else ("torch",)


def _counts(text: str, option: str) -> list[int]:
    """``"1e4,1e6"`` -> ``[10000, 1000000]``; anything else is a one-line CLIError."""
    from weightinit.cli.common import CLIError

    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise CLIError(f"{option} must be comma-separated counts such as 1e4,1e6; got {text!r}") from None
        if not math.isfinite(v) or v < 1 or v != int(v):
            raise CLIError(f"{option} counts must be whole numbers >= 1; got {part.strip()!r} in {text!r}")
        out.append(int(v))
    return out


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args``; prints a Markdown table and optionally writes JSON."""
    import weightinit as wi
    from weightinit.cli.common import Steps, check_output_path

    sizes = _counts(args.sizes, "--sizes")
    orthos = _counts(args.ortho, "--ortho")
    from weightinit.common import validate

    for n in sizes:  # refused before the run, not as an allocator's error halfway through it
        validate.allocation(n, "float32", "--sizes", n)
    for m in orthos:
        validate.allocation(m * m, "float32", "--ortho", m)
    check_output_path(args.json, "--json")
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    if "torch" not in skip:
        from weightinit.cli.common import torch_device

        args.device = torch_device(args.device, "--device")
    threads = wi.get_num_threads() if args.threads is None else args.threads
    wi.set_num_threads(threads)
    try:  # BLAS / OpenMP pools (NumPy's QR, torch) get the same thread count
        from threadpoolctl import threadpool_limits

        _limits = threadpool_limits(threads)  # kept alive for the run
    except ImportError:
        pass
    steps = Steps(None, "bench")  # one line (or a bar on a terminal) per measured row, on stderr
    tab = _Table(steps.advance)
    info = {"threads": threads, "device": args.device, "executor": wi.current_executor().name}
    if hasattr(os, "getloadavg"):  # other work on the machine changes every figure: say how much there was
        info["load_avg_1min_start"] = round(os.getloadavg()[0], 2)
    try:
        from weightinit.executors import compiled as _compiled

        info["simd"] = _compiled.simd()
    except ImportError:  # pragma: no cover
        pass
    if "torch" not in skip:
        import torch

        torch.set_num_threads(threads)
        info["torch"] = torch.__version__
        if args.device.startswith("cuda"):
            info["gpu"] = torch.cuda.get_device_name()
        _bench_torch(tab, sizes, orthos, args.device, args.budget)
    if args.device == "cpu":
        if "numpy" not in skip:
            _bench_numpy(tab, sizes, args.budget)
        if "jax" not in skip:
            try:
                _bench_jax(tab, sizes, args.budget)
            except ImportError as exc:
                print(f"jax skipped: {exc}", file=sys.stderr)
        if "keras" not in skip:
            _bench_keras(tab, sizes, args.budget)
    steps.close()
    if hasattr(os, "getloadavg"):
        info["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    tab.ratios()
    order = {
        g: i
        for i, g in enumerate(
            [
                "normal",
                "uniform",
                "trunc_normal",
                "xavier_uniform",
                "xavier_normal",
                "kaiming_uniform",
                "kaiming_normal",
                "memory write",
                "orthogonal",
            ]
        )
    }
    tab.rows.sort(key=lambda r: (r["n"] if r["group"] != "orthogonal" else math.inf, order.get(r["group"], 99)))
    targets = tab.targets(info.get("simd"), args.device)
    print(f"weightinit bench: {json.dumps(info)}")
    print(tab.render())
    if targets:
        print("\nTargets (issue 15):\n")
        print(tab.render_targets(targets))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "rows": tab.rows, "targets": targets}, f, indent=1)
    return 0
