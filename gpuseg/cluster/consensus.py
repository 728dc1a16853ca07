"""Consensus of several segmentations: majority vote after alignment, or evidence accumulation.

``ConsensusClustering`` combines the label sets of member methods (by default adaptive
K-means, K-means++, mini-batch K-means and deep K-means, after the hybrid the segmentation
papers propose) into one segmentation with a per-customer confidence: the share of members that
agree with the final label.

Strategies
----------
``vote``
    Every member is aligned to a reference partition (the best-scoring member) by the
    Hungarian method on their contingency table; members with another number of clusters
    are aligned many-to-one (each of their clusters to the reference cluster it overlaps
    most). Each customer gets the label most members give it; a tie goes to the label of
    the best-scoring member among the tied ones.
``evidence``
    Evidence accumulation (Fred & Jain 2005): on a fixed-seed sample of customers the
    co-association of every pair (the share of members that put the two together) is
    clustered by average linkage into k groups; every other customer joins the sample
    group it is most co-associated with on average. No n x n matrix over all customers is
    ever formed.

Label arrays may be NumPy or CuPy; the alignment runs on small host contingency tables.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backend import array_namespace, series_values, to_host, to_namespace
from ._base import EstimatorMixin, as_float_array, seed_from

__all__ = [
    "ConsensusClustering", "align_labels", "majority_vote", "vote_maps", "vote_weight", "evidence_accumulation",
    "DEFAULT_MEMBERS",
]

#: The hybrid of the segmentation literature, with adaptive K-means in place of PSO K-means
#: (which returned K-means' own partition on every scenario of bench/quality.py, at 10-50
#: times its time).
DEFAULT_MEMBERS = ("adaptive_kmeans", "kmeans", "minibatch_kmeans", "deep_kmeans")


def _values(labels: Any) -> np.ndarray:
    """Sorted distinct labels >= 0, as a small host array; found on the labels' device
    (only the k values move, never the labels)."""
    xp = array_namespace(labels)
    lab = xp.asarray(labels)
    kept = lab[lab >= 0]
    if kept.size == 0:
        return np.empty(0, dtype=np.int64)
    top = int(kept.max())
    if top > 4 * kept.size + 1024:  # sparse label values: sort instead of counting
        return np.asarray(to_host(xp.unique(kept)), dtype=np.int64)
    counts = xp.bincount(kept.astype(xp.int64), minlength=top + 1)
    return np.asarray(to_host(xp.flatnonzero(counts)), dtype=np.int64)


def _codes(labels: Any) -> tuple[Any, int]:
    """Labels -> codes 0..m-1 (noise -1 stays -1) on the labels' device, and m."""
    xp = array_namespace(labels)
    lab = xp.asarray(labels).astype(xp.int64)
    values = _values(lab)
    if values.size == 0:
        return xp.full(lab.shape, -1, dtype=xp.int64), 0
    top = int(values[-1])
    if top <= 4 * lab.size + 1024:  # dense label values: a lookup table (a gather)
        lut = np.full(top + 2, -1, dtype=np.int64)  # the last entry serves -1
        lut[values] = np.arange(values.size)
        return xp.asarray(lut)[xp.clip(lab, -1, None)], int(values.size)
    codes = xp.searchsorted(xp.asarray(values), lab)  # sparse values: exact for every label >= 0
    return xp.where(lab >= 0, codes, -1), int(values.size)


def _label_dtype(xp: Any, values: np.ndarray) -> Any:
    """int32 for labels, int64 where label values do not fit."""
    return xp.int32 if values.size == 0 or int(values.max()) < 2**31 else xp.int64


def _check_sets(label_sets: Sequence[Any]) -> None:
    if not label_sets:
        raise ValueError("at least one label set is needed")
    sizes = {len(s) for s in label_sets}
    if len(sizes) != 1:
        raise ValueError(f"label sets must have the same length, got lengths {sorted(sizes)}")


def _contingency(a: Any, b: Any, ka: int, kb: int) -> np.ndarray:
    """Host (ka, kb) counts of (a, b) label pairs over rows where both are >= 0."""
    xp = array_namespace(a, b)
    ok = (a >= 0) & (b >= 0)
    flat = xp.bincount((a[ok] * kb + b[ok]).astype(xp.int64), minlength=ka * kb)
    return np.asarray(to_host(flat)).reshape(ka, kb)


