"""Cleaning: drop duplicates and bad rows (counted per reason), cap price outliers, fill gaps.

The result is the canonical frame that :mod:`gpuseg.prep.features` aggregates, the same on
pandas and cuDF:

==============  ========================================================================
customer_id     the customer (``user_id`` / ``customer_id``)
ts              event time, int64 seconds since the Unix epoch (UTC)
etype           events: 0 view, 1 cart, 2 remove_from_cart, 3 purchase (int8)
session         events: int64 session code (``user_session``, or a 30-minute inactivity gap)
price           events: item price; orders: unit price (``amount / quantity``)
amount          orders: order-line value
spent           with the price fence capping (the default) only: the order-line value (orders)
                or item price (events) before capping, what lifetime value is fitted on
quantity        orders: items (1 where absent)
order           orders: int64 order code (``order_id``, or one order per row)
main_cat        int32 index into ``main_categories`` (first token of category_code), -1 none
brand           events: int32 index into ``brand_names``, -1 unknown
price_key       int64 key of the price-comparison group (category_id, category, product)
product         int64 product: the ``product_id`` itself when ids are plain integers, else an
                index into ``product_names``; -1 none (or no ``product_id`` column)
==============  ========================================================================

Every dropped row is counted once, under the first reason that applies, in this order:
``duplicate`` (an exact copy of an earlier row, only where an order id or a session makes
the two provably one record: an order log without order ids keeps repeated rows, which are
separate purchases), ``missing_customer_id``, ``bad_timestamp``, ``implausible_time`` (dated
before 1990-01-01 or more than a day after now: placeholders such as 1900-01-01 or
2100-01-01 that would set the reference time), ``not_completed`` (orders whose ``status``
says they were never paid or were undone: :data:`NOT_COMPLETED`), ``other_currency`` (orders
in another currency than ``[clean] currency``), ``unknown_event_type``, ``returned`` (orders:
a negative quantity, or a negative amount on a log without quantities: returns and
cancellations, left out rather than subtracted from spend), ``bad_quantity`` (orders:
missing, zero or infinite), ``bad_price``
(price or amount missing, non-numeric, negative or infinite), ``missing_session`` (none
since 2026-12-07: a row without a session gets one cut at inactivity gaps, counted in
``filled["user_session"]``), ``price_outlier`` (outside the IQR fence, with ``price_outliers = "drop"`` only; by default
prices above the fence are capped at its top, and order amounts with them, so the largest
orders stay in, and prices below it stay as they are; no fence when the prices have no
spread).

No customer disappears without a record: :attr:`CleanedData.excluded` lists every customer
of the input none of whose rows survived, with the reason most of their rows were dropped
for, and :attr:`CleanedData.customers_touched` counts the customers each rule touched
(customers known only from malformed rows, which the reader could not split into columns,
are not known to cleaning).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import (Backend, array_namespace, index_values, nullable_codes, rows_where, series_like,
                       series_values, to_host)
from ..config import CleanConfig
from ..errors import DataError
from ..io.readers import LoadedData
from ..io.schemas import EVENT_TYPES
from .._threads import in_threads

__all__ = ["CleanedData", "NoRowsError", "ProductLabels", "clean", "describe_cleaning", "no_exclusions",
           "DROP_REASONS", "SESSION_GAP_SECONDS"]


class NoRowsError(DataError):
    """Every row was dropped while cleaning; ``rows_in``, ``dropped`` and ``excluded`` say why."""

    def __init__(self, message: str, rows_in: int, dropped: dict[str, int], excluded: Any = None) -> None:
        super().__init__(message)
        self.rows_in = rows_in
        self.dropped = dropped
        self.excluded = excluded

DROP_REASONS = (
    "malformed_row",
    "duplicate",
    "missing_customer_id",
    "bad_timestamp",
    "implausible_time",
    "not_completed",
    "other_currency",
    "unknown_event_type",
    "returned",
    "bad_quantity",
    "bad_price",
    "missing_session",
    "price_outlier",
)

#: Rows dated before this are dropped as ``implausible_time`` (1900-01-01 placeholders, epoch zeros).
EARLIEST = np.datetime64("1990-01-01T00:00:00", "s")


def _latest() -> np.datetime64:
    """Rows dated after this are dropped as ``implausible_time``: nothing happens a day
    after now (2100-01-01 placeholders would otherwise set the reference time)."""
    return np.datetime64(int(time.time()) + 86_400, "s")


#: The drop reason of a column that could not be read (its example goes on the console).
_REASON_OF_COLUMN = {"event_time": "bad_timestamp", "timestamp": "bad_timestamp", "price": "bad_price",
                     "amount": "bad_price", "unit_price": "bad_price", "quantity": "bad_quantity"}

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
    product_labels : Mapping
        Product code -> a readable name, where the data have one: the most frequent
        ``description`` of the product (orders), or its ``brand`` and the last part of its
        ``category_code`` (events, "samsung smartphone"). Empty otherwise. From
        :func:`clean` a :class:`ProductLabels`, which names products when asked
        (:meth:`ProductLabels.for_products`: only the few a report lists); a plain dict
        from the Dask path.
    product_names : list of str or None
        Original ids behind ``product`` codes; None when the codes are the ids themselves
        (plain integer ids, as REES46's) or there is no ``product_id`` column.
    brand_names : list of str
        Names behind ``brand`` codes (events); empty for orders.
    price_group : str or None
        The column prices are compared within (``price_index``).
    outlier_fence : tuple of float or None
        Accepted price range when the IQR fence is on.
    price_outliers : {"cap", "drop", "off", "cap_both"}
        What was done with prices outside the fence ("cap": those above it capped at its top;
        "cap_both": also those below it raised, as a model saved before 2026-12-07 did).
    capped : dict
        Values capped at the fence per column (``price``; orders also ``amount``).
    customers_in : int
        Distinct customer ids in the rows cleaning saw.
    customers_touched : dict
        Per drop reason (and ``capped``), the distinct customers with a row it applied to.
    excluded : DataFrame
        ``customer_id, reason, rows``: every customer none of whose rows survived, the
        reason most of their rows were dropped for and how many rows they had (host pandas).
    sessions_derived : bool
        True when sessions came from inactivity gaps.
    date_only : bool
        Every timestamp falls on midnight UTC: the data carry dates, not times of day.
    """

    frame: Any
    kind: str
    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    filled: dict[str, int] = field(default_factory=dict)
    main_categories: list[str] = field(default_factory=list)
    product_names: list[str] | None = None
    product_labels: Mapping[int, str] = field(default_factory=dict)
    #: Drop reason -> one value of the input that it dropped (what the console shows).
    drop_examples: dict[str, str] = field(default_factory=dict)
    brand_names: list[str] = field(default_factory=list)
    price_group: str | None = None
    outlier_fence: tuple[float, float] | None = None
    price_outliers: str = "cap"
    capped: dict[str, int] = field(default_factory=dict)
    #: the spend of the capped purchases (order lines) before and after capping
    capped_spend: tuple[float, float] | None = None
    customers_in: int = 0
    customers_touched: dict[str, int] = field(default_factory=dict)
    excluded: Any = None
    sessions_derived: bool = False
    #: rows without a session dropped, as a model saved before 2026-12-07 cleaned them
    legacy_sessions: bool = False
    #: rows without a session in sessions of their own only (not joined to the customer's
    #: session beside them), as a model saved before that was added cleaned them
    sessions_apart: bool = False
    #: whether the reader joins a Time column to the Date (False: a model saved before that)
    join_time: bool = True
    #: whether an order log's ``status`` and ``currency`` were read (False: a model saved before
    #: 2026-12-08, or an event log)
    status_read: bool = False
    #: the one currency of the amounts, where the log has a currency column
    currency: str | None = None
    #: statuses kept as purchases that gpuseg does not know -> their rows (at most five)
    unknown_statuses: dict[str, int] = field(default_factory=dict)
    #: customer ids that are e-mail addresses read in lower case (False: a model saved before
    #: 2026-12-08), and how many ids that merged into another
    emails_folded: bool = True
    emails_merged: int = 0
    #: exact copies of rows kept because the event times are whole minutes (or dates)
    coarse_copies_kept: bool = False
    #: whether that rule applies (False: a model saved before 2026-12-08, which dropped them)
    coarse_copies_read: bool = True
    date_only: bool = False
    reference_time: int = 0
    columns: tuple[str, ...] = ()
    price_key_names: list[str] | None = None
    fill_values: dict[str, str | None] = field(default_factory=dict)
    source_columns: tuple[str, ...] = ()
    #: Every customer's purchase history (:func:`gpuseg.segments.value.purchase_history`)
    #: when ``frame`` holds only some of the rows (the Dask path computes it on the workers).
    purchases: Any = None

    @property
    def product_label_counts(self) -> Any:
        """``product, name, n`` behind ``product_labels`` (host pandas; the Dask path sums
        the buckets'), None when there is no ``product_id`` column."""
        labels = self.product_labels
        return labels.counts() if isinstance(labels, ProductLabels) else None

    def state(self) -> dict[str, Any]:
        """What :func:`clean` needs to treat new data as it treated these (``fitted=``):
        the price fence, the values that filled gaps and the price-comparison column
        (plain JSON)."""
        return {
            "outlier_fence": list(self.outlier_fence) if self.outlier_fence else None,
            # a legacy cap is saved as a model saved before 2026-12-07 has it: "cap" alone
            "price_outliers": "cap" if self.price_outliers == LEGACY_CAP else self.price_outliers,
            **({"cap_top_only": True} if self.price_outliers == "cap" else {}),
            # what a model saved before 2026-12-07 lacks: rows without a session kept (not
            # dropped), and a Time column joined to the Date by the reader (new data are read
            # and cleaned as the model's training data were)
            **({} if self.legacy_sessions else {"sessions_kept": True}),
            **({} if self.legacy_sessions or self.sessions_apart else {"sessions_joined": True}),
            "join_time": self.join_time,
            "time_layouts": True,  # a model saved before 2026-12-08 lacks it: one layout of times
            # what a model saved before 2026-12-08 lacks: order statuses and currencies read
            **({"status_read": True, "currency": self.currency} if self.status_read else {}),
            **({"emails_folded": True} if self.emails_folded else {}),
            **({"coarse_times_keep_copies": True} if self.coarse_copies_read else {}),
            "fill": dict(self.fill_values),
            "price_group": self.price_group,
        }

    def summary(self) -> dict[str, Any]:
        """Plain-data summary for metrics.json."""
        return {
            "rows_in": self.rows_in,
            "rows_used": self.rows_out,
            "rows_dropped": dict(self.dropped),
            "rows_dropped_total": int(sum(self.dropped.values())),
            "values_filled": dict(self.filled),
            "values_capped": dict(self.capped),
            **({"spend_capped": {"before": self.capped_spend[0], "after": self.capped_spend[1]}}
               if self.capped_spend else {}),
            "customers_in": self.customers_in,
            "customers_excluded": 0 if self.excluded is None else len(self.excluded),
            "customers_touched": dict(self.customers_touched),
            "drop_examples": dict(self.drop_examples),
            "price_outlier_fence": list(self.outlier_fence) if self.outlier_fence else None,
            "price_outliers": self.price_outliers,
            "price_group": self.price_group,
            "sessions_derived_from_gaps": self.sessions_derived,
            "date_only": self.date_only,
            "main_categories": len(self.main_categories),
            **({"currency": self.currency} if self.currency else {}),
            **({"unknown_statuses": dict(self.unknown_statuses)} if self.unknown_statuses else {}),
            **({"emails_merged": self.emails_merged} if self.emails_merged else {}),
            **({"exact_copies_kept": "times in whole minutes"} if self.coarse_copies_kept else {}),
        }


