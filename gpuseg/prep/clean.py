"""Cleaning: drop duplicates and bad rows (counted per reason), fence price outliers, fill gaps.

The result is the canonical frame that :mod:`gpuseg.prep.features` aggregates, the same on
pandas and cuDF:

==============  ========================================================================
customer_id     the customer (``user_id`` / ``customer_id``)
ts              event time, int64 seconds since the Unix epoch (UTC)
etype           events: 0 view, 1 cart, 2 remove_from_cart, 3 purchase (int8)
session         events: int64 session code (``user_session``, or a 30-minute inactivity gap)
price           events: item price; orders: unit price (``amount / quantity``)
amount          orders: order-line value
quantity        orders: items (1 where absent)
order           orders: int64 order code (``order_id``, or one order per row)
main_cat        int32 index into ``main_categories`` (first token of category_code), -1 none
brand           events: int32 brand code, -1 unknown
price_key       int64 key of the price-comparison group (category_id, category, product)
product_id      where present
==============  ========================================================================

Every dropped row is counted once, under the first reason that applies, in this order:
``duplicate``, ``missing_customer_id``, ``bad_timestamp``, ``unknown_event_type``,
``bad_price`` (missing, non-numeric, negative or infinite), ``bad_quantity``,
``missing_session``, ``price_outlier``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import Backend, index_values, series_values
from ..config import CleanConfig
from ..errors import DataError
from ..io.readers import LoadedData
from ..io.schemas import EVENT_TYPES

__all__ = ["CleanedData", "clean", "DROP_REASONS", "SESSION_GAP_SECONDS"]

DROP_REASONS = (
    "malformed_row",
    "duplicate",
    "missing_customer_id",
    "bad_timestamp",
    "unknown_event_type",
    "bad_price",
    "bad_quantity",
    "missing_session",
    "price_outlier",
)

#: Inactivity that starts a new session when the input has no session column.
SESSION_GAP_SECONDS = 30 * 60

_UNKNOWN = "unknown"


@dataclass
class CleanedData:
    """Output of :func:`clean`.

    Attributes
    ----------
    frame : DataFrame
        Canonical columns (module docstring), on the input's device.
    kind : {"events", "orders"}
    rows_in, rows_out : int
    dropped : dict
        Rows dropped per reason (every reason listed, zeros included).
    filled : dict
        Missing values filled per column.
    main_categories : list of str
        Names behind ``main_cat`` codes.
    price_group : str or None
        The column prices are compared within (``price_index``).
    outlier_fence : tuple of float or None
        Accepted price range when the IQR fence is on.
    sessions_derived : bool
        True when sessions came from inactivity gaps.
    """

    frame: Any
    kind: str
    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    filled: dict[str, int] = field(default_factory=dict)
    main_categories: list[str] = field(default_factory=list)
    price_group: str | None = None
    outlier_fence: tuple[float, float] | None = None
    sessions_derived: bool = False
    reference_time: int = 0
    columns: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Plain-data summary for metrics.json."""
        return {
            "rows_in": self.rows_in,
            "rows_used": self.rows_out,
            "rows_dropped": dict(self.dropped),
            "rows_dropped_total": int(sum(self.dropped.values())),
            "values_filled": dict(self.filled),
            "price_outlier_fence": list(self.outlier_fence) if self.outlier_fence else None,
            "price_group": self.price_group,
            "sessions_derived_from_gaps": self.sessions_derived,
            "main_categories": len(self.main_categories),
        }


