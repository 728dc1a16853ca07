"""K-means in a metric learned from its own segments (``adaptive_kmeans``).

Plain K-means measures every direction of the feature space alike. Customer segments are
not round: within one segment, activity varies a lot and drags spend, visits and views
along with it, while the segments differ in a few rates. K-means then cuts along the long
within-segment directions instead of between the segments. ``AdaptiveKMeans`` alternates:

1. K-means from k-means++ (the start);
2. the pooled within-segment covariance ``W`` of the current segments, scaled to an average
   variance of 1 and shrunk towards the identity, ``M = (1 - a) I + a W``;
3. every customer to its nearest centre in the space whitened by ``M`` (distances
   ``(x - c)' M^-1 (x - c)``); back to 2 until fewer than ``tol`` of the customers move.

The shrinkage ``a`` rises in two steps to ``shrinkage`` (half, then all of it), so the
metric moves away from the Euclidean one gradually. This is classification EM for a
Gaussian mixture with one shared covariance, regularised towards K-means (Friedman & Rubin
1967 scored partitions by the same within/between scatter); the shrinkage keeps it from
collapsing a segment onto a value many customers share. ``n_starts`` cheap K-means starts
are screened and the ``n_init`` best adapted; of those, the one with
the smallest within-segment sum of squares in the input space wins: that respects the
feature weights (:mod:`gpuseg.prep.represent`), which an affine-invariant criterion such as
``tr(T^-1 B)`` would undo; chosen by ``tr(T^-1 B)``, the starts split CDNOW's customers
along down-weighted features at k = 5 in two of five seeds.

Written once for NumPy and CuPy; the metric is a small ``d x d`` matrix computed on the host.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from .._xp import cluster_sums, nearest_center
from ..backend import array_namespace, to_host, to_namespace
from ._base import CentroidMixin, EstimatorMixin, as_float_array, check_random_state
from .kmeans import KMeans

__all__ = ["AdaptiveKMeans", "nearest_in_metric", "pooled_metric", "trace_criterion"]

#: Columns whose variance is below this share of the largest are left out of the metric.
_FLAT = 1e-10


def _moments(X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total covariance T, column means, active-column mask) on the host in float64,
    accumulated over row blocks of the centred data in float64."""
    from .._xp import block_rows, row_blocks

    xp = array_namespace(X)
    n, d = X.shape
    mean = X.astype(xp.float64).mean(axis=0)
    T = xp.zeros((d, d), dtype=xp.float64)
    for start, stop in row_blocks(n, block_rows(xp, d)):
        B = X[start:stop].astype(xp.float64) - mean
        T += B.T @ B
    T = np.asarray(to_host(T)) / n
    var = np.diag(T)
    return (T + T.T) / 2.0, np.asarray(to_host(mean)), var > _FLAT * max(float(var.max()), 1e-300)


