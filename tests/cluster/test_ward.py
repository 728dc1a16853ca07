from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.cluster.hierarchy import dendrogram, fcluster, is_valid_linkage, linkage
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from gpuseg.backend import to_host
from gpuseg.cluster.ward import WardClustering, cut_linkage, ward_linkage


@pytest.fixture(scope="module")
def blobs():
    """Overlapping blobs: Ward's tree is not trivial, but has no ties."""
    X, y = make_blobs(1500, n_features=5, centers=6, cluster_std=2.0, random_state=3)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def separated():
    """Well-separated blobs: every sensible clustering finds them."""
    X, y = make_blobs(600, n_features=3, centers=4, cluster_std=0.5, center_box=(-20, 20), random_state=1)
    return X, y


@pytest.fixture(scope="module")
def large_blobs():
    X, y = make_blobs(50_000, n_features=4, centers=6, cluster_std=1.0, random_state=7)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def large_fit(large_blobs):
    return WardClustering(6, random_state=0).fit(large_blobs[0])


# --- the weighted Ward tree -------------------------------------------------------------


@pytest.mark.parametrize("n, d, seed", [(2, 1, 0), (40, 2, 1), (300, 5, 2), (900, 10, 3)],
                         ids=["2-points", "40x2", "300x5", "900x10"])
def test_unit_weights_reproduce_scipy_ward(n, d, seed):
    X = np.random.default_rng(seed).normal(size=(n, d))
    Z = ward_linkage(X)
    ref = linkage(X, method="ward")
    np.testing.assert_allclose(Z[:, 2], ref[:, 2], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(Z[:, [0, 1, 3]], ref[:, [0, 1, 3]])


def test_weights_act_as_repeated_points():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 3))
    w = rng.integers(1, 5, size=60)
    Z = ward_linkage(X, sample_weight=w.astype(float))
    ref = linkage(np.repeat(X, w, axis=0), method="ward")
    # the repeats merge first at height 0; the rest of the tree is the weighted one
    assert np.all(ref[: w.sum() - 60, 2] < 1e-7)
    np.testing.assert_allclose(Z[:, 2], ref[w.sum() - 60 :, 2], rtol=1e-9)


def test_merge_height_is_ward_distance_of_the_weighted_centroids():
    Z = ward_linkage(np.array([[0.0, 0.0], [3.0, 4.0]]), sample_weight=np.array([2.0, 3.0]))
    cost = 2 * 3 / 5 * 25.0  # n_a n_b / (n_a + n_b) ||c_a - c_b||^2
    assert Z[0, 2] == pytest.approx(np.sqrt(2 * cost), rel=1e-12)
    assert Z[0, 3] == 2  # SciPy's count column counts leaves


def test_cut_matches_fcluster_maxclust():
    X = np.random.default_rng(5).normal(size=(200, 3))
    Z = ward_linkage(X)
    for k in (1, 2, 5, 17, 200):
        labels = cut_linkage(Z, k)
        assert labels.dtype == np.int32
        assert len(np.unique(labels)) == k
        assert adjusted_rand_score(fcluster(Z, k, criterion="maxclust"), labels) == 1.0


@pytest.mark.parametrize(
    "X, w, match",
    [
        (np.zeros((1, 2)), None, "at least 2"),
        (np.zeros(4), None, "2-D"),
        (np.zeros((3, 2)), np.array([1.0, 0.0, 1.0]), "positive"),
        (np.zeros((3, 2)), np.ones(2), "shape"),
        (np.array([[0.0], [np.nan]]), None, "NaN"),
    ],
    ids=["one-point", "1-d", "zero-weight", "weight-shape", "nan"],
)
def test_ward_linkage_invalid(X, w, match):
    with pytest.raises(ValueError, match=match):
        ward_linkage(X, sample_weight=w)


# --- the estimator: exact mode ------------------------------------------------------------


