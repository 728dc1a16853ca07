"""Cluster-quality metrics written once over the array namespace (NumPy on CPU, CuPy on GPU).

cuML has no Davies-Bouldin or Calinski-Harabasz score, and one silhouette for both devices
keeps CPU and GPU numbers comparable: these functions are the one implementation both
backends use, so a segmentation scored on the GPU gets the same numbers as on the CPU
(within floating-point tolerance). Every internal metric takes ``X`` (n_samples, n_features) and
``labels`` (n_samples,) on one device, computes there, and returns a Python ``float``.

Definitions follow scikit-learn (``sklearn.metrics``), including its conventions for
degenerate input (singleton clusters, zero dispersion, identical labelings). Labels may be
any integers (``-1`` for noise, ``7``, ``3``, ...): they are mapped to ``0..k-1`` in sorted
order internally.

The external metrics (:func:`contingency_matrix`, :func:`adjusted_rand_score`,
:func:`normalized_mutual_info_score`) work on the small contingency table, on the host.

Examples
--------
>>> import numpy as np
>>> from gpuseg.evaluate.metrics import silhouette_score, davies_bouldin_score
>>> X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
>>> labels = np.array([3, 3, -1, -1])
>>> round(silhouette_score(X, labels), 4)
0.9002
>>> round(davies_bouldin_score(X, labels), 4)
0.1
"""

from __future__ import annotations

import math
import numbers
from types import ModuleType
from typing import Any

import numpy as np

from .._xp import block_rows, cluster_sums, one_hot, row_blocks
from ..backend import array_namespace, to_host

__all__ = [
    "silhouette_score",
    "silhouette_samples",
    "davies_bouldin_score",
    "calinski_harabasz_score",
    "inertia",
    "cluster_centers",
    "contingency_matrix",
    "adjusted_rand_score",
    "normalized_mutual_info_score",
]

# Elements per block for the O(n * d) passes (centroids, distances to centroids): on the
# CPU the temporaries (block x d) stay in cache, which is 2x faster than whole-array
# passes; on the GPU blocks are large enough that kernel launches do not dominate.

# Default silhouette chunk (rows of the distance matrix at once): small on the CPU so a
# chunk's passes stay in cache (on an idle 2-core CPU, n=10,000: 0.19 s at 512 rows vs
# 0.31 s at 2048), larger on the GPU where bigger GEMMs fill the device.
_CPU_SILHOUETTE_CHUNK = 512
_GPU_SILHOUETTE_CHUNK = 2048

# Integer labels spanning at most this many values (and at most 4 * n_samples) are
# encoded in O(n) with bincount instead of sorting with unique().
_DENSE_LABEL_RANGE = 1 << 24

# Contingency tables with at most this many cells are counted densely with bincount;
# larger (many distinct labels) are counted sparsely through unique().
_DENSE_CONTINGENCY_CELLS = 1 << 22


# --------------------------------------------------------------------------- validation


