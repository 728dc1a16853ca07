"""Read event or order logs (CSV, gzip CSV, Parquet; a file, a glob or a folder of parts).

On the GPU backend files are read by cuDF straight into device memory; on the CPU by
PyArrow's multi-threaded readers into pandas. Both paths end in the same canonical frame
(:func:`load`), which :mod:`gpuseg.prep.clean` takes from there:

- the schema's column names (``--rename`` and case-insensitive matching applied);
- the timestamp column parsed to ``datetime64`` (UTC, no zone), unparseable values ``NaT``;
- numeric columns as floats, non-numbers ``NaN``;
- text columns of the schema as categories, but for the session (:data:`CODED`), which
  only has to be told apart: int32 codes of its distinct values, missing ``<NA>`` (a
  pandas ``Int32`` column, a cuDF int32 column with nulls).

Bad values are not dropped here: cleaning counts them per reason. A whole column of the
wrong type is an error (:class:`~gpuseg.errors.SchemaError`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import glob as _glob
import gzip
import io as _io
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .._threads import in_threads
from ..backend import Backend, gpu_module, index_values, is_gpu_frame, nullable_codes, to_host
from ..errors import DataError, SchemaError
from .schemas import Schema, detect_format, unused_time_column

__all__ = ["LoadedData", "resolve_paths", "read_header", "load", "from_frame", "TIMESTAMP_FORMATS", "date_time_pair",
           "join_date_time", "canonicalize_pair"]

_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")

#: Formats tried, in order, when the timestamp column is text and no format is configured.
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S UTC",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y%m%d",
    # more layouts of spreadsheet and shop exports
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%d.%m.%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%d %b %Y",
    "%b %d, %Y",
)
#: Directives the GPU parse leaves to the host (names of months, a 12-hour clock).
_HOST_DIRECTIVES = ("%b", "%I", "%p")
_TIME_SAMPLE = 2000
#: Schema columns handed over as int32 codes (missing ``<NA>``) rather than categories:
#: cleaning compares them (duplicates, sessions) and never shows a value, and a pandas
#: Categorical of 2.1M session ids takes longer to build than the rest of the load.
CODED = ("user_session",)
#: Share of non-empty values that must convert for a column to count as the right type.
_MIN_VALID_SHARE = 0.5
#: A detected format that reads at most this share of a column's times did not recognise its
#: layout at all (rather than the column mixing two).
_UNDETECTED_SHARE = 0.05


@dataclass
class LoadedData:
    """A canonical input frame and where it came from.

    Attributes
    ----------
    frame : pandas.DataFrame or cudf.DataFrame
    schema : Schema
    files : list of str
    rows_read : int
    column_map : dict
        Source column -> schema column.
    timestamp_format : str
        The format used (or ``"native"`` for typed timestamp columns).
    rows_malformed : int
        CSV rows with the wrong number of fields, skipped while reading.
    examples : dict
        Column -> one value that could not be read as a time or a number.
    notes : list of str
        What the user should know of how the data were read (two timestamp formats that
        read every time alike, and which was taken).
    """

    frame: Any
    schema: Schema
    files: list[str]
    rows_read: int
    column_map: dict[str, str]
    timestamp_format: str = ""
    rows_malformed: int = 0
    examples: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _is_csv(name: str) -> bool:
    return name.lower().endswith(_CSV_SUFFIXES)


def _is_parquet(name: str) -> bool:
    return name.lower().endswith(_PARQUET_SUFFIXES)


def resolve_paths(spec: str, exclude: str | os.PathLike | None = None) -> tuple[list[Path], str]:
    """Expand a file, glob or folder into data files.

    Parameters
    ----------
    spec : str
    exclude : path, optional
        A folder whose files are never inputs (the output folder). Inside a folder given as
        ``spec``, the folders a gpuseg command wrote (``.gpuseg-manifest.json``) are skipped
        too.

    Returns
    -------
    (list of Path, {"csv", "parquet"})

    Raises
    ------
    DataError
        Nothing found, an unsupported suffix, or CSV and Parquet mixed.
    """
    if not str(spec).strip():
        raise DataError("--input is empty; give a file, a glob or a folder")
    p = Path(spec).expanduser()
    skip = Path(exclude).expanduser().resolve() if exclude is not None else None

    def wanted(f: Path) -> bool:
        return skip is None or not f.resolve().is_relative_to(skip)

    if p.is_dir():
        # the folders gpuseg's commands wrote (their manifest) hold outputs, not input data
        outputs = [m.parent for m in p.rglob(".gpuseg-manifest.json") if m.parent != p]
        files = sorted(
            f
            for f in p.rglob("*")
            if f.is_file()
            and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)
            and (_is_csv(f.name) or _is_parquet(f.name))
            and wanted(f)
            and not any(f.is_relative_to(o) for o in outputs)
        )
        if not files:
            raise DataError(f"{spec}: folder holds no .csv, .csv.gz or .parquet files")
        _refuse_copies(files, p)
    elif p.is_file():
        files = [p]
    elif p.exists() or p.is_symlink():
        raise DataError(f"{spec}: {_not_a_file(p)}")
    elif any(ch in spec for ch in "*?["):
        files = sorted(
            Path(f) for f in _glob.glob(os.path.expanduser(spec), recursive=True) if Path(f).is_file() and wanted(Path(f))
        )
        if not files:
            raise DataError(f"{spec}: no file matches this pattern")
    else:
        raise DataError(f"{spec}: no such file or folder")
    kinds = {"csv" if _is_csv(f.name) else "parquet" if _is_parquet(f.name) else None for f in files}
    if None in kinds:
        bad = next(f for f in files if not (_is_csv(f.name) or _is_parquet(f.name)))
        raise DataError(f"{bad}: unsupported file type; expected .csv, .csv.gz or .parquet")
    if len(kinds) > 1:
        raise DataError(f"{spec}: mixes CSV and Parquet files; point --input at one kind")
    return files, kinds.pop()


def _refuse_copies(files: list[Path], folder: Path) -> None:
    """Refuse a folder two of whose files hold the same bytes (a backup copy beside the data
    would count every row twice; an order log without order ids keeps repeated rows)."""
    import hashlib

    by_size: dict[int, list[Path]] = {}
    for f in files:
        by_size.setdefault(f.stat().st_size, []).append(f)
    for same in (g for g in by_size.values() if len(g) > 1):
        seen: dict[str, Path] = {}
        for f in (f for f in same if _has_rows(f)):  # empty parts (a header alone) are alike by nature
            h = hashlib.sha1()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            first = seen.setdefault(h.hexdigest(), f)
            if first is not f:
                raise DataError(f"{folder}: {first.relative_to(folder)} and {f.relative_to(folder)} hold the same "
                                "data: every row would count twice; move the copy out of the folder")


def _has_rows(f: Path) -> bool:
    """Whether a data file holds a row: a Parquet file's metadata says; a CSV has a line
    after its header."""
    if _is_parquet(f.name):
        import pyarrow.parquet as pq

        try:
            return pq.read_metadata(f).num_rows > 0
        except Exception:  # not readable: the reader says why
            return True
    with _open_text(f) as fh:
        lines = [line for _, line in zip(range(2), fh)]
    return len(lines) > 1 and bool(lines[1].strip())


def _not_a_file(p: Path) -> str:
    """Why a path that exists is not a data file (a FIFO, device, socket, or a link loop)."""
    import stat

    try:
        mode = p.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
        return f"a symbolic link to nothing that can be read ({(exc.strerror or '').lower()})"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"{kind}; --input reads regular files (CSV or Parquet), a glob or a folder of them"


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return _io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


_DELIMITERS = (",", ";", "\t", "|")


@functools.lru_cache(maxsize=256)
def _delimiter_of(path: str, mtime_ns: int) -> str:
    """The delimiter of a CSV by its header line: the one of , ; tab | that splits it into the
    most fields (a comma when none does, or when it ties); .tsv files are tab-separated."""
    if ".tsv" in path.lower():
        return "\t"
    try:
        with (gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")) as fh:
            head = fh.readline(1 << 16).decode("latin-1")
    except (OSError, EOFError):
        return ","
    counts = {d: head.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 0 else ","


def _delimiter(path: Path) -> str:
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        mtime = 0
    return _delimiter_of(str(path), mtime)


def read_header(path: Path, kind: str) -> list[str]:
    """Column names of a CSV or Parquet file.

    Raises
    ------
    DataError
        Empty or unreadable file.
    """
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:
            raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    row = _raw_header(path)
    if not row or all(not c.strip() for c in row):
        raise DataError(f"{path}: file is empty (no header row)")
    if "\x00" in "".join(row):
        raise DataError(f"{path}: {_binary_kind(path)}")
    return [c.strip().lstrip("\ufeff") for c in row]


def _raw_header(path: Path) -> list[str] | None:
    """The first row of a CSV as the csv module reads it (None for no row)."""
    try:
        with _open_text(path) as fh:
            return next(csv.reader(fh, delimiter=_delimiter(path)), None)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({_first_line(exc)})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a CSV file ({exc})") from None


def _names_after_bom(path: Path) -> dict[str, Any]:
    """``column_names`` and ``skip_rows`` for Arrow's reader of a CSV that starts with a UTF-8
    byte-order mark but is read as Latin-1 (a stray byte elsewhere in it): the header's names
    without the mark; ``{}`` for a file without one."""
    row = _raw_header(path) or []
    if not row or not row[0].startswith("\ufeff"):
        return {}
    return {"column_names": [row[0].lstrip("\ufeff"), *row[1:]], "skip_rows": 1}


def padded_header(path: Path) -> list[str] | None:
    """The column names of a CSV whose header has spaces around its names
    (``event_time, event_type``), stripped as :func:`read_header` strips them, for the
    readers to use instead of the file's; None for a header without (most files)."""
    row = _raw_header(path) or []
    names = [c.lstrip("\ufeff") for c in row]
    return [c.strip() for c in names] if any(c != c.strip() for c in names) else None


