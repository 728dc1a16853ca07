"""The HTML report: one self-contained ``report.html`` per output folder.

The page loads nothing from anywhere: the plots are PNG ``data:`` URIs, the CSS and the
script are inline, the customer lookup's data are inline JSON, and a Content-Security-Policy
forbids every other source, so it opens the same offline, from a mail attachment or a
file share, in any browser. All text that comes from data (customer ids, category and
brand names, insight texts) is HTML-escaped; the lookup writes with ``textContent`` only.

Large runs: the lookup embeds at most :data:`LOOKUP_MAX_CUSTOMERS` customers (a fixed-seed
random sample above that, about 40 MB of page for 200,000 customers and 34 features), and
the page says that the lookup covers a sample; ``segments.parquet`` has everyone.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import DeviceError
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

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'")


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
    names = run.segment_names()
    m = run.metrics
    title = "gpuseg segmentation report"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        '<header class="top">',
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">gpuseg {_e(m.get("gpuseg_version", __version__))}'
        + (f' &middot; run started {_e(m["started_at"])}' if m.get("started_at") else "")
        + f" &middot; {_e(run.out_dir.name)}</p>",
        '<nav><a href="#summary">Run</a><a href="#features">Features</a><a href="#methods">Methods</a>'
        '<a href="#segments">Segments</a>' + ('<a href="#backtest">Backtest</a>' if m.get("backtest") else "")
        + '<a href="#plots">Plots</a><a href="#lookup">Customer lookup</a></nav>',
        "</header>",
        "<main>",
        _summary_section(run),
        _representation_section(run),
        _methods_section(run),
        _segments_section(run, names),
        _backtest_section(run),
        _plots_section(plots),
        _lookup_section(run, names, lookup_limit),
        "</main>",
        f'<footer class="muted">Written by gpuseg {_e(__version__)}. This page is self-contained: it loads '
        "nothing from the network.</footer>",
        f"<script>{_JS}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- formatting


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    """A number for a table cell; '-' for missing."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value)
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


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "",
           row_classes: Sequence[str] = ()) -> str:
    """A table; headers are escaped here, cells must be escaped already."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        rc = row_classes[i] if i < len(row_classes) else ""
        cells = "".join(f"<td>{c}</td>" for c in r)
        body.append(f'<tr class="{rc}">{cells}</tr>' if rc else f"<tr>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _dict(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, (list, tuple)) else []


def _int(x: Any) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _bar(share: Any) -> str:
    try:
        w = max(0.0, min(1.0, float(share))) * 100
    except (TypeError, ValueError):
        return ""
    return f'<span class="bar"><span style="width:{w:.1f}%"></span></span>'


# --------------------------------------------------------------------------- sections


def _summary_section(run: RunOutputs) -> str:
    m = run.metrics
    data, device, chosen = _dict(m.get("data")), _dict(m.get("device")), _dict(m.get("chosen"))
    rows = [
        ("Data", _e(data.get("source", "-"))),
        ("Format", _e(data.get("format", "-"))),
    ]
    files = _list(data.get("files"))
    if files:
        shown = ", ".join(_e(Path(str(f)).name) for f in files[:5])
        rows.append(("Files", shown + (f" and {len(files) - 5:,} more" if len(files) > 5 else "")))
    if data.get("rows_read") is not None:
        rows.append(("Rows", f"{_num(data.get('rows_used'))} used of {_num(data.get('rows_read'))} read"))
    if _dict(m.get("privacy")).get("pseudonymised"):
        rows.append(("Customer ids", "pseudonymised (" + _e(_dict(m.get("privacy")).get("scheme")) + "); the key is "
                     "kept only in model/, which is not to be shared with this page"))
    dropped = {k: v for k, v in _dict(data.get("rows_dropped")).items() if _int(v)}
    if dropped:
        rows.append(("Rows dropped", ", ".join(f"{_e(k.replace('_', ' '))}: {_num(v)}" for k, v in dropped.items())))
    filled = {k: v for k, v in _dict(data.get("values_filled")).items() if _int(v)}
    if filled:
        rows.append(("Values filled", ", ".join(f"{_e(k)}: {_num(v)}" for k, v in filled.items())))
    capped = _int(_dict(data.get("values_capped")).get("price"))
    if capped:
        touched = _int(_dict(data.get("customers_touched")).get("capped"))
        rows.append(("Values capped", f"{_num(capped)} prices outside the outlier fence, capped at it "
                                      f"({_num(touched)} customers)"))
    customers = _num(data.get("customers", len(run.segments)))
    if data.get("customers_in") is not None:
        lost = _int(data.get("customers_excluded"))
        customers += f" of {_num(data['customers_in'])} in the input" + (
            f"; {_num(lost)} excluded, each with its reason in excluded.csv" if lost else "; none excluded")
    rows.append(("Customers", customers))
    feats = _list(data.get("features")) or run.feature_names
    if feats:
        rows.append(("Features", f"{len(feats)} ({_e(', '.join(map(str, feats)))})"))
    if data.get("reference_time"):
        rows.append(("Reference time", _e(data["reference_time"])))
    where = device.get("label", "-")
    if device.get("backend") and device.get("backend") != "cpu":
        where = f"GPU, {where}"
    rows.append(("Device", _e(where)))
    libs = _dict(device.get("libraries"))
    if libs:
        rows.append(("Libraries", ", ".join(f"{_e(k)} {_e(v)}" for k, v in libs.items())))
    if chosen:
        rows.append(("Segmentation", f"<strong>{_e(chosen.get('method', '-'))}</strong> with k = "
                                     f"{_e(chosen.get('k', '-'))}"
                                     + (f" ({_e(_by(chosen))})" if chosen.get("by") else "")))
        conf = _dict(chosen.get("confidence_summary"))
        if chosen.get("confidence"):
            text = f"{_e(chosen['confidence'])}"
            if conf:
                text += (f"; mean {_num(conf.get('mean'), 2)}, {_num(conf.get('low_count'))} customers "
                         f"({_pct(conf.get('low_share'))}) below {_e(conf.get('threshold', 0.5))} flagged "
                         f"low_confidence")
            rows.append(("Confidence", text))
    kv = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    timings = _dict(m.get("timings"))
    stage_rows = [(k, v) for k, v in timings.items() if k != "total" and _is_number(v)]
    total = timings.get("total") if _is_number(timings.get("total")) else sum(v for _, v in stage_rows)
    top = max([v for _, v in stage_rows] + [1e-9])
    trows = [[_e(k), _num(v, 2), _bar(v / top)] for k, v in stage_rows]
    # metrics.json is written before the report and again after it, with the report's time
    total_label = "total" if "report" in timings else "total (before the report)"
    trows.append([f"<strong>{_e(total_label)}</strong>", f"<strong>{_num(total, 2)}</strong>", ""])
    return ('<section id="summary"><h2>Run</h2><div class="two">'
            f'<div><table class="kv"><tbody>{kv}</tbody></table></div>'
            f'<div><h3>Time per stage (seconds)</h3>{_table(["stage", "seconds", ""], trows, "timings")}</div>'
            "</div></section>")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _by(chosen: Mapping[str, Any]) -> str:
    by = chosen.get("by")
    return "by --select" if by == "--select" else f"by the {by}" if by else ""


_COMPARISON_COLUMNS = (
    ("method", "method", None), ("status", "status", None), ("k", "k", 0), ("silhouette", "silhouette", 3),
    ("davies_bouldin", "Davies-Bouldin", 3), ("calinski_harabasz", "Calinski-Harabasz", 1),
    ("stability_mean", "stability", 3), ("unassigned_share", "unassigned", "pct"),
    ("fit_seconds", "fit s", 2), ("ari", "ARI", 3), ("nmi", "NMI", 3), ("mean_rank", "mean rank", 2),
    ("preference", "preference", 0), ("position", "position", 0), ("checks", "checks failed", None),
    ("reason", "reason", None),
)


def _representation_section(run: RunOutputs) -> str:
    """Which features define the segments, with what weight, and why (metrics.json
    ``representation``)."""
    rep = _dict(run.metrics.get("representation"))
    rows = _list(rep.get("features"))
    if not rows:
        return ""
    out = ['<section id="features"><h2>Features that define the segments</h2>']
    if rep.get("summary"):
        out.append(f"<p>{_e(rep['summary'])}.</p>")
    ordered = sorted((_dict(r) for r in rows), key=lambda r: (r.get("weight") or 0.0) > 0)
    table = [[_e(r.get("feature")), _e(r.get("role")), _num(r.get("weight"), 3), _num(r.get("relevance"), 3),
              _e(", ".join(_list(r.get("redundancy_group")))), _e(r.get("reason"))] for r in ordered]
    out.append(_table(["feature", "role", "weight", "relevance", "redundant with", "why"], table, "comparison"))
    if rep.get("rule"):
        out.append(f'<ul class="notes"><li><strong>Rule:</strong> {_e(rep["rule"])}.</li>'
                   "<li>Features left out still describe the segments: profiles, names and the explaining "
                   "rules use every feature.</li></ul>")
    out.append("</section>")
    return "".join(out)


def _backtest_section(run: RunOutputs) -> str:
    """``gpuseg backtest``: how well the segments and the predicted value foretold the
    holdout (metrics.json ``backtest``); nothing for a plain run."""
    bt = _dict(run.metrics.get("backtest"))
    if not bt:
        return ""
    w = _dict(bt.get("window"))
    out = ['<section id="backtest"><h2>Backtest: did the segments predict what customers did next?</h2>',
           f"<p>Everything was fitted on the data up to <strong>{_e(w.get('until'))}</strong> and compared "
           f"with the holdout to <strong>{_e(w.get('holdout_end'))}</strong> ({_num(w.get('holdout_days'), 0)} "
           f"days): {_num(bt.get('customers_scored'))} customers scored, {_num(bt.get('customers_bought_again'))} "
           "of them bought again"
           + (f"; {_num(bt.get('new_customers_in_holdout'))} customers first seen in the holdout have no segment "
              "and are not scored" if _int(bt.get("new_customers_in_holdout")) else "") + ".</p>"]
    segs = _dict(bt.get("segmentations"))
    rows = [[_e(name), _e(_dict(v).get("what")), _num(_dict(v).get("k")), _num(_dict(v).get("eta_squared"), 3),
             _num(_dict(v).get("eta_squared_repeat"), 3)] for name, v in segs.items()]
    out.append("<p>Share of the variance of holdout revenue per customer (and of buying again at all) that lies "
               "between segments (eta squared; higher predicts better):</p>")
    out.append(_table(["segmentation", "what", "k", "eta² revenue", "eta² bought again"], rows,
                      "comparison", ["chosen"] if rows else ()))
    seg_rows = [[_e(r.get("segment_name")), _num(_int(r.get("customers"))), _num(_float(r.get("holdout_revenue_mean")), 2),
                 _pct(r.get("share_of_holdout_revenue")), _pct(r.get("repeat_rate")),
                 _num(_float(r.get("predicted_value_mean")), 2)] for r in map(_dict, _list(bt.get("segments")))]
    if seg_rows:
        out.append("<h3>The segments in the holdout</h3>")
        out.append(_table(["segment", "customers", "mean holdout revenue", "share of holdout revenue",
                           "bought again", "mean predicted value"], seg_rows, "comparison"))
    value = _dict(bt.get("value"))
    if value:
        out.append(f"<h3>Lifetime value calibration</h3><p>Spearman correlation of <code>predicted_clv</code> "
                   f"with holdout revenue: <strong>{_num(_float(value.get('spearman')), 3)}</strong>; predicted "
                   f"{_num(_float(value.get('total_predicted')), 0)} in all against "
                   f"{_num(_float(value.get('total_actual')), 0)} spent.</p>")
        dec = [[_num(_int(d.get("decile"))), _num(_int(d.get("customers"))), _num(_float(d.get("predicted_mean")), 2),
                _num(_float(d.get("actual_mean")), 2)] for d in map(_dict, _list(value.get("deciles")))]
        out.append(_table(["decile of predicted value", "customers", "mean predicted", "mean actual"], dec,
                          "comparison"))
    out.append('<p class="muted">Per segment of every segmentation: backtest.csv; everything: backtest.json.</p>'
               "</section>")
    return "".join(out)


def _methods_section(run: RunOutputs) -> str:
    m = run.metrics
    ev, chosen = _dict(m.get("evaluation")), _dict(m.get("chosen"))
    methods = _dict(m.get("methods"))
    out = ['<section id="methods"><h2>Methods compared</h2>']
    df = run.comparison
    if df is not None and "method" in df.columns and len(df):
        if "position" in df.columns:
            df = df.sort_values("position", kind="stable", na_position="last")
        cols = [c for c in _COMPARISON_COLUMNS if c[0] in df.columns and df[c[0]].notna().any()]
        rows, classes = [], []
        for _, r in df.iterrows():
            cells = []
            for col, _label, fmt in cols:
                v = r[col]
                if col == "stability_mean" and "stability_std" in df.columns and pd.notna(v):
                    cells.append(f"{_num(v, 3)} &plusmn; {_num(r['stability_std'], 2)}")
                elif fmt == "pct":
                    cells.append(_pct(v))
                elif fmt is None:
                    cells.append("" if pd.isna(v) else _e(v))
                else:
                    cells.append(_num(v, fmt))
            rows.append(cells)
            is_chosen = str(r.get("chosen", "")).lower() in ("true", "1") or r["method"] == chosen.get("method")
            classes.append("chosen" if is_chosen else ("failed" if str(r.get("status", "ok")) != "ok" else ""))
        out.append(_table([c[1] for c in cols], rows, "comparison", classes))
    elif methods:
        out.append(f"<p>{len(methods)} method(s) ran; comparison.csv is missing.</p>")
    else:
        out.append("<p>No method scores in this folder.</p>")
    notes = []
    if chosen.get("method"):
        mm = _dict(methods.get(chosen["method"]))
        why = _dict(mm.get("k_choice")).get("reason")
        notes.append(f"<li><strong>Chosen:</strong> {_e(chosen['method'])} with k = {_e(chosen.get('k', '-'))}"
                     + (f" ({_e(_by(chosen))})" if chosen.get("by") else "")
                     + (f"; k because: {_e(why)}" if why else "") + "</li>")
    if ev.get("method_rule"):
        notes.append(f"<li><strong>Method rule:</strong> {_e(ev['method_rule'])}.</li>")
    if ev.get("k_rule"):
        notes.append(f"<li><strong>k rule:</strong> {_e(ev['k_rule'])}.</li>")
    sil = _dict(ev.get("silhouette"))
    if sil and sil.get("exact") is False:
        notes.append(f"<li>Silhouette on a fixed-seed sample of {_num(sil.get('sample_size'))} customers.</li>")
    stab = _dict(ev.get("stability"))
    if stab.get("score"):
        notes.append(f"<li><strong>Stability:</strong> {_e(stab['score'])} ({_num(stab.get('resamples'))} "
                     f"resamples).</li>")
    if chosen.get("confidence"):
        notes.append(f"<li><strong>Confidence:</strong> {_e(chosen['confidence'])}.</li>")
    if notes:
        out.append(f'<ul class="notes">{"".join(notes)}</ul>')
    out.append("</section>")
    return "".join(out)


def _segments_section(run: RunOutputs, names: Mapping[int, str]) -> str:
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
    cards = [_card(s, names, prof_rows.get(s), by_segment.get(s, {}), int(counts.get(s, 0)), n_total, n_assigned)
             for s in segments]
    out = ['<section id="segments"><h2>Segments</h2>', f'<div class="cards">{"".join(cards)}</div>']
    out.append(_explanation_block(insights, names))
    out.append("</section>")
    return "".join(out)


def _value_line(prof: Mapping[str, Any] | None) -> str:
    """The segment's lifetime value from profiles.csv (BG/NBD + Gamma-Gamma), or nothing."""
    if prof is None or _float(prof.get("mean_predicted_clv")) is None:
        return ""
    parts = [f"mean predicted value <strong>{_num(_float(prof['mean_predicted_clv']))}</strong>"]
    if _float(prof.get("predicted_clv_share")) is not None:
        parts.append(f"<strong>{_pct(_float(prof['predicted_clv_share']))}</strong> of all predicted value")
    if _float(prof.get("mean_p_alive")) is not None:
        parts.append(f"probability still active {_num(_float(prof['mean_p_alive']))}")
    if _float(prof.get("mean_expected_purchases")) is not None:
        parts.append(f"expected purchases {_num(_float(prof['mean_expected_purchases']))}")
    return (f'<p class="facts value"><span class="label">Lifetime value</span> {" &middot; ".join(parts)} '
            '<span class="muted">(BG/NBD + Gamma-Gamma over the [value] horizon; metrics.json '
            'lifetime_value)</span></p>')


