"""Uses of the public API that pyright must accept, and mistakes it must reject (tests/test_typing.py).

Each ``# pyright: ignore[rule]`` marks a line pyright must report: the configuration turns an
unneeded ignore into an error, so if an annotation stopped catching the mistake the check fails.
Nothing here runs at import (the functions are never called).
"""

from __future__ import annotations

import numpy as np

import weightinit as wi
from weightinit import artifact
from weightinit.common.types import InitializerProtocol
from weightinit.doctor.report import FixReport, LayerStats, Report


def accepted() -> None:
    init: InitializerProtocol = wi.HeNormal(seed=0)
    w: np.ndarray = wi.VarianceScaling(2.0, mode="fan_out", distribution="uniform", seed=1)((4, 3))
    fn: InitializerProtocol = wi.get("glorot_uniform")
    fn((3, 3), "float32")
    init((2, 2))
    wi.calculate_gain("leaky_relu", 0.2)
    wi.generate(init, (4, 4), region=(slice(0, 2),))
    assert w.shape == (4, 3) and wi.get(None) is None
    d: artifact.TensorDigest = wi.fingerprint("he_normal", (8, 4), "float32", wi.Stream(0))
    s: artifact.ShardDigest = wi.fingerprint(
        "he_normal", (8, 4), "float32", wi.Stream(0), shard=[slice(0, 4), slice(None)]
    )
    m: artifact.ModelDigest = wi.fingerprint("gpt2-tiny", "gpt2", 0)
    print(d.hex, s.leaves, m.params, wi.current_executor().name)


def accepted_doctor(model: object, batch: np.ndarray) -> None:
    report: Report = wi.doctor(model, batch, seed=1, input_shape=(8,))
    first: LayerStats = report.layers[0]
    fixed: FixReport = wi.fix(model, "lsuv", batch, tol=0.05, progress=lambda: None)
    analytic: FixReport = wi.fix(model, probe=False)
    scale: float = fixed.scales["0.weight"]
    print(first.q_pred, report.flagged("dead")[0].fix, analytic.after, scale, report.ok)


def rejected() -> None:
    wi.VarianceScaling(mode="fan_sideways")  # pyright: ignore[reportArgumentType]
    wi.VarianceScaling(distribution="cauchy")  # pyright: ignore[reportArgumentType]
    wi.calculate_gain("swish")  # pyright: ignore[reportArgumentType]
    not_an_init: InitializerProtocol = 3  # pyright: ignore[reportAssignmentType]
    wi.generate(3, (2, 2))  # pyright: ignore[reportArgumentType]
    wi.fingerprint("he_normal", (8, 4), "float32", wi.Stream(0)).params  # pyright: ignore[reportAttributeAccessIssue]
    wi.fingerprint("gpt2-tiny", "gpt2", 0).shape  # pyright: ignore[reportAttributeAccessIssue]
    del not_an_init


def rejected_doctor(model: object) -> None:
    wi.fix(model, mode="orthogonal")  # pyright: ignore[reportArgumentType]
    wi.fix(model, tolerance=0.1)  # pyright: ignore[reportCallIssue]
    wi.doctor(model).scales  # pyright: ignore[reportAttributeAccessIssue]
    wi.fix(model).after.layers  # pyright: ignore[reportOptionalMemberAccess]