def typed_time_format(path: Path, column: str, rows: int = _TIME_SAMPLE) -> str | None:
    """The one format of :data:`TIMESTAMP_FORMATS` that reads every time of the first
    ``rows`` rows of a CSV's ``column``, when Arrow's reader would otherwise leave that
    column as text (not ISO 8601, such as REES46's ``2019-10-01 00:00:00 UTC``) and the
    format has no zone directive; else None.

    Arrow's reader then parses the times with it while it reads, in its own threads
    (``_read_csv_cpu``), instead of a parse of the text afterwards (1 s of 6 at 10M events on
    2 threads). A file one of whose later times this format does not read is read again as
    before, so the format only ever decides what the whole-column detection would have."""
    import pyarrow as pa

    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh, delimiter=_delimiter(path))
            names = [c.lstrip("\ufeff").strip() for c in next(reader, [])]
            if names.count(column) != 1:
                return None
            at = names.index(column)
            head = [row[at] for _, row in zip(range(rows), reader) if len(row) == len(names) and row[at] != ""]
    except (OSError, EOFError, gzip.BadGzipFile, csv.Error, UnicodeError):
        return None
    if not head:
        return None
    text = pa.array(head, type=pa.string())
    for typ in (pa.int64(), pa.float64(), pa.timestamp("s")):  # what Arrow's reader types by itself is left to it
        try:  # (numbers such as 19970101 are read as dates later; ISO 8601 times by Arrow)
            text.cast(typ)
            return None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    ranked = rank_timestamp_formats(head)
    full = [f for f, share in ranked if share == 1.0]
    if len(full) != 1 or "%z" in full[0] or "%Z" in full[0]:  # none, or day/month against month/day
        return None
    return full[0]


def _binary_kind(path: Path) -> str:
    """What a CSV with NUL bytes in its header is: UTF-16/32 text, or binary."""
    try:
        with (gzip.open(path, "rb") if str(path).lower().endswith(".gz") else open(path, "rb")) as fh:
            head = fh.read(256)
    except OSError:
        head = b""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (head[1:2] == b"\x00" and head[:1].isascii()) or (
            head[:1] == b"\x00" and head[1:2].isascii()):
        return "is UTF-16 (or UTF-32) text; save it as UTF-8 (or Latin-1) CSV"
    return "not a text CSV file (binary content)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load(
    spec: str,
    backend: Backend,
    fmt: str = "auto",
    rename: dict[str, str] | None = None,
    timestamp_format: str = "",
) -> LoadedData:
    """Read input files into one canonical frame on the backend's device.

    Parameters
    ----------
    spec : str
        File, glob or folder.
    backend : Backend
    fmt : {"auto", "events", "orders"}
    rename : dict, optional
        Source column -> schema column.
    timestamp_format : str, optional
        strptime format for text timestamps; detected when empty.

    Returns
    -------
    LoadedData

    Raises
    ------
    DataError, SchemaError
    """
    files, kind = resolve_paths(spec)
    return load_files(files, kind, backend, fmt, rename, timestamp_format, source=str(spec))


def _time_to_type(files: list[Path], kind: str, mapping: dict[str, str], schema: Schema) -> tuple[str, str] | None:
    """(time column, format) for Arrow's reader to type a single CSV's times in, or None
    (:func:`typed_time_format`)."""
    if kind == "parquet" or len(files) != 1:
        return None
    column = next((src for src, dst in mapping.items() if dst == schema.time), None)
    fmt = typed_time_format(files[0], column) if column is not None else None
    return (column, fmt) if fmt else None


def load_files(
    files: list[Path],
    kind: str,
    backend: Backend,
    fmt: str = "auto",
    rename: dict[str, str] | None = None,
    timestamp_format: str = "",
    source: str = "",
    times_as_text: bool | None = None,
    join_time: bool = True,
    time_layouts: bool = True,
) -> LoadedData:
    """:func:`load` for files already found by :func:`resolve_paths`.

    ``time_layouts`` (default True): times in a second layout are read too (:func:`_parse_time`);
    False for a model saved before that.

    ``join_time`` (default True): a Time column beside the Date read as the timestamp is
    joined to it (:func:`canonicalize_pair`); False for a model saved before gpuseg joined
    them, whose features saw the date alone (the Time column is then said to be unused).

    ``times_as_text`` (default: whether ``timestamp_format`` is given): read a CSV's time
    column as text, so that the format decides, not Arrow's own inference. A format only
    inherited (a model's training data's, for new data) leaves Arrow's reading alone."""
    headers = [read_header(f, kind) for f in files]
    first = headers[0]
    schema, mapping = detect_format(first, fmt, rename, source=str(files[0]))
    repeated = sorted({c for c in mapping if first.count(c) > 1})
    if repeated:
        raise SchemaError(f"{files[0]}: column {repeated[0]!r} appears more than once in the header")
    for f, h in zip(files[1:], headers[1:]):
        lacking = [src for src in mapping if src not in h]
        if lacking:
            raise SchemaError(f"{f}: lacks column {lacking[0]!r} that {files[0].name} has; all parts need the same columns")
    if kind == "parquet":  # on every reader: cuDF's, Arrow's
        _refuse_nested(files, list(mapping))
    # ids are read as text: Arrow and cuDF would turn "000027" into 27
    ids = [src for src, dst in mapping.items() if dst in schema.ids]
    categorical = [src for src, dst in mapping.items() if dst in schema.categorical]
    # a given timestamp_format decides how a CSV's times read: Arrow's own inference would
    # read "2020-03-04" as March 4 whatever the format says (as the Dask pieces, which read text)
    if times_as_text is None:
        times_as_text = bool(timestamp_format)
    times = [src for src, dst in mapping.items() if dst == schema.time] if times_as_text else []
    # a Time column beside the Date read as the timestamp: both read as text, then joined
    pair = date_time_pair(first, mapping, schema)
    columns = list(mapping) + ([pair[1]] if pair else [])
    if pair:
        times = list(dict.fromkeys([*times, *pair]))
    typed_fmt = None
    if backend.is_gpu:  # categorical columns as text too, as the CPU reader keeps them
        frame, malformed = _read_gpu(files, kind, columns,
                                     [*ids, *(c for c in categorical if c not in ids), *times])
    else:
        codes = [src for src, dst in mapping.items() if dst in CODED]
        # with no format given or inherited (a model's), times may be typed while reading
        typed = not (times_as_text or timestamp_format or pair)
        time = _time_to_type(files, kind, mapping, schema) if typed else None
        frame, malformed = _read_cpu(files, kind, columns, categorical, ids, codes=codes, strings=times,
                                     time=time)
        typed_fmt = time[1] if time is not None and frame[time[0]].dtype.kind == "M" else None  # read in it
    rows = len(frame)
    if rows == 0 and malformed:
        raise DataError(f"{source or files[0]}: none of its {malformed:,} data rows has the header's {len(first)} "
                        "fields (a delimiter at the end of every line?)")
    if rows == 0:
        raise DataError(f"{source or files[0]}: no data rows (only a header)")
    examples: dict[str, str] = {}
    frame, used_fmt, notes = canonicalize_pair(frame, pair, schema, mapping, backend, timestamp_format,
                                               source=source or str(files[0]), examples=examples, codes=True,
                                               strict=times_as_text, join=join_time, layouts=time_layouts)
    used_fmt = typed_fmt or used_fmt  # times the reader typed in a detected format: that format, not "native"
    return LoadedData(
        frame=frame,
        schema=schema,
        files=[str(f) for f in files],
        rows_read=rows + malformed,
        column_map=mapping,
        timestamp_format=used_fmt,
        rows_malformed=malformed,
        examples=examples,
        notes=notes,
    )


