"""The rules the GPU path depends on, checked on the CPU.

cuDF (26.10) orders joins and ``value_counts`` ties by hash, has no encoding or bad-line
handling in ``read_csv``, and RMM does nothing until a pool is made: each rule gpuseg adds
for that is checked here with pandas standing in for cuDF (shuffled where cuDF would
shuffle) and fake RMM / CuPy / torch modules.
"""

from __future__ import annotations

import gzip
import importlib
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpuseg import backend
from gpuseg.config import CleanConfig, FeatureConfig
from gpuseg.errors import DeviceError
from gpuseg.io import readers
from gpuseg.io.readers import csv_dtypes, csv_field_check, from_frame

clean_mod = importlib.import_module("gpuseg.prep.clean")  # gpuseg.prep.clean is also the function
features_mod = importlib.import_module("gpuseg.prep.features")

# --- 1. joins: the features' row order is explicit ---------------------------------------------


def _shuffling_join(real):
    """DataFrame.join returning its rows in a seeded shuffle, as cuDF does outside pandas mode."""

    def join(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        return out.sample(frac=1.0, random_state=3)

    return join


def test_event_features_come_out_in_customer_order_whatever_order_the_join_gives(monkeypatch, cpu, small_events):
    events, _ = small_events
    cleaned = clean_mod.clean(from_frame(events, cpu), CleanConfig(), cpu)
    expected = features_mod.customer_features(cleaned, FeatureConfig()).frame
    assert expected.index.is_monotonic_increasing
    monkeypatch.setattr(pd.DataFrame, "join", _shuffling_join(pd.DataFrame.join))
    got = features_mod.customer_features(cleaned, FeatureConfig()).frame
    pd.testing.assert_frame_equal(got, expected)


# --- 5. mode fill: the most frequent value, the smallest on a tie -------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_mode_code_breaks_ties_by_the_smallest_code_in_any_order(seed):
    codes = np.array([5, 2, 5, 2, 7, -1, -1, -1, 9, 9])  # 2, 5 and 9 twice each; -1 missing
    shuffled = pd.Series(np.random.RandomState(seed).permutation(codes))
    assert clean_mod._mode_code(shuffled) == 2
    assert clean_mod._mode_code(pd.Series([5, 5, 2, -1, -1, -1])) == 5  # the most frequent wins
    assert clean_mod._mode_code(pd.Series([-1, -1])) is None


def test_mode_code_ties_first_seen_larger():
    # pandas' value_counts keeps ties in first-seen order: 5 came first, but 2 is the mode
    assert clean_mod._mode_code(pd.Series([5, 2, 2, 5])) == 2


def test_mode_value_of_text_and_missing():
    s = pd.Series(["b", "a", None, "b", "a", None, None])
    assert clean_mod.mode_value(s) == "a"


def test_brand_fill_uses_the_tie_rule():
    codes = pd.Series(pd.Categorical.from_codes([1, 0, 1, 0, -1], categories=["acme", "zeta"]))
    filled, missing, name = clean_mod._brand_codes(codes, "mode", ["acme", "zeta"])
    assert missing == 1 and name == "acme" and filled.tolist() == [1, 0, 1, 0, 0]


@pytest.mark.parametrize("seed", range(4))
def test_top_categories_tie_by_code(seed):
    f = pd.DataFrame({"main_cat": np.random.RandomState(seed).permutation([3, 1, 3, 1, 0, 2, 2, -1])})
    assert features_mod._top_categories(f, 2) == [1, 2]


# --- 2. one RMM pool for torch, CuPy and cuDF ---------------------------------------------------


class _FakeRmm:
    """rmm, rmm.allocators.torch and rmm.allocators.cupy, recording what is done to them."""

    class CudaMemoryResource:
        pass

    class PoolMemoryResource:
        def __init__(self, upstream, initial_pool_size=None, maximum_pool_size=None):
            self.upstream = upstream

    def __init__(self, torch_allocator=object()):
        self.current = self.CudaMemoryResource()
        self.set_calls = 0
        self.mr = types.SimpleNamespace(
            CudaMemoryResource=self.CudaMemoryResource, PoolMemoryResource=self.PoolMemoryResource,
            get_current_device_resource=lambda: self.current, set_current_device_resource=self._set)
        self.torch = types.SimpleNamespace(rmm_torch_allocator=torch_allocator)
        self.cupy = types.SimpleNamespace(rmm_cupy_allocator=lambda nbytes: None)

    def _set(self, mr):
        self.set_calls += 1
        self.current = mr


class _FakeCupy:
    def __init__(self):
        self.allocator = "cupy's own pool"
        self.freed = 0
        self.cuda = types.SimpleNamespace(get_allocator=lambda: self.allocator, set_allocator=self._set)

    def _set(self, allocator):
        self.allocator = allocator

    def get_default_memory_pool(self):
        return types.SimpleNamespace(free_all_blocks=self._free)

    def _free(self):
        self.freed += 1


def _fake_torch(error: type[Exception] | None = None):
    calls = []

    def change(allocator):
        if error is not None:
            raise error("module 'torch._C' has no attribute '_cuda_changeCurrentAllocator'")
        if allocator is None:  # what a CPU-only torch does with RMM's missing allocator
            raise AttributeError("'NoneType' object has no attribute 'allocator'")
        calls.append(allocator)

    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(memory=types.SimpleNamespace(
        change_current_allocator=change)))
    return torch, calls


