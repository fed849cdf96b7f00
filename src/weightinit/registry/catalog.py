"""The catalog of registered initializers: formula, source and framework names (renders docs/catalog.md).

``python -m weightinit.registry.catalog > docs/catalog.md`` regenerates the page; a
test checks that every registered name appears in it.
"""

from __future__ import annotations

from weightinit.registry.api import aliases_of, builtin_classes

__all__ = ["SOURCES", "DIFFERENCES", "render"]

DIFFERENCES = [
    "Truncated normal: `TruncNormal(bounds='std')` (TF/JAX/Haiku/timm `trunc_normal_tf_`) and "
    "`bounds='absolute'` (torch/timm `trunc_normal_`); no framework corrects the variance, "
    "`correct_variance=True` does. All are drawn by inverse CDF: torch >= 2.12 uses rejection sampling "
    "(same distribution, different values).",
    "Sparse: `Sparse` is torch's fraction of zeros per column of `(out, in)` = per input row of the "
    "channels-last `(in, out)`; `MartensSparse` is Martens (2010)'s fixed count of non-zero incoming weights "
    "per output unit (all inputs kept when fewer than `n_nonzero`). Masks come from the stream, so unlike "
    "torch's `sparse_` (whose `randperm` ignores `generator=`) they are reproducible.",
    "Dirac vs delta-orthogonal: `Dirac` puts an identity at centre `k//2` (torch); `DeltaOrthogonal` an "
    "orthogonal matrix at `(k-1)//2` (JAX) and needs in <= out. They differ for even kernels.",
    "VarianceScaling with JAX axes (`in_axis`/`out_axis`/`batch_axis`) keeps Keras' `max(1, fan)` guard "
    "(JAX divides by zero for empty dimensions); the keys appear in `get_config()` only when set.",
    "Complex VarianceScaling follows JAX exactly, including its constant 0.95311164380491208 for the "
    "modulus-truncated normal, so `E|z|^2` is about 1.0186 * scale / fan (as in JAX). Polar complex values use "
    "NumPy's cos/sin (host), not the device executors.",
    "ZerO uses the authors' scale 2^(-m/2) (orthonormal Hadamard); Algorithm 1 of the paper prints "
    "2^(-(m-1)/2). Convolutions get the matrix at the centre tap `k//2`.",
    "Fixup's inner layers default to He with `fan_in` (the paper); the authors' ResNet code uses "
    "`fan_out` (`mode='fan_out'`).",
]

