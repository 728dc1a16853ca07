"""Everything a marketer reads about the chosen segmentation, in one JSON-ready dict.

:func:`segment_insights` runs the segment-intelligence steps in order on the chosen labels:

1. :func:`~gpuseg.segments.profiles.segment_summary`: size, share, revenue share and per
   feature mean, median and z-score;
2. :func:`~gpuseg.segments.naming.name_segments`: persona names by rules (the rule that
   fired is kept);
3. :func:`~gpuseg.segments.rfm.rfm_scores`: quintile R, F, M scores and the named RFM
   segments, cross-tabulated with the learned segments;
4. :func:`~gpuseg.segments.explain.explain_segments`: a shallow decision tree's readable
   rules per segment and its fidelity;
5. :func:`~gpuseg.segments.profiles.activity_grid` and
   :func:`~gpuseg.segments.profiles.top_shares`: activity by weekday x hour, top main
   categories and brands, from the cleaned events;
6. :func:`~gpuseg.segments.actions.segment_actions`: suggested marketing actions;
7. :func:`~gpuseg.segments.recommend.segment_recommendations`: the most purchased items
   per segment and the items bought with them.

The result is what ``insights.json`` holds and what ``report.html`` renders.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..backend import array_namespace, series_values, to_host
from .actions import segment_actions
from .explain import explain_segments
from .naming import name_segments
from .profiles import MIN_LIFT, activity_grid, segment_summary, top_shares, unknown_shares
from .recommend import label_items, segment_recommendations
from .rfm import rfm_crosstab, rfm_scores

__all__ = ["segment_insights", "event_segments", "effective_sizes"]


def event_segments(features_index: Any, event_customers: Any, labels: Any) -> tuple[Any, Any]:
    """Each event's customer position in the feature rows and its segment.

    Parameters
    ----------
    features_index : Index
        ``customer_id`` of the feature rows (pandas or cuDF).
    event_customers : Series
        ``customer_id`` of every cleaned event (same library).
    labels : array
        Segment of every feature row (NumPy or CuPy).

    Returns
    -------
    positions, segments : arrays on the labels' device
        Events of customers without features (none after cleaning) get -1 for both.
    """
    xp = array_namespace(labels)
    pos = xp.asarray(features_index.get_indexer(event_customers)).astype(xp.int64)
    seg = xp.where(pos >= 0, xp.asarray(labels)[xp.clip(pos, 0, None)], -1)
    return pos, seg


def _explanation_entry(explanation: Mapping[str, Any], max_depth: int) -> dict[str, Any]:
    """insights.json ``explanation``: the tree's fidelity, size and feature importances."""
    return {
        "fidelity": _num(explanation["fidelity"]),
        "fidelity_on": explanation["fidelity_on"],
        "max_depth": max_depth,
        "customers": int(explanation["customers"]),
        "sample_size": int(explanation["sample_size"]),
        "feature_importance": explanation["feature_importances"],
        "method": "scikit-learn DecisionTreeClassifier on the unscaled features (fitted on a fixed-seed "
                  "sample of at most 50,000 customers); a rule per leaf",
    }