def test_exact_mode_equals_scikit_learn(blobs):
    X, y = blobs
    ours = WardClustering(6).fit(X)
    ref = AgglomerativeClustering(n_clusters=6, linkage="ward").fit(X)
    assert ours.exact_ and ours.micro_centers_ is None and ours.micro_labels_ is None
    assert adjusted_rand_score(ref.labels_, ours.labels_) == 1.0
    assert adjusted_rand_score(y, ours.labels_) > 0.9
    assert ours.labels_.dtype == np.int32
    assert ours.linkage_.shape == (len(X) - 1, 4) and ours.n_leaves_ == len(X)
    np.testing.assert_allclose(ours.linkage_[:, 2], linkage(X.astype(np.float64), "ward")[:, 2], atol=1e-9)


def test_api_and_centres(separated):
    X, y = separated
    est = WardClustering(4)
    assert est.fit(X) is est
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    np.testing.assert_array_equal(est.fit_predict(X), est.labels_)
    means = np.stack([X[est.labels_ == c].mean(axis=0) for c in range(4)])
    np.testing.assert_allclose(est.cluster_centers_, means, rtol=1e-12)
    assert est.n_features_in_ == 3
    assert adjusted_rand_score(y, est.labels_) == 1.0


def test_labels_invariant_to_row_order(separated):
    X, _ = separated
    perm = np.random.default_rng(0).permutation(len(X))
    a = WardClustering(4).fit(X).labels_
    b = WardClustering(4).fit(X[perm]).labels_
    assert adjusted_rand_score(a[perm], b) == 1.0


def test_integer_input_is_accepted():
    X = np.array([[0, 0], [0, 1], [9, 9], [9, 8]])
    est = WardClustering(2).fit(X)
    assert est.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(est.predict(X), est.labels_)


# --- the estimator: micro-cluster mode ----------------------------------------------------


def test_micro_mode_recovers_blobs(large_blobs, large_fit):
    X, y = large_blobs
    est = large_fit
    assert not est.exact_
    assert est.n_leaves_ == 2000 == len(est.micro_centers_)  # min(2000, max(200, 20 sqrt(n)))
    assert est.linkage_.shape == (1999, 4) and is_valid_linkage(est.linkage_)
    assert adjusted_rand_score(y, est.labels_) >= 0.9
    sub = np.random.default_rng(1).choice(len(X), 3000, replace=False)
    ref = AgglomerativeClustering(n_clusters=6, linkage="ward").fit(X[sub]).labels_
    assert adjusted_rand_score(ref, est.labels_[sub]) >= 0.9


def test_micro_mode_labels_follow_micro_clusters(large_blobs, large_fit):
    X, _ = large_blobs
    est = large_fit
    assert est.micro_labels_.dtype == np.int32 and est.labels_.dtype == np.int32
    # each micro-cluster lies inside one final cluster
    pairs = np.unique(np.stack([est.micro_labels_, est.labels_]), axis=1)
    assert pairs.shape[1] == est.n_leaves_
    # predict goes through the nearest micro-centroid: it reproduces the training labels
    assert np.mean(est.predict(X) == est.labels_) > 0.999
    leaves = dendrogram(est.linkage_, no_plot=True, truncate_mode="lastp", p=12)
    assert len(leaves["leaves"]) == 12


def test_micro_mode_same_seed_same_result():
    X, _ = make_blobs(3000, n_features=3, centers=5, random_state=2)
    a = WardClustering(5, n_micro=150, random_state=3).fit(X)
    b = WardClustering(5, n_micro=150, random_state=3).fit(X)
    assert not a.exact_ and a.n_leaves_ == 150
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.linkage_, b.linkage_)


def test_micro_mode_on_well_separated_data_is_row_order_invariant(separated):
    X, _ = separated
    perm = np.random.default_rng(1).permutation(len(X))
    a = WardClustering(4, n_micro=50, random_state=0).fit(X).labels_
    b = WardClustering(4, n_micro=50, random_state=0).fit(X[perm]).labels_
    assert adjusted_rand_score(a[perm], b) == 1.0