# class name -> (source: paper or framework, framework names that map to it)
SOURCES: dict[str, tuple[str, str]] = {
    "Zeros": ("Keras", "keras `zeros`; torch `zeros_`; JAX/Flax `zeros`; default bias of Keras, Flax, Haiku"),
    "Ones": ("Keras", "keras `ones`; torch `ones_`; JAX/Flax `ones`"),
    "Constant": ("Keras", "keras `Constant`; torch `constant_`; JAX `constant`; Haiku `Constant`"),
    "Identity": ("Keras", "keras `Identity`; torch `eye_` (gain 1)"),
    "STFT": ("Keras", "keras `STFT`"),
    "RandomNormal": ("Keras", "keras `RandomNormal`; torch `normal_`; JAX `normal`; Haiku `RandomNormal`"),
    "RandomUniform": (
        "Keras",
        "keras `RandomUniform` (Keras Embedding default); torch `uniform_`; Haiku `RandomUniform`",
    ),
    "TruncatedNormal": ("Keras", "keras `TruncatedNormal` (+-2 stddev, no correction)"),
    "VarianceScaling": (
        "Keras; JAX (fan_geo_avg, in/out/batch axes, complex)",
        "keras `VarianceScaling`; JAX/Flax `variance_scaling`; Haiku `VarianceScaling`; timm `variance_scaling_`",
    ),
    "GlorotUniform": (
        "Glorot & Bengio, AISTATS 2010",
        "keras `GlorotUniform` (Keras Dense/Conv default); torch `xavier_uniform_`; JAX `glorot_uniform`",
    ),
    "GlorotNormal": ("Glorot & Bengio, AISTATS 2010", "keras `GlorotNormal`; JAX `glorot_normal` (truncated)"),
    "LecunUniform": ("LeCun et al., 1998", "keras `LecunUniform`; JAX `lecun_uniform`"),
    "LecunNormal": (
        "LeCun et al., 1998; Klambauer et al., 2017",
        "keras `LecunNormal`; JAX `lecun_normal` (Flax Dense/Conv default); timm `lecun_normal_`",
    ),
    "HeUniform": ("He et al., ICCV 2015", "keras `HeUniform`; JAX `he_uniform`; torch `kaiming_uniform_` (relu)"),
    "HeNormal": ("He et al., ICCV 2015", "keras `HeNormal`; JAX `he_normal` (truncated)"),
    "Orthogonal": (
        "Saxe et al., ICLR 2014; Mezzadri 2007",
        "keras `Orthogonal`; torch `orthogonal_` (rows = shape[0]); JAX `orthogonal(column_axis)`; Haiku `Orthogonal`",
    ),
    "TruncNormal": ("general (both conventions)", "any truncated normal; see the presets below"),
    "TorchTruncNormal": ("PyTorch", "torch `trunc_normal_`; timm `trunc_normal_`"),
    "TimmTruncNormalTF": ("timm", "timm `trunc_normal_tf_`"),
    "JaxTruncatedNormal": ("JAX", "JAX/Flax `truncated_normal`"),
    "HaikuTruncatedNormal": ("Haiku", "Haiku `TruncatedNormal`"),
    "Dirac": ("PyTorch", "torch `dirac_(groups)`"),
    "DeltaOrthogonal": ("Xiao et al., ICML 2018", "JAX/Flax `delta_orthogonal`"),
    "BatchedIdentity": ("Haiku", "Haiku `Identity`"),
    "UniformScaling": ("Haiku", "Haiku `UniformScaling`"),
    "Sparse": ("PyTorch (after Martens 2010)", "torch `sparse_(sparsity, std)`"),
    "MartensSparse": ("Martens, ICML 2010", "init2winit `SparseInit`"),
    "ZerO": ("Zhao et al., TMLR 2022", "ZerO-initialization `ZerO_Init_on_matrix`"),
    "IRNN": ("Le, Jaitly & Hinton, 2015", "Keras `Identity` / torch `eye_` on a recurrent kernel"),
    "ScaledResidual": (
        "Radford et al. 2019 (GPT-2); Shoeybi et al. 2019 (Megatron-LM)",
        "Megatron `scaled_init_method_normal`; nanoGPT `c_proj` init",
    ),
    "Fixup": ("Zhang, Dauphin & Ma, ICLR 2019", "hongyi-zhang/Fixup"),
    "TFixup": ("Huang, Perez, Ba & Volkovs, ICML 2020", "layer6ai-labs/T-Fixup"),
    "MuP": ("Yang et al., 2022 (Tensor Programs V)", "mup `init.normal_` after `set_base_shapes`; `MuReadout`"),
    "TorchLinearWeight": ("PyTorch", "torch `nn.Linear`/`nn.Conv*` weight: `kaiming_uniform_(a=sqrt(5))`"),
    "TorchLinearBias": ("PyTorch", "torch `nn.Linear`/`nn.Conv*` bias"),
    "TorchEmbedding": ("PyTorch", "torch `nn.Embedding` weight"),
    "FlaxEmbed": ("Flax", "Flax `nn.Embed` default `variance_scaling(1, 'fan_in', 'normal', out_axis=0)`"),
    "HaikuLinear": ("Haiku", "Haiku `hk.Linear`/`hk.ConvND` default weight"),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The Markdown of docs/catalog.md, from the registry."""
    lines = [
        "# Catalog of initializers",
        "",
        "Every initializer `weightinit.get` knows by name, grouped as `weightinit list` groups them.",
        "Kernels are channels-last `(*kernel, in, out)`; the torch adapter maps torch's `(out, in, *kernel)`.",
        "Generated by `python -m weightinit.registry.catalog > docs/catalog.md`; do not edit by hand.",
        "",
        "| Group | Class | Names for `weightinit.get` | Formula | Source | Framework names that map to it |",
        "|---|---|---|---|---|---|",
    ]
    classes = sorted(builtin_classes(), key=lambda c: (getattr(c, "group", "other"), c.__name__))
    for cls in classes:
        source, names = SOURCES.get(cls.__name__, ("", ""))
        aliases = ", ".join(f"`{n}`" for n in aliases_of(cls))
        formula = getattr(cls, "formula", "")
        lines.append(
            f"| {cls.group} | `{cls.__name__}` | {aliases} | {_cell(formula)} | {_cell(source)} | {_cell(names)} |"
        )
    lines += ["", "## Deliberate differences from the source frameworks", ""]
    lines += [f"- {d}" for d in DIFFERENCES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
