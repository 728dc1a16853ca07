"""Embeddings of the scaled feature matrix: the autoencoder (torch), PCA and UMAP.

Importing this package imports neither torch nor a GPU library; the autoencoder imports
torch when it is fitted (:func:`gpuseg.backend.torch_module`), the projections are loaded
on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .autoencoder import Autoencoder

__all__ = ["Autoencoder", "PCA", "UMAP"]

_LAZY = {"PCA": ".projection", "UMAP": ".projection"}


def __getattr__(name: str) -> Any:  # PEP 562: the projections load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
