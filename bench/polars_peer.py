"""The Polars peer of ``bench/pipeline.py``: load + clean + features as one lazy Polars plan.

Polars is a bench-only dependency (gpuseg itself never imports it)::

    pip install polars

What the plan computes is what gpuseg computes for REES46 events with the feature groups
rfm, funnel, sessions and time (22 features, :mod:`gpuseg.prep.features`), from the same
file, under the same cleaning rules (:mod:`gpuseg.prep.clean`):

* exact duplicate rows dropped (one copy kept);
* rows without user_id, time, price or session dropped (gpuseg keeps rows without a session, in
  sessions cut at gaps; the bench's logs have none, so the two agree); times before 1990-01-01 or more
  than a day after now dropped; unknown event types and negative prices dropped;
* prices above the IQR fence on ``log1p(price)`` (factor 3, linear quantiles) capped at its
  top; prices below it left as they are.

It is written the way a Polars user would write it: ``scan_csv`` / ``scan_parquet``, the
rules as filters and expressions, ``group_by(...).agg(...)`` per customer and per
(customer, session), one ``collect()`` at the end, so the optimiser sees the whole plan
(projection pushdown, the shared scan computed once). The thread count is Polars'
``POLARS_MAX_THREADS``, which ``bench/pipeline.py`` sets before Polars is imported.

Not reproduced (the generated data never trigger them): gpuseg's "no fence when the
prices have no spread" rule and its per-reason drop counts, excluded-customer list,
category / brand / product codes and product labels. Those are part of gpuseg's clean
stage and of its time.
"""

from __future__ import annotations

import time
from typing import Any

EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")
DAYPARTS = (("midnight", 0, 6), ("morning", 6, 12), ("afternoon", 12, 17), ("evening", 17, 21), ("night", 21, 24))
EARLIEST = 631_152_000  # 1990-01-01T00:00:00Z
IQR_FACTOR = 3.0
CLV_HORIZON_DAYS = 365.0
MIN_CLV_DAYS = 30.0
DAY = 86400.0

#: gpuseg's feature order for events with the groups rfm, funnel, sessions, time
FEATURES = (
    "recency_days", "frequency", "monetary", "tenure_days", "avg_order_value", "spend_rate_annualised",
    "views", "carts", "removals", "purchases", "view_to_cart", "cart_to_purchase", "cart_abandonment",
    "sessions", "events_per_session", "session_minutes",
    *(f"share_{name}" for name, _, _ in DAYPARTS), "share_weekend",
)


def _safe_div(pl: Any, num: Any, den: Any, cap: float | None = None) -> Any:
    """num / den, 0 where den is not positive; capped at ``cap`` (gpuseg's ``_safe_div``)."""
    out = pl.when(den > 0).then(num / den).otherwise(0.0)
    return out.clip(upper_bound=cap) if cap is not None else out


def scan(path: str) -> Any:
    """The lazy scan of an events file, with ``ts`` in Unix seconds (null where unparseable)."""
    import polars as pl

    if path.endswith(".parquet"):
        lf = pl.scan_parquet(path)
        ts = pl.col("event_time").dt.epoch("s")
    else:
        # ids and the session as text, like gpuseg reads them; everything else inferred
        lf = pl.scan_csv(path, schema_overrides={"event_time": pl.String, "user_session": pl.String})
        ts = (pl.col("event_time").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S UTC", strict=False)
              .dt.epoch("s"))
    return lf.with_columns(ts=ts)


def clean(lf: Any) -> Any:
    """gpuseg's cleaning rules on the lazy frame (module docstring)."""
    import polars as pl

    latest = int(time.time()) + 86_400
    lf = lf.unique()  # exact copies of a row (the scan's columns are all of the file's)
    lf = lf.filter(
        pl.col("user_id").is_not_null() & pl.col("ts").is_not_null() & pl.col("price").is_not_null()
        & pl.col("user_session").is_not_null()
        & (pl.col("ts") >= EARLIEST) & (pl.col("ts") <= latest)
        & pl.col("event_type").cast(pl.String).is_in(EVENT_TYPES)
        & (pl.col("price") >= 0) & pl.col("price").is_finite()
    )
    lp = pl.col("price").log1p()
    q1 = lp.quantile(0.25, interpolation="linear")
    q3 = lp.quantile(0.75, interpolation="linear")
    hi = (q3 + IQR_FACTOR * (q3 - q1)).exp() - 1.0
    price = pl.col("price")  # only the top is capped, as gpuseg caps it
    return lf.with_columns(price=pl.when(price > hi).then(hi).otherwise(price))


