"""The HTML report: one self-contained ``report.html`` per output folder.

The page loads nothing from anywhere: the plots are PNG ``data:`` URIs, the CSS and the
script are inline, the customer lookup's data are inline JSON, and a Content-Security-Policy
forbids every other source, so it opens the same offline, from a mail attachment or a
file share, in any browser. All text that comes from data (customer ids, category and
brand names, insight texts) is HTML-escaped; the lookup writes with ``textContent`` only.

The markup is in Jinja2 templates (``templates/report.html.j2`` and the section macros in
``templates/parts/``; see :mod:`gpuseg.report.templating`, imported only when a page is
rendered). This module shapes the data for them: the numbers formatted as text, the rows
and the colours chosen; the templates escape every text they insert.

Large runs: the lookup embeds at most :data:`LOOKUP_MAX_CUSTOMERS` customers (a fixed-seed
random sample above that, about 40 MB of page for 200,000 customers and 34 features), and
the page says that the lookup covers a sample; ``segments.parquet`` has everyone.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import DeviceError
from ..segments.profiles import MIN_LIFT
from .plots import KEY_FEATURES, PLOTS, RunOutputs, make_plots, read_outputs

__all__ = ["build_report", "report_html", "LOOKUP_MAX_CUSTOMERS"]

#: The customer lookup embeds at most this many customers.
LOOKUP_MAX_CUSTOMERS = 200_000

#: matplotlib's tab10 and tab20, so the cards' colours are the plots' colours.
_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
_TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
          "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
          "#17becf", "#9edae5")

_CAPTIONS = {
    "pca": "Customers on the first two principal components of the scaled features (the space the methods "
           "clustered in), coloured by segment. Overlap here does not mean overlap in all dimensions.",
    "umap": "A non-linear 2-D map of a fixed-seed sample of customers: nearby points are similar customers. "
            "Distances between far-apart groups are not meaningful.",
    "sweep": "Each method's scores for every k it tried; the star is the k it chose.",
    "comparison": "Each method at its own k; the chosen method in orange. Error bars: spread of stability "
                  "over the half-sample refits.",
    "radar": "Segment means on key features, in standard deviations from the average customer (dashed).",
    "heatmap": "Every feature: red above the average customer, blue below.",
    "activity": "Share of each segment's events by weekday and hour.",
    "dendrogram": "How the chosen segments relate: Ward's merge tree of the segments' centres, weighted by "
                  "their sizes, in the clustering space. Segments that join low are alike.",
    "umatrix": "Self-organising map: dark cells are units far from their neighbours (borders between "
               "clusters), light areas are dense groups of similar customers.",
    "confidence": "How clearly each customer belongs to its segment; customers left of the line are flagged "
                  "low_confidence in segments.parquet.",
}

#: Feature importances listed under the explanation.
_TOP_IMPORTANCES = 12

#: Plots that take a whole row of the report.
_WIDE_PLOTS = {"sweep", "comparison", "heatmap", "activity"}

def build_report(out_dir: str | os.PathLike, insights: Mapping[str, Any] | None = None, *,
                 path: str | os.PathLike | None = None, plots: Mapping[str, bytes | str] | None = None,
                 lookup_limit: int = LOOKUP_MAX_CUSTOMERS) -> Path:
    """Write the self-contained HTML report of a run.

    Parameters
    ----------
    out_dir : path
        A run's output folder (``metrics.json`` and ``segments.parquet`` at least; the
        other files add to the page when present).
    insights : mapping, optional
        Segment insights (names, rules, actions, recommendations; the shape of
        ``insights.json``); default ``out_dir/insights.json`` when it exists. Every key is
        optional.
    path : path, optional
        Where to write; default ``out_dir/report.html``. The file is written next to its
        target and renamed into place.
    plots : mapping, optional
        Plot name -> PNG bytes or skip reason, as :func:`gpuseg.report.plots.make_plots`
        returns; default: made now (without matplotlib the page says so and has no plots).
    lookup_limit : int, default=200000
        At most this many customers in the lookup (a fixed-seed sample above it).

    Returns
    -------
    Path
        The report written.

    Examples
    --------
    >>> build_report("gpuseg-out")  # doctest: +SKIP
    PosixPath('gpuseg-out/report.html')
    """
    run = read_outputs(out_dir, insights)
    target = Path(path) if path is not None else run.out_dir / "report.html"
    text = _render(run, plots, lookup_limit)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def report_html(out_dir: str | os.PathLike, insights: Mapping[str, Any] | None = None, *,
                plots: Mapping[str, bytes | str] | None = None, lookup_limit: int = LOOKUP_MAX_CUSTOMERS) -> str:
    """The report's HTML text: what :func:`build_report` writes, for callers that write it
    themselves (into :func:`gpuseg.report.files.write_outputs`, say).

    Parameters and errors as :func:`build_report`.

    Returns
    -------
    str
    """
    return _render(read_outputs(out_dir, insights), plots, lookup_limit)


def _render(run: RunOutputs, plots: Mapping[str, bytes | str] | None, lookup_limit: int) -> str:
    if not isinstance(lookup_limit, (int, np.integer)) or lookup_limit < 0:
        raise ValueError(f"lookup_limit must be a non-negative int, got {lookup_limit!r}")
    if plots is None:
        try:
            plots = make_plots(run)
        except DeviceError as exc:  # no matplotlib: the page without plots
            plots = {name: str(exc) for name in PLOTS}
    from .templating import render  # jinja2: only when a page is rendered

    names = run.segment_names()
    m = run.metrics
    return render(
        "report.html.j2",
        title="gpuseg segmentation report",
        run_version=m.get("gpuseg_version", __version__),
        started_at=m.get("started_at"),
        folder=run.out_dir.name,
        version=__version__,
        backtest_link=bool(m.get("backtest")),
        summary=_summary(run),
        representation=_representation(run),
        methods=_methods(run),
        segments=_segments(run, names),
        backtest=_backtest(run),
        plots=_plots(plots),
        lookup=_lookup(run, names, lookup_limit),
    )


# --------------------------------------------------------------------------- formatting
# Numbers and names become plain text here; the templates escape it.


def _num(value: Any, digits: int = 3) -> str:
    """A number for a table cell; '-' for missing; anything else as its text."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "-"
    if v == int(v) and abs(v) < 1e15 and digits == 0:
        return f"{int(v):,}"
    if abs(v) >= 1e5:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.1f}"
    return f"{v:.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{v:.{digits}%}" if math.isfinite(v) else "-"


