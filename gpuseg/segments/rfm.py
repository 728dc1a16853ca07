"""Classic RFM scores and named RFM segments, next to the learned segments.

Scores
    ``r_score``, ``f_score`` and ``m_score`` run from 1 to ``bins`` and are quantile bins
    of ``recency_days``, ``frequency`` and ``monetary``, as the common pandas recipe
    ``pd.qcut(x.rank(method="first"), bins, labels=False) + 1``: ranking first (ties broken
    by row order, i.e. by ``customer_id``) makes every bin the same size even when many
    customers share a value. Recency is reversed (``bins - label``): a recent customer
    scores high, and its quantiles are taken over all customers.

    Frequency and monetary differ in one point: a value ``<= 0`` (a customer who never
    bought, or whose purchases were all returned) always scores 1, and the recipe runs on
    the positive values only, ``pd.qcut(x[x > 0].rank(method="first"), bins, labels=False)
    + 1``. Ranking the many tied zeros by row order would otherwise spread non-buyers over
    scores 2 to ``bins`` and into "At risk", "Potential loyalists" or even "Loyal
    customers"; with F = M = 1 a non-buyer is always New customers, Promising, About to
    sleep or Lost. Fewer than two positive values cannot be binned: they score 1 as well.

    With ``cuts``, explicit cut points replace the quantiles for a measure (right-closed
    bins, like ``pd.cut``, zeros and negatives included).

Segments
    The widely used R x FM grid (Putler's eleven segments), with ``FM = ceil((f_score +
    m_score) / 2)`` and each score first spread onto the 1..5 scale as ``1 + round((score -
    1) * 4 / (bins - 1))`` (halves up; the identity for ``bins=5``):

    ======  ===============  ===================  ===================  ===============  ===============
    R \\ FM  1                2                    3                    4                5
    ======  ===============  ===================  ===================  ===============  ===============
    5       New customers    Potential loyalists  Potential loyalists  Loyal customers  Champions
    4       Promising        Potential loyalists  Potential loyalists  Loyal customers  Loyal customers
    3       About to sleep   About to sleep       Need attention       Loyal customers  Loyal customers
    2       Lost             Hibernating          At risk              At risk          At risk
    1       Lost             Lost                 At risk              At risk          Can't lose them
    ======  ===============  ===================  ===================  ===============  ===============

    The cells are Putler's ranges on a 0-5 scale (Champions R 4-5 / FM 4-5, Loyal customers
    R 2-5 / FM 3-5, Potential loyalists R 3-5 / FM 1-3, New customers R 4-5 / FM 0-1,
    Promising R 3-4 / FM 0-1, Need attention R 2-3 / FM 2-3, About to sleep R 2-3 / FM 0-2,
    At risk R 0-2 / FM 2-5, Can't lose them R 0-1 / FM 4-5, Hibernating R 1-2 / FM 1-2,
    Lost R 0-2 / FM 0-2) with score ``s`` covering ``(s - 1, s]`` and the narrower segment
    winning where two ranges overlap.

Scores and segments are computed where the features live (ranks, bin search and the grid
lookup on pandas/NumPy or cuDF/CuPy). The quantile edges of the ranks 1..n (n: the
customers, or the customers with a positive value) come from ``pandas.qcut`` itself, on the
host, so they match it bit for bit whatever the pandas version (an O(n) float array,
independent of the values).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..backend import array_namespace, frame_namespace, is_gpu_frame, series_values, to_host

__all__ = ["RFM_MEASURES", "RFM_SEGMENTS", "RFM_GRID", "rfm_scores", "rfm_crosstab"]

#: Score column -> feature it scores.
RFM_MEASURES = {"r_score": "recency_days", "f_score": "frequency", "m_score": "monetary"}

#: The named RFM segments, best first.
RFM_SEGMENTS: tuple[str, ...] = (
    "Champions",
    "Loyal customers",
    "Potential loyalists",
    "New customers",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Can't lose them",
    "Hibernating",
    "Lost",
)

_C, _L, _P, _N, _PR, _NA, _AS, _AR, _CL, _H, _LO = RFM_SEGMENTS
#: ``RFM_GRID[r - 1][fm - 1]``: the segment of R score r and FM score fm (1..5 each).
RFM_GRID: tuple[tuple[str, ...], ...] = (
    (_LO, _LO, _AR, _AR, _CL),  # R = 1
    (_LO, _H, _AR, _AR, _AR),  # R = 2
    (_AS, _AS, _NA, _L, _L),  # R = 3
    (_PR, _P, _P, _L, _L),  # R = 4
    (_N, _P, _P, _L, _C),  # R = 5
)


def rfm_scores(
    features: Any, bins: int = 5, cuts: Mapping[str, Sequence[float]] | None = None
) -> Any:
    """RFM scores and the named RFM segment of every customer.

    Parameters
    ----------
    features : DataFrame
        With ``recency_days``, ``frequency`` and ``monetary`` (pandas or cuDF), one row per
        customer.
    bins : int, default=5
        Number of score levels (at least 2).
    cuts : mapping, optional
        Measure (``"recency_days"``, ``"frequency"``, ``"monetary"``, or the score name
        ``"r_score"``, ...) -> ``bins - 1`` increasing cut points used instead of quantiles:
        a value ``v`` gets label ``i`` when ``cut[i-1] < v <= cut[i]`` (bins closed on the
        right, like ``pd.cut``), score ``i + 1`` (``bins - i`` for recency).

    Returns
    -------
    DataFrame
        Same library and index as ``features``; columns ``r_score``, ``f_score``,
        ``m_score`` (int32, 1..bins; recency reversed so recent is high; without ``cuts``
        a frequency or monetary value ``<= 0`` scores 1) and ``rfm_segment`` (str, one of
        :data:`RFM_SEGMENTS`).

    Raises
    ------
    ValueError
        A measure is missing, ``bins < 2``, or cut points are not ``bins - 1`` increasing
        numbers.

    Examples
    --------
    >>> import pandas as pd
    >>> feats = pd.DataFrame({"recency_days": [1.0, 50.0, 3.0, 90.0, 2.0], "frequency": [9.0, 1.0, 5.0, 4.0, 0.0],
    ...                       "monetary": [900.0, 10.0, 300.0, 200.0, 0.0]})
    >>> rfm_scores(feats, bins=2).values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [[2, 2, 2, 'Champions'], [1, 1, 1, 'Lost'], [2, 2, 2, 'Champions'], [1, 1, 1, 'Lost'],
     [2, 1, 1, 'New customers']]
    """
    missing = [m for m in RFM_MEASURES.values() if m not in features.columns]
    if missing:
        raise ValueError(f"RFM scores need the feature(s) {', '.join(missing)}")
    if int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer of at least 2, not {bins!r}")
    bins = int(bins)
    cut_points: dict[str, np.ndarray] = {}
    aliases = {**{m: m for m in RFM_MEASURES.values()}, **RFM_MEASURES}
    for key, points in (cuts or {}).items():
        if key not in aliases:
            raise ValueError(f"cuts: unknown measure {key!r} (use {', '.join(RFM_MEASURES.values())})")
        arr = np.asarray(points, dtype=np.float64)
        if arr.shape != (bins - 1,) or not np.all(np.diff(arr) > 0) or not np.all(np.isfinite(arr)):
            raise ValueError(f"cuts[{key!r}] must be {bins - 1} increasing finite numbers, got {list(points)}")
        cut_points[aliases[key]] = arr
    return _rfm_scores(features, bins, cut_points)


def _rfm_scores(features: Any, bins: int, cut_points: dict[str, np.ndarray]) -> Any:
    ns = frame_namespace(features)
    out = features[[]].copy()
    n = len(features)
    scores = {}
    for score, measure in RFM_MEASURES.items():
        if measure in cut_points:
            labels = _cut_labels(series_values(features[measure]), cut_points[measure])
        elif score == "r_score":
            labels = _quantile_labels(features[measure], bins, n)
        else:
            labels = _positive_quantile_labels(features[measure], bins)
        scores[score] = (bins - labels) if score == "r_score" else (labels + 1)
        out[score] = scores[score].astype("int32")
    out["rfm_segment"] = _grid_segments(scores["r_score"], scores["f_score"], scores["m_score"], bins, ns, out.index)
    return out


def _quantile_labels(values: Any, bins: int, n: int) -> Any:
    """0-based ``pd.qcut(values.rank(method="first"), bins, labels=False)`` on the values' device."""
    rank = series_values(values.rank(method="first"))
    xp = array_namespace(rank)
    if n < 2:  # pd.qcut cannot bin a single value; it gets the lowest label
        return xp.zeros(n, dtype=xp.int64)
    edges = np.asarray(_rank_edges(n, bins))
    # pd.cut's rule: searchsorted(side="left"), the lowest edge belonging to the first bin
    ids = xp.searchsorted(xp.asarray(edges), rank, side="left")
    return xp.clip(ids, 1, bins) - 1


