"""Tests that need the real data (``../shared/data``) skip when it is
absent on a developer's machine, and fail in CI (``CI=true``), where a
green run without the data would have tested nothing real."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# one test that reads a real data set (the reuters fixture of conftest.py)
NEEDS_DATA = "test_engine.py::test_l1_gives_exact_zeros"


def _run_without_data(tmp_path, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["SKGD_SHARED_DATA"] = str(tmp_path / "absent")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", NEEDS_DATA], cwd=TESTS, env=env, capture_output=True, text=True, timeout=600)


def test_ci_fails_without_the_data(tmp_path):
    proc = _run_without_data(tmp_path, "true")
    assert proc.returncode != 0, proc.stdout
    assert "is absent" in proc.stdout and "CI must run" in proc.stdout, proc.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_a_local_run_skips_without_the_data(tmp_path, ci):
    proc = _run_without_data(tmp_path, ci)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout and "is absent" in proc.stdout, proc.stdout
