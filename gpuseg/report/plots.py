"""Plots of a run's output folder, each returned as PNG bytes.

Every plotting function draws on its own matplotlib ``Figure`` attached to the Agg canvas
(no pyplot: no global backend switch, nothing opens a window, safe in notebooks and
servers), returns the PNG bytes and, given ``path``, also writes them there. matplotlib is
imported on first use; without it the functions raise :class:`~gpuseg.errors.DeviceError`
with the install hint.

:func:`make_plots` builds every plot that an output folder's files allow and gives, for each
one it leaves out, the reason.

Projections and the dendrogram are drawn in the clustering space: ``features.parquet`` is
put through the run's own scaling (``metrics.json`` ``scaling``: ``log1p`` where the run
applied it, then the stored mean and scale), so distances are the ones the methods saw.
Where those parameters are missing the features are standardised instead. The same scaled
features give the segment z-scores of the radar chart and the heatmap (the mean of a
segment's customers on each scaled feature, in standard deviations from the average
customer), unless ``insights`` carries its own per-segment ``z``.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..backend import import_optional
from ..errors import ConfigError, DataError
from ..segments.confidence import LOW_CONFIDENCE

__all__ = [
    "PLOTS",
    "RunOutputs",
    "read_outputs",
    "scaled_features",
    "segment_zscores",
    "key_features",
    "pca_plot",
    "umap_plot",
    "sweep_plot",
    "comparison_plot",
    "radar_plot",
    "heatmap_plot",
    "activity_plot",
    "dendrogram_plot",
    "umatrix_plot",
    "confidence_plot",
    "make_plots",
]

MATPLOTLIB_HINT = "pip install matplotlib (a dependency of gpuseg; reinstall with: pip install -e .)"

#: Plot name -> title, in the order of the report.
PLOTS: dict[str, str] = {
    "pca": "PCA projection",
    "umap": "UMAP projection",
    "sweep": "Scores over k",
    "comparison": "Method comparison",
    "radar": "Segment profiles (radar)",
    "heatmap": "Feature heatmap",
    "activity": "Activity by weekday and hour",
    "dendrogram": "Ward dendrogram",
    "umatrix": "SOM U-matrix",
    "confidence": "Confidence",
}

#: Features preferred on the radar chart, when the run has them.
KEY_FEATURES = (
    "recency_days", "frequency", "monetary", "avg_order_value", "views", "cart_abandonment", "sessions", "price_index",
)

#: At most this many customers in the PCA scatter (fixed-seed sample above it).
PCA_MAX_POINTS = 8_000
#: At most this many customers are embedded by UMAP (the slow plot on a CPU).
UMAP_MAX_POINTS = 3_000
#: At most this many customers in the Ward dendrogram (O(n^2) memory).
DENDROGRAM_MAX_POINTS = 2_000

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DPI = 100


# --------------------------------------------------------------------------- reading


@dataclass
class RunOutputs:
    """The files of one run's output folder, read into memory.

    Attributes
    ----------
    out_dir : Path
    metrics : dict
        ``metrics.json``.
    segments : DataFrame
        ``segments.parquet``.
    features : DataFrame or None
        ``features.parquet``, rows in the order of ``segments`` (customers missing from
        either file are dropped); None when the file is missing.
    profiles, comparison : DataFrame or None
        ``profiles.csv`` and ``comparison.csv`` when present.
    insights : dict or None
        The insights given, else ``insights.json`` when present.
    """

    out_dir: Path
    metrics: dict
    segments: pd.DataFrame
    features: pd.DataFrame | None = None
    profiles: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    insights: dict | None = None

    @property
    def feature_names(self) -> list[str]:
        """Feature columns of ``features`` (all but ``customer_id``)."""
        if self.features is None:
            return []
        return [c for c in self.features.columns if c != "customer_id"]

    def segment_names(self) -> dict[int, str]:
        """Segment -> name: insights' names over the names in ``segments.parquet``."""
        names: dict[int, str] = {}
        if "segment_name" in self.segments.columns:
            pairs = self.segments[["segment", "segment_name"]].drop_duplicates("segment")
            names = {int(s): str(n) for s, n in zip(pairs["segment"], pairs["segment_name"])}
        for seg in (self.insights or {}).get("segments") or []:
            if isinstance(seg, Mapping) and seg.get("segment") is not None and seg.get("name"):
                names[int(seg["segment"])] = str(seg["name"])
        return names