def _colour(segment: int, n_segments: int) -> str:
    if segment < 0:
        return "#999999"
    palette = _TAB10 if n_segments <= 10 else _TAB20
    return palette[segment % len(palette)]


def _dict(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, (list, tuple)) else []


def _int(x: Any) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _signed(x: Any) -> str:
    v = _float(x)
    return "-" if v is None else f"{v:+.1f}"


def _bar_width(share: Any) -> str | None:
    """The width of a share's bar in percent (the template's ``bar``); None: no bar."""
    try:
        w = max(0.0, min(1.0, float(share))) * 100
    except (TypeError, ValueError):
        return None
    return f"{w:.1f}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _by(chosen: Mapping[str, Any]) -> str:
    by = chosen.get("by")
    return "by --select" if by == "--select" else f"by the {by}" if by else ""


# --------------------------------------------------------------------------- run


def _summary(run: RunOutputs) -> dict[str, Any]:
    """The Run section: the data, the device, the chosen segmentation, time per stage."""
    m = run.metrics
    device, chosen = _dict(m.get("device")), _dict(m.get("chosen"))
    where = device.get("label", "-")
    if device.get("backend") and device.get("backend") != "cpu":
        where = f"GPU, {where}"
    libs = _dict(device.get("libraries"))
    conf = _dict(chosen.get("confidence_summary"))
    return {
        **_data_facts(run),
        "device": where,
        "libraries": ", ".join(f"{k} {v}" for k, v in libs.items()) if libs else None,
        "chosen": {"method": chosen.get("method", "-"), "k": chosen.get("k", "-"),
                   "by": _by(chosen) if chosen.get("by") else None} if chosen else None,
        "confidence": {
            "text": chosen["confidence"],
            "summary": {"mean": _num(conf.get("mean"), 2), "low_count": _num(conf.get("low_count")),
                        "low_share": _pct(conf.get("low_share")), "threshold": conf.get("threshold", 0.5)}
            if conf else None,
        } if chosen.get("confidence") else None,
        **_timings(_dict(m.get("timings"))),
    }


