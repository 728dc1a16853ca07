"""The migration report: how customers move between segments over successive windows.

``gpuseg migrate`` writes ``migration.csv`` in long format (one row per window pair, from
segment and to segment; segment ``-1`` is :data:`NEW_NAME` ("new in next window": not
active in the earlier window) on the from side and :data:`GONE_NAME` ("not in next
window") on the to side, not to be confused with segments named "Lapsed" or "New
customers"). Two pure functions turn it into pictures and a page:

* :func:`sankey_png` draws an alluvial (Sankey-style) diagram: one column of stacked
  segment blocks per window and, between consecutive columns, bands as wide as the number
  of customers moving from one segment to another, coloured by the source segment. The
  grey "new in next window" block of a pair sits in its earlier column (the band's source:
  customers not active there yet) and the grey "not in this window" block in its later
  column (the band's target: customers of the earlier window who are absent here).
* :func:`migration_html` writes a self-contained HTML page: the windows, the diagram, one
  transition matrix per window pair and the drift verdict. Like ``report.html`` it loads
  nothing (PNG as a ``data:`` URI, inline CSS, a Content-Security-Policy) and escapes all
  text that comes from data. Its markup is in the templates ``templates/migration.html.j2``
  and ``templates/parts/migration.html.j2`` (see :mod:`gpuseg.report.templating`); this
  module shapes the numbers for them.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from .html import _num, _pct
from .plots import _colours, _figure, _png

__all__ = ["sankey_png", "migration_html", "MIGRATION_COLUMNS", "DRIFT_COLUMNS", "NEW_NAME", "GONE_NAME"]

#: Columns of ``migration.csv`` that the diagram and the page need.
MIGRATION_COLUMNS = ("window_from", "window_to", "from_segment", "to_segment", "customers")
#: Columns of the drift table.
DRIFT_COLUMNS = ("feature", "window_from", "window_to", "psi_vs_previous", "psi_vs_training", "status")
#: Name of segment -1 on the from side (``from_name`` in ``migration.csv``, the matrices' rows):
#: customers active in the later window of a pair, not in the earlier one.
NEW_NAME = "new in next window"
#: Name of segment -1 on the to side (``to_name``, the matrices' columns): customers of the
#: earlier window not active in the later one. Not "lapsed": a segment may be named Lapsed.
GONE_NAME = "not in next window"
#: The grey blocks of the diagram: the to side's sits in the later window, the from side's in the earlier.
_GREY_LABELS = ("not in this window", NEW_NAME)

_GREY = (0.62, 0.62, 0.62, 1.0)
_BAR = 0.14  # bar width, in column spacings


def _checked(frame: Any, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {', '.join(missing)}; expected {', '.join(columns)}")
    return frame


def _flows(migration: Any) -> pd.DataFrame:
    """Migration rows with int segments and customers, summed per (pair, from, to)."""
    m = _checked(migration, MIGRATION_COLUMNS, "migration").copy()
    for col in ("from_segment", "to_segment", "customers"):
        values = pd.to_numeric(m[col], errors="coerce")
        if values.isna().any() or (col == "customers" and (values < 0).any()):
            raise DataError(f"migration: column {col} must hold non-negative numbers" if col == "customers"
                            else f"migration: column {col} must hold integer segment ids")
        m[col] = values.astype(np.int64)
    m["window_from"] = m["window_from"].astype(str)
    m["window_to"] = m["window_to"].astype(str)
    return m.groupby(["window_from", "window_to", "from_segment", "to_segment"], as_index=False, sort=False)[
        "customers"].sum()


def sankey_png(migration: pd.DataFrame, windows: Sequence[str], segment_names: Sequence[str], *,
               path: str | os.PathLike | None = None) -> bytes:
    """An alluvial diagram of the customers' moves between segments.

    Parameters
    ----------
    migration : DataFrame
        ``migration.csv``: at least the columns of :data:`MIGRATION_COLUMNS`. Rows of
        window pairs that are not consecutive in ``windows`` are ignored; a pair without
        rows is drawn without bands.
    windows : sequence of str
        Window labels, in time order (2 or more); one column each.
    segment_names : sequence of str
        Name of each segment (index = segment id). Ids in ``migration`` beyond the list
        are called ``segment <id>``.
    path : path, optional
        Also write the PNG there.

    Returns
    -------
    bytes
        The PNG.

    Raises
    ------
    DataError
        ``migration`` lacks a column, holds non-numeric ids or negative counts, or fewer
        than two windows are given.
    DeviceError
        matplotlib is not installed.
    """
    flows = _flows(migration)
    windows = [str(w) for w in windows]
    if len(windows) < 2:
        raise DataError(f"sankey_png needs at least 2 windows, got {len(windows)}")
    top = int(max(flows["from_segment"].max(), flows["to_segment"].max(), -1)) if len(flows) else -1
    k = max(len(segment_names), top + 1, 1)
    names = [str(n) for n in segment_names] + [f"segment {i}" for i in range(len(segment_names), k)]
    W = len(windows)
    pairs = _pair_matrices(flows, windows, k)
    sizes, tops, bottom, gap = _block_layout(pairs, W, k)
    colours = _colours(k)
    fig = _figure(min(24.0, 3.0 + 1.9 * W), min(10.0, 5.5 + 0.15 * k))
    ax = fig.add_subplot()
    _draw_bands(ax, pairs, tops, k, colours)
    _draw_blocks(ax, sizes, tops, bottom, names, colours)
    ticks = []
    for t, w in enumerate(windows):
        a, sep, b = w.partition("..")
        ticks.append((f"{a} \u2013\n{b}" if sep else w) + f"\n{int(round(sizes[t, :k].sum())):,} customers")
    ax.set_xticks(range(W), ticks, fontsize=8)
    ax.tick_params(axis="x", length=0)
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(bottom - gap, gap)
    ax.set_title(f"Segment migration across {W} windows (band width = customers; grey: new in the next window / "
                 "not in this window)")
    if not any(mat.sum() > 0 for mat in pairs):
        ax.text(0.5, 0.5, "no moves between the windows", transform=ax.transAxes, ha="center", color="0.4")
    return _png(fig, path)


def _pair_matrices(flows: pd.DataFrame, windows: list[str], k: int) -> list[np.ndarray]:
    """Per pair of consecutive windows, a (k + 1) x (k + 1) matrix of customers moving from
    segment (rows) to segment (columns); index k = new in the next window (rows) / not in it (columns)."""
    pairs = []
    for a, b in zip(windows[:-1], windows[1:]):
        mat = np.zeros((k + 1, k + 1))
        part = flows[(flows["window_from"] == a) & (flows["window_to"] == b)]
        np.add.at(mat, (np.where(part["from_segment"] < 0, k, part["from_segment"]),
                        np.where(part["to_segment"] < 0, k, part["to_segment"])), part["customers"].to_numpy())
        pairs.append(mat)
    return pairs


def _block_layout(pairs: list[np.ndarray], W: int, k: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(sizes, tops, bottom, gap) of every window's blocks: the segments, then not in this
    window (target of the pair before), then new in the next (source of the next pair),
    stacked downwards from 0."""
    sizes = np.zeros((W, k + 2))
    for t, mat in enumerate(pairs):
        sizes[t, :k] = np.maximum(sizes[t, :k], mat[:k, :].sum(axis=1))
        sizes[t + 1, :k] = np.maximum(sizes[t + 1, :k], mat[:, :k].sum(axis=0))
        sizes[t + 1, k] = mat[:k, k].sum()
        sizes[t, k + 1] = mat[k, :].sum()
    span = max(float(sizes.sum(axis=1).max()), 1.0)
    gap = 0.015 * span
    tops = np.zeros((W, k + 2))
    for t in range(W):
        y = 0.0
        for s in range(k + 2):
            if s == k and sizes[t, k:].sum() > 0:
                y -= 2 * gap  # grey blocks apart from the segments
            tops[t, s] = y
            y -= sizes[t, s] + (gap if sizes[t, s] > 0 else 0.0)
    bottom = float(min(tops[t, s] - sizes[t, s] for t in range(W) for s in range(k + 2)))
    return sizes, tops, bottom, gap


