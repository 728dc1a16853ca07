"""``run(config) -> RunResult``: the stages in order, each timed.

load -> clean -> features -> scale -> [embed] -> cluster -> evaluate -> stability -> segments
-> write -> report

Each stage is a function of one run's state (``_Run``); ``_run`` composes them in order
(NVTabular's workflow is the model). The data stays on the backend's device from file to
labels; only small results (scores, profiles) come to the host before the write stage.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from . import __version__, backend as _backend
from .cluster import DEEP_METHODS, METHODS, check_method_params, consensus_members, resolve_methods
from .config import ClusterConfig, RunConfig
from .errors import ConfigError
from .evaluate.comparison import METHOD_RULE, choose_method, comparison_table, sensitivity_table
from .evaluate.selection import K_RULE
from .evaluate.stability import run_stability
from .evaluate.sweep import MethodRun, fit_method, score_method
from .io.privacy import SCHEME as PSEUDONYM_SCHEME, model_entry, new_key, pseudonymise
from .io.readers import from_frame, load_files, read_truth, resolve_paths
from .io.schemas import read_as
from .model import SAVABLE_METHODS, save_model
from .prep import FeatureScaler, clean, customer_features
from .prep.clean import describe_cleaning, no_exclusions
from .report.files import check_out_dir, output_lock, recover, to_json, write_csv, write_outputs
from .segments import (
    LOW_CONFIDENCE, confidence_meaning, confidence_summary, order_by_size, segment_confidence, segment_profiles,
    size_order,
)
from .segments.insights import segment_insights

__all__ = ["Progress", "RunResult", "run", "write_report", "STAGES"]

STAGES = ("load", "clean", "features", "scale", "cluster", "evaluate", "stability", "segments", "write", "report")


class Progress:
    """Receives progress events from :func:`run`; the default ignores them.

    ``gpuseg.cli`` subclasses it to draw the console display.
    """

    def run_started(self, backend: _backend.Backend, config: RunConfig, methods: tuple[str, ...]) -> None:
        """The run starts on ``backend``."""

    def stage_started(self, stage: str, detail: str = "") -> None:
        """A stage starts."""

    def stage_progress(self, stage: str, done: int, total: int, detail: str = "") -> None:
        """``done`` of ``total`` steps of a stage are finished."""

    def stage_finished(self, stage: str, seconds: float, detail: str = "") -> None:
        """A stage ended after ``seconds``."""

    def note(self, text: str) -> None:
        """Something the user should know (a fallback, a sample)."""


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    out_dir : Path
    metrics : dict
        The content of ``metrics.json``.
    segments : DataFrame
        customer_id, segment, segment_name, confidence, label_<method> (on the device).
    profiles : pandas.DataFrame
    features : DataFrame
        Unscaled features indexed by customer_id (on the device).
    backend : Backend
    files : list of Path
    """

    out_dir: Path
    metrics: dict[str, Any]
    segments: Any
    profiles: pd.DataFrame
    features: Any
    backend: _backend.Backend
    files: list[Path] = field(default_factory=list)

    @property
    def chosen(self) -> dict[str, Any]:
        return self.metrics["chosen"]


class _Timer:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.detail: dict[str, str] = {}

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[dict[str, str]]:
        info = {"detail": ""}
        self.progress.stage_started(name, detail)
        t0 = time.perf_counter()
        yield info
        _backend.synchronize()
        dt = time.perf_counter() - t0
        self.timings[name] = self.timings.get(name, 0.0) + dt
        self.progress.stage_finished(name, dt, info["detail"])


def run(config: RunConfig, progress: Progress | None = None, backtest: Any = None) -> RunResult:
    """Run the whole pipeline.

    Parameters
    ----------
    config : RunConfig
    progress : Progress, optional
    backtest : gpuseg.evaluate.backtest.BacktestPlan, optional
        Fit on the rows up to the plan's cut only, and score the segments against what the
        customers did after it (``gpuseg backtest``): backtest.csv, backtest.json and the
        ``backtest`` entry of metrics.json.

    Returns
    -------
    RunResult

    Raises
    ------
    GpusegError
        Any problem with the user's input, options or device.
    """
    with contextlib.ExitStack() as stack:  # closes a Dask session however the run ends
        stack.enter_context(thread_limit(config.threads))
        stack.enter_context(arrow_pool())
        return _run(config, progress or Progress(), stack, backtest)


@contextlib.contextmanager
def arrow_pool() -> Iterator[str]:
    """Arrow's jemalloc memory pool for the duration, where this pyarrow has one and the
    user chose none (``ARROW_DEFAULT_MEMORY_POOL``); yields the pool's name.

    pyarrow's default pool, mimalloc, made the first CSV parse in a process slow: 6.3-9.9 s
    against 4.4-4.9 s with jemalloc or the system's malloc for the 10M-event CSV on 1 thread.
    jemalloc also lowered the peak memory of load + clean + features there (3.0-3.1 GB
    against 3.6-3.7 GB; the system's malloc raised it to 4.9 GB). Every buffer goes back to
    the pool that gave it, so switching back afterwards is safe (bench/README.md).
    """
    import os

    import pyarrow as pa

    before = pa.default_memory_pool()
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        yield before.backend_name
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # pyarrow built without jemalloc (Windows wheels)
        yield before.backend_name
        return
    pa.set_memory_pool(pool)
    try:
        yield pool.backend_name
    finally:
        pa.set_memory_pool(before)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _load_thread_pools() -> None:
    """Load the native thread pools a CPU run computes with (scikit-learn's OpenMP runtime,
    SciPy's OpenBLAS), so that a limit set now reaches them; the run imports both anyway."""
    import importlib

    for name in ("sklearn.utils._openmp_helpers", "scipy.linalg"):
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - both are dependencies
            pass


@contextlib.contextmanager
def thread_limit(threads: int = 0) -> Iterator[int]:
    """Every thread pool set once for the duration: nested pools of different sizes
    oversubscribe shared cores (one K-means sweep ran 5.9x slower that way on a busy 2-core
    machine).

    OpenMP (scikit-learn), torch, Arrow's CPU pool (the CSV and Parquet readers) and
    the feature group-bys (:mod:`gpuseg.prep.features`) at ``threads``, or for 0 (the
    default) at :func:`usable_cores`; BLAS at 1 either way. gpuseg's BLAS work is products with the few
    feature columns, which gain little from threads, while OpenBLAS threads on a core
    another process holds stall every call: with one core of 2 busy, the default run took
    26-31 s with BLAS on 2 threads and 17-20 s on 1 (OpenMP on 2 either way), and with
    ``--threads 2`` (BLAS on 2 until 2026-12-07) the pipeline bench's evaluate stage took
    15-19 s at 1M events where it takes 2.4 s on 1 (bench/README.md). A fixed rule, not one
    read from the load, so that the same data and seed give the same segments however busy
    the machine is.

    threadpoolctl limits only the pools loaded when it is called, and scikit-learn's OpenMP
    runtime and SciPy's OpenBLAS load with their first import: :func:`_load_thread_pools`
    loads them first, or a run's first K-means would ignore the limit (it did: ``--threads
    1`` left scikit-learn on every core, and a process's first run at 1 thread gave other
    segments than its later runs).
    """
    import sys

    from threadpoolctl import threadpool_limits

    import pyarrow

    _load_thread_pools()
    n = threads or usable_cores()
    torch = sys.modules.get("torch")  # already imported: set now; else backend.torch_module sets it
    before = (torch.get_num_threads() if torch is not None else None, _backend.RUN_THREADS, pyarrow.cpu_count())
    with threadpool_limits(limits={"blas": 1, "openmp": n}):
        _backend.RUN_THREADS = n
        pyarrow.set_cpu_count(n)
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield n
        finally:
            _backend.RUN_THREADS = before[1]
            pyarrow.set_cpu_count(before[2])
            torch = sys.modules.get("torch")
            if torch is not None and before[0] is not None:
                torch.set_num_threads(before[0])