def _data_facts(run: RunOutputs) -> dict[str, Any]:
    """What metrics.json says about the data: source, rows, customers, features."""
    m = run.metrics
    data, privacy = _dict(m.get("data")), _dict(m.get("privacy"))
    files = [Path(str(f)).name for f in _list(data.get("files"))]
    dropped = {k: v for k, v in _dict(data.get("rows_dropped")).items() if _int(v)}
    filled = {k: v for k, v in _dict(data.get("values_filled")).items() if _int(v)}
    capped = _int(_dict(data.get("values_capped")).get("price"))
    touched = _int(_dict(data.get("customers_touched")).get("capped"))
    lost = _int(data.get("customers_excluded"))
    feats = _list(data.get("features")) or run.feature_names
    return {
        "source": data.get("source", "-"),
        "format": data.get("format", "-"),
        "files": ", ".join(files[:5]) if files else None,
        "files_more": f"{len(files) - 5:,}" if len(files) > 5 else None,
        "rows": {"used": _num(data.get("rows_used")), "read": _num(data.get("rows_read"))}
        if data.get("rows_read") is not None else None,
        "pseudonymised": bool(privacy.get("pseudonymised")),
        "scheme": privacy.get("scheme"),
        "dropped": ", ".join(f"{k.replace('_', ' ')}: {_num(v)}" for k, v in dropped.items()) or None,
        "filled": ", ".join(f"{k}: {_num(v)}" for k, v in filled.items()) or None,
        "capped": {"prices": _num(capped), "customers": _num(touched)} if capped else None,
        "customers": {
            "count": _num(data.get("customers", len(run.segments))),
            "input": _num(data["customers_in"]) if data.get("customers_in") is not None else None,
            "excluded": _num(lost) if lost else None,
        },
        "features": {"count": len(feats), "names": ", ".join(map(str, feats))} if feats else None,
        "reference_time": data.get("reference_time") or None,
    }


def _timings(timings: Mapping[str, Any]) -> dict[str, Any]:
    """Seconds per stage with a bar relative to the longest, and the total."""
    stage_rows = [(k, v) for k, v in timings.items() if k != "total" and _is_number(v)]
    total = timings.get("total") if _is_number(timings.get("total")) else sum(v for _, v in stage_rows)
    top = max([v for _, v in stage_rows] + [1e-9])
    return {
        "stages": [{"name": k, "seconds": _num(v, 2), "width": _bar_width(v / top)} for k, v in stage_rows],
        # metrics.json is written before the report and again after it, with the report's time
        "total_label": "total" if "report" in timings else "total (before the report)",
        "total": _num(total, 2),
    }


def _representation(run: RunOutputs) -> dict[str, Any] | None:
    """Which features define the segments, with what weight, and why (metrics.json
    ``representation``); None for a run without it."""
    rep = _dict(run.metrics.get("representation"))
    rows = _list(rep.get("features"))
    if not rows:
        return None
    ordered = sorted((_dict(r) for r in rows), key=lambda r: (r.get("weight") or 0.0) > 0)
    return {
        "summary": rep.get("summary") or None,
        "rows": [[r.get("feature"), r.get("role"), _num(r.get("weight"), 3), _num(r.get("relevance"), 3),
                  ", ".join(_list(r.get("redundancy_group"))), r.get("reason")] for r in ordered],
        "rule": rep.get("rule") or None,
    }


def _backtest(run: RunOutputs) -> dict[str, Any] | None:
    """``gpuseg backtest``: how well the segments and the predicted value foretold the
    holdout (metrics.json ``backtest``); None for a plain run."""
    bt = _dict(run.metrics.get("backtest"))
    if not bt:
        return None
    w, value = _dict(bt.get("window")), _dict(bt.get("value"))
    new = _int(bt.get("new_customers_in_holdout"))
    return {
        "until": w.get("until"), "holdout_end": w.get("holdout_end"), "days": _num(w.get("holdout_days"), 0),
        "scored": _num(bt.get("customers_scored")), "bought_again": _num(bt.get("customers_bought_again")),
        "new": _num(bt.get("new_customers_in_holdout")) if new else None,
        "segmentations": [[name, _dict(v).get("what"), _num(_dict(v).get("k")),
                           _num(_dict(v).get("eta_squared"), 3), _num(_dict(v).get("eta_squared_repeat"), 3)]
                          for name, v in _dict(bt.get("segmentations")).items()],
        "segments": [[r.get("segment_name"), _num(_int(r.get("customers"))),
                      _num(_float(r.get("holdout_revenue_mean")), 2), _pct(r.get("share_of_holdout_revenue")),
                      _pct(r.get("repeat_rate")), _num(_float(r.get("predicted_value_mean")), 2)]
                     for r in map(_dict, _list(bt.get("segments")))],
        "value": {
            "spearman": _num(_float(value.get("spearman")), 3),
            "predicted": _num(_float(value.get("total_predicted")), 0),
            "actual": _num(_float(value.get("total_actual")), 0),
            "deciles": [[_num(_int(d.get("decile"))), _num(_int(d.get("customers"))),
                         _num(_float(d.get("predicted_mean")), 2), _num(_float(d.get("actual_mean")), 2)]
                        for d in map(_dict, _list(value.get("deciles")))],
        } if value else None,
    }


