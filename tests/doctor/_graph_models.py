"""The same two architectures in PyTorch, Keras (functional and subclassed, jax backend), Flax NNX and Flax Linen,
with the same weights, diagnosed by ``weightinit.doctor`` on the same batch and targets.

Run as a script (Keras fixes its backend at its first import, so tests/doctor/test_graphs.py runs this in one
subprocess with ``KERAS_BACKEND=jax``, and with the argument ``keras`` once more on the torch and on the tensorflow
backend, the Keras ResNet only); prints one JSON object: ``{arch: {variant: {framework: summary}}}``,
each summary the report's flags and, per node, its kind, measured std, predicted second moment and relative
weight gradient.

* ``resnet``: ``stem -> relu``, a residual block ``relu(h + fc2(relu(fc1(h))))``, a side branch
  ``tanh(side(h))``, their concatenation, a ``head``.
* ``transformer``: a pre-LN block ``h = x + attn(ln1(x))``, ``h + fc2(gelu(fc1(ln2(h))))`` (exact GELU,
  LayerNorm epsilon 1e-5 everywhere, two heads), then a ``head``.
* ``cnn`` (healthy only): ``relu(conv1)`` (3x3, zero padding "same"), ``relu(conv2)`` (3x3, stride 2, padding 1),
  a 2x2 max pooling (in Flax the function ``max_pool``, found by value), a ``head``; torch gets the batch NCHW.

Variants: ``healthy`` (fan-in scaled Gaussian weights, zero biases) and ``broken`` (resnet: ``fc1``'s bias at -10
kills its ReLU, ``side``'s at -10 saturates its tanh; transformer: ``fc2`` 300 times too large); the transformer
also ``causal``: the healthy weights with a causal attention mask, given each framework's way (torch
``attn_mask``, Keras ``use_causal_mask=True``, Flax ``mask=make_causal_mask(...)``).
"""

from __future__ import annotations

import functools
import json
import os
import sys

import numpy as np

D, W, S, OUT = 16, 32, 16, 8  # resnet: input, block width, side width, output
E, T, H, F = 16, 8, 2, 32  # transformer: width, tokens, heads, MLP width
B = 64


def _linear(rng, fan_in, fan_out, gain=1.0):
    """Torch layout ``(out, in)`` weight and a zero bias."""
    return (rng.standard_normal((fan_out, fan_in)) * gain / np.sqrt(fan_in)).astype(np.float32), np.zeros(
        fan_out, np.float32
    )


def resnet_weights(variant: str) -> dict:
    rng = np.random.default_rng(0)
    w = {
        "stem": _linear(rng, D, W, np.sqrt(2)),
        "fc1": _linear(rng, W, W, np.sqrt(2)),
        "fc2": _linear(rng, W, W),
        "side": _linear(rng, W, S),
        "head": _linear(rng, W + S, OUT),
    }
    if variant == "broken":
        w["fc1"] = (w["fc1"][0], np.full(W, -10.0, np.float32))
        w["side"] = (w["side"][0], np.full(S, -10.0, np.float32))
    return w


def transformer_weights(variant: str) -> dict:
    rng = np.random.default_rng(1)
    w = {n: _linear(rng, E, E) for n in ("q", "k", "v", "o")}
    w["fc1"] = _linear(rng, E, F, np.sqrt(2))
    w["fc2"] = _linear(rng, F, E, 300.0 if variant == "broken" else 1.0)
    w["head"] = _linear(rng, E, OUT)
    w["causal"] = variant == "causal"
    return w


# ------------------------------------------------------------------------------------------ torch
def torch_resnet(w):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.fc1, self.fc2 = nn.Linear(D, W), nn.Linear(W, W), nn.Linear(W, W)
            self.side, self.head = nn.Linear(W, S), nn.Linear(W + S, OUT)
            self.stem_relu, self.fc1_relu, self.res1_relu, self.side_tanh = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.Tanh()

        def forward(self, x):
            h = self.stem_relu(self.stem(x))
            r = self.res1_relu(h + self.fc2(self.fc1_relu(self.fc1(h))))
            s = self.side_tanh(self.side(h))
            return self.head(torch.cat([r, s], dim=-1))

    return _with_weights(Net(), w)