def read_outputs(out_dir: str | os.PathLike, insights: Mapping[str, Any] | None = None) -> RunOutputs:
    """Read a run's output folder.

    Parameters
    ----------
    out_dir : path
        A folder written by ``gpuseg run``: ``metrics.json`` and ``segments.parquet`` are
        needed, the other files are used when present.
    insights : mapping, optional
        Segment insights (the shape of ``insights.json``); default: ``out_dir/insights.json``
        when it exists.

    Returns
    -------
    RunOutputs

    Raises
    ------
    ConfigError
        The folder does not exist or lacks ``metrics.json`` or ``segments.parquet``.
    DataError
        A file is there but cannot be read.
    """
    out = Path(out_dir).expanduser()
    if not out.is_dir():
        raise ConfigError(f"{out_dir}: no such folder; give the --out folder of a gpuseg run")
    for name in ("metrics.json", "segments.parquet"):
        if not (out / name).is_file():
            raise ConfigError(f"{out_dir}: has no {name}; give the --out folder of a gpuseg run")
    metrics = _read_json(out / "metrics.json")
    segments = _read(out / "segments.parquet", pd.read_parquet)
    for col in ("customer_id", "segment"):
        if col not in segments.columns:
            raise DataError(f"{out / 'segments.parquet'}: has no {col} column")
    features = None
    if (out / "features.parquet").is_file():
        raw = _read(out / "features.parquet", pd.read_parquet)
        if "customer_id" not in raw.columns:
            raise DataError(f"{out / 'features.parquet'}: has no customer_id column")
        features = _aligned(segments, raw)
        segments = segments[segments["customer_id"].isin(features["customer_id"])].reset_index(drop=True)
    profiles = _read(out / "profiles.csv", pd.read_csv) if (out / "profiles.csv").is_file() else None
    comparison = _read(out / "comparison.csv", pd.read_csv) if (out / "comparison.csv").is_file() else None
    if insights is None and (out / "insights.json").is_file():
        insights = _read_json(out / "insights.json")
    if insights is not None and not isinstance(insights, Mapping):
        raise DataError(f"insights must be a JSON object, got {type(insights).__name__}")
    return RunOutputs(out, metrics, segments, features, profiles, comparison,
                      dict(insights) if insights is not None else None)


def _read(path: Path, reader: Any) -> pd.DataFrame:
    try:
        return reader(path)
    except Exception as exc:  # pyarrow/pandas raise many kinds for a broken file
        raise DataError(f"{path}: cannot be read ({exc})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as JSON ({exc})") from None