def _positive_quantile_labels(values: Any, bins: int) -> Any:
    """0 for values <= 0; ``pd.qcut(x[x > 0].rank(method="first"), bins, labels=False)`` for the rest."""
    positive = values > 0
    n_positive = int(positive.sum())
    # ranks among the positive values only (the others are null and stay out of the ranking)
    rank = series_values(values.where(positive).rank(method="first").fillna(0))
    xp = array_namespace(rank)
    if n_positive < 2:
        return xp.zeros(len(rank), dtype=xp.int64)
    edges = np.asarray(_rank_edges(n_positive, bins))
    ids = xp.clip(xp.searchsorted(xp.asarray(edges), rank, side="left"), 1, bins) - 1
    return xp.where(series_values(positive), ids, 0)


@functools.lru_cache(maxsize=8)
def _rank_edges(n: int, bins: int) -> tuple[float, ...]:
    """The edges ``pd.qcut`` puts between the ranks 1..n (same for every measure)."""
    _, edges = pd.qcut(np.arange(1, n + 1, dtype=np.float64), bins, labels=False, retbins=True)
    return tuple(float(e) for e in edges)


def _cut_labels(values: Any, points: np.ndarray) -> Any:
    """0-based bins closed on the right: ``cut[i-1] < v <= cut[i]`` -> i."""
    xp = array_namespace(values)
    return xp.searchsorted(xp.asarray(points), values, side="left")


