"""Synthetic e-commerce event logs with planted customer personas.

The generated log has exactly the columns and value formats of the REES46 / Open CDP
"eCommerce behavior data from multi category store" data set, so every reader and stage
that works on the real files works on it too. Each customer is drawn from one of
:data:`PERSONAS`; the persona shapes how many sessions the customer has, when they happen,
how far down the funnel (view -> cart -> purchase) the customer goes and how expensive the
products are within their category. The persona of every customer is returned as ground
truth, so segmentations can be scored against it.

Everything is generated with vectorised NumPy (no Python loop per customer, session or
event) from one ``numpy.random.Generator``, so the same seed gives the same log.
"""

from __future__ import annotations

import gzip as _gzip
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gpuseg.errors import ConfigError, DataError, SchemaError

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "PERSONAS",
    "generate_events",
    "file_kind",
    "write_events",
    "write_orders",
    "write_truth",
]

EVENT_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
EVENT_TYPES: tuple[str, ...] = ("view", "cart", "remove_from_cart", "purchase")

# One row per persona; the order of this table is the order of PERSONAS and of
# ``persona_weights``.
#   weight       default share of customers
#   sessions     mean number of sessions per customer (gamma-Poisson; spread: _ACTIVITY_SHAPE)
#   session_len  mean number of events per session (geometric)
#   cart, remove, purchase   probability of each non-view event type
#   price_skew   a in rank = floor(u**a * n) over the category's price-sorted products:
#                a > 1 -> cheap products, a < 1 -> expensive ones
#   focus        probability that an event stays in the session's category
#   peak_hour, hour_kappa    UTC hour-of-day bump (von Mises shape; larger = narrower)
#   trend        day weights grow as exp(trend * t) over the window, t in [0, 1)
#   weekend      weight of a Saturday/Sunday relative to a weekday
#   active       (first, last) fraction of the time window the persona is active in
#   last_days    if set, active only in the last this many days (overrides active)
#   likes        main categories the persona favours: weight multipliers on the traffic
#                share when a customer's favourite main category is drawn
_PERSONA_TABLE: dict[str, dict] = {
    "loyal_high_spender": dict(
        weight=0.12, sessions=22.0, session_len=4.5, cart=0.10, remove=0.020,
        purchase=0.075, price_skew=0.35, focus=0.85, peak_hour=20, hour_kappa=4.8,
        trend=1.0, weekend=1.0, active=(0.0, 1.0), last_days=None,
        likes={"computers": 3.0, "electronics": 1.5, "appliances": 1.5},
    ),
    "window_shopper": dict(
        weight=0.28, sessions=9.0, session_len=7.0, cart=0.020, remove=0.008,
        purchase=0.003, price_skew=1.0, focus=0.70, peak_hour=14, hour_kappa=3.2,
        trend=0.0, weekend=1.0, active=(0.0, 1.0), last_days=None,
        likes={"apparel": 3.0, "furniture": 3.0, "accessories": 3.0},
    ),
    "deal_seeker": dict(
        weight=0.15, sessions=11.0, session_len=5.5, cart=0.070, remove=0.025,
        purchase=0.040, price_skew=3.0, focus=0.95, peak_hour=11, hour_kappa=4,
        trend=0.0, weekend=2.5, active=(0.0, 1.0), last_days=None,
        likes={"kids": 4.0, "apparel": 2.0, "construction": 3.0},
    ),
    "cart_abandoner": dict(
        weight=0.15, sessions=10.0, session_len=5.0, cart=0.160, remove=0.070,
        purchase=0.010, price_skew=1.0, focus=0.85, peak_hour=23, hour_kappa=6,
        trend=0.0, weekend=1.0, active=(0.0, 1.0), last_days=None,
        likes={"electronics": 2.0, "sport": 4.0, "auto": 3.0},
    ),
    "lapsed": dict(
        weight=0.18, sessions=6.0, session_len=4.0, cart=0.050, remove=0.015,
        purchase=0.025, price_skew=1.0, focus=0.85, peak_hour=16, hour_kappa=3.2,
        trend=-1.0, weekend=1.0, active=(0.0, 1.0 / 3.0), last_days=None,
        likes={"appliances": 2.5, "country_yard": 5.0, "medicine": 5.0},
    ),
    "new_customer": dict(
        weight=0.12, sessions=3.0, session_len=4.5, cart=0.070, remove=0.015,
        purchase=0.050, price_skew=1.2, focus=0.85, peak_hour=19, hour_kappa=4,
        trend=0.0, weekend=1.2, active=(0.0, 1.0), last_days=10,
        likes={},
    ),
}

PERSONAS: tuple[str, ...] = tuple(_PERSONA_TABLE)

