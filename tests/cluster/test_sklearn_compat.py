"""scikit-learn interoperability (issue 17, item 4): grid searches and pipelines accept
gpuseg estimators, NaN and inf are refused with a clear ValueError, and ``import
gpuseg.cluster`` still does not import scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gpuseg.cluster import METHOD_NAMES, make_estimator

FAST = {
    "pso_kmeans": {"n_particles": 6, "max_iter": 5},
    "som": {"grid": (3, 3), "n_epochs": 3},
    "deep_kmeans": {"hidden": (8,), "latent_dim": 2, "pretrain_epochs": 2, "n_init": 1},
    "dec": {"hidden": (8,), "latent_dim": 2, "pretrain_epochs": 2, "n_init": 1, "max_iter": 5},
    "idec": {"hidden": (8,), "latent_dim": 2, "pretrain_epochs": 2, "n_init": 1, "max_iter": 5},
}
X = np.random.default_rng(0).normal(size=(120, 3)) + np.repeat(np.eye(3) * 4, 40, axis=0)


def _methods():
    out = []
    for m in METHOD_NAMES:
        if m in ("consensus",):
            continue
        marks = [pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None, reason="no torch")] if (
            m in ("deep_kmeans", "dec", "idec")) else []
        out.append(pytest.param(m, marks=marks))
    return out


@pytest.mark.parametrize("method", _methods())
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_refused_in_fit_and_predict(method, bad):
    k = None if method in ("dbscan", "hdbscan") else 3
    est = make_estimator(method, k, 0, FAST.get(method, {}))
    Xb = X.copy()
    Xb[5, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        est.fit(Xb)
    if hasattr(est, "predict"):
        est.fit(X)
        with pytest.raises(ValueError, match="NaN or infinity"):
            est.predict(Xb)


def test_grid_search_and_pipeline_accept_gpuseg_estimators():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gpuseg.cluster import GaussianMixture, KMeans

    grid = GridSearchCV(KMeans(random_state=0, n_init=3), {"n_clusters": [2, 3, 4]}, cv=3).fit(X)
    assert grid.best_params_["n_clusters"] in (2, 3, 4) and hasattr(grid.best_estimator_, "cluster_centers_")
    gmm = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [2, 3]}, cv=3).fit(X)
    assert gmm.best_params_["n_components"] in (2, 3)
    pipe = make_pipeline(StandardScaler(), KMeans(3, random_state=0)).fit(X)
    assert set(np.unique(pipe.predict(X))) == {0, 1, 2}
    assert clone(KMeans(5, random_state=1)).get_params()["n_clusters"] == 5
    assert KMeans().__sklearn_tags__().estimator_type == "clusterer"


def test_importing_the_estimators_does_not_import_scikit_learn():
    code = "import sys, gpuseg.cluster; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