def _mapping(a: Any, ka: int, r: Any, kr: int) -> np.ndarray:
    """Host array: for each code of ``a``, the reference code it is aligned to."""
    from scipy.optimize import linear_sum_assignment

    table = _contingency(a, r, ka, kr)
    if ka == kr:
        mapping = np.empty(ka, dtype=np.int64)
        rows, cols = linear_sum_assignment(-table)
        mapping[rows] = cols
        return mapping
    mapping = table.argmax(axis=1).astype(np.int64)
    if ka < kr:  # one-to-one where possible, as the Hungarian method would
        rows, cols = linear_sum_assignment(-table)
        mapping[rows] = cols
    return mapping


def _apply(codes: Any, mapping: np.ndarray) -> Any:
    """Codes through a host lookup table; -1 stays -1."""
    xp = array_namespace(codes)
    lut = xp.asarray(np.append(mapping, -1))  # the last entry serves -1
    return lut[codes]


def align_labels(labels: Any, reference: Any) -> Any:
    """Relabel ``labels`` to agree with ``reference`` as far as possible.

    With the same number of clusters, the Hungarian method on the contingency table gives
    the one-to-one relabelling with the largest overlap; with a different number, each
    cluster takes the reference label it overlaps most (many-to-one). Noise (-1) stays -1.

    Parameters
    ----------
    labels, reference : array of shape (n_samples,)
        NumPy or CuPy, same device.

    Returns
    -------
    array
        ``labels`` in the reference's label values, same array type.
    """
    xp = array_namespace(labels, reference)
    a, ka = _codes(labels)
    r, kr = _codes(reference)
    if ka == 0 or kr == 0:  # nothing to align to, or nothing to align
        return xp.full(a.shape, -1, dtype=xp.int32)
    if len(labels) != len(reference):
        raise ValueError(f"labels ({len(labels)}) and reference ({len(reference)}) differ in length")
    ref_values = _values(reference)
    return _apply(a, ref_values[_mapping(a, ka, r, kr)]).astype(_label_dtype(xp, ref_values))


def vote_weight(rank: int) -> float:
    """The vote of the member of rank ``rank`` (0 = best) in :func:`majority_vote`.

    1 + 2^-(rank+2): the bonuses sum to less than 1/2, so more votes always win, and each
    bonus outweighs all lower ranks' together, so a tie goes to the best member.
    """
    return 1.0 + 2.0 ** -(rank + 2)


def vote_maps(label_sets: Sequence[Any], scores: Sequence[float] | None = None) -> tuple[list[int], list[np.ndarray]]:
    """The alignment :func:`majority_vote` applies, as lookup tables.

    Parameters
    ----------
    label_sets, scores
        As for :func:`majority_vote`.

    Returns
    -------
    order : list of int
        Member indices, best first (the rank of ``order[j]`` is j).
    maps : list of host int32 arrays
        One per member, in the given order: ``maps[i][v]`` is the consensus label that
        member i's label ``v`` votes for (-1: a value the member never gave).
    """
    _check_sets(label_sets)
    m = len(label_sets)
    order = list(np.argsort(-np.asarray(scores, dtype=float), kind="stable")) if scores is not None else list(range(m))
    coded = {i: _codes(label_sets[i]) for i in order}
    most = max(coded[i][1] for i in order)
    maps = []
    if most == 0:
        return [int(i) for i in order], [np.empty(0, dtype=np.int32) for _ in range(m)]
    ref_at = next(i for i in order if coded[i][1] == most)
    r, k = coded[ref_at]
    ref_values = _values(label_sets[ref_at])
    for i in range(m):
        a, ka = coded[i]
        values = _values(label_sets[i])
        lut = np.full(int(values[-1]) + 1 if values.size else 0, -1, dtype=np.int32)
        if ka:
            lut[values] = ref_values[_mapping(a, ka, r, k)]
        maps.append(lut)
    return [int(i) for i in order], maps


