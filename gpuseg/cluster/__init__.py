"""Clustering estimators (scikit-learn API) and the registry of method names.

The names in :data:`METHOD_NAMES` are what users type in ``--methods``; they key
``metrics.json`` and the ``label_<name>`` columns of ``segments.parquet``. Only the
methods in :data:`AVAILABLE` are implemented in this version.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import ConfigError
from .kmeans import KMeans

__all__ = ["KMeans", "METHOD_NAMES", "AVAILABLE", "DEFAULT_METHODS", "make_estimator", "resolve_methods"]

#: Every method name of the design, in the order they are listed and run.
METHOD_NAMES = (
    "kmeans",
    "kmeans_random",
    "minibatch_kmeans",
    "gmm",
    "pso_kmeans",
    "som",
    "ward",
    "dbscan",
    "hdbscan",
    "deep_kmeans",
    "dec",
    "idec",
    "consensus",
)

_FACTORIES: dict[str, Callable[[int, int], Any]] = {
    "kmeans": lambda k, seed: KMeans(n_clusters=k, init="k-means++", random_state=seed),
    "kmeans_random": lambda k, seed: KMeans(n_clusters=k, init="random", random_state=seed),
}

#: Methods implemented in this version.
AVAILABLE = tuple(m for m in METHOD_NAMES if m in _FACTORIES)

#: What runs when ``--methods`` is not given: the best available method.
DEFAULT_METHODS = ("kmeans",)


def resolve_methods(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate ``--methods`` names; ``all`` expands to every available method.

    Raises
    ------
    ConfigError
        Unknown names, or names of methods not implemented yet.
    """
    if not names:
        return DEFAULT_METHODS
    out: list[str] = []
    for name in names:
        name = name.strip().lower()
        if name == "all":
            out.extend(m for m in AVAILABLE if m not in out)
            continue
        if name not in METHOD_NAMES:
            raise ConfigError(
                f"--methods: unknown method {name!r}; choose from {', '.join(METHOD_NAMES)} or all"
            )
        if name not in _FACTORIES:
            raise ConfigError(
                f"--methods: {name!r} is not available in this version yet; available: {', '.join(AVAILABLE)}"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def make_estimator(method: str, n_clusters: int, random_state: int) -> Any:
    """A fresh, unfitted estimator for a method name."""
    return _FACTORIES[method](n_clusters, random_state)
