from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.cluster import HDBSCAN as SkHDBSCAN
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from gpuseg import backend as _backend
from gpuseg.backend import to_host
from gpuseg.cluster import density
from gpuseg.cluster.density import DBSCAN, HDBSCAN, eps_from_k_distances, k_distances


@pytest.fixture(scope="module")
def blobs():
    """Four well separated 6-D blobs of known spread (std 0.8, centres ~10 apart)."""
    X, y = make_blobs(1500, n_features=6, centers=4, cluster_std=0.8, random_state=3)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def big_blobs():
    X, y = make_blobs(3000, n_features=6, centers=4, cluster_std=0.8, random_state=5)
    return X.astype(np.float32), y


@pytest.fixture
def gpu_xp():
    probe = _backend.probe_gpu()
    if not probe.available:
        pytest.skip(f"no GPU backend: {probe.reason}")
    return _backend.select("gpu").xp


def _far_points(X: np.ndarray, n: int = 5) -> np.ndarray:
    return (X.max(axis=0) + 100.0 + np.arange(n)[:, None] * 50.0).astype(X.dtype)


# --------------------------------------------------------------------- scikit-learn agreement


@pytest.mark.parametrize(
    "eps, min_samples, metric",
    [(1.0, 5, "euclidean"), (1.5, 12, "euclidean"), (0.6, 3, "euclidean"), (0.02, 5, "cosine")],
    ids=["eps1-ms5", "eps1.5-ms12", "eps0.6-ms3-some-noise", "cosine"],
)
def test_dbscan_matches_scikit_learn(blobs, eps, min_samples, metric):
    X, _ = blobs
    ours = DBSCAN(eps, min_samples=min_samples, metric=metric).fit(X)
    ref = SkDBSCAN(eps=eps, min_samples=min_samples, metric=metric).fit(X)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_array_equal(ours.core_sample_indices_, ref.core_sample_indices_)
    np.testing.assert_array_equal(ours.components_, X[ref.core_sample_indices_])
    assert ours.labels_.dtype == np.int32
    assert ours.n_clusters_ == len(set(ref.labels_) - {-1})
    assert ours.n_noise_ == int((ref.labels_ == -1).sum())
    assert ours.noise_share_ == pytest.approx(ours.n_noise_ / len(X))
    assert (ours.eps_, ours.min_samples_, ours.eps_source_) == (eps, min_samples, "given")
    assert ours.k_distance_ is None and ours.knee_index_ is None
    assert ours.sampled_ is False and ours.n_features_in_ == X.shape[1]


def test_dbscan_with_some_noise_reports_it(blobs):
    X, _ = blobs
    db = DBSCAN(0.6, min_samples=3).fit(X)
    assert 0 < db.n_noise_ < len(X)  # the parametrised case above really covers noise


@pytest.mark.parametrize(
    "min_cluster_size, min_samples, method",
    [(15, None, "eom"), (15, 5, "eom"), (10, 4, "leaf"), (40, 10, "leaf")],
    ids=["mcs15-eom", "mcs15-ms5-eom", "mcs10-ms4-leaf", "mcs40-ms10-leaf"],
)
def test_hdbscan_matches_scikit_learn(blobs, min_cluster_size, min_samples, method):
    X, _ = blobs
    ours = HDBSCAN(min_cluster_size, min_samples=min_samples, cluster_selection_method=method).fit(X)
    ref = SkHDBSCAN(
        min_cluster_size=min_cluster_size, min_samples=min_samples, cluster_selection_method=method, copy=True
    ).fit(X)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.probabilities_, ref.probabilities_, rtol=1e-6)
    assert ours.labels_.dtype == np.int32 and ours.probabilities_.dtype == np.float32
    assert ours.n_clusters_ == len(set(ref.labels_) - {-1})
    assert ours.n_noise_ == int((ref.labels_ == -1).sum())
    assert ours.min_samples_ == (min_samples or min_cluster_size)


