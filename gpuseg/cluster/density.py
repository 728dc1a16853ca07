"""Density-based clustering: DBSCAN and HDBSCAN, cuML on CuPy input, scikit-learn on NumPy input.

Both find the number of segments themselves and leave points in sparse regions
unassigned: label ``-1`` ("noise"). Noise is kept as its own group and is never relabelled;
``n_noise_`` and ``noise_share_`` report how much of the data it is. Metrics that
assume every point belongs to a cluster (silhouette, Davies-Bouldin, ...) must be
computed on the non-noise points only; the caller does that.

A fit that finds one cluster, or none (every point noise), is a valid result: it does
not raise, and ``n_clusters_`` says what was found.

Cost on the CPU. scikit-learn's DBSCAN keeps every point's eps-neighbourhood in memory
(O(n^2) in the worst case, when eps is large against the data's spread) and its
HDBSCAN builds a minimum spanning tree in O(n^2) time. ``max_points`` guards both: a
larger input is clustered on a fixed-seed sample of that many rows and the other rows
are assigned with ``predict``. Measured on 2 cores, 32 features: DBSCAN with eps from the
knee 5 s at 20,000 rows and 2 minutes at 100,000; HDBSCAN 16 s and 12 minutes.

Examples
--------
>>> import numpy as np
>>> X = np.array([[0, 0], [0, 0.1], [0.1, 0], [5, 5], [5, 5.1], [5.1, 5], [20, 20]], dtype=np.float32)
>>> db = DBSCAN(eps=0.5, min_samples=2).fit(X)
>>> db.labels_.tolist(), db.n_clusters_, db.n_noise_
([0, 0, 0, 1, 1, 1, -1], 2, 1)
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from ..backend import array_namespace, gpu_module, is_gpu_array, is_gpu_frame, to_host, to_namespace
from ._base import EstimatorMixin, as_float_array, check_random_state, seed_from

__all__ = ["DBSCAN", "HDBSCAN", "k_distances", "eps_from_k_distances"]

#: At most this many points are queried for the k-distance curve (against all points).
KNEE_SAMPLE = 10_000
#: Quantile of the k-distances used as eps when the curve has no knee.
NO_KNEE_QUANTILE = 0.9
#: Bounds of the default DBSCAN ``min_samples`` (2 x n_features).
MIN_SAMPLES_RANGE = (5, 100)
#: Default HDBSCAN ``min_cluster_size``: this share of the points, within these bounds.
MIN_CLUSTER_SHARE = 0.005
MIN_CLUSTER_SIZE_RANGE = (5, 500)

_METRICS = ("euclidean", "cosine")
_SELECTION_METHODS = ("eom", "leaf")
#: cuML's HDBSCAN limit on its own min_samples (which excludes the point itself).
_CUML_MAX_MIN_SAMPLES = 1023


# --------------------------------------------------------------------------- helpers


def _check_X(X: Any, min_rows: int = 1) -> Any:
    """A finite 2-D float array (NumPy or CuPy); anything else NumPy can read becomes NumPy."""
    if not is_gpu_array(X) and (is_gpu_frame(X) or hasattr(X, "to_numpy")):
        X = as_float_array(X)  # pandas / cuDF frames
    elif not is_gpu_array(X):
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {X.shape}")
    if X.shape[0] < min_rows or X.shape[1] < 1:
        raise ValueError(f"expected at least {min_rows} sample(s) and one feature, got shape {X.shape} "
                         f"(n_samples={X.shape[0]})")
    xp = array_namespace(X)
    if X.dtype.kind == "O":  # numbers held as objects (scikit-learn's check_array converts them)
        X = X.astype(np.float64)
    if X.dtype.kind not in "fiub":
        raise ValueError(f"expected a numeric array, got dtype {X.dtype}")
    if X.dtype.kind != "f":
        X = X.astype(xp.float64 if xp is np else xp.float32)
    if not bool(xp.isfinite(X).all()):
        raise ValueError("X contains NaN or infinity; clean or impute it first")
    return X


def _check_int(name: str, value: Any, low: int, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be {'None or ' if allow_none else ''}an integer >= {low}, got {value!r}")


def _sampling_state(random_state: Any) -> np.random.RandomState:
    """The RandomState for the subsamples; ``None`` means a fixed seed (0).

    The clusterings themselves are deterministic, so a fixed default seed makes the whole
    fit reproducible without the caller having to pass one.
    """
    return check_random_state(0 if random_state is None else seed_from(random_state))


def _sample_rows(n: int, size: int, rs: np.random.RandomState) -> np.ndarray:
    """Sorted indices of ``size`` distinct rows out of ``n`` (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(rs.choice(n, size, replace=False))


def _nearest_neighbors(ref: Any, queries: Any, n_neighbors: int, metric: str = "euclidean") -> tuple[Any, Any]:
    """Distances and indices (each (n_queries, n_neighbors), nearest first) of rows of ``ref``.

    cuML's brute-force kNN on CuPy input, scikit-learn's ``NearestNeighbors`` (its own
    choice of k-d tree or blocked brute force, all cores) on NumPy input. A query that is
    also a row of ``ref`` finds itself at distance 0 as its first neighbour.
    """
    if is_gpu_array(ref):
        nn = gpu_module("cuml.neighbors").NearestNeighbors(
            n_neighbors=n_neighbors, metric=metric, output_type="cupy"
        ).fit(ref)
        dist, idx = nn.kneighbors(queries, n_neighbors=n_neighbors)
        cp = array_namespace(ref)
        return cp.asarray(dist), cp.asarray(idx)
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=n_neighbors, metric=metric, n_jobs=-1).fit(ref)
    return nn.kneighbors(queries)


