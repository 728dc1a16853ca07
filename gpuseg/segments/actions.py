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
timing       an activity grid             the 3 consecutive weekdays and 3 consecutive hours
                                          where the segment is most over-represented against
                                          all customers' activity, each only when it holds
                                          :data:`PEAK_LIFT` times their share and
                                          :data:`TIMING_Z` standard errors more ("any day",
                                          "any time of day" otherwise; :func:`_timing`); the
                                          text names the hours' zone (UTC, or UTC+2 for
                                          ``utc_offset_hours = 2``)
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
    "tenure_days": "days from first to last activity",
}

#: Width of the timing windows.
TIMING_DAYS = 3
TIMING_HOURS = 3
#: A segment with at least this share of its activity in one hour of the day has dates
#: without times (CDNOW: every order at midnight): no hour is advised.
DATE_ONLY_SHARE = 0.99

#: A day (hour) window holding less than this multiple of the base's share (all customers'
#: activity, or an even spread) is "any day" ("any time of day"): :func:`_timing`.
PEAK_LIFT = 1.15
#: ... and so is one less than this many standard errors above it: :func:`_timing`.
TIMING_Z = 3.0
#: Below this effective sample size a segment gets no timing advice: :func:`_timing`.
MIN_TIMING_SAMPLE = 30