def from_frame(
    df: pd.DataFrame,
    backend: Backend,
    fmt: str = "auto",
    rename: dict[str, str] | None = None,
    timestamp_format: str = "",
    source: str = "data frame",
) -> LoadedData:
    """Canonicalise an in-memory pandas frame (e.g. generated data) like a file's contents.

    On the GPU backend the frame is moved to the device once, here.
    """
    if len(df) == 0:
        raise DataError(f"{source}: no rows")
    schema, mapping = detect_format([str(c) for c in df.columns], fmt, rename, source=source)
    pair = date_time_pair([str(c) for c in df.columns], mapping, schema)
    frame = df[list(mapping) + ([pair[1]] if pair else [])]
    if backend.is_gpu:
        frame = backend.frame.from_pandas(frame)
    examples: dict[str, str] = {}
    frame, used_fmt, notes = canonicalize_pair(frame, pair, schema, mapping, backend, timestamp_format, source=source,
                                               examples=examples, codes=True)
    return LoadedData(
        frame=frame, schema=schema, files=[], rows_read=len(df), column_map=mapping, timestamp_format=used_fmt,
        examples=examples, notes=notes,
    )


def date_time_pair(columns: list[str], mapping: dict[str, str], schema: Schema) -> tuple[str, str] | None:
    """(the Date column read as the timestamp, the Time column beside it) of
    :func:`~gpuseg.io.schemas.unused_time_column`, or None."""
    extra = unused_time_column(columns, mapping, schema)
    if extra is None:
        return None
    return next(src for src, dst in mapping.items() if dst == schema.time), extra


def join_date_time(frame, pair: tuple[str, str]) -> Any:
    """A new frame with the Date column's text followed by the Time column's (a space
    between; a missing or blank time written as midnight in the layout of the others, which
    is what the date alone means) and the Time column dropped; None when they are not both
    text (typed Parquet dates or times, Python times from a spreadsheet)."""
    date, time = pair
    d, t = frame[date], frame[time]
    if not (_is_text_series(d) and _is_text_series(t)):
        return None
    joined = frame.drop(columns=[time])
    d, t = d.str.strip(), t.str.strip()
    present = t.notna() & (t != "")
    joined[date] = d.str.cat(t.where(present, _midnight_like(t[present])), sep=" ").where(d.notna())
    return joined


def _midnight_like(times) -> str:
    """Midnight written as the first of ``times`` is ("00:00:00", "00:00", "12:00:00 AM",
    "12:00 AM"), for the rows without a time."""
    first = str(times.iloc[0]) if len(times) else "00:00:00"
    hms = "00:00:00" if first.count(":") >= 2 else "00:00"
    if first.upper().endswith(("AM", "PM")):
        return ("12" + hms[2:]) + " AM"
    return hms


def canonicalize_pair(frame, pair: tuple[str, str] | None, schema: Schema, mapping: dict[str, str],
                      backend: Backend, ts_format: str, source: str, join: bool = True,
                      **kw) -> tuple[Any, str, list[str]]:
    """:func:`_canonicalize` (its ``kw``), with a Date and a Time column (``pair``) joined
    into the timestamp first (:func:`join_date_time`); (frame, format, notes). Where they
    cannot be joined (not both text) or their joined text is in no layout gpuseg reads, the
    Date column alone is the timestamp, and a note says the times of day are left out; so
    too without ``join`` (a model's that saw the date alone)."""
    notes: list[str] = []
    why = ""
    if pair is not None:
        joined = join_date_time(frame, pair) if join else None
        if not join:
            why = " (the model was trained on the date alone)"
        elif joined is not None:
            try:
                out, used = _canonicalize(joined, schema, mapping, backend, ts_format, source, notes=notes, **kw)
                return out, used, [f"columns {pair[0]!r} and {pair[1]!r} joined into the timestamp", *notes]
            except SchemaError:  # read as before: the date alone
                notes, why = [], (" (joined, they are not in the [clean] timestamp_format given)" if ts_format
                                  else " (joined, they are in no layout gpuseg reads)")
                if kw.get("examples") is not None:
                    kw["examples"].clear()
        else:
            why = " (they are not both text)"
        frame = frame.drop(columns=[pair[1]])
        notes.append(f"column {pair[1]!r} not used: the times come from {pair[0]!r} alone{why}, so the features of "
                     "the time of day are left out; write date and time into one column to use them")
    out, used = _canonicalize(frame, schema, mapping, backend, ts_format, source, notes=notes, **kw)
    return out, used, notes


def _is_text_series(s) -> bool:
    """Whether a pandas or cuDF column holds text (string dtype, or object values that are all
    strings; not categories, not Python times)."""
    dtype = str(s.dtype)
    if dtype in ("string", "str") or dtype.startswith("string"):
        return True
    if dtype != "object":
        return False
    if hasattr(s, "to_pandas"):  # a cuDF object column holds strings
        return True
    return pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


# --- reading -----------------------------------------------------------------------------


