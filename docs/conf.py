"""Sphinx configuration of the otdpi documentation (``sphinx-build -W docs docs/_build``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import otdpi  # noqa: E402

project = "otdpi"
author = "the otdpi authors"
copyright = "2026, the otdpi authors"
release = version = otdpi.__version__

extensions = [
    "myst_parser",  # pages are Markdown, like the rest of the repository
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings are numpydoc
    "sphinx.ext.viewcode",
    "sphinxarg.ext",  # the CLI reference is read from the argparse parser itself
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Optional dependencies need not be installed to build the reference.
autodoc_mock_imports = ["distributed", "cyclonedx", "matplotlib", "jinja2"]
html_theme = "alabaster"
html_title = f"otdpi {release}"
