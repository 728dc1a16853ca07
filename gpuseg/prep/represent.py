"""Which engineered features define the segments, and with what weight.

Customer features are many measurements of a few behaviours: spend, order count, average
order value and a spend rate all rise together, while time-of-day or category shares may
vary without telling customers apart. Scaled to unit variance and handed to a clustering
method as they are, the repeated behaviour counts several times and the unrelated ones add
variance that hides the rest. :func:`feature_weights` decides, without labels, how much
each scaled feature counts in the clustering space:

1. **Near-constant** features (at least ``near_constant`` of the customers share one
   value, e.g. the time-of-day shares of date-only data) are left out: weight 0.
2. **Describe-only** features (``[features] describe_only``: feature or group names) are
   left out of the clustering space; they still profile and name the segments.
3. **Redundant** features count once together: features are grouped by complete linkage
   on ``1 - |Spearman rho|`` so that every pair in a group has ``|rho| >= redundancy``; a
   group of m features gets weight ``1/sqrt(m)`` each, the variance of one feature.
4. **Features without shared structure** are down-weighted. A feature belongs to the
   segments when the customers' grouping by the *other* features explains part of its
   variance: for each redundancy group, K-means (k = 8) on all the remaining features
   groups a fixed-seed sample, and the share of each member's variance between those
   groups (eta squared) is its ``relevance``. A feature that varies independently of
   everything else (noise) scores near 0. The weight is multiplied by
   ``sqrt(relevance / max relevance)``. A group of shares of one whole (:data:`SHARE_GROUPS`)
   where at least a quarter of the customers sit at a corner (one order: every share 0 or 1) is measured against
   the features outside that group only (:func:`_share_families`).

The statistics come from a fixed-seed sample of at most ``sample`` customers, moved to the
host (a few MB); the weights then apply to every customer on its device.

Measured on the planted scenarios of ``bench/quality.py`` (README there): see the
"Representation" table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..backend import array_namespace, to_host

__all__ = ["FeatureWeights", "feature_weights", "spearman", "average_ranks", "RELEVANCE_CLUSTERS"]

#: K-means clusters of the other features that a feature's relevance is measured against.
RELEVANCE_CLUSTERS = 8
#: Relevance, as a share of the best, under which a feature counts as down-weighted in the
#: summary line (its weight is then multiplied by less than 1/2).
LOW_RELEVANCE = 0.25
#: Customers in the relevance K-means at most (a subsample of the correlation sample).
RELEVANCE_SAMPLE = 5000


@dataclass
class FeatureWeights:
    """The weight of every scaled feature and why.

    Attributes
    ----------
    weights : ndarray of shape (n_features,)
        Host float64; 0 for features left out.
    rows : list of dict
        Per feature: ``feature``, ``weight``, ``role`` (``defines`` or ``left out``),
        ``reason``, ``redundancy_group`` (the other features it was grouped with),
        ``relevance``, ``mode_share``.
    """

    weights: np.ndarray
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kept(self) -> list[str]:
        return [r["feature"] for r in self.rows if r["weight"] > 0]

    def summary(self) -> str:
        """One line for the progress display."""
        out = [r["feature"] for r in self.rows if r["weight"] == 0]
        merged = sum(1 for r in self.rows if r["redundancy_group"] and r["weight"] > 0)
        top = max((r["relevance"] for r in self.rows if r["relevance"] is not None), default=0.0)
        # as the weights are set: relative to the best relevance (a factor under 1/2 on the weight)
        low = [r["feature"] for r in self.rows if 0 < r["weight"] and r["relevance"] is not None
               and r["relevance"] < LOW_RELEVANCE * top]
        parts = [f"{len(self.kept)} of {len(self.rows)} features define the segments"]
        if out:
            parts.append(f"{len(out)} left out ({_names(out)})")
        if merged:
            parts.append(f"{merged} share weight with redundant ones")
        if low:
            parts.append(f"{len(low)} down-weighted to under half for lack of shared structure ({_names(low)})")
        return "; ".join(parts)


def _names(names: Sequence[str], at_most: int = 4) -> str:
    shown = ", ".join(names[:at_most])
    return shown + (f" and {len(names) - at_most} more" if len(names) > at_most else "")


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a 1-D array, ties sharing the average rank (as scipy's rankdata)."""
    s = np.sort(x)
    lo = np.searchsorted(s, x, side="left")
    hi = np.searchsorted(s, x, side="right")
    return (lo + hi - 1) / 2.0


