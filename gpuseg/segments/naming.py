"""Persona names for segments from transparent rules on their profile.

Each segment of a :func:`~gpuseg.segments.profiles.segment_summary` is checked against
:data:`PERSONA_RULES` in this priority order; the first rule whose conditions all hold names
it, and the conditions are recorded with the segment's actual numbers:

=====================  ======================================================================
Unassigned             label -1, always
Lapsed                 ``recency_days >= 1.5 x overall`` and ``recency_days z >= 0.5`` (gone
                       quiet; checked first because being gone is what a campaign must react
                       to, whatever they used to spend)
High-value loyal       ``monetary z >= 1.0`` and ``frequency z >= 0.5`` (mean frequency >= 1.5)
High-value             ``revenue_share / share >= 2.0`` and ``monetary z >= 0.5`` (brings at
                       least twice its share of revenue)
Cart abandoners        ``cart_abandonment z >= 0.5`` and ``carts z >= 0.0``
Deal seekers           ``price_index <= 0.9`` (segment mean) and ``frequency z >= 0.0`` (mean > 0)
Window shoppers        ``views z >= 0.25`` and ``purchases z <= -0.25``
New customers          ``tenure_days z <= -0.75`` and ``recency_days z <= 0.0``
Regular buyers         ``frequency z >= 0.25`` (more orders than the average customer)
Browsers               ``frequency < 0.1`` and ``views >= 1.0`` (segment means: active, but
                       hardly any orders)
Occasional             no rule above fired
=====================  ======================================================================

``z`` is the segment mean's distance from the overall mean in overall standard deviations
(the summary's ``z`` column); ``x overall`` is the segment mean over the overall mean;
``revenue_share / share`` is the revenue lift; a bare feature name means the segment mean.
The conditions and their thresholds are the signals of :data:`~gpuseg.segments.signals.SIGNALS`,
which the marketing actions of :mod:`gpuseg.segments.actions` use too (Lapsed and win-back,
High-value and loyalty, ... fire on the same numbers). A rule that needs a feature the data
lack (order logs have no ``views``, ``carts``, ...) does not fire.

In an order log (no ``views``: nothing but purchases to go on) a segment whose persona is a
statement about recency, frequency and spend (Lapsed, High-value loyal, High-value, Regular
buyers, Occasional) is named from its place on the recency, frequency and spend map
instead; so is a segment of event data that no persona rule names. The persona, and with
it the actions, stays what the rules above say. On the map, recency ``z <= -0.5`` is
*Recent* (fewer days since the last purchase than most), ``z >= 0.5`` *Lapsed*; a mean
below 1.5 orders is *one-time*, frequency ``z >= 1.0`` *frequent*, a mean of 1.5 orders or
more with ``z > 0`` *repeat*; spend ``z >= 0.5`` *big spenders*, ``z <= -0.5`` *low
spenders*, a mean of 0 *zero spenders* (every customer of the segment spent nothing, e.g.
free items), else *buyers*. Recent frequent or repeat big
spenders are *Champions*; one-time buyers are *one-timers* (``Lapsed one-timers``,
``Recent repeat buyers``, ``One-time big spenders``). A segment in the middle of all three
stays ``Occasional``. The rule text gives the three numbers against the overall ones.

Names are unique within a run. When several segments match the same persona, the strongest
(largest :attr:`PersonaRule.strength` value, ties by the lower segment number) keeps the
plain name; each other one is qualified, in the same order, by the feature not used by the
rule that most separates it from that segment (largest difference of ``z``), e.g.
``Window shoppers (evening)`` or ``Occasional (low spend)``: "low spend" means less than
the segment with the plain name spends; a segment with no usable feature, or whose
qualified name is taken, gets a numeral instead (``Occasional 2``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from .profiles import summary_table
from .signals import SIGNALS, Condition, SegmentStats, segment_stats, signal_holds

__all__ = ["Condition", "PersonaRule", "PERSONA_RULES", "UNASSIGNED_NAME", "FALLBACK_NAME", "name_segments"]

#: The name of label -1.
UNASSIGNED_NAME = "Unassigned"
#: The persona of a segment no rule matched.
FALLBACK_NAME = "Occasional"


@dataclass(frozen=True)
class PersonaRule:
    """A persona and when it applies.

    Attributes
    ----------
    name : str
    signal : str
        Key of :data:`~gpuseg.segments.signals.SIGNALS`: the conditions, all of which must hold.
    strength : (feature, stat, sign)
        Ranks segments of the same persona: ``sign * value`` of the feature's ``"z"`` or
        ``"mean"``, larger is stronger.
    """

    name: str
    signal: str
    strength: tuple[str, str, float]

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return SIGNALS[self.signal]


#: The persona rules in priority order (see the module docstring).
PERSONA_RULES: tuple[PersonaRule, ...] = (
    PersonaRule("Lapsed", "lapsed", ("recency_days", "z", 1.0)),
    PersonaRule("High-value loyal", "high_value_loyal", ("monetary", "z", 1.0)),
    PersonaRule("High-value", "high_value", ("monetary", "z", 1.0)),
    PersonaRule("Cart abandoners", "cart_abandoners", ("cart_abandonment", "z", 1.0)),
    PersonaRule("Deal seekers", "deal_seekers", ("price_index", "mean", -1.0)),
    PersonaRule("Window shoppers", "window_shoppers", ("views", "z", 1.0)),
    PersonaRule("New customers", "new_customers", ("tenure_days", "z", -1.0)),
    PersonaRule("Regular buyers", "regular_buyers", ("frequency", "z", 1.0)),
    PersonaRule("Browsers", "browsers", ("views", "z", 1.0)),
)

# Readable words for qualifiers ("high spend"); other features use their name.
_LABELS = {
    "recency_days": "recency",
    "frequency": "orders",
    "monetary": "spend",
    "tenure_days": "tenure",
    "avg_order_value": "order value",
    "clv": "spend rate",
    "spend_rate_annualised": "spend rate",
    "brands": "brand variety",
    "price_index": "price level",
    "avg_price_viewed": "viewed prices",
    "avg_price_paid": "paid prices",
    "avg_unit_price": "unit prices",
    "items_per_order": "basket size",
    "events_per_session": "events per session",
    "session_minutes": "session length",
}


def name_segments(
    summary: pd.DataFrame,
    category_columns: Mapping[str, str] | None = None,
    rules: tuple[PersonaRule, ...] = PERSONA_RULES,
) -> dict[int, dict[str, str]]:
    """Name every segment after the first persona rule its profile satisfies.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`~gpuseg.segments.profiles.segment_summary` (long form with ``segment``,
        ``share``, ``revenue_share``, ``feature``, ``mean``, ``z`` and ``overall_mean``;
        without ``share`` or ``revenue_share`` the High-value rule does not fire). The wide frame of
        :func:`~gpuseg.segments.profiles.segment_profiles` has no z-scores (it lacks the
        overall spread), so it is not accepted.
    category_columns : mapping, optional
        ``cat_*`` column -> category name (``CustomerFeatures.category_columns``), for
        readable qualifiers.
    rules : tuple of PersonaRule, default=PERSONA_RULES
        Rules in priority order.

    Returns
    -------
    dict of int to dict
        Segment -> ``{"name": str, "persona": str, "rule": str}``: the unique name, the
        persona it came from and the rule that fired written out with the segment's
        numbers, e.g. ``"monetary z=+1.78 >= 1.0 and frequency z=+1.85 >= 0.5"``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from gpuseg.segments.profiles import segment_summary
    >>> feats = pd.DataFrame({"recency_days": [1.0, 2.0, 1.0, 90.0], "monetary": [5.0, 6.0, 4.0, 5.0]})
    >>> names = name_segments(segment_summary(feats, np.array([0, 0, 0, 1])))
    >>> names[1]["name"], names[1]["rule"]
    ('Lapsed', 'recency_days=3.83x overall >= 1.5x and recency_days z=+1.73 >= 0.5')
    >>> names[0]["name"]  # no rule fired: qualified by its most distinctive feature
    'Occasional (low recency)'
    """
    missing = {"segment", "feature", "z", "mean", "overall_mean"} - set(summary.columns)
    if missing:
        raise ValueError(
            "name_segments needs the long frame of segment_summary (columns segment, feature, mean, z, "
            "overall_mean); "
            f"missing: {', '.join(sorted(missing))}"
        )
    return _name_segments(summary, dict(category_columns or {}), rules)


def _name_segments(
    summary: pd.DataFrame, category_columns: dict[str, str], rules: tuple[PersonaRule, ...]
) -> dict[int, dict[str, str]]:
    z_table = summary_table(summary, "z")
    stats = segment_stats(summary)
    orders_only = "views" not in z_table.columns  # an order log: purchases are all there is

    out: dict[int, dict[str, str]] = {}
    groups: dict[str, list[tuple[float, int]]] = defaultdict(list)
    used_features: dict[int, set[str]] = {}
    for seg, seg_stats in stats.items():
        if seg < 0:
            out[seg] = {"name": UNASSIGNED_NAME, "persona": UNASSIGNED_NAME,
                        "rule": f"label {seg}: customers no segment took"}
            continue
        persona, rule_text, strength, used = _match(seg_stats, rules)
        name, rfm = persona, None
        if persona == FALLBACK_NAME:
            strength = seg_stats.share if seg_stats.share is not None else strength
        if persona == FALLBACK_NAME or orders_only and persona in RFM_PERSONAS:
            rfm = _rfm_name(seg_stats)
            if rfm is not None:
                name = rfm[0]
                rule_text = rfm[1] + ("" if persona == FALLBACK_NAME else f"; persona {persona}: {rule_text}")
                used = used | set(RFM_FEATURES)
        out[seg] = {"name": name, "persona": persona, "rule": rule_text}
        if rfm is not None:  # named from the map: its actions follow the map's words
            out[seg]["map"] = rfm[2]
        groups[name].append((strength, seg))
        used_features[seg] = used

    taken = {UNASSIGNED_NAME} | set(groups)
    for persona, members in groups.items():
        members.sort(key=lambda m: (-m[0], m[1]))
        leader = members[0][1]
        for _, seg in members[1:]:
            name, why = _qualified(persona, z_table.loc[seg], z_table.loc[leader], used_features[seg],
                                   category_columns, taken)
            taken.add(name)
            out[seg]["name"] = name
            out[seg]["rule"] += f"; {why}, segment {leader} being the stronger {persona}"
    _qualify_fallback(out, z_table, used_features, category_columns, taken)
    return out


#: A segment no rule named is qualified by its most distinctive feature where that feature's
#: z-score is at least this far from 0 ("Occasional (high avg order value)"); nearer, it is plain
#: "Occasional": average on everything.
FALLBACK_QUALIFY_Z = 0.5


def _qualify_fallback(out: dict[int, dict[str, str]], z_table: pd.DataFrame, used: dict[int, set[str]],
                      category_columns: dict[str, str], taken: set[str]) -> None:
    """The plain-named :data:`FALLBACK_NAME` segment, qualified by the feature that most
    separates it from all customers (of those giving a name not yet taken), where that
    feature's ``|z|`` reaches :data:`FALLBACK_QUALIFY_Z`."""
    seg = next((s for s, v in out.items() if v["name"] == FALLBACK_NAME), None)
    if seg is None:
        return
    z_row = z_table.loc[seg].drop(labels=[f for f in used.get(seg, ()) if f in z_table.columns]).dropna()
    taken = taken | {v["name"] for v in out.values()}
    for feature in sorted(z_row.index, key=lambda f: (-abs(float(z_row[f])), f)):
        z = float(z_row[feature])
        if abs(z) < FALLBACK_QUALIFY_Z:
            return
        name = f"{FALLBACK_NAME} ({_qualifier(feature, z, category_columns)})"
        if name not in taken:
            out[seg]["name"] = name
            out[seg]["rule"] += f"; named after what most separates it from all customers, {feature} z={z:+.2f}"
            return