def clean(data: LoadedData, config: CleanConfig, backend: Backend) -> CleanedData:
    """Clean a loaded frame.

    Parameters
    ----------
    data : LoadedData
        From :func:`gpuseg.io.readers.load`.
    config : CleanConfig
    backend : Backend

    Returns
    -------
    CleanedData

    Raises
    ------
    DataError
        No row survives cleaning.
    """
    frame = data.frame
    kind = data.schema.name
    rows_in = len(frame)
    dropped = dict.fromkeys(DROP_REASONS, 0)
    dropped["malformed_row"] = data.rows_malformed

    if config.drop_duplicates:
        before = len(frame)
        frame = _drop_duplicates(frame, backend)
        dropped["duplicate"] = before - len(frame)

    cols: dict[str, Any] = {}
    bad = _false(frame)

    def drop(reason: str, mask) -> None:
        nonlocal bad
        mask = mask.fillna(True) if hasattr(mask, "fillna") else mask
        new = mask & ~bad
        dropped[reason] += int(new.sum())
        bad = bad | mask

    cust = data.schema.customer
    drop("missing_customer_id", frame[cust].isna())
    drop("bad_timestamp", frame[data.schema.time].isna())

    if kind == "events":
        etype = _event_type_codes(frame["event_type"], backend)
        drop("unknown_event_type", etype < 0)
        cols["etype"] = etype.astype("int8")
        price = frame["price"]
        drop("bad_price", price.isna() | (price < 0) | ~_isfinite(price, backend))
        cols["price"] = price
    else:
        amount, qty, unit = _order_values(frame)
        drop("bad_price", amount.isna() | (amount < 0) | ~_isfinite(amount, backend))
        if qty is not None:
            drop("bad_quantity", qty.isna() | (qty <= 0))
        cols["amount"] = amount
        cols["quantity"] = qty.fillna(1.0) if qty is not None else None
        cols["price"] = unit

    if kind == "events" and "user_session" in frame.columns:
        drop("missing_session", frame["user_session"].isna())

    fence = None
    if config.price_outliers:
        price = cols["price"]
        ok = price[~bad]
        values = ok.clip(lower=0)
        if config.iqr_on_log:
            values = _log1p(values, backend)
        q1, q3 = float(values.quantile(0.25)), float(values.quantile(0.75))
        iqr = q3 - q1
        lo, hi = q1 - config.iqr_factor * iqr, q3 + config.iqr_factor * iqr
        scaled = _log1p(price.clip(lower=0), backend) if config.iqr_on_log else price
        drop("price_outlier", (scaled < lo) | (scaled > hi))
        if config.iqr_on_log:
            fence = (float(np.expm1(max(lo, 0.0))), float(np.expm1(hi)))
        else:
            fence = (max(lo, 0.0), hi)

    keep = ~bad
    rows_out = int(keep.sum())
    if rows_out == 0:
        worst = max(dropped, key=dropped.get)
        raise DataError(
            f"no usable rows: all {rows_in} rows were dropped while cleaning (mostly {worst}: {dropped[worst]})"
        )

    frame = frame[keep].reset_index(drop=True)
    cols = {k: (v[keep].reset_index(drop=True) if v is not None else None) for k, v in cols.items()}
    result = frame[[cust]].rename(columns={cust: "customer_id"})
    result["customer_id"] = _integral_ids(result["customer_id"])
    result["ts"] = frame[data.schema.time].astype("int64")

    filled: dict[str, int] = {}
    main_categories: list[str] = []
    price_group = None
    sessions_derived = False

    if kind == "events":
        result["etype"] = cols["etype"]
        result["price"] = cols["price"].astype("float64")
        if "user_session" in frame.columns:
            result["session"] = frame["user_session"].cat.codes.astype("int64")
        else:
            result["session"] = 0
            sessions_derived = True
        if "category_code" in frame.columns:
            result["main_cat"], main_categories, filled["category_code"] = _main_category(
                frame["category_code"], config.fill_missing, backend
            )
        else:
            result["main_cat"] = -1
        if "brand" in frame.columns:
            result["brand"], filled["brand"] = _brand_codes(frame["brand"], config.fill_missing)
        else:
            result["brand"] = -1
        for col in ("category_id", "category_code", "product_id"):
            if col in frame.columns:
                price_group = col
                break
    else:
        result["amount"] = cols["amount"].astype("float64")
        result["quantity"] = cols["quantity"].astype("float64") if cols["quantity"] is not None else 1.0
        result["price"] = cols["price"].astype("float64")
        if "order_id" in frame.columns:
            result["order"] = _codes(frame["order_id"])
        else:
            result["order"] = _like(result["ts"], backend.xp.arange(len(result), dtype=np.int64))
        if "category" in frame.columns:
            result["main_cat"], main_categories, filled["category"] = _main_category(
                frame["category"], config.fill_missing, backend
            )
        else:
            result["main_cat"] = -1
        for col in ("category", "product_id"):
            if col in frame.columns:
                price_group = col
                break

    if price_group is not None:
        result["price_key"] = _codes(frame[price_group])
    else:
        result["price_key"] = 0
    if "product_id" in frame.columns:
        result["product_id"] = frame["product_id"]

    if sessions_derived:
        result = _sessions_from_gaps(result)

    return CleanedData(
        frame=result,
        kind=kind,
        rows_in=rows_in + data.rows_malformed,
        rows_out=rows_out,
        dropped=dropped,
        filled=filled,
        main_categories=main_categories,
        price_group=price_group,
        outlier_fence=fence,
        sessions_derived=sessions_derived,
        reference_time=int(result["ts"].max()),
        columns=tuple(result.columns),
    )


# --- helpers -----------------------------------------------------------------------------


