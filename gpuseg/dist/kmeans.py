"""K-means on a Dask array whose row blocks may live on Dask workers (NumPy or CuPy blocks).

Every Lloyd iteration is one map-reduce pass over the row blocks: each block assigns its
rows to the nearest centre and returns its per-cluster sums (k x d), counts (k) and
inertia; the client adds them up and computes the new centres. Only these small results
and the centres travel between the client and the workers, never the rows.

The per-block code is written once for NumPy and CuPy (the namespace comes from the
block); the blocks' partial results come back to the client as NumPy, so the client
needs no GPU. Dask itself is imported on first use, so ``import gpuseg`` stays free of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend as _backend
from .._xp import block_rows, cluster_sums, row_blocks
from ..cluster._base import EstimatorMixin, check_random_state

__all__ = ["DaskKMeans"]


def _dask() -> Any:
    return _backend.import_optional("dask", hint=_backend.DASK_HINT)


def _dask_array() -> Any:
    return _backend.import_optional("dask.array", hint=_backend.DASK_HINT)


# -- per-block functions (module level: the distributed scheduler pickles them by name) ---------


def _as_float64(block: Any) -> Any:
    """The block in float64 on its device (no copy when it already is)."""
    xp = _backend.array_namespace(block)
    return xp.asarray(block, dtype=xp.float64)


def _assign(x: Any, centers: Any) -> tuple[Any, Any]:
    """Nearest centre (int32) and squared distance to it (float64) for each row of ``x``.

    Both inputs are float64 arrays of one namespace. Worked through in row slices so the
    (rows x k) score matrix stays small whatever the block size.
    """
    xp = _backend.array_namespace(x, centers)
    n, d = x.shape
    k = centers.shape[0]
    labels = xp.empty(n, dtype=xp.int32)
    dist = xp.empty(n, dtype=xp.float64)
    cc = (centers * centers).sum(axis=1)
    for start, stop in row_blocks(n, block_rows(xp, max(d, k))):
        rows = x[start:stop]
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is the same for every centre, so
        # the argmin leaves it out (as scikit-learn's Lloyd does) rather than round it in
        lab = (cc[None, :] - 2.0 * (rows @ centers.T)).argmin(axis=1)
        labels[start:stop] = lab
        # the distance to the chosen centre from the differences, not the expansion: no
        # cancellation, so the inertia is exact to rounding even far from the origin
        diff = rows - centers[lab]
        dist[start:stop] = (diff * diff).sum(axis=1)
    return labels, dist


def _block_moments(block: Any) -> tuple[int, np.ndarray, np.ndarray, bool]:
    """Rows, column means, column sums of squared deviations and "all finite" of one block.

    Means and deviation sums (not raw sums of squares) so that combining the blocks
    (Chan et al.'s parallel variance) keeps full accuracy for data far from the origin.
    """
    x = _as_float64(block)
    xp = _backend.array_namespace(x)
    n, d = x.shape
    finite = bool(xp.isfinite(x).all())
    if n == 0 or not finite:
        return n, np.zeros(d), np.zeros(d), finite
    mean = x.mean(axis=0)
    m2 = ((x - mean[None, :]) ** 2).sum(axis=0)
    return n, np.asarray(_backend.to_host(mean)), np.asarray(_backend.to_host(m2)), True


def _block_step(block: Any, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """One block's share of a Lloyd iteration: per-cluster sums (k, d), counts (k) and the
    inertia of its rows under ``centers`` (host float64 arrays)."""
    x = _as_float64(block)
    xp = _backend.array_namespace(x)
    k, d = centers.shape
    if x.shape[0] == 0:
        return np.zeros((k, d)), np.zeros(k), 0.0
    labels, dist = _assign(x, xp.asarray(centers))
    sums, counts = cluster_sums(x, labels, k)
    return np.asarray(_backend.to_host(sums)), np.asarray(_backend.to_host(counts)), float(dist.sum())


def _block_inertia(block: Any, centers: np.ndarray) -> float:
    """Inertia of one block's rows under ``centers``."""
    x = _as_float64(block)
    if x.shape[0] == 0:
        return 0.0
    xp = _backend.array_namespace(x)
    return float(_assign(x, xp.asarray(centers))[1].sum())


def _block_labels(block: Any, centers: np.ndarray) -> Any:
    """Nearest centre (int32) of each row of one block, on the block's device."""
    x = _as_float64(block)
    xp = _backend.array_namespace(x)
    return _assign(x, xp.asarray(centers))[0]


def _block_take(block: Any, rows: np.ndarray | None) -> np.ndarray:
    """The given rows (all when None) of one block, as a host float64 array."""
    x = _as_float64(block)
    if rows is not None:
        x = x[_backend.array_namespace(x).asarray(rows)]
    return np.asarray(_backend.to_host(x))


# -- the estimator --------------------------------------------------------------------------------


class DaskKMeans(EstimatorMixin):
    """K-means (Lloyd) on a Dask array: one pass over the row blocks per iteration.

    Parameters
    ----------
    n_clusters : int, default=8
    init : "k-means++" or array of shape (n_clusters, n_features), default="k-means++"
        ``"k-means++"`` seeds with scikit-learn's greedy k-means++ run on the client over a
        seeded uniform sample of at most ``init_sample`` rows (all rows when there are
        fewer; then the seeds equal ``sklearn.cluster.kmeans_plusplus`` on X with the same
        ``random_state``). An array gives the starting centres.
    max_iter : int, default=300
    tol : float, default=1e-4
        Relative tolerance, scikit-learn's rule: stop when the sum over centres of the
        squared centre shift is at most ``tol`` times the mean of X's column variances.
    random_state : int, RandomState or None, default=None
        Seeds the sample and the k-means++ draws.
    init_sample : int, default=100_000
        Most rows gathered to the client for k-means++.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features), float64
        NumPy or CuPy, as X's blocks.
    labels_ : dask array of shape (n_samples,), int32
        Lazy, with X's row chunks; computing it is one more pass over X.
    inertia_ : float
        Sum of squared distances of the rows to their closest centre in ``cluster_centers_``.
    n_iter_ : int
    inertia_history_ : list of float
        The inertia at each iteration's assignment step (under the centres the iteration
        started from); non-increasing.
    n_features_in_ : int

    Notes
    -----
    - Computes in float64 whatever X's dtype (each block is converted as it is read).
    - Labels are the argmin of ``||c||^2 - 2 x.c`` (the expansion of ``||x - c||^2`` less
      the term common to all centres, as scikit-learn); the inertia sums the exact squared
      differences to the chosen centres, free of the expansion's cancellation.
    - An empty cluster keeps its previous centre; scikit-learn moves it to far-away rows
      instead, which would take another pass over X. With the same starting centres and no
      empty cluster the fit equals ``sklearn.cluster.KMeans(algorithm="lloyd", n_init=1)``
      up to float summation order, iterations included.
    - A fit reads X once for the column variances (and the non-finite check), once for the
      k-means++ sample, once per iteration and once more for the final inertia (skipped
      when the last iteration did not move the centres). Persist X (``X = X.persist()``)
      when it comes from an expensive graph (files, shuffles), or every pass recomputes it.
    - Each pass is one ``dask.compute``: the threaded scheduler by default, the active
      distributed ``Client`` when there is one.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> X = da.from_array(np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=float), chunks=(2, 2))
    >>> km = DaskKMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(np.bincount(km.labels_.compute()).tolist()), km.inertia_
    ([2, 2], 1.0)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Any = "k-means++",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Any = None,
        init_sample: int = 100_000,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.init_sample = init_sample

    # -- checks ---------------------------------------------------------------------------------

    def _check_params(self) -> None:
        def positive_int(value: Any) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1

        if not positive_int(self.n_clusters):
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if not positive_int(self.max_iter):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float, np.number)) or not self.tol >= 0:
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}")
        if isinstance(self.init, str):
            if self.init != "k-means++":
                raise ValueError(f"init must be 'k-means++' or an array of centres, got {self.init!r}")
            if not positive_int(self.init_sample) or self.init_sample < self.n_clusters:
                raise ValueError(f"init_sample must be an integer >= n_clusters={self.n_clusters}, "
                                 f"got {self.init_sample!r}")

    def _init_centers(self, n_features: int) -> np.ndarray:
        """The ``init`` array as host float64, checked against the data."""
        try:
            centers = np.array(_backend.to_host(self.init), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"init must be 'k-means++' or an array of centres ({exc})") from None
        expected = (int(self.n_clusters), n_features)
        if centers.shape != expected:
            raise ValueError(f"init centres have shape {centers.shape}; expected (n_clusters, n_features) = {expected}")
        if not np.isfinite(centers).all():
            raise ValueError("init centres contain NaN or infinity")
        return centers

    def _as_dask(self, X: Any) -> Any:
        """X as a 2-D Dask array whose columns are one chunk."""
        da = _dask_array()
        if not isinstance(X, da.Array):
            if not (isinstance(X, np.ndarray) or _backend.is_gpu_array(X)):
                X = np.asarray(X)  # lists, frames
            if X.ndim != 2:
                raise ValueError(f"expected a 2-D array (n_samples, n_features), got shape {X.shape}")
            X = da.from_array(X, chunks=("auto", -1))
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array (n_samples, n_features), got shape {X.shape}")
        if np.isnan(X.shape[1]) or X.shape[1] < 1:
            raise ValueError(f"X needs a known number of columns, at least one; got shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must be numeric, got dtype {X.dtype}")
        if X.numblocks[1] != 1:
            # a block's rows must be whole to measure distances: all columns in one chunk
            X = X.rechunk({1: -1})
        return X

    # -- passes over the blocks -----------------------------------------------------------------

    @staticmethod
    def _moments(blocks: list) -> tuple[np.ndarray, float]:
        """Rows per block and the mean of the column variances (population, as np.var)."""
        dask = _dask()
        parts = dask.compute(*[dask.delayed(_block_moments)(b) for b in blocks])
        if not all(p[3] for p in parts):
            raise ValueError("X contains NaN or infinity")
        counts = np.array([p[0] for p in parts], dtype=np.int64)
        n = int(counts.sum())
        if n == 0:
            return counts, 0.0
        mean = sum(c * p[1] for c, p in zip(counts, parts)) / n
        m2 = sum(p[2] + c * (p[1] - mean) ** 2 for c, p in zip(counts, parts))
        return counts, float(np.mean(m2 / n))

    def _kmeans_plusplus(self, blocks: list, counts: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
        """k-means++ seeds from a uniform sample of the rows gathered in one compute."""
        from sklearn.cluster import kmeans_plusplus

        dask = _dask()
        n = int(counts.sum())
        rows = None
        if n > self.init_sample:
            # Generator.choice draws without replacement in O(sample), not O(n) like
            # RandomState.choice; its seed comes from rs, so random_state decides everything
            rng = np.random.default_rng(int(rs.randint(np.iinfo(np.int32).max)))
            rows = np.sort(rng.choice(n, size=int(self.init_sample), replace=False))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        parts = []
        for block, start, count in zip(blocks, starts, counts):
            if rows is None:
                if count:
                    parts.append(dask.delayed(_block_take)(block, None))
                continue
            lo, hi = np.searchsorted(rows, [start, start + count])
            if hi > lo:
                parts.append(dask.delayed(_block_take)(block, rows[lo:hi] - start))
        sample = np.concatenate(dask.compute(*parts))
        centers, _ = kmeans_plusplus(sample, int(self.n_clusters), random_state=rs)
        return np.asarray(centers, dtype=np.float64)

    @staticmethod
    def _step(blocks: list, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Summed per-cluster sums, counts and inertia of all blocks (one compute)."""
        dask = _dask()
        c = dask.delayed(centers, pure=True)  # one copy in the graph, not one per block
        parts = dask.compute(*[dask.delayed(_block_step)(b, c) for b in blocks])
        sums = np.sum([p[0] for p in parts], axis=0)
        counts = np.sum([p[1] for p in parts], axis=0)
        return sums, counts, float(sum(p[2] for p in parts))

    @staticmethod
    def _inertia(blocks: list, centers: np.ndarray) -> float:
        dask = _dask()
        c = dask.delayed(centers, pure=True)
        return float(sum(dask.compute(*[dask.delayed(_block_inertia)(b, c) for b in blocks])))

    @staticmethod
    def _labels(X: Any, centers: np.ndarray) -> Any:
        dask = _dask()
        xp = _backend.array_namespace(getattr(X, "_meta", None))
        return X.map_blocks(_block_labels, dask.delayed(centers, pure=True), drop_axis=1, dtype=np.int32,
                            meta=xp.empty((0,), dtype=xp.int32))

    # -- the API ----------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> "DaskKMeans":
        """Compute the clustering.

        Parameters
        ----------
        X : dask array of shape (n_samples, n_features)
            NumPy or CuPy blocks; a NumPy or CuPy array is wrapped with
            ``dask.array.from_array``.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters, X not 2-D or non-numeric, NaN or infinity in X, fewer rows than
            clusters, ``init`` centres of the wrong shape or not finite.
        """
        self._check_params()
        X = self._as_dask(X)
        n_features = int(X.shape[1])
        k = int(self.n_clusters)
        init = None if isinstance(self.init, str) else self._init_centers(n_features)
        blocks = list(X.to_delayed().ravel())
        counts, mean_var = self._moments(blocks)
        if counts.sum() < k:
            raise ValueError(f"n_samples={int(counts.sum())} should be >= n_clusters={k}")
        # zero-row blocks contribute nothing; leaving them out saves tasks
        blocks = [b for b, c in zip(blocks, counts) if c]
        counts = counts[counts > 0]
        if init is None:
            centers = self._kmeans_plusplus(blocks, counts, check_random_state(self.random_state))
        else:
            centers = init
        threshold = float(self.tol) * mean_var
        history: list[float] = []
        shift = np.inf
        n_iter = 0
        for n_iter in range(1, int(self.max_iter) + 1):
            sums, weight, inertia = self._step(blocks, centers)
            history.append(inertia)
            new = centers.copy()
            filled = weight > 0  # an empty cluster keeps its centre
            new[filled] = sums[filled] / weight[filled, None]
            shift = float(((new - centers) ** 2).sum())
            centers = new
            if shift <= threshold:
                break
        # labels_ and inertia_ describe the final centres (as scikit-learn's last E-step);
        # centres that did not move assign as in the last pass, whose inertia then holds
        inertia = history[-1] if shift == 0.0 else self._inertia(blocks, centers)
        xp = _backend.array_namespace(getattr(X, "_meta", None))
        self._centers_host = centers
        self.cluster_centers_ = xp.asarray(centers)
        self.labels_ = self._labels(X, centers)
        self.inertia_ = float(inertia)
        self.n_iter_ = int(n_iter)
        self.inertia_history_ = history
        self.n_features_in_ = n_features
        return self

    def predict(self, X: Any) -> Any:
        """Index (int32) of the closest centre for each row, as a lazy Dask array.

        Parameters
        ----------
        X : dask, NumPy or CuPy array of shape (n_samples, n_features)

        Returns
        -------
        dask array of shape (n_samples,), int32, with X's row chunks
        """
        if not hasattr(self, "cluster_centers_"):
            raise AttributeError(f"this {type(self).__name__} instance is not fitted yet; call fit first")
        X = self._as_dask(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features; this model was fitted on {self.n_features_in_}")
        return self._labels(X, self._centers_host)


# -- K-means of the pipeline on the workers ------------------------------------------------------


def _identity(obj: Any) -> Any:
    return obj


def scatter_rows(client: Any, X: Any, blocks: int) -> Any:
    """``X`` (NumPy or CuPy, on the client) cut into ``blocks`` row blocks held by the
    workers, as a Dask array (the rows travel once; every pass after that reads them on the
    workers)."""
    da = _dask_array()
    dask = _dask()
    n = X.shape[0]
    step = max(1, -(-n // max(1, blocks)))
    parts = [X[i:i + step] for i in range(0, n, step)]
    # task results, not scattered data: Dask computes a task's result again when its worker
    # dies, while scattered data are lost with it
    futures = [client.submit(_identity, part, pure=False) for part in parts]
    meta = X[:0]
    arrays = [da.from_delayed(dask.delayed(f), shape=p.shape, dtype=p.dtype, meta=meta) for f, p in zip(futures, parts)]
    return da.concatenate(arrays, axis=0)


def kmeans_on_workers(client: Any, X: Any, n_clusters: int, random_state: int, rows: Any, *,
                      gpu: bool = False, n_init: int | str = "auto", max_iter: int = 300, tol: float = 1e-4,
                      init: str = "k-means++") -> Any:
    """gpuseg's :class:`~gpuseg.cluster.KMeans`, fitted on the Dask workers.

    ``rows`` is ``X`` on the workers (:func:`scatter_rows`). On CPU workers the fit is
    :class:`DaskKMeans` (map-reduce Lloyd); on dask-cuda workers it is cuML's multi-GPU
    ``cuml.dask.cluster.KMeans`` (k-means||). ``n_init`` fits from seeds drawn from
    ``random_state``; the lowest inertia is kept. The
    returned estimator holds the centres, labels (on the client, the type of ``X``),
    inertia and iterations, so it predicts, scores and saves like one fitted in-process.
    """
    from ..cluster import KMeans

    if init != "k-means++":
        raise ValueError(f"K-means on the workers seeds with k-means++ only, not init={init!r}")
    from ..errors import DeviceError

    distributed = _backend.import_optional("distributed", hint=_backend.DASK_HINT)
    xp = _backend.array_namespace(X)
    runs = 1 if n_init == "auto" else int(n_init)
    seeds = np.random.RandomState(random_state).randint(0, 2**31 - 1, size=runs) if runs > 1 else [random_state]
    best = None
    try:
        for seed in seeds:
            if gpu:
                c, lab, inertia, n_iter = _backend.dask_gpu_kmeans(client, rows, n_clusters, int(seed),
                                                                   max_iter=max_iter, tol=tol)
            else:
                km = DaskKMeans(n_clusters, max_iter=max_iter, tol=tol, random_state=int(seed)).fit(rows)
                c, lab, inertia, n_iter = km.cluster_centers_, km.labels_, km.inertia_, km.n_iter_
            if best is None or inertia < best[2]:
                best = (c, lab, inertia, n_iter)
        centers, labels, inertia, n_iter = best
        if not gpu:
            labels = labels.compute()
    except (distributed.KilledWorker, distributed.client.FutureCancelledError) as exc:
        raise DeviceError(f"a Dask worker died repeatedly while fitting K-means on the workers "
                          f"({str(exc).splitlines()[0][:300]})") from None
    labels = xp.asarray(labels).astype(xp.int32)
    est = KMeans(n_clusters, init=init, n_init=n_init, max_iter=max_iter, tol=tol, random_state=random_state)
    est.cluster_centers_ = xp.asarray(centers).astype(X.dtype, copy=False)
    est.labels_ = labels
    est.inertia_ = float(inertia)
    est.n_iter_ = int(n_iter)
    est.n_features_in_ = X.shape[1]
    return est