def describe_cleaning(summary: dict[str, Any], listed_in: str = "excluded.csv") -> str:
    """One line for the console from :meth:`CleanedData.summary`: rows kept and dropped,
    rows and customers per rule, values capped and the customers excluded (listed in
    ``listed_in``)."""
    touched = summary.get("customers_touched", {})
    examples = summary.get("drop_examples", {})
    dropped = dict(sorted(((r, n) for r, n in summary["rows_dropped"].items() if n), key=lambda rn: -rn[1]))
    rules = [f"{r} {_count(n, 'row')}" + (f" / {_count(touched[r], 'customer')}" if r in touched else "")
             + (f", e.g. {examples[r]!r}" if r in examples else "") for r, n in dropped.items()]
    text = f"{_count(summary['rows_used'], 'row')} kept, {sum(dropped.values()):,} dropped" + (
        f" ({'; '.join(rules)})" if rules else "")
    sessions = summary.get("values_filled", {}).get("user_session", 0)
    if sessions:
        text += (f"; {_count(sessions, 'row')} without a session joined to the customer's session within 30 minutes, "
                 "or in sessions cut at 30-minute gaps")
    text += _capped_note(summary)
    if summary.get("emails_merged"):
        text += (f"; customer e-mail addresses read in lower case ({_count(summary['emails_merged'], 'id')} "
                 "written in other case merged)")
    if summary.get("exact_copies_kept"):
        text += "; exact copies of rows kept (the times are whole minutes: they cannot prove two rows one event)"
    if summary["rows_dropped"].get("returned"):
        text += "; returns and cancellations are left out, not subtracted from spend"
    unknown = summary.get("unknown_statuses")
    if unknown:
        text += "; kept as paid, statuses gpuseg does not know: " + ", ".join(
            f"{s!r} {_count(n, 'row')}" for s, n in unknown.items())
    n_in, n_out = summary.get("customers_in", 0), summary.get("customers_excluded", 0)
    if n_in:
        text += f"; {n_in - n_out:,} of {_count(n_in, 'customer')} kept" + (
            f", {n_out:,} excluded ({listed_in} says why)" if n_out else "")
    return text


def _capped_note(summary: dict[str, Any]) -> str:
    """``"; 398 prices capped at the outlier fence (15 customers; the spend of those purchases
    1,234,567 -> 20,402; revenue shares count what was spent)"``, or ``""``."""
    capped = summary.get("values_capped", {}).get("price", 0)
    if not capped:
        return ""
    text = (f"; {_count(capped, 'price')} capped at the outlier fence "
            f"({_count(summary.get('customers_touched', {}).get('capped', 0), 'customer')}")
    spend = summary.get("spend_capped")
    if spend and spend["before"] > 0:
        text += (f"; the spend of those purchases {spend['before']:,.0f} -> {spend['after']:,.0f} in the features, "
                 "revenue shares and lifetime value count what was spent; [clean] price_outliers = \"off\" keeps "
                 "them as they are")
    return text + ")"


