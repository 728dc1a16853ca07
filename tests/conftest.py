"""Shared fixtures: the `backend` fixture (cpu always, gpu where CUDA and RAPIDS import) and
small seeded event logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg import backend as _backend


def pytest_collection_modifyitems(config, items):
    """Every GPU test is in exactly one tier (``cupy`` or ``rapids``) and marked ``gpu``, so
    ``bench/gpu_check.py``'s ``pytest -m cupy`` and ``-m rapids`` cover them all: checked in
    every session, a test that breaks the rule stops the run."""
    wrong = []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        tiers = marks & {"cupy", "rapids"}
        if ("gpu" in marks) != (len(tiers) == 1) or len(tiers) > 1:
            wrong.append(item.nodeid)
    if wrong:
        raise pytest.UsageError(f"GPU tests must be marked gpu and exactly one of cupy/rapids: {wrong[:5]}")


def pytest_addoption(parser, pluginmanager):
    """Without pytest-xdist (``-p no:xdist``, or a GPU machine with pytest alone), accept and
    ignore the options pyproject's ``addopts`` pass to it, so the suite runs in one process."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist-absent", "pytest-xdist is not loaded: these are ignored")
        group.addoption("--numprocesses", dest="numprocesses", default=None)
        group.addoption("--dist", dest="dist", default="no")


@pytest.hookimpl(optionalhook=True)  # pytest without pytest-xdist must not fail
def pytest_xdist_auto_num_workers(config):
    """``--numprocesses auto`` (the README's command, through addopts): a worker per core this
    process may run on, at most 8. pytest-xdist's own count asks psutil for the machine's
    physical cores, which ignores a container's or ``taskset``'s limit. ``logical`` and
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` are left to pytest-xdist."""
    import os

    if config.option.numprocesses == "logical" or os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    from gpuseg.pipeline import usable_cores

    return min(8, usable_cores())


def _worker_count(config) -> int:
    """How many pytest-xdist workers share the machine (1 without xdist, and in the
    controller); read from this session's config, not the environment, which child
    processes inherit."""
    return max(1, int(getattr(config, "workerinput", {}).get("workercount", 1)))


@pytest.fixture(scope="session", autouse=True)
def _threads_once_for_the_session(request):
    """Thread pools set once for the session as ``gpuseg run`` sets them by default (BLAS on
    one thread, OpenMP and torch on the usable cores): a BLAS thread on a busy core stalls
    every call, and the tests' own estimators then compute as the runs they compare with.

    Under pytest-xdist (the README's command runs a worker per core) the cores are shared
    out: each worker's runs see ``usable_cores() // workers`` cores (at least 1), so two
    workers on 2 cores run 2 threads in all, not 4."""
    from gpuseg import pipeline

    workers = _worker_count(request.config)
    share = max(1, pipeline.usable_cores() // workers)
    with pytest.MonkeyPatch.context() as mp:
        if workers > 1:
            mp.setattr(pipeline, "usable_cores", lambda: share)
        with pipeline.thread_limit(0):
            yield


def _gpu_params():
    return pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.rapids], id="gpu")


def needs_rapids(xp) -> None:
    """Skip a CuPy case whose code reaches cuML (K-means starts, Ward's micro-clusters) where
    only CuPy is installed (the ``cupy`` tier of bench/gpu_check.py)."""
    if getattr(xp, "__name__", "") == "cupy" and not _backend.probe_gpu().available:
        pytest.skip(f"needs RAPIDS: {_backend.probe_gpu().reason}")


@pytest.fixture
def rapids_if_cupy(xp):
    """Request it beside ``xp`` in a test whose CuPy case reaches cuML (:func:`needs_rapids`)."""
    needs_rapids(xp)


@pytest.fixture(params=["cpu", _gpu_params()])
def backend(request):
    """A Backend: CPU always; GPU where a CUDA device and RAPIDS are importable."""
    if request.param == "gpu":
        probe = _backend.probe_gpu()
        if not probe.available:
            pytest.skip(f"no GPU backend: {probe.reason}")
    return _backend.select(request.param)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.cupy])])
def xp(request):
    """The array module: NumPy always, CuPy where CuPy and a CUDA device are usable (RAPIDS
    not needed: tests whose code reaches cuML call :func:`needs_rapids`)."""
    if request.param == "cupy":
        probe = _backend.probe_cupy()
        if not probe.available:
            pytest.skip(f"no GPU: {probe.reason}")
        return _backend.gpu_module("cupy")
    return np


@pytest.fixture(scope="session")
def cpu():
    return _backend.select("cpu")


@pytest.fixture(scope="session")
def small_events():
    """A seeded synthetic REES46 event log of 600 customers and its persona truth."""
    from gpuseg.io.synthetic import generate_events

    return generate_events(600, seed=7)


@pytest.fixture(scope="session")
def events_csv(tmp_path_factory, small_events):
    from gpuseg.io.synthetic import write_events, write_truth

    d = tmp_path_factory.mktemp("events")
    events, truth = small_events
    write_events(events, d / "events.csv")
    write_truth(truth, d / "truth.csv")
    return d / "events.csv"


EVENT_COLUMNS = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                 "user_id", "user_session"]


@pytest.fixture
def make_log():
    """Build a REES46 frame from (time, type, product, category_id, code, brand, price, user, session) rows."""

    def make(rows: list[tuple]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=EVENT_COLUMNS)

    return make
