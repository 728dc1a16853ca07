from __future__ import annotations

import pytest

from gpuseg.cluster import AVAILABLE, METHOD_NAMES, METHODS, make_estimator, method_params, resolve_methods
from gpuseg.errors import ConfigError


def test_resolve_methods():
    assert resolve_methods([]) == ("kmeans",)
    assert resolve_methods(["all"]) == AVAILABLE
    assert resolve_methods(["KMeans_Random", "kmeans", "kmeans"]) == ("kmeans_random", "kmeans")
    with pytest.raises(ConfigError, match="unknown method 'kmedoids'"):
        resolve_methods(["kmedoids"])
    with pytest.raises(ConfigError, match="not available in this version"):
        resolve_methods(["dec"])


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
        method_params("dec", {})
