"""The per-value constants of the weightinit stream (docs/random.md): defined once, here.

Every executor (the NumPy reference, the compiled C core, torch, Triton, JAX)
computes the same bits from the same constants, so they are typed in exactly
one place: this module.  Executors import them (never re-type them); the C
core's header is generated from them; tests/random/test_constants.py checks
that no other module spells one of them out.

Groups:

* Philox4x32-10 (Salmon et al., SC 2011): the round multipliers
  ``PHILOX_M0``/``PHILOX_M1``, the Weyl key increments ``PHILOX_W0``/``PHILOX_W1``
  and ``PHILOX_ROUNDS``.
* Stream derivation (docs/random.md section 2): ``SEED_DOMAIN`` and the
  ``TAG_*`` words of child, fold and default-seed streams.
* IEEE-754 bit layout used by the reproducible ``log``: ``F32_*``/``F64_*``
  mantissa masks, the bits of 1.0 and the exponent biases.
* Variates (docs/random.md section 4): the word shifts and scales that turn
  32-bit words into uniforms and normal probabilities (``U32_*``, ``U64_*``,
  ``HALF_NORMAL*``).
* Special functions (docs/random.md section 5): ``LOG32`` (Cephes ``logf``),
  ``LOG64`` (fdlibm ``__ieee754_log``), ``PPND7``/``PPND16`` (Wichura, AS 241,
  Applied Statistics 1988).  Polynomial tuples: ``LOG32["p"]`` highest degree
  first; AS 241 lowest degree first, denominators with an implicit leading 1.

>>> hex(PHILOX_M0), PHILOX_ROUNDS
('0xd2511f53', 10)
"""

from __future__ import annotations

__all__ = [
    "PHILOX_M0",
    "PHILOX_M1",
    "PHILOX_W0",
    "PHILOX_W1",
    "PHILOX_ROUNDS",
    "WORD_MASK",
    "SEED_DOMAIN",
    "TAG_CHILD",
    "TAG_FOLD",
    "TAG_DEFAULT",
    "F32_MANTISSA_BITS",
    "F32_MANTISSA_MASK",
    "F32_ONE_BITS",
    "F32_EXP_BIAS",
    "F64_MANTISSA_BITS",
    "F64_MANTISSA_MASK",
    "F64_ONE_BITS",
    "F64_EXP_BIAS",
    "U32_SHIFT",
    "U32_SCALE",
    "OPEN32_SHIFT",
    "HALF_NORMAL32_MASK",
    "HALF_NORMAL32_SCALE",
    "U64_HI_SHIFT",
    "U64_LO_SHIFT",
    "U64_SCALE",
    "OPEN64_HI_SHIFT",
    "OPEN64_LO_SHIFT",
    "HALF_NORMAL64_HI_MASK",
    "HALF_NORMAL64_SCALE",
    "LOG32",
    "LOG64",
    "PPND7",
    "PPND16",
]

# Philox4x32-10.
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9  # golden ratio
PHILOX_W1 = 0xBB67AE85  # sqrt(3) - 1
PHILOX_ROUNDS = 10
WORD_MASK = 0xFFFFFFFF
"""A 32-bit word: Philox arithmetic is mod 2**32."""

# Stream derivation (docs/random.md section 2).
SEED_DOMAIN = (0x77656967, 0x6874696E)  # b"weig", b"htin" read big-endian
TAG_CHILD = 0x43484C44  # "CHLD"
TAG_FOLD = 0x464F4C44  # "FOLD"
TAG_DEFAULT = 0x44464C54  # "DFLT": default seeds drawn after set_seed()

# IEEE-754 layout (argument reduction of log).
F32_MANTISSA_BITS = 23
F32_MANTISSA_MASK = 0x7FFFFF
F32_ONE_BITS = 0x3F800000
F32_EXP_BIAS = 127
F64_MANTISSA_BITS = 52
F64_MANTISSA_MASK = 0xFFFFFFFFFFFFF
F64_ONE_BITS = 0x3FF0000000000000
F64_EXP_BIAS = 1023