@pytest.fixture
def fake_gpu_modules(monkeypatch):
    """Install fakes for rmm, its allocators, cupy and torch; returns a function taking
    (rmm, torch) that installs them."""
    real = importlib.import_module
    monkeypatch.setattr(backend, "_POOL_SHARED", False)
    monkeypatch.setattr(backend, "_POOL_MADE", False)

    def install(rmm: _FakeRmm | None, torch: object, cupy: _FakeCupy) -> None:
        table = {} if rmm is None else {"rmm": rmm, "rmm.allocators.torch": rmm.torch,
                                        "rmm.allocators.cupy": rmm.cupy}
        table["cupy"] = cupy

        def fake_import(name, package=None):
            if name in table:
                return table[name]
            if name.split(".")[0] == "rmm":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return real(name, package)

        monkeypatch.setattr(backend.importlib, "import_module", fake_import)
        monkeypatch.setattr(backend, "torch_module", lambda: torch)

    return install


def test_share_memory_pool_makes_one_pool_and_points_both_allocators(fake_gpu_modules):
    rmm, cupy = _FakeRmm(), _FakeCupy()
    torch, calls = _fake_torch()
    fake_gpu_modules(rmm, torch, cupy)
    default = rmm.current
    assert backend.share_memory_pool() is True
    assert isinstance(rmm.current, rmm.PoolMemoryResource) and rmm.current.upstream is default
    assert cupy.allocator is rmm.cupy.rmm_cupy_allocator and cupy.freed == 1
    assert calls == [rmm.torch.rmm_torch_allocator]
    assert backend.share_memory_pool() is True  # idempotent: nothing done again
    assert rmm.set_calls == 1 and len(calls) == 1 and cupy.freed == 1


def test_share_memory_pool_keeps_an_existing_pool(fake_gpu_modules):
    rmm, cupy = _FakeRmm(), _FakeCupy()
    rmm.current = rmm.PoolMemoryResource(rmm.CudaMemoryResource())  # dask-cuda's rmm_pool_size, say
    torch, _ = _fake_torch()
    fake_gpu_modules(rmm, torch, cupy)
    assert backend.share_memory_pool() is True
    assert rmm.set_calls == 0


def test_share_memory_pool_with_cpu_only_torch_returns_false(fake_gpu_modules):
    # RMM offers no torch allocator when torch has no CUDA: nothing is changed
    rmm, cupy = _FakeRmm(torch_allocator=None), _FakeCupy()
    torch, calls = _fake_torch()
    fake_gpu_modules(rmm, torch, cupy)
    assert backend.share_memory_pool() is False
    assert rmm.set_calls == 0 and cupy.allocator == "cupy's own pool" and calls == []


@pytest.mark.parametrize("error", [AttributeError, RuntimeError])
def test_share_memory_pool_when_torch_refuses_returns_false_without_raising(fake_gpu_modules, error):
    rmm, cupy = _FakeRmm(), _FakeCupy()
    torch, _ = _fake_torch(error)
    fake_gpu_modules(rmm, torch, cupy)
    assert backend.share_memory_pool() is False
    assert backend.share_memory_pool() is False
    assert rmm.set_calls == 1  # the pool is made once; CuPy and cuDF still share it
    assert cupy.allocator is rmm.cupy.rmm_cupy_allocator and cupy.freed == 1


def test_share_memory_pool_without_rmm_returns_false(fake_gpu_modules):
    cupy = _FakeCupy()
    torch, calls = _fake_torch()
    fake_gpu_modules(None, torch, cupy)
    assert backend.share_memory_pool() is False
    assert calls == [] and cupy.allocator == "cupy's own pool"