def _check_X_labels(X: Any, labels: Any) -> tuple[ModuleType, Any, Any]:
    """Namespace, floating X (float32 kept, anything else float64) and 1-D labels.

    Raises ``ValueError`` for the wrong number of dimensions, mismatched lengths, no
    samples, or non-finite values in ``X``.
    """
    xp = array_namespace(X, labels)
    X = xp.asarray(X)
    labels = xp.asarray(labels)
    if X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D array of shape (n_samples, n_features); got shape {X.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array; got shape {labels.shape}")
    if X.shape[0] != labels.shape[0]:
        raise ValueError(
            "X and labels have inconsistent numbers of samples: "
            f"{X.shape[0]} and {labels.shape[0]}"
        )
    if X.shape[0] == 0:
        raise ValueError("X has 0 samples; at least 1 is required")
    if X.shape[1] == 0:
        raise ValueError("X has 0 features; at least 1 is required")
    if X.dtype not in (xp.float32, xp.float64):
        X = X.astype(xp.float64)
    if not bool(xp.isfinite(X).all()):
        raise ValueError("X contains NaN or infinity")
    return xp, X, labels


def _encode_labels(xp: ModuleType, labels: Any) -> tuple[Any, int]:
    """Codes ``0..k-1`` (sorted label order) and ``k``."""
    n = labels.shape[0]
    if labels.dtype.kind in "iu" and n > 0:
        low, high = int(labels.min()), int(labels.max())
        span = high - low + 1
        if span <= min(_DENSE_LABEL_RANGE, 4 * n) and -(2**62) < low and high < 2**62:
            # Widen before shifting: int8 labels -128..127 would wrap in their own dtype.
            shifted = labels.astype(xp.int64) - low
            present = xp.bincount(shifted, minlength=span) > 0
            code_of = xp.cumsum(present.astype(xp.int64)) - 1
            return code_of[shifted], int(present.sum())
    uniques, codes = xp.unique(labels, return_inverse=True)
    return codes.reshape(-1), int(uniques.shape[0])


def _check_number_of_labels(n_labels: int, n_samples: int) -> None:
    if not 1 < n_labels < n_samples:
        raise ValueError(
            f"Number of labels is {n_labels}. Valid values are 2 to n_samples - 1 "
            f"(inclusive), here 2 to {n_samples - 1}"
        )


def _prepare(X: Any, labels: Any, *, check_k: bool) -> tuple[ModuleType, Any, Any, int]:
    xp, X, labels = _check_X_labels(X, labels)
    codes, k = _encode_labels(xp, labels)
    if check_k:
        _check_number_of_labels(k, X.shape[0])
    return xp, X, codes, k


def _cluster_sums(xp: ModuleType, X: Any, codes: Any, k: int) -> tuple[Any, Any]:
    """Per-cluster feature sums (k, d) in float64 and sizes (k,) in int64."""
    sums, counts = cluster_sums(X, codes, k)
    return sums, counts.astype(xp.int64)


def _cluster_centers(xp: ModuleType, X: Any, codes: Any, k: int) -> tuple[Any, Any]:
    """Cluster means (k, d) in float64, and sizes. Every cluster is non-empty by construction."""
    sums, counts = _cluster_sums(xp, X, codes, k)
    return sums / counts[:, None].astype(xp.float64), counts


def _center_distance_sums(
    xp: ModuleType, X: Any, codes: Any, centers: Any, k: int, *, squared: bool
) -> Any:
    """Per-cluster sums (k,) float64 of each sample's (squared) distance to its centre.

    Differences are taken directly (not through ||x||^2 - 2xc + ||c||^2), so there is no
    cancellation; the sum over features is in X's dtype, the sum over samples in float64.
    """
    n, d = X.shape
    centers = centers.astype(X.dtype)
    total = xp.zeros(k, dtype=xp.float64)
    for start, stop in row_blocks(n, block_rows(xp, d)):
        block_codes = codes[start:stop]
        diff = X[start:stop] - centers[block_codes]
        dist = xp.einsum("ij,ij->i", diff, diff)
        if not squared:
            dist = xp.sqrt(dist)
        total += xp.bincount(block_codes, weights=dist, minlength=k).astype(xp.float64)
    return total


def cluster_centers(X: Any, labels: Any) -> Any:
    """Mean of each cluster.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy array.
    labels : array of shape (n_samples,)
        Cluster label of each sample, any integers, on the same device as ``X``.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
        In X's namespace and floating dtype (float32 stays float32, anything else becomes
        float64). Row ``j`` is the mean of the cluster with the ``j``-th smallest label
        value, so for labels ``0..k-1`` (none empty) row ``j`` is cluster ``j``.
        Accumulated in float64.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D, ``labels`` not 1-D, their lengths differ, or ``X`` is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> cluster_centers(np.array([[0.0, 2.0], [2.0, 4.0], [5.0, 5.0]]), np.array([1, 1, 0]))
    array([[5., 5.],
           [1., 3.]])
    """
    xp, X, codes, k = _prepare(X, labels, check_k=False)
    centers, _ = _cluster_centers(xp, X, codes, k)
    return centers.astype(X.dtype)


# --------------------------------------------------------------------------- silhouette


def _silhouette_samples(xp: ModuleType, X: Any, codes: Any, k: int, chunk_size: int) -> Any:
    """Silhouette coefficient of each sample; input assumed valid (2 <= k <= n - 1).

    Distances come from one GEMM per chunk of rows on augmented matrices,
    ``[x, f|x|^2, 1] . [-2y, 1, f|y|^2] = |x - y|^2 - (1 - f)(|x|^2 + |y|^2)``, after
    centring X (silhouette is translation invariant; centring shrinks the norms and with
    them the cancellation error of the dot-product form). ``1 - f = (2 + sqrt(d + 2)) eps``
    is about twice the rounding error measured for that form (up to
    ``0.6 sqrt(d) eps (|x|^2 + |y|^2)``), so duplicate points get a distance of exactly 0
    after clipping instead of ``sqrt(eps) |x|`` of noise (3e-4 |x| in float32, which
    biases ``a(i)`` on data with many duplicate rows); other squared distances move by
    no more than about twice their rounding error. The per-cluster distance
    sums of a chunk are a second GEMM against the (n, k) one-hot label matrix. Memory is
    O(chunk_size * n).
    """
    n, d = X.shape
    dtype = X.dtype
    Xc = X - X.mean(axis=0, dtype=xp.float64).astype(dtype)
    sq = xp.einsum("ij,ij->i", Xc, Xc)
    shrink = 1.0 - (2.0 + math.sqrt(d + 2.0)) * float(np.finfo(dtype).eps)
    sq_f = (sq * shrink)[:, None]
    ones = xp.ones((n, 1), dtype=dtype)
    left = xp.concatenate([Xc, sq_f, ones], axis=1)
    right_t = xp.ascontiguousarray(xp.concatenate([-2 * Xc, ones, sq_f], axis=1).T)

    onehot = one_hot(xp, codes, k, dtype)
    counts = xp.bincount(codes, minlength=k).astype(dtype)

    out = xp.empty(n, dtype=dtype)
    chunk = min(chunk_size, n)
    buf = xp.empty((chunk, n), dtype=dtype)
    for start, stop in row_blocks(n, chunk):
        rows = stop - start
        dist = buf[:rows]
        xp.matmul(left[start:stop], right_t, out=dist)
        xp.maximum(dist, 0, out=dist)
        xp.sqrt(dist, out=dist)
        local = xp.arange(rows)
        dist[local, start + local] = 0  # exact zero self-distance
        cluster_dist = dist @ onehot  # (rows, k) distance sums to each cluster

        own = codes[start:stop]
        own_size = counts[own]
        a = cluster_dist[local, own] / xp.maximum(own_size - 1, 1)
        means = cluster_dist / counts[None, :]
        b = xp.where(onehot[start:stop] > 0, xp.inf, means).min(axis=1)
        denom = xp.maximum(a, b)
        s = (b - a) / xp.where(denom > 0, denom, 1)
        # scikit-learn: singleton clusters score 0; a == b == 0 (duplicates) scores 0.
        out[start:stop] = xp.where(own_size > 1, s, 0)
    return out


def _check_chunk_size(chunk_size: Any, xp: ModuleType) -> int:
    if chunk_size is None:
        return _CPU_SILHOUETTE_CHUNK if xp is np else _GPU_SILHOUETTE_CHUNK
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, numbers.Integral)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    return int(chunk_size)