def segment_insights(
    features: Any,
    labels: Any,
    cleaned: Any,
    *,
    category_columns: Mapping[str, str] | None = None,
    utc_offset_hours: float = 0.0,
    random_state: int = 0,
    max_depth: int = 4,
    top_items: int = 10,
    rfm_bins: int = 5,
    rfm_cuts: Mapping[str, Any] | None = None,
    confidence: Any = None,
    low_confidence: float = 0.5,
    spent: Any = None,
) -> tuple[dict[str, Any], dict[int, str], Any]:
    """Profiles, names, RFM, rules, activity, actions and recommendations of the segments.

    Parameters
    ----------
    features : DataFrame
        Unscaled features indexed by ``customer_id`` (pandas or cuDF).
    labels : array
        The chosen segment of every feature row, numbered by size (-1 = unassigned).
    cleaned : CleanedData
        The cleaned events or orders the features came from.
    rfm_bins, rfm_cuts
        Score levels and explicit cut points of :func:`~gpuseg.segments.rfm.rfm_scores`.
    confidence : array, optional
        Each customer's confidence: adds each segment's count and share below
        ``low_confidence``.
    spent : array, optional
        Each customer's spend before the price fence capped it (same rows as ``features``):
        the revenue shares then count it rather than the capped ``monetary``.

    Returns
    -------
    insights : dict
        JSON-ready: ``segments`` (one entry per segment), ``explanation``, ``rfm``.
    names : dict
        Segment -> its unique name.
    rfm : DataFrame
        ``r_score, f_score, m_score, rfm_segment`` per customer, on the features' device
        (empty of columns when the data have no RFM features).
    """
    summary = segment_summary(features, labels,
                              revenue_column="monetary" if "monetary" in features.columns else None)
    if spent is not None:
        summary = _revenue_shares(summary, labels, spent)
    naming = name_segments(summary, category_columns)
    names = {int(s): v["name"] for s, v in naming.items()}
    explanation = explain_segments(features, labels, naming, max_depth=max_depth, random_state=random_state,
                                   summary=summary)

    rfm = None
    crosstab = None
    if {"recency_days", "frequency", "monetary"} <= set(features.columns):
        rfm = rfm_scores(features, bins=rfm_bins, cuts=rfm_cuts)
        crosstab = rfm_crosstab(labels, rfm["rfm_segment"])

    behaviour = _behaviour(features, labels, cleaned, summary, utc_offset_hours, top_items, naming)
    low = _low_confidence(labels, confidence, low_confidence) if confidence is not None else {}
    segments = []
    for s, g in sorted({int(s): g for s, g in summary.groupby("segment")}.items()):
        entry = _segment_entry(s, g, names, naming, explanation, behaviour)
        if s in low:
            entry["low_confidence"] = low[s]
        if crosstab is not None and s in crosstab.index:
            row = crosstab.loc[s]
            entry["rfm"] = {str(k): int(v) for k, v in row.items() if v}
        segments.append(entry)

    insights = {
        "segments": segments,
        "explanation": _explanation_entry(explanation, max_depth),
        "rfm": (
            {"bins": rfm_bins, "cuts": {k: list(v) for k, v in (rfm_cuts or {}).items()}, "crosstab": {str(s): {str(k): int(v) for k, v in row.items() if v}
                                     for s, row in crosstab.iterrows()}}
            if crosstab is not None else None
        ),
        "utc_offset_hours": utc_offset_hours,
        # what the segments' top_categories / top_brands are shares of, and the least lift listed
        "category_lift": {"over": "orders" if cleaned.kind == "orders" else "events", "min_lift": MIN_LIFT,
                          "min_share": 0.02},
    }
    return insights, names, rfm


def _behaviour(features: Any, labels: Any, cleaned: Any, summary: Any, utc_offset_hours: float,
               top_items: int, naming: Mapping[int, Any] | None = None) -> dict[str, Any]:
    """What the segments' customers did: weekday x hour activity, categories and brands by
    lift, actions, recommended products (each a mapping segment -> value)."""
    frame = cleaned.frame
    pos, seg = event_segments(features.index, frame["customer_id"], labels)
    ts = series_values(frame["ts"])
    activity = activity_grid(ts, seg, utc_offset_hours)
    # the timing's base: what every customer does (the calendar's weekdays, the site's daily rhythm)
    base_activity = activity_grid(ts, array_namespace(seg).zeros_like(seg), utc_offset_hours).get(0)
    # where each segment is more active than the base is (lift >= MIN_LIFT), not what every segment does
    main_cat = series_values(frame["main_cat"])
    categories = top_shares(main_cat, seg, list(cleaned.main_categories), by="lift")
    has_brands = "brand" in frame.columns and bool(cleaned.brand_names)
    brand = series_values(frame["brand"]) if has_brands else None
    brands = top_shares(brand, seg, list(cleaned.brand_names), by="lift") if has_brands else {}
    unknown = {"categories": unknown_shares(main_cat, seg), "brands": unknown_shares(brand, seg) if has_brands else {}}
    etype = series_values(frame["etype"]) if cleaned.kind == "events" else None
    recs = label_items(segment_recommendations(pos, series_values(frame["product"]), etype, seg, top_items=top_items,
                                               product_names=cleaned.product_names),
                       getattr(cleaned, "product_labels", {}), cleaned.product_names)
    return {"activity": activity, "categories": categories, "brands": brands, "unknown": unknown,
            "actions": segment_actions(summary, activity, naming, base_activity=base_activity,
                                       sample_sizes=effective_sizes(pos, labels),
                                       utc_offset_hours=utc_offset_hours),
            "recommendations": recs}


