"""Load, clean and engineer features on a Dask cluster (dask-cuda on GPUs, processes on CPUs).

The input is cut into pieces (files, groups of Parquet row groups, byte ranges of an
uncompressed CSV) that workers read in parallel. Every row is then sent to one of
``partitions`` buckets by a hash of its customer id, so a bucket holds all rows of its
customers and the single-process cleaning and feature code runs on it unchanged. What
depends on all rows is computed from small per-bucket statistics on the client and handed
back to the buckets, as a saved model's state is handed to new data:

1. the price fence: exact quantiles from the buckets' price counts;
2. cleaning with that fence; from the cleaned buckets: row and drop counts, the last event
   (the reference time of recency), main-category counts (the top categories), the
   (price group, price) counts (the exact median price per group for ``price_index``) and
   whether brands, quantities and unit prices exist (the data-dependent features);
3. the per-customer features of every bucket with those settings: the customer table, the
   only thing materialised on the client, sorted by customer id as the single-process run
   sorts it.

The features equal the single-process run's up to float summation order. Clustering and
everything after it run on the customer table in the client process (3 million customers x
40 features is under 0.5 GB), except K-means when ``[dask] kmeans`` sends it to the
workers (:mod:`gpuseg.dist.kmeans`). The report's activity, category and product tables use the
rows of a seeded sample of ``insight_customers`` customers (all of them when there are
fewer); the run says so.

Only :mod:`gpuseg.backend` starts or joins the cluster; the worker functions live in
:mod:`gpuseg.dist.tasks`.
"""

from __future__ import annotations

import math
import operator
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import backend as _backend
from ..errors import DataError, DeviceError, SchemaError
from ..io.schemas import read_as
from ..prep.clean import describe_cleaning, examples_of_drops, fence_from_quartiles, no_exclusions
from . import tasks

__all__ = ["DistData", "load_clean_features", "plan_pieces", "weighted_quantile"]