def _draw_bands(ax: Any, pairs: list[np.ndarray], tops: np.ndarray, k: int, colours: list[Any]) -> None:
    """The bands between consecutive windows, each as wide as the customers it carries."""
    u = np.linspace(0.0, 1.0, 40)
    ease = 3 * u ** 2 - 2 * u ** 3  # cubic smoothstep
    for t, mat in enumerate(pairs):
        out_y = tops[t, :].copy()  # next free height in each source block
        in_y = tops[t + 1, :].copy()
        x0, x1 = t + _BAR / 2, t + 1 - _BAR / 2
        xs = x0 + (x1 - x0) * u
        for i in range(k + 1):
            src = k + 1 if i == k else i  # the new row sits in block k+1
            for j in range(k + 1):
                w = mat[i, j]
                if w <= 0:
                    continue
                y0, y1 = out_y[src], in_y[j]
                upper = y0 + (y1 - y0) * ease
                ax.fill_between(xs, upper - w, upper, color=_GREY if i == k else colours[i], alpha=0.45,
                                linewidth=0)
                out_y[src] -= w
                in_y[j] -= w


def _draw_blocks(ax: Any, sizes: np.ndarray, tops: np.ndarray, bottom: float, names: list[str],
                 colours: list[Any]) -> None:
    """Every window's blocks, labelled with the segment and its customers where they fit."""
    k = len(names)
    for t in range(sizes.shape[0]):
        for s in range(k + 2):
            h = sizes[t, s]
            if h <= 0:
                continue
            grey = s >= k
            ax.bar(t, h, width=_BAR, bottom=tops[t, s] - h, color=_GREY if grey else colours[s],
                   edgecolor="white", linewidth=0.6)
            label = _GREY_LABELS[s - k] if grey else names[s]
            label = label if len(label) <= 20 else label[:19] + "\u2026"
            frac = h / max(-bottom, 1.0)
            if frac >= 0.028:
                sep = "\n" if frac >= 0.055 else " "
                ax.text(t, tops[t, s] - h / 2, f"{label}{sep}{int(round(h)):,}", ha="center", va="center",
                        fontsize=7, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})