def majority_vote(label_sets: Sequence[Any], scores: Sequence[float] | None = None) -> tuple[Any, Any]:
    """Majority vote of aligned members.

    Parameters
    ----------
    label_sets : sequence of arrays
        One label array per member (any label values; -1 = noise, which votes for nothing).
    scores : sequence of float, optional
        Member quality (higher is better): the best member is the reference partition and
        breaks ties. Default: the order given.

    Returns
    -------
    labels : array, int32
        Consensus labels in the reference member's label values, NumPy or CuPy like the
        inputs.
    confidence : array, float32
        Share of members whose aligned label equals the consensus label, in [0, 1].
    """
    _check_sets(label_sets)
    xp = array_namespace(*label_sets)
    m = len(label_sets)
    order = list(np.argsort(-np.asarray(scores, dtype=float), kind="stable")) if scores is not None else list(range(m))
    n = len(label_sets[0])
    coded = {i: _codes(label_sets[i]) for i in order}
    # the reference: the best member among those with the most segments (a member that
    # left a segment empty would take it from the consensus)
    most = max(coded[i][1] for i in order)
    if most == 0:
        return xp.full(n, -1, dtype=xp.int32), xp.zeros(n, dtype=xp.float32)
    ref_at = next(i for i in order if coded[i][1] == most)
    r, k = coded[ref_at]
    # votes (n, k) flat, plus one slot that collects noise. The member of rank j (0 = best)
    # adds 1 + 2^-(j+2): the bonuses sum to less than 1/2, so more votes always win, and
    # each bonus outweighs all lower ranks' together, so a tie goes to the best member
    votes = xp.zeros(n * k + 1, dtype=xp.float64)
    base = xp.arange(n, dtype=xp.int64) * k
    aligned = []
    for rank, i in enumerate(order):
        a, ka = coded[i]
        c = _apply(a, _mapping(a, ka, r, k)) if ka else a
        aligned.append(c)
        votes[xp.where(c >= 0, base + c, n * k)] += vote_weight(rank)
    votes = votes[: n * k].reshape(n, k)
    winner = votes.argmax(axis=1)
    agree = xp.zeros(n, dtype=xp.float32)
    for c in aligned:
        agree += c == winner
    nobody = votes.max(axis=1) == 0  # every member called it noise
    values = _values(label_sets[ref_at])
    labels = xp.where(nobody, -1, xp.asarray(values)[winner]).astype(_label_dtype(xp, values))
    confidence = xp.where(nobody, 0.0, agree / m).astype(xp.float32)
    return labels, confidence


