"""What Dask workers run: reading a piece of the input, hashing rows to customer buckets,
cleaning and per-customer features of one bucket, and the small statistics the client
combines. Plain functions of plain arguments (pickled by reference).

Every bucket holds all rows of its customers, so per-customer results are exact; what needs
all rows (the price fence, the top categories, the median price per group, the reference
time, whether a data-dependent feature exists) is computed from the buckets' statistics on
the client and handed back, the way a saved model hands its state to new data.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import backend as _backend
from ..io.readers import whole_floats_as_text
from ..prep.clean import ID_BLANKS, WHOLE_FLOAT_TAIL
from ..prep.features import price_key_names

__all__ = [
    "read_piece", "bucket_of", "clean_bucket", "clean_stats", "fence_counts", "features_rows", "sample_hash",
    "cleaned_stats", "features_of", "insight_rows", "len_or_zero", "for_shuffle", "bucket_frame", "identity",
]


def _be(name: str) -> Any:
    return _backend.select(name)


# --- reading ---------------------------------------------------------------------------------


def read_piece(piece: tuple, kind: str, columns: list[str], categorical: list[str], ids: list[str],
               schema_name: str, mapping: dict[str, str], ts_format: str, backend: str,
               pair: tuple[str, str] | None = None, strict: bool | None = None) -> tuple[Any, dict]:
    """One piece of the input (a file, Parquet row groups or a CSV byte range) as a
    canonical frame, and {rows, malformed, timestamp_format, notes, time_sample}. ``pair``: a
    Date and a Time column, read as text and joined (:func:`gpuseg.io.readers.canonicalize_pair`).
    ``strict`` (default: whether ``ts_format`` is given): False for a format chosen for all
    pieces (:func:`gpuseg.dist._one_time_format`), which reads ISO 8601 times beside it as a
    detected format does. ``time_sample``: some of the time column's text (none for typed
    times or a Date and Time pair), for that choice."""
    from ..io import readers
    from ..io.schemas import SCHEMAS

    be = _be(backend)
    path = Path(piece[0])
    # the pair is read as text, as the ids are (int64 ids are made per bucket, after cleaning)
    frame, malformed = read_piece_frame(piece, be, kind, columns, categorical, [*ids, *(pair or ())])
    rows = len(frame)
    if rows == 0:
        return None, {"rows": 0, "malformed": malformed, "timestamp_format": "", "categories": {}}
    examples: dict[str, str] = {}  # one unreadable value per column, for the clean line (as one process says it)
    schema = SCHEMAS[schema_name]
    time = next((src for src, dst in mapping.items() if dst == schema.time), None)
    text = pair is None and time in frame.columns and readers._is_text_series(frame[time])
    time_sample = readers._host_sample(frame[time], 200) if text else []
    frame, used, notes = readers.canonicalize_pair(frame, pair, schema, mapping, be, ts_format,
                                                   source=str(path), examples=examples, strict=strict)
    categories = {}
    if not be.is_gpu:  # the few values of the low-cardinality text columns, for one global encoding
        for col in SHUFFLE_CODED:
            if col in frame.columns and str(frame[col].dtype) == "category":
                categories[col] = [str(c) for c in frame[col].cat.categories]
    return frame, {"rows": rows + malformed, "malformed": malformed, "timestamp_format": used,
                   "categories": categories, "examples": examples, "notes": notes, "time_sample": time_sample}


def read_piece_frame(piece: tuple, be: Any, kind: str, columns: list[str], categorical: list[str],
                     ids: list[str]) -> tuple[Any, int]:
    """The input columns of one piece on ``be``'s device, and its malformed CSV rows.

    Ids keep the type the file stores them as: text in CSV on every piece, whether cuDF
    (``dtype`` str), PyArrow for a byte range or a whole (gzip) file reads it; the Parquet
    column's own type. Never int64 by what one piece holds: pieces that disagree cannot be
    shuffled together (cleaning makes plain-integer ids int64 per bucket).
    """
    from ..io import readers

    path = Path(piece[0])
    malformed = 0
    if piece[1] == "file":
        if be.is_gpu:
            return readers._read_gpu([path], kind, columns, [*ids, *(c for c in categorical if c not in ids)])
        return readers._read_cpu([path], kind, columns, categorical, ids, int_ids=False)
    if piece[1] == "row_groups":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).read_row_groups(list(piece[2]), columns=columns)
    else:  # ("csv_range", start, end)
        table, malformed = _read_csv_range(path, piece[2], piece[3], columns, ids)
    frame = readers.arrow_to_pandas(table, categorical)
    return (be.frame.from_pandas(frame) if be.is_gpu else frame), malformed


#: Text columns with few distinct values that cross the shuffle as int32 codes of one
#: global vocabulary (as text they would take most of the shuffle's memory).
SHUFFLE_CODED = ("event_type", "category_code", "brand", "category")


def _read_csv_range(path: Path, start: int, end: int, columns: list[str], ids: list[str]) -> tuple[Any, int]:
    """The rows whose first byte lies in [start, end) of an uncompressed CSV, with the header."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from ..io.readers import _delimiter, _quiet_row_handler, padded_header

    with open(path, "rb") as fh:
        header = fh.readline()
        if start <= len(header):
            start = len(header)
        else:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                fh.readline()  # the rest of a row that began before start
            start = fh.tell()
        fh.seek(start)
        body = fh.read(max(end - start, 0))
        if body and not body.endswith(b"\n"):
            body += fh.readline()  # the row that crosses end
    bad = [0]

    def skip(row: Any) -> str:
        bad[0] += 1
        return "skip"

    padded = padded_header(path)
    names = {} if padded is None else {"column_names": padded, "skip_rows": 1}
    for encoding in ("utf8", "latin-1"):
        try:
            with _quiet_row_handler(skip):  # a non-UTF-8 ragged row: no "Exception ignored" print before Latin-1
                table = pacsv.read_csv(
                    io.BytesIO(header + body),
                    read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 24, **names),
                    parse_options=pacsv.ParseOptions(delimiter=_delimiter(path), invalid_row_handler=skip),
                    convert_options=pacsv.ConvertOptions(include_columns=columns, strings_can_be_null=True,
                                                         column_types={c: pa.string() for c in columns}),
                )
            return table, bad[0]
        except pa.ArrowInvalid:
            bad[0] = 0
            continue
    from ..errors import DataError

    raise DataError(f"{path}: bytes {start}..{end} cannot be parsed as CSV")


