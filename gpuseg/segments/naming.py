"""Persona names for segments from transparent rules on their profile.

Each segment of a :func:`~gpuseg.segments.profiles.segment_summary` is checked against
:data:`PERSONA_RULES` in this priority order; the first rule whose conditions all hold names
it, and the conditions are recorded with the segment's actual numbers:

=====================  ======================================================================
Lapsed                 ``recency_days z >= 1.0`` (gone quiet; checked first because being
                       gone is what a campaign must react to, whatever they used to spend)
High-value loyal       ``monetary z >= 1.0`` and ``frequency z >= 0.5``
Cart abandoners        ``cart_abandonment z >= 0.5`` and ``carts z >= 0.0``
Deal seekers           ``price_index <= 0.9`` (segment mean) and ``frequency z >= 0.0``
Window shoppers        ``views z >= 0.25`` and ``purchases z <= -0.25``
New customers          ``tenure_days z <= -0.75`` and ``recency_days z <= 0.0``
Occasional             no rule above fired
Unassigned             label -1, always
=====================  ======================================================================

``z`` is the segment mean's distance from the overall mean in overall standard deviations
(the summary's ``z`` column); a bare feature name means the segment mean. A rule that needs
a feature the data lack (order logs have no ``views``, ``carts``, ...) does not fire.

Names are unique within a run. When several segments match the same persona, the strongest
(largest :attr:`PersonaRule.strength` value, ties by the lower segment number) keeps the
plain name; each other one is qualified, in the same order, by its most distinctive feature
not used by the rule (largest ``|z|``), e.g. ``Window shoppers (evening)`` or
``Occasional (low spend)``; a segment with no usable feature, or whose qualified name is
taken, gets a numeral instead (``Occasional 2``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from .profiles import summary_table

__all__ = ["Condition", "PersonaRule", "PERSONA_RULES", "UNASSIGNED_NAME", "FALLBACK_NAME", "name_segments"]

#: The name of label -1.
UNASSIGNED_NAME = "Unassigned"
#: The persona of a segment no rule matched.
FALLBACK_NAME = "Occasional"


@dataclass(frozen=True)
class Condition:
    """One test on a segment's profile.

    Attributes
    ----------
    feature : str
    stat : {"z", "mean"}
        The segment's z-score of the feature, or its mean.
    op : {">=", "<="}
    threshold : float
    """

    feature: str
    stat: str
    op: str
    threshold: float

    def value(self, z: Mapping[str, float], mean: Mapping[str, float]) -> float | None:
        """The tested number, or None when the feature is missing."""
        source = z if self.stat == "z" else mean
        v = source.get(self.feature)
        return None if v is None or pd.isna(v) else float(v)

    def holds(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def describe(self, value: float) -> str:
        """``"monetary z=+1.78 >= 1.0"`` or ``"price_index=0.72 <= 0.9"``."""
        shown = f" z={value:+.2f}" if self.stat == "z" else f"={value:.3g}"
        return f"{self.feature}{shown} {self.op} {_fmt_threshold(self.threshold)}"


@dataclass(frozen=True)
class PersonaRule:
    """A persona and when it applies.

    Attributes
    ----------
    name : str
    conditions : tuple of Condition
        All must hold.
    strength : (feature, stat, sign)
        Ranks segments of the same persona: ``sign * value``, larger is stronger.
    """

    name: str
    conditions: tuple[Condition, ...]
    strength: tuple[str, str, float]


def _z(feature: str, op: str, threshold: float) -> Condition:
    return Condition(feature, "z", op, threshold)


#: The persona rules in priority order (see the module docstring).
PERSONA_RULES: tuple[PersonaRule, ...] = (
    PersonaRule("Lapsed", (_z("recency_days", ">=", 1.0),), ("recency_days", "z", 1.0)),
    PersonaRule(
        "High-value loyal", (_z("monetary", ">=", 1.0), _z("frequency", ">=", 0.5)), ("monetary", "z", 1.0)
    ),
    PersonaRule(
        "Cart abandoners",
        (_z("cart_abandonment", ">=", 0.5), _z("carts", ">=", 0.0)),
        ("cart_abandonment", "z", 1.0),
    ),
    PersonaRule(
        "Deal seekers",
        (Condition("price_index", "mean", "<=", 0.9), _z("frequency", ">=", 0.0)),
        ("price_index", "mean", -1.0),
    ),
    PersonaRule("Window shoppers", (_z("views", ">=", 0.25), _z("purchases", "<=", -0.25)), ("views", "z", 1.0)),
    PersonaRule(
        "New customers",
        (_z("tenure_days", "<=", -0.75), _z("recency_days", "<=", 0.0)),
        ("tenure_days", "z", -1.0),
    ),
)

# Readable words for qualifiers ("high spend"); other features use their name.
_LABELS = {
    "recency_days": "recency",
    "frequency": "orders",
    "monetary": "spend",
    "tenure_days": "tenure",
    "avg_order_value": "order value",
    "clv": "CLV",
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
        ``share``, ``feature``, ``mean`` and ``z``). The wide frame of
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
    >>> names[1]
    {'name': 'Lapsed', 'persona': 'Lapsed', 'rule': 'recency_days z=+1.73 >= 1.0'}
    >>> names[0]["name"]
    'Occasional'
    """
    missing = {"segment", "feature", "z", "mean"} - set(summary.columns)
    if missing:
        raise ValueError(
            "name_segments needs the long frame of segment_summary (columns segment, feature, mean, z); "
            f"missing: {', '.join(sorted(missing))}"
        )
    return _name_segments(summary, dict(category_columns or {}), rules)


