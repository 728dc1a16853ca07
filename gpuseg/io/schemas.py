"""The two input shapes gpuseg understands and how a file's columns are matched to them.

``events``
    REES46 / Open CDP event logs: ``event_time, event_type, product_id, category_id,
    category_code, brand, price, user_id, user_session``.
``orders``
    One row per order or order line: ``customer_id, timestamp, amount`` and optionally
    ``order_id, quantity, unit_price, product_id, category, description, status, currency``
    (UCI Online Retail, CDNOW, shop exports). When ``amount`` is absent it is
    ``quantity * unit_price`` (``unit_price`` alone without quantities: one item per line).
    ``status`` drops orders that were not paid or were undone, ``currency`` keeps amounts of
    one currency (:mod:`gpuseg.prep.clean`).

Column names match exactly, after ``--rename``, or ignoring case and punctuation
(``CustomerID`` matches ``customer_id``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SchemaError

__all__ = ["Schema", "EVENTS", "ORDERS", "SCHEMAS", "EVENT_TYPES", "match_columns", "detect_format", "read_as"]

#: Event types of the REES46 schema, in funnel order; their codes are the positions.
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")


@dataclass(frozen=True)
class Schema:
    """Columns of one input format.

    Attributes
    ----------
    name : str
    required : tuple of str
        Columns that must be present.
    optional : tuple of str
        Columns used when present.
    customer : str
        The customer-id column.
    time : str
        The timestamp column.
    numeric : tuple of str
        Columns that must hold numbers.
    categorical : tuple of str
        Text columns kept as categories.
    ids : tuple of str
        Identifier columns, read as text so that "000027" stays "000027".
    alternatives : tuple
        (column, columns that can stand in for it).
    aliases : tuple
        (column, other names it often has in exported logs): compared as :func:`_norm`
        writes them, tried in this order after the exact and the case-insensitive names.
    """

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    customer: str
    time: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ids: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional

    def describe(self) -> str:
        instead: dict[str, list[str]] = {}
        for col, alt in self.alternatives:
            instead.setdefault(col, []).append(" and ".join(alt))
        return f"{self.name} need {', '.join(self.required)}" + "".join(
            f" (or {', or '.join(alts)}, instead of {col})" for col, alts in instead.items())


EVENTS = Schema(
    name="events",
    required=("event_time", "event_type", "user_id", "price"),
    optional=("product_id", "category_id", "category_code", "brand", "user_session"),
    customer="user_id",
    time="event_time",
    numeric=("price",),
    categorical=("event_type", "category_code", "brand", "user_session"),
    ids=("user_id", "user_session", "product_id"),
)

ORDERS = Schema(
    name="orders",
    required=("customer_id", "timestamp", "amount"),
    optional=("order_id", "quantity", "unit_price", "product_id", "category", "description", "status", "currency"),
    customer="customer_id",
    time="timestamp",
    numeric=("amount", "quantity", "unit_price"),
    categorical=("category", "description", "status", "currency"),
    ids=("customer_id", "order_id", "product_id"),
    alternatives=(("amount", ("quantity", "unit_price")), ("amount", ("unit_price",))),  # one item per line
    aliases=(  # UCI Online Retail (I and II), shop-system and spreadsheet exports
        ("customer_id", ("customer", "customerno", "customernumber", "clientid", "client", "buyerid",
                         "shopperid", "memberid", "userid", "custid", "customeruserid",
                         "email", "customeremail", "billingemail")),  # shop exports without a customer number
        ("timestamp", ("invoicedate", "orderdate", "orderdatetime", "ordertime", "orderedat", "purchasedate",
                       "purchasetime", "purchasedat", "orderpurchasetimestamp", "transactiondate",
                       "transactiontime", "saledate", "createdat", "paidat", "datetime", "date", "time")),
        ("amount", ("ordertotal", "totalamount", "orderamount", "ordervalue", "total", "revenue", "sales",
                    "salesamount", "saleamount", "grandtotal", "ordertotalamount", "amountpaid", "totalpaid",
                    "linetotal", "totalprice", "paymentvalue", "spend")),
        ("order_id", ("invoice", "invoiceno", "invoicenumber", "invoiceid", "orderno", "ordernumber",
                      "transactionid", "receiptid", "basketid")),
        ("quantity", ("qty", "quantityordered")),
        ("unit_price", ("price", "itemprice", "priceeach", "priceperunit")),
        ("product_id", ("stockcode", "sku", "productcode", "itemid", "articleid")),
        ("category", ("productcategory", "categoryname", "productcategoryname")),
        ("description", ("productname", "itemname", "productdescription")),
        # paid, refunded, cancelled ... (Shopify's "Financial Status"; not its "Fulfillment Status")
        ("status", ("orderstatus", "financialstatus", "paymentstatus", "transactionstatus")),
        ("currency", ("currencycode", "ordercurrency")),
    ),
)

SCHEMAS = {"events": EVENTS, "orders": ORDERS}


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def match_columns(
    columns: list[str], schema: Schema, rename: dict[str, str] | None = None
) -> dict[str, str]:
    """Map source column names to the schema's names.

    Parameters
    ----------
    columns : list of str
        The file's columns.
    schema : Schema
    rename : dict, optional
        Explicit source -> schema names; they win over automatic matching.

    Returns
    -------
    dict
        ``{source_name: schema_name}`` for every schema column found.
    """
    rename = dict(rename or {})
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for src, dst in rename.items():
        if src in columns:
            mapping[src] = dst
            taken.add(dst)
    # exact names, then case/punctuation-insensitive ones
    for target in schema.columns:
        if target in taken:
            continue
        if target in columns and target not in mapping:
            mapping[target] = target
            taken.add(target)
    wanted = {_norm(t): t for t in schema.columns if t not in taken}
    for src in columns:
        if src in mapping:
            continue
        t = wanted.get(_norm(src))
        if t is not None and t not in taken:
            mapping[src] = t
            taken.add(t)
    _match_aliases(columns, schema, mapping, taken)
    return {s: d for s, d in mapping.items() if d in schema.columns}


def _match_aliases(columns: list[str], schema: Schema, mapping: dict[str, str], taken: set[str]) -> None:
    """Columns still unmatched, by the schema's other names for them (``InvoiceDate``)."""
    free: dict[str, str] = {}
    for src in columns:
        if src not in mapping:
            free.setdefault(_norm(src), src)
    guessed: dict[str, str] = {}
    for target, names in schema.aliases:
        if target in taken:
            continue
        src = next((free[n] for n in names if n in free and free[n] not in mapping), None)
        if src is not None:
            mapping[src] = target
            taken.add(target)
            guessed[target] = src
    if "amount" in guessed and {"quantity", "unit_price"} <= taken and _norm(guessed["amount"]) in _ORDER_TOTALS:
        # beside a quantity and a unit price, an order's total may stand on each of its lines:
        # the line amount is quantity * unit_price ("Line Total" is one, and is kept)
        del mapping[guessed["amount"]]
        taken.discard("amount")