# --------------------------------------------------------------------- choosing eps


def test_knee_of_a_hand_made_curve():
    # 90 dense points (k-distance 0.1..0.2), then a steep sparse tail (1..5)
    k_dist = np.concatenate([np.linspace(0.1, 0.2, 90), np.linspace(1.0, 5.0, 10)])
    eps, knee = eps_from_k_distances(k_dist)
    assert knee == 89
    assert eps == pytest.approx(0.2)


def test_knee_of_an_exponential_curve():
    # Kneedle on e^{5x}: x - (e^{5x} - 1)/(e^5 - 1) is largest at x = ln((e^5 - 1)/5)/5 = 0.6767
    x = np.linspace(0, 1, 101)
    eps, knee = eps_from_k_distances(np.exp(5 * x))
    assert knee == 68
    assert eps == pytest.approx(np.exp(5 * 0.68))


def test_straight_curve_has_no_knee_and_uses_the_quantile():
    k_dist = np.linspace(1.0, 2.0, 101)
    eps, knee = eps_from_k_distances(k_dist)
    assert knee is None
    assert eps == pytest.approx(1.9)


def test_zero_knee_moves_to_the_smallest_positive_distance():
    k_dist = np.concatenate([np.zeros(90), np.linspace(1.0, 5.0, 10)])
    eps, knee = eps_from_k_distances(k_dist)
    assert knee == 89 and eps == 1.0


@pytest.mark.parametrize(
    "k_dist",
    [np.array([]), np.array([1.0, np.nan, 2.0]), np.array([3.0, 2.0, 1.0]), np.ones((2, 2))],
    ids=["empty", "nan", "descending", "2-d"],
)
def test_eps_from_bad_curves(k_dist):
    with pytest.raises(ValueError):
        eps_from_k_distances(k_dist)


def test_k_distances_match_brute_force(blobs):
    X = blobs[0][:400].astype(np.float64)
    full = np.sort(np.sort(cdist(X, X), axis=1)[:, 6])  # 7th neighbour, the point itself first
    np.testing.assert_allclose(k_distances(X, 7), full, rtol=1e-6, atol=1e-6)
    # a sample is queried against all points: its values are values of the full curve
    part = k_distances(X, 7, sample_size=50, random_state=1)
    assert part.shape == (50,)
    assert np.all(np.isclose(part[:, None], full[None, :], rtol=1e-6, atol=1e-6).any(axis=1))


def test_chosen_eps_separates_the_blobs(blobs):
    X, y = blobs
    db = DBSCAN(random_state=0).fit(X)
    assert db.eps_source_ == "knee"
    assert db.min_samples_ == 12  # 2 x 6 features
    assert db.eps_ == db.k_distance_[db.knee_index_]
    assert db.k_distance_.shape == (len(X),) and np.all(np.diff(db.k_distance_) >= 0)
    assert db.n_clusters_ == 4
    assert db.noise_share_ < 0.05
    assert adjusted_rand_score(y, db.labels_) > 0.9


def test_knee_sample_is_used_when_the_data_is_larger(blobs, monkeypatch):
    X, y = blobs
    monkeypatch.setattr(density, "KNEE_SAMPLE", 300)
    db = DBSCAN(random_state=0).fit(X)
    assert db.k_distance_.shape == (300,)
    assert adjusted_rand_score(y, db.labels_) > 0.9


@pytest.mark.parametrize(
    "n_features, expected", [(1, 5), (6, 12), (32, 64), (80, 100)], ids=["1d", "6d", "32d", "80d"]
)
def test_default_min_samples(n_features, expected):
    X = np.random.default_rng(0).normal(size=(150, n_features))
    assert DBSCAN().fit(X).min_samples_ == expected


