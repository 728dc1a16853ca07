from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuseg.backend import to_host
from gpuseg.segments.rfm import RFM_GRID, RFM_SEGMENTS, rfm_crosstab, rfm_scores


def rfm_features(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "recency_days": rng.integers(0, 60, n).astype(float),  # many ties
            "frequency": rng.poisson(0.7, n).astype(float),  # mostly 0 and 1
            "monetary": np.round(rng.gamma(1.0, 50.0, n) * (rng.random(n) < 0.6), 2),
            "views": rng.random(n),
        },
        index=pd.Index(np.arange(n) * 7 + 3, name="customer_id"),
    )


def qcut_reference(features: pd.DataFrame, bins: int) -> pd.DataFrame:
    """The common recipe: qcut of rank(method="first"); recency reversed."""

    def label(col):
        return pd.qcut(features[col].rank(method="first"), bins, labels=False).astype(int)

    return pd.DataFrame({"r_score": bins - label("recency_days"), "f_score": label("frequency") + 1,
                         "m_score": label("monetary") + 1}, index=features.index)


@pytest.mark.parametrize("bins", [2, 3, 5, 10], ids=lambda b: f"bins{b}")
def test_scores_match_qcut_of_first_ranks(backend, bins):
    feats = rfm_features(997)
    frame = backend.frame.from_pandas(feats) if backend.is_gpu else feats
    out = to_host(rfm_scores(frame, bins=bins))
    ref = qcut_reference(feats, bins)
    pd.testing.assert_frame_equal(out[["r_score", "f_score", "m_score"]].astype(int), ref)
    assert out.index.equals(feats.index)
    assert set(out["rfm_segment"]) <= set(RFM_SEGMENTS)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 400), bins=st.integers(2, 8), seed=st.integers(0, 10**6))
def test_scores_match_qcut_everywhere(n, bins, seed):
    feats = rfm_features(n, seed)
    out = rfm_scores(feats, bins=bins)
    pd.testing.assert_frame_equal(out[["r_score", "f_score", "m_score"]].astype(int), qcut_reference(feats, bins))


def test_cut_points_match_pd_cut(backend):
    feats = rfm_features(500, seed=2)
    cuts = {"recency_days": [7, 14, 30, 45], "f_score": [0, 1, 2, 4], "monetary": [0, 20, 50, 100]}
    frame = backend.frame.from_pandas(feats) if backend.is_gpu else feats
    out = to_host(rfm_scores(frame, cuts=cuts))

    def ref(col, points):
        return pd.cut(feats[col], [-np.inf, *points, np.inf], labels=False, right=True).astype(int)

    assert (out["r_score"] == 5 - ref("recency_days", cuts["recency_days"])).all()
    assert (out["f_score"] == 1 + ref("frequency", cuts["f_score"])).all()
    assert (out["m_score"] == 1 + ref("monetary", cuts["monetary"])).all()
    one = feats.iloc[[0]].assign(recency_days=7.0, frequency=0.0, monetary=0.0)
    assert to_host(rfm_scores(one, cuts=cuts))[["r_score", "f_score", "m_score"]].values.tolist() == [[5, 1, 1]]


@pytest.mark.parametrize(
    "r, f, m, expected",
    [(5, 5, 5, "Champions"), (5, 4, 5, "Champions"), (4, 5, 5, "Loyal customers"), (3, 4, 3, "Loyal customers"),
     (5, 2, 3, "Potential loyalists"), (5, 1, 1, "New customers"), (4, 1, 1, "Promising"),
     (3, 3, 3, "Need attention"), (3, 1, 2, "About to sleep"), (2, 3, 3, "At risk"), (1, 5, 5, "Can't lose them"),
     (1, 4, 4, "At risk"), (2, 2, 2, "Hibernating"), (2, 1, 1, "Lost"), (1, 2, 1, "Lost")],
    ids=lambda v: str(v),
)
def test_segment_grid(r, f, m, expected):
    # cut points 1.5, 2.5, ... turn the values 1..5 into those scores (recency reversed)
    feats = pd.DataFrame({"recency_days": [6.0 - r], "frequency": [float(f)], "monetary": [float(m)]})
    cuts = {k: [1.5, 2.5, 3.5, 4.5] for k in ("recency_days", "frequency", "monetary")}
    out = rfm_scores(feats, cuts=cuts)
    assert out[["r_score", "f_score", "m_score"]].values.tolist() == [[r, f, m]]
    assert out["rfm_segment"].tolist() == [expected]


def test_grid_covers_every_cell_with_all_segments():
    assert len(RFM_GRID) == 5 and all(len(row) == 5 for row in RFM_GRID)
    assert {name for row in RFM_GRID for name in row} == set(RFM_SEGMENTS)


def test_other_bins_spread_onto_five_levels():
    feats = pd.DataFrame({"recency_days": [0.0, 10.0], "frequency": [5.0, 0.0], "monetary": [9.0, 0.0]})
    out = rfm_scores(feats, bins=2)
    assert out["rfm_segment"].tolist() == ["Champions", "Lost"]


def test_single_customer():
    out = rfm_scores(pd.DataFrame({"recency_days": [3.0], "frequency": [1.0], "monetary": [5.0]}))
    assert out[["r_score", "f_score", "m_score"]].values.tolist() == [[5, 1, 1]]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"bins": 1}, "bins"), ({"cuts": {"frequency": [1, 2]}}, "4 increasing"),
     ({"cuts": {"frequency": [1, 1, 2, 3]}}, "increasing"), ({"cuts": {"views": [1, 2, 3, 4]}}, "unknown")],
    ids=["one-bin", "too-few-cuts", "not-increasing", "unknown-measure"],
)
def test_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rfm_scores(rfm_features(20), **kwargs)
    with pytest.raises(ValueError, match="monetary"):
        rfm_scores(rfm_features(20).drop(columns="monetary"))


def test_crosstab_matches_pandas(xp):
    feats = rfm_features(300, seed=4)
    scores = rfm_scores(feats)
    labels = np.random.default_rng(0).integers(-1, 3, 300)
    table = rfm_crosstab(xp.asarray(labels), scores["rfm_segment"])
    ref = pd.crosstab(labels, scores["rfm_segment"].to_numpy())
    assert list(table.columns) == list(RFM_SEGMENTS)
    assert table.index.tolist() == [-1, 0, 1, 2]
    for col in RFM_SEGMENTS:
        expected = ref[col].to_numpy() if col in ref.columns else np.zeros(4, dtype=int)
        assert table[col].tolist() == expected.tolist()
    assert int(table.to_numpy().sum()) == 300
