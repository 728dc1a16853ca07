"""Array primitives shared by the estimators and the metrics, written once for NumPy and CuPy.

Everything here takes arrays of one namespace (``numpy`` or ``cupy``) and returns arrays of
the same; nothing imports CuPy (the namespace comes from the input).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .backend import array_namespace

__all__ = [
    "row_blocks",
    "block_rows",
    "one_hot",
    "one_hot_t",
    "cluster_sums",
    "squared_distances",
    "nearest_center",
]

#: Elements per block for blocked reductions: small on the CPU (cache), large on the GPU.
CPU_BLOCK_ELEMENTS = 1 << 18
GPU_BLOCK_ELEMENTS = 1 << 24
#: Up to this many clusters, per-cluster sums on the CPU are a one-hot GEMM (else bincounts).
_CPU_GEMM_MAX_K = 32


def row_blocks(n_rows: int, block: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive row blocks."""
    for start in range(0, n_rows, block):
        yield start, min(start + block, n_rows)


def block_rows(xp: Any, width: int) -> int:
    """Rows per block so that a block of ``width`` columns stays cache/launch friendly."""
    elements = CPU_BLOCK_ELEMENTS if xp is np else GPU_BLOCK_ELEMENTS
    return max(1, elements // max(width, 1))


def one_hot(xp: Any, codes: Any, k: int, dtype: Any) -> Any:
    """(n, k) indicator matrix: one-hot matrices turn per-cluster sums into GEMMs."""
    return (codes[:, None] == xp.arange(k)[None, :]).astype(dtype)


def one_hot_t(xp: Any, codes: Any, k: int, dtype: Any) -> Any:
    """(k, n) indicator matrix, C-contiguous (faster as a GEMM's left operand)."""
    return (xp.arange(k)[:, None] == codes[None, :]).astype(dtype)


def cluster_sums(X: Any, codes: Any, k: int, weights: Any = None) -> tuple[Any, Any]:
    """Per-cluster (weighted) feature sums (k, d) and weights (k,), both float64.

    ``codes`` are integers in 0..k-1 (empty clusters give zero rows). Each block's sums
    come from a GEMM in X's dtype and are accumulated in float64, so float32 input with
    millions of rows keeps about 1e-7 relative accuracy.
    """
    xp = array_namespace(X, codes)
    n, d = X.shape
    if xp is np and k <= _CPU_GEMM_MAX_K and weights is None:
        # few clusters: a float64 one-hot GEMM per block is 2-3x faster than a bincount per
        # feature (measured: 8,000 x 34 at k = 6, 0.56 ms against 1.35 ms)
        sums = np.zeros((k, d), dtype=np.float64)
        for start, stop in row_blocks(n, 65536):
            sums += one_hot_t(np, codes[start:stop], k, np.float64) @ X[start:stop].astype(np.float64)
        return sums, np.bincount(codes, minlength=k).astype(np.float64)
    if xp is np:
        # on the CPU one bincount per feature beats the one-hot GEMM for many clusters (SOM
        # units, Ward micro-clusters); it sums in float64 directly
        w = None if weights is None else weights.astype(np.float64)
        sums = np.empty((k, d), dtype=np.float64)
        for j in range(d):
            col = X[:, j].astype(np.float64)
            sums[:, j] = np.bincount(codes, weights=col if w is None else col * w, minlength=k)
        counts = np.bincount(codes, weights=w, minlength=k).astype(np.float64)
        return sums, counts
    sums = xp.zeros((k, d), dtype=xp.float64)
    for start, stop in row_blocks(n, block_rows(xp, max(d, k))):
        ind = one_hot_t(xp, codes[start:stop], k, X.dtype)
        if weights is not None:
            ind = ind * weights[start:stop].astype(X.dtype)[None, :]
        sums += (ind @ X[start:stop]).astype(xp.float64)
    if weights is None:
        counts = xp.bincount(codes, minlength=k).astype(xp.float64)
    else:
        counts = xp.bincount(codes, weights=weights.astype(xp.float64), minlength=k)
    return sums, counts


def squared_distances(X: Any, centers: Any) -> Any:
    """Squared Euclidean distances (n, k) of rows of X to centers, clipped at 0."""
    xp = array_namespace(X, centers)
    xx = (X * X).sum(axis=1)[:, None]
    cc = (centers * centers).sum(axis=1)[None, :]
    d = xx + cc - 2.0 * (X @ centers.T)
    return xp.maximum(d, 0)


def nearest_center(X: Any, centers: Any, chunk_size: int = 65536) -> tuple[Any, Any]:
    """Index of (int32) and squared distance to the nearest center for each row (chunked)."""
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
