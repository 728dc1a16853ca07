"""Ward hierarchical clustering that scales: exact on small data, on K-means micro-clusters
(merged with their sizes as weights) on large data.

cuML's agglomerative clustering is single-linkage only, and exact Ward needs the O(n^2)
distance matrix. Above ``exact_max`` rows the data is first summarised by K-means into a
few hundred to two thousand micro-clusters on X's device; Ward's merge cost of two
clusters a, b is ``n_a n_b / (n_a + n_b) ||c_a - c_b||^2``, so the micro-clusters are
merged by a *weighted* Ward (:func:`ward_linkage`) on the host, which is exactly the Ward
tree of the data in which every row is replaced by its micro-centroid.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .._xp import cluster_sums, nearest_center
from ..backend import array_namespace, to_host, to_namespace
from ._base import EstimatorMixin, as_float_array, check_random_state, seed_from
from .kmeans import KMeans

__all__ = ["WardClustering", "ward_linkage", "cut_linkage"]

#: Lloyd iterations of the micro-clustering: the micro-centroids only summarise the data.
MICRO_MAX_ITER = 10


def ward_linkage(X: Any, sample_weight: Any = None) -> np.ndarray:
    """Ward linkage of weighted points, as a SciPy linkage matrix.

    Each point stands for a cluster of ``sample_weight`` observations at that centroid
    (micro-clusters, SOM units with their hit counts). Merging clusters a and b costs
    ``w_a w_b / (w_a + w_b) ||c_a - c_b||^2`` (the increase in within-cluster sum of
    squares); the reported height is the Ward distance ``sqrt(2 * cost)``, what
    :func:`scipy.cluster.hierarchy.linkage` reports for ``method="ward"``. With unit
    weights the result is SciPy's (same nearest-neighbour-chain algorithm and
    Lance-Williams update, so the same merges and heights up to rounding).

    Parameters
    ----------
    X : array of shape (n_points, n_features)
        NumPy or CuPy; the tree is built on the host in float64 (``O(n_points^2)``
        memory: 32 MB for 2,000 points).
    sample_weight : array of shape (n_points,), optional
        Positive weights (cluster sizes); default 1 for every point.

    Returns
    -------
    Z : ndarray of shape (n_points - 1, 4)
        ``[idx_a, idx_b, distance, count]`` rows sorted by distance, SciPy's convention:
        new clusters are numbered ``n_points + row``, ``count`` is the number of points
        (leaves) under the node, so :func:`scipy.cluster.hierarchy.dendrogram` and
        ``fcluster`` accept it.

    Examples
    --------
    >>> import numpy as np
    >>> Z = ward_linkage(np.array([[0.0], [1.0], [10.0]]), sample_weight=np.array([1.0, 1.0, 2.0]))
    >>> Z[:, :2].astype(int).tolist(), np.round(Z[:, 2], 3).tolist()
    ([[0, 1], [2, 3]], [1.0, 13.435])
    """
    X = np.asarray(to_host(X), dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {X.shape}")
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"Ward linkage needs at least 2 points, got {n}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinity")
    if sample_weight is None:
        weights = np.ones(n)
    else:
        weights = np.asarray(to_host(sample_weight), dtype=np.float64)
        if weights.shape != (n,):
            raise ValueError(f"sample_weight has shape {weights.shape}, expected ({n},)")
        if not (np.isfinite(weights).all() and (weights > 0).all()):
            raise ValueError("sample_weight must be positive and finite")
    return _ward_linkage(X, weights)


def _ward_linkage(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Nearest-neighbour chain over a dense distance matrix (SciPy's ``nn_chain``)."""
    from scipy.spatial.distance import pdist, squareform

    n = X.shape[0]
    # Ward distance of two weighted points: sqrt(2 w_a w_b / (w_a + w_b)) * ||c_a - c_b||;
    # 2 * 1 * 1 / 2 == 1 exactly, so unit weights give SciPy's starting distances.
    D = squareform(pdist(X))
    D *= np.sqrt(2.0 * np.outer(weights, weights) / np.add.outer(weights, weights))
    np.fill_diagonal(D, np.inf)
    size = weights.copy()
    active = np.ones(n, dtype=bool)
    Z = np.empty((n - 1, 4))
    chain: list[int] = []
    for k in range(n - 1):
        if not chain:
            chain.append(int(np.argmax(active)))
        while True:  # follow nearest neighbours until two are mutual
            x = chain[-1]
            y = int(np.argmin(D[x]))
            # prefer the previous chain element on ties (avoids cycles), as SciPy does
            if len(chain) > 1 and not D[x, y] < D[x, chain[-2]]:
                y = chain[-2]
            if len(chain) > 1 and y == chain[-2]:
                break
            chain.append(y)
        chain.pop()
        chain.pop()
        x, y = min(x, y), max(x, y)
        d_xy = D[x, y]
        nx, ny = size[x], size[y]
        Z[k] = (x, y, d_xy, 0.0)
        # Lance-Williams update for Ward, the expression and order of SciPy's _ward
        t = 1.0 / (nx + ny + size)
        new = np.sqrt(
            np.maximum(
                (size + nx) * t * D[x] * D[x] + (size + ny) * t * D[y] * D[y] - size * t * d_xy * d_xy, 0.0
            )
        )
        new[~active] = np.inf
        new[[x, y]] = np.inf
        D[y, :] = new
        D[:, y] = new
        D[x, :] = np.inf
        D[:, x] = np.inf
        active[x] = False
        size[y] = nx + ny
        size[x] = 0.0
    Z = Z[np.argsort(Z[:, 2], kind="mergesort")]
    _relabel_linkage(Z, n)
    return Z