#: Personas that are statements about recency, frequency and spend: in an order log the map
#: names their segments (New customers and Deal seekers say more than the map can).
RFM_PERSONAS = frozenset({"Lapsed", "High-value loyal", "High-value", "Regular buyers", FALLBACK_NAME})

#: The features of the recency-frequency-spend map, in the order of the rule text.
RFM_FEATURES = ("recency_days", "frequency", "monetary")
_RFM_WORDS = {"recency_days": ("recency", " days"), "frequency": ("orders", ""), "monetary": ("spend", "")}


def _rfm_name(stats: SegmentStats) -> tuple[str, str, dict[str, str]] | None:
    """(name, why, words) from the segment's place on the recency, frequency and spend map
    (module doc); ``words``: its ``recency``, ``orders`` and ``spend`` words ("" for the
    middle), which :mod:`gpuseg.segments.actions` follows. None without the three features,
    or in the middle of all three."""
    z = {f: stats.z.get(f) for f in RFM_FEATURES}
    mean = {f: stats.mean.get(f) for f in RFM_FEATURES}
    if any(v is None or pd.isna(v) for v in [*z.values(), *mean.values()]):
        return None
    recency = "Recent" if z["recency_days"] <= -0.5 else "Lapsed" if z["recency_days"] >= 0.5 else ""
    if mean["frequency"] < 1.5:
        orders = "one-time"
    elif z["frequency"] >= 1.0:
        orders = "frequent"
    else:
        orders = "repeat" if z["frequency"] > 0.0 else ""
    spend = "big spenders" if z["monetary"] >= 0.5 else "low spenders" if z["monetary"] <= -0.5 else "buyers"
    if mean["monetary"] <= 0:  # every customer of it spent nothing (free items): not merely "low"
        spend = "zero spenders"
    if recency == "Recent" and orders in ("frequent", "repeat") and spend == "big spenders":
        name = "Champions"
    elif orders == "one-time" and spend == "buyers":
        name = " ".join(filter(None, (recency, "one-timers")))
    elif not recency and not orders and spend == "buyers":
        return None
    else:
        name = " ".join(filter(None, (recency, orders, spend)))
    name = name[0].upper() + name[1:]
    why = ", ".join(_versus(stats, f) for f in RFM_FEATURES)
    return name, f"{why}: named from recency, orders and spend", {"recency": recency, "orders": orders,
                                                                   "spend": spend}