def _count(n: int, word: str) -> str:
    """``"1 row"``, ``"2,500 rows"``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def clean(data: LoadedData, config: CleanConfig, backend: Backend, fitted: dict[str, Any] | None = None) -> CleanedData:
    """Clean a loaded frame.

    Parameters
    ----------
    data : LoadedData
        From :func:`gpuseg.io.readers.load`.
    config : CleanConfig
    backend : Backend
    fitted : dict, optional
        :meth:`CleanedData.state` of the data a model was fitted on: new data are then
        fenced with that price fence and gaps filled with those values, not with
        statistics of their own (``gpuseg assign``).

    Returns
    -------
    CleanedData

    Raises
    ------
    DataError
        No row survives cleaning.
    """
    frame = _with_plain_ids(_with_trimmed_ids(data.frame, data.schema.customer), data.schema.customer)
    fold = fitted is None or bool(fitted.get("emails_folded"))  # not as a model saved before 2026-12-08 read them
    frame, emails_merged = _with_folded_emails(frame, data.schema.customer) if fold else (frame, 0)
    kind = data.schema.name
    customer = frame[data.schema.customer]
    who = _CustomerCodes(customer)

    # the row filters, in the order of the module docstring: each row counted under its first reason
    drops = _Drops.start(customer, data.rows_malformed)
    # a model saved before 2026-12-08 dropped exact copies whatever its clock's resolution
    coarse = _drop_duplicates(frame, data.schema, config, backend, drops,
                              keep_coarse=fitted is None or bool(fitted.get("coarse_times_keep_copies")))
    _drop_missing_ids_and_bad_times(frame, data.schema, customer, drops)
    read_status = kind == "orders" and (fitted is None or bool(fitted.get("status_read")))
    unknown_statuses = _drop_not_completed(frame, drops, backend) if read_status else {}
    currency = _keep_one_currency(frame, config, fitted, drops, backend) if read_status else None
    cols = _event_values(frame, backend, drops) if kind == "events" else _order_line_values(frame, drops, read_status)
    legacy_sessions = fitted is not None and not fitted.get("sessions_kept")
    sessions_derived = _drop_missing_sessions(frame, kind, drops, legacy_sessions)
    outliers = _fence_prices(cols, kind, who, config, backend, fitted, drops)
    survivors = _survivors(data, customer, who, drops)  # raises NoRowsError when none is left

    # the canonical frame of the surviving rows, categories, brands and products coded
    keep = survivors.keep
    frame, cols = rows_where(frame[[c for c in frame.columns if c not in _READ_INTO_COLS]], keep, cols)
    result = _base_columns(frame, data.schema, cols)
    codes = _Codes()
    _code_main_category(result, frame, kind, config, backend, fitted, codes)
    if kind == "events":
        _event_columns(result, frame, cols, sessions_derived, config, fitted, codes)
    else:
        _order_columns(result, frame, cols, backend)
    _code_price_key(result, frame, kind, fitted, codes)
    _code_products(result, frame, kind, backend, codes)
    if sessions_derived:
        result = _sessions_from_gaps(result)
    apart = fitted is not None and not fitted.get("sessions_joined")  # a model saved before joining
    if kind == "events" and not sessions_derived and (
            filled := _fill_missing_sessions(result, frame["user_session"].isna(), join=not apart)):
        codes.filled["user_session"] = filled  # rows without a session among rows with one
    out = _cleaned_data(data, result, drops, outliers, survivors, codes, sessions_derived)
    out.legacy_sessions = legacy_sessions
    out.sessions_apart = apart
    out.join_time = fitted is None or bool(fitted.get("join_time"))
    out.status_read, out.currency, out.unknown_statuses = read_status, currency, unknown_statuses
    out.emails_folded, out.emails_merged = fold, emails_merged
    out.coarse_copies_kept = coarse
    out.coarse_copies_read = fitted is None or bool(fitted.get("coarse_times_keep_copies"))
    return out


class _CustomerCodes:
    """Every row's customer as a code (-1: missing id), taken once: the distinct customers
    of any set of rows are then one ``bincount`` of codes rather than another hash of the
    ids (three such passes took 0.6 s of clean at 10M rows)."""

    def __init__(self, customer) -> None:
        codes = nullable_codes(customer)
        self.codes = series_values(codes.fillna(-1).astype("int64"))
        self.size = int(self.codes.max()) + 1 if len(self.codes) else 0

    def _present(self, mask=None):
        """True per code with a row in ``mask`` (a boolean Series; None: every row)."""
        codes = self.codes if mask is None else self.codes[series_values(mask.fillna(False)).astype(bool)]
        return array_namespace(codes).bincount(codes[codes >= 0], minlength=self.size) > 0  # none: zeros

    def count(self, mask=None) -> int:
        """Distinct customers with a row in ``mask`` (None: every row)."""
        return int(self._present(mask).sum()) if self.size else 0

    def without(self, keep):
        """A boolean Series on the rows: True where the row's customer (an id) has no row in ``keep``."""
        xp = array_namespace(self.codes)
        if not self.size:
            return series_like(keep, xp.zeros(len(self.codes), dtype=bool))
        lost = (self.codes >= 0) & ~self._present(keep)[self.codes]  # code -1 reads the last entry: masked
        return series_like(keep, lost)


#: Input columns the row filters turned into ``cols`` (event codes, prices, amounts,
#: quantities): the surviving rows are taken from ``cols``, not a second time from the frame.
_READ_INTO_COLS = frozenset({"event_type", "price", "amount", "quantity", "unit_price"})


# --- the steps of clean() ----------------------------------------------------------------
# The row filters record what they drop in a _Drops; the later steps assume the rows they
# see have survived it.


@dataclass
class _Drops:
    """Rows dropped so far: each row is counted once, under the first reason that drops it."""

    #: rows per reason (every reason of DROP_REASONS, zeros included)
    dropped: dict[str, int]
    #: True for every row dropped so far
    bad: Any
    #: reason -> the rows it dropped (each row under its first reason), in the order the rules ran
    reasons: dict[str, Any] = field(default_factory=dict)
    #: reason -> one input value it dropped, where cleaning (not the reader) found it wanting
    examples: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, customer, rows_malformed: int) -> _Drops:
        """Nothing dropped yet but the rows the reader could not split into columns."""
        dropped = dict.fromkeys(DROP_REASONS, 0)
        dropped["malformed_row"] = rows_malformed
        return cls(dropped=dropped, bad=customer.isna() & False)

    def drop(self, reason: str, mask) -> None:
        """Drop the rows of ``mask`` (missing: dropped); counted under ``reason`` where no
        earlier rule dropped them."""
        mask = mask.fillna(True)
        new = mask & ~self.bad
        self.dropped[reason] += int(new.sum())
        self.reasons[reason] = new if reason not in self.reasons else self.reasons[reason] | new
        self.bad = self.bad | mask


def _drop_duplicates(frame, schema, config: CleanConfig, backend: Backend, drops: _Drops,
                     keep_coarse: bool = True) -> bool:
    """``duplicate``: exact copies of an earlier row, where an order id or a session proves
    the two one record (:func:`_record_key`). An event log whose times are all whole minutes
    (or dates) keeps them (``keep_coarse``): its clock cannot tell two purchases of one product
    in a minute from one purchase logged twice. Returns whether it kept them so."""
    record_key = _record_key(frame, schema.name)
    if not config.drop_duplicates or record_key is None:
        return False
    if keep_coarse and schema.name == "events" and _whole_minutes(frame[schema.time]):
        return True
    key = [c for c in (schema.customer, schema.time, "product_id") if c in frame.columns]
    drops.drop("duplicate", _duplicate_rows(frame, backend, key) & frame[record_key].notna())
    return False


def _whole_minutes(when) -> bool:
    """Every time present falls on a whole minute (a log of minutes or of dates)."""
    present = when[when.notna()]
    return len(present) > 0 and bool((present.dt.second == 0).all())


def _drop_missing_ids_and_bad_times(frame, schema, customer, drops: _Drops) -> None:
    """``missing_customer_id``, ``bad_timestamp`` (unreadable) and ``implausible_time``
    (before :data:`EARLIEST` or after :func:`_latest`)."""
    drops.drop("missing_customer_id", customer.isna())
    drops.drop("bad_timestamp", frame[schema.time].isna())
    when = frame[schema.time]
    drops.drop("implausible_time", (when < EARLIEST) | (when > _latest()))


#: Order statuses (lower case, letters and digits only: "on-hold" is "onhold") of orders that
#: were never paid or were undone: their rows are dropped as ``not_completed``.
NOT_COMPLETED = frozenset({
    "cancelled", "canceled", "cancel", "refunded", "refund", "fullyrefunded", "failed", "failure", "paymentfailed",
    "voided", "void", "declined", "rejected", "pending", "pendingpayment", "awaitingpayment", "unpaid", "onhold",
    "abandoned", "fraud", "draft", "checkoutdraft", "expired", "returned", "chargeback", "chargedback", "reversed",
})
#: Statuses of paid orders, kept without a remark. A status in neither set is kept as a
#: purchase and named on the console (``closed`` is a refund in some shop systems and an
#: archived order in others; ``authorized`` is paid for only once captured).
PAID = frozenset({
    "paid", "completed", "complete", "processing", "shipped", "delivered", "fulfilled", "partiallyrefunded",
    "partiallypaid", "partiallyshipped", "partiallyfulfilled", "captured", "settled", "success", "succeeded",
    "successful", "invoiced", "approved", "confirmed",
})


def _status_key(value: Any) -> str:
    """``"On-Hold"`` -> ``"onhold"``; WooCommerce's ``wc-`` prefix left out (``wc-refunded``)."""
    key = "".join(ch for ch in str(value).lower() if ch.isalnum())
    return key[2:] if str(value).lower().startswith("wc-") else key


def _drop_not_completed(frame, drops: _Drops, backend: Backend) -> dict[str, int]:
    """``not_completed``: order rows whose ``status`` is one of :data:`NOT_COMPLETED` (a
    missing status is kept). Returns the statuses kept that neither it nor :data:`PAID`
    knows, with their rows (at most five, most rows first), for the console."""
    if "status" not in frame.columns:
        return {}
    flag = _lookup_categories(frame["status"], lambda c: 1 if c in NOT_COMPLETED else (0 if c in PAID else 2), 0,
                              backend, normalise=_status_key)
    dropped = (flag == 1) & ~drops.bad
    drops.drop("not_completed", flag == 1)
    if bool(dropped.any()):
        drops.examples["not_completed"] = str(to_host(frame["status"][dropped].head(1)).iloc[0])[:40]
    unknown = to_host(frame["status"][(flag == 2) & ~drops.bad].astype("str").value_counts())
    return {str(k): int(n) for k, n in unknown[unknown > 0].head(5).items()}


