"""Philox4x32-10: Random123 known-answer tests and an independent re-implementation."""

from __future__ import annotations

import numpy as np
import pytest

from weightinit.random.philox import M0, M1, ROUNDS, W0, W1, philox4x32

# Random123 kat_vectors, philox4x32 with 10 rounds: counter, key -> output.
KATS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KATS)
def test_known_answers(counter, key, expected):
    out = philox4x32(counter, key)
    assert out.dtype == np.uint32
    assert out.shape == (4,)
    assert tuple(int(w) for w in out) == expected


@pytest.mark.parametrize(("counter", "key", "expected"), KATS)
def test_independent_implementation_agrees_with_kats(philox_py, counter, key, expected):
    # Guards the helper the stream/region tests rely on.
    assert philox_py(counter, key) == expected


def test_constants_and_rounds():
    assert (M0, M1, W0, W1, ROUNDS) == (0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85, 10)


def test_vectorized_matches_scalar_reference(philox_py):
    rng = np.random.default_rng(12345)
    n = 257
    ctr = rng.integers(0, 2**32, size=(4, n), dtype=np.uint64)
    key = (0xDEADBEEF, 0x01234567)
    out = philox4x32(tuple(ctr), key)
    assert out.shape == (4, n)
    for i in range(n):
        assert tuple(int(w) for w in out[:, i]) == philox_py(tuple(int(c) for c in ctr[:, i]), key)


def test_counter_words_broadcast():
    j = np.arange(6, dtype=np.uint64)
    out = philox4x32((j, 0, 0, 0), (1, 2))
    for i in range(6):
        np.testing.assert_array_equal(out[:, i], philox4x32((i, 0, 0, 0), (1, 2)))


def test_every_input_word_matters():
    base = philox4x32((1, 2, 3, 4), (5, 6))
    for pos in range(4):
        ctr = [1, 2, 3, 4]
        ctr[pos] ^= 1
        assert not np.array_equal(philox4x32(tuple(ctr), (5, 6)), base)
    assert not np.array_equal(philox4x32((1, 2, 3, 4), (4, 6)), base)
    assert not np.array_equal(philox4x32((1, 2, 3, 4), (5, 7)), base)


def test_key_words_are_reduced_mod_2_32():
    a = philox4x32((7, 0, 0, 0), (2**32 + 3, 5))
    b = philox4x32((7, 0, 0, 0), (3, 5))
    np.testing.assert_array_equal(a, b)


def test_output_bits_are_balanced():
    # 2**16 blocks -> 2**18 words; each of the 32 bit positions is set with probability 1/2.
    j = np.arange(2**16, dtype=np.uint64)
    w = philox4x32((j, 0, 0, 0), (0, 0)).ravel()
    n = w.size
    for b in range(32):
        frac = float(((w >> np.uint32(b)) & np.uint32(1)).mean())
        assert abs(frac - 0.5) < 4 * 0.5 / np.sqrt(n), b


def test_scalar_philox_equals_the_array_reference():
    """Key derivations use the integer implementation; it must give the array version's bits."""
    from weightinit.random.philox import philox4x32, philox4x32_scalar

    rng = np.random.default_rng(11)
    counters = rng.integers(0, 2**32, size=(200, 4), dtype=np.uint64)
    keys = rng.integers(0, 2**32, size=(200, 2), dtype=np.uint64)
    for c, k in zip(counters.tolist(), keys.tolist()):
        assert philox4x32_scalar(tuple(c), tuple(k)) == tuple(int(w) for w in philox4x32(tuple(c), tuple(k)))
    assert philox4x32_scalar((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF)) == (
        0x408F276D,
        0x41C83B0E,
        0xA20BC7C6,
        0x6D5451FD,
    )