def _read_cpu(
    files: list[Path], kind: str, columns: list[str], categorical: list[str] = (), ids: list[str] = (),
    int_ids: bool = True, codes: list[str] = (), strings: list[str] = (), time: tuple[str, str] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Files read by PyArrow into one pandas frame, and the malformed CSV rows skipped.

    CSV ids and ``strings`` are read as text; ``int_ids`` turns a column of plain integers
    into int64 (:func:`arrow_to_pandas`). Off for the pieces of a Dask run, which must agree on the
    ids' type whatever ids each piece happens to hold (and so must their ``codes``: none).
    ``time`` (column, format) is tried as the times' format while reading (one CSV only).
    """
    tables = []
    malformed = 0
    for f in files:
        if kind == "parquet":
            tables.append(_read_parquet_cpu(f, columns))
        else:
            # categorical columns and the coded session as dictionaries; the other ids as
            # strings (the Dask pieces' session, categorical and an id, stays text)
            table, bad = _read_csv_cpu(f, columns, [*ids, *strings],
                                       text=[*(c for c in categorical if c not in ids), *codes],
                                       time=time if len(files) == 1 else None)
            tables.append(table)
            malformed += bad
    table = tables[0] if len(tables) == 1 else _concat_tables(tables)
    # a CSV's dictionaries hold each block's values in order of appearance (a Parquet
    # file's may hold a whole category list in any order)
    return arrow_to_pandas(table, categorical, ids if int_ids else (), codes, in_order=kind != "parquet"), malformed


def parquet_schemas(files: list[Path]) -> Iterator[tuple[Path, Any]]:
    """Each Parquet file with its schema, from its footer; a file whose footer cannot be read
    is left out (the reader says what is wrong with it)."""
    import pyarrow.parquet as pq

    for f in files:
        try:
            yield f, pq.read_schema(f)
        except Exception:
            continue


def _refuse_nested(files: list[Path], columns: list[str]) -> None:
    """A Parquet column of lists, structs or maps is not a value per row that gpuseg can
    read: say which (from the files' schemas, before any reader), rather than fail later on
    unhashable values."""
    import pyarrow as pa

    for f, schema in parquet_schemas(files):
        for fld in schema:
            if fld.name in columns and pa.types.is_nested(fld.type):
                raise DataError(f"{f}: column {fld.name!r} holds {fld.type} values, not one plain value per row")


def arrow_to_pandas(table, categorical: list[str] = (), ids: list[str] = (), codes: list[str] = (),
                    in_order: bool = False) -> pd.DataFrame:
    """An Arrow table of input columns as pandas: dates as timestamps, plain-integer ids as
    int64, ``codes`` text columns as int32 codes (:func:`text_codes`, ``in_order`` passed
    on), categorical text as categories.

    The columns convert independently (Arrow's kernels release the GIL), so from
    ``_CONVERT_THREADS_ROWS`` rows they convert in the run's threads."""
    jobs = [(i, job) for i, fld in enumerate(table.schema)
            if (job := _column_job(fld, categorical, ids, codes)) is not None]

    def convert(item):
        i, job = item
        return job(table.column(i), in_order)

    threaded = table.num_rows >= _CONVERT_THREADS_ROWS and len(jobs) > 1
    done = in_threads(convert, jobs, "gpuseg-read") if threaded else [convert(item) for item in jobs]
    coded = {}
    for (i, job), out in zip(jobs, done):
        name = table.schema.field(i).name
        if job is _coded:
            coded[name] = (i, out)
        elif out is not None:
            table = table.set_column(i, name, out)
    table = table.drop_columns(list(coded))
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    for name, (i, values) in coded.items():  # back in place: columns keep the file's order
        frame.insert(i, name, pd.Series(values, index=frame.index, name=name))
    return frame


#: Rows from which :func:`arrow_to_pandas` converts its columns in the run's threads.
_CONVERT_THREADS_ROWS = 1_000_000


def _column_job(fld, categorical, ids, codes):
    """What :func:`arrow_to_pandas` does to one column (a function of the column and
    ``in_order`` giving the new column, or None to keep it), or None for nothing."""
    import pyarrow as pa

    if pa.types.is_date(fld.type):  # CSV dates inferred by Arrow ("2011-01-01")
        return _date_as_timestamp
    if fld.name in codes and _is_text(fld.type):
        return _coded
    if fld.name in ids and fld.name not in categorical:
        return _id_integers
    if fld.name in categorical and (pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type)):
        # text columns become categories here: Arrow encodes them several times faster
        # than pandas' astype("category")
        return _dictionary
    return None


def _date_as_timestamp(col, in_order: bool):
    import pyarrow as pa

    return col.cast(pa.timestamp("s"))


def _coded(col, in_order: bool):
    return text_codes(col, in_order)


def _id_integers(col, in_order: bool):
    return _plain_integers(col)


def _dictionary(col, in_order: bool):
    return col.dictionary_encode()


def _is_text(typ) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def text_codes(col, in_order: bool = False) -> Any:
    """int32 codes of a text column's distinct values (in order of first appearance), missing
    ``<NA>``: a pandas ``Int32`` array from Arrow's dictionary encoding of ``col`` (an Arrow
    string or dictionary column), without a pandas Categorical of the values.

    A dictionary column whose chunks list their values in order of first appearance
    (``in_order``: Arrow's CSV reader builds one such dictionary per block) keeps its
    indices, the chunks' dictionaries unified (later chunks' new values appended in order).
    Any other dictionary column (Parquet written from categories) is encoded again from its
    text: each row group may carry a whole category list of its own, and this is faster than
    unifying them.
    """
    import pyarrow as pa

    if pa.types.is_dictionary(col.type) and in_order:
        encoded = _blank_entries_missing(col.unify_dictionaries())
    else:
        import pyarrow.compute as pc

        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        # blanks missing, as Arrow's CSV reader makes an empty field (a Parquet file's "")
        col = pc.if_else(pc.equal(pc.utf8_trim_whitespace(col), ""), pa.scalar(None, col.type), col)
        encoded = col.dictionary_encode()
    chunks = [c.indices.cast(pa.int32()) for c in encoded.chunks]
    indices = pa.chunked_array(chunks, type=pa.int32())
    return pa.table({"codes": indices}).to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get)["codes"].array


def _blank_entries_missing(encoded) -> Any:
    """A dictionary column (one dictionary shared by its chunks) whose rows holding a blank
    value (spaces only: Arrow's CSV reader makes only an empty field missing) are missing,
    as the other readers make them (:func:`_blank_as_missing`). The blank value's code is
    left unused."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if encoded.num_chunks == 0:
        return encoded
    dictionary = encoded.chunk(0).dictionary
    blank = pc.indices_nonzero(pc.equal(pc.utf8_trim_whitespace(dictionary), "")).cast(pa.int32())
    if len(blank) == 0:
        return encoded
    chunks = []
    for c in encoded.chunks:
        indices = pc.if_else(pc.is_in(c.indices, value_set=blank), pa.scalar(None, pa.int32()), c.indices)
        chunks.append(pa.DictionaryArray.from_arrays(indices, dictionary))
    return pa.chunked_array(chunks, type=encoded.type)


def _plain_integers(col) -> Any:
    """A text column of ids as int64 when int64 holds every one exactly, else None: no gaps,
    ASCII digits only, at most 18 of them, no leading zero (ids with gaps or leading zeros
    stay text; cleaning decides).

    One cast (reused as the column) and a few prefix checks, the same rule as the regex
    ``^[0-9]{1,18}$`` without a leading zero, several times faster. The cast also takes
    "-1", "-0", "01", "0x1F" (hex) and, in some Arrow versions, "+1"; the prefix checks
    turn those away. It takes no blank, no other digit ("１２", "²") and no "1e3".
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or col.null_count or len(col) == 0:
        return None
    try:
        ints = col.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    low, high = (v.as_py() for v in pc.min_max(ints).values())
    if low < 0 or high >= 10**18 or pc.any(pc.starts_with(col, "+")).as_py():
        return None
    if low == 0 and pc.any(pc.starts_with(col, "-")).as_py():  # "-0"
        return None
    zero = col.filter(pc.starts_with(col, "0"))  # "0" alone, not "01", "00" or "0x1F"
    if len(zero) and pc.max(pc.binary_length(zero)).as_py() > 1:
        return None
    return ints


def _concat_tables(tables):
    """Concatenate parts; a column typed differently across parts becomes text (and is
    coerced like any text column later)."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    names = tables[0].column_names
    mixed = {n for n in names if len({str(t.schema.field(n).type) for t in tables}) > 1}
    fixed = []
    for t in tables:
        for n in mixed:
            i = t.schema.get_field_index(n)
            col = t.column(i)
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            t = t.set_column(i, n, col.cast(pa.string()))
        fixed.append(t)
    return pa.concat_tables(fixed, promote_options="permissive")


def _read_parquet_cpu(path: Path, columns: list[str]):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except Exception as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def _looks_utf8(path: Path, size: int = 4 << 20, spread: int = 0) -> bool:
    """The first ``size`` bytes (decompressed for .gz), and ``spread`` blocks of
    :data:`_SPREAD_BLOCK` bytes spread over the rest of an uncompressed file, decode as UTF-8."""
    try:
        gz = str(path).lower().endswith(".gz")
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            if not _utf8_block(fh.read(size)):
                return False
            end = 0 if gz else os.fstat(fh.fileno()).st_size
            offsets = np.linspace(size, end, spread + 2)[1:-1].astype(np.int64) if end > size else []
            for offset in offsets:
                fh.seek(int(offset))
                if not _utf8_block(fh.read(_SPREAD_BLOCK), cut=True):
                    return False
        return True
    except (OSError, EOFError):
        return True  # the reader says what is wrong


#: Bytes of each block :func:`_looks_utf8` samples beyond the head of a file.
_SPREAD_BLOCK = 256 << 10


def _utf8_block(block: bytes, cut: bool = False) -> bool:
    """Whether ``block`` is UTF-8, but for a character cut at its end (and at its start,
    with ``cut``: a block read from the middle of a file)."""
    import codecs

    start = 0
    while cut and start < min(3, len(block)) and 0x80 <= block[start] < 0xC0:  # continuation bytes
        start += 1
    try:
        codecs.getincrementaldecoder("utf-8")().decode(block[start:], final=False)
        return True
    except UnicodeDecodeError:
        return False


#: Row handlers whose failures are kept quiet (:func:`_quiet_row_handler`), and the hook
#: that gets every other unraisable exception meanwhile.
_QUIET_LOCK = threading.Lock()
_QUIET: set[Any] = set()
_PREVIOUS_HOOK: list[Any] = []


def _swallow_quiet(args: Any) -> None:
    if args.object not in _QUIET:
        _PREVIOUS_HOOK[0](args)


@contextlib.contextmanager
def _quiet_row_handler(handler: Any):
    """While the context lasts, an exception raised where Arrow calls ``handler`` (it cannot
    be given a row that is not UTF-8) does not print Python's "Exception ignored" message;
    every other unraisable exception goes to the hook as before. Thread-safe: the hook is
    replaced while any reader's handler is quiet, and put back after the last."""
    with _QUIET_LOCK:
        if not _QUIET:
            _PREVIOUS_HOOK[:] = [sys.unraisablehook]
            sys.unraisablehook = _swallow_quiet
        _QUIET.add(handler)
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET.discard(handler)
            if not _QUIET:
                sys.unraisablehook = _PREVIOUS_HOOK.pop()


#: Arrow's message for a row with the wrong number of fields.
_RAGGED = re.compile(r"Expected \d+ columns, got \d+")


def _csv_types(columns: list[str], ids: list[str], text: list[str], time: tuple[str, str] | None,
               as_text: bool) -> dict[str, Any]:
    """``column_types`` (and ``timestamp_parsers``) of Arrow's CSV reader for
    :func:`_read_csv_cpu`. Types are inferred except for ids (text), ``text`` columns
    (dictionaries) and a ``time`` (column, format) read in that format; when a later block
    breaks the inference, the file is read again ``as_text`` and bad values are counted
    while cleaning."""
    import pyarrow as pa

    types = {c: pa.string() for c in (columns if as_text else ids)}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in text if c in columns})
    if time is None:
        return {"column_types": types}
    return {"column_types": {**types, time[0]: pa.timestamp("s")}, "timestamp_parsers": [time[1]]}