def silhouette_samples(X: Any, labels: Any, *, chunk_size: int | None = None) -> Any:
    """Silhouette coefficient of each sample (Euclidean).

    ``s(i) = (b(i) - a(i)) / max(a(i), b(i))`` where ``a(i)`` is the mean distance from
    sample ``i`` to the other members of its cluster and ``b(i)`` the smallest mean
    distance to the members of another cluster. Samples in singleton clusters score 0
    (scikit-learn's convention), as do samples with ``a(i) = b(i) = 0``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy array; float32 is computed in float32, anything else in float64.
    labels : array of shape (n_samples,)
        Cluster label of each sample, any integers, on the same device as ``X``.
    chunk_size : int, optional
        Rows of the distance matrix held at once; memory is about
        ``chunk_size * n_samples`` elements of X's dtype. Default: 512 for NumPy input
        (cache-sized, fastest on the CPU), 2048 for CuPy input.

    Returns
    -------
    silhouette : array of shape (n_samples,)
        In X's namespace and floating dtype, each value in [-1, 1].

    Raises
    ------
    ValueError
        Malformed input, or fewer than 2 or more than ``n_samples - 1`` distinct labels.

    Notes
    -----
    Exact, O(n_samples^2 * n_features) time, O(chunk_size * n_samples) memory. Distances
    use the dot-product form in X's dtype after centring X (scikit-learn upcasts float32
    to float64 for its distances; we keep float32 for speed and GPU throughput), with
    duplicate points at distance exactly 0. Measured agreement with
    ``sklearn.metrics.silhouette_samples``: ~1e-14 for float64 input; ~2e-6 per sample
    and ~1e-6 on the mean for float32 input on blob-like data. The float32 worst case,
    near-coincident points in different clusters, is ~sqrt(eps) ~ 3e-4 relative.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    >>> silhouette_samples(X, np.array([0, 0, 1, 1, 2])).round(3)
    array([0.905, 0.895, 0.895, 0.905, 0.   ])
    """
    xp, X, codes, k = _prepare(X, labels, check_k=True)
    chunk_size = _check_chunk_size(chunk_size, xp)
    return _silhouette_samples(xp, X, codes, k, chunk_size)