@pytest.mark.parametrize(
    "n, expected", [(100, 5), (10_000, 50), (100_000, 500), (1_000_000, 500)], ids=["100", "10k", "100k", "1M"]
)
def test_default_min_cluster_size_rule(n, expected):
    assert density._default_min_cluster_size(n) == expected


def test_default_min_cluster_size_used_by_fit(blobs):
    hdb = HDBSCAN().fit(blobs[0])
    assert hdb.min_cluster_size_ == 7 and hdb.min_samples_ == 7  # max(5, int(0.005 * 1500))


# --------------------------------------------------------------------- predict


def test_dbscan_predict_core_points_and_far_points(blobs):
    X, _ = blobs
    db = DBSCAN(0.6, min_samples=3).fit(X)
    core = db.core_sample_indices_
    pred = db.predict(X[core])
    assert isinstance(pred, np.ndarray) and pred.dtype == np.int32
    np.testing.assert_array_equal(pred, db.labels_[core])
    np.testing.assert_array_equal(db.predict(_far_points(X)), -1)


def test_dbscan_predict_just_inside_and_outside_eps():
    X = np.array([[0.0, 0.0], [0.0, 0.1], [0.1, 0.0], [0.1, 0.1]])
    db = DBSCAN(0.5, min_samples=4).fit(X)
    assert db.n_clusters_ == 1
    np.testing.assert_array_equal(db.predict(np.array([[0.0, -0.45], [0.0, -0.55]])), [0, -1])


def test_hdbscan_predict_training_points_and_far_points(blobs):
    X, _ = blobs
    hdb = HDBSCAN(15).fit(X)
    clustered = np.flatnonzero(hdb.labels_ >= 0)
    np.testing.assert_array_equal(hdb.predict(X[clustered]), hdb.labels_[clustered])
    np.testing.assert_array_equal(hdb.predict(_far_points(X)), -1)
    assert hdb.predict(X[:3]).dtype == np.int32


def test_hdbscan_predict_near_a_cluster(blobs):
    X, y = blobs
    hdb = HDBSCAN(15).fit(X)
    centre = X[hdb.labels_ == 0].mean(axis=0, keepdims=True)
    assert hdb.predict(centre + 0.05).tolist() == [0]


@pytest.mark.parametrize("model", [DBSCAN(0.5), HDBSCAN(5)], ids=["dbscan", "hdbscan"])
def test_predict_before_fit(model):
    with pytest.raises(AttributeError, match="not fitted"):
        model.predict(np.zeros((3, 2)))


@pytest.mark.parametrize("model", [DBSCAN(1.0, min_samples=3), HDBSCAN(10)], ids=["dbscan", "hdbscan"])
def test_predict_checks_the_feature_count(blobs, model):
    X, _ = blobs
    model.fit(X)
    with pytest.raises(ValueError, match="6"):
        model.predict(X[:, :3])


# --------------------------------------------------------------------- max_points sampling


@pytest.mark.parametrize(
    "model",
    # a given eps applies to the sample, which is 5x sparser than the data: 2.0, not the 1.6 the full data needs
    [DBSCAN(random_state=1, max_points=600), DBSCAN(2.0, min_samples=6, random_state=1, max_points=600),
     HDBSCAN(15, random_state=1, max_points=600)],
    ids=["dbscan-knee", "dbscan-eps", "hdbscan"],
)
def test_sampling_labels_every_row(big_blobs, model):
    X, y = big_blobs
    model.fit(X)
    assert model.sampled_ is True
    assert model.labels_.shape == (len(X),) and model.labels_.dtype == np.int32
    assert set(np.unique(model.labels_)) <= {-1, *range(model.n_clusters_)}
    assert model.n_clusters_ == 4
    assert model.noise_share_ < 0.1
    assert adjusted_rand_score(y, model.labels_) > 0.9