def _read_csv_cpu(path: Path, columns: list[str], ids: list[str] = (), text: list[str] = (),
                  time: tuple[str, str] | None = None):
    """A CSV as an Arrow table, and the malformed rows skipped. ``ids`` are read as text,
    ``text`` columns as dictionaries (Arrow builds one per block while it parses, which is
    faster than parsing strings and encoding them afterwards), the rest by inference.
    ``time`` (column, strptime format: :func:`typed_time_format`): that column is first read
    as timestamps in that format, and by inference when one of its values is not.

    Text columns keep their text: a category column of "1", "01" and "1.0" has three
    values, not one number (as the Dask and the GPU readers read them)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    bad_rows = [0]
    padded = padded_header(path)
    # the names as read_header gives them, where the file's have spaces around them
    names = {} if padded is None else {"column_names": padded, "skip_rows": 1}

    def skip(row) -> str:  # rows with the wrong number of fields
        # a quote left open runs the field over the lines after it, to the next quote or the
        # end of the file: every line it swallowed is a row lost, counted as malformed
        bad_rows[0] += 1 + (row.text or "").count("\n")
        return "skip"

    def parse(encoding: str, as_text: bool, counting: bool, typed: bool):
        bad_rows[0] = 0
        # read as Latin-1, a UTF-8 byte-order mark would become "ï»¿" before the first name
        bom = {} if names or encoding == "utf8" else _names_after_bom(path)
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 24, **names, **bom),
            parse_options=pacsv.ParseOptions(delimiter=_delimiter(path),
                                             invalid_row_handler=skip if counting else None),
            convert_options=pacsv.ConvertOptions(include_columns=columns, strings_can_be_null=True,
                                                 **_csv_types(columns, ids, text, time if typed else None, as_text)),
        )

    def attempt(encoding: str, as_text: bool, typed: bool = False):
        # A row handler (a Python call per block) costs Arrow's parser a fifth of its time,
        # so a file is first read without one; only a file with a ragged row is read again
        # with it, to skip and count those rows.
        try:
            return parse(encoding, as_text, counting=False, typed=typed)
        except pa.ArrowInvalid as exc:
            if not _RAGGED.search(str(exc)):
                raise
        with _quiet_row_handler(skip):
            try:
                return parse(encoding, as_text, counting=True, typed=typed)
            except pa.ArrowInvalid as exc:
                if not _RAGGED.search(str(exc)):
                    raise
        # a ragged row got past the handler: Arrow could not hand it a row that is not UTF-8
        # (past the sampled head of the file). Read as Latin-1, as a file with such bytes
        # anywhere else is
        raise pa.ArrowInvalid("a malformed row is not UTF-8")

    # a file that is not UTF-8 near its start is read as Latin-1 from the outset: Arrow
    # cannot hand a non-UTF-8 ragged row to the row handler (it would print a traceback)
    encoding = "utf8" if _looks_utf8(path) else "latin-1"
    # times typed in the given format first (where given), then by inference, then all as text
    for as_text, typed in ([(False, True)] if time and time[0] in columns else []) + [(False, False), (True, False)]:
        try:
            table = attempt(encoding, as_text, typed)
            if any(pa.types.is_binary(f.type) for f in table.schema):
                # Arrow keeps text that is not UTF-8 as bytes: a Latin-1 file (UCI Online Retail)
                encoding = "latin-1"
                table = attempt(encoding, as_text, typed)
            return table, bad_rows[0] + swallowed_lines(table)
        except pa.ArrowInvalid as exc:
            msg = str(exc)
            if "UTF8" in msg or "UTF-8" in msg:
                encoding = "latin-1"
                try:
                    return attempt(encoding, as_text, typed), bad_rows[0]
                except pa.ArrowInvalid as exc2:
                    msg = str(exc2)
            if "conversion error" in msg.lower() or "In CSV column" in msg:
                continue
            raise DataError(f"{path}: cannot be parsed as CSV ({_first_line(exc)})") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({_first_line(exc)})") from None
        except pa.ArrowKeyError as exc:  # a column the header named that the reader did not find
            raise DataError(f"{path}: cannot be parsed as CSV ({_first_line(exc)})") from None
    raise DataError(f"{path}: cannot be parsed as CSV")  # pragma: no cover


#: A text field this long is checked for the lines of a quote left open (:func:`swallowed_lines`).
_LONG_FIELD = 1000


def swallowed_lines(table) -> int:
    """Lines that a quote left open in a row's last field ran into it: the row has its fields,
    so Arrow keeps it, and the rows after it vanish into that field. Counted as malformed
    rows (the newlines inside text fields of :data:`_LONG_FIELD` characters or more; a
    product description over a few lines is shorter)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lost = 0
    for chunk in (c for col in table.columns for c in col.chunks):
        arr = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or len(arr) == 0:
            continue
        if (pc.max(pc.binary_length(arr)).as_py() or 0) >= _LONG_FIELD:
            long = arr.filter(pc.greater_equal(pc.binary_length(arr), _LONG_FIELD))
            # the file's last newline, inside the open quote too, ends a line rather than starting one
            lost += int(pc.sum(pc.count_substring(pc.utf8_rtrim(long, characters="\r\n"), "\n")).as_py() or 0)
    return lost


def _read_gpu(files: list[Path], kind: str, columns: list[str], ids: list[str] = ()):
    """Files read by cuDF into one frame on the device, and the malformed CSV rows skipped.

    As the CPU reader as far as cuDF allows (:func:`_read_gpu_csv`); CSV ``ids`` (the
    caller adds the text columns) are read as text on every file (:func:`csv_dtypes`),
    Parquet columns keep the file's types.
    """
    cudf = gpu_module("cudf")
    parts = []
    malformed = 0
    for f in files:
        try:
            if kind == "parquet":
                parts.append(cudf.read_parquet(str(f), columns=columns))
            else:
                frame, bad = _read_gpu_csv(cudf, f, columns, ids)
                parts.append(frame)
                malformed += bad
        except (DataError, SchemaError):
            raise
        except (MemoryError, RuntimeError) as exc:
            if "out of memory" in str(exc).lower():
                raise DataError(
                    f"{f}: does not fit in GPU memory ({_first_line(exc)}); use fewer files or --device cpu"
                ) from None
            raise DataError(f"{f}: cannot be read by cuDF ({_first_line(exc)})") from None
        except Exception as exc:
            raise DataError(f"{f}: cannot be read by cuDF ({_first_line(exc)})") from None
    if len(parts) == 1:
        return parts[0], malformed
    mixed = [c for c in columns if len({str(p[c].dtype) for p in parts}) > 1]
    for c in mixed:  # typed differently across parts: text, coerced like any text column later
        parts = [p.assign(**{c: _as_text(p[c])}) for p in parts]
    try:
        return cudf.concat(parts, ignore_index=True), malformed
    except Exception as exc:
        raise SchemaError(f"{files[0].parent}: the parts cannot be combined ({_first_line(exc)})") from None


def whole_floats_as_text(s):
    """A float column as text, whole floats as integers: cuDF writes the float 6543210987654.0
    (an int id column of a part with a missing id) as "6.543210987654e+12", which no longer
    matches another part's "6543210987654" (the Dask buckets hash ids so too)."""
    whole = s.notna() & ((s % 1) == 0) & (s.abs() < 2.0**63)
    return s.where(whole, 0).astype("int64").astype("str").where(whole, s.astype("str"))


def _as_text(s):
    """A column as text for :func:`_read_gpu`'s parts of other types (:func:`whole_floats_as_text`)."""
    return whole_floats_as_text(s) if s.dtype.kind == "f" else s.astype("str")


def csv_dtypes(ids: list[str]) -> dict[str, str]:
    """The ``dtype`` cuDF reads a CSV with: ids (and the text columns the caller adds) as
    text (cuDF would turn "000027" into 27, a category "01" into 1, and a file of
    plain-integer ids into int64 where another file's ids are text)."""
    return {c: "str" for c in ids}


def _read_gpu_csv(cudf: Any, path: Path, columns: list[str], ids: list[str]) -> tuple[Any, int]:
    """One CSV file with cuDF, as the CPU reader (:func:`_read_csv_cpu`) reads it.

    ``cudf.read_csv`` reads UTF-8 only (other bytes stay in the strings as they are) and has
    no bad-line handling: a row with too few fields gets nulls, extra fields are dropped,
    neither is reported. So a file goes to the CPU reader (Latin-1 fallback, malformed rows
    skipped and counted), then to the device, when :func:`_gpu_csv_host_reason` finds
    non-UTF-8 bytes, rows with a number of fields other than the header's, or a quoted
    field across a line break (which the per-line count cannot follow). What cannot be
    seen: non-UTF-8 bytes of an uncompressed file outside the sampled blocks of
    :func:`_looks_utf8` (the CPU reader would read that file as Latin-1).

    A .gz file is decompressed once on the host, for the check and for cuDF.
    """
    sep = _delimiter(path)
    data = None
    if path.name.lower().endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot be read ({_first_line(exc)})") from None
    if _gpu_csv_host_reason(cudf, path, sep, data):
        # every column as text: PyArrow would parse times that cuDF leaves as text, and a
        # run's other files (read by cuDF) must give the same types to be combined
        table, bad = _read_csv_cpu(path, columns, columns)
        return cudf.from_pandas(arrow_to_pandas(table)), bad
    source = str(path) if data is None else _io.BytesIO(data)
    frame = cudf.read_csv(source, usecols=columns, sep=sep, compression="infer" if data is None else None,
                          dtype=csv_dtypes(ids))
    return frame, 0


#: Bytes of a CSV checked per pass on the device by :func:`_gpu_csv_host_reason`.
_CHECK_BYTES = 512 << 20