def _keep_one_currency(frame, config: CleanConfig, fitted: dict[str, Any] | None, drops: _Drops,
                       backend: Backend) -> str | None:
    """The one currency of an order log's ``currency`` column (None without one). Where it
    holds several, the rows of all but ``[clean] currency`` (a saved model's: the currency it
    was fitted on) are dropped as ``other_currency`` (a blank currency is kept: the file's
    own); without that setting the run is refused, since amounts of several currencies cannot
    be added up. Worked on the column's categories, not on every row's text."""
    if "currency" not in frame.columns:
        return None
    s = frame["currency"] if str(frame["currency"].dtype) == "category" else frame["currency"].astype("category")
    names = sorted({_currency_key(c) for c in index_values(s.cat.categories)} - {""})
    idx = _lookup_categories(s, lambda c: names.index(c) if c in names else -1, -1, backend, normalise=_currency_key)
    n = to_host(idx[~drops.bad & (idx >= 0)].value_counts())
    counts = dict(sorted(((names[int(i)], int(c)) for i, c in n.items() if c > 0), key=lambda nc: (-nc[1], nc[0])))
    wanted = (fitted.get("currency") if fitted is not None else config.currency.strip().upper()) or None
    if wanted is None and len(counts) <= 1:
        return next(iter(counts), None)
    found = ", ".join(f"{c} {k:,} rows" for c, k in list(counts.items())[:6]) or "none"
    if wanted is None:
        how = (f"keep one with --currency {next(iter(counts))} (or [clean] currency)" if fitted is None
               else "keep the rows of one currency")
        raise DataError(f"the amounts are in {len(counts)} currencies ({found}): gpuseg adds amounts up as one "
                        f"currency; {how}, or convert the amounts to one currency first")
    if wanted not in counts:
        raise DataError(f"currency {wanted}: the currency column has no row in it (found: {found})")
    drops.drop("other_currency", (idx >= 0) & (idx != names.index(wanted)))
    return wanted


def _currency_key(value: Any) -> str:
    return str(value).strip().upper()


def _event_values(frame, backend: Backend, drops: _Drops) -> dict[str, Any]:
    """Events: ``etype`` codes and ``price``; drops ``unknown_event_type``, then ``bad_price``."""
    etype = _lookup_categories(
        frame["event_type"], lambda c: EVENT_TYPES.index(c) if c in EVENT_TYPES else -1, -1, backend,
        normalise=lambda c: str(c).strip().lower(),
    )
    unknown = etype < 0
    named = unknown.fillna(False) & frame["event_type"].notna() & ~drops.bad  # rows this rule drops
    drops.drop("unknown_event_type", unknown)
    if bool(named.any()):  # a type gpuseg does not know, for the console's example
        drops.examples["unknown_event_type"] = str(to_host(frame["event_type"][named].head(1)).iloc[0])[:40]
    cols = {"etype": etype.astype("int8"), "price": frame["price"]}
    drops.drop("bad_price", _not_a_price(frame["price"]))
    return cols


def _order_line_values(frame, drops: _Drops, returns: bool = True) -> dict[str, Any]:
    """Orders: ``amount``, ``quantity`` (None when absent) and unit ``price``; drops
    ``returned``, ``bad_quantity``, then ``bad_price``. ``returns`` False (a model saved
    before 2026-12-08): returns are counted as bad quantities or prices, as it counted them."""
    qty = frame["quantity"] if "quantity" in frame.columns else None
    amount, unit = _order_values(frame)
    if qty is not None:  # returns and cancellations: negative quantities, before their amounts
        if returns:
            drops.drop("returned", (qty < 0).fillna(False))
        drops.drop("bad_quantity", qty.isna() | (qty <= 0) | (qty == float("inf")))
    elif returns:  # a refund on a log of order totals
        drops.drop("returned", ((amount < 0) & (amount > -float("inf"))).fillna(False))
    drops.drop("bad_price", _not_a_price(amount))
    return {"amount": amount, "quantity": qty, "price": unit}


def _drop_missing_sessions(frame, kind: str, drops: _Drops, legacy: bool = False) -> bool:
    """True when every session is to come from inactivity gaps (events without any session
    value). Rows without a session among rows with one are kept (their sessions are cut at
    gaps: :func:`_fill_missing_sessions`); ``missing_session`` drops them only for a model
    saved before 2026-12-07 (``legacy``), which dropped them, purchases included."""
    derived = kind == "events" and not _has_values(frame, "user_session")
    if kind == "events" and not derived and legacy:
        drops.drop("missing_session", frame["user_session"].isna())
    return derived


@dataclass
class _Outliers:
    """What :func:`_fence_prices` did: the mode and fence, values capped per column and the
    customers capping touched (``{"capped": n}`` when it capped)."""

    mode: str
    fence: tuple[float, float] | None
    capped: dict[str, int] = field(default_factory=dict)
    touched: dict[str, int] = field(default_factory=dict)
    #: the spend of the capped purchases before and after capping
    spend: tuple[float, float] | None = None


#: The capping of a model saved before 2026-12-07: prices below the fence raised to its
#: bottom as well as those above it lowered to its top (the state's ``"cap"`` without
#: ``cap_top_only``).
LEGACY_CAP = "cap_both"


def _fence_prices(cols: dict[str, Any], kind: str, who: _CustomerCodes, config: CleanConfig, backend: Backend,
                  fitted: dict[str, Any] | None, drops: _Drops) -> _Outliers:
    """``price_outlier`` (mode "drop": below or above the fence), or prices above the fence
    capped at it in ``cols`` (order amounts with them; prices below it stay as they are),
    ``spent`` keeping the values before capping."""
    mode, fence = _outlier_fence(cols["price"], drops.bad, config, backend, fitted)
    out = _Outliers(mode, fence)
    if fence is None:
        return out
    if mode != "drop":  # what was spent, for lifetime value (features see capped values)
        cols["spent"] = cols["amount"] if kind == "orders" else cols["price"]
    price = cols["price"]
    if mode == "drop":
        drops.drop("price_outlier", (price < fence[0]) | (price > fence[1]))
        return out
    # only the top is capped: a cheap item or a small order is real, and raising it would invent
    # spend; a model saved before 2026-12-07 raised them to the bottom too (LEGACY_CAP), and new
    # data placed with it are cleaned as its training data were
    outside = price > fence[1]
    if mode == LEGACY_CAP:
        outside = outside | ((price < fence[0]) & (price > 0))
    outside = outside.fillna(False) & ~drops.bad
    out.capped, out.touched["capped"] = _cap(cols, outside, fence, who, both=mode == LEGACY_CAP)
    if out.capped:
        spent = outside if kind == "orders" else outside & (cols["etype"] == 3)  # events: purchases only
        value = "amount" if kind == "orders" else "price"
        out.spend = (float(cols["spent"][spent].sum()), float(cols[value][spent].sum()))
    return out


@dataclass
class _Survivors:
    """The rows every filter let through, and what became of the customers."""

    keep: Any
    rows_out: int
    customers_in: int
    #: per drop reason that dropped rows, the distinct customers it touched
    touched: dict[str, int]
    excluded: Any


def _survivors(data: LoadedData, customer, who: _CustomerCodes, drops: _Drops) -> _Survivors:
    """The surviving rows, the customers touched per reason and those excluded.

    Raises :class:`NoRowsError` when no row survives."""
    rows_in = len(data.frame)
    keep = ~drops.bad
    rows_out = int(keep.sum())
    customers_in = who.count()
    touched = {r: who.count(m) for r, m in drops.reasons.items() if drops.dropped[r]}
    excluded = _excluded(customer, who, keep, drops.reasons) if rows_out < rows_in else no_exclusions()
    if rows_out == 0:
        dropped = drops.dropped
        worst = max(dropped, key=dropped.get)
        raise NoRowsError(
            f"no usable rows: all {rows_in} rows were dropped while cleaning (mostly {worst}: {dropped[worst]})",
            rows_in + data.rows_malformed, dropped, excluded,
        )
    return _Survivors(keep=keep, rows_out=rows_out, customers_in=customers_in, touched=touched, excluded=excluded)


@dataclass
class _Codes:
    """What coding the surviving rows learnt: the names behind the codes and the gap fills."""

    filled: dict[str, int] = field(default_factory=dict)
    fill_values: dict[str, str | None] = field(default_factory=dict)
    main_categories: list[str] = field(default_factory=list)
    brand_names: list[str] = field(default_factory=list)
    price_group: str | None = None
    price_key_names: list[str] | None = None
    product_names: list[str] | None = None
    product_labels: Mapping[int, str] = field(default_factory=dict)


