"""Per-customer confidence: what it is for each kind of method, always in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from gpuseg.backend import to_host
from gpuseg.cluster import make_estimator
from gpuseg.segments import LOW_CONFIDENCE, confidence_meaning, confidence_summary, segment_confidence


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=900, centers=3, n_features=4, cluster_std=1.0, random_state=4)
    return X.astype(np.float32), y


@pytest.mark.parametrize("method", ["kmeans", "minibatch_kmeans", "pso_kmeans", "gmm", "som", "ward", "dbscan",
                                    "hdbscan", "consensus"])
def test_confidence_is_in_unit_interval_and_zero_for_unassigned(blobs, method):
    X, _ = blobs
    params = {"members": ("kmeans", "minibatch_kmeans")} if method == "consensus" else {}
    est = make_estimator(method, 3, 0, params).fit(X)
    conf = np.asarray(to_host(segment_confidence(est, X)))
    labels = np.asarray(to_host(est.labels_))
    assert conf.dtype == np.float32 and conf.shape == (len(X),)
    assert ((conf >= 0) & (conf <= 1)).all()
    assert (conf[labels < 0] == 0).all()
    assert conf[labels >= 0].mean() > 0.5  # well-separated blobs: mostly confident
    assert isinstance(confidence_meaning(est), str)


def test_centroid_margin_is_zero_halfway_and_high_on_a_centre():
    X, _ = make_blobs(n_samples=600, centers=[[-4, 0], [4, 0]], cluster_std=1.0, random_state=0)
    est = make_estimator("kmeans", 2, 0).fit(X.astype(np.float32))
    c = np.asarray(est.cluster_centers_, dtype=np.float64)
    probe = np.vstack([X, c.mean(axis=0), c[0], c[1]]).astype(np.float32)
    est.labels_ = est.predict(probe)
    conf = segment_confidence(est, probe)
    assert conf[-3] == pytest.approx(0.0, abs=1e-3)
    assert conf[-2] > 0.99 and conf[-1] > 0.99
    # it falls as a customer moves from a centre to the midpoint
    path = np.linspace(c[0], c.mean(axis=0), 6).astype(np.float32)
    est.labels_ = est.predict(path)
    assert (np.diff(segment_confidence(est, path)) < 0).all()


def test_posterior_and_vote_confidences(blobs):
    X, _ = blobs
    gmm = make_estimator("gmm", 3, 0).fit(X)
    assert np.allclose(segment_confidence(gmm, X), gmm.predict_proba(X).max(axis=1), atol=1e-6)
    assert "posterior" in confidence_meaning(gmm)
    cons = make_estimator("consensus", 3, 0, {"members": ("kmeans", "minibatch_kmeans")}).fit(X)
    assert (segment_confidence(cons, X) == cons.confidence_).all()
    assert "consensus members" in confidence_meaning(cons)


def test_confidence_summary():
    s = confidence_summary(np.array([0.1, 0.4, 0.6, 0.9], dtype=np.float32))
    assert s["low_count"] == 2 and s["low_share"] == 0.5 and s["threshold"] == LOW_CONFIDENCE
    assert s["mean"] == pytest.approx(0.5) and len(s["quartiles"]) == 3


def test_margin_uses_the_customers_own_segment():
    """A customer labelled with a segment whose centre is not the nearest (as SOM and Ward
    can label) gets confidence 0, not the margin of the nearest centre."""
    X, _ = make_blobs(n_samples=400, centers=[[-4, 0], [4, 0]], cluster_std=1.0, random_state=0)
    X = X.astype(np.float32)

    class Labelled:  # labels only: centres are computed from them
        pass

    est = Labelled()
    labels = (X[:, 0] > 0).astype(np.int64)
    wrong = np.flatnonzero(X[:, 0] > 3)[:5]
    labels[wrong] = 0  # far inside segment 1's side, labelled 0
    est.labels_ = labels
    conf = segment_confidence(est, X)
    assert (conf[wrong] == 0).all()
    right = np.flatnonzero(X[:, 0] < -3)
    assert conf[right].min() > 0.9


def test_evidence_confidence_meaning(blobs):
    X, _ = blobs
    cons = make_estimator("consensus", 3, 0, {"members": ("kmeans", "minibatch_kmeans"),
                                              "strategy": "evidence", "sample_size": 200}).fit(X)
    assert "co-association" in confidence_meaning(cons)
