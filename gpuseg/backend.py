"""Device detection and the array/frame namespaces: the only importer of GPU libraries.

Nothing in this module touches CUDA at import time. :func:`select` probes the machine when
a run starts; everything downstream either receives the chosen :class:`Backend` or derives
the namespace from its input with :func:`array_namespace` / :func:`frame_namespace`, so the
same numeric code runs on NumPy and CuPy.

Examples
--------
>>> from gpuseg import backend
>>> be = backend.select("cpu")
>>> be.name, be.xp.__name__, be.frame.__name__
('cpu', 'numpy', 'pandas')
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from .errors import DeviceError

__all__ = [
    "Backend",
    "GpuProbe",
    "select",
    "probe_gpu",
    "import_optional",
    "gpu_module",
    "raw_kernel",
    "array_namespace",
    "frame_namespace",
    "is_gpu_array",
    "is_gpu_frame",
    "to_host",
    "to_namespace",
    "frame_to_array",
    "synchronize",
    "series_values",
    "series_like",
    "index_values",
    "library_versions",
    "warm_up",
    "torch_module",
    "to_torch",
    "from_torch",
    "share_memory_pool",
    "DaskSession",
    "dask_session",
]

#: The extra that installs the GPU stack, named in install hints.
GPU_EXTRA_HINT = "pip install 'gpuseg[gpu-cu13]' (or gpu-cu12 for CUDA 12)"

_GPU_PACKAGES = {
    "cupy": "cupy",
    "cudf": "cudf",
    "cuml": "cuml",
    "dask_cuda": "dask-cuda",
    "rmm": "rmm",
}


@dataclass(frozen=True)
class Backend:
    """Where a run computes.

    Attributes
    ----------
    name : {"gpu", "cpu"}
    xp : module
        ``cupy`` or ``numpy``.
    frame : module
        ``cudf`` or ``pandas``.
    torch_device : {"cuda", "cpu"}
    device_label : str
        Human-readable device, e.g. ``"NVIDIA H100 80GB HBM3"`` or ``"CPU, 16 cores"``.
    """

    name: str
    xp: ModuleType
    frame: ModuleType
    torch_device: str
    device_label: str

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"


@dataclass(frozen=True)
class GpuProbe:
    """Result of probing for a usable GPU stack."""

    available: bool
    reason: str
    label: str = ""


def import_optional(name: str, hint: str | None = None) -> ModuleType:
    """Import an optional package or raise :class:`DeviceError` with an install hint.

    Parameters
    ----------
    name : str
        Module name, e.g. ``"cuml"``.
    hint : str, optional
        What to install; defaults to the GPU extra.

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise DeviceError(import_failure(name, exc, hint)) from None


#: What installs a module that a GPU library imports but that may be missing on its own
#: (an environment set up before gpuseg's extras named it, or by hand).
_DEPENDENCY_HINTS = {
    "raft_dask": "pip install 'raft-dask-cu13==26.10.*' (raft-dask-cu12 for CUDA 12)",
    "dask_cudf": "pip install 'dask-cudf-cu13==26.10.*' (dask-cudf-cu12 for CUDA 12)",
    "dask": "pip install 'gpuseg[dask]'",
    "distributed": "pip install 'gpuseg[dask]'",
}


def import_failure(name: str, exc: ImportError, hint: str | None = None) -> str:
    """One line on why ``import name`` failed, naming the module actually missing.

    When the missing module belongs to another package than ``name`` (``cuml.dask.cluster``
    without ``raft_dask``), the line names that package and what installs it, rather than
    the extra that installed ``name``.
    """
    return _missing_dependency(name, exc) or (
        f"{_GPU_PACKAGES.get(name.split('.')[0], name)} is needed for this but could not be imported ({exc}); "
        f"install it with: {hint or GPU_EXTRA_HINT}")


def _missing_dependency(name: str, exc: ImportError) -> str | None:
    """The line for an import of ``name`` that failed on another package's missing module,
    else None."""
    missing = (getattr(exc, "name", None) or "").split(".")[0]
    if not missing or missing == name.split(".")[0]:
        return None
    what = _DEPENDENCY_HINTS.get(missing)
    what = f"install it with: {what}" if what else f"install the package that provides {missing}"
    return f"{name} could not be imported: it needs {missing}, which is missing ({exc}); {what}"


