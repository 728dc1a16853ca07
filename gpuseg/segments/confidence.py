"""Per-customer confidence in the chosen segment, in [0, 1], whatever the method.

=====================  ===================================================================
consensus              share of members agreeing with the final label (vote), or mean
                       co-association with the final group (evidence accumulation)
gmm, dec, idec         posterior probability of the assigned segment (``predict_proba``)
hdbscan                membership strength (``probabilities_``)
dbscan                 1 for core customers, 0.5 for border customers
centroid methods       margin between the nearest and second-nearest centre,
                       ``tanh((d2^2 - d1^2) / (4 s^2))``, s^2 the within-segment variance
                       per dimension (0: halfway between two segments, near 1: well inside)
unassigned (-1)        0
=====================  ===================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._xp import squared_distances
from ..backend import array_namespace, to_namespace

__all__ = ["segment_confidence", "confidence_meaning", "confidence_summary", "LOW_CONFIDENCE"]

#: Customers below this confidence are flagged ``low_confidence`` in segments.parquet.
LOW_CONFIDENCE = 0.5


def confidence_meaning(estimator: Any) -> str:
    """One line saying what the confidence column means for this estimator."""
    name = type(estimator).__name__
    if hasattr(estimator, "confidence_"):
        return "share of consensus members that agree with the segment"
    if hasattr(estimator, "predict_proba"):
        return "posterior probability of the segment"
    if hasattr(estimator, "probabilities_"):
        return "HDBSCAN membership strength"
    if name == "DBSCAN":
        return "1 for core customers, 0.5 for border customers"
    return "margin between the nearest and second-nearest segment centre, tanh((d2^2 - d1^2) / 4s^2)"


def segment_confidence(estimator: Any, X: Any) -> Any:
    """Confidence of every customer in its segment (float32, X's array type).

    Parameters
    ----------
    estimator : fitted estimator
        The chosen method's estimator, fitted on ``X``.
    X : array
        What the estimator was fitted on.
    """
    xp = array_namespace(X)
    labels = xp.asarray(estimator.labels_)
    assigned = labels >= 0
    if hasattr(estimator, "confidence_"):
        conf = xp.asarray(estimator.confidence_)
    elif hasattr(estimator, "predict_proba"):
        conf = xp.asarray(estimator.predict_proba(X)).max(axis=1)
    elif hasattr(estimator, "probabilities_"):
        conf = xp.asarray(estimator.probabilities_)
    elif type(estimator).__name__ == "DBSCAN":
        core = np.zeros(len(labels), dtype=np.float32)
        core[np.asarray(estimator.core_sample_indices_, dtype=np.int64)] = 1.0
        conf = xp.where(xp.asarray(core) > 0, 1.0, 0.5)
    else:
        conf = _centroid_margin(estimator, X, labels)
    return xp.where(assigned, xp.clip(conf, 0.0, 1.0), 0.0).astype(xp.float32)


def _centroid_margin(estimator: Any, X: Any, labels: Any) -> Any:
    """Margin between the nearest and second-nearest centre, ``tanh((d2^2 - d1^2) / (4 s^2))``.

    ``s^2`` is the within-segment variance per dimension (mean squared distance to the own
    centre over the dimensions). Under equal spherical segments of that variance this is
    ``2p - 1``, with ``p`` the posterior of the nearer of the two centres: 0 halfway between
    two segments, near 1 well inside one. Distances are taken where the centres live (the
    embedding for deep K-means, else X); a raw ratio ``d1/d2`` would crowd every customer
    near 1 in many dimensions, this scale does not.
    """
    xp = array_namespace(X)
    space = getattr(estimator, "embedding_", None)
    space = X if space is None else xp.asarray(space)
    centers = getattr(estimator, "cluster_centers_", None)
    if centers is None or centers.shape[1] != space.shape[1]:
        from ..evaluate.metrics import cluster_centers

        ok = labels >= 0
        centers = cluster_centers(space[ok], labels[ok])
    centers = to_namespace(centers, xp).astype(xp.float64)
    if centers.shape[0] < 2:
        return xp.ones(space.shape[0], dtype=xp.float32)
    d2 = squared_distances(space.astype(xp.float64), centers)
    part = xp.sort(d2, axis=1)[:, :2]
    within = float(part[:, 0].mean()) / max(space.shape[1], 1)
    if not within > 0:
        return xp.ones(space.shape[0], dtype=xp.float32)
    return xp.tanh((part[:, 1] - part[:, 0]) / (4.0 * within))


def confidence_summary(confidence: Any, threshold: float = LOW_CONFIDENCE) -> dict[str, Any]:
    """Mean, quartiles and the low-confidence count of a confidence column (host floats)."""
    from ..backend import to_host

    c = np.asarray(to_host(confidence), dtype=np.float64)
    if c.size == 0:
        return {"mean": None, "threshold": threshold, "low_count": 0, "low_share": 0.0}
    q = np.quantile(c, [0.25, 0.5, 0.75])
    low = int((c < threshold).sum())
    return {
        "mean": float(c.mean()),
        "quartiles": [float(v) for v in q],
        "threshold": threshold,
        "low_count": low,
        "low_share": low / c.size,
    }
