"""The embeddings ``--embed`` can put between scaling and clustering."""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["EMBEDDERS", "check_embedder_params", "embedder_params", "make_embedder"]

#: ``--embed`` name -> (module, class, the class's parameter for the output dimension).
EMBEDDERS = {
    "pca": (".projection", "PCA", "n_components"),
    "umap": (".projection", "UMAP", "n_components"),
    "autoencoder": (".autoencoder", "Autoencoder", "latent_dim"),
}


def _cls(name: str) -> type:
    module, cls, _ = EMBEDDERS[name]
    return getattr(importlib.import_module(module, __package__), cls)


def embedder_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``[embed.params]`` checked against the embedder's parameters.

    Raises
    ------
    ConfigError
        An unknown embedding or parameter name.
    """
    if name not in EMBEDDERS:
        raise ConfigError(f"--embed: unknown embedding {name!r}; choose from none, {', '.join(EMBEDDERS)}")
    params = dict(params or {})
    dim = EMBEDDERS[name][2]
    # the progress callback is the pipeline's, not a setting
    allowed = [p for p in _cls(name)._param_names() if p not in (dim, "random_state", "callback")]
    unknown = [p for p in params if p not in allowed]
    if unknown:
        raise ConfigError(f"config [embed.params]: unknown parameter {unknown[0]!r}; {name} takes {', '.join(allowed)}")
    return params


def check_embedder_params(name: str, n_components: int, params: Mapping[str, Any] | None = None) -> None:
    """Fail early, as a config error naming the setting, on ``[embed.params]`` values the
    embedder would reject when it is fitted (checked without fitting it).

    Raises
    ------
    ConfigError
    """
    params = embedder_params(name, params)
    est = make_embedder(name, n_components, 0, params)
    try:
        est._validate_params()
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        key = next((p for p in params if message.startswith(p)), next(iter(params), name))
        raise ConfigError(f"config [embed.params] {key}: {message}") from None


def make_embedder(name: str, n_components: int, random_state: int, params: Mapping[str, Any] | None = None,
                  **extra: Any) -> Any:
    """A fresh, unfitted embedder (``extra``: e.g. a progress callback)."""
    kwargs = {**embedder_params(name, params), EMBEDDERS[name][2]: n_components, "random_state": random_state}
    cls = _cls(name)
    kwargs.update({k: v for k, v in extra.items() if k in cls._param_names()})
    return cls(**kwargs)
