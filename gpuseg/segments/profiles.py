"""Segment profiles: sizes, shares, feature statistics, activity by hour and top categories.

Everything here reduces on the data's device (pandas/NumPy or cuDF/CuPy) and brings only
small per-segment results to the host as pandas frames, NumPy arrays or dicts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..backend import array_namespace, is_gpu_frame, series_values, to_host

__all__ = [
    "segment_profiles",
    "order_by_size",
    "size_order",
    "placeholder_names",
    "segment_summary",
    "summary_table",
    "activity_grid",
    "top_shares",
    "unknown_shares",
    "MIN_LIFT",
]

#: The least lift (a segment's share of a category or brand over all customers') that
#: :func:`top_shares` (``by="lift"``) lists and :func:`segment_profiles` names as
#: ``top_category``: a lift of 1.05 is what any segment drawn at random shows, not a trait.
MIN_LIFT = 1.2


def size_order(labels: Any, n_labels: int = 0) -> np.ndarray:
    """The renumbering :func:`order_by_size` applies, as a host int32 lookup table.

    ``table[label]`` is the label's number by size (0 = largest, ties by old label); -1
    for a label no row has. The table covers 0..max(labels) and at least ``n_labels``
    entries (an estimator's empty clusters).
    """
    host = np.asarray(to_host(labels))
    valid = host[host >= 0]
    counts = np.bincount(valid, minlength=n_labels) if valid.size else np.zeros(n_labels, dtype=np.int64)
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    order = [c for c in order if counts[c] > 0]
    lut = np.full(len(counts), -1, dtype=np.int32)
    lut[order] = np.arange(len(order), dtype=np.int32)
    return lut


def order_by_size(labels: Any) -> Any:
    """Relabel so that segment 0 is the largest (ties by old label); same array type.

    Noise labels (negative) stay negative.
    """
    xp = array_namespace(labels)
    lut = size_order(labels)
    if lut.size == 0:
        return labels
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
        with the highest lift (mean share in the segment over the mean share of all
        customers) among those with a mean share of at least 2%, where that lift is at
        least :data:`MIN_LIFT`; None (an empty cell) where no category stands out so.

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
        if cols:  # the category the segment leans to most over the base, among its real shares
            base = (means[cols].mul(prof["size"], axis=0).sum() / prof["size"].sum()).replace(0.0, np.nan)
            lift = means[cols].div(base, axis=1).where(means[cols] >= 0.02).fillna(0.0)
            pick, best = lift.idxmax(axis=1), lift.max(axis=1)
            prof["top_category"] = [top_categories[c] if b >= MIN_LIFT else None for c, b in zip(pick, best)]
    prof = pd.concat([prof, means], axis=1)
    prof.index.name = "segment"
    return prof.reset_index()


# -- summary -------------------------------------------------------------------------------

#: Columns of :func:`segment_summary`, in order.
SUMMARY_COLUMNS = (
    "segment", "size", "share", "revenue_share", "feature", "mean", "median", "z", "overall_mean", "overall_std",
)


def segment_summary(features: Any, labels: Any, revenue_column: str | None = "monetary") -> pd.DataFrame:
    """Size, revenue share and per-feature mean, median and z-score of every segment.

    The group-bys (mean, median, sum, size) run where the features live (pandas or cuDF);
    only the per-segment results, ``segments x features`` numbers, come to the host.

    Parameters
    ----------
    features : DataFrame
        Unscaled features, one row per customer (pandas or cuDF; index ``customer_id``;
        numeric columns).
    labels : array
        Segment of each row (NumPy or CuPy); -1 marks customers no segment took
        (``unassigned``), which form a segment of their own here, so sizes add up to the
        number of customers and shares to 1.
    revenue_column : str or None, default="monetary"
        Feature holding each customer's spend, for ``revenue_share``; None leaves
        ``revenue_share`` as NaN.

    Returns
    -------
    pandas.DataFrame
        Long form, one row per (segment, feature), segments ascending (-1 first), features
        in column order, with columns

        ``segment`` (int), ``size`` (customers, int), ``share`` (size / customers),
        ``revenue_share`` (segment's sum of ``revenue_column`` / the total; 0 when the total
        is 0), ``feature``, ``mean``, ``median`` (the segment's), ``z`` (``(mean -
        overall_mean) / overall_std``, 0 where ``overall_std`` is 0), ``overall_mean`` and
        ``overall_std`` (over all customers, unassigned included; population standard
        deviation, ``ddof=0``).

    Raises
    ------
    ValueError
        ``labels`` does not have one entry per row, there are no feature columns, or
        ``revenue_column`` is not a column.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> feats = pd.DataFrame({"monetary": [10.0, 30.0, 0.0, 0.0]})
    >>> s = segment_summary(feats, np.array([0, 0, 1, -1]))
    >>> s["size"].tolist(), s["share"].tolist(), s["revenue_share"].tolist(), s["mean"].tolist()
    ([1, 2, 1], [0.25, 0.5, 0.25], [0.0, 1.0, 0.0], [0.0, 20.0, 0.0])
    >>> round(float(s["z"].iloc[1]), 3)  # (20 - 10) / 12.247
    0.816
    """
    columns = list(features.columns)
    if not columns:
        raise ValueError("segment_summary needs at least one feature column")
    if len(labels) != len(features):
        raise ValueError(f"labels has {len(labels)} entries for {len(features)} customers")
    if revenue_column is not None and revenue_column not in columns:
        raise ValueError(f"revenue column {revenue_column!r} is not a feature (columns: {', '.join(columns)})")
    return _segment_summary(features, labels, revenue_column)


def _segment_summary(features: Any, labels: Any, revenue_column: str | None) -> pd.DataFrame:
    columns = list(features.columns)
    frame = features.reset_index(drop=True)
    frame["segment"] = labels if is_gpu_frame(frame) else to_host(labels)
    g = frame.groupby("segment", sort=True)
    means = to_host(g.mean()).sort_index()
    medians = to_host(g.median()).reindex(means.index)
    sizes = to_host(g.size()).reindex(means.index).astype("int64")
    overall_mean = to_host(features.mean())
    overall_std = to_host(features.std(ddof=0))

    n = int(sizes.sum())
    segments = [int(s) for s in means.index]
    k, d = len(segments), len(columns)
    if revenue_column is None:
        revenue_share = np.full(k, np.nan)
    else:
        revenue = to_host(g[revenue_column].sum()).reindex(means.index).to_numpy(np.float64)
        total = float(revenue.sum())
        revenue_share = revenue / total if total != 0 else np.zeros(k)

    mean_v = means[columns].to_numpy(np.float64)
    mu = overall_mean[columns].to_numpy(np.float64)
    sd = overall_std[columns].to_numpy(np.float64)
    safe = np.where(sd > 0, sd, 1.0)
    z = np.where(sd > 0, (mean_v - mu) / safe, 0.0)
    size_v = sizes.to_numpy()
    return pd.DataFrame(
        {
            "segment": np.repeat(np.asarray(segments, dtype=np.int64), d),
            "size": np.repeat(size_v, d),
            "share": np.repeat(size_v / n if n else np.zeros(k), d),
            "revenue_share": np.repeat(revenue_share, d),
            "feature": np.tile(np.asarray(columns, dtype=object), k),
            "mean": mean_v.ravel(),
            "median": medians[columns].to_numpy(np.float64).ravel(),
            "z": z.ravel(),
            "overall_mean": np.tile(mu, k),
            "overall_std": np.tile(sd, k),
        },
        columns=list(SUMMARY_COLUMNS),
    )


def summary_table(summary: pd.DataFrame, value: str = "z") -> pd.DataFrame:
    """One column of a :func:`segment_summary` as a segments x features table.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`segment_summary`.
    value : {"z", "mean", "median"}, default="z"

    Returns
    -------
    pandas.DataFrame
        Index ``segment`` (ascending), one column per feature in the summary's order.
    """
    features = list(dict.fromkeys(summary["feature"]))
    table = summary.pivot(index="segment", columns="feature", values=value)
    return table.reindex(columns=features).sort_index()


# -- event-level views ---------------------------------------------------------------------

_HOURS_PER_WEEK = 7 * 24


def activity_grid(event_ts: Any, event_segment: Any, utc_offset_hours: float = 0.0) -> dict[int, np.ndarray]:
    """Share of each segment's events by weekday and hour of day.

    One ``bincount`` over ``segment * 168 + weekday * 24 + hour`` on the events' device;
    only the ``segments x 168`` counts come to the host.

    Parameters
    ----------
    event_ts : array of int
        Event times, Unix seconds (NumPy or CuPy, int64).
    event_segment : array of int
        Segment of each event's customer (same length and device); -1 for unassigned
        customers.
    utc_offset_hours : float, default=0.0
        Added to the UTC times before the weekday and hour are taken, as in
        :mod:`gpuseg.prep.features` (``[features] utc_offset_hours``).

    Returns
    -------
    dict of int to numpy.ndarray
        Segment -> float64 array of shape (7, 24): rows weekdays (0 = Monday), columns
        hours (0-23), summing to 1. Only segments with events appear.

    Examples
    --------
    >>> import numpy as np
    >>> ts = np.array([0, 3600, 4 * 86400 + 20 * 3600])  # Thu 00 h, Thu 01 h, Mon 20 h
    >>> grid = activity_grid(ts, np.array([0, 0, 1]))
    >>> grid[0][3, :2].tolist(), grid[1][0, 20].item()
    ([0.5, 0.5], 1.0)
    """
    event_ts, event_segment = _values(event_ts), _values(event_segment)
    xp = array_namespace(event_ts, event_segment)
    event_ts = xp.asarray(event_ts)
    event_segment = xp.asarray(event_segment)
    if event_ts.shape != event_segment.shape or event_ts.ndim != 1:
        raise ValueError("event_ts and event_segment must be 1-D arrays of the same length")
    if event_ts.size == 0:
        return {}
    local = event_ts.astype(xp.int64) + int(round(float(utc_offset_hours) * 3600))
    hour = (local // 3600) % 24
    weekday = ((local // 86400) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    seg = event_segment.astype(xp.int64)
    lo = int(seg.min())
    span = int(seg.max()) - lo + 1
    cell = (seg - lo) * _HOURS_PER_WEEK + weekday * 24 + hour
    counts = to_host(xp.bincount(cell, minlength=span * _HOURS_PER_WEEK)).reshape(span, 7, 24)
    out = {}
    for i in range(span):
        total = counts[i].sum()
        if total > 0:
            out[lo + i] = counts[i].astype(np.float64) / total
    return out


def top_shares(event_codes: Any, event_segment: Any, names: Sequence[str], top: int = 5, by: str = "share",
               min_share: float = 0.02, min_lift: float = MIN_LIFT) -> dict[int, list[dict]]:
    """Most frequent (``by="share"``) or most over-represented (``by="lift"``) categories
    (or brands) of each segment's events, with their shares and lift.

    The lift of a category in a segment is its share of the segment's events over its share
    of all events: 2 means the segment's events (views, carts and purchases alike in an
    event log, orders in an order log) fall in it twice as often as all events do. A
    category every segment shares ("electronics" everywhere) has lift near 1 in each, so
    ranking by lift shows what sets a segment apart. With ``by="lift"`` only categories with
    a lift of at least ``min_lift`` that hold at least ``min_share`` of the segment's events
    are listed (a lift of 1.05 or a category of 3 events is not a trait).

    Parameters
    ----------
    event_codes : array of int
        Code of each event's main category or brand, an index into ``names``; -1 (unknown)
        is left out, of the counts and of the shares' denominator (NumPy or CuPy).
    event_segment : array of int
        Segment of each event's customer (same length and device).
    names : sequence of str
        Name behind each code (``CleanedData.main_categories`` or ``brand_names``).
    top : int, default=5
        How many to keep per segment.

    by : {"share", "lift"}, default="share"
    min_share : float, default=0.02
        With ``by="lift"``, the least share of the segment's events a listed category has.
    min_lift : float, default=:data:`MIN_LIFT`
        With ``by="lift"``, the least lift a listed category has.

    Returns
    -------
    dict of int to list of dict
        Segment -> up to ``top`` entries ``{"name": str, "share": float, "base_share":
        float, "lift": float}``, share being the part of the segment's events with a known
        code and base_share the part of all events, largest share (or lift) first (ties by
        code). Every segment with events appears; one without a known code gets an empty
        list.

    Examples
    --------
    >>> import numpy as np
    >>> top_shares(np.array([0, 1, 1, -1, 0]), np.array([0, 0, 0, 0, 1]), ["kids", "auto"], top=1)
    {0: [{'name': 'auto', 'share': 0.6666666666666666, 'base_share': 0.5, 'lift': 1.3333333333333333}], \
1: [{'name': 'kids', 'share': 1.0, 'base_share': 0.5, 'lift': 2.0}]}
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    if by not in ("share", "lift"):
        raise ValueError(f"by must be 'share' or 'lift', not {by!r}")
    xp, codes, seg = _event_arrays(event_codes, event_segment)
    if codes.size == 0:
        return {}
    n_codes = len(names)
    if n_codes and int(codes.max()) >= n_codes:
        raise ValueError(f"event code {int(codes.max())} has no name ({n_codes} names)")
    lo = int(seg.min())
    span = int(seg.max()) - lo + 1
    present = to_host(xp.bincount(seg - lo, minlength=span)) > 0
    known = codes >= 0
    width = max(n_codes, 1)
    if bool(known.any()):
        cell = (seg[known] - lo) * width + codes[known]
        counts = to_host(xp.bincount(cell, minlength=span * width)).reshape(span, width)
    else:
        counts = np.zeros((span, width), dtype=np.int64)
    everyone = counts.sum(axis=0)
    base = everyone / max(int(everyone.sum()), 1)
    out: dict[int, list[dict]] = {}
    for i in np.flatnonzero(present):
        row = counts[i]
        total = max(int(row.sum()), 1)
        share = row / total
        lift = np.divide(share, base, out=np.zeros(width), where=base > 0)
        if by == "lift":
            ranked = np.lexsort((np.arange(width), -lift))
            order = [c for c in ranked if share[c] >= min_share and lift[c] >= min_lift and lift[c] > 1.0][:top]
        else:
            order = np.lexsort((np.arange(width), -row))[:top]
        out[lo + int(i)] = [
            {"name": str(names[c]), "share": float(share[c]), "base_share": float(base[c]), "lift": float(lift[c])}
            for c in order if row[c] > 0
        ]
    return out