def _with_weights(m, w):
    """``m`` with each ``w[name] = (weight, bias)`` (torch layout) copied into its submodule ``name``."""
    import torch

    with torch.no_grad():
        for k, (wt, b) in w.items():
            getattr(m, k).weight.copy_(torch.from_numpy(wt))
            getattr(m, k).bias.copy_(torch.from_numpy(b))
    return m


def torch_transformer(w):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(E, eps=1e-5), nn.LayerNorm(E, eps=1e-5)
            self.attn = nn.MultiheadAttention(E, H, batch_first=True)
            self.fc1, self.fc1_gelu, self.fc2, self.head = (
                nn.Linear(E, F),
                nn.GELU(),
                nn.Linear(F, E),
                nn.Linear(E, OUT),
            )

        def forward(self, x):
            a = self.ln1(x)
            mask = torch.ones(T, T, dtype=torch.bool).triu(1) if w["causal"] else None  # (True: not attended)
            h = x + self.attn(a, a, a, need_weights=False, attn_mask=mask)[0]
            h = h + self.fc2(self.fc1_gelu(self.fc1(self.ln2(h))))
            return self.head(h)

    m = Block()
    with torch.no_grad():
        m.attn.in_proj_weight.copy_(torch.from_numpy(np.concatenate([w["q"][0], w["k"][0], w["v"][0]])))
        m.attn.in_proj_bias.copy_(torch.from_numpy(np.concatenate([w["q"][1], w["k"][1], w["v"][1]])))
        m.attn.out_proj.weight.copy_(torch.from_numpy(w["o"][0]))
        m.attn.out_proj.bias.copy_(torch.from_numpy(w["o"][1]))
        for k in ("fc1", "fc2", "head"):
            getattr(m, k).weight.copy_(torch.from_numpy(w[k][0]))
            getattr(m, k).bias.copy_(torch.from_numpy(w[k][1]))
    return m


# ------------------------------------------------------------------------------------------ keras
def _keras_set(layer, wt, b):
    layer.kernel.assign(wt.T)
    layer.bias.assign(b)


