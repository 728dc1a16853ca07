from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from gpuseg.backend import to_host
from gpuseg.cluster.minibatch import MiniBatchKMeans


def customer_like_matrix(n: int = 20_000, d: int = 30, seed: int = 0) -> np.ndarray:
    """Standardised customer-feature-like data: 6 overlapping groups, correlated features,
    softplus-skewed spend/count columns and 0/1 indicator columns."""
    rng = np.random.RandomState(seed)
    group = rng.randint(0, 6, n)
    centres = rng.normal(size=(6, d)) * 1.5
    mixing = np.eye(d) + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d)
    Z = centres[group] + rng.normal(size=(n, d)) @ mixing
    Z[:, :10] = np.log1p(np.exp(Z[:, :10]))
    Z[:, 10:15] = (Z[:, 10:15] > 0.5).astype(float)
    return (Z - Z.mean(axis=0)) / Z.std(axis=0)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(6000, n_features=8, centers=6, cluster_std=1.0, random_state=3)
    return X, y


@pytest.fixture(scope="module")
def customers():
    return customer_like_matrix()


@pytest.fixture(scope="module")
def separated():
    X, y = make_blobs(900, n_features=3, centers=4, cluster_std=0.5, center_box=(-20, 20), random_state=1)
    return X, y


# ------------------------------------------------------------------ scikit-learn parity


@pytest.mark.parametrize(
    "data, k, init",
    [("blobs", 6, "k-means++"), ("customers", 8, "k-means++"), ("blobs", 6, "random")],
    ids=["blobs-k6", "customers-20kx30-k8", "blobs-k6-random-init"],
)
def test_inertia_within_3_percent_of_scikit_learn(request, data, k, init):
    X = request.getfixturevalue(data)
    X = X[0] if isinstance(X, tuple) else X
    ours = [MiniBatchKMeans(k, init=init, batch_size=1024, random_state=s).fit(X).inertia_ for s in range(3)]
    with threadpool_limits(1):  # scikit-learn's OpenMP threads crawl on a busy 2-core machine
        ref = [SkMiniBatchKMeans(k, init=init, batch_size=1024, random_state=s).fit(X).inertia_ for s in range(3)]
    assert np.mean(ours) == pytest.approx(np.mean(ref), rel=0.03)


def test_update_rule_matches_scikit_learn_partial_fit(customers):
    """Same start, same batches, no reassignment: the running means agree to rounding."""
    X = customers[:4000]
    init = X[[0, 100, 200, 300, 400]]
    ours = MiniBatchKMeans(5, init=init, reassignment_ratio=0.0)
    ref = SkMiniBatchKMeans(5, init=init, n_init=1, reassignment_ratio=0.0)
    for batch in np.array_split(X, 8):
        ours.partial_fit(batch)
        ref.partial_fit(batch)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours._counts, ref._counts)


def test_first_steps_are_running_means(blobs):
    """Step 1 moves each centre onto the mean of its batch points; step 2 to the mean of both batches."""
    X = blobs[0]
    init = X[:3].copy()
    a, b = X[100:400], X[400:700]
    model = MiniBatchKMeans(3, init=init, reassignment_ratio=0.0).partial_fit(a)
    la = np.argmin(((a[:, None, :] - init[None]) ** 2).sum(-1), axis=1)
    step1 = np.stack([a[la == j].mean(axis=0) if (la == j).any() else init[j] for j in range(3)])
    np.testing.assert_allclose(model.cluster_centers_, step1, rtol=1e-10)
    model.partial_fit(b)
    lb = np.argmin(((b[:, None, :] - step1[None]) ** 2).sum(-1), axis=1)
    for j in range(3):
        points = np.vstack([a[la == j], b[lb == j]])
        np.testing.assert_allclose(model.cluster_centers_[j], points.mean(axis=0), rtol=1e-10)
    assert model._counts.sum() == len(a) + len(b)
    assert model.n_steps_ == 2


def test_partial_fit_stream_converges_near_kmeans(customers):
    X = customers
    rng = np.random.RandomState(0)
    model = MiniBatchKMeans(8, random_state=0)
    for _ in range(3):
        for batch in np.array_split(X[rng.permutation(len(X))], 40):
            model.partial_fit(batch)
    with threadpool_limits(1):
        full = SkKMeans(8, n_init=3, random_state=0).fit(X).inertia_
    assert -model.score(X) <= 1.03 * full
    assert model.n_steps_ == 120