def gpu_module(name: str) -> ModuleType:
    """Return a GPU library (``cupy``, ``cudf``, ``cuml``, ``rmm``, ``dask_cuda``, or a submodule).

    The single doorway through which the rest of gpuseg reaches RAPIDS and CuPy.
    """
    if name.split(".")[0] not in _GPU_PACKAGES:
        raise ValueError(f"{name!r} is not a GPU library gpuseg uses")
    return import_optional(name)


def _scipy_submodule(xp: ModuleType, sub: str) -> ModuleType:
    """``scipy.<sub>`` for NumPy, ``cupyx.scipy.<sub>`` for CuPy (imported on first use)."""
    name = getattr(xp, "__name__", "")
    if name == "numpy":
        return import_optional(f"scipy.{sub}", hint="pip install scipy")
    if name == "cupy":
        return import_optional(f"cupyx.scipy.{sub}")
    raise TypeError(f"no scipy.{sub} counterpart for {name or xp!r}; expected numpy or cupy")


def sparse_module(xp: ModuleType) -> ModuleType:
    """The sparse-matrix module for an array module: ``scipy.sparse`` for NumPy,
    ``cupyx.scipy.sparse`` for CuPy (imported on first use).

    Examples
    --------
    >>> sparse_module(np).__name__
    'scipy.sparse'
    """
    return _scipy_submodule(xp, "sparse")


def special_module(xp: ModuleType) -> ModuleType:
    """Special functions (``gammaln``, ...) for an array module: ``scipy.special`` for NumPy,
    ``cupyx.scipy.special`` for CuPy.

    Examples
    --------
    >>> special_module(np).__name__
    'scipy.special'
    """
    return _scipy_submodule(xp, "special")


def raw_kernel(source: str, name: str, options: tuple[str, ...] = ()) -> Any:
    """A CuPy ``RawKernel`` for the ``extern "C"`` function ``name`` of CUDA C++ ``source``.

    CuPy compiles ``source`` with NVRTC on first launch (so it must include no host
    headers); ``options`` are NVRTC flags such as ``("-DDIM=32",)``. Cached per
    (source, name, options), so a kernel compiles once per process and shape.
    """
    return gpu_module("cupy").RawKernel(source, name, options=tuple(options))


@functools.lru_cache(maxsize=1)
def probe_gpu() -> GpuProbe:
    """Probe for a CUDA device and the RAPIDS stack (cached per process).

    Counts devices through CuPy inside ``try`` (as cuML does), then checks that cuDF and
    cuML import. The reason names the missing part.
    """
    probe = probe_cupy()
    if not probe.available:
        return probe
    label = probe.label
    for mod in ("cudf", "cuml"):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            why = _missing_dependency(mod, exc) or f"{mod} is not installed: {GPU_EXTRA_HINT}"
            return GpuProbe(False, f"CUDA device found but {why}", label)
        except Exception as exc:  # a broken install: CUDA version mismatch, ...
            return GpuProbe(False, f"CUDA device found but {mod} failed to import: {exc}", label)
    return GpuProbe(True, "CUDA device and RAPIDS found", label)


@functools.lru_cache(maxsize=1)
def probe_cupy() -> GpuProbe:
    """Probe for CuPy and a CUDA device, without RAPIDS (cached per process): what gpuseg's
    own array code (metrics, the PSO kernel, mixtures, SOM, value models) needs."""
    if os.environ.get("GPUSEG_DISABLE_GPU"):
        return GpuProbe(False, "GPU disabled by GPUSEG_DISABLE_GPU")
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return GpuProbe(False, f"cupy is not installed; {GPU_EXTRA_HINT}")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError, driver missing, ...
        return GpuProbe(False, f"no usable CUDA device ({type(exc).__name__}: {exc})")
    if count == 0:
        return GpuProbe(False, "no CUDA device found")
    try:
        props = cupy.cuda.runtime.getDeviceProperties(0)
        label = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        mem_gib = props.get("totalGlobalMem", 0) / 2**30
        if mem_gib:
            label = f"{label} ({mem_gib:.0f} GiB)"
        if count > 1:
            label = f"{label} x{count}"
    except Exception:  # pragma: no cover - label is cosmetic
        label = f"{count} CUDA device(s)"
    return GpuProbe(True, "CUDA device and CuPy found", label)