# --- buckets ---------------------------------------------------------------------------------


def bucket_of(frame: Any, customer: str, n_buckets: int) -> Any:
    """Bucket of every row: a hash of its customer id (the same id, the same bucket, on
    every worker and device)."""
    if frame is None:
        return None
    ids = frame[customer]
    if str(ids.dtype) == "category":
        ids = ids.astype(ids.cat.categories.dtype)
    # the text of the id: a piece may hold 123 as an integer and another as "123", or as the
    # float 123.0 (a part with a missing id): "123.0" hashes as "123", as cleaning reads it
    # (clean._plain_ids). Stripping ".0" from other text only puts "A.0" in the bucket of
    # "A": cleaning still tells them apart.
    if ids.dtype.kind == "f":  # whole floats as integers (cuDF writes 6543210987654.0 as 6.543210987654e+12)
        ids = whole_floats_as_text(ids)
    elif ids.dtype.kind not in "iu":
        ids = ids.astype("str").str.strip(ID_BLANKS)  # " 123" is customer 123 (clean._with_trimmed_ids)
        if bool(ids.str.contains(".", regex=False).any()):
            ids = ids.str.replace(WHOLE_FLOAT_TAIL, "", regex=True)
        # "Ann@Shop.com" and "ann@shop.com" are one customer (clean._with_folded_emails): one
        # bucket; other ids that differ in case only share a bucket, and cleaning keeps them apart
        ids = ids.str.lower()
    ids = ids.astype("str")
    if hasattr(ids, "to_pandas"):
        return (ids.hash_values() % n_buckets).astype("int32")
    h = pd.util.hash_pandas_object(ids, index=False)
    return (h % np.uint64(n_buckets)).astype("int32")


