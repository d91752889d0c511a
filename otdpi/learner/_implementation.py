"""Chooses between the compiled and the interpreted learner when the package loads.

Six modules of the learner (:data:`COMPILED_MODULES`) are built by Cython
from their own ``.py`` sources (see ``setup.py``); a built module sits beside
its source and Python would always import it first. They run the learner's
hot path about three times faster, but a built module is only right while it
is as new as the source it came from: after an edit or a ``git pull`` an
out-of-date one would run yesterday's code. So when any of them is
missing, or older than its ``.py`` or ``.pxd``, or ``OTDPI_PURE_PYTHON`` is
set, all of them are imported from their sources instead (they declare C types
to each other, so they go together), with a warning when a stale build was
passed over.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path

COMPILED_MODULES = ("baseline", "cadence", "covert", "detector", "links", "surge")
PACKAGE = __name__.rpartition(".")[0]
HERE = Path(__file__).resolve().parent


class _SourceFinder:
    """A meta path finder that loads the compiled modules' ``.py`` sources."""

    names = frozenset(f"{PACKAGE}.{name}" for name in COMPILED_MODULES)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        source = HERE / (fullname.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(fullname, source)


def _built(name: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = HERE / (name + suffix)
        if candidate.exists():
            return candidate
    return None


def _stale() -> list[str]:
    """Compiled modules older than a source they were built from."""
    stale = []
    for name in COMPILED_MODULES:
        built = _built(name)
        if built is None:
            continue
        made = built.stat().st_mtime
        for source in (HERE / f"{name}.py", HERE / f"{name}.pxd"):
            if source.exists() and source.stat().st_mtime > made:
                stale.append(name)
                break
    return stale


def choose() -> bool:
    """Make the compiled modules importable or not; True when they will be used."""
    if any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        return False
    built = [name for name in COMPILED_MODULES if _built(name) is not None]
    stale = _stale() if built else []
    use = len(built) == len(COMPILED_MODULES) and not stale
    if os.environ.get("OTDPI_PURE_PYTHON"):
        use = False
    elif stale or 0 < len(built) < len(COMPILED_MODULES):
        what = ", ".join(stale) if stale else "some of them are missing"
        warnings.warn(
            f"otdpi: the compiled learner is out of date ({what}); running the "
            "pure-Python learner, which is slower. Rebuild it with "
            "`python -m pip install -e .` in the checkout.",
            RuntimeWarning,
            stacklevel=3,
        )
    if not use and built:
        sys.meta_path.insert(0, _SourceFinder())
    return use


def compiled() -> bool:
    """Whether the learner in use is the compiled one."""
    module = sys.modules.get(f"{PACKAGE}.detector")
    if module is None:
        module = importlib.import_module(f"{PACKAGE}.detector")
    return module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