def _nearest_label(
    ref: Any, ref_labels: Any, X: Any, radius: float, metric: str
) -> tuple[Any, Any, Any]:
    """Label of the nearest row of ``ref`` when it lies within ``radius``, else -1.

    Returns labels (int32), the index of the nearest ref row and its distance, all in X's
    namespace.
    """
    xp = array_namespace(X)
    n = X.shape[0]
    if ref.shape[0] == 0 or n == 0:
        return xp.full(n, -1, dtype=xp.int32), xp.zeros(n, dtype=xp.int64), xp.full(n, xp.inf)
    ref = to_namespace(ref, xp)
    ref_labels = to_namespace(ref_labels, xp)
    dist, idx = _nearest_neighbors(ref, X, 1, metric)
    dist, idx = dist[:, 0], idx[:, 0]
    labels = xp.where(dist <= radius, ref_labels[idx], -1).astype(xp.int32)
    return labels, idx, dist


def _count_clusters(labels: Any) -> tuple[int, int]:
    """(number of clusters, number of noise points) of labels where -1 is noise."""
    xp = array_namespace(labels)
    n_noise = int((labels < 0).sum())
    if n_noise == labels.shape[0]:
        return 0, n_noise
    return int((xp.unique(labels) >= 0).sum()), n_noise


def _cluster_values(raw: Any) -> Any:
    """Sorted distinct cluster labels (noise excluded) of a library's raw labels."""
    xp = array_namespace(raw)
    values = xp.unique(raw)
    return values[values >= 0]


def _relabel(raw: Any, values: Any) -> Any:
    """Raw labels renumbered by their position in ``values`` (int32); anything else is -1.

    Keeps labels 0..k-1 whatever numbering a library uses, and maps labels of later
    predictions into the fitted numbering.
    """
    xp = array_namespace(raw)
    if values.shape[0] == 0:
        return xp.full(raw.shape[0], -1, dtype=xp.int32)
    codes = xp.minimum(xp.searchsorted(values, raw), values.shape[0] - 1)
    known = (raw >= 0) & (values[codes] == raw)
    return xp.where(known, codes, -1).astype(xp.int32)