#: Other names of ``amount`` that may be an order's total rather than its line's.
_ORDER_TOTALS = frozenset({"ordertotal", "totalamount", "orderamount", "ordervalue", "total", "grandtotal",
                           "ordertotalamount", "amountpaid", "totalpaid", "paymentvalue"})


def unused_time_column(columns: list[str], mapping: dict[str, str], schema: Schema) -> str | None:
    """A column of times of day that the time read does not hold: ``Time`` (or ``Order Time``)
    beside the ``Date`` (or ``Order Date``) column read as the timestamp, which the readers
    join to it (:func:`gpuseg.io.readers.canonicalize_pair`); None when there is no such pair."""
    date = next((src for src, dst in mapping.items() if dst == schema.time), None)
    if date is None or not _norm(date).endswith("date"):
        return None
    wanted = {"time", _norm(date)[: -len("date")] + "time"}
    return next((c for c in columns if c not in mapping and _norm(c) in wanted), None)


def read_as(mapping: dict[str, str], rename: dict[str, str] | None = None) -> str:
    """What a run says of the columns matched by another name (not by the name itself in
    other case or punctuation, nor by the user's ``rename``): ``"; columns read as
    InvoiceDate = timestamp, InvoiceNo = order_id"``, or ``""``."""
    rename = rename or {}
    pairs = [f"{s} = {d}" for s, d in mapping.items() if s not in rename and _norm(s) != _norm(d)]
    return f"; columns read as {', '.join(pairs)}" if pairs else ""