# --- 3. raft-dask: in the extras, and named when missing ----------------------------------------


def _failing_import(monkeypatch, failing: str, missing: str, present: tuple[str, ...] = ()):
    real = importlib.import_module

    def fake_import(name, package=None):
        if name == failing:
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        if name in present:
            return types.SimpleNamespace(__name__=name)
        return real(name, package)

    monkeypatch.setattr(backend.importlib, "import_module", fake_import)


def test_missing_raft_dask_is_named_not_the_extra(monkeypatch):
    _failing_import(monkeypatch, "cuml.dask.cluster", "raft_dask")
    with pytest.raises(DeviceError) as info:
        backend.dask_gpu_kmeans(None, None, n_clusters=3, random_state=0)
    msg = str(info.value)
    assert "raft_dask" in msg and "raft-dask-cu13==26.10.*" in msg and "raft-dask-cu12" in msg
    assert "gpuseg[gpu-cu13]" not in msg and "\n" not in msg


def test_missing_package_itself_still_gets_the_extra(monkeypatch):
    _failing_import(monkeypatch, "cuml.dask.cluster", "cuml")
    with pytest.raises(DeviceError, match=r"cuml is needed .*gpuseg\[gpu-cu13\]"):
        backend.gpu_module("cuml.dask.cluster")


def test_probe_names_a_missing_dependency(monkeypatch):
    monkeypatch.setattr(backend, "probe_cupy", lambda: backend.GpuProbe(True, "CUDA device and CuPy found", "GPU"))
    _failing_import(monkeypatch, "cuml", "pylibraft", present=("cudf",))
    probe = backend.probe_gpu.__wrapped__()
    assert not probe.available
    assert "cuml could not be imported: it needs pylibraft" in probe.reason
    assert "gpu-cu13" not in probe.reason


def test_gpu_extras_install_raft_dask():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    assert "raft-dask-cu13==26.10.*" in extras["gpu-cu13"]
    assert "raft-dask-cu12==26.10.*" in extras["gpu-cu12"]


# --- 4. the GPU CSV reader: encodings, malformed rows, id types ---------------------------------

HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
ROWS = [
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde\n",
    "2019-10-01 00:00:01 UTC,cart,1307067,2053013558920217191,computers.notebook,lenovo,251.74,550050854,7c90fc70\n",
    "2019-10-01 00:00:04 UTC,purchase,1307067,2053013558920217191,computers.notebook,lenovo,251.74,550050854,7c90fc70\n",
]
COLUMNS = ["event_time", "event_type", "price", "user_id", "category_code"]


class FakeCudf:
    """The cuDF readers gpuseg calls, on pandas, recording the calls."""

    def __init__(self):
        self.calls: list[tuple] = []

    def read_csv(self, source, usecols, sep, compression, dtype):
        self.calls.append(("read_csv", dict(dtype), compression))
        return pd.read_csv(source, usecols=usecols, sep=sep, compression=compression, dtype=dtype)

    def read_text(self, source, delimiter, byte_range=None, strip_delimiters=False):
        """Rows that start inside ``byte_range`` (as cuDF's read_text)."""
        self.calls.append(("read_text", byte_range))
        data = Path(source).read_bytes() if isinstance(source, str) else source.getvalue()
        lo, hi = (0, len(data)) if byte_range is None else (byte_range[0], byte_range[0] + byte_range[1])
        starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10 and i + 1 < len(data)]
        lines = []
        for start in (s for s in starts if lo <= s < hi):
            end = data.find(b"\n", start)
            lines.append(data[start:len(data) if end < 0 else (end if strip_delimiters else end + 1)].decode())
        return pd.Series(lines, dtype=object)

    def read_parquet(self, path, columns):
        return pd.read_parquet(path, columns=columns)

    @staticmethod
    def from_pandas(df):
        return df

    @staticmethod
    def concat(parts, ignore_index=False):
        return pd.concat(parts, ignore_index=ignore_index)


@pytest.fixture
def fake_cudf(monkeypatch):
    cudf = FakeCudf()
    monkeypatch.setattr(readers, "gpu_module", lambda name: cudf)
    monkeypatch.setattr(readers, "_CHECK_BYTES", 100)  # several device passes per file
    return cudf


def _write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def test_csv_dtypes_reads_ids_as_text():
    assert csv_dtypes(["user_id", "product_id"]) == {"user_id": "str", "product_id": "str"}
    assert csv_dtypes([]) == {}