def evidence_accumulation(
    label_sets: Sequence[Any], n_clusters: int, *, sample_size: int = 2000, random_state: Any = None
) -> tuple[Any, Any]:
    """Evidence-accumulation consensus (Fred & Jain) without an n x n matrix.

    Parameters
    ----------
    label_sets : sequence of arrays
    n_clusters : int
    sample_size : int, default=2000
        Customers whose pairwise co-association is clustered (average linkage).
    random_state : int or None

    Returns
    -------
    labels : array, int32
        0..n_clusters-1: the sample customers keep their average-linkage group, the others
        join the group they are most co-associated with; -1 where every member says -1.
    confidence : array, float32
        Mean co-association of each customer with its group's sample members, in [0, 1]
        (0 for the unassigned).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    _check_sets(label_sets)
    xp = array_namespace(*label_sets)
    n = len(label_sets[0])
    m = len(label_sets)
    rng = np.random.default_rng(seed_from(random_state) if random_state is not None else 0)
    codes = [_codes(lab) for lab in label_sets]
    nobody = codes[0][0] < 0  # every member called it noise: unassigned, as in the vote
    for code, _ in codes[1:]:
        nobody &= code < 0
    # the sample is drawn among customers some member assigns (the unassigned would
    # each stand apart in the linkage and take groups of their own)
    candidates = np.flatnonzero(~np.asarray(to_host(nobody))) if bool(nobody.any()) else np.arange(n)
    if candidates.size == 0:
        return xp.full(n, -1, dtype=xp.int32), xp.zeros(n, dtype=xp.float32)
    size = min(sample_size, candidates.size)
    sample = np.sort(rng.choice(candidates, size=size, replace=False))
    sample_x = xp.asarray(sample)
    S = np.stack([np.asarray(to_host(c[0][sample_x])) for c in codes])  # (m, size) host
    co = np.zeros((size, size))
    for row in S:
        co += (row[:, None] == row[None, :]) & (row[:, None] >= 0)
    co /= m
    dist = 1.0 - co
    np.fill_diagonal(dist, 0.0)
    Z = linkage(squareform(dist, checks=False), method="average")
    groups = fcluster(Z, t=n_clusters, criterion="maxclust") - 1  # 0..g-1
    g = int(groups.max()) + 1
    sizes = np.bincount(groups, minlength=g).astype(np.float64)
    # score(x, c) = mean over members of the share of c's sample members that share x's label
    score = xp.zeros((n, g), dtype=xp.float64)
    for (code, k), row in zip(codes, S):
        table = np.zeros((k + 1, g))  # last row: noise shares nothing
        ok = row >= 0
        np.add.at(table, (row[ok], groups[ok]), 1.0)
        table[:k] /= sizes[None, :]
        idx = xp.where(code >= 0, code, k)
        score += xp.asarray(table)[idx]
    score /= m
    labels = score.argmax(axis=1)
    labels[sample_x] = xp.asarray(groups)  # the sample keeps its average-linkage group
    rows = xp.arange(n)
    confidence = xp.clip(score[rows, labels], 0.0, 1.0)
    labels = xp.where(nobody, -1, labels).astype(xp.int32)
    confidence = xp.where(nobody, 0.0, confidence).astype(xp.float32)
    return labels, confidence


def _checked_labels(given: dict[str, Any], n: int, xp: Any) -> dict[str, Any]:
    """Given member labels as ``xp`` arrays, each checked: one integer label per row of X
    (integral floats are taken as integers; pandas/cuDF Series and lists are accepted), and
    at least one row in a segment (a member that calls every row noise votes for nothing)."""
    out = {}
    for m, v in given.items():
        v = series_values(v) if hasattr(v, "to_numpy") else v  # a pandas or cuDF Series
        v = xp.asarray(to_namespace(v, xp))
        if v.ndim != 1 or v.shape[0] != n:
            got = f"{v.shape[0]} labels" if v.ndim == 1 else f"labels of shape {tuple(v.shape)}"
            raise ValueError(f"member_labels[{m!r}] has {got} for {n} rows of X; give one label per row")
        if v.dtype.kind not in "iub":
            if v.dtype.kind != "f" or not bool(xp.all(v == xp.floor(v))):  # NaN is not integral either
                raise TypeError(f"member_labels[{m!r}] must hold integer labels (-1 for noise), got dtype {v.dtype}")
            v = v.astype(xp.int64)
        if not bool((v >= 0).any()):
            raise ValueError(f"member_labels[{m!r}] has no segment: every label is -1 (noise)")
        out[m] = v
    return out


class ConsensusClustering(EstimatorMixin):
    """One segmentation out of several methods' segmentations.

    Parameters
    ----------
    n_clusters : int, default=8
        Clusters of the members (each is fitted at this k) and of the consensus.
    members : sequence of str, default=DEFAULT_MEMBERS
        gpuseg method names.
    strategy : {"vote", "evidence"}, default="vote"
    sample_size : int, default=2000
        Sample of the evidence-accumulation strategy.
    member_params : dict, optional
        ``{method: {param: value}}`` for the members.
    random_state : int or None

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int32
    confidence_ : array of shape (n_samples,), float32
        Share of members agreeing with the final label (vote), or mean co-association with
        the final group (evidence).
    member_labels_ : dict
        Method -> its labels.
    member_scores_ : dict
        Member -> the silhouette on a fixed 2,000-customer sample that ranked it (vote
        reference and tie-breaks), or the given ``member_scores``.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        members: Sequence[str] = DEFAULT_MEMBERS,
        strategy: str = "vote",
        sample_size: int = 2000,
        member_params: dict | None = None,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.members = members
        self.strategy = strategy
        self.sample_size = sample_size
        self.member_params = member_params
        self.random_state = random_state

    def _members(self, given: dict[str, Any]) -> list[str]:
        """The members: ``members``, of which those in ``given`` are not fitted; given labels
        under other names are the members themselves where ``members`` is left at its default,
        and an error otherwise (they would be silently left out)."""
        members = [self.members] if isinstance(self.members, str) else list(self.members)
        extra = [m for m in given if m not in members]
        if not extra:
            return members
        if tuple(members) == DEFAULT_MEMBERS:
            return list(given)
        raise ValueError(f"member_labels: {extra[0]!r} is not one of members {members}; name every member whose "
                         "labels are given in members, or leave members at its default to combine exactly the "
                         "given labels")

    def _validate(self, members: list[str] | None = None, given: dict[str, Any] | None = None) -> None:
        """The parameters (``members``: those :meth:`_members` chose; default ``self.members``,
        as :func:`gpuseg.cluster.check_method_params` checks them, before any data)."""
        from . import METHODS

        given = given or {}
        if members is None:
            members = [self.members] if isinstance(self.members, str) else list(self.members)
        if self.strategy not in ("vote", "evidence"):
            raise ValueError(f"strategy must be 'vote' or 'evidence', got {self.strategy!r}")
        if len(members) < 2:
            what = "member_labels" if given and members == list(given) else "members"
            raise ValueError(f"{what} needs at least 2 methods to combine, got {members!r}")
        # a member whose labels are given may have any name; the others are fitted here
        bad = [m for m in members if m not in given and (m not in METHODS or m == "consensus")]
        if bad:
            raise ValueError(f"members: {bad[0]!r} is not an available method (nor are its labels given)")
        if isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, (int, np.integer)) or (
                self.n_clusters < 2):
            raise ValueError(f"n_clusters must be an integer >= 2, got {self.n_clusters!r}")
        if isinstance(self.sample_size, bool) or not isinstance(self.sample_size, (int, np.integer)) or (
                self.sample_size < 10):
            raise ValueError(f"sample_size must be an integer >= 10, got {self.sample_size!r}")

    def fit(
        self, X: Any, y: Any = None, member_labels: dict[str, Any] | None = None,
        member_scores: dict[str, float] | None = None,
    ) -> "ConsensusClustering":
        """Fit the members (unless their labels are given) and combine them.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        member_labels : dict, optional
            Member name -> labels already computed on X (integers, -1 for noise; the
            pipeline passes the members' fits from its sweep, so nothing is fitted twice).
            Members with given labels may have any name and any number of clusters. With
            ``members`` left at its default, labels under other names are the members
            (``fit(X, member_labels={"a": la, "b": lb})`` combines ``la`` and ``lb``);
            otherwise every given name must be in ``members``.
        member_scores : dict, optional
            Method -> quality (higher is better) ranking the members; computed as the
            silhouette on a 2,000-row sample when not given.

        Raises
        ------
        ValueError
            Fewer than 2 members, a given name outside ``members``, or given labels that
            are not one per row of X or hold no segment (all -1).
        TypeError
            Given labels that are not integers.
        """
        from . import make_estimator, method_params

        given = dict(member_labels or {})
        members = self._members(given)
        self._validate(members, given)
        X = as_float_array(X)
        xp = array_namespace(X)
        labels = _checked_labels(given, X.shape[0], xp)  # on X's device
        for method in members:
            if method not in labels:
                params = method_params(method, (self.member_params or {}).get(method))
                est = make_estimator(method, self.n_clusters, self.random_state or 0, params).fit(X)
                labels[method] = est.labels_
        self.member_labels_ = {m: labels[m] for m in members}
        self.member_scores_ = self._scores(X, dict(member_scores or {}))
        sets = list(self.member_labels_.values())
        if self.strategy == "vote":
            self.labels_, self.confidence_ = majority_vote(sets, [self.member_scores_[m] for m in members])
        else:
            self.labels_, self.confidence_ = evidence_accumulation(
                sets, self.n_clusters, sample_size=self.sample_size, random_state=self.random_state
            )
        self.n_features_in_ = X.shape[1]
        return self

    def _scores(self, X: Any, scores: dict[str, float]) -> dict[str, float]:
        """``scores``, completed by each member's silhouette on one fixed sample of customers
        (the same customers for every member; rows are gathered once, never the whole of X)."""
        from ..evaluate.metrics import silhouette_score

        xp = array_namespace(X)
        n = X.shape[0]
        rng = np.random.default_rng(seed_from(self.random_state) if self.random_state is not None else 0)
        sample = xp.asarray(np.sort(rng.choice(n, size=min(n, 2000), replace=False)))
        Xs = X[sample]
        for m, lab in self.member_labels_.items():
            if m in scores:
                continue
            ls = xp.asarray(lab)[sample]
            ok = ls >= 0
            try:
                scores[m] = float(silhouette_score(Xs[ok], ls[ok]))
            except ValueError:  # fewer than 2 segments in the sample
                scores[m] = -1.0
        return scores