def effective_sizes(positions: Any, labels: Any) -> dict[int, float]:
    """Each segment's effective number of customers for the timing's noise test: Kish's
    ``(sum w)^2 / sum w^2`` over its customers' event counts ``w``.

    A segment's share of events in a window, with each customer's events all in one cell
    (the worst case of events that come in sessions), has the variance of ``p (1 - p) / n``
    with ``n`` this number: as many as the customers when they have as many events each,
    fewer when a few customers hold most of the events (:func:`~gpuseg.segments.actions._timing`).

    Parameters
    ----------
    positions : array of int
        Each event's customer row (:func:`event_segments`; -1: none), on the labels' device.
    labels : array
        Segment of every customer row (NumPy or CuPy).

    Returns
    -------
    dict of int to float
        Segment -> effective size; segments without events are left out.
    """
    xp = array_namespace(labels)
    lab = xp.asarray(labels).astype(xp.int64)
    pos = xp.asarray(positions).astype(xp.int64)
    if lab.size == 0:
        return {}
    w = xp.bincount(pos[pos >= 0], minlength=int(lab.size)).astype(xp.float64)
    lo = int(lab.min())
    span = int(lab.max()) - lo + 1
    total = to_host(xp.bincount(lab - lo, weights=w, minlength=span))
    square = to_host(xp.bincount(lab - lo, weights=w * w, minlength=span))
    return {lo + i: float(total[i] ** 2 / square[i]) for i in range(span) if square[i] > 0}


def _revenue_shares(summary: Any, labels: Any, spent: Any) -> Any:
    """``summary`` with each segment's revenue share of ``spent`` (a customer's spend, in
    the rows of ``labels``)."""
    lab = np.asarray(to_host(labels)).astype(np.int64)
    value = np.nan_to_num(np.asarray(to_host(spent), dtype=np.float64), nan=0.0)
    segments = np.unique(lab)
    sums = np.array([value[lab == s].sum() for s in segments])
    total = float(sums.sum())
    share = dict(zip(segments.tolist(), (sums / total if total > 0 else np.zeros(len(sums))).tolist()))
    return summary.assign(revenue_share=summary["segment"].map(share).astype("float64"))


def _low_confidence(labels: Any, confidence: Any, threshold: float) -> dict[int, dict[str, Any]]:
    """Per segment, how many of its customers have a confidence below ``threshold``."""
    xp = array_namespace(labels)
    lab = xp.asarray(labels)
    flagged = xp.asarray(confidence) < threshold
    low = {}
    for v in to_host(xp.unique(lab)):  # k small reductions on the device
        member = lab == v
        size = int(member.sum())
        count = int((flagged & member).sum())
        low[int(v)] = {"count": count, "share": count / size if size else 0.0, "threshold": threshold}
    return low


def _segment_entry(s: int, g: Any, names: Mapping[int, str], naming: Mapping[int, Any],
                   explanation: Mapping[str, Any], behaviour: Mapping[str, Any]) -> dict[str, Any]:
    """One segment's entry of ``insights["segments"]`` (``g``: its rows of the summary)."""
    first = g.iloc[0]
    activity = behaviour["activity"]
    return {
        "segment": s,
        "name": names.get(s, f"segment {s}"),
        "persona": naming.get(s, {}).get("persona"),
        "name_rule": naming.get(s, {}).get("rule"),
        "size": int(first["size"]),
        "share": float(first["share"]),
        "revenue_share": _num(first["revenue_share"]) if "revenue_share" in g else None,
        "profile": {r.feature: {"mean": _num(r.mean), "median": _num(r.median), "z": _num(r.z)}
                    for r in g.itertuples()},
        "top_categories": behaviour["categories"].get(s, []),
        "top_brands": behaviour["brands"].get(s, []),
        "unknown_category_share": behaviour["unknown"]["categories"].get(s),
        "unknown_brand_share": behaviour["unknown"]["brands"].get(s),
        "activity": np.asarray(activity[s]).round(6).tolist() if s in activity else None,
        "rules": [{"rule": r["text"], "support": int(r["support"]), "precision": _num(r["precision"]),
                   "conditions": r["conditions"]} for r in explanation["rules"].get(s, [])],
        "top_features": explanation["top_features"].get(s, []),
        "actions": behaviour["actions"].get(s, []),
        "recommendations": behaviour["recommendations"].get(s),
    }


def _num(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