@functools.lru_cache(maxsize=1)
def cpu_label() -> str:
    """A short CPU description such as ``"CPU, AMD EPYC 7B13, 2 cores"``."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ", ".join(p for p in ("CPU", model, f"{cores} cores") if p)


def select(device: str = "auto") -> Backend:
    """Choose where to compute.

    Parameters
    ----------
    device : {"auto", "gpu", "cpu"}, default="auto"
        ``auto`` takes the GPU when a CUDA device and RAPIDS are importable, else the CPU.

    Returns
    -------
    Backend

    Raises
    ------
    DeviceError
        ``device="gpu"`` and no usable GPU stack; the message says which part is missing.
    """
    if device not in ("auto", "gpu", "cpu"):
        raise DeviceError(f"--device must be auto, gpu or cpu, not {device!r}")
    if device in ("auto", "gpu"):
        probe = probe_gpu()
        if probe.available:
            return Backend(
                name="gpu",
                xp=importlib.import_module("cupy"),
                frame=importlib.import_module("cudf"),
                torch_device="cuda",
                device_label=probe.label,
            )
        if device == "gpu":
            raise DeviceError(f"--device gpu was requested but {probe.reason}")
    return Backend(name="cpu", xp=np, frame=pd, torch_device="cpu", device_label=cpu_label())


def _module_root(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def is_gpu_array(x: Any) -> bool:
    """True for CuPy arrays (checked without importing CuPy)."""
    return _module_root(x) == "cupy"


def is_gpu_frame(df: Any) -> bool:
    """True for cuDF DataFrames and Series (checked without importing cuDF)."""
    return _module_root(df) == "cudf"


def array_namespace(*arrays: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of the inputs.

    Mixing host and device arrays is a bug and raises ``TypeError``.
    """
    gpu = {is_gpu_array(a) for a in arrays if a is not None}
    if gpu == {True}:
        return importlib.import_module("cupy")
    if len(gpu) > 1:
        raise TypeError("inputs mix NumPy and CuPy arrays; move them to one device first")
    return np


def frame_namespace(df: Any) -> ModuleType:
    """The frame module (``pandas`` or ``cudf``) of a DataFrame or Series."""
    return importlib.import_module("cudf") if is_gpu_frame(df) else pd


def to_host(x: Any) -> Any:
    """NumPy array (or pandas object) from a CuPy array / cuDF object; host data unchanged."""
    if is_gpu_array(x):
        return x.get()
    if is_gpu_frame(x):
        return x.to_pandas()
    return x


def to_namespace(x: Any, xp: ModuleType) -> Any:
    """Move an array to ``xp`` (``numpy`` or ``cupy``); no copy when it is already there."""
    if xp is np:
        return to_host(x)
    return xp.asarray(x)


def frame_to_array(df: Any, dtype: Any = np.float32) -> Any:
    """Numeric DataFrame -> C-contiguous 2-D array on the frame's device.

    cuDF hands out Fortran-order arrays; DLPack consumers and row-wise kernels want C order.
    """
    if is_gpu_frame(df):
        cupy = importlib.import_module("cupy")
        return cupy.ascontiguousarray(df.to_cupy(dtype=dtype))
    return np.ascontiguousarray(df.to_numpy(dtype=dtype))


def series_like(s: Any, values: Any) -> Any:
    """A Series of ``values`` (an array on ``s``'s device, not copied again) with ``s``'s
    index: pandas for NumPy values, cuDF for CuPy."""
    return type(s)(values, index=s.index, copy=False)


def series_values(s: Any) -> Any:
    """A Series' values as an array on its device (NumPy for pandas, CuPy for cuDF)."""
    if is_gpu_frame(s):
        return s.values
    return s.to_numpy()


def rows_where(obj: Any, mask: Any, more: dict[str, Any] | None = None) -> Any:
    """The rows of a Series or DataFrame where ``mask`` (a boolean Series on its index) is
    True, numbered 0..n-1 again; given ``more`` (name -> Series or None on the same rows),
    ``(rows of obj, {name: rows of that Series or None})``, all taken in one go.

    On pandas each column is taken by position under a fresh RangeIndex: pandas' own boolean
    indexing also takes the old RangeIndex row by row (about 0.1 s per 10M rows, to build an
    index that was then reset). The columns of a large log are taken in the run's threads
    (NumPy's and Arrow's takes release the GIL). On cuDF, ``obj[mask].reset_index(drop=True)``."""
    given, more = more is not None, more or {}
    if is_gpu_frame(obj) or (isinstance(obj, pd.DataFrame) and not obj.columns.is_unique):
        taken = obj[mask].reset_index(drop=True)
        extra = {k: (s[mask].reset_index(drop=True) if s is not None else None) for k, s in more.items()}
    else:
        own = {0: obj} if isinstance(obj, pd.Series) else {("column", c): obj[c] for c in obj.columns}
        every = _take_rows({**own, **{("more", k): s for k, s in more.items() if s is not None}}, mask)
        taken = every[0] if isinstance(obj, pd.Series) else pd.DataFrame(
            {c: every["column", c] for c in obj.columns}, columns=obj.columns, copy=False)
        extra = {k: every.get(("more", k)) for k in more}
    return (taken, extra) if given else taken