def _card(segment: int, names: Mapping[int, str], prof: Mapping[str, Any] | None, ins: Mapping[str, Any],
          count: int, n_total: int, n_assigned: int) -> str:
    name = names.get(segment, "unassigned" if segment < 0 else f"segment {segment}")
    size = _int(ins.get("size")) if ins.get("size") is not None else None
    if size is None:
        size = _int(prof.get("size")) if prof is not None and prof.get("size") is not None else count
    share = ins.get("share", prof.get("share") if prof is not None else (size / n_total if n_total else None))
    head = (f'<header><span class="swatch" style="background:{_colour(segment, n_assigned)}"></span>'
            f"<h3>{_e(name)}</h3>"
            + ("" if name == f"segment {segment}" else f'<span class="muted">segment {segment}</span>')
            + "</header>")
    facts = [f"<strong>{_num(size)}</strong> customers", f"<strong>{_pct(share)}</strong> of all"]
    if ins.get("revenue_share") is not None:
        facts.append(f"<strong>{_pct(ins['revenue_share'])}</strong> of revenue")
    body = [head, f'<p class="facts">{" &middot; ".join(facts)}</p>', _value_line(prof)]
    low = _dict(ins.get("low_confidence"))
    if _int(low.get("count")) is not None:
        threshold = low.get("threshold", 0.5)
        body.append(f'<p class="facts low-confidence"><strong>{_num(_int(low["count"]))}</strong> low-confidence '
                    f"customers" + (f" ({_pct(low['share'])} of the segment)" if low.get("share") is not None else "")
                    + f', confidence below {_e(threshold)} <span class="muted">(flagged low_confidence in '
                    "segments.parquet)</span></p>")
    if ins.get("persona") and str(ins["persona"]) != name:
        body.append(f'<p class="rule"><span class="label">Persona</span> {_e(ins["persona"])}</p>')
    if ins.get("name_rule"):
        body.append(f'<p class="rule"><span class="label">Named by</span> {_e(ins["name_rule"])}</p>')
    body.append(_key_numbers(prof, _dict(ins.get("profile"))))
    tops = _list(ins.get("top_features"))
    if tops:
        chips = "".join(
            f'<span class="chip {"up" if (_float(t.get("z")) or 0) >= 0 else "down"}">{_e(t.get("feature", "?"))} '
            f'{_signed(t.get("z"))}&sigma;</span>'
            for t in tops if isinstance(t, Mapping))
        body.append(f'<div class="block"><h4>Stands out on</h4>{chips}</div>')
    rules = _list(ins.get("rules"))
    if rules:
        items = "".join(
            f'<li><code>{_e(r.get("rule", ""))}</code> <span class="muted">support {_num(r.get("support"))}'
            + (f', precision {_pct(r.get("precision"))}' if r.get("precision") is not None else "") + "</span></li>"
            for r in rules if isinstance(r, Mapping))
        body.append(f'<div class="block"><h4>Explained by</h4><ul class="rules">{items}</ul></div>')
    actions = _list(ins.get("actions"))
    if actions:
        items = "".join(
            (f'<li><span class="kind">{_e(a.get("kind", ""))}</span> {_e(a.get("text", ""))}</li>'
             if isinstance(a, Mapping) else f"<li>{_e(a)}</li>") for a in actions)
        body.append(f'<div class="block"><h4>Actions</h4><ul class="actions">{items}</ul></div>')
    for key, label in (("top_categories", "Categories it buys more than others"),
                       ("top_brands", "Brands it buys more than others")):
        entries = [t for t in _list(ins.get(key)) if isinstance(t, Mapping)]
        if entries:
            items = "".join(f'<li><span class="nm">{_e(t.get("name", "?"))}</span>{_bar(t.get("share"))}'
                            f'<span class="pc">{_pct(t.get("share"))}'
                            + (f' &middot; {_num(_float(t.get("lift")), 1)}&times; the base' if t.get("lift") else "")
                            + "</span></li>" for t in entries)
            body.append(f'<div class="block"><h4>{label}</h4><p class="muted">share of the segment\'s events '
                        f'&middot; lift over all customers</p><ul class="shares">{items}</ul></div>')
    if not _list(ins.get("top_categories")) and prof is not None and isinstance(prof.get("top_category"), str):
        body.append(f'<p class="rule"><span class="label">Top category</span> {_e(prof["top_category"])}</p>')
    body.append(_recommendations(_dict(ins.get("recommendations"))))
    rfm = _dict(ins.get("rfm"))
    if rfm:
        chips = "".join(f'<span class="chip">{_e(k)} {_num(v)}</span>' for k, v in rfm.items())
        body.append(f'<div class="block"><h4>RFM classes</h4>{chips}</div>')
    full = _full_profile(prof, _dict(ins.get("profile")))
    if full:
        body.append(full)
    return f'<article class="card" id="segment-{segment}">{"".join(b for b in body if b)}</article>'