def test_field_check_counts_rows_with_the_wrong_number_of_fields():
    lines = pd.Series(["a,b,c\r", "1,2,3", "", "1,2", "1,2,3,4", '"x, y",2,3', '"say ""hi"", ok",2,3', "\r",
                       "1,2,3"])
    assert csv_field_check(lines, ",") == (2, 0, 3)
    assert csv_field_check(pd.Series(["1,2", "1,2,3"]), ",", 3) == (1, 0, 3)  # a later pass: no header
    assert csv_field_check(pd.Series(['a,b', '"open,1']), ",")[1] == 1  # a quoted line break
    assert csv_field_check(pd.Series(["a|b", "1|2", "1"]), "|") == (1, 0, 2)
    assert csv_field_check(pd.Series(["a\tb", "1\t2", "1\t2\t3"]), "\t") == (1, 0, 2)
    assert csv_field_check(pd.Series([], dtype=object), ",") == (0, 0, None)


def test_field_check_counts_what_the_cpu_reader_skips(tmp_path):
    text = HEADER + ROWS[0] + "2019-10-01 00:00:05 UTC,view,1\n" + ROWS[1] + "\n" + ROWS[2].rstrip("\n") + ",extra\n"
    p = _write(tmp_path / "m.csv", text)
    _, skipped = readers._read_csv_cpu(p, COLUMNS, ["user_id"])
    lines = pd.Series(p.read_text().split("\n"))
    assert csv_field_check(lines, ",")[0] == skipped == 2


@pytest.mark.parametrize("name", ["e.csv", "e.csv.gz"])
def test_gpu_reader_reads_clean_files_with_cudf_and_ids_as_text(tmp_path, fake_cudf, name):
    p = _write(tmp_path / name, HEADER + "".join(ROWS))
    frame, malformed = readers._read_gpu([p], "csv", COLUMNS, ["user_id"])
    assert malformed == 0 and len(frame) == 3
    reads = [c for c in fake_cudf.calls if c[0] == "read_csv"]
    assert reads == [("read_csv", {"user_id": "str"}, None if name.endswith(".gz") else "infer")]
    assert pd.api.types.is_string_dtype(frame["user_id"]) and frame["user_id"].iloc[0] == "541312140"


@pytest.mark.parametrize("name", ["m.csv", "m.csv.gz"])
def test_gpu_reader_skips_and_counts_malformed_rows_as_the_cpu_reader(tmp_path, fake_cudf, name, cpu):
    text = HEADER + ROWS[0] + "2019-10-01 00:00:05 UTC,view,1\n" + "".join(ROWS[1:])
    p = _write(tmp_path / name, text)
    frame, malformed = readers._read_gpu([p], "csv", COLUMNS, ["user_id"])
    cpu_frame, cpu_malformed = readers._read_cpu([p], "csv", COLUMNS, [], ["user_id"])
    assert malformed == cpu_malformed == 1 and len(frame) == len(cpu_frame) == 3
    assert not [c for c in fake_cudf.calls if c[0] == "read_csv"]  # the CPU reader read it
    assert pd.api.types.is_string_dtype(frame["user_id"])


def test_gpu_reader_hands_a_padded_header_to_the_cpu_reader(tmp_path, fake_cudf):
    # cuDF's usecols would look for " event_type"; the CPU reader renames the columns
    p = _write(tmp_path / "padded.csv", HEADER.replace(",", ", ") + "".join(ROWS))
    frame, malformed = readers._read_gpu([p], "csv", COLUMNS, ["user_id"])
    assert malformed == 0 and len(frame) == 3 and list(frame.columns) == COLUMNS
    assert not [c for c in fake_cudf.calls if c[0] == "read_csv"]


def test_gpu_reader_falls_back_for_latin1(tmp_path, fake_cudf):
    p = _write(tmp_path / "latin.csv", (HEADER + ROWS[0].replace("shiseido", "caf\xe9")).encode("latin-1"))
    frame, malformed = readers._read_gpu([p], "csv", ["brand", "user_id"], ["user_id"])
    assert malformed == 0 and frame["brand"].tolist() == ["caf\xe9"]
    assert not [c for c in fake_cudf.calls if c[0] == "read_csv"]


def test_gpu_reader_falls_back_for_a_quoted_line_break(tmp_path, fake_cudf):
    text = HEADER + ROWS[0] + ROWS[1].replace("lenovo", '"len\novo"')
    p = _write(tmp_path / "q.csv", text)
    assert readers._gpu_csv_host_reason(fake_cudf, p, ",") == "quoted line break"