def k_distances(
    X: Any, n_neighbors: int, *, metric: str = "euclidean", sample_size: int = KNEE_SAMPLE, random_state: Any = None
) -> np.ndarray:
    """Sorted distances of (a sample of) the points to their ``n_neighbors``-th nearest neighbour.

    The point itself counts as its first neighbour, so the value is the smallest eps at
    which the point is a DBSCAN core point with ``min_samples = n_neighbors``. At most
    ``sample_size`` points (a fixed-seed sample) are queried, each against all of X, so
    the values are not inflated by the sampling.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy.
    n_neighbors : int
        k, at most n_samples.
    metric : {"euclidean", "cosine"}, default="euclidean"
    sample_size : int, default=10_000
    random_state : int, RandomState or None, default=None
        Seeds the sample; ``None`` means seed 0.

    Returns
    -------
    ndarray of shape (min(n_samples, sample_size),)
        Host float64 array, ascending.
    """
    X = _check_X(X)
    n = X.shape[0]
    _check_int("n_neighbors", n_neighbors, 1, allow_none=False)
    if n_neighbors > n:
        raise ValueError(f"n_neighbors={n_neighbors} must be at most n_samples={n}")
    _check_int("sample_size", sample_size, 1, allow_none=False)
    return _k_distances(X, n_neighbors, metric, sample_size, _sampling_state(random_state))


def _k_distances(X: Any, k: int, metric: str, sample_size: int, rs: np.random.RandomState) -> np.ndarray:
    xp = array_namespace(X)
    rows = _sample_rows(X.shape[0], sample_size, rs)
    queries = X if rows.shape[0] == X.shape[0] else X[xp.asarray(rows)]
    dist, _ = _nearest_neighbors(X, queries, k, metric)
    return np.sort(to_host(dist[:, k - 1]).astype(np.float64))


def _knee_increasing(y: np.ndarray) -> int | None:
    """Index of the knee of an increasing convex curve (Kneedle), or None without a bend.

    The knee is the point farthest below the chord from the first to the last point,
    after normalising both axes to [0, 1]. Read from right to left, the curve is a
    decreasing convex one, which is what :func:`gpuseg.evaluate.selection.knee_point`
    handles (with its minimum depth); one rule, one place.
    """
    from ..evaluate.selection import knee_point  # lazy: keeps cluster -> evaluate imports acyclic

    m = len(y)
    t = knee_point(np.arange(m), np.asarray(y, dtype=float)[::-1])
    return None if t is None else m - 1 - t


def eps_from_k_distances(k_dist: Any, *, scale: float = 1.0) -> tuple[float, int | None]:
    """DBSCAN's eps from a sorted k-distance curve: its knee (Kneedle).

    Points left of the knee lie in dense regions and become core points; the steep part
    right of it is the sparse tail that DBSCAN should leave as noise. A curve without a
    bend (uniform density) has no knee; eps is then its 90% quantile, so that about 90%
    of the points are core points.

    Parameters
    ----------
    k_dist : array of shape (n,)
        Ascending k-distances, e.g. from :func:`k_distances`.
    scale : float, default=1.0
        The data's magnitude (largest absolute coordinate). k-distances below
        ``1e-3 * scale`` count as 0 (duplicates up to float32 rounding, which cuML's and
        the expanded distance formula leave at about 1e-4 of the magnitude), and eps is at
        least that.

    Returns
    -------
    eps : float
        At least ``1e-3 * scale``: a zero knee value (duplicated points) moves to the
        smallest positive k-distance, or to that floor when there is none.
    knee_index : int or None
        Position of the knee in ``k_dist``; None when eps came from the quantile.
    """
    y = np.asarray(to_host(k_dist), dtype=np.float64)
    if y.ndim != 1 or y.shape[0] == 0:
        raise ValueError("k_dist must be a non-empty 1-D array")
    if not np.all(np.isfinite(y)):
        raise ValueError("k_dist contains NaN or infinity")
    if np.any(np.diff(y) < 0):
        raise ValueError("k_dist must be sorted ascending")
    # distances below float32 rounding of the data's magnitude are duplicates, not density
    floor = 1e-3 * (scale if scale > 0 else 1.0)
    y = np.where(y < floor, 0.0, y)
    knee = _knee_increasing(y)
    eps = float(y[knee]) if knee is not None else float(np.quantile(y, NO_KNEE_QUANTILE))
    if eps <= 0:
        positive = y[y > 0]
        # duplicates: any eps well above rounding and below the data's spread joins them
        eps = float(positive[0]) if positive.size else floor
    return max(eps, floor), knee