_COMPARISON_COLUMNS = (
    ("method", "method", None), ("status", "status", None), ("k", "k", 0), ("silhouette", "silhouette", 3),
    ("davies_bouldin", "Davies-Bouldin", 3), ("calinski_harabasz", "Calinski-Harabasz", 1),
    ("stability_mean", "stability", 3), ("unassigned_share", "unassigned", "pct"),
    ("fit_seconds", "fit s", 2), ("ari", "ARI", 3), ("nmi", "NMI", 3), ("mean_rank", "mean rank", 2),
    ("preference", "preference", 0), ("position", "position", 0), ("checks", "checks failed", None),
    ("reason", "reason", None),
)


def _methods(run: RunOutputs) -> dict[str, Any]:
    """The methods compared (comparison.csv) and the rules that chose among them."""
    m = run.metrics
    chosen, methods = _dict(m.get("chosen")), _dict(m.get("methods"))
    df = run.comparison
    table = _comparison(df, chosen) if df is not None and "method" in df.columns and len(df) else None
    return {"table": table, "ran": len(methods), "notes": _method_notes(m)}


def _comparison(df: pd.DataFrame, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """comparison.csv's columns that have a value; a cell is text, or (mean, std) of the
    stability."""
    if "position" in df.columns:
        df = df.sort_values("position", kind="stable", na_position="last")
    cols = [c for c in _COMPARISON_COLUMNS if c[0] in df.columns and df[c[0]].notna().any()]
    rows = []
    for _, r in df.iterrows():
        cells: list[Any] = []
        for col, _label, fmt in cols:
            v = r[col]
            if col == "stability_mean" and "stability_std" in df.columns and pd.notna(v):
                cells.append((_num(v, 3), _num(r["stability_std"], 2)))
            elif fmt == "pct":
                cells.append(_pct(v))
            elif fmt is None:
                cells.append("" if pd.isna(v) else str(v))
            else:
                cells.append(_num(v, fmt))
        is_chosen = str(r.get("chosen", "")).lower() in ("true", "1") or r["method"] == chosen.get("method")
        cls = "chosen" if is_chosen else ("failed" if str(r.get("status", "ok")) != "ok" else "")
        rows.append({"cls": cls, "cells": cells})
    return {"headers": [c[1] for c in cols], "rows": rows}


def _unmeasured(stability: Any) -> str | None:
    """Why the chosen method has no stability (refits failed), or None where it has one."""
    st = _dict(stability)
    if not st or st.get("mean") is not None:
        return None
    return f"{st.get('failed_refits', 0)} of {st.get('resamples', 0)} refits failed"


def _method_notes(m: Mapping[str, Any]) -> dict[str, Any]:
    """The notes under the comparison; None for each that does not apply."""
    ev, chosen, methods = _dict(m.get("evaluation")), _dict(m.get("chosen")), _dict(m.get("methods"))
    sil, stab = _dict(ev.get("silhouette")), _dict(ev.get("stability"))
    notes = {
        "chosen": {"method": chosen["method"], "k": chosen.get("k", "-"),
                   "by": _by(chosen) if chosen.get("by") else None,
                   "why": _dict(_dict(methods.get(chosen["method"])).get("k_choice")).get("reason") or None}
        if chosen.get("method") else None,
        "method_rule": ev.get("method_rule") or None,
        "k_rule": ev.get("k_rule") or None,
        "sample": _num(sil.get("sample_size")) if sil and sil.get("exact") is False else None,
        "stability": {"score": stab["score"], "resamples": _num(stab.get("resamples")),
                      "unmeasured": _unmeasured(_dict(methods.get(chosen.get("method"))).get("stability"))}
        if stab.get("score") else None,
        "confidence": chosen.get("confidence") or None,
    }
    return {**notes, "any": any(v is not None for v in notes.values())}


# --------------------------------------------------------------------------- segments


def _segments(run: RunOutputs, names: Mapping[int, str]) -> dict[str, Any]:
    """One card per segment, the explaining tree and the RFM cross-table."""
    insights = run.insights or {}
    by_segment = {}
    for seg in _list(insights.get("segments")):
        if isinstance(seg, Mapping) and _int(seg.get("segment")) is not None:
            by_segment[_int(seg["segment"])] = seg
    prof = run.profiles
    prof_rows: dict[int, Mapping[str, Any]] = {}
    if prof is not None and "segment" in prof.columns:
        prof_rows = {int(r["segment"]): r for _, r in prof.iterrows()}
    counts = run.segments["segment"].value_counts()
    n_total = len(run.segments)
    segments = sorted(set(prof_rows) | {int(s) for s in counts.index} | set(by_segment))
    n_assigned = sum(s >= 0 for s in segments)
    fit = _dict(run.metrics.get("lifetime_value"))
    lift = _dict(insights.get("category_lift"))
    cards = [_card(s, names, prof_rows.get(s), by_segment.get(s, {}), int(counts.get(s, 0)), n_total, n_assigned,
                   fit, lift) for s in segments]
    capped = _dict(_dict(run.metrics.get("data")).get("values_capped"))
    return {"cards": cards, "explanation": _explanation(_dict(insights.get("explanation"))),
            "crosstab": _crosstab(_dict(_dict(insights.get("rfm")).get("crosstab")), names),
            "capped": _num(_int(capped.get("price"))) if _int(capped.get("price")) else None}


def _card(segment: int, names: Mapping[int, str], prof: Mapping[str, Any] | None, ins: Mapping[str, Any],
          count: int, n_total: int, n_assigned: int, fit: Mapping[str, Any] | None = None,
          lift: Mapping[str, Any] | None = None) -> dict[str, Any]:
    name = names.get(segment, "unassigned" if segment < 0 else f"segment {segment}")
    size = _int(ins.get("size")) if ins.get("size") is not None else None
    if size is None:
        size = _int(prof.get("size")) if prof is not None and prof.get("size") is not None else count
    share = ins.get("share", prof.get("share") if prof is not None else (size / n_total if n_total else None))
    low = _dict(ins.get("low_confidence"))
    top_category = None  # profiles.csv's (None there where no lift reaches MIN_LIFT), where the insights list none
    if not _list(ins.get("top_categories")) and prof is not None and isinstance(prof.get("top_category"), str):
        top_category = prof["top_category"]
    return {
        "segment": segment, "name": name, "colour": _colour(segment, n_assigned),
        "show_id": name != f"segment {segment}",
        "size": _num(size), "share": _pct(share),
        "revenue_share": _pct(ins["revenue_share"]) if ins.get("revenue_share") is not None else None,
        "value": _value_line(prof, fit, size),
        "low_confidence": {
            "count": _num(_int(low["count"])),
            "share": _pct(low["share"]) if low.get("share") is not None else None,
            "threshold": low.get("threshold", 0.5),
        } if _int(low.get("count")) is not None else None,
        "persona": ins["persona"] if ins.get("persona") and str(ins["persona"]) != name else None,
        "name_rule": ins.get("name_rule") or None,
        "key_numbers": _key_numbers(prof, _dict(ins.get("profile"))),
        **_card_insights(ins, lift),
        "top_category": top_category,
        "recommendations": _recommendations(_dict(ins.get("recommendations"))),
        "rfm": [(k, _num(v)) for k, v in _dict(ins.get("rfm")).items()] or None,
        "profile": _full_profile(prof, _dict(ins.get("profile"))),
    }


def _lift_lists(ins: Mapping[str, Any], lift: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The card's "Categories (Brands) it is more active in than others": the entries with a
    lift of at least ``min_lift`` (:data:`~gpuseg.segments.profiles.MIN_LIFT` where the
    insights do not say; older insights listed lifts of 1.003), "buys" only where the shares
    are of orders (in an event log they are of views, carts and purchases alike), and the
    part of the segment's events without a category or brand, which the shares leave out.
    A segment with none that clear gets "none" rather than no word at all."""
    lift = lift or {}
    least = _float(lift.get("min_lift")) or MIN_LIFT
    orders = lift.get("over") == "orders"
    what = "orders" if orders else "events"
    groups = []
    for key, noun, thing, unknown in (("top_categories", "Categories", "category", "unknown_category_share"),
                                      ("top_brands", "Brands", "brand", "unknown_brand_share")):
        listed = [t for t in _list(ins.get(key)) if isinstance(t, Mapping)]
        entries = [t for t in listed if _float(t.get("lift")) is None or _float(t.get("lift")) >= least]
        missing = _float(ins.get(unknown))
        if not entries and not listed and ins.get(unknown) is None:
            continue  # no such list, or data without categories (brands): nothing to say "none" about
        groups.append({
            "label": f"{noun} it {'buys more' if orders else 'is more active in'} than others",
            "of": f"{what} with a known {thing}", "thing": thing, "min_lift": _num(least, 2),
            "unknown": f"{_pct(missing)} of its {what} have no {thing} and are left out" if missing else None,
            "entries": [{"name": t.get("name", "?"), "width": _bar_width(t.get("share")), "share": _pct(t.get("share")),
                         "lift": _num(_float(t.get("lift")), 2) if t.get("lift") else None} for t in entries]})
    return groups


def _card_insights(ins: Mapping[str, Any], lift: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the insights say about a segment: top features, rules, actions, categories
    and brands (None where the insights have no such list)."""
    tops, rules, actions = _list(ins.get("top_features")), _list(ins.get("rules")), _list(ins.get("actions"))
    shares = _lift_lists(ins, lift)
    return {
        "stands_out": [{"direction": "up" if (_float(t.get("z")) or 0) >= 0 else "down",
                        "feature": t.get("feature", "?"), "z": _signed(t.get("z"))}
                       for t in tops if isinstance(t, Mapping)] if tops else None,
        "rules": [{"rule": r.get("rule", ""), "support": _num(r.get("support")),
                   "precision": _pct(r.get("precision")) if r.get("precision") is not None else None}
                  for r in rules if isinstance(r, Mapping)] if rules else None,
        "actions": [{"tagged": True, "kind": a.get("kind", ""), "text": a.get("text", "")}
                    if isinstance(a, Mapping) else {"tagged": False, "kind": None, "text": a}
                    for a in actions] if actions else None,
        "shares": shares,
    }


def _value_line(prof: Mapping[str, Any] | None, fit: Mapping[str, Any] | None = None,
                size: int | None = None) -> dict[str, Any] | None:
    """The segment's lifetime value from profiles.csv (BG/NBD + Gamma-Gamma), or None: its
    means over the customers with a purchase (the others have no value), over the fit's
    horizon (metrics.json ``lifetime_value``), with a warning when that horizon is more than
    twice the history the models were fitted on, and the probability still active over the
    repeat buyers only (:func:`_alive_line`)."""
    if prof is None or _float(prof.get("mean_predicted_clv")) is None:
        return None

    def optional(key: str, fmt: Any) -> str | None:
        v = _float(prof.get(key))
        return None if v is None else fmt(v)

    fit = fit or {}
    horizon, history = _float(fit.get("horizon_days")), _float(fit.get("history_days"))
    buyers = _int(prof.get("value_customers")) if _float(prof.get("value_customers")) is not None else None
    return {
        "clv": _num(_float(prof["mean_predicted_clv"])),
        "clv_share": optional("predicted_clv_share", _pct),
        **_alive_line(prof, buyers),
        "purchases": optional("mean_expected_purchases", _num),
        "horizon": f"{horizon:,.0f} days" if horizon is not None else None,
        "base": (f"{_num(buyers)} of its {_num(size)} customers, those with a purchase" if buyers is not None
                 and size is not None and buyers < size else None),
        "stretch": (f"the {horizon:,.0f}-day horizon is {horizon / history:.1f} times the {history:,.0f} days of "
                    "purchases the models were fitted on: read these values as a ranking more than as amounts"
                    if horizon is not None and history and horizon > 2 * history else None),
        "no_dropout": fit.get("no_dropout") or None,
    }


def _alive_line(prof: Mapping[str, Any], buyers: int | None) -> dict[str, Any]:
    """The card's probability still active: the mean p_alive of the segment's repeat buyers,
    with their count, and a note on its one-time buyers, whose p_alive BG/NBD sets to 1 (it
    lets customers drop out only after a repeat purchase), so it cannot tell whether they are
    still active. A profiles.csv without ``repeat_customers`` (runs from before) averaged them
    in: no mean then."""
    mean = _float(prof.get("mean_p_alive"))
    repeat = _int(prof.get("repeat_customers")) if _float(prof.get("repeat_customers")) is not None else None
    why = "BG/NBD cannot tell whether one-time buyers are still active (it lets a customer drop out only after a " \
          "repeat purchase and gives them a probability of 1)"
    if repeat is None:
        return {"p_alive": None, "p_alive_base": None, "one_time": (
            f"{why}; this run's mean probability still active counts them in, so it is not shown"
            if mean is not None else None)}
    one_time = buyers - repeat if buyers is not None else None
    if repeat == 0:
        note = f"{why}, and every buyer in this segment bought once: judge them by recency"
    elif one_time:
        note = f"{why}: its {_num(one_time)} one-time buyers are left out of the probability still active"
    else:
        note = None
    return {"p_alive": _num(mean) if repeat and mean is not None else None,
            "p_alive_base": f"its {_num(repeat)} repeat buyers" if repeat else None, "one_time": note}


def _key_numbers(prof: Mapping[str, Any] | None, profile: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    feats = [f for f in KEY_FEATURES if (prof is not None and f in prof) or f in profile]
    if not feats:
        return None
    rows = []
    for f in feats:
        p = _dict(profile.get(f))
        mean = p.get("mean", prof.get(f) if prof is not None else None)
        rows.append({"feature": f, "mean": _num(mean, 2),
                     "median": _num(p["median"], 2) if p.get("median") is not None else None,
                     "z": _signed(p["z"]) if p.get("z") is not None else None})
    return rows


def _full_profile(prof: Mapping[str, Any] | None, profile: Mapping[str, Any]) -> dict[str, Any] | None:
    skip = {"segment", "segment_name", "size", "share", "top_category"}
    feats = list(profile) if profile else ([k for k in prof.keys() if k not in skip] if prof is not None else [])
    if not feats:
        return None
    rows = []
    for f in feats:
        p = _dict(profile.get(f))
        mean = p.get("mean", prof.get(f) if prof is not None else None)
        rows.append([f, _num(mean, 3), _num(p.get("median"), 3) if p else "-", _signed(p.get("z")) if p else "-"])
    headers = ["feature", "mean", "median", "z"] if profile else ["feature", "mean"]
    return {"features": len(feats), "headers": headers, "rows": [r[: len(headers)] for r in rows]}


def _product(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A product's id and readable name (None without one)."""
    return {"id": entry.get("item", "?"), "label": entry.get("label") or None}


def _recommendations(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    if not rec:
        return None
    totals = [f"{_num(rec[k])} {label}" for k, label in (("purchases", "purchases"), ("buyers", "buyers"),
                                                        ("items", "distinct items")) if rec.get(k) is not None]
    together = []
    for t in _list(rec.get("bought_together")):
        if not isinstance(t, Mapping):
            continue
        related = [w for w in _list(t.get("with", t.get("related"))) if isinstance(w, Mapping)]
        if related:  # a top item nobody bought anything with says nothing
            together.append({"product": _product(t), "related": [
                {"product": _product(w), "score": _num(w.get("score"), 2), "co_buyers": _num(w.get("co_buyers"))}
                for w in related]})
    return {
        "totals": ", ".join(totals) or None,
        "top_items": [{"product": _product(t), "purchases": _num(t.get("purchases")), "buyers": _num(t.get("buyers"))}
                      for t in _list(rec.get("top_items")) if isinstance(t, Mapping)],
        "together": together,
        "note": rec.get("note") or None,
    }


def _explanation(exp: Mapping[str, Any]) -> dict[str, Any] | None:
    """The decision tree that explains the segments: fidelity, depth, importances."""
    if not exp:
        return None
    raw = exp.get("feature_importance")
    if isinstance(raw, Mapping):  # {feature: importance}
        raw = [{"feature": k, "importance": v} for k, v in raw.items()]
    imp = [f for f in _list(raw) if isinstance(f, Mapping)]
    imp = sorted(imp, key=lambda f: -(_float(f.get("importance")) or 0.0))[:_TOP_IMPORTANCES]
    return {
        "fidelity": _pct(exp["fidelity"]) if exp.get("fidelity") is not None else None,
        "fidelity_on": exp.get("fidelity_on") or None,
        "depth": exp["max_depth"] if exp.get("max_depth") is not None else None,
        "method": exp.get("method") or None,
        "importances": [{"feature": f.get("feature", "?"), "importance": _num(f.get("importance"), 3),
                         "width": _bar_width(f.get("importance"))} for f in imp],
    }


def _crosstab(crosstab: Mapping[str, Any], names: Mapping[int, str]) -> dict[str, Any] | None:
    """Segments x RFM classes (insights ``rfm.crosstab``)."""
    if not crosstab:
        return None
    classes: list[str] = []
    for row in crosstab.values():
        for c in _dict(row):
            if c not in classes:
                classes.append(c)
    rows = []
    for seg, row in crosstab.items():
        s = _int(seg)
        label = names.get(s, str(seg)) if s is not None else str(seg)
        rows.append([label] + [_num(_dict(row).get(c)) for c in classes])
    return {"headers": ["segment", *classes], "rows": rows}


# --------------------------------------------------------------------------- plots and lookup


def _plots(plots: Mapping[str, bytes | str]) -> dict[str, Any]:
    """The PNGs (base64 for data: URIs) and the plots left out with their reasons."""
    figures, skipped = [], []
    for name, value in plots.items():
        title = PLOTS.get(name, name)
        if isinstance(value, (bytes, bytearray)):
            figures.append({"name": name, "title": title, "wide": name in _WIDE_PLOTS,
                            "data": base64.b64encode(bytes(value)).decode("ascii"),
                            "caption": _CAPTIONS.get(name, "")})
        else:
            skipped.append({"title": title, "reason": value})
    return {"figures": figures, "skipped": skipped}


def _lookup(run: RunOutputs, names: Mapping[int, str], limit: int) -> dict[str, Any]:
    """The customer lookup: what it covers, and its data."""
    from markupsafe import Markup

    # safe as it is inside <script>: _lookup_json writes no '<', '>' or '&' (escaping it
    # as HTML would break the JSON, whose quotes must stay quotes)
    data = Markup(_lookup_json(run, names, limit))
    n, shown = len(run.segments), min(len(run.segments), limit)
    privacy = _dict(run.metrics.get("privacy"))
    return {"total": f"{n:,}", "shown": f"{shown:,}", "sample": shown < n,
            "pseudonymised": bool(privacy.get("pseudonymised")), "scheme": privacy.get("scheme"), "data": data}


def _number_array(values: np.ndarray, fmt: str) -> str:
    """A JSON array of numbers formatted with ``fmt``; non-finite values as null."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values).tolist()
    # Python's % per value: the same text as np.char.mod, 3-7 times faster
    return "[" + ",".join([fmt % v if ok else "null" for v, ok in zip(values.tolist(), finite)]) + "]"


def _lookup_json(run: RunOutputs, names: Mapping[int, str], limit: int) -> str:
    """Columnar JSON for the lookup, safe inside a <script> element."""
    seg = run.segments
    rows = np.arange(len(seg))
    if len(seg) > limit:
        seed = int(_dict(run.metrics.get("config")).get("seed") or 0)
        rows = np.sort(np.random.default_rng(seed).choice(len(seg), size=limit, replace=False))
    part = seg.iloc[rows]
    ids = [str(v) for v in part["customer_id"].tolist()]
    labels = part["segment"].to_numpy(dtype=np.int64)
    conf = part["confidence"].to_numpy(dtype=np.float64) if "confidence" in part.columns else np.full(len(part), np.nan)
    if "low_confidence" in part.columns:
        low = part["low_confidence"].fillna(False).to_numpy(dtype=bool)
    else:
        low = np.isfinite(conf) & (conf < 0.5)
    feats = run.feature_names
    values = run.features[feats].iloc[rows] if run.features is not None and feats else None
    seg_means: dict[str, str] = {}
    prof = run.profiles
    if prof is not None and "segment" in prof.columns and feats and all(f in prof.columns for f in feats):
        for _, r in prof.iterrows():
            seg_means[str(int(r["segment"]))] = _number_array(r[feats].to_numpy(dtype=np.float64), "%.4g")
    head = {
        "total": len(seg),
        "names": {str(s): n for s, n in sorted(names.items())},
        "features": list(feats),
    }
    body = [
        json.dumps(head)[:-1],
        ',"ids":' + json.dumps(ids),
        ',"segment":[' + ",".join(map(str, labels.tolist())) + "]",
        ',"confidence":' + _number_array(conf, "%.4f"),
        ',"low":[' + ",".join("1" if b else "0" for b in low) + "]",
        ',"values":[' + ",".join(_number_array(values[f].to_numpy(dtype=np.float64, na_value=np.nan), "%.4g")
                                 for f in feats) + "]" if values is not None else ',"values":[]',
        ',"segment_means":{' + ",".join(f"{json.dumps(k)}:{v}" for k, v in seg_means.items()) + "}}",
    ]
    text = "".join(body)
    # inside <script>: no '<' may start '</script' or '<!--'; '&' and '>' for good measure
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
