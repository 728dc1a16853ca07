"""Stability by refits on subsamples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs

from gpuseg.evaluate.stability import pairwise_stability, refit_labels, run_stability, subsamples


@given(n=st.integers(4, 5000), resamples=st.integers(2, 6), seed=st.integers(0, 1000),
       scheme=st.sampled_from(["half", "bootstrap"]), cap=st.one_of(st.none(), st.integers(2, 400)))
@settings(max_examples=60, deadline=None)
def test_subsamples_are_seeded_sorted_sets(n, resamples, seed, scheme, cap):
    a = subsamples(n, resamples, seed, scheme, cap)
    b = subsamples(n, resamples, seed, scheme, cap)
    assert len(a) == resamples
    limit = None if cap is None else (2 * cap if scheme == "half" else cap)
    pool = n if limit is None or n <= limit else limit
    for s, t in zip(a, b):
        assert (s == t).all()
        assert (np.diff(s) > 0).all() and s.min() >= 0 and s.max() < n
        if scheme == "half":
            assert len(s) == max(2, pool // 2)
        else:
            assert len(s) <= pool
        if cap is not None:
            assert len(s) <= max(cap, 2)  # never more customers per refit than asked
    # every subsample comes from one shared pool, so pairs overlap
    union = np.unique(np.concatenate(a))
    assert len(union) <= pool


def test_subsamples_reject_bad_arguments():
    with pytest.raises(ValueError, match="scheme"):
        subsamples(10, 3, 0, "jackknife")
    with pytest.raises(ValueError, match="resamples"):
        subsamples(10, 1, 0)


def test_stability_is_high_on_blobs_and_low_on_uniform_noise():
    X, _ = make_blobs(n_samples=2000, centers=5, n_features=6, cluster_std=0.8, random_state=0)
    blobs = run_stability(X.astype(np.float32), {"kmeans": 5}, {}, seed=0, resamples=6)["kmeans"]
    noise = np.random.default_rng(0).uniform(size=(2000, 6)).astype(np.float32)
    flat = run_stability(noise, {"kmeans": 5}, {}, seed=0, resamples=6)["kmeans"]
    assert blobs["mean"] > 0.98 and blobs["pairs"] == 15 and blobs["failed_refits"] == 0
    assert flat["mean"] < 0.8
    assert flat["mean"] < blobs["mean"] - 0.15


def test_stability_is_deterministic_for_a_seed():
    X = np.random.default_rng(3).normal(size=(600, 4)).astype(np.float32)
    a = run_stability(X, {"kmeans": 4, "minibatch_kmeans": 3}, {}, seed=7, resamples=4)
    b = run_stability(X, {"kmeans": 4, "minibatch_kmeans": 3}, {}, seed=7, resamples=4)
    assert a == b


def test_pairwise_stability_compares_on_shared_customers_only():
    samples = [np.arange(0, 8), np.arange(4, 12)]  # customers 4..7 are shared
    a = np.array([0, 1, 0, 1, 0, 0, 1, 1])  # shared: 0 0 1 1
    b = np.array([9, 9, 3, 3, 5, 6, 5, 6])  # shared: 9 9 3 3, the same partition; the rest differs
    same = pairwise_stability(samples, [a, b])
    assert same["mean"] == pytest.approx(1.0) and same["std"] == 0.0 and same["pairs"] == 1
    b2 = b.copy()
    b2[1] = 3  # customer 5 moves to the other group
    moved = pairwise_stability(samples, [a, b2])
    assert moved["mean"] < 0.5
    failed = pairwise_stability(samples, [None, b])
    assert failed["mean"] is None and failed["failed_refits"] == 1 and failed["pairs"] == 0


def test_refits_recut_once_per_subsample(monkeypatch):
    from gpuseg.cluster import METHODS

    X, _ = make_blobs(n_samples=400, centers=4, n_features=3, random_state=1)
    cls = METHODS["ward"].cls
    calls = []
    real_fit = cls.fit
    monkeypatch.setattr(cls, "fit", lambda self, X, y=None: calls.append(self.n_clusters) or real_fit(self, X))
    samples = subsamples(400, 3, 0)
    out = refit_labels("ward", X, [3, 5], 0, {}, samples)
    assert calls == [5, 5, 5]  # one tree per subsample, cut at 5 and 3
    assert [len(np.unique(lab)) for lab in out[3]] == [3, 3, 3]
    assert [len(np.unique(lab)) for lab in out[5]] == [5, 5, 5]


def test_consensus_stability_uses_members_at_the_consensus_k(monkeypatch):
    import gpuseg.evaluate.stability as stab

    X, _ = make_blobs(n_samples=600, centers=3, n_features=4, random_state=2)
    seen = []
    real = stab.refit_labels

    def spy(method, X, ks, *a, **kw):
        seen.append((method, list(ks)))
        return real(method, X, ks, *a, **kw)

    monkeypatch.setattr(stab, "refit_labels", spy)
    out = stab.run_stability(X, {"kmeans": 3, "minibatch_kmeans": 4, "consensus": 3}, {}, seed=0, resamples=3,
                             members={"consensus": ("kmeans", "minibatch_kmeans")})
    assert ("kmeans", [3, 3]) in seen and ("minibatch_kmeans", [4, 3]) in seen and ("consensus", [3]) in seen
    assert out["consensus"]["mean"] > 0.95 and out["consensus"]["failed_refits"] == 0