def _projected(est: Any, X: Any, fit: bool) -> Any:
    """X on the estimator's first ``n_components`` principal axes (fitted when ``fit``), or X
    itself without ``n_components`` or when it is not below the number of features."""
    n = est.n_components
    if fit:
        est.projection_ = None
        if n is not None and n < X.shape[1]:
            from ..embed.projection import PCA

            est.projection_ = PCA(n).fit(X)
    if getattr(est, "projection_", None) is None:
        return X
    return est.projection_.transform(X).astype(X.dtype)


def _default_min_samples(n_features: int) -> int:
    lo, hi = MIN_SAMPLES_RANGE
    return int(min(max(2 * n_features, lo), hi))


def _default_min_cluster_size(n_samples: int) -> int:
    lo, hi = MIN_CLUSTER_SIZE_RANGE
    return int(min(max(lo, int(MIN_CLUSTER_SHARE * n_samples)), hi))


# --------------------------------------------------------------------------- DBSCAN


class DBSCAN(EstimatorMixin):
    """DBSCAN (Ester et al. 1996) with eps chosen from the knee of the k-distance curve.

    On CuPy input the fit runs in cuML, on NumPy input in scikit-learn; with the same eps
    and min_samples both give the DBSCAN clustering (border points reachable from two
    clusters may go to either). Outputs follow the input's type.

    When ``eps`` is not given it is chosen from the data: for (a fixed-seed sample of at
    most 10,000) points, the distance to the ``min_samples``-th nearest neighbour (the
    point itself included: the eps at which the point becomes a core point) is computed
    against all points and sorted; eps is the value at the knee of that curve found
    with the Kneedle method (normalise to [0, 1]; the point farthest below the chord
    from the first to the last point). See :func:`eps_from_k_distances`.

    Parameters
    ----------
    eps : float or None, default=None
        Neighbourhood radius. ``None``: the knee of the k-distance curve.
    min_samples : int or None, default=None
        Points (itself included) within eps that make a point a core point. ``None``:
        ``2 * n_features`` clipped to [5, 100], the usual rule of thumb (Sander et al.
        1998: 2 x dimensionality).
    metric : {"euclidean", "cosine"}, default="euclidean"
    random_state : int, RandomState or None, default=None
        Seeds the k-distance sample and the ``max_points`` sample; ``None`` means a
        fixed seed (0), so repeated fits give the same result.
    max_points : int or None, default=None
        Largest number of rows clustered directly. A larger input is clustered on a
        fixed-seed sample of ``max_points`` rows and the other rows are assigned with
        :meth:`predict`. The sample is sparser than the data (by n / max_points), so
        eps=None, chosen on the sample, is the setting that fits it; a given eps is used
        as it is and leaves more points as noise than on the full data. ``None``: no
        sampling. On the CPU scikit-learn's DBSCAN needs memory for every point's
        eps-neighbourhood, up to O(n^2); a cap such as 200,000 keeps it bounded.
    n_components : int or None, default=None
        Search the density on the first ``n_components`` principal components of X (PCA
        fitted on X) instead of on all features: density in a few dozen dimensions is
        nearly uniform, so neighbourhoods stop telling segments apart. ``predict``
        projects new points the same way. ``None``: all features.

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int32
        Cluster of each point, 0..n_clusters_-1, or -1 for noise. Noise is its own
        "unassigned" group: metrics must leave it out.
    eps_ : float
        The eps used.
    eps_source_ : {"given", "knee", "quantile"}
        Where eps_ came from: the parameter, the knee of the k-distance curve, or (curve
        without a bend) its 90% quantile.
    min_samples_ : int
        The min_samples used.
    k_distance_ : ndarray or None
        Host array of the sorted k-distances (k = min_samples_) of the sample that chose
        eps (for a sensitivity plot); None when eps was given.
    knee_index_ : int or None
        Position of the knee in ``k_distance_``.
    core_sample_indices_ : ndarray of shape (n_core,)
        Host array of the rows that are core points.
    components_ : array of shape (n_core, n_features)
        The core points, in the input's type.
    n_clusters_ : int
        Clusters found, noise excluded (0 or 1 are valid results).
    n_noise_ : int
    noise_share_ : float
        n_noise_ / n_samples.
    sampled_ : bool
        True when the fit ran on a ``max_points`` sample.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 0.3, (100, 2)), rng.normal(5, 0.3, (100, 2))])
    >>> db = DBSCAN(min_samples=10).fit(X)
    >>> db.n_clusters_, db.eps_source_
    (2, 'knee')
    """

    def __init__(
        self,
        eps: float | None = None,
        *,
        min_samples: int | None = None,
        metric: str = "euclidean",
        random_state: Any = None,
        max_points: int | None = None,
        n_components: int | None = None,
    ) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.random_state = random_state
        self.max_points = max_points
        self.n_components = n_components

    def _validate_params(self) -> None:
        eps = self.eps
        if eps is not None and (isinstance(eps, bool) or not isinstance(eps, Real) or not np.isfinite(eps) or eps <= 0):
            raise ValueError(f"eps must be None or a positive number, got {eps!r}")
        _check_int("min_samples", self.min_samples, 1)
        _check_int("max_points", self.max_points, 1)
        _check_int("n_components", self.n_components, 1)
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {', '.join(_METRICS)}, got {self.metric!r}")

    def fit(self, X: Any, y: Any = None) -> "DBSCAN":
        """Compute the clustering (choosing eps first when it is None)."""
        self._validate_params()
        X = _check_X(X)
        d_in = X.shape[1]
        X = _projected(self, X, fit=True)
        xp = array_namespace(X)
        n, d = X.shape
        rs = _sampling_state(self.random_state)
        min_samples = self.min_samples if self.min_samples is not None else _default_min_samples(d)

        rows = _sample_rows(n, self.max_points, rs) if self.max_points is not None else np.arange(n)
        sampled = rows.shape[0] < n
        X_fit = X[xp.asarray(rows)] if sampled else X

        if self.eps is None:
            if X_fit.shape[0] < min_samples:
                where = f"max_points={self.max_points}" if sampled else f"n_samples={n}"
                raise ValueError(
                    f"choosing eps needs at least min_samples={min_samples} points, got {where}; "
                    "pass eps or a smaller min_samples"
                )
            k_dist = _k_distances(X_fit, min_samples, self.metric, KNEE_SAMPLE, rs)
            scale = float(abs(X_fit).max()) if self.metric == "euclidean" else 1.0  # cosine: in [0, 2]
            eps, knee = eps_from_k_distances(k_dist, scale=scale)
            self.k_distance_, self.knee_index_ = k_dist, knee
            self.eps_source_ = "knee" if knee is not None else "quantile"
        else:
            eps = float(self.eps)
            self.k_distance_, self.knee_index_, self.eps_source_ = None, None, "given"

        if is_gpu_array(X_fit):
            # cuML normalises the rows in place for the cosine metric and restores them only
            # approximately: the caller's matrix (the run's shared features) must stay as it is
            labels, core = self._fit_cuml(X_fit.copy() if self.metric == "cosine" and X_fit is X else X_fit,
                                          eps, min_samples)
        else:
            labels, core = self._fit_sklearn(X_fit, eps, min_samples)

        self.eps_ = eps
        self.min_samples_ = int(min_samples)
        self.components_ = X_fit[xp.asarray(core)]
        self._core_labels = labels[xp.asarray(core)]
        if sampled:
            full = xp.empty(n, dtype=xp.int32)
            full[xp.asarray(rows)] = labels
            rest = np.setdiff1d(np.arange(n), rows, assume_unique=True)
            full[xp.asarray(rest)] = self._predict(X[xp.asarray(rest)])
            labels = full
            core = rows[core]
        self.labels_ = labels
        self.core_sample_indices_ = core
        self.sampled_ = sampled
        self.n_clusters_, self.n_noise_ = _count_clusters(labels)
        self.noise_share_ = self.n_noise_ / n
        self.n_features_in_ = d_in
        return self

    def _fit_sklearn(self, X: np.ndarray, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import DBSCAN as SkDBSCAN

        db = SkDBSCAN(eps=eps, min_samples=min_samples, metric=self.metric, n_jobs=-1).fit(X)
        return db.labels_.astype(np.int32), np.asarray(db.core_sample_indices_, dtype=np.int64)

    def _fit_cuml(self, X: Any, eps: float, min_samples: int) -> tuple[Any, np.ndarray]:
        cp = array_namespace(X)
        db = gpu_module("cuml.cluster").DBSCAN(
            eps=eps,
            min_samples=min_samples,
            metric=self.metric,
            calc_core_sample_indices=True,
            output_type="cupy",
        ).fit(X, out_dtype="int32")
        raw = cp.asarray(db.labels_)
        labels = _relabel(raw, _cluster_values(raw))
        core = db.core_sample_indices_
        core = np.zeros(0, dtype=np.int64) if core is None else to_host(cp.asarray(core)).astype(np.int64)
        return labels, core

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise AttributeError("this DBSCAN instance is not fitted yet; call fit first")

    def predict(self, X: Any) -> Any:
        """Assign new points: the label of the nearest core point if within eps_, else -1.

        This is how DBSCAN itself treats border points, except that a border point
        reachable from two clusters goes to the nearest core point's (the fit takes the
        first one it reaches), so on training border points the two can differ; on core
        points they agree.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)

        Returns
        -------
        labels : array of shape (n_samples,), int32, in X's type
        """
        self._check_fitted()
        X = _check_X(X, min_rows=0)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        return self._predict(_projected(self, X, fit=False))

    def _predict(self, X: Any) -> Any:
        return _nearest_label(self.components_, self._core_labels, X, self.eps_, self.metric)[0]


# --------------------------------------------------------------------------- HDBSCAN


class HDBSCAN(EstimatorMixin):
    """HDBSCAN* (Campello et al. 2013): density clusters over all eps at once.

    On CuPy input the fit runs in cuML, on NumPy input in scikit-learn
    (``sklearn.cluster.HDBSCAN``); ``min_samples`` has scikit-learn's meaning (the point
    itself counts) and is passed to cuML as ``min_samples - 1``, cuML's convention for
    the same clustering. Outputs follow the input's type.

    Parameters
    ----------
    min_cluster_size : int or None, default=None
        Smallest group that counts as a cluster. ``None``: 0.5% of the points, at least
        5 and at most 500 (``max(5, int(0.005 * n))`` capped at 500): segments below
        half a percent of the customers are rarely actionable, and larger values make
        the fit slower without changing the big segments.
    min_samples : int or None, default=None
        Neighbours (itself included) that define a point's core distance; larger is
        more conservative (more noise). ``None``: ``min_cluster_size``, as in
        scikit-learn. On the GPU it must be between 2 and 1024.
    cluster_selection_method : {"eom", "leaf"}, default="eom"
        Excess of mass (the most persistent clusters) or the leaves of the condensed
        tree (more, smaller, more homogeneous clusters).
    random_state : int, RandomState or None, default=None
        Seeds the ``max_points`` sample; ``None`` means a fixed seed (0).
    max_points : int or None, default=None
        Largest number of rows clustered directly (scikit-learn's HDBSCAN takes O(n^2)
        time: on 2 cores about 16 s for 20,000 x 32 and 12 minutes for 100,000 x 32); a
        larger input is clustered on a fixed-seed sample and the other rows are assigned
        with :meth:`predict`. ``None``: no sampling.
    n_components : int or None, default=None
        Search the density on the first ``n_components`` principal components of X (as
        for :class:`DBSCAN`). ``None``: all features.

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int32
        Cluster of each point, 0..n_clusters_-1, or -1 for noise. Noise is its own
        "unassigned" group: metrics must leave it out.
    probabilities_ : array of shape (n_samples,)
        Strength of each point's membership in its cluster, in [0, 1] (0 for noise), in
        the input's type and float dtype: a confidence for the assignment. Rows assigned
        by ``predict`` after a sampled fit get the value of their nearest clustered
        training point (CPU) or cuML's approximate_predict probability (GPU).
    min_cluster_size_ : int
    min_samples_ : int
    n_clusters_ : int
        Clusters found, noise excluded (0 or 1 are valid results).
    n_noise_ : int
    noise_share_ : float
    sampled_ : bool
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 0.3, (100, 2)), rng.normal(5, 0.3, (100, 2))])
    >>> hdb = HDBSCAN(min_cluster_size=10).fit(X)
    >>> hdb.n_clusters_
    2
    """

    def __init__(
        self,
        min_cluster_size: int | None = None,
        *,
        min_samples: int | None = None,
        cluster_selection_method: str = "eom",
        random_state: Any = None,
        max_points: int | None = None,
        n_components: int | None = None,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.random_state = random_state
        self.max_points = max_points
        self.n_components = n_components

    def _validate_params(self) -> None:
        _check_int("min_cluster_size", self.min_cluster_size, 2)
        _check_int("min_samples", self.min_samples, 1)
        _check_int("max_points", self.max_points, 2)
        _check_int("n_components", self.n_components, 1)
        if self.cluster_selection_method not in _SELECTION_METHODS:
            raise ValueError(
                f"cluster_selection_method must be one of {', '.join(_SELECTION_METHODS)}, "
                f"got {self.cluster_selection_method!r}"
            )

    def fit(self, X: Any, y: Any = None) -> "HDBSCAN":
        """Compute the clustering."""
        self._validate_params()
        X = _check_X(X)
        d_in = X.shape[1]
        X = _projected(self, X, fit=True)
        xp = array_namespace(X)
        n, d = X.shape
        if n < 2:
            raise ValueError(f"HDBSCAN needs at least 2 samples, got {n}")
        rs = _sampling_state(self.random_state)
        rows = _sample_rows(n, self.max_points, rs) if self.max_points is not None else np.arange(n)
        sampled = rows.shape[0] < n
        X_fit = X[xp.asarray(rows)] if sampled else X
        n_fit = X_fit.shape[0]

        mcs = self.min_cluster_size if self.min_cluster_size is not None else _default_min_cluster_size(n_fit)
        ms = self.min_samples if self.min_samples is not None else mcs
        if ms > n_fit:
            raise ValueError(
                f"min_samples={ms} must be at most the number of clustered points ({n_fit}); "
                "pass a smaller min_samples or min_cluster_size"
            )
        self.min_cluster_size_, self.min_samples_ = int(mcs), int(ms)
        self._predict_radius = None
        if is_gpu_array(X_fit):
            labels, prob = self._fit_cuml(X_fit)
        else:
            labels, prob = self._fit_sklearn(X_fit)
        prob = prob.astype(X.dtype)

        keep = xp.flatnonzero(labels >= 0)
        self._labelled = X_fit[keep]
        self._labelled_labels = labels[keep]
        self._labelled_prob = prob[keep]
        if sampled:
            rest = xp.asarray(np.setdiff1d(np.arange(n), rows, assume_unique=True))
            full_labels = xp.empty(n, dtype=xp.int32)
            full_prob = xp.empty(n, dtype=X.dtype)
            full_labels[xp.asarray(rows)], full_prob[xp.asarray(rows)] = labels, prob
            rest_labels, rest_prob = self._predict(X[rest])
            full_labels[rest], full_prob[rest] = rest_labels, rest_prob.astype(X.dtype)
            labels, prob = full_labels, full_prob
        self.labels_ = labels
        self.probabilities_ = prob
        self.sampled_ = sampled
        self.n_clusters_, self.n_noise_ = _count_clusters(labels)
        self.noise_share_ = self.n_noise_ / n
        self.n_features_in_ = d_in
        return self

    def _fit_sklearn(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import HDBSCAN as SkHDBSCAN

        self._cuml_model = None
        hdb = SkHDBSCAN(
            min_cluster_size=self.min_cluster_size_,
            min_samples=self.min_samples_,
            cluster_selection_method=self.cluster_selection_method,
            n_jobs=-1,
            copy=True,
        ).fit(X)
        return hdb.labels_.astype(np.int32), np.asarray(hdb.probabilities_)

    def _fit_cuml(self, X: Any) -> tuple[Any, Any]:
        cp = array_namespace(X)
        if not 2 <= self.min_samples_ <= _CUML_MAX_MIN_SAMPLES + 1:
            raise ValueError(
                f"min_samples={self.min_samples_}: on the GPU it must be between 2 and {_CUML_MAX_MIN_SAMPLES + 1}"
            )
        hdb = gpu_module("cuml.cluster.hdbscan").HDBSCAN(
            min_cluster_size=self.min_cluster_size_,
            min_samples=self.min_samples_ - 1,  # cuML does not count the point itself
            cluster_selection_method=self.cluster_selection_method,
            prediction_data=True,
            output_type="cupy",
        ).fit(X)
        raw = cp.asarray(hdb.labels_)
        self._cuml_model, self._cuml_values = hdb, _cluster_values(raw)
        return _relabel(raw, self._cuml_values), cp.asarray(hdb.probabilities_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise AttributeError("this HDBSCAN instance is not fitted yet; call fit first")

    def predict(self, X: Any) -> Any:
        """Assign new points to the fitted clusters (an approximation).

        HDBSCAN has no exact out-of-sample rule: refitting with the new points can change
        the clusters. On the GPU this is cuML's ``approximate_predict`` (the point's place
        in the condensed tree). On the CPU a point takes the label of its nearest
        clustered (non-noise) training point, or -1 when that point is farther than the
        largest core distance among the clustered training points (estimated on a sample
        of at most 10,000 of them, computed at the first call): farther than that, it
        would not be dense enough to join any cluster.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)

        Returns
        -------
        labels : array of shape (n_samples,), int32, in X's type
        """
        self._check_fitted()
        X = _check_X(X, min_rows=0)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        return self._predict(_projected(self, X, fit=False))[0]

    def _predict(self, X: Any) -> tuple[Any, Any]:
        """Labels and membership probabilities of new points (see :meth:`predict`)."""
        xp = array_namespace(X)
        if X.shape[0] == 0:
            return xp.empty(0, dtype=xp.int32), xp.empty(0, dtype=X.dtype)
        model = getattr(self, "_cuml_model", None)
        if model is not None and is_gpu_array(X):
            raw, prob = gpu_module("cuml.cluster.hdbscan").approximate_predict(model, X)
            labels = _relabel(xp.asarray(raw), self._cuml_values)
            return labels, xp.where(labels >= 0, xp.asarray(prob), 0)
        if self._labelled.shape[0] == 0:  # every training point was noise
            return xp.full(X.shape[0], -1, dtype=xp.int32), xp.zeros(X.shape[0], dtype=X.dtype)
        labels, idx, _ = _nearest_label(self._labelled, self._labelled_labels, X, self._radius(), "euclidean")
        prob = xp.where(labels >= 0, to_namespace(self._labelled_prob, xp)[idx], 0)
        return labels, prob

    def _radius(self) -> float:
        """Largest core distance (k = min_samples_) among the clustered training points."""
        if self._predict_radius is None:
            m = self._labelled.shape[0]
            if m == 0:
                self._predict_radius = 0.0
            else:
                k = min(self.min_samples_, m)
                kd = _k_distances(self._labelled, k, "euclidean", KNEE_SAMPLE, _sampling_state(self.random_state))
                self._predict_radius = float(kd[-1])
        return self._predict_radius