# ------------------------------------------------------------------ behaviour


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fitted_attributes_and_predict(blobs, dtype):
    X = blobs[0].astype(dtype)
    model = MiniBatchKMeans(6, batch_size=256, random_state=0)
    assert model.fit(X) is model
    assert model.cluster_centers_.shape == (6, 8) and model.cluster_centers_.dtype == dtype
    assert model.labels_.dtype == np.int32 and model.labels_.shape == (len(X),)
    assert model.n_features_in_ == 8
    assert 1 <= model.n_iter_ <= model.max_iter
    assert model.n_iter_ == int(np.ceil(model.n_steps_ * 256 / len(X)))
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    distances = model.transform(X)
    assert distances.shape == (len(X), 6)
    np.testing.assert_array_equal(distances.argmin(axis=1), model.labels_)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-6)
    assert adjusted_rand_score(blobs[1], model.labels_) > 0.99


def test_float32_close_to_float64(customers):
    a = MiniBatchKMeans(8, random_state=4).fit(customers)
    b = MiniBatchKMeans(8, random_state=4).fit(customers.astype(np.float32))
    assert b.inertia_ == pytest.approx(a.inertia_, rel=1e-2)


def test_same_seed_same_result(customers):
    a = MiniBatchKMeans(8, init="random", random_state=7).fit(customers)
    b = MiniBatchKMeans(8, init="random", random_state=7).fit(customers)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.n_steps_ == b.n_steps_
    c = MiniBatchKMeans(8, init="random", random_state=8).fit(customers)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


def test_labels_invariant_to_row_order(separated):
    X, _ = separated
    perm = np.random.RandomState(0).permutation(len(X))
    a = MiniBatchKMeans(4, batch_size=128, random_state=0).fit(X).labels_
    b = MiniBatchKMeans(4, batch_size=128, random_state=0).fit(X[perm]).labels_
    back = np.empty_like(b)
    back[perm] = b
    assert adjusted_rand_score(a, back) == 1.0


@pytest.mark.parametrize("ratio, expect_all_used", [(0.01, True), (0.0, False)], ids=["reassign", "no-reassign"])
def test_starved_centre_is_reassigned(separated, ratio, expect_all_used):
    X, _ = separated
    init = np.vstack([X[:3], [[1e6, 1e6, 1e6]]])  # the last centre never wins a point
    model = MiniBatchKMeans(4, init=init, batch_size=64, reassignment_ratio=ratio, random_state=0).fit(X)
    assert (len(np.unique(model.labels_)) == 4) is expect_all_used


def test_stopping_rules(blobs):
    X = blobs[0]
    full = MiniBatchKMeans(6, batch_size=500, max_iter=2, max_no_improvement=None, random_state=0).fit(X)
    assert full.n_steps_ == 2 * len(X) // 500 and full.n_iter_ == 2
    early = MiniBatchKMeans(6, batch_size=500, max_iter=50, max_no_improvement=3, random_state=0).fit(X)
    assert early.n_steps_ < 50 * len(X) // 500
    by_tol = MiniBatchKMeans(6, batch_size=500, max_iter=50, tol=1e-2, max_no_improvement=None, random_state=0).fit(X)
    assert by_tol.n_steps_ < 50 * len(X) // 500


def test_scikit_learn_tooling():
    from sklearn.base import clone

    model = MiniBatchKMeans(3, batch_size=64, init="random", random_state=2)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.set_params(n_clusters=4).n_clusters == 4
    assert "batch_size=64" in repr(model)


# ------------------------------------------------------------------ properties


