"""K-means: cuML on CuPy input, scikit-learn on NumPy input, one scikit-learn-style API."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._xp import cluster_sums, nearest_center, squared_distances
from ..backend import array_namespace, gpu_module, is_gpu_array, to_host
from ._base import CentroidMixin, EstimatorMixin, as_float_array, check_random_state, seed_from

__all__ = ["KMeans", "kmeans_plusplus", "lloyd"]


def kmeans_plusplus(
    X: Any, n_clusters: int, *, random_state: Any = None, n_local_trials: int | None = None
) -> tuple[Any, Any]:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, scikit-learn's variant).

    Written once for NumPy and CuPy: distances are computed on X's device, the random
    draws on the host, in the same order as scikit-learn's ``kmeans_plusplus`` (on the same
    data and ``random_state`` the two choose the same rows).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    n_clusters : int
    random_state : int, RandomState or None
    n_local_trials : int, optional
        Candidates tried per centre; default ``2 + int(log(n_clusters))``.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
    indices : ndarray of shape (n_clusters,)
        Host array of the chosen rows.
    """
    xp = array_namespace(X)
    n = X.shape[0]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and n_samples={n}")
    rs = check_random_state(random_state)
    trials = n_local_trials or 2 + int(np.log(n_clusters))
    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = rs.choice(n, p=np.full(n, 1.0 / n))
    closest = squared_distances(X, X[indices[0] : indices[0] + 1])[:, 0].astype(xp.float64)
    pot = float(closest.sum())
    for c in range(1, n_clusters):
        rand = xp.asarray(rs.uniform(size=trials) * pot)
        cand = xp.minimum(xp.searchsorted(xp.cumsum(closest), rand), n - 1)
        dist = xp.minimum(closest[None, :], squared_distances(X, X[cand]).T.astype(xp.float64))
        pots = dist.sum(axis=1)
        best = int(pots.argmin())
        pot = float(pots[best])
        closest = dist[best]
        indices[c] = int(cand[best])
    return X[xp.asarray(indices)], indices


def lloyd(
    X: Any, centers: Any, *, max_iter: int = 300, tol: float = 1e-4, sample_weight: Any = None
) -> tuple[Any, Any, float, int]:
    """Lloyd iterations from given centres, written once for NumPy and CuPy.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    centers : array of shape (k, n_features)
        Starting centres (not modified).
    max_iter : int, default=300
    tol : float, default=1e-4
        Stop when the squared centre shift falls below ``tol`` times the mean feature
        variance (scikit-learn's rule).
    sample_weight : array of shape (n_samples,), optional

    Returns
    -------
    centers, labels (int32), inertia (float), n_iter (int)

    Notes
    -----
    An empty cluster takes the sample farthest from its centre, as in scikit-learn.
    """
    xp = array_namespace(X, centers)
    k = centers.shape[0]
    centers = xp.array(centers, dtype=X.dtype, copy=True)
    var = X.astype(xp.float64).var(axis=0).mean() if X.shape[0] > 1 else 0.0
    threshold = float(tol) * float(var)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        labels, dist = nearest_center(X, centers)
        sums, weight = cluster_sums(X, labels, k, sample_weight)
        empty = to_host(weight == 0)
        new = (sums / xp.maximum(weight, 1e-300)[:, None]).astype(X.dtype)
        if empty.any():  # relocate to the farthest samples
            far = xp.argsort(-dist)[: int(empty.sum())]
            new[xp.asarray(np.flatnonzero(empty))] = X[far]
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= threshold:
            break
    labels, dist = nearest_center(X, centers)
    w = dist.astype(xp.float64) if sample_weight is None else dist.astype(xp.float64) * sample_weight
    return centers, labels, float(w.sum()), n_iter


class KMeans(CentroidMixin, EstimatorMixin):
    """K-means clustering (Lloyd) with k-means++ or random initialisation.

    On CuPy input the fit runs in cuML (k-means++ as its scalable form k-means||), on
    NumPy input in scikit-learn. Outputs follow the input's type.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features), default="k-means++"
    n_init : int or "auto", default="auto"
        Runs with different seeds; the best inertia wins. ``auto``: 1 for k-means++, 10
        for random (scikit-learn's rule).
    max_iter : int, default=300
    tol : float, default=1e-4
        Stopping tolerance on centre movement: scikit-learn's (relative to the data's
        variance) on the CPU, cuML's on the GPU.
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : array of shape (n_samples,), int32
    inertia_ : float
        Sum of squared distances of samples to their closest centre.
    n_iter_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=np.float32)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(np.bincount(km.labels_).tolist())
    [2, 2]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Any = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _validate(self, X: Any) -> None:
        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"expected a 2-D array, got shape {getattr(X, 'shape', None)}")
        if isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, (int, np.integer)) or (
                self.n_clusters < 1):
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}")
        if isinstance(self.init, str) and self.init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++', 'random' or an array, got {self.init!r}")
        if not (self.n_init == "auto" or (isinstance(self.n_init, (int, np.integer)) and self.n_init >= 1)):
            raise ValueError(f"n_init must be 'auto' or a positive integer, got {self.n_init!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float, np.number)) or not self.tol >= 0:
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}")

    def _resolved_n_init(self) -> int:
        if self.n_init == "auto":
            return 1 if (not isinstance(self.init, str) or self.init == "k-means++") else 10
        return int(self.n_init)

    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Compute the clustering."""
        X = as_float_array(X)
        self._validate(X)
        seed = seed_from(self.random_state)
        n_init = self._resolved_n_init()
        if is_gpu_array(X):
            self._fit_cuml(X, seed, n_init)
        else:
            self._fit_sklearn(np.asarray(X), seed, n_init)
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_sklearn(self, X: np.ndarray, seed: int, n_init: int) -> None:
        from sklearn.cluster import KMeans as SkKMeans

        init = self.init if isinstance(self.init, str) else to_host(self.init)
        km = SkKMeans(
            n_clusters=self.n_clusters,
            init=init,
            n_init=n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=seed,
        ).fit(X)
        self.cluster_centers_ = km.cluster_centers_.astype(X.dtype, copy=False)
        self.labels_ = km.labels_.astype(np.int32)
        self.inertia_ = float(km.inertia_)
        self.n_iter_ = int(km.n_iter_)

    def _fit_cuml(self, X: Any, seed: int, n_init: int) -> None:
        cuml_cluster = gpu_module("cuml.cluster")
        cp = array_namespace(X)
        if isinstance(self.init, str):
            # k-means++ on the GPU is its scalable form, k-means|| (Bahmani et al. 2012)
            init = "scalable-k-means++" if self.init == "k-means++" else "random"
        else:
            init = cp.asarray(self.init, dtype=X.dtype)
        km = cuml_cluster.KMeans(
            n_clusters=self.n_clusters,
            init=init,
            n_init=n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=seed,
            output_type="cupy",
        ).fit(X)
        self.cluster_centers_ = cp.asarray(km.cluster_centers_, dtype=X.dtype)
        self.labels_ = cp.asarray(km.labels_).astype(cp.int32)
        self.inertia_ = float(km.inertia_)
        self.n_iter_ = int(km.n_iter_)