def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _signed(x: Any) -> str:
    v = _float(x)
    return "-" if v is None else f"{v:+.1f}"


def _key_numbers(prof: Mapping[str, Any] | None, profile: Mapping[str, Any]) -> str:
    feats = [f for f in KEY_FEATURES if (prof is not None and f in prof) or f in profile]
    if not feats:
        return ""
    rows = []
    for f in feats:
        p = _dict(profile.get(f))
        mean = p.get("mean", prof.get(f) if prof is not None else None)
        extra = []
        if p.get("median") is not None:
            extra.append(f"median {_num(p['median'], 2)}")
        if p.get("z") is not None:
            extra.append(f"{_signed(p['z'])}&sigma;")
        rows.append(f'<tr><th>{_e(f)}</th><td>{_num(mean, 2)}</td><td class="muted">{" ".join(extra)}</td></tr>')
    return f'<table class="kv small"><tbody>{"".join(rows)}</tbody></table>'


def _full_profile(prof: Mapping[str, Any] | None, profile: Mapping[str, Any]) -> str:
    skip = {"segment", "segment_name", "size", "share", "top_category"}
    feats = list(profile) if profile else ([k for k in prof.keys() if k not in skip] if prof is not None else [])
    if not feats:
        return ""
    rows = []
    for f in feats:
        p = _dict(profile.get(f))
        mean = p.get("mean", prof.get(f) if prof is not None else None)
        rows.append([_e(f), _num(mean, 3), _num(p.get("median"), 3) if p else "-", _signed(p.get("z")) if p else "-"])
    headers = ["feature", "mean", "median", "z"] if profile else ["feature", "mean"]
    rows = [r[: len(headers)] for r in rows]
    return f"<details><summary>All {len(feats)} features</summary>{_table(headers, rows, 'small')}</details>"


