"""The scikit-learn estimator protocol without importing scikit-learn.

``get_params``/``set_params`` read the ``__init__`` signature as scikit-learn's
``BaseEstimator`` does, so ``sklearn.base.clone``, grid searches and pipelines accept
gpuseg estimators, while ``import gpuseg.cluster`` stays light (scikit-learn's import
costs over a second and the GPU path never needs it).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import numpy as np

from .._xp import nearest_center, squared_distances
from ..backend import array_namespace, frame_to_array, is_gpu_array, is_gpu_frame, to_namespace

__all__ = ["EstimatorMixin", "CentroidMixin", "check_random_state", "seed_from", "as_float_array", "check_input"]

#: Methods whose X is checked before they run (scikit-learn's ``validate_data``): fitting
#: ones learn the width, the others must match it and need a fitted estimator.
_FIT_METHODS = ("fit", "partial_fit")
_FITTED_METHODS = ("predict", "predict_proba", "transform", "score", "score_samples")


def check_random_state(seed: Any) -> np.random.RandomState:
    """``None``, an int or a RandomState -> RandomState (scikit-learn's convention)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, (int, np.integer)):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a RandomState")


def seed_from(random_state: Any) -> int:
    """An int seed for libraries that take one (cuML, CuPy), drawn from ``random_state``."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _not_fitted(est: Any) -> Exception:
    """scikit-learn's ``NotFittedError`` (a ValueError and an AttributeError), imported only
    when raised; an AttributeError where scikit-learn is missing."""
    msg = f"this {type(est).__name__} instance is not fitted yet; call fit first"
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return AttributeError(msg)
    return NotFittedError(msg)


def _feature_names(X: Any) -> np.ndarray | None:
    """The column names of a data frame (pandas, cuDF, Dask, polars) as an object array when
    all are strings, else None (scikit-learn's rule; mixing strings with other names is a
    TypeError there and here). Arrays have no names."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray) or is_gpu_array(X) or len(columns) == 0:
        return None
    names = np.fromiter(columns, dtype=object, count=len(columns))
    types = sorted({type(n).__qualname__ for n in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(f"Feature names are only supported if all input features have string names, but your "
                        f"input has {types} as feature name / column name types. Convert them all to strings "
                        "(X.columns = X.columns.astype(str)) or pass an array.")
    return names if types == ["str"] else None


def _check_feature_names(est: Any, X: Any, *, reset: bool) -> None:
    """scikit-learn's ``feature_names_in_``: fitting on a frame with string column names sets
    it, fitting on anything else removes it; later calls must give the same names in the
    same order (ValueError, scikit-learn's message), and a warning where only one side
    has names."""
    names = _feature_names(X)
    if reset:
        if names is not None:
            est.feature_names_in_ = names
        elif hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
        return
    fitted = getattr(est, "feature_names_in_", None)
    if fitted is None or names is None:
        if fitted is not None or names is not None:
            warnings.warn(f"X has feature names, but {type(est).__name__} was fitted without feature names"
                          if fitted is None else f"X does not have valid feature names, but {type(est).__name__} "
                          "was fitted with feature names", UserWarning, stacklevel=4)
        return
    if len(fitted) == len(names) and bool((fitted == names).all()):
        return
    unseen, missing = sorted(set(names) - set(fitted)), sorted(set(fitted) - set(names))
    message = "The feature names should match those that were passed during fit.\n"
    for title, group in (("Feature names unseen at fit time:\n", unseen),
                         ("Feature names seen at fit time, yet now missing:\n", missing)):
        if group:
            message += title + "".join(f"- {n}\n" for n in group[:5]) + ("- ...\n" if len(group) > 5 else "")
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def check_input(est: Any, X: Any, *, reset: bool) -> None:
    """What scikit-learn's ``validate_data`` checks, with its messages, without converting
    X (the method converts it): a fitted estimator and X of its width (``reset=False``),
    dense, real, 2-D, at least one feature (and one sample when fitting), and the feature
    names of a data frame (:func:`_check_feature_names`). Finite values are checked by
    :func:`as_float_array`."""
    if not reset and not hasattr(est, "n_features_in_"):
        raise _not_fitted(est)
    if "sparse" in type(X).__module__:  # scipy.sparse, cupyx.scipy.sparse
        raise TypeError(f"{type(est).__name__}: sparse input is not supported; pass a dense array (X.toarray())")
    shape = getattr(X, "shape", None)
    if shape is None:
        X = np.asarray(X)
        shape = X.shape
    if getattr(getattr(X, "dtype", None), "kind", None) == "c":
        raise ValueError("Complex data not supported")
    if len(shape) != 2:
        raise ValueError(f"expected a 2-D array, got shape {tuple(shape)}. Reshape your data either using "
                         "X.reshape(-1, 1) if your data has a single feature or X.reshape(1, -1) if it contains a "
                         "single sample.")
    if shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    if reset and isinstance(shape[0], (int, np.integer)) and shape[0] == 0:  # lazy (Dask) row counts pass
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    _check_feature_names(est, X, reset=reset)
    if not reset and shape[1] != est.n_features_in_:
        raise ValueError(f"X has {shape[1]} features, but {type(est).__name__} is expecting {est.n_features_in_} "
                         "features as input")


def _checked(fn: Any, name: str) -> Any:
    """``fn`` with :func:`check_input` first (``partial_fit`` learns the width when unfitted)."""
    if getattr(fn, "_checks_input", False):
        return fn

    @functools.wraps(fn)
    def method(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        reset = name == "fit" or (name == "partial_fit" and not hasattr(self, "n_features_in_"))
        check_input(self, X, reset=reset)
        return fn(self, X, *args, **kwargs)

    method._checks_input = True
    return method


class EstimatorMixin:
    """``get_params``, ``set_params``, ``fit_predict`` and a readable ``repr``; every
    subclass's fit, partial_fit, predict, predict_proba, transform, score and score_samples
    check their X first (:func:`check_input`)."""

    _estimator_type = "clusterer"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _FIT_METHODS + _FITTED_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _checked(cls.__dict__[name], name))

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator, as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "EstimatorMixin":
        """Set parameters; unknown names raise ``ValueError``."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit (``fit_params`` go to ``fit``, e.g. the consensus' ``member_labels``) and
        return ``labels_``."""
        return self.fit(X, y, **fit_params).labels_

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags (scikit-learn >= 1.6 asks every estimator for them:
        ``GridSearchCV``, ``Pipeline``, ``clone``). Imported here, when scikit-learn asks, so
        ``import gpuseg.cluster`` does not import scikit-learn."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type="clusterer", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags() if hasattr(self, "transform") else None,
                    input_tags=InputTags(allow_nan=False), non_deterministic=False)

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        shown = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if isinstance(value, str) or value is None or isinstance(value, (int, float, bool)):
                if value == default:
                    continue
                shown.append(f"{name}={value!r}")
            else:
                shown.append(f"{name}=<{type(value).__name__}>")
        return f"{type(self).__name__}({', '.join(shown)})"


def as_float_array(X: Any) -> Any:
    """NumPy/CuPy array from an array or a (pandas/cuDF) frame; dtypes other than float32
    and float64 become float64. Arrays already in shape are returned as they are.

    Raises
    ------
    ValueError
        ``X`` holds NaN or infinite values (scikit-learn's ``check_array`` does the same).
    """
    if is_gpu_frame(X) or (not is_gpu_array(X) and hasattr(X, "to_numpy")):
        X = frame_to_array(X, dtype=np.float64)
    elif not is_gpu_array(X):
        X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.size and not bool(array_namespace(X).isfinite(X).all()):  # NaN would silently become segment 0
        raise ValueError("X contains NaN or infinity; gpuseg estimators need finite numbers (impute or drop "
                         "those rows first)")
    return X


class CentroidMixin:
    """``predict``, ``transform`` and ``score`` for estimators with ``cluster_centers_``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _FITTED_METHODS:  # the mixin's own predict, transform and score
            own = CentroidMixin.__dict__.get(name)
            if own is not None and getattr(cls, name, None) is own:  # not overridden on the way
                setattr(cls, name, _checked(own, name))

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise _not_fitted(self)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit, then the distances of X to every centre."""
        return self.fit(X).transform(X)

    def _centers_for(self, X: Any) -> tuple[Any, Any]:
        """(X as a float array, the centres on its device in its dtype)."""
        self._check_fitted()
        X = as_float_array(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; expected (n_samples, {self.n_features_in_})")
        xp = array_namespace(X)
        return X, xp.asarray(to_namespace(self.cluster_centers_, xp), dtype=X.dtype)

    def predict(self, X: Any) -> Any:
        """Index (int32) of the closest centre for each sample."""
        X, centers = self._centers_for(X)
        return nearest_center(X, centers)[0]

    def transform(self, X: Any) -> Any:
        """Euclidean distances to every centre, shape (n_samples, n_clusters)."""
        X, centers = self._centers_for(X)
        return array_namespace(X).sqrt(squared_distances(X, centers))

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the inertia of X under the fitted centres."""
        X, centers = self._centers_for(X)
        _, dist = nearest_center(X, centers)
        return -float(dist.astype(array_namespace(X).float64).sum())
