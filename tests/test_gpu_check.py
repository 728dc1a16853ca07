"""bench/gpu_check.py runs here too: it says what it skipped and why, and its timed cases
run on NumPy (the CPU side of the check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def test_without_a_gpu_every_step_says_why(tmp_path):
    from gpuseg import backend

    if backend.probe_cupy().available:
        pytest.skip("a GPU is here: the check would run for real")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    reason = backend.probe_cupy().reason
    assert report["tiers"]["cupy"] == {"status": "skipped", "reason": reason}
    assert report["tiers"]["rapids"]["status"] == "skipped"
    assert report["timings"] == {"status": "skipped", "reason": reason}
    assert "| pytest -m cupy | skipped |" in done.stdout and "| timings | skipped |" in done.stdout


def test_a_tier_runs_with_pytest_alone():
    """The tier's pytest needs no plugin but pytest's own (a GPU machine may get pytest and
    hypothesis from the wheels folder only, while pyproject's addopts ask for pytest-xdist)."""
    import os

    import gpu_check

    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    got = gpu_check.run_tier("cupy", env, "why", 120, tests=ROOT / "tests" / "evaluate" / "test_metrics.py")
    assert got["status"] == "ok" and not got["failed"], got
    assert "skipped" in got["summary"] and "passed" not in got["summary"], got  # -m cupy selected only GPU tests


def test_the_suite_runs_without_pytest_xdist():
    """pyproject's addopts ask pytest-xdist for a worker per core; without it (``-p
    no:xdist``, or plugin autoload off as on a machine with pytest alone) they are ignored."""
    import os

    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_backend.py"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "passed" in done.stdout and "workers" not in done.stdout


def test_the_timed_cases_run_on_numpy():
    import gpu_check

    X, labels, cases = gpu_check.timing_cases(3000)
    assert X.shape == (3000, 32) and X.dtype == np.float32
    for name, fn in cases.items():
        fn(np, X, labels)  # the CPU side of each row of the table
