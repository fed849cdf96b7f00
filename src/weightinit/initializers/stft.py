"""STFT kernels: the DFT basis (times a window) as a convolution kernel."""

from __future__ import annotations

import numpy as np

from weightinit.common.dtypes import require_float
from weightinit.common.errors import InitializerValueError, peer_error, type_error, value_error
from weightinit.common.validate import boolean
from weightinit.initializers.base import BuiltinInitializer
from weightinit.initializers.names import builtin

__all__ = ["STFT", "get_window"]

_NATIVE = ("hann", "hamming")


def get_window(window: str, length: int, periodic: bool) -> np.ndarray:
    """Window of ``length`` samples: Hann and Hamming natively, other names through SciPy."""
    if window in _NATIVE:
        n = length if periodic else length - 1
        if length == 1:
            return np.ones(1)
        k = np.arange(length)
        a = 0.5 if window == "hann" else 0.54
        return a - (1 - a) * np.cos(2.0 * np.pi * k / n)
    from scipy.signal import get_window as scipy_window  # optional dependency

    return np.asarray(scipy_window(window, length, fftbins=periodic), dtype=np.float64)


@builtin("STFTInitializer")
class STFT(BuiltinInitializer):
    """Kernel of a short-time Fourier transform, for a ``(frame_length, channels, fft_bins)`` shape.

    Formula: with ``N = 2 (fft_bins - 1)``, ``w[t, c, f] = cos(-2 pi t f / N)``
    (``side="real"``) or ``sin(-2 pi t f / N)`` (``side="imag"``), times
    ``window[t] / scaling`` where scaling is ``sqrt(sum(window**2))``
    (``"density"``), ``sum(|window|)`` (``"spectrum"``) or 1 (``None``).  Computed
    in float64 and cast.  Hann and Hamming windows are built in; other window
    names need SciPy (``scipy.signal.get_window``).

    Args:
      side: ``"real"`` (default) or ``"imag"``.
      window: a window name (default ``"hann"``), an array of ``frame_length`` values, or None.
      scaling: ``"density"`` (default), ``"spectrum"`` or None.
      periodic: periodic (True) or symmetric (False, default) window.

    >>> import weightinit as wi
    >>> wi.STFT(window=None)((4, 1, 3))[:, 0, 0].tolist()
    [1.0, 1.0, 1.0, 1.0]
    """

    group = "signal"
    formula = "w[t, c, f] = window[t] / scaling * cos|sin(-2 pi t f / (2 (F - 1)))"
    elementwise = False

    def __init__(self, side="real", window="hann", scaling="density", periodic=False) -> None:
        periodic = boolean("periodic", periodic)
        if not isinstance(side, str) or side not in ("real", "imag"):
            raise peer_error(InitializerValueError, "`side` should be 'real' or 'imag'", "side", side)
        if scaling is not None and (not isinstance(scaling, str) or scaling not in ("density", "spectrum")):
            raise peer_error(
                InitializerValueError,
                "Scaling is invalid, `scaling` must be None, 'density' or 'spectrum'",
                "scaling",
                scaling,
            )
        if isinstance(window, str):
            if window not in _NATIVE:
                try:
                    get_window(window, 4, bool(periodic))
                except ImportError:
                    raise value_error(
                        "window",
                        window,
                        "needs SciPy (only 'hann' and 'hamming' are built in)",
                        "Install scipy or pass the window as an array.",
                    ) from None
                except ValueError as e:
                    raise value_error("window", window, f"is not a window SciPy knows ({e})") from None
        elif window is not None:
            try:
                arr = np.asarray(window, dtype=np.float64)
            except (TypeError, ValueError):
                raise type_error(
                    "window", window, "must be a 1-D array of finite values, a window name, or None"
                ) from None
            if arr.ndim != 1 or not np.isfinite(arr).all():
                raise value_error("window", window, "must be a 1-D array of finite values, a window name, or None")
        self.side = side
        self.window = window
        self.scaling = scaling
        self.periodic = periodic

    def _check_dtype(self, dtype):
        return require_float(dtype, "STFT")

    def _check_shape(self, shape):
        if len(shape) != 3:
            raise InitializerValueError(
                f"STFT kernels have shape (frame_length, channels, fft_bins); received shape={shape} of rank "
                f"{len(shape)}."
            )

    def _generate(self, shape, dtype, region, stream):
        frame_length, _channels, bins = shape
        n = (bins - 1) * 2
        t = np.arange(frame_length, dtype=np.float64).reshape(-1, 1, 1)
        f = np.arange(bins, dtype=np.float64).reshape(1, 1, -1) / (n if n else 1)
        args = -2.0 * t * f * np.pi
        kernel = np.cos(args) if self.side == "real" else np.sin(args)
        if self.window is not None:
            win = (
                get_window(self.window, frame_length, bool(self.periodic))
                if isinstance(self.window, str)
                else np.asarray(self.window, dtype=np.float64)
            )
            if win.shape != (frame_length,):
                raise peer_error(
                    InitializerValueError,
                    f"The shape of `window` must be equal to [frame_length] = [{frame_length}]",
                    "window.shape",
                    win.shape,
                )
            scale = 1.0
            if self.scaling == "density":
                scale = float(np.sqrt(np.sum(win**2)))
            elif self.scaling == "spectrum":
                scale = float(np.sum(np.abs(win)))
            kernel = kernel * win.reshape(-1, 1, 1) / scale
        return np.ascontiguousarray(np.broadcast_to(kernel, shape)).astype(dtype)

    def get_config(self) -> dict:
        window = self.window
        if window is not None and not isinstance(window, str):
            window = np.asarray(window).tolist()
        return {"side": self.side, "window": window, "periodic": self.periodic, "scaling": self.scaling}
