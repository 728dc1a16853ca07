"""The independent persona generator of ``bench/foreign.py`` (issue 14): what it writes is
a log gpuseg reads whole, with a truth row for every customer, the same for the same seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpuseg import backend as _backend
from gpuseg.config import CleanConfig
from gpuseg.io.readers import from_frame
from gpuseg.prep import clean

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def foreign_gen():
    spec = importlib.util.spec_from_file_location("foreign_gen", BENCH / "foreign_gen.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["foreign_gen"] = mod  # its dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("foreign_gen", None)


@pytest.mark.parametrize("scenario", ["f4_imbalanced", "f4_orders"])
def test_foreign_logs_read_whole_with_a_persona_for_every_customer(foreign_gen, scenario):
    log, truth, k, kind = foreign_gen.generate(scenario, 300, seed=1)
    again, truth2, _, _ = foreign_gen.generate(scenario, 300, seed=1)
    pd.testing.assert_frame_equal(log, again)
    pd.testing.assert_frame_equal(truth, truth2)
    other, _, _, _ = foreign_gen.generate(scenario, 300, seed=2)
    assert not log.equals(other)
    ids = "user_id" if kind == "events" else "customer_id"
    assert truth.columns.tolist() == [ids, "persona"] and truth[ids].is_unique
    assert set(truth[ids]) == set(log[ids]) and 2 <= truth["persona"].nunique() <= k
    if kind == "orders":
        log = log.rename(columns={"order_date": "timestamp"})
    data = from_frame(log, _backend.select("cpu"), fmt=kind)
    cleaned = clean(data, CleanConfig(), _backend.select("cpu"))
    # the same product viewed twice in one second is an exact copy, dropped and counted as such
    lost = {reason: n for reason, n in cleaned.dropped.items() if n}
    assert set(lost) <= {"duplicate"} and cleaned.rows_out == len(log) - sum(lost.values())
    assert lost.get("duplicate", 0) == int(log.duplicated().sum())
    assert cleaned.customers_in == len(truth) and len(cleaned.excluded) == 0
    assert np.isfinite(cleaned.frame["price"]).all()