@dataclass
class _Run:
    """What one run's stages hand on to each other (the workflow's state): each stage reads
    what the stages before it set and sets its own fields."""

    config: RunConfig
    progress: Progress
    stack: Any
    backtest: Any
    timer: _Timer
    be: _backend.Backend
    methods: tuple[str, ...]
    consensus_params: dict[str, Any]
    files: list
    kind: str
    out_dir: Path
    t_start: float
    started: _dt.datetime
    truth: Any = None
    plot_worker: Any = None  # gpuseg.report.worker.PlotWorker, when one draws plots beside the run
    user_value: Any = None  # [value] as the user set it, when a backtest overrides its horizon
    # load, clean, features
    cleaned: Any = None
    history: Any = None  # the cleaned rows' purchase history, once computed (_purchase_history)
    feats: Any = None
    column_map: dict = field(default_factory=dict)
    ts_format: str = ""
    source: str = ""
    dist_info: Any = None
    session: Any = None
    kmeans_on: Any = None  # the fit of "kmeans" on the Dask workers, when it runs there
    # scale, embed
    scaler: Any = None
    weighting: Any = None
    X: Any = None
    Z: Any = None  # what the methods cluster; every score is computed on X
    embedding: Any = None
    embedder: Any = None
    # cluster, evaluate, stability, choice
    ks: tuple[int, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    n_fits: int = 0
    runs: dict[str, MethodRun] = field(default_factory=dict)
    sample_size: int | None = None
    truth_info: Any = None
    method_metrics: dict[str, Any] = field(default_factory=dict)
    refits: dict[str, Any] = field(default_factory=dict)  # per method: the stability refits
    chosen_method: str = ""
    ranking: list = field(default_factory=list)
    comparison: Any = None
    sensitivity: Any = None
    # segments, model, backtest
    labels: dict[str, Any] = field(default_factory=dict)
    chosen_est: Any = None
    confidence: Any = None
    calibration: Any = None
    calibration_info: dict[str, Any] = field(default_factory=dict)
    insights: dict[str, Any] = field(default_factory=dict)
    segments: Any = None
    profiles: Any = None
    value_info: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] | None = None
    model_info: dict[str, Any] = field(default_factory=dict)
    key: bytes | None = None  # the pseudonym key of --anonymize
    backtest_result: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)
    written: list = field(default_factory=list)

    @property
    def n_customers(self) -> int:
        return len(self.feats)

    def chosen_fit(self) -> Any:
        return self.runs[self.chosen_method].fits[self.method_metrics[self.chosen_method]["chosen_index"]]

    def result(self) -> RunResult:
        return RunResult(self.out_dir, self.metrics, self.segments, self.profiles, self.feats.frame, self.be,
                         self.written)


def _run(config: RunConfig, progress: Progress, stack: Any, backtest: Any = None) -> RunResult:
    """The stages in order (module doc); each is a function of the run's state."""
    r = _start(config, progress, stack, backtest)
    try:
        for stage in (_ingest, _scale, _embed_stage, _cluster, _evaluate, _stability, _choose, _sensitivity,
                      _segments, _backtest, _metrics, _write):
            stage(r)
        if r.config.report:
            _report(r)
    except KeyboardInterrupt as exc:  # Ctrl-C or a stop signal: after the data files' commit, say so
        if r.written:
            exc.committed_to = r.out_dir
            exc.committed = "segments, features and model" if r.model_info.get("saved") else "segments and features"
        raise
    return r.result()


def _start(config: RunConfig, progress: Progress, stack: Any, backtest: Any) -> _Run:
    """Check the options against each other, take the output folder, pick the device."""
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    consensus_params = dict(dict(config.params).get("consensus", ()))
    deep = _torch_available()
    methods = resolve_methods(config.cluster.methods, consensus_params, deep_available=deep)
    left_out = [m for m in DEEP_METHODS if m not in methods]
    if not deep and left_out and "all" in [str(m).strip().lower() for m in config.cluster.methods]:
        progress.note(f"--methods all: {', '.join(left_out)} left out, they need PyTorch: {_backend.TORCH_HINT}")
    if config.select is not None and config.select not in methods:
        raise ConfigError(f"--select {config.select}: that method did not run; add it to --methods")
    for method, table in config.params:  # wrong values fail here, before the data are read
        if method in methods:
            check_method_params(method, dict(table), config.cluster.k_max)
    if config.dask.cluster and backtest is not None:
        raise ConfigError("backtest runs in one process: drop --cluster")
    _check_out_beside_input(config)
    files, kind = resolve_paths(config.input, exclude=config.out) if config.input else ([], "")
    out_dir = check_out_dir(config.out, [str(p) for p in files] + ([config.truth] if config.truth else []))
    stack.enter_context(output_lock(out_dir))  # one run per folder; killed runs' leftovers settled
    for line in recover(out_dir):
        progress.note(f"{out_dir}: {line}")
    be = _backend.select(config.device)
    progress.run_started(be, config, methods)
    worker = _plot_worker(config, stack)
    _backend.warm_up(be)
    return _Run(config=config, progress=progress, stack=stack, backtest=backtest, timer=_Timer(progress), be=be,
                methods=methods, consensus_params=consensus_params, files=files, kind=kind, out_dir=out_dir,
                t_start=t_start, started=started, truth=read_truth(config.truth) if config.truth else None,
                plot_worker=worker)


def _plot_worker(config: RunConfig, stack: Any) -> Any:
    """A process that draws some of the report's plots on another core
    (:mod:`gpuseg.report.worker`), stopped when the run ends; None where it cannot help."""
    from .report import worker as _worker

    if not _worker.usable(min(_backend.RUN_THREADS or 1, usable_cores()), config.report):
        return None
    started = _worker.PlotWorker.start()
    if started is not None:
        stack.callback(started.close)
    return started


def _ingest(r: _Run) -> None:
    """load, clean and features, in this process or on a Dask cluster."""
    config = r.config
    if config.dask.cluster:
        (r.cleaned, r.feats, r.column_map, r.ts_format, r.source, r.dist_info,
         r.session) = _distributed_stages(config, r.files, r.kind, r.be, r.timer, r.progress)
        r.stack.callback(r.session.close)
        r.kmeans_on = (_kmeans_on_workers(config, r.session, r.be, r.feats, r.progress)
                       if "kmeans" in r.methods else None)
        r.dist_info["kmeans"] = "workers" if r.kmeans_on else "client"
        if r.kmeans_on is None:
            r.session.close()  # the workers' memory back before clustering
    else:
        r.cleaned, r.feats, r.column_map, r.ts_format, r.source, synthetic_truth = _local_stages(
            config, r.files, r.kind, r.be, r.timer, r.backtest)
        if r.backtest is not None:  # predicted value over the holdout, to compare with what was spent
            r.user_value = config.value  # what the saved model predicts with (assign)
            r.config = replace(config, value=r.backtest.value_horizon(config.value))
        r.truth = synthetic_truth if r.truth is None else r.truth
    default_range = (config.cluster.k_min, config.cluster.k_max) == (ClusterConfig.k_min, ClusterConfig.k_max)
    if config.cluster.k_max >= r.n_customers and default_range and r.n_customers > config.cluster.k_min:
        k_max = r.n_customers - 1  # the default range (or 2-12 given): fitted to a small log, and said so
        r.config = replace(r.config, cluster=replace(config.cluster, k_max=k_max))
        r.progress.note(f"k over {config.cluster.k_min}..{k_max}, not the default {config.cluster.k_min}.."
                        f"{config.cluster.k_max}: the data has {r.n_customers} customers")
    elif config.cluster.k_max >= r.n_customers:
        raise ConfigError(
            f"--k {_k_spec(config.cluster.k_min, config.cluster.k_max)}: the data has {r.n_customers} customers; "
            f"k must be below that"
        )