def _gpu_csv_host_reason(cudf: Any, path: Path, sep: str, data: bytes | None = None) -> str:
    """Why a CSV must be read by the CPU reader rather than cuDF ("" when it need not):
    "padded header" (names with spaces around them, :func:`padded_header`), "not UTF-8",
    "malformed rows" or "quoted line break".

    UTF-8: the head and 16 blocks spread over an uncompressed file (:func:`_looks_utf8`),
    every byte of a decompressed one (``data``). Fields: counted per line on the device,
    :data:`_CHECK_BYTES` at a time (:func:`csv_field_check`).
    """
    if padded_header(path) is not None:
        return "padded header"
    if data is None:
        if not _looks_utf8(path, spread=16):
            return "not UTF-8"
        size = path.stat().st_size
        chunks = (cudf.read_text(str(path), delimiter="\n", byte_range=(offset, _CHECK_BYTES), strip_delimiters=True)
                  for offset in range(0, max(size, 1), _CHECK_BYTES))
    else:
        if not all(_utf8_block(p) for p in _line_pieces(data, _CHECK_BYTES)):  # pieces end at line breaks
            return "not UTF-8"
        chunks = (cudf.read_text(_io.BytesIO(p), delimiter="\n", strip_delimiters=True)
                  for p in _line_pieces(data, _CHECK_BYTES))
    n_fields = None
    for lines in chunks:
        bad, open_quotes, n_fields = csv_field_check(lines, sep, n_fields)
        if open_quotes:
            return "quoted line break"
        if bad:
            return "malformed rows"
    return ""


def _line_pieces(data: bytes, size: int):
    """``data`` in pieces (views, not copies) of about ``size`` bytes, each ending at a line
    break (or the end)."""
    view = memoryview(data)
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + size)
        end = len(data) if end < 0 else end + 1
        yield view[start:end]
        start = end


def csv_field_check(lines: Any, sep: str, n_fields: int | None = None) -> tuple[int, int, int | None]:
    """(rows whose number of fields is not ``n_fields``, rows with a quote left open, the
    header's number of fields) of CSV lines: a pandas or cuDF string Series without the line
    breaks. With ``n_fields`` None the first non-blank line is the header, counted and not
    checked. Blank lines are no rows (both readers skip them); quoted fields ("a, b", with
    "" inside) are taken out before counting ``sep``.
    """
    text = lines.str.rstrip("\r")
    text = text[text.str.len() > 0]
    if len(text) == 0:
        return 0, 0, n_fields
    unquoted = text.str.replace(r'"[^"]*"', "", regex=True)
    fields = unquoted.str.count("\\" + sep if sep in "|^$.*+?()[]{}\\" else sep) + 1
    open_quotes = unquoted.str.contains('"', regex=False)
    if n_fields is None:
        n_fields = int(fields.iloc[0])
        fields, open_quotes = fields.iloc[1:], open_quotes.iloc[1:]
    return int((fields != n_fields).sum()), int(open_quotes.sum()), n_fields


# --- canonical columns -------------------------------------------------------------------


def _canonicalize(frame, schema: Schema, mapping: dict[str, str], backend: Backend, ts_format: str, source: str,
                  examples: dict[str, str] | None = None, codes: bool = False, strict: bool | None = None,
                  notes: list[str] | None = None, layouts: bool = True):
    """Schema names, parsed times, numbers and categories. ``examples`` (when given) gets,
    per column, one value that could not be read (cleaning then drops its row and says why).
    ``strict`` (default: whether ``ts_format`` is given): the format is the user's and reads
    every time; otherwise it was detected (here, or on a model's training data), and ISO 8601
    times beside it are read too.

    With ``codes`` the :data:`CODED` columns become int32 codes, missing ``<NA>``
    (:func:`~gpuseg.backend.nullable_codes`; integer columns are their own codes). Off for
    the pieces of a Dask run, whose codes would not agree: they keep the text.
    """
    frame = frame.rename(columns=mapping)[[mapping[c] for c in mapping]]
    raw_time = frame[schema.time]
    strict = bool(ts_format) if strict is None else strict
    shown = next((src for src, dst in mapping.items() if dst == schema.time), schema.time)
    frame, used = _parse_time(frame, schema.time, backend, ts_format, source, strict, notes, shown, layouts)
    if examples is not None and int((frame[schema.time].isna() & raw_time.notna()).sum()):
        examples[schema.time] = _example_invalid(raw_time, frame[schema.time])
    for col in schema.numeric:
        if col in frame.columns:
            raw = frame[col]
            src = next((k for k, v in mapping.items() if v == col), col)
            frame[col] = _to_float(raw, repr(col) if src == col else f"{src!r} (read as {col!r})", backend, source)
            if examples is not None and int((frame[col].isna() & raw.notna()).sum()):
                examples[col] = _example_invalid(raw, frame[col])
    for col in schema.categorical:
        if col not in frame.columns:
            continue
        frame[col] = _blank_as_missing(frame[col])
        is_category = str(frame[col].dtype) == "category"
        if codes and col in CODED:
            if is_category or frame[col].dtype.kind not in "iu":  # the CPU reader's codes are int32 already
                frame[col] = nullable_codes(frame[col])
        elif not is_category:
            frame[col] = frame[col].astype("category")
    return frame, used


def _blank_as_missing(s):
    """A text or category column with its blank values ("", spaces) missing, as Arrow's CSV
    reader makes an empty field: a Parquet file or a frame with "" for a brand reads as a CSV
    of the same data does (filled as a gap, not counted as a brand). Codes stay as they are."""
    if str(s.dtype) == "category":
        blank = [c for c in index_values(s.cat.categories) if isinstance(c, str) and not c.strip()]
        return s.cat.remove_categories(blank) if blank else s
    if s.dtype.kind in "OSU" or str(s.dtype).startswith(("str", "string")):
        blank = s.str.strip() == ""
        return s.where(~blank.fillna(False)) if bool(blank.any()) else s
    return s


def _to_float(s, shown: str, backend: Backend, source: str):
    """``s`` as float64; ``shown`` names the column in the messages (``'amount'``)."""
    kind = s.dtype.kind
    if kind == "b" or str(s.dtype) == "boolean":  # true/false is no amount: 1.0 and 0.0 would pass as prices
        raise SchemaError(f"{source}: column {shown} should hold numbers, found true/false values")
    if kind in "fiu":
        return s.astype("float64")
    xf = backend.frame
    nonnull = int(s.notna().sum())
    out = xf.to_numeric(s.astype("str") if str(s.dtype) == "category" else s, errors="coerce")
    valid = int(out.notna().sum())
    mostly_read = valid >= _MIN_VALID_SHARE * nonnull
    if valid < nonnull and (not mostly_read or _looks_like_money(s[out.isna() & s.notna()])):
        _one_currency(s, shown, source)
        money = _money_amounts(s, xf, nonnull)
        # "1,234.50" among plain numbers (an export's large amounts) fills the gaps, unless the
        # style read any number differently ("0.125" as 125 because of one "1,5"): then neither
        if money is not None and not bool((out.notna() & money.notna() & (money != out)).any()):
            out = out.fillna(money)
            valid = int(out.notna().sum())
    if nonnull and valid < _MIN_VALID_SHARE * nonnull:
        example = _example_invalid(s, out)
        raise SchemaError(f"{source}: column {shown} should hold numbers, found text such as {example!r}")
    return out.astype("float64")


#: The currency a symbol or code of :data:`_SYM` stands for ("$" taken as "USD").
_CURRENCY_OF = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


def _one_currency(s, shown: str, source: str) -> None:
    """Refuse a column of amounts written in several currencies ("€1.234,50" beside
    "$1,234.50"): they cannot be added up, and the ones in the rarer number style would
    otherwise be dropped as bad prices."""
    marks = s.astype("str").str.extract(f"({_SYM})", expand=False).dropna()
    codes = sorted({_CURRENCY_OF.get(str(m), str(m)) for m in to_host(marks.drop_duplicates()).tolist()})
    if len(codes) > 1:
        raise SchemaError(f"{source}: column {shown} holds amounts in {len(codes)} currencies ({', '.join(codes)}): "
                          "gpuseg adds amounts up as one currency; convert them to one, or keep one currency's "
                          "rows, first")


def _looks_like_money(unread) -> bool:
    """Whether any of the first 100 values plain parsing could not read is written as an
    amount of :data:`_MONEY_STYLES` (before the whole column is tried: "1.2.3" is not)."""
    text = unread.head(100).astype("str")
    return any(bool(text.str.match(style[0]).any()) for style in _MONEY_STYLES)


#: Amounts as spreadsheets and shop exports write them: a sign, a currency symbol or code
#: before or after, digits with thousands separators, decimals. Per style: (pattern, what shows the
#: style for certain, the characters to drop, the decimal mark). "1,234" or "1.234 €" alone
#: fits both styles and shows neither: it may be 1234 or 1.234, and is refused.
_CODES = "USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|INR|CNY|BRL|MXN|ZAR"
_SYM = rf"(?:[$€£¥]|{_CODES})"
_POINT_DECIMALS = r"\.[0-9]{1,2}\b|\.[0-9]{4,}|,[0-9]{3}[.,]"  # $12.50, 1,234.5, 1,234,567
_COMMA_DECIMALS = r",[0-9]{1,2}\b|,[0-9]{4,}|\.[0-9]{3}[.,]"  # 12,50 €, 1.234,5, 1.234.567
_MONEY_STYLES = (
    (rf"^\s*[-+]?\s*{_SYM}?\s*(?:[0-9]{{1,3}}(?:,[0-9]{{3}})+|[0-9]+)(?:\.[0-9]+)?\s*{_SYM}?\s*$",
     _POINT_DECIMALS, _COMMA_DECIMALS, rf"[\s$€£¥,]|{_CODES}", None),
    (rf"^\s*[-+]?\s*{_SYM}?\s*(?:[0-9]{{1,3}}(?:\.[0-9]{{3}})+|[0-9]+)(?:,[0-9]+)?\s*{_SYM}?\s*$",
     _COMMA_DECIMALS, _POINT_DECIMALS, rf"[\s$€£¥.]|{_CODES}", ","),
)