def test_dbscan_sampling_core_indices_point_into_the_full_input(big_blobs):
    X, _ = big_blobs
    db = DBSCAN(1.2, min_samples=6, max_points=600, random_state=2).fit(X)
    assert db.core_sample_indices_.max() < len(X)
    np.testing.assert_array_equal(X[db.core_sample_indices_], db.components_)
    assert len(db.core_sample_indices_) <= 600


def test_hdbscan_sampling_gives_probabilities_for_every_row(big_blobs):
    X, _ = big_blobs
    hdb = HDBSCAN(15, max_points=600).fit(X)
    assert hdb.probabilities_.shape == (len(X),)
    assert np.all((hdb.probabilities_ >= 0) & (hdb.probabilities_ <= 1))
    assert np.all(hdb.probabilities_[hdb.labels_ < 0] == 0)


@pytest.mark.parametrize("cls", [DBSCAN, HDBSCAN], ids=["dbscan", "hdbscan"])
def test_max_points_at_or_above_n_does_not_sample(blobs, cls):
    X, _ = blobs
    plain = cls().fit(X)
    capped = cls(max_points=len(X)).fit(X)
    assert capped.sampled_ is False
    np.testing.assert_array_equal(plain.labels_, capped.labels_)


# --------------------------------------------------------------------- fewer than 2 clusters


def test_dbscan_all_noise_does_not_raise(blobs):
    X, _ = blobs
    db = DBSCAN(1e-3, min_samples=5).fit(X)
    assert (db.n_clusters_, db.n_noise_, db.noise_share_) == (0, len(X), 1.0)
    assert db.core_sample_indices_.size == 0
    np.testing.assert_array_equal(db.predict(X[:10]), -1)


def test_dbscan_one_cluster_does_not_raise(blobs):
    X, _ = blobs
    db = DBSCAN(1e3, min_samples=5).fit(X)
    assert (db.n_clusters_, db.n_noise_) == (1, 0)
    np.testing.assert_array_equal(db.labels_, 0)


def test_hdbscan_all_noise_does_not_raise():
    X = np.random.default_rng(0).normal(size=(60, 3))
    hdb = HDBSCAN(60).fit(X)
    assert (hdb.n_clusters_, hdb.n_noise_, hdb.noise_share_) == (0, 60, 1.0)
    np.testing.assert_array_equal(hdb.probabilities_, 0)
    np.testing.assert_array_equal(hdb.predict(X[:5]), -1)


# --------------------------------------------------------------------- determinism and tooling


@pytest.mark.parametrize(
    "make",
    [lambda: DBSCAN(max_points=700, random_state=4), lambda: DBSCAN(max_points=700),
     lambda: HDBSCAN(15, max_points=700, random_state=4)],
    ids=["dbscan-seeded", "dbscan-default-seed", "hdbscan-seeded"],
)
def test_same_seed_same_result(big_blobs, make, monkeypatch):
    X, _ = big_blobs
    monkeypatch.setattr(density, "KNEE_SAMPLE", 400)  # make the k-distance sample random too
    a, b = make().fit(X), make().fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    if isinstance(a, DBSCAN):
        assert a.eps_ == b.eps_
        np.testing.assert_array_equal(a.k_distance_, b.k_distance_)


def test_different_seeds_draw_different_samples(big_blobs):
    X, _ = big_blobs
    a = DBSCAN(1.2, min_samples=6, max_points=700, random_state=1).fit(X)
    b = DBSCAN(1.2, min_samples=6, max_points=700, random_state=2).fit(X)
    assert not np.array_equal(a.core_sample_indices_, b.core_sample_indices_)


@pytest.mark.parametrize(
    "model",
    [DBSCAN(0.7, min_samples=3, metric="cosine", random_state=2, max_points=1000),
     HDBSCAN(20, min_samples=4, cluster_selection_method="leaf", random_state=2, max_points=900)],
    ids=["dbscan", "hdbscan"],
)
def test_clone_get_params_set_params(model):
    from sklearn.base import clone

    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy is not model
    copy.set_params(random_state=5)
    assert copy.random_state == 5 and model.random_state == 2
    with pytest.raises(ValueError, match="invalid parameter"):
        copy.set_params(n_clusters=3)
    assert type(model).__name__ in repr(model)


