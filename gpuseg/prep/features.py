"""Per-customer features from a cleaned event or order log.

Every feature comes from decomposable aggregations (sums, counts, min, max; means as
sum/count; distinct sessions and brands as distinct pairs), written once against the
pandas API subset that cuDF shares, so the same code runs on the CPU, on the GPU and
(later) per Dask partition.

Feature groups (``[features] groups``) and what they hold for **events** input:

``rfm``
    ``recency_days`` (since last activity), ``frequency`` (orders: sessions with a
    purchase), ``monetary`` (spend), ``tenure_days`` (first to last activity),
    ``avg_order_value``, ``spend_rate_annualised`` (spend per day since first seen, over
    at least 30 days, times ``clv_horizon_days``: an extrapolation, not a lifetime value;
    the model is :mod:`gpuseg.segments.value`; models saved by earlier versions call it ``clv``).
``funnel``
    ``views``, ``carts``, ``removals``, ``purchases``, ``view_to_cart`` (carts / views),
    ``cart_to_purchase`` (purchases / carts), ``cart_abandonment`` (share of sessions with
    a cart and no purchase); rates are 0 without a denominator and capped at 1.
``sessions``
    ``sessions``, ``events_per_session``, ``session_minutes`` (mean length).
``time``
    Share of activity in the ``midnight`` (0-6 h), ``morning`` (6-12), ``afternoon``
    (12-17), ``evening`` (17-21) and ``night`` (21-24) hours and on weekends, after
    ``utc_offset_hours``.
``category``
    ``cat_<name>``: share of activity in each of the ``top_categories`` most active main
    categories (first token of ``category_code``); ``brands``: distinct brands.
``price``
    ``avg_price_viewed``, ``avg_price_paid`` (0 without purchases) and ``price_index``:
    geometric mean of price / median price of the same category (``category_id``), each
    ratio held within 0.1..10 (free items, and groups whose median price is 0, left out; 1
    without a priced row), over purchases when there are any, else over all events;
    below 1 is the deal-seeker signal. (The arithmetic mean of models saved before
    :data:`FEATURE_VERSION` 2 read about 1.65 for customers of ordinary products: skewed
    prices put the mean ratio far above 1.)

``cart_to_purchase`` counts each purchase as carted (purchases / max(carts, purchases)): a
REES46 log can lack the cart event of a purchase, and a buyer whose carts were not logged
had a rate of 0, the browsers'. (``view_to_cart`` stays carts / views as logged: counting
purchases as carts there made it a second purchase rate, and cut the six-persona ARI of
``bench/quality.py`` from 0.82 to 0.60.) Models saved before version 2 keep the plain ratio.

**Orders** input gets what its columns allow: ``rfm``, ``time``, ``category`` (with a
``category`` column), ``price`` (``avg_unit_price``, ``price_index``) and, with
``quantity``, ``items_per_order``.

A fitted model computes the same features for new customers with its own settings
(:class:`FeatureSpec`, from :func:`feature_spec`): the same columns in the same order, the
training data's top categories (by name; a category absent from the new data gives shares
of 0), the training data's median price per price group for ``price_index`` (a group the
training data never saw is compared with its own median in the new data), and recency
measured from a given reference time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..config import FeatureConfig
from ..errors import DataError
from .._threads import in_threads
from ..backend import array_namespace, series_like, series_values
from ..io.schemas import EVENT_TYPES
from .clean import CleanedData

__all__ = ["CustomerFeatures", "FeatureSpec", "customer_features", "feature_spec", "DAYPARTS"]

#: (name, first hour, end hour) of the parts of the day.
DAYPARTS = (
    ("midnight", 0, 6),
    ("morning", 6, 12),
    ("afternoon", 12, 17),
    ("evening", 17, 21),
    ("night", 21, 24),
)

_DAY = 86400.0
_MIN_CLV_DAYS = 30.0


@dataclass
class CustomerFeatures:
    """One row per customer.

    Attributes
    ----------
    frame : DataFrame
        Index ``customer_id``; float64 feature columns (pandas or cuDF).
    groups : dict
        Feature name -> group.
    bounded : set of str
        Features that are shares or rates in [0, 1] (never log-transformed).
    reference_time : int
        Unix seconds that recency is measured from (the last event in the data).
    category_columns : dict
        ``cat_*`` column -> the main category it measures.
    price_medians : dict or None
        Price group key (as text) -> median price of the group, what ``price_index``
        compared with (None without ``price_index``).
    """

    frame: Any
    groups: dict[str, str]
    bounded: set[str] = field(default_factory=set)
    reference_time: int = 0
    category_columns: dict[str, str] = field(default_factory=dict)
    price_medians: dict[str, float] | None = None

    @property
    def names(self) -> list[str]:
        return list(self.frame.columns)

    @property
    def top_categories(self) -> list[str]:
        return list(self.category_columns.values())

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class FeatureSpec:
    """The feature definitions of a fitted model, to compute the same features for new data.

    Attributes
    ----------
    names : tuple of str
        Feature columns, in order.
    groups : dict
        Feature -> group.
    bounded : tuple of str
    category_columns : dict
        ``cat_*`` column -> main category name.
    price_medians : dict or None
        Price group key (text) -> training median price.
    include : dict
        Without ``names`` (a spec built from global statistics, :mod:`gpuseg.dist`):
        whether the features that depend on the data (``brands``, ``items_per_order``,
        ``avg_unit_price``) are computed.
    version : int
        The definitions the features were computed with (module doc); 1 for a model saved
        before the version was recorded.
    """

    names: tuple[str, ...]
    groups: Mapping[str, str]
    bounded: tuple[str, ...] = ()
    category_columns: Mapping[str, str] = field(default_factory=dict)
    price_medians: Mapping[str, float] | None = None
    include: Mapping[str, bool] = field(default_factory=dict)
    version: int = 2

    def wants(self, name: str) -> bool:
        """Whether a data-dependent feature is computed."""
        return name in self.names if self.names else bool(self.include.get(name, False))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (the price medians go to arrays: :meth:`price_arrays`)."""
        return {"names": list(self.names), "groups": dict(self.groups), "bounded": list(self.bounded),
                "category_columns": dict(self.category_columns), "version": self.version}

    def price_arrays(self) -> dict[str, np.ndarray]:
        if not self.price_medians:
            return {}
        keys = list(self.price_medians)
        return {"price_keys": np.asarray(keys, dtype=str),
                "price_medians": np.asarray([self.price_medians[k] for k in keys], dtype=np.float64)}

    @classmethod
    def from_json(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "FeatureSpec":
        medians = None
        if "price_keys" in arrays:
            medians = dict(zip((str(k) for k in arrays["price_keys"]), (float(v) for v in arrays["price_medians"])))
        return cls(tuple(meta["names"]), dict(meta["groups"]), tuple(meta.get("bounded", ())),
                   dict(meta.get("category_columns", {})), medians, version=int(meta.get("version", 1)))


#: The feature definitions new models are fitted with (module doc): 2 since 2026-12-07.
FEATURE_VERSION = 2
#: The range each price / category-median ratio is held within for ``price_index``.
RATIO_CLIP = (0.1, 10.0)


def _version(spec: FeatureSpec | None) -> int:
    return FEATURE_VERSION if spec is None else spec.version


def feature_spec(features: CustomerFeatures) -> FeatureSpec:
    """The :class:`FeatureSpec` of features computed on training data."""
    return FeatureSpec(tuple(features.names), dict(features.groups), tuple(sorted(features.bounded)),
                       dict(features.category_columns), features.price_medians)


class _Builder:
    """Collects feature columns with their group, boundedness and category names."""

    def __init__(self, index_frame: Any) -> None:
        self.out = index_frame[[]].copy()
        self.groups: dict[str, str] = {}
        self.bounded: set[str] = set()
        self.category_columns: dict[str, str] = {}

    def put(self, name: str, values: Any, group: str, bounded: bool = False) -> None:
        self.out[name] = values.astype("float64")
        self.groups[name] = group
        if bounded:
            self.bounded.add(name)

    def put_category(self, category: str, values: Any) -> None:
        name = _category_column(category, self.groups)
        self.put(name, values, "category", bounded=True)
        self.category_columns[name] = category

    def done(self, reference_time: int, price_medians: dict[str, float] | None = None) -> CustomerFeatures:
        self.out.index.name = "customer_id"
        return CustomerFeatures(self.out, self.groups, self.bounded, reference_time, self.category_columns,
                                price_medians)


def customer_features(
    data: CleanedData, config: FeatureConfig, spec: FeatureSpec | None = None, reference_time: int | None = None
) -> CustomerFeatures:
    """Aggregate a cleaned log into per-customer features.

    Parameters
    ----------
    data : CleanedData
    config : FeatureConfig
    spec : FeatureSpec, optional
        A fitted model's definitions: exactly its features, with its categories and price
        medians (module docstring).
    reference_time : int, optional
        Unix seconds recency is measured from; default the last event of ``data``.

    Returns
    -------
    CustomerFeatures

    Raises
    ------
    DataError
        Fewer than 3 customers (without ``spec``), the chosen groups yield no feature for
        this input, a feature of ``spec`` cannot be computed from these data, or a feature
        is not finite (values too large for float64).
    """
    ref = data.reference_time if reference_time is None else int(reference_time)
    if data.kind == "events":
        out = _event_features(data, config, spec, ref)
    else:
        out = _order_features(data, config, spec, ref)
    if spec is not None and spec.names:
        missing = [n for n in spec.names if n not in out.groups]
        if missing:
            raise DataError(f"the model uses feature {missing[0]!r}, which these {data.kind} data cannot give; "
                            "check that they have the columns the model was trained with")
        out.frame = out.frame[list(spec.names)]
        out.groups = {n: out.groups[n] for n in spec.names}
    elif spec is None and len(out.frame) < 3:
        raise DataError(f"only {len(out.frame)} customer(s) left after cleaning; segmentation needs at least 3")
    if not out.groups:
        raise DataError(
            f"the feature groups {', '.join(config.groups)} give no features for {data.kind} input; "
            "add groups in [features] groups"
        )
    check_finite(out.frame)
    return out


def check_finite(frame: Any) -> None:
    """DataError naming the first feature with an infinite value (amounts too large)."""
    finite = frame.abs().max() < float("inf")
    if hasattr(finite, "to_pandas"):
        finite = finite.to_pandas()
    if not bool(finite.all()):
        bad = finite[~finite].index[0]
        raise DataError(f"feature {bad!r} is not finite for some customers (values too large); check the input's amounts")


def _counted(codes, n: int, bins, width: int):
    """Rows per (bin, customer): a ``(width, n)`` int64 array, one contiguous row per bin (a
    column for pandas or cuDF), from one ``bincount`` of ``codes * width + bins``
    (``codes``: each row's customer 0..n-1; ``bins``: 0..width-1)."""
    xp = array_namespace(codes)
    keys = codes * width + bins.astype(codes.dtype, copy=False)
    return xp.ascontiguousarray(xp.bincount(keys, minlength=n * width).reshape(n, width).T)


def _time_counts(ts, codes, n: int, config: FeatureConfig) -> dict[str, Any]:
    """Per customer, rows in each day part (``t_<part>``) and on weekends (``t_weekend``)."""
    xp = array_namespace(codes)
    local = ts + int(round(config.utc_offset_hours * 3600))
    hour = (local // 3600) % 24
    weekday = ((local // 86400) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    part_of_hour = np.full(24, len(DAYPARTS), dtype=np.int64)  # an hour in no part: the last slot
    for i, (_, lo, hi) in enumerate(DAYPARTS):
        part_of_hour[lo:hi] = i
    parts = _counted(codes, n, xp.asarray(part_of_hour)[hour], len(DAYPARTS) + 1)
    cols = {f"t_{name}": parts[i] for i, (name, _, _) in enumerate(DAYPARTS)}
    cols["t_weekend"] = _counted(codes, n, (weekday >= 5), 2)[1]
    return cols


def _row_counts(f, codes, n: int, config: FeatureConfig, top: list[int]) -> dict[str, Any]:
    """Per customer (``codes``: 0..n-1 per row, in the aggregates' order), the rows in each
    time indicator and top category (``c_<i>``; a code of ``top`` below 0, such as -2 for a
    model's category these data lack, matches no row), counted by ``bincount`` rather than
    summed from one indicator column each (exact: they are integers)."""
    xp = array_namespace(codes)
    cols = _time_counts(series_values(f["ts"]), codes, n, config) if "time" in set(config.groups) else {}
    if top:
        main = series_values(f["main_cat"]).astype(np.int64)
        present = [(i, code) for i, code in enumerate(top) if code >= 0]  # -2: a model's category these data lack
        slot = np.full(max((code for _, code in present), default=-1) + 2, len(top), dtype=np.int64)
        for i, code in present:  # any other category: the last slot
            slot[code] = i
        lut = xp.asarray(slot)
        idx = lut[xp.clip(main, -1, len(slot) - 1)]  # -1 (unknown) and codes past the top's: last slot
        counts = _counted(codes, n, idx, len(top) + 1)
        cols.update({f"c_{i}": counts[i] for i in range(len(top))})  # an absent category's row: zeros
    return cols


def _spec_categories(data: CleanedData, spec: FeatureSpec) -> list[int]:
    """Codes of the spec's categories in these data (-2, matching no row, for absent ones)."""
    index = {name: i for i, name in enumerate(data.main_categories)}
    return [index.get(name, -2) for name in spec.category_columns.values()]


def _top_categories(f, n: int) -> list[int]:
    """Codes of the ``n`` most active main categories (ties by code)."""
    if n == 0:
        return []
    counts = f.loc[f["main_cat"] >= 0, "main_cat"].value_counts()
    if hasattr(counts, "to_pandas"):
        counts = counts.to_pandas()
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    return [int(c) for c in counts.index[:n]]


def _indicator_codes(f, data: CleanedData, config: FeatureConfig, spec: FeatureSpec | None) -> list[int]:
    """Codes of the main categories whose shares are features: the spec's, else the most
    active ones of the whole log (computed once, before any split by customer)."""
    if spec is not None:
        return _spec_categories(data, spec)
    if "category" in set(config.groups) and data.main_categories:
        return _top_categories(f, config.top_categories)
    return []


def _group_codes(groups) -> Any:
    """Each row's group number in a ``groupby(..., sort=True)`` (its row in the aggregates),
    as an int64 array on the frame's device."""
    return series_values(groups.ngroup()).astype(np.int64, copy=False)


def _put_rfm(b: _Builder, a, ref: int, config: FeatureConfig, spec: FeatureSpec | None) -> None:
    b.put("recency_days", (ref - a["last_ts"]) / _DAY, "rfm")
    b.put("frequency", a["orders"], "rfm")
    b.put("monetary", a["revenue"], "rfm")
    b.put("tenure_days", (a["last_ts"] - a["first_ts"]) / _DAY, "rfm")
    b.put("avg_order_value", _safe_div(a["revenue"], a["orders"]), "rfm")
    rate = "clv" if spec is not None and "clv" in spec.names else "spend_rate_annualised"  # older models: "clv"
    b.put(rate, _spend_rate(a["revenue"], a["first_ts"], ref, config), "rfm")


def _put_time(b: _Builder, a, count: str, data: CleanedData, spec: FeatureSpec | None) -> None:
    """Day-part shares (not for date-only data: every event would fall at midnight) and the
    weekend share."""
    if spec.wants("share_morning") if spec is not None else not data.date_only:
        for name, _, _ in DAYPARTS:
            b.put(f"share_{name}", _safe_div(a[f"t_{name}"], a[count]), "time", True)
    b.put("share_weekend", _safe_div(a["t_weekend"], a[count]), "time", True)


def _put_categories(b: _Builder, a, data: CleanedData, top: list[int], count: str, spec: FeatureSpec | None) -> None:
    if spec is not None:
        for i, (column, category) in enumerate(spec.category_columns.items()):
            b.put(column, _safe_div(a[f"c_{i}"], a[count]), "category", bounded=True)
            b.category_columns[column] = category
        return
    for i, code in enumerate(top):
        b.put_category(data.main_categories[code], _safe_div(a[f"c_{i}"], a[count]))


def _safe_div(num, den, cap: float | None = None):
    out = (num / den.where(den > 0)).fillna(0.0)
    return out.clip(upper=cap) if cap is not None else out


def price_key_names(data: CleanedData, codes: Any) -> list[str]:
    """The price-group keys behind ``price_key`` codes, as text (what saved medians are
    keyed by): the group's value, or ``"-1"`` for rows without a group."""
    names = data.price_key_names
    return [names[int(c)] if names is not None and 0 <= int(c) < len(names) else str(int(c)) for c in codes]


def _price_medians(f, data: CleanedData, spec: FeatureSpec | None) -> tuple[Any, dict[str, float]]:
    """The median price of every price group (a Series by ``price_key``, on the frame's
    device) and the same by group key as text.

    With ``spec``, the training medians; a group they lack keeps these data's median.
    """
    med = f.groupby("price_key")["price"].median().sort_index()  # cuDF groups in hash order
    host = med.to_pandas() if hasattr(med, "to_pandas") else med
    keys = price_key_names(data, host.index)
    if spec is not None and spec.price_medians:
        fitted = [spec.price_medians.get(k) for k in keys]
        host = host.copy()
        host[:] = [v if f_ is None else f_ for v, f_ in zip(host.to_numpy(), fitted)]
        if hasattr(med, "to_pandas"):  # cuDF: the few group medians go back to the device
            from ..backend import frame_namespace

            med = frame_namespace(med).from_pandas(host)
        else:
            med = host
    medians = {k: float(v) for k, v in zip(keys, host.to_numpy())}  # "-1": the rows without a group
    return med, medians


def _price_ratio(rows, med, logged: bool = False) -> tuple[Any, Any]:
    """(price / median price of the row's price group, None); with ``logged``, (its log, the
    ratio held within :data:`RATIO_CLIP`, whether the row has a price level: a price and a
    median above 0). A free item, or a group whose median is 0, says nothing of the price
    level a customer pays; their rows count 0 and are left out of the count."""
    median = rows["price_key"].map(med)
    ratio = _safe_div(rows["price"], median)
    if not logged:
        return ratio, None
    priced = (rows["price"] > 0) & (median > 0).fillna(False)
    clipped = ratio.clip(lower=RATIO_CLIP[0], upper=RATIO_CLIP[1])
    logs = series_like(clipped, _xp_of(clipped).log(series_values(clipped)))
    return logs.where(priced, 0.0), priced.astype("int32")


def _price_level(ratio_sum, n, logged: bool) -> Any:
    """``price_index`` from the sum of (logged) ratios over ``n`` rows: their geometric mean,
    1 (the median) without a row with a price level; for older models the arithmetic mean,
    0 without rows."""
    mean = _safe_div(ratio_sum, n)
    if not logged:
        return mean
    level = series_like(mean, _xp_of(mean).exp(series_values(mean)))
    return level.where(n > 0, 1.0)


def _xp_of(s) -> Any:
    """The array namespace of a Series' values (NumPy for pandas, CuPy for cuDF)."""
    return array_namespace(series_values(s))


def _event_features(data: CleanedData, config: FeatureConfig, spec: FeatureSpec | None, ref: int) -> CustomerFeatures:
    a, top, medians = _event_aggregates(data, config, spec)
    b = _Builder(a)
    _put_event_features(b, a, data, config, spec, top, ref)
    return b.done(ref, medians)


def _event_aggregates(data: CleanedData, config: FeatureConfig, spec: FeatureSpec | None) -> tuple[Any, Any, Any]:
    """(per-customer aggregates, top categories, price medians) of the events: counts by
    event type, revenue, prices, the session-level counts and the distinct brands.

    What looks beyond one customer (the top categories, the price medians, whether brands
    exist) is computed on the whole log first; the group-bys then run per customer part
    (:func:`_by_customer_parts`), which gives the same numbers bit for bit.
    """
    f = data.frame
    groups_on = set(config.groups)
    top = _indicator_codes(f, data, config, spec)
    med, medians = _price_medians(f, data, spec) if "price" in groups_on else (None, None)
    brands = "category" in groups_on and (spec.wants("brands") if spec is not None else bool((f["brand"] >= 0).any()))

    def aggregate(rows):
        return _event_part(rows, config, top, med, brands, _version(spec) >= 2)

    used = ("customer_id", "ts", "etype", "price", "session", "main_cat", "brand", "price_key")
    return _by_customer_parts(f, aggregate, used), top, medians


#: Below this many rows a log is aggregated in one piece (splitting costs more than it saves).
_PART_MIN_ROWS = 1_000_000
#: Rows per customer part at most: smaller group-bys keep their hash tables in the caches.
_PART_ROWS = 1_250_000


def _part_count(f) -> int:
    """How many customer parts the CPU group-bys run in: at least one per thread of the run
    (``--threads``), and parts of at most ``_PART_ROWS`` rows; 1 on the GPU and for small logs."""
    from .. import backend as _backend

    if _backend.is_gpu_frame(f) or len(f) < _PART_MIN_ROWS:
        return 1
    return max(_backend.RUN_THREADS or 1, -(-len(f) // _PART_ROWS))


def _by_customer_parts(f, aggregate, used: tuple[str, ...]) -> Any:
    """``aggregate(rows)`` on parts of ``f`` that each hold every row of their customers, in
    the log's order, run in the run's threads (pandas' group-by kernels release the GIL);
    the parts' customers concatenated in customer order. A customer's sums add the same
    values in the same order as on the whole log, so the result is the same bit for bit.
    The parts carry only the ``used`` columns."""
    parts = _part_count(f)
    if parts == 1:
        return aggregate(f)
    import pandas as pd

    f = f[[c for c in used if c in f.columns]]
    ids = f["customer_id"]
    codes = ids.to_numpy() if ids.dtype.kind in "iu" else pd.factorize(ids)[0]
    # Fibonacci hashing: ids sharing a stride (all even, all multiples of 100) still spread evenly
    mixed = (codes.astype(np.uint64, copy=False) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
    part = mixed % np.uint64(parts)
    pieces = [f.take(np.flatnonzero(part == i)) for i in range(parts)]
    return pd.concat(in_threads(aggregate, pieces, "gpuseg-features")).sort_index()


def _event_part(f, config: FeatureConfig, top: list[int], med: Any, brands: bool, logged: bool = True) -> Any:
    """Per-customer aggregates of the rows ``f`` (every row of each of their customers)."""
    et = f["etype"]
    work = f[["customer_id", "ts"]].copy()
    work["is_cart"] = (et == 1).astype("int32")
    work["is_purchase"] = (et == 3).astype("int32")
    work["revenue"] = f["price"] * work["is_purchase"]
    work["view_price"] = f["price"] * (et == 0).astype("int32")
    aggs: dict[str, tuple[str, str]] = {
        "first_ts": ("ts", "min"),
        "last_ts": ("ts", "max"),
        "events": ("ts", "size"),
        "revenue": ("revenue", "sum"),
        "view_price_sum": ("view_price", "sum"),
    }
    if med is not None:
        work["ratio"], priced = _price_ratio(f, med, logged)
        work["ratio_paid"] = work["ratio"] * work["is_purchase"]
        aggs["ratio_sum"] = ("ratio", "sum")
        aggs["ratio_paid_sum"] = ("ratio_paid", "sum")
        if priced is not None:  # the rows with a price level, counted
            work["priced"], work["priced_paid"] = priced, priced * work["is_purchase"]
            aggs["priced"], aggs["priced_paid"] = ("priced", "sum"), ("priced_paid", "sum")
    groups = work.groupby("customer_id", sort=True, observed=True)  # ngroup numbers observed ids only
    a = groups.agg(**aggs)
    codes = _group_codes(groups)
    funnel = _counted(codes, len(a), series_values(et), len(EVENT_TYPES))  # views, carts, removals, purchases
    for i, name in enumerate(("views", "carts", "removals", "purchases")):
        a[name] = funnel[i]
    for name, values in _row_counts(f, codes, len(a), config, top).items():
        a[name] = values

    # session level: one row per (customer, session), then per customer
    sess = (
        work.assign(session=f["session"])
        .groupby(["customer_id", "session"], sort=False)
        .agg(start=("ts", "min"), end=("ts", "max"), has_cart=("is_cart", "max"), has_purchase=("is_purchase", "max"))
        .reset_index()
    )
    sess["minutes"] = (sess["end"] - sess["start"]) / 60.0
    sess["abandoned"] = ((sess["has_cart"] > 0) & (sess["has_purchase"] == 0)).astype("int32")
    s = sess.groupby("customer_id", sort=True).agg(
        sessions=("start", "size"),
        minutes=("minutes", "sum"),
        cart_sessions=("has_cart", "sum"),
        abandoned=("abandoned", "sum"),
        orders=("has_purchase", "sum"),
    )
    # cuDF keeps the left frame's row order in a join only in pandas-compatible mode (else
    # hash order): customer_id order is made explicit (a no-op copy on pandas, which keeps it)
    a = a.join(s, how="left").sort_index()
    if brands:
        distinct = f.loc[f["brand"] >= 0, ["customer_id", "brand"]].drop_duplicates().groupby("customer_id").size()
        a["brands"] = distinct.reindex(a.index).fillna(0)
    return a


def _put_event_features(b: "_Builder", a: Any, data: CleanedData, config: FeatureConfig, spec: FeatureSpec | None,
                        top: Any, ref: int) -> None:
    """Every event feature of the configured groups, from the aggregates ``a``."""
    groups_on = set(config.groups)
    if "rfm" in groups_on:
        _put_rfm(b, a, ref, config, spec)
    if "funnel" in groups_on:
        b.put("views", a["views"], "funnel")
        b.put("carts", a["carts"], "funnel")
        b.put("removals", a["removals"], "funnel")
        b.put("purchases", a["purchases"], "funnel")
        b.put("view_to_cart", _safe_div(a["carts"], a["views"], 1.0), "funnel", True)
        if _version(spec) >= 2:  # a purchase was carted, whether or not the log says so
            carted = a["carts"].where(a["carts"] >= a["purchases"], a["purchases"])
            b.put("cart_to_purchase", _safe_div(a["purchases"], carted, 1.0), "funnel", True)
        else:
            b.put("cart_to_purchase", _safe_div(a["purchases"], a["carts"], 1.0), "funnel", True)
        b.put("cart_abandonment", _safe_div(a["abandoned"], a["cart_sessions"], 1.0), "funnel", True)
    if "sessions" in groups_on:
        b.put("sessions", a["sessions"], "sessions")
        b.put("events_per_session", _safe_div(a["events"], a["sessions"]), "sessions")
        b.put("session_minutes", _safe_div(a["minutes"], a["sessions"]), "sessions")
    if "time" in groups_on:
        _put_time(b, a, "events", data, spec)
    _put_categories(b, a, data, top, "events", spec)
    if "brands" in a.columns:
        b.put("brands", a["brands"], "category")
    if "price" in groups_on:
        b.put("avg_price_viewed", _safe_div(a["view_price_sum"], a["views"]), "price")
        b.put("avg_price_paid", _safe_div(a["revenue"], a["purchases"]), "price")
        logged = _version(spec) >= 2
        paid = (a["priced_paid"] if logged else a["purchases"]) > 0
        idx_paid = _price_level(a["ratio_paid_sum"], a["priced_paid"] if logged else a["purchases"], logged)
        idx_all = _price_level(a["ratio_sum"], a["priced"] if logged else a["events"], logged)
        b.put("price_index", idx_paid.where(paid, idx_all), "price")


def _order_features(data: CleanedData, config: FeatureConfig, spec: FeatureSpec | None, ref: int) -> CustomerFeatures:
    f = data.frame
    groups_on = set(config.groups)
    top = _indicator_codes(f, data, config, spec)
    use_price_index = "price" in groups_on and data.price_group is not None
    med, medians = _price_medians(f, data, spec) if use_price_index else (None, None)

    def aggregate(rows):
        return _order_part(rows, config, top, med, _version(spec) >= 2)

    used = ("customer_id", "ts", "amount", "quantity", "price", "order", "main_cat", "price_key")
    a = _by_customer_parts(f, aggregate, used)
    b = _Builder(a)
    if "rfm" in groups_on:
        _put_rfm(b, a, ref, config, spec)
        if spec.wants("items_per_order") if spec is not None else bool((f["quantity"] != 1.0).any()):
            b.put("items_per_order", _safe_div(a["items"], a["orders"]), "rfm")
    if "time" in groups_on:
        _put_time(b, a, "lines", data, spec)
    _put_categories(b, a, data, top, "lines", spec)
    if "price" in groups_on:
        # a unit price other than the line amount exists only with quantities or unit prices
        if spec.wants("avg_unit_price") if spec is not None else bool((f["price"] != f["amount"]).any()):
            b.put("avg_unit_price", _safe_div(a["unit_price_sum"], a["lines"]), "price")
        if use_price_index:
            logged = _version(spec) >= 2
            b.put("price_index", _price_level(a["ratio_sum"], a["priced"] if logged else a["lines"], logged), "price")
    return b.done(ref, medians)


def _order_part(f, config: FeatureConfig, top: list[int], med: Any, logged: bool = True) -> Any:
    """Per-customer aggregates of the order lines ``f`` (every line of each of their customers)."""
    work = f[["customer_id", "ts", "amount", "quantity"]].copy()
    aggs: dict[str, tuple[str, str]] = {
        "first_ts": ("ts", "min"),
        "last_ts": ("ts", "max"),
        "lines": ("ts", "size"),
        "revenue": ("amount", "sum"),
        "items": ("quantity", "sum"),
    }
    if "price" in set(config.groups):
        work["unit_price"] = f["price"]
        aggs["unit_price_sum"] = ("unit_price", "sum")
        if med is not None:
            work["ratio"], priced = _price_ratio(f, med, logged)
            aggs["ratio_sum"] = ("ratio", "sum")
            if priced is not None:
                work["priced"] = priced
                aggs["priced"] = ("priced", "sum")
    groups = work.groupby("customer_id", sort=True, observed=True)  # ngroup numbers observed ids only
    a = groups.agg(**aggs)
    for name, values in _row_counts(f, _group_codes(groups), len(a), config, top).items():
        a[name] = values
    a["orders"] = f[["customer_id", "order"]].drop_duplicates().groupby("customer_id", sort=True).size()
    return a


def _spend_rate(revenue, first_ts, ref: int, config: FeatureConfig):
    """Spend per day since first seen (over at least 30 days) times the horizon."""
    days = ((ref - first_ts) / _DAY).clip(lower=_MIN_CLV_DAYS)
    return revenue / days * config.clv_horizon_days


def category_columns(categories: list[str]) -> dict[str, str]:
    """``cat_*`` column -> main category, named as :func:`customer_features` names them."""
    taken: dict[str, str] = {}
    for category in categories:
        taken[_category_column(category, taken)] = category
    return taken


def _category_column(category: str, taken: Mapping[str, Any]) -> str:
    name = "cat_" + _slug(category)
    n = 2
    while name in taken:  # "auto-moto" and "auto moto" both slug to auto_moto
        name = f"cat_{_slug(category)}_{n}"
        n += 1
    return name


def _slug(name: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")
    return out or "unnamed"
