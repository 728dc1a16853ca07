"""Linear and non-linear projections of the scaled features: PCA and UMAP.

``PCA`` is written once for NumPy and CuPy (an eigendecomposition of the d x d covariance,
d being a few dozen customer features, so the n x d data are read twice and never copied).
``UMAP`` dispatches to cuML on CuPy input and to umap-learn on NumPy input.
:func:`knn_place` is how a saved model places new customers in a UMAP embedding (neither
library's UMAP can be stored without pickle).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_namespace, gpu_module, import_optional, is_gpu_array, to_host
from ..cluster._base import EstimatorMixin, as_float_array, seed_from

__all__ = ["PCA", "UMAP", "knn_place"]

UMAP_HINT = "pip install 'gpuseg[umap]' (umap-learn; on the GPU cuML's UMAP is used)"


class PCA(EstimatorMixin):
    """Principal component analysis over NumPy or CuPy arrays.

    Parameters
    ----------
    n_components : int or float, default=None
        Components kept; a float in (0, 1) keeps the fewest components explaining at least
        that share of the variance; None keeps all.
    whiten : bool, default=False
        Scale the components to unit variance.
    random_state : ignored
        Accepted for a uniform estimator API (the decomposition is exact).

    Attributes
    ----------
    components_ : array of shape (n_components, n_features)
        Principal axes, in X's array type; signs fixed so that each axis' largest absolute
        loading is positive (scikit-learn's convention).
    explained_variance_, explained_variance_ratio_ : ndarray
        Host arrays.
    mean_ : array of shape (n_features,)
    n_components_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> PCA(2).fit_transform(X).shape
    (100, 2)
    """

    def __init__(self, n_components: int | float | None = None, *, whiten: bool = False, random_state: Any = None):
        self.n_components = n_components
        self.whiten = whiten
        self.random_state = random_state

    def _validate_params(self) -> None:
        if not isinstance(self.whiten, (bool, np.bool_)):
            raise ValueError(f"whiten must be True or False, got {self.whiten!r}")

    def fit(self, X: Any, y: Any = None) -> "PCA":
        """Find the principal axes."""
        self._validate_params()
        X = as_float_array(X)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError(f"PCA needs a 2-D array with at least 2 rows, got shape {X.shape} "
                             f"(n_samples={X.shape[0] if X.ndim else 0})")
        n, d = X.shape
        nc = self.n_components
        if nc is not None and not (
            (isinstance(nc, (int, np.integer)) and 1 <= nc <= d) or (isinstance(nc, float) and 0 < nc < 1)
        ):
            raise ValueError(f"n_components must be an int in [1, {d}] or a float in (0, 1), got {nc!r}")
        xp = array_namespace(X)
        mean = X.astype(xp.float64).mean(axis=0)
        cov = _covariance(X, mean)
        evals, evecs = np.linalg.eigh(to_host(cov))  # d x d: on the host, in float64
        order = np.argsort(evals)[::-1]
        evals = np.clip(evals[order], 0.0, None)
        evecs = evecs[:, order].T
        signs = np.sign(evecs[np.arange(d), np.abs(evecs).argmax(axis=1)])
        evecs *= np.where(signs == 0, 1.0, signs)[:, None]
        total = evals.sum()
        ratio = evals / total if total > 0 else np.zeros_like(evals)
        if nc is None:
            k = d
        elif isinstance(nc, float):
            k = int(np.searchsorted(np.cumsum(ratio), nc - 1e-12) + 1)
        else:
            k = int(nc)
        self.n_components_ = min(k, d)
        self.components_ = xp.asarray(evecs[: self.n_components_], dtype=X.dtype)
        self.explained_variance_ = evals[: self.n_components_]
        self.explained_variance_ratio_ = ratio[: self.n_components_]
        self.mean_ = mean.astype(X.dtype)
        self.n_features_in_ = d
        return self

    def transform(self, X: Any) -> Any:
        """Coordinates on the principal axes, in X's array type."""
        if not hasattr(self, "components_"):
            raise AttributeError("this PCA instance is not fitted yet; call fit first")
        X = as_float_array(X)
        xp = array_namespace(X)
        Z = (X - xp.asarray(self.mean_, dtype=X.dtype)) @ xp.asarray(self.components_, dtype=X.dtype).T
        if self.whiten:
            Z = Z / xp.asarray(np.sqrt(np.maximum(self.explained_variance_, 1e-300)), dtype=X.dtype)
        return Z

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Any) -> Any:
        """Back to the feature space (exact when all components are kept)."""
        xp = array_namespace(Z)
        comps = xp.asarray(self.components_, dtype=Z.dtype)
        if self.whiten:
            Z = Z * xp.asarray(np.sqrt(self.explained_variance_), dtype=Z.dtype)
        return Z @ comps + xp.asarray(self.mean_, dtype=Z.dtype)


def _covariance(X: Any, mean: Any) -> Any:
    """Sample covariance (d, d) in float64 from row blocks of X (no centred copy of X)."""
    from .._xp import block_rows, row_blocks

    xp = array_namespace(X)
    n, d = X.shape
    acc = xp.zeros((d, d), dtype=xp.float64)
    for start, stop in row_blocks(n, block_rows(xp, d)):
        B = X[start:stop].astype(xp.float64) - mean
        acc += B.T @ B
    return acc / max(n - 1, 1)


