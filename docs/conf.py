"""Sphinx configuration for the encore documentation."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import encore  # noqa: E402

project = "encore"
author = "the encore developers"
copyright = "2026, the encore developers"
version = release = encore.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_custom_sections = [("Events", "params_style")]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
intersphinx_mapping = {}
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"


def _skip_mixin_tests(app, what, name, obj, skip, options):
    """Keep the conformance mixins' many test methods out of the API pages."""
    if name.startswith("test_") and what == "class":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_mixin_tests)
