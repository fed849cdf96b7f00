"""The doctor for Keras 3 models (any backend): forward and backward statistics, analytic moments, LSUV and
analytic fix.

Scope (honest limits): layers are taken from ``model.layers`` in order and
treated as a chain (Sequential-like MLP/CNN models; functional branches are
not modelled).  Per-layer outputs come from applying the layers one by one in
eager mode.  Gradients use the active backend's autodiff, layer by layer: jax
(``jax.vjp`` of each layer's ``stateless_call``) and torch (autograd); the
numpy backend cannot differentiate and other backends are not wired yet, so
there ``grad_std``/``grad_norms`` stay empty and the report says why in its
notes.  Parameter names are the variables' names (``kernel``, ``bias``).
Weight layers are those with a
``kernel`` (Dense, Conv*, EinsumDense); the kernel is already in Keras layout
``(..., fan_in, fan_out)``, so LSUV's orthogonal pre-init is a plain
:class:`weightinit.Orthogonal` draw.  A Dense/Conv layer with a fused
activation is analysed as the linear map followed by the activation.

The logic is :mod:`weightinit.doctor.chain`'s; this module is its Keras access.
"""

from __future__ import annotations

import numpy as np

from weightinit.doctor.chain import Chain, doctor_chain, fix_chain

__all__ = ["doctor_keras", "fix_keras"]

_SAT = {"tanh": lambda y: np.abs(y) > 0.99, "sigmoid": lambda y: (y < 0.01) | (y > 0.99)}


def _layers(model):
    return [lay for lay in model.layers if type(lay).__name__ != "InputLayer"]


def _np(t) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(t), dtype=np.float64)


def _act_name(layer):
    a = getattr(layer, "activation", None)
    return getattr(a, "__name__", None) if a is not None else None


def _numpy_act(layer):
    from weightinit.initializers.gains import ACTIVATIONS

    name = _act_name(layer)
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    fn = layer.activation
    from keras import ops

    return lambda z: np.asarray(ops.convert_to_numpy(fn(ops.convert_to_tensor(np.asarray(z, np.float32)))), np.float64)


class _Keras(Chain):
    label = "Keras"

    def framework(self) -> str:
        import keras

        return f"keras {keras.__version__} ({keras.backend.backend()})"

    def layers(self) -> list:
        return _layers(self.model)

    def input_shape(self, input_shape) -> tuple:
        shape = input_shape
        if shape is None:
            try:
                shape = tuple(self.model.inputs[0].shape[1:])
            except Exception:
                shape = None
        if shape is None or any(s is None for s in shape):
            from weightinit.common.errors import InitializerValueError

            raise InitializerValueError(
                "Cannot infer the input shape of this Keras model; pass inputs= or input_shape=."
            )
        return shape

    def outputs(self, x):
        # the whole forward first: a failure anywhere is reported against the model, with no layer statistics
        try:
            outs, h = [], x
            for lay in _layers(self.model):
                h = lay(h)
                outs.append((lay, _np(h)))
        except Exception as e:
            return None, ("model", e)
        return outs, None

    def name(self, layer, i: int) -> str:
        return layer.name

    def kind(self, layer) -> str:
        return type(layer).__name__

    def kernel(self, layer):
        k = getattr(layer, "kernel", None)
        return _np(k) if k is not None else None

    def set_kernel(self, layer, k) -> None:
        layer.kernel.assign(k.astype(np.float32))

    def bias_q(self, layer) -> float:
        b = getattr(layer, "bias", None)
        return float(np.mean(_np(b) ** 2)) if b is not None else 0.0

    def activation(self, layer):
        act = _act_name(layer)
        return (_numpy_act(layer), act) if act not in (None, "linear") else None

    def saturation(self, layer):
        return _SAT.get(_act_name(layer))

    def gradients(self, x, cot):
        import keras

        backend = keras.backend.backend()
        if backend == "jax":
            return _grads_jax(_layers(self.model), x, cot)
        if backend == "torch":
            return _grads_torch(_layers(self.model), x, cot)
        if backend == "numpy":
            raise NotImplementedError("Keras's numpy backend cannot differentiate; use KERAS_BACKEND=jax or torch")
        raise NotImplementedError(f"Keras's {backend} backend is not supported by the doctor's backward pass "
                                  "(jax and torch are)")  # fmt: skip

    def rescale_phi(self, layer, after_kernel: bool):
        # the analytic fix follows a kernel's output through the Activation layers after it (a linear one
        # included); Activation layers before the first kernel and other layers leave q alone
        return _numpy_act(layer) if after_kernel and type(layer).__name__ == "Activation" else None

    def start(self, x):
        return x, ()  # lazy: the batch and the layers to replay before the current one

    def advance(self, state, layer):
        x, done = state
        return x, (*done, layer)

    def preactivation(self, state, layer) -> np.ndarray:
        import keras

        h, done = state
        for lay in done:
            h = lay(h)
        act = getattr(layer, "activation", None)
        if act is not None:  # measure the pre-activation of a fused Dense/Conv activation
            layer.activation = keras.activations.linear
        try:
            h = layer(h)
        finally:
            if act is not None:
                layer.activation = act
        return _np(h)