def _event_arrays(event_codes: Any, event_segment: Any) -> tuple[Any, Any, Any]:
    """(xp, codes, segments) as int64 arrays on the inputs' device, checked to be 1-D and of
    one length."""
    event_codes, event_segment = _values(event_codes), _values(event_segment)
    xp = array_namespace(event_codes, event_segment)
    codes = xp.asarray(event_codes).astype(xp.int64)
    seg = xp.asarray(event_segment).astype(xp.int64)
    if codes.shape != seg.shape or codes.ndim != 1:
        raise ValueError("event_codes and event_segment must be 1-D arrays of the same length")
    return xp, codes, seg


def unknown_shares(event_codes: Any, event_segment: Any) -> dict[int, float]:
    """Share of each segment's events without a known code (-1: no category or brand),
    the events :func:`top_shares` leaves out of its shares.

    Examples
    --------
    >>> import numpy as np
    >>> unknown_shares(np.array([0, -1, 1, -1, 0]), np.array([0, 0, 0, 0, 1]))
    {0: 0.5, 1: 0.0}
    """
    xp, codes, seg = _event_arrays(event_codes, event_segment)
    if seg.size == 0:
        return {}
    lo = int(seg.min())
    span = int(seg.max()) - lo + 1
    total = to_host(xp.bincount(seg - lo, minlength=span))
    unknown = to_host(xp.bincount(seg - lo, weights=(codes < 0).astype(xp.float64), minlength=span))
    return {lo + i: float(unknown[i] / total[i]) for i in range(span) if total[i] > 0}


def _values(x: Any) -> Any:
    """A pandas/cuDF Series as an array on its device; arrays unchanged."""
    if isinstance(x, pd.Series) or (is_gpu_frame(x) and hasattr(x, "to_frame")):
        return series_values(x)
    return x