def _take_rows(series: dict[Any, Any], mask: Any) -> dict[Any, Any]:
    """The rows of ``mask`` of every pandas Series of ``series``, under fresh RangeIndexes."""
    from ._threads import in_threads

    pos = np.flatnonzero(mask.to_numpy(dtype=bool))
    keys = list(series)

    def take(key: Any) -> Any:
        s = series[key]
        return pd.Series(s.array.take(pos), name=s.name, copy=False)

    threaded = len(pos) >= _TAKE_THREADS_ROWS and len(keys) > 1
    return dict(zip(keys, in_threads(take, keys, "gpuseg-take") if threaded else [take(k) for k in keys]))


#: From this many rows on, :func:`rows_where` takes the columns in the run's threads.
_TAKE_THREADS_ROWS = 1_000_000


def nullable_codes(s: Any) -> Any:
    """int32 codes of a Series' distinct values, missing as null: a pandas ``Int32`` Series
    (``pd.factorize``: codes in order of first appearance, as Arrow's dictionary encoding
    gives them; -1 masked), a cuDF int32 Series (category codes, which carry the column's
    nulls; ``where`` keeps them null either way)."""
    if is_gpu_frame(s):
        cat = s if str(s.dtype) == "category" else s.astype("category")
        return cat.cat.codes.astype("int32").where(s.notna())
    values = pd.factorize(s)[0].astype(np.int32)
    return pd.Series(pd.arrays.IntegerArray(values, values < 0), index=s.index, name=s.name)


def index_values(index: Any) -> list:
    """A (small) Index as a host list, e.g. the categories of a categorical column."""
    if is_gpu_frame(index):
        index = index.to_pandas()
    return list(index)


def synchronize(x: Any = None) -> None:
    """Wait for queued GPU work (for honest stage timings); a no-op on the CPU."""
    if x is None or is_gpu_array(x) or is_gpu_frame(x):
        mod = importlib.import_module("sys").modules.get("cupy")
        if mod is not None:
            try:
                mod.cuda.get_current_stream().synchronize()
            except Exception:  # pragma: no cover - no device initialised yet
                pass


TORCH_HINT = "pip install 'gpuseg[deep]' (CPU-only: pip install torch --index-url https://download.pytorch.org/whl/cpu)"


#: CPU threads set for the current run (:func:`gpuseg.pipeline.thread_limit`); torch,
#: imported later in the run, takes the same number.
RUN_THREADS: int | None = None


def torch_module() -> ModuleType:
    """PyTorch, or :class:`DeviceError` with the install hint (the deep models need it)."""
    torch = import_optional("torch", hint=TORCH_HINT)
    if RUN_THREADS is not None and torch.get_num_threads() != RUN_THREADS:
        torch.set_num_threads(RUN_THREADS)
    return torch


def to_torch(x: Any) -> Any:
    """A torch tensor sharing memory with a NumPy or CuPy array (never a copy of the data).

    NumPy goes through ``torch.from_numpy``, CuPy through DLPack (``torch.from_dlpack``).
    Arrays that DLPack or ``from_numpy`` cannot export as they are (non-contiguous, e.g.
    Fortran-ordered cuDF output, or negative strides) are made C-contiguous first; that is
    the only case that copies.
    """
    torch = torch_module()
    if is_gpu_array(x):
        cupy = importlib.import_module("cupy")
        if not x.flags.c_contiguous:
            x = cupy.ascontiguousarray(x)
        return torch.from_dlpack(x)
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x)


def from_torch(t: Any, like: Any = None) -> Any:
    """The array behind a torch tensor, without a copy: NumPy for CPU tensors, CuPy (through
    DLPack) for CUDA tensors. ``like`` is accepted for symmetry and ignored: the tensor's
    device decides."""
    t = t.detach()
    if t.device.type == "cuda":
        return gpu_module("cupy").from_dlpack(t)
    return t.numpy()


_POOL_SHARED = False
_POOL_MADE = False


