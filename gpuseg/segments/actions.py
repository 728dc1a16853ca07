"""Rule-based marketing actions for a segment, each stating the numbers it rests on.

The actions fire on the signals of :data:`~gpuseg.segments.signals.SIGNALS`, the same
conditions and thresholds that name the segments (:mod:`gpuseg.segments.naming`), so a
segment named after a persona always gets that persona's action:

===========  ===========================  =========================================================
action       signal (persona)             what to do
===========  ===========================  =========================================================
loyalty      high_value_loyal or          VIP tier, early access, loyalty rewards
             high_value (High-value
             loyal, High-value)
win-back     lapsed (Lapsed)              win-back series with a time-limited incentive
checkout     cart_abandoners              abandoned-cart reminders, free-shipping threshold
             (Cart abandoners)
retargeting  window_shoppers              retarget the products they viewed
             (Window shoppers)
onboarding   new_customers                welcome series, second-purchase incentive
             (New customers)
cross-sell   regular_buyers               items bought with their favourites, a loyalty tier;
             (Regular buyers)             only when none of the actions above fired
conversion   browsers (Browsers)          first-order incentive on the products they viewed;
                                          only when none of the actions above fired
nurture      none of the above            regular newsletter, test offers
price        low_prices / high_prices     ``price_index <= 0.9``: discounts and bundles;
                                          ``>= 1.1``: premium lines and new arrivals
timing       an activity grid             the busiest 3 consecutive weekdays and 3 consecutive
                                          hours, each only when it holds at least
                                          :data:`PEAK_LIFT` times an even spread ("any day",
                                          "any time of day" otherwise)
===========  ===========================  =========================================================

A signal whose numbers the data lack (``views`` and ``carts`` in order logs, z-scores or the
revenue share when not given) does not fire.

A segment named from its place on the recency, frequency and spend map (in order logs the
segments of the recency-frequency-spend personas, in event data those no persona rule names:
:mod:`gpuseg.segments.naming`) also gets the action its name's words stand for, when the
signals above have not given it already (and then no broad action): *Champions*
loyalty, *Lapsed ...* win-back, *Recent one-timers* onboarding (a second purchase),
*... repeat* or *frequent ...* cross-sell. So "Lapsed one-timers" get a win-back series
even where their recency is under the Lapsed persona's 1.5 times the overall one, and
a name and its advice never disagree. :func:`segment_actions` needs the naming for that
(``naming=``); without it only the signals decide.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .signals import SIGNALS, SegmentStats, segment_stats, signal_holds

__all__ = ["suggest_actions", "segment_actions", "ACTION_RULES", "BROAD_ACTION_RULES", "MAP_ACTION_RULES",
           "WEEKDAYS"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: (kind, signals of which any fires it, advice), in order. The text states the segment's
#: numbers on the features of the signals that fired.
ACTION_RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("loyalty", ("high_value_loyal", "high_value"),
     "VIP tier, early access to new products and loyalty rewards; keep them away from blanket discounts"),
    ("win-back", ("lapsed",),
     "win-back series ('we miss you' with a time-limited incentive), then reduce frequency if they stay quiet"),
    ("checkout", ("cart_abandoners",),
     "abandoned-cart reminders within hours, a free-shipping threshold and a simpler checkout"),
    ("retargeting", ("window_shoppers",),
     "retarget the products they viewed, with reviews, stock and price-drop alerts"),
    ("onboarding", ("new_customers",),
     "onboarding series (welcome offer, best-sellers of their first categories, second-purchase incentive)"),
)

#: Actions of the broad signals, as :data:`ACTION_RULES`; they fire only when none of
#: :data:`ACTION_RULES` did and a map-named segment got no action of its words
#: (:data:`MAP_ACTION_RULES`): a lapsed or a high-value segment gets win-back or loyalty, not
#: also conversion or cross-sell.
BROAD_ACTION_RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("cross-sell", ("regular_buyers",),
     "cross-sell the items bought with their favourites (see the recommendations) and invite them to a "
     "loyalty tier"),
    ("conversion", ("browsers",),
     "first-order incentive (welcome discount or free shipping) on the products they viewed, with reviews "
     "and stock alerts"),
)

#: How the texts name the features.
_WORDS = {
    "monetary": "mean spend",
    "frequency": "orders per customer",
    "recency_days": "days since last activity",
    "cart_abandonment": "cart abandonment",
    "carts": "carts",
    "views": "views",
    "purchases": "purchases",
    "tenure_days": "days since first seen",
}

#: Width of the timing windows.
TIMING_DAYS = 3
TIMING_HOURS = 3
#: A segment with at least this share of its activity in one hour of the day has dates
#: without times (CDNOW: every order at midnight): no hour is advised.
DATE_ONLY_SHARE = 0.99

#: A day (hour) window holding less than this multiple of an even spread is "any day" ("any time of day").
PEAK_LIFT = 1.15


def suggest_actions(
    segment_profile: Mapping[str, float],
    overall: Mapping[str, float],
    activity: Any = None,
    *,
    z: Mapping[str, float] | None = None,
    share: float | None = None,
    revenue_share: float | None = None,
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
    z : mapping, optional
        Feature -> the segment's z-score (the summary's ``z``). Without it, signals with a
        condition on a z-score do not fire.
    share, revenue_share : float, optional
        The segment's share of customers and of revenue, for the revenue lift of
        ``high_value``.

    Returns
    -------
    list of dict
        ``{"kind": str, "text": str}`` in the order of :data:`ACTION_RULES` (or, when none
        of them fires, of :data:`BROAD_ACTION_RULES`; nurture when neither fires), then
        price and timing (only those that fire).

    Examples
    --------
    >>> acts = suggest_actions({"monetary": 900.0, "frequency": 1.0, "price_index": 1.3},
    ...                        {"monetary": 200.0, "frequency": 1.0}, z={"monetary": 1.2, "frequency": 0.1},
    ...                        share=0.1, revenue_share=0.45)
    >>> [a["kind"] for a in acts]
    ['loyalty', 'price']
    >>> acts[0]["text"].split(":")[0]
    'mean spend 900 vs 200 overall (4.5x, z=+1.20), 45% of revenue from 10% of customers'
    """
    stats = SegmentStats(
        mean=_numbers(segment_profile), overall=_numbers(overall), z=_numbers(z or {}),
        share=share, revenue_share=revenue_share,
    )
    return _suggest_actions(stats, activity)