def _drop_duplicates(frame, backend: Backend):
    """Exact duplicate rows removed (first kept)."""
    if backend.is_gpu:
        return frame.drop_duplicates(ignore_index=True)
    import pandas as pd

    # pandas factorizes every column; one 64-bit row hash is twice as fast. Rows whose hash
    # repeats are then compared exactly, so a hash collision never drops a distinct row.
    h = pd.util.hash_pandas_object(frame, index=False)
    candidates = h.duplicated(keep=False)
    if not bool(candidates.any()):
        return frame
    dup = frame[candidates].duplicated()
    keep = pd.Series(True, index=frame.index)
    keep[dup[dup].index] = False
    return frame[keep].reset_index(drop=True)


def _false(frame):
    return frame.iloc[:, 0].isna() & False


def _isfinite(s, backend: Backend):
    # NaN counts as "finite" here so that the missing-value reason, checked first, names it
    return (s.abs() != float("inf")) | s.isna()


def _like(s, values):
    """A Series of ``values`` (an array on ``s``'s device) with ``s``'s index."""
    return type(s)(values, index=s.index)


def _log1p(s, backend: Backend):
    return _like(s, backend.xp.log1p(series_values(s)))


def _lookup(codes, table: list[int], backend: Backend, dtype: str):
    """Map category codes (-1 = missing) through a small host table; missing -> table[-1]."""
    xp = backend.xp
    lut = xp.asarray(np.asarray(table, dtype=np.int64))
    # code -1 picks the last entry: the value for missing
    return _like(codes, lut[series_values(codes.astype("int64"))]).astype(dtype)


def _event_type_codes(s, backend: Backend):
    if str(s.dtype) != "category":
        s = s.astype("category")
    cats = [str(c).strip().lower() for c in index_values(s.cat.categories)]
    table = [EVENT_TYPES.index(c) if c in EVENT_TYPES else -1 for c in cats] + [-1]
    return _lookup(s.cat.codes, table, backend, "int64")


def _order_values(frame):
    qty = frame["quantity"] if "quantity" in frame.columns else None
    if "amount" in frame.columns:
        amount = frame["amount"]
        if qty is not None:
            unit = (amount / qty.where(qty > 0)).fillna(amount)
        elif "unit_price" in frame.columns:
            unit = frame["unit_price"].fillna(amount)
        else:
            unit = amount
    else:  # amount = quantity * unit_price (UCI Online Retail)
        unit = frame["unit_price"]
        amount = qty * unit
    return amount, qty, unit


def _main_category(s, fill: str, backend: Backend):
    """Main category codes from a dotted taxonomy column, with missing values filled."""
    if str(s.dtype) != "category":
        s = s.astype("category")
    codes = s.cat.codes
    missing = int((codes < 0).sum())
    cats = [str(c) for c in index_values(s.cat.categories)]
    mains = [c.split(".", 1)[0].strip().lower() or _UNKNOWN for c in cats]
    names = sorted(set(mains) - {_UNKNOWN})
    index = {n: i for i, n in enumerate(names)}
    table = [index.get(m, -1) for m in mains]
    fill_value = -1
    if fill == "mode" and missing and len(cats):
        top = int(codes[codes >= 0].value_counts().index[0]) if missing < len(codes) else -1
        fill_value = table[top] if top >= 0 else -1
    return _lookup(codes, table + [fill_value], backend, "int32"), names, missing


def _brand_codes(s, fill: str):
    if str(s.dtype) != "category":
        s = s.astype("category")
    codes = s.cat.codes.astype("int32")
    missing = int((codes < 0).sum())
    if fill == "mode" and 0 < missing < len(codes):
        top = int(codes[codes >= 0].value_counts().index[0])
        codes = codes.where(codes >= 0, top)
    return codes, missing


def _codes(s):
    """Integer codes for any key column (ids stay as they are when already integral)."""
    if s.dtype.kind in "iu":
        return s.astype("int64")
    if str(s.dtype) != "category":
        s = s.astype("category")
    return s.cat.codes.astype("int64")


def _integral_ids(s):
    """Float ids such as 17850.0 (pandas reads integer ids with gaps as floats) -> int64."""
    if s.dtype.kind == "f":
        if bool(((s % 1) == 0).all()):
            return s.astype("int64")
    return s


def _sessions_from_gaps(frame):
    """Derive sessions: a new one after SESSION_GAP_SECONDS of inactivity per customer."""
    frame = frame.sort_values(["customer_id", "ts"], ignore_index=True)
    cust = frame["customer_id"]
    ts = frame["ts"]
    new = (cust != cust.shift(1)) | ((ts - ts.shift(1)) > SESSION_GAP_SECONDS)
    frame["session"] = new.fillna(True).astype("int64").cumsum()
    return frame