# --- cleaning and statistics ------------------------------------------------------------------


def _loaded(frame: Any, schema_name: str, mapping: dict[str, str]) -> Any:
    from ..io.readers import LoadedData
    from ..io.schemas import SCHEMAS

    return LoadedData(frame=frame, schema=SCHEMAS[schema_name], files=[], rows_read=len(frame), column_map=mapping)


def fence_counts(frame: Any, schema_name: str, mapping: dict[str, str], clean_cfg: Any, backend: str) -> Any:
    """Counts of every price that cleaning keeps before the outlier fence (the fence's
    input), as a pandas Series price -> count."""
    import dataclasses

    from ..prep.clean import NoRowsError, clean

    if frame is None:
        return pd.Series(dtype="int64")
    cfg = dataclasses.replace(clean_cfg, price_outliers="off")
    try:
        cleaned = clean(_loaded(frame, schema_name, mapping), cfg, _be(backend))
    except NoRowsError:  # no usable row in this bucket
        return pd.Series(dtype="int64")
    counts = cleaned.frame["price"].value_counts()
    return counts.to_pandas() if hasattr(counts, "to_pandas") else counts


def clean_bucket(frame: Any, schema_name: str, mapping: dict[str, str], clean_cfg: Any, fitted: dict,
                 backend: str) -> Any:
    """The bucket cleaned with the global fence; None when no row survives (its drops are
    still counted: a CleanedData with an empty frame would break the feature code, so the
    counts travel as a dict)."""
    from ..prep.clean import NoRowsError, clean

    if frame is None:
        return None
    try:
        return clean(_loaded(frame, schema_name, mapping), clean_cfg, _be(backend), fitted=fitted)
    except NoRowsError as exc:  # a bucket of bad rows only: its drops and lost customers still count
        excluded = exc.excluded
        return {"rows_in": exc.rows_in, "dropped": dict(exc.dropped), "excluded": excluded,
                "customers_in": 0 if excluded is None else len(excluded),
                "customers_touched": {}}


def clean_stats(frame: Any, schema_name: str, mapping: dict[str, str], clean_cfg: Any, fitted: dict,
                backend: str, seed: int) -> dict[str, Any]:
    """:func:`cleaned_stats` of :func:`clean_bucket`, keeping nothing (under a memory limit
    the cleaned buckets are not held: the feature pass cleans them again)."""
    return cleaned_stats(clean_bucket(frame, schema_name, mapping, clean_cfg, fitted, backend), seed)


#: The report's sample of customers is chosen by the top bits of a seeded hash of their id:
#: every bucket counts its customers per bin, the client picks the bins.
SAMPLE_BITS = 12


def sample_hash(ids: Any, seed: int) -> np.ndarray:
    """Seeded 64-bit hash of customer ids (host array, one per id)."""
    ids = pd.Series(np.asarray(_host(ids))).astype(str)
    return pd.util.hash_pandas_object(ids, index=False, hash_key=f"gpuseg{seed % 10**10:010d}").to_numpy()


def _customers(cleaned: Any) -> np.ndarray:
    return np.asarray(_host(cleaned.frame["customer_id"].unique()))