def test_fit_predict_returns_labels(blobs):
    X, _ = blobs
    db = DBSCAN(1.0, min_samples=5)
    np.testing.assert_array_equal(db.fit_predict(X), db.labels_)
    hdb = HDBSCAN(15)
    np.testing.assert_array_equal(hdb.fit_predict(X), hdb.labels_)


def test_integer_and_list_input_work():
    X = [[0, 0], [0, 1], [1, 0], [1, 1], [10, 10], [10, 11], [11, 10], [11, 11]]
    db = DBSCAN(1.5, min_samples=3).fit(X)
    assert db.n_clusters_ == 2 and db.n_noise_ == 0


def test_importing_the_module_does_not_import_scikit_learn():
    code = "import sys, gpuseg.cluster.density; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    "make, X, match",
    [
        (lambda: DBSCAN(0.0), np.zeros((5, 2)), "eps"),
        (lambda: DBSCAN(-1.0), np.zeros((5, 2)), "eps"),
        (lambda: DBSCAN("wide"), np.zeros((5, 2)), "eps"),
        (lambda: DBSCAN(float("nan")), np.zeros((5, 2)), "eps"),
        (lambda: DBSCAN(0.5, min_samples=0), np.zeros((5, 2)), "min_samples"),
        (lambda: DBSCAN(0.5, min_samples=2.5), np.zeros((5, 2)), "min_samples"),
        (lambda: DBSCAN(0.5, metric="manhattan"), np.zeros((5, 2)), "metric"),
        (lambda: DBSCAN(0.5, max_points=0), np.zeros((5, 2)), "max_points"),
        (lambda: DBSCAN(0.5), np.zeros(5), "2-D"),
        (lambda: DBSCAN(0.5), np.zeros((0, 2)), r"0 sample\(s\)"),
        (lambda: DBSCAN(0.5), np.array([[0.0, np.nan], [1.0, 1.0]]), "NaN"),
        (lambda: DBSCAN(0.5), np.array([["a", "b"]]), "numeric"),
        (lambda: DBSCAN(min_samples=10), np.zeros((5, 2)), "min_samples=10"),
        (lambda: DBSCAN(max_points=4, min_samples=5), np.zeros((9, 2)), "max_points=4"),
        (lambda: HDBSCAN(1), np.zeros((5, 2)), "min_cluster_size"),
        (lambda: HDBSCAN(5, min_samples=0), np.zeros((5, 2)), "min_samples"),
        (lambda: HDBSCAN(5, cluster_selection_method="best"), np.zeros((5, 2)), "cluster_selection_method"),
        (lambda: HDBSCAN(5, max_points=1), np.zeros((5, 2)), "max_points"),
        (lambda: HDBSCAN(), np.zeros((1, 2)), "at least 2"),
        (lambda: HDBSCAN(5, min_samples=9), np.zeros((6, 2)), "min_samples=9"),
        (lambda: HDBSCAN(5), np.array([[np.inf, 0.0], [1.0, 1.0]]), "infinity"),
    ],
    ids=[
        "dbscan-eps-zero", "dbscan-eps-negative", "dbscan-eps-text", "dbscan-eps-nan", "dbscan-min-samples-zero",
        "dbscan-min-samples-float", "dbscan-bad-metric", "dbscan-max-points-zero", "dbscan-1-d", "dbscan-no-rows",
        "dbscan-nan", "dbscan-text-data", "dbscan-knee-too-few-points", "dbscan-knee-sample-too-small",
        "hdbscan-min-cluster-size-1", "hdbscan-min-samples-zero", "hdbscan-bad-selection", "hdbscan-max-points-1",
        "hdbscan-one-row", "hdbscan-min-samples-above-n", "hdbscan-inf",
    ],
)
def test_invalid(make, X, match):
    with pytest.raises(ValueError, match=match):
        make().fit(X)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"n_neighbors": 11}, "at most"),
        ({"n_neighbors": 2, "sample_size": 0}, "sample_size"),
    ],
    ids=["k-zero", "k-above-n", "sample-zero"],
)
def test_k_distances_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        k_distances(np.zeros((10, 2)), **kwargs)


