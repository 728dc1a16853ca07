"""Scaling of the feature matrix: log1p for skewed features, then standard scaling.

Written once over the array namespace; the fitted parameters are kept (``log_mask_``,
``mean_``, ``scale_``) so that new customers can be placed on the same scale later.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backend import array_namespace, frame_to_array, to_host

__all__ = ["FeatureScaler", "skewness"]


def skewness(X: Any) -> Any:
    """Sample skewness (Fisher-Pearson, biased) of each column; 0 for constant columns."""
    xp = array_namespace(X)
    X = X.astype(xp.float64)
    mu = X.mean(axis=0)
    d = X - mu
    m2 = (d * d).mean(axis=0)
    m3 = (d * d * d).mean(axis=0)
    varies = m2 > _var_floor(X, xp)
    safe = xp.where(varies, m2, 1.0)
    return xp.where(varies, m3 / safe**1.5, 0.0)


def _var_floor(X: Any, xp: Any) -> Any:
    """Variance below which a column counts as constant (round-off, not signal)."""
    eps = 10 * np.finfo(np.float64).eps
    return (eps * xp.maximum(xp.abs(X).max(axis=0), 1.0)) ** 2 if X.shape[0] else 0.0


class FeatureScaler:
    """log1p on skewed non-negative features, zero mean and unit variance, then a weight per
    feature (:mod:`gpuseg.prep.represent`; 1 for every feature until :meth:`set_weights`).

    Parameters
    ----------
    log_skewed : bool, default=True
        Apply ``log1p`` to columns whose skewness exceeds ``skew_threshold`` and whose
        values are all non-negative.
    skew_threshold : float, default=1.0
    bounded : sequence of int or bool mask, optional
        Columns never log-transformed (shares and rates in [0, 1]).
    dtype : dtype, default=numpy.float32
        Output dtype.

    Attributes
    ----------
    log_mask_ : ndarray of bool, shape (n_features,)
        Host array: which columns were log-transformed.
    mean_, scale_ : ndarray, shape (n_features,)
        Host arrays; ``scale_`` is 1 for constant columns.
    skew_ : ndarray, shape (n_features,)
        Skewness of each raw column (host).
    weights_ : ndarray, shape (n_features,)
        Host array: each standardised column is multiplied by its weight (0 leaves it out).
    n_features_in_ : int
    feature_names_in_ : ndarray of str (object), shape (n_features,)
        Only when fitted on a DataFrame with string column names: :meth:`transform` then
        reads a DataFrame by these names, in this order.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.5], [2.0, 0.1], [100.0, 0.9]])
    >>> Z = FeatureScaler(bounded=[1]).fit_transform(X)
    >>> Z.shape, Z.dtype
    ((3, 2), dtype('float32'))
    """

    def __init__(
        self,
        *,
        log_skewed: bool = True,
        skew_threshold: float = 1.0,
        bounded: Sequence[int] | Sequence[bool] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.log_skewed = log_skewed
        self.skew_threshold = skew_threshold
        self.bounded = bounded
        self.dtype = dtype

    def _frame_values(self, X: Any, *, reset: bool) -> Any:
        """A pandas/cuDF DataFrame's values as a float64 array on its device. Fitting on one
        with string column names keeps them (``feature_names_in_``); a later frame is then
        read by those names, in the fitted order (other columns are ignored; a missing one is
        a ValueError). A saved model's scaler has its feature names (``load_model``). A
        scaler without names (fitted on an array) takes the frame's columns as they come."""
        names = list(X.columns) if all(isinstance(c, str) for c in X.columns) else None
        if reset:
            if names:
                self.feature_names_in_ = np.asarray(names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif names is not None and getattr(self, "feature_names_in_", None) is not None:
            fitted = [str(n) for n in self.feature_names_in_]
            have = set(names)
            missing = [n for n in fitted if n not in have]
            if missing:
                raise ValueError(f"X lacks {len(missing)} of the {len(fitted)} features the scaler was fitted on: "
                                 f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
            if names != fitted:
                X = X[fitted]
        try:
            return frame_to_array(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the feature frame must hold numbers only ({exc})") from None

    def _check(self, X: Any, *, reset: bool = False) -> tuple[Any, Any]:
        """(X as an array, its namespace): a DataFrame gives its values (:meth:`_frame_values`);
        2-D and finite."""
        if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # a pandas or cuDF DataFrame
            X = self._frame_values(X, reset=reset)
        else:
            if reset and hasattr(self, "feature_names_in_"):  # refitted on an array: no names
                del self.feature_names_in_
            X = X if hasattr(X, "ndim") else np.asarray(X)
        xp = array_namespace(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D feature matrix, got shape {X.shape}")
        if not bool(xp.isfinite(X).all()):
            raise ValueError("feature matrix contains NaN or infinite values")
        return X, xp

    def fit(self, X: Any, y: Any = None) -> "FeatureScaler":
        """Choose the log columns and the standardisation parameters."""
        X, xp = self._check(X, reset=True)
        n_features = X.shape[1]
        bounded = np.zeros(n_features, dtype=bool)
        if self.bounded is not None:
            b = np.asarray(self.bounded)
            if b.dtype == bool:
                bounded[:] = b
            elif b.size:
                bounded[b.astype(int)] = True
        X64 = X.astype(xp.float64)
        skew = _to_host(skewness(X64))
        nonneg = _to_host(X64.min(axis=0) >= 0) if X.shape[0] else np.ones(n_features, bool)
        self.skew_ = skew
        self.log_mask_ = (
            (skew > self.skew_threshold) & nonneg & ~bounded if self.log_skewed else np.zeros(n_features, bool)
        )
        T = self._log(X64, xp)
        self.mean_ = _to_host(T.mean(axis=0))
        var = _to_host(T.var(axis=0))
        self.scale_ = np.where(var > _to_host(_var_floor(T, xp)), np.sqrt(var), 1.0)
        self.weights_ = np.ones(n_features)
        self.n_features_in_ = n_features
        return self

    def set_weights(self, weights: Any) -> "FeatureScaler":
        """Multiply each standardised feature by ``weights`` from now on (non-negative)."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (self.n_features_in_,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"weights must be {self.n_features_in_} finite non-negative numbers")
        self.weights_ = w
        return self

    def _log(self, X: Any, xp: Any) -> Any:
        if not self.log_mask_.any():
            return X
        mask = xp.asarray(self.log_mask_)
        return xp.where(mask, xp.log1p(xp.maximum(X, 0.0)), X)

    def transform(self, X: Any) -> Any:
        """Scale ``X`` (an array, or a DataFrame: :meth:`_frame_values`) with the fitted
        parameters; returns a C-contiguous array of ``dtype``."""
        X, xp = self._check(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the scaler was fitted on {self.n_features_in_}")
        T = self._log(X.astype(xp.float64), xp)
        Z = (T - xp.asarray(self.mean_)) * xp.asarray(self.feature_weights() / self.scale_)
        return xp.ascontiguousarray(Z.astype(self.dtype))

    def feature_weights(self) -> np.ndarray:
        """The weight of every feature (host float64; ones when :meth:`set_weights` was not
        called): what a saved model keeps besides the scaling."""
        return getattr(self, "weights_", None) if getattr(self, "weights_", None) is not None else np.ones(
            len(self.mean_))

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Any) -> Any:
        """Back to the raw feature scale (float64); a feature of weight 0 comes back as its mean."""
        xp = array_namespace(Z)
        w = self.feature_weights()
        unweight = np.where(w > 0, self.scale_ / np.where(w > 0, w, 1.0), 0.0)
        T = Z.astype(xp.float64) * xp.asarray(unweight) + xp.asarray(self.mean_)
        if self.log_mask_.any():
            T = xp.where(xp.asarray(self.log_mask_), xp.expm1(T), T)
        return T

    def params(self, names: Sequence[str]) -> dict[str, dict[str, float]]:
        """Per-feature parameters by name (for metrics.json and saved models)."""
        return {
            str(n): {
                "log1p": bool(self.log_mask_[i]),
                "skew": float(self.skew_[i]),
                "mean": float(self.mean_[i]),
                "scale": float(self.scale_[i]),
                "weight": float(self.feature_weights()[i]),
            }
            for i, n in enumerate(names)
        }


def _to_host(x: Any) -> np.ndarray:
    return np.asarray(to_host(x))