def cleaned_stats(cleaned: Any, seed: int = 0) -> dict[str, Any]:
    """What the client needs from a cleaned bucket: row counts, drops, fills, the last
    event, main-category counts by name, (price group, price) counts, the vocabularies,
    whether the data-dependent features have data, and its customers per sample bin."""
    if cleaned is None:
        return {"rows_in": 0, "rows_out": 0, "dropped": {}, "filled": {}}
    if isinstance(cleaned, dict):
        return {"rows_in": cleaned["rows_in"], "rows_out": 0, "dropped": cleaned["dropped"], "filled": {},
                **{k: cleaned[k] for k in ("excluded", "customers_in", "customers_touched") if k in cleaned}}
    f = cleaned.frame  # counted on its device; only the counts come to the host
    main = _host(f.loc[f["main_cat"] >= 0, "main_cat"].value_counts())
    main = {cleaned.main_categories[int(c)]: int(n) for c, n in main.items()}
    pairs = _host(f.groupby(["price_key", "price"], sort=False).size().rename("count").reset_index())
    pairs["price_key"] = price_key_names(cleaned, pairs["price_key"].to_numpy())
    out = {
        "rows_in": cleaned.rows_in, "rows_out": cleaned.rows_out, "dropped": dict(cleaned.dropped),
        "filled": dict(cleaned.filled), "drop_examples": dict(cleaned.drop_examples),
        "reference_time": int(cleaned.reference_time), "main": main,
        "capped": dict(cleaned.capped), "customers_in": cleaned.customers_in,
        "capped_spend": cleaned.capped_spend, "status_read": cleaned.status_read, "currency": cleaned.currency,
        "unknown_statuses": dict(cleaned.unknown_statuses), "emails_merged": cleaned.emails_merged,
        "coarse_copies_kept": cleaned.coarse_copies_kept,
        "customers_touched": dict(cleaned.customers_touched), "excluded": cleaned.excluded,
        "price_pairs": pairs, "kind": cleaned.kind, "price_group": cleaned.price_group,
        "sessions_derived": cleaned.sessions_derived, "date_only": cleaned.date_only,
        "source_columns": cleaned.source_columns,
        "fill_values": cleaned.fill_values, "columns": cleaned.columns,
        "brands": sorted(set(cleaned.brand_names)), "products": cleaned.product_names,
        "main_categories": list(cleaned.main_categories),
        "has_brand": bool((f["brand"] >= 0).any()) if "brand" in f.columns else False,
        "sample_bins": np.bincount((sample_hash(_customers(cleaned), seed) >> np.uint64(64 - SAMPLE_BITS))
                                   .astype(np.int64), minlength=1 << SAMPLE_BITS),
    }
    labels = cleaned.product_label_counts
    if labels is not None and len(labels) and cleaned.product_names is not None:  # codes are this bucket's
        labels = labels.assign(product=[cleaned.product_names[int(c)] for c in labels["product"]])
    out["product_labels"] = labels
    if cleaned.kind == "orders":
        out["has_quantity"] = bool((f["quantity"] != 1.0).any())
        out["has_unit_price"] = bool((f["price"] != f["amount"]).any())
    return out


def _host(obj: Any) -> Any:
    return obj.to_pandas() if hasattr(obj, "to_pandas") else obj


def features_of(cleaned: Any, feature_cfg: Any, spec: Any, reference_time: int) -> Any:
    """Per-customer features of a cleaned bucket with the global spec: (frame, groups,
    bounded), the frame pandas or cuDF."""
    from ..prep.features import customer_features

    if cleaned is None or isinstance(cleaned, dict):
        return None
    out = customer_features(cleaned, feature_cfg, spec, reference_time)
    return out.frame, out.groups, sorted(out.bounded)


def bucket_frame(frame: Any, vocab: dict[str, list[str]] | None = None) -> Any:
    """A shuffled partition as a plain frame (None when empty), coded columns back to
    categories."""
    if frame is None or len(frame) == 0:
        return None
    frame = frame.reset_index(drop=True)
    for col, values in (vocab or {}).items():
        if col in frame.columns:
            frame[col] = pd.Categorical.from_codes(frame[col].to_numpy(), categories=values)
    return frame


def identity(obj: Any) -> Any:
    """A small object as a task's result (computed again if its worker dies)."""
    return obj


def len_or_zero(frame: Any) -> int:
    return 0 if frame is None else len(frame)


def features_rows(bucket: Any, clean_args: tuple | None, feature_cfg: Any, spec: Any, reference_time: int,
                  seed: int, sample_bins: int, main_categories: list[str], brands: list[str],
                  products: list[str] | None, value: bool = False) -> tuple[Any, Any, Any]:
    """(:func:`features_of`, :func:`insight_rows`, :func:`purchases_of` when ``value``) of a
    cleaned bucket, or of a raw bucket cleaned first when ``clean_args`` (those of
    :func:`clean_bucket` after the frame) are given; the cleaned rows are dropped when the
    task ends."""
    cleaned = clean_bucket(bucket, *clean_args) if clean_args is not None else bucket
    return (features_of(cleaned, feature_cfg, spec, reference_time),
            insight_rows(cleaned, seed, sample_bins, main_categories, brands, products),
            purchases_of(cleaned, reference_time) if value else None)