# --------------------------------------------------------------------- properties


_points = st.integers(8, 40).flatmap(
    lambda n: st.lists(
        st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=n, max_size=n
    )
)


def _check_labels(model, n):
    labels = model.labels_
    assert labels.shape == (n,) and labels.dtype == np.int32
    assert set(np.unique(labels)) <= {-1, *range(model.n_clusters_)}
    assert set(np.unique(labels[labels >= 0])) == set(range(model.n_clusters_))  # no empty cluster id
    assert model.n_noise_ == int((labels == -1).sum())
    assert model.noise_share_ == pytest.approx(model.n_noise_ / n)


@settings(max_examples=25, deadline=None)
@given(points=_points, eps=st.one_of(st.none(), st.floats(0.5, 10.0)), min_samples=st.integers(2, 6))
def test_dbscan_labels_are_valid(points, eps, min_samples):
    X = np.asarray(points, dtype=np.float64) / 2.0
    db = DBSCAN(eps, min_samples=min_samples).fit(X)
    _check_labels(db, len(X))
    assert db.eps_ > 0
    core = db.core_sample_indices_
    assert np.all(db.labels_[core] >= 0)
    np.testing.assert_array_equal(db.predict(X[core]), db.labels_[core])


@settings(max_examples=25, deadline=None)
@given(points=_points, min_samples=st.integers(2, 6))
def test_dbscan_with_chosen_eps_is_scale_invariant(points, min_samples):
    assume(any(p != (0, 0) for p in points))  # 4 x zeros is the same data
    X = np.asarray(points, dtype=np.float64) / 2.0
    a = DBSCAN(min_samples=min_samples).fit(X)
    b = DBSCAN(min_samples=min_samples).fit(4.0 * X)  # a power of two: distances scale exactly
    assert b.eps_ == pytest.approx(4.0 * a.eps_)
    np.testing.assert_array_equal(a.labels_, b.labels_)


@settings(max_examples=25, deadline=None)
@given(points=_points, min_cluster_size=st.integers(2, 6), min_samples=st.one_of(st.none(), st.integers(1, 5)))
def test_hdbscan_labels_are_valid(points, min_cluster_size, min_samples):
    X = np.asarray(points, dtype=np.float64) / 2.0
    hdb = HDBSCAN(min_cluster_size, min_samples=min_samples).fit(X)
    _check_labels(hdb, len(X))
    assert np.all((hdb.probabilities_ >= 0) & (hdb.probabilities_ <= 1))
    assert np.all(hdb.probabilities_[hdb.labels_ < 0] == 0)
    pred = hdb.predict(X)
    assert set(np.unique(pred)) <= {-1, *range(hdb.n_clusters_)}


# --------------------------------------------------------------------- GPU parity


@pytest.mark.gpu
@pytest.mark.rapids
def test_dbscan_gpu_parity(gpu_xp, blobs):
    X, y = blobs
    cpu = DBSCAN(random_state=0).fit(X)
    gpu = DBSCAN(random_state=0).fit(gpu_xp.asarray(X))
    assert type(gpu.labels_) is gpu_xp.ndarray and gpu.labels_.dtype == np.int32
    assert isinstance(gpu.core_sample_indices_, np.ndarray)
    assert gpu.eps_ == pytest.approx(cpu.eps_, rel=1e-3)
    assert adjusted_rand_score(cpu.labels_, to_host(gpu.labels_)) > 0.95
    assert adjusted_rand_score(y, to_host(gpu.labels_)) > 0.9
    core = gpu_xp.asarray(gpu.core_sample_indices_)
    np.testing.assert_array_equal(to_host(gpu.predict(gpu_xp.asarray(X)[core])), to_host(gpu.labels_[core]))
    np.testing.assert_array_equal(to_host(gpu.predict(gpu_xp.asarray(_far_points(X)))), -1)