def _name_segments(
    summary: pd.DataFrame, category_columns: dict[str, str], rules: tuple[PersonaRule, ...]
) -> dict[int, dict[str, str]]:
    z_table = summary_table(summary, "z")
    mean_table = summary_table(summary, "mean")
    share = summary.groupby("segment")["share"].first() if "share" in summary.columns else None

    out: dict[int, dict[str, str]] = {}
    groups: dict[str, list[tuple[float, int]]] = defaultdict(list)
    used_features: dict[int, set[str]] = {}
    for seg in z_table.index:
        seg = int(seg)
        if seg < 0:
            out[seg] = {"name": UNASSIGNED_NAME, "persona": UNASSIGNED_NAME,
                        "rule": f"label {seg}: customers no segment took"}
            continue
        z = z_table.loc[seg].to_dict()
        mean = mean_table.loc[seg].to_dict()
        persona, rule_text, strength, used = _match(z, mean, rules)
        if persona == FALLBACK_NAME and share is not None:
            strength = float(share.get(seg, 0.0))
        out[seg] = {"name": persona, "persona": persona, "rule": rule_text}
        groups[persona].append((strength, seg))
        used_features[seg] = used

    taken = {UNASSIGNED_NAME} | set(groups)
    for persona, members in groups.items():
        members.sort(key=lambda m: (-m[0], m[1]))
        leader = members[0][1]
        for _, seg in members[1:]:
            name, why = _qualified(persona, z_table.loc[seg], used_features[seg], category_columns, taken)
            taken.add(name)
            out[seg]["name"] = name
            out[seg]["rule"] += f"; {why}, segment {leader} being the stronger {persona}"
    return out


def _match(
    z: Mapping[str, float], mean: Mapping[str, float], rules: tuple[PersonaRule, ...]
) -> tuple[str, str, float, set[str]]:
    """(persona, rule text, strength, features the rule used) of the first rule that holds."""
    for rule in rules:
        parts = []
        for cond in rule.conditions:
            v = cond.value(z, mean)
            if v is None or not cond.holds(v):
                break
            parts.append(cond.describe(v))
        else:
            feature, stat, sign = rule.strength
            v = (z if stat == "z" else mean).get(feature, 0.0)
            return rule.name, " and ".join(parts), sign * float(v), {c.feature for c in rule.conditions}
    return FALLBACK_NAME, "no persona rule fired", 0.0, set()


def _qualified(
    persona: str, z_row: pd.Series, exclude: set[str], category_columns: dict[str, str], taken: set[str]
) -> tuple[str, str]:
    """A free ``"persona (qualifier)"`` name from the most distinctive feature, else a numeral."""
    z_row = z_row.dropna()
    z_row = z_row[[f for f in z_row.index if f not in exclude]]
    order = sorted(z_row.index, key=lambda f: (-abs(float(z_row[f])), f))
    for feature in order:
        value = float(z_row[feature])
        if value == 0.0:
            break
        name = f"{persona} ({_qualifier(feature, value, category_columns)})"
        if name not in taken:
            return name, f"named after its most distinctive other feature, {feature} z={value:+.2f}"
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


def _fmt_threshold(x: float) -> str:
    """``1.0``, ``0.5``, ``-0.75``."""
    x = float(x)
    return f"{x:.1f}" if x == round(x, 1) else f"{x:g}"