def _keras_attention(mha, w):
    for name, dense in (("q", mha._query_dense), ("k", mha._key_dense), ("v", mha._value_dense)):
        dense.kernel.assign(w[name][0].T.reshape(E, H, E // H))
        dense.bias.assign(w[name][1].reshape(H, E // H))
    mha._output_dense.kernel.assign(w["o"][0].T.reshape(H, E // H, E))
    mha._output_dense.bias.assign(w["o"][1])


def keras_resnet(w):
    import keras
    from keras import layers

    x = keras.Input((D,), name="x")
    h = layers.Activation("relu", name="stem_relu")(layers.Dense(W, name="stem")(x))
    f = layers.Dense(W, name="fc2")(layers.Activation("relu", name="fc1_relu")(layers.Dense(W, name="fc1")(h)))
    r = layers.Activation("relu", name="res1_relu")(layers.Add(name="res1")([h, f]))
    s = layers.Activation("tanh", name="side_tanh")(layers.Dense(S, name="side")(h))
    y = layers.Dense(OUT, name="head")(layers.Concatenate(name="cat")([r, s]))
    m = keras.Model(x, y)
    for k, (wt, b) in w.items():
        _keras_set(m.get_layer(k), wt, b)
    return m


def keras_resnet_subclassed(w):
    import keras
    from keras import layers, ops

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.stem, self.fc1, self.fc2 = (
                layers.Dense(W, name="stem"),
                layers.Dense(W, name="fc1"),
                layers.Dense(W, name="fc2"),
            )
            self.side, self.head = layers.Dense(S, name="side"), layers.Dense(OUT, name="head")

        def call(self, x):
            h = ops.relu(self.stem(x))
            r = ops.relu(h + self.fc2(ops.relu(self.fc1(h))))
            return self.head(ops.concatenate([r, ops.tanh(self.side(h))], axis=-1))

    m = Net()
    m(np.zeros((1, D), np.float32))
    for k, (wt, b) in w.items():
        _keras_set(getattr(m, k), wt, b)
    return m


def keras_transformer(w):
    import keras
    from keras import layers

    x = keras.Input((T, E), name="x")
    a = layers.LayerNormalization(epsilon=1e-5, name="ln1")(x)
    mha = layers.MultiHeadAttention(num_heads=H, key_dim=E // H, name="attn")
    h = layers.Add(name="res1")([x, mha(a, a, use_causal_mask=w["causal"])])
    f = layers.Dense(F, name="fc1")(layers.LayerNormalization(epsilon=1e-5, name="ln2")(h))
    h = layers.Add(name="res2")([h, layers.Dense(E, name="fc2")(layers.Activation("gelu", name="fc1_gelu")(f))])
    m = keras.Model(x, layers.Dense(OUT, name="head")(h))
    _keras_attention(mha, w)
    for k in ("fc1", "fc2", "head"):
        _keras_set(m.get_layer(k), *w[k])
    return m


# ------------------------------------------------------------------------------------------ flax
def _nnx_set(lin, wt, b):
    import jax.numpy as jnp

    lin.kernel.set_value(jnp.asarray(wt.T))
    lin.bias.set_value(jnp.asarray(b))


def nnx_resnet(w):
    import jax.numpy as jnp
    from flax import nnx

    import jax

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.stem, self.fc1 = nnx.Linear(D, W, rngs=rngs), nnx.Linear(W, W, rngs=rngs)
            self.fc2, self.side = nnx.Linear(W, W, rngs=rngs), nnx.Linear(W, S, rngs=rngs)
            self.head = nnx.Linear(W + S, OUT, rngs=rngs)

        def __call__(self, x):
            h = jax.nn.relu(self.stem(x))
            r = jax.nn.relu(h + self.fc2(jax.nn.relu(self.fc1(h))))
            return self.head(jnp.concatenate([r, jnp.tanh(self.side(h))], axis=-1))

    m = Net(nnx.Rngs(0))
    for k, (wt, b) in w.items():
        _nnx_set(getattr(m, k), wt, b)
    return m


def nnx_transformer(w):
    import jax.numpy as jnp
    from flax import nnx

    import jax

    gelu = functools.partial(jax.nn.gelu, approximate=False)

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.ln1, self.ln2 = nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs), nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(H, E, decode=False, rngs=rngs)
            self.fc1, self.fc2, self.head = (
                nnx.Linear(E, F, rngs=rngs),
                nnx.Linear(F, E, rngs=rngs),
                nnx.Linear(E, OUT, rngs=rngs),
            )

        def __call__(self, x):
            mask = nnx.make_causal_mask(x[..., 0]) if w["causal"] else None
            h = x + self.attn(self.ln1(x), mask=mask)
            h = h + self.fc2(gelu(self.fc1(self.ln2(h))))
            return self.head(h)

    m = Block(nnx.Rngs(0))
    for name, lin in (("q", m.attn.query), ("k", m.attn.key), ("v", m.attn.value)):
        lin.kernel.set_value(jnp.asarray(w[name][0].T.reshape(E, H, E // H)))
        lin.bias.set_value(jnp.asarray(w[name][1].reshape(H, E // H)))
    m.attn.out.kernel.set_value(jnp.asarray(w["o"][0].T.reshape(H, E // H, E)))
    m.attn.out.bias.set_value(jnp.asarray(w["o"][1]))
    for k in ("fc1", "fc2", "head"):
        _nnx_set(getattr(m, k), *w[k])
    return m


def _linen_params(params, w, names):
    import jax.numpy as jnp
    from flax.core import unfreeze

    params = unfreeze(params)
    for k in names:
        params[k] = {"kernel": jnp.asarray(w[k][0].T), "bias": jnp.asarray(w[k][1])}
    return params


def linen_resnet(w):
    import flax.linen as nn
    import jax.numpy as jnp

    import jax

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(W, name="stem")(x))
            r = nn.relu(h + nn.Dense(W, name="fc2")(nn.relu(nn.Dense(W, name="fc1")(h))))
            s = jnp.tanh(nn.Dense(S, name="side")(h))
            return nn.Dense(OUT, name="head")(jnp.concatenate([r, s], axis=-1))

    net = Net()
    v = net.init(jax.random.key(0), jnp.zeros((1, D)))
    return net.bind({"params": _linen_params(v["params"], w, w)})


def linen_transformer(w):
    import flax.linen as nn
    import jax.numpy as jnp

    import jax

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            a = nn.LayerNorm(epsilon=1e-5, name="ln1")(x)
            mask = nn.make_causal_mask(x[..., 0]) if w["causal"] else None
            h = x + nn.MultiHeadDotProductAttention(num_heads=H, name="attn")(a, a, mask=mask)
            f = nn.gelu(nn.Dense(F, name="fc1")(nn.LayerNorm(epsilon=1e-5, name="ln2")(h)), approximate=False)
            h = h + nn.Dense(E, name="fc2")(f)
            return nn.Dense(OUT, name="head")(h)

    net = Block()
    v = net.init(jax.random.key(0), jnp.zeros((1, T, E)))
    p = _linen_params(v["params"], w, ("fc1", "fc2", "head"))
    for name, key in (("q", "query"), ("k", "key"), ("v", "value")):
        p["attn"][key] = {"kernel": jnp.asarray(w[name][0].T.reshape(E, H, E // H)),
                          "bias": jnp.asarray(w[name][1].reshape(H, E // H))}  # fmt: skip
    p["attn"]["out"] = {"kernel": jnp.asarray(w["o"][0].T.reshape(H, E // H, E)), "bias": jnp.asarray(w["o"][1])}
    return net.bind({"params": p})


# ------------------------------------------------------------------------------------------ cnn (padding, max pooling)
HW, CH, CW = 5, 3, 8  # cnn: input 5 x 5 x 3, 8 channels: conv 3x3 "same", conv 3x3 stride 2 pad 1, relu, 2x2 max pool


def cnn_weights(variant: str) -> dict:
    """Torch layout ``(out, in, kh, kw)`` conv weights (He scale, small biases) and the head's ``(out, in)``."""
    rng = np.random.default_rng(4)
    conv = lambda cin: (rng.standard_normal((CW, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)  # noqa: E731
    return {"conv1": (conv(CH), (0.1 * rng.standard_normal(CW)).astype(np.float32)),
            "conv2": (conv(CW), (0.1 * rng.standard_normal(CW)).astype(np.float32)),
            "head": _linear(rng, CW, OUT)}  # fmt: skip


def torch_cnn(w):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1 = nn.Conv2d(CH, CW, 3, padding=1), nn.ReLU()
            self.conv2, self.relu2 = nn.Conv2d(CW, CW, 3, stride=2, padding=1), nn.ReLU()
            self.pool, self.head = nn.MaxPool2d(2), nn.Linear(CW, OUT)

        def forward(self, x):
            return self.head(torch.flatten(self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x))))), 1))

    return _with_weights(Net(), w)


def keras_cnn(w):
    import keras
    from keras import layers

    x = keras.Input((HW, HW, CH), name="x")
    h = layers.Activation("relu", name="relu1")(layers.Conv2D(CW, 3, padding="same", name="conv1")(x))
    h = layers.Activation("relu", name="relu2")(layers.Conv2D(CW, 3, strides=2, padding="same", name="conv2")(h))
    m = keras.Model(
        x, layers.Dense(OUT, name="head")(layers.Flatten(name="flat")(layers.MaxPooling2D(2, name="pool")(h)))
    )
    for k in ("conv1", "conv2"):
        m.get_layer(k).kernel.assign(w[k][0].transpose(2, 3, 1, 0))
        m.get_layer(k).bias.assign(w[k][1])
    _keras_set(m.get_layer("head"), *w["head"])
    return m


def nnx_cnn(w):
    import jax.numpy as jnp
    from flax import nnx

    import jax

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(CH, CW, (3, 3), padding="SAME", rngs=rngs)
            self.conv2 = nnx.Conv(CW, CW, (3, 3), strides=2, padding=1, rngs=rngs)
            self.head = nnx.Linear(CW, OUT, rngs=rngs)

        def __call__(self, x):
            h = nnx.max_pool(jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x)))), (2, 2), (2, 2))
            return self.head(h.reshape(len(h), -1))

    m = Net(nnx.Rngs(0))
    for k in ("conv1", "conv2"):
        getattr(m, k).kernel.set_value(jnp.asarray(w[k][0].transpose(2, 3, 1, 0)))
        getattr(m, k).bias.set_value(jnp.asarray(w[k][1]))
    _nnx_set(m.head, *w["head"])
    return m


def linen_cnn(w):
    import flax.linen as nn
    import jax.numpy as jnp

    import jax

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Conv(CW, (3, 3), padding="SAME", name="conv1")(x))
            h = nn.relu(nn.Conv(CW, (3, 3), strides=2, padding=1, name="conv2")(h))
            h = nn.max_pool(h, (2, 2), (2, 2))
            return nn.Dense(OUT, name="head")(h.reshape(len(h), -1))

    net = Net()
    v = net.init(jax.random.key(0), jnp.zeros((1, HW, HW, CH)))
    p = _linen_params(v["params"], w, ("head",))
    for k in ("conv1", "conv2"):
        p[k] = {"kernel": jnp.asarray(w[k][0].transpose(2, 3, 1, 0)), "bias": jnp.asarray(w[k][1])}
    return net.bind({"params": p})


BUILDERS = {
    "resnet": (resnet_weights, {"torch": torch_resnet, "keras": keras_resnet, "keras_subclassed": keras_resnet_subclassed,
                                "nnx": nnx_resnet, "linen": linen_resnet}),
    "transformer": (transformer_weights, {"torch": torch_transformer, "keras": keras_transformer,
                                          "nnx": nnx_transformer, "linen": linen_transformer}),
    "cnn": (cnn_weights, {"torch": torch_cnn, "keras": keras_cnn, "nnx": nnx_cnn, "linen": linen_cnn}),
}  # fmt: skip


def _f(v):
    return None if v is None or not np.isfinite(v) else float(v)


def summary(rep) -> dict:
    return {
        "flags": sorted([f.kind, f.layer, f.severity] for f in rep.flags),
        "layers": [
            {
                "name": s.name,
                "kind": s.kind,
                "std": _f(s.std),
                "q": _f(s.q),
                "q_pred": _f(s.q_pred),
                "rel_grad": _f(s.rel_grad),
                "grad_std": _f(s.grad_std),
                "shape": list(s.shape),
            }
            for s in rep.layers
        ],
        "notes": list(rep.notes),
        "framework": rep.framework,
    }


def graph_of(model, x) -> dict:
    """The captured graph (Keras/Flax): per node its inputs by name, the predicted ``(mean, second moment)`` with
    the measured cross moments at adds (``pred``; ``cross``: per add, its source node and Jacobian term) and with
    the in-expectation ones (``pred_expected``); for torch, the analysis' predicted second moment per node as the
    doctor runs it (torch.fx's graph; the recorded forward pass for a model with nn.MultiheadAttention), measured
    (``fx``) and in expectation (``fx_expected``)."""
    from weightinit.doctor.api import backend_for, framework_of

    if framework_of(model) == "torch":
        from weightinit.doctor.analytic import analyze_torch
        from weightinit.doctor.backends.torchgraph import analyze_recorded

        def run(cross):
            return {
                s.name: _f(s.q_pred) for s in analyze_torch(model, x, cross=cross, recorded=analyze_recorded)[0].layers
            }

        return {"fx": run("measured"), "fx_expected": run("expected")}
    from weightinit.doctor.graph import _x_moments, measured_cross, propagate

    gm = backend_for(model).adapter(model)
    g = gm.capture(x)
    notes: list = []
    cross = measured_cross(gm, g, x, notes=notes)
    pred = propagate(g, _x_moments(x, x), cross=cross)
    expected = propagate(g, _x_moments(x, x))
    adds = [i for i, n in enumerate(g.nodes) if n.op == "add"]
    return {"edges": {n.name: [g.nodes[j].name for j in n.inputs] for n in g.nodes},
            "args": {n.name: [g.nodes[j].name for j in n.args()] for n in g.nodes if n.call_inputs is not None},
            "masks": {n.name: n.attn[3].tolist() for n in g.nodes if n.op == "mix" and len(n.attn) > 3},
            "ops": {n.name: n.op for n in g.nodes},
            "pred": {n.name: [float(p[0]), float(p[1])] for n, p in zip(g.nodes, pred)},
            "pred_expected": {n.name: [float(p[0]), float(p[1])] for n, p in zip(g.nodes, expected)},
            "cross": {g.nodes[i].name: [g.nodes[c[0]].name, c[1]] for i in adds if (c := cross(i)) is not None},
            "cross_notes": notes}  # fmt: skip


def batch_for(arch: str):
    """The batch and MSE targets every framework gets."""
    shape = {"resnet": (D,), "cnn": (HW, HW, CH)}.get(arch, (T, E))
    oshape = (T, OUT) if arch == "transformer" else (OUT,)
    rng = np.random.default_rng(2)
    return rng.standard_normal((B, *shape)).astype(np.float32), rng.standard_normal((B, *oshape)).astype(np.float32)


def keras_two_in_two_out():
    """A functional model with two inputs (an image, a vector) and two outputs: Conv2D, BatchNormalization,
    global average and max pooling, Flatten, a concatenation of the two branches."""
    import keras
    from keras import layers

    img, vec = keras.Input((6, 6, 3), name="img"), keras.Input((5,), name="vec")
    h = layers.Activation("relu", name="conv_relu")(
        layers.BatchNormalization(name="bn")(layers.Conv2D(8, 3, padding="same", name="conv")(img))
    )
    c = layers.Concatenate(name="cat")(
        [layers.GlobalAveragePooling2D(name="gap")(h), layers.Dense(8, name="vec_fc")(vec)]
    )
    o2 = layers.Dense(2, name="out2")(layers.Flatten(name="flat")(layers.MaxPooling2D(name="maxp")(h)))
    return keras.Model([img, vec], [layers.Dense(3, name="out1")(c), o2])


def keras_only() -> dict:
    """The Keras ResNet (functional and subclassed) alone, for a second Keras backend; and the two-input,
    two-output model, measured and fixed by LSUV."""
    import weightinit as wi

    x, t = batch_for("resnet")
    w = resnet_weights("healthy")
    out = {}
    for fw in ("keras", "keras_subclassed"):
        m = BUILDERS["resnet"][1][fw](w)
        out[fw] = {**summary(wi.doctor(m, x, targets=t)), **graph_of(m, x)}
    rng = np.random.default_rng(3)
    xs = (rng.standard_normal((B, 6, 6, 3)).astype(np.float32), rng.standard_normal((B, 5)).astype(np.float32))
    m = keras_two_in_two_out()
    rep = wi.doctor(m, xs)
    f = wi.fix(m, "lsuv", xs)
    out["two_in_two_out"] = {**summary(rep), **graph_of(m, xs), "loss": _f(rep.loss), "scales": f.scales,
                             "after": summary(f.after)}  # fmt: skip
    return out


def main() -> dict:
    import weightinit as wi

    if sys.argv[1:] == ["keras"]:
        return keras_only()
    out: dict = {}
    for arch, (weights, builders) in BUILDERS.items():
        x, t = batch_for(arch)
        variants = {"cnn": ("healthy",), "transformer": ("healthy", "broken", "causal")}.get(
            arch, ("healthy", "broken")
        )
        for variant in variants:
            w = weights(variant)
            for fw, build in builders.items():
                m = build(w)
                xf = x.transpose(0, 3, 1, 2).copy() if arch == "cnn" and fw == "torch" else x  # (torch: NCHW)
                rep = wi.doctor(m, xf, targets=t)
                out.setdefault(arch, {}).setdefault(variant, {})[fw] = {**summary(rep), **graph_of(m, xf)}
    return out


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")  # here only: importing this module for its builders sets nothing
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    json.dump(main(), sys.stdout)