def silhouette_score(
    X: Any,
    labels: Any,
    *,
    sample_size: int | None = None,
    random_state: int | np.random.Generator | None = None,
    chunk_size: int | None = None,
) -> float:
    """Mean silhouette coefficient over all samples (Euclidean).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy array.
    labels : array of shape (n_samples,)
        Cluster label of each sample, any integers, on the same device as ``X``.
    sample_size : int, optional
        Score an exact silhouette on a random subset of this many samples, drawn without
        replacement (scikit-learn's ``sample_size`` semantics). ``None`` or a value
        ``>= n_samples`` scores all samples.
    random_state : int, numpy.random.Generator or None, default=None
        Seed for the subset (drawn on the host with ``numpy.random.default_rng``, then
        used to index X on its device); the same seed gives the same subset on CPU and GPU.
    chunk_size : int, optional
        Rows of the distance matrix held at once (default and memory: see
        :func:`silhouette_samples`).

    Returns
    -------
    score : float
        In [-1, 1]; higher means denser, better separated clusters.

    Raises
    ------
    ValueError
        Malformed input, a bad ``sample_size``, or fewer than 2 or more than
        ``n - 1`` distinct labels among the ``n`` samples scored.

    See Also
    --------
    silhouette_samples : the per-sample coefficients and notes on accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    >>> round(silhouette_score(X, np.array([0, 0, 1, 1, 2])), 4)
    0.7198
    """
    xp, X, labels = _check_X_labels(X, labels)
    chunk_size = _check_chunk_size(chunk_size, xp)
    n = X.shape[0]
    if sample_size is not None:
        if (
            isinstance(sample_size, bool)
            or not isinstance(sample_size, numbers.Integral)
            or sample_size < 1
        ):
            raise ValueError(f"sample_size must be a positive integer or None; got {sample_size!r}")
        if sample_size < n:
            rng = np.random.default_rng(random_state)
            # Sorted: the subset is a set (the mean does not depend on order), and sorted
            # indices read X in memory order.
            idx = np.sort(rng.choice(n, size=int(sample_size), replace=False))
            idx = xp.asarray(idx)
            X, labels = X[idx], labels[idx]
    codes, k = _encode_labels(xp, labels)
    _check_number_of_labels(k, X.shape[0])
    s = _silhouette_samples(xp, X, codes, k, chunk_size)
    return float(s.mean(dtype=xp.float64))


