from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gpuseg import backend
from gpuseg.errors import DeviceError


def test_import_touches_no_gpu_library():
    code = (
        "import sys, gpuseg, gpuseg.pipeline, gpuseg.cli, gpuseg.cluster, gpuseg.evaluate.metrics;"
        "bad = [m for m in ('cupy', 'cudf', 'cuml', 'dask_cuda', 'rmm', 'torch') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_estimator_modules_import_without_scikit_learn():
    """scikit-learn's import costs over a second; the GPU path never needs it."""
    code = "import sys, gpuseg.cluster, gpuseg.pipeline; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cpu_backend():
    be = backend.select("cpu")
    assert be.name == "cpu" and be.xp is np and be.frame is pd and be.torch_device == "cpu"
    assert "cores" in be.device_label and not be.is_gpu


def test_gpu_requested_without_gpu(monkeypatch):
    monkeypatch.setattr(backend, "probe_gpu", lambda: backend.GpuProbe(False, "no CUDA device found"))
    with pytest.raises(DeviceError, match="--device gpu was requested but no CUDA device found"):
        backend.select("gpu")
    assert backend.select("auto").name == "cpu"


def test_probe_names_the_missing_part():
    probe = backend.probe_gpu()
    if not probe.available:
        assert probe.reason and ("cupy" in probe.reason or "CUDA" in probe.reason or "disabled" in probe.reason)


def test_bad_device_name():
    with pytest.raises(DeviceError, match="auto, gpu or cpu"):
        backend.select("tpu")


def test_import_optional_gives_install_hint():
    with pytest.raises(DeviceError, match="pip install"):
        backend.import_optional("cuml_that_does_not_exist")
    with pytest.raises(ValueError):
        backend.gpu_module("numpy")


def test_namespaces_and_moves():
    x = np.arange(6.0).reshape(2, 3)
    assert backend.array_namespace(x) is np and backend.array_namespace(x, None) is np
    assert backend.to_host(x) is x and backend.to_namespace(x, np) is x
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    arr = backend.frame_to_array(df, np.float32)
    assert arr.dtype == np.float32 and arr.flags.c_contiguous and arr.tolist() == [[1, 3], [2, 4]]
    assert backend.frame_namespace(df) is pd


@pytest.mark.gpu
@pytest.mark.rapids
def test_gpu_arrays_round_trip():
    probe = backend.probe_gpu()
    if not probe.available:
        pytest.skip(probe.reason)
    be = backend.select("gpu")
    x = be.xp.arange(6.0).reshape(2, 3)
    assert backend.array_namespace(x) is be.xp and backend.is_gpu_array(x)
    with pytest.raises(TypeError, match="mix"):
        backend.array_namespace(x, np.zeros(2))
    df = be.frame.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    arr = backend.frame_to_array(df, np.float32)
    assert arr.flags.c_contiguous and backend.to_host(arr).tolist() == [[1, 3], [2, 4]]


def _mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, 3, n).astype(np.int32)
    return pd.DataFrame({
        "id": rng.integers(0, 10, n),
        "price": rng.normal(size=n),
        "when": pd.to_datetime(rng.integers(0, 10**9, n), unit="s").astype("datetime64[s]"),
        "kind": pd.Categorical(rng.choice(["view", "cart", None], n)),
        "session": pd.arrays.IntegerArray(codes, codes < 0),
        "text": pd.array(rng.choice(["a", "b", None], n), dtype="str"),
    })


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_rows_where_is_pandas_boolean_indexing_renumbered(share):
    frame = _mixed_frame(200, 1)
    # a frame whose index is not 0..n-1 (the rows of an earlier filter) as well
    for f in (frame, frame.iloc[::2]):
        mask = pd.Series(np.random.default_rng(2).random(len(f)) < share, index=f.index)
        pd.testing.assert_frame_equal(backend.rows_where(f, mask), f[mask].reset_index(drop=True))
        for col in f.columns:
            pd.testing.assert_series_equal(backend.rows_where(f[col], mask), f[col][mask].reset_index(drop=True))


def test_rows_where_keeps_repeated_column_names():
    frame = pd.DataFrame([[1, 2], [3, 4], [5, 6]], columns=["a", "a"])
    mask = pd.Series([True, False, True])
    pd.testing.assert_frame_equal(backend.rows_where(frame, mask), frame[mask].reset_index(drop=True))


def test_rows_where_result_does_not_write_through():
    frame = _mixed_frame(50, 3)
    kept = backend.rows_where(frame, pd.Series(np.ones(50, dtype=bool)))
    kept.loc[0, "price"] = 1e9
    assert frame.loc[0, "price"] != 1e9
