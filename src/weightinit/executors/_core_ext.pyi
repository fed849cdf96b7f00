"""Types of the compiled core (``_core/_core.c``); the module exists only where the C build succeeded."""

import numpy as np

def fill(out: np.ndarray, /, *args: object) -> None:
    """fill(out, kind, words, otype, consts6, has_clip, lo, hi, k0, k1, start, indices, nthreads)."""

def simd(name: str | None = None, /) -> str: ...
def simd_paths() -> tuple[str, ...]: ...