def _matrix(mat: pd.DataFrame, row_names: Sequence[str], col_names: Sequence[str]) -> dict[str, Any]:
    """A transition matrix (rows: from, columns: to) with row shares; the diagonal marked."""
    rows = []
    for r, rname in zip(mat.index, row_names):
        total = float(mat.loc[r].sum())
        cells = []
        for c in mat.columns:
            v = int(mat.loc[r, c])
            cells.append({"customers": _num(v), "share": _pct(v / total) if total > 0 else "-",
                          "diagonal": bool(r == c and r >= 0)})
        rows.append({"name": rname, "cells": cells, "total": _num(int(total))})
    return {"headers": ["from \\ to", *col_names, "total"], "rows": rows}


def _names(migration: pd.DataFrame, flows: pd.DataFrame) -> dict[int, str]:
    """Segment id -> name from the from_name / to_name columns (where present)."""
    names: dict[int, str] = {}
    for id_col, name_col in (("from_segment", "from_name"), ("to_segment", "to_name")):
        if name_col in migration.columns:
            for s, n in zip(pd.to_numeric(migration[id_col], errors="coerce"), migration[name_col]):
                if pd.notna(s) and int(s) >= 0 and pd.notna(n):
                    names.setdefault(int(s), str(n))
    for s in pd.concat([flows["from_segment"], flows["to_segment"]]).unique():
        if s >= 0:
            names.setdefault(int(s), f"segment {int(s)}")
    return dict(sorted(names.items()))