def _refuse_ambiguous(columns: list[str], mapping: dict[str, str], rename: dict[str, str], source: str) -> None:
    """Refuse two columns that differ only in case or punctuation (``User ID`` and ``USER_ID``)
    where one was matched that way: which of them holds the data is a guess."""
    for src, dst in mapping.items():
        if src in rename or src == dst:
            continue
        other = next((c for c in columns if c != src and c not in mapping and _norm(c) == _norm(src)), None)
        if other is not None:
            raise SchemaError(f"{source}: columns {src!r} and {other!r} could both be {dst}; say which with "
                              f"--rename '{src}={dst}' '{other}={other}_other'")


def _missing(found: set[str], schema: Schema) -> list[str]:
    missing = [c for c in schema.required if c not in found]
    for col, alt in schema.alternatives:
        if col in missing and all(a in found for a in alt):
            missing.remove(col)
    return missing


def detect_format(
    columns: list[str], fmt: str = "auto", rename: dict[str, str] | None = None, source: str = "input"
) -> tuple[Schema, dict[str, str]]:
    """Decide whether columns are events or orders and map them.

    Parameters
    ----------
    columns : list of str
    fmt : {"auto", "events", "orders"}
    rename : dict, optional
    source : str
        File name for messages.

    Returns
    -------
    (Schema, dict)
        The schema and ``{source_name: schema_name}``.

    Raises
    ------
    SchemaError
        Required columns are missing; the message lists what each format needs and what
        the file has.
    """
    rename = dict(rename or {})
    unknown = [old for old in rename if old not in columns]
    if unknown:
        raise SchemaError(
            f"--rename {unknown[0]}=...: {source} has no column {unknown[0]!r} (columns: {_list(columns)})"
        )
    for old, new in rename.items():
        # the file's own column of that name would be dropped without a word
        clash = next((c for c in columns if c != old and c not in rename and _norm(c) == _norm(new)), None)
        if clash is not None:
            raise SchemaError(f"--rename {old}={new}: {source} already has a column {clash!r}, which would be left "
                              f"out; rename it too (e.g. --rename {clash}={clash}_original) or choose another name")
    candidates = [SCHEMAS[fmt]] if fmt != "auto" else [EVENTS, ORDERS]
    results = []
    for schema in candidates:
        mapping = match_columns(columns, schema, rename)
        missing = _missing(set(mapping.values()), schema)
        if fmt == "auto" and schema is ORDERS and _has_event_types(results):
            continue  # an event log lacking a column: say what it lacks as one
        if not missing:
            _refuse_ambiguous(columns, mapping, rename, source)
            return schema, mapping
        results.append((schema, missing, mapping))
    if fmt != "auto":
        schema, missing, _ = results[0]
        raise SchemaError(
            f"{source} lacks column(s) {', '.join(missing)} needed for {schema.name} input "
            f"(columns: {_list(columns)}); map yours with --rename OLD=NEW"
        )
    # auto: explain both, nearest first
    results.sort(key=lambda r: len(r[1]))
    schema, missing, mapping = results[0]
    if mapping and len(missing) < len(schema.required):
        raise SchemaError(
            f"{source} looks like {schema.name} input but lacks {', '.join(missing)} "
            f"(columns: {_list(columns)}); map yours with --rename OLD=NEW or choose --format"
        )
    raise SchemaError(
        f"{source} has none of the expected columns: {EVENTS.describe()}; {ORDERS.describe()} "
        f"(columns: {_list(columns)}); map yours with --rename OLD=NEW"
    )


def _has_event_types(tried: list) -> bool:
    """Whether the event schema, tried first, found an ``event_type`` column: such a file is
    an event log with a column missing, not orders (its views would count as purchases)."""
    return any(schema is EVENTS and "event_type" in mapping.values() for schema, _, mapping in tried)


def _list(columns: list[str], limit: int = 12) -> str:
    shown = ", ".join(map(str, columns[:limit]))
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "") if columns else "none"
