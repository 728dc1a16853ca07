"""The fuzz campaign that stays (issue 16): random inputs, config files and model edits go
through the entry points the CLI uses. The property: the only outcomes are success or a
GpusegError (one line, exit code 2), never another exception or a hang, and an existing
output folder is unchanged after any failure.

Sizes are kept small so the suite stays fast; ``GPUSEG_CAMPAIGN_EXAMPLES`` raises them for a
long campaign (bench/README.md reports one).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuseg import backend as _backend
from gpuseg.cli import main
from gpuseg.config import CleanConfig, FeatureConfig, build_config, load_config_file
from gpuseg.errors import GpusegError
from gpuseg.io.readers import load
from gpuseg.model import load_model
from gpuseg.prep import clean, customer_features

SCALE = int(os.environ.get("GPUSEG_CAMPAIGN_EXAMPLES", "1"))
FAST = settings(max_examples=40 * SCALE, deadline=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CPU = _backend.select("cpu")


@contextlib.contextmanager
def no_hang(seconds: int = 30):
    """Fail (not hang) when the body runs longer than ``seconds``."""
    def alarm(signum, frame):
        raise AssertionError(f"hung for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def only_clean_errors(fn, *args, **kwargs):
    """Call ``fn``; success or GpusegError pass, anything else fails the test."""
    with no_hang():
        try:
            return fn(*args, **kwargs)
        except GpusegError:
            return None


# --- readers ---------------------------------------------------------------------------------

NAMES = ["customer_id", "timestamp", "amount", "order_id", "quantity", "unit_price", "product_id", "category",
         "Description", "event_time", "event_type", "user_id", "price", "user_session", "brand", "category_code",
         "CustomerID", "InvoiceDate", "x", "", "ämount", "\x1b[31m", "=cmd|x", "id id", "a\"b"]
CELLS = st.one_of(
    st.integers(-10**12, 10**19).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["2021-01-01", "2021-01-01 10:00:00 UTC", "1900-01-01", "2100-12-31", "yesterday", "", "NaN",
                     "view", "purchase", "cart", "１２３", "²", "1,234.50", "=HYPERLINK(\"x\")", "\t", "a\nb",
                     "1609459200", "1609459200000", "20210101", "-1", "0", "None", "null"]),
    st.text(max_size=12),
)


ORDERS = ["customer_id", "timestamp", "amount"]
ORDERS_MORE = ["order_id", "quantity", "unit_price", "product_id", "category", "Description"]
EVENTS = ["event_time", "event_type", "user_id", "price"]
EVENTS_MORE = ["product_id", "category_id", "category_code", "brand", "user_session"]
VALID = {
    "customer_id": st.integers(0, 30).map(str), "user_id": st.integers(0, 30).map(str),
    "timestamp": st.dates(pd.Timestamp("2020-01-01").date(), pd.Timestamp("2021-12-31").date()).map(str),
    "event_time": st.datetimes(pd.Timestamp("2020-01-01"), pd.Timestamp("2021-12-31")).map(
        lambda t: t.strftime("%Y-%m-%d %H:%M:%S UTC")),
    "amount": st.floats(0, 500).map(lambda x: f"{x:.2f}"), "price": st.floats(0, 500).map(lambda x: f"{x:.2f}"),
    "unit_price": st.floats(0, 50).map(lambda x: f"{x:.2f}"), "quantity": st.integers(-2, 6).map(str),
    "event_type": st.sampled_from(["view", "cart", "remove_from_cart", "purchase"]),
    "order_id": st.integers(0, 40).map(str), "product_id": st.integers(1, 20).map(str),
    "user_session": st.integers(0, 40).map(lambda i: f"s{i}"),
    "category_code": st.sampled_from(["electronics.smartphone", "apparel.shoes", "", "kids"]),
    "brand": st.sampled_from(["samsung", "apple", "", "nike"]), "category": st.sampled_from(["a", "b.c", ""]),
    "Description": st.sampled_from(["WHITE HEART", "CAKESTAND", ""]), "category_id": st.integers(1, 5).map(str),
}


@st.composite
def csv_files(draw):
    """A CSV file: mostly a real order or event log's columns with plausible cells and a few
    hostile ones, sometimes random columns; in one of several delimiters and encodings."""
    shape = draw(st.sampled_from(["orders", "events", "random"]))
    if shape == "random":
        header = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=8))
    else:
        base, more = (ORDERS, ORDERS_MORE) if shape == "orders" else (EVENTS, EVENTS_MORE)
        header = draw(st.permutations(base + draw(st.lists(st.sampled_from(more), max_size=4, unique=True))))
    garbage = draw(st.sampled_from([0.0, 0.05, 0.3]))

    def cell_of(name):
        valid = VALID.get(name)
        return CELLS if valid is None else st.one_of(valid, CELLS) if garbage >= 0.3 else valid

    n_rows = draw(st.integers(0, 30))
    rows = [[draw(cell_of(h)) for h in header] for _ in range(n_rows)]
    if garbage and rows:  # a few hostile cells and ragged rows
        for _ in range(draw(st.integers(1, 3))):
            r = draw(st.integers(0, len(rows) - 1))
            if rows[r]:
                rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(CELLS)
            if draw(st.booleans()):
                rows[r] = rows[r][:-1] if draw(st.booleans()) else rows[r] + ["extra"]
    sep = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16", "cp1252", "utf-8-sig"]))

    def cell(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in (sep, '"', "\n", "\r")) else v

    text = "\n".join(sep.join(cell(c) for c in row) for row in [header, *rows]) + "\n"
    return text.encode(encoding, errors="replace"), draw(st.sampled_from(["auto", "auto", "events", "orders"]))


@FAST
@given(csv_files())
def test_readers_and_cleaning_raise_nothing_but_clean_errors(tmp_path_factory, case):
    content, fmt = case
    path = tmp_path_factory.mktemp("fuzz") / "in.csv"
    path.write_bytes(content)
    data = only_clean_errors(load, str(path), CPU, fmt)
    if data is None:
        return
    cleaned = only_clean_errors(clean, data, CleanConfig(), CPU)
    if cleaned is not None:
        only_clean_errors(customer_features, cleaned, FeatureConfig())


# --- whole runs into an existing output folder ------------------------------------------------

@pytest.fixture(scope="module")
def previous_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("prev")
    rng = np.random.default_rng(0)
    pd.DataFrame({"customer_id": rng.integers(0, 40, 200), "timestamp": pd.Timestamp("2021-01-01")
                  + pd.to_timedelta(rng.integers(0, 200, 200), unit="D"), "amount": rng.uniform(1, 50, 200)}
                 ).to_csv(d / "good.csv", index=False)
    out = d / "out"
    assert main(["run", "--input", str(d / "good.csv"), "--out", str(out), "--methods", "kmeans", "--k", "2",
                 "--stability", "0", "--no-report", "-q"]) == 0
    return out


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != ".gpuseg-lock"}


@settings(max_examples=8 * SCALE, deadline=None, derandomize=SCALE == 1,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(csv_files())
def test_a_failed_run_leaves_the_output_folder_unchanged(tmp_path_factory, previous_run, case):
    content, fmt = case
    path = tmp_path_factory.mktemp("fuzzrun") / "in.csv"
    path.write_bytes(content)
    before = _snapshot(previous_run)
    with no_hang(120):
        rc = main(["run", "--input", str(path), "--format", fmt, "--out", str(previous_run), "--methods", "kmeans",
                   "--k", "2", "--stability", "0", "--no-report", "-q"])
    assert rc in (0, 2)
    if rc == 2:
        assert _snapshot(previous_run) == before


# --- config files ----------------------------------------------------------------------------

TOML_VALUES = st.recursive(
    st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.booleans(), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)
KEYS = st.sampled_from(["k", "methods", "seed", "stability", "report", "threads", "anonymize", "embed", "format",
                        "select", "out", "input", "rename", "params", "clean", "features", "evaluate", "segments",
                        "value", "dask", "price_outliers", "horizon_days", "describe_only", "bogus"])


def _toml(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


@st.composite
def config_texts(draw):
    lines = []
    for key, value in draw(st.lists(st.tuples(KEYS, TOML_VALUES), max_size=5)):
        lines.append(f"{key} = {_toml(value)}")
    for section in draw(st.lists(st.sampled_from(["clean", "features", "evaluate", "segments", "value", "dask",
                                                  "params.kmeans", "embed", "nope"]), max_size=2, unique=True)):
        lines.append(f"[{section}]")
        for key, value in draw(st.lists(st.tuples(KEYS, TOML_VALUES), max_size=3)):
            lines.append(f"{key} = {_toml(value)}")
    text = "\n".join(lines)
    return draw(st.one_of(st.just(text), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))


@FAST
@given(config_texts())
def test_config_loader_raises_nothing_but_clean_errors(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    values = only_clean_errors(load_config_file, path)
    if values is not None:
        only_clean_errors(build_config, values)


# --- saved models ----------------------------------------------------------------------------

JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**9), st.floats(allow_nan=False),
                        st.text(max_size=6), st.lists(st.integers(-2, 5), max_size=3), st.just({}),
                        st.just({"kind": "x"}))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list) and len(obj) < 20:
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value, delete):
    for key in path[:-1]:
        obj = obj[key]
    if delete and isinstance(obj, dict):
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = value


@FAST
@given(st.data())
def test_model_loader_raises_nothing_but_clean_errors(previous_run, tmp_path_factory, data):
    import shutil

    from gpuseg.model import _manifest_text

    folder = tmp_path_factory.mktemp("model") / "model"
    shutil.copytree(previous_run / "model", folder)
    manifest = json.loads((folder / "model.json").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(manifest) if p]  # again after each edit: an edit may remove a branch
        if paths:
            _set(manifest, data.draw(st.sampled_from(paths)), data.draw(JSON_VALUES), data.draw(st.booleans()))
    consistent = data.draw(st.booleans())  # an attacker recomputes the digest; an accident does not
    (folder / "model.json").write_text(_manifest_text(manifest) if consistent else json.dumps(manifest))
    if data.draw(st.booleans()):  # and sometimes the arrays are damaged too
        blob = bytearray((folder / "arrays.npz").read_bytes())
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] ^= 0xFF
        (folder / "arrays.npz").write_bytes(bytes(blob))
    model = only_clean_errors(load_model, folder)
    if model is not None:
        X = np.random.default_rng(0).normal(size=(5, len(model.feature_names)))
        only_clean_errors(model.predict, X)