# Category taxonomy. Main category -> (share of traffic, brands, {leaf category_code:
# median price}); leaves are listed most popular first.
_TAXONOMY: dict[str, tuple[float, tuple[str, ...], dict[str, float]]] = {
    "electronics": (
        0.34,
        ("samsung", "apple", "xiaomi", "huawei", "oppo", "sony", "lg", "jbl"),
        {"electronics.smartphone": 250.0, "electronics.audio.headphone": 60.0,
         "electronics.video.tv": 400.0, "electronics.clocks": 150.0,
         "electronics.tablet": 220.0, "electronics.camera.photo": 350.0},
    ),
    "appliances": (
        0.15,
        ("samsung", "lg", "bosch", "indesit", "beko", "philips", "tefal", "redmond"),
        {"appliances.kitchen.refrigerators": 500.0, "appliances.kitchen.washer": 380.0,
         "appliances.environment.vacuum": 150.0, "appliances.kitchen.microwave": 90.0,
         "appliances.personal.hair_cutter": 30.0, "appliances.iron": 40.0},
    ),
    "computers": (
        0.10,
        ("lenovo", "hp", "asus", "acer", "dell", "msi", "logitech", "canon"),
        {"computers.notebook": 700.0, "computers.desktop": 600.0,
         "computers.peripherals.printer": 180.0, "computers.components.videocards": 350.0,
         "computers.peripherals.mouse": 15.0},
    ),
    "apparel": (
        0.08,
        ("nike", "adidas", "puma", "reebok", "respect", "salomon"),
        {"apparel.shoes": 70.0, "apparel.shoes.keds": 35.0, "apparel.jeans": 45.0,
         "apparel.costume": 60.0, "apparel.shirt": 25.0},
    ),
    "furniture": (
        0.05,
        ("brw", "sonata", "askona", "stolline"),
        {"furniture.living_room.sofa": 450.0, "furniture.bedroom.bed": 350.0,
         "furniture.kitchen.table": 150.0, "furniture.living_room.chair": 80.0},
    ),
    "kids": (
        0.05,
        ("lego", "chicco", "carrello", "mattel", "hasbro"),
        {"kids.toys": 25.0, "kids.carriage": 250.0, "kids.skates": 60.0, "kids.swing": 90.0},
    ),
    "construction": (
        0.05,
        ("bosch", "makita", "dewalt", "hitachi", "ryobi", "grohe"),
        {"construction.tools.drill": 80.0, "construction.tools.saw": 90.0,
         "construction.tools.light": 20.0, "construction.components.faucet": 60.0},
    ),
    "auto": (
        0.04,
        ("pioneer", "kenwood", "alpine", "prology", "starline"),
        {"auto.accessories.player": 90.0, "auto.accessories.videoregister": 70.0,
         "auto.accessories.alarm": 100.0},
    ),
    "sport": (
        0.04,
        ("stels", "forward", "cube", "torneo", "atemi"),
        {"sport.bicycle": 300.0, "sport.trainer": 350.0, "sport.snowboard": 250.0},
    ),
    "accessories": (
        0.05,
        ("samsonite", "guess", "tommy", "zeppelin"),
        {"accessories.bag": 20.0, "accessories.wallet": 15.0, "accessories.umbrella": 12.0},
    ),
    "country_yard": (
        0.03,
        ("huter", "patriot", "champion", "greenworks"),
        {"country_yard.lawn_mower": 200.0, "country_yard.cultivator": 350.0,
         "country_yard.weather_station": 45.0},
    ),
    "medicine": (
        0.02,
        ("omron", "microlife", "beurer"),
        {"medicine.tools.tonometer": 40.0, "medicine.tools.thermometer": 10.0},
    ),
}

# Spread of customers around their persona: gamma shape of the session count (larger =
# less spread), s.d. in hours of a customer's shift of the persona's peak hour, and the
# log-normal spread of the funnel probabilities.
_ACTIVITY_SHAPE = 6.0
_HOUR_SHIFT_SD = 0.3
_FUNNEL_SPREAD = 0.2
_PRICE_SIGMA = 0.6  # log-normal spread of prices within a leaf category
_SHARE_NO_CODE = 0.30  # share of products whose category_id has no category_code
_SHARE_NO_BRAND = 0.40
_SECONDS_PER_DAY = 86_400
# pandas' default string dtype in 3.x (Arrow storage, NaN as missing value).
try:
    _STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)
except TypeError:  # pandas < 2.3
    _STR_DTYPE = pd.StringDtype("pyarrow")