def _money_amounts(s, xf, nonnull: int):
    """A text column of amounts written with currency symbols, thousands separators or
    decimal commas (:data:`_MONEY_STYLES`; plain numbers are written so too) as float64,
    unreadable values missing; None unless at least half of it is written in one style, and
    its separators (if any) show that style and not the other."""
    text = s.astype("str")
    for pattern, ours, theirs, drop, decimal in _MONEY_STYLES:
        written = text.str.match(pattern) & s.notna()
        if int(written.sum()) < _MIN_VALID_SHARE * nonnull:
            continue
        seen = text[written]
        if bool(seen.str.contains("[.,]").any()) and not (bool(seen.str.contains(ours).any())
                                                          and not bool(seen.str.contains(theirs).any())):
            continue
        plain = text.str.replace(drop, "", regex=True)
        if decimal is not None:
            plain = plain.str.replace(decimal, ".", regex=False)
        return xf.to_numeric(plain.where(written), errors="coerce").astype("float64")
    return None


def _example_invalid(raw, parsed) -> str:
    bad = raw[parsed.isna() & raw.notna()].head(1)
    if is_gpu_frame(bad):
        bad = bad.to_pandas()
    return str(bad.iloc[0]) if len(bad) else "?"


def _host_sample(s, n: int = _TIME_SAMPLE) -> list[str]:
    """Up to ``n`` non-missing values spread over the whole column, as host strings.

    Spread, not the first rows: a log sorted by time starts with days 1-12 only, where
    day/month and month/day formats cannot be told apart.
    """
    nn = s[s.notna()]
    if len(nn) > n:
        nn = nn.iloc[np.linspace(0, len(nn) - 1, n).astype(np.int64)]
    if is_gpu_frame(nn):
        nn = nn.to_pandas()
    return [str(v) for v in nn.tolist()]


