"""The documentation builds with warnings as errors, gallery executed.

This is README's docs command, run on a copy of ``docs/`` and ``examples/``
so the build writes nothing into the working tree.
"""

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_NEEDS = ["sphinx", "pydata_sphinx_theme", "numpydoc", "sphinx_gallery", "matplotlib"]
# Built in the source tree by a build run from a checkout; not sources.
GENERATED = shutil.ignore_patterns("_build", "generated", "auto_examples", "sg_execution_times.rst")


def test_docs_build_with_warnings_as_errors(tmp_path):
    missing = [m for m in DOCS_NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f'building the docs needs the extra "skgd[docs]"; missing {missing}')
    for optional in ("dask", "distributed", "dask_ml"):
        if importlib.util.find_spec(optional) is None:
            pytest.skip(f'the gallery runs the Dask example, which needs "skgd[dask]"; '
                        f"{optional} is not installed")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=GENERATED)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    out = tmp_path / "html"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(tmp_path / "docs"), str(out)],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + "\n" + proc.stderr[-10000:]

    for page in ("index", "install", "user_guide", "reliability", "api", "auto_examples/index"):
        assert (out / f"{page}.html").is_file(), page
    # every public name has an entry in the API reference
    html = "\n".join(p.read_text(encoding="utf-8") for p in out.rglob("*.html"))
    public = ["skgd.schedules.optimal_init", "skgd.schedules.SCHEDULES"]
    for module in ("skgd", "skgd.losses", "skgd.datasets", "skgd.model_selection",
                   "skgd.pipeline"):
        public += [f"{module}.{name}" for name in importlib.import_module(module).__all__]
    undocumented = [name for name in public if f'id="{name}"' not in html]
    assert not undocumented, f"missing from the API reference: {undocumented}"
    # every example was executed and its figure kept
    for script in sorted((ROOT / "examples").glob("plot_*.py")):
        page = out / "auto_examples" / f"{script.stem}.html"
        assert page.is_file(), page
        assert list((out / "_images").glob(f"sphx_glr_{script.stem}_*.png")), script.stem


def test_changes_name_the_installed_version():
    """The newest release section of docs/changes.rst (after any
    "Unreleased" one) is skgd.__version__, which pyproject.toml and the docs'
    conf.py read: a user reporting a bug can say what they run."""
    import skgd

    lines = (ROOT / "docs" / "changes.rst").read_text().splitlines()
    sections = [title.split()[0] for title, rule in zip(lines, lines[1:], strict=False)
                if title.strip() and rule and set(rule) == {"-"}]
    releases = [s for s in sections if s != "Unreleased"]
    assert releases and releases[0] == skgd.__version__, (
        f"the newest release in docs/changes.rst is {releases[:1]}, "
        f"skgd.__version__ is {skgd.__version__!r}")
