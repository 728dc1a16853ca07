"""Tests of the feature weights (gpuseg.prep.represent)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata, spearmanr

from gpuseg.prep.represent import average_ranks, feature_weights, spearman


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40))
def test_average_ranks_match_scipy_with_ties(values):
    x = np.asarray(values, dtype=np.float64)
    np.testing.assert_allclose(average_ranks(x), rankdata(x, method="average") - 1)


def test_spearman_matches_scipy_and_constant_columns_correlate_zero():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 300), rng.normal(size=300), rng.exponential(size=300)]).astype(float)
    X[:, 2] += X[:, 1]
    np.testing.assert_allclose(spearman(X), spearmanr(X).statistic, atol=1e-12)
    C = spearman(np.column_stack([X, np.ones(300)]))
    assert np.all(C[3, :3] == 0) and C[3, 3] == 1


def _segments(n=3000, seed=0):
    """Three segments in two informative columns, one column that repeats the first twice
    over (three copies), one pure-noise column and one near-constant column."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    informative = centers[which] + rng.normal(size=(n, 2))
    copies = informative[:, :1] * np.array([1.0, 2.0, -0.5]) + rng.normal(scale=0.05, size=(n, 3))
    noise = rng.normal(size=(n, 1))
    flat = np.where(rng.random((n, 1)) < 0.995, 0.0, 1.0)
    X = np.hstack([copies, informative[:, 1:], noise, flat])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(np.float32), which


NAMES = ["a", "a2", "a3", "b", "noise", "flat"]


def test_redundant_noise_and_near_constant_features_are_weighted_apart():
    X, _ = _segments()
    fw = feature_weights(X, NAMES, {n: "g" for n in NAMES})
    w = dict(zip(NAMES, fw.weights))
    rows = {r["feature"]: r for r in fw.rows}
    assert w["flat"] == 0 and rows["flat"]["role"] == "left out" and "near-constant" in rows["flat"]["reason"]
    # the three copies share the weight of one feature
    assert rows["a"]["redundancy_group"] == ["a2", "a3"]
    assert w["a"] == pytest.approx(w["a2"], rel=0.05) and w["a"] < 0.65
    assert not rows["b"]["redundancy_group"]
    # noise shares no structure with the rest
    assert rows["noise"]["relevance"] < 0.02 < 0.1 < rows["b"]["relevance"]
    assert w["noise"] < 0.25 * w["b"]
    assert fw.kept == ["a", "a2", "a3", "b", "noise"]
    assert "1 left out (flat)" in fw.summary() and "down-weighted" in fw.summary()


def test_weights_make_kmeans_find_the_segments():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    X, which = _segments(seed=3)
    plain = KMeans(3, n_init=5, random_state=0).fit_predict(X)
    weighted = KMeans(3, n_init=5, random_state=0).fit_predict(X * feature_weights(X, NAMES).weights)
    assert adjusted_rand_score(which, weighted) > adjusted_rand_score(which, plain) + 0.1


def test_describe_only_by_feature_and_by_group():
    X, _ = _segments()
    groups = {"a": "rfm", "a2": "rfm", "a3": "rfm", "b": "time", "noise": "time", "flat": "time"}
    fw = feature_weights(X, NAMES, groups, describe_only=("time", "a3"))
    assert fw.kept == ["a", "a2"]
    assert all("describe-only" in r["reason"] for r in fw.rows if r["feature"] in ("b", "noise", "a3"))


def test_switching_the_rules_off_gives_plain_weights():
    X, _ = _segments()
    fw = feature_weights(X, NAMES, near_constant=None, redundancy=None, relevance=False)
    np.testing.assert_array_equal(fw.weights, np.ones(6))


def test_a_sample_gives_the_same_decisions_and_is_seeded():
    X, _ = _segments(n=6000)
    a = feature_weights(X, NAMES, sample=2000, random_state=1)
    b = feature_weights(X, NAMES, sample=2000, random_state=1)
    full = feature_weights(X, NAMES)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert [r["redundancy_group"] for r in a.rows] == [r["redundancy_group"] for r in full.rows]
    assert a.kept == full.kept


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="5 names"):
        feature_weights(np.zeros((10, 6)), NAMES[:5])


def test_the_summary_names_the_features_down_weighted_relative_to_the_best():
    """The weights follow relevance relative to the best; the line named only those under an
    absolute 0.05, missing a feature whose weight was cut to 0.43 of the best's."""
    from gpuseg.prep.represent import FeatureWeights

    rows = [{"feature": f, "weight": w, "relevance": rel, "redundancy_group": []}
            for f, w, rel in (("recency", 1.0, 0.8), ("tenure", 0.43, 0.15), ("share_x", 0.19, 0.03))]
    line = FeatureWeights(np.array([1.0, 0.43, 0.19]), rows).summary()
    assert "2 down-weighted to under half for lack of shared structure (tenure, share_x)" in line


@pytest.mark.parametrize("one_time", [1.0, 0.35])
def test_day_part_shares_of_one_order_each_do_not_outweigh_what_tells_customers_apart(one_time):
    """Most customers with one order: their day-part shares are 0 or 1, corners of the share
    simplex that K-means on the other shares finds perfectly, so each share looked relevant
    (CDNOW with random order hours: the afternoon share outweighed recency and split one-time
    buyers by the hour they bought). Measured against the other features alone, random hours
    carry no structure and recency, which does, keeps its weight."""
    rng = np.random.default_rng(0)
    n = 3000
    lapsed = rng.random(n) < 0.5
    recency = np.where(lapsed, rng.normal(300, 20, n), rng.normal(10, 5, n))
    spend = rng.lognormal(np.where(lapsed, 3.0, 4.0), 0.5, n)  # the active ones spend more
    part = rng.integers(0, 5, n)  # the day part of each customer's one order, at random
    shares = np.eye(5)[part]
    # the others (repeat buyers) spread over the day parts (a shop of 35% one-time buyers)
    repeat = rng.random(n) >= one_time
    shares[repeat] = rng.dirichlet(np.ones(5) * 3, int(repeat.sum()))
    X = np.column_stack([recency, spend, shares])
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    names = ["recency_days", "monetary", *(f"share_{p}" for p in ("night", "morning", "afternoon", "evening", "late"))]
    groups = {"recency_days": "rfm", "monetary": "rfm", **{n_: "time" for n_ in names[2:]}}
    fw = feature_weights(X, names, groups)
    w = dict(zip(names, fw.weights))
    assert max(w[n_] for n_ in names[2:]) < 0.5 * w["recency_days"]


def test_only_shares_count_as_members_of_a_share_group():
    """The category group also holds ``brands``, a count: only the bounded columns are
    shares, so a count neither keeps the shares from their corner test nor is measured as one."""
    from gpuseg.prep.represent import _share_families

    rng = np.random.default_rng(1)
    shares = np.eye(3)[rng.integers(0, 3, 500)]
    brands = rng.integers(1, 21, 500).astype(float)  # at its lowest or highest for a tenth of customers
    S = np.column_stack([rng.normal(size=500), shares, brands])
    names = ["recency_days", "cat_a", "cat_b", "cat_c", "brands"]
    groups = {"recency_days": "rfm", **{n: "category" for n in names[1:]}}
    idx = np.arange(5)
    assert list(_share_families(S, names, groups, idx, bounded=["cat_a", "cat_b", "cat_c"])) == [-1, 0, 0, 0, -1]
    assert list(_share_families(S, names, groups, idx)) == [-1] * 5  # brands is never at a corner
