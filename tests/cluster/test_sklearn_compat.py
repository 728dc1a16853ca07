"""scikit-learn interoperability (issue 17, item 4): every public estimator passes
scikit-learn's own ``check_estimator`` suite (the consensus lists the checks it cannot pass
and why), grid searches and pipelines accept gpuseg estimators, NaN and inf are refused with
a clear ValueError, and ``import gpuseg.cluster`` still does not import scikit-learn."""

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


#: Checks an estimator cannot pass, and why (scikit-learn marks them xfail).
EXPECTED_FAILED = {
    "consensus": {
        name: "a consensus needs n_clusters >= 2 (one segment has nothing to agree on); scikit-learn's check "
              "sets n_clusters=1"
        for name in ("check_dont_overwrite_parameters", "check_methods_subset_invariance", "check_fit2d_1sample",
                     "check_fit2d_1feature", "check_fit2d_predict1d")
    },
}


def _all_estimators():
    import importlib.util

    out = []
    for m in METHOD_NAMES:
        if m in ("deep_kmeans", "dec", "idec") and importlib.util.find_spec("torch") is None:
            continue
        k = None if m in ("dbscan", "hdbscan") else 3
        params = {"members": ("kmeans", "minibatch_kmeans")} if m == "consensus" else FAST.get(m, {})
        est = make_estimator(m, k, 0, params)
        est._gpuseg_method = m  # noqa: SLF001 - read back by _expected_failed only
        out.append(est)
    return out


def _expected_failed(est):
    return EXPECTED_FAILED.get(getattr(est, "_gpuseg_method", ""), {})


def _sklearn_checks():
    from sklearn.utils.estimator_checks import parametrize_with_checks

    return parametrize_with_checks(_all_estimators(), expected_failed_checks=_expected_failed)


@_sklearn_checks()
def test_scikit_learn_check_estimator(estimator, check):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_every_method_is_checked():
    assert sorted(e._gpuseg_method for e in _all_estimators()) == sorted(
        m for m in METHOD_NAMES if m not in ("deep_kmeans", "dec", "idec") or
        __import__("importlib").util.find_spec("torch") is not None)


def test_input_checks_use_scikit_learn_messages():
    from sklearn.exceptions import NotFittedError

    from gpuseg.cluster import KMeans

    with pytest.raises(NotFittedError):
        KMeans(2).predict(X)
    km = KMeans(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 2 features, but KMeans is expecting 3 features"):
        km.predict(X[:, :2])
    with pytest.raises(ValueError, match="Reshape your data"):
        km.predict(X[0])
    with pytest.raises(ValueError, match="Complex data not supported"):
        KMeans(2).fit(X + 1j)
    with pytest.raises(ValueError, match=r"0 feature\(s\)"):
        KMeans(2).fit(np.empty((5, 0)))
    from scipy import sparse

    with pytest.raises(TypeError, match="sparse input is not supported"):
        KMeans(2).fit(sparse.csr_matrix(X))


def test_a_subclass_keeps_its_parents_predict():
    """The mixin's generic predict must not replace one a parent overrides (AdaptiveKMeans
    predicts in its learned metric)."""
    from gpuseg.cluster import AdaptiveKMeans

    class Sub(AdaptiveKMeans):
        pass

    assert Sub.predict is AdaptiveKMeans.predict and Sub.transform is AdaptiveKMeans.transform


def test_dask_frames_with_lazy_row_counts_are_checked_without_computing():
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    from gpuseg.cluster._base import check_input
    from gpuseg.cluster import KMeans

    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=2)
    check_input(KMeans(2), frame, reset=True)  # no TypeError from the lazy row count


@pytest.mark.parametrize("method", _methods() + ["consensus"])
def test_frame_column_names_are_recorded_and_checked(method):
    """scikit-learn's own check (not in check_estimator's list): a fit on a DataFrame sets
    feature_names_in_, and every predict/transform/score/partial_fit refuses other names or
    another order with scikit-learn's message; the same frame warns about names nowhere
    (not from a method that calls another inside)."""
    import warnings

    pd = pytest.importorskip("pandas")
    from sklearn.utils.estimator_checks import check_dataframe_column_names_consistency

    k = None if method in ("dbscan", "hdbscan") else 3
    params = {"members": ("kmeans", "minibatch_kmeans")} if method == "consensus" else FAST.get(method, {})
    est = make_estimator(method, k, 0, params)
    check_dataframe_column_names_consistency(type(est).__name__, est)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*feature names")
        est.fit(frame)
        for name in ("predict", "predict_proba", "transform", "score", "score_samples", "partial_fit"):
            if hasattr(est, name):
                getattr(est, name)(frame)


def test_reordered_columns_are_refused_and_an_array_fit_forgets_the_names():
    import warnings

    import pandas as pd

    from gpuseg.cluster import AdaptiveKMeans, KMeans

    frame = pd.DataFrame(X, columns=["recency", "frequency", "monetary"])
    for est in (KMeans(3, random_state=0), AdaptiveKMeans(3, n_starts=2, n_init=1, random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning about names inside fit (AdaptiveKMeans predicts there)
            est.fit(frame)
        assert est.feature_names_in_.tolist() == ["recency", "frequency", "monetary"]
        assert est.feature_names_in_.dtype == object
        np.testing.assert_array_equal(est.predict(frame), est.labels_)
        with pytest.raises(ValueError, match="Feature names must be in the same order as they were in fit"):
            est.predict(frame[["monetary", "recency", "frequency"]])
        with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- spend\n"):
            est.transform(frame.rename(columns={"monetary": "spend"}))
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            est.predict(X)
        est.fit(X)
        assert not hasattr(est, "feature_names_in_")
        with pytest.warns(UserWarning, match="X has feature names, but"):
            est.predict(frame)
    with pytest.raises(TypeError, match="string names"):
        KMeans(2).fit(pd.DataFrame(X, columns=["a", 1, "c"]))
    assert not hasattr(KMeans(2, random_state=0).fit(pd.DataFrame(X)), "feature_names_in_")  # int names: none