class UMAP(EstimatorMixin):
    """UMAP embedding: cuML on CuPy input, umap-learn on NumPy input.

    Parameters
    ----------
    n_components : int, default=2
    n_neighbors : int, default=15
    min_dist : float, default=0.1
    random_state : int or None
        Seeds the layout (umap-learn then runs single-threaded, as it does when seeded).

    Attributes
    ----------
    embedding_ : array of shape (n_samples, n_components)
        In the input's array type.
    """

    def __init__(self, n_components: int = 2, *, n_neighbors: int = 15, min_dist: float = 0.1, random_state: Any = None):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.random_state = random_state

    def _validate_params(self) -> None:
        n = self.n_neighbors
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {n!r}")
        d = self.min_dist
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, float, np.number)) or not 0.0 <= float(d) <= 1.0:
            raise ValueError(f"min_dist must be a number in [0, 1] (umap-learn's spread is 1), got {d!r}")

    def fit(self, X: Any, y: Any = None) -> "UMAP":
        """Learn the embedding of X."""
        self._validate_params()
        X = as_float_array(X)
        if X.ndim != 2 or X.shape[0] <= self.n_neighbors:
            raise ValueError(f"UMAP needs a 2-D array with more than n_neighbors={self.n_neighbors} rows")
        if not isinstance(self.n_components, (int, np.integer)) or not 1 <= self.n_components < X.shape[1] + 1:
            raise ValueError(f"n_components must be an int in [1, {X.shape[1]}], got {self.n_components!r}")
        seed = None if self.random_state is None else seed_from(self.random_state)
        kwargs = dict(n_components=int(self.n_components), n_neighbors=int(self.n_neighbors),
                      min_dist=float(self.min_dist), random_state=seed)
        if is_gpu_array(X):
            model = gpu_module("cuml.manifold").UMAP(output_type="cupy", **kwargs)
            self.embedding_ = model.fit_transform(X)
        else:
            import warnings

            umap = import_optional("umap", hint=UMAP_HINT)
            model = umap.UMAP(**kwargs)
            with warnings.catch_warnings():  # umap-learn warns on every seeded fit that it runs on one thread
                warnings.filterwarnings("ignore", message="n_jobs value .* overridden", category=UserWarning)
                self.embedding_ = np.ascontiguousarray(model.fit_transform(X), dtype=X.dtype)
        self._model = model
        self.n_features_in_ = X.shape[1]
        return self

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X).embedding_

    def transform(self, X: Any) -> Any:
        """Place new rows in the learned embedding."""
        if not hasattr(self, "_model"):
            raise AttributeError("this UMAP instance is not fitted yet; call fit first")
        X = as_float_array(X)
        out = self._model.transform(X)
        return out if is_gpu_array(X) else np.asarray(out, dtype=X.dtype)


#: float64 elements of the largest matrix of one block of rows being placed: the block x
#: n_train fast distances, or the block x candidates x features differences of the exact
#: step. About 3 temporaries of that size live at once (the fast distances beside the
#: product ``B @ R.T`` and a partitioned copy or comparison; the gathered candidate rows,
#: their differences and squares), so a block peaks near 3 x 8 x 2**24 bytes (400 MB),
#: whatever the numbers of customers, training rows and features.
_PLACE_BLOCK_ELEMENTS = 2**24
#: Candidates beyond ``n_neighbors`` tried first (:func:`_candidates`); more are taken
#: whenever more rows lie within rounding of the ``n_neighbors``-th distance.
_EXTRA_CANDIDATES = 8