def _make_rmm_pool(rmm: ModuleType) -> None:
    """Give the current device an RMM pool (once per process), unless RMM already has a
    resource other than its default: a pool from dask-cuda's ``rmm_pool_size``, managed
    memory or the user's own is kept.

    ``set_current_device_resource`` rather than ``rmm.reinitialize``: cuDF already holds
    buffers by now, and RMM documents using memory from before a reinitialisation as
    undefined; a buffer keeps the resource it came from, so changing the current one is
    safe. The pool starts at RMM's default (half the free device memory) and grows on demand.
    """
    global _POOL_MADE
    if _POOL_MADE:
        return
    mr = rmm.mr
    current = mr.get_current_device_resource()
    if type(current) is mr.CudaMemoryResource:  # RMM's default: every allocation a cudaMalloc
        mr.set_current_device_resource(mr.PoolMemoryResource(current))
    _POOL_MADE = True


def share_memory_pool() -> bool:
    """Make torch, CuPy and cuDF allocate from one RMM pool (when RAPIDS is installed).

    Must run before torch's first CUDA allocation: afterwards torch keeps its own caching
    allocator and a large run would hold two pools. Returns True when the pool is shared
    (idempotent), False when RMM is missing, torch cannot use it (a CPU-only build, where
    RMM offers no torch allocator: then nothing is changed) or torch already allocated on
    the GPU (then CuPy and cuDF still share the RMM pool).
    """
    global _POOL_SHARED
    if _POOL_SHARED:
        return True
    try:
        rmm = importlib.import_module("rmm")
        rmm_torch = importlib.import_module("rmm.allocators.torch")
        rmm_cupy = importlib.import_module("rmm.allocators.cupy")
        torch = torch_module()
    except (ImportError, DeviceError):
        return False
    allocator = getattr(rmm_torch, "rmm_torch_allocator", None)  # None without torch's CUDA
    if allocator is None:
        return False
    _make_rmm_pool(rmm)
    cupy = importlib.import_module("cupy")
    if cupy.cuda.get_allocator() is not rmm_cupy.rmm_cupy_allocator:
        cupy.cuda.set_allocator(rmm_cupy.rmm_cupy_allocator)
        cupy.get_default_memory_pool().free_all_blocks()  # what CuPy's own pool kept, back to the device
    try:
        torch.cuda.memory.change_current_allocator(allocator)
    except (RuntimeError, AttributeError, TypeError):  # already initialised, or a build without CUDA
        return False
    _POOL_SHARED = True
    return True


def warm_up(backend: Backend) -> None:
    """Import the libraries the backend's estimators use (scikit-learn or cuML).

    Their imports take a second or more; doing it once before the stages start keeps the
    stage timings about the stages.
    """
    if backend.is_gpu:
        gpu_module("cuml.cluster")
    else:
        importlib.import_module("sklearn.cluster")


def library_versions(backend: Backend) -> dict[str, str]:
    """Versions of the libraries a run used (for metrics.json)."""
    names = ["numpy", "pandas", "sklearn", "pyarrow"]
    if backend.is_gpu:
        names += ["cupy", "cudf", "cuml"]
    out = {}
    for name in names:
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:
            continue
    return out


DASK_HINT = "pip install 'gpuseg[dask]'"


def device_memory(backend: Backend) -> int:
    """Total memory of the current GPU in bytes (0 on the CPU backend)."""
    if not backend.is_gpu:
        return 0
    cp = gpu_module("cupy")
    return int(cp.cuda.runtime.memGetInfo()[1])


def dask_gpu_kmeans(client: Any, X: Any, n_clusters: int, random_state: int, max_iter: int = 300,
                    tol: float = 1e-4) -> tuple[Any, Any, float, int]:
    """cuML's multi-GPU K-means (k-means|| seeding) of a CuPy-backed Dask array on the
    dask-cuda workers: (centres, labels as one CuPy array in the rows' order, inertia,
    iterations). Results come back as CuPy because the input is (cuML sets each worker's
    ``output_type`` itself)."""
    cuml_dask = gpu_module("cuml.dask.cluster")
    km = cuml_dask.KMeans(client=client, n_clusters=n_clusters, init="scalable-k-means++", max_iter=max_iter,
                          tol=tol, random_state=random_state)
    km.fit(X)
    labels = km.predict(X).compute()  # block by block of X: the rows' order
    return km.cluster_centers_, labels, float(km.inertia_), int(getattr(km, "n_iter_", 0) or 0)


