"""K-means: cuML on CuPy input, scikit-learn on NumPy input, one scikit-learn-style API."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_namespace, gpu_module, is_gpu_array, to_host
from ._base import EstimatorMixin

__all__ = ["KMeans", "check_random_state", "seed_from", "squared_distances", "nearest_center"]


def check_random_state(seed: Any) -> np.random.RandomState:
    """``None``, an int or a RandomState -> RandomState (scikit-learn's convention)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, (int, np.integer)):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a RandomState")


def seed_from(random_state: Any) -> int:
    """An int seed for libraries that take one (cuML, CuPy), drawn from ``random_state``."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def squared_distances(X: Any, centers: Any) -> Any:
    """Squared Euclidean distances (n, k) of rows of X to centers, clipped at 0."""
    xp = array_namespace(X, centers)
    xx = (X * X).sum(axis=1)[:, None]
    cc = (centers * centers).sum(axis=1)[None, :]
    d = xx + cc - 2.0 * (X @ centers.T)
    return xp.maximum(d, 0)


def nearest_center(X: Any, centers: Any, chunk_size: int = 65536) -> tuple[Any, Any]:
    """Index of and squared distance to the nearest center for each row (chunked)."""
    xp = array_namespace(X, centers)
    n = X.shape[0]
    labels = xp.empty(n, dtype=xp.int32)
    dist = xp.empty(n, dtype=X.dtype)
    for start in range(0, n, chunk_size):
        d = squared_distances(X[start : start + chunk_size], centers)
        idx = d.argmin(axis=1)
        labels[start : start + chunk_size] = idx
        dist[start : start + chunk_size] = xp.take_along_axis(d, idx[:, None], axis=1)[:, 0]
    return labels, dist


class KMeans(EstimatorMixin):
    """K-means clustering (Lloyd) with k-means++ or random initialisation.

    On CuPy input the fit runs in cuML, on NumPy input in scikit-learn, with the same
    initialisation (k-means++ or random). Outputs follow the input's type.

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
    >>> sorted(np.bincount(km.labels_))
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
        if not isinstance(self.n_clusters, (int, np.integer)) or self.n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}")
        if isinstance(self.init, str) and self.init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++', 'random' or an array, got {self.init!r}")
        if not (self.n_init == "auto" or (isinstance(self.n_init, (int, np.integer)) and self.n_init >= 1)):
            raise ValueError(f"n_init must be 'auto' or a positive integer, got {self.n_init!r}")

    def _resolved_n_init(self) -> int:
        if self.n_init == "auto":
            return 1 if (not isinstance(self.init, str) or self.init == "k-means++") else 10
        return int(self.n_init)

    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Compute the clustering."""
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
            init = self.init  # cuML takes "k-means++" (k-means|| with no oversampling) and "random"
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

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise AttributeError("this KMeans instance is not fitted yet; call fit first")

    def predict(self, X: Any) -> Any:
        """Index of the closest centre for each sample."""
        self._check_fitted()
        xp = array_namespace(X)
        centers = xp.asarray(self.cluster_centers_, dtype=X.dtype)
        return nearest_center(X, centers)[0]

    def transform(self, X: Any) -> Any:
        """Euclidean distances to every centre, shape (n_samples, n_clusters)."""
        self._check_fitted()
        xp = array_namespace(X)
        return xp.sqrt(squared_distances(X, xp.asarray(self.cluster_centers_, dtype=X.dtype)))

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the inertia of X under the fitted centres."""
        self._check_fitted()
        xp = array_namespace(X)
        _, d = nearest_center(X, xp.asarray(self.cluster_centers_, dtype=X.dtype))
        return -float(d.astype(xp.float64).sum())
