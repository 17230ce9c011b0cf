"""README's install sequence, end to end, in a fresh virtual environment.

A non-editable install used from another directory, then an editable
reinstall (what the test command does), must leave ``import skgd`` working:
numba must not have written compiled code into ``site-packages/skgd``,
whose leftover folder would shadow the editable install as an empty
namespace package (skgd._numba_cache keeps skgd's compiled code in a per-user
folder).

The environment sees the running interpreter's packages, so nothing but skgd
is installed: a ``.pth`` file lists the folders of the running ``sys.path``
(``site-packages`` and any other folder the dependencies may come from).
Not ``--system-site-packages``: that gives the *base* interpreter's
packages, so run from inside a virtual environment (as CI and README's test
command are) the environment lacked scikit-learn. The running environment's
own skgd must not leak in, or "the installed copy" and "the editable
reinstall" below would be the outer one: the folders of the test run itself
(the checkout and ``tests/``) are left out; the lines of a ``.pth`` file
only add folders, so the outer ``site-packages``' own ``.pth`` files (an
editable install's import hook, or its path to a checkout) are not run; and
a listed folder that holds an ``skgd`` package itself (a regular install, or
a checkout put on the path) is replaced by a folder of links to everything
else in it. Before installing, the test checks that the environment imports
the dependencies and finds no skgd. (A dependency that needs a ``.pth`` file
of its own to be importable would be missing; none of skgd's does.)
"""

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FIT = textwrap.dedent("""
    import numpy as np, skgd
    from skgd import MinibatchSGDClassifier
    X = np.random.RandomState(0).rand(40, 3)
    MinibatchSGDClassifier(random_state=0).fit(X, X[:, 0] > 0.5)
    print(skgd.__file__)
""")


INNER_PATHS = textwrap.dedent("""
    import json, sys, sysconfig
    print(json.dumps({"path": sys.path, "purelib": sysconfig.get_paths()["purelib"]}))
""")

SEES = textwrap.dedent("""
    import importlib.util, numba, numpy, scipy, sklearn
    spec = importlib.util.find_spec("skgd")
    print(spec and spec.origin)
""")


def _holds_skgd(folder):
    return (folder / "skgd").exists() or (folder / "skgd.py").exists()


def _is_skgds(name):
    """skgd's package, module, metadata (``skgd-0.1.0.dist-info``) or
    editable-install hooks (``__editable__.skgd-0.1.0.pth``)."""
    name = name.lower().replace("-", "_")
    return (name == "skgd" or name.startswith(("skgd.", "skgd_"))
            or (name.startswith("__editable__") and "skgd" in name))


def _outer_folders(links, inner_path):
    """The folders of the running ``sys.path`` (and ``purelib`` and
    ``platlib``) for the environment's ``.pth`` file.

    Left out: the folders already on the environment's path ``inner_path``
    (the stdlib: listed in the ``.pth`` as well, pip's build isolation, which
    drops every folder a site folder's ``.pth`` files add, would drop the
    stdlib too), the test run's own folders (the checkout, ``tests/``), and
    entries that are not folders (the zipped stdlib, an editable install's
    path-hook placeholder). A folder holding an ``skgd`` is replaced by a
    folder under ``links`` of symbolic links to its other entries."""
    paths = sysconfig.get_paths()
    seen = {Path(entry).resolve() for entry in inner_path if entry}
    folders = []
    for entry in sys.path + [paths["purelib"], paths["platlib"]]:
        folder = Path(entry or os.getcwd()).resolve()
        if (folder in seen or not folder.is_dir() or folder == REPO
                or REPO in folder.parents):
            continue
        seen.add(folder)
        if _holds_skgd(folder):
            farm = links / str(len(folders))
            farm.mkdir(parents=True)
            for child in folder.iterdir():
                if not _is_skgds(child.name):
                    (farm / child.name).symlink_to(child)
            folder = farm
        folders.append(folder)
    return folders


VERSIONS = "import importlib.metadata as m, skgd; print(m.version('skgd'), skgd.__version__)"


def _run(args, cwd, env):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="the test drives a POSIX virtualenv layout")
def test_install_use_elsewhere_then_editable_reinstall(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the per-user cache, isolated
    inner = json.loads(_run([python, "-c", INNER_PATHS], cwd=elsewhere, env=env))
    folders = _outer_folders(tmp_path / "outer", inner["path"])
    (Path(inner["purelib"]) / "_outer_packages.pth").write_text(
        "".join(f"{folder}\n" for folder in folders))
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps"]

    # The dependencies are there, and no skgd yet (none leaked in from outside).
    found = _run([python, "-c", SEES], cwd=elsewhere, env=env)
    assert found == "None", f"before installing, the environment imports skgd from {found}"

    _run(pip + [str(REPO)], cwd=REPO, env=env)
    installed = Path(_run([python, "-c", FIT], cwd=elsewhere, env=env))
    assert env_dir in installed.parents, f"used {installed}, not the installed copy"
    site_skgd = installed.parent
    # what pip recorded is what skgd says it is (pyproject reads skgd.__version__)
    recorded, said = _run([python, "-c", VERSIONS], cwd=elsewhere, env=env).split()
    assert recorded == said, f"pip installed {recorded}, skgd.__version__ is {said}"
    assert not list(site_skgd.rglob("*.nbi")), "numba cached into site-packages"
    assert list((tmp_path / "cache" / "skgd" / "numba").rglob("*.nbi")), "nothing cached per user"

    _run(pip + ["-e", str(REPO)], cwd=REPO, env=env)
    assert not site_skgd.exists(), f"the uninstall left {sorted(site_skgd.rglob('*'))[:5]}"
    used = Path(_run([python, "-c", FIT], cwd=elsewhere, env=env))
    assert used == REPO / "skgd" / "__init__.py"
