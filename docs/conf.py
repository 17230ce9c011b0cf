"""Sphinx configuration of the skgd documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (see
README). The gallery in ``../examples`` is executed on every build.
"""

import os
import re
import sys
from pathlib import Path

import skgd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # for _gallery_order

project = "skgd"
author = "The skgd developers"
copyright = "the skgd developers"
version = release = skgd.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"

# -- API reference ------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- Gallery ------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "_gallery_order.ExampleOrder",
    "doc_module": ("skgd",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skgd": None},
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
}
# Examples draw with the non-interactive backend.
os.environ.setdefault("MPLBACKEND", "Agg")

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skgd {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"install": [], "user_guide": []}
html_show_sourcelink = False


# -- Docstring fix-ups -----------------------------------------------------------
# A bare name ending in "_" is a hyperlink reference in reStructuredText, so
# a type such as "ndarray of shape (n_features_in_,)" makes docutils look for
# a link target "n_features_in" (an error under -W). Show such names in
# shapes as literals. A no-op for docstrings that quote them already.
_SHAPE_NAME = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?=\s*[,)])")


def _quote_shape_names(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if "shape (" in line:
            lines[i] = _SHAPE_NAME.sub(r"``\1``", line)


def _skip_sklearn_members(app, what, name, obj, skip, options):
    # Methods inherited from scikit-learn (get_params, score, the metadata
    # routing setters, ...) are documented by scikit-learn, and their
    # docstrings point at labels of scikit-learn's own site. The class
    # template lists them by name instead.
    module = getattr(obj, "__module__", None) or ""
    if module == "sklearn" or module.startswith("sklearn."):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_members)
    # numpydoc turns the docstring into reST at priority 500; run before it.
    app.connect("autodoc-process-docstring", _quote_shape_names, priority=400)
