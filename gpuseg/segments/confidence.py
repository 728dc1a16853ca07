"""Per-customer confidence in the chosen segment, in [0, 1], whatever the method.

=====================  ===================================================================
consensus              share of members agreeing with the final label (vote), or mean
                       co-association with the final group (evidence accumulation)
gmm, dec, idec         posterior probability of the assigned segment (``predict_proba``)
hdbscan                membership strength (``probabilities_``)
dbscan                 1 for core customers, 0.5 for border customers
centroid methods       margin of the own segment's centre over the nearest other centre,
                       ``tanh(max(d_other^2 - d_own^2, 0) / (4 s^2))``, s^2 the within-
                       segment variance per dimension (0: halfway between two segments or
                       nearer another centre, near 1: well inside the own segment)
unassigned (-1)        0
=====================  ===================================================================
"""

from __future__ import annotations

from typing import Any

from .._xp import squared_distances
from ..backend import array_namespace, to_namespace

__all__ = ["segment_confidence", "confidence_meaning", "confidence_summary", "LOW_CONFIDENCE"]

#: Customers below this confidence are flagged ``low_confidence`` in segments.parquet.
LOW_CONFIDENCE = 0.5


def confidence_meaning(estimator: Any) -> str:
    """One line saying what the confidence column means for this estimator."""
    name = type(estimator).__name__
    if hasattr(estimator, "confidence_"):
        if getattr(estimator, "strategy", "vote") == "evidence":
            return "mean co-association with the segment's sample customers (evidence accumulation)"
        return "share of consensus members that agree with the segment"
    if hasattr(estimator, "predict_proba"):
        return "posterior probability of the segment"
    if hasattr(estimator, "probabilities_"):
        return "HDBSCAN membership strength"
    if name == "DBSCAN":
        return "1 for core customers, 0.5 for border customers"
    return "margin of the own segment centre over the nearest other centre, tanh((d_other^2 - d_own^2) / 4s^2)"


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
        conf = xp.full(len(labels), 0.5, dtype=xp.float32)
        conf[xp.asarray(estimator.core_sample_indices_).astype(xp.int64)] = 1.0
    else:
        conf = _centroid_margin(estimator, X, labels)
    return xp.where(assigned, xp.clip(conf, 0.0, 1.0), 0.0).astype(xp.float32)


def _centroid_margin(estimator: Any, X: Any, labels: Any) -> Any:
    """Margin of a customer's own segment centre over the nearest other centre,
    ``tanh(max(d_other^2 - d_own^2, 0) / (4 s^2))``.

    ``s^2`` is the within-segment variance per dimension (mean squared distance to the own
    centre over the dimensions). Under equal spherical segments of that variance this is
    ``2p - 1``, with ``p`` the posterior of the own segment against the nearest other one:
    0 halfway between two segments (or nearer another segment's centre, as SOM and Ward
    customers can be), near 1 well inside the own segment. Distances are taken where the
    centres live (the embedding for deep K-means, else X); a raw ratio ``d1/d2`` would
    crowd every customer near 1 in many dimensions, this scale does not.
    """
    xp = array_namespace(X)
    ref = margin_reference(estimator, X, labels)
    if ref is None:
        return xp.ones(X.shape[0], dtype=xp.float32)
    centers, row_of, within, space = ref
    return margin_confidence(space, row_of, centers, within)


def margin_reference(estimator: Any, X: Any, labels: Any) -> tuple[Any, Any, float, Any] | None:
    """(centres, centre row of each customer, within-segment variance per dimension, the
    space) of :func:`_centroid_margin`; None when it is 1 for everyone (one segment, no
    spread). Centre row ``j`` belongs to label ``j`` when the estimator has one centre per
    label, else to the ``j``-th smallest label; unassigned customers get row -1."""
    from ..evaluate.metrics import cluster_centers

    xp = array_namespace(X)
    labels = xp.asarray(labels)
    space = getattr(estimator, "embedding_", None)
    space = X if space is None else xp.asarray(space)
    ok = labels >= 0
    if not bool(ok.any()):
        return None
    centers = getattr(estimator, "embedding_centers_", None)  # centres where embedding_ lives, when they differ
    if centers is None:
        centers = getattr(estimator, "cluster_centers_", None)
    if (centers is not None and centers.shape[1] == space.shape[1] and centers.shape[0] >= 2
            and int(labels.max()) < centers.shape[0]):
        own = labels.astype(xp.int64)  # label j: centre j
    else:
        values = xp.unique(labels[ok])
        if values.size < 2:
            return None
        centers = cluster_centers(space[ok], labels[ok])  # row j: the j-th smallest label
        own = xp.searchsorted(values, xp.clip(labels, int(values[0]), None)).astype(xp.int64)
    own = xp.where(ok, own, -1)
    centers = to_namespace(centers, xp).astype(xp.float64)
    d2 = squared_distances(space[ok].astype(xp.float64), centers)
    within = float(d2[xp.arange(d2.shape[0]), own[ok]].mean()) / max(space.shape[1], 1)
    if not within > 0:
        return None
    return centers, own, within, space


def margin_confidence(space: Any, own: Any, centers: Any, within: float) -> Any:
    """``tanh(max(d_other^2 - d_own^2, 0) / (4 within))`` for customers whose own centre is
    row ``own`` of ``centers`` (0 where ``own`` is -1 or there is no other centre)."""
    xp = array_namespace(space)
    centers = to_namespace(centers, xp).astype(xp.float64)
    own = xp.asarray(own).astype(xp.int64)
    ok = own >= 0
    if centers.shape[0] < 2:
        return xp.where(ok, 1.0, 0.0).astype(xp.float32)
    d2 = squared_distances(space.astype(xp.float64), centers)
    rows = xp.arange(space.shape[0])
    safe = xp.where(ok, own, 0)
    d_own = d2[rows, safe]
    d2[rows, safe] = xp.inf
    d_other = d2.min(axis=1)
    return xp.where(ok, xp.tanh(xp.maximum(d_other - d_own, 0.0) / (4.0 * within)), 0.0)


def confidence_summary(confidence: Any, threshold: float = LOW_CONFIDENCE) -> dict[str, Any]:
    """Mean, quartiles and the low-confidence count of a confidence column (computed on its
    device; only the numbers move)."""
    xp = array_namespace(confidence)
    c = xp.asarray(confidence).astype(xp.float64)
    if c.size == 0:
        return {"mean": None, "threshold": threshold, "low_count": 0, "low_share": 0.0}
    q = xp.quantile(c, xp.asarray([0.25, 0.5, 0.75]))
    low = int((c < threshold).sum())
    return {
        "mean": float(c.mean()),
        "quartiles": [float(v) for v in q],
        "threshold": threshold,
        "low_count": low,
        "low_share": low / int(c.size),
    }