def _item(entry: Mapping[str, Any]) -> str:
    """A product's readable name with its id, or the id alone."""
    item = _e(entry.get("item", "?"))
    label = entry.get("label")
    return f'{_e(label)} <span class="muted">({item})</span>' if label else item


def _recommendations(rec: Mapping[str, Any]) -> str:
    if not rec:
        return ""
    parts = ['<div class="block"><h4>Recommendations</h4>']
    totals = [f"{_num(rec[k])} {label}" for k, label in (("purchases", "purchases"), ("buyers", "buyers"),
                                                        ("items", "distinct items")) if rec.get(k) is not None]
    if totals:
        parts.append(f'<p class="muted">{", ".join(totals)}</p>')
    items = [t for t in _list(rec.get("top_items")) if isinstance(t, Mapping)]
    if items:
        parts.append(_table(["item", "purchases", "buyers"],
                            [[_item(t), _num(t.get("purchases")), _num(t.get("buyers"))] for t in items],
                            "small"))
    lis = []
    for t in _list(rec.get("bought_together")):
        if not isinstance(t, Mapping):
            continue
        related = [w for w in _list(t.get("with", t.get("related"))) if isinstance(w, Mapping)]
        if related:  # a top item nobody bought anything with says nothing
            withs = ", ".join(f'{_item(w)} <span class="muted">(score {_num(w.get("score"), 2)}, '
                              f'{_num(w.get("co_buyers"))} co-buyers)</span>' for w in related)
            lis.append(f"<li><strong>{_item(t)}</strong> &rarr; {withs}</li>")
    if lis:
        parts.append(f'<p class="label">Bought together</p><ul class="rules">{"".join(lis)}</ul>')
    if rec.get("note"):
        parts.append(f'<p class="muted">{_e(rec["note"])}</p>')
    parts.append("</div>")
    return "".join(parts)