def _grid_segments(r: Any, f: Any, m: Any, bins: int, ns: Any, index: Any) -> Any:
    xp = array_namespace(r)

    def five(s):  # the score on the 1..5 scale: 1 + round((s - 1) * 4 / (bins - 1)), halves up
        return 1 + ((s - 1) * 8 + (bins - 1)) // (2 * (bins - 1))

    fm = -(-(five(f) + five(m)) // 2)
    lut = np.array([[RFM_SEGMENTS.index(name) for name in row] for row in RFM_GRID], dtype=np.int32).ravel()
    codes = xp.asarray(lut)[(five(r) - 1) * 5 + (fm - 1)]
    codes = ns.Series(codes, index=index)
    return codes.map(dict(enumerate(RFM_SEGMENTS)))


def rfm_crosstab(segment_labels: Any, rfm_segment: Any) -> pd.DataFrame:
    """Customers per (segment, RFM segment).

    Parameters
    ----------
    segment_labels : array or Series
        Segment of each customer (NumPy/CuPy array or pandas/cuDF Series).
    rfm_segment : array or Series
        RFM segment name of each customer, e.g. ``rfm_scores(...)["rfm_segment"]``, in the
        same row order.

    Returns
    -------
    pandas.DataFrame
        Index ``segment`` (ascending), one int64 column per RFM segment in
        :data:`RFM_SEGMENTS` order (all of them, zeros included); counted on the inputs'
        device, only the table comes to the host.

    Examples
    --------
    >>> import numpy as np
    >>> t = rfm_crosstab(np.array([0, 0, 1]), np.array(["Lost", "Champions", "Lost"]))
    >>> t[["Champions", "Lost"]].values.tolist()
    [[1, 1], [0, 1]]
    """
    if len(segment_labels) != len(rfm_segment):
        raise ValueError(f"{len(segment_labels)} segment labels for {len(rfm_segment)} RFM segments")
    gpu = is_gpu_frame(rfm_segment) or is_gpu_frame(segment_labels)
    seg = segment_labels.reset_index(drop=True) if hasattr(segment_labels, "reset_index") else segment_labels
    rfm = rfm_segment.reset_index(drop=True) if hasattr(rfm_segment, "reset_index") else rfm_segment
    if gpu:
        ns = frame_namespace(rfm_segment if is_gpu_frame(rfm_segment) else segment_labels)
        frame = ns.DataFrame({"segment": seg, "rfm_segment": rfm})
    else:
        frame = pd.DataFrame({"segment": to_host(seg), "rfm_segment": np.asarray(to_host(rfm), dtype=object)})
    counts = to_host(frame.groupby(["segment", "rfm_segment"]).size())
    table = counts.unstack("rfm_segment", fill_value=0) if len(counts) else pd.DataFrame()
    unknown = sorted(set(table.columns) - set(RFM_SEGMENTS))
    table = table.reindex(columns=list(RFM_SEGMENTS) + unknown, fill_value=0).fillna(0).astype("int64")
    table = table.sort_index()
    table.index = table.index.astype("int64")
    table.index.name = "segment"
    table.columns.name = "rfm_segment"
    return table
