"""Key derivations of docs/random.md section 2, checked against an independent Philox."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

import weightinit as wi
from weightinit.random.seeds import draw_default_seed
from weightinit.random.streams import SEED_DOMAIN, TAG_CHILD, TAG_DEFAULT, TAG_FOLD

SEEDS = [0, 1, 42, 2**32 - 1, 2**32, 2**32 + 7, 2**63, 2**64 - 1]


def test_tags_and_domain_are_the_documented_ascii():
    assert SEED_DOMAIN == (int.from_bytes(b"weig", "big"), int.from_bytes(b"htin", "big"))
    assert TAG_CHILD == int.from_bytes(b"CHLD", "big")
    assert TAG_FOLD == int.from_bytes(b"FOLD", "big")
    assert TAG_DEFAULT == int.from_bytes(b"DFLT", "big")


@pytest.mark.parametrize("seed", SEEDS)
def test_stream_from_seed_follows_spec(philox_py, seed):
    expected = philox_py((seed & 0xFFFFFFFF, seed >> 32, 0, 0), SEED_DOMAIN)[:2]
    s = wi.Stream(seed)
    assert s.key == expected
    assert wi.Stream.from_seed(seed) == s
    assert s.to_int() == expected[0] | expected[1] << 32


def test_numpy_integer_seeds_accepted():
    assert wi.Stream(np.uint64(2**64 - 1)) == wi.Stream(2**64 - 1)
    assert wi.Stream(np.int32(5)) == wi.Stream(5)


@pytest.mark.parametrize("name", ["", "dense_1/kernel", "encoder/layer_0/attention/query", "ünïcødé"])
def test_child_follows_spec(philox_py, name):
    parent = wi.Stream(9)
    h = hashlib.sha256(name.encode("utf-8")).digest()
    h0, h1, h2 = struct.unpack("<3I", h[:12])
    expected = philox_py((h0, h1, h2, 0x43484C44), parent.key)[:2]
    assert parent.child(name).key == expected


@pytest.mark.parametrize("n", [0, 1, 2**32 - 1, 2**32, 2**40 + 3, 2**64 - 1])
def test_fold_in_follows_spec(philox_py, n):
    parent = wi.Stream(2**33 + 1)
    expected = philox_py((n & 0xFFFFFFFF, n >> 32, 0, 0x464F4C44), parent.key)[:2]
    assert parent.fold_in(n).key == expected


def test_derivations_are_distinct_and_deterministic():
    root = wi.Stream(0)
    keys = {
        root.key,
        root.child("a").key,
        root.child("b").key,
        root.fold_in(0).key,
        root.fold_in(1).key,
        wi.Stream(1).key,
        root.child("a").child("a").key,
    }
    assert len(keys) == 7
    assert root.child("a") == wi.Stream(0).child("a")
    assert hash(root.child("a")) == hash(wi.Stream(0).child("a"))
    assert root != root.key  # not equal to a tuple


def test_from_key_and_config_round_trip():
    s = wi.Stream(77).child("x")
    assert wi.Stream.from_key(s.key) == s
    assert wi.Stream.from_config(s.get_config()) == s
    assert repr(s).startswith("Stream(key=(0x")


@pytest.mark.parametrize("key", [(1,), (1, 2, 3), (-1, 0), (0, 2**32), (0.5, 1)])
def test_from_key_rejects_bad_keys(key):
    with pytest.raises(wi.InitializerValueError, match=r"`key`"):
        wi.Stream.from_key(key)


def test_child_rejects_non_str():
    with pytest.raises(wi.InitializerTypeError, match=r"`name` must be a str.*received name=3"):
        wi.Stream(0).child(3)


@pytest.mark.parametrize("n", [-1, 2**64])
def test_fold_in_rejects_out_of_range(n):
    with pytest.raises(wi.InitializerValueError, match=rf"`n` must be in \[0, 2\*\*64\); received n={n}"):
        wi.Stream(0).fold_in(n)


def test_seed_generator_sequence_is_fold_in():
    g = wi.SeedGenerator(5)
    streams = [g.next_stream() for _ in range(4)]
    assert streams == [wi.Stream(5).fold_in(k) for k in range(4)]
    # Call k of SeedGenerator(s) never equals int seed s + k (it does in Keras' torch backend).
    assert all(streams[k] != wi.Stream(5 + k) for k in range(4))


def test_set_seed_default_seeds_follow_spec(philox_py):
    try:
        wi.set_seed(123)
        drawn = [draw_default_seed() for _ in range(3)]
        root = wi.Stream(123).key
        expected = []
        for n in range(3):
            w = philox_py((n, 0, 0, 0x44464C54), root)
            expected.append(w[0] | w[1] << 32)
        assert drawn == expected
        wi.set_seed(123)  # restarts the sequence
        assert draw_default_seed() == expected[0]
    finally:
        wi.set_seed(None)


def test_os_entropy_without_set_seed():
    wi.set_seed(None)
    a, b = draw_default_seed(), draw_default_seed()
    assert a != b
    assert 0 <= a < 2**64