# --------------------------------------------------------------------------- centroid indices


def davies_bouldin_score(X: Any, labels: Any) -> float:
    """Davies-Bouldin index: mean over clusters of the worst ratio of spread to separation.

    For clusters ``i, j`` with centroids ``c_i`` and mean distance ``s_i`` of members to
    their centroid, ``R_ij = (s_i + s_j) / |c_i - c_j|`` and the score is the mean over
    ``i`` of ``max_{j != i} R_ij``. Same definition and zero conventions as
    ``sklearn.metrics.davies_bouldin_score``: 0.0 when every ``s_i`` or every centroid
    distance is (close to) zero; pairs with coincident centroids are skipped.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy array.
    labels : array of shape (n_samples,)
        Cluster label of each sample, any integers, on the same device as ``X``.

    Returns
    -------
    score : float
        Non-negative; lower is better.

    Raises
    ------
    ValueError
        Malformed input, or fewer than 2 or more than ``n_samples - 1`` distinct labels.

    Notes
    -----
    O(n_samples * n_features * n_clusters) through one-hot GEMMs; sums accumulated in
    float64. Centroid distances are taken from differences, not the dot-product form.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 4.0]])
    >>> round(davies_bouldin_score(X, np.array([0, 0, 1])), 4)
    0.128
    """
    xp, X, codes, k = _prepare(X, labels, check_k=True)
    centers, counts = _cluster_centers(xp, X, codes, k)
    intra = _center_distance_sums(xp, X, codes, centers, k, squared=False) / counts
    diff = centers[:, None, :] - centers[None, :, :]
    centroid_dist = xp.sqrt((diff * diff).sum(axis=2))
    # scikit-learn tests these with isclose(., 0): atol=1e-8, rtol irrelevant at 0.
    if bool((intra <= 1e-8).all()) or bool((centroid_dist <= 1e-8).all()):
        return 0.0
    centroid_dist = xp.where(centroid_dist == 0, xp.inf, centroid_dist)
    ratios = (intra[:, None] + intra[None, :]) / centroid_dist
    return float(ratios.max(axis=1).mean())


def calinski_harabasz_score(X: Any, labels: Any) -> float:
    """Calinski-Harabasz index (variance ratio criterion).

    ``(B / (k - 1)) / (W / (n - k))`` with ``B`` the between-cluster dispersion
    ``sum_j n_j |c_j - mean|^2`` and ``W`` the within-cluster dispersion
    ``sum_i |x_i - c_{label(i)}|^2``. As in ``sklearn.metrics.calinski_harabasz_score``,
    returns 1.0 when ``W`` is 0.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy array.
    labels : array of shape (n_samples,)
        Cluster label of each sample, any integers, on the same device as ``X``.

    Returns
    -------
    score : float
        Higher is better.

    Raises
    ------
    ValueError
        Malformed input, or fewer than 2 or more than ``n_samples - 1`` distinct labels.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> round(calinski_harabasz_score(X, np.array([0, 0, 1, 1])), 4)
    200.0
    """
    xp, X, codes, k = _prepare(X, labels, check_k=True)
    n = X.shape[0]
    centers, counts = _cluster_centers(xp, X, codes, k)
    mean = (centers * counts[:, None]).sum(axis=0) / n
    between = float((counts * ((centers - mean) ** 2).sum(axis=1)).sum())
    within = float(_center_distance_sums(xp, X, codes, centers, k, squared=True).sum())
    if within == 0.0:
        return 1.0
    return between * (n - k) / (within * (k - 1.0))