def _drift(drift: pd.DataFrame | None, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The refit verdict and, per window, the features whose status is not stable (refit
    first, then watch; the largest PSI against training first)."""
    due = bool(summary.get("refit_due"))
    reason = summary.get("refit_reason") or ""
    out: dict[str, Any] = {"due": due, "reason": reason or None, "windows": None}
    if drift is None or len(drift) == 0:
        return out
    d = _checked(drift, DRIFT_COLUMNS, "drift")
    order = {"refit": 0, "watch": 1}
    out["windows"] = []
    for w in dict.fromkeys(d["window_to"].astype(str)):
        part = d[d["window_to"].astype(str) == w]
        prev = part["window_from"].dropna().astype(str)
        flagged = part[part["status"].astype(str) != "stable"].copy()
        flagged["o_"] = flagged["status"].astype(str).map(order).fillna(2)
        flagged["p_"] = pd.to_numeric(flagged["psi_vs_training"], errors="coerce")
        flagged = flagged.sort_values(["o_", "p_"], ascending=[True, False], kind="stable")
        out["windows"].append({
            "name": w,
            "previous": prev.iloc[0] if len(prev) and prev.iloc[0] else None,
            "features": f"{len(part):,}",
            "flagged": None if flagged.empty else [
                {"feature": r.feature, "psi_previous": _num(r.psi_vs_previous),
                 "psi_training": _num(r.psi_vs_training), "status": r.status} for r in flagged.itertuples()],
        })
    return out


def migration_html(summary: Mapping[str, Any], migration: pd.DataFrame, drift: pd.DataFrame | None,
                   sankey: bytes | None) -> str:
    """The self-contained HTML page of a migration run.

    Parameters
    ----------
    summary : mapping
        ``model``, ``method``, ``created``, ``device``; ``windows``: a list of
        ``{"window", "start", "end", "customers", "segments": {name: count}}``;
        ``refit_due`` (bool) and ``refit_reason`` (str). Missing keys are shown as "-".
    migration : DataFrame
        ``migration.csv`` (:data:`MIGRATION_COLUMNS`; ``from_name`` / ``to_name`` give the
        names when present).
    drift : DataFrame or None
        :data:`DRIFT_COLUMNS`; per window, the features whose status is not ``stable``.
    sankey : bytes or None
        The PNG of :func:`sankey_png`, inlined; None: the page says it is missing.

    Returns
    -------
    str
        The HTML text.

    Raises
    ------
    DataError
        ``migration`` or ``drift`` lacks a column.
    """
    flows = _flows(migration)
    names = _names(migration, flows)
    wins = [w for w in summary.get("windows") or [] if isinstance(w, Mapping)]
    seg_cols = list(dict.fromkeys(str(n) for w in wins for n in (w.get("segments") or {})))
    windows = [[w.get("window", "-"), w.get("start", "-"), w.get("end", "-"), _num(w.get("customers"))]
               + [_num((w.get("segments") or {}).get(n, 0)) for n in seg_cols] for w in wins]
    pairs = _pairs([str(w.get("window")) for w in wins], flows, names)
    drift_part = _drift(drift, summary)
    from .templating import render  # jinja2: only when a page is rendered

    return render(
        "migration.html.j2",
        title=f"gpuseg segment migration: {summary.get('model', '-')}",
        meta=[(k, summary.get(k, "-")) for k in ("method", "created", "device")],
        window_headers=["window", "start", "end", "customers", *seg_cols],
        windows=windows,
        sankey=base64.b64encode(bytes(sankey)).decode("ascii") if sankey else None,
        pairs=pairs,
        drift=drift_part,
    )


def _pairs(order: list[str], flows: pd.DataFrame, names: Mapping[int, str]) -> list[dict[str, Any]]:
    """Window pairs in the order of the windows (consecutive ones and those with flows),
    each with its transition matrix, or None where no customer was recorded."""
    pair_keys = list(dict.fromkeys([*zip(order[:-1], order[1:]), *zip(flows["window_from"], flows["window_to"])]))
    pair_keys.sort(key=lambda p: order.index(p[0]) if p[0] in order else len(order))
    ids = list(names)
    pairs = []
    for a, b in pair_keys:
        part = flows[(flows["window_from"] == a) & (flows["window_to"] == b)]
        if part.empty:
            pairs.append({"source": a, "target": b, "matrix": None})
            continue
        mat = part.pivot_table(index="from_segment", columns="to_segment", values="customers", aggfunc="sum",
                               fill_value=0).reindex(index=ids + [-1], columns=ids + [-1], fill_value=0)
        if mat.loc[-1].sum() == 0:
            mat = mat.drop(index=-1)
        if mat[-1].sum() == 0:
            mat = mat.drop(columns=-1)
        matrix = _matrix(mat, [names.get(r, NEW_NAME) for r in mat.index],
                         [names.get(c, GONE_NAME) for c in mat.columns])
        pairs.append({"source": a, "target": b, "matrix": matrix})
    return pairs