def segment_actions(summary: pd.DataFrame, activity: Mapping[int, Any] | None = None,
                    naming: Mapping[int, Mapping[str, Any]] | None = None) -> dict[int, list[dict]]:
    """:func:`suggest_actions` for every segment of a summary.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`~gpuseg.segments.profiles.segment_summary`.
    activity : mapping, optional
        Segment -> (7, 24) grid, from :func:`~gpuseg.segments.profiles.activity_grid`.
    naming : mapping, optional
        :func:`~gpuseg.segments.naming.name_segments` of the same summary: a segment named
        from the recency, frequency and spend map also gets its words' action (module doc).

    Returns
    -------
    dict of int to list of dict
        Segment -> actions; unassigned customers (-1) get an empty list.
    """
    return {seg: [] if seg < 0 else _suggest_actions(stats, (activity or {}).get(seg),
                                                     (naming or {}).get(seg, {}).get("map"))
            for seg, stats in segment_stats(summary).items()}


def _stands_out(stats: SegmentStats) -> str:
    """", though it stands out on avg_order_value (z=+1.50), ...": the segment's most
    distinctive number among those no signal looks at, where one is at least a standard
    deviation from the overall mean, so that a nurture card does not read as a segment
    without anything to it (a number a signal does look at fell short of its threshold)."""
    covered = {c.feature for conditions in SIGNALS.values() for c in conditions}
    far = [(abs(v), f, v) for f, v in stats.z.items() if np.isfinite(v) and abs(v) >= 1.0 and f not in covered]
    if not far:
        return ""
    _, feature, v = max(far)
    return f", though it stands out on {feature} (z={v:+.2f}), which no rule looks at"


