"""The segment signals that persona names and marketing actions share, with their thresholds.

A signal is a set of conditions on one segment's numbers, all of which must hold. The
persona rules of :mod:`gpuseg.segments.naming` and the actions of
:mod:`gpuseg.segments.actions` both read :data:`SIGNALS`, so a segment named "Lapsed" always
gets the win-back action. Apart from the words of the recency, frequency and spend map
(``MAP_ACTION_RULES`` of :mod:`gpuseg.segments.actions`: a "Lapsed one-timers" segment gets
win-back from its name), no segment gets it without the Lapsed signal:

================  ================  ===========  ===========================================================
signal            persona name      action       conditions (all must hold)
================  ================  ===========  ===========================================================
lapsed            Lapsed            win-back     ``recency_days >= 1.5 x overall`` and ``recency_days z >= 0.5``
high_value_loyal  High-value loyal  loyalty      ``monetary z >= 1.0`` and ``frequency z >= 0.5``
                                                 (floor: ``frequency >= 1.5``, repeat buying)
high_value        High-value        loyalty      ``revenue_share / share >= 2.0`` and ``monetary z >= 0.5``
cart_abandoners   Cart abandoners   checkout     ``cart_abandonment z >= 0.5`` and ``carts z >= 0.0``
deal_seekers      Deal seekers                   ``price_index <= 0.9`` and ``frequency z >= 0.0``
                                                 (floor: ``frequency > 0``, they do buy)
low_prices                          price        ``price_index <= 0.9`` (discounts and bundles)
high_prices                         price        ``price_index >= 1.1`` (premium lines, new arrivals)
window_shoppers   Window shoppers   retargeting  ``views z >= 0.25`` and ``purchases z <= -0.25``
new_customers     New customers     onboarding   ``tenure_days z <= -0.75`` and ``recency_days z <= 0.0``
regular_buyers    Regular buyers    cross-sell   ``frequency z >= 0.25``
browsers          Browsers          conversion   ``frequency < 0.1`` and ``views >= 1.0``
================  ================  ===========  ===========================================================

What the numbers are, for the segment:

- ``feature z``: its mean's distance from the overall mean in overall standard deviations
  (the ``z`` of :func:`~gpuseg.segments.profiles.segment_summary`);
- ``feature >= r x overall``: its mean divided by the overall mean (only for features whose
  overall mean is positive);
- a bare ``feature``: its mean (``price_index`` is already relative: the price paid over the
  category's median price; ``frequency < 0.1`` means fewer than one order per ten
  customers, ``views >= 1.0`` that they do browse);
- ``revenue_share / share``: its share of revenue over its share of customers, the revenue
  lift (2.0: it brings at least twice its share of revenue). With revenue measured by
  ``monetary``, this is the segment's mean spend over the overall mean spend.

A *floor* is an absolute test on the segment's mean of the same feature that must hold too
(:attr:`Condition.floor`): a z-score says where a segment stands among the customers, not
what they did, so on a log where every customer bought once (or nobody bought) the segment
"above the average" frequency may still not buy again (or at all). Loyal needs repeat buying,
a mean of 1.5 orders or more (the map's one-time threshold, :mod:`gpuseg.segments.naming`);
a deal seeker needs purchases. The rule text names the z-score, as before.

A condition on a number the data lack (order logs have no ``views`` or ``carts``; no
revenue share without a ``monetary`` feature) does not hold, so its signal does not fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .profiles import summary_table

__all__ = ["Condition", "SegmentStats", "SIGNALS", "segment_stats", "signal_holds"]

_OPS = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    "<": lambda v, t: v < t,
}


@dataclass(frozen=True)
class SegmentStats:
    """One segment's numbers, as the conditions read them.

    Attributes
    ----------
    mean : mapping
        Feature -> the segment's mean.
    overall : mapping
        Feature -> the mean over all customers.
    z : mapping
        Feature -> the segment's z-score (empty when unknown).
    share : float or None
        Share of all customers in the segment.
    revenue_share : float or None
        Share of all revenue from the segment.
    """

    mean: Mapping[str, float]
    overall: Mapping[str, float] = field(default_factory=dict)
    z: Mapping[str, float] = field(default_factory=dict)
    share: float | None = None
    revenue_share: float | None = None

    def ratio(self, feature: str) -> float | None:
        """The segment's mean over the overall mean; None when either is missing or the latter is not positive."""
        m, o = _finite(self.mean.get(feature)), _finite(self.overall.get(feature))
        return None if m is None or o is None or o <= 0 else m / o

    @property
    def revenue_lift(self) -> float | None:
        """``revenue_share / share``; None when either is missing or the share is 0."""
        r, s = _finite(self.revenue_share), _finite(self.share)
        return None if r is None or s is None or s <= 0 else r / s


