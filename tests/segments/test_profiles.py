from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg.backend import to_host
from gpuseg.segments import order_by_size, placeholder_names, segment_profiles


@pytest.mark.parametrize(
    "labels, expected",
    [([2, 2, 2, 0, 1, 1], [0, 0, 0, 2, 1, 1]), ([5, 5, 3, 3, 9], [1, 1, 0, 0, 2]), ([-1, 4, 4, 1], [-1, 0, 0, 1])],
    ids=["by-size", "ties-by-label", "noise-kept"],
)
def test_order_by_size(backend, labels, expected):
    out = order_by_size(backend.xp.asarray(labels))
    assert to_host(out).tolist() == expected


def test_profiles(cpu):
    feats = pd.DataFrame(
        {"monetary": [10.0, 20.0, 30.0, 0.0], "cat_kids": [0.9, 0.8, 0.1, 0.0], "cat_auto": [0.1, 0.2, 0.9, 1.0]},
        index=pd.Index([11, 12, 13, 14], name="customer_id"),
    )
    prof = segment_profiles(feats, np.array([0, 0, 1, 1]), placeholder_names([0, 1]),
                            {"cat_kids": "kids", "cat_auto": "auto"})
    assert list(prof.columns[:6]) == ["segment", "segment_name", "size", "share", "top_category", "monetary"]
    assert prof["size"].tolist() == [2, 2] and prof["share"].tolist() == [0.5, 0.5]
    assert prof["monetary"].tolist() == [15.0, 15.0]
    assert prof["top_category"].tolist() == ["kids", "auto"]
    assert prof["segment_name"].tolist() == ["segment 0", "segment 1"]
    assert list(feats.columns) == ["monetary", "cat_kids", "cat_auto"]  # input untouched


def test_noise_is_named_unassigned():
    assert placeholder_names([-1, 0, 2]) == {-1: "unassigned", 0: "segment 0", 2: "segment 2"}
    feats = pd.DataFrame({"monetary": [1.0, 2.0, 3.0]}, index=pd.Index([1, 2, 3], name="customer_id"))
    prof = segment_profiles(feats, np.array([-1, 0, 0]), placeholder_names([-1, 0]))
    assert prof["segment_name"].tolist() == ["unassigned", "segment 0"]
