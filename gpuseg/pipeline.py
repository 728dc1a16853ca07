"""``run(config) -> RunResult``: the stages in order, each timed.

load -> clean -> features -> scale -> [embed] -> cluster -> evaluate -> stability -> segments
-> write -> report

The data stays on the backend's device from file to labels; only small results (scores,
profiles) come to the host before the write stage.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from . import __version__, backend as _backend
from .cluster import METHODS, check_method_params, consensus_members, resolve_methods
from .config import RunConfig
from .errors import ConfigError
from .evaluate.comparison import METHOD_RULE, choose_method, comparison_table, sensitivity_table
from .evaluate.stability import run_stability
from .evaluate.sweep import MethodRun, fit_method, score_method
from .io.privacy import SCHEME as PSEUDONYM_SCHEME, model_entry, new_key, pseudonymise
from .io.readers import from_frame, load_files, read_truth, resolve_paths
from .model import SAVABLE_METHODS, projection_arrays, save_model
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
        return _run(config, progress or Progress(), stack, backtest)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def thread_limit(threads: int = 0) -> Iterator[int]:
    """Every thread pool (BLAS, OpenMP, torch) at ``threads`` (0: :func:`usable_cores`) for the
    duration, set once: nested pools of different sizes oversubscribe shared cores (one
    K-means sweep ran 5.9x slower that way on a busy 2-core machine)."""
    import sys

    from threadpoolctl import threadpool_limits

    n = threads or usable_cores()
    torch = sys.modules.get("torch")  # already imported: set now; else backend.torch_module sets it
    before = (torch.get_num_threads() if torch is not None else None, _backend.RUN_THREADS)
    with threadpool_limits(limits=n):
        _backend.RUN_THREADS = n
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield n
        finally:
            _backend.RUN_THREADS = before[1]
            torch = sys.modules.get("torch")
            if torch is not None and before[0] is not None:
                torch.set_num_threads(before[0])


def _run(config: RunConfig, progress: Progress, stack: Any, backtest: Any = None) -> RunResult:
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    consensus_params = dict(dict(config.params).get("consensus", ()))
    methods = resolve_methods(config.cluster.methods, consensus_params, deep_available=_torch_available())
    if config.select is not None and config.select not in methods:
        raise ConfigError(f"--select {config.select}: that method did not run; add it to --methods")
    for method, table in config.params:  # wrong values fail here, before the data are read
        if method in methods:
            check_method_params(method, dict(table), config.cluster.k_max)
    files, kind = resolve_paths(config.input, exclude=config.out) if config.input else ([], "")
    input_files = [str(p) for p in files]
    out_dir = check_out_dir(config.out, input_files + ([config.truth] if config.truth else []))
    stack.enter_context(output_lock(out_dir))  # one run per folder; killed runs' leftovers settled
    for line in recover(out_dir):
        progress.note(f"{out_dir}: {line}")
    be = _backend.select(config.device)
    progress.run_started(be, config, methods)
    _backend.warm_up(be)
    timer = _Timer(progress)

    truth = read_truth(config.truth) if config.truth else None
    dist_info = None
    kmeans_on = None  # the fit of "kmeans" on the Dask workers, when it runs there
    if config.dask.cluster and backtest is not None:
        raise ConfigError("backtest runs in one process: drop --cluster")
    if config.dask.cluster:
        cleaned, feats, column_map, ts_format, source, dist_info, session = _distributed_stages(
            config, files, kind, be, timer, progress)
        stack.callback(session.close)
        kmeans_on = _kmeans_on_workers(config, session, be, feats, progress) if "kmeans" in methods else None
        dist_info["kmeans"] = "workers" if kmeans_on else "client"
        if kmeans_on is None:
            session.close()  # the workers' memory back before clustering
    else:
        cleaned, feats, column_map, ts_format, source, synthetic_truth = _local_stages(config, files, kind, be, timer,
                                                                                       backtest)
        if backtest is not None:  # predicted value over the holdout, to compare with what was spent
            user_value = config.value  # what the saved model predicts with (assign)
            config = replace(config, value=backtest.value_horizon(config.value))
        truth = synthetic_truth if truth is None else truth
    n_customers = len(feats)
    if config.cluster.k_max >= n_customers:
        raise ConfigError(
            f"--k {config.cluster.k_min}-{config.cluster.k_max}: the data has {n_customers} customers; "
            f"k must be below that"
        )

    # -- scale -----------------------------------------------------------------------------
    with timer.stage("scale") as st:
        raw = _backend.frame_to_array(feats.frame, dtype=np.float64)
        bounded = [i for i, n in enumerate(feats.names) if n in feats.bounded]
        scaler = FeatureScaler(
            log_skewed=config.features.log_skewed,
            skew_threshold=config.features.skew_threshold,
            bounded=bounded,
        ).fit(raw)
        X = scaler.transform(raw)
        weighting = _weigh_features(X, feats, config)
        if weighting is not None:  # transformed again, bit for bit what a saved model computes
            X = scaler.set_weights(weighting.weights).transform(raw)
        del raw
        st["detail"] = (f"log1p on {int(scaler.log_mask_.sum())} skewed features, standardised to float32"
                        + (f"; {weighting.summary()}" if weighting is not None else "; every feature weight 1"))

    # -- embed -----------------------------------------------------------------------------
    Z = X  # what the methods cluster; every score is computed on X
    embedding = embedder = None
    if config.embed.method != "none":
        with timer.stage("embed") as st:
            Z, embedding, embedder = _embed(X, config,
                                            lambda *a: progress.stage_progress("embed", *_epoch_progress(*a)))
            st["detail"] = f"{config.embed.method}: {X.shape[1]} features -> {Z.shape[1]} dimensions"

    # -- cluster ---------------------------------------------------------------------------
    ks = config.k_values
    params = {m: config.method_params(m, gpu=be.is_gpu) for m in methods}
    total = sum(len(ks) if METHODS[m].k_param else 1 for m in methods)
    runs: dict[str, MethodRun] = {}
    with timer.stage("cluster") as st:
        done = [0]

        def on_fit(method: str, k: int | None) -> None:
            progress.stage_progress("cluster", done[0], total, f"{method}" + (f" k={k}" if k else ""))
            done[0] += 1

        def on_epoch(*a) -> None:
            progress.stage_progress("cluster", *_epoch_progress(*a))

        for method in methods:
            member_runs = None
            if method == "consensus":
                member_runs = {m: runs[m] for m in consensus_members(consensus_params, _torch_available())}
            fit_with = kmeans_on(Z, params[method]) if kmeans_on is not None and method == "kmeans" else None
            runs[method] = fit_method(method, Z, ks, config.seed, params[method], on_fit, on_epoch, member_runs,
                                      fit_with=fit_with)
        progress.stage_progress("cluster", total, total, "")
        if kmeans_on is not None:
            session.close()  # the fits hold their labels and centres here; the workers' memory back
        st["detail"] = f"{total} fit(s): {', '.join(methods)}" + (
            f" over k={ks[0]}..{ks[-1]}" if len(ks) > 1 else f" at k={ks[0]}"
        )

    # -- evaluate --------------------------------------------------------------------------
    sample_size = None
    if n_customers > config.evaluate.silhouette_exact_max:
        sample_size = config.evaluate.silhouette_sample
        progress.note(
            f"silhouette on a fixed-seed sample of {sample_size:,} of {n_customers:,} customers "
            f"(exact up to {config.evaluate.silhouette_exact_max:,}; [evaluate] in the config)"
        )
    truth_codes, truth_mask, truth_info = _align_truth(truth, feats.frame.index, be)
    method_metrics: dict[str, Any] = {}
    score_cache: dict = {}
    with timer.stage("evaluate") as st:
        done = [0]

        def on_score(method: str, k: int | None) -> None:
            progress.stage_progress("evaluate", done[0], total, f"{method}" + (f" k={k}" if k else ""))
            done[0] += 1

        for method in methods:
            method_metrics[method] = score_method(
                X, runs[method], sample_size, config.seed, truth_codes, truth_mask, on_score, fitted_on_X=Z is X,
                cache=score_cache, Z=Z,
            )
            if method_metrics[method]["status"] != "ok":
                progress.note(f"{method} failed on these data: {method_metrics[method]['reason']}")
        progress.stage_progress("evaluate", total, total, "")
        st["detail"] = f"{sum(m['status'] == 'ok' for m in method_metrics.values())} of {len(methods)} methods succeeded"

    # -- stability ---------------------------------------------------------------------------
    refits: dict[str, Any] = {}  # per method: the stability refits, for the confidence calibration
    if config.evaluate.stability_resamples > 0:
        ok = [m for m in methods if method_metrics[m]["status"] == "ok"]
        with timer.stage("stability") as st:
            chosen_ks = {m: (method_metrics[m]["k"] if METHODS[m].k_param else None) for m in ok}
            members = {}
            if "consensus" in ok:
                est = runs["consensus"].fits[method_metrics["consensus"]["chosen_index"]].estimator
                members["consensus"] = tuple(est.members)
            ev = config.evaluate
            stab = run_stability(
                Z, chosen_ks, params, config.seed, ev.stability_resamples, members,
                lambda done, total, detail: progress.stage_progress("stability", done, total, detail),
                scheme=ev.stability_scheme, max_size=ev.stability_sample, refits=refits,
            )
            for m, value in stab.items():
                method_metrics[m]["stability"] = value
            per = min(n_customers // 2, ev.stability_sample) if ev.stability_scheme == "half" else None
            st["detail"] = (f"{ev.stability_resamples} {ev.stability_scheme} samples per method"
                            + (f" of {per:,} customers" if per else ""))

    chosen_method, ranking = choose_method(method_metrics, methods, config.select)
    chosen_k = method_metrics[chosen_method]["k"]
    comparison = comparison_table(method_metrics, ranking, chosen_method)

    sensitivity = None
    if config.sensitivity:
        with timer.stage("sensitivity") as st:
            sensitivity = sensitivity_table(
                X, runs, method_metrics, params, config.seed, sample_size,
                lambda done, total, detail: progress.stage_progress("sensitivity", done, total, detail),
                Z=None if Z is X else Z,
            )
            st["detail"] = f"{len(sensitivity)} settings scored"

    # -- segments --------------------------------------------------------------------------
    with timer.stage("segments") as st:
        # every labelling numbered by size, so segment and label_<chosen> agree
        labels = {
            m: order_by_size(runs[m].fits[method_metrics[m]["chosen_index"]].labels)
            for m in methods
            if method_metrics[m]["status"] == "ok"
        }
        chosen_labels = labels[chosen_method]
        chosen_est = runs[chosen_method].fits[method_metrics[chosen_method]["chosen_index"]].estimator
        confidence, calibration, calibration_info = _calibrated_confidence(chosen_est, Z, refits.get(chosen_method),
                                                                           config.seed)
        sg = config.segments
        insights, names, rfm = segment_insights(
            feats.frame, chosen_labels, cleaned, category_columns=feats.category_columns,
            utc_offset_hours=config.features.utc_offset_hours, random_state=config.seed,
            max_depth=sg.tree_depth, top_items=sg.top_items, rfm_bins=sg.rfm_bins,
            rfm_cuts=dict(sg.rfm_cuts) or None, confidence=confidence, low_confidence=LOW_CONFIDENCE,
        )
        if "som" in labels:
            som = runs["som"].fits[method_metrics["som"]["chosen_index"]].estimator
            insights["som_umatrix"] = np.asarray(som.umatrix_).round(6).tolist()
        segments = feats.frame[[]].reset_index()
        segments["segment"] = chosen_labels
        segments["segment_name"] = segments["segment"].map(names)
        segments["confidence"] = confidence
        segments["low_confidence"] = confidence < LOW_CONFIDENCE
        if rfm is not None:
            for col in rfm.columns:
                segments[col] = rfm[col].reset_index(drop=True)  # same row order as the features
        value_info = _add_value(segments, cleaned, config, be)
        for method, lab in labels.items():
            segments[f"label_{method}"] = lab
        profiles = segment_profiles(feats.frame, chosen_labels, names, feats.category_columns)
        profiles = _value_profiles(profiles, segments)
        st["detail"] = ", ".join(f"{r.segment_name} {int(r.size):,}" for r in profiles.itertuples())
        chosen_fit = runs[chosen_method].fits[method_metrics[chosen_method]["chosen_index"]]
        model_kwargs, model_info = _model_to_save(chosen_method, chosen_fit, runs, method_metrics, embedding)
        if model_kwargs is None:
            progress.note(f"model/ not written: {model_info['reason']}")
        else:
            relabel = size_order(chosen_fit.labels)
            model_kwargs.update(
                relabel=relabel, scaler=scaler, feature_names=feats.names, config_dict=config.to_dict(),
                segment_names=[str(names[s]) for s in range(int(relabel.max()) + 1)],
                **_model_data(cleaned, feats, X, column_map, ts_format, chosen_est, Z, relabel, calibration),
                train_X=Z,
            )
            if value_info.get("status") == "ok":  # assign predicts new customers' value with these parameters
                model_kwargs["data"]["value"] = value_info
                if backtest is not None:  # the fit is the backtest's; the horizon and money terms the user's
                    model_kwargs["data"]["value"] = {**value_info, "horizon_days": float(user_value.horizon_days),
                                                     "discount_rate": float(user_value.discount_rate),
                                                     "margin": float(user_value.margin)}
            if embedder is not None:  # the PCA the segments were found in: predict projects onto it first
                model_kwargs["data"]["embedding"] = {"method": embedding["method"], "n_components": int(Z.shape[1])}
                model_kwargs["data_arrays"].update(projection_arrays(embedder))
        key = new_key() if config.anonymize else None
        if key is not None and model_kwargs is not None:  # assign and migrate give the same pseudonyms
            model_kwargs["data"]["privacy"] = model_entry(key)
        if key is not None and model_kwargs is None:
            progress.note("customer ids pseudonymised with a key no model keeps: later runs cannot give the same "
                          "pseudonyms")

    backtest_result = None
    if backtest is not None:
        with timer.stage("backtest") as st:
            backtest_result = backtest.evaluate(segments, feats.frame, ks, config.seed)
            st["detail"] = backtest_result.headline

    metrics: dict[str, Any] = {
        "gpuseg_version": __version__,
        "started_at": started.isoformat(timespec="seconds"),
        "device": {
            "backend": be.name,
            "label": be.device_label,
            "libraries": _backend.library_versions(be),
            "cpu_threads": _backend.RUN_THREADS,
        },
        "data": {
            "source": source,
            "format": cleaned.kind,
            "files": input_files,
            "column_map": column_map,
            "timestamp_format": ts_format,
            "rows_read": cleaned.rows_in,
            "rows_used": cleaned.rows_out,
            "rows_dropped": cleaned.dropped,
            **{k: v for k, v in cleaned.summary().items() if k not in ("rows_in", "rows_used", "rows_dropped")},
            "customers": n_customers,
            "features": feats.names,
            "feature_groups": feats.groups,
            "top_categories": feats.top_categories,
            "reference_time": _dt.datetime.fromtimestamp(feats.reference_time, _dt.timezone.utc).isoformat(),
        },
        "scaling": scaler.params(feats.names),
        "representation": _representation_entry(weighting, config),
        "lifetime_value": value_info,
        "embedding": embedding,
        "evaluation": {
            "silhouette": (
                {"exact": False, "sample_size": sample_size, "sample_seed": config.seed}
                if sample_size
                else {"exact": True, "sample_size": n_customers}
            ),
            "k_range": [ks[0], ks[-1]],
            "k_rule": "elbow of the inertia curve (Kneedle); without an elbow the best composite of silhouette, "
            "Davies-Bouldin and Calinski-Harabasz",
            "method_rule": METHOD_RULE,
            "stability": {
                "resamples": config.evaluate.stability_resamples,
                "scheme": config.evaluate.stability_scheme,
                "max_sample": config.evaluate.stability_sample,
                "seed": config.seed,
                "score": "mean pairwise ARI of refits on the customers they share",
            },
            "truth": truth_info,
        },
        "methods": method_metrics,
        "ranking": ranking,
        "chosen": {
            "method": chosen_method,
            "k": chosen_k,
            "by": "--select" if config.select else "ranking",
            "confidence": (f"probability of keeping the segment when the segmentation is rebuilt without the "
                           f"customer (isotonic calibration of the {confidence_meaning(chosen_est)} against "
                           f"{calibration.pairs:,} refit assignments)" if calibration is not None
                           else f"{confidence_meaning(chosen_est)} (not calibrated: {calibration_info['reason']})"),
            "confidence_summary": confidence_summary(confidence),
            "confidence_calibration": calibration_info,
        },
        "model": model_info,
        "dask": dist_info,
        "backtest": backtest_result.summary if backtest_result is not None else None,
        "privacy": ({"pseudonymised": True, "scheme": PSEUDONYM_SCHEME,
                     "key_kept_in": "model/model.json (data.privacy)" if model_kwargs is not None else None}
                    if key is not None else {"pseudonymised": False}),
        "config": config.to_dict(),
        "timings": {},
    }

    # -- write -----------------------------------------------------------------------------
    with timer.stage("write") as st:
        feature_out = feats.frame.reset_index()
        excluded = cleaned.excluded if cleaned.excluded is not None else no_exclusions()
        segments_out = segments
        if key is not None:  # every id written becomes its pseudonym; the result keeps the ids
            segments_out = pseudonymise(segments, key)  # features hold the same customers in the same order
            feature_out = _backend.to_host(feature_out).assign(customer_id=segments_out["customer_id"].to_numpy())
            excluded = pseudonymise(excluded, key)
        t_write = time.perf_counter()

        def write_metrics(path: Path) -> None:
            # written last: its timings cover everything but moving the files into place
            metrics["timings"] = {k: round(v, 4) for k, v in timer.timings.items()}
            metrics["timings"]["write"] = round(time.perf_counter() - t_write, 4)
            metrics["timings"]["total"] = round(time.perf_counter() - t_start, 4)
            path.write_text(to_json(metrics))

        files = write_outputs(
            out_dir,
            {
                "segments.parquet": lambda p: segments_out.to_parquet(p, index=False),
                "features.parquet": lambda p: feature_out.to_parquet(p, index=False),
                "excluded.csv": lambda p: write_csv(excluded, p),
                "profiles.csv": lambda p: write_csv(profiles, p, float_format="%.6g"),
                "comparison.csv": lambda p: write_csv(comparison, p, float_format="%.6g"),
                **(
                    {"sensitivity.csv": lambda p: write_csv(sensitivity, p, float_format="%.6g")}
                    if sensitivity is not None
                    else {}
                ),
                "insights.json": lambda p: p.write_text(to_json(insights)),
                **(
                    {"backtest.csv": lambda p: write_csv(backtest_result.table, p, float_format="%.6g"),
                     "backtest.json": lambda p: p.write_text(to_json(backtest_result.summary))}
                    if backtest_result is not None
                    else {}
                ),
                **({"model": lambda p: save_model(p, **model_kwargs)} if model_kwargs is not None else {}),
                "metrics.json": write_metrics,
            },
            # in the same commit, the previous run's files that describe other segments go:
            # its model when none is saved now, its sensitivity table, its backtest, and its
            # report (the report stage writes this run's; a failed or skipped one leaves none)
            remove=(("model",) if model_kwargs is None else ()) + (
                ("sensitivity.csv",) if sensitivity is None else ()) + (
                ("backtest.csv", "backtest.json") if backtest_result is None else ()) + ("report.html", "plots"),
        )
        st["detail"] = str(out_dir)

    # -- report ----------------------------------------------------------------------------
    if not config.report:
        return RunResult(out_dir, metrics, segments, profiles, feats.frame, be, files)
    with timer.stage("report") as st:
        files += write_report(out_dir, insights, progress.note, umap=config.embed.method == "umap")
        st["detail"] = f"{out_dir / 'report.html'} and {len(list((out_dir / 'plots').glob('*.png')))} plots"
    # metrics.json again, now that its timings can include the report
    metrics["timings"]["report"] = round(timer.timings["report"], 4)
    metrics["timings"]["total"] = round(time.perf_counter() - t_start, 4)
    write_outputs(out_dir, {"metrics.json": lambda p: p.write_text(to_json(metrics))})
    return RunResult(out_dir, metrics, segments, profiles, feats.frame, be, files)


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
        st["detail"] = f"{data.rows_read:,} rows of {data.schema.name} from {_files_label(data.files, source)}"
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
    """(save_model's estimator arguments, or None; the ``model`` entry of metrics.json)."""
    est = fit.estimator
    reason = None
    if embedding is not None and (embedding["method"] != "pca" or method == "consensus"):
        reason = (f"the segments were found in a {embedding['method']} embedding, which a saved model cannot hold "
                  "yet (a PCA one it can, for a single method)")
    elif method not in SAVABLE_METHODS:
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
    return kwargs, {"saved": True, "folder": "model", "method": method}


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
            data["confidence"] = {"kind": "margin", "within": float(within),
                                  "space": "latent" if space is not Z else "features"}
            arrays.update(confidence_centers=_backend.to_host(centers), confidence_rows=rows.astype(np.int32))
    if calibration is not None:
        data["confidence"]["calibration"] = calibration.to_json()
    return {"data": data, "data_arrays": arrays}


def write_report(
    out_dir: Path, insights: dict[str, Any] | None = None, note: Any = None, umap: bool = False
) -> list[Path]:
    """Build ``plots/`` and ``report.html`` from a run's output folder (both replaced together).

    The UMAP projection is left out unless ``umap`` (umap-learn takes 30-50 s on a CPU,
    most of it compiling; the page lists it as left out, with how to add it). Without
    matplotlib the report is written without plots (``note`` says so).
    """
    from .errors import DeviceError
    from .report.html import report_html
    from .report.plots import PLOTS, make_plots

    try:
        plots = make_plots(out_dir, insights, include=[p for p in PLOTS if umap or p != "umap"])
        if not umap:
            plots["umap"] = "left out by default (umap-learn takes 30-50 s on a CPU); add it with gpuseg report OUT_DIR --umap"
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


def _files_label(files: list[str], source: str) -> str:
    if not files:
        return source
    return files[0] if len(files) == 1 else f"{len(files)} files"


def _align_truth(truth: pd.Series | None, index: Any, be: _backend.Backend):
    """Truth labels as integer codes aligned to the feature rows, and a mask of known rows."""
    if truth is None:
        return None, None, None
    ids = _backend.to_host(index)
    aligned = truth.reindex(pd.Index(ids))
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
                              relevance=on, random_state=0)  # a property of the data, not of --seed
    if not weights.kept:
        raise ConfigError("no feature is left to define the segments ([features] describe_only lists them all, or "
                          "every feature is near-constant)")
    return weights


