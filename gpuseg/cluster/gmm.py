"""Gaussian mixture models fitted by EM, written once for NumPy and CuPy.

cuML has no Gaussian mixture (rapidsai/cuml#2034). This module follows scikit-learn's
``mixture/_gaussian_mixture.py``: the covariances are parameterised by the Cholesky factors
of their precisions, the E-step works in log space with log-sum-exp, and the lower bound is
the mean log-likelihood per sample. Every array operation is one that NumPy and CuPy share
(batched ``cholesky``/``solve`` over the k small d x d matrices, GEMMs over row blocks).

Numerics for float32 input: X is never copied to float64 as a whole. The model parameters
(weights, means, covariances, precision factors), the per-sample log-probabilities, the
log-sum-exp and the responsibilities are float64, and every sum over rows is accumulated
per row block in float64. ``full``: the quadratic forms ``|(x - mu) @ U|^2`` and the
covariance GEMMs run on centred rows in X's dtype (centring first, unlike scikit-learn's
``x @ U - mu @ U``, so data far from the origin keep their precision). ``diag``: the
expanded forms ``x^2 @ p - 2 x @ (mu p) + mu^2 p`` and ``E[x^2] - mu^2`` are computed on
float64 copies of each row block, where their cancellation is harmless.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .._xp import block_rows, one_hot, row_blocks
from ..backend import array_namespace, to_host, to_namespace
from ._base import EstimatorMixin, as_float_array, check_random_state
from .kmeans import KMeans, kmeans_plusplus

__all__ = ["GaussianMixture"]

COVARIANCE_TYPES = ("full", "diag")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


# ---------------------------------------------------------------------- EM building blocks
def _gemm_weights(weights: Any, dtype: Any) -> Any:
    """Responsibilities as GEMM operands of ``dtype``, negligible ones set to 0.

    exp(log_resp) is often far below float32's normal range; subnormal operands make
    a GEMM many times slower and those points contribute nothing measurable.
    """
    xp = array_namespace(weights)
    floor = 1e-20 if dtype == xp.float32 else 1e-200
    return xp.where(weights < floor, 0.0, weights).astype(dtype)


def _weighted_sums(X: Any, weights: Any) -> Any:
    """``weights.T @ X`` (m, d) in float64: row blocks multiplied in X's dtype, accumulated
    in float64."""
    xp = array_namespace(X)
    n, d = X.shape
    out = xp.zeros((weights.shape[1], d), dtype=xp.float64)
    for start, stop in row_blocks(n, block_rows(xp, max(d, weights.shape[1]))):
        out += (_gemm_weights(weights[start:stop], X.dtype).T @ X[start:stop]).astype(xp.float64)
    return out


def _estimate_gaussian_parameters(X: Any, resp: Any, reg_covar: float, covariance_type: str) -> tuple[Any, Any, Any]:
    """M-step statistics: component weights (unnormalised), means and covariances (float64).

    Full covariances are weighted sums of centred outer products ``(x - mu)(x - mu)^T`` in
    X's dtype, accumulated in float64; diagonal ones are ``E[x^2] - mu^2`` with both moments
    from float64 blocks. Both get ``reg_covar`` on the diagonal.
    """
    xp = array_namespace(X)
    n, d = X.shape
    k = resp.shape[1]
    nk = resp.sum(axis=0) + 10 * float(np.finfo(X.dtype).eps)
    if covariance_type == "diag":
        # E[x^2] - mu^2 with both moments from float64 blocks: a feature constant within a
        # component (zero-inflated customer features) cancels to ~1e-16, not to the float32
        # rounding of the mean (which exceeds reg_covar and breaks scikit-learn's float32 fit)
        s1 = xp.zeros((k, d), dtype=xp.float64)
        s2 = xp.zeros((k, d), dtype=xp.float64)
        for start, stop in row_blocks(n, block_rows(xp, max(d, k))):
            Xb = X[start:stop].astype(xp.float64)
            Rt = resp[start:stop].astype(xp.float64).T
            s1 += Rt @ Xb
            s2 += Rt @ (Xb * Xb)
        means = s1 / nk[:, None]
        cov = xp.maximum(s2 / nk[:, None] - means**2, 0.0) + reg_covar
        return nk, means, cov
    means = _weighted_sums(X, resp) / nk[:, None]
    means_x = means.astype(X.dtype)
    cov = xp.zeros((k, d, d), dtype=xp.float64)
    for start, stop in row_blocks(n, block_rows(xp, d)):
        Xb = X[start:stop]
        Rb = _gemm_weights(resp[start:stop], X.dtype)
        for j in range(k):
            diff = Xb - means_x[j]
            cov[j] += ((diff * Rb[:, j : j + 1]).T @ diff).astype(xp.float64)
    cov /= nk[:, None, None]
    cov += reg_covar * xp.eye(d, dtype=xp.float64)[None, :, :]
    return nk, means, cov


def _cholesky_lower(A: Any) -> Any:
    """Batched lower Cholesky factors of symmetric matrices (k, d, d); ValueError if not PD.

    NumPy raises on a failed factorisation, CuPy returns garbage; both are caught by checking
    that the factors are finite with a positive diagonal and reproduce the matrices.
    """
    xp = array_namespace(A)
    try:
        L = xp.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        raise ValueError(_ILL_DEFINED) from None
    diag = xp.diagonal(L, axis1=1, axis2=2)
    scale = xp.abs(A).max(axis=(-2, -1))
    resid = xp.abs(L @ xp.swapaxes(L, -1, -2) - A).max(axis=(-2, -1))
    ok = xp.isfinite(L).all() & (diag > 0).all() & (resid <= 1e-6 * scale + 1e-300).all()
    if not bool(ok):
        raise ValueError(_ILL_DEFINED)
    return L


def _compute_precision_cholesky(covariances: Any, covariance_type: str) -> Any:
    """Upper-triangular U with ``U @ U.T = inv(covariance)``: ``U = inv(L).T`` for ``L L^T = cov``."""
    xp = array_namespace(covariances)
    if covariance_type == "full":
        k, d, _ = covariances.shape
        L = _cholesky_lower(covariances)
        eye = xp.repeat(xp.eye(d, dtype=covariances.dtype)[None, :, :], k, axis=0)
        return xp.swapaxes(xp.linalg.solve(L, eye), -1, -2)
    if bool((covariances <= 0).any()):
        raise ValueError(_ILL_DEFINED)
    return 1.0 / xp.sqrt(covariances)


def _precision_cholesky_from_precisions(precisions: Any, covariance_type: str) -> Any:
    """U with ``U @ U.T = precision`` (upper triangular), by Cholesky of the reversed matrix."""
    xp = array_namespace(precisions)
    if covariance_type == "full":
        flipped = xp.ascontiguousarray(precisions[:, ::-1, ::-1])
        return xp.ascontiguousarray(_cholesky_lower(flipped)[:, ::-1, ::-1])
    return xp.sqrt(precisions)


def _covariances_from_precision_cholesky(prec_chol: Any, covariance_type: str) -> Any:
    """Covariances ``inv(U @ U.T)`` (only needed when fitting starts from precisions)."""
    xp = array_namespace(prec_chol)
    if covariance_type == "full":
        k, d, _ = prec_chol.shape
        eye = xp.repeat(xp.eye(d, dtype=prec_chol.dtype)[None, :, :], k, axis=0)
        inv_u = xp.linalg.solve(prec_chol, eye)
        return xp.swapaxes(inv_u, -1, -2) @ inv_u
    return 1.0 / prec_chol**2


def _log_det_cholesky(prec_chol: Any, covariance_type: str) -> Any:
    """log det(U) per component = 0.5 * log det(precision), shape (k,)."""
    xp = array_namespace(prec_chol)
    if covariance_type == "full":
        return xp.log(xp.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    return xp.log(prec_chol).sum(axis=1)


def _estimate_log_gaussian_prob(X: Any, means: Any, prec_chol: Any, covariance_type: str) -> Any:
    """log N(x | mu_j, Sigma_j) for every row and component, shape (n, k), float64."""
    xp = array_namespace(X)
    n, d = X.shape
    k = means.shape[0]
    maha = xp.empty((n, k), dtype=xp.float64)
    if covariance_type == "full":  # |(x - mu) @ U|^2 on centred row blocks in X's dtype
        means_x = means.astype(X.dtype)
        prec_x = prec_chol.astype(X.dtype)
        for start, stop in row_blocks(n, block_rows(xp, d)):
            Xb = X[start:stop]
            for j in range(k):
                y = (Xb - means_x[j]) @ prec_x[j]
                maha[start:stop, j] = (y * y).sum(axis=1)
    else:  # sum_f p_f (x_f - mu_f)^2 expanded into GEMMs over float64 row blocks
        prec = prec_chol**2
        mu_prec = (means * prec).T
        mu_term = (means**2 * prec).sum(axis=1)[None, :]
        for start, stop in row_blocks(n, block_rows(xp, max(d, k))):
            Xb = X[start:stop].astype(xp.float64)
            maha[start:stop] = (Xb * Xb) @ prec.T - 2.0 * (Xb @ mu_prec) + mu_term
    return -0.5 * (d * math.log(2 * math.pi) + maha) + _log_det_cholesky(prec_chol, covariance_type)[None, :]


def _logsumexp_rows(a: Any) -> Any:
    """log(sum(exp(a), axis=1)) without overflow."""
    xp = array_namespace(a)
    top = a.max(axis=1)
    top = xp.where(xp.isfinite(top), top, 0.0)
    return top + xp.log(xp.exp(a - top[:, None]).sum(axis=1))


def _n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of the mixture (scikit-learn's count)."""
    if covariance_type == "full":
        cov_params = n_components * n_features * (n_features + 1) / 2.0
    else:
        cov_params = n_components * n_features
    return int(cov_params + n_features * n_components + n_components - 1)