def inertia(X: Any, labels: Any, centers: Any = None) -> float:
    """Sum of squared Euclidean distances of samples to their cluster centre.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy array.
    labels : array of shape (n_samples,)
        Cluster label of each sample, on the same device as ``X``. With ``centers`` given
        they must be integers in ``0..n_centers-1`` (they index the rows of ``centers``);
        without, any integers.
    centers : array of shape (n_centers, n_features), optional
        Centre of each cluster, row ``j`` for label ``j`` (e.g. a fitted K-means'
        ``cluster_centers_``). Default: the cluster means (:func:`cluster_centers`).

    Returns
    -------
    inertia : float
        K-means' objective; equals ``KMeans.inertia_`` for its labels and centres.

    Raises
    ------
    ValueError
        Malformed input, ``centers`` of the wrong shape, or labels out of range.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [2.0], [10.0]])
    >>> inertia(X, np.array([0, 0, 1]))
    2.0
    >>> inertia(X, np.array([0, 0, 1]), centers=np.array([[0.0], [9.0]]))
    5.0
    """
    if centers is None:
        xp, X, codes, k = _prepare(X, labels, check_k=False)
        center_arr, _ = _cluster_centers(xp, X, codes, k)
    else:
        xp = array_namespace(X, labels, centers)
        xp, X, labels = _check_X_labels(X, labels)
        center_arr = xp.asarray(centers)
        if center_arr.ndim != 2 or center_arr.shape[1] != X.shape[1] or center_arr.shape[0] == 0:
            raise ValueError(
                f"centers must have shape (n_centers, {X.shape[1]}); got {center_arr.shape}"
            )
        if labels.dtype.kind not in "iu":
            raise ValueError(
                f"labels must be integers indexing the rows of centers; got dtype {labels.dtype}"
            )
        k = int(center_arr.shape[0])
        if int(labels.min()) < 0 or int(labels.max()) >= k:
            raise ValueError(
                f"labels must lie in 0..{k - 1} to index the {k} rows of centers; "
                f"got values from {int(labels.min())} to {int(labels.max())}"
            )
        codes = labels.astype(xp.int64)
    return float(_center_distance_sums(xp, X, codes, center_arr, k, squared=True).sum())


# --------------------------------------------------------------------------- external metrics


