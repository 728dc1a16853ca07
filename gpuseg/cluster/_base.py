"""The scikit-learn estimator protocol without importing scikit-learn.

``get_params``/``set_params`` read the ``__init__`` signature as scikit-learn's
``BaseEstimator`` does, so ``sklearn.base.clone``, grid searches and pipelines accept
gpuseg estimators, while ``import gpuseg.cluster`` stays light (scikit-learn's import
costs over a second and the GPU path never needs it).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

__all__ = ["EstimatorMixin", "check_random_state", "seed_from"]


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


class EstimatorMixin:
    """``get_params``, ``set_params``, ``fit_predict`` and a readable ``repr``."""

    _estimator_type = "clusterer"

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

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """Fit and return ``labels_``."""
        return self.fit(X).labels_

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