def _base_columns(frame, schema, cols: dict[str, Any]):
    """``customer_id``, ``ts``, ``price`` (and ``spent``) of the surviving rows."""
    result = frame[[schema.customer]].rename(columns={schema.customer: "customer_id"})
    result["customer_id"] = _plain_ids(result["customer_id"])
    result["ts"] = frame[schema.time].astype("int64")
    result["price"] = cols["price"].astype("float64")
    if "spent" in cols:
        result["spent"] = cols["spent"].astype("float64")
    return result


def _fitted_fill(fitted: dict[str, Any] | None, name: str) -> Any:
    """The value a fitted model filled ``name``'s gaps with (None: left as unknown), or
    :data:`_FIT` (compute it from these data) without a fitted model or such a value."""
    given = (fitted or {}).get("fill", {})
    return given.get(name, _FIT) if fitted else _FIT


def _code_main_category(result, frame, kind: str, config: CleanConfig, backend: Backend,
                        fitted: dict[str, Any] | None, codes: _Codes) -> None:
    """``main_cat`` from ``category_code`` (events) or ``category`` (orders), gaps filled; -1
    without the column."""
    category_col = "category_code" if kind == "events" else "category"
    if category_col in frame.columns:
        result["main_cat"], codes.main_categories, codes.filled[category_col], codes.fill_values["category"] = (
            _main_category(frame[category_col], config.fill_missing, backend, _fitted_fill(fitted, "category")))
    else:
        result["main_cat"] = -1


def _event_columns(result, frame, cols: dict[str, Any], sessions_derived: bool, config: CleanConfig,
                   fitted: dict[str, Any] | None, codes: _Codes) -> None:
    """Events: ``etype``, ``session`` (0 until derived from gaps) and ``brand`` (gaps
    filled; -1 without the column)."""
    result["etype"] = cols["etype"]
    result["session"] = 0 if sessions_derived else _key_codes(frame["user_session"])
    if "brand" in frame.columns:
        brands = _as_category(frame["brand"])
        codes.brand_names = [str(c) for c in index_values(brands.cat.categories)]
        result["brand"], codes.filled["brand"], codes.fill_values["brand"] = _brand_codes(
            brands, config.fill_missing, codes.brand_names, _fitted_fill(fitted, "brand"))
    else:
        result["brand"] = -1


def _order_columns(result, frame, cols: dict[str, Any], backend: Backend) -> None:
    """Orders: ``amount``, ``quantity`` (1 where absent) and ``order`` (a line without an
    order id, or every line without the column, an order of its own)."""
    result["amount"] = cols["amount"].astype("float64")
    result["quantity"] = cols["quantity"].astype("float64") if cols["quantity"] is not None else 1.0
    rows = series_like(result["ts"], backend.xp.arange(len(result), dtype=np.int64))
    if "order_id" in frame.columns:
        # a line without an order id is an order of its own
        code = _key_codes(frame["order_id"])
        result["order"] = code.where(frame["order_id"].notna(), -1 - rows)
    else:
        result["order"] = rows


def _code_price_key(result, frame, kind: str, fitted: dict[str, Any] | None, codes: _Codes) -> None:
    """``price_key``: codes of the price-comparison column, the first of the data's, or a
    fitted model's (0 when there is none)."""
    groups = ("category_id", "category_code", "product_id") if kind == "events" else ("category", "product_id")
    price_group = next((c for c in groups if c in frame.columns), None)
    if fitted is not None and "price_group" in fitted:  # the model's column, not the first one these data have
        price_group = fitted["price_group"] if fitted["price_group"] in frame.columns else None
    codes.price_group = price_group
    if price_group:
        result["price_key"], codes.price_key_names = _named_key_codes(frame[price_group])
    else:
        result["price_key"] = 0


def _code_products(result, frame, kind: str, backend: Backend, codes: _Codes) -> None:
    """``product`` codes (-1 without a ``product_id`` column) and their readable names."""
    if "product_id" in frame.columns:
        result["product"], codes.product_names = _product_codes(frame["product_id"], backend)
        codes.product_labels = ProductLabels(frame, result["product"], kind)  # named when a report asks
    else:
        result["product"] = -1


def _cleaned_data(data: LoadedData, result, drops: _Drops, outliers: _Outliers, survivors: _Survivors,
                  codes: _Codes, sessions_derived: bool) -> CleanedData:
    """The :class:`CleanedData` of the canonical frame ``result`` and the steps' records."""
    return CleanedData(
        frame=result,
        kind=data.schema.name,
        rows_in=len(data.frame) + data.rows_malformed,
        rows_out=survivors.rows_out,
        dropped=drops.dropped,
        filled=codes.filled,
        main_categories=codes.main_categories,
        product_names=codes.product_names,
        product_labels=codes.product_labels,
        drop_examples={**drops.examples, **examples_of_drops(data, drops.dropped)},
        brand_names=codes.brand_names,
        price_group=codes.price_group,
        outlier_fence=outliers.fence,
        price_outliers=outliers.mode,
        capped=outliers.capped,
        capped_spend=outliers.spend,
        customers_in=survivors.customers_in,
        customers_touched={**outliers.touched, **survivors.touched},
        excluded=survivors.excluded,
        sessions_derived=sessions_derived,
        date_only=bool(((result["ts"] % 86400) == 0).all()),
        reference_time=int(result["ts"].max()),
        columns=tuple(result.columns),
        price_key_names=codes.price_key_names,
        fill_values=codes.fill_values,
        source_columns=tuple(str(c) for c in data.frame.columns),
    )


# --- helpers -----------------------------------------------------------------------------


def _has_values(frame, column: str) -> bool:
    return column in frame.columns and int(frame[column].notna().sum()) > 0


def _record_key(frame, kind: str) -> str | None:
    """The column that makes two identical rows provably one record: the order id of an
    order log, the session of an event log; None when there is none (then a repeated row
    is a repeated purchase, and kept)."""
    column = "order_id" if kind == "orders" else "user_session"
    return column if _has_values(frame, column) else None


def _duplicate_rows(frame, backend: Backend, key: list[str] | None = None):
    """True for every exact copy of an earlier row (the first of each kept).

    On the CPU the copies are looked for among the rows whose ``key`` columns (a subset,
    such as the customer, the time and the product) repeat, first by a hash of those columns,
    then of the whole row, then by comparing the few rows left exactly."""
    if backend.is_gpu:
        return frame.duplicated()
    import pandas as pd

    # pandas factorizes every column; 64-bit row hashes are twice as fast, and hashing the
    # key first (3 of 9 columns at 10M events: 0.2 s against 0.6-0.75 s) leaves few rows
    # for the rest. A copy repeats its key and its hash, so every copy and its original
    # stay among the candidates; rows are finally compared exactly, so a hash collision
    # never drops a distinct row.
    passes = ([key] if key and len(key) < len(frame.columns) else []) + [None]  # None: whole rows
    rows = np.arange(len(frame))  # the candidates
    for columns in passes:
        if len(rows) == 0:
            break
        part = frame.take(rows) if len(rows) < len(frame) else frame
        rows = rows[_repeated(_row_hashes(part if columns is None else part[columns]))]
    mask = np.zeros(len(frame), dtype=bool)
    if len(rows):
        mask[rows[frame.take(rows).duplicated().to_numpy()]] = True
    return pd.Series(mask, index=frame.index, copy=False)


#: Rows per block of :func:`_row_hashes` and hashes per slice of :func:`_repeated`: the
#: blocks run in the run's threads, and a slice's hash table stays in the caches.
_HASH_BLOCK = 2_000_000
_HASH_SLICE = 600_000


