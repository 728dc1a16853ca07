"""Segment profiles: size, share and feature means per segment (small host frames)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ..backend import to_host

__all__ = ["segment_profiles", "order_by_size", "placeholder_names"]


def order_by_size(labels: Any) -> Any:
    """Relabel so that segment 0 is the largest (ties by old label); same array type.

    Noise labels (negative) stay negative.
    """
    import numpy as np

    from ..backend import array_namespace

    xp = array_namespace(labels)
    host = np.asarray(to_host(labels))
    valid = host[host >= 0]
    if valid.size == 0:
        return labels
    counts = np.bincount(valid)
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    order = [c for c in order if counts[c] > 0]
    lut = np.full(len(counts), -1, dtype=np.int32)
    lut[order] = np.arange(len(order), dtype=np.int32)
    lut_x = xp.asarray(lut)
    labels = xp.asarray(labels)
    return xp.where(labels >= 0, lut_x[xp.clip(labels, 0, None)], labels).astype(xp.int32)


#: The name of label -1: customers a density method leaves out of every segment.
UNASSIGNED = "unassigned"


def placeholder_names(segments: list[int]) -> dict[int, str]:
    """``segment N`` names until segment naming lands; -1 is ``unassigned``."""
    return {int(s): (UNASSIGNED if int(s) < 0 else f"segment {int(s)}") for s in segments}


def segment_profiles(
    features: Any,
    labels: Any,
    names: Mapping[int, str] | None = None,
    top_categories: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per-segment size, share and mean of every feature.

    Parameters
    ----------
    features : DataFrame
        Unscaled features, one row per customer (pandas or cuDF).
    labels : array
        Segment of each row (NumPy or CuPy).
    names : mapping, optional
        Segment -> name.
    top_categories : mapping, optional
        Feature column (``cat_*``) -> category name; adds ``top_category``, the category
        with the highest mean share.

    Returns
    -------
    pandas.DataFrame
        One row per segment: segment, segment_name, size, share, [top_category],
        then the feature means.
    """
    frame = features.reset_index(drop=True)
    frame["segment"] = labels
    g = frame.groupby("segment", sort=True)
    means = to_host(g.mean())
    sizes = to_host(g.size())
    prof = pd.DataFrame(index=means.index)
    names = {**placeholder_names(list(means.index)), **(names or {})}
    prof["segment_name"] = [names[int(s)] for s in means.index]
    prof["size"] = sizes.reindex(means.index).astype("int64")
    prof["share"] = prof["size"] / prof["size"].sum()
    if top_categories:
        cols = [c for c in top_categories if c in means.columns]
        if cols:
            prof["top_category"] = [top_categories[c] for c in means[cols].idxmax(axis=1)]
    prof = pd.concat([prof, means], axis=1)
    prof.index.name = "segment"
    return prof.reset_index()