def generate_events(
    n_customers: int,
    *,
    seed: int = 0,
    start: str = "2019-10-01",
    days: int = 61,
    persona_weights: Sequence[float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a REES46-style event log with planted customer personas.

    Parameters
    ----------
    n_customers : int
        Number of customers to generate (at least 1). Each has at least one session;
        about 50 events per customer on average, heavy tailed.
    seed : int, default=0
        Seed of ``numpy.random.default_rng``; the same seed gives identical frames.
    start : str, default="2019-10-01"
        First day of the time window (UTC midnight), anything ``numpy.datetime64`` parses
        as a day.
    days : int, default=61
        Length of the time window in days (at least 7); events fall in
        ``[start, start + days)``.
    persona_weights : sequence of float, optional
        Relative share of each persona, in the order of :data:`PERSONAS`. Non-negative
        with a positive sum; normalised. Defaults to the table at the top of this module,
        about ``(0.12, 0.28, 0.15, 0.15, 0.18, 0.12)``.

    Returns
    -------
    events : pandas.DataFrame
        Columns :data:`EVENT_COLUMNS` in that order, sorted by ``event_time`` (stable),
        index ``0..n-1``. ``event_time`` is ``datetime64[us, UTC]``; ``event_type`` a
        categorical over :data:`EVENT_TYPES`; ``product_id``, ``category_id`` and
        ``user_id`` int64; ``category_code`` and ``brand`` categoricals with missing
        values; ``price`` float64 with two decimals; ``user_session`` a categorical of
        UUID strings.
    truth : pandas.DataFrame
        One row per customer: ``user_id`` (int64) and ``persona`` (str).

    Raises
    ------
    ConfigError
        If an argument is out of range.

    Examples
    --------
    >>> events, truth = generate_events(1_000, seed=1)
    >>> list(events.columns) == list(EVENT_COLUMNS)
    True
    >>> sorted(truth["persona"].unique()) == sorted(PERSONAS)
    True
    """
    if isinstance(n_customers, bool) or not isinstance(n_customers, (int, np.integer)):
        raise ConfigError(f"n_customers must be an integer, got {n_customers!r}")
    if n_customers < 1:
        raise ConfigError(f"n_customers must be at least 1, got {n_customers}")
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 7:
        raise ConfigError(f"days must be an integer of at least 7, got {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        start_day = np.datetime64(start, "D")
    except (ValueError, TypeError):
        raise ConfigError(f"start must be a date like '2019-10-01', got {start!r}") from None
    if persona_weights is None:
        weights = np.array([p["weight"] for p in _PERSONA_TABLE.values()])
    else:
        try:
            weights = np.asarray(persona_weights, dtype=np.float64)
        except (ValueError, TypeError):
            raise ConfigError(
                f"persona_weights must be {len(PERSONAS)} numbers, got {persona_weights!r}"
            ) from None
        if weights.shape != (len(PERSONAS),):
            raise ConfigError(
                f"persona_weights must have {len(PERSONAS)} values (one per persona: "
                f"{', '.join(PERSONAS)}), got {weights.size}"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ConfigError(
                "persona_weights must be finite, non-negative and sum to more than 0, "
                f"got {weights.tolist()}"
            )
    weights = weights / weights.sum()
    return _generate_events(int(n_customers), int(seed), start_day, int(days), weights)


def write_events(events: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write an event log the way REES46 publishes it, chosen by the file suffix.

    Parameters
    ----------
    events : pandas.DataFrame
        Frame with the columns :data:`EVENT_COLUMNS` (as :func:`generate_events` makes).
        Only those columns are written, in that order.
    path : str or os.PathLike
        Target file. ``.csv`` writes CSV, ``.csv.gz`` gzip-compressed CSV, ``.parquet``
        Parquet. In CSV, ``event_time`` reads like ``2019-10-01 00:00:04 UTC`` and missing
        ``category_code``/``brand`` are empty fields; Parquet keeps ``event_time`` as a
        UTC timestamp. The file is written next to the target under a temporary name and
        moved into place, so a failed write leaves no partial file.

    Raises
    ------
    SchemaError
        If a column of :data:`EVENT_COLUMNS` is missing.
    DataError
        If the suffix is not one of the accepted ones or the file cannot be written.
    """
    path = Path(path)
    kind = file_kind(path)
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise SchemaError(f"cannot write {path}: events lack column(s) {', '.join(missing)}")
    table = pa.Table.from_pandas(events.loc[:, list(EVENT_COLUMNS)], preserve_index=False)
    if kind != "parquet":
        table = _csv_ready(table, time_columns=("event_time",))
    _write_table(table, path, kind)


def write_orders(orders: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write an order log (the columns of :data:`gpuseg.io.scenarios.ORDER_COLUMNS`) by the
    file suffix, atomically as :func:`write_events` does; timestamps are written as given.

    Raises
    ------
    SchemaError
        If ``customer_id``, ``timestamp`` or ``amount`` is missing.
    DataError
        If the suffix is not one of the accepted ones or the file cannot be written.
    """
    path = Path(path)
    kind = file_kind(path)
    missing = [c for c in ("customer_id", "timestamp", "amount") if c not in orders.columns]
    if missing:
        raise SchemaError(f"cannot write {path}: orders lack column(s) {', '.join(missing)}")
    table = pa.Table.from_pandas(orders, preserve_index=False)
    if kind != "parquet":
        table = _csv_ready(table, time_columns=())
    _write_table(table, path, kind)


def write_truth(truth: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the ground-truth personas, chosen by the file suffix.

    Parameters
    ----------
    truth : pandas.DataFrame
        Frame as returned by :func:`generate_events` (``user_id``, ``persona``) or by
        :func:`gpuseg.io.scenarios.generate_scenario` (``customer_id`` for orders).
    path : str or os.PathLike
        Target file: ``.csv``, ``.csv.gz`` or ``.parquet``; written atomically as in
        :func:`write_events`.

    Raises
    ------
    SchemaError
        If ``user_id`` or ``persona`` is missing.
    DataError
        If the suffix is not one of the accepted ones or the file cannot be written.
    """
    path = Path(path)
    kind = file_kind(path)
    id_column = "customer_id" if "customer_id" in truth.columns else "user_id"
    missing = [c for c in (id_column, "persona") if c not in truth.columns]
    if missing:
        raise SchemaError(f"cannot write {path}: truth lacks column(s) {', '.join(missing)}")
    table = pa.Table.from_pandas(truth.loc[:, [id_column, "persona"]], preserve_index=False)
    if kind != "parquet":
        table = _csv_ready(table, time_columns=())
    _write_table(table, path, kind)


# --------------------------------------------------------------------------- writing

_SUFFIXES = {".csv": "csv", ".csv.gz": "csv.gz", ".parquet": "parquet"}


def file_kind(path: str | os.PathLike) -> str:
    """``csv``, ``csv.gz`` or ``parquet`` by the suffix of a path to write.

    Raises
    ------
    DataError
        Any other suffix.
    """
    path = Path(path)
    name = path.name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return _SUFFIXES[suffix]
    raise DataError(
        f"cannot write {path}: unknown file type, expected one of {', '.join(_SUFFIXES)}"
    )


def _csv_ready(table: pa.Table, time_columns: Sequence[str]) -> pa.Table:
    """Timestamps as REES46 strings, dictionaries decoded to plain strings."""
    columns = []
    for name, column in zip(table.column_names, table.columns):
        if name in time_columns:
            column = _rees46_time_strings(name, column)
        elif pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


_TWO_DIGITS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), np.uint8)
_TWO_DIGITS = _TWO_DIGITS.reshape(100, 2)


def _rees46_time_strings(name: str, column: pa.ChunkedArray) -> pa.Array:
    """Format a timestamp column as ``2019-10-01 00:00:04 UTC`` (UTC, whole seconds).

    Built as a fixed-width byte matrix with NumPy: Arrow's strftime takes microseconds
    per value, this takes nanoseconds.
    """
    if not pa.types.is_timestamp(column.type):
        raise SchemaError(f"column {name} must hold timestamps to be written, got {column.type}")
    seconds = column.cast(pa.timestamp("s", tz=column.type.tz), safe=False).cast(pa.int64())
    seconds = seconds.combine_chunks()
    valid = seconds.is_valid()
    seconds = seconds.fill_null(0).to_numpy()
    day, second_of_day = np.divmod(seconds, _SECONDS_PER_DAY)
    unique_days, day_row = np.unique(day, return_inverse=True)
    dates = unique_days.astype("datetime64[D]").astype("S10").view(np.uint8).reshape(-1, 10)
    text = np.empty((seconds.size, 23), dtype=np.uint8)
    text[:, :10] = dates[day_row]
    text[:, 10] = ord(" ")
    text[:, 11:13] = _TWO_DIGITS[second_of_day // 3600]
    text[:, 13] = ord(":")
    text[:, 14:16] = _TWO_DIGITS[second_of_day // 60 % 60]
    text[:, 16] = ord(":")
    text[:, 17:19] = _TWO_DIGITS[second_of_day % 60]
    text[:, 19:] = np.frombuffer(b" UTC", dtype=np.uint8)
    strings = _fixed_width_strings(text)
    if valid.false_count:
        strings = pc.if_else(valid, strings, pa.scalar(None, pa.string()))
    return strings


def _fixed_width_strings(text: np.ndarray) -> pa.Array:
    """Arrow string array from an (n, width) uint8 matrix of ASCII, one row per value."""
    n, width = text.shape
    text = np.ascontiguousarray(text)
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(text)])
    return fixed.cast(pa.binary()).cast(pa.string())


def _write_table(table: pa.Table, path: Path, kind: str) -> None:
    """Write to a temporary file next to ``path``, then move it into place."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        if kind == "parquet":
            pq.write_table(table, tmp)
        else:
            try:
                # REES46 quotes nothing; values with commas or quotes need quoting.
                _write_csv(table, tmp, gzip=kind == "csv.gz", quoting="none")
            except pa.ArrowInvalid:
                _write_csv(table, tmp, gzip=kind == "csv.gz", quoting="needed")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_csv(table: pa.Table, tmp: str, gzip: bool, quoting: str) -> None:
    with open(tmp, "wb") as raw:
        # Level 1: several times faster than Arrow's gzip (level 9), files ~20% larger.
        # No file name or time in the gzip header, so equal tables give equal files.
        sink = raw
        if gzip:
            sink = _gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1, mtime=0)
        with sink:
            # The header as REES46 writes it: bare names (Arrow would quote them).
            sink.write((",".join(table.column_names) + "\n").encode())
            options = pacsv.WriteOptions(include_header=False, quoting_style=quoting)
            pacsv.write_csv(table, sink, options)


# ------------------------------------------------------------------------ generation


def _generate_events(
    n_customers: int, seed: int, start_day: np.datetime64, days: int, weights: np.ndarray,
    table: dict[str, dict] | None = None, random_context: bool = False, spread: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The generator behind :func:`generate_events` and the scenarios
    (:mod:`gpuseg.io.scenarios`).

    ``table`` replaces the persona table (same fields; ``activity_shape``, ``cart_slope``
    and ``purchase_slope`` are optional). ``random_context`` draws every customer's time of
    day, weekend habit and favourite category from a random persona's instead of the
    customer's own, so those features vary without telling the personas apart.
    ``spread`` multiplies the spread of customers around their persona.
    """
    table = _PERSONA_TABLE if table is None else table
    names = tuple(table)
    rng = np.random.default_rng(seed)
    params = _persona_arrays(table)
    catalog = _product_catalog(int(np.clip(n_customers // 2, 2_000, 200_000)), rng)
    # each step draws from rng in turn: the order of the steps is the order of the draws
    c = _draw_customers(n_customers, seed, weights, table, params, days, rng, random_context, spread)
    s = _draw_sessions(c, params, catalog, start_day, days, len(names), rng)
    e = _draw_events(c, s, params, catalog, days, rng)
    order, seconds = _time_order(e["seconds"], days)
    epoch_s = (start_day - np.datetime64("1970-01-01", "D")).astype(np.int64) * _SECONDS_PER_DAY
    micros = (seconds + epoch_s) * 1_000_000
    product = e["product"][order]
    n_s = s["n_s"]
    # Sessions get their (sorted) UUIDs in random order.
    session_label = rng.permutation(n_s).astype(np.int32 if n_s < 2**31 else np.int64)

    events = pd.DataFrame(
        {
            "event_time": pd.array(micros.view("datetime64[us]"), dtype="datetime64[us, UTC]"),
            "event_type": pd.Categorical.from_codes(
                e["event_type"][order], dtype=pd.CategoricalDtype(list(EVENT_TYPES))
            ),
            "product_id": catalog["product_id"][product],
            "category_id": catalog["category_id"][product],
            "category_code": pd.Categorical.from_codes(
                catalog["code"][product], dtype=catalog["code_dtype"]
            ),
            "brand": pd.Categorical.from_codes(
                catalog["brand"][product], dtype=catalog["brand_dtype"]
            ),
            "price": e["price"][order],
            "user_id": c["user_id"][e["cust_e"][order]],
            "user_session": pd.Categorical.from_codes(
                session_label[e["sess_e"][order]], dtype=pd.CategoricalDtype(_uuid_strings(n_s, rng))
            ),
        }
    )
    truth = pd.DataFrame(
        {
            "user_id": c["user_id"],
            "persona": pd.array(np.asarray(names, dtype=object)[c["persona"]], dtype=_STR_DTYPE),
        }
    )
    return events, truth


def _draw_customers(n_customers: int, seed: int, weights: np.ndarray, table: Mapping[str, dict],
                    params: dict[str, np.ndarray], days: int, rng: np.random.Generator, random_context: bool,
                    spread: float) -> dict[str, np.ndarray]:
    """Every customer's persona, id, sessions, funnel, price taste, time shift, context
    persona, favourite category and active days."""
    persona = _allocate_personas(n_customers, weights, rng)
    user_id = _unique_ids(n_customers, 510_000_000, 999_999_999, rng)
    shape = params["activity_shape"][persona] / spread**2
    activity = rng.gamma(shape, (params["sessions"][persona] - 1.0) / shape)
    n_sessions = 1 + rng.poisson(activity)
    # Per-customer funnel: the persona's probabilities with some individual spread.
    funnel = np.stack([params["cart"], params["remove"], params["purchase"]], axis=1)[persona]
    funnel *= rng.lognormal(0.0, _FUNNEL_SPREAD * spread, size=funnel.shape)
    if params["cart_slope"].any() or params["purchase_slope"].any():
        # rates that change with the customer's activity: curved personas
        relative = np.maximum(activity, 0.5) / (params["sessions"][persona] - 1.0)
        funnel[:, 0] *= relative ** params["cart_slope"][persona]
        funnel[:, 2] *= relative ** params["purchase_slope"][persona]
    funnel *= np.minimum(1.0, 0.6 / funnel.sum(axis=1))[:, None]
    # Thresholds on u for cart, remove, purchase: view probability + exclusive cumsum.
    funnel_cdf = (1.0 - funnel.sum(axis=1))[:, None] + np.cumsum(funnel, axis=1) - funnel
    price_skew = params["price_skew"][persona] * rng.lognormal(0.0, 0.15 * spread, size=n_customers)
    hour_shift = np.rint(rng.normal(0.0, _HOUR_SHIFT_SD, size=n_customers)).astype(np.int64)
    # the persona whose time of day, weekend habit and favourite categories the customer has
    context = np.random.default_rng([seed, 1]).integers(0, len(table), n_customers) if random_context else persona
    favourite_main = _sample_rows(_favourite_cdf(table), context, rng.random(n_customers))
    first_day, end_day = _active_days(persona, params, days)
    return {"persona": persona, "user_id": user_id, "n_sessions": n_sessions, "funnel_cdf": funnel_cdf,
            "price_skew": price_skew, "hour_shift": hour_shift, "context": context,
            "favourite_main": favourite_main, "first_day": first_day, "end_day": end_day}


def _draw_sessions(c: Mapping[str, np.ndarray], params: dict[str, np.ndarray], catalog: dict[str, Any],
                   start_day: np.datetime64, days: int, n_personas: int, rng: np.random.Generator
                   ) -> dict[str, Any]:
    """One row per (customer, session), in time order: customer, persona, start, category
    leaf and length."""
    cust_s = np.repeat(np.arange(c["persona"].size), c["n_sessions"])
    persona_s = c["persona"][cust_s]
    context_s = c["context"][cust_s]
    n_s = cust_s.size
    day_cdf = _day_cdf(start_day, days, params["weekend"], params["trend"])  # rows: context x persona
    day = _sample_rows(day_cdf, context_s * n_personas + persona_s, rng.random(n_s), c["first_day"][cust_s],
                       c["end_day"][cust_s])
    hour = _sample_rows(_hour_cdf(params), context_s, rng.random(n_s))
    hour = (hour + c["hour_shift"][cust_s]) % 24
    session_start = (
        day * _SECONDS_PER_DAY + hour * 3_600 + rng.integers(0, 3_600, size=n_s)
    ).astype(np.int64)
    # Number sessions in time order: the events then come out nearly sorted, which makes
    # the final reordering cheap and the session categories chronological.
    by_start, session_start = _time_order(session_start, days)
    cust_s = cust_s[by_start]
    persona_s = persona_s[by_start]
    main_s = np.where(
        rng.random(n_s) < 0.7,
        c["favourite_main"][cust_s],
        _sample_cdf(catalog["main_cdf"], rng.random(n_s)),
    )
    leaf_s = _sample_range(
        catalog["leaf_cdf"], catalog["main_first_leaf"][main_s],
        catalog["main_first_leaf"][main_s + 1], rng.random(n_s),
    )
    session_len = rng.geometric(1.0 / params["session_len"][persona_s])
    return {"cust_s": cust_s, "persona_s": persona_s, "start": session_start, "leaf_s": leaf_s,
            "session_len": session_len, "n_s": n_s}


def _draw_events(c: Mapping[str, np.ndarray], s: Mapping[str, Any], params: dict[str, np.ndarray],
                 catalog: dict[str, Any], days: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One row per event, grouped by session: session, customer, second, type, product, price."""
    session_len, n_s = s["session_len"], s["n_s"]
    sess_e = np.repeat(np.arange(n_s), session_len)
    n_e = sess_e.size
    first_e = np.zeros(n_s, dtype=np.int64)
    np.cumsum(session_len[:-1], out=first_e[1:])
    is_first = np.zeros(n_e, dtype=bool)
    is_first[first_e] = True
    cust_e = s["cust_s"][sess_e]
    persona_e = s["persona_s"][sess_e]

    # Seconds to minutes between events of a session.
    gaps = np.exp(3.4 + rng.standard_normal(n_e, dtype=np.float32)).astype(np.int64)
    gaps[is_first] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= elapsed[first_e][sess_e]
    duration = elapsed[first_e + session_len - 1]
    window_end = days * _SECONDS_PER_DAY - 1
    session_start = np.maximum(0, np.minimum(s["start"], window_end - duration))
    seconds = session_start[sess_e] + elapsed

    # Event types: the customer's funnel, sessions always open with a view.
    u = rng.random(n_e, dtype=np.float32)
    event_type = np.zeros(n_e, dtype=np.int8)
    for k in range(3):
        event_type += u >= c["funnel_cdf"][:, k].astype(np.float32)[cust_e]
    event_type[is_first] = 0
    product, price = _draw_products(c, s["leaf_s"][sess_e], persona_e, cust_e, event_type, params, catalog, rng)
    return {"sess_e": sess_e, "cust_e": cust_e, "seconds": seconds, "event_type": event_type, "product": product,
            "price": price}


def _draw_products(c: Mapping[str, np.ndarray], leaf_e: np.ndarray, persona_e: np.ndarray, cust_e: np.ndarray,
                   event_type: np.ndarray, params: dict[str, np.ndarray], catalog: dict[str, Any],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(product, price) of every event. Views pick a product (mostly in the session's
    category, at the persona's price rank); cart/remove/purchase concern the product viewed
    last in the session. A few prices are discounted."""
    n_e = leaf_e.size
    wander = np.flatnonzero(rng.random(n_e, dtype=np.float32) >= params["focus"][persona_e])
    leaf_e[wander] = _sample_cdf(catalog["leaf_cdf"], rng.random(wander.size))
    n_in_leaf = catalog["leaf_count"][leaf_e]
    skew = c["price_skew"].astype(np.float32)[cust_e]
    rank = (rng.random(n_e, dtype=np.float32) ** skew * n_in_leaf).astype(np.int64)
    product = catalog["leaf_start"][leaf_e] + np.minimum(rank, n_in_leaf - 1)
    source = np.where(event_type == 0, np.arange(n_e), 0)
    np.maximum.accumulate(source, out=source)
    product = product[source]

    price = catalog["price"][product]
    discounted = np.flatnonzero(rng.random(n_e, dtype=np.float32) < 0.04)
    price[discounted] = np.maximum(
        0.01, np.round(price[discounted] * rng.uniform(0.8, 0.97, size=discounted.size), 2)
    )
    return product, price


def _time_order(seconds: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort order of ``seconds`` and the sorted values.

    Packs (seconds, position) into one int64 key and sorts values rather than indices:
    the keys are distinct, so this equals a stable argsort, and value sorts are several
    times faster than argsort in NumPy.
    """
    n = seconds.size
    bits = max(1, int(n - 1).bit_length())
    if (days * _SECONDS_PER_DAY).bit_length() + bits > 62:
        order = np.argsort(seconds, kind="stable")
        return order, seconds[order]
    key = (seconds << bits) | np.arange(n, dtype=np.int64)
    key.sort()
    return key & ((1 << bits) - 1), key >> bits


#: Optional persona fields and their defaults.
_OPTIONAL_FIELDS = {"activity_shape": _ACTIVITY_SHAPE, "cart_slope": 0.0, "purchase_slope": 0.0}


def _persona_arrays(table: dict[str, dict]) -> dict[str, np.ndarray]:
    """A persona table as one array per numeric field, in the table's order."""
    fields = ("sessions", "session_len", "cart", "remove", "purchase", "price_skew",
              "focus", "peak_hour", "hour_kappa", "trend", "weekend")
    out = {f: np.array([p[f] for p in table.values()], dtype=np.float64) for f in fields}
    for f, default in _OPTIONAL_FIELDS.items():
        out[f] = np.array([p.get(f, default) for p in table.values()], dtype=np.float64)
    out["active_lo"] = np.array([p["active"][0] for p in table.values()])
    out["active_hi"] = np.array([p["active"][1] for p in table.values()])
    out["last_days"] = np.array(
        [p["last_days"] or 0 for p in table.values()], dtype=np.int64
    )
    return out


def _allocate_personas(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Persona index per customer: counts by largest remainder, then shuffled."""
    exact = weights * n
    counts = np.floor(exact).astype(np.int64)
    short = n - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    persona = np.repeat(np.arange(len(weights), dtype=np.int64), counts)
    return rng.permutation(persona)


def _unique_ids(n: int, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct int64 ids in ``[low, high]``, in random order."""
    # Sorted draws plus 0..n-1 are strictly increasing, hence distinct.
    draws = np.sort(rng.integers(0, high - low - n + 2, size=n, dtype=np.int64))
    return rng.permutation(low + draws + np.arange(n, dtype=np.int64))


def _active_days(persona: np.ndarray, params: dict, days: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last active day per customer."""
    lo = np.floor(params["active_lo"] * days).astype(np.int64)
    hi = np.maximum(lo + 1, np.ceil(params["active_hi"] * days).astype(np.int64))
    recent = params["last_days"] > 0
    lo[recent] = np.maximum(0, days - params["last_days"][recent])
    hi[recent] = days
    return lo[persona], hi[persona]


def _day_cdf(
    start_day: np.datetime64, days: int, weekend: np.ndarray, trend: np.ndarray
) -> np.ndarray:
    """(n_personas**2, days + 1) cumulative day weights, row ``c * n_personas + p``: the
    weekend factor of persona ``c`` times the trend of persona ``p``."""
    day_numbers = (start_day + np.arange(days)).astype(np.int64)
    is_weekend = (day_numbers + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    w = np.where(is_weekend[None, None, :], weekend[:, None, None], 1.0)
    w = w * np.exp(trend[None, :, None] * (np.arange(days) / days)[None, None, :])
    return _to_cdf(w.reshape(-1, days))


def _favourite_cdf(table: dict[str, dict]) -> np.ndarray:
    """(n_personas, n_mains + 1) cumulative weights of a customer's favourite main category."""
    share = np.array([_TAXONOMY[m][0] for m in _TAXONOMY])
    likes = np.array([[p["likes"].get(m, 1.0) for m in _TAXONOMY] for p in table.values()])
    return _to_cdf(share[None, :] * likes)


def _hour_cdf(params: dict) -> np.ndarray:
    """(n_personas, 25) cumulative hour-of-day weights: a von Mises bump on a floor."""
    angle = 2 * np.pi * (np.arange(24)[None, :] - params["peak_hour"][:, None]) / 24
    w = 0.15 + np.exp(params["hour_kappa"][:, None] * (np.cos(angle) - 1.0))
    return _to_cdf(w)


def _to_cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.zeros(weights.shape[:-1] + (weights.shape[-1] + 1,))
    np.cumsum(weights, axis=-1, out=cdf[..., 1:])
    return cdf / cdf[..., -1:]


def _sample_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index ``i`` with ``cdf[i] <= u < cdf[i + 1]`` for a 1-D cdf starting at 0."""
    return np.minimum(np.searchsorted(cdf, u, side="right") - 1, cdf.size - 2)


def _sample_range(cdf: np.ndarray, lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample from a 1-D cdf restricted to bins ``[lo, hi)`` (per element)."""
    v = cdf[lo] + u * (cdf[hi] - cdf[lo])
    return np.clip(np.searchsorted(cdf, v, side="right") - 1, lo, hi - 1)


def _sample_rows(
    cdf: np.ndarray,
    row: np.ndarray,
    u: np.ndarray,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> np.ndarray:
    """Sample a bin per element from row ``row`` of a 2-D cdf, optionally within [lo, hi).

    The rows are laid end to end (row ``r`` shifted by ``2 r``) so one searchsorted
    serves all of them.
    """
    n_bins = cdf.shape[1] - 1
    if lo is None:
        lo = np.zeros(row.size, dtype=np.int64)
        hi = np.full(row.size, n_bins, dtype=np.int64)
    flat = (cdf + 2.0 * np.arange(cdf.shape[0])[:, None]).ravel()
    base = row * (n_bins + 1)
    return _sample_range(flat, base + lo, base + hi, u) - base


def _product_catalog(n_products: int, rng: np.random.Generator) -> dict:
    """Products sorted by (leaf category, price), with per-leaf offsets and cdfs."""
    mains = list(_TAXONOMY)
    leaves = [(m, code, median) for m in mains for code, median in _TAXONOMY[m][2].items()]
    n_leaves = len(leaves)
    leaf_main = np.array([mains.index(m) for m, _, _ in leaves])
    main_share = np.array([_TAXONOMY[m][0] for m in mains])
    within = np.concatenate([1.0 / np.arange(1, len(_TAXONOMY[m][2]) + 1) for m in mains])
    within /= np.bincount(leaf_main, weights=within)[leaf_main]
    leaf_weight = main_share[leaf_main] * within
    leaf_weight /= leaf_weight.sum()

    leaf_count = 10 + np.floor(leaf_weight * (n_products - 10 * n_leaves)).astype(np.int64)
    leaf_count[0] += n_products - leaf_count.sum()
    leaf_start = np.zeros(n_leaves, dtype=np.int64)
    np.cumsum(leaf_count[:-1], out=leaf_start[1:])
    leaf = np.repeat(np.arange(n_leaves), leaf_count)

    medians = np.array([median for _, _, median in leaves])
    price = np.round(rng.lognormal(np.log(medians[leaf]), _PRICE_SIGMA), 2)
    price = np.maximum(price, 0.5)
    order = np.lexsort((price, leaf))
    price = price[order]

    # Each leaf has a category_id with a code and one without (as in REES46, a
    # category_id either always or never carries a category_code).
    category_ids = _unique_ids(
        2 * n_leaves, 2_053_013_552_226_107_603, 2_232_732_116_498_514_827, rng
    ).reshape(n_leaves, 2)
    no_code = rng.random(n_products) < _SHARE_NO_CODE
    category_id = category_ids[leaf, no_code.astype(np.int64)]
    code = np.where(no_code, -1, leaf).astype(np.int16)

    brands = sorted({b for m in mains for b in _TAXONOMY[m][1]})
    brand = np.full(n_products, -1, dtype=np.int16)
    main = leaf_main[leaf]
    has_brand = rng.random(n_products) >= _SHARE_NO_BRAND
    for m, name in enumerate(mains):
        names = _TAXONOMY[name][1]
        rows = np.flatnonzero((main == m) & has_brand)
        zipf = 1.0 / np.arange(1, len(names) + 1)
        pick = _sample_cdf(_to_cdf(zipf), rng.random(rows.size))
        brand[rows] = np.array([brands.index(b) for b in names], dtype=np.int16)[pick]

    main_first_leaf = np.searchsorted(leaf_main, np.arange(len(mains) + 1))
    return {
        "price": price,
        "product_id": _unique_ids(n_products, 1_000_000, 99_999_999, rng),
        "category_id": category_id,
        "code": code,
        "code_dtype": pd.CategoricalDtype(pd.Index([c for _, c, _ in leaves], dtype=_STR_DTYPE)),
        "brand": brand,
        "brand_dtype": pd.CategoricalDtype(pd.Index(brands, dtype=_STR_DTYPE)),
        "leaf_start": leaf_start,
        "leaf_count": leaf_count,
        "leaf_cdf": _to_cdf(leaf_weight),
        "main_cdf": _to_cdf(main_share),
        "main_first_leaf": main_first_leaf,
    }


# Two ASCII hex digits per byte value, as one uint16 each.
_HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), np.uint16)


def _uuid_strings(n: int, rng: np.random.Generator) -> pd.Index:
    """``n`` distinct random version-4 UUID strings, in ascending order.

    The first 48 bits are distinct sorted draws, the rest random, so the strings are
    unique and sorted by construction (pandas then checks uniqueness cheaply). They are
    built as bytes and handed to Arrow in one go, never as Python strings one by one.
    """
    head = np.sort(rng.integers(0, 2**48 - n + 1, size=n, dtype=np.int64))
    head += np.arange(n, dtype=np.int64)
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, :6] = head.astype(">u8").view(np.uint8).reshape(n, 8)[:, 2:]
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = _HEX_PAIRS[raw].view(np.uint8)  # (n, 32) ASCII hex digits
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dashes, (a, b) in enumerate(((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))):
        text[:, a + dashes : b + dashes] = hexed[:, a:b]
    strings = _fixed_width_strings(text)
    return pd.Index(pd.array(strings, dtype=_STR_DTYPE))