def _explanation_block(insights: Mapping[str, Any], names: Mapping[int, str]) -> str:
    out = []
    exp = _dict(insights.get("explanation"))
    if exp:
        facts = []
        if exp.get("fidelity") is not None:
            facts.append(f"fidelity <strong>{_pct(exp['fidelity'])}</strong>"
                         + (f" on {_e(exp['fidelity_on'])}" if exp.get("fidelity_on") else ""))
        if exp.get("max_depth") is not None:
            facts.append(f"decision tree of depth at most {_e(exp['max_depth'])}")
        text = ('<p>The rules on the cards come from a decision tree fitted to predict each customer\'s segment '
                f'from the features: {", ".join(facts)} (fidelity: share of customers whose segment the rules '
                "get right).</p>" if facts else "")
        if exp.get("method"):
            text += f'<p class="muted">{_e(exp["method"])}</p>'
        raw = exp.get("feature_importance")
        if isinstance(raw, Mapping):  # {feature: importance}
            raw = [{"feature": k, "importance": v} for k, v in raw.items()]
        imp = [f for f in _list(raw) if isinstance(f, Mapping)]
        imp = sorted(imp, key=lambda f: -(_float(f.get("importance")) or 0.0))[:_TOP_IMPORTANCES]
        table = _table(["feature", "importance in the tree", ""],
                       [[_e(f.get("feature", "?")), _num(f.get("importance"), 3), _bar(f.get("importance"))]
                        for f in imp], "small") if imp else ""
        out.append(f'<div class="panel"><h3>How the segments are explained</h3>{text}{table}</div>')
    crosstab = _dict(_dict(insights.get("rfm")).get("crosstab"))
    if crosstab:
        classes: list[str] = []
        for row in crosstab.values():
            for c in _dict(row):
                if c not in classes:
                    classes.append(c)
        rows = []
        for seg, row in crosstab.items():
            s = _int(seg)
            label = names.get(s, str(seg)) if s is not None else str(seg)
            rows.append([_e(label)] + [_num(_dict(row).get(c)) for c in classes])
        out.append(f'<div class="panel"><h3>Segments x RFM classes (customers)</h3>'
                   f'{_table(["segment"] + classes, rows, "small")}</div>')
    return "".join(out)


