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
    """The common recipe: qcut of rank(method="first"); recency reversed; frequency and
    monetary binned among the positive values only, the others scoring 1."""

    def label(col):
        return pd.qcut(features[col].rank(method="first"), bins, labels=False).astype(int)

    def positive_label(col):
        x = features[col]
        out = pd.Series(0, index=features.index)
        if (x > 0).sum() >= 2:
            out[x > 0] = pd.qcut(x[x > 0].rank(method="first"), bins, labels=False).astype(int)
        return out

    return pd.DataFrame({"r_score": bins - label("recency_days"), "f_score": positive_label("frequency") + 1,
                         "m_score": positive_label("monetary") + 1}, index=features.index)


#: RFM segments only customers who bought can be in.
BUYER_SEGMENTS = {"Champions", "Loyal customers", "Potential loyalists", "At risk", "Can't lose them"}


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


@pytest.mark.parametrize("bins", [2, 3, 5], ids=lambda b: f"bins{b}")
def test_customers_who_never_bought_score_one(backend, bins):
    feats = rfm_features(997, seed=5)
    feats.loc[feats["frequency"] == 0, "monetary"] = 0.0
    frame = backend.frame.from_pandas(feats) if backend.is_gpu else feats
    out = to_host(rfm_scores(frame, bins=bins))
    never = feats["frequency"] == 0
    assert never.sum() > 300
    assert (out.loc[never, ["f_score", "m_score"]] == 1).all().all()
    assert not set(out.loc[never, "rfm_segment"]) & BUYER_SEGMENTS
    assert set(out.loc[never, "rfm_segment"]) <= {"New customers", "Promising", "About to sleep", "Lost"}
    # the buyers fill every score: the quantiles are taken among them
    assert set(out.loc[feats["monetary"] > 0, "m_score"]) == set(range(1, bins + 1))


def test_few_positive_values_score_one():
    feats = pd.DataFrame({"recency_days": [1.0, 2.0, 3.0], "frequency": [0.0, 2.0, 0.0],
                          "monetary": [-5.0, 0.0, 0.0]})
    out = rfm_scores(feats, bins=3)
    assert out["f_score"].tolist() == [1, 1, 1] and out["m_score"].tolist() == [1, 1, 1]


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
    feats = pd.DataFrame({"recency_days": [0.0, 10.0, 5.0], "frequency": [5.0, 0.0, 1.0],
                          "monetary": [9.0, 0.0, 2.0]})
    out = rfm_scores(feats, bins=2)
    assert out["rfm_segment"].tolist() == ["Champions", "Lost", "New customers"]


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