def _row_hashes(frame) -> np.ndarray:
    """A 64-bit hash of every row (pandas' ``hash_pandas_object``), in row blocks: a row's
    hash depends on its own values only, so the blocks give the same hashes as the whole."""
    import pandas as pd

    n = len(frame)
    edges = list(range(0, n, _HASH_BLOCK)) + [n]

    def block(bounds: tuple[int, int]) -> np.ndarray:
        part = frame.iloc[bounds[0]:bounds[1]] if len(edges) > 2 else frame
        return pd.util.hash_pandas_object(part, index=False).to_numpy().astype(np.uint64, copy=False)

    parts = in_threads(block, list(zip(edges[:-1], edges[1:])), "gpuseg-clean")
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _repeated(h: np.ndarray) -> np.ndarray:
    """True for every 64-bit hash that occurs more than once. Equal hashes share their top
    bits, so a large array is checked in slices by those bits (one radix sort of the top 16
    bits at most), each with a hash table small enough for the caches (2.5x faster at 10M
    rows than one table), the slices in the run's threads."""
    import pandas as pd

    def duplicated(values: np.ndarray) -> np.ndarray:
        return pd.Series(values).duplicated(keep=False).to_numpy()

    bits = min(16, max(0, int(np.ceil(np.log2(max(len(h), 1) / _HASH_SLICE)))))
    if bits == 0:
        return duplicated(h)
    top = (h >> np.uint64(64 - bits)).astype(np.uint16)
    order = np.argsort(top, kind="stable")  # a radix sort for 16-bit keys
    bounds = np.searchsorted(top[order], np.arange((1 << bits) + 1))
    out = np.zeros(len(h), dtype=bool)

    def one(i: int) -> None:
        rows = order[bounds[i]:bounds[i + 1]]
        out[rows] = duplicated(h[rows])

    in_threads(one, list(range(1 << bits)), "gpuseg-clean")
    return out


def _outlier_fence(price, bad, config: CleanConfig, backend: Backend,
                   fitted: dict[str, Any] | None) -> tuple[str, tuple[float, float] | None]:
    """(what to do with outliers, the fence): a model's own (``fitted``; models saved before
    capping dropped them), else fitted on the prices that survived so far."""
    if fitted is not None:
        fence = tuple(fitted["outlier_fence"]) if fitted.get("outlier_fence") else None
        mode = fitted.get("price_outliers", "drop")
        if mode == "cap" and not fitted.get("cap_top_only"):  # saved before the fence capped only the top
            mode = LEGACY_CAP
        return mode, fence
    mode = config.price_outliers
    if isinstance(mode, bool):  # CleanConfig(price_outliers=True/False) from older code
        mode = "cap" if mode else "off"
    if mode == "off":
        return "off", None
    return mode, _price_fence(rows_where(price, ~bad), config, backend)


def _cap(cols: dict[str, Any], outside, fence: tuple[float, float], who: _CustomerCodes,
         both: bool = False) -> tuple[dict[str, int], int]:
    """Cap (winsorise) the unit prices ``outside`` (above the fence) at its top (``both``: and
    those below it at its bottom), order amounts in proportion. Returns the values capped per
    column and the customers touched."""
    n = int(outside.sum())
    if n == 0:
        return {}, 0
    price = cols["price"]
    capped = price.clip(lower=fence[0] if both else None, upper=fence[1])
    if "amount" in cols:
        cols["amount"] = cols["amount"].where(~outside, cols["amount"] * (capped / price))
    cols["price"] = price.where(~outside, capped)
    out = {"price": n, **({"amount": n} if "amount" in cols else {})}
    return out, who.count(outside)


def no_exclusions():
    """An empty ``customer_id, reason, rows`` table."""
    import pandas as pd

    return pd.DataFrame({"customer_id": pd.Series([], dtype="object"), "reason": pd.Series([], dtype="object"),
                         "rows": pd.Series([], dtype="int64")})


def _excluded(customer, who: _CustomerCodes, keep, reasons: dict[str, Any]):
    """Customers none of whose rows survived: ``customer_id, reason, rows`` (host pandas),
    the reason being the one that dropped most of their rows (the earlier rule on a tie)."""
    import pandas as pd

    lost = who.without(keep)
    if not bool(lost.any()):
        return no_exclusions()
    parts = []
    for order, (reason, mask) in enumerate(reasons.items()):
        rows = mask & lost
        if bool(rows.any()):
            counts = customer[rows].value_counts()
            counts = counts.to_pandas() if hasattr(counts, "to_pandas") else counts
            counts = counts[counts > 0]  # a categorical column counts every category
            parts.append(pd.DataFrame({"customer_id": counts.index, "reason": reason, "order": order,
                                       "n": counts.to_numpy()}))
    table = pd.concat(parts, ignore_index=True)
    rows = table.groupby("customer_id", sort=False)["n"].sum()
    table = table.sort_values(["customer_id", "n", "order"], ascending=[True, False, True], kind="stable")
    first = table.drop_duplicates("customer_id").set_index("customer_id")
    out = pd.DataFrame({"customer_id": _plain_ids(pd.Series(first.index)), "reason": first["reason"].to_numpy(),
                        "rows": rows.reindex(first.index).to_numpy().astype("int64")})
    return out.reset_index(drop=True)


def _not_a_price(s):
    """Missing, non-numeric (already NaN), negative or infinite."""
    return s.isna() | (s < 0) | (s == float("inf"))


def _price_fence(price, config: CleanConfig, backend: Backend) -> tuple[float, float] | None:
    """IQR fence on (log1p) prices; None when the prices have no spread (IQR = 0)."""
    values = price.clip(lower=0)
    if config.iqr_on_log:
        values = series_like(values, backend.xp.log1p(series_values(values)))
    if len(values) == 0:
        return None
    q1, q3 = (float(q) for q in to_host(values.quantile([0.25, 0.75])).to_numpy())  # one partition for both
    return fence_from_quartiles(q1, q3, config)


def fence_from_quartiles(q1: float, q3: float, config: CleanConfig) -> tuple[float, float] | None:
    """The accepted price range from the quartiles of the (log1p) prices; None when they
    have no spread (IQR = 0)."""
    iqr = q3 - q1
    if not iqr > 1e-12 * max(1.0, abs(q3)):  # fixed-price catalogues: no fence
        return None
    lo, hi = q1 - config.iqr_factor * iqr, q3 + config.iqr_factor * iqr
    if config.iqr_on_log:
        return float(np.expm1(max(lo, 0.0))), float(np.expm1(hi))
    return max(lo, 0.0), hi


def _as_category(s):
    return s if str(s.dtype) == "category" else s.astype("category")


def _category_codes(s):
    """int64 category codes with -1 for missing (cuDF gives nulls where pandas gives -1)."""
    return _as_category(s).cat.codes.astype("int64").fillna(-1)


def _lookup_categories(s, value_of, missing: int, backend: Backend, normalise=str, codes=None):
    """Map each row's category through ``value_of(normalise(category))`` via the (few)
    categories; ``codes``: :func:`_category_codes` of ``s`` where already taken."""
    if str(s.dtype) != "category":
        s = s.astype("category")
    table = [value_of(normalise(c)) for c in index_values(s.cat.categories)] + [missing]
    lut = backend.xp.asarray(np.asarray(table, dtype=np.int64))
    codes = _category_codes(s) if codes is None else codes
    return series_like(codes, lut[series_values(codes)])  # code -1 picks the last entry: missing


def _order_values(frame):
    """Line amount and unit price of orders (amount = quantity * unit_price when absent, or
    unit_price alone on a log without quantities: one item per line)."""
    qty = frame["quantity"] if "quantity" in frame.columns else None
    if "amount" in frame.columns:
        amount = frame["amount"]
        if qty is not None:
            unit = (amount / qty.where(qty > 0)).fillna(amount)
        elif "unit_price" in frame.columns:
            unit = frame["unit_price"].fillna(amount)
        else:
            unit = amount
    else:  # UCI Online Retail: Quantity and UnitPrice; without a quantity, one item per line
        unit = frame["unit_price"]
        amount = qty * unit if qty is not None else unit
    return amount, unit


def _mode_code(codes) -> int | None:
    """The most frequent code (>= 0), the smallest among equally frequent ones; None when
    there is none. A ``bincount`` and its first maximum, not ``value_counts``, which orders
    ties differently on pandas (first seen) and cuDF (hash order)."""
    values = series_values(codes)
    xp = array_namespace(values)
    counts = xp.bincount(values[values >= 0])  # the codes are few and small: counted, not hashed
    if len(counts) == 0:
        return None
    return int(xp.argmax(counts))  # the first of the most frequent: the smallest code


def mode_value(s):
    """The most frequent value of a non-empty pandas or cuDF Series (missing values not
    counted), the smallest among equally frequent ones."""
    counts = s.value_counts()
    return counts[counts == counts.max()].index.min()


#: "compute the fill value from these data" (a fitted fill value may itself be None)
_FIT = object()