def _within(T: np.ndarray, mean: np.ndarray, X: Any, labels: Any, k: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pooled within-segment covariance W = T - B, centres, counts), host float64."""
    sums, counts = cluster_sums(X, labels, k)
    sums, counts = np.asarray(to_host(sums)), np.asarray(to_host(counts))
    centers = sums / np.maximum(counts, 1.0)[:, None]
    dev = centers - mean
    W = T - (dev.T * (counts / counts.sum())) @ dev
    return (W + W.T) / 2.0, centers, counts


def pooled_metric(W: np.ndarray, active: np.ndarray, shrinkage: float) -> np.ndarray:
    """The whitening map ``A`` (d x d, host) with ``A A' = M^-1`` on the active columns,
    ``M = (1 - a) I + a W / mean(diag W)``; inactive columns map to 0."""
    d = W.shape[0]
    idx = np.flatnonzero(active)
    Wa = W[np.ix_(idx, idx)]
    scale = np.trace(Wa) / max(len(idx), 1)
    M = (1.0 - shrinkage) * np.eye(len(idx)) + shrinkage * Wa / max(scale, 1e-300)
    ev, V = np.linalg.eigh(M)
    A = np.zeros((d, d))
    A[np.ix_(idx, idx)] = V / np.sqrt(np.maximum(ev, 1e-12))
    return A


def nearest_in_metric(X: Any, A: np.ndarray, centers: np.ndarray, chunk_size: int = 65536) -> Any:
    """Index (int32) of each row's nearest centre after the map ``A`` (host, d x d):
    ``argmin_j |x A - c_j A|^2``, computed as ``argmin_j (|c_j A|^2 - 2 x . (A A' c_j))``.

    The row's own ``|x A|^2`` is the same for every centre, so it is left out, and so is the
    product ``X A``: one ``(n, d) x (d, k)`` product per chunk instead of a ``(d, d)`` and a
    ``(d, k)`` one (about half the time of an assignment step of :class:`AdaptiveKMeans` on
    20,000 x 34, k = 6). In float32 the two terms still cancel for data far from the origin
    (a near tie may then go the other way); the estimators see standardised features.
    """
    xp = array_namespace(X)
    CA = np.asarray(to_host(centers), dtype=np.float64) @ A
    G = xp.asarray(to_namespace(A @ CA.T, xp), dtype=X.dtype)
    cc = xp.asarray(to_namespace((CA * CA).sum(axis=1), xp), dtype=X.dtype)
    n = X.shape[0]
    labels = xp.empty(n, dtype=xp.int32)
    for start in range(0, n, chunk_size):
        s = X[start:start + chunk_size] @ G
        s *= -2.0
        s += cc[None, :]
        labels[start:start + chunk_size] = s.argmin(axis=1)
    return labels


def trace_criterion(T: np.ndarray, active: np.ndarray, W: np.ndarray) -> float:
    """Friedman-Rubin ``tr(T^-1 B)`` over the active columns (B = T - W), in [0, k - 1]."""
    idx = np.flatnonzero(active)
    T = T[np.ix_(idx, idx)]
    B = T - W[np.ix_(idx, idx)]
    ridge = 1e-9 * np.trace(T) / max(len(idx), 1)
    return float(np.trace(np.linalg.solve(T + ridge * np.eye(len(idx)), B)))


#: K-means steps of a rough start.
ROUGH_STEPS = 8

#: Above this many elements the rough starts seed through ``KMeans(init="k-means++")`` rather
#: than :class:`_Seeding`, whose float64 copy would then take more than 256 MiB (the same rows
#: on NumPy; cuML seeds by k-means|| on CuPy). The pipeline fits on a sample of 10,000 rows.
SEEDING_MAX_ELEMENTS = 1 << 25


class _Seeding:
    """scikit-learn's greedy k-means++ (``KMeans(init="k-means++")``), step for step and
    rounding for rounding, with the float64 copy of the data and its row norms made once
    for every start rather than once per candidate (scikit-learn upcasts float32 data chunk
    by chunk at each of the ``k * (2 + log k)`` distance computations, which took half of
    the rough starts' time).

    As scikit-learn's ``KMeans.fit`` does, the data are centred (in their own precision)
    before seeding; :meth:`rows` returns the chosen rows of the uncentred data, which
    ``KMeans`` centres again to the same values. On NumPy float32 input the rows are those
    ``sklearn.cluster.KMeans(n_init=1, random_state=seed)`` seeds from (tested); on float64
    and CuPy input they are k-means++ rows up to rounding. Not
    :func:`~gpuseg.cluster.kmeans.kmeans_plusplus`: that one sums its potentials in float64,
    so its rows can differ from scikit-learn's, and PSO, GMM and mini-batch K-means, whose
    results follow from it, would change if it followed scikit-learn's float32 roundings.
    """

    def __init__(self, X: Any) -> None:
        xp = array_namespace(X)
        self.X, self.xp = X, xp
        Xc = X - X.mean(axis=0)
        self.X64 = Xc.astype(xp.float64)
        self.norms = xp.einsum("ij,ij->i", self.X64, self.X64)
        self.weights = xp.ones(X.shape[0], dtype=X.dtype)

    def _distances(self, rows: Any) -> Any:
        """Squared distances (len(rows), n) as scikit-learn's float32 path computes them."""
        xp = self.xp
        d = -2 * (self.X64[rows] @ self.X64.T)
        d += self.norms[rows][:, None]
        d += self.norms[None, :]
        return xp.maximum(d.astype(self.X.dtype, copy=False), 0)

    def rows(self, k: int, seed: int) -> Any:
        """The k seed rows of the data for ``random_state=seed``."""
        xp, n, w = self.xp, self.X.shape[0], self.weights
        rs = np.random.RandomState(seed)
        trials = 2 + int(np.log(k))
        w_host = np.ones(n, dtype=np.dtype(str(self.X.dtype)))
        chosen = [int(rs.choice(n, p=w_host / w_host.sum()))]
        closest = self._distances(xp.asarray(chosen))
        pot = to_host(closest @ w)
        for _ in range(1, k):
            rand = rs.uniform(size=trials) * pot
            cand = xp.searchsorted(xp.cumsum(w * closest), xp.asarray(rand))
            cand = xp.minimum(cand, closest.size - 1)
            dist = xp.minimum(closest.reshape(1, -1), self._distances(cand))
            pots = dist @ w.reshape(-1, 1)
            best = int(pots.argmin())
            pot = to_host(pots[best])
            closest = dist[best]
            chosen.append(int(cand[best]))
        return self.X[xp.asarray(chosen)]


class AdaptiveKMeans(CentroidMixin, EstimatorMixin):
    """K-means whose distance is learned from its segments' pooled covariance (module doc).

    It expects standardised features (zero mean, unit variance per column), as gpuseg's
    pipeline gives it (:class:`~gpuseg.prep.scale.FeatureScaler`): the metric is shrunk
    towards the identity, which weighs every column alike only on a common scale.

    Parameters
    ----------
    n_clusters : int, default=8
    shrinkage : float, default=0.6
        Weight ``a`` of the pooled within-segment covariance in the metric (0: plain
        K-means; 1: no regularisation).
    n_init : int, default=5
        Starts adapted (each a K-means start then the metric steps); the smallest
        within-segment sum of squares in the input space wins.
    n_starts : int, default=20
        Rough K-means starts (k-means++ then up to ``ROUGH_STEPS`` steps) screened: the
        ``n_init`` of them with the least within-segment sum of squares are adapted. Screening
        many cheap starts finds the better optimum far more often than adapting a few (on
        CDNOW, k = 6: the same optimum for 5 of 5 seeds instead of 1 of 5; 10 starts: 4 of 5;
        screening on a 2,000-customer sample: 3 of 5).
    max_iter : int, default=50
        Metric updates (each followed by one assignment) per shrinkage step.
    tol : float, default=0.001
        Stop a step when fewer than this share of the samples change segment.
    max_samples : int, optional
        Above this many samples, the starts run on a fixed-seed sample of this size; every
        sample is then assigned in the winner's metric and the metric refined on all of them
        (a few steps from there).
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        The model's centres in the input space: the segment means of the adaptation's last
        step (``labels_`` is the model's assignment to them, which may have moved a few
        samples since).
    labels_ : array of shape (n_samples,), int32
        :meth:`predict` of the training samples, unless that would empty a segment (then
        the adaptation's last labels, which a saved model may not all give back).
    metric_ : ndarray of shape (n_features, n_features)
        Host array ``A``: distances are Euclidean between ``X @ A`` and ``centers @ A``.
    embedding_ : array of shape (n_samples, n_features)
        ``X @ A``, where the segments were formed.
    embedding_centers_ : array of shape (n_clusters, n_features)
        ``cluster_centers_ @ A``.
    inertia_ : float
        Sum of squared Euclidean distances to the own segment mean in the input space (each k
        learns its own metric, so this is what compares across k).
    criterion_ : float
        Friedman-Rubin ``tr(T^-1 B)`` of the segments (between-segment scatter relative to
        the total; affine invariant), for reference.
    n_iter_ : int
        Metric updates of the winning start.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, [5, 0.3], (200, 2)), rng.normal(0, [5, 0.3], (200, 2)) + [0, 2]])
    >>> Z = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)  # standardised
    >>> est = AdaptiveKMeans(2, random_state=0).fit(Z)
    >>> sorted(np.bincount(est.labels_).tolist())
    [200, 200]
    """

    def __init__(self, n_clusters: int = 8, *, shrinkage: float = 0.6, n_init: int = 5, n_starts: int = 20,
                 max_iter: int = 50, tol: float = 1e-3, max_samples: int | None = None,
                 random_state: Any = None) -> None:
        self.n_clusters = n_clusters
        self.shrinkage = shrinkage
        self.n_init = n_init
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.tol = tol
        self.max_samples = max_samples
        self.random_state = random_state

    def _validate(self, X: Any) -> None:
        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"expected a 2-D array, got shape {getattr(X, 'shape', None)}")
        if isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, (int, np.integer)) or self.n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}")
        if isinstance(self.shrinkage, bool) or not isinstance(self.shrinkage, Real) or not (
                0.0 <= self.shrinkage <= 1.0):
            raise ValueError(f"shrinkage must be within [0, 1], got {self.shrinkage!r}")
        if self.max_samples is not None and (isinstance(self.max_samples, bool) or not isinstance(
                self.max_samples, (int, np.integer)) or self.max_samples < 2 * self.n_clusters):
            raise ValueError(f"max_samples must be None or an integer >= 2 * n_clusters, got {self.max_samples!r}")
        for name in ("n_init", "n_starts", "max_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, Real) or not 0.0 <= self.tol < 1.0:
            raise ValueError(f"tol must be within [0, 1), got {self.tol!r}")
        xp = array_namespace(X)
        if not bool(xp.isfinite(X).all()):
            raise ValueError("X contains NaN or infinite values")

    def fit(self, X: Any, y: Any = None) -> "AdaptiveKMeans":
        """Compute the segmentation."""
        X = as_float_array(X)
        self._validate(X)
        rs = check_random_state(self.random_state)
        seeds = rs.randint(np.iinfo(np.int32).max, size=max(int(self.n_starts), int(self.n_init)))
        xp = array_namespace(X)
        n = X.shape[0]
        S = X
        if self.max_samples is not None and n > self.max_samples:
            rows = np.sort(rs.choice(n, size=int(self.max_samples), replace=False))
            S = X[xp.asarray(rows)]
        T, mean, active = _moments(S)
        best = None
        for labels in self._rough_starts(S, seeds):
            labels, A, n_iter = self._adapt(S, T, mean, active, labels)
            W, centers, _ = _within(T, mean, S, labels, self.n_clusters)
            if best is None or np.trace(W) < best[0]:
                best = (np.trace(W), labels, A, centers, n_iter, W)
        _, labels, A, centers, n_iter, W = best
        if S is not X:  # every sample in the winner's metric, then the metric refined on all
            labels = nearest_in_metric(X, A, centers)
            T, mean, active = _moments(X)
            labels, A, more = self._adapt(X, T, mean, active, labels, steps=(float(self.shrinkage),))
            W, centers, _ = _within(T, mean, X, labels, self.n_clusters)
            n_iter += more
        self.metric_ = A
        self.cluster_centers_ = xp.asarray(to_namespace(centers, xp), dtype=X.dtype)
        self.n_features_in_ = X.shape[1]
        labels, W = self._final_assignment(X, T, mean, labels, W)
        self.labels_ = labels
        self.embedding_ = X @ self._metric_on(xp, X.dtype)
        self.embedding_centers_ = self._latent_centers(xp, X.dtype)
        # in the input space, so that inertia compares across k (each k learns its own metric)
        self.inertia_ = float(np.trace(W) * X.shape[0])
        self.criterion_ = trace_criterion(T, active, W)
        self.n_iter_ = n_iter
        return self

    def _final_assignment(self, X: Any, T: np.ndarray, mean: np.ndarray, labels: Any,
                          W: np.ndarray) -> tuple[Any, np.ndarray]:
        """The fitted model's own segments, :meth:`predict` of the training samples (as
        scikit-learn's K-means ends), and their within-segment covariance. The adaptation
        stops when fewer than ``tol`` of the samples move, so its last labels can differ from
        the model's assignment for a few (20 of CDNOW's 23,570 customers); without this step a
        saved model would not give the run's segments back. Where the model's assignment would
        empty a segment, the adaptation's labels stay."""
        xp = array_namespace(X)
        final = self._assign(X)
        if bool((final == labels).all()) or bool((xp.bincount(final, minlength=self.n_clusters) == 0).any()):
            return labels, W
        W, _, _ = _within(T, mean, X, final, self.n_clusters)
        return final, W

    def _rough_starts(self, S: Any, seeds: np.ndarray) -> list[Any]:
        """Labels of the ``n_init`` best of the rough K-means starts (least within-segment sum
        of squares first; a rough start is enough: the metric steps move the segments much
        further). Each start is ``KMeans(n_init=1, max_iter=ROUGH_STEPS, random_state=seed)``
        from the rows scikit-learn's k-means++ would pick (:class:`_Seeding`), seeded once for
        all starts instead of once per start."""
        seeding = _Seeding(S) if S.size <= SEEDING_MAX_ELEMENTS else None

        def init(seed: int) -> Any:
            return "k-means++" if seeding is None else seeding.rows(self.n_clusters, seed)

        fits = [KMeans(self.n_clusters, init=init(int(seed)), n_init=1, max_iter=ROUGH_STEPS,
                       random_state=int(seed)).fit(S)
                for seed in seeds]
        order = sorted(range(len(fits)), key=lambda i: (fits[i].inertia_, i))
        return [fits[i].labels_ for i in order[:int(self.n_init)]]

    def _adapt(self, X: Any, T: np.ndarray, mean: np.ndarray, active: np.ndarray, labels: Any,
               steps: tuple[float, ...] | None = None) -> tuple[Any, np.ndarray, int]:
        """Alternate the metric of the current segments and the assignment of every sample to
        its nearest centre in it (module doc), at each shrinkage of ``steps`` (default: half
        of ``shrinkage``, then all of it). An assignment that would empty a segment ends the
        step with the segments before it."""
        xp = array_namespace(X)
        k, n = self.n_clusters, X.shape[0]
        n_iter = 0
        if steps is None:  # shrinkage 0: Euclidean steps to convergence, i.e. K-means
            full = float(self.shrinkage)  # a NumPy scalar would keep its own precision
            steps = (full / 2.0, full) if full > 0 else (0.0,)
        for a in steps:
            for _ in range(int(self.max_iter)):
                W, centers, _ = _within(T, mean, X, labels, k)
                A = pooled_metric(W, active, a)
                new = nearest_in_metric(X, A, centers)
                if bool((xp.bincount(new, minlength=k) == 0).any()):
                    break
                n_iter += 1
                changed = float((new != labels).sum()) / n
                labels = new
                if changed < self.tol:
                    break
        W, _, _ = _within(T, mean, X, labels, k)  # the metric of the final segments
        return labels, pooled_metric(W, active, steps[-1]), n_iter

    def _metric_on(self, xp: Any, dtype: Any) -> Any:
        return xp.asarray(to_namespace(self.metric_, xp), dtype=dtype)

    def _latent_centers(self, xp: Any, dtype: Any) -> Any:
        """The centres in the learned metric's space, ``centres @ metric`` in float64 then
        ``dtype``: computed as a saved model computes them (:mod:`gpuseg.model`), so that
        its assignment and :meth:`predict` agree to the last bit."""
        C = np.asarray(to_host(self.cluster_centers_), dtype=np.float64) @ np.asarray(self.metric_, dtype=np.float64)
        return xp.asarray(to_namespace(C, xp), dtype=dtype)

    def _assign(self, X: Any) -> Any:
        """:meth:`predict` of an array already checked and converted."""
        xp = array_namespace(X)
        return nearest_center(X @ self._metric_on(xp, X.dtype), self._latent_centers(xp, X.dtype))[0]

    def predict(self, X: Any) -> Any:
        """Index (int32) of the closest centre in the learned metric."""
        X, _ = self._centers_for(X)
        return self._assign(X)

    def transform(self, X: Any) -> Any:
        """Distances to every centre in the learned metric, shape (n_samples, n_clusters)."""
        from .._xp import squared_distances

        X, _ = self._centers_for(X)
        xp = array_namespace(X)
        return xp.sqrt(squared_distances(X @ self._metric_on(xp, X.dtype), self._latent_centers(xp, X.dtype)))

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the sum of squared distances of X to its nearest centre in the learned
        metric (what the fit decreases)."""
        X, _ = self._centers_for(X)
        xp = array_namespace(X)
        _, dist = nearest_center(X @ self._metric_on(xp, X.dtype), self._latent_centers(xp, X.dtype))
        return -float(dist.astype(xp.float64).sum())
