from __future__ import annotations

import pytest

from gpuseg.cluster import (AVAILABLE, DEEP_METHODS, METHOD_NAMES, METHODS, make_estimator, method_params,
                            resolve_methods)
from gpuseg.errors import ConfigError


def test_resolve_methods():
    # the default is adaptive K-means; the consensus brings its members (placed before it)
    assert resolve_methods([]) == ("adaptive_kmeans",)
    assert resolve_methods(["consensus"]) == (
        "adaptive_kmeans", "kmeans", "minibatch_kmeans", "deep_kmeans", "consensus")
    assert resolve_methods(["consensus"], deep_available=False) == (
        "adaptive_kmeans", "kmeans", "minibatch_kmeans", "consensus")
    assert resolve_methods(["all"]) == AVAILABLE
    # without torch, all leaves the deep methods out (named ones stay: they then say what to install)
    assert resolve_methods(["all"], deep_available=False) == tuple(m for m in AVAILABLE if m not in DEEP_METHODS)
    assert set(DEEP_METHODS) <= set(AVAILABLE)
    assert resolve_methods(["kmeans", "dec"], deep_available=False) == ("kmeans", "dec")
    assert resolve_methods(["KMeans_Random", "kmeans", "kmeans"]) == ("kmeans_random", "kmeans")
    # members already listed keep their place; the rest go right before the consensus
    assert resolve_methods(["gmm", "consensus", "ward"], {"members": ["kmeans", "gmm", "som"]}) == (
        "gmm", "kmeans", "som", "consensus", "ward")
    assert resolve_methods(["consensus", "kmeans"], {"members": ["kmeans", "gmm"]}) == ("kmeans", "gmm", "consensus")
    for bad, match in (([], "at least 2"), (["kmeans"], "at least 2"), (["dbscan", "kmeans"], "'dbscan' cannot"),
                       (["consensus", "kmeans"], "'consensus' cannot"), ("kmeans", "a list of method names")):
        with pytest.raises(ConfigError, match=match):
            resolve_methods(["consensus"], {"members": bad})
    with pytest.raises(ConfigError, match="unknown method 'kmedoids'"):
        resolve_methods(["kmedoids"])


def test_every_available_method_builds_its_estimator():
    assert set(AVAILABLE) <= set(METHOD_NAMES)
    for name in AVAILABLE:
        spec = METHODS[name]
        est = make_estimator(name, 3, 0)
        assert est.random_state == 0
        if spec.k_param:
            assert getattr(est, spec.k_param) == 3
        for key, value in spec.fixed.items():
            assert getattr(est, key) == value


def test_method_params_merge_and_check():
    assert make_estimator("kmeans_random", 3, 1).init == "random"
    assert method_params("kmeans", {"max_iter": 5}) == {"max_iter": 5}
    with pytest.raises(ConfigError, match=r"\[params.kmeans\]: unknown parameter 'colour'"):
        method_params("kmeans", {"colour": 1})
    with pytest.raises(ConfigError, match="init"):  # fixed by the method name, not tunable
        method_params("kmeans_random", {"init": "k-means++"})
    with pytest.raises(ConfigError, match="not an available method"):
        method_params("kmedoids", {})
    with pytest.raises(ConfigError, match="unknown parameter 'member_params'"):  # members run as methods
        method_params("consensus", {"member_params": {}})


@pytest.mark.parametrize(
    "method, params, match",
    [
        ("gmm", {"covariance_type": "spherical"}, r"\[params.gmm\] covariance_type"),
        ("dbscan", {"eps": -1.0}, r"\[params.dbscan\] eps"),
        ("kmeans", {"max_iter": "x"}, r"\[params.kmeans\] max_iter"),
        ("som", {"grid": [1, 1]}, r"\[params.som\] grid"),
        ("dec", {"init": "paper"}, r"\[params.dec\] init: init must be one of"),
        # the message names n_init, which contains "init": the setting at fault is n_init
        ("dec", {"init": "input", "n_init": 0}, r"\[params.dec\] n_init: n_init must be"),
    ],
    ids=["gmm-covariance", "dbscan-eps", "kmeans-max-iter", "som-grid", "dec-init", "dec-n-init-not-init"],
)
def test_bad_parameter_values_are_config_errors(method, params, match):
    from gpuseg.cluster import check_method_params

    with pytest.raises(ConfigError, match=match):
        check_method_params(method, params, 6)


def test_initial_parameters_are_not_settable():
    with pytest.raises(ConfigError, match="unknown parameter 'weights_init'"):
        method_params("gmm", {"weights_init": [0.5, 0.5]})


@pytest.mark.parametrize("method", ["minibatch_kmeans", "gmm", "som", "ward", "dbscan", "kmeans", "pso_kmeans"])
def test_estimators_take_data_frames(method):
    import numpy as np
    import pandas as pd

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 3)), columns=list("abc"))
    est = make_estimator(method, 3, 0).fit(X)
    assert len(est.labels_) == 300
