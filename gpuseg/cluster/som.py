"""Self-organising map (Kohonen's batch algorithm) over NumPy or CuPy, segmented by Ward.

Each epoch finds the best-matching unit (BMU) of every row and replaces every unit by the
neighbourhood-weighted mean of the rows, ``codebook = (H @ sums) / (H @ counts)``, where
``sums``/``counts`` are the per-unit feature sums and hit counts and ``H`` the Gaussian
unit-to-unit neighbourhood on the grid. Both passes go through the shared blocked
primitives (:func:`gpuseg._xp.nearest_center`, :func:`gpuseg._xp.cluster_sums`), so memory
stays bounded and the same code runs on the CPU and the GPU. The trained codebook is then
cut into segments by weighted Ward (:func:`gpuseg.cluster.ward.ward_linkage`, weights =
hit counts) and each row takes the segment of its BMU.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .._xp import cluster_sums, nearest_center, squared_distances
from ..backend import array_namespace, to_host, to_namespace
from ._base import EstimatorMixin, as_float_array, check_random_state
from .ward import _cut_linkage, _ward_linkage

__all__ = ["SelfOrganizingMap"]

#: Rows sampled for the principal components of the initialisation and grid shape.
PCA_SAMPLE_ROWS = 10_000
#: Rows per distance block (that of :func:`gpuseg._xp.nearest_center`, so both pick the
#: same BMU for a row).
_CHUNK_ROWS = 65536


def _principal_axes(X: Any, rs: np.random.RandomState) -> tuple[Any, Any, Any]:
    """Mean (d,), first two principal directions (2, d) and their standard deviations (2,),
    from the SVD of the centred data (or of a row sample), on X's device, float64."""
    xp = array_namespace(X)
    n, d = X.shape
    mean = X.sum(axis=0, dtype=xp.float64) / n
    if n > PCA_SAMPLE_ROWS:
        rows = xp.asarray(np.sort(rs.choice(n, PCA_SAMPLE_ROWS, replace=False)))
        S = X[rows].astype(xp.float64) - mean
    else:
        S = X.astype(xp.float64) - mean
    _, s, vt = xp.linalg.svd(S, full_matrices=False)
    axes = xp.zeros((2, d), dtype=xp.float64)
    std = xp.zeros(2, dtype=xp.float64)
    m = min(2, vt.shape[0])
    axes[:m] = vt[:m]
    std[:m] = s[:m] / np.sqrt(max(S.shape[0] - 1, 1))
    return mean, axes, std


def _grid_shape(n_units: int, ratio: float, min_units: int, max_units: int) -> tuple[int, int]:
    """(rows, cols) with about ``n_units`` units and side ratio ``ratio`` (SOM Toolbox rule)."""
    if not np.isfinite(ratio) or ratio < 1.0:
        ratio = 1.0
    cols = max(1, int(round(np.sqrt(n_units / ratio))))
    rows = max(1, int(round(n_units / cols)))
    if min(rows, cols) == 1:  # a chain folds badly: fall back to a square, as the Toolbox does
        rows = cols = max(2, int(round(np.sqrt(n_units))))
    while rows * cols < min_units:
        rows += 1
    while rows * cols > max_units and (rows - 1) * cols >= min_units and rows > 1:
        rows -= 1
    while rows * cols > max_units and rows * (cols - 1) >= min_units and cols > 1:
        cols -= 1
    return rows, cols


def _unit_coordinates(grid_shape: tuple[int, int]) -> np.ndarray:
    """(rows * cols, 2) grid coordinates (row, col) of the units, unit ``r * cols + c``."""
    rows, cols = grid_shape
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([r, c], axis=1).astype(np.float64)


def _pca_codebook(mean: Any, axes: Any, std: Any, grid_shape: tuple[int, int]) -> Any:
    """Units spread linearly over +-1 standard deviation along the two principal axes
    (rows along the first), SOM Toolbox's ``som_lininit``."""
    xp = array_namespace(mean)
    rows, cols = grid_shape
    a = np.linspace(-1.0, 1.0, rows) if rows > 1 else np.zeros(1)
    b = np.linspace(-1.0, 1.0, cols) if cols > 1 else np.zeros(1)
    coef = xp.asarray(np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2))
    return mean[None, :] + coef @ (std[:, None] * axes)


def _grid_sq_distances(grid_shape: tuple[int, int]) -> np.ndarray:
    """(units, units) squared distances between the units' grid cells, host."""
    coords = _unit_coordinates(grid_shape)
    return ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(axis=-1)


