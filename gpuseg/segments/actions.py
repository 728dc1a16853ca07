"""Rule-based marketing actions for a segment, each stating the numbers it rests on.

Rules (segment mean vs overall mean of the same feature; a rule whose features are missing,
as ``views`` and ``carts`` are in order logs, does not fire):

=============  ================================================================================
loyalty        ``monetary >= 2 x overall``: VIP tier, early access, loyalty rewards
win-back       ``recency_days >= 1.5 x overall``: win-back series with an incentive
checkout       ``cart_abandonment >= 1.25 x overall`` and ``carts >= overall``: cart reminders
retargeting    ``views >= 1.25 x overall`` and ``purchases <= 0.5 x overall``: browse retargeting
onboarding     ``tenure_days <= 0.5 x overall`` and ``recency_days <= overall``: welcome series
price          ``price_index < 0.9``: discounts and bundles; ``> 1.1``: premium and new arrivals
nurture        none of the above fired: regular newsletter
timing         with an activity grid: the busiest 3 consecutive weekdays and 3 consecutive hours
=============  ================================================================================
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .profiles import summary_table

__all__ = ["suggest_actions", "segment_actions", "WEEKDAYS"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: Thresholds of the rules (factors of the overall mean, or price_index values); see the module docstring.
HIGH_VALUE_FACTOR = 2.0
LAPSED_FACTOR = 1.5
ABANDONMENT_FACTOR = 1.25
VIEWS_FACTOR = 1.25
FEW_PURCHASES_FACTOR = 0.5
NEW_TENURE_FACTOR = 0.5
CHEAP_PRICE_INDEX = 0.9
PREMIUM_PRICE_INDEX = 1.1
#: Width of the timing windows.
TIMING_DAYS = 3
TIMING_HOURS = 3
#: A window holding less than this multiple of an even spread is "no clear peak".
PEAK_LIFT = 1.15


def suggest_actions(
    segment_profile: Mapping[str, float],
    overall: Mapping[str, float],
    activity: Any = None,
) -> list[dict[str, str]]:
    """Marketing actions for one segment.

    Parameters
    ----------
    segment_profile : mapping
        Feature -> the segment's mean (a dict or pandas Series, e.g. a row of
        ``summary_table(summary, "mean")``).
    overall : mapping
        Feature -> the mean over all customers.
    activity : array of shape (7, 24), optional
        The segment's share of events by weekday (0 = Monday) and hour, from
        :func:`~gpuseg.segments.profiles.activity_grid`; adds a ``timing`` action.

    Returns
    -------
    list of dict
        ``{"kind": str, "text": str}`` in the order loyalty, win-back, checkout,
        retargeting, onboarding, nurture, price, timing (only those that fire).

    Examples
    --------
    >>> acts = suggest_actions({"monetary": 900.0, "price_index": 1.3}, {"monetary": 200.0})
    >>> [a["kind"] for a in acts]
    ['loyalty', 'price']
    >>> acts[0]["text"].split(":")[0]
    'mean spend 900 vs 200 overall (4.5x)'
    """
    prof = {str(k): float(v) for k, v in dict(segment_profile).items() if _number(v)}
    base = {str(k): float(v) for k, v in dict(overall).items() if _number(v)}
    actions: list[dict[str, str]] = []

    def ratio(feature: str) -> float | None:
        if feature not in prof or feature not in base or base[feature] <= 0:
            return None
        return prof[feature] / base[feature]

    def vs(feature: str, label: str) -> str:
        return f"{label} {_num(prof[feature])} vs {_num(base[feature])} overall ({ratio(feature):.1f}x)"

    r = ratio("monetary")
    if r is not None and r >= HIGH_VALUE_FACTOR:
        actions.append({"kind": "loyalty", "text": f"{vs('monetary', 'mean spend')}: VIP tier, early access to new "
                        "products and loyalty rewards; keep them away from blanket discounts"})
    r = ratio("recency_days")
    if r is not None and r >= LAPSED_FACTOR:
        actions.append({"kind": "win-back", "text": f"{vs('recency_days', 'days since last activity')}: win-back "
                        "series ('we miss you' with a time-limited incentive), then reduce frequency "
                        "if they stay quiet"})
    ra, rc = ratio("cart_abandonment"), ratio("carts")
    if ra is not None and rc is not None and ra >= ABANDONMENT_FACTOR and rc >= 1.0:
        actions.append({"kind": "checkout", "text": f"{vs('cart_abandonment', 'cart abandonment')} with "
                        f"{_num(prof['carts'])} carts per customer: abandoned-cart reminders within hours, "
                        "a free-shipping threshold and a simpler checkout"})
    rv, rp = ratio("views"), ratio("purchases")
    if rv is not None and rp is not None and rv >= VIEWS_FACTOR and rp <= FEW_PURCHASES_FACTOR:
        actions.append({"kind": "retargeting", "text": f"{vs('views', 'views')} but {vs('purchases', 'purchases')}: "
                        "retarget the products they viewed, with reviews, stock and price-drop alerts"})
    rt, rr = ratio("tenure_days"), ratio("recency_days")
    if rt is not None and rt <= NEW_TENURE_FACTOR and (rr is None or rr <= 1.0):
        actions.append({"kind": "onboarding", "text": f"{vs('tenure_days', 'days since first seen')}: onboarding "
                        "series (welcome offer, best-sellers of their first categories, second-purchase incentive)"})
    if not actions:
        actions.append({"kind": "nurture", "text": "no value, churn, cart or tenure signal (spend, recency, cart "
                        "abandonment, views and tenure within the thresholds): regular newsletter, test offers"})
    if "price_index" in prof:
        p = prof["price_index"]
        if p < CHEAP_PRICE_INDEX:
            actions.append({"kind": "price", "text": f"price_index {p:.2f} < {CHEAP_PRICE_INDEX} (buys below the "
                            "category's median price): lead with discounts, bundles and multi-buy offers"})
        elif p > PREMIUM_PRICE_INDEX:
            actions.append({"kind": "price", "text": f"price_index {p:.2f} > {PREMIUM_PRICE_INDEX} (buys above the "
                            "category's median price): feature premium lines and new arrivals rather than discounts"})
    if activity is not None:
        timing = _timing(np.asarray(activity, dtype=np.float64))
        if timing:
            actions.append({"kind": "timing", "text": timing})
    return actions


def segment_actions(summary: pd.DataFrame, activity: Mapping[int, Any] | None = None) -> dict[int, list[dict]]:
    """:func:`suggest_actions` for every segment of a summary.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`~gpuseg.segments.profiles.segment_summary`.
    activity : mapping, optional
        Segment -> (7, 24) grid, from :func:`~gpuseg.segments.profiles.activity_grid`.

    Returns
    -------
    dict of int to list of dict
        Segment -> actions; unassigned customers (-1) get an empty list.
    """
    means = summary_table(summary, "mean")
    overall = summary.drop_duplicates("feature").set_index("feature")["overall_mean"]
    out = {}
    for seg in means.index:
        seg = int(seg)
        out[seg] = [] if seg < 0 else suggest_actions(means.loc[seg], overall, (activity or {}).get(seg))
    return out


def _timing(grid: np.ndarray) -> str | None:
    """``send campaigns Tue-Thu, 19:00-22:00: ...`` from a (7, 24) share grid."""
    if grid.shape != (7, 24):
        raise ValueError(f"activity must be a (7, 24) weekday x hour grid, not {grid.shape}")
    total = grid.sum()
    if not total > 0:
        return None
    grid = grid / total
    days, hours = grid.sum(axis=1), grid.sum(axis=0)
    d0, d_share = _best_window(days, TIMING_DAYS)
    h0, h_share = _best_window(hours, TIMING_HOURS)
    d_even, h_even = TIMING_DAYS / 7, TIMING_HOURS / 24
    peak_day, peak_hour = np.unravel_index(int(np.argmax(grid)), grid.shape)
    day_text = f"{WEEKDAYS[d0]}-{WEEKDAYS[(d0 + TIMING_DAYS - 1) % 7]}"
    hour_text = f"{h0:02d}:00-{(h0 + TIMING_HOURS) % 24:02d}:00"
    numbers = (f"{d_share:.0%} of the segment's activity falls on {day_text} ({d_even:.0%} if spread evenly) and "
               f"{h_share:.0%} in {hour_text} ({h_even:.1%} if even); busiest hour {WEEKDAYS[peak_day]} "
               f"{peak_hour:02d}:00 ({grid[peak_day, peak_hour]:.1%})")
    if d_share < PEAK_LIFT * d_even and h_share < PEAK_LIFT * h_even:
        return f"no clear peak, send at any time: {numbers}"
    return f"send campaigns {day_text}, {hour_text}: {numbers}"


def _best_window(shares: np.ndarray, width: int) -> tuple[int, float]:
    """Start and share of the consecutive (wrapping) window with the largest share; ties: earliest."""
    n = len(shares)
    sums = [float(sum(shares[(i + j) % n] for j in range(width))) for i in range(n)]
    best = int(np.argmax(sums))
    return best, sums[best]


def _number(v: Any) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def _num(x: float) -> str:
    """``2,660``, ``44``, ``9.1``, ``0.19``."""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 1 else f"{x:.2g}"