def _k_spec(k_min: int, k_max: int) -> str:
    """--k as the user would write it: "5", or "3-8"."""
    return str(k_min) if k_min == k_max else f"{k_min}-{k_max}"


def _scale(r: _Run) -> None:
    """log1p on skewed features, standardised, weighted by shared structure (float32)."""
    config, feats = r.config, r.feats
    with r.timer.stage("scale") as st:
        raw = _backend.frame_to_array(feats.frame, dtype=np.float64)
        bounded = [i for i, n in enumerate(feats.names) if n in feats.bounded]
        r.scaler = FeatureScaler(
            log_skewed=config.features.log_skewed,
            skew_threshold=config.features.skew_threshold,
            bounded=bounded,
        ).fit(raw)
        r.X = r.scaler.transform(raw)
        r.weighting = _weigh_features(r.X, feats, config)
        if r.weighting is not None:  # transformed again, bit for bit what a saved model computes
            r.X = r.scaler.set_weights(r.weighting.weights).transform(raw)
        del raw
        st["detail"] = (f"log1p on {int(r.scaler.log_mask_.sum())} skewed features, standardised to float32"
                        + (f"; {r.weighting.summary()}" if r.weighting is not None else "; every feature weight 1"))
    r.Z = r.X


def _embed_stage(r: _Run) -> None:
    """PCA, UMAP or an autoencoder, when asked: the methods then cluster the embedding."""
    if r.config.embed.method == "none":
        return
    with r.timer.stage("embed") as st:
        r.Z, r.embedding, r.embedder = _embed(
            r.X, r.config, lambda *a: r.progress.stage_progress("embed", *_epoch_progress(*a)))
        st["detail"] = f"{r.config.embed.method}: {r.X.shape[1]} features -> {r.Z.shape[1]} dimensions"


def _cluster(r: _Run) -> None:
    """Every method over the k range (the consensus after its members)."""
    r.ks = r.config.k_values
    r.params = {m: r.config.method_params(m, gpu=r.be.is_gpu) for m in r.methods}
    r.n_fits = total = sum(len(r.ks) if METHODS[m].k_param else 1 for m in r.methods)
    with r.timer.stage("cluster") as st:
        done = [0]

        def on_fit(method: str, k: int | None) -> None:
            r.progress.stage_progress("cluster", done[0], total, f"{method}" + (f" k={k}" if k else ""))
            done[0] += 1

        def on_epoch(*a) -> None:
            r.progress.stage_progress("cluster", *_epoch_progress(*a))

        for method in r.methods:
            member_runs = None
            if method == "consensus":
                member_runs = {m: r.runs[m] for m in consensus_members(r.consensus_params, _torch_available())}
            fit_with = r.kmeans_on(r.Z, r.params[method]) if r.kmeans_on is not None and method == "kmeans" else None
            r.runs[method] = fit_method(method, r.Z, r.ks, r.config.seed, r.params[method], on_fit, on_epoch,
                                        member_runs, fit_with=fit_with)
        r.progress.stage_progress("cluster", total, total, "")
        if r.kmeans_on is not None:
            r.session.close()  # the fits hold their labels and centres here; the workers' memory back
        st["detail"] = f"{total} fit(s): {', '.join(r.methods)}" + (
            f" over k={r.ks[0]}..{r.ks[-1]}" if len(r.ks) > 1 else f" at k={r.ks[0]}"
        )


def _evaluate(r: _Run) -> None:
    """Scores of every fit (on X), the k each method's rule chooses, ARI against a truth."""
    config, n = r.config, r.n_customers
    if n > config.evaluate.silhouette_exact_max:
        r.sample_size = config.evaluate.silhouette_sample
        r.progress.note(
            f"silhouette on a fixed-seed sample of {r.sample_size:,} of {n:,} customers "
            f"(exact up to {config.evaluate.silhouette_exact_max:,}; [evaluate] in the config)"
        )
    truth_codes, truth_mask, r.truth_info = _align_truth(r.truth, r.feats.frame.index, r.be)
    score_cache: dict = {}
    with r.timer.stage("evaluate") as st:
        done = [0]

        def on_score(method: str, k: int | None) -> None:
            r.progress.stage_progress("evaluate", done[0], r.n_fits, f"{method}" + (f" k={k}" if k else ""))
            done[0] += 1

        for method in r.methods:
            r.method_metrics[method] = score_method(
                r.X, r.runs[method], r.sample_size, config.seed, truth_codes, truth_mask, on_score,
                fitted_on_X=r.Z is r.X, cache=score_cache, Z=r.Z,
            )
            if r.method_metrics[method]["status"] != "ok":
                r.progress.note(f"{method} failed on these data: {r.method_metrics[method]['reason']}")
        r.progress.stage_progress("evaluate", r.n_fits, r.n_fits, "")
        ok = sum(m["status"] == "ok" for m in r.method_metrics.values())
        st["detail"] = f"{ok} of {len(r.methods)} methods succeeded"