# Variates from words (docs/random.md section 4).
U32_SHIFT = 8
"""float32 uniform on [0, 1): ``(w >> 8) * 2**-24``."""
U32_SCALE = 2.0**-24
OPEN32_SHIFT = 9
"""float32 open (0, 1): ``(2 * (w >> 9) + 1) * 2**-24``."""
HALF_NORMAL32_MASK = 0x3FFFFFFF
"""float32 normal: sign bit 31, ``k = (w >> 1) & mask``, ``p = (2k + 1) * 2**-32``."""
HALF_NORMAL32_SCALE = 2.0**-32
U64_HI_SHIFT, U64_LO_SHIFT = 21, 11
"""float64 uniform on [0, 1): ``k = hi << 21 | lo >> 11``, ``k * 2**-53``."""
U64_SCALE = 2.0**-53
OPEN64_HI_SHIFT, OPEN64_LO_SHIFT = 20, 12
"""float64 open (0, 1): ``k = hi << 20 | lo >> 12``, ``(2k + 1) * 2**-53``."""
HALF_NORMAL64_HI_MASK = 0x7FFFFFFF
"""float64 normal: sign bit 31 of hi, ``k = (hi & mask) << 21 | lo >> 11``, ``p = (2k + 1) * 2**-54``."""
HALF_NORMAL64_SCALE = 2.0**-54

# Special functions (docs/random.md section 5).
LOG32 = {
    "sqrt2": 1.41421356237309504880,
    # Cephes logf polynomial, highest degree first.
    "p": (
        7.0376836292e-2,
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    ),
    "ln2_lo": -2.12194440e-4,
    "ln2_hi": 0.693359375,
}

LOG64 = {
    "sqrt2": 1.41421356237309504880,
    "Lg": (
        6.666666666666735130e-01,
        3.999999999940941908e-01,
        2.857142874366239149e-01,
        2.222219843214978396e-01,
        1.818357216161805012e-01,
        1.531383769920937332e-01,
        1.479819860511658591e-01,
    ),
    "ln2_hi": 6.93147180369123816490e-01,
    "ln2_lo": 1.90821492927058770002e-10,
}

# AS 241 coefficients, lowest degree first.  Denominators have an implicit
# leading coefficient 1 for degree 0.
PPND7 = {
    "split1": 0.425,
    "split2": 5.0,
    "const1": 0.180625,
    "const2": 1.6,
    "a": (3.3871327179e00, 5.0434271938e01, 1.5929113202e02, 5.9109374720e01),
    "b": (1.7895169469e01, 7.8757757664e01, 6.7187563600e01),
    "c": (1.4234372777e00, 2.7568153900e00, 1.3067284816e00, 1.7023821103e-01),
    "d": (7.3700164250e-01, 1.2021132975e-01),
    "e": (6.6579051150e00, 3.0812263860e00, 4.2868294337e-01, 1.7337203997e-02),
    "f": (2.4197894225e-01, 1.2258202635e-02),
}

PPND16 = {
    "split1": 0.425,
    "split2": 5.0,
    "const1": 0.180625,
    "const2": 1.6,
    "a": (
        3.3871328727963666080e0,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ),
    "b": (
        4.2313330701600911252e1,
        6.8718700749205790830e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.9307895800092710610e4,
        2.8729085735721942674e4,
        5.2264952788528545610e3,
    ),
    "c": (
        1.42343711074968357734e0,
        4.63033784615654529590e0,
        5.76949722146069140550e0,
        3.64784832476320460504e0,
        1.27045825245236838258e0,
        2.41780725177450611770e-1,
        2.27238449892691845833e-2,
        7.74545014278341407640e-4,
    ),
    "d": (
        2.05319162663775882187e0,
        1.67638483018380384940e0,
        6.89767334985100004550e-1,
        1.48103976427480074590e-1,
        1.51986665636164571966e-2,
        5.47593808499534494600e-4,
        1.05075007164441684324e-9,
    ),
    "e": (
        6.65790464350110377720e0,
        5.46378491116411436990e0,
        1.78482653991729133580e0,
        2.96560571828504891230e-1,
        2.65321895265761230930e-2,
        1.24266094738807843860e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ),
    "f": (
        5.99832206555887937690e-1,
        1.36929880922735805310e-1,
        1.48753612908506148525e-2,
        7.86869131145613259100e-4,
        1.84631831751005468180e-5,
        1.42151175831644588870e-7,
        2.04426310338993978564e-15,
    ),
}
