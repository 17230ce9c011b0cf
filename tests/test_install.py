"""README's install sequence, end to end, in a fresh virtual environment.

A non-editable install used from another directory, then an editable
reinstall (what the test command does), must leave ``import skgd`` working:
numba must not have written compiled code into ``site-packages/skgd``,
whose leftover folder would shadow the editable install as an empty
namespace package (skgd._numba_cache keeps skgd's compiled code in a per-user
folder). The environment sees the test environment's packages
(``--system-site-packages``), so nothing but skgd is installed.
"""

import os
import subprocess
import sys
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


def _run(args, cwd, env):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="the test drives a POSIX virtualenv layout")
def test_install_use_elsewhere_then_editable_reinstall(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the per-user cache, isolated
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps"]

    _run(pip + [str(REPO)], cwd=REPO, env=env)
    installed = Path(_run([python, "-c", FIT], cwd=elsewhere, env=env))
    assert env_dir in installed.parents, f"used {installed}, not the installed copy"
    site_skgd = installed.parent
    assert not list(site_skgd.rglob("*.nbi")), "numba cached into site-packages"
    assert list((tmp_path / "cache" / "skgd" / "numba").rglob("*.nbi")), "nothing cached per user"

    _run(pip + ["-e", str(REPO)], cwd=REPO, env=env)
    assert not site_skgd.exists(), f"the uninstall left {sorted(site_skgd.rglob('*'))[:5]}"
    used = Path(_run([python, "-c", FIT], cwd=elsewhere, env=env))
    assert used == REPO / "skgd" / "__init__.py"
