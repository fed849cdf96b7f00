"""The C core's stream constants come from their Python owners (executors/_core/constants.h is generated).

If this fails after a constant changed in weightinit.random, regenerate the header with
``python -m weightinit.executors._core.gen_constants`` (and rebuild the extension).
"""

from __future__ import annotations

import pathlib
import re

from weightinit.executors._core import gen_constants
from weightinit.random import philox, special

CORE = pathlib.Path(gen_constants.__file__).parent


def test_header_is_current():
    assert gen_constants.HEADER.read_text() == gen_constants.render(), (
        "executors/_core/constants.h is stale: run `python -m weightinit.executors._core.gen_constants`"
    )


def test_header_holds_every_constant_exactly():
    text = gen_constants.HEADER.read_text()
    values = [philox.M0, philox.M1, philox.W0, philox.W1]
    for v in values:
        assert f"0x{v:08X}u" in text
    floats = list(special.LOG32["p"]) + list(special.LOG64["Lg"])
    for table in (special.PPND7, special.PPND16):
        for letter in "abcdef":
            floats += list(table[letter])
    for x in floats:
        assert float(x).hex() in text, x


def _coefficients() -> set[float]:
    out = set(special.LOG32["p"]) | set(special.LOG64["Lg"])
    out |= {special.LOG32["ln2_lo"], special.LOG64["ln2_hi"], special.LOG64["ln2_lo"]}
    for table in (special.PPND7, special.PPND16):
        for letter in "abcdef":
            out |= set(table[letter])
    return {abs(float(c)) for c in out}


_FLOAT_LITERAL = re.compile(r"(?<![\w.])(\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)")


def test_no_other_c_source_retypes_a_constant():
    """One owner: the multipliers and polynomial coefficients appear in constants.h only."""
    words = [f"{v:08X}" for v in (philox.M0, philox.M1, philox.W0, philox.W1)]
    coefficients = _coefficients()
    sources = [p for p in CORE.iterdir() if p.suffix in (".c", ".h") and p.name != "constants.h"]
    assert len(sources) >= 5, "the C sources were not found next to gen_constants.py"
    for path in sources:
        text = path.read_text()
        for w in words:
            assert w not in text.upper(), f"{path.name} re-types the Philox constant 0x{w}"
        for lit in _FLOAT_LITERAL.findall(text):
            assert float(lit) not in coefficients, f"{path.name} re-types the coefficient {lit}"