def _param_names(layer) -> list:
    names = [v.name for v in layer.trainable_variables]
    return names if len(set(names)) == len(names) else [v.path for v in layer.trainable_variables]


def _grads_jax(layers, x, cot):
    import jax.numpy as jnp

    import jax

    h, vjps = jnp.asarray(x), []
    for lay in layers:
        tv = [v.value for v in lay.trainable_variables]
        ntv = [v.value for v in lay.non_trainable_variables]
        h, vjp = jax.vjp(lambda t, h, lay=lay, ntv=ntv: lay.stateless_call(t, ntv, h)[0], tv, h)
        vjps.append((lay, vjp, h.dtype))
    g, res = None, []
    for lay, vjp, dtype in reversed(vjps):
        g = jnp.asarray(cot, dtype) if g is None else g.astype(dtype)
        gt, g_in = vjp(g)
        res.append(({n: np.asarray(v) for n, v in zip(_param_names(lay), gt)}, np.asarray(g)))
        g = g_in
    return res[::-1]


def _grads_torch(layers, x, cot):
    import torch

    params = [[v.value for v in lay.trainable_variables] for lay in layers]
    device = next((p.device for ps in params for p in ps), None)
    with torch.enable_grad():
        # the input requires grad so that every layer output does (a layer may return its input as is)
        h, hs = torch.as_tensor(x, device=device).requires_grad_(True), []
        for lay in layers:
            h = lay(h)
            hs.append(h)
        loss = (h * torch.as_tensor(cot, dtype=h.dtype, device=h.device)).sum()
        flat = list({id(p): p for ps in params for p in ps if p.requires_grad}.values())
        got = torch.autograd.grad(loss, flat + hs, allow_unused=True)
    # autograd gives a parameter's total gradient: listed at the layer's first call only (the doctor sums calls)
    by_id, seen, res = {id(p): g for p, g in zip(flat, got[: len(flat)])}, set(), []
    for lay, ps, gy in zip(layers, params, got[len(flat) :]):
        pg = {n: by_id[id(p)].detach().cpu().double().numpy() for n, p in zip(_param_names(lay), ps)
              if by_id.get(id(p)) is not None and id(lay) not in seen}  # fmt: skip
        seen.add(id(lay))
        res.append((pg, gy.detach().cpu().double().numpy() if gy is not None else np.zeros(0)))
    return res


def doctor_keras(model, inputs=None, *, targets=None, seed=0, batch=64, input_shape=None, title="weightinit doctor"):
    return doctor_chain(_Keras(model), inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape,
                        title=title)  # fmt: skip


def fix_keras(
    model,
    mode,
    inputs,
    *,
    target=1.0,
    tol=0.1,
    max_iter=10,
    seed=0,
    batch=64,
    input_shape=None,
    measure=True,
    probe=True,
):
    return fix_chain(_Keras(model), mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed, batch=batch,
                     input_shape=input_shape, measure=measure, probe=probe)  # fmt: skip


# the backend protocol (weightinit.doctor.backends.DoctorBackend)
NAME = "keras"


def doctor(model, inputs=None, *, targets=None, loss_fn=None, analytic=True, seed=0, batch=64, input_shape=None,
           title="weightinit doctor"):  # fmt: skip
    """:func:`weightinit.doctor.api.doctor` for a Keras model (``loss_fn`` and ``analytic=False`` are
    PyTorch-only; the chain always predicts moments)."""
    return doctor_keras(model, inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape, title=title)


def fix(model, mode, inputs=None, *, targets=None, target=1.0, tol=0.1, max_iter=10, orthogonal=True, seed=0,
        batch=64, input_shape=None, measure=True, progress=None, probe=True):  # fmt: skip
    """:func:`weightinit.doctor.api.fix` for a Keras model (LSUV always pre-initializes orthogonally;
    ``targets`` and ``progress`` are PyTorch-only)."""
    return fix_keras(model, mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed, batch=batch,
                    input_shape=input_shape, measure=measure, probe=probe)  # fmt: skip
