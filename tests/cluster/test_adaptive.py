"""Tests of AdaptiveKMeans (K-means in a metric learned from its own segments)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.metrics import adjusted_rand_score

from gpuseg.cluster import AdaptiveKMeans
from gpuseg.cluster.adaptive import _moments, _within, nearest_in_metric, pooled_metric, trace_criterion


def parallel_bands(n=1500, k=3, seed=0):
    """k long parallel bands: spread 2.5 along the first axis, 0.5 across, 2.5 apart across."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, k, n)
    X = np.column_stack([rng.normal(0, 2.5, n), rng.normal(0, 0.5, n) + 2.5 * which, rng.normal(0, 1, n)])
    return X.astype(np.float32), which


@pytest.fixture(scope="module")
def personas():
    """The built-in personas' weighted features (3,000 customers) and their truth."""
    import pandas as pd

    from gpuseg.backend import select
    from gpuseg.config import FeatureConfig
    from gpuseg.io.readers import from_frame
    from gpuseg.io.synthetic import generate_events
    from gpuseg.config import CleanConfig
    from gpuseg.prep import FeatureScaler, clean, customer_features
    from gpuseg.prep.represent import feature_weights

    be = select("cpu")
    events, truth = generate_events(3000, seed=11)
    feats = customer_features(clean(from_frame(events, be, "events"), CleanConfig(), be), FeatureConfig())
    X = FeatureScaler(bounded=[i for i, n in enumerate(feats.names) if n in feats.bounded]).fit_transform(
        feats.frame.to_numpy(np.float64))
    X = X * feature_weights(X, feats.names, feats.groups).weights.astype(np.float32)
    persona = truth.set_index("user_id")["persona"].reindex(feats.frame.index)
    return X, pd.factorize(persona)[0]


def test_beats_kmeans_on_the_built_in_personas(personas):
    X, which = personas
    km = SkKMeans(6, n_init=10, random_state=0).fit_predict(X)
    est = AdaptiveKMeans(6, random_state=0).fit(X)
    assert adjusted_rand_score(which, est.labels_) > adjusted_rand_score(which, km) + 0.1
    assert est.labels_.dtype == np.int32 and est.cluster_centers_.shape == (6, X.shape[1])
    assert 0 <= est.criterion_ <= 5 + 1e-9


def test_on_long_bands_it_does_no_worse_than_kmeans():
    X, which = parallel_bands()
    km = SkKMeans(3, n_init=10, random_state=0).fit_predict(X)
    est = AdaptiveKMeans(3, random_state=0).fit(X)
    assert adjusted_rand_score(which, est.labels_) >= adjusted_rand_score(which, km) - 0.02