def rank_timestamp_formats(sample: list[str]) -> list[tuple[str, float]]:
    """Share of ``sample`` each of :data:`TIMESTAMP_FORMATS` parses, best first (stable)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not sample:
        return []
    arr = pa.array(sample, type=pa.string())
    shares = [
        (fmt, 1.0 - pc.strptime(arr, format=fmt, unit="s", error_is_null=True).null_count / len(sample))
        for fmt in TIMESTAMP_FORMATS
    ]
    return sorted(shares, key=lambda t: -t[1])


def detect_timestamp_format(sample: list[str]) -> tuple[str | None, float]:
    """The format of :data:`TIMESTAMP_FORMATS` that parses most of ``sample``, and its share."""
    ranked = rank_timestamp_formats(sample)
    if not ranked or ranked[0][1] == 0:
        return None, 0.0
    return ranked[0]


def _read_apart(a, b) -> bool:
    """Whether two parses of one column read some of the same values to different instants
    (month first against day first), not merely different values."""
    both = a.notna() & b.notna()
    return bool(both.any()) and bool((a[both] != b[both]).any())


def _ambiguous_time(col: str, fmt: str, rival: str, example: list[str]) -> str:
    """The line for a time column that two formats read alike (no day above 12 tells month
    first from day first): which was taken, and how to take the other."""
    shown = f" such as {example[0]!r}" if example else ""
    return (f"column {col!r}: every time{shown} reads as {fmt!r} and as {rival!r}, to different dates; took "
            f"{fmt!r}. If that is wrong, run with a --config file that sets [clean] timestamp_format = '{rival}'")


def _parse_time(frame, col: str, backend: Backend, ts_format: str, source: str, strict: bool = True,
                notes: list[str] | None = None, shown: str | None = None, layouts: bool = True):
    """``frame`` with ``col`` parsed to datetime64[s] (UTC), and the format used. ``layouts``
    (False: a model saved before 2026-12-08): times the format does not read are tried in the
    other layouts that read some of them (:func:`_compatible_formats`)."""
    s = frame[col]
    kind = s.dtype.kind
    if kind == "M":  # typed timestamps (Parquet, generated data)
        tz = getattr(s.dtype, "tz", None)
        if tz is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        frame[col] = s.astype("datetime64[s]")
        return frame, "native"
    if kind in "iuf":
        frame[col] = _numeric_time(s, col, backend, source)
        return frame, "numeric"
    if str(s.dtype) == "category":
        s = s.astype("str")
    nonnull = int(s.notna().sum())
    if nonnull == 0:
        raise SchemaError(f"{source}: column {col!r} is empty; expected timestamps")
    fmt = ts_format
    ranked: list[tuple[str, float]] = []
    if not fmt:
        ranked = rank_timestamp_formats(_host_sample(s))
        tied = [f for f, share in ranked if share == ranked[0][1] and share >= _MIN_VALID_SHARE]
        if not tied:
            fmt = "ISO8601"
        elif len(tied) == 1:
            fmt = tied[0]
        else:  # e.g. day/month vs month/day on a sample: decide on the whole column
            parses = {f: _parse_time_on(s, f, backend) for f in tied}
            reads = {f: int(p.notna().sum()) for f, p in parses.items()}
            fmt = max(tied, key=lambda f: (reads[f], -tied.index(f)))
            # another format that reads as many times, to other instants (month first and day
            # first), not to the same ones ("...Z" and "...%z")
            rival = next((f for f in tied if f != fmt and reads[f] == reads[fmt]
                          and _read_apart(parses[f], parses[fmt])), None)
            if rival is not None and notes is not None:
                notes.append(_ambiguous_time(shown or col, fmt, rival, _host_sample(s, 1)))
    parsed = _parse_time_on(s, fmt, backend)
    valid = int(parsed.notna().sum())
    if not (ts_format and strict) and fmt != "ISO8601" and valid < nonnull:  # ISO 8601 beside a detected format
        parsed = _iso_leftovers(s, parsed, backend)
        valid = int(parsed.notna().sum())
    if layouts and not (ts_format and strict) and valid < nonnull:  # two layouts (REES46's beside ISO 8601)
        ranked = ranked or rank_timestamp_formats(_host_sample(s))  # a model's format: ranked here
        parsed = _format_leftovers(s, parsed, _compatible_formats(s, fmt, ranked), backend)
        valid = int(parsed.notna().sum())
    if ts_format and not strict and valid < _MIN_VALID_SHARE * nonnull:  # a model's format these times are not in
        return _parse_time(frame, col, backend, "", source, strict=False, notes=notes, shown=shown, layouts=layouts)
    if valid < _MIN_VALID_SHARE * nonnull:
        example = _example_invalid(s, parsed)
        readable = bool(pd.to_datetime(pd.Series([example]), errors="coerce", format="mixed", utc=True).notna().all())
        if readable and ts_format and strict:
            raise SchemaError(f"{source}: column {col!r} should hold format {ts_format!r} ([clean] timestamp_format); "
                              f"{example!r} is a timestamp in another format")
        if readable and valid <= _UNDETECTED_SHARE * nonnull:  # one layout, not among the detected ones
            raise SchemaError(f"{source}: column {col!r} holds timestamps in a layout gpuseg does not detect, such as "
                              f"{example!r}; give its strptime format with --config [clean] timestamp_format "
                              "(e.g. '%d %b %Y %H:%M')")
        if readable:  # the example is a fine timestamp on its own: the column mixes formats
            raise SchemaError(f"{source}: column {col!r} mixes timestamp formats: {fmt!r} reads {valid:,} of "
                              f"{nonnull:,} values, not e.g. {example!r}; give one with --config "
                              "[clean] timestamp_format, or write the column in one format")
        hint = f"format {ts_format!r}" if ts_format else "timestamps like '2019-10-01 00:00:00 UTC'"
        raise SchemaError(f"{source}: column {col!r} should hold {hint}, found values such as {example!r}")
    frame[col] = parsed
    return frame, fmt


#: A whole ISO 8601 date, or date and time, with a zone or without.
_ISO_DATE_TIME = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?( ?(Z|UTC|[+-]\d{2}:?\d{2}))?$"


def _iso_leftovers(s, parsed, backend: Backend):
    """``parsed`` with the values its format did not read filled in where they are ISO 8601
    (a zone, ``Z`` or none, which is UTC): a log that writes most times as
    ``2020-03-06 10:11:02`` and some as ``2020-03-06T10:11:02Z`` lost the latter as bad."""
    missed = s[parsed.isna() & s.notna()]  # a few rows of a large log: only they are matched
    iso = missed[missed.str.match(_ISO_DATE_TIME).fillna(False)]  # "1997" is not 1997-01-01 (as pandas reads it)
    if len(iso) == 0:
        return parsed
    return parsed.fillna(_parse_time_on(iso, "ISO8601", backend))


def _compatible_formats(s, fmt: str, ranked: list[tuple[str, float]]) -> list[str]:
    """The formats of ``ranked`` that read some of a sample of ``s`` and read none of its
    values to another instant than ``fmt`` does: day first is never filled in beside month
    first (that would mix the two conventions in one column)."""
    sample = pd.Series(_host_sample(s))
    base = _parse_time_cpu(sample, fmt)
    found = [f for f, share in ranked if share > 0 and f not in (fmt, _day_month_swapped(fmt))
             and not _read_apart(_parse_time_cpu(sample, f), base)]
    # a layout whose day-first and month-first readings are both candidates is ambiguous: neither
    return [f for f in found if _day_month_swapped(f) not in found or _day_month_swapped(f) == f]


def _day_month_swapped(fmt: str) -> str:
    """``fmt`` with day and month exchanged (``%d/%m/%Y`` -> ``%m/%d/%Y``)."""
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _format_leftovers(s, parsed, formats: list[str], backend: Backend):
    """``parsed`` (ISO 8601) with the values it did not read filled in by each of ``formats``
    in turn (at most three): a log whose times are half ISO 8601 and half
    ``2019-10-01 00:00:00 UTC`` has no format that reads half of a sample, and lost the
    latter as bad."""
    for fmt in formats[:3]:
        missed = s[parsed.isna() & s.notna()]
        if len(missed) == 0:
            break
        parsed = parsed.fillna(_parse_time_on(missed, fmt, backend))
    return parsed


def _parse_time_on(s, fmt: str, backend: Backend):
    return _parse_time_gpu(s, fmt) if backend.is_gpu else _parse_time_cpu(s, fmt)


def _parse_time_cpu(s: pd.Series, fmt: str) -> pd.Series:
    import pyarrow as pa
    import pyarrow.compute as pc

    if fmt == "ISO8601":
        out = pd.to_datetime(s, format="ISO8601", utc=True, errors="coerce")
        return out.dt.tz_localize(None).astype("datetime64[s]")
    arr = pa.array(s, type=pa.string(), from_pandas=True)  # chunked from Arrow-backed text
    if not isinstance(arr, pa.ChunkedArray):
        arr = pa.chunked_array([arr])

    def parse(piece):
        parsed = pc.strptime(piece, format=fmt, unit="s", error_is_null=True)
        if parsed.type.tz is not None:
            parsed = parsed.cast(pa.timestamp("s", tz="UTC")).cast(pa.timestamp("s"))
        return parsed

    # Arrow's strptime runs on one thread: contiguous pieces in the run's threads
    parsed = pa.chunked_array(
        [c for part in in_threads(parse, _pieces(arr, _TIME_PIECE_ROWS), "gpuseg-read") for c in part.chunks],
        type=pa.timestamp("s"))
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=s.index, name=s.name).astype("datetime64[s]")


#: rows per piece of a time column parsed in threads (10 pieces at 10M rows)
_TIME_PIECE_ROWS = 1 << 20


def _pieces(arr, rows: int) -> list:
    """A chunked Arrow array as contiguous slices of at most ``rows`` rows (at least one)."""
    n = len(arr)
    return [arr.slice(start, rows) for start in range(0, n, rows)] or [arr]


def _parse_time_gpu(s, fmt: str):
    cudf = gpu_module("cudf")
    # cuDF parses neither zones nor errors="coerce", and only strings of one length
    # ("12/1/2010 8:26" next to "12/13/2010 9:01" is refused): those go through the host.
    base = fmt
    for suffix in (" UTC", "Z"):
        if base.endswith(suffix) and not base.endswith("%" + suffix[-1]):
            s = s.str.replace(suffix, "", regex=False)
            base = base[: -len(suffix)]
    lengths = s.str.len()
    if ("%z" in base or "%Z" in base or base == "ISO8601" or any(d in base for d in _HOST_DIRECTIVES)
            or int(lengths.nunique()) > 1):
        return cudf.from_pandas(_parse_time_cpu(s.to_pandas(), fmt))
    ok = s.str.istimestamp(base)
    return cudf.to_datetime(s.where(ok), format=base).astype("datetime64[s]")


def _numeric_time(s, col: str, backend: Backend, source: str):
    """Integer timestamps: YYYYMMDD (CDNOW) or Unix seconds, milliseconds, microseconds or
    nanoseconds, the unit decided per value (a column may mix them); missing stay NaT."""
    nn = s[s.notna()]
    if len(nn) == 0:
        raise SchemaError(f"{source}: column {col!r} is empty; expected timestamps")
    lo, hi = float(nn.min()), float(nn.max())
    if 19000101 <= lo and hi <= 21001231:
        ints = s.astype("int64") if backend.is_gpu else s.astype("Int64")  # nullable on both
        return _parse_time_on(ints.astype("str"), "%Y%m%d", backend)
    # the unit per value: Unix seconds stay below 1e11 until the year 5138, milliseconds
    # (microseconds, nanoseconds) since 1973 are above it, so a column mixing them is read right
    x = s.astype("float64")
    seconds = x.where(x < 1e11, x.where(x >= 1e14, x / 1e3).where(x < 1e14, x.where(x >= 1e17, x / 1e6)))
    seconds = seconds.where(x < 1e17, x / 1e9)
    if not (0 <= lo and float(seconds[seconds.notna()].max()) < 4e9):
        raise SchemaError(
            f"{source}: column {col!r} holds numbers that are neither YYYYMMDD dates nor Unix times (e.g. {hi:.0f})"
        )
    return backend.frame.to_datetime(seconds, unit="s").astype("datetime64[s]")


_TRUTH_ID = ("customer_id", "user_id", "customer", "id")
_TRUTH_LABEL = ("persona", "segment", "label", "truth", "class", "cluster")


def _read_truth_csv(p: Path) -> pd.DataFrame:
    """A truth CSV as text (ids keep their leading zeros, as the data's do), with the data
    reader's delimiter detection and its Latin-1 fallback."""
    encoding = "utf-8" if _looks_utf8(p) else "latin-1"
    try:
        return pd.read_csv(p, sep=_delimiter(p), dtype=str, encoding=encoding, skipinitialspace=True)
    except UnicodeDecodeError:
        return pd.read_csv(p, sep=_delimiter(p), dtype=str, encoding="latin-1", skipinitialspace=True)


def read_truth(path: str | os.PathLike) -> pd.Series:
    """Known segment per customer, for ARI/NMI (``--truth``).

    The file (CSV or Parquet) needs a customer column (``customer_id`` or ``user_id``, else
    the first column) and a label column (``persona``, ``segment`` or ``label``, else the
    second column).

    Returns
    -------
    pandas.Series
        Labels indexed by customer id.

    Raises
    ------
    DataError, SchemaError
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--truth {path}: {'is a folder; give a file' if p.is_dir() else 'no such file'}")
    kind = "parquet" if _is_parquet(p.name) else "csv" if _is_csv(p.name) else None
    if kind is None:
        raise DataError(f"--truth {path}: unsupported file type; expected .csv or .parquet")
    read_header(p, kind)
    try:
        df = pd.read_parquet(p) if kind == "parquet" else _read_truth_csv(p)
    except Exception as exc:
        raise DataError(f"--truth {path}: cannot be read ({_first_line(exc)})") from None
    if df.shape[1] < 2:
        raise SchemaError(f"--truth {path}: needs a customer column and a label column, found {list(df.columns)}")
    lower = {str(c).lower(): c for c in df.columns}
    id_col = next((lower[c] for c in _TRUTH_ID if c in lower), df.columns[0])
    label_col = next((lower[c] for c in _TRUTH_LABEL if c in lower and lower[c] != id_col), None)
    if label_col is None:
        label_col = next(c for c in df.columns if c != id_col)
    df = df.dropna(subset=[id_col, label_col])
    if len(df) == 0:
        raise DataError(f"--truth {path}: no rows with both a customer and a label")
    if pd.api.types.is_string_dtype(df[id_col]) or pd.api.types.is_object_dtype(df[id_col]):
        df[id_col] = df[id_col].astype(str).str.strip()  # "8 " is customer "8"
    if df[id_col].dtype.kind == "f" and bool((df[id_col] % 1 == 0).all()):
        df[id_col] = df[id_col].astype("int64")
    df = df.drop_duplicates(subset=[id_col, label_col])
    twice = df[id_col].duplicated(keep=False)
    if bool(twice.any()):  # which one is the truth? (keeping either gave an ARI against a guess)
        first = df.loc[twice, id_col].iloc[0]
        labels = sorted(map(str, df.loc[df[id_col] == first, label_col]))
        raise DataError(f"--truth {path}: {int(df.loc[twice, id_col].nunique()):,} customers have more than one "
                        f"label, e.g. {str(first)!r}: {', '.join(labels[:3])}; give one label per customer")
    s = df.set_index(id_col)[label_col]
    s.index.name = "customer_id"
    return s.rename("truth")
