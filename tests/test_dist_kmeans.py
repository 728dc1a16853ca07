"""DaskKMeans: Lloyd as a map-reduce over Dask row blocks equals scikit-learn's Lloyd."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from gpuseg.dist.kmeans import DaskKMeans  # noqa: E402

K = 5


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=5000, n_features=6, centers=K, random_state=3)
    return X, y


@pytest.fixture(scope="module")
def uniform():
    return np.random.RandomState(1).rand(5000, 6)


def _start(X, k=K, seed=2):
    return X[np.random.RandomState(seed).choice(len(X), k, replace=False)]


def _sklearn(X, C, **kw):
    return KMeans(n_clusters=len(C), init=C, n_init=1, algorithm="lloyd", **kw).fit(X)


@pytest.mark.parametrize("data", ["blobs", "uniform"])
@pytest.mark.parametrize("tol,max_iter", [(1e-4, 300), (0.0, 300), (1e-4, 3)])
def test_equals_sklearn_lloyd(request, data, tol, max_iter):
    X = request.getfixturevalue(data)
    X = X[0] if isinstance(X, tuple) else X
    C = _start(X)
    sk = _sklearn(X, C, tol=tol, max_iter=max_iter)
    dk = DaskKMeans(K, init=C, tol=tol, max_iter=max_iter).fit(da.from_array(X, chunks=(700, 6)))
    assert dk.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(dk.cluster_centers_, sk.cluster_centers_, rtol=1e-7, atol=1e-12)
    labels = dk.labels_.compute()
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, sk.labels_)
    assert dk.inertia_ == pytest.approx(sk.inertia_, rel=1e-9)
    assert len(dk.inertia_history_) == dk.n_iter_


def test_predict_equals_sklearn(blobs):
    X, _ = blobs
    C = _start(X)
    sk = _sklearn(X, C, tol=1e-4)
    dk = DaskKMeans(K, init=C).fit(da.from_array(X, chunks=(1000, 6)))
    new = np.random.RandomState(9).uniform(X.min(), X.max(), size=(3000, 6))
    pred = dk.predict(da.from_array(new, chunks=(800, 6)))
    assert isinstance(pred, da.Array) and pred.dtype == np.int32 and pred.chunks[0] == (800, 800, 800, 600)
    np.testing.assert_array_equal(pred.compute(), sk.predict(new))
    # plain arrays are wrapped
    np.testing.assert_array_equal(dk.predict(new).compute(), sk.predict(new))
    np.testing.assert_array_equal(dk.fit_predict(X).compute(), sk.labels_)


def test_fit_returns_self_and_attributes(uniform):
    km = DaskKMeans(3, random_state=0)
    assert km.fit(da.from_array(uniform.astype(np.float32), chunks=(1000, 6))) is km
    assert km.cluster_centers_.shape == (3, 6) and km.cluster_centers_.dtype == np.float64
    assert isinstance(km.cluster_centers_, np.ndarray)
    assert km.labels_.chunks == ((1000,) * 5,)
    assert km.n_features_in_ == 6
    assert isinstance(km.inertia_, float) and isinstance(km.n_iter_, int)
    assert all(isinstance(v, float) for v in km.inertia_history_)
    assert km.get_params()["init_sample"] == 100_000


@pytest.mark.parametrize("data", ["blobs", "uniform"])
def test_chunking_does_not_change_result(request, data):
    X = request.getfixturevalue(data)
    X = X[0] if isinstance(X, tuple) else X
    C = _start(X, seed=5)
    fits = [DaskKMeans(K, init=C, tol=0.0).fit(da.from_array(X, chunks=chunks))
            for chunks in [(500, 6), (1234, 6), (5000, 6), (1234, 2), X.shape]]
    # unknown chunk sizes (after boolean indexing)
    mask = np.ones(len(X), dtype=bool)
    fits.append(DaskKMeans(K, init=C, tol=0.0).fit(da.from_array(X, chunks=(999, 6))[da.from_array(mask)]))
    ref = fits[0]
    ref_labels = ref.labels_.compute()
    for km in fits[1:]:
        assert km.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(km.labels_.compute(), ref_labels)
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)


def test_kmeans_plusplus_sample_deterministic_and_recovers_blobs(blobs):
    X, y = blobs
    dX = da.from_array(X, chunks=(600, 6))
    a = DaskKMeans(K, random_state=42, init_sample=800).fit(dX)
    b = DaskKMeans(K, random_state=42, init_sample=800).fit(dX)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_.compute(), b.labels_.compute())
    assert a.inertia_history_ == b.inertia_history_
    assert adjusted_rand_score(y, a.labels_.compute()) == 1.0
    c = DaskKMeans(K, random_state=43, init_sample=800).fit(dX)
    assert adjusted_rand_score(y, c.labels_.compute()) == 1.0


def test_kmeans_plusplus_on_all_rows_equals_sklearn(uniform):
    # fewer rows than init_sample: the seeds are scikit-learn's on all rows with the same
    # random_state, so the whole fit equals sklearn's KMeans(n_init=1)
    sk = KMeans(K, n_init=1, random_state=0, algorithm="lloyd").fit(uniform)
    dk = DaskKMeans(K, random_state=0).fit(da.from_array(uniform, chunks=(1500, 6)))
    assert dk.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(dk.cluster_centers_, sk.cluster_centers_, rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(dk.labels_.compute(), sk.labels_)


def test_empty_cluster_keeps_its_centre():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 10.0], [10.0, 11.0]])
    C = np.array([[0.0, 0.5], [10.0, 10.5], [100.0, 100.0]])  # nothing is closest to the third
    km = DaskKMeans(3, init=C).fit(da.from_array(X, chunks=(2, 2)))
    np.testing.assert_array_equal(km.cluster_centers_, C)
    np.testing.assert_array_equal(km.labels_.compute(), [0, 0, 1, 1])
    assert km.inertia_ == pytest.approx(1.0) and km.n_iter_ == 1


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 60),
    d=st.integers(1, 4),
    k=st.integers(1, 4),
    chunk=st.integers(1, 25),
    seed=st.integers(0, 2**16),
    integer=st.booleans(),
)
def test_property_monotone_and_argmin(n, d, k, chunk, seed, integer):
    rs = np.random.RandomState(seed)
    # integer data brings duplicate rows, ties and empty clusters
    X = rs.randint(0, 3, size=(n, d)).astype(np.float64) if integer else rs.normal(size=(n, d)) * 10 + 50
    km = DaskKMeans(k, random_state=seed, max_iter=50, tol=0.0).fit(da.from_array(X, chunks=(chunk, d)))
    hist = np.array(km.inertia_history_)
    scale = 1e-9 * max(hist[0], 1e-300)
    assert np.all(np.diff(hist) <= scale + 1e-12)
    assert km.inertia_ <= hist[-1] + scale + 1e-12
    C = km.cluster_centers_
    D = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    labels = km.labels_.compute()
    best = D.min(axis=1)
    # the argmin up to rounding (ties may go either way)
    assert np.all(D[np.arange(n), labels] <= best + 1e-9 * (1 + best) + 1e-9 * (X**2).sum(axis=1))
    assert km.inertia_ == pytest.approx(D[np.arange(n), labels].sum(), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    "kwargs,X,match",
    [
        (dict(n_clusters=0), None, "n_clusters must be a positive integer"),
        (dict(n_clusters=2.5), None, "n_clusters must be a positive integer"),
        (dict(n_clusters=11), None, "n_samples=10 should be >= n_clusters=11"),
        (dict(n_clusters=2), np.zeros(10), "expected a 2-D array"),
        (dict(n_clusters=2), np.zeros((10, 2, 2)), "expected a 2-D array"),
        (dict(n_clusters=2), np.where(np.eye(10, 2) > 0, np.nan, 1.0), "NaN or infinity"),
        (dict(n_clusters=2, init=np.zeros((3, 2))), None, r"init centres have shape \(3, 2\)"),
        (dict(n_clusters=2, init=np.zeros((2, 3))), None, r"expected \(n_clusters, n_features\) = \(2, 2\)"),
        (dict(n_clusters=2, init=np.array([[0.0, np.nan], [1.0, 1.0]])), None, "init centres contain NaN"),
        (dict(n_clusters=2, init="random"), None, "init must be 'k-means\\+\\+' or an array"),
        (dict(n_clusters=2, max_iter=0), None, "max_iter must be a positive integer"),
        (dict(n_clusters=2, tol=-1.0), None, "tol must be a non-negative number"),
        (dict(n_clusters=3, init_sample=2), None, "init_sample must be an integer >= n_clusters=3"),
    ],
)
def test_errors(kwargs, X, match):
    X = np.random.RandomState(0).rand(10, 2) if X is None else X
    with pytest.raises(ValueError, match=match):
        DaskKMeans(**kwargs).fit(da.from_array(X) if X.ndim == 2 else X)


def test_predict_errors(uniform):
    km = DaskKMeans(2)
    with pytest.raises(AttributeError, match="not fitted"):
        km.predict(uniform)
    km.fit(uniform[:100])
    with pytest.raises(ValueError, match="X has 3 features, but DaskKMeans is expecting 6 features"):
        km.predict(uniform[:, :3])


def test_with_distributed_client(blobs):
    distributed = pytest.importorskip("distributed")
    X, _ = blobs
    C = _start(X)
    sk = _sklearn(X, C, tol=1e-4)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        dX = da.from_array(X, chunks=(1000, 6)).persist()
        dk = DaskKMeans(K, init=C).fit(dX)
        labels = dk.labels_.compute()
    assert dk.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(dk.cluster_centers_, sk.cluster_centers_, rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(labels, sk.labels_)


def test_import_does_not_import_dask():
    code = "import sys, gpuseg, gpuseg.dist.kmeans; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
