"""Shared fixtures: the `backend` fixture (cpu always, gpu where CUDA and RAPIDS import) and
small seeded event logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg import backend as _backend


def _gpu_params():
    return pytest.param("gpu", marks=[pytest.mark.gpu], id="gpu")


@pytest.fixture(params=["cpu", _gpu_params()])
def backend(request):
    """A Backend: CPU always; GPU where a CUDA device and RAPIDS are importable."""
    if request.param == "gpu":
        probe = _backend.probe_gpu()
        if not probe.available:
            pytest.skip(f"no GPU backend: {probe.reason}")
    return _backend.select(request.param)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module: NumPy always, CuPy where a GPU backend is usable."""
    if request.param == "cupy":
        probe = _backend.probe_gpu()
        if not probe.available:
            pytest.skip(f"no GPU backend: {probe.reason}")
        return _backend.select("gpu").xp
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
