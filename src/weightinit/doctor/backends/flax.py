"""The doctor for Flax NNX models: forward and backward statistics, analytic moments, LSUV and analytic fix.

Scope (honest limits): an ``nnx.Sequential`` (or any module with a ``layers``
list) whose items are NNX modules or plain callables (``jax.nn.relu``, a
user's own function), analysed as a chain.  Weight layers are those with a
``kernel`` parameter (``nnx.Linear``, ``nnx.Conv``), in Flax/Keras layout
``(..., fan_in, fan_out)``.  Gradients: ``jax.vjp`` layer by layer, each NNX
module split into its ``nnx.Param`` state (differentiated) and the rest, so
``grad_norms`` is keyed by the parameter's path in its layer (``kernel``,
``bias``); the model itself is not changed.  Linen models are
not supported yet (use ``capture_intermediates`` yourself).

The logic is :mod:`weightinit.doctor.chain`'s; this module is its Flax access.
"""

from __future__ import annotations

import numpy as np

from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.doctor.chain import Chain, doctor_chain, fix_chain

__all__ = ["doctor_flax", "fix_flax"]


def _get(var):
    return var.get_value() if hasattr(var, "get_value") else var.value


def _set(var, arr) -> None:
    if hasattr(var, "set_value"):
        var.set_value(arr)
    else:  # pragma: no cover - older flax
        var.value = arr


def _layers(model):
    layers = getattr(model, "layers", None)
    if layers is None:
        raise InitializerTypeError(
            f"The Flax doctor supports nnx.Sequential-like modules (with a `layers` list); got {type(model).__name__}."
        )
    return list(layers)


def _phi(layer):
    import jax.numpy as jnp

    return lambda z: np.asarray(layer(jnp.asarray(np.asarray(z, np.float32))), np.float64)


class _Flax(Chain):
    label = "Flax"
    seed_by_key = True

    def framework(self) -> str:
        import flax

        return f"flax {flax.__version__} (nnx)"

    def layers(self) -> list:
        return _layers(self.model)

    def input_shape(self, input_shape) -> tuple:
        if input_shape is None:
            first = _layers(self.model)[0]
            k = getattr(first, "kernel", None)
            if k is None or np.ndim(_get(k)) != 2:
                raise InitializerValueError("Cannot infer the input shape; pass inputs= or input_shape=.")
            input_shape = (_get(k).shape[0],)
        return input_shape

    def outputs(self, x):
        # layer by layer: a failure is reported against its layer, after the statistics of the layers before it
        outs, h = [], x
        for i, lay in enumerate(_layers(self.model)):
            try:
                h = lay(h)
            except Exception as e:
                return outs, (self.name(lay, i), e)
            outs.append((lay, np.asarray(h, dtype=np.float64)))
        return outs, None

    def name(self, layer, i: int) -> str:
        return f"{i}:{getattr(layer, '__name__', type(layer).__name__)}"

    def kind(self, layer) -> str:
        return type(layer).__name__ if hasattr(layer, "kernel") else getattr(layer, "__name__", "fn")

    def kernel(self, layer):
        return np.asarray(_get(layer.kernel), dtype=np.float64) if hasattr(layer, "kernel") else None

    def set_kernel(self, layer, k) -> None:
        import jax.numpy as jnp

        _set(layer.kernel, jnp.asarray(k, jnp.float32))

    def bias_q(self, layer) -> float:
        b = getattr(layer, "bias", None)
        return float(np.mean(np.asarray(_get(b), np.float64) ** 2)) if b is not None and _get(b) is not None else 0.0

    def activation(self, layer):
        # a layer without a kernel is taken as an elementwise function
        if hasattr(layer, "kernel") or not callable(layer):
            return None
        return _phi(layer), self.kind(layer)

    def gradients(self, x, cot):
        import jax.numpy as jnp
        from flax import nnx

        import jax

        h, vjps = jnp.asarray(x), []
        for lay in _layers(self.model):
            if isinstance(lay, nnx.Module):
                gd, params, rest = nnx.split(lay, nnx.Param, ...)
                h, vjp = jax.vjp(lambda p, h, gd=gd, rest=rest: nnx.merge(gd, p, rest)(h), params, h)
            else:
                h, vjp = jax.vjp(lambda p, h, lay=lay: lay(h), {}, h)
            vjps.append((vjp, h.dtype))
        g, res = None, []
        for vjp, dtype in reversed(vjps):
            g = jnp.asarray(cot, dtype) if g is None else g.astype(dtype)
            gp, g_in = vjp(g)
            names = nnx.to_flat_state(gp) if isinstance(gp, nnx.State) else []
            res.append(({".".join(map(str, k)): np.asarray(_get(v)) for k, v in names}, np.asarray(g)))
            g = g_in
        return res[::-1]

    def start(self, x):
        import jax.numpy as jnp

        return jnp.asarray(x)  # eager: the current layer's input

    def advance(self, state, layer):
        return layer(state)

    def preactivation(self, state, layer) -> np.ndarray:
        return np.asarray(layer(state), np.float64)


def doctor_flax(model, inputs=None, *, targets=None, seed=0, batch=64, input_shape=None, title="weightinit doctor"):
    return doctor_chain(_Flax(model), inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape,
                        title=title)  # fmt: skip


def fix_flax(
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
    return fix_chain(_Flax(model), mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed, batch=batch,
                     input_shape=input_shape, measure=measure, probe=probe)  # fmt: skip


# the backend protocol (weightinit.doctor.backends.DoctorBackend)
NAME = "flax"


def doctor(model, inputs=None, *, targets=None, loss_fn=None, analytic=True, seed=0, batch=64, input_shape=None,
           title="weightinit doctor"):  # fmt: skip
    """:func:`weightinit.doctor.api.doctor` for a Flax model (``loss_fn`` and ``analytic=False`` are
    PyTorch-only; the chain always predicts moments)."""
    return doctor_flax(model, inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape, title=title)


def fix(model, mode, inputs=None, *, targets=None, target=1.0, tol=0.1, max_iter=10, orthogonal=True, seed=0,
        batch=64, input_shape=None, measure=True, progress=None, probe=True):  # fmt: skip
    """:func:`weightinit.doctor.api.fix` for a Flax model (LSUV always pre-initializes orthogonally;
    ``targets`` and ``progress`` are PyTorch-only)."""
    return fix_flax(model, mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed, batch=batch,
                    input_shape=input_shape, measure=measure, probe=probe)  # fmt: skip