def purchases_of(cleaned: Any, reference_time: int) -> Any:
    """The bucket's :func:`gpuseg.segments.value.purchase_history` (host pandas; a bucket
    holds every row of its customers, so the histories of all buckets concatenate)."""
    from ..segments.value import purchase_history

    if cleaned is None or isinstance(cleaned, dict):
        return None
    return purchase_history(cleaned.frame, cleaned.kind, reference_time)


def insight_rows(cleaned: Any, seed: int, sample_bins: int, main_categories: list[str], brands: list[str],
                 products: list[str] | None) -> Any:
    """The cleaned rows of the customers in the first ``sample_bins`` bins of the seeded
    hash (the report's sample), with category, brand and product codes translated to the
    global vocabularies."""
    if cleaned is None or isinstance(cleaned, dict) or sample_bins <= 0:
        return None
    ids = _customers(cleaned)
    chosen = ids[(sample_hash(ids, seed) >> np.uint64(64 - SAMPLE_BITS)) < np.uint64(sample_bins)]
    if not len(chosen):
        return None
    f = cleaned.frame
    if hasattr(f, "to_pandas"):  # only the sample's rows come to the host
        f = f[f["customer_id"].isin(list(chosen))]
    host = _host(f)
    host = host[host["customer_id"].isin(chosen)].copy()
    if not len(host):
        return None

    def remap(col: str, local: list[str], glob: list[str]) -> None:
        index = {name: i for i, name in enumerate(glob)}
        lut = np.array([index.get(name, -1) for name in local] + [-1], dtype=np.int64)
        codes = host[col].to_numpy().astype(np.int64)
        host[col] = lut[np.where(codes >= 0, codes, len(local))]

    remap("main_cat", list(cleaned.main_categories), main_categories)
    if cleaned.brand_names:
        remap("brand", list(cleaned.brand_names), brands)
    if cleaned.product_names is not None and products is not None:
        remap("product", list(cleaned.product_names), products)
    return host


def for_shuffle(read: tuple, customer: str, n_buckets: int, vocab: dict[str, list[str]] | None = None) -> Any:
    """A piece's frame with its rows' ``_bucket``, ready for Dask's shuffle: the columns of
    ``vocab`` as int32 codes of those global values (-1 missing), other categories as text
    (pieces encode categories differently; cleaning encodes them again)."""
    frame = read[0]
    if frame is None:
        return None
    frame = frame.copy()
    for col, values in (vocab or {}).items():
        if col in frame.columns:
            if str(frame[col].dtype) != "category":  # a piece where the column is all empty, say
                frame[col] = frame[col].astype("category")
            index = {v: i for i, v in enumerate(values)}
            lut = np.array([index.get(str(c), -1) for c in frame[col].cat.categories] + [-1], dtype=np.int32)
            codes = frame[col].cat.codes.to_numpy()
            frame[col] = lut[np.where(codes >= 0, codes, len(lut) - 1)]
    if "user_session" in frame.columns:
        # sessions only need to be told apart within a customer: a 64-bit hash of the id
        # travels in 8 bytes instead of a 36-character UUID
        s = frame["user_session"]
        if str(s.dtype) == "category":
            s = s.astype(s.cat.categories.dtype)
        if hasattr(s, "to_pandas"):  # cuDF's int64 holds missing values itself
            hashed = s.astype("str").hash_values(method="xxhash64").astype("int64")
        else:
            # nullable in every piece, with or without a missing session: a float64 column in
            # some pieces could not hold the others' 64-bit hashes in the shuffle's concat
            hashed = pd.util.hash_pandas_object(s.astype("str"), index=False).astype("int64").astype("Int64")
        frame["user_session"] = hashed.where(s.notna())
    for col in frame.columns:
        if str(frame[col].dtype) == "category":
            frame[col] = frame[col].astype(frame[col].cat.categories.dtype)
    frame["_bucket"] = bucket_of(frame, customer, n_buckets)
    return frame