def spearman(X: np.ndarray) -> np.ndarray:
    """Spearman correlation matrix of the columns of a host array (average ranks for ties;
    constant columns correlate 0 with everything)."""
    R = np.column_stack([average_ranks(X[:, j]) for j in range(X.shape[1])])
    R -= R.mean(axis=0)
    norm = np.sqrt((R * R).sum(axis=0))
    safe = np.where(norm > 0, norm, 1.0)
    C = (R.T @ R) / np.outer(safe, safe)
    C[norm == 0, :] = 0.0
    C[:, norm == 0] = 0.0
    np.fill_diagonal(C, 1.0)
    return np.clip(C, -1.0, 1.0)


def feature_weights(
    X: Any,
    names: Sequence[str],
    groups: Mapping[str, str] | None = None,
    *,
    near_constant: float | None = 0.99,
    redundancy: float | None = 0.8,
    describe_only: Sequence[str] = (),
    relevance: bool = True,
    sample: int = 20_000,
    random_state: int = 0,
    bounded: Sequence[str] | None = None,
) -> FeatureWeights:
    """Weights of the scaled features (module doc).

    Parameters
    ----------
    X : array of shape (n_customers, n_features)
        Scaled features (NumPy or CuPy).
    names : sequence of str
    groups : mapping, optional
        Feature -> feature group (``rfm``, ``time``, ...), for ``describe_only``.
    near_constant : float or None, default=0.99
        Share of customers with one value from which a feature is left out (None: never).
    redundancy : float or None, default=0.8
        ``|rho|`` from which features count as one (None: never).
    describe_only : sequence of str
        Feature or group names left out of the clustering space.
    relevance : bool, default=True
        Down-weight features without shared structure (step 4).
    sample : int, default=20000
    random_state : int, default=0
    bounded : sequence of str, optional
        The features that are shares (0 to 1); only they count as members of a share group
        (``brands``, a count, sits in the category group). None: every member of the group.

    Returns
    -------
    FeatureWeights
    """
    names = list(names)
    p = len(names)
    if X.shape[1] != p:
        raise ValueError(f"X has {X.shape[1]} columns, {p} names given")
    S = _host_sample(X, sample, random_state)
    groups = dict(groups or {})
    mode_share = np.array([_median_share(S[:, j]) for j in range(p)])
    out = mode_share >= near_constant if near_constant is not None else np.zeros(p, dtype=bool)
    described = np.array([n in describe_only or groups.get(n) in describe_only for n in names])
    active = ~out & ~described
    w = np.zeros(p)
    rows = [{"feature": n, "weight": 0.0, "role": "left out", "reason": "", "redundancy_group": [],
             "relevance": None, "mode_share": round(float(mode_share[j]), 4)} for j, n in enumerate(names)]
    for j in np.flatnonzero(out):
        rows[j]["reason"] = f"near-constant: {mode_share[j]:.1%} of customers share one value"
    for j in np.flatnonzero(described & ~out):
        rows[j]["reason"] = "describe-only ([features] describe_only): profiles the segments, does not define them"
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return FeatureWeights(w, rows)
    sub = S[:, idx]
    label = _redundancy_groups(spearman(sub), redundancy) if redundancy is not None else np.arange(idx.size)
    size = np.bincount(label)[label]
    w[idx] = 1.0 / np.sqrt(size)
    family = _share_families(sub, names, groups, idx, bounded)
    rel = _relevance(sub, label, random_state, family) if relevance and len(set(label)) > 1 else np.ones(idx.size)
    top = rel.max()
    if top > 0:
        w[idx] *= np.sqrt(np.maximum(rel, 0.0) / top)
    for pos, j in enumerate(idx):
        partners = [names[idx[q]] for q in np.flatnonzero(label == label[pos]) if q != pos]
        r = rows[j]
        r.update(weight=round(float(w[j]), 4), role="defines" if w[j] > 0 else "left out",
                 redundancy_group=partners, relevance=round(float(rel[pos]), 4))
        why = []
        if partners:
            why.append(f"redundant with {_names(partners, 3)} (|Spearman| >= {redundancy}): weight shared by "
                       f"{len(partners) + 1}")
        if relevance and rel[pos] < top:
            why.append(f"relevance {rel[pos]:.3f} of the best {top:.3f} (share of its variance between groups of "
                       f"customers formed by the other features)")
        r["reason"] = "; ".join(why) or "full weight"
    return FeatureWeights(w, rows)