def _stability(r: _Run) -> None:
    """Refits on resamples at each method's chosen k (kept for the confidence calibration)."""
    ev = r.config.evaluate
    if ev.stability_resamples <= 0:
        return
    mm = r.method_metrics
    ok = [m for m in r.methods if mm[m]["status"] == "ok"]
    with r.timer.stage("stability") as st:
        chosen_ks = {m: (mm[m]["k"] if METHODS[m].k_param else None) for m in ok}
        members = {}
        if "consensus" in ok:
            members["consensus"] = tuple(r.runs["consensus"].fits[mm["consensus"]["chosen_index"]].estimator.members)
        stab = run_stability(
            r.Z, chosen_ks, r.params, r.config.seed, ev.stability_resamples, members,
            lambda done, total, detail: r.progress.stage_progress("stability", done, total, detail),
            scheme=ev.stability_scheme, max_size=ev.stability_sample, refits=r.refits,
        )
        for m, value in stab.items():
            mm[m]["stability"] = value
        per = min(r.n_customers // 2, ev.stability_sample) if ev.stability_scheme == "half" else None
        unmeasured = [m for m, v in stab.items() if v.get("mean") is None]
        st["detail"] = (f"{ev.stability_resamples} {ev.stability_scheme} samples per method"
                        + (f" of {per:,} customers" if per else "")
                        + (f"; not measured for {', '.join(unmeasured)} (too few refits succeeded)" if unmeasured
                           else ""))


def _choose(r: _Run) -> None:
    """The method by the documented rule (or --select), and the comparison table."""
    r.chosen_method, r.ranking = choose_method(r.method_metrics, r.methods, r.config.select)
    r.comparison = comparison_table(r.method_metrics, r.ranking, r.chosen_method)
    r.chosen_est = r.chosen_fit().estimator
    asked = {str(m).strip().lower() for m in r.config.cluster.methods}
    if ("consensus" in asked and not r.config.select and r.chosen_method not in asked and "all" not in asked
            and r.method_metrics.get("consensus", {}).get("status") == "ok"):
        r.progress.note(f"{r.chosen_method}, a member of the consensus, was chosen by the method rule ahead of the "
                        "consensus itself (its members run as methods of their own); --select consensus keeps the "
                        "consensus")


def _sensitivity(r: _Run) -> None:
    """--sensitivity: the scores under other settings of each method."""
    if not r.config.sensitivity:
        return
    with r.timer.stage("sensitivity") as st:
        r.sensitivity = sensitivity_table(
            r.X, r.runs, r.method_metrics, r.params, r.config.seed, r.sample_size,
            lambda done, total, detail: r.progress.stage_progress("sensitivity", done, total, detail),
            Z=None if r.Z is r.X else r.Z,
        )
        st["detail"] = f"{len(r.sensitivity)} settings scored"


def _segments(r: _Run) -> None:
    """Labels numbered by size, confidence, names and insights, lifetime value, profiles,
    and what a saved model keeps."""
    config = r.config
    with r.timer.stage("segments") as st:
        # every labelling numbered by size, so segment and label_<chosen> agree
        r.labels = {m: order_by_size(r.runs[m].fits[r.method_metrics[m]["chosen_index"]].labels)
                    for m in r.methods if r.method_metrics[m]["status"] == "ok"}
        chosen_labels = r.labels[r.chosen_method]
        r.confidence, r.calibration, r.calibration_info = _calibrated_confidence(
            r.chosen_est, r.Z, r.refits.get(r.chosen_method), config.seed)
        sg = config.segments
        r.insights, names, rfm = segment_insights(
            r.feats.frame, chosen_labels, r.cleaned, category_columns=r.feats.category_columns,
            utc_offset_hours=config.features.utc_offset_hours, random_state=config.seed,
            max_depth=sg.tree_depth, top_items=sg.top_items, rfm_bins=sg.rfm_bins,
            rfm_cuts=dict(sg.rfm_cuts) or None, confidence=r.confidence, low_confidence=LOW_CONFIDENCE,
            spent=_spent_before_capping(r),
        )
        if "som" in r.labels:
            som = r.runs["som"].fits[r.method_metrics["som"]["chosen_index"]].estimator
            r.insights["som_umatrix"] = np.asarray(som.umatrix_).round(6).tolist()
        r.segments = _segment_table(r, chosen_labels, names, rfm)
        r.profiles = _value_profiles(
            segment_profiles(r.feats.frame, chosen_labels, names, r.feats.category_columns), r.segments)
        st["detail"] = ", ".join(f"{p.segment_name} {int(p.size):,}" for p in r.profiles.itertuples())
        _model(r, names)


def _purchase_history(r: _Run) -> Any:
    """:func:`gpuseg.segments.value.purchase_history` of the cleaned rows (the Dask workers'
    when they sent it), computed once per run; None when the Dask workers sent none."""
    from .segments.value import purchase_history

    if r.history is None:
        cleaned = r.cleaned
        if cleaned.purchases is not None:
            r.history = cleaned.purchases
        elif not r.config.dask.cluster:
            r.history = purchase_history(cleaned.frame, cleaned.kind, cleaned.reference_time)
    return r.history


def _spent_before_capping(r: _Run) -> Any:
    """Each customer's spend before the price fence capped it (the features' rows), where it
    capped a purchase; else None (the features' ``monetary`` is what was spent)."""
    if not r.cleaned.capped_spend:
        return None
    history = _purchase_history(r)
    if history is None:
        return None
    ids = _backend.to_host(r.feats.frame.index.to_series()).to_numpy()
    return history["total"].reindex(ids).fillna(0.0).to_numpy(np.float64)


def _segment_table(r: _Run, chosen_labels: Any, names: dict, rfm: Any) -> pd.DataFrame:
    """segments.parquet: segment, name, confidence, RFM scores, lifetime value, every
    method's labels (in the features' row order)."""
    segments = r.feats.frame[[]].reset_index()
    segments["segment"] = chosen_labels
    segments["segment_name"] = segments["segment"].map(names)
    segments["confidence"] = r.confidence
    segments["low_confidence"] = r.confidence < LOW_CONFIDENCE
    if rfm is not None:
        for col in rfm.columns:
            segments[col] = rfm[col].reset_index(drop=True)  # same row order as the features
    r.value_info = _add_value(segments, r.cleaned, r.config, r.be, r.history)
    if r.value_info.get("status") == "skipped":
        r.progress.note(f"no lifetime value (p_alive, expected_purchases, predicted_clv): {r.value_info['reason']}")
    elif r.value_info.get("no_dropout"):
        r.progress.note(f"lifetime value: {r.value_info['no_dropout']}")
    for method, lab in r.labels.items():
        segments[f"label_{method}"] = lab
    return segments


def _model(r: _Run, names: dict) -> None:
    """save_model's arguments for the chosen segmentation (or why none is saved), and the
    pseudonym key of --anonymize, which the model keeps."""
    chosen_fit = r.chosen_fit()
    r.model_kwargs, r.model_info = _model_to_save(r.chosen_method, chosen_fit, r.runs, r.method_metrics,
                                                  r.embedding)
    kw = r.model_kwargs
    if kw is None:
        r.progress.note(f"model/ not written: {r.model_info['reason']}")
    else:
        relabel = size_order(chosen_fit.labels)
        kw.update(
            relabel=relabel, scaler=r.scaler, feature_names=r.feats.names, config_dict=r.config.to_dict(),
            segment_names=[str(names[s]) for s in range(int(relabel.max()) + 1)],
            **_model_data(r.cleaned, r.feats, r.X, r.column_map, r.ts_format, r.chosen_est, r.Z, relabel,
                          r.calibration),
            train_X=r.Z,
        )
        if r.value_info.get("status") == "ok":  # assign predicts new customers' value with these parameters
            kw["data"]["value"] = r.value_info
            if r.backtest is not None:  # the fit is the backtest's; the horizon and money terms the user's
                uv = r.user_value
                kw["data"]["value"] = {**r.value_info, "horizon_days": float(uv.horizon_days),
                                       "discount_rate": float(uv.discount_rate), "margin": float(uv.margin)}
        if r.embedder is not None:  # the embedding the segments were found in: predict embeds new rows first
            kw.update(embedder=r.embedder, embedder_rows=r.X)
    r.key = new_key() if r.config.anonymize else None
    if r.key is not None and kw is not None:  # assign and migrate give the same pseudonyms
        kw["data"]["privacy"] = model_entry(r.key)
    if r.key is not None and kw is None:
        r.progress.note("customer ids pseudonymised with a key no model keeps: later runs cannot give the same "
                        "pseudonyms")


def _backtest(r: _Run) -> None:
    """gpuseg backtest: the segments against what the customers did after the cut."""
    if r.backtest is None:
        return
    with r.timer.stage("backtest") as st:
        r.backtest_result = r.backtest.evaluate(r.segments, r.feats.frame, r.ks, r.config.seed)
        st["detail"] = r.backtest_result.headline


def _metrics(r: _Run) -> None:
    """metrics.json (its timings are filled in when it is written)."""
    config = r.config
    r.metrics = {
        "gpuseg_version": __version__,
        "started_at": r.started.isoformat(timespec="seconds"),
        "device": {
            "backend": r.be.name,
            "label": r.be.device_label,
            "libraries": _backend.library_versions(r.be),
            "cpu_threads": _backend.RUN_THREADS,
        },
        "data": _data_entry(r),
        "scaling": r.scaler.params(r.feats.names),
        "representation": _representation_entry(r.weighting, config),
        "lifetime_value": r.value_info,
        "embedding": r.embedding,
        "evaluation": _evaluation_entry(r),
        "methods": r.method_metrics,
        "ranking": r.ranking,
        "chosen": _chosen_entry(r),
        "model": r.model_info,
        "dask": r.dist_info,
        "backtest": r.backtest_result.summary if r.backtest_result is not None else None,
        "privacy": ({"pseudonymised": True, "scheme": PSEUDONYM_SCHEME,
                     "key_kept_in": "model/model.json (data.privacy)" if r.model_kwargs is not None else None}
                    if r.key is not None else {"pseudonymised": False}),
        "config": config.to_dict(),
        "timings": {},
    }


def _data_entry(r: _Run) -> dict[str, Any]:
    cleaned, feats = r.cleaned, r.feats
    return {
        "source": r.source,
        "format": cleaned.kind,
        "files": [str(p) for p in r.files],
        "column_map": r.column_map,
        "timestamp_format": r.ts_format,
        "rows_read": cleaned.rows_in,
        "rows_used": cleaned.rows_out,
        "rows_dropped": cleaned.dropped,
        **{k: v for k, v in cleaned.summary().items() if k not in ("rows_in", "rows_used", "rows_dropped")},
        "customers": r.n_customers,
        "features": feats.names,
        "feature_groups": feats.groups,
        "top_categories": feats.top_categories,
        "reference_time": _dt.datetime.fromtimestamp(feats.reference_time, _dt.timezone.utc).isoformat(),
    }


def _evaluation_entry(r: _Run) -> dict[str, Any]:
    config = r.config
    return {
        "silhouette": (
            {"exact": False, "sample_size": r.sample_size, "sample_seed": config.seed}
            if r.sample_size
            else {"exact": True, "sample_size": r.n_customers}
        ),
        "k_range": [r.ks[0], r.ks[-1]],
        "k_rule": K_RULE,
        "method_rule": METHOD_RULE,
        "stability": {
            "resamples": config.evaluate.stability_resamples,
            "scheme": config.evaluate.stability_scheme,
            "max_sample": config.evaluate.stability_sample,
            "seed": config.seed,
            "score": "mean pairwise ARI of refits on the customers they share",
        },
        "truth": r.truth_info,
    }


def _chosen_entry(r: _Run) -> dict[str, Any]:
    meaning = confidence_meaning(r.chosen_est)
    return {
        "method": r.chosen_method,
        "k": r.method_metrics[r.chosen_method]["k"],
        "by": "--select" if r.config.select else "ranking",
        "confidence": (f"probability of keeping the segment when the segmentation is rebuilt without the "
                       f"customer (isotonic calibration of the {meaning} against "
                       f"{r.calibration.pairs:,} refit assignments)" if r.calibration is not None
                       else f"{meaning} (not calibrated: {r.calibration_info['reason']})"),
        "confidence_summary": confidence_summary(r.confidence),
        "confidence_calibration": r.calibration_info,
    }


def _write(r: _Run) -> None:
    """Every output file in one commit (report.files.write_outputs); ids pseudonymised
    first with --anonymize."""
    with r.timer.stage("write") as st:
        feature_out = r.feats.frame.reset_index()
        excluded = r.cleaned.excluded if r.cleaned.excluded is not None else no_exclusions()
        segments_out = r.segments
        if r.key is not None:  # every id written becomes its pseudonym; the result keeps the ids
            segments_out = pseudonymise(r.segments, r.key)  # features hold the same customers in the same order
            feature_out = _backend.to_host(feature_out).assign(customer_id=segments_out["customer_id"].to_numpy())
            excluded = pseudonymise(excluded, r.key)
        t_write = time.perf_counter()

        def write_metrics(path: Path) -> None:
            # written last: its timings cover everything but moving the files into place
            r.metrics["timings"] = {k: round(v, 4) for k, v in r.timer.timings.items()}
            r.metrics["timings"]["write"] = round(time.perf_counter() - t_write, 4)
            r.metrics["timings"]["total"] = round(time.perf_counter() - r.t_start, 4)
            path.write_text(to_json(r.metrics))

        outputs = {
            "segments.parquet": lambda p: segments_out.to_parquet(p, index=False),
            "features.parquet": lambda p: feature_out.to_parquet(p, index=False),
            "excluded.csv": lambda p: write_csv(excluded, p),
            "profiles.csv": lambda p: write_csv(r.profiles, p, float_format="%.6g"),
            "comparison.csv": lambda p: write_csv(r.comparison, p, float_format="%.6g"),
            "insights.json": lambda p: p.write_text(to_json(r.insights)),
        }
        if r.sensitivity is not None:
            outputs["sensitivity.csv"] = lambda p: write_csv(r.sensitivity, p, float_format="%.6g")
        if r.backtest_result is not None:
            outputs["backtest.csv"] = lambda p: write_csv(r.backtest_result.table, p, float_format="%.6g")
            outputs["backtest.json"] = lambda p: p.write_text(to_json(r.backtest_result.summary))
        if r.model_kwargs is not None:
            outputs["model"] = lambda p: save_model(p, **r.model_kwargs)
        outputs["metrics.json"] = write_metrics
        # in the same commit, the previous run's files that describe other segments go: its
        # model when none is saved now, its sensitivity table, its backtest, and its report
        # (the report stage writes this run's; a failed or skipped one leaves none)
        remove = (("model",) if r.model_kwargs is None else ()) + (
            ("sensitivity.csv",) if r.sensitivity is None else ()) + (
            ("backtest.csv", "backtest.json") if r.backtest_result is None else ()) + ("report.html", "plots")
        replaced = (r.out_dir / "model").is_dir()
        r.written = write_outputs(r.out_dir, outputs, remove=remove)
        st["detail"] = str(r.out_dir)
    if replaced:
        _note_updated_models(r.out_dir, r.progress)


def _note_updated_models(out_dir: Path, progress: Progress) -> None:
    """Say which ``update`` versions beside ``model/`` (``model-v2/``, ...) and their lists of
    excluded customers (``model-v2.excluded.csv``) came from the model this run replaced or
    removed: they are the user's to keep or delete, no longer match this run, and are not to
    be shared (a version's model.json may hold the --anonymize key, its list customer ids)."""
    left = sorted(p.name for p in out_dir.glob("model-v*") if (p / "model.json").is_file())
    lists = sorted(p.name for p in out_dir.glob("model-v*.excluded.csv") if p.is_file())
    if not left and not lists:
        return
    also = f", with {', '.join(lists)}," if left and lists else ""
    now = ("the model this run replaced: they no longer match model/" if (out_dir / "model").is_dir()
           else "the model this run removed (it saved no model): nothing here matches them now")
    progress.note(f"{', '.join(left or lists)} in {out_dir}{also} came from {now} (kept; delete them, or keep them "
                  "as the older model's versions, and leave them out when sharing the folder: a version's "
                  "model.json may hold the key of --anonymize, its .excluded.csv customer ids)")


def _report(r: _Run) -> None:
    """report.html and plots/, then metrics.json again with the report's time."""
    from .errors import DataError, os_error_line

    with r.timer.stage("report") as st:
        try:
            r.written += write_report(r.out_dir, r.insights, r.progress.note, umap=r.config.embed.method == "umap",
                                      worker=r.plot_worker)
        except OSError as exc:  # the data files are committed: say so, not only what failed
            raise DataError(f"{r.out_dir}: this run's segments, features and model were written, its report was "
                            f"not ({os_error_line(exc)}); `gpuseg report {r.out_dir}` writes it when that is fixed"
                            ) from None
        st["detail"] = f"{r.out_dir / 'report.html'} and {len(list((r.out_dir / 'plots').glob('*.png')))} plots"
    # metrics.json again, now that its timings can include the report
    r.metrics["timings"]["report"] = round(r.timer.timings["report"], 4)
    r.metrics["timings"]["total"] = round(time.perf_counter() - r.t_start, 4)
    write_outputs(r.out_dir, {"metrics.json": lambda p: p.write_text(to_json(r.metrics))})


def _local_stages(config: RunConfig, files: list, kind: str, be: _backend.Backend, timer: _Timer,
                  backtest: Any = None) -> tuple:
    """load, clean and features in this process: (cleaned, features, column map, timestamp
    format, source, the synthetic data's truth or None). With a backtest plan, only the
    calibration rows go on."""
    truth = None
    rename = dict(config.rename)
    with timer.stage("load") as st:
        if config.input is None:
            from .io.synthetic import generate_events

            events, truth_frame = generate_events(config.synthetic_customers, seed=config.seed)
            data = from_frame(events, be, "events", source="built-in synthetic data")
            truth = truth_frame.set_index("user_id")["persona"]
            source = f"built-in synthetic data ({config.synthetic_customers:,} customers, seed {config.seed})"
        else:
            data = load_files(files, kind, be, config.format, rename, config.clean.timestamp_format, config.input)
            source = config.input
        st["detail"] = (f"{data.rows_read:,} rows of {data.schema.name} from {_files_label(data.files, source)}"
                        f"{read_as(data.column_map, rename)}" + "".join(f"; {n}" for n in data.notes))
        if backtest is not None:
            data = backtest.split(data)
            r = backtest.rows
            st["detail"] += (f"; {r['calibration']:,} up to {backtest.window.until} fit, {r['holdout']:,} after it "
                             "held out" + (f", {r['after_holdout']:,} after the holdout unused"
                                           if r["after_holdout"] else ""))
    with timer.stage("clean") as st:
        cleaned = clean(data, config.clean, be)
        if backtest is not None:
            cleaned = backtest.calibrated(cleaned, config.clean, be)
        column_map, ts_format = data.column_map, data.timestamp_format
        del data
        st["detail"] = describe_cleaning(cleaned.summary())
    with timer.stage("features") as st:
        feats = customer_features(cleaned, config.features)
        st["detail"] = f"{len(feats):,} customers x {len(feats.names)} features"
    return cleaned, feats, column_map, ts_format, source, truth


def _distributed_stages(config: RunConfig, files: list, kind: str, be: _backend.Backend, timer: _Timer,
                        progress: Progress) -> tuple:
    """load, clean and features on a Dask cluster (:mod:`gpuseg.dist`)."""
    from .dist import load_clean_features

    dk = config.dask
    session = _backend.dask_session(dk.cluster, be, dk.workers, dk.memory_limit)
    try:
        where = "a local dask-cuda cluster" if session.kind == "dask-cuda" else (
            "a local Dask cluster" if dk.cluster == "local" else f"the Dask scheduler at {dk.cluster}")
        progress.note(f"load, clean and features run on {where} of {session.workers} worker(s); "
                      f"dashboard: {session.dashboard or 'none'}")
        out = load_clean_features(session, files, kind, config, be, timer.stage, progress.note)
    except BaseException:
        session.close()
        raise
    info = {"cluster": dk.cluster, "kind": session.kind, "workers": out.workers, "pieces": out.pieces,
            "partitions": out.partitions, "insight_customers": out.insight_customers,
            "cleaned_held": out.cleaned_held, "memory_limit_mb": round(session.memory_limit / 2**20, 1),
            "peak_worker_memory_mb": round(out.peak_worker_memory / 2**20, 1),
            "workers_replaced": out.workers_replaced}
    return out.cleaned, out.features, out.column_map, out.timestamp_format, config.input, info, session


def _kmeans_on_workers(config: RunConfig, session: Any, be: _backend.Backend, feats: Any,
                       progress: Progress) -> Callable | None:
    """``fit_with`` for "kmeans" on the Dask workers (``[dask] kmeans``), or None when it
    fits in this process."""
    dk = config.dask
    if dk.kmeans == "client":
        return None
    nbytes = len(feats) * len(feats.names) * 4  # the scaled float32 table
    if dk.kmeans == "auto":
        # on one GPU the workers' K-means would use the same GPU's memory: no gain
        if be.is_gpu and session.workers < 2:
            return None
        room = 0.4 * _backend.device_memory(be) if be.is_gpu else 0.5 * session.memory_limit
        if not room or nbytes <= room:
            return None
    from .dist.kmeans import kmeans_on_workers, scatter_rows

    blocks = max(2 * session.workers, math.ceil(nbytes / (64 << 20)))
    engine = "cuML's multi-GPU K-means" if be.is_gpu else "map-reduce Lloyd iterations"
    progress.note(f"K-means fits on the {session.workers} Dask worker(s) ({engine} over {blocks} row blocks of the "
                  f"{nbytes / 2**20:,.0f} MB customer table); the other methods, the scores and the stability "
                  "refits run in this process")

    def fit_with(Z: Any, params: dict) -> Callable[[int, int], Any]:
        kw = {key: params[key] for key in ("n_init", "max_iter", "tol", "init") if key in params}
        rows = scatter_rows(session.client, Z, blocks)  # once for every k of the sweep
        return lambda k, seed: kmeans_on_workers(session.client, Z, k, seed, rows, gpu=be.is_gpu, **kw)

    return fit_with


def _model_to_save(
    method: str, fit: Any, runs: dict[str, MethodRun], method_metrics: dict[str, Any], embedding: Any
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(save_model's estimator arguments, or None; the ``model`` entry of metrics.json).

    A run on an embedding is saved with its embedder (:func:`gpuseg.model.embedding_state`:
    a PCA's projection, the autoencoder's weights, a UMAP's training rows and coordinates),
    for every savable method, a vote consensus included."""
    est = fit.estimator
    reason = None
    if method not in SAVABLE_METHODS:
        reason = f"{method} has no predict state (a density method)"
    elif method == "consensus" and est.strategy != "vote":
        reason = f"a consensus by {est.strategy!r} cannot be saved (only the vote)"
    elif method == "consensus":
        unsavable = [m for m in est.member_labels_ if m not in SAVABLE_METHODS or m == "consensus"]
        if unsavable:
            reason = f"the consensus member {unsavable[0]} cannot be saved"
    if reason is not None:
        return None, {"saved": False, "reason": reason}
    kwargs: dict[str, Any] = {"estimator": est, "method": method}
    if method == "consensus":
        at = method_metrics[method]["chosen_index"]  # the consensus and its members share the sweep's ks
        kwargs["members"] = {m: runs[m].fits[at].estimator for m in est.member_labels_}
    info = {"saved": True, "folder": "model", "method": method}
    if embedding is not None:
        info["embedding"] = embedding["method"]
    return kwargs, info


def _model_data(cleaned: Any, feats: Any, X: Any, column_map: dict, ts_format: str, est: Any, Z: Any,
                relabel: Any, calibration: Any = None) -> dict[str, Any]:
    """save_model's ``data`` and ``data_arrays``: how the training data were prepared, the
    reference of the confidence margin (centres, segment of each, within variance) and the
    confidence calibration."""
    from .prep.features import feature_spec
    from .segments.confidence import margin_reference

    spec = feature_spec(feats)
    xp = _backend.array_namespace(X)
    quantiles = xp.quantile(X.astype(xp.float64), xp.linspace(0.0, 1.0, 101), axis=0).T
    data = {
        "kind": cleaned.kind,
        "source_columns": list(cleaned.source_columns),
        "column_map": dict(column_map),
        "timestamp_format": ts_format,
        "sessions_derived": bool(cleaned.sessions_derived),
        "price_group": cleaned.price_group,
        "clean": cleaned.state(),
        "features": spec.to_json(),
        "reference_time": int(feats.reference_time),
        "customers": len(feats),
    }
    arrays = {**spec.price_arrays(), "train_quantiles": _backend.to_host(quantiles)}
    if hasattr(est, "confidence_"):
        data["confidence"] = {"kind": "vote"}
    elif hasattr(est, "predict_proba"):
        data["confidence"] = {"kind": "probability"}
    else:
        ref = margin_reference(est, Z, est.labels_)
        if ref is None:
            data["confidence"] = {"kind": "one"}
        else:
            centers, own, within, space = ref
            labels = np.asarray(_backend.to_host(est.labels_)).astype(np.int64)
            own = np.asarray(_backend.to_host(own))
            row_label = np.arange(centers.shape[0])
            row_label[own[own >= 0]] = labels[own >= 0]
            table = np.append(np.asarray(relabel, dtype=np.int64), -1)
            rows = table[np.where((row_label >= 0) & (row_label < len(relabel)), row_label, len(relabel))]
            # where the margin is measured (the names of dynamic.update's movement table)
            name = ("features" if Z is X else "embedding") if space is Z else (
                "metric" if hasattr(est, "metric_") else "latent")
            data["confidence"] = {"kind": "margin", "within": float(within), "space": name}
            arrays.update(confidence_centers=_backend.to_host(centers), confidence_rows=rows.astype(np.int32))
    if calibration is not None:
        data["confidence"]["calibration"] = calibration.to_json()
    return {"data": data, "data_arrays": arrays}


def write_report(
    out_dir: Path, insights: dict[str, Any] | None = None, note: Any = None, umap: bool = False,
    worker: Any = None,
) -> list[Path]:
    """Build ``plots/`` and ``report.html`` from a run's output folder (both replaced together).

    The UMAP projection is left out unless ``umap`` (umap-learn takes 30-50 s on a CPU,
    most of it compiling; the page lists it as left out, with how to add it). Without
    matplotlib the report is written without plots (``note`` says so). ``worker``
    (:class:`gpuseg.report.worker.PlotWorker`) draws some of the plots meanwhile, from the
    folder's files (insights.json for ``insights``).
    """
    from .errors import DeviceError
    from .report.html import report_html
    from .report.plots import PLOTS

    try:
        plots = _draw_plots(out_dir, insights, [p for p in PLOTS if umap or p != "umap"], worker, note)
        if not umap:
            plots["umap"] = "left out by default (umap-learn takes 30-50 s on a CPU); add it with gpuseg report OUT_DIR --umap"
        elif isinstance(plots.get("umap"), str) and note:  # asked for and not drawn: say why, not only in the page
            note(f"UMAP plot left out: {plots['umap']}")
    except DeviceError as exc:
        plots = {}
        if note:
            note(f"report without plots: {exc}")
    # without plots the page itself says why (it tries again and lists the reason)
    html = report_html(out_dir, insights, plots=plots or None)

    def write_plots(p: Path) -> None:
        p.mkdir()
        for name, data in plots.items():
            if isinstance(data, bytes):
                (p / f"{name}.png").write_bytes(data)

    return write_outputs(out_dir, {"plots": write_plots,
                                   "report.html": lambda p: p.write_text(html, encoding="utf-8")})


def _draw_plots(out_dir: Path, insights: dict[str, Any] | None, include: list[str], worker: Any,
                note: Any = None) -> dict[str, Any]:
    """make_plots of ``include``, the worker's share (:data:`gpuseg.report.worker.WORKER_PLOTS`)
    drawn by the worker meanwhile when there is one; in the order of ``include``."""
    from .report.plots import make_plots
    from .report.worker import WORKER_PLOTS

    theirs = [p for p in include if p in WORKER_PLOTS] if worker is not None else []
    if theirs and (out_dir / "insights.json").is_file() and worker.submit(out_dir, theirs):
        insights = None  # both processes read insights.json, so both draw from the same values
    else:
        theirs = []
    plots = make_plots(out_dir, insights, include=[p for p in include if p not in theirs])
    if theirs:
        got = worker.collect()
        if got is None or set(got) != set(theirs):  # no answer: drawn here
            if note:
                note(f"the plot worker gave no answer; {', '.join(theirs)} drawn in the run instead")
            got = make_plots(out_dir, insights, include=theirs)
        plots.update(got)
    return {p: plots[p] for p in include}


def _files_label(files: list[str], source: str) -> str:
    """``data.csv``, ``12 files``, or ``2 files (in backup/ too)`` where a folder's files come
    from its subfolders as well."""
    if not files:
        return source
    if len(files) == 1:
        return files[0]
    parents = sorted({os.path.dirname(os.path.abspath(f)) for f in files})
    root = os.path.commonpath(parents)
    subs = [os.path.relpath(d, root) + "/" for d in parents if d != root]
    return f"{len(files)} files" + (f" (in {', '.join(subs[:3])}{' ...' if len(subs) > 3 else ''} too)"
                                    if subs else "")


#: A truth id that names an integer id: 7, 07, +7 or 7.0 (a spreadsheet's way).
_INTEGER_ID = re.compile(r"[+-]?\d{1,19}(\.0*)?")


def _int64_or_none(text: str) -> int | None:
    """A truth id as the integer id it names (:data:`_INTEGER_ID`), within int64; None for
    anything else."""
    text = text.strip()
    if _INTEGER_ID.fullmatch(text) is None:
        return None
    value = int(text.split(".")[0])
    return value if -(2**63) <= value < 2**63 else None


def _truth_keys_like(truth: pd.Series, ids: pd.Index) -> pd.Series:
    """The truth indexed by ids of the data's kind: text where the data's ids are text (a
    Parquet truth's integers), integers where they are integers (a CSV truth's text; ids
    that are not plain integers cannot be the data's and stay text)."""
    keys = truth.index
    text_keys = pd.api.types.is_object_dtype(keys) or pd.api.types.is_string_dtype(keys)
    if pd.api.types.is_integer_dtype(ids) and text_keys:
        numbers = [_int64_or_none(t) for t in keys.astype(str)]
        keep = np.array([v is not None for v in numbers], dtype=bool)
        truth = truth[keep].set_axis(pd.Index(np.array([v for v in numbers if v is not None], dtype=np.int64)))
        if not truth.index.is_unique:
            twice = truth.index[truth.index.duplicated()][0]
            raise ConfigError(f"--truth: two ids of the truth file are customer {twice} of the data once read as "
                              "numbers (such as '07' and '7'); give each customer once")
    elif not pd.api.types.is_integer_dtype(ids) and pd.api.types.is_integer_dtype(keys):
        truth = truth.set_axis(keys.astype(str))
    elif text_keys:  # e-mail ids in lower case, as cleaning reads the data's (clean._with_folded_emails)
        from .prep.clean import EMAIL

        text = truth.index.astype(str)
        mail = text.str.match(EMAIL)
        if mail.any():
            truth = truth.set_axis(text.where(~mail, text.str.lower()))
            truth = truth[~truth.index.duplicated()]
    return truth


def _check_out_beside_input(config: RunConfig) -> None:
    """Refuse an --out that is the --input folder or holds it: its files would be skipped as
    gpuseg's outputs (the error said the folder held no data)."""
    if not config.input:
        return
    given = Path(config.input).expanduser()
    if not given.is_dir():  # a pattern: the folder its first wildcard is in
        parts = given.parts
        fixed = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), None)
        if fixed is None:
            return
        given = Path(*parts[:fixed]) if fixed else Path(".")
    inp, out = given.resolve(), Path(config.out).expanduser().resolve()
    if out == inp or out in inp.parents:
        raise ConfigError(f"--out {config.out}: {'is' if out == inp else 'holds'} the folder of --input "
                          f"{config.input}; give the outputs a folder of their own (one inside the input folder "
                          "is skipped when it is read)")


def _align_truth(truth: pd.Series | None, index: Any, be: _backend.Backend):
    """Truth labels as integer codes aligned to the feature rows, and a mask of known rows."""
    if truth is None:
        return None, None, None
    ids = pd.Index(_backend.to_host(index))
    aligned = _truth_keys_like(truth, ids).reindex(ids)
    known = aligned.notna().to_numpy()
    if known.sum() < 2:
        raise ConfigError("--truth: fewer than 2 customers of the data are in the truth file")
    codes, uniques = pd.factorize(aligned)
    info = {
        "customers_matched": int(known.sum()),
        "customers_unmatched": int((~known).sum()),
        "classes": int(len(uniques)),
    }
    xp = be.xp
    return xp.asarray(codes.astype(np.int32)), xp.asarray(known), info


def _calibrated_confidence(est: Any, Z: Any, refits: Any, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """(confidence, Calibration or None, metrics entry): the chosen method's raw confidence
    mapped to the share of customers who kept their segment in its stability refits
    (:mod:`gpuseg.evaluate.calibration`)."""
    from .evaluate.calibration import fit_calibration, kept_pairs, reliability_table

    raw = segment_confidence(est, Z)
    if refits is None:
        return raw, None, {"calibrated": False, "reason": "no stability refits (--stability 0)"}
    samples, labels, estimators = refits
    rows, kept = kept_pairs(Z, est.labels_, samples, labels, estimators, seed=seed)
    calibration = fit_calibration(raw, rows, kept)
    if calibration is None:
        return raw, None, {"calibrated": False, "reason": f"only {rows.size} refit assignments"}
    xp = _backend.array_namespace(raw)
    confidence = xp.where(xp.asarray(est.labels_) >= 0, calibration.apply(raw), 0.0).astype(xp.float32)
    out_of_sample = estimators is not None and any(e is not None and hasattr(e, "predict") for e in estimators)
    return confidence, calibration, {
        "calibrated": True, "pairs": calibration.pairs, "kept_share": round(calibration.kept_share, 4),
        "pairs_from": "customers each refit did not see" if out_of_sample else "customers each refit saw",
        "knots": len(calibration.x),
        "raw_reliability": reliability_table(raw, rows, kept),
    }


def _weigh_features(X: Any, feats: Any, config: RunConfig) -> Any:
    """The features' weights in the clustering space (:mod:`gpuseg.prep.represent`), or None
    with ``[features] weighting = false`` and no ``describe_only``."""
    from .prep.represent import feature_weights

    fc = config.features
    names = feats.names
    unknown = [d for d in fc.describe_only if d not in names and d not in set(feats.groups.values())]
    if unknown:
        raise ConfigError(f"config [features] describe_only: {unknown[0]!r} is neither a feature nor a feature group "
                          f"of these data (features: {', '.join(names)})")
    if not fc.weighting and not fc.describe_only:
        return None
    on = fc.weighting
    weights = feature_weights(X, names, feats.groups, near_constant=fc.near_constant if on else None,
                              redundancy=fc.redundancy if on else None, describe_only=fc.describe_only,
                              relevance=on, random_state=0,  # a property of the data, not of --seed
                              bounded=sorted(feats.bounded))
    if not weights.kept:
        raise ConfigError("no feature is left to define the segments ([features] describe_only lists them all, or "
                          "every feature is near-constant)")
    return weights


VALUE_COLUMNS = ("p_alive", "expected_purchases", "predicted_clv")


def _add_value(segments: pd.DataFrame, cleaned: Any, config: RunConfig, be: _backend.Backend,
               history: Any = None) -> dict[str, Any]:
    """``p_alive, expected_purchases, predicted_clv`` per customer into ``segments`` (NaN for
    customers without a purchase); returns the ``metrics.json`` entry. ``history``: the
    cleaned rows' purchase history, where already computed."""
    vc = config.value
    if not vc.enabled:
        info = {"status": "off", "reason": "[value] enabled = false"}
    elif config.dask.cluster and cleaned.purchases is None:
        info = {"status": "skipped", "reason": "no purchase histories came back from the Dask workers"}
    else:
        from .segments.value import customer_value, purchase_history, repeat_buyers

        if history is None:
            history = (cleaned.purchases if cleaned.purchases is not None  # from the Dask workers
                       else purchase_history(cleaned.frame, cleaned.kind, cleaned.reference_time))
        values, info = customer_value(history, be.xp, vc.horizon_days, vc.discount_rate, vc.margin)
        ids = _backend.to_host(segments["customer_id"]).to_numpy()
        values = values.reindex(ids)
        for col in VALUE_COLUMNS:
            segments[col] = values[col].to_numpy()
        segments["repeat_buyer"] = repeat_buyers(history, ids)  # for _value_profiles, which takes it out
        return info
    for col in VALUE_COLUMNS:
        segments[col] = np.nan
    return info


def _value_profiles(profiles: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """The segment means of the lifetime-value columns (:func:`gpuseg.segments.value.segment_value_means`:
    p_alive over repeat buyers only, the others over customers with a purchase) and each
    segment's share of the predicted value, added to the profiles; the temporary
    ``repeat_buyer`` column leaves ``segments``."""
    from .segments.value import segment_value_means

    if "repeat_buyer" not in segments.columns:  # no purchase histories: no lifetime value
        return profiles
    seg = _backend.to_host(segments[["segment", *VALUE_COLUMNS, "repeat_buyer"]])
    del segments["repeat_buyer"]
    means = segment_value_means(seg)
    return profiles if means is None else profiles.merge(means, left_on="segment", right_index=True, how="left")


def _representation_entry(weighting: Any, config: RunConfig) -> dict[str, Any]:
    """metrics.json ``representation``: the rule and every feature's weight and why."""
    from .prep import represent

    fc = config.features
    if weighting is None:
        return {"weighting": False, "rule": "every scaled feature weight 1 ([features] weighting = false)"}
    return {
        "weighting": fc.weighting,
        "rule": (f"left out: near-constant (>= {fc.near_constant:.0%} share one value) and describe_only; "
                 f"redundant features (|Spearman| >= {fc.redundancy}, complete linkage) share one weight "
                 "(1/sqrt(group size)); times sqrt(relevance / best relevance), relevance being the share of a "
                 f"feature's variance between {represent.RELEVANCE_CLUSTERS} K-means groups of the other features"
                 if fc.weighting else "describe_only features left out; every other weight 1"),
        "defining": weighting.kept,
        "describing": [r["feature"] for r in weighting.rows if r["weight"] == 0],
        "summary": weighting.summary(),
        "features": weighting.rows,
    }


def _epoch_progress(phase: str, epoch: int, total: int, loss: float) -> tuple[int, int, str]:
    """(done, total, detail) for the progress display from a training callback."""
    return epoch, total, f"{phase} epoch {epoch}/{total} loss {loss:.4g}"


def _embed(X: Any, config: RunConfig, callback: Any) -> tuple[Any, dict[str, Any], Any]:
    """Fit the configured embedding on X; returns the embedding, its metrics entry and the
    fitted embedder."""
    from .embed.registry import make_embedder

    dim = min(config.embed.n_components, X.shape[1])
    t0 = time.perf_counter()
    embedder = make_embedder(config.embed.method, dim, config.seed, dict(config.embed.params), callback=callback)
    Z = embedder.fit_transform(X)
    _backend.synchronize(Z)
    info: dict[str, Any] = {
        "method": config.embed.method,
        "n_components": int(Z.shape[1]),
        "params": dict(config.embed.params),
        "fit_seconds": round(time.perf_counter() - t0, 4),
        "scores_computed_on": "scaled features",
    }
    ratio = getattr(embedder, "explained_variance_ratio_", None)
    if ratio is not None:
        info["explained_variance"] = float(np.sum(ratio))
    for attr, key in (("reconstruction_error_", "reconstruction_loss_per_epoch"), ("n_epochs_", "epochs")):
        value = getattr(embedder, attr, None)
        if value is not None:
            info[key] = [float(v) for v in value] if isinstance(value, (list, tuple)) else value
    return Z, info, embedder


def _torch_available() -> bool:
    """Whether the deep members can run (torch importable), without importing it twice."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None
