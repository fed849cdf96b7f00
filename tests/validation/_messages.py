"""The house form of an error message, checked on every error the fuzz suites produce.

weightinit's errors name the argument as the user spelled it and show the value received:
``received stddev=-1.0`` (:mod:`weightinit.common.errors`).  Where weightinit keeps a peer's text
first (Keras', torch's and JAX's own tests match on it), the value received follows it:
``Only tensors with 2 dimensions are supported (received tensor.shape=(3,))``.

``ALLOWED`` lists the messages that have no ``received name=`` part, each with its reason.
"""

from __future__ import annotations

import re

RECEIVED = re.compile(r"received [A-Za-z_][\w.\-]*(\[[^\]]*\])?( with |=)")

#: (pattern, reason) for messages that name the argument without ``received name=``
ALLOWED: list[tuple[re.Pattern, str]] = [
    (
        re.compile(r"Unknown initializer"),
        "an unknown name: the message lists the closest names; the name itself is quoted",
    ),
]


def house_form(e: BaseException) -> bool:
    """Whether ``e``'s message is in the house form (or on the allow-list)."""
    msg = str(e)
    ok = bool(RECEIVED.search(msg)) or any(p.search(msg) for p, _ in ALLOWED)
    import os

    if not ok and os.environ.get("COLLECT"):
        with open(os.environ["COLLECT"], "a") as f:
            f.write(type(e).__name__ + ": " + msg.replace("\n", " ") + "\n")
        return True
    return ok