def _place_block(n_train: int, n_cand: int, n_features: int) -> int:
    """Rows placed at once by :func:`knn_place`: as many as keep both the block x
    ``n_train`` fast distances and the block x ``n_cand`` x ``n_features`` exact step within
    ``_PLACE_BLOCK_ELEMENTS`` elements (at least one row)."""
    return max(1, _PLACE_BLOCK_ELEMENTS // max(int(n_train), int(n_cand) * int(n_features), 1))


def _rounding_slack(bb: Any, sq_max: float, n_features: int) -> Any:
    """How far a fast (expanded) squared distance ``|b|^2 - 2 b.r + |r|^2`` may be from the
    exact one, per row of the block, plus that again: the dot product of d terms and the two
    sums are off by at most about (2d + 4) u (|b|^2 + |r|^2), the exact sum of squared
    differences by (d + 1) u 2 (|b|^2 + |r|^2) (u = eps / 2), and a row whose fast distance
    is below the k-th smallest fast distance plus twice that bound may be a true neighbour.
    The constant below is that bound with eps for u and room to spare."""
    eps = float(np.finfo(np.float64).eps)
    return 2.0 * (4 * n_features + 16) * eps * (bb + sq_max)


def knn_place(X: Any, rows: Any, coords: Any, n_neighbors: int) -> Any:
    """Place rows in a fitted embedding from their nearest training rows.

    Each row of ``X`` goes to the inverse-distance weighted mean of the embedding
    coordinates of its ``n_neighbors`` nearest training rows (Euclidean distance in the
    space of ``rows``; equal distances ordered by training row, so of many training rows at
    the same distance the first ones count). A row at distance 0 from one or more training
    rows (a training customer itself, say) goes to the plain mean of the coordinates of
    *every* training row at distance 0, however many (the limit of the weighting), so
    duplicate training customers all land at one point. UMAP's own ``transform`` starts
    from such a weighted mean too (with its fuzzy-membership weights) and then refines it
    with optimisation epochs; a saved model uses this rule because UMAP's fitted state
    cannot be stored without pickle.

    The nearest rows are found in two steps, the same on NumPy and CuPy: fast squared
    distances by the expansion ``|x|^2 - 2 x.r + |r|^2`` (one matrix product) keep every
    training row within rounding of the ``n_neighbors``-th smallest (:func:`_rounding_slack`:
    ties and near-ties all kept, however many), and exact distances of those candidates
    decide. The result is the rule above up to the rounding of the weighted mean.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy; the rows to place.
    rows : array of shape (n_train, n_features)
        The training rows (same array type as X).
    coords : array of shape (n_train, n_components)
        Their coordinates in the embedding.
    n_neighbors : int
        Neighbours per row (at most ``n_train`` are used).

    Returns
    -------
    array of shape (n_samples, n_components), float64, in X's array type
    """
    xp = array_namespace(X)
    n_train, d = rows.shape
    k = max(1, min(int(n_neighbors), n_train))
    R = xp.asarray(rows, dtype=xp.float64)
    C = xp.asarray(coords, dtype=xp.float64)
    sq = (R * R).sum(axis=1)
    sq_max = float(sq.max()) if n_train else 0.0
    out = xp.empty((X.shape[0], C.shape[1]), dtype=xp.float64)
    block = _place_block(n_train, k, d)
    for lo in range(0, X.shape[0], block):
        B = xp.asarray(X[lo : lo + block], dtype=xp.float64)
        bb = (B * B).sum(axis=1)
        fast = bb[:, None] - 2.0 * (B @ R.T) + sq[None, :]
        cand = _candidates(xp, fast, k, _rounding_slack(bb, sq_max, d))
        del fast
        step = _place_block(0, cand.shape[1], d)  # the exact step, in pieces if many rows tie
        for s in range(0, B.shape[0], step):
            stop = min(s + step, B.shape[0])
            out[lo + s : lo + stop] = _weighted_mean(xp, B[s:stop], R, C, cand[s:stop], k)
    return out


def _candidates(xp: Any, fast: Any, k: int, slack: Any) -> Any:
    """Per row of ``fast`` (block x n_train), the sorted indices of a set of training rows
    holding every row whose fast distance is at most the k-th smallest plus ``slack``: the
    same number for the whole block. First the ``k + _EXTRA_CANDIDATES`` smallest, enough
    when the last of them lies beyond that threshold in every row (the usual case); else (many
    ties) as many as the row with the most rows within the threshold needs."""
    n_train = fast.shape[1]
    n_cand = min(n_train, k + _EXTRA_CANDIDATES)
    if n_cand == n_train:
        return xp.broadcast_to(xp.arange(n_train)[None, :], fast.shape)
    cand = xp.argpartition(fast, n_cand - 1, axis=1)[:, :n_cand]
    values = xp.take_along_axis(fast, cand, axis=1)
    threshold = xp.partition(values, k - 1, axis=1)[:, k - 1] + slack
    if bool((values.max(axis=1) > threshold).all()):  # the rows left out lie beyond it
        return xp.sort(cand, axis=1)
    n_cand = max(k, int((fast <= threshold[:, None]).sum(axis=1).max()))
    if n_cand >= n_train:
        return xp.broadcast_to(xp.arange(n_train)[None, :], fast.shape)
    return xp.sort(xp.argpartition(fast, n_cand - 1, axis=1)[:, :n_cand], axis=1)  # every row within it


def _weighted_mean(xp: Any, B: Any, R: Any, C: Any, cand: Any, k: int) -> Any:
    """:func:`knn_place` of the rows ``B`` from their candidate training rows ``cand``
    (sorted indices): exact distances, the k nearest (ties by training row: a stable sort of
    candidates in row order), inverse-distance weights; at distance 0 the plain mean of all
    the rows there."""
    dist = xp.sqrt(((B[:, None, :] - R[cand]) ** 2).sum(axis=2))
    order = xp.argsort(dist, axis=1, kind="stable")[:, :k]
    near = xp.take_along_axis(dist, order, axis=1)
    w = 1.0 / xp.where(near == 0, 1.0, near)
    placed = (w[:, :, None] * C[xp.take_along_axis(cand, order, axis=1)]).sum(axis=1) / w.sum(axis=1)[:, None]
    zero = (dist == 0).astype(xp.float64)
    hits = zero.sum(axis=1)
    at_rows = (zero[:, :, None] * C[cand]).sum(axis=1) / xp.maximum(hits, 1.0)[:, None]
    return xp.where((hits > 0)[:, None], at_rows, placed)