@settings(max_examples=30, deadline=None)
@given(
    X=arrays(np.float64, st.tuples(st.integers(6, 60), st.integers(1, 4)), elements=st.floats(-100, 100, width=32)),
    k=st.integers(1, 5),
    batch_size=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_properties(X, k, batch_size, seed):
    model = MiniBatchKMeans(k, batch_size=batch_size, max_iter=5, random_state=seed).fit(X)
    labels = model.labels_
    assert labels.shape == (len(X),)
    assert labels.min() >= 0 and labels.max() < k
    assert len(np.unique(labels)) <= k
    slack = 1e-9 * (1 + np.abs(X).max())
    assert (model.cluster_centers_ >= X.min(axis=0) - slack).all()
    assert (model.cluster_centers_ <= X.max(axis=0) + slack).all()
    assert np.isfinite(model.inertia_)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_clusters": 6}, np.zeros((5, 2)), "n_samples=5"),
        ({"n_clusters": 0}, np.zeros((5, 2)), "positive"),
        ({}, np.zeros(5), "2-D"),
        ({"init": "best"}, np.zeros((5, 2)), "init"),
        ({"init": np.zeros((3, 2))}, np.zeros((5, 2)), "init array"),
        ({"batch_size": 0}, np.zeros((5, 2)), "batch_size"),
        ({"max_iter": 0}, np.zeros((5, 2)), "max_iter"),
        ({"tol": -1.0}, np.zeros((5, 2)), "tol"),
        ({"n_init": 0}, np.zeros((5, 2)), "n_init"),
        ({"reassignment_ratio": -0.1}, np.zeros((5, 2)), "reassignment_ratio"),
    ],
    ids=["k-too-big", "zero-k", "1-d", "bad-init", "init-shape", "batch-size", "max-iter", "tol", "n-init", "ratio"],
)
def test_invalid(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        MiniBatchKMeans(**{"n_clusters": 2, **kwargs}).fit(X)


def test_use_before_fit_and_wrong_width():
    with pytest.raises(AttributeError, match="not fitted"):
        MiniBatchKMeans(2).predict(np.zeros((3, 2)))
    model = MiniBatchKMeans(2, random_state=0).fit(np.arange(20.0).reshape(10, 2))
    with pytest.raises(ValueError, match="X has 3 features, but MiniBatchKMeans is expecting 2"):
        model.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(np.zeros((3, 3)))


# ------------------------------------------------------------------ devices


def test_same_result_on_every_array_module(xp, blobs):
    X = blobs[0].astype(np.float32)
    ref = MiniBatchKMeans(6, random_state=0).fit(X)
    model = MiniBatchKMeans(6, random_state=0).fit(xp.asarray(X))
    assert type(model.labels_) is type(xp.asarray(X))
    assert model.labels_.dtype == xp.int32
    assert adjusted_rand_score(ref.labels_, to_host(model.labels_)) > 0.99
    assert model.inertia_ == pytest.approx(ref.inertia_, rel=1e-3)
    stream = MiniBatchKMeans(6, random_state=0)
    for batch in np.array_split(X, 6):
        stream.partial_fit(xp.asarray(batch))
    assert type(stream.cluster_centers_) is type(xp.asarray(X))
    assert -stream.score(xp.asarray(X)) <= 1.05 * ref.inertia_


# --- state and updates (what saved models and `gpuseg update` use) --------------------------------


def test_from_arrays_then_partial_fit_moves_centres_to_running_means():
    """A NumPy reference: each centre moves to the mean of everything it has been given."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0]])
    counts = np.array([4.0, 1.0])
    batch = np.vstack([rng.normal(0, 1, (6, 2)), rng.normal(10, 1, (3, 2))])
    est = MiniBatchKMeans.from_arrays(centers, counts, reassignment_ratio=0.0).partial_fit(batch)
    near = np.argmin(((batch[:, None, :] - centers[None]) ** 2).sum(axis=2), axis=1)
    want = np.stack([(centers[j] * counts[j] + batch[near == j].sum(axis=0)) / (counts[j] + (near == j).sum())
                     for j in range(2)])
    state = est.to_arrays()
    np.testing.assert_allclose(state["cluster_centers"], want, rtol=1e-12)
    np.testing.assert_allclose(state["counts"], counts + np.bincount(near, minlength=2))
    assert est.n_steps_ == 1 and est.n_features_in_ == 2
    np.testing.assert_array_equal(est.predict(batch), near)


def test_running_means_stay_float64_across_float32_batches():
    """float32 batches: the running means are kept in float64 (cluster_centers_ is the
    batch's dtype), so many small steps do not accumulate float32 rounding."""
    X = customer_like_matrix(4_000, 8).astype(np.float32)
    est = MiniBatchKMeans.from_arrays(X[:5].astype(np.float64), np.ones(5), reassignment_ratio=0.0)
    ref_c, ref_n = X[:5].astype(np.float64), np.ones(5)
    for lo in range(0, len(X), 256):
        b = X[lo: lo + 256]
        est.partial_fit(b)
        lab = np.argmin(((b[:, None, :] - ref_c.astype(np.float32)[None]) ** 2).sum(axis=2), axis=1)
        for j in range(5):
            m = (lab == j).sum()
            if m:
                ref_c[j] = (ref_c[j] * ref_n[j] + b[lab == j].astype(np.float64).sum(axis=0)) / (ref_n[j] + m)
                ref_n[j] += m
    assert est.cluster_centers_.dtype == np.float32
    np.testing.assert_allclose(est.to_arrays()["cluster_centers"], ref_c, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(est.counts_, ref_n)


def test_to_arrays_round_trip_after_fit():
    X = customer_like_matrix(2_000, 6)
    est = MiniBatchKMeans(4, random_state=0).fit(X)
    state = est.to_arrays()
    back = MiniBatchKMeans.from_arrays(state["cluster_centers"], state["counts"])
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_allclose(back.counts_, est.counts_)


def test_counts_before_fit_is_an_attribute_error():
    with pytest.raises(AttributeError, match="not fitted"):
        MiniBatchKMeans(2).counts_
