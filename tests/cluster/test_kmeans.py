from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from gpuseg.backend import to_host
from gpuseg.cluster import AVAILABLE, KMeans, make_estimator, resolve_methods
from gpuseg.errors import ConfigError


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


def test_predict_before_fit():
    with pytest.raises(AttributeError, match="not fitted"):
        KMeans(2).predict(np.zeros((3, 2)))


def test_sklearn_tooling_clone():
    from sklearn.base import clone

    km = clone(KMeans(3, init="random", random_state=2))
    assert km.get_params()["init"] == "random"


@pytest.mark.gpu
def test_gpu_parity_with_cpu(backend, blobs):
    if not backend.is_gpu:
        pytest.skip("GPU parity needs the GPU backend")
    X, _ = blobs
    cpu = KMeans(5, random_state=0).fit(X)
    gpu = KMeans(5, random_state=0).fit(backend.xp.asarray(X))
    assert adjusted_rand_score(cpu.labels_, to_host(gpu.labels_)) > 0.99
    assert gpu.inertia_ == pytest.approx(cpu.inertia_, rel=1e-3)


def test_method_registry():
    assert resolve_methods([]) == ("kmeans",)
    assert resolve_methods(["all"]) == AVAILABLE
    assert resolve_methods(["KMeans_Random", "kmeans", "kmeans"]) == ("kmeans_random", "kmeans")
    with pytest.raises(ConfigError, match="unknown method 'kmedoids'"):
        resolve_methods(["kmedoids"])
    with pytest.raises(ConfigError, match="not available in this version"):
        resolve_methods(["gmm"])
    assert make_estimator("kmeans_random", 3, 1).init == "random"
