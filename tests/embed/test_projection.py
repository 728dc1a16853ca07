from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA as SkPCA

from gpuseg.backend import to_host
from gpuseg.embed.projection import PCA, UMAP


@pytest.fixture(scope="module")
def data():
    X, y = make_blobs(800, n_features=12, centers=4, random_state=0)
    X[:, 3] *= 5
    return X, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_pca_matches_scikit_learn(data, dtype, xp):
    X = data[0].astype(dtype)
    ours = PCA(5).fit(xp.asarray(X))
    ref = SkPCA(5).fit(X)
    tol = 1e-8 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=tol)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=tol)
    np.testing.assert_allclose(to_host(ours.components_), ref.components_, atol=tol * 100)
    Z = ours.transform(xp.asarray(X))
    assert type(Z) is type(xp.asarray(X)) and Z.dtype == dtype
    np.testing.assert_allclose(to_host(Z), ref.transform(X), atol=tol * 1e3, rtol=tol)


def test_pca_variance_share_whiten_and_inverse(data):
    X = data[0]
    p = PCA(0.9).fit(X)
    assert p.explained_variance_ratio_.sum() >= 0.9
    assert p.explained_variance_ratio_[:-1].sum() < 0.9
    full = PCA().fit(X)
    np.testing.assert_allclose(full.inverse_transform(full.transform(X)), X, atol=1e-8)
    W = PCA(3, whiten=True).fit_transform(X)
    np.testing.assert_allclose(W.std(axis=0, ddof=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("n", [0, 13, 1.5, "two"], ids=["zero", "too-many", "float>1", "text"])
def test_pca_bad_n_components(data, n):
    with pytest.raises(ValueError, match="n_components"):
        PCA(n).fit(data[0])


def test_umap_embeds_and_separates_blobs(data):
    pytest.importorskip("umap")
    from sklearn.metrics import adjusted_rand_score
    from sklearn.cluster import KMeans

    X, y = data
    Z = UMAP(2, random_state=0).fit_transform(X.astype(np.float32))
    assert Z.shape == (len(X), 2) and Z.dtype == np.float32
    assert adjusted_rand_score(y, KMeans(4, n_init=4, random_state=0).fit_predict(Z)) > 0.9
    Z2 = UMAP(2, random_state=0).fit_transform(X.astype(np.float32))
    np.testing.assert_allclose(Z, Z2)


def test_umap_without_umap_learn_names_the_install(monkeypatch, data):
    import gpuseg.embed.projection as proj
    from gpuseg.errors import DeviceError

    def missing(name, hint=None):
        raise DeviceError(f"{name} is needed; install it with: {hint}")

    monkeypatch.setattr(proj, "import_optional", missing)
    with pytest.raises(DeviceError, match="gpuseg\\[umap\\]"):
        UMAP().fit(data[0])
