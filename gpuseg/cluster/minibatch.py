"""Mini-batch k-means (Sculley 2010), written once for NumPy and CuPy.

cuML has no mini-batch k-means (rapidsai/cuml#5079), so this one runs the same array code
on either namespace: batches are gathered on X's device, assigned with the shared
:func:`~gpuseg._xp.nearest_center`, and folded into the centres with per-centre counts
(learning rate ``1 / count``), as scikit-learn's ``MiniBatchKMeans`` does. The random draws
(batch indices, initial subsample, reassigned centres) come from a host ``RandomState``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._xp import cluster_sums, nearest_center
from ..backend import array_namespace, to_host, to_namespace
from ._base import CentroidMixin, EstimatorMixin, as_float_array, check_random_state
from .kmeans import kmeans_plusplus

__all__ = ["MiniBatchKMeans"]


def _minibatch_step(
    X: Any, centers: Any, counts: Any, *, reassign: bool, reassignment_ratio: float, random_state: Any
) -> tuple[Any, Any, float]:
    """One mini-batch update: assign, move the centres, reassign starved centres.

    ``centers`` (k, d) and ``counts`` (k,) are float64 arrays on X's device; new arrays are
    returned together with the batch inertia (computed before the update). A centre that
    receives ``m`` new points with sum ``s`` moves to ``(c * count + s) / (count + m)``:
    the running mean of every point it has been given, i.e. ``c + (mean - c) * m / total``.
    """
    xp = array_namespace(X)
    k = centers.shape[0]
    labels, dist = nearest_center(X, centers.astype(X.dtype))
    inertia = float(dist.astype(xp.float64).sum())
    sums, batch_counts = cluster_sums(X, labels, k)
    total = counts + batch_counts
    moved = (centers * counts[:, None] + sums) / xp.maximum(total, 1e-300)[:, None]
    centers = xp.where((batch_counts > 0)[:, None], moved, centers)
    counts = total
    if reassign and reassignment_ratio > 0:
        centers, counts = _reassign_starved(X, centers, counts, reassignment_ratio, random_state)
    return centers, counts, inertia


def _reassign_starved(X: Any, centers: Any, counts: Any, ratio: float, random_state: Any) -> tuple[Any, Any]:
    """Move centres whose count is below ``ratio * max(count)`` onto random batch points.

    scikit-learn's rule: at most half a batch of centres move, and the moved centres get the
    smallest remaining count so that they are not reassigned again at once.
    """
    xp = array_namespace(X)
    host_counts = np.array(to_host(counts), dtype=np.float64)
    starved = host_counts < ratio * host_counts.max()
    n_batch = X.shape[0]
    if starved.sum() > 0.5 * n_batch:
        starved[np.argsort(host_counts)[int(0.5 * n_batch) :]] = False
    n_moved = int(starved.sum())
    if n_moved == 0 or starved.all():
        return centers, counts
    rows = random_state.choice(n_batch, replace=False, size=n_moved)
    centers = centers.copy()
    centers[xp.asarray(np.flatnonzero(starved))] = X[xp.asarray(rows)].astype(xp.float64)
    host_counts[starved] = host_counts[~starved].min()
    return centers, xp.asarray(host_counts)


class MiniBatchKMeans(CentroidMixin, EstimatorMixin):
    """Mini-batch k-means clustering on NumPy or CuPy arrays.

    Each step draws ``batch_size`` rows with replacement, assigns them to the nearest
    centre and moves every centre towards the mean of its new points with learning rate
    ``batch_count / total_count`` (Sculley 2010, scikit-learn's variant). Centres whose
    count stays below ``reassignment_ratio`` times the largest count are moved to random
    batch points. Fitting stops after ``max_iter`` epochs, when the exponentially weighted
    average of the batch inertia has not improved for ``max_no_improvement`` steps, or
    when the squared centre shift falls below ``tol`` (relative to the data's variance).

    The centres are initialised on a random subsample of ``max(3 * batch_size,
    3 * n_clusters)`` rows (scikit-learn's ``init_size``); with several initialisations,
    the one with the lowest inertia on a common validation subsample wins.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features), default="k-means++"
    batch_size : int, default=1024
        Rows per mini-batch (at most n_samples).
    max_iter : int, default=100
        Maximum number of passes over the data (epochs); the number of steps is
        ``max_iter * n_samples // batch_size``.
    tol : float, default=0.0
        Stop when the squared centre shift of a step is at most ``tol`` times the mean
        feature variance; 0 disables this test.
    max_no_improvement : int or None, default=10
        Stop after this many steps without improvement of the smoothed batch inertia;
        ``None`` disables this test.
    n_init : int or "auto", default="auto"
        Initialisations tried; ``auto``: 1 for k-means++ or an array, 3 for random.
        An array ``init`` is always used once.
    reassignment_ratio : float, default=0.01
        Counts below this fraction of the largest count mark a centre for reassignment;
        0 disables reassignment.
    random_state : int, RandomState or None, default=None
        Seeds initialisation, batch sampling and reassignment (host RNG; the same seed on
        the same backend gives the same result).

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        In X's array type and dtype.
    labels_ : array of shape (n_samples,), int32
        Nearest centre of every training row after fitting (after :meth:`partial_fit`:
        of the rows of the last batch).
    inertia_ : float
        Sum of squared distances of the training rows (or of the last batch) to their
        nearest centre.
    n_iter_ : int
        Epochs started: ``ceil(n_steps_ * batch_size / n_samples)``.
    n_steps_ : int
        Mini-batch steps taken.
    n_features_in_ : int

    Notes
    -----
    Centres and counts are updated in float64 (k x d values), so float32 input with many
    steps does not drift; distances are computed in X's dtype. Batch indices are drawn
    with ``randint`` (uniform, with replacement) rather than scikit-learn's weighted
    ``choice``, so the two give statistically equivalent but not identical batches.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(0, 1, (200, 2)), rng.normal(10, 1, (200, 2))]).astype(np.float32)
    >>> mbk = MiniBatchKMeans(n_clusters=2, batch_size=64, random_state=0).fit(X)
    >>> sorted(np.bincount(mbk.labels_).tolist())
    [200, 200]
    >>> stream = MiniBatchKMeans(n_clusters=2, random_state=0)
    >>> for batch in np.array_split(X[rng.permutation(400)], 4):
    ...     stream = stream.partial_fit(batch)
    >>> stream.n_steps_, stream.cluster_centers_.shape
    (4, (2, 2))
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Any = "k-means++",
        batch_size: int = 1024,
        max_iter: int = 100,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        def positive_int(value: Any) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1

        if not positive_int(self.n_clusters):
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if isinstance(self.init, str) and self.init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++', 'random' or an array, got {self.init!r}")
        if not positive_int(self.batch_size):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not positive_int(self.max_iter):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not (isinstance(self.tol, (int, float, np.floating)) and self.tol >= 0):
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}")
        if self.max_no_improvement is not None and not (
            isinstance(self.max_no_improvement, (int, np.integer)) and self.max_no_improvement >= 0
        ):
            raise ValueError(f"max_no_improvement must be None or a non-negative integer, got {self.max_no_improvement!r}")
        if not (self.n_init == "auto" or positive_int(self.n_init)):
            raise ValueError(f"n_init must be 'auto' or a positive integer, got {self.n_init!r}")
        if not (isinstance(self.reassignment_ratio, (int, float, np.floating)) and self.reassignment_ratio >= 0):
            raise ValueError(f"reassignment_ratio must be a non-negative number, got {self.reassignment_ratio!r}")

    def _check_X(self, X: Any) -> Any:
        """2-D float32/float64 array with at least n_clusters rows (other dtypes -> float64)."""
        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"expected a 2-D array, got shape {getattr(X, 'shape', None)}")
        xp = array_namespace(X)
        if X.dtype not in (xp.float32, xp.float64):
            X = xp.asarray(X, dtype=xp.float64)
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}")
        if X.shape[1] < 1:
            raise ValueError("X has no features")
        if not isinstance(self.init, str):
            shape = tuple(getattr(self.init, "shape", np.shape(self.init)))
            if shape != (self.n_clusters, X.shape[1]):
                raise ValueError(f"init array has shape {shape}, expected {(self.n_clusters, X.shape[1])}")
        return X

    def _resolved_n_init(self) -> int:
        if not isinstance(self.init, str):
            return 1
        if self.n_init == "auto":
            return 1 if self.init == "k-means++" else 3
        return int(self.n_init)

    def _init_size(self, n_samples: int) -> int:
        size = 3 * self._batch_size
        if size < self.n_clusters:
            size = 3 * self.n_clusters
        return min(size, n_samples)

    # ------------------------------------------------------------------ fitting
    def _initial_centers(self, X: Any, random_state: np.random.RandomState, init_size: int) -> Any:
        """Centres (float64, on X's device) from a random subsample of ``init_size`` rows."""
        xp = array_namespace(X)
        n = X.shape[0]
        if init_size < n:
            X = X[xp.asarray(random_state.randint(0, n, init_size))]
        if not isinstance(self.init, str):
            return xp.asarray(to_namespace(self.init, xp), dtype=xp.float64)
        if self.init == "k-means++":
            centers, _ = kmeans_plusplus(X, self.n_clusters, random_state=random_state)
        else:
            m = X.shape[0]
            rows = random_state.choice(m, size=self.n_clusters, replace=False, p=np.full(m, 1.0 / m))
            centers = X[xp.asarray(rows)]
        return centers.astype(xp.float64)

    def _start(self) -> None:
        """Reset the step state (reassignment clock, early-stopping monitor)."""
        self._n_since_last_reassign = 0
        self._ewa_inertia: float | None = None
        self._ewa_inertia_min: float | None = None
        self._no_improvement = 0

    def _random_reassign(self) -> bool:
        """Reassign every ``10 * n_clusters`` samples seen, or at once while a count is 0."""
        self._n_since_last_reassign += self._batch_size
        if bool(to_host((self._counts == 0).any())) or self._n_since_last_reassign >= 10 * self.n_clusters:
            self._n_since_last_reassign = 0
            return True
        return False

    def _converged(self, step: int, n_samples: int, centers_shift: float, batch_inertia: float) -> bool:
        """scikit-learn's early stopping on the smoothed batch inertia and the centre shift."""
        batch_inertia /= self._batch_size
        if step == 0:  # the first batch's inertia reflects the initialisation only
            return False
        if self._ewa_inertia is None:
            self._ewa_inertia = batch_inertia
        else:
            alpha = min(self._batch_size * 2.0 / (n_samples + 1), 1.0)
            self._ewa_inertia = self._ewa_inertia * (1 - alpha) + batch_inertia * alpha
        if self._tol > 0.0 and centers_shift <= self._tol:
            return True
        if self._ewa_inertia_min is None or self._ewa_inertia < self._ewa_inertia_min:
            self._no_improvement = 0
            self._ewa_inertia_min = self._ewa_inertia
        else:
            self._no_improvement += 1
        return self.max_no_improvement is not None and self._no_improvement >= self.max_no_improvement

    def fit(self, X: Any, y: Any = None) -> "MiniBatchKMeans":
        """Compute the centres from mini-batches of X.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy or CuPy; float32 and float64 are kept, other dtypes become float64.
        y : ignored

        Returns
        -------
        self
        """
        X = as_float_array(X)
        self._validate_params()
        X = self._check_X(X)
        xp = array_namespace(X)
        rs = check_random_state(self.random_state)
        n, _ = X.shape
        self._batch_size = min(int(self.batch_size), n)
        init_size = self._init_size(n)
        self._tol = float(self.tol) * float(X.var(axis=0, dtype=xp.float64).mean()) if self.tol > 0 else 0.0

        valid = X[xp.asarray(rs.randint(0, n, init_size))]
        best_inertia = None
        for _ in range(self._resolved_n_init()):
            centers = self._initial_centers(X, rs, init_size)
            _, dist = nearest_center(valid, centers.astype(X.dtype))
            inertia = float(dist.astype(xp.float64).sum())
            if best_inertia is None or inertia < best_inertia:
                best, best_inertia = centers, inertia
        centers = best

        self._counts = xp.zeros(self.n_clusters, dtype=xp.float64)
        self._start()
        n_steps = max(1, (int(self.max_iter) * n) // self._batch_size)
        step = 0
        for step in range(n_steps):
            batch = X[xp.asarray(rs.randint(0, n, self._batch_size))]
            new, self._counts, batch_inertia = _minibatch_step(
                batch,
                centers,
                self._counts,
                reassign=self._random_reassign(),
                reassignment_ratio=float(self.reassignment_ratio),
                random_state=rs,
            )
            shift = float(((new - centers) ** 2).sum()) if self._tol > 0 else 0.0
            centers = new
            if self._converged(step, n, shift, batch_inertia):
                break

        self._random_state = rs
        self._centers64 = centers
        self.cluster_centers_ = centers.astype(X.dtype)
        self.n_steps_ = step + 1
        self.n_iter_ = int(np.ceil(self.n_steps_ * self._batch_size / n))
        self.labels_, dist = nearest_center(X, self.cluster_centers_)
        self.inertia_ = float(dist.astype(xp.float64).sum())
        self.n_features_in_ = X.shape[1]
        return self

    def partial_fit(self, X: Any, y: Any = None) -> "MiniBatchKMeans":
        """Update the centres with one mini-batch.

        The first call (on an unfitted estimator) initialises the centres from this batch;
        later calls continue the running means (kept in float64) from the per-centre
        counts ``counts_``, so a stream of batches converges like :meth:`fit` on their union.
        ``labels_`` and ``inertia_`` describe this batch.

        Parameters
        ----------
        X : array of shape (n_batch, n_features)
        y : ignored

        Returns
        -------
        self
        """
        X = as_float_array(X)
        first = not hasattr(self, "cluster_centers_")
        self._validate_params()
        if first:
            X = self._check_X(X)
        else:
            if getattr(X, "ndim", None) != 2:
                raise ValueError(f"expected a 2-D array, got shape {getattr(X, 'shape', None)}")
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        xp = array_namespace(X)
        if X.dtype not in (xp.float32, xp.float64):
            X = xp.asarray(X, dtype=xp.float64)
        if not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        if first:
            self._batch_size = min(int(self.batch_size), X.shape[0])
            centers = self._initial_centers(X, self._random_state, self._init_size(X.shape[0]))
            self._counts = xp.zeros(self.n_clusters, dtype=xp.float64)
            self._n_since_last_reassign = 0
            self.n_steps_ = 0
            self.n_features_in_ = X.shape[1]
        else:  # the float64 running means when this estimator kept them (fit, from_arrays)
            centers = getattr(self, "_centers64", None)
            if centers is None or centers.shape != self.cluster_centers_.shape:
                centers = self.cluster_centers_
            centers = xp.asarray(to_namespace(centers, xp), dtype=xp.float64)
            self._counts = xp.asarray(to_namespace(self._counts, xp), dtype=xp.float64)
        centers, self._counts, _ = _minibatch_step(
            X,
            centers,
            self._counts,
            reassign=self._random_reassign(),
            reassignment_ratio=float(self.reassignment_ratio),
            random_state=self._random_state,
        )
        self._centers64 = centers
        self.cluster_centers_ = centers.astype(X.dtype)
        self.labels_, dist = nearest_center(X, self.cluster_centers_)
        self.inertia_ = float(dist.astype(xp.float64).sum())
        self.n_steps_ += 1
        return self

    # ------------------------------------------------------------------ state
    @property
    def counts_(self) -> Any:
        """Samples each centre has been given (float64, the centres' device): the weight of
        the running means that :meth:`partial_fit` continues."""
        if not hasattr(self, "_counts"):
            raise AttributeError("this MiniBatchKMeans instance is not fitted yet; call fit first")
        return self._counts

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Host float64 ``cluster_centers`` (the running means) and ``counts``: what
        :meth:`from_arrays` takes."""
        centers = getattr(self, "_centers64", None)
        centers = self.cluster_centers_ if centers is None else centers
        return {"cluster_centers": np.asarray(to_host(centers), dtype=np.float64),
                "counts": np.asarray(to_host(self.counts_), dtype=np.float64)}

    @classmethod
    def from_arrays(cls, cluster_centers: Any, counts: Any, **params: Any) -> "MiniBatchKMeans":
        """A fitted estimator from saved state, ready for :meth:`predict` and
        :meth:`partial_fit` (the ``update`` of a saved model).

        Parameters
        ----------
        cluster_centers : array of shape (n_clusters, n_features)
            Kept in float64 for the running means (``cluster_centers_`` in its own dtype).
        counts : array of shape (n_clusters,)
            Samples each centre has been given.
        **params
            Constructor parameters (``batch_size``, ``reassignment_ratio``, ``random_state``,
            ...); ``n_clusters`` comes from ``cluster_centers``.
        """
        est = cls(n_clusters=int(cluster_centers.shape[0]), **params)
        est._validate_params()
        xp = array_namespace(cluster_centers)
        est._centers64 = xp.asarray(cluster_centers, dtype=xp.float64)
        est.cluster_centers_ = cluster_centers
        est._counts = xp.asarray(to_namespace(counts, xp), dtype=xp.float64)
        est._batch_size = int(est.batch_size)
        est._random_state = check_random_state(est.random_state)
        est._start()
        est.n_steps_ = 0
        est.n_features_in_ = int(cluster_centers.shape[1])
        return est

    # ------------------------------------------------------------------ inference