@dataclass
class DistData:
    """What the distributed stages hand to the rest of the run."""

    cleaned: Any
    features: Any
    rows_read: int
    column_map: dict[str, str]
    timestamp_format: str
    pieces: int
    partitions: int
    workers: int
    insight_customers: int
    cleaned_held: bool = True
    #: the largest peak resident memory of the worker processes alive at the end, bytes
    #: (0: not known; a worker replaced during the run took its peak with it)
    peak_worker_memory: int = 0
    #: worker processes that were replaced during the run (died, or killed by their nanny)
    workers_replaced: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def plan_pieces(files: list[Path], kind: str, piece_bytes: int) -> list[tuple]:
    """Pieces of the input that workers read: Parquet row groups grouped to about
    ``piece_bytes`` of data, byte ranges of uncompressed CSV files, whole gzip files."""
    pieces: list[tuple] = []
    for f in files:
        if kind == "parquet":
            import pyarrow.parquet as pq

            try:
                meta = pq.ParquetFile(f).metadata
            except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's
                raise DataError(f"{f}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
            groups, size = [], 0
            for i in range(meta.num_row_groups):
                groups.append(i)
                size += meta.row_group(i).total_byte_size
                if size >= piece_bytes:
                    pieces.append((str(f), "row_groups", tuple(groups)))
                    groups, size = [], 0
            if groups:
                pieces.append((str(f), "row_groups", tuple(groups)))
        elif f.name.lower().endswith(".gz"):
            pieces.append((str(f), "file"))
        else:
            total = f.stat().st_size
            n = max(1, math.ceil(total / piece_bytes))
            step = math.ceil(total / n)
            pieces += [(str(f), "csv_range", start, min(start + step, total)) for start in range(0, total, step)]
    return pieces


#: What a worker process holds without data: Python, pandas, pyarrow, gpuseg, and what
#: the allocators keep after a task (measured: about 280 MB on CPU workers).
WORKER_BASELINE = 300 << 20


#: The cleaned buckets are held between the passes when the input's in-memory estimate is
#: at most this fraction of all workers' memory.
HOLD_FRACTION = 0.25


def task_budget(memory_limit: int) -> int:
    """Bytes of input one task may take: a 24th of what a worker's memory limit leaves
    after its baseline (parsing text and the shuffle's transfer take several times a
    piece's size; Dask spills finished results to disk from 60% of the limit and pauses
    the worker at 80%). 0 without a limit."""
    if not memory_limit:
        return 0
    return max((memory_limit - WORKER_BASELINE) // 24, 4 << 20)


def input_bytes(files: list[Path], kind: str) -> int:
    """Estimated in-memory size of the input: Parquet's uncompressed sizes, CSV's bytes
    (gzip: five times the file)."""
    total = 0
    for f in files:
        if kind == "parquet":
            import pyarrow.parquet as pq

            try:
                meta = pq.ParquetFile(f).metadata
                total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            except Exception:  # noqa: BLE001 - plan_pieces reports unreadable files
                total += f.stat().st_size
        else:
            total += f.stat().st_size * (5 if f.name.lower().endswith(".gz") else 1)
    return total


def weighted_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``q`` quantile with linear interpolation (NumPy's and pandas' default) of the data
    in which each of the sorted ``values`` occurs ``counts`` times."""
    n = int(counts.sum())
    h = (n - 1) * q
    lo = int(math.floor(h))
    cum = np.cumsum(counts)
    v_lo = values[np.searchsorted(cum, lo, side="right")]
    v_hi = values[np.searchsorted(cum, min(lo + 1, n - 1), side="right")]
    return float(v_lo + (h - lo) * (v_hi - v_lo))


def _customer_accounts(stats: list[dict]) -> dict[str, Any]:
    """The buckets' customer accounts added up (every customer lives in one bucket):
    customers in, per rule the customers touched, values capped and the excluded ones."""
    touched: dict[str, int] = {}
    capped: dict[str, int] = {}
    for s in stats:
        for key, total in (("customers_touched", touched), ("capped", capped)):
            for k, v in s.get(key, {}).items():
                total[k] = total.get(k, 0) + int(v)
    excluded = [s["excluded"] for s in stats if s.get("excluded") is not None and len(s["excluded"])]
    table = pd.concat(_ids_of_one_type(excluded, "customer_id"), ignore_index=True) if excluded else no_exclusions()
    return {"customers_in": sum(int(s.get("customers_in", 0)) for s in stats), "customers_touched": touched,
            "values_capped": capped, "customers_excluded": len(table), "excluded": table}


def _order_accounts(full: list[dict]) -> dict[str, Any]:
    """What the buckets' cleaning read of an order log's statuses and currency, the spend
    their capping changed, the e-mail ids merged and whether exact copies were kept for a
    clock of whole minutes, added up (``CleanedData`` fields)."""
    spend = [s["capped_spend"] for s in full if s.get("capped_spend")]
    unknown: dict[str, int] = {}
    for s in full:
        for k, v in (s.get("unknown_statuses") or {}).items():
            unknown[k] = unknown.get(k, 0) + int(v)
    return {"status_read": any(s.get("status_read") for s in full),
            "currency": next((s["currency"] for s in full if s.get("currency")), None),
            "capped_spend": (sum(b for b, _ in spend), sum(a for _, a in spend)) if spend else None,
            "unknown_statuses": dict(sorted(unknown.items(), key=lambda kv: -kv[1])[:5]),
            "emails_merged": sum(int(s.get("emails_merged", 0)) for s in full),
            "coarse_copies_kept": any(s.get("coarse_copies_kept") for s in full)}


def _ids_of_one_type(frames: list, column: str | None = None) -> list:
    """The buckets' frames with their customer ids (the index, or ``column``) of one type.

    Cleaning makes a bucket's ids int64 when every one of them is a plain integer, so one id
    with a leading zero left its bucket as text beside int64 buckets (and sorting them
    failed). Where the buckets differ, all become text: a plain integer's text is the file's
    (it has no leading zero), as one process reading the whole column keeps it. (Numbers
    stored as floats, "12346.0", read back as "12346" here: the one case that differs.)
    """
    def ids(f: Any) -> Any:
        return f.index if column is None else f[column]

    if len({ids(f).dtype.kind in "iuf" for f in frames}) < 2:
        return frames
    out = []
    for f in frames:
        if ids(f).dtype.kind in "iuf":
            f = f.copy(deep=False)
            if column is None:
                f.index = f.index.astype("str")
            else:
                f[column] = f[column].astype("str")
        out.append(f)
    return out


def _id_kind(typ: Any) -> str:
    """An Arrow type as the kind the shuffle cares about: text (dictionary or not), integers, ..."""
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "text"
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):  # a part with a missing id is float
        return "numbers"
    return str(typ)


def _refuse_mixed_id_types(files: list[Path], ids: list[str]) -> None:
    """Parquet parts that store an id column as different types cannot be shuffled together."""
    import pyarrow as pa

    from ..io.readers import parquet_schemas

    seen: dict[str, tuple[str, str]] = {}
    for f, schema in parquet_schemas(files):
        for col in ids:
            if col not in schema.names or pa.types.is_null(schema.field(col).type):  # an all-empty column
                continue
            typ = _id_kind(schema.field(col).type)
            first = seen.setdefault(col, (typ, f.name))
            if first[0] != typ:
                raise DataError(f"{f.parent}: column {col!r} is {first[0]} in {first[1]} and {typ} in {f.name}; "
                                "the Dask path needs one type in every part: write them alike, or run without "
                                "--cluster")


def _fence(counts: pd.Series, config: Any) -> tuple[float, float] | None:
    """The price fence of :func:`gpuseg.prep.clean._price_fence` from price counts."""
    if counts.empty:
        return None
    counts = counts.groupby(level=0).sum().sort_index()
    values = np.clip(counts.index.to_numpy(dtype=np.float64), 0, None)
    if config.iqr_on_log:
        values = np.log1p(values)
    c = counts.to_numpy()
    return fence_from_quartiles(weighted_quantile(values, c, 0.25), weighted_quantile(values, c, 0.75), config)


def _medians(pairs: list[pd.DataFrame]) -> dict[str, float]:
    """Exact median price per price group from (group, price, count) rows."""
    frames = [p for p in pairs if p is not None and len(p)]
    if not frames:
        return {}
    allp = pd.concat(frames, ignore_index=True).groupby(["price_key", "price"], sort=True)["count"].sum()
    out = {}
    for key, grp in allp.groupby(level=0, sort=False):  # "-1": the rows without a group
        out[str(key)] = weighted_quantile(grp.index.get_level_values(1).to_numpy(dtype=np.float64),
                                          grp.to_numpy(), 0.5)
    return out


def _product_labels(stats: list[dict], products: list[str] | None) -> dict[int, str]:
    """The buckets' product name counts summed, each product's most frequent name, keyed by
    the global product code (the id itself when ids are their codes)."""
    from ..prep.clean import best_labels

    tables = [s["product_labels"] for s in stats if s.get("product_labels") is not None and len(s["product_labels"])]
    if not tables:
        return {}
    best = best_labels(pd.concat(tables, ignore_index=True))
    if products is None:
        return {int(k): v for k, v in best.items()}
    code = {p: i for i, p in enumerate(products)}
    return {code[k]: v for k, v in best.items() if k in code}


def _worker_memory() -> tuple[int, int]:
    """(pid, peak resident bytes) of the process it runs in (a worker, by ``client.run``).

    Linux: ``VmHWM``, the high-water mark of this process image. ``ru_maxrss`` would be
    wrong there: it keeps the parent's size across the fork and exec that spawn a worker.
    """
    import os

    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return os.getpid(), int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return os.getpid(), 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return os.getpid(), int(peak) * (1 if sys.platform == "darwin" else 1024)


def workers_memory(client: Any) -> dict[str, tuple[int, int]]:
    """Every worker's (pid, peak resident bytes)."""
    return client.run(_worker_memory)


#: Results fetched from the workers in one request.
GATHER_BATCH = 8


def _gather(client: Any, futures: list, what: str) -> list:
    """The futures' results in order, fetched as they finish, a few at a time (gathering
    all at once makes every worker serialise all its results together: a spike above its
    memory limit)."""
    distributed = _backend.import_optional("distributed", hint=_backend.DASK_HINT)
    by_key: dict = {}
    try:
        for batch in distributed.as_completed(futures).batches():
            for i in range(0, len(batch), GATHER_BATCH):
                part = batch[i:i + GATHER_BATCH]
                by_key.update(zip((f.key for f in part), client.gather(part)))
        return [by_key[f.key] for f in futures]
    except (distributed.KilledWorker, distributed.client.FutureCancelledError) as exc:
        first = str(exc).splitlines()[0][:300]
        raise DeviceError(f"a Dask worker died repeatedly while {what} ({first}); give the workers more memory "
                          "(--memory-limit) or more partitions ([dask] partitions)") from None


def load_clean_features(session: Any, files: list[Path], kind: str, config: Any, be: Any,
                        stage: Callable[[str], Any], note: Callable[[str], None]) -> DistData:
    """The load, clean and features stages on the session's cluster.

    Parameters
    ----------
    session : DaskSession
    files, kind : from :func:`gpuseg.io.readers.resolve_paths`
    config : RunConfig
    be : Backend
        Where the workers compute (cuDF on dask-cuda workers, pandas otherwise).
    stage : callable
        ``stage(name)`` returns the pipeline's timing context manager for a stage.
    note : callable
        For what the user should know.

    Raises
    ------
    SchemaError, DataError
        As the single-process readers and cleaning raise them.
    DeviceError
        A worker died repeatedly.
    """
    client = session.client
    started = workers_memory(client)
    dd = _backend.import_optional("dask.dataframe", hint=_backend.DASK_HINT)
    schema, mapping = _detect_schema(files, kind, config)
    with stage("load") as st:
        loaded = _load_buckets(session, dd, files, kind, config, be, schema, mapping, note)
        st["detail"] = (f"{loaded.rows_read:,} rows of {schema.name} from {len(files)} file(s) in {loaded.pieces} "
                        f"pieces, hashed into {loaded.n_buckets} customer buckets on {session.workers} workers"
                        f"{read_as(mapping, dict(config.rename))}" + "".join(f"; {n}" for n in loaded.notes))
    with stage("clean") as st:
        cleaned = _clean_buckets(session, loaded, config, be, schema, mapping)
        found = {k: v for s in cleaned.full for k, v in s.get("drop_examples", {}).items()}  # cleaning's own
        cleaned.drop_examples = {**found, **examples_of_drops(loaded, cleaned.dropped)}
        st["detail"] = describe_cleaning({"rows_used": cleaned.rows_out, "rows_dropped": cleaned.dropped,
                                          "drop_examples": cleaned.drop_examples, "values_filled": cleaned.filled,
                                          **cleaned.accounts})
    with stage("features") as st:
        cleaned_all, feats, n_sample, n_customers = _bucket_features(client, loaded, cleaned, config, be)
        st["detail"] = f"{len(feats):,} customers x {len(feats.names)} features"
        if n_sample < n_customers:
            note(f"the report's activity, category and product tables use the rows of a seeded sample of "
                 f"{n_sample:,} of {n_customers:,} customers ([dask] insight_customers)")
        if not cleaned.hold:
            note("the cleaned rows did not fit easily in the workers' memory: the feature pass cleaned the "
                 "buckets again instead of holding them")
    ended = workers_memory(client)
    replaced = len({pid for pid, _ in started.values()} - {pid for pid, _ in ended.values()})
    peak = max((m for _, m in ended.values()), default=0)
    if replaced:
        note(f"{replaced} Dask worker process(es) died or were restarted during the run; Dask computed their "
             "tasks again")
    return DistData(cleaned_all, feats, loaded.rows_read, mapping, loaded.formats[0] if loaded.formats else "",
                    loaded.pieces, loaded.n_buckets, session.workers, n_sample, cleaned.hold, peak, replaced)


def _detect_schema(files: list[Path], kind: str, config: Any) -> tuple[Any, dict[str, str]]:
    """The schema and column mapping of the first file; every other part must have its columns."""
    from ..io.readers import read_header
    from ..io.schemas import detect_format

    headers = [read_header(f, kind) for f in files]
    schema, mapping = detect_format(headers[0], config.format, dict(config.rename), source=str(files[0]))
    for f, h in zip(files[1:], headers[1:]):
        lacking = [src for src in mapping if src not in h]
        if lacking:
            raise SchemaError(f"{f}: lacks column {lacking[0]!r} that {files[0].name} has; all parts need the same columns")
    return schema, mapping


@dataclass
class _Loaded:
    """What the load stage hands on: the customer buckets (futures) and the counts."""

    buckets: list | None
    rows_read: int
    malformed: int
    formats: list[str]
    pieces: int
    n_buckets: int
    size: int
    #: one unreadable value per input column (the pieces' first)
    examples: dict = field(default_factory=dict)
    #: what the load line says of the columns (a Date and a Time column joined), the pieces' first
    notes: list = field(default_factory=list)


def _one_time_format(client: Any, pieces: list, read: list, infos: list[dict], args: dict,
                     note: Callable[[str], None]) -> tuple[list, list[dict]]:
    """One detected time format for every piece where the pieces' own would read the same
    text to different dates, as one process detects one format for the whole column.

    Pieces detect their own: a piece whose days are all 12 or less reads month first, one with
    a 13th day first, and their customers' recency would disagree. Where two of the formats
    the pieces took read some sampled time to different instants, the one that reads the most
    of the piece it reads least of (ISO 8601 times beside it count as read, as the reader
    reads them) is taken and the other pieces are read again in it; where that is less than
    half of some piece, the run stops and asks for ``[clean] timestamp_format``. Formats that
    only differ in layout ("... UTC" beside plain ISO 8601) are left as they are."""
    text = [i for i, info in enumerate(infos) if info.get("time_sample")]
    used = sorted({infos[i]["timestamp_format"] for i in text})
    if len(used) < 2 or not _rival_formats(used, [v for i in text for v in infos[i]["time_sample"]]):
        return read, infos
    shares = [{f: _read_share(infos[i]["time_sample"], f) for f in used} for i in text]
    best = max(used, key=lambda f: (min(s[f] for s in shares), sum(s[f] for s in shares)))
    if min(s[best] for s in shares) < 0.5:
        raise DataError(f"the input's pieces hold timestamps in formats that read the same times to different dates "
                        f"({', '.join(used)}); give the one to read them all in with --config [clean] timestamp_format")
    again = [i for i in text if infos[i]["timestamp_format"] != best]
    redone = client.map(tasks.read_piece, [pieces[i] for i in again], **{**args, "ts_format": best}, strict=False)
    new_infos = _gather(client, client.map(operator.itemgetter(1), redone), "reading the input again")
    read, infos = list(read), list(infos)
    for i, future, info in zip(again, redone, new_infos):
        read[i], infos[i] = future, info
    note(f"timestamps read as {best!r} in every piece ({len(again)} of {len(pieces)} pieces alone read them "
         "otherwise, as a time column is read in one format)")
    return read, infos


def _parsed(sample: list[str], fmt: str) -> pd.Series:
    """The sample's times in ``fmt``, NaT where it does not read them (``ISO8601``, numeric
    and native formats read nothing here)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        out = pc.strptime(pa.array(sample, type=pa.string()), format=fmt, unit="s", error_is_null=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.Series(pd.NaT, index=range(len(sample)), dtype="datetime64[s]")
    return out.to_pandas()


def _rival_formats(formats: list[str], sample: list[str]) -> bool:
    """Whether two of ``formats`` read some of ``sample`` to different instants (month first
    and day first), not merely different layouts of the same times."""
    from ..io.readers import _read_apart

    parsed = {f: _parsed(sample, f) for f in formats}
    return any(_read_apart(parsed[a], parsed[b]) for i, a in enumerate(formats) for b in formats[i + 1:])


def _read_share(sample: list[str], fmt: str) -> float:
    """The share of ``sample`` that ``fmt``, with ISO 8601 times beside it, reads."""
    from ..io.readers import _ISO_DATE_TIME

    if not sample:
        return 0.0
    ok = _parsed(sample, fmt).notna().to_numpy() | pd.Series(sample).str.match(_ISO_DATE_TIME).to_numpy()
    return float(ok.mean())


def _load_buckets(session: Any, dd: Any, files: list[Path], kind: str, config: Any, be: Any, schema: Any,
                  mapping: dict[str, str], note: Callable[[str], None]) -> _Loaded:
    """Read the pieces and hash every row into the bucket of its customer (``dd``:
    ``dask.dataframe``)."""
    client, dk = session.client, config.dask
    read_kind = "parquet" if kind == "parquet" else "csv"
    if read_kind == "parquet":
        _refuse_mixed_id_types(files, [src for src, dst in mapping.items() if dst in schema.ids])
    budget = task_budget(session.memory_limit)
    piece_bytes = min(dk.piece_mb << 20, budget) if budget else dk.piece_mb << 20
    pieces = plan_pieces(files, read_kind, piece_bytes)
    size = input_bytes(files, read_kind)
    n_buckets = dk.partitions or max(2 * session.workers, min(len(pieces), 256), 2,
                                     math.ceil(size / budget) if budget else 0)
    from ..io.readers import date_time_pair, read_header

    pair = date_time_pair(read_header(files[0], kind), mapping, schema)  # a Time column beside the Date
    args = dict(kind=read_kind, columns=list(mapping) + ([pair[1]] if pair else []),
                categorical=[src for src, dst in mapping.items() if dst in schema.categorical],
                ids=[src for src, dst in mapping.items() if dst in schema.ids], schema_name=schema.name,
                mapping=mapping, ts_format=config.clean.timestamp_format, backend=be.name, pair=pair, pure=False)
    read = client.map(tasks.read_piece, pieces, **args)
    infos = _gather(client, client.map(operator.itemgetter(1), read), "reading the input")
    rows_read = sum(i["rows"] for i in infos)
    malformed = sum(i["malformed"] for i in infos)
    if rows_read == 0:
        raise DataError(f"{config.input}: no data rows")
    if not config.clean.timestamp_format:
        read, infos = _one_time_format(client, pieces, read, infos, args, note)
    formats = sorted({i["timestamp_format"] for i in infos if i["timestamp_format"]})
    if len(formats) > 1:
        note(f"the pieces' timestamps were read with {len(formats)} formats: {', '.join(formats)}")
    # every row to the bucket of its customer: Dask's (disk-backed, peer-to-peer)
    # shuffle, with the bucket as the index and one partition per bucket
    vocab: dict[str, set] = {}
    for i in infos:
        for col, values in i["categories"].items():
            vocab.setdefault(col, set()).update(values)
    vocab = {col: sorted(values) for col, values in vocab.items()}
    # a task's result, not scattered data: a worker that dies takes scattered data with
    # it, while a task's result is computed again
    vocab_future = client.submit(tasks.identity, vocab, pure=False) if vocab else None
    frames = client.map(tasks.for_shuffle, read, customer=schema.customer, n_buckets=n_buckets, vocab=vocab_future)
    del read
    frames = [f for f, i in zip(frames, infos) if i["rows"] > i["malformed"]]
    if not frames:
        raise DataError(f"{config.input}: no well-formed rows ({malformed:,} malformed)")
    meta = frames[0].result().iloc[:0]
    ddf = dd.from_delayed(frames, meta=meta, verify_meta=False)
    shuffled = ddf.set_index("_bucket", divisions=list(range(n_buckets)) + [n_buckets - 1])
    buckets = client.map(tasks.bucket_frame, client.compute(shuffled.to_delayed()), vocab=vocab_future)
    del frames, ddf, shuffled
    _gather(client, client.map(tasks.len_or_zero, buckets), "sending rows to their customer buckets")
    examples: dict[str, str] = {}
    for i in infos:
        for col, value in (i.get("examples") or {}).items():
            examples.setdefault(col, value)
    notes = next((i["notes"] for i in infos if i.get("notes")), [])  # the pieces' first
    return _Loaded(buckets, rows_read, malformed, formats, len(pieces), n_buckets, size, examples, notes)


@dataclass
class _Cleaned:
    """What the clean stage hands on: the cleaned buckets (futures) when they are held, else
    the raw ones with the arguments to clean them again; the buckets' statistics."""

    parts: list | None
    hold: bool
    clean_kw: dict[str, Any]
    fitted: dict[str, Any]
    full: list[dict]
    dropped: dict[str, int]
    filled: dict[str, int]
    accounts: dict[str, Any]
    rows_out: int
    #: one unreadable input value per drop reason (set after cleaning, from the readers')
    drop_examples: dict[str, str] = field(default_factory=dict)


def _clean_buckets(session: Any, loaded: _Loaded, config: Any, be: Any, schema: Any,
                   mapping: dict[str, str]) -> _Cleaned:
    """The global outlier fence, then every bucket cleaned (the raw buckets leave ``loaded``)."""
    client = session.client
    fitted = {"outlier_fence": None, "price_outliers": config.clean.price_outliers, "cap_top_only": True,
              "sessions_kept": True, "sessions_joined": True, "join_time": True, "fill": {},
              "status_read": True, "currency": config.clean.currency.strip().upper() or None,
              "emails_folded": True, "coarse_times_keep_copies": True}
    buckets, loaded.buckets = loaded.buckets, None
    if config.clean.price_outliers != "off":
        counts = _gather(client, client.map(tasks.fence_counts, buckets, schema_name=schema.name, mapping=mapping,
                                            clean_cfg=config.clean, backend=be.name), "cleaning")
        non_empty = [c for c in counts if len(c)]
        fitted["outlier_fence"] = _fence(pd.concat(non_empty), config.clean) if non_empty else None
    clean_kw = dict(schema_name=schema.name, mapping=mapping, clean_cfg=config.clean, fitted=fitted,
                    backend=be.name)
    # hold the cleaned buckets for the feature pass when they fit easily in the workers'
    # memory; else hold only the raw buckets (Dask spills them to disk) and clean again
    hold = not session.memory_limit or loaded.size <= HOLD_FRACTION * session.memory_limit * session.workers
    if hold:
        parts = client.map(tasks.clean_bucket, buckets, **clean_kw)
        del buckets
        stats = _gather(client, client.map(tasks.cleaned_stats, parts, seed=config.seed), "cleaning")
    else:
        parts = buckets
        stats = _gather(client, client.map(tasks.clean_stats, parts, **clean_kw, seed=config.seed), "cleaning")
    dropped: dict[str, int] = {}
    filled: dict[str, int] = {}
    for s in stats:
        for k, v in s["dropped"].items():
            dropped[k] = dropped.get(k, 0) + int(v)
        for k, v in s["filled"].items():
            filled[k] = filled.get(k, 0) + int(v)
    dropped["malformed_row"] = dropped.get("malformed_row", 0) + loaded.malformed
    accounts = _customer_accounts(stats)  # buckets hold disjoint customers: counts add up
    currencies = sorted({s["currency"] for s in stats if s.get("currency")})
    if len(currencies) > 1:  # each bucket had one, not the same one
        raise DataError(f"the amounts are in {len(currencies)} currencies ({', '.join(currencies)}): gpuseg adds "
                        f"amounts up as one currency; keep one with --currency {currencies[0]} (or [clean] "
                        "currency), or convert the amounts to one currency first")
    rows_out = sum(s["rows_out"] for s in stats)
    if rows_out == 0:
        worst = max(dropped, key=dropped.get)
        raise DataError(f"no usable rows: all {loaded.rows_read} rows were dropped while cleaning "
                        f"(mostly {worst}: {dropped[worst]})")
    return _Cleaned(parts, hold, clean_kw, fitted, [s for s in stats if s.get("rows_out")], dropped, filled,
                    accounts, rows_out)


def _feature_spec(full: list[dict], config: Any) -> Any:
    """The global feature settings from every bucket's statistics: the top categories, the
    price medians, and which optional features the data allow."""
    from ..prep.features import FeatureSpec, category_columns

    groups_on = set(config.features.groups)
    main: dict[str, int] = {}
    for s in full:
        for name, n in s["main"].items():
            main[name] = main.get(name, 0) + n
    top = []
    if "category" in groups_on and config.features.top_categories:
        top = [name for name, _ in sorted(main.items(), key=lambda kv: (-kv[1], kv[0]))][
            : config.features.top_categories]
    medians = _medians([s["price_pairs"] for s in full]) if "price" in groups_on else None
    include = {"brands": any(s["has_brand"] for s in full),
               "items_per_order": any(s.get("has_quantity", False) for s in full),
               "avg_unit_price": any(s.get("has_unit_price", False) for s in full),
               "share_morning": not all(s.get("date_only", False) for s in full)}
    return FeatureSpec(names=(), groups={}, category_columns=category_columns(top), price_medians=medians,
                       include=include)


def _bucket_features(client: Any, loaded: _Loaded, cleaned: _Cleaned, config: Any, be: Any
                     ) -> tuple[Any, Any, int, int]:
    """(CleanedData of the report's sample, CustomerFeatures, sampled customers, customers):
    every bucket's customers' features, the report's row-level sample beside them."""
    from ..prep.features import CustomerFeatures, check_finite

    full = cleaned.full
    reference = max(s["reference_time"] for s in full)
    spec = _feature_spec(full, config)
    # the report's row-level tables: the rows of the customers in the first bins of a
    # seeded hash of their ids, as many bins as keep them within insight_customers
    bins = np.sum([s["sample_bins"] for s in full], axis=0)
    n_bins = int(np.searchsorted(np.cumsum(bins), config.dask.insight_customers, side="right"))
    main_names = sorted({n for s in full for n in s["main_categories"]})
    brand_names = sorted({b for s in full for b in s["brands"]})
    products = None
    if any(s["products"] is not None for s in full):
        products = sorted({p for s in full if s["products"] is not None for p in s["products"]})
    parts, cleaned.parts = cleaned.parts, None
    futures = client.map(
        tasks.features_rows, parts, clean_args=None if cleaned.hold else tuple(cleaned.clean_kw.values()),
        feature_cfg=config.features, spec=spec, reference_time=reference, seed=config.seed, sample_bins=n_bins,
        main_categories=main_names, brands=brand_names, products=products,
        # the histories give lifetime value, and the spend before capping that revenue shares count
        value=bool(config.value.enabled) or any(s.get("capped_spend") for s in full))
    del parts  # each bucket is released as soon as its feature task is done
    results = _gather(client, futures, "computing features")
    del futures
    tables = [r[0] for r in results if r[0] is not None]
    table = _backend.frame_namespace(tables[0][0]).concat(_ids_of_one_type([p[0] for p in tables])).sort_index()
    feats = CustomerFeatures(table, dict(tables[0][1]), set(tables[0][2]), reference,
                             dict(spec.category_columns), spec.price_medians)
    if len(feats) < 3:
        raise DataError(f"only {len(feats)} customer(s) left after cleaning; segmentation needs at least 3")
    check_finite(table)
    rows = [r[1] for r in results if r[1] is not None]
    histories = [r[2] for r in results if r[2] is not None]
    del results
    sample = pd.concat(_ids_of_one_type(rows, "customer_id"), ignore_index=True) if rows else None
    if be.is_gpu and sample is not None:
        sample = be.frame.from_pandas(sample)
    from ..prep.clean import CleanedData

    first, accounts = full[0], cleaned.accounts
    cleaned_all = CleanedData(
        frame=sample, kind=first["kind"], rows_in=loaded.rows_read, rows_out=cleaned.rows_out,
        dropped=cleaned.dropped, filled=cleaned.filled, drop_examples=cleaned.drop_examples,
        main_categories=main_names, product_names=products, brand_names=brand_names,
        price_group=first["price_group"], outlier_fence=cleaned.fitted["outlier_fence"],
        price_outliers=config.clean.price_outliers, capped=accounts["values_capped"],
        customers_in=accounts["customers_in"], customers_touched=accounts["customers_touched"],
        excluded=accounts["excluded"],
        sessions_derived=first["sessions_derived"], date_only=not spec.include["share_morning"],
        reference_time=reference, columns=tuple(first["columns"]),
        fill_values=dict(first["fill_values"]), source_columns=tuple(first["source_columns"]),
        purchases=pd.concat(_ids_of_one_type(histories)).sort_index() if histories else None,
        product_labels=_product_labels(full, products),
        **_order_accounts(full),
    )
    return cleaned_all, feats, int(bins[:n_bins].sum()), int(bins.sum())
