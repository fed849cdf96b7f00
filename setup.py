"""Build the optional compiled core ``weightinit.executors._core_ext`` (metadata lives in pyproject.toml).

The extension is plain C (no OpenMP, no ``-march``), compiled with
``-O3 -ffp-contract=off -fno-fast-math`` so every value equals the NumPy
reference bit for bit; AVX2 and AVX-512 paths (``target`` attributes, no FMA) are
chosen at run time.  If no compiler is
available, or the build fails, installation still succeeds and weightinit
falls back to the NumPy reference with a one-time ``FallbackWarning``.
Set ``WEIGHTINIT_NO_EXTENSION=1`` to skip the build.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the C compiler is missing or errors."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._warn(exc)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: Exception) -> None:
        sys.stderr.write(
            f"WARNING: building weightinit's compiled core failed ({exc}); weightinit will use its slower NumPy "
            "reference executor.\n"
        )


if sys.platform == "win32":
    _ARGS: list[str] = ["/O2", "/fp:precise"]
    _LINK: list[str] = []
else:
    _ARGS = [
        "-O3",
        "-ffp-contract=off",
        "-fno-fast-math",
        "-fno-math-errno",
        "-fvisibility=hidden",
        "-pthread",
        "-Wno-psabi",
    ]
    _LINK = ["-pthread"]

ext_modules = []
if not os.environ.get("WEIGHTINIT_NO_EXTENSION"):
    ext_modules.append(
        Extension(
            "weightinit.executors._core_ext",
            sources=["src/weightinit/executors/_core/_core.c"],
            depends=sorted(glob.glob("src/weightinit/executors/_core/*.h")),
            extra_compile_args=_ARGS,
            extra_link_args=_LINK,
            optional=True,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