def _versus(stats: SegmentStats, feature: str) -> str:
    """``recency 490 days vs 160 overall (z=+1.20)``."""
    word, unit = _RFM_WORDS[feature]
    # orders to 4 digits: a mean of 1.495 is "1.495", not the "1.5" that the one-time rule's < 1.5 denies
    text = f"{word} {stats.mean[feature]:,.4g}{unit}" if feature == "frequency" else \
        f"{word} {stats.mean[feature]:,.3g}{unit}"
    if stats.overall.get(feature) is not None:
        text += f" vs {stats.overall[feature]:,.3g} overall"
    return text + f" (z={stats.z[feature]:+.2f})"


def _match(stats: SegmentStats, rules: tuple[PersonaRule, ...]) -> tuple[str, str, float, set[str]]:
    """(persona, rule text, strength, features the rule used) of the first rule that holds."""
    for rule in rules:
        text = signal_holds(rule.conditions, stats)
        if text is not None:
            feature, stat, sign = rule.strength
            v = (stats.z if stat == "z" else stats.mean).get(feature, 0.0)
            v = 0.0 if v is None or pd.isna(v) else float(v)
            return rule.name, text, sign * v, {c.feature for c in rule.conditions}
    return FALLBACK_NAME, "no persona rule fired", 0.0, set()


