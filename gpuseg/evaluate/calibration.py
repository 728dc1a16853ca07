"""A confidence that means what it says: the chance that a customer keeps its segment when
the segmentation is rebuilt.

Every method gives a raw score of how firmly a customer sits in its segment (a centre
margin, a posterior, a vote share; :mod:`gpuseg.segments.confidence`). Those scores are
not probabilities: the consensus' vote share takes two values, and a posterior near 1 says
nothing about how the segments would move on other customers. So the raw score is mapped to
an observed rate:

1. The stability stage refits the chosen method on ``R`` half samples of the customers.
   Each refit labels the customers it did *not* see (``predict``), its segments are matched
   to the run's by the Hungarian method on their contingency table, and each such
   (customer, refit) pair records whether the customer kept its segment.
2. An isotonic regression (non-decreasing, in [0, 1]) of "kept" on the raw score over those
   pairs maps any raw score to the share of customers with that score who kept their
   segment: the calibrated confidence.

A method without ``predict`` (the consensus, recomputed from its members' labels) records
the pairs of the customers each refit did see instead. The map is a small table of knots
(at most :data:`MAX_KNOTS`), kept with a saved model so that ``assign`` gives new
customers the same calibrated confidence. ``bench/quality.py --reliability`` checks it on
fresh refits the calibration never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import backend as _backend

__all__ = ["Calibration", "kept_pairs", "fit_calibration", "reliability_table", "MAX_KNOTS", "MIN_PAIRS"]

#: Knots of the stored map at most.
MAX_KNOTS = 256
#: Fewer (customer, refit) pairs than this: no calibration (the raw score is kept).
MIN_PAIRS = 200


@dataclass(frozen=True)
class Calibration:
    """A non-decreasing map from raw score to calibrated confidence (linear between knots,
    flat outside them)."""

    x: np.ndarray
    y: np.ndarray
    pairs: int
    kept_share: float

    def apply(self, raw: Any) -> Any:
        """Calibrated confidence of raw scores (X's array type, float32)."""
        xp = _backend.array_namespace(raw)
        xs, ys = xp.asarray(self.x), xp.asarray(self.y)
        return xp.interp(xp.asarray(raw).astype(xp.float64), xs, ys).astype(xp.float32)

    def to_json(self) -> dict[str, Any]:
        return {"x": [float(v) for v in self.x], "y": [float(v) for v in self.y], "pairs": self.pairs,
                "kept_share": self.kept_share}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Calibration":
        x, y = np.asarray(d["x"], dtype=np.float64), np.asarray(d["y"], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size < 1 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("a calibration needs equally long finite x and y")
        if np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0) or y.min() < 0 or y.max() > 1:
            raise ValueError("a calibration must be non-decreasing in x and y, with y in [0, 1]")
        return cls(x, y, int(d.get("pairs", 0)), float(d.get("kept_share", float("nan"))))


def _matched(refit: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``refit`` renumbered to the run's labels by the Hungarian method on the contingency
    table (-1 stays -1; a refit segment without a partner gets -2, never a match)."""
    from scipy.optimize import linear_sum_assignment

    ok = (refit >= 0) & (labels >= 0)
    a, b = int(refit.max(initial=-1)) + 1, int(labels.max(initial=-1)) + 1
    if a == 0 or b == 0:
        return np.where(refit >= 0, -2, refit)
    table = np.zeros((a, b))
    np.add.at(table, (refit[ok], labels[ok]), 1)
    rows, cols = linear_sum_assignment(-table)
    lut = np.full(a, -2, dtype=np.int64)
    lut[rows] = cols
    return np.where(refit >= 0, lut[np.maximum(refit, 0)], refit)


def kept_pairs(X: Any, labels: Any, samples: Sequence[np.ndarray], refit_labels: Sequence[Any],
               estimators: Sequence[Any] | None, max_per_refit: int = 20_000, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """(customer rows, kept 0/1) over the (customer, refit) pairs (module doc, step 1); at most
    ``max_per_refit`` unseen customers (a fixed-seed sample) per refit."""
    lab = np.asarray(_backend.to_host(labels)).astype(np.int64)
    n = lab.shape[0]
    rng = np.random.default_rng(seed)
    rows, kept = [], []
    for j, idx in enumerate(samples):
        est = estimators[j] if estimators is not None else None
        if est is not None and hasattr(est, "predict"):
            out = np.setdiff1d(np.arange(n), idx, assume_unique=True)
            if out.size > max_per_refit:
                out = np.sort(rng.choice(out, size=max_per_refit, replace=False))
            if out.size == 0:
                continue
            xp = _backend.array_namespace(X)
            pred = np.asarray(_backend.to_host(est.predict(X[xp.asarray(out)]))).astype(np.int64)
            who = out
        elif refit_labels[j] is not None:
            pred, who = np.asarray(refit_labels[j]).astype(np.int64), np.asarray(idx)
        else:
            continue
        rows.append(who)
        kept.append((_matched(pred, lab[who]) == lab[who]).astype(np.float64))
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0)
    return np.concatenate(rows), np.concatenate(kept)


def fit_calibration(raw: Any, rows: np.ndarray, kept: np.ndarray) -> Calibration | None:
    """The isotonic map from raw score to kept share (module doc, step 2), or None with fewer
    than :data:`MIN_PAIRS` pairs."""
    if rows.size < MIN_PAIRS:
        return None
    from sklearn.isotonic import IsotonicRegression

    score = np.asarray(_backend.to_host(raw), dtype=np.float64)[rows]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(score, kept)
    x, y = np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)
    if x.size > MAX_KNOTS:  # the same function, read at quantiles of the observed scores
        x = np.unique(np.quantile(score, np.linspace(0.0, 1.0, MAX_KNOTS)))
        y = iso.predict(x)
    return Calibration(x, np.clip(np.maximum.accumulate(y), 0.0, 1.0), int(rows.size), float(kept.mean()))


def reliability_table(confidence: Any, rows: np.ndarray, kept: np.ndarray,
                      edges: Sequence[float] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)) -> list[dict[str, Any]]:
    """Per confidence bin: pairs, mean confidence and the share that kept their segment."""
    c = np.asarray(_backend.to_host(confidence), dtype=np.float64)[rows]
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        m = (c >= lo) & ((c < hi) if i < len(edges) - 2 else (c <= hi))
        if m.any():
            out.append({"bin": f"{lo:.2f}-{hi:.2f}", "pairs": int(m.sum()), "mean_confidence": float(c[m].mean()),
                        "kept_share": float(kept[m].mean())})
    return out