def _suggest_actions(stats: SegmentStats, activity: Any, words: Mapping[str, str] | None = None
                     ) -> list[dict[str, str]]:
    actions = _fired(ACTION_RULES, stats)
    kinds = {a["kind"] for a in actions}
    actions += [a for a in _map_actions(stats, words) if a["kind"] not in kinds]
    if not actions:
        actions = _fired(BROAD_ACTION_RULES, stats)
    if not actions:
        actions.append({"kind": "nurture", "text": "no action rule fired (the spend, lapse, cart, browsing, tenure "
                        f"and frequency thresholds of the persona rules){_stands_out(stats)}: regular newsletter, "
                        "test offers"})
    price = stats.mean.get("price_index")
    if signal_holds(SIGNALS["low_prices"], stats):
        actions.append({"kind": "price", "text": f"price_index {price:.2f} <= {_threshold('low_prices')} (buys "
                        "below the category's median price): lead with discounts, bundles and multi-buy offers"})
    elif signal_holds(SIGNALS["high_prices"], stats):
        actions.append({"kind": "price", "text": f"price_index {price:.2f} >= {_threshold('high_prices')} (buys "
                        "above the category's median price): feature premium lines and new arrivals rather than "
                        "discounts"})
    if activity is not None:
        timing = _timing(np.asarray(activity, dtype=np.float64))
        if timing:
            actions.append({"kind": "timing", "text": timing})
    return actions


#: (kind, the map's words that give it, advice) for segments named from the recency,
#: frequency and spend map; the first that matches applies (module doc).
MAP_ACTION_RULES: tuple[tuple[str, Mapping[str, tuple[str, ...]], str], ...] = (
    ("loyalty", {"recency": ("Recent",), "orders": ("frequent", "repeat"), "spend": ("big spenders",)},
     "VIP tier, early access to new products and loyalty rewards; keep them away from blanket discounts"),
    ("win-back", {"recency": ("Lapsed",)},
     "win-back series ('we miss you' with a time-limited incentive), then reduce frequency if they stay quiet"),
    ("onboarding", {"recency": ("Recent",), "orders": ("one-time",)},
     "second-purchase incentive and best-sellers of their first order, while the first one is recent"),
    ("cross-sell", {"orders": ("frequent", "repeat")},
     "cross-sell the items bought with their favourites (see the recommendations) and invite them to a "
     "loyalty tier"),
)


def _map_actions(stats: SegmentStats, words: Mapping[str, str] | None) -> list[dict[str, str]]:
    """The action of a map-named segment's words (:data:`MAP_ACTION_RULES`), its text led by
    the segment's recency, orders and spend against the overall ones; [] for other segments."""
    if not words:
        return []
    for kind, wanted, advice in MAP_ACTION_RULES:
        if all(words.get(part, "") in options for part, options in wanted.items()):
            numbers = ", ".join(_vs(stats, f) for f in ("recency_days", "frequency", "monetary") if f in stats.mean)
            place = ", ".join(w for w in (words.get("recency"), words.get("orders"), words.get("spend")) if w)
            return [{"kind": kind, "text": f"{numbers} ({place.lower()} on the recency, orders and spend map): "
                                           f"{advice}"}]
    return []


def _fired(rules: tuple[tuple[str, tuple[str, ...], str], ...], stats: SegmentStats) -> list[dict[str, str]]:
    """The actions of the rules whose signals fire, their texts led by the numbers behind them."""
    actions = []
    for kind, signals, advice in rules:
        fired = [s for s in signals if signal_holds(SIGNALS[s], stats) is not None]
        if fired:
            features = dict.fromkeys(c.feature for s in fired for c in SIGNALS[s] if c.stat != "lift")
            numbers = ", ".join(_vs(stats, f) for f in features if f in stats.mean)
            if kind == "loyalty" and stats.revenue_lift is not None:
                numbers += f", {stats.revenue_share:.0%} of revenue from {stats.share:.0%} of customers"
            actions.append({"kind": kind, "text": f"{numbers}: {advice}"})
    return actions