@pytest.mark.gpu
@pytest.mark.rapids
def test_dbscan_gpu_matches_cpu_with_given_eps(gpu_xp, blobs):
    X, _ = blobs
    cpu = DBSCAN(1.0, min_samples=5).fit(X)
    gpu = DBSCAN(1.0, min_samples=5).fit(gpu_xp.asarray(X))
    assert adjusted_rand_score(cpu.labels_, to_host(gpu.labels_)) > 0.95
    assert (gpu.n_clusters_, gpu.n_noise_) == (cpu.n_clusters_, cpu.n_noise_)
    np.testing.assert_array_equal(np.sort(gpu.core_sample_indices_), cpu.core_sample_indices_)


@pytest.mark.gpu
@pytest.mark.rapids
def test_hdbscan_gpu_parity(gpu_xp, blobs):
    X, y = blobs
    cpu = HDBSCAN(15, min_samples=5).fit(X)
    gpu = HDBSCAN(15, min_samples=5).fit(gpu_xp.asarray(X))
    assert type(gpu.labels_) is gpu_xp.ndarray and gpu.labels_.dtype == np.int32
    assert type(gpu.probabilities_) is gpu_xp.ndarray
    assert adjusted_rand_score(cpu.labels_, to_host(gpu.labels_)) > 0.95
    assert gpu.n_clusters_ == cpu.n_clusters_
    pred = to_host(gpu.predict(gpu_xp.asarray(X)))
    assert adjusted_rand_score(to_host(gpu.labels_), pred) > 0.95
    np.testing.assert_array_equal(to_host(gpu.predict(gpu_xp.asarray(_far_points(X)))), -1)


@pytest.mark.gpu
@pytest.mark.rapids
@pytest.mark.parametrize("cls", [DBSCAN, HDBSCAN], ids=["dbscan", "hdbscan"])
def test_gpu_sampling_labels_every_row(gpu_xp, big_blobs, cls):
    X, y = big_blobs
    model = cls(max_points=600, random_state=1).fit(gpu_xp.asarray(X))
    assert model.sampled_ is True and model.labels_.shape == (len(X),)
    assert adjusted_rand_score(y, to_host(model.labels_)) > 0.9


@pytest.mark.parametrize("cls", ["DBSCAN", "HDBSCAN"])
def test_density_on_principal_components_finds_what_all_dimensions_hide(cls):
    """Four round groups in 2 of 40 dimensions: on all 40 the density is nearly uniform; on
    the first 2 principal components the groups stand apart."""
    import gpuseg.cluster as gc
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    which = rng.integers(0, 4, 3000)
    centers = np.array([[5, 5], [-5, 5], [5, -5], [-5, -5]], dtype=float)
    X = np.hstack([centers[which] + rng.normal(0, 1, (3000, 2)), rng.normal(0, 1, (3000, 38))]).astype(np.float32)
    est = getattr(gc, cls)(n_components=2, random_state=0).fit(X)
    assert est.projection_.n_components_ == 2 and est.n_features_in_ == 40
    assert adjusted_rand_score(which, est.labels_) > 0.85  # DBSCAN leaves the sparse rims as noise
    assert np.mean(est.predict(X[:200]) == est.labels_[:200]) > 0.95
    flat = getattr(gc, cls)(random_state=0).fit(X)
    assert flat.projection_ is None
    assert adjusted_rand_score(which, flat.labels_) < adjusted_rand_score(which, est.labels_)
