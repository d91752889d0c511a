"""Builds the learner's hot modules with Cython; everything else is in pyproject.toml.

The learner (``otdpi/learner``) is plain Python. Six of its modules are also
compiled, each from its own ``.py`` source with the C types that its ``.pxd``
file beside it declares (Cython's "augmenting .pxd"), so the compiled and the
interpreted learner are one program. When Cython or a C compiler is missing, or
``OTDPI_PURE_PYTHON`` is set while building, the build goes on without them and
otdpi runs the interpreted learner: the same results, about three times the
learner's CPU time (``docs/learner.md``).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ["baseline", "cadence", "covert", "detector", "links", "surge"]


class OptionalBuildExt(build_ext):
    """Builds the extensions when it can; a failure leaves the pure-Python learner."""

    def run(self):
        try:
            super().run()
        except Exception as error:  # no compiler, no headers: say so and go on
            _skip(error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:
            _skip(error)


def _skip(error: Exception) -> None:
    print(
        f"otdpi: the compiled learner was not built ({error}); the pure-Python "
        "learner will run instead",
        file=sys.stderr,
    )


def _extensions():
    if os.environ.get("OTDPI_PURE_PYTHON"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _skip(ImportError("Cython is not installed"))
        return []
    return cythonize(
        [f"otdpi/learner/{name}.py" for name in COMPILED],
        compiler_directives={
            "language_level": 3,
            # The annotations are documentation; the .pxd files give the C types.
            "annotation_typing": False,
            # The interpreted branch of `if cython.compiled:` is dead code there.
            "warn.unreachable": False,
        },
        quiet=True,
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