def _plots_section(plots: Mapping[str, bytes | str]) -> str:
    figs, skipped = [], []
    for name, value in plots.items():
        title = PLOTS.get(name, name)
        if isinstance(value, (bytes, bytearray)):
            data = base64.b64encode(bytes(value)).decode("ascii")
            wide = ' class="wide"' if name in _WIDE_PLOTS else ""
            figs.append(f'<figure id="plot-{_e(name)}"{wide}><h3>{_e(title)}</h3>'
                        f'<img alt="{_e(title)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_e(_CAPTIONS.get(name, ''))}</figcaption></figure>")
        else:
            skipped.append(f"<li><strong>{_e(title)}</strong>: {_e(value)}</li>")
    out = ['<section id="plots"><h2>Plots</h2>']
    out.append(f'<div class="figs">{"".join(figs)}</div>' if figs else "<p>No plots in this report.</p>")
    if skipped:
        out.append(f'<details class="skipped"><summary>Left out ({len(skipped)})</summary>'
                   f'<ul>{"".join(skipped)}</ul></details>')
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------- lookup


def _lookup_section(run: RunOutputs, names: Mapping[int, str], limit: int) -> str:
    data = _lookup_json(run, names, limit)
    n, shown = len(run.segments), min(len(run.segments), limit)
    if shown < n:
        cover = (f"The lookup covers a fixed-seed random sample of {shown:,} of the {n:,} customers, to keep this "
                 "page small; segments.parquet has every customer.")
    else:
        cover = f"The lookup covers all {n:,} customers."
    privacy = _dict(run.metrics.get("privacy"))
    if privacy.get("pseudonymised"):
        cover += (f" Customer ids are pseudonymised ({privacy.get('scheme')}): look up a customer by the pseudonym "
                  "that segments.parquet and gpuseg assign give; the key is kept only in the model folder.")
    return ('<section id="lookup"><h2>Customer lookup</h2>'
            f'<p>Type or paste a customer id and press Enter. <span id="lookup-coverage">{_e(cover)}</span></p>'
            '<form id="lookup-form" autocomplete="off">'
            '<input id="lookup-id" type="search" placeholder="customer id" aria-label="customer id" spellcheck="false">'
            '<button id="lookup-go" type="submit">Look up</button></form>'
            '<div id="lookup-result" aria-live="polite"></div>'
            f'<script type="application/json" id="lookup-data">{data}</script>'
            "</section>")


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


_CSS = """
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#dde2e8;--bg:#f6f7f9;--card:#fff;--accent:#d95f02;--ok:#1b9e77}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header.top{background:#1d2330;color:#fff;padding:18px 28px 10px}
header.top h1{margin:0 0 4px;font-size:22px}
header.top .muted{color:#c3cad4}
nav a{color:#fff;margin-right:18px;text-decoration:none;border-bottom:2px solid transparent;padding-bottom:2px}
nav a:hover{border-color:var(--accent)}
nav{margin-top:8px}
main{padding:8px 28px 28px;max-width:1500px}
section{margin-top:26px}
h2{font-size:19px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:6px 0}
h4{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin:10px 0 4px}
.muted{color:var(--muted)}
.two{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:24px}
@media (max-width:900px){.two{grid-template-columns:1fr}}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:var(--card)}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#eef1f5;font-weight:600;white-space:nowrap}
td{font-variant-numeric:tabular-nums}
table.kv th{color:var(--muted);font-weight:500;white-space:nowrap;width:1%}
table.small{font-size:12.5px}
table.comparison tr.chosen td{background:#fdebd9;font-weight:600}
table.comparison tr.failed td{color:var(--muted)}
ul.notes{padding-left:18px}
ul.notes li{margin:3px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;
box-shadow:0 1px 2px rgba(0,0,0,.04)}
.card header{display:flex;align-items:center;gap:8px}
.card header h3{flex:1}
.swatch{width:14px;height:14px;border-radius:3px;display:inline-block;flex:none}
.facts{margin:4px 0 8px}
.rule .label,.label{color:var(--muted);font-size:12px;margin-right:4px}
.chip{display:inline-block;border:1px solid var(--line);border-radius:10px;padding:1px 8px;margin:2px 4px 2px 0;
font-size:12px;background:#f3f5f8}
.chip.up{background:#fbe3e1;border-color:#f2c1bc}
.chip.down{background:#e1ecf8;border-color:#bdd3ee}
ul.rules,ul.actions,ul.shares{padding-left:16px;margin:4px 0}
ul.shares{list-style:none;padding-left:0}
ul.shares li{display:flex;align-items:center;gap:6px}
ul.shares .nm{flex:0 0 40%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
ul.shares .pc{font-size:12px;color:var(--muted)}
.kind{font-size:11px;text-transform:uppercase;background:#eef1f5;border-radius:3px;padding:0 4px;margin-right:3px}
code{font-size:12px;background:#f3f5f8;padding:0 3px;border-radius:3px}
.bar{display:inline-block;width:90px;height:8px;background:#eef1f5;border-radius:4px;vertical-align:middle}
.bar span{display:block;height:100%;background:var(--ok);border-radius:4px}
details{margin-top:8px}
summary{cursor:pointer;color:var(--muted)}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 16px;margin-top:16px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));grid-auto-flow:dense;gap:16px}
figure.wide{grid-column:1/-1}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:var(--muted);font-size:12.5px;margin-top:6px}
#lookup-form{display:flex;gap:8px;margin:8px 0}
#lookup-id{flex:0 1 360px;padding:7px 10px;font-size:15px;border:1px solid #b9c1cc;border-radius:6px}
#lookup-go{padding:7px 16px;font-size:15px;border:0;border-radius:6px;background:var(--accent);color:#fff;
cursor:pointer}
#lookup-result .notfound{color:#b3261e;font-weight:600}
#lookup-result .low{color:#b3261e;font-weight:600}
footer{padding:14px 28px}
@media print{nav,#lookup{display:none}.card,figure{break-inside:avoid}}
"""

# No '//' anywhere (comments or otherwise): the page must not contain anything URL-like.
_JS = """
(function () {
  "use strict";
  var node = document.getElementById("lookup-data");
  var data = JSON.parse(node.textContent);
  var index = null;
  var form = document.getElementById("lookup-form");
  var input = document.getElementById("lookup-id");
  var result = document.getElementById("lookup-result");
  function buildIndex() {
    index = new Map();
    for (var i = 0; i < data.ids.length; i++) { index.set(data.ids[i], i); }
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function num(v) {
    if (v === null || v === undefined) { return "-"; }
    return Number(v.toPrecision(4)).toLocaleString("en-US", {maximumFractionDigits: 6});
  }
  function row(tbody, label, value, id, cls) {
    var tr = el("tr");
    tr.appendChild(el("th", label));
    var td = el("td", value, cls);
    if (id) { td.id = id; }
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
  function show(raw) {
    var id = String(raw).trim();
    while (result.firstChild) { result.removeChild(result.firstChild); }
    if (!id) { return; }
    if (index === null) { buildIndex(); }
    var i = index.has(id) ? index.get(id) : -1;
    if (i < 0) {
      var msg = el("p", "Customer \\u201c" + id + "\\u201d not found", "notfound");
      msg.id = "lookup-notfound";
      result.appendChild(msg);
      if (data.ids.length < data.total) {
        result.appendChild(el("p", "The lookup covers a sample of the customers; segments.parquet has all of them.",
          "muted"));
      }
      return;
    }
    var seg = data.segment[i];
    var name = Object.prototype.hasOwnProperty.call(data.names, String(seg)) ? data.names[String(seg)] :
      (seg < 0 ? "unassigned" : "segment " + seg);
    var table = el("table", null, "kv");
    var tbody = el("tbody");
    table.appendChild(tbody);
    row(tbody, "Customer", id, "lookup-customer");
    row(tbody, "Segment", seg, "lookup-segment");
    row(tbody, "Segment name", name, "lookup-name");
    var c = data.confidence[i];
    row(tbody, "Confidence", c === null ? "-" : c.toFixed(3), "lookup-confidence");
    row(tbody, "Low confidence", data.low[i] ? "yes" : "no", "lookup-low", data.low[i] ? "low" : "");
    result.appendChild(table);
    if (data.features.length && data.values.length) {
      var means = data.segment_means[String(seg)];
      result.appendChild(el("h3", "Features"));
      var ft = el("table", null, "small");
      var head = el("tr");
      head.appendChild(el("th", "feature"));
      head.appendChild(el("th", "this customer"));
      if (means) { head.appendChild(el("th", "segment mean")); }
      var thead = el("thead");
      thead.appendChild(head);
      ft.appendChild(thead);
      var fb = el("tbody");
      for (var j = 0; j < data.features.length; j++) {
        var tr = el("tr");
        tr.appendChild(el("td", data.features[j]));
        tr.appendChild(el("td", num(data.values[j][i])));
        if (means) { tr.appendChild(el("td", num(means[j]), "muted")); }
        fb.appendChild(tr);
      }
      ft.appendChild(fb);
      var wrap = el("div", null, "scroll");
      wrap.appendChild(ft);
      result.appendChild(wrap);
    }
  }
  form.addEventListener("submit", function (ev) { ev.preventDefault(); show(input.value); });
  var target = window.location.hash.match(/^#customer=(.+)$/);
  if (target) {
    try { input.value = decodeURIComponent(target[1]); } catch (err) { input.value = target[1]; }
    show(input.value);
  }
})();
"""