def suggest_actions(
    segment_profile: Mapping[str, float],
    overall: Mapping[str, float],
    activity: Any = None,
    *,
    z: Mapping[str, float] | None = None,
    share: float | None = None,
    revenue_share: float | None = None,
    base_activity: Any = None,
    sample_size: float | None = None,
    utc_offset_hours: float = 0.0,
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
    base_activity : array of shape (7, 24), optional
        The same grid of all customers' events, the timing's base (an even spread when
        None: the calendar's weekday counts and the site's daily rhythm then pass for the
        segment's own).
    sample_size : float, optional
        The segment's effective number of customers for the timing's noise test (none
        when None; :func:`_timing`).
    utc_offset_hours : float, default=0.0
        The clock of the grid's hours, named in the timing text.

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
    return _suggest_actions(stats, activity, when={"base": base_activity, "sample": sample_size,
                                                   "utc_offset_hours": utc_offset_hours})


def segment_actions(summary: pd.DataFrame, activity: Mapping[int, Any] | None = None,
                    naming: Mapping[int, Mapping[str, Any]] | None = None, *, base_activity: Any = None,
                    sample_sizes: Mapping[int, float] | None = None,
                    utc_offset_hours: float = 0.0) -> dict[int, list[dict]]:
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
    base_activity : array of shape (7, 24), optional
        The grid of all customers' events, the base the timing is judged against (an even
        spread when None).
    sample_sizes : mapping, optional
        Segment -> its effective number of customers for the timing's noise test
        (:func:`_timing`); the summary's sizes (every customer counted once) when None.
    utc_offset_hours : float, default=0.0
        The clock of the grids' hours, named in the timing text.

    Returns
    -------
    dict of int to list of dict
        Segment -> actions; unassigned customers (-1) get an empty list.
    """
    sizes = summary.groupby("segment")["size"].first().to_dict() if "size" in summary else {}
    samples = {int(s): float(n) for s, n in (sizes if sample_sizes is None else sample_sizes).items()}
    return {seg: [] if seg < 0 else _suggest_actions(stats, (activity or {}).get(seg),
                                                     (naming or {}).get(seg, {}).get("map"),
                                                     {"base": base_activity, "sample": samples.get(seg),
                                                      "utc_offset_hours": utc_offset_hours})
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


def _suggest_actions(stats: SegmentStats, activity: Any, words: Mapping[str, str] | None = None,
                     when: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """The actions of one segment; ``when``: :func:`_timing`'s ``base``, ``sample`` and
    ``utc_offset_hours``."""
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
        actions.append({"kind": "price", "text": f"price_index {price:.2f} <= {_threshold('low_prices')} (pays, or "
                        "without purchases views, below the category's median price): lead with discounts, bundles "
                        "and multi-buy offers"})
    elif signal_holds(SIGNALS["high_prices"], stats):
        actions.append({"kind": "price", "text": f"price_index {price:.2f} >= {_threshold('high_prices')} (pays, or "
                        "without purchases views, above the category's median price): feature premium lines and new "
                        "arrivals rather than discounts"})
    if activity is not None:
        timing = _timing(np.asarray(activity, dtype=np.float64), **(when or {}))
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


def _zone(utc_offset_hours: float) -> str:
    """``UTC``, ``UTC+2``, ``UTC-3:30``: the clock the activity grid's hours are on."""
    minutes = int(round(float(utc_offset_hours) * 60))
    if minutes == 0:
        return "UTC"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def _window_sums(shares: np.ndarray, width: int) -> np.ndarray:
    """The share of every consecutive (wrapping) window of ``width`` cells, by its start."""
    n = len(shares)
    return shares[(np.arange(n)[:, None] + np.arange(width)) % n].sum(axis=1)


def _pick_window(shares: np.ndarray, base: np.ndarray, width: int, sample: float | None = None
                 ) -> tuple[int, float, float]:
    """Start, the segment's share and the base's share of the window that stands out most
    from the base: the largest ``(share - base) / sqrt(base * (1 - base))``, the z-score
    of :func:`_is_peak` whatever the sample size (with an even base: the busiest window),
    among the windows that pass :func:`_is_peak` where any does (a busy window a little
    above the base must not hide a quiet one far above it), else among all.
    Ties: the busiest (a segment that does what everyone does: its busiest), then earliest."""
    s, b = _window_sums(shares, width), _window_sums(base, width)
    bb = np.clip(b, 1e-12, 1.0 - 1e-12)
    score = np.round((s - b) / np.sqrt(bb * (1.0 - bb)), 9)
    passing = np.array([_is_peak(float(si), float(bi), sample) for si, bi in zip(s, b)])
    score = np.where(passing, score, -np.inf) if passing.any() else score
    best = int(np.lexsort((np.arange(len(s)), -np.round(s, 12), -score))[0])
    return best, float(s[best]), float(b[best])


def _is_peak(share: float, base: float, sample: float | None) -> bool:
    """A window holds at least :data:`PEAK_LIFT` times the base's share and, with a sample
    size, :data:`TIMING_Z` standard errors ``sqrt(base * (1 - base) / sample)`` above it."""
    if share < PEAK_LIFT * base:
        return False
    return sample is None or share - base >= TIMING_Z * np.sqrt(max(base * (1.0 - base), 0.0) / sample)


def _base_text(base: float, even: bool) -> str:
    return f"{base:.0%} if spread evenly" if even else f"{base:.0%} for all customers"


def _day_window(days: np.ndarray, base: np.ndarray, even: bool, sample: float | None
                ) -> tuple[str, bool, str]:
    """(``Tue-Thu``, whether it is a peak, the numbers behind it) for the TIMING_DAYS
    consecutive weekdays that stand out most from the base."""
    d0, d_share, d_base = _pick_window(days, base, TIMING_DAYS, sample)
    text = f"{WEEKDAYS[d0]}-{WEEKDAYS[(d0 + TIMING_DAYS - 1) % 7]}"
    numbers = f"{d_share:.0%} of the segment's activity falls on {text} ({_base_text(d_base, even)})"
    return text, _is_peak(d_share, d_base, sample), numbers


def _evidence(sample: float | None, even: bool) -> str:
    """How the windows were judged, for the end of the timing text."""
    judged = "against an even spread" if even else "against all customers' activity"
    lift = f"a window needs {PEAK_LIFT:g}x the base"
    if sample is None:
        return f"; judged {judged} ({lift})"
    return (f"; judged {judged} ({lift} and {TIMING_Z:g} standard errors on an effective "
            f"{sample:,.0f} customers)")


def _timing(grid: np.ndarray, base: np.ndarray | None = None, sample: float | None = None,
            utc_offset_hours: float = 0.0) -> str | None:
    """``send campaigns Tue-Thu, 19:00-22:00 UTC: ...`` from a (7, 24) share grid.

    The segment is compared with ``base``, the same grid of all customers' events (an even
    spread when None). Against all customers, a calendar with five Tuesdays, or a site busy
    in the evenings, is what everyone does and no reason to time a segment's campaigns;
    only where the segment differs from everyone is there timing advice.

    The day window (and the hour window, judged separately) is the one that stands out most
    from the base (:func:`_pick_window`). It is advised only when it holds at least
    :data:`PEAK_LIFT` times the base's share of the activity (a difference worth acting on)
    and, when ``sample`` is given, :data:`TIMING_Z` binomial standard errors above it (a
    difference that is not noise); "any day" / "any time of day" otherwise. ``sample`` is
    the segment's effective number of independent observations: Kish's ``(sum w)^2 / sum
    w^2`` over its customers' event counts ``w``
    (:func:`~gpuseg.segments.insights.effective_sizes`), the exact count for the variance
    of the window's share if each customer's events all fall in one cell, the worst case of
    events coming in sessions (the event count would take every view of a session as a new
    observation). 3 standard errors: one-sided 5% after a Bonferroni
    correction over the 7 day and 24 hour windows the best is picked from (z = 2.95).
    Below :data:`MIN_TIMING_SAMPLE` (a normal approximation needs about 30) there is no
    advice at all. Hours are on the clock of ``utc_offset_hours`` and the text says so.
    """
    if grid.shape != (7, 24):
        raise ValueError(f"activity must be a (7, 24) weekday x hour grid, not {grid.shape}")
    total = grid.sum()
    if not total > 0:
        return None
    even = base is None or not np.asarray(base, dtype=np.float64).sum() > 0
    base = np.full((7, 24), 1.0 / 168) if even else np.asarray(base, dtype=np.float64)
    grid, base = grid / total, base / base.sum()
    judged = _evidence(sample, even)
    if sample is not None and sample < MIN_TIMING_SAMPLE:
        return (f"no timing advice: an effective {sample:,.0f} customers are too few to tell the segment's "
                f"activity from {'an even spread' if even else 'all customers'} (at least {MIN_TIMING_SAMPLE})")
    days, hours = grid.sum(axis=1), grid.sum(axis=0)
    day_text, day_peak, day_numbers = _day_window(days, base.sum(axis=1), even, sample)
    if hours.max() >= DATE_ONLY_SHARE:  # dates without times of day: only the days can be advised
        numbers = f"{day_numbers}; the data have dates without times of day{judged}"
        if day_peak:
            return f"send campaigns {day_text}, any time of day: {numbers}"
        return f"no clear peak day, send on any day: {numbers}"
    h0, h_share, h_base = _pick_window(hours, base.sum(axis=0), TIMING_HOURS, sample)
    zone = _zone(utc_offset_hours)
    peak_day, peak_hour = np.unravel_index(int(np.argmax(grid)), grid.shape)
    hour_text = f"{h0:02d}:00-{(h0 + TIMING_HOURS) % 24:02d}:00"
    h_even = f"{h_base:.1%} if even" if even else f"{h_base:.1%} for all customers"
    numbers = (f"{day_numbers} and {h_share:.0%} in {hour_text} {zone} ({h_even}); busiest hour "
               f"{WEEKDAYS[peak_day]} {peak_hour:02d}:00 {zone} ({grid[peak_day, peak_hour]:.1%}){judged}")
    hour_peak = _is_peak(h_share, h_base, sample)
    if not day_peak and not hour_peak:
        return f"no clear peak, send at any time: {numbers}"
    when = f"{day_text if day_peak else 'any day'}, {hour_text + ' ' + zone if hour_peak else 'any time of day'}"
    return f"send campaigns {when}: {numbers}"


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