def _vs(stats: SegmentStats, feature: str) -> str:
    """``mean spend 900 vs 200 overall (4.5x, z=+1.20)``, with what is known."""
    text = f"{_WORDS.get(feature, feature)} {_num(stats.mean[feature])}"
    if feature not in stats.overall:
        return text
    text += f" vs {_num(stats.overall[feature])} overall"
    detail = []
    ratio = stats.ratio(feature)
    if ratio is not None:
        detail.append(f"{ratio:.1f}x")
    if stats.z.get(feature) is not None:
        detail.append(f"z={stats.z[feature]:+.2f}")
    return text + (f" ({', '.join(detail)})" if detail else "")


def _threshold(signal: str) -> float:
    (cond,) = SIGNALS[signal]
    return cond.threshold


def _day_window(days: np.ndarray) -> tuple[str, float, float]:
    """(``Tue-Thu``, its share of the activity, the share if spread evenly) of the busiest
    TIMING_DAYS consecutive weekdays."""
    d0, d_share = _best_window(days, TIMING_DAYS)
    return f"{WEEKDAYS[d0]}-{WEEKDAYS[(d0 + TIMING_DAYS - 1) % 7]}", d_share, TIMING_DAYS / 7


def _day_timing(days: np.ndarray) -> str:
    """Timing advice from the weekdays alone (date-only data)."""
    day_text, d_share, d_even = _day_window(days)
    numbers = (f"{d_share:.0%} of the segment's activity falls on {day_text} ({d_even:.0%} if spread evenly); "
               "the data have dates without times of day")
    if d_share >= PEAK_LIFT * d_even:
        return f"send campaigns {day_text}, any time of day: {numbers}"
    return f"no clear peak day, send on any day: {numbers}"


def _timing(grid: np.ndarray) -> str | None:
    """``send campaigns Tue-Thu, 19:00-22:00: ...`` from a (7, 24) share grid.

    The day window and the hour window are judged separately: a window holding less than
    :data:`PEAK_LIFT` times its even share is replaced by "any day" / "any time of day".
    """
    if grid.shape != (7, 24):
        raise ValueError(f"activity must be a (7, 24) weekday x hour grid, not {grid.shape}")
    total = grid.sum()
    if not total > 0:
        return None
    grid = grid / total
    days, hours = grid.sum(axis=1), grid.sum(axis=0)
    if hours.max() >= DATE_ONLY_SHARE:  # dates without times of day: only the days can be advised
        return _day_timing(days)
    day_text, d_share, d_even = _day_window(days)
    h0, h_share = _best_window(hours, TIMING_HOURS)
    h_even = TIMING_HOURS / 24
    peak_day, peak_hour = np.unravel_index(int(np.argmax(grid)), grid.shape)
    hour_text = f"{h0:02d}:00-{(h0 + TIMING_HOURS) % 24:02d}:00"
    numbers = (f"{d_share:.0%} of the segment's activity falls on {day_text} ({d_even:.0%} if spread evenly) and "
               f"{h_share:.0%} in {hour_text} ({h_even:.1%} if even); busiest hour {WEEKDAYS[peak_day]} "
               f"{peak_hour:02d}:00 ({grid[peak_day, peak_hour]:.1%})")
    day_peak = d_share >= PEAK_LIFT * d_even
    hour_peak = h_share >= PEAK_LIFT * h_even
    if not day_peak and not hour_peak:
        return f"no clear peak, send at any time: {numbers}"
    when = f"{day_text if day_peak else 'any day'}, {hour_text if hour_peak else 'any time of day'}"
    return f"send campaigns {when}: {numbers}"


def _best_window(shares: np.ndarray, width: int) -> tuple[int, float]:
    """Start and share of the consecutive (wrapping) window with the largest share; ties: earliest."""
    n = len(shares)
    sums = [float(sum(shares[(i + j) % n] for j in range(width))) for i in range(n)]
    best = int(np.argmax(sums))
    return best, sums[best]


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a mapping (dict or Series), as floats."""
    out = {}
    for k, v in dict(values).items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(v):
            out[str(k)] = v
    return out


def _num(x: float) -> str:
    """``2,660``, ``44``, ``9.1``, ``0.19``."""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 1 else f"{x:.2g}"