@dataclass
class DaskSession:
    """A Dask client, and the local cluster it started (closed with the session)."""

    client: Any
    cluster: Any
    kind: str
    workers: int
    dashboard: str
    memory_limit: int = 0  # bytes per worker, the smallest; 0: none
    log_level: int | None = None  # the shuffle log's level before the session (restored on close)

    def close(self) -> None:
        for obj in (self.client, self.cluster):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - closing must not hide the run's own error
                    pass
        if self.log_level is not None:
            _restore_shuffle_log(self.log_level)


_SHUFFLE_LOG = "distributed.shuffle"


def _quiet_shuffle_log() -> int:
    """The peer-to-peer shuffle's scheduler logs every shuffle it starts and ends at WARNING
    level ("Shuffle ... initialized by task ...", "... deactivated due to stimulus ..."):
    routine events, not problems, on the user's console. Its errors still show. Returns
    the level before, which the session restores when it closes."""
    import logging

    log = logging.getLogger(_SHUFFLE_LOG)
    before = log.level
    log.setLevel(logging.ERROR)
    return before


def _restore_shuffle_log(level: int) -> None:
    import logging

    logging.getLogger(_SHUFFLE_LOG).setLevel(level)


def dask_session(address: str, backend: Backend, workers: int = 0, memory_limit: str = "auto") -> DaskSession:
    """Start or join a Dask cluster.

    ``address="local"`` starts a ``dask_cuda.LocalCUDACluster`` on the GPU backend (one
    worker per GPU, an RMM pool of 80% of each GPU and cuDF spilling on) or a
    ``distributed.LocalCluster`` of processes on the CPU (``workers`` or one per 2 cores,
    one thread each); any other value is a scheduler address to join.

    Raises
    ------
    DeviceError
        dask / distributed (or dask-cuda on the GPU) is not installed, or the scheduler
        cannot be reached.
    """
    distributed = import_optional("distributed", hint=DASK_HINT)
    limit = memory_limit if memory_limit and memory_limit != "auto" else "auto"
    cluster = None
    local_config: dict[str, Any] = {}
    if address == "local" and limit != "auto":
        # the peer-to-peer shuffle's send and disk buffers (1 GiB and 100 MiB by default) are
        # memory the worker does not manage: scaled to an eighth of the limit each
        dask_utils = import_optional("dask.utils", hint=DASK_HINT)
        buffer = max(16 << 20, int(dask_utils.parse_bytes(limit)) // 8)
        local_config = {"distributed.p2p.comm.buffer": buffer, "distributed.p2p.storage.buffer": buffer}
    dask = import_optional("dask", hint=DASK_HINT)
    log_level = _quiet_shuffle_log()
    try:
        if address == "local":
            if backend.is_gpu:
                dask_cuda = gpu_module("dask_cuda")
                kwargs: dict[str, Any] = {"rmm_pool_size": 0.8, "enable_cudf_spill": True,
                                          "dashboard_address": ":0"}
                if workers:
                    kwargs["n_workers"] = workers
                if limit != "auto":
                    kwargs["memory_limit"] = limit
                with dask.config.set(local_config):
                    cluster = dask_cuda.LocalCUDACluster(**kwargs)
            else:
                n = workers or max(1, (os.cpu_count() or 2) // 2)
                # under a limit: Arrow's own allocator keeps freed memory for reuse, which Dask
                # counts against the limit; the system allocator returns it (Dask's nanny
                # already sets MALLOC_TRIM_THRESHOLD_ so that glibc does), at some speed
                env = {"ARROW_DEFAULT_MEMORY_POOL": "system"} if limit != "auto" else {}
                with dask.config.set(local_config):
                    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                       memory_limit=limit, dashboard_address=":0", env=env)
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        _restore_shuffle_log(log_level)
        raise DeviceError(f"--cluster {address}: cannot start or reach a Dask cluster ({exc})") from None
    try:
        client.wait_for_workers(1, timeout=30)
    except (OSError, TimeoutError):
        client.close()
        if cluster is not None:
            cluster.close()
        _restore_shuffle_log(log_level)
        raise DeviceError(f"--cluster {address}: the Dask cluster has no workers (none joined within 30 s)") from None
    workers_info = client.scheduler_info().get("workers", {})
    limits = [int(w.get("memory_limit") or 0) for w in workers_info.values()]
    kind = "dask-cuda" if address == "local" and backend.is_gpu else "dask"
    return DaskSession(client, cluster, kind, len(workers_info), str(client.dashboard_link or ""),
                       min((v for v in limits if v > 0), default=0), log_level)