def test_predict_in_the_learned_metric_reproduces_the_labels():
    X, _ = parallel_bands(seed=1)
    est = AdaptiveKMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    d = est.transform(X)
    assert d.shape == (X.shape[0], 3)
    np.testing.assert_array_equal(d.argmin(axis=1), est.predict(X))
    np.testing.assert_allclose(est.embedding_, X @ est.metric_.astype(np.float32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params", [{"tol": 0.05}, {"tol": 0.05, "max_samples": 1000}, {"max_iter": 1}])
def test_the_labels_are_the_models_own_assignment(personas, params):
    """The adaptation stops while a few samples would still move (``tol``, ``max_iter``);
    the labels are then the fitted model's assignment, so that predict (and a saved model)
    gives them back exactly, and the inertia is that of those segments."""
    X, _ = personas
    est = AdaptiveKMeans(6, random_state=0, **params).fit(X)
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    T, mean, _ = _moments(X)
    W, _, _ = _within(T, mean, X, est.labels_, 6)
    assert est.inertia_ == pytest.approx(np.trace(W) * X.shape[0], rel=1e-9)
    np.testing.assert_allclose(est.embedding_centers_, est.cluster_centers_ @ est.metric_.astype(np.float32),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_nearest_in_metric_is_the_nearest_centre_after_the_map(seed):
    """Against the distances of the mapped rows to the mapped centres, in float64 (NumPy
    reference), over chunks smaller than the data."""
    rng = np.random.default_rng(seed)
    d, k = 7, 2 + seed * 3
    X = rng.normal(size=(503, d)) * rng.uniform(0.1, 5.0, d)
    A = rng.normal(size=(d, d))
    centers = rng.normal(size=(k, d))
    ref = (((X @ A)[:, None, :] - (centers @ A)[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    got = nearest_in_metric(X, A, centers, chunk_size=100)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)
    got32 = nearest_in_metric(X.astype(np.float32), A, centers.astype(np.float32), chunk_size=100)
    assert np.mean(got32 == ref) > 0.99  # float32 rounding may flip a near tie


def test_shrinkage_zero_is_a_kmeans_fixed_point():
    X, _ = parallel_bands(seed=2)
    est = AdaptiveKMeans(3, shrinkage=0.0, random_state=0).fit(X)
    np.testing.assert_array_equal(est.metric_, np.eye(3))
    again = SkKMeans(3, init=est.cluster_centers_, n_init=1).fit(X).labels_
    assert adjusted_rand_score(again, est.labels_) == 1.0


def test_seeded_and_clonable():
    X, _ = parallel_bands(seed=3)
    a = AdaptiveKMeans(3, random_state=5).fit(X)
    b = clone(a).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert b.get_params()["shrinkage"] == 0.6


def test_trace_criterion_matches_a_direct_computation():
    X, which = parallel_bands(seed=4)
    X64 = X.astype(np.float64)
    T0, mean, active = _moments(X)
    W, centers, counts = _within(T0, mean, X, which.astype(np.int32), 3)
    Xc = X64 - X64.mean(axis=0)
    T = Xc.T @ Xc / len(X)
    Wd = sum(((X64[which == c] - X64[which == c].mean(0)).T @ (X64[which == c] - X64[which == c].mean(0)))
             for c in range(3)) / len(X)
    np.testing.assert_allclose(T0, T, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(W, Wd, rtol=1e-9, atol=1e-10)
    expected = np.trace(np.linalg.solve(T, T - Wd))
    assert trace_criterion(T0, active, W) == pytest.approx(expected, rel=1e-6)


def test_pooled_metric_whitens_the_shrunk_covariance_and_skips_flat_columns():
    rng = np.random.default_rng(0)
    A0 = rng.normal(size=(3, 3))
    W = np.zeros((4, 4))
    W[:3, :3] = A0 @ A0.T + np.eye(3)
    active = np.array([True, True, True, False])
    A = pooled_metric(W, active, 0.6)
    M = 0.4 * np.eye(3) + 0.6 * W[:3, :3] / (np.trace(W[:3, :3]) / 3)
    np.testing.assert_allclose(A[:3, :3] @ A[:3, :3].T, np.linalg.inv(M), rtol=1e-8, atol=1e-10)
    assert np.all(A[3] == 0) and np.all(A[:, 3] == 0)


def test_a_constant_column_changes_nothing(personas):
    X, _ = personas
    a = AdaptiveKMeans(6, random_state=0).fit(X)
    b = AdaptiveKMeans(6, random_state=0).fit(np.column_stack([X, np.zeros(len(X), np.float32)]))
    assert adjusted_rand_score(a.labels_, b.labels_) > 0.99
    assert np.all(b.metric_[-1] == 0)


def test_max_samples_fits_a_sample_and_labels_everyone(personas):
    X, which = personas
    full = AdaptiveKMeans(6, random_state=0).fit(X)
    est = AdaptiveKMeans(6, max_samples=1500, random_state=0).fit(X)
    assert est.labels_.shape == (len(X),)
    assert adjusted_rand_score(which, est.labels_) > adjusted_rand_score(which, full.labels_) - 0.05


def test_the_best_rough_starts_are_adapted(personas):
    from gpuseg.cluster.adaptive import ROUGH_STEPS
    from gpuseg.cluster.kmeans import KMeans

    X, _ = personas
    est = AdaptiveKMeans(6, n_init=3, n_starts=8)
    seeds = np.arange(8) + 11
    chosen = est._rough_starts(X, seeds)
    fits = [KMeans(6, n_init=1, max_iter=ROUGH_STEPS, random_state=int(s)).fit(X) for s in seeds]
    best = sorted(fits, key=lambda f: f.inertia_)[:3]
    assert len(chosen) == 3
    for labels, fit in zip(chosen, best):
        assert np.array_equal(np.asarray(labels), np.asarray(fit.labels_))
    # more screened starts never end worse than the first n_init of the same seeds
    few = AdaptiveKMeans(6, n_init=2, n_starts=2, random_state=0).fit(X)
    many = AdaptiveKMeans(6, n_init=2, n_starts=2, random_state=0)
    many.n_starts = 12
    many.fit(X)
    assert many.inertia_ <= few.inertia_ * 1.02


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shared_seeding_picks_scikit_learns_k_means_plus_plus_rows(personas, dtype):
    """The rough starts' seeding is scikit-learn's k-means++ on the centred data, row for row
    (scikit-learn's KMeans centres before seeding), only without its per-call upcast."""
    from sklearn.cluster import kmeans_plusplus

    from gpuseg.cluster.adaptive import _Seeding

    X, _ = personas
    X = (X * np.linspace(0.5, 3.0, X.shape[1]) + 7.0).astype(dtype)  # off-centre, unequal scales
    seeding = _Seeding(X)
    for k in (2, 5, 12):
        for seed in range(6):
            _, rows = kmeans_plusplus(X - X.mean(axis=0), k, random_state=seed)
            assert np.array_equal(seeding.rows(k, seed), X[rows]), (k, seed)
    # and a rough start from them is the same fit as scikit-learn's own seeding
    ours = SkKMeans(6, init=seeding.rows(6, 3), n_init=1, max_iter=8).fit(X)
    theirs = SkKMeans(6, n_init=1, max_iter=8, random_state=3).fit(X)
    assert np.array_equal(ours.labels_, theirs.labels_)
    assert np.array_equal(ours.cluster_centers_, theirs.cluster_centers_)


def test_large_data_seed_through_kmeans_plus_plus_with_the_same_rows(personas, monkeypatch):
    """Above SEEDING_MAX_ELEMENTS the starts seed through KMeans' own k-means++ (no float64
    copy): on NumPy the same rows, so the same starts."""
    from gpuseg.cluster import adaptive

    X, _ = personas
    seeds = np.arange(4) + 3
    est = AdaptiveKMeans(5, n_init=4, n_starts=4)
    shared = est._rough_starts(X, seeds)
    monkeypatch.setattr(adaptive, "SEEDING_MAX_ELEMENTS", X.size - 1)
    monkeypatch.setattr(adaptive, "_Seeding", None)  # would fail if used
    own = est._rough_starts(X, seeds)
    assert all(np.array_equal(a, b) for a, b in zip(shared, own))


@pytest.mark.parametrize("params, message", [
    ({"n_clusters": 0}, "n_clusters must be a positive integer"),
    ({"shrinkage": 1.5}, "shrinkage must be within"),
    ({"n_init": 0}, "n_init must be a positive integer"),
    ({"n_starts": 0}, "n_starts must be a positive integer"),
    ({"tol": -1}, "tol must be within"),
    ({"max_samples": 3}, "max_samples must be None or an integer"),
])
def test_bad_parameters(params, message):
    X, _ = parallel_bands(n=200)
    with pytest.raises(ValueError, match=message):
        AdaptiveKMeans(**{"n_clusters": 3, **params}).fit(X)


@pytest.mark.parametrize("params", [{"shrinkage": np.float32(0.5)}, {"tol": np.float32(1e-3)},
                                    {"shrinkage": np.float64(0.6), "tol": np.float64(1e-3)}])
def test_numpy_scalar_parameters_are_numbers(params):
    """numbers.Real as the other estimators take them; the same fit as the Python float."""
    X, _ = parallel_bands(n=300)
    est = AdaptiveKMeans(3, n_starts=3, n_init=2, random_state=0, **params).fit(X)
    ref = AdaptiveKMeans(3, n_starts=3, n_init=2, random_state=0, **{k: float(v) for k, v in params.items()}).fit(X)
    assert np.array_equal(est.labels_, ref.labels_) and np.array_equal(est.metric_, ref.metric_)
    for bad in (True, "0.5", np.nan):
        with pytest.raises(ValueError, match=f"{next(iter(params))} must be within"):
            AdaptiveKMeans(3, **{next(iter(params)): bad}).fit(X)


def test_nan_is_refused():
    X, _ = parallel_bands(n=200)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        AdaptiveKMeans(3).fit(X)
