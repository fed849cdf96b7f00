"""dtype handling: names, NumPy/ml_dtypes objects and framework dtypes to one NumPy dtype."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from weightinit.common.errors import InitializerTypeError, value_error

__all__ = [
    "standardize_dtype",
    "floatx",
    "set_floatx",
    "is_float",
    "is_complex",
    "compute_dtype",
    "require_float",
    "require_numeric",
    "FLOAT_DTYPES",
    "real_dtype_of",
    "FLOAT8_DTYPES",
    "float8_e4m3fn",
    "float8_e5m2",
]

bfloat16 = np.dtype(ml_dtypes.bfloat16)
float8_e4m3fn = np.dtype(ml_dtypes.float8_e4m3fn)
float8_e5m2 = np.dtype(ml_dtypes.float8_e5m2)
FLOAT8_DTYPES = (float8_e4m3fn, float8_e5m2)
"""The 8-bit float outputs (OCP FP8): computed in float32, rounded once (weightinit.random.float8)."""
FLOAT_DTYPES = (np.dtype(np.float16), bfloat16, np.dtype(np.float32), np.dtype(np.float64), *FLOAT8_DTYPES)
_FLOATX_DTYPES = FLOAT_DTYPES[:4]
_ML_DTYPES = {"bfloat16": bfloat16, "float8_e4m3fn": float8_e4m3fn, "float8_e5m2": float8_e5m2}
_FLOATX = {"dtype": np.dtype(np.float32)}
_ALIASES = {
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "bf16": "bfloat16",
    "fp8_e4m3": "float8_e4m3fn",
    "fp8_e4m3fn": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "fp16": "float16",
    "fp32": "float32",
    "fp64": "float64",
    "cfloat": "complex64",
    "cdouble": "complex128",
}


def floatx() -> np.dtype:
    """The default float dtype used when ``dtype=None`` (float32 unless :func:`set_floatx` changed it)."""
    return _FLOATX["dtype"]


def set_floatx(dtype) -> None:
    """Set the default float dtype (one of float16, bfloat16, float32, float64)."""
    dt = standardize_dtype(dtype)
    if dt not in _FLOATX_DTYPES:
        raise value_error("dtype", dtype, "must be one of float16, bfloat16, float32, float64")
    _FLOATX["dtype"] = dt


def standardize_dtype(dtype) -> np.dtype:
    """Turn a dtype-like into a NumPy dtype weightinit supports (see :func:`_standardize`).

    Extended precisions (``float128``/``longdouble``, ``complex256``) are
    refused: their layout differs between platforms, so no initializer can
    give the same bits in them everywhere.
    """
    dt = _standardize(dtype)
    if (dt.kind == "f" and dt.itemsize > 8) or (dt.kind == "c" and dt.itemsize > 16):
        raise value_error(
            "dtype",
            dtype,
            f"is {dt.name}, an extended precision weightinit does not support (its layout differs between platforms)",
            "Use float64 or complex128.",
        )
    return dt


def _standardize(dtype) -> np.dtype:
    """Turn a dtype-like into a NumPy dtype.

    Accepts ``None`` (the default float, float32), names (``"float32"``,
    ``"bfloat16"``, ``"torch.float16"``, ``"fp32"``, ``"float8_e4m3fn"``), NumPy dtypes and scalar
    types, ``ml_dtypes.bfloat16``, and framework dtypes by name (``torch.float32``,
    ``jnp.bfloat16``, ``tf.float32``).

    >>> standardize_dtype("bfloat16").name
    'bfloat16'
    >>> standardize_dtype(None).name
    'float32'
    """
    if dtype is None:
        return floatx()
    if isinstance(dtype, np.dtype):
        return dtype
    name = None
    if isinstance(dtype, str):
        name = dtype
    elif type(dtype).__module__.startswith(("torch", "tensorflow")) or hasattr(dtype, "is_floating_point"):
        name = str(dtype)
    if name is not None:
        name = name.split(".")[-1].strip().lower()
        name = _ALIASES.get(name, name)
        if name in _ML_DTYPES:
            return _ML_DTYPES[name]
        try:
            return np.dtype(name)
        except TypeError:
            raise InitializerTypeError(
                f"`dtype` is not a dtype weightinit knows; received dtype={dtype!r}. "
                "Use a name such as 'float32', 'bfloat16' or 'float16', or a NumPy dtype."
            ) from None
    try:
        return np.dtype(dtype)
    except TypeError:
        inner = getattr(dtype, "dtype", None)
        if inner is not None and inner is not dtype:
            return _standardize(inner)
        raise InitializerTypeError(
            f"`dtype` is not a dtype weightinit knows; received dtype={dtype!r} of type {type(dtype).__name__}."
        ) from None


def is_float(dt: np.dtype) -> bool:
    return dt in FLOAT_DTYPES


def is_complex(dt: np.dtype) -> bool:
    return dt.kind == "c"


def compute_dtype(dt: np.dtype) -> np.dtype:
    """The precision a value of dtype ``dt`` is computed in: float64 for float64/complex128, else float32."""
    if dt == np.float64 or dt == np.complex128:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def require_float(dtype, who: str, allow_complex: bool = False) -> np.dtype:
    """Standardize ``dtype`` and check it is a float dtype (random initializers)."""
    dt = standardize_dtype(dtype)
    if is_float(dt) or (allow_complex and dt in (np.complex64, np.complex128)):
        return dt
    allowed = "float16, bfloat16, float32, float64, float8_e4m3fn or float8_e5m2" + (
        ", complex64 or complex128" if allow_complex else ""
    )
    raise value_error(
        "dtype",
        dt.name,
        f"must be a floating-point dtype ({allowed}) for {who}",
        "Generate in a float dtype and convert explicitly if you need integers.",
    )


def require_numeric(dtype, who: str) -> np.dtype:
    """Standardize ``dtype`` and check it is numeric or bool (constant initializers)."""
    dt = standardize_dtype(dtype)
    if dt.kind in "biufc" or dt == bfloat16 or dt in FLOAT8_DTYPES:
        return dt
    raise value_error("dtype", dt.name, f"must be a numeric or bool dtype for {who}")


def real_dtype_of(dt) -> np.dtype:
    """The dtype of each part of a complex dtype: float32 for complex64, float64 for complex128.

    >>> real_dtype_of(np.complex64)
    dtype('float32')
    """
    return np.dtype(np.float32) if np.dtype(dt) == np.complex64 else np.dtype(np.float64)
