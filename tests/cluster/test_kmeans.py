from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from gpuseg.backend import to_host
from gpuseg.cluster import KMeans
from gpuseg.cluster.kmeans import kmeans_plusplus, lloyd


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(2000, n_features=6, centers=5, cluster_std=1.0, random_state=3)
    return X.astype(np.float32), y


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_matches_scikit_learn_on_cpu(blobs, init):
    X, _ = blobs
    ours = KMeans(5, init=init, random_state=0).fit(X)
    ref = SkKMeans(5, init=init, n_init=1 if init == "k-means++" else 10, random_state=0).fit(X)
    assert adjusted_rand_score(ours.labels_, ref.labels_) == 1.0
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)
    assert ours.labels_.dtype == np.int32


def test_recovers_blobs_and_predict_is_consistent(backend, blobs):
    X, y = blobs
    Xd = backend.xp.asarray(X)
    km = KMeans(5, random_state=1).fit(Xd)
    labels = to_host(km.labels_)
    assert adjusted_rand_score(y, labels) > 0.99
    assert type(km.predict(Xd)) is type(Xd)
    np.testing.assert_array_equal(to_host(km.predict(Xd)), labels)
    assert km.score(Xd) == pytest.approx(-km.inertia_, rel=1e-4)
    assert km.transform(Xd).shape == (len(X), 5)


def test_array_init(blobs):
    X, y = blobs
    centers = np.stack([X[y == c].mean(axis=0) for c in range(5)])
    km = KMeans(5, init=centers).fit(X)
    assert adjusted_rand_score(y, km.labels_) > 0.99
    assert km.n_iter_ <= 3


def test_same_seed_same_result(blobs):
    X, _ = blobs
    a = KMeans(4, init="random", random_state=5).fit(X)
    b = KMeans(4, init="random", random_state=5).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_clusters": 0}, np.zeros((5, 2)), "positive"),
        ({"n_clusters": 6}, np.zeros((5, 2)), "n_samples=5"),
        ({"init": "best"}, np.zeros((5, 2)), "init"),
        ({"n_init": 0}, np.zeros((5, 2)), "n_init"),
        ({}, np.zeros(5), "2-D"),
    ],
    ids=["zero-k", "k-too-big", "bad-init", "bad-n-init", "1-d"],
)
def test_invalid(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        KMeans(**{"n_clusters": 2, **kwargs}).fit(X)


@pytest.mark.parametrize("k", [True, False, 2.0])
def test_n_clusters_must_be_an_integer_not_a_bool(k):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        KMeans(k).fit(X)


def test_predict_before_fit():
    with pytest.raises(AttributeError, match="not fitted"):
        KMeans(2).predict(np.zeros((3, 2)))


def test_sklearn_tooling_clone():
    from sklearn.base import clone

    km = clone(KMeans(3, init="random", random_state=2))
    assert km.get_params()["init"] == "random"


@pytest.mark.gpu
@pytest.mark.rapids
def test_gpu_parity_with_cpu(backend, blobs):
    if not backend.is_gpu:
        pytest.skip("GPU parity needs the GPU backend")
    X, _ = blobs
    cpu = KMeans(5, random_state=0).fit(X)
    gpu = KMeans(5, random_state=0).fit(backend.xp.asarray(X))
    assert adjusted_rand_score(cpu.labels_, to_host(gpu.labels_)) > 0.99
    assert gpu.inertia_ == pytest.approx(cpu.inertia_, rel=1e-3)



@pytest.mark.parametrize("k", [1, 3, 8])
def test_kmeans_plusplus_chooses_the_rows_scikit_learn_chooses(blobs, k):
    from sklearn.cluster import kmeans_plusplus as sk_kpp

    X = blobs[0].astype(np.float64)
    centers, idx = kmeans_plusplus(X, k, random_state=42)
    _, ref = sk_kpp(X, k, random_state=42)
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(centers, X[idx])


def test_lloyd_matches_scikit_learn_from_the_same_start(blobs):
    X = blobs[0].astype(np.float64)
    init, _ = kmeans_plusplus(X, 5, random_state=0)
    centers, labels, inertia, n_iter = lloyd(X, init)
    ref = SkKMeans(5, init=init, n_init=1).fit(X)
    assert adjusted_rand_score(labels, ref.labels_) == 1.0
    assert inertia == pytest.approx(ref.inertia_, rel=1e-9)
    np.testing.assert_allclose(np.sort(centers, axis=0), np.sort(ref.cluster_centers_, axis=0), atol=1e-8)


def test_lloyd_refills_empty_clusters():
    X = np.array([[0.0], [0.1], [10.0], [10.1]])
    centers, labels, _, _ = lloyd(X, np.array([[0.05], [100.0], [200.0]]))
    assert len(np.unique(labels)) == 3


def test_kmeans_plusplus_gpu_matches_cpu(backend, blobs):
    X = blobs[0]
    cpu_idx = kmeans_plusplus(X, 5, random_state=3)[1]
    dev_idx = kmeans_plusplus(backend.xp.asarray(X), 5, random_state=3)[1]
    np.testing.assert_array_equal(cpu_idx, dev_idx)
