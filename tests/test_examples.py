"""Every gallery example runs to the end and draws at least one figure."""

import ast
import importlib.util
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))

# Examples that need an optional extra, and the modules that extra provides.
NEEDS = {
    "plot_dask_incremental.py": (
        ["dask", "distributed", "dask_ml"],
        'the extra "skgd[dask]" (dask[distributed], dask-ml)',
    ),
    "plot_dask_data_parallel.py": (
        ["dask", "distributed"],
        'the extra "skgd[dask]" (dask[distributed])',
    ),
}


def test_the_gallery_has_the_issue_examples():
    names = {p.name for p in SCRIPTS}
    assert {
        "plot_quick_start.py",
        "plot_grid_search.py",
        "plot_out_of_core_sms_spam.py",
        "plot_dask_incremental.py",
    } <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_has_a_gallery_title(script):
    # sphinx-gallery reads the title from the module docstring: a line of
    # text underlined with "=".
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    assert doc, f"{script.name} has no module docstring"
    lines = [line.strip() for line in doc.strip().splitlines()]
    title_at = next(i for i, line in enumerate(lines) if line and set(line) != {"="})
    assert set(lines[title_at + 1]) == {"="}, f"{script.name}: title not underlined"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs_and_plots(script, monkeypatch):
    matplotlib = pytest.importorskip(
        "matplotlib", reason='the examples draw with matplotlib (extra "skgd[plot]")'
    )
    modules, extra = NEEDS.get(script.name, ([], None))
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{script.name} needs {extra}; {module} is not installed")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    try:
        runpy.run_path(str(script), run_name="__main__")
        figures = [plt.figure(n) for n in plt.get_fignums()]
        assert figures, f"{script.name} drew no figure"
        # every figure has at least one axes with something drawn on it
        for fig in figures:
            assert any(ax.has_data() for ax in fig.axes)
    finally:
        plt.close("all")