def _check_state_shapes(state: tuple[Any, Any, Any, Any], covariance_type: str) -> None:
    """Shapes of (weights, means, covariances, precisions_cholesky) for ``covariance_type``
    (:meth:`GaussianMixture.from_arrays`); a clear ValueError rather than a broadcast error
    at the first predict."""
    k, d = state[1].shape
    cov = (k, d, d) if covariance_type == "full" else (k, d)
    weights, _, covariances, precisions_cholesky = state
    for name, a, want in (("weights", weights, (k,)), ("covariances", covariances, cov),
                          ("precisions_cholesky", precisions_cholesky, cov)):
        if tuple(a.shape) != want:
            hint = (" (arrays of another covariance_type? pass the covariance_type they were fitted with)"
                    if name != "weights" else "")
            raise ValueError(f"from_arrays: {name} must have shape {want} for covariance_type="
                             f"{covariance_type!r}, {k} components and {d} features, got {tuple(a.shape)}{hint}")


class GaussianMixture(EstimatorMixin):
    """Gaussian mixture model fitted by expectation-maximisation, on NumPy or CuPy arrays.

    A port of scikit-learn's ``GaussianMixture`` (``full`` and ``diag`` covariances)
    written once over the array namespace: the same parameters, attributes, stopping rule
    and random draws, so with the same initial parameters both converge to the same model.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {"full", "diag"}, default="full"
    tol : float, default=1e-3
        EM stops when the lower bound (mean log-likelihood per sample) changes by less.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance, which keeps them positive definite for
        duplicated points or constant features.
    max_iter : int, default=100
        EM iterations per initialisation (0 keeps the initial parameters).
    n_init : int, default=1
        Initialisations; the one with the highest lower bound wins.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the initial responsibilities are made: one-hot labels of a k-means fit
        (:func:`~gpuseg.cluster.kmeans.kmeans_plusplus` seeds, then
        :class:`~gpuseg.cluster.kmeans.KMeans` from them, on X's device), one-hot k-means++
        seed rows, random uniform responsibilities, or one-hot random rows. The draws from
        ``random_state`` are scikit-learn's, so the same seed gives the same start.
    weights_init : array of shape (n_components,), optional
    means_init : array of shape (n_components, n_features), optional
    precisions_init : array, optional
        Inverse covariances: (n_components, n_features, n_features) for ``full``,
        (n_components, n_features) for ``diag``. With all three ``*_init`` given no
        responsibilities are computed; otherwise the given ones override those of
        ``init_params``.
    random_state : int, RandomState or None, default=None
    warm_start : bool, default=False
        When fitted already, continue EM from the current parameters (``n_init`` is
        ignored): the base of incremental model updates.

    Attributes
    ----------
    weights_ : array of shape (n_components,)
    counts_ : array of shape (n_components,)
        The rows each component stands for (``weights_`` times the rows fitted, plus what
        :meth:`partial_fit` added): the old mixture's weight against a new batch.
    means_ : array of shape (n_components, n_features)
    covariances_ : array
        (n_components, n_features, n_features) for ``full``, (n_components, n_features)
        for ``diag``.
    precisions_ : array
        Inverse covariances, shaped as ``covariances_``.
    precisions_cholesky_ : array
        Upper-triangular U with ``U @ U.T = precision`` (full), or ``1 / sqrt(variance)``
        (diag).
    converged_ : bool
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean log-likelihood per sample of the training data (of the parameters before the
        last M-step, as scikit-learn).
    labels_ : array of shape (n_samples,), int32
        Most probable component of every training row.
    n_features_in_ : int

    All parameter arrays are float64 on X's device, whatever X's dtype; float32 input
    gives lower bounds within about 1e-5 relative of float64 input.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=np.float64)
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> np.round(gm.means_[np.argsort(gm.means_[:, 0])], 3).tolist()
    [[1.0, 2.0], [10.0, 2.0]]
    >>> gm.predict_proba(X).sum(axis=1).round(6).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    >>> bool(gm.predict(X)[0] != gm.predict(X)[3])
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start

    # ------------------------------------------------------------------ validation
    def _validate(self, X: Any) -> Any:
        """Check the parameters against X; return X as a float32/float64 array."""

        def is_int(value: Any) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        def is_number(value: Any) -> bool:
            return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)

        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"expected a 2-D array, got shape {getattr(X, 'shape', None)}")
        xp = array_namespace(X)
        if X.dtype not in (xp.float32, xp.float64):
            X = xp.asarray(X, dtype=xp.float64)
        if not is_int(self.n_components) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
        if X.shape[0] < max(2, self.n_components):
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_components={self.n_components} and >= 2")
        if X.shape[1] < 1:
            raise ValueError("X has no features")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be 'full' or 'diag', got {self.covariance_type!r}")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {', '.join(INIT_PARAMS)}, got {self.init_params!r}")
        if not is_number(self.tol) or self.tol < 0:
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}")
        if not is_number(self.reg_covar) or self.reg_covar < 0:
            raise ValueError(f"reg_covar must be a non-negative number, got {self.reg_covar!r}")
        if not is_int(self.max_iter) or self.max_iter < 0:
            raise ValueError(f"max_iter must be a non-negative integer, got {self.max_iter!r}")
        if not is_int(self.n_init) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive integer, got {self.n_init!r}")
        if self.warm_start and hasattr(self, "converged_") and self.means_.shape[1] != X.shape[1]:
            raise ValueError(f"warm start: X has {X.shape[1]} features, the model has {self.means_.shape[1]}")
        self._check_initial_parameters(X)
        return X

    def _check_initial_parameters(self, X: Any) -> None:
        """Validate ``weights_init``/``means_init``/``precisions_init`` and keep float64 copies."""
        xp = array_namespace(X)
        k, d = self.n_components, X.shape[1]

        def as_array(value: Any) -> Any:
            return xp.asarray(to_namespace(value, xp), dtype=xp.float64)

        self._weights_init = self._means_init = self._precisions_init = None
        if self.weights_init is not None:
            w = as_array(self.weights_init)
            if w.shape != (k,):
                raise ValueError(f"weights_init should have shape {(k,)}, got {w.shape}")
            if bool(((w < 0) | (w > 1)).any()):
                raise ValueError("weights_init should be in the range [0, 1]")
            if abs(float(w.sum()) - 1.0) > 1e-6:
                raise ValueError(f"weights_init should sum to 1, got {float(w.sum()):.6f}")
            self._weights_init = w
        if self.means_init is not None:
            m = as_array(self.means_init)
            if m.shape != (k, d):
                raise ValueError(f"means_init should have shape {(k, d)}, got {m.shape}")
            self._means_init = m
        if self.precisions_init is not None:
            p = as_array(self.precisions_init)
            shape = (k, d, d) if self.covariance_type == "full" else (k, d)
            if p.shape != shape:
                raise ValueError(f"precisions_init should have shape {shape} for '{self.covariance_type}', got {p.shape}")
            if self.covariance_type == "full":
                if not bool(xp.allclose(p, xp.swapaxes(p, -1, -2))):
                    raise ValueError("precisions_init should be symmetric, positive-definite")
                try:
                    _cholesky_lower(p)
                except ValueError:
                    raise ValueError("precisions_init should be symmetric, positive-definite") from None
            elif bool((p <= 0).any()):
                raise ValueError("precisions_init should be positive")
            self._precisions_init = p

    # ------------------------------------------------------------------ EM
    def _initial_responsibilities(self, X: Any, random_state: np.random.RandomState) -> Any:
        """(n, k) float64 starting responsibilities from ``init_params`` (scikit-learn's draws)."""
        xp = array_namespace(X)
        n = X.shape[0]
        k = self.n_components
        if self.init_params in ("kmeans", "k-means++"):
            # k-means is translation invariant, and its expanded distances lose float32 data
            # that sit far from the origin: run it on centred data
            X = (X - X.mean(axis=0, dtype=xp.float64)).astype(X.dtype)
        if self.init_params == "kmeans":
            # k-means++ seeds drawn as scikit-learn's KMeans draws them, then Lloyd from those
            # seeds in gpuseg's KMeans (scikit-learn on the host, cuML on the GPU)
            seeds, _ = kmeans_plusplus(X, k, random_state=random_state)
            labels = KMeans(k, init=seeds, n_init=1, random_state=0).fit(X).labels_
            return one_hot(xp, labels, k, xp.float64)
        if self.init_params == "random":
            resp = xp.asarray(random_state.uniform(size=(n, k)))
            return resp / resp.sum(axis=1)[:, None]
        if self.init_params == "random_from_data":
            rows = random_state.choice(n, size=k, replace=False)
        else:  # k-means++
            _, rows = kmeans_plusplus(X, k, random_state=random_state)
        resp = xp.zeros((n, k), dtype=xp.float64)
        resp[xp.asarray(rows), xp.arange(k)] = 1.0
        return resp

    def _initialize(self, X: Any, random_state: np.random.RandomState) -> None:
        """Set the starting parameters (scikit-learn's ``_initialize_parameters``)."""
        n = X.shape[0]
        given = (self._weights_init, self._means_init, self._precisions_init)
        if any(v is None for v in given):
            resp = self._initial_responsibilities(X, random_state)
            weights, means, covariances = _estimate_gaussian_parameters(X, resp, self.reg_covar, self.covariance_type)
            weights = weights / n
        else:
            weights = means = covariances = None
        self.weights_ = weights if self._weights_init is None else self._weights_init
        self.means_ = means if self._means_init is None else self._means_init
        if self._precisions_init is None:
            self.covariances_ = covariances
            self.precisions_cholesky_ = _compute_precision_cholesky(covariances, self.covariance_type)
        else:
            self.precisions_cholesky_ = _precision_cholesky_from_precisions(self._precisions_init, self.covariance_type)
            self.covariances_ = _covariances_from_precision_cholesky(self.precisions_cholesky_, self.covariance_type)

    def _estimate_weighted_log_prob(self, X: Any) -> Any:
        """log(weight_j) + log N(x | mu_j, Sigma_j), shape (n, k), float64."""
        xp = array_namespace(X)
        weights, means, prec_chol = (
            xp.asarray(to_namespace(a, xp)) for a in (self.weights_, self.means_, self.precisions_cholesky_)
        )
        log_prob = _estimate_log_gaussian_prob(X, means, prec_chol, self.covariance_type)
        return log_prob + xp.log(weights)[None, :]

    def _e_step(self, X: Any) -> tuple[Any, Any]:
        """Per-sample log-likelihood (n,) and log-responsibilities (n, k), float64."""
        weighted = self._estimate_weighted_log_prob(X)
        log_norm = _logsumexp_rows(weighted)
        return log_norm, weighted - log_norm[:, None]

    def _m_step(self, X: Any, log_resp: Any) -> None:
        xp = array_namespace(X)
        weights, self.means_, self.covariances_ = _estimate_gaussian_parameters(
            X, xp.exp(log_resp), self.reg_covar, self.covariance_type
        )
        self.weights_ = weights / weights.sum()
        self.precisions_cholesky_ = _compute_precision_cholesky(self.covariances_, self.covariance_type)

    def _get_parameters(self) -> tuple[Any, Any, Any, Any]:
        return self.weights_, self.means_, self.covariances_, self.precisions_cholesky_

    def _set_parameters(self, params: tuple[Any, Any, Any, Any]) -> None:
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params
        xp = array_namespace(self.means_)
        if self.covariance_type == "full":
            self.precisions_ = self.precisions_cholesky_ @ xp.swapaxes(self.precisions_cholesky_, -1, -2)
        else:
            self.precisions_ = self.precisions_cholesky_**2

    def _move_parameters(self, xp: Any) -> None:
        """Bring fitted parameters to ``xp`` (a warm start on another device)."""
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            setattr(self, name, xp.asarray(to_namespace(getattr(self, name), xp), dtype=xp.float64))

    def fit(self, X: Any, y: Any = None) -> "GaussianMixture":
        """Estimate the mixture with EM (``n_init`` runs, the best lower bound kept).

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy or CuPy; float32 and float64 are kept, other dtypes become float64.
        y : ignored

        Returns
        -------
        self

        Warns
        -----
        RuntimeWarning
            When the best initialisation did not converge within ``max_iter``.
        """
        X = as_float_array(X)
        X = self._validate(X)
        xp = array_namespace(X)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)
        if not do_init:
            self._move_parameters(xp)

        best_bound = -np.inf
        best_params = None
        best_n_iter = 0
        self.converged_ = False
        for _ in range(n_init):
            if do_init:
                self._initialize(X, random_state)
            bound = -np.inf if do_init else self.lower_bound_
            n_iter = 0
            converged = False
            for n_iter in range(1, self.max_iter + 1):
                previous = bound
                log_norm, log_resp = self._e_step(X)
                self._m_step(X, log_resp)
                bound = float(log_norm.mean())
                if abs(bound - previous) < self.tol:
                    converged = True
                    break
            if best_params is None or bound > best_bound:
                best_bound = bound
                best_params = self._get_parameters()
                best_n_iter = n_iter
                self.converged_ = converged
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "GaussianMixture: the best initialisation did not converge; try other init "
                "parameters, a larger max_iter or tol, or check for degenerate data.",
                RuntimeWarning,
                stacklevel=2,
            )
        self._set_parameters(best_params)
        self.counts_ = self.weights_ * X.shape[0]  # what the fit stands for in a later partial_fit
        self.n_iter_ = best_n_iter
        self.lower_bound_ = best_bound
        _, log_resp = self._e_step(X)
        self.labels_ = log_resp.argmax(axis=1).astype(xp.int32)
        self.n_features_in_ = X.shape[1]
        return self

    # ------------------------------------------------------------------ state and updates
    @classmethod
    def from_arrays(cls, weights: Any, means: Any, covariances: Any, precisions_cholesky: Any, *,
                    counts: Any = None, **params: Any) -> "GaussianMixture":
        """A fitted mixture from its parameter arrays (as :meth:`to_arrays` gives them and a
        saved model keeps them), ready for :meth:`predict` and :meth:`partial_fit`.

        Parameters
        ----------
        weights, means, covariances, precisions_cholesky : arrays on one device
            Shaped as the attributes of the same names.
        counts : array of shape (n_components,), optional
            The customers each component stands for: the weight of the current mixture
            against a new batch in :meth:`partial_fit` (default there: ``weights_`` times
            the batch's size).
        **params
            Constructor parameters (``covariance_type``, ``reg_covar``, ``max_iter``,
            ``tol``, ...); ``n_components`` comes from ``means``.
        """
        xp = array_namespace(means)
        means = xp.asarray(to_namespace(means, xp), dtype=xp.float64)
        if means.ndim != 2 or 0 in means.shape:
            raise ValueError(f"from_arrays: means must have shape (n_components, n_features), got {means.shape}")
        est = cls(n_components=int(means.shape[0]), **params)
        if est.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {est.covariance_type!r}")
        state = tuple(xp.asarray(to_namespace(a, xp), dtype=xp.float64)
                      for a in (weights, means, covariances, precisions_cholesky))
        _check_state_shapes(state, est.covariance_type)
        est._set_parameters(state)
        if counts is not None:
            est.counts_ = xp.asarray(to_namespace(counts, xp), dtype=xp.float64)
            if est.counts_.shape != state[0].shape:
                raise ValueError(f"from_arrays: counts must have shape {state[0].shape}, got {est.counts_.shape}")
        est.n_features_in_ = int(means.shape[1])
        est.converged_, est.n_iter_, est.lower_bound_ = True, 0, -np.inf
        return est

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Host float64 copies of ``weights``, ``means``, ``covariances``,
        ``precisions_cholesky`` (and ``counts`` when known): what :meth:`from_arrays` takes."""
        names = ("weights", "means", "covariances", "precisions_cholesky") + (("counts",) if hasattr(self, "counts_")
                                                                             else ())
        return {name: np.asarray(to_host(getattr(self, name + "_")), dtype=np.float64) for name in names}

    def partial_fit(self, X: Any, y: Any = None) -> "GaussianMixture":
        """Update the fitted mixture with a new batch by incremental EM (unfitted: :meth:`fit`).

        The current mixture's sufficient statistics (its weights times ``counts_``
        customers) stay fixed; the batch's are re-estimated every iteration, for up to
        ``max_iter`` iterations until the batch's mean log-likelihood changes by less than
        ``tol``. Sets ``counts_`` (old plus the batch's), ``batch_counts_`` (the soft count
        each component received), ``n_iter_``, ``converged_`` and ``lower_bound_`` (of the
        batch). ``labels_`` is not set (the batch is not the training data).
        """
        if not hasattr(self, "precisions_cholesky_"):
            return self.fit(X)
        X = self._check_predict_X(X)
        xp = array_namespace(X)
        X = xp.asarray(X, dtype=xp.float64)
        self._move_parameters(xp)
        No = (xp.asarray(to_namespace(self.counts_, xp), dtype=xp.float64) if hasattr(self, "counts_")
              else self.weights_ * X.shape[0])
        mo, Co = self.means_, self.covariances_
        prev, nk, self.converged_, self.n_iter_ = -math.inf, xp.zeros_like(No), False, 0
        for self.n_iter_ in range(1, int(self.max_iter) + 1):
            log_norm, log_resp = self._e_step(X)
            nk, mn, Cn = _estimate_gaussian_parameters(X, xp.exp(log_resp), self.reg_covar, self.covariance_type)
            N = No + nk
            mu = (No[:, None] * mo + nk[:, None] * mn) / N[:, None]
            if self.covariance_type == "full":
                def outer(m: Any) -> Any:
                    return m[:, :, None] * m[:, None, :]
                cov = ((No[:, None, None] * (Co + outer(mo)) + nk[:, None, None] * (Cn + outer(mn)))
                       / N[:, None, None] - outer(mu))
            else:
                cov = (No[:, None] * (Co + mo ** 2) + nk[:, None] * (Cn + mn ** 2)) / N[:, None] - mu ** 2
            self._set_parameters((N / N.sum(), mu, cov, _compute_precision_cholesky(cov, self.covariance_type)))
            self.lower_bound_ = float(log_norm.mean())
            if abs(self.lower_bound_ - prev) < self.tol:
                self.converged_ = True
                break
            prev = self.lower_bound_
        self.counts_, self.batch_counts_ = No + nk, nk
        return self

    # ------------------------------------------------------------------ inference
    def _check_predict_X(self, X: Any) -> Any:
        if not hasattr(self, "precisions_cholesky_"):
            raise AttributeError("this GaussianMixture instance is not fitted yet; call fit first")
        X = as_float_array(X)  # finite numbers only
        if X.ndim != 2 or X.shape[1] != self.means_.shape[1]:
            raise ValueError(f"expected a 2-D array with {self.means_.shape[1]} features, got shape {X.shape}")
        return X

    def score_samples(self, X: Any) -> Any:
        """Log-likelihood of each sample under the mixture, shape (n_samples,), float64."""
        X = self._check_predict_X(X)
        return _logsumexp_rows(self._estimate_weighted_log_prob(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def predict(self, X: Any) -> Any:
        """Most probable component of each sample (int32)."""
        X = self._check_predict_X(X)
        return self._estimate_weighted_log_prob(X).argmax(axis=1).astype(array_namespace(X).int32)

    def predict_proba(self, X: Any) -> Any:
        """Posterior probability of each component, shape (n_samples, n_components), float64.

        Rows sum to 1; the largest entry of a row is the confidence of its label.
        """
        X = self._check_predict_X(X)
        xp = array_namespace(X)
        _, log_resp = self._e_step(X)
        return xp.exp(log_resp)

    def _n_parameters(self) -> int:
        return _n_parameters(self.n_components, self.means_.shape[1], self.covariance_type)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion of the model on X (lower is better)."""
        return -2 * self.score(X) * X.shape[0] + self._n_parameters() * math.log(X.shape[0])

    def aic(self, X: Any) -> float:
        """Akaike information criterion of the model on X (lower is better)."""
        return -2 * self.score(X) * X.shape[0] + 2 * self._n_parameters()