def test_micro_mode_drops_empty_micro_clusters():
    # 30 distinct rows repeated: K-means cannot fill 100 micro-clusters
    base = np.random.default_rng(3).normal(size=(30, 2))
    X = np.repeat(base, 40, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn: fewer distinct points than clusters
        est = WardClustering(3, n_micro=100, random_state=0).fit(X)
    assert est.n_leaves_ <= 30 and len(est.micro_centers_) == est.n_leaves_
    assert set(np.unique(est.labels_)) == {0, 1, 2}
    assert est.micro_labels_.max() == est.n_leaves_ - 1


def test_n_micro_at_least_n_samples_means_exact(separated):
    X, _ = separated
    assert WardClustering(4, n_micro=len(X)).fit(X).exact_
    assert WardClustering(4, exact_max=100).fit(X).exact_ is False


# --- properties, errors, tooling ----------------------------------------------------------


@st.composite
def data_and_k(draw):
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 4))
    X = draw(arrays(np.float64, (n, d), elements=st.floats(-1e3, 1e3, allow_nan=False, width=32)))
    k = draw(st.integers(1, n))
    return X, k


@settings(max_examples=25, deadline=None)
@given(data_and_k(), st.sampled_from(["exact", "micro"]))
def test_properties(case, mode):
    X, k = case
    n_micro = "auto" if mode == "exact" else max(2, k, min(len(X) - 1, 2 * k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = WardClustering(k, n_micro=n_micro, random_state=0).fit(X)
    labels = est.labels_
    assert labels.shape == (len(X),) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() < k  # every point labelled, k clusters at most
    assert len(np.unique(labels)) == labels.max() + 1
    lo, hi = X.min(axis=0), X.max(axis=0)
    tol = 1e-9 * (1 + np.abs(X).max())
    assert np.all(est.cluster_centers_ >= lo - tol) and np.all(est.cluster_centers_ <= hi + tol)


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_clusters": 6}, np.zeros((5, 2)), "n_samples=5"),
        ({"n_clusters": 0}, np.zeros((5, 2)), "positive"),
        ({}, np.zeros(5), "2-D"),
        ({"n_micro": 1}, np.zeros((5, 2)), "n_micro"),
        ({"n_micro": 2, "n_clusters": 3}, np.zeros((5, 2)), "n_micro=2"),
        ({"exact_max": 1}, np.zeros((5, 2)), "exact_max"),
        ({}, np.array([[0.0], [np.inf]]), "NaN or infinity"),
    ],
    ids=["k-too-big", "zero-k", "1-d", "n-micro-1", "n-micro-below-k", "exact-max", "inf"],
)
def test_invalid(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        WardClustering(**{"n_clusters": 2, **kwargs}).fit(X)


@pytest.mark.parametrize("k", [True, False, 2.0])
def test_n_clusters_must_be_an_integer_not_a_bool(k):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        WardClustering(k).fit(X)


def test_predict_before_fit():
    with pytest.raises(AttributeError, match="not fitted"):
        WardClustering(2).predict(np.zeros((3, 2)))


def test_sklearn_clone():
    from sklearn.base import clone

    est = clone(WardClustering(3, n_micro=300, random_state=4))
    assert est.get_params() == {"n_clusters": 3, "n_micro": 300, "exact_max": 5000, "random_state": 4}
    assert repr(est) == "WardClustering(n_clusters=3, n_micro=300, random_state=4)"


# --- the same code on NumPy and CuPy ------------------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "micro"])
def test_array_types_and_parity(xp, separated, mode, rapids_if_cupy):
    X, _ = separated
    n_micro = "auto" if mode == "exact" else 60
    ref = WardClustering(4, n_micro=n_micro, random_state=0).fit(X)
    est = WardClustering(4, n_micro=n_micro, random_state=0).fit(xp.asarray(X))
    assert type(est.labels_) is type(xp.asarray(X)) and est.labels_.dtype == xp.int32
    assert type(est.cluster_centers_) is type(xp.asarray(X))
    assert isinstance(est.linkage_, np.ndarray)
    assert adjusted_rand_score(ref.labels_, to_host(est.labels_)) == 1.0
    assert adjusted_rand_score(ref.labels_, to_host(est.predict(xp.asarray(X)))) == 1.0
    labels = to_host(est.labels_)
    same = [int(np.bincount(labels[ref.labels_ == c]).argmax()) for c in range(4)]
    np.testing.assert_allclose(to_host(est.cluster_centers_)[same], ref.cluster_centers_, rtol=1e-6, atol=1e-9)
