"""weightinit for PyTorch: drop-in ``torch.nn.init`` functions and whole-model ``initialize``.

Importing this module imports torch; the core package never does.

* Every ``torch.nn.init`` function with the same name, signature, defaults
  and semantics, plus ``seed=``; values come from weightinit's counter-based
  stream, so they are the same on every device and framework.
* :func:`initialize` initializes a whole model by a recipe (rules), one
  stream per parameter path, and returns an :class:`InitReport`.

>>> import torch, weightinit.torch as wt
>>> w = wt.kaiming_normal_(torch.empty(64, 32), nonlinearity="relu", seed=0)
>>> bool((wt.kaiming_normal_(torch.empty(64, 32), nonlinearity="relu", seed=0) == w).all())
True
"""

from weightinit.torch.functions import (
    calculate_gain,
    constant,
    constant_,
    dirac,
    dirac_,
    eye,
    eye_,
    kaiming_normal,
    kaiming_normal_,
    kaiming_uniform,
    kaiming_uniform_,
    normal,
    normal_,
    ones_,
    orthogonal,
    orthogonal_,
    sparse,
    sparse_,
    trunc_normal_,
    uniform,
    uniform_,
    xavier_normal,
    xavier_normal_,
    xavier_uniform,
    xavier_uniform_,
    zeros_,
)
from weightinit.torch.model_init.apply import InitPlan, OwnInitParam, ParamPlan, initialize, plan
from weightinit.torch.model_init.facts import ParamInfo
from weightinit.torch.model_init.recipes import RECIPES
from weightinit.torch.model_init.report import InitReport, ParamRecord
from weightinit.torch.model_init.rules import PerParameter
from weightinit.torch.roles import ResidualInfo, find_residual_projections

__all__ = [
    # torch.nn.init drop-ins
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
    # deprecated aliases (FutureWarning, as torch)
    "uniform",
    "normal",
    "constant",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
    # whole-model initialization
    "initialize",
    "plan",
    "InitPlan",
    "ParamPlan",
    "OwnInitParam",
    "InitReport",
    "ParamRecord",
    "ParamInfo",
    "PerParameter",
    "RECIPES",
    "find_residual_projections",
    "ResidualInfo",
]


def __getattr__(name: str):
    # ``PRESETS`` is the weightinit 0.1 name of ``RECIPES`` (kept for one minor version, with a warning).
    if name == "PRESETS":
        from weightinit.torch.model_init import recipes

        return recipes.__getattr__("PRESETS")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