def features(lf: Any) -> Any:
    """The 22 features per customer (``customer_id`` first, sorted by it)."""
    import polars as pl

    et = pl.col("event_type").cast(pl.String)
    ts = pl.col("ts")
    hour = (ts // 3600) % 24
    weekday = ((ts // 86400) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    rows = lf.select(
        "user_id", "user_session", "ts",
        is_view=et == "view", is_cart=et == "cart", is_remove=et == "remove_from_cart",
        is_purchase=et == "purchase",
        revenue=pl.when(et == "purchase").then(pl.col("price")).otherwise(0.0),
        **{f"t_{name}": (hour >= lo) & (hour < hi) for name, lo, hi in DAYPARTS},
        t_weekend=weekday >= 5,
    )
    per_customer = rows.group_by("user_id").agg(
        first=ts.min(), last=ts.max(), events=pl.len(),
        views=pl.col("is_view").sum(), carts=pl.col("is_cart").sum(), removals=pl.col("is_remove").sum(),
        purchases=pl.col("is_purchase").sum(), revenue=pl.col("revenue").sum(),
        **{f"t_{n}": pl.col(f"t_{n}").sum() for n in [*(d[0] for d in DAYPARTS), "weekend"]},
    )
    per_session = (
        rows.group_by("user_id", "user_session")
        .agg(start=ts.min(), end=ts.max(), cart=pl.col("is_cart").any(), buy=pl.col("is_purchase").any())
        .group_by("user_id")
        .agg(sessions=pl.len(), minutes=((pl.col("end") - pl.col("start")) / 60.0).sum(),
             cart_sessions=pl.col("cart").sum(), abandoned=(pl.col("cart") & ~pl.col("buy")).sum(),
             orders=pl.col("buy").sum())
    )
    c = per_customer.join(per_session, on="user_id", how="left")
    ref = pl.col("last").max()  # the last event of the cleaned data
    col = pl.col
    out = c.select(
        customer_id=col("user_id"),
        recency_days=(ref - col("last")) / DAY,
        frequency=col("orders"),
        monetary=col("revenue"),
        tenure_days=(col("last") - col("first")) / DAY,
        avg_order_value=_safe_div(pl, col("revenue"), col("orders")),
        spend_rate_annualised=col("revenue") / ((ref - col("first")) / DAY).clip(lower_bound=MIN_CLV_DAYS)
        * CLV_HORIZON_DAYS,
        views=col("views"), carts=col("carts"), removals=col("removals"), purchases=col("purchases"),
        view_to_cart=_safe_div(pl, col("carts"), col("views"), 1.0),
        # a purchase counts as carted, as gpuseg's features (version 2) count it
        cart_to_purchase=_safe_div(pl, col("purchases"), pl.max_horizontal(col("carts"), col("purchases")), 1.0),
        cart_abandonment=_safe_div(pl, col("abandoned"), col("cart_sessions"), 1.0),
        sessions=col("sessions"),
        events_per_session=_safe_div(pl, col("events"), col("sessions")),
        session_minutes=_safe_div(pl, col("minutes"), col("sessions")),
        **{f"share_{n}": _safe_div(pl, col(f"t_{n}"), col("events"))
           for n in [*(d[0] for d in DAYPARTS), "weekend"]},
    )
    return out.with_columns(pl.col(f).cast(pl.Float64) for f in FEATURES).sort("customer_id")


def plan(path: str) -> Any:
    """load + clean + features as one lazy plan."""
    return features(clean(scan(path)))