def _host_labels(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(to_host(a))
    b = np.asarray(to_host(b))
    if a.ndim != 1:
        raise ValueError(f"labels_true must be 1-D; got shape {a.shape}")
    if b.ndim != 1:
        raise ValueError(f"labels_pred must be 1-D; got shape {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"labels_true and labels_pred have inconsistent lengths: {a.shape[0]} and {b.shape[0]}"
        )
    return a, b


def _contingency_cells(
    a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero cells of the contingency table: rows, cols, counts, row sums, col sums."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    ka = int(ia.max()) + 1 if ia.size else 0
    kb = int(ib.max()) + 1 if ib.size else 0
    cell = ia.reshape(-1).astype(np.int64) * kb + ib.reshape(-1)
    if ka * kb <= _DENSE_CONTINGENCY_CELLS:
        dense = np.bincount(cell, minlength=ka * kb)
        nz = np.flatnonzero(dense)
        values = dense[nz]
    else:
        nz, values = np.unique(cell, return_counts=True)
    rows, cols = (nz // kb, nz % kb) if kb else (nz, nz)
    values = values.astype(np.int64)
    row_sums = np.bincount(rows, weights=values, minlength=ka).astype(np.int64)
    col_sums = np.bincount(cols, weights=values, minlength=kb).astype(np.int64)
    return rows, cols, values, row_sums, col_sums


def contingency_matrix(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """Contingency table of two labelings of the same samples.

    Parameters
    ----------
    labels_true : array of shape (n_samples,)
        NumPy or CuPy array of labels (moved to the host: label vectors are small).
    labels_pred : array of shape (n_samples,)

    Returns
    -------
    table : numpy.ndarray of shape (n_classes_true, n_classes_pred), int64
        ``table[i, j]`` counts samples with the ``i``-th smallest true label and the
        ``j``-th smallest predicted label. Always a dense host array.

    Raises
    ------
    ValueError
        If either input is not 1-D or their lengths differ.

    Examples
    --------
    >>> contingency_matrix([0, 0, 1, 2], [5, 5, 5, -1])
    array([[0, 2],
           [0, 1],
           [1, 0]])
    """
    a, b = _host_labels(labels_true, labels_pred)
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    ka = int(ia.max()) + 1 if ia.size else 0
    kb = int(ib.max()) + 1 if ib.size else 0
    cell = ia.reshape(-1).astype(np.int64) * kb + ib.reshape(-1)
    return np.bincount(cell, minlength=ka * kb).astype(np.int64).reshape(ka, kb)


def adjusted_rand_score(labels_true: Any, labels_pred: Any) -> float:
    """Rand index adjusted for chance, as ``sklearn.metrics.adjusted_rand_score``.

    Parameters
    ----------
    labels_true : array of shape (n_samples,)
        NumPy or CuPy array of labels.
    labels_pred : array of shape (n_samples,)

    Returns
    -------
    ari : float
        1.0 for identical partitions (up to relabeling, including both a single
        cluster, or empty input); about 0 for independent ones; can be negative.

    Raises
    ------
    ValueError
        If either input is not 1-D or their lengths differ.

    Examples
    --------
    >>> adjusted_rand_score([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    >>> round(adjusted_rand_score([0, 0, 1, 2], [0, 0, 1, 1]), 4)
    0.5714
    """
    a, b = _host_labels(labels_true, labels_pred)
    _, _, values, row_sums, col_sums = _contingency_cells(a, b)
    # Python ints: the products below overflow int64 from about 10^5 samples.
    n = int(a.shape[0])
    sum_squares = int((values * values).sum())
    tp = sum_squares - n
    fp = int((col_sums * col_sums).sum()) - sum_squares
    fn = int((row_sums * row_sums).sum()) - sum_squares
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    if counts.size <= 1:
        return 0.0
    total = counts.sum()
    return float(-np.sum((counts / total) * (np.log(counts) - math.log(total))))


def normalized_mutual_info_score(labels_true: Any, labels_pred: Any) -> float:
    """Mutual information normalised by the arithmetic mean of the two entropies.

    Same as ``sklearn.metrics.normalized_mutual_info_score`` with its default
    ``average_method="arithmetic"``, including its edge cases: 1.0 when both labelings
    are a single cluster (or empty), 0.0 when the mutual information is 0.

    Parameters
    ----------
    labels_true : array of shape (n_samples,)
        NumPy or CuPy array of labels.
    labels_pred : array of shape (n_samples,)

    Returns
    -------
    nmi : float
        In [0, 1]; 1.0 for identical partitions up to relabeling.

    Raises
    ------
    ValueError
        If either input is not 1-D or their lengths differ.

    Examples
    --------
    >>> normalized_mutual_info_score([0, 0, 1, 1], [5, 5, 2, 2])
    1.0
    >>> normalized_mutual_info_score([0, 0, 1, 1], [0, 1, 0, 1])
    0.0
    """
    a, b = _host_labels(labels_true, labels_pred)
    rows, cols, values, row_sums, col_sums = _contingency_cells(a, b)
    ka, kb = row_sums.shape[0], col_sums.shape[0]
    if ka == kb == 1 or ka == kb == 0:
        return 1.0
    if ka == 1 or kb == 1:
        return 0.0
    # Mutual information from the non-zero cells, term for term as scikit-learn.
    nij = values.astype(np.float64)
    n = float(nij.sum())
    p_ij = nij / n
    outer = row_sums[rows] * col_sums[cols]
    log_outer = -np.log(outer) + math.log(float(row_sums.sum())) + math.log(float(col_sums.sum()))
    terms = p_ij * (np.log(nij) - math.log(n)) + p_ij * log_outer
    terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
    mi = float(np.clip(terms.sum(), 0.0, None))
    if mi == 0.0:
        return 0.0
    normalizer = float(np.mean([_entropy(row_sums), _entropy(col_sums)]))
    return float(mi / normalizer)