def _main_category(s, fill: str, backend: Backend, fill_name: Any = _FIT):
    """Main category codes from a dotted taxonomy column, with missing values filled.

    Returns (codes, main category names, missing count, the main category name that
    filled the gaps or None); ``fill_name`` imposes that name (a fitted model's)."""
    if str(s.dtype) != "category":
        s = s.astype("category")
    cats = [str(c) for c in index_values(s.cat.categories)]
    mains = [c.split(".", 1)[0].strip().lower() or _UNKNOWN for c in cats]
    names = sorted(set(mains) - {_UNKNOWN})
    index = {n: i for i, n in enumerate(names)}
    codes = _category_codes(s)
    missing = int((codes < 0).sum())
    fill_value = -1
    if fill_name is not _FIT:
        if fill_name is not None and fill_name not in index:  # the fitted fill is not among these data's
            names.append(fill_name)
            index[fill_name] = len(names) - 1
        fill_value = index.get(fill_name, -1) if fill_name is not None else -1
    elif fill == "mode" and missing:
        top = _mode_code(codes)
        fill_value = index.get(mains[top], -1) if top is not None else -1
    out = _lookup_categories(s, lambda m: index.get(m, -1), fill_value, backend,
                             normalise=lambda c: str(c).split(".", 1)[0].strip().lower() or _UNKNOWN, codes=codes)
    used = names[fill_value] if fill_value >= 0 else None
    return out.astype("int32"), names, missing, used


def _brand_codes(s, fill: str, names: list[str], fill_name: Any = _FIT):
    """Brand codes with gaps filled; (codes, missing count, the filling brand or None).

    ``fill_name`` imposes a fitted model's filling brand (appended to ``names`` when these
    data lack it)."""
    codes = _category_codes(s)
    missing = int((codes < 0).sum())
    top = None
    if fill_name is not _FIT:
        if fill_name is not None:
            if fill_name not in names:
                names.append(fill_name)
            top = names.index(fill_name)
    elif fill == "mode" and missing:
        top = _mode_code(codes)
    if top is not None and missing:
        codes = codes.where(codes >= 0, top)
    return codes.astype("int32"), missing, (names[top] if top is not None else None)


def _key_codes(s):
    """Integer codes for a key column (integral ids, and the reader's int32 session codes,
    stay as they are); missing -> -1."""
    if s.dtype.kind in "iu" and str(s.dtype) != "category":
        return s.fillna(-1).astype("int64")
    return _category_codes(s)


def _named_key_codes(s):
    """:func:`_key_codes` and the key values behind the codes (None when the codes are the
    values: integral keys). Integer keys can be missing on cuDF (a null mask, where pandas
    has floats): -1, as in :func:`_key_codes`."""
    if s.dtype.kind in "iu":
        return s.fillna(-1).astype("int64"), None
    s = _as_category(s)
    return _category_codes(s), [str(c) for c in index_values(s.cat.categories)]


def _is_plain_integer(text: str) -> bool:
    """Digits only, at most 18 of them, no leading zero: int64 holds it and gives it back."""
    return text.isascii() and text.isdigit() and len(text) <= 18 and (text == "0" or not text.startswith("0"))


def _product_codes(s, backend: Backend):
    """int64 product codes (missing -1) and the ids behind them, None when codes are the ids.

    Integral ids (and whole float ids, integers with gaps as pandas stores them) are their
    own codes; text ids are too when every distinct one is a plain integer (REES46 read as
    text), looked up through the (distinct) categories; any other id (UCI StockCodes such
    as "85123A", "000027") gets a category code, named in the returned list.
    """
    kind = s.dtype.kind
    if kind in "iu" and not bool(s.notna().any()):  # integers, every one missing (cuDF keeps nulls)
        return s.fillna(-1).astype("int64"), None
    if (kind == "i" and int(s.min()) >= 0) or (kind == "u" and int(s.max()) < 2**63):
        return s.fillna(-1).astype("int64"), None
    if kind == "f":
        present = s[s.notna()]
        whole = bool(((present % 1) == 0).all())
        if whole and (len(present) == 0 or (float(present.min()) >= 0 and float(present.max()) < 2**62)):
            return s.fillna(-1).astype("int64"), None
    s = _as_category(s)
    names = [str(c) for c in index_values(s.cat.categories)]
    if all(_is_plain_integer(n) for n in names):
        return _lookup_categories(s, int, -1, backend), None
    return _category_codes(s), names


def product_label_counts(frame, product, kind: str):
    """How often each product appears under each readable name: host pandas ``product,
    name, n`` (empty when the data have no name column). Counted on the frame's device;
    only the distinct (product, name parts) pairs come to the host."""
    import pandas as pd

    empty = pd.DataFrame({"product": pd.Series(dtype="int64"), "name": pd.Series(dtype="object"),
                          "n": pd.Series(dtype="int64")})
    parts = [] if frame is None else [
        c for c in (("description",) if kind == "orders" else ("brand", "category_code")) if c in frame.columns]
    if not parts:
        return empty
    # counted on category codes (integers), named afterwards: a million rows in well under
    # a tenth of a second, where grouping the text itself took half a second
    cats = {c: _as_category(frame[c]) for c in parts}
    table = frame[[]].assign(product=product, **{c: cats[c].cat.codes.fillna(-1) for c in parts})  # cuDF: null codes
    counts = to_host(table[table["product"] >= 0].groupby(["product", *parts], sort=False).size())
    counts = counts.rename("n").reset_index()
    for c in parts:  # code -1 (missing) and missing values read as text are no name
        names = np.asarray([str(v) for v in index_values(cats[c].cat.categories)] + [""], dtype=object)
        named = names[np.where(counts[c].to_numpy() >= 0, counts[c].to_numpy(), len(names) - 1)]
        counts[c] = pd.Series(named, index=counts.index).where(lambda x: ~x.isin(["nan", "None", "<NA>", "NaN"]), "")
    if "category_code" in parts:  # "electronics.smartphone" -> "smartphone"
        counts["category_code"] = counts["category_code"].str.rsplit(".", n=1).str[-1]
    if counts.empty:
        return empty
    counts["name"] = counts[parts].agg(" ".join, axis=1).str.strip().str.replace(r"\s+", " ", regex=True)
    counts = counts[counts["name"] != ""]
    return counts.groupby(["product", "name"], sort=False)["n"].sum().reset_index()


class ProductLabels(Mapping):
    """Product code -> its most frequent readable name (:func:`best_labels` of
    :func:`product_label_counts`), counted when asked rather than while cleaning.

    Holds the cleaned rows' product codes and name columns (``description``, or ``brand``
    and ``category_code``; categories, so little memory) on their device.
    :meth:`for_products` names only the products asked for (a report lists a few dozen);
    reading it as a mapping names every product once. Either gives each product the name
    the whole table would: every count of a product is among its own rows.
    """

    def __init__(self, frame, product, kind: str) -> None:
        self.kind = kind
        self.parts = [c for c in (("description",) if kind == "orders" else ("brand", "category_code"))
                      if c in frame.columns]
        self._rows = frame[self.parts].assign(product=product) if self.parts else None
        self._all: dict[int, str] | None = None

    def counts(self, products=None):
        """:func:`product_label_counts` of every product, or of ``products`` (codes) only."""
        if self._rows is None:
            return product_label_counts(self._rows, None, self.kind)
        rows = self._rows
        if products is not None:
            rows = rows[rows["product"].isin([int(p) for p in products])]
        return product_label_counts(rows, rows["product"], self.kind)

    def for_products(self, products) -> dict[int, str]:
        """Code -> name of those of ``products`` (codes) that have a name."""
        if self._all is not None:
            return {int(p): self._all[int(p)] for p in products if int(p) in self._all}
        return {int(k): v for k, v in best_labels(self.counts(products)).items()}

    def _names(self) -> dict[int, str]:
        if self._all is None:
            self._all = {int(k): v for k, v in best_labels(self.counts()).items()}
        return self._all

    def __getitem__(self, code) -> str:
        return self._names()[code]

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"ProductLabels({self.kind}, {', '.join(self.parts) or 'no name column'})"


def labels_for(labels: Mapping, products) -> dict[int, str]:
    """Code -> name of those of ``products`` (codes) that ``labels`` names: a
    :class:`ProductLabels` counts only their rows, a dict is looked up."""
    if isinstance(labels, ProductLabels):
        return labels.for_products(products)
    return {int(p): labels[int(p)] for p in products if int(p) in labels}


def best_labels(counts) -> dict:
    """Product -> its most frequent name in :func:`product_label_counts` tables (summed when
    several are concatenated); ties go to the name that sorts first."""
    if counts is None or len(counts) == 0:
        return {}
    counts = counts.groupby(["product", "name"], sort=False)["n"].sum().reset_index()
    counts = counts.sort_values(["product", "n", "name"], ascending=[True, False, True], kind="stable")
    best = counts.drop_duplicates("product")
    return dict(zip(best["product"].tolist(), best["name"].tolist()))