def _relabel_linkage(Z: np.ndarray, n: int) -> None:
    """Rename merged points to SciPy's node ids (``n + row``) and fill the leaf counts, in place."""
    parent = np.arange(2 * n - 1)
    count = np.ones(2 * n - 1)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    for k in range(n - 1):
        a, b = find(int(Z[k, 0])), find(int(Z[k, 1]))
        Z[k, 0], Z[k, 1] = min(a, b), max(a, b)
        parent[a] = parent[b] = n + k
        count[n + k] = count[a] + count[b]
        Z[k, 3] = count[n + k]


def cut_linkage(Z: np.ndarray, n_clusters: int) -> np.ndarray:
    """Flat labels from a linkage matrix by undoing its last ``n_clusters - 1`` merges.

    Unlike ``fcluster(criterion="maxclust")`` this gives exactly ``n_clusters`` clusters
    when the top heights tie; it is scikit-learn's cut of a Ward tree.

    Parameters
    ----------
    Z : ndarray of shape (n_leaves - 1, 4)
        Linkage matrix with rows sorted by height (SciPy's and :func:`ward_linkage`'s).
    n_clusters : int
        Between 1 and ``n_leaves``.

    Returns
    -------
    labels : ndarray of shape (n_leaves,), int32
        Clusters numbered in the order of their first leaf.

    Examples
    --------
    >>> import numpy as np
    >>> Z = ward_linkage(np.array([[0.0], [1.0], [10.0], [11.0]]))
    >>> cut_linkage(Z, 2).tolist()
    [0, 0, 1, 1]
    """
    Z = np.asarray(Z, dtype=np.float64)
    n = Z.shape[0] + 1
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the number of leaves {n}")
    return _cut_linkage(Z, n_clusters)


def _cut_linkage(Z: np.ndarray, n_clusters: int) -> np.ndarray:
    n = Z.shape[0] + 1
    parent = np.arange(2 * n - 1)
    kept = n - n_clusters
    nodes = n + np.arange(kept)
    parent[Z[:kept, 0].astype(np.int64)] = nodes
    parent[Z[:kept, 1].astype(np.int64)] = nodes
    while True:  # pointer jumping to the roots
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    _, first, inverse = np.unique(parent[:n], return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int32)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int32)
    return rank[inverse.ravel()]


