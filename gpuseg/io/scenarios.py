"""Planted-persona scenarios for the quality benchmark (``gpuseg generate --scenario NAME``).

One scenario is one kind of customer base with a known segment per customer. They vary
what makes segmentation hard, one thing at a time, so that a rule tuned on one of them
shows where it fails on another:

==================  =====  ==========================================================
name                k      what it varies
==================  =====  ==========================================================
``personas``        6      the built-in six personas (the default data of ``run``)
``three``           3      few, well separated personas
``ten``             10     many personas, some of them close
``imbalanced``      6      one persona of 2% (the high spenders)
``overlap``         6      personas pulled halfway towards each other, more spread
``noise``           6      time of day, weekend habit and categories drawn at random:
                           14 features that vary without telling personas apart
``small``           6      2,000 customers
``large``           6      1,000,000 customers
``orders``          6      an order log (one row per order) of six value personas
``orders_dates``    6      the same with date-only timestamps (as CDNOW)
``nonlinear``       3      personas spread over a wide range of activity whose rates
                           bend with it: long, curved, parallel groups
==================  =====  ==========================================================

:func:`generate_scenario` returns the log (events in the REES46 schema, orders in
gpuseg's order schema) and the truth (customer id, persona). Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError
from . import synthetic as _syn

__all__ = ["Scenario", "SCENARIOS", "ORDER_COLUMNS", "generate_scenario", "scenario_names"]

ORDER_COLUMNS = ("order_id", "customer_id", "timestamp", "amount", "quantity", "category")

# Personas the extra event scenarios add to the built-in six (fields as in synthetic.py).
_EXTRA_EVENT_PERSONAS: dict[str, dict] = {
    "night_owl": dict(
        weight=0.08, sessions=8.0, session_len=5.0, cart=0.05, remove=0.02, purchase=0.02,
        price_skew=1.0, focus=0.8, peak_hour=2, hour_kappa=5.0, trend=0.0, weekend=1.0,
        active=(0.0, 1.0), last_days=None, likes={"electronics": 2.0, "computers": 2.0},
    ),
    "weekend_buyer": dict(
        weight=0.08, sessions=7.0, session_len=4.0, cart=0.08, remove=0.02, purchase=0.05,
        price_skew=1.5, focus=0.85, peak_hour=12, hour_kappa=3.0, trend=0.0, weekend=5.0,
        active=(0.0, 1.0), last_days=None, likes={"sport": 3.0, "country_yard": 3.0},
    ),
    "big_basket": dict(
        weight=0.08, sessions=3.5, session_len=9.0, cart=0.15, remove=0.01, purchase=0.12,
        price_skew=0.5, focus=0.9, peak_hour=18, hour_kappa=3.0, trend=0.0, weekend=1.0,
        active=(0.0, 1.0), last_days=None, likes={"appliances": 3.0, "furniture": 3.0},
    ),
    "researcher": dict(
        weight=0.08, sessions=14.0, session_len=16.0, cart=0.01, remove=0.003, purchase=0.002,
        price_skew=0.6, focus=0.6, peak_hour=10, hour_kappa=3.0, trend=0.5, weekend=1.0,
        active=(0.0, 1.0), last_days=None, likes={"computers": 3.0, "electronics": 2.0},
    ),
}

# Three personas spread over a wide range of activity (gamma shape 2 instead of 6), with
# funnel rates that change with the customer's activity (power ``*_slope`` of activity over
# the persona's mean): in feature space each is a long, bent band beside the others.
_CURVED_PERSONAS: dict[str, dict] = {
    "engaged_buyer": dict(
        weight=0.35, sessions=20.0, session_len=5.0, cart=0.06, remove=0.02, purchase=0.04,
        price_skew=1.0, focus=0.85, peak_hour=15, hour_kappa=2.0, trend=0.0, weekend=1.0,
        active=(0.0, 1.0), last_days=None, likes={}, activity_shape=2.0, cart_slope=0.3,
        purchase_slope=0.8,
    ),
    "fading_browser": dict(
        weight=0.35, sessions=20.0, session_len=5.0, cart=0.025, remove=0.008, purchase=0.008,
        price_skew=1.0, focus=0.85, peak_hour=15, hour_kappa=2.0, trend=0.0, weekend=1.0,
        active=(0.0, 1.0), last_days=None, likes={}, activity_shape=2.0, cart_slope=-0.6,
        purchase_slope=-0.8,
    ),
    "cart_hoarder": dict(
        weight=0.30, sessions=20.0, session_len=5.0, cart=0.18, remove=0.08, purchase=0.006,
        price_skew=1.0, focus=0.85, peak_hour=15, hour_kappa=2.0, trend=0.0, weekend=1.0,
        active=(0.0, 1.0), last_days=None, likes={}, activity_shape=2.0, cart_slope=0.5,
        purchase_slope=-0.4,
    ),
}

# Value personas of the order scenarios.
#   orders       mean orders per customer (1 + gamma-Poisson, shape ``orders_shape``)
#   amount       median order value; ``amount_sigma`` its log-normal spread per order
#   items        mean items per order
#   active, last_days, trend, weekend, peak_hour: as for the event personas
#   likes        favourite categories (weight multipliers)
_ORDER_PERSONAS: dict[str, dict] = {
    "champion": dict(weight=0.10, orders=12.0, orders_shape=4.0, amount=90.0, amount_sigma=0.4, items=3.0,
                     active=(0.0, 1.0), last_days=None, trend=0.5, weekend=1.0, peak_hour=20,
                     likes={"electronics": 2.0, "computers": 2.0}),
    "big_spender": dict(weight=0.10, orders=1.5, orders_shape=4.0, amount=420.0, amount_sigma=0.35, items=4.0,
                        active=(0.0, 1.0), last_days=None, trend=0.0, weekend=1.0, peak_hour=13,
                        likes={"appliances": 3.0, "furniture": 3.0}),
    "lapsed_regular": dict(weight=0.20, orders=6.0, orders_shape=4.0, amount=60.0, amount_sigma=0.4, items=2.5,
                           active=(0.0, 0.4), last_days=None, trend=-0.5, weekend=1.0, peak_hour=12,
                           likes={"apparel": 2.0}),
    "new_buyer": dict(weight=0.15, orders=1.3, orders_shape=4.0, amount=50.0, amount_sigma=0.4, items=2.0,
                      active=(0.0, 1.0), last_days=30, trend=0.0, weekend=1.0, peak_hour=19, likes={}),
    "bargain_regular": dict(weight=0.15, orders=9.0, orders_shape=4.0, amount=22.0, amount_sigma=0.35, items=5.0,
                            active=(0.0, 1.0), last_days=None, trend=0.0, weekend=2.0, peak_hour=11,
                            likes={"kids": 3.0, "construction": 2.0}),
    "occasional": dict(weight=0.30, orders=1.8, orders_shape=4.0, amount=35.0, amount_sigma=0.4, items=1.5,
                       active=(0.0, 1.0), last_days=None, trend=0.0, weekend=1.0, peak_hour=16, likes={}),
}


@dataclass(frozen=True)
class Scenario:
    """A planted customer base.

    Attributes
    ----------
    name, description : str
    kind : {"events", "orders"}
    customers : int
        Default number of customers.
    personas : dict
        Persona name -> parameters (the tables above).
    weights : dict
        Persona name -> share, where it differs from the table's ``weight``.
    overlap : float
        Pull every persona's parameters this far (0..1) towards the customer-weighted mean.
    spread : float
        Multiplier of the customers' spread around their persona.
    random_context : bool
        Time of day, weekend habit and favourite category from a random persona's.
    date_only : bool
        Timestamps without a time of day (order scenarios).
    days : int
        Length of the time window.
    """

    name: str
    description: str
    kind: str = "events"
    customers: int = 20_000
    personas: Mapping[str, dict] = field(default_factory=lambda: dict(_syn._PERSONA_TABLE))
    weights: Mapping[str, float] = field(default_factory=dict)
    overlap: float = 0.0
    spread: float = 1.0
    random_context: bool = False
    date_only: bool = False
    days: int = 61

    @property
    def k(self) -> int:
        """The true number of segments."""
        return len(self.personas)

    def shares(self) -> np.ndarray:
        w = np.array([self.weights.get(p, spec["weight"]) for p, spec in self.personas.items()], dtype=np.float64)
        return w / w.sum()


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("personas", "the built-in six personas"),
    Scenario("three", "three well separated personas",
             personas={p: _syn._PERSONA_TABLE[p] for p in ("loyal_high_spender", "window_shopper", "lapsed")},
             weights={"loyal_high_spender": 0.25, "window_shopper": 0.45, "lapsed": 0.30}),
    Scenario("ten", "ten personas, some of them close",
             personas={**_syn._PERSONA_TABLE, **_EXTRA_EVENT_PERSONAS}),
    Scenario("imbalanced", "six personas, the high spenders 2% of customers",
             weights={"loyal_high_spender": 0.02, "window_shopper": 0.34, "deal_seeker": 0.16,
                      "cart_abandoner": 0.16, "lapsed": 0.19, "new_customer": 0.13}),
    Scenario("overlap", "six personas pulled halfway towards each other, with more spread",
             overlap=0.5, spread=1.3),
    Scenario("noise", "six personas; time of day, weekend habit and categories unrelated to them",
             random_context=True),
    Scenario("small", "six personas, 2,000 customers", customers=2_000),
    Scenario("large", "six personas, 1,000,000 customers", customers=1_000_000),
    Scenario("orders", "an order log of six value personas over a year", kind="orders",
             personas=_ORDER_PERSONAS, days=365),
    Scenario("orders_dates", "the order log with date-only timestamps", kind="orders",
             personas=_ORDER_PERSONAS, days=365, date_only=True),
    Scenario("nonlinear", "three personas over a wide range of activity, rates bending with it",
             personas=_CURVED_PERSONAS, random_context=True),
)}


def scenario_names() -> tuple[str, ...]:
    return tuple(SCENARIOS)


def generate_scenario(
    name: str, customers: int | None = None, seed: int = 0, start: str = "2019-10-01"
) -> tuple[pd.DataFrame, pd.DataFrame, Scenario]:
    """Generate a scenario's log and truth.

    Parameters
    ----------
    name : str
        A key of :data:`SCENARIOS`.
    customers : int, optional
        Default: the scenario's own size.
    seed : int, default=0
    start : str, default="2019-10-01"

    Returns
    -------
    log : pandas.DataFrame
        Events (REES46 columns) or orders (:data:`ORDER_COLUMNS`).
    truth : pandas.DataFrame
        ``user_id`` (events) or ``customer_id`` (orders), and ``persona``; only customers
        present in the log.
    scenario : Scenario

    Raises
    ------
    ConfigError
        An unknown name or a size out of range.
    """
    if name not in SCENARIOS:
        raise ConfigError(f"--scenario: unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    sc = SCENARIOS[name]
    n = sc.customers if customers is None else customers
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"customers must be a positive integer, got {n!r}")
    table = _pulled(sc.personas, sc.shares(), sc.overlap, sc.days)
    if sc.kind == "orders":
        log, truth = _generate_orders(int(n), seed, start, sc.days, table, sc.shares(), sc.date_only)
        return log, truth, sc
    try:
        start_day = np.datetime64(start, "D")
    except (ValueError, TypeError):
        raise ConfigError(f"start must be a date like '2019-10-01', got {start!r}") from None
    events, truth = _syn._generate_events(int(n), int(seed), start_day, sc.days, sc.shares(), table=table,
                                          random_context=sc.random_context, spread=sc.spread)
    return events, truth, sc


# numeric persona fields pulled on a log scale (positive, multiplicative) or linearly
_LOG_FIELDS = ("sessions", "session_len", "cart", "remove", "purchase", "price_skew", "weekend", "orders", "amount",
               "items")
_LINEAR_FIELDS = ("focus", "trend")


def _pulled(table: Mapping[str, dict], shares: np.ndarray, amount: float, days: int) -> dict[str, dict]:
    """Every persona's parameters moved ``amount`` of the way to the customer-weighted mean
    (peaks of the hour of day flattened by the same amount, active windows narrowed
    towards the average window)."""
    out = {p: dict(spec) for p, spec in table.items()}
    if amount <= 0:
        return out
    specs = list(out.values())
    for f in _LOG_FIELDS + _LINEAR_FIELDS:
        if f not in specs[0]:
            continue
        v = np.array([s[f] for s in specs], dtype=np.float64)
        if f in _LOG_FIELDS:
            mean = np.exp(np.sum(shares * np.log(v)))
            new = np.exp(np.log(v) + amount * (np.log(mean) - np.log(v)))
        else:
            new = v + amount * (np.sum(shares * v) - v)
        for s, x in zip(specs, new):
            s[f] = float(x)
    lo = np.array([1.0 - s["last_days"] / days if s.get("last_days") else s["active"][0] for s in specs])
    hi = np.array([s["active"][1] for s in specs])
    lo_new = lo + amount * (np.sum(shares * lo) - lo)
    hi_new = hi + amount * (np.sum(shares * hi) - hi)
    for s, a, b in zip(specs, lo_new, hi_new):
        s["active"], s["last_days"] = (float(a), float(max(b, a + 1.0 / days))), None
        if "hour_kappa" in s:
            s["hour_kappa"] = s["hour_kappa"] * (1.0 - amount)
    return out


def _generate_orders(
    n: int, seed: int, start: str, days: int, table: Mapping[str, dict], shares: np.ndarray, date_only: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An order log: one row per order of every customer (each has at least one)."""
    rng = np.random.default_rng(seed)
    names = list(table)
    p = {f: np.array([table[q][f] for q in names], dtype=np.float64)
         for f in ("orders", "orders_shape", "amount", "amount_sigma", "items", "trend", "weekend", "peak_hour")}
    persona = _syn._allocate_personas(n, shares, rng)
    ids = _syn._unique_ids(n, 10_000, 9_999_999, rng)
    shape = p["orders_shape"][persona]
    n_orders = 1 + rng.poisson(rng.gamma(shape, (p["orders"][persona] - 1.0) / shape))
    cust = np.repeat(np.arange(n), n_orders)
    per = persona[cust]
    start_day = np.datetime64(start, "D")
    lo = np.array([1.0 - table[q]["last_days"] / days if table[q].get("last_days") else table[q]["active"][0]
                   for q in names])
    hi = np.array([table[q]["active"][1] for q in names])
    first = np.floor(lo * days).astype(np.int64)
    end = np.maximum(first + 1, np.ceil(hi * days).astype(np.int64))
    day_cdf = _syn._day_cdf(start_day, days, p["weekend"], p["trend"])
    rows = per * len(names) + per
    day = _syn._sample_rows(day_cdf, rows, rng.random(cust.size), first[per], end[per])
    hour_params = {"peak_hour": p["peak_hour"], "hour_kappa": np.full(len(names), 3.0)}
    hour = _syn._sample_rows(_syn._hour_cdf(hour_params), per, rng.random(cust.size))
    seconds = day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, cust.size)
    level = rng.lognormal(0.0, 0.3, n)[cust]  # the customer's own spending level
    amount = np.round(p["amount"][per] * level * rng.lognormal(0.0, p["amount_sigma"][per]), 2)
    quantity = 1 + rng.poisson(p["items"][per] - 1.0)
    mains = list(_syn._TAXONOMY)
    favourite = _syn._sample_rows(_syn._favourite_cdf(table), persona, rng.random(n))[cust]
    traffic = _syn._to_cdf(np.array([_syn._TAXONOMY[m][0] for m in mains]))
    category = np.where(rng.random(cust.size) < 0.7, favourite, _syn._sample_cdf(traffic, rng.random(cust.size)))
    order = np.argsort(seconds, kind="stable")
    when = (start_day.astype("datetime64[s]") + seconds[order].astype("timedelta64[s]"))
    text = np.datetime_as_string(when, unit="D" if date_only else "s")
    if not date_only:
        text = np.char.replace(text.astype(str), "T", " ")
    log = pd.DataFrame({
        "order_id": np.arange(1, cust.size + 1, dtype=np.int64),
        "customer_id": ids[cust[order]],
        "timestamp": text.astype(str),
        "amount": amount[order],
        "quantity": quantity[order].astype(np.int64),
        "category": np.asarray(mains, dtype=object)[category[order]],
    })
    truth = pd.DataFrame({"customer_id": ids, "persona": np.asarray(names, dtype=object)[persona]})
    return log, truth


def scenario_summary(name: str) -> dict[str, Any]:
    """Name, description, kind, true k and default size (for the bench's tables)."""
    sc = SCENARIOS[name]
    return {"scenario": sc.name, "description": sc.description, "kind": sc.kind, "true_k": sc.k,
            "customers": sc.customers}