def _neighbourhood(xp: Any, grid_sq: np.ndarray, sigma: float) -> Any:
    """Gaussian unit-to-unit neighbourhood ``exp(-|g_i - g_j|^2 / (2 sigma^2))`` on X's device."""
    return xp.asarray(np.exp(grid_sq * (-0.5 / (sigma * sigma))))


def _batch_epoch(X: Any, codebook: Any, neighbourhood: Any) -> tuple[Any, Any]:
    """One batch-SOM epoch; returns the new codebook (X's dtype) and the squared distance of
    each row to its BMU under the old codebook."""
    xp = array_namespace(X, codebook)
    bmu, dist = nearest_center(X, codebook)
    sums, counts = cluster_sums(X, bmu, codebook.shape[0])
    num = neighbourhood @ sums
    den = neighbourhood @ counts
    # a unit with no rows anywhere near it (the Gaussian underflows) keeps its place
    new = xp.where(den[:, None] > 1e-300, num / xp.maximum(den, 1e-300)[:, None], codebook)
    return new.astype(X.dtype), dist


def _two_best_units(X: Any, codebook: Any) -> tuple[Any, Any, Any]:
    """BMU (int32), squared distance to it and second-best unit (int32) of each row (blocked)."""
    xp = array_namespace(X, codebook)
    n = X.shape[0]
    first = xp.empty(n, dtype=xp.int32)
    second = xp.empty(n, dtype=xp.int32)
    dist = xp.empty(n, dtype=X.dtype)
    for start in range(0, n, _CHUNK_ROWS):
        d = squared_distances(X[start : start + _CHUNK_ROWS], codebook)
        i = d.argmin(axis=1)
        first[start : start + _CHUNK_ROWS] = i
        dist[start : start + _CHUNK_ROWS] = xp.take_along_axis(d, i[:, None], axis=1)[:, 0]
        d[xp.arange(d.shape[0]), i] = xp.inf
        second[start : start + _CHUNK_ROWS] = d.argmin(axis=1)
    return first, dist, second


def _umatrix(codebook: Any, grid_shape: tuple[int, int]) -> np.ndarray:
    """Mean distance of each unit to its 4 grid neighbours (fewer on the border), host."""
    xp = array_namespace(codebook)
    rows, cols = grid_shape
    W = codebook.astype(xp.float64).reshape(rows, cols, -1)
    total = xp.zeros((rows, cols))
    count = xp.zeros((rows, cols))
    if rows > 1:
        v = xp.sqrt(((W[1:] - W[:-1]) ** 2).sum(axis=-1))
        total[1:] += v
        total[:-1] += v
        count[1:] += 1
        count[:-1] += 1
    if cols > 1:
        h = xp.sqrt(((W[:, 1:] - W[:, :-1]) ** 2).sum(axis=-1))
        total[:, 1:] += h
        total[:, :-1] += h
        count[:, 1:] += 1
        count[:, :-1] += 1
    return to_host(total / xp.maximum(count, 1))


def _segment_units(codebook: Any, hits: np.ndarray, n_clusters: int) -> np.ndarray:
    """Segment of every unit (host int32): weighted Ward on the units with hits, cut into at
    most ``n_clusters``; a unit without hits joins the segment of its nearest hit unit."""
    book = np.asarray(to_host(codebook), dtype=np.float64)
    hit = np.flatnonzero(hits > 0)
    labels = np.zeros(len(hits), dtype=np.int32)
    if len(hit) >= 2:
        Z = _ward_linkage(book[hit], hits[hit].astype(np.float64))
        labels[hit] = _cut_linkage(Z, min(n_clusters, len(hit)))
    empty = np.flatnonzero(hits == 0)
    if len(empty):
        nearest, _ = nearest_center(book[empty], book[hit])
        labels[empty] = labels[hit][nearest]
    return labels