VALUE_COLUMNS = ("p_alive", "expected_purchases", "predicted_clv")


def _add_value(segments: pd.DataFrame, cleaned: Any, config: RunConfig, be: _backend.Backend) -> dict[str, Any]:
    """``p_alive, expected_purchases, predicted_clv`` per customer into ``segments`` (NaN for
    customers without a purchase); returns the ``metrics.json`` entry."""
    vc = config.value
    if not vc.enabled:
        info = {"status": "off", "reason": "[value] enabled = false"}
    elif config.dask.cluster and cleaned.purchases is None:
        info = {"status": "skipped", "reason": "no purchase histories came back from the Dask workers"}
    else:
        from .segments.value import customer_value, purchase_history

        history = (cleaned.purchases if cleaned.purchases is not None  # from the Dask workers
                   else purchase_history(cleaned.frame, cleaned.kind, cleaned.reference_time))
        values, info = customer_value(history, be.xp, vc.horizon_days, vc.discount_rate, vc.margin)
        values = values.reindex(_backend.to_host(segments["customer_id"]).to_numpy())
        for col in VALUE_COLUMNS:
            segments[col] = values[col].to_numpy()
        return info
    for col in VALUE_COLUMNS:
        segments[col] = np.nan
    return info


def _value_profiles(profiles: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """The segment means of the lifetime-value columns (over customers with a purchase) and
    each segment's share of the total predicted value, added to the profiles."""
    seg = _backend.to_host(segments[["segment", *VALUE_COLUMNS]])
    if seg["predicted_clv"].isna().all():
        return profiles
    means = seg.groupby("segment")[list(VALUE_COLUMNS)].mean()
    total = seg["predicted_clv"].sum()
    means["predicted_clv_share"] = seg.groupby("segment")["predicted_clv"].sum() / total if total > 0 else np.nan
    return profiles.merge(means.add_prefix("mean_").rename(columns={"mean_predicted_clv_share":
                                                                     "predicted_clv_share"}),
                          left_on="segment", right_index=True, how="left")


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