def _qualified(
    persona: str, z_row: pd.Series, z_leader: pd.Series, exclude: set[str], category_columns: dict[str, str],
    taken: set[str],
) -> tuple[str, str]:
    """A free ``"persona (qualifier)"`` name from the feature that most separates the segment
    from the one that keeps the plain name (largest ``|z - z_leader|``; "low tenure" means
    lower than that segment's), else a numeral."""
    gap = (z_row - z_leader.reindex(z_row.index)).dropna()
    gap = gap[[f for f in gap.index if f not in exclude]]
    order = sorted(gap.index, key=lambda f: (-abs(float(gap[f])), f))
    for feature in order:
        value = float(gap[feature])
        if value == 0.0:
            break
        name = f"{persona} ({_qualifier(feature, value, category_columns)})"
        if name not in taken:
            return name, (f"named after what most separates it from the plain-named segment, {feature} "
                          f"z={float(z_row[feature]):+.2f} against {float(z_leader[feature]):+.2f}")
    i = 2
    while f"{persona} {i}" in taken:
        i += 1
    return f"{persona} {i}", "numbered (no distinctive feature left for a qualifier)"


def _qualifier(feature: str, z: float, category_columns: dict[str, str]) -> str:
    """``evening``, ``kids``, ``high spend``, ``low weekend share``, ..."""
    if feature.startswith("share_") or feature in ("midnight", "morning", "afternoon", "evening", "night", "weekend"):
        word = feature.removeprefix("share_")
        return word if z > 0 else f"low {word} share"
    if feature.startswith("cat_"):
        word = category_columns.get(feature, feature.removeprefix("cat_").replace("_", " "))
        return word if z > 0 else f"little {word}"
    label = _LABELS.get(feature, feature.replace("_", " "))
    return f"{'high' if z > 0 else 'low'} {label}"