class SelfOrganizingMap(EstimatorMixin):
    """Batch self-organising map on a rectangular grid, its units segmented by Ward.

    Training is Kohonen's batch algorithm: per epoch every row's best-matching unit
    (BMU), then every unit becomes the mean of the rows weighted by the Gaussian grid
    neighbourhood of their BMUs. The batch form has no learning rate (each epoch jumps to
    the fixed point for the current neighbourhood); online-style updates are not
    offered. The neighbourhood width ``sigma`` (in grid steps) decreases linearly from
    ``sigma_start`` to ``sigma_end`` over the epochs, as in the SOM Toolbox.

    The grid has about ``5 sqrt(n_samples)`` units (Vesanto's rule), at most
    ``max_units`` and at least ``max(n_clusters, 4)``; its side ratio is the ratio of the
    standard deviations along the first two principal components, ``sqrt(l1 / l2)`` (SOM
    Toolbox's ``som_topol_struct``), the longer side along the first component; when a
    side would be a single unit the grid is square. The codebook starts on the plane of
    the first two principal components (from the SVD of the centred data, or of a sample
    of :data:`PCA_SAMPLE_ROWS` rows, on X's device), spread over +-1 standard deviation.
    After training the units with hits are merged by weighted Ward (weights = hit counts)
    into ``n_clusters`` segments; units without hits take the segment of the nearest unit
    with hits.

    Parameters
    ----------
    n_clusters : int, default=8
        Segments cut from the codebook.
    grid : tuple of (int, int) or None, default=None
        ``(rows, cols)``; None chooses the shape as above.
    max_units : int, default=400
        Cap on the number of units of the automatic grid.
    n_epochs : int, default=30
    sigma_start : float or None, default=None
        Starting neighbourhood width in grid steps; None means ``max(rows, cols) / 2``.
    sigma_end : float, default=0.5
        Final neighbourhood width.
    random_state : int, RandomState or None, default=None
        Draws the row sample for the principal components (data above
        :data:`PCA_SAMPLE_ROWS` rows); training itself is deterministic.

    Attributes
    ----------
    codebook_ : array of shape (rows * cols, n_features)
        Unit prototypes on X's device; unit ``r * cols + c`` sits at grid cell (r, c).
    grid_shape_ : tuple of (int, int)
    bmu_ : array of shape (n_samples,), int32
        Best-matching unit of each row.
    unit_labels_ : array of shape (rows * cols,), int32
        Segment of each unit.
    labels_ : array of shape (n_samples,), int32
        Segment of each row (that of its BMU).
    cluster_centers_ : array of shape (n_segments, n_features)
        Mean of each segment's rows (``n_segments <= n_clusters``: fewer only when
        fewer units have hits).
    quantization_error_ : float
        Mean Euclidean distance of a row to its BMU.
    quantization_errors_ : list of float
        The same before training (the PCA-initialised codebook) and after each epoch.
    topographic_error_ : float
        Share of rows whose best and second-best units are not grid neighbours (4-
        neighbourhood: the cells above, below, left and right, the SOM Toolbox's
        convention for rectangular grids).
    umatrix_ : ndarray of shape (rows, cols)
        Host U-matrix: mean distance of each unit's prototype to those of its 4 grid
        neighbours; high values mark borders between clusters.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))])
    >>> som = SelfOrganizingMap(n_clusters=2, grid=(4, 4), random_state=0).fit(X)
    >>> som.codebook_.shape, som.umatrix_.shape
    ((16, 2), (4, 4))
    >>> sorted(np.bincount(som.labels_).tolist())
    [50, 50]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        grid: tuple[int, int] | None = None,
        max_units: int = 400,
        n_epochs: int = 30,
        sigma_start: float | None = None,
        sigma_end: float = 0.5,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.grid = grid
        self.max_units = max_units
        self.n_epochs = n_epochs
        self.sigma_start = sigma_start
        self.sigma_end = sigma_end
        self.random_state = random_state

    def _validate(self, X: Any) -> None:
        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"expected a 2-D array, got shape {getattr(X, 'shape', None)}")
        if isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, (int, np.integer)) or (
                self.n_clusters < 1):
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}")
        if X.shape[1] < 1:
            raise ValueError("X has no features")
        if self.grid is not None:
            ok = (
                isinstance(self.grid, (tuple, list))
                and len(self.grid) == 2
                and all(isinstance(g, (int, np.integer)) and g >= 1 for g in self.grid)
            )
            if not ok or self.grid[0] * self.grid[1] < 2:
                raise ValueError(f"grid must be (rows, cols) with at least 2 units, got {self.grid!r}")
            if self.grid[0] * self.grid[1] < self.n_clusters:
                raise ValueError(f"grid {tuple(self.grid)} has fewer units than n_clusters={self.n_clusters}")
        elif not isinstance(self.max_units, (int, np.integer)) or self.max_units < max(self.n_clusters, 4):
            raise ValueError(f"max_units must be an integer >= max(n_clusters, 4), got {self.max_units!r}")
        if not isinstance(self.n_epochs, (int, np.integer)) or self.n_epochs < 1:
            raise ValueError(f"n_epochs must be a positive integer, got {self.n_epochs!r}")
        for name in ("sigma_start", "sigma_end"):
            value = getattr(self, name)
            if value is None and name == "sigma_start":
                continue
            if not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not bool(array_namespace(X).isfinite(X).all()):
            raise ValueError("X contains NaN or infinity")

    def fit(self, X: Any, y: Any = None) -> "SelfOrganizingMap":
        """Train the map and segment its units."""
        X = as_float_array(X)
        self._validate(X)
        rs = check_random_state(self.random_state)
        xp = array_namespace(X)
        mean, axes, std = _principal_axes(X, rs)
        if self.grid is None:
            s = to_host(std)
            ratio = s[0] / s[1] if s[1] > 0 else np.inf
            n_units = min(self.max_units, max(self.n_clusters, 4, int(round(5 * np.sqrt(X.shape[0])))))
            self.grid_shape_ = _grid_shape(n_units, ratio, max(self.n_clusters, 4), self.max_units)
        else:
            self.grid_shape_ = (int(self.grid[0]), int(self.grid[1]))
        codebook = _pca_codebook(mean, axes, std, self.grid_shape_).astype(X.dtype)
        grid_sq = _grid_sq_distances(self.grid_shape_)
        sigma0 = max(self.grid_shape_) / 2.0 if self.sigma_start is None else float(self.sigma_start)
        sigmas = np.linspace(sigma0, float(self.sigma_end), self.n_epochs) if self.n_epochs > 1 else [sigma0]
        errors = []
        for sigma in sigmas:
            codebook, dist = _batch_epoch(X, codebook, _neighbourhood(xp, grid_sq, float(sigma)))
            errors.append(float(xp.sqrt(dist.astype(xp.float64)).mean()))
        self.codebook_ = codebook
        bmu, dist, second = _two_best_units(X, codebook)
        self.quantization_error_ = float(xp.sqrt(dist.astype(xp.float64)).mean())
        self.quantization_errors_ = errors + [self.quantization_error_]
        cols = self.grid_shape_[1]
        steps = xp.abs(bmu // cols - second // cols) + xp.abs(bmu % cols - second % cols)
        self.topographic_error_ = float((steps != 1).mean())
        self.umatrix_ = _umatrix(codebook, self.grid_shape_)
        hits = to_host(xp.bincount(bmu, minlength=codebook.shape[0]))
        self.unit_labels_ = xp.asarray(_segment_units(codebook, hits, self.n_clusters))
        self.bmu_ = bmu
        self.labels_ = self.unit_labels_[bmu]
        sums, counts = cluster_sums(X, self.labels_, int(self.unit_labels_.max()) + 1)
        self.cluster_centers_ = (sums / counts[:, None]).astype(X.dtype)
        self.n_features_in_ = X.shape[1]
        return self

    def recut(self, X: Any, n_clusters: int) -> "SelfOrganizingMap":
        """A copy with the same trained map, its units segmented into ``n_clusters``.

        A k sweep trains the map once and only re-runs the Ward step on the units.
        ``X`` must be the training data.
        """
        X = as_float_array(X)
        self._check_fitted()
        xp = array_namespace(X)
        new = copy.copy(self)
        new.n_clusters = int(n_clusters)
        hits = to_host(xp.bincount(self.bmu_, minlength=self.codebook_.shape[0]))
        new.unit_labels_ = xp.asarray(_segment_units(self.codebook_, hits, new.n_clusters))
        new.labels_ = new.unit_labels_[self.bmu_]
        sums, counts = cluster_sums(X, new.labels_, int(new.unit_labels_.max()) + 1)
        new.cluster_centers_ = (sums / counts[:, None]).astype(X.dtype)
        return new

    def _check_fitted(self) -> None:
        if not hasattr(self, "codebook_"):
            raise AttributeError("this SelfOrganizingMap instance is not fitted yet; call fit first")

    def _codebook_for(self, X: Any) -> tuple[Any, Any]:
        xp = array_namespace(X)
        return X, to_namespace(self.codebook_, xp).astype(X.dtype)

    def predict(self, X: Any) -> Any:
        """Segment of each row: that of its best-matching unit."""
        X = as_float_array(X)
        self._check_fitted()
        X, codebook = self._codebook_for(X)
        bmu, _ = nearest_center(X, codebook, chunk_size=_CHUNK_ROWS)
        return to_namespace(self.unit_labels_, array_namespace(X))[bmu]

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit, then :meth:`transform` X."""
        return self.fit(X).transform(X)

    def transform(self, X: Any) -> Any:
        """Euclidean distances of each row to every unit, shape (n_samples, rows * cols).

        The BMU's grid cell of a row is ``divmod(distances.argmin(axis=1), grid_shape_[1])``.
        """
        X = as_float_array(X)
        self._check_fitted()
        X, codebook = self._codebook_for(X)
        return array_namespace(X).sqrt(squared_distances(X, codebook))
