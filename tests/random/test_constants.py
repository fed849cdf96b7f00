"""The stream's per-value constants are typed once, in weightinit/random/constants.py.

Every executor imports them; this test reads the source of every other module and fails if one of
them spells out an owned constant again (a re-typed copy is how two executors drift apart).
"""

from __future__ import annotations

import io
import pathlib
import tokenize

import pytest

import weightinit as wi
from weightinit.random import constants as C

SRC = pathlib.Path(wi.__file__).parent
OWNER = SRC / "random" / "constants.py"


def _numbers(text: str):
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.NUMBER and not tok.string.endswith(("j", "J")):
            yield tok.string, tok.start[0]


def _value(literal: str):
    """The literal's magnitude (the tokenizer reads a minus sign as an operator)."""
    s = literal.replace("_", "")
    return int(s, 0) if s.lower().startswith(("0x", "0o", "0b")) or s.isdigit() else float(s)


def _distinctive(v) -> bool:
    """Values that cannot appear by chance: wide bit patterns (not plain masks), coefficients with 6+ digits."""
    if isinstance(v, int):
        # all-ones bit masks (0x7FFFFF, 0x7FFFFFFF, ...) are IEEE facts that any bit manipulation uses
        return v >= 1 << 20 and v & (v + 1) != 0
    digits = f"{abs(v):.17g}".replace(".", "").lstrip("0").split("e")[0].rstrip("0")
    return len(digits) >= 6


def _owned_values():
    owned = set()
    for lit, _ in _numbers(OWNER.read_text()):
        v = _value(lit)
        if _distinctive(v):
            owned.add(v)
    return owned


def test_owner_holds_every_spec_constant():
    owned = _owned_values()
    for v in (
        C.PHILOX_M0,
        C.PHILOX_M1,
        C.PHILOX_W0,
        C.PHILOX_W1,
        *C.SEED_DOMAIN,
        C.TAG_CHILD,
        C.TAG_FOLD,
        C.TAG_DEFAULT,
        C.F32_ONE_BITS,
        C.F64_ONE_BITS,
        *C.LOG32["p"],
        *C.LOG64["Lg"],
        *C.PPND7["a"],
        *C.PPND16["f"],
    ):
        assert abs(v) in owned
    assert len(owned) > 80  # every polynomial coefficient of LOG32, LOG64, PPND7 and PPND16


def test_all_lists_each_public_constant_once():
    public = {n for n in vars(C) if n.isupper() and not n.startswith("_")}
    assert sorted(C.__all__) == sorted(public)
    assert len(C.__all__) == len(set(C.__all__))


def _copies(text: str, owned) -> list[str]:
    return [f"{lit} (line {line})" for lit, line in _numbers(text) if _value(lit) in owned]


def test_the_scan_finds_a_retyped_constant():
    # what the Triton kernel looked like before it took its constants from the owner
    retyped = "y = y + -1.1514610310e-1\nm0 = tl.full((BLOCK,), 0xD2511F53, tl.uint32)\nr = 0.180625 - q * q\n"
    assert len(_copies(retyped, _owned_values())) == 3


def test_no_module_retypes_an_owned_constant():
    owned = _owned_values()
    copies = {}
    for p in sorted(SRC.rglob("*.py")):
        if p != OWNER and (found := _copies(p.read_text(), owned)):
            copies[p.relative_to(SRC).as_posix()] = found
    assert not copies, f"re-typed stream constants (import them from weightinit.random.constants): {copies}"


@pytest.mark.parametrize(
    "module", ["executors/torch.py", "executors/triton.py", "executors/jax.py", "executors/reference.py"]
)
def test_executors_import_the_owner(module):
    text = (SRC / module).read_text()
    assert "from weightinit.random.constants import" in text


def test_the_old_names_are_the_owners_values():
    from weightinit.random import philox, special, streams

    assert (philox.M0, philox.M1, philox.W0, philox.W1, philox.ROUNDS) == (
        C.PHILOX_M0,
        C.PHILOX_M1,
        C.PHILOX_W0,
        C.PHILOX_W1,
        C.PHILOX_ROUNDS,
    )
    assert special.LOG32 is C.LOG32 and special.PPND16 is C.PPND16
    assert streams.SEED_DOMAIN is C.SEED_DOMAIN and streams.TAG_FOLD == C.TAG_FOLD
