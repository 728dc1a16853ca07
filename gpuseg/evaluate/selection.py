"""Choosing the number of segments k from a sweep of fits.

Silhouette alone tends to pick k = 2 on customer data (one big "inactive" group against
the rest), which is rarely useful; inertia alone always prefers more clusters. gpuseg
combines them with this rule (:func:`choose_k`):

1. **Elbow.** Find the knee of the inertia curve with the Kneedle method: normalise k and
   inertia to [0, 1] and take the k farthest below the straight line from the first to the
   last point. Curves with no bend (no point below the line by 0.05 or more) have no knee.
2. **Scores.** Min-max normalise silhouette (higher is better), Davies-Bouldin (lower is
   better) and Calinski-Harabasz (higher is better) across the sweep and average them into
   a ``composite`` in [0, 1].
3. **Choice.** Among k in [knee, knee + 2] (the whole sweep when there is no knee), take
   the k with the highest composite; ties go to the smaller k. The elbow is the smallest k
   that captures most of the structure, so the rule never goes below it: that is where
   silhouette and Calinski-Harabasz, which favour few clusters, would pull it.

A sweep of one k returns that k. The reason is reported with the choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["KChoice", "knee_point", "composite_scores", "choose_k"]

#: Minimum normalised distance below the chord for a knee to count.
KNEE_MIN_DEPTH = 0.05
#: The window around the knee that the scores choose from.
KNEE_WINDOW = (0, 2)


@dataclass(frozen=True)
class KChoice:
    """A chosen k and why."""

    k: int
    knee: int | None
    composite: dict[int, float]
    reason: str


def knee_point(ks: Sequence[int], inertia: Sequence[float]) -> int | None:
    """The knee of a decreasing inertia curve (Kneedle), or None when it has no bend.

    Parameters
    ----------
    ks : sequence of int
        Increasing k values.
    inertia : sequence of float

    Returns
    -------
    int or None
    """
    ks = np.asarray(ks, dtype=float)
    y = np.asarray(inertia, dtype=float)
    if len(ks) < 3 or not np.all(np.isfinite(y)) or y.max() == y.min():
        return None
    xn = (ks - ks[0]) / (ks[-1] - ks[0])
    yn = (y - y.min()) / (y.max() - y.min())
    depth = (1.0 - xn) - yn  # distance below the chord from (0, 1) to (1, 0)
    i = int(np.argmax(depth))
    if depth[i] < KNEE_MIN_DEPTH or i in (0, len(ks) - 1):
        return None
    return int(ks[i])


def _minmax(v: np.ndarray, higher_is_better: bool) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v)
    out = np.zeros_like(v)
    if ok.sum() == 0:
        return out
    lo, hi = v[ok].min(), v[ok].max()
    if hi > lo:
        out[ok] = (v[ok] - lo) / (hi - lo)
    else:
        out[ok] = 1.0
    return out if higher_is_better else np.where(ok, 1.0 - out, 0.0)


def composite_scores(
    ks: Sequence[int], silhouette: Sequence[float], davies_bouldin: Sequence[float], calinski_harabasz: Sequence[float]
) -> dict[int, float]:
    """Average of the min-max normalised scores per k (1 = best in the sweep)."""
    parts = np.vstack(
        [
            _minmax(np.asarray(silhouette), True),
            _minmax(np.asarray(davies_bouldin), False),
            _minmax(np.asarray(calinski_harabasz), True),
        ]
    )
    comp = parts.mean(axis=0)
    return {int(k): float(c) for k, c in zip(ks, comp)}


def choose_k(
    ks: Sequence[int],
    inertia: Sequence[float],
    silhouette: Sequence[float],
    davies_bouldin: Sequence[float],
    calinski_harabasz: Sequence[float],
) -> KChoice:
    """Choose k by the elbow of the inertia combined with the internal scores (module doc).

    Returns
    -------
    KChoice
    """
    ks = [int(k) for k in ks]
    if not ks:
        raise ValueError("choose_k needs at least one k")
    comp = composite_scores(ks, silhouette, davies_bouldin, calinski_harabasz)
    if len(ks) == 1:
        return KChoice(ks[0], None, comp, f"k={ks[0]} was given")
    knee = knee_point(ks, inertia)
    if knee is None:
        window = ks
        where = "no clear elbow in the inertia curve, so over the whole sweep"
    else:
        window = [k for k in ks if knee + KNEE_WINDOW[0] <= k <= knee + KNEE_WINDOW[1]]
        where = f"inertia elbow at k={knee}; best composite score in k={window[0]}..{window[-1]}"
    best = max(window, key=lambda k: (comp[k], -k))
    return KChoice(best, knee, comp, f"{where} (silhouette, Davies-Bouldin, Calinski-Harabasz): k={best}")