def _micro_clusters(X: Any, n_micro: int, rs: np.random.RandomState) -> tuple[Any, Any]:
    """K-means micro-clusters on X's device: random distinct rows as seeds, a few Lloyd passes.

    Random seeding instead of k-means++: the micro-clusters only need to be small next to
    the final clusters, and k-means++ costs ``n_micro`` sequential passes (seconds for
    2,000 seeds on a CPU).
    """
    xp = array_namespace(X)
    rows = np.sort(rs.choice(X.shape[0], n_micro, replace=False))
    km = KMeans(n_micro, init=X[xp.asarray(rows)], max_iter=MICRO_MAX_ITER, random_state=seed_from(rs)).fit(X)
    return km.cluster_centers_, km.labels_


class WardClustering(EstimatorMixin):
    """Agglomerative clustering with Ward linkage, exact or on K-means micro-clusters.

    Up to ``exact_max`` rows the Ward tree of the rows themselves is built
    (:func:`scipy.cluster.hierarchy.linkage` on the host; the data is small). Above, the
    rows are summarised by K-means micro-clusters on X's device (seeded on random rows,
    :data:`MICRO_MAX_ITER` Lloyd passes) and the micro-centroids are merged by
    weighted Ward (:func:`ward_linkage`, weights = micro-cluster sizes). The tree is cut
    into ``n_clusters`` and the labels are mapped back to the rows on their device.

    Parameters
    ----------
    n_clusters : int, default=8
    n_micro : int or "auto", default="auto"
        Micro-clusters for large data. ``auto``: exact Ward when ``n_samples <=
        exact_max``, else ``min(2000, max(200, int(20 * sqrt(n_samples))))``. An integer
        always uses micro-clusters (exact Ward when it is ``>= n_samples``).
    exact_max : int, default=5000
        Largest number of rows clustered exactly under ``n_micro="auto"`` (the exact tree
        needs ``8 n^2 / 2`` bytes: 100 MB at 5,000 rows).
    random_state : int, RandomState or None, default=None
        Seeds the micro-clustering; exact Ward is deterministic.

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int32
        Cluster of each row, in X's array type; clusters numbered in the order of their
        first leaf.
    linkage_ : ndarray of shape (n_leaves_ - 1, 4)
        Host SciPy linkage matrix of the leaves (rows, or micro-clusters) for a
        dendrogram; its counts are leaves, not rows (``bincount(micro_labels_)`` gives
        the rows per micro-cluster).
    micro_centers_ : array of shape (n_leaves_, n_features) or None
        Micro-centroids on X's device; None in exact mode.
    micro_labels_ : array of shape (n_samples,), int32, or None
        Micro-cluster of each row; None in exact mode.
    micro_cluster_labels_ : ndarray of shape (n_micro_clusters,), or None
        Segment of each micro-cluster (host); None in exact mode.
    cluster_centers_ : array of shape (n_clusters, n_features)
        Mean of each cluster's rows.
    n_leaves_ : int
        Leaves of the tree: rows (exact) or non-empty micro-clusters.
    exact_ : bool
        Whether the tree was built on the rows themselves.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [10, 10], [10, 11], [20, 0], [21, 0]], dtype=np.float32)
    >>> ward = WardClustering(n_clusters=3).fit(X)
    >>> ward.labels_.tolist(), ward.exact_
    ([0, 0, 1, 1, 2, 2], True)
    >>> ward.predict(np.array([[1, 1]], dtype=np.float32)).tolist()
    [0]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_micro: int | str = "auto",
        exact_max: int = 5000,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_micro = n_micro
        self.exact_max = exact_max
        self.random_state = random_state

    def _validate(self, X: Any) -> None:
        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"expected a 2-D array, got shape {getattr(X, 'shape', None)}")
        if isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, (int, np.integer)) or (
                self.n_clusters < 1):
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if X.shape[0] < max(self.n_clusters, 2):
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters} and >= 2")
        if not isinstance(self.exact_max, (int, np.integer)) or self.exact_max < 2:
            raise ValueError(f"exact_max must be an integer >= 2, got {self.exact_max!r}")
        if self.n_micro != "auto":
            if not isinstance(self.n_micro, (int, np.integer)) or self.n_micro < 2:
                raise ValueError(f"n_micro must be 'auto' or an integer >= 2, got {self.n_micro!r}")
            if self.n_micro < self.n_clusters:
                raise ValueError(f"n_micro={self.n_micro} should be >= n_clusters={self.n_clusters}")
        if not bool(array_namespace(X).isfinite(X).all()):
            raise ValueError("X contains NaN or infinity")

    def _resolved_n_micro(self, n: int) -> int | None:
        """Micro-clusters to use, or None for exact Ward."""
        if self.n_micro == "auto":
            if n <= self.exact_max:
                return None
            return min(2000, max(200, int(20 * np.sqrt(n))), n)
        return None if self.n_micro >= n else int(self.n_micro)

    def fit(self, X: Any, y: Any = None) -> "WardClustering":
        """Build the Ward tree and cut it into ``n_clusters``."""
        X = as_float_array(X)
        self._validate(X)
        rs = check_random_state(self.random_state)
        xp = array_namespace(X)
        n_micro = self._resolved_n_micro(X.shape[0])
        if n_micro is None:
            from scipy.cluster.hierarchy import linkage

            self.linkage_ = linkage(np.asarray(to_host(X), dtype=np.float64), method="ward")
            self.labels_ = xp.asarray(_cut_linkage(self.linkage_, self.n_clusters))
            self.micro_centers_ = self.micro_labels_ = self.micro_cluster_labels_ = None
            self.exact_ = True
        else:
            centers, micro = _micro_clusters(X, n_micro, rs)
            counts = to_host(xp.bincount(micro, minlength=n_micro))
            if (counts == 0).any():  # drop empty micro-clusters (duplicate rows)
                keep = np.flatnonzero(counts)
                remap = np.full(n_micro, -1, dtype=np.int32)
                remap[keep] = np.arange(len(keep), dtype=np.int32)
                centers, micro, counts = centers[xp.asarray(keep)], xp.asarray(remap)[micro], counts[keep]
            self.linkage_ = _ward_linkage(np.asarray(to_host(centers), dtype=np.float64), counts.astype(np.float64))
            self.micro_cluster_labels_ = _cut_linkage(self.linkage_, min(self.n_clusters, len(counts)))
            self.labels_ = xp.asarray(self.micro_cluster_labels_)[micro]
            self.micro_centers_, self.micro_labels_ = centers, micro.astype(xp.int32)
            self.exact_ = False
        self.n_leaves_ = self.linkage_.shape[0] + 1
        k = int(self.labels_.max()) + 1
        sums, counts = cluster_sums(X, self.labels_, k)
        self.cluster_centers_ = (sums / counts[:, None]).astype(X.dtype)
        self.n_features_in_ = X.shape[1]
        return self

    def recut(self, X: Any, n_clusters: int) -> "WardClustering":
        """A copy with the same Ward tree cut into ``n_clusters`` (no new tree).

        A k sweep builds the tree once. ``X`` must be the training data.
        """
        X = as_float_array(X)
        self._check_fitted()
        xp = array_namespace(X)
        new = copy.copy(self)
        new.n_clusters = int(n_clusters)
        if self.exact_:
            new.labels_ = xp.asarray(_cut_linkage(self.linkage_, new.n_clusters))
        else:
            new.micro_cluster_labels_ = _cut_linkage(self.linkage_, min(new.n_clusters, self.n_leaves_))
            new.labels_ = xp.asarray(new.micro_cluster_labels_)[self.micro_labels_]
        k = int(new.labels_.max()) + 1
        sums, counts = cluster_sums(X, new.labels_, k)
        new.cluster_centers_ = (sums / counts[:, None]).astype(X.dtype)
        return new

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise AttributeError("this WardClustering instance is not fitted yet; call fit first")

    def predict(self, X: Any) -> Any:
        """Cluster of each row: that of the nearest micro-centroid (micro mode) or of the
        nearest cluster centre (exact mode).

        On the training rows this reproduces ``labels_`` in micro mode, and in exact
        mode wherever the Ward clusters are Voronoi cells of their means (well-separated
        data).
        """
        X = as_float_array(X)
        self._check_fitted()
        xp = array_namespace(X)
        if self.exact_:
            return nearest_center(X, to_namespace(self.cluster_centers_, xp).astype(X.dtype))[0]
        micro, _ = nearest_center(X, to_namespace(self.micro_centers_, xp).astype(X.dtype))
        return xp.asarray(self.micro_cluster_labels_)[micro]
