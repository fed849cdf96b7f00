"""The C sources of the compiled core (built into ``weightinit.executors._core_ext`` by setup.py).

Only :mod:`weightinit.executors._core.gen_constants` is Python: it writes ``constants.h`` from the
stream constants' Python owners, so the C core never re-types them.
"""