def _host_sample(X: Any, size: int, seed: int) -> np.ndarray:
    xp = array_namespace(X)
    n = X.shape[0]
    if n > size:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
        X = X[xp.asarray(rows)]
    return np.asarray(to_host(X), dtype=np.float64)


def _median_share(x: np.ndarray) -> float:
    """Share of values equal to the median (the mode whenever one value holds a majority)."""
    return float(np.mean(x == np.median(x))) if x.size else 1.0


def _redundancy_groups(C: np.ndarray, redundancy: float) -> np.ndarray:
    """Group labels 0..g-1: complete linkage on 1 - |rho| cut at 1 - redundancy."""
    p = C.shape[0]
    if p == 1:
        return np.zeros(1, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = 1.0 - np.abs(C)
    np.fill_diagonal(D, 0.0)
    tree = linkage(squareform(np.clip(D, 0.0, None), checks=False), method="complete")
    return np.unique(fcluster(tree, 1.0 - redundancy, criterion="distance"), return_inverse=True)[1]


def _share_families(S: np.ndarray, names: Sequence[str], groups: Mapping[str, str], idx: np.ndarray,
                    bounded: Sequence[str] | None = None) -> np.ndarray:
    """Per active column, the number of its family of shares whose within-family structure is
    the counting's (-1 for none): a :data:`SHARE_GROUPS` group where :data:`CORNER_SHARE` of
    the customers' shares sit at a corner (every share at its lowest or highest value: one order, or one event, in
    one day part). Their corners are perfect clusters of the other shares, and would make
    each share look relevant whatever the customers do; they are measured against the other
    features alone (:func:`_relevance`)."""
    out = np.full(len(idx), -1)
    by_group: dict[str, list[int]] = {}
    for pos, j in enumerate(idx):
        if groups.get(names[j]) in SHARE_GROUPS and (bounded is None or names[j] in bounded):
            by_group.setdefault(groups[names[j]], []).append(pos)
    for number, members in enumerate(by_group.values()):
        part = S[:, members]
        corner = ((part == part.min(axis=0)) | (part == part.max(axis=0))).all(axis=1)
        if len(members) > 1 and corner.mean() >= CORNER_SHARE:
            out[members] = number
    return out


#: Feature groups whose members are shares of one whole (day parts and the weekend,
#: categories), which one event or order puts at a corner (:func:`_share_families`).
SHARE_GROUPS = ("time", "category")
#: Share of customers at a corner from which a share group's own structure is not counted: a
#: quarter (one-time buyers are 38% of a shop's customers, say, and their hours would split them;
#: event logs give most customers many events, far from the corners).
CORNER_SHARE = 0.25


def _relevance(S: np.ndarray, label: np.ndarray, seed: int, family: np.ndarray | None = None) -> np.ndarray:
    """Per column, eta squared against K-means groups of the columns outside its
    redundancy group (module doc, step 4)."""
    from sklearn.cluster import KMeans  # host K-means on a small sample: scikit-learn's is the fastest

    if S.shape[0] > RELEVANCE_SAMPLE:
        S = S[np.sort(np.random.default_rng(seed + 1).choice(S.shape[0], RELEVANCE_SAMPLE, replace=False))]
    k = min(RELEVANCE_CLUSTERS, max(2, S.shape[0] // 10))
    total = ((S - S.mean(axis=0)) ** 2).sum(axis=0)
    rel = np.zeros(S.shape[1])
    for g in np.unique(label):
        inside = label == g
        if family is not None:
            fam = family[inside]
            inside = inside | np.isin(family, fam[fam >= 0])
        if inside.all():
            inside = label == g
        rest = np.ascontiguousarray(S[:, ~inside], dtype=np.float32)
        groups = KMeans(k, n_init=1, max_iter=100, random_state=seed).fit(rest).labels_
        counts = np.bincount(groups, minlength=k)
        for j in np.flatnonzero(label == g):
            means = np.bincount(groups, weights=S[:, j], minlength=k) / np.maximum(counts, 1)
            between = (counts * (means - S[:, j].mean()) ** 2).sum()
            rel[j] = between / total[j] if total[j] > 0 else 0.0
    return rel
