from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from gpuseg.evaluate.sweep import Fit, fit_method, score_fit, score_method


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(1200, n_features=4, centers=4, cluster_std=0.8, random_state=1)
    return X.astype(np.float32), y


def test_sweep_chooses_k_and_scores_every_fit(blobs):
    X, _ = blobs
    run = fit_method("kmeans", X, range(2, 8), 0, {})
    entry = score_method(X, run, None, 0)
    assert entry["status"] == "ok" and entry["k"] == 4
    assert [r["k"] for r in entry["sweep"]] == list(range(2, 8))
    assert entry["k_choice"]["knee"] == 4
    assert entry["sweep"][entry["chosen_index"]]["k"] == 4


def test_failures_are_recorded_not_raised(blobs):
    X, _ = blobs
    run = fit_method("kmeans", X[:5], [2, 9], 0, {})  # k=9 > 5 samples
    assert run.fits[0].error is None and "n_samples=5" in run.fits[1].error
    entry = score_method(X[:5], run, None, 0)
    assert entry["status"] == "ok" and entry["k"] == 2
    assert entry["sweep"][1]["status"] == "failed"


def test_a_single_cluster_is_a_failure():
    X = np.random.default_rng(0).normal(size=(50, 2))
    row = score_fit(X, Fit(None, estimator=object(), labels=np.zeros(50, np.int32)), None, 0)
    assert row["status"] == "failed" and row["reason"] == "found 1 segment"


def test_noise_is_excluded_from_scores_and_counted(blobs):
    X, y = blobs
    labels = y.astype(np.int32).copy()
    labels[:100] = -1
    row = score_fit(X, Fit(None, estimator=object(), labels=labels), None, 0)
    assert row["noise"] == 100 and row["noise_share"] == pytest.approx(100 / 1200)
    assert row["k"] == row["clusters_found"] == 4
    from sklearn.metrics import silhouette_score

    ref = silhouette_score(X[100:], y[100:])
    assert row["silhouette"] == pytest.approx(ref, rel=1e-4)


def test_silhouette_sample_without_a_second_cluster_is_nan():
    X = np.random.default_rng(0).normal(size=(5000, 3)).astype(np.float32)
    labels = np.zeros(5000, dtype=np.int32)
    labels[0] = 1  # one tiny cluster that a 100-row sample misses
    row = score_fit(X, Fit(2, estimator=object(), labels=labels), 100, 3)
    assert np.isnan(row["silhouette"]) and np.isfinite(row["davies_bouldin"])


@pytest.mark.parametrize("method", ["ward", "som"])
def test_tree_methods_are_fitted_once_and_recut(blobs, method, monkeypatch):
    from gpuseg.cluster import METHODS

    X, _ = blobs
    cls = METHODS[method].cls
    calls = []
    real_fit = cls.fit
    monkeypatch.setattr(cls, "fit", lambda self, X, y=None: calls.append(self.n_clusters) or real_fit(self, X))
    run = fit_method(method, X, range(2, 7), 0, {})
    assert calls == [6]
    found = [len(np.unique(f.labels)) for f in run.fits]
    assert found == [2, 3, 4, 5, 6]
    # a recut equals a fresh fit at that k
    fresh = cls(n_clusters=3, random_state=0).fit(X)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(fresh.labels_, run.fits[1].labels) == 1.0


def test_fewer_segments_than_k_is_not_a_k():
    """Customers cloned from 3 templates: k=4..6 cannot be told apart and must not be chosen."""
    X = np.repeat(np.random.default_rng(0).normal(size=(3, 5)), 100, axis=0).astype(np.float32)
    run = fit_method("kmeans", X, range(2, 7), 0, {})
    entry = score_method(X, run, None, 0)
    assert entry["k"] == 3 and entry["clusters_found"] == 3
    assert [r["status"] for r in entry["sweep"]] == ["ok", "ok", "failed", "failed", "failed"]
    assert entry["sweep"][2]["reason"] == "found 3 segments for k=4"


def test_som_grid_too_small_for_the_largest_k_fits_each_k(blobs):
    X, _ = blobs
    run = fit_method("som", X, range(2, 7), 0, {"grid": (2, 2)})
    assert [f.error is None for f in run.fits] == [True, True, True, False, False]


def test_score_cache_keeps_noise_apart(blobs):
    """A partition with one segment left unassigned and the full partition number alike
    by first appearance; they must be scored separately."""
    X, y = blobs
    cache = {}
    with_noise = y.copy()
    with_noise[y == 3] = -1
    a = score_fit(X, Fit(None, labels=with_noise, estimator=object()), None, 0, cache=cache)
    b = score_fit(X, Fit(4, labels=y, estimator=object()), None, 0, cache=cache)
    fresh = score_fit(X, Fit(4, labels=y, estimator=object()), None, 0)
    assert b["calinski_harabasz"] == fresh["calinski_harabasz"] != a["calinski_harabasz"]
    assert b["silhouette"] == fresh["silhouette"]
    # the same partition renumbered is scored once
    again = score_fit(X, Fit(4, labels=(y + 1) % 4, estimator=object()), None, 0, cache=cache)
    assert again["silhouette"] == b["silhouette"] and len(cache) == 2


def test_a_bic_still_falling_at_the_largest_k_is_no_k_settled(blobs):
    X, _ = blobs
    inside = score_method(X, fit_method("gmm", X, range(2, 8), 0, {}), None, 0)
    assert inside["k"] == 4 and "at_range_end" not in inside["k_choice"]
    assert "largest k tried" not in inside["k_choice"]["reason"]
    short = score_method(X, fit_method("gmm", X, range(2, 4), 0, {}), None, 0)  # 4 blobs, k up to 3
    assert short["k"] == 3 and short["k_choice"]["at_range_end"] is True
    assert short["k_choice"]["reason"].startswith("lowest BIC over k=2..3: k=3; that is the largest k tried")
