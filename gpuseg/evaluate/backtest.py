"""``gpuseg backtest --until DATE``: do the segments predict what customers do next?

A segmentation that only describes the past is easy to make; one worth acting on groups
customers who then behave differently. The backtest fits everything (cleaning, features,
segments, lifetime value) on the rows up to ``DATE`` (the *calibration* period) and compares
with what the same customers did after it (the *holdout*, up to ``--holdout-end`` or the end
of the data):

- per segment: holdout revenue (mean, total, share) and the repeat rate (the share of the
  segment that bought again in the holdout);
- **eta squared**: the share of the variance of holdout revenue per customer that lies
  between segments (``sum n_s (mean_s - mean)^2 / sum (x - mean)^2``; 1 when segments
  separate future spend perfectly, 0 when they say nothing about it). Undefined (NaN, null
  in the JSON files, with the reason in ``eta_squared_undefined``) when there is no
  variance to explain: no scored customer bought in the holdout (a log of one-time buyers,
  a log of views only), or every one spent the same, or every one bought again;
- the same for two baselines an analyst would build by hand, side by side:

  * ``rfm_map``: RFM quintile scores and the standard named R x FM grid (Champions, Loyal
    customers, At risk, Hibernating, Lost, ...; :mod:`gpuseg.segments.rfm`);
  * ``log_rfm_kmeans``: K-means on standardised log(1 + recency days), log(1 + frequency)
    and log(1 + spend), with k by the best silhouette over the run's k range (the notebook
    baseline); and, for reference, the same K-means at the run's k;

- lifetime value calibration: customers ranked by ``predicted_clv`` (BG/NBD + Gamma-Gamma
  over the holdout's length, undiscounted, margin 1) in ten equal deciles, mean predicted
  against mean actual holdout revenue per decile, and the Spearman correlation of the two
  over all calibration customers (no purchase in calibration: predicted 0).

Customers first seen in the holdout have no segment and are not scored; they are counted.
Holdout revenue is taken as it happened: no price fence, no capping.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..backend import to_host
from ..errors import ConfigError, DataError

__all__ = ["Window", "parse_window", "BacktestPlan", "BacktestResult", "eta_squared", "holdout_outcomes",
           "undefined_reason", "rfm_log_matrix", "value_calibration", "segment_table", "BASELINES"]

_DAY = 86_400
_DATE_ONLY = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")
#: Customers scored at most by the baseline's silhouette (a fixed-seed sample above it).
SILHOUETTE_SAMPLE = 10_000
#: What each segmentation in the tables is.
BASELINES = {
    "gpuseg": "the run's segments",
    "rfm_map": "RFM quintile scores and the named R x FM map",
    "log_rfm_kmeans": "K-means on standardised log recency, frequency and spend, k by the best silhouette",
    "log_rfm_kmeans_same_k": "the same K-means at the run's k (reference)",
}


@dataclass(frozen=True)
class Window:
    """Calibration rows have ``ts < cut``; holdout rows ``cut <= ts < end`` (``end`` None:
    to the end of the data). Times in epoch seconds, UTC."""

    until: str
    cut: int
    end: int | None
    whole_days: bool


def _instant(text: str, option: str) -> tuple[int, bool]:
    """(the first second after ``text``, whether ``text`` is a bare date), parsed as
    ``assign --as-of`` parses its date (:func:`gpuseg.dynamic.as_of_time`)."""
    from ..dynamic import _day

    whole = bool(_DATE_ONLY.fullmatch(str(text)))
    return _day(str(text), option) + (_DAY if whole else 1), whole  # the date (or second) itself is included


def parse_window(until: str, holdout_end: str | None = None) -> Window:
    """The calibration/holdout split of ``--until`` and ``--holdout-end`` (both inclusive:
    a bare date includes its whole day).

    Raises
    ------
    ConfigError
        A value is not a date, or the holdout would end before it starts.
    """
    if until is None or not str(until).strip():
        raise ConfigError("--until is empty; give the last day of the calibration period, e.g. 1997-09-30")
    cut, whole = _instant(until, "--until")
    end = None
    if holdout_end is not None:
        end, _ = _instant(holdout_end, "--holdout-end")
        if end <= cut:
            raise ConfigError(f"--holdout-end {holdout_end}: must come after --until {until}")
    return Window(str(until).strip(), cut, end, whole)


def _last(end: int) -> str:
    """The last day (or second) before the exclusive bound ``end``."""
    if end % _DAY == 0:
        return pd.Timestamp(end - _DAY, unit="s").strftime("%Y-%m-%d")
    return pd.Timestamp(end - 1, unit="s").strftime("%Y-%m-%d %H:%M:%S")


class BacktestPlan:
    """The split of one run's data, and the holdout kept aside while the run fits.

    Used by :func:`gpuseg.pipeline.run` (``backtest=``): :meth:`split` after loading,
    :meth:`calibrated` after cleaning, :meth:`evaluate` once the segments are made.
    """

    def __init__(self, window: Window) -> None:
        self.window = window
        self.holdout_data: Any = None
        self.rows: dict[str, int] = {}
        self.reference_time: int | None = None
        self.holdout_end: int | None = None

    # -- before the run fits -----------------------------------------------------------------
    def split(self, data: Any) -> Any:
        """The loaded calibration rows (``LoadedData``); the holdout rows are kept here.
        Rows without a readable time stay in the calibration rows, whose cleaning counts them."""
        frame = data.frame
        ts = frame[data.schema.time]
        cut = np.datetime64(self.window.cut, "s")
        late = ts >= cut
        late = late.fillna(False) if hasattr(late, "fillna") else late
        in_hold = late if self.window.end is None else late & (ts < np.datetime64(self.window.end, "s"))
        cal = frame[~late]
        hold = frame[in_hold]
        self.rows = {"calibration": int(len(cal)), "holdout": int(len(hold)),
                     "after_holdout": int(late.sum()) - int(len(hold))}
        first = to_host(ts.min())
        last = to_host(ts.max())
        span = f"the data run from {pd.Timestamp(first).date()} to {pd.Timestamp(last).date()}"
        if len(cal) == 0 or int(cal[data.schema.time].notna().sum()) == 0:
            raise DataError(f"--until {self.window.until}: no rows on or before it; {span}")
        if len(hold) == 0:
            raise DataError(f"--until {self.window.until}: no rows after it to test against; {span}")
        last_s = int(pd.Timestamp(last).value // 1_000_000_000)
        data_end = last_s + (_DAY if last_s % _DAY == 0 else 1)  # its last day whole for date-only data
        day_end = -(-data_end // _DAY) * _DAY  # the end of the data's last day
        if self.window.end is not None and self.window.end > day_end:
            raise DataError(f"--holdout-end {_last(self.window.end)}: after the data's last day; the holdout would "
                            f"count days without data; {span}")
        self.holdout_end = self.window.end if self.window.end is not None else data_end
        if min(self.window.end or day_end, day_end) - self.window.cut < _DAY:
            raise DataError(f"--until {self.window.until}: leaves less than a day after it to test against; {span}")
        self.holdout_data = dataclasses.replace(data, frame=hold.reset_index(drop=True), rows_read=len(hold),
                                                rows_malformed=0)
        return dataclasses.replace(data, frame=cal.reset_index(drop=True), rows_read=len(cal))

    def calibrated(self, cleaned: Any, clean_config: Any, backend: Any) -> Any:
        """The cleaned calibration data with recency measured from the cut; cleans the holdout
        rows too (same rules, no price fence: holdout revenue is what was spent)."""
        from ..prep.clean import NoRowsError, clean

        w = self.window
        # date-only data measured from the calibration's last day, as the lifetimes
        # literature does; timed data from the cut itself
        self.reference_time = w.cut - _DAY if (w.whole_days and cleaned.date_only) else w.cut
        # the calibration's currency: a holdout of other currencies is not the revenue measured
        config = dataclasses.replace(clean_config, price_outliers="off", currency=cleaned.currency or "")
        try:
            self.holdout_cleaned = clean(self.holdout_data, config, backend)
        except NoRowsError:
            self.holdout_cleaned = None
        self.holdout_data = None
        return dataclasses.replace(cleaned, reference_time=self.reference_time)

    @property
    def holdout_days(self) -> float:
        return (self.holdout_end - self.window.cut) / _DAY

    def value_horizon(self, value_config: Any) -> Any:
        """``[value]`` for the backtest: the horizon is the holdout, undiscounted, margin 1."""
        return dataclasses.replace(value_config, horizon_days=round(self.holdout_days, 6), discount_rate=0.0,
                                   margin=1.0)

    # -- once the segments are made -------------------------------------------------------
    def evaluate(self, segments: Any, features: Any, k_values: list[int], seed: int) -> "BacktestResult":
        seg = to_host(segments)
        seg = seg if isinstance(seg, pd.DataFrame) else pd.DataFrame(seg)
        feats = to_host(features)
        kind = self.holdout_cleaned.kind if self.holdout_cleaned is not None else "orders"
        frame = self.holdout_cleaned.frame if self.holdout_cleaned is not None else None
        outcomes = holdout_outcomes(frame, kind)
        active = pd.Index([]) if frame is None else pd.Index(to_host(frame["customer_id"].unique()))
        return evaluate_backtest(seg, feats, outcomes, k_values, seed, self.describe(), active)

    def describe(self) -> dict[str, Any]:
        ref = self.reference_time
        return {"until": self.window.until, "calibration_end": _last(self.window.cut),
                "reference_time": pd.Timestamp(ref, unit="s").isoformat() if ref is not None else None,
                "holdout_end": _last(self.holdout_end) if self.holdout_end is not None else None,
                "holdout_days": round(self.holdout_days, 3) if self.holdout_end is not None else None,
                "rows": dict(self.rows), "holdout_rows_dropped": self._holdout_dropped()}

    def _holdout_dropped(self) -> dict[str, int]:
        """Holdout rows cleaning dropped, per reason (the holdout is cleaned as the data are)."""
        cleaned = self.holdout_cleaned
        return {} if cleaned is None else {r: int(n) for r, n in cleaned.dropped.items() if n}


def holdout_outcomes(frame: Any, kind: str) -> pd.DataFrame:
    """``revenue, purchase_days`` per customer with a purchase in the cleaned holdout rows
    (host pandas indexed by ``customer_id``): purchase events' prices for event logs, order
    lines' amounts for order logs."""
    from ..segments.value import purchase_rows

    empty = pd.DataFrame({"revenue": pd.Series(dtype="float64"), "purchase_days": pd.Series(dtype="int64")})
    if frame is None or len(frame) == 0:
        return empty
    rows = purchase_rows(frame, kind)
    if len(rows) == 0:
        return empty
    rows = rows.assign(day=rows["ts"] // _DAY)
    per = to_host(rows.groupby("customer_id").agg({"value": "sum", "day": "nunique"}))  # summed on the device
    per = per.rename(columns={"value": "revenue", "day": "purchase_days"})
    return per.astype({"revenue": "float64", "purchase_days": "int64"})


def eta_squared(values: np.ndarray, labels: np.ndarray, constant: float = 0.0) -> float:
    """Share of the variance of ``values`` between the groups of ``labels`` (``constant``
    when the values do not vary: 0 by default, NaN where that means "undefined")."""
    v = np.asarray(values, dtype=np.float64)
    top = float(np.abs(v).max()) if v.size else 0.0
    if not np.isfinite(top):
        return float("nan")
    if top > 0:  # the share does not change with the scale, and squares of 1e300 overflow
        v = v / top
    codes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.bincount(inverse, minlength=codes.size)
    means = np.bincount(inverse, weights=v, minlength=codes.size) / counts
    total = float(((v - v.mean()) ** 2).sum())
    between = float((counts * (means - v.mean()) ** 2).sum())
    return between / total if total > 0 else float(constant)


def rfm_log_matrix(features: pd.DataFrame) -> np.ndarray:
    """Standardised log(1 + recency days, frequency, spend) per customer (host float64)."""
    X = np.log1p(np.clip(features[["recency_days", "frequency", "monetary"]].to_numpy(np.float64), 0, None))
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _log_rfm_kmeans(X: np.ndarray, k_values: list[int], k_same: int, seed: int) -> dict[str, Any]:
    from ..cluster.kmeans import KMeans
    from .metrics import silhouette_score

    fits, sil = {}, {}
    for k in sorted(set(k_values) | {k_same}):
        if not 2 <= k < len(X):
            continue
        fits[k] = np.asarray(KMeans(k, n_init=10, random_state=seed).fit(X).labels_)
        if k in k_values:
            sil[k] = silhouette_score(X, fits[k], sample_size=min(SILHOUETTE_SAMPLE, len(X)), random_state=seed)
    k_best = max(sil, key=sil.get) if sil else None
    return {"silhouette": {int(k): round(float(s), 4) for k, s in sil.items()}, "k_best": k_best,
            "labels": fits.get(k_best), "labels_same_k": fits.get(k_same)}


def segment_table(name: str, labels: Any, names: Any, outcomes: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """One row per segment of one segmentation: customers, holdout revenue (mean, total,
    share), repeat rate and mean predicted value."""
    df = pd.DataFrame({"segment": np.asarray(labels), "segment_name": np.asarray(names),
                       "revenue": outcomes["revenue"].to_numpy(), "bought": outcomes["purchase_days"].to_numpy() > 0,
                       "predicted": predicted})
    g = df.groupby(["segment", "segment_name"], sort=True)
    total = float(df["revenue"].sum())
    out = g.agg(customers=("revenue", "size"), holdout_revenue_mean=("revenue", "mean"),
                holdout_revenue_total=("revenue", "sum"), repeat_rate=("bought", "mean"),
                predicted_value_mean=("predicted", "mean")).reset_index()
    out["share_of_customers"] = out["customers"] / len(df)
    out["share_of_holdout_revenue"] = out["holdout_revenue_total"] / total if total > 0 else 0.0
    out.insert(0, "segmentation", name)
    return out.sort_values(["holdout_revenue_mean", "segment"], ascending=[False, True], kind="stable")


def value_calibration(predicted: np.ndarray, actual: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Spearman correlation of predicted and actual value, and mean predicted against mean
    actual per decile of the prediction (equal-sized deciles, ties by customer order)."""
    from ..prep.represent import spearman

    p = np.nan_to_num(np.asarray(predicted, dtype=np.float64), nan=0.0)
    a = np.asarray(actual, dtype=np.float64)
    rho = float(spearman(np.column_stack([p, a]))[0, 1]) if len(p) > 1 else float("nan")
    order = np.argsort(p, kind="stable")
    decile = np.empty(len(p), dtype=np.int64)
    decile[order] = np.arange(len(p)) * bins // max(len(p), 1) + 1
    rows = []
    for d in range(1, bins + 1):
        m = decile == d
        if m.any():
            rows.append({"decile": d, "customers": int(m.sum()), "predicted_mean": float(p[m].mean()),
                         "actual_mean": float(a[m].mean())})
    return {"spearman": rho, "deciles": rows, "total_predicted": float(p.sum()), "total_actual": float(a.sum())}


@dataclass
class BacktestResult:
    """``table``: backtest.csv (one row per segment of every segmentation); ``summary``:
    backtest.json and the ``backtest`` entry of metrics.json."""

    table: pd.DataFrame
    summary: dict[str, Any]

    @property
    def headline(self) -> str:
        undefined = self.summary.get("eta_squared_undefined")
        if undefined and not np.isfinite(self.summary["segmentations"]["gpuseg"]["eta_squared"]):
            return undefined
        s = self.summary["segmentations"]
        parts = [f"{name} {v['eta_squared']:.3f}" for name, v in s.items()]
        return "holdout revenue variance explained (eta squared): " + ", ".join(parts)


def undefined_reason(revenue: np.ndarray, bought: np.ndarray) -> str | None:
    """Why eta squared is undefined for these holdout outcomes (nothing varies: a share of
    no variance is not 0), or None when both measures are defined."""
    if len(bought) == 0 or not bought.any():
        return "no customer bought in the holdout: eta squared undefined"
    if np.ptp(revenue) == 0:
        return "every customer spent the same in the holdout: eta squared of revenue undefined"
    if bought.all():
        return "every customer bought again in the holdout: eta squared of the repeat rate undefined"
    return None


def evaluate_backtest(seg: pd.DataFrame, feats: pd.DataFrame, outcomes: pd.DataFrame, k_values: list[int],
                      seed: int, window: dict[str, Any], active: pd.Index | None = None) -> BacktestResult:
    """The tables of the module docstring for the customers of ``seg`` (host pandas);
    ``active``: every customer with a cleaned holdout row, buyers or not."""
    ids = seg["customer_id"].to_numpy()
    # matched as text: calibration and holdout are cleaned apart, and an id such as "0789"
    # seen only in the holdout can leave one side text and the other integers
    outcomes = outcomes.set_axis(outcomes.index.astype(str))
    id_text = pd.Index(ids).astype(str)
    out = outcomes.reindex(id_text).fillna({"revenue": 0.0, "purchase_days": 0})
    predicted = (seg["predicted_clv"].to_numpy(np.float64) if "predicted_clv" in seg.columns
                 else np.full(len(seg), np.nan))
    frames = feats.reindex(ids) if feats.index.name == "customer_id" else feats.set_index("customer_id").reindex(ids)
    labelings: dict[str, tuple[Any, Any, int]] = {
        "gpuseg": (seg["segment"].to_numpy(), seg["segment_name"].astype(str).to_numpy(), int(seg["segment"].nunique()))}
    km = None
    if {"recency_days", "frequency", "monetary"} <= set(frames.columns):
        if "rfm_segment" in seg.columns:
            rfm = seg["rfm_segment"].astype(str).to_numpy()
            labelings["rfm_map"] = (rfm, rfm, int(len(set(rfm))))
        km = _log_rfm_kmeans(rfm_log_matrix(frames), k_values, labelings["gpuseg"][2], seed)
        for key, lab in (("log_rfm_kmeans", km["labels"]), ("log_rfm_kmeans_same_k", km["labels_same_k"])):
            if lab is not None:
                labelings[key] = (lab, np.char.add("cluster ", lab.astype(str)), int(len(np.unique(lab))))
    revenue = out["revenue"].to_numpy()
    bought = out["purchase_days"].to_numpy() > 0
    tables, scored = [], {}
    for name, (labels, names, k) in labelings.items():
        tables.append(segment_table(name, labels, names, out, predicted))
        # no variance, nothing to explain: undefined (NaN), not 0
        scored[name] = {"k": k, "what": BASELINES[name],
                        "eta_squared": round(eta_squared(revenue, labels, np.nan), 6),
                        "eta_squared_repeat": round(eta_squared(bought, labels, np.nan), 6)}
    summary = {
        "window": window,
        "customers_scored": int(len(seg)),
        "customers_bought_again": int(bought.sum()),
        "eta_squared_undefined": undefined_reason(revenue, bought),
        "new_customers_in_holdout": int((~outcomes.index.isin(id_text)).sum()),
        "new_customers_without_purchase": 0 if active is None else int(
            (~active.astype(str).isin(id_text.union(outcomes.index))).sum()),
        "new_customers_revenue": float(outcomes.loc[~outcomes.index.isin(id_text), "revenue"].sum()),
        "holdout_revenue_scored": float(revenue.sum()),
        "segmentations": scored,
        "log_rfm_silhouette": km["silhouette"] if km else None,
        "value": value_calibration(predicted, revenue) if np.isfinite(predicted).any() else None,
        "segments": tables[0].drop(columns="segmentation").to_dict(orient="records"),
    }
    return BacktestResult(pd.concat(tables, ignore_index=True), summary)