def test_utf8_sampling_sees_past_the_head(tmp_path):
    head = (HEADER + ROWS[0] * 60000).encode()  # > 4 MiB of UTF-8
    tail = ROWS[1].replace("lenovo", "caf\xe9").encode("latin-1") * 20000
    p = _write(tmp_path / "big.csv", head + tail)
    assert len(head) > 4 << 20
    assert readers._looks_utf8(p)  # the head alone is UTF-8
    assert not readers._looks_utf8(p, spread=16)
    assert readers._looks_utf8(_write(tmp_path / "ok.csv", head + ROWS[1].encode() * 20000), spread=16)


def test_utf8_block_allows_cut_characters():
    text = "caf\u00e9 \u00fcber".encode()
    assert readers._utf8_block(text[:4])  # the é cut at the end
    assert readers._utf8_block(text[4:], cut=True)  # its continuation byte at the start
    assert not readers._utf8_block(b"caf\xe9 ok")


def test_gpu_pieces_of_plain_and_gzip_csv_agree_on_the_id_type(tmp_path, fake_cudf):
    from gpuseg.dist.tasks import read_piece_frame

    text = HEADER + "".join(ROWS)
    plain = _write(tmp_path / "a.csv", text)
    gz = _write(tmp_path / "b.csv.gz", text)
    gpu = types.SimpleNamespace(is_gpu=True, frame=fake_cudf)
    cpu = backend.select("cpu")
    dtypes = set()
    for be in (gpu, cpu):
        for piece in ((str(plain), "csv_range", 0, plain.stat().st_size), (str(gz), "file")):
            frame, malformed = read_piece_frame(piece, be, "csv", COLUMNS, ["event_type"], ["user_id"])
            assert malformed == 0 and len(frame) == 3
            assert frame["user_id"].tolist() == ["541312140", "550050854", "550050854"]
            dtypes.add(str(frame["user_id"].dtype))
    assert len(dtypes) == 1


def test_gpu_reader_keeps_parts_apart_in_its_counts(tmp_path, fake_cudf):
    good = _write(tmp_path / "p1.csv", HEADER + "".join(ROWS))
    bad = _write(tmp_path / "p2.csv", HEADER + ROWS[0] + "x,y\n")
    frame, malformed = readers._read_gpu([good, bad], "csv", COLUMNS, ["user_id"])
    assert malformed == 1 and len(frame) == 4
    assert isinstance(frame, pd.DataFrame) and frame.index.tolist() == list(range(4))


def test_gpu_reader_fallback_keeps_every_column_as_text(tmp_path, fake_cudf):
    """A file the CPU reader reads for the GPU path comes back as text, as cuDF leaves
    times: PyArrow would parse them, and combined with cuDF's parts of the same run they
    would be cast back to text in another format than the raw one."""
    p = _write(tmp_path / "m.csv", HEADER + ROWS[0] + "2019-10-01 00:00:05 UTC,view,1\n" + "".join(ROWS[1:]))
    frame, _ = readers._read_gpu([p], "csv", COLUMNS, ["user_id"])
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns), frame.dtypes


# --- integer ids with missing values, and ids of other types across parts ----------------------


def test_integer_keys_with_missing_values_code_them_minus_one():
    """cuDF keeps an integer key column with missing values as integers with a null mask
    (pandas' nullable Int64 stands in for it), where the CPU reader gives floats: the codes
    must still be int64 with -1 for missing, as the insights' integer checks need."""
    s = pd.Series([5, None, 7], dtype="Int64")
    codes, names = clean_mod._named_key_codes(s)
    assert codes.tolist() == [5, -1, 7] and str(codes.dtype) == "int64" and names is None
    codes, names = clean_mod._product_codes(s, backend.select("cpu"))
    assert codes.tolist() == [5, -1, 7] and str(codes.dtype) == "int64" and names is None
    codes, _ = clean_mod._product_codes(pd.Series([None, None], dtype="Int64"), backend.select("cpu"))
    assert codes.tolist() == [-1, -1]


def test_gpu_parts_of_other_types_keep_whole_float_ids_as_integers():
    """A part whose id column is float (one id missing) is turned into text as the integer
    part's ids are written: cuDF would write 6543210987654.0 as 6.543210987654e+12."""
    ids = pd.Series([6543210987654.0, None, 1.5])
    assert readers._as_text(ids).tolist()[0] == "6543210987654"
    assert readers._as_text(ids).tolist()[2] == "1.5"
    assert readers._as_text(pd.Series([6543210987654])).tolist() == ["6543210987654"]