def examples_of_drops(data: Any, dropped: dict[str, int]) -> dict[str, str]:
    """One unreadable input value per drop reason that dropped rows, from the readers'
    ``examples`` (of ``LoadedData``, or of the Dask pieces gathered)."""
    out: dict[str, str] = {}
    for col, value in getattr(data, "examples", {}).items():
        reason = _REASON_OF_COLUMN.get(col)
        if reason and dropped.get(reason) and reason not in out:
            out[reason] = str(value)[:40]
    return out


#: What is trimmed from around an id: ASCII blanks and the no-break space of spreadsheet
#: exports, named so that pandas and cuDF (whose default whitespace differ) trim the same.
ID_BLANKS = " \t\r\n\f\v\xa0"
#: The tail of a whole number written as a float ("12346.0"): not part of the id.
WHOLE_FLOAT_TAIL = r"\.0+$"


def _with_trimmed_ids(frame, column: str):
    """``frame`` with blanks around its text customer ids removed: " 123", "123 " and "123"
    are one customer (and, all plain, the integer 123). Integer ids, and text ids without
    such blanks, leave the frame as it is."""
    s = frame[column]
    if str(s.dtype) == "category":
        cats = s.cat.categories
        if cats.dtype.kind in "iuf":
            return frame
        stripped = cats.str.strip(ID_BLANKS)
        if not bool(((stripped == "") | (stripped != cats)).any()):
            return frame
        s = s.astype(cats.dtype)
    elif s.dtype.kind in "iufb" or len(s) == 0:
        return frame
    trimmed = s.astype("str").str.strip(ID_BLANKS)
    trimmed = trimmed.where(s.notna() & (trimmed != ""))  # an id of blanks only is missing, not customer ""
    if not bool((s.notna() & (trimmed != s).fillna(True)).any()):
        return frame
    return frame.assign(**{column: trimmed})


#: An e-mail address: something, "@", a domain with a dot ("@SUM(1+1)" is not one).
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _with_folded_emails(frame, column: str) -> tuple[Any, int]:
    """``frame`` with the customer ids that are e-mail addresses in lower case
    ("Ann@Shop.com" and "ann@shop.com" are one customer), and how many distinct ids that
    merged into another. Other ids, and frames without such ids, stay as they are."""
    s = frame[column]
    values = s.cat.categories if str(s.dtype) == "category" else s
    if values.dtype.kind in "iufb" or len(values) == 0:
        return frame, 0
    values = values.astype("str")
    if not bool(values.str.contains("@", regex=False).any()):  # the common case, without a regex per row
        return frame, 0
    if not bool((values.str.match(EMAIL) & (values.str.lower() != values)).any()):
        return frame, 0
    text = s.astype("str")
    folded = text.where(~text.str.match(EMAIL), text.str.lower()).where(s.notna())
    return frame.assign(**{column: folded}), int(s.nunique()) - int(folded.nunique())


def _with_plain_ids(frame, column: str):
    """``frame`` with the whole-float tail of its text customer ids removed ("123.0" is
    "123") where every id present is then a plain number, before any customer is counted:
    the counts of the customers read, excluded and kept are then of the customers the
    segments have (cleaning makes such ids int64 at its end, :func:`_plain_ids`)."""
    s = frame[column]
    if s.dtype.kind in "iuf" or str(s.dtype) == "category" or len(s) == 0:
        return frame
    digits = s.str.replace(WHOLE_FLOAT_TAIL, "", regex=True)
    present = digits[s.notna()]
    if len(present) == 0 or not bool((present != s[s.notna()]).any()):
        return frame
    return frame.assign(**{column: digits}) if bool(_plain_digits(present).all()) else frame


def _plain_ids(s):
    """Ids as int64 where that loses nothing, else as they are.

    Text ids (CSV ids are read as text) become integers when every one is a plain number
    of at most 18 digits without a leading zero, so "000027" stays "000027"; float ids such
    as 17850.0 (integer ids with gaps, as pandas stores them), or written as text
    ("17850.0", as pandas writes them to CSV), become integers when whole.
    """
    kind = s.dtype.kind
    if kind == "f":
        return s.astype("int64") if bool(((s % 1) == 0).all()) else s
    if kind in "iu" or str(s.dtype) == "category" or len(s) == 0:
        return s
    text = s.astype("str")
    digits = text.str.replace(WHOLE_FLOAT_TAIL, "", regex=True)  # "12346.0": a float id written as text
    return digits.astype("int64") if bool(_plain_digits(digits).all()) else text


def _plain_digits(digits):
    """True for text that int64 holds exactly as written: ASCII digits only ("１２３" or "²"
    are digits to str.isdigit, not to int64), at most 18 of them, no leading zero."""
    return digits.str.match(r"^[0-9]+$") & (digits.str.len() <= 18) & ~(digits.str.startswith("0")
                                                                         & (digits.str.len() > 1))


def _fill_missing_sessions(frame, missing, join: bool = True) -> int:
    """Sessions for the rows without one (``missing``, aligned with ``frame``'s rows), in
    place, per customer in time order: a row within SESSION_GAP_SECONDS of the customer's
    previous row continues that row's session, as does a run of such rows followed within
    the gap by a row of a session (an event whose session id the export left out belongs to
    the visit around it); other runs, cut at gaps of inactivity, get sessions of their own,
    numbered -2, -3, ... apart from the log's own codes (small non-negative ones, or the
    64-bit hashes of a Dask bucket). Without ``join`` (a model saved before joining), every
    run gets a session of its own. The rows keep their order. Returns how many rows got one.

    Limit: where a customer has rows of two sessions at one second, a row without a session
    at or right after it joins whichever of the two the sort left last, which can differ
    between the single process, a Dask bucket's row order and cuDF's sort."""
    missing = missing.reset_index(drop=True)  # by position: a Dask bucket's rows share one index label
    n = int(missing.sum())
    if n == 0:
        return 0
    rows = frame[["customer_id", "ts", "session"]].reset_index(drop=True)
    rows["missing"] = missing
    ids = rows["customer_id"]
    rows = rows[ids.isin(ids[missing].unique())] if join else rows[missing]
    # ties (one moment): the rows with a session first, so that a row without one joins theirs
    rows = rows.sort_values(["customer_id", "ts", "missing"])
    where = series_values(rows.index.to_series())  # the rows' positions in frame
    cust = rows["customer_id"]  # compared as a Series: text ids have no device array on cuDF
    same = series_values((cust == cust.shift(1)).fillna(False))
    codes = _run_sessions(same, series_values(rows["ts"]), series_values(rows["missing"]),
                          series_values(rows["session"].astype("int64")))
    session = frame["session"].astype("int64").reset_index(drop=True)
    wanted = series_values(rows["missing"])
    session.loc[where[wanted]] = codes[wanted]
    frame["session"] = series_values(session)
    return n


def _run_sessions(same, ts, missing, session):
    """Per row (sorted by customer and time; ``same``: the row's customer is the previous
    row's; NumPy or CuPy arrays), the session a row without one
    takes (:func:`_fill_missing_sessions`): a run starts at a customer's first row, after a
    gap, or at a row with a session; a run headed by a row with a session is that session,
    a run of rows without one takes the session of the row that follows it within the gap,
    else a new code."""
    xp = array_namespace(ts)
    n = len(ts)
    false = xp.zeros(1, dtype=bool)
    continues = same & xp.concatenate([false, (ts[1:] - ts[:-1]) <= SESSION_GAP_SECONDS])
    start = ~continues | ~missing
    run = xp.cumsum(start) - 1
    heads = xp.flatnonzero(start)
    last = xp.concatenate([heads[1:] - 1, xp.asarray([n - 1], dtype=heads.dtype)])
    after = xp.minimum(last + 1, n - 1)
    follows = ((last + 1) < n) & same[after] & ~missing[after] & (
        (ts[after] - ts[last]) <= SESSION_GAP_SECONDS)
    headed = ~missing[heads]
    own = ~headed & ~follows
    per_run = xp.where(headed, session[heads], xp.where(follows, session[after], -1 - xp.cumsum(own)))
    return per_run[run]


def _sessions_from_gaps(frame):
    """Derive sessions: a new one after SESSION_GAP_SECONDS of inactivity per customer."""
    frame = frame.sort_values(["customer_id", "ts"], ignore_index=True)
    cust = frame["customer_id"]
    ts = frame["ts"]
    new = (cust != cust.shift(1)) | ((ts - ts.shift(1)) > SESSION_GAP_SECONDS)
    frame["session"] = new.fillna(True).astype("int64").cumsum()
    return frame