@dataclass(frozen=True)
class Condition:
    """One test on a segment's numbers.

    Attributes
    ----------
    feature : str
        A feature, or ``"revenue_share"`` for the revenue lift.
    stat : {"z", "mean", "ratio", "lift"}
        The segment's z-score of the feature, its mean, its mean over the overall mean, or
        (with ``feature="revenue_share"``) ``revenue_share / share``.
    op : {">=", "<=", ">", "<"}
    threshold : float
    floor : (op, threshold) or None
        A test on the segment's mean of the same feature that must hold too (module doc),
        e.g. ``(">=", 1.5)``; not written in :meth:`describe`'s text.
    """

    feature: str
    stat: str
    op: str
    threshold: float
    floor: tuple[str, float] | None = None

    def __post_init__(self):
        if self.stat not in ("z", "mean", "ratio", "lift"):
            raise ValueError(f"unknown stat {self.stat!r}")
        for op in (self.op, *((self.floor[0],) if self.floor is not None else ())):
            if op not in _OPS:
                raise ValueError(f"unknown op {op!r}")

    def value(self, stats: SegmentStats) -> float | None:
        """The tested number, or None when the data lack it."""
        if self.stat == "lift":
            return stats.revenue_lift
        if self.stat == "ratio":
            return stats.ratio(self.feature)
        return _finite((stats.z if self.stat == "z" else stats.mean).get(self.feature))

    def holds(self, value: float) -> bool:
        return bool(_OPS[self.op](value, self.threshold))

    def check(self, stats: SegmentStats) -> str | None:
        """:meth:`describe` of the segment's number when the condition (and its floor) holds, else None."""
        v = self.value(stats)
        return self.describe(v) if v is not None and self.holds(v) and self.floor_holds(stats) else None

    def floor_holds(self, stats: SegmentStats) -> bool:
        """True without a floor, or when the segment's mean of the feature passes it (a
        missing mean does not)."""
        if self.floor is None:
            return True
        mean = _finite(stats.mean.get(self.feature))
        return mean is not None and bool(_OPS[self.floor[0]](mean, self.floor[1]))

    def describe(self, value: float) -> str:
        """``"monetary z=+1.78 >= 1.0"``, ``"price_index=0.72 <= 0.9"``,
        ``"recency_days=2.01x overall >= 1.5x"`` or ``"revenue_share/share=2.57 >= 2.0"``."""
        t = _fmt_threshold(self.threshold)
        if self.stat == "z":
            return f"{self.feature} z={value:+.2f} {self.op} {t}"
        if self.stat == "ratio":
            return f"{self.feature}={value:.2f}x overall {self.op} {t}x"
        if self.stat == "lift":
            return f"revenue_share/share={value:.2f} {self.op} {t}"
        return f"{self.feature}={value:.3g} {self.op} {t}"


def _z(feature: str, op: str, threshold: float, floor: tuple[str, float] | None = None) -> Condition:
    return Condition(feature, "z", op, threshold, floor)


#: Loyal buys again: a mean of at least this many orders (the map's one-time threshold).
LOYAL_MIN_ORDERS = 1.5


def _mean(feature: str, op: str, threshold: float) -> Condition:
    return Condition(feature, "mean", op, threshold)


#: Signal -> its conditions (all must hold); see the module docstring.
SIGNALS: Mapping[str, tuple[Condition, ...]] = MappingProxyType({
    "lapsed": (Condition("recency_days", "ratio", ">=", 1.5), _z("recency_days", ">=", 0.5)),
    "high_value_loyal": (_z("monetary", ">=", 1.0), _z("frequency", ">=", 0.5, (">=", LOYAL_MIN_ORDERS))),
    "high_value": (Condition("revenue_share", "lift", ">=", 2.0), _z("monetary", ">=", 0.5)),
    "cart_abandoners": (_z("cart_abandonment", ">=", 0.5), _z("carts", ">=", 0.0)),
    "low_prices": (_mean("price_index", "<=", 0.9),),
    "deal_seekers": (_mean("price_index", "<=", 0.9), _z("frequency", ">=", 0.0, (">", 0.0))),
    "high_prices": (_mean("price_index", ">=", 1.1),),
    "window_shoppers": (_z("views", ">=", 0.25), _z("purchases", "<=", -0.25)),
    "new_customers": (_z("tenure_days", "<=", -0.75), _z("recency_days", "<=", 0.0)),
    "regular_buyers": (_z("frequency", ">=", 0.25),),
    "browsers": (_mean("frequency", "<", 0.1), _mean("views", ">=", 1.0)),
})


def signal_holds(conditions: tuple[Condition, ...], stats: SegmentStats) -> str | None:
    """The conditions written out with the segment's numbers when all hold, else None.

    Examples
    --------
    >>> stats = SegmentStats(mean={"recency_days": 30.0}, overall={"recency_days": 12.0}, z={"recency_days": 0.9})
    >>> signal_holds(SIGNALS["lapsed"], stats)
    'recency_days=2.50x overall >= 1.5x and recency_days z=+0.90 >= 0.5'
    >>> signal_holds(SIGNALS["new_customers"], stats) is None
    True
    """
    parts = []
    for cond in conditions:
        text = cond.check(stats)
        if text is None:
            return None
        parts.append(text)
    return " and ".join(parts)


def segment_stats(summary: pd.DataFrame) -> dict[int, SegmentStats]:
    """Every segment's :class:`SegmentStats` from a
    :func:`~gpuseg.segments.profiles.segment_summary` frame.

    Returns
    -------
    dict of int to SegmentStats
        Segments ascending.
    """
    z_table = summary_table(summary, "z")
    mean_table = summary_table(summary, "mean")
    overall = summary.drop_duplicates("feature").set_index("feature")["overall_mean"].to_dict()
    first = summary.groupby("segment").first()
    out = {}
    for seg in mean_table.index:
        row = first.loc[seg]
        out[int(seg)] = SegmentStats(
            mean=mean_table.loc[seg].to_dict(),
            overall=overall,
            z=z_table.loc[seg].to_dict(),
            share=_finite(row["share"]) if "share" in row else None,
            revenue_share=_finite(row["revenue_share"]) if "revenue_share" in row else None,
        )
    return out


def _finite(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _fmt_threshold(x: float) -> str:
    """``1.0``, ``0.5``, ``-0.75``."""
    x = float(x)
    return f"{x:.1f}" if x == round(x, 1) else f"{x:g}"