def _aligned(segments: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Features in the row order of ``segments`` (inner join on customer_id)."""
    if len(features) == len(segments) and features["customer_id"].equals(segments["customer_id"]):
        return features.reset_index(drop=True)
    ids = segments[["customer_id"]]
    return ids.merge(features.drop_duplicates("customer_id"), on="customer_id", how="inner").reset_index(drop=True)


# --------------------------------------------------------------------------- data


def scaled_features(features: pd.DataFrame, scaling: Mapping[str, Mapping[str, Any]] | None = None) -> np.ndarray:
    """The features in the clustering space, float64.

    Parameters
    ----------
    features : DataFrame
        Unscaled features (``features.parquet``); ``customer_id`` is ignored.
    scaling : mapping, optional
        ``metrics.json`` ``scaling``: feature -> ``{"log1p", "mean", "scale", "weight"}``.
        When it covers every feature the run's scaling and feature weights are reapplied;
        otherwise each feature is standardised (zero mean, unit variance; constant
        features become 0).

    Returns
    -------
    ndarray of shape (n_customers, n_features)
    """
    from ..prep.scale import FeatureScaler

    cols = [c for c in features.columns if c != "customer_id"]
    X = features[cols].to_numpy(dtype=np.float64, na_value=np.nan)
    X = np.where(np.isfinite(X), X, 0.0)
    if scaling and all(isinstance(scaling.get(c), Mapping) for c in cols):
        # the fitted parameters of the run's scaler, so that FeatureScaler stays the one
        # definition of the transform
        scaler = FeatureScaler(dtype=np.float64)
        scaler.log_mask_ = np.array([bool(scaling[c].get("log1p", False)) for c in cols])
        scaler.mean_ = np.array([float(scaling[c]["mean"]) for c in cols])
        scale = np.array([float(scaling[c]["scale"]) for c in cols])
        scaler.scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        scaler.n_features_in_ = len(cols)
        scaler.weights_ = np.array([float(scaling[c].get("weight", 1.0)) for c in cols])  # the clustering weights
        return scaler.transform(X)
    mean = X.mean(axis=0) if len(X) else np.zeros(len(cols))
    std = X.std(axis=0) if len(X) else np.ones(len(cols))
    return (X - mean) / np.where(std > 0, std, 1.0)


def segment_zscores(X: np.ndarray, labels: Any, feature_names: Sequence[str],
                    names: Mapping[int, str] | None = None) -> pd.DataFrame:
    """Mean of each segment on each (scaled) feature.

    Parameters
    ----------
    X : ndarray of shape (n_customers, n_features)
        Scaled features (see :func:`scaled_features`), so a mean is in standard deviations
        from the average customer.
    labels : array of shape (n_customers,)
        Segments; negative labels (unassigned) are left out.
    feature_names : sequence of str
    names : mapping, optional
        Segment -> name, used as the index.

    Returns
    -------
    DataFrame
        One row per segment (index: name), one column per feature.
    """
    labels = np.asarray(labels)
    frame = pd.DataFrame(np.asarray(X, dtype=np.float64), columns=list(feature_names))
    keep = labels >= 0
    z = frame[keep].groupby(labels[keep]).mean()
    names = names or {}
    z.index = [names.get(int(s), f"segment {int(s)}") for s in z.index]
    return z


def key_features(z: pd.DataFrame, n: int = 8) -> list[str]:
    """About ``n`` features to show: :data:`KEY_FEATURES` the table has, then those whose
    segment z-scores differ most."""
    chosen = [f for f in KEY_FEATURES if f in z.columns][:n]
    spread = z.std(axis=0).fillna(0.0).sort_values(ascending=False, kind="stable")
    for f in spread.index:
        if len(chosen) >= n:
            break
        if f not in chosen:
            chosen.append(f)
    return chosen


def _insight_zscores(insights: Mapping[str, Any] | None, names: Mapping[int, str]) -> pd.DataFrame | None:
    """Segment x feature z-scores from insights' profiles, when every segment has them."""
    rows = {}
    for seg in (insights or {}).get("segments") or []:
        if not isinstance(seg, Mapping) or not isinstance(seg.get("profile"), Mapping) or seg.get("segment") is None:
            return None
        z = {f: v.get("z") for f, v in seg["profile"].items() if isinstance(v, Mapping)}
        z = {f: float(v) for f, v in z.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        if not z:
            return None
        s = int(seg["segment"])
        if s >= 0:
            rows[names.get(s, str(seg.get("name") or f"segment {s}"))] = z
    if not rows:
        return None
    return pd.DataFrame.from_dict(rows, orient="index").dropna(axis=1)


def _sample(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices: all rows, or a fixed-seed sample of ``max_rows``."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


# --------------------------------------------------------------------------- drawing


def _matplotlib() -> Any:
    return import_optional("matplotlib", hint=MATPLOTLIB_HINT)


def _figure(width: float, height: float) -> Any:
    """A Figure on the Agg canvas (no pyplot, so no global backend is touched)."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _skip_empty_axis_labels(fig: Any) -> None:
    """Hide the axes' empty axis labels and pin them, so that no draw measures every tick
    label again to place a label with no text (the same picture; a sixth of the weekday x
    hour grids' time)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.label.get_text():
                axis.label.set_visible(False)
                axis.set_label_coords(0.5, 0.5)


def _png(fig: Any, path: str | os.PathLike | None) -> bytes:
    _skip_empty_axis_labels(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _colours(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _segment_colours(segs: Sequence[int], names: Mapping[int, str] | None) -> dict[int, Any]:
    """Segment number -> colour, the same in every plot: by number, from one palette sized
    to every segment (those named as well as those present), so a segment absent from a
    plot's sample shifts no other segment's colour."""
    ids = sorted({int(s) for s in segs} | {int(s) for s in (names or {})})
    ids = [s for s in ids if s >= 0]
    palette = _colours(ids[-1] + 1 if ids else 1)
    return {s: palette[s] for s in ids}


def _scatter(points: np.ndarray, labels: np.ndarray, names: Mapping[int, str] | None, title: str,
             axis_labels: tuple[str, str], path: str | os.PathLike | None) -> bytes:
    names = names or {}
    segs = sorted(int(s) for s in np.unique(labels))
    colours = _segment_colours(segs, names)
    fig = _figure(8.0, 6.0)
    ax = fig.add_subplot()
    size = 4.0 if len(points) > 5_000 else 10.0
    for s in segs:
        m = labels == s
        colour = (0.6, 0.6, 0.6, 1.0) if s < 0 else colours[s]
        ax.scatter(points[m, 0], points[m, 1], s=size, color=colour, alpha=0.6, linewidths=0, rasterized=True,
                   label=f"{names.get(s, 'unassigned' if s < 0 else f'segment {s}')} ({int(m.sum()):,})")
    ax.set_title(title)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    leg = ax.legend(loc="best", fontsize=8, markerscale=2.5 if size < 10 else 1.5, frameon=True)
    for h in leg.legend_handles:
        h.set_alpha(1.0)
    return _png(fig, path)


def _check_points(X: Any, labels: Any, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[0],):
        raise ValueError(f"X must be 2-D with one label per row, got shapes {X.shape} and {labels.shape}")
    if X.shape[0] < minimum:
        raise ValueError(f"needs at least {minimum} customers, got {X.shape[0]}")
    return X, labels


def pca_plot(X: Any, labels: Any, names: Mapping[int, str] | None = None, *, max_points: int = PCA_MAX_POINTS,
             seed: int = 0, path: str | os.PathLike | None = None) -> bytes:
    """Customers on the first two principal components, coloured by segment.

    Parameters
    ----------
    X : array of shape (n_customers, n_features)
        Scaled features (see :func:`scaled_features`).
    labels : array of shape (n_customers,)
        Segment of each customer (-1: unassigned, drawn grey).
    names : mapping, optional
        Segment -> name, for the legend.
    max_points : int, default=8000
        The axes are fitted on every customer; at most this many (a fixed-seed sample) are drawn.
    seed : int, default=0
    path : path, optional
        Also write the PNG there.

    Returns
    -------
    bytes
        PNG.
    """
    from ..embed import PCA

    X, labels = _check_points(X, labels, 2)
    if X.shape[1] < 2:
        raise ValueError("PCA projection needs at least 2 features")
    pca = PCA(2).fit(X)
    rows = _sample(len(X), max_points, seed)
    pts = np.asarray(pca.transform(X[rows]))
    ratio = pca.explained_variance_ratio_
    shown = f"{len(rows):,} of {len(X):,} customers" if len(rows) < len(X) else f"{len(X):,} customers"
    return _scatter(pts, labels[rows], names, f"PCA of the scaled features ({shown})",
                    (f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%} of variance)"), path)


def umap_plot(X: Any, labels: Any, names: Mapping[int, str] | None = None, *, max_points: int = UMAP_MAX_POINTS,
              seed: int = 0, path: str | os.PathLike | None = None) -> bytes:
    """UMAP embedding of (a fixed-seed sample of) the customers, coloured by segment.

    Parameters as :func:`pca_plot`; ``max_points`` defaults to 3,000 because seeded UMAP
    runs single-threaded on a CPU (about a minute for 3,000-5,000 customers on two cores,
    numba's first compilation included).

    Raises
    ------
    DeviceError
        umap-learn is not installed.
    """
    from ..embed.projection import UMAP, UMAP_HINT

    import_optional("umap", hint=UMAP_HINT)
    X, labels = _check_points(X, labels, 17)
    rows = _sample(len(X), max_points, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap-learn warns that a seed makes it single-threaded
        pts = np.asarray(UMAP(2, random_state=seed).fit_transform(X[rows].astype(np.float32)))
    shown = f"{len(rows):,} of {len(X):,} customers" if len(rows) < len(X) else f"{len(X):,} customers"
    return _scatter(pts, labels[rows], names, f"UMAP of the scaled features ({shown})", ("UMAP 1", "UMAP 2"), path)


#: (score, title, which way is better, log axis): the inertia on the log axis whose knee the
#: k rule takes (:func:`gpuseg.evaluate.selection.choose_k`)
_SWEEP_PANELS = (
    ("inertia", "Inertia, log scale (the elbow)", None, True),
    ("silhouette", "Silhouette", "higher is better", False),
    ("davies_bouldin", "Davies-Bouldin", "lower is better", False),
    ("calinski_harabasz", "Calinski-Harabasz", "higher is better", False),
)


def sweep_plot(methods: Mapping[str, Mapping[str, Any]], chosen: str | None = None, *,
               path: str | os.PathLike | None = None) -> bytes:
    """Inertia, silhouette, Davies-Bouldin and Calinski-Harabasz over k, one line per method.

    Parameters
    ----------
    methods : mapping
        ``metrics.json`` ``methods``: each with a ``sweep`` (list of per-k scores) and
        ``chosen_index`` (or ``k``); the chosen k of each method is marked with a star.
    chosen : str, optional
        The run's chosen method, drawn thicker.
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    lines = {}
    for name, mm in methods.items():
        sweep = [r for r in (mm.get("sweep") or []) if isinstance(r, Mapping) and r.get("status", "ok") == "ok"]
        if mm.get("status", "ok") == "ok" and sweep:
            lines[name] = (sweep, _chosen_k(mm))
    if not lines:
        raise ValueError("no method has scores over k")
    colours = _colours(len(lines))
    fig = _figure(11.0, 7.5)
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, title, better, log) in zip(axes, _SWEEP_PANELS):
        drawn, positive = False, True
        for colour, (name, (sweep, kc)) in zip(colours, lines.items()):
            pts = [(r["k"], r[key]) for r in sweep if _finite(r.get(key))]
            if not pts:
                continue
            ks, vs = zip(*pts)
            positive = positive and min(vs) > 0
            ax.plot(ks, vs, marker="o", ms=3, lw=2.5 if name == chosen else 1.2, color=colour,
                    label=f"{name} (k={kc})" if kc is not None else name)
            if kc in ks:
                ax.plot([kc], [vs[ks.index(kc)]], marker="*", ms=14, color=colour, markeredgecolor="black",
                        linestyle="none")
            drawn = True
        if log and drawn and positive:
            ax.set_yscale("log")
        else:
            title = title.replace(", log scale", "")
        ax.set_title(title + (f" ({better})" if better else ""), fontsize=10)
        ax.set_xlabel("k")
        if not drawn:
            ax.text(0.5, 0.5, "not reported", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels_ = axes[1].get_legend_handles_labels()
    if not handles:
        handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="outside lower center", ncols=min(len(handles), 5), fontsize=9)
    fig.suptitle("Scores over k (star: the k each method chose)")
    return _png(fig, path)


def _chosen_k(mm: Mapping[str, Any]) -> int | None:
    sweep, i = mm.get("sweep") or [], mm.get("chosen_index")
    if isinstance(i, int) and 0 <= i < len(sweep):
        return sweep[i].get("k")
    return mm.get("k")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_COMPARISON_PANELS = (
    ("silhouette", "Silhouette (higher is better)"),
    ("davies_bouldin", "Davies-Bouldin (lower is better)"),
    ("calinski_harabasz", "Calinski-Harabasz (higher is better)"),
    ("stability_mean", "Stability, mean ARI (higher is better)"),
    ("ari", "ARI against known segments"),
    ("fit_seconds", "Fit seconds"),
)


def comparison_plot(comparison: pd.DataFrame, *, path: str | os.PathLike | None = None) -> bytes:
    """Bars of each method's scores (``comparison.csv``), the chosen method highlighted.

    Parameters
    ----------
    comparison : DataFrame
        ``comparison.csv``: one row per method with ``method``, ``status`` and the scores;
        methods whose status is not ``ok`` are left out, rows are ordered by ``position``.
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    df = comparison
    if "status" in df.columns:
        df = df[df["status"].astype(str) == "ok"]
    if "method" not in df.columns or df.empty:
        raise ValueError("no method succeeded")
    if "position" in df.columns:
        df = df.sort_values("position", kind="stable", na_position="last")
    panels = [(c, t) for c, t in _COMPARISON_PANELS
              if c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any()]
    if not panels:
        raise ValueError("comparison.csv has no scores")
    chosen = df["chosen"].astype(str).str.lower().isin(["true", "1"]) if "chosen" in df.columns else \
        pd.Series(False, index=df.index)
    methods = df["method"].astype(str).tolist()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(4.0 * ncols, 0.35 * len(methods) * nrows + 1.6 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    colour = ["#d95f02" if c else "#7570b3" for c in chosen]
    y = np.arange(len(methods))
    for ax, (col, title) in zip(axes, panels):
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        err = None
        if col == "stability_mean" and "stability_std" in df.columns:
            err = np.nan_to_num(pd.to_numeric(df["stability_std"], errors="coerce").to_numpy(dtype=float))
        ax.barh(y, np.nan_to_num(vals), xerr=err, color=colour, capsize=3)
        ax.set_yticks(y, methods, fontsize=9)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ends = vals + (err if err is not None else 0.0)
        for yi, v, end in zip(y, vals, ends):
            if not np.isnan(v):
                ax.text(end if v >= 0 else v, yi, f" {_short(v)} ", va="center", ha="left" if v >= 0 else "right",
                        fontsize=8)
        ax.margins(x=0.18)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Methods compared, best first (orange: chosen)")
    return _png(fig, path)


def _short(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def radar_plot(z: pd.DataFrame, features: Sequence[str] | None = None, *, limit: float = 3.0,
               path: str | os.PathLike | None = None) -> bytes:
    """Radar chart of segment z-scores on a few key features.

    Parameters
    ----------
    z : DataFrame
        Segments (index: names) x features, z-scores (see :func:`segment_zscores`).
    features : sequence of str, optional
        Default: :func:`key_features` (about 8).
    limit : float, default=3.0
        z-scores are clipped to [-limit, limit]; the dashed circle is the average customer.
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    feats = list(features) if features is not None else key_features(z)
    feats = [f for f in feats if f in z.columns]
    if len(feats) < 3 or z.empty:
        raise ValueError("a radar chart needs at least 3 features and 1 segment")
    vals = z[feats].to_numpy(dtype=float).clip(-limit, limit)
    angles = np.linspace(0, 2 * np.pi, len(feats), endpoint=False)
    closed = np.append(angles, angles[0])
    fig = _figure(9.5, 7.0)
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(np.pi / 2)
    ax.set_theta_direction(-1)
    ax.set_ylim(-limit, limit)
    ax.plot(closed, np.zeros_like(closed), color="black", lw=1, ls="--", label="average customer")
    for colour, name, row in zip(_colours(len(z)), z.index, vals):
        r = np.append(row, row[0])
        ax.plot(closed, r, color=colour, lw=1.8, label=str(name))
        ax.fill(closed, r, color=colour, alpha=0.08)
    ax.set_xticks(angles, feats, fontsize=9)
    ax.tick_params(axis="x", pad=6)
    ax.set_yticks(np.arange(-limit, limit + 0.5, 1.0))
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Segment profiles (z-scores)", pad=18)
    fig.legend(loc="outside right upper", fontsize=8)
    return _png(fig, path)


def heatmap_plot(z: pd.DataFrame, *, limit: float = 3.0, path: str | os.PathLike | None = None) -> bytes:
    """Heatmap of segments x features z-scores (colour clipped at +-``limit``).

    Parameters
    ----------
    z : DataFrame
        Segments (index: names) x features.
    limit : float, default=3.0
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    if z.empty or z.shape[1] == 0:
        raise ValueError("no segment z-scores")
    vals = z.to_numpy(dtype=float)
    n_seg, n_feat = vals.shape
    fig = _figure(max(6.0, 0.32 * n_feat + 2.5), max(2.5, 0.45 * n_seg + 2.2))
    ax = fig.add_subplot()
    im = ax.imshow(vals, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(np.arange(n_feat), [str(c) for c in z.columns], rotation=90, fontsize=8)
    ax.set_yticks(np.arange(n_seg), [str(i) for i in z.index], fontsize=9)
    if n_seg * n_feat <= 600:
        for (i, j), v in np.ndenumerate(vals):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=6,
                    color="white" if abs(v) > 0.6 * limit else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="z-score (clipped)")
    ax.set_title("Segment means in standard deviations from the average customer")
    return _png(fig, path)


def activity_plot(grids: Mapping[str, Any], *, path: str | os.PathLike | None = None) -> bytes:
    """One weekday x hour heatmap per segment.

    Parameters
    ----------
    grids : mapping
        Segment name -> (7, 24) array: share of the segment's events by weekday (rows,
        Monday first) and hour (columns, 0-23). All panels share one colour scale.
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    arrays = {}
    for name, g in grids.items():
        a = np.asarray(g, dtype=float)
        if a.shape != (7, 24):
            raise ValueError(f"activity grid of {name!r} has shape {a.shape}, expected (7, 24)")
        arrays[str(name)] = np.nan_to_num(a)
    if not arrays:
        raise ValueError("no activity grids")
    n = len(arrays)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = _figure(4.6 * ncols, 2.1 * nrows + 0.8)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    vmax = max(float(a.max()) for a in arrays.values()) or 1.0
    im = None
    for ax, (name, a) in zip(axes, arrays.items()):
        im = ax.imshow(a, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        ax.set_title(name, fontsize=9)
        ax.set_yticks(range(7), _WEEKDAYS, fontsize=7)
        ax.set_xticks(range(0, 24, 3), [str(h) for h in range(0, 24, 3)], fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes[:n].tolist(), shrink=0.8, label="share of events")
    fig.suptitle("When each segment is active (weekday x hour)")
    return _png(fig, path)


def dendrogram_plot(X: Any, *, n_clusters: int | None = None, weights: Any = None,
                    leaf_names: Sequence[str] | None = None, leaf_colours: Sequence[Any] | None = None,
                    max_points: int = DENDROGRAM_MAX_POINTS, seed: int = 0,
                    path: str | os.PathLike | None = None) -> bytes:
    """Ward dendrogram of customers (a fixed-seed sample) or of segment centres.

    Parameters
    ----------
    X : array of shape (n_points, n_features)
        Scaled features of customers, or segment centres with ``weights`` (their sizes).
    n_clusters : int, optional
        Colour the tree at the cut into this many clusters and draw the cut.
    weights : array of shape (n_points,), optional
        Point weights: the tree is then the weighted Ward tree of
        :func:`gpuseg.cluster.ward.ward_linkage` (no sampling).
    leaf_names : sequence of str, optional
        Leaf labels (segment names); without them large trees show their last 30 merges.
    leaf_colours : sequence of colours, optional
        One per point, for its leaf label (the segments' colours in the other plots).
    max_points : int, default=2000
        Customers above this are sampled (the tree needs O(n^2) memory).
    seed : int, default=0
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    from scipy.cluster.hierarchy import dendrogram, linkage

    from ..cluster.ward import ward_linkage

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"a dendrogram needs at least 2 points, got shape {X.shape}")
    n_total = X.shape[0]
    if weights is not None:
        Z = ward_linkage(X, sample_weight=weights)
        what = f"{n_total} segment centres, weighted by size"
    else:
        X = X[_sample(n_total, max_points, seed)]
        Z = linkage(X, method="ward")
        what = f"a sample of {len(X):,} customers" if len(X) < n_total else f"{n_total:,} customers"
    fig = _figure(10.0, 5.5)
    ax = fig.add_subplot()
    cut = None
    if n_clusters is not None and 2 <= n_clusters <= len(Z):
        cut = float((Z[-n_clusters, 2] + Z[-n_clusters + 1, 2]) / 2)
    kwargs: dict[str, Any] = {"color_threshold": cut if cut is not None else 0, "above_threshold_color": "grey"}
    if leaf_names is not None:
        kwargs["labels"] = [str(s) for s in leaf_names]
        kwargs["leaf_rotation"] = 30
    elif len(Z) + 1 > 30:
        kwargs.update(truncate_mode="lastp", p=30, show_contracted=True, leaf_rotation=90)
    tree = dendrogram(Z, ax=ax, **kwargs)
    if leaf_names is not None and leaf_colours is not None:
        for label, leaf in zip(ax.get_xticklabels(), tree["leaves"]):
            label.set_color(leaf_colours[leaf])
            label.set_fontweight("bold")
    if cut is not None:
        ax.axhline(cut, color="black", ls="--", lw=1)
        ax.text(ax.get_xlim()[1], cut, f" k={n_clusters}", va="bottom", ha="right", fontsize=9)
    ax.set_ylabel("Ward distance")
    ax.set_title(f"Ward dendrogram of {what} (scaled features)")
    ax.tick_params(axis="x", labelsize=8)
    return _png(fig, path)


def umatrix_plot(umatrix: Any, *, path: str | os.PathLike | None = None) -> bytes:
    """SOM U-matrix: mean distance of each unit's codebook vector to its grid neighbours.

    Parameters
    ----------
    umatrix : array of shape (rows, cols)
        ``SelfOrganizingMap.umatrix_``.
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    U = np.asarray(umatrix, dtype=float)
    if U.ndim != 2 or U.size == 0:
        raise ValueError(f"a U-matrix is a non-empty 2-D array, got shape {U.shape}")
    fig = _figure(7.0, 6.0)
    ax = fig.add_subplot()
    im = ax.imshow(U, cmap="bone_r", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="mean distance to neighbouring units")
    ax.set_title(f"SOM U-matrix ({U.shape[0]} x {U.shape[1]} units; dark ridges separate clusters)")
    ax.set_xlabel("grid column")
    ax.set_ylabel("grid row")
    return _png(fig, path)


def confidence_plot(confidence: Any, *, threshold: float = LOW_CONFIDENCE,
                    path: str | os.PathLike | None = None) -> bytes:
    """Histogram of per-customer confidence, with the low-confidence threshold marked.

    Parameters
    ----------
    confidence : array of shape (n_customers,)
        Values in [0, 1] (``segments.parquet`` ``confidence``).
    threshold : float, default=0.5
        Customers below it are flagged ``low_confidence``.
    path : path, optional

    Returns
    -------
    bytes
        PNG.
    """
    c = np.asarray(confidence, dtype=float)
    c = c[np.isfinite(c)]
    if c.size == 0:
        raise ValueError("no confidence values")
    low = int((c < threshold).sum())
    fig = _figure(8.0, 4.5)
    ax = fig.add_subplot()
    ax.hist(c, bins=40, range=(0.0, 1.0), color="#1b9e77", edgecolor="white", linewidth=0.5)
    ax.axvline(threshold, color="#d95f02", ls="--", lw=2, label=f"low-confidence threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("confidence")
    ax.set_ylabel("customers (log scale)")
    ax.set_title(f"Confidence of {c.size:,} customers: {low:,} ({low / c.size:.1%}) below {threshold:g}")
    ax.legend(loc="upper left")
    return _png(fig, path)


# --------------------------------------------------------------------------- all


def make_plots(out_dir: str | os.PathLike | RunOutputs, insights: Mapping[str, Any] | None = None, *,
               include: Iterable[str] | None = None,
               save_dir: str | os.PathLike | None = None) -> dict[str, bytes | str]:
    """Every plot an output folder's files allow.

    Parameters
    ----------
    out_dir : path or RunOutputs
        A run's output folder (see :func:`read_outputs`), or one already read.
    insights : mapping, optional
        Segment insights; default ``out_dir/insights.json`` when present (ignored when
        ``out_dir`` is a :class:`RunOutputs`, which has its own). Adds the
        weekday x hour heatmaps (``segments[].activity``), the SOM U-matrix
        (``som_umatrix``) and its z-scores (``segments[].profile[].z``) to the radar chart
        and heatmap.
    include : iterable of str, optional
        Names from :data:`PLOTS` to build; default all.
    save_dir : path, optional
        Also write each plot there as ``<name>.png`` (the folder is created).

    Returns
    -------
    dict
        Plot name -> PNG bytes, or -> a str saying why the plot was skipped; in the order
        of :data:`PLOTS`.

    Raises
    ------
    DeviceError
        matplotlib is not installed.
    """
    run = out_dir if isinstance(out_dir, RunOutputs) else read_outputs(out_dir, insights)
    wanted = set(PLOTS) if include is None else set(include)
    unknown = wanted - set(PLOTS)
    if unknown:
        raise ValueError(f"unknown plots {sorted(unknown)}; choose from {list(PLOTS)}")
    _matplotlib()
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    names = run.segment_names()
    labels = run.segments["segment"].to_numpy()
    seed = int((run.metrics.get("config") or {}).get("seed") or 0)
    insights = run.insights or {}
    X = None
    if run.features is not None and run.feature_names:
        X = scaled_features(run.features, run.metrics.get("scaling"))
    assigned = int((labels >= 0).sum())
    no_features = "features.parquet is missing or has no features"

    def z_scores() -> pd.DataFrame | None:
        z = _insight_zscores(insights, names)
        if z is None and X is not None and assigned:
            z = segment_zscores(X, labels, run.feature_names, names)
        return z

    def activity() -> dict[str, Any] | str:
        if (run.metrics.get("data") or {}).get("date_only"):
            return "the data carry dates without times of day"
        grids = {}
        for seg in insights.get("segments") or []:
            if isinstance(seg, Mapping) and seg.get("activity") is not None and seg.get("segment") is not None:
                grids[names.get(int(seg["segment"]), str(seg.get("name", seg["segment"])))] = seg["activity"]
        return grids or "needs per-segment activity grids (insights segments[].activity)"

    chosen = (run.metrics.get("chosen") or {})
    builders: dict[str, Any] = {
        "pca": lambda p: no_features if X is None else pca_plot(X, labels, names, seed=seed, path=p),
        "umap": lambda p: no_features if X is None else _optional(umap_plot, X, labels, names, seed=seed, path=p),
        "sweep": lambda p: sweep_plot(run.metrics.get("methods") or {}, chosen.get("method"), path=p),
        "comparison": lambda p: "comparison.csv is missing" if run.comparison is None
        else comparison_plot(run.comparison, path=p),
        "radar": lambda p: _with(z_scores(), lambda z: radar_plot(z, path=p), no_features),
        "heatmap": lambda p: _with(z_scores(), lambda z: heatmap_plot(z, path=p), no_features),
        "activity": lambda p: _with(activity(), lambda g: activity_plot(g, path=p)),
        "dendrogram": lambda p: no_features if X is None else _segment_tree(X, labels, names, p),
        "umatrix": lambda p: "needs a SOM U-matrix (insights som_umatrix)" if insights.get("som_umatrix") is None
        else umatrix_plot(insights["som_umatrix"], path=p),
        "confidence": lambda p: "segments.parquet has no confidence column"
        if "confidence" not in run.segments.columns
        else confidence_plot(run.segments["confidence"].to_numpy(), path=p),
    }
    out: dict[str, bytes | str] = {}
    for name in PLOTS:
        if name not in wanted:
            continue
        target = Path(save_dir) / f"{name}.png" if save_dir is not None else None
        try:
            out[name] = builders[name](target)
        except ValueError as exc:  # the data do not allow this plot (too few customers, no scores)
            out[name] = str(exc)
    return out


def _segment_tree(X: np.ndarray, labels: np.ndarray, names: Mapping[int, str], path: Any) -> bytes | str:
    """The weighted Ward tree of the chosen segments' centres: how the segments relate (nothing
    is fitted on the customers), each leaf in its segment's colour of the other plots."""
    segs = sorted(int(s) for s in np.unique(labels) if s >= 0)
    if len(segs) < 2:
        return "needs at least 2 segments"
    centers = np.stack([X[labels == s].mean(axis=0) for s in segs])
    sizes = np.array([(labels == s).sum() for s in segs], dtype=np.float64)
    colours = _segment_colours(segs, names)
    return dendrogram_plot(centers, weights=sizes, leaf_names=[names.get(s, str(s)) for s in segs],
                           leaf_colours=[colours[s] for s in segs], path=path)


def _with(value: Any, draw: Any, missing: str = "no data") -> bytes | str:
    if isinstance(value, str):
        return value
    if value is None:
        return missing
    return draw(value)


def _optional(plot: Any, *args: Any, **kwargs: Any) -> bytes | str:
    """Draw, or the install hint when the plot's optional package is missing."""
    from ..errors import DeviceError

    try:
        return plot(*args, **kwargs)
    except DeviceError as exc:
        return str(exc)
