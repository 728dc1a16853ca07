"""Clustering estimators (scikit-learn API) and the registry of method names.

The names in :data:`METHOD_NAMES` are what users type in ``--methods``; they key
``metrics.json``, the ``label_<name>`` columns of ``segments.parquet`` and the
``[params.<name>]`` sections of a config file. :data:`METHODS` describes the ones
implemented in this version: the estimator behind each name, how its number of segments
is chosen, and its default parameters.

Estimator classes are imported lazily, so ``import gpuseg.cluster`` stays light.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from .kmeans import KMeans

__all__ = [
    "KMeans",
    "AdaptiveKMeans",
    "MiniBatchKMeans",
    "GaussianMixture",
    "PSOKMeans",
    "SelfOrganizingMap",
    "WardClustering",
    "DBSCAN",
    "HDBSCAN",
    "DeepKMeans",
    "DEC",
    "IDEC",
    "ConsensusClustering",
    "METHOD_NAMES",
    "METHODS",
    "AVAILABLE",
    "DEFAULT_METHODS",
    "DEEP_METHODS",
    "MethodSpec",
    "make_estimator",
    "resolve_methods",
    "method_params",
    "check_method_params",
    "consensus_members",
]

#: Every method name of the design, in the order they are listed and run.
METHOD_NAMES = (
    "adaptive_kmeans",
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

_CLASSES = {
    "AdaptiveKMeans": ".adaptive",
    "MiniBatchKMeans": ".minibatch",
    "GaussianMixture": ".gmm",
    "PSOKMeans": ".pso",
    "SelfOrganizingMap": ".som",
    "WardClustering": ".ward",
    "DBSCAN": ".density",
    "HDBSCAN": ".density",
    "DeepKMeans": ".deep",
    "DEC": ".deep",
    "IDEC": ".deep",
    "ConsensusClustering": ".consensus",
}


def __getattr__(name: str) -> Any:  # lazy estimator classes (PEP 562)
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class MethodSpec:
    """How a method name becomes a fitted segmentation.

    Attributes
    ----------
    name : str
    estimator : str
        Class name in :mod:`gpuseg.cluster`.
    k_param : str or None
        The estimator's parameter for the number of segments (None: found by density).
    k_rule : {"elbow", "bic", "density"}
        How k is chosen: the shared elbow + scores rule over the k range, the lowest BIC
        over the k range, or the clusters a density method finds.
    fixed : dict
        Parameters the method name implies (``kmeans_random``: ``init="random"``).
    defaults : dict
        gpuseg's defaults where they differ from the estimator's, for the built-in data.
    cpu_defaults : dict
        Further defaults on the CPU only (e.g. sampling limits that the GPU does not need).
    """

    name: str
    estimator: str
    k_param: str | None = "n_clusters"
    k_rule: str = "elbow"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    cpu_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cls(self) -> type:
        return KMeans if self.estimator == "KMeans" else __getattr__(self.estimator)

    def tunable(self) -> list[str]:
        """Parameters a user may set in ``[params.<name>]``."""
        # initial parameters depend on k and warm starts on an earlier fit: not settable per run
        skip = {self.k_param, "random_state", "callback", "weights_init", "means_init", "precisions_init",
                "warm_start", "member_params", *self.fixed}
        return [p for p in self.cls._param_names() if p not in skip]


METHODS: dict[str, MethodSpec] = {
    # K-means in a metric learned from its own segments (pooled within-segment covariance)
    "adaptive_kmeans": MethodSpec("adaptive_kmeans", "AdaptiveKMeans", cpu_defaults={"max_samples": 10_000}),
    "kmeans": MethodSpec("kmeans", "KMeans", fixed={"init": "k-means++"}),
    "kmeans_random": MethodSpec("kmeans_random", "KMeans", fixed={"init": "random"}),
    "minibatch_kmeans": MethodSpec("minibatch_kmeans", "MiniBatchKMeans"),
    "gmm": MethodSpec("gmm", "GaussianMixture", k_param="n_components", k_rule="bic",
                      defaults={"covariance_type": "diag"}),
    "pso_kmeans": MethodSpec("pso_kmeans", "PSOKMeans"),
    "som": MethodSpec("som", "SelfOrganizingMap"),
    "ward": MethodSpec("ward", "WardClustering"),
    # scikit-learn's DBSCAN/HDBSCAN take minutes beyond ~20k customers x 30 features on a
    # laptop: on the CPU they fit a fixed-seed sample of 20,000 and label the rest by predict
    # density in a few dozen dimensions is nearly uniform: both search it on 5 principal components
    "dbscan": MethodSpec("dbscan", "DBSCAN", k_param=None, k_rule="density", defaults={"n_components": 5},
                         cpu_defaults={"max_points": 20_000}),
    "hdbscan": MethodSpec("hdbscan", "HDBSCAN", k_param=None, k_rule="density", defaults={"n_components": 5},
                          cpu_defaults={"max_points": 20_000}),
    # the autoencoder is pretrained once per run; every k re-runs only the clustering phase
    "deep_kmeans": MethodSpec("deep_kmeans", "DeepKMeans"),
    "dec": MethodSpec("dec", "DEC"),
    "idec": MethodSpec("idec", "IDEC"),
    # combines its members' segmentations (they run too, and are reported on their own)
    "consensus": MethodSpec("consensus", "ConsensusClustering"),
}

#: Methods implemented in this version, in run order.
AVAILABLE = tuple(m for m in METHOD_NAMES if m in METHODS)

#: What runs when ``--methods`` is not given: K-means in a learned metric, the best answer per
#: second on the quality benchmark (bench/README.md).
DEFAULT_METHODS = ("adaptive_kmeans",)


#: The methods that need PyTorch.
DEEP_METHODS = ("deep_kmeans", "dec", "idec")


def consensus_members(params: Mapping[str, Any] | None = None, deep_available: bool = True) -> tuple[str, ...]:
    """The consensus' members: ``[params.consensus] members`` or the default hybrid, without
    the deep members when torch is missing (only for the default).

    Raises
    ------
    ConfigError
        Fewer than 2 members, or a member that is unknown, the consensus itself, or a
        density method (members are fitted at the consensus' k).
    """
    from .consensus import DEFAULT_MEMBERS

    given = (params or {}).get("members")
    if given is None:
        members = DEFAULT_MEMBERS if deep_available else tuple(m for m in DEFAULT_MEMBERS if m not in DEEP_METHODS)
        return tuple(members)
    if isinstance(given, str) or not all(isinstance(m, str) for m in given):
        raise ConfigError(f"config [params.consensus] members must be a list of method names, not {given!r}")
    members = tuple(dict.fromkeys(m.strip().lower() for m in given))
    for m in members:
        if m not in METHODS or m == "consensus" or METHODS[m].k_param is None:
            ok = [n for n in AVAILABLE if n != "consensus" and METHODS[n].k_param is not None]
            raise ConfigError(f"config [params.consensus] members: {m!r} cannot be a member; choose from {', '.join(ok)}")
    if len(members) < 2:
        raise ConfigError(f"config [params.consensus] members needs at least 2 methods, got {list(members)}")
    return members


def resolve_methods(
    names: tuple[str, ...] | list[str], consensus_params: Mapping[str, Any] | None = None,
    deep_available: bool = True,
) -> tuple[str, ...]:
    """Validate ``--methods`` names; ``all`` expands to every available method (without the
    deep ones, :data:`DEEP_METHODS`, when ``deep_available`` is False: torch is missing); the
    consensus brings its members (placed before it).

    Raises
    ------
    ConfigError
        Unknown names, or names of methods not implemented yet.
    """
    if not names:
        names = DEFAULT_METHODS
    out: list[str] = []
    for name in names:
        name = name.strip().lower()
        if name == "all":
            out.extend(m for m in AVAILABLE if m not in out and (deep_available or m not in DEEP_METHODS))
            continue
        if name not in METHOD_NAMES:
            raise ConfigError(f"--methods: unknown method {name!r}; choose from {', '.join(METHOD_NAMES)} or all")
        if name not in METHODS:
            raise ConfigError(
                f"--methods: {name!r} is not available in this version yet; available: {', '.join(AVAILABLE)}"
            )
        if name not in out:
            out.append(name)
    if "consensus" in out:  # every member runs before the consensus, which combines them
        at = out.index("consensus")
        before, after = out[:at], out[at + 1:]
        members = [m for m in consensus_members(consensus_params, deep_available) if m not in before]
        out = before + members + ["consensus"] + [m for m in after if m not in members]
    return tuple(out)


def method_params(method: str, user: Mapping[str, Any] | None = None, gpu: bool = False) -> dict[str, Any]:
    """The parameters a method runs with: gpuseg's defaults (and CPU defaults unless ``gpu``),
    then the user's ``[params.<name>]``.

    Raises
    ------
    ConfigError
        An unknown method or parameter name.
    """
    spec = METHODS.get(method)
    if spec is None:
        raise ConfigError(
            f"config [params.{method}]: {method!r} is not an available method; available: {', '.join(AVAILABLE)}"
        )
    user = dict(user or {})
    allowed = spec.tunable()
    unknown = [p for p in user if p not in allowed]
    if unknown:
        raise ConfigError(
            f"config [params.{method}]: unknown parameter {unknown[0]!r}; {method} takes {', '.join(allowed)}"
        )
    return {**spec.defaults, **({} if gpu else spec.cpu_defaults), **user}


def make_estimator(
    method: str, n_clusters: int | None, random_state: int, params: Mapping[str, Any] | None = None, **extra: Any
):
    """A fresh, unfitted estimator for a method name.

    Parameters
    ----------
    method : str
    n_clusters : int or None
        Ignored by density methods.
    random_state : int
    params : mapping, optional
        From :func:`method_params`.
    **extra
        Passed on where the estimator takes them (e.g. ``callback`` for training progress).
    """
    spec = METHODS[method]
    kwargs = {**spec.fixed, **dict(params if params is not None else method_params(method))}
    if spec.k_param is not None:
        kwargs[spec.k_param] = n_clusters
    kwargs["random_state"] = random_state
    names = spec.cls._param_names()
    kwargs.update({k: v for k, v in extra.items() if k in names and v is not None})
    return spec.cls(**kwargs)


def check_method_params(method: str, params: Mapping[str, Any], k_max: int) -> None:
    """Fail early, as a config error, on ``[params.<method>]`` values the estimator rejects.

    The estimator is fitted once on a small fixed random data set (2,000 x 6) at the largest
    k of the run: parameter checks happen in ``fit`` (scikit-learn's convention), and a
    wrong value should be reported before the user's data are loaded, naming the setting.
    Only the messages that name one of the user's settings count as config errors; other
    failures depend on the data and are left to the run.

    Raises
    ------
    ConfigError
    """
    import numpy as np

    if not params:
        return
    X = np.random.default_rng(0).normal(size=(2000, 6))
    try:
        if method == "consensus":  # fitting would fit every member: check its own settings only
            members = consensus_members(params)
            est = make_estimator(method, min(k_max, 50), 0, {**method_params(method, params), "members": members})
            est._validate()
            return
        make_estimator(method, min(k_max, 50), 0, method_params(method, params)).fit(X)
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        named = [p for p in params if re.search(rf"(?<![\w]){re.escape(p)}(?![\w])", message)]  # not init in n_init
        if named or isinstance(exc, TypeError):
            key = named[0] if named else next(iter(params))
            raise ConfigError(f"config [params.{method}] {key}: {message}") from None
