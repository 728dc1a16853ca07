"""Command line: ``python -m gpuseg run | backtest | generate | report | assign | update | migrate``.

Argument parsing, the progress display and turning user errors into one line on stderr
with exit code 2. No computation happens here.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

from . import __version__
from .errors import GpusegError, os_error_line, printable

__all__ = ["main", "ConsoleProgress"]

_STAGE_WIDTH = 9


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _run_options(r: argparse.ArgumentParser) -> None:
    """The options of ``run`` (``backtest`` takes them too)."""
    r.add_argument("--input", metavar="PATH", help="CSV/Parquet file, glob or folder of parts (gzip CSV too); "
                   "omit for the built-in synthetic data set")
    r.add_argument("--format", choices=["auto", "events", "orders"], default=None,
                   help="input shape (default: auto, from the columns)")
    r.add_argument("--rename", metavar="OLD=NEW", nargs="+", action="extend", default=None,
                   help="map your column names to gpuseg's, e.g. CustomerID=customer_id")
    r.add_argument("--out", metavar="DIR", default=None, help="output folder (default: gpuseg-out)")
    r.add_argument("--device", choices=["auto", "gpu", "cpu"], default=None,
                   help="where to compute (default: auto: the GPU when CUDA and RAPIDS are there)")
    r.add_argument("--currency", metavar="CODE", default=None,
                   help="an order log with a currency column of several currencies: keep this one's orders "
                   "(e.g. EUR); without it such a log is refused")
    r.add_argument("--methods", metavar="LIST", default=None,
                   help="comma-separated clustering methods, or all (default: adaptive_kmeans)")
    r.add_argument("--k", metavar="K", default=None, help="segments: a range like 2-12 (the default) or one k like 6")
    r.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    r.add_argument("--config", metavar="FILE", help="TOML config file; command-line options override it")
    r.add_argument("--truth", metavar="FILE", help="known segment per customer (CSV/Parquet): adds ARI and NMI")
    r.add_argument("--customers", type=int, default=None, metavar="N",
                   help="size of the built-in synthetic data set (default: 20000)")
    r.add_argument("--embed", choices=["none", "pca", "umap", "autoencoder"], default=None,
                   help="cluster an embedding of the scaled features (scores stay on the features; "
                   "default: none); size and parameters in the config's [embed] table")
    r.add_argument("--select", metavar="METHOD", default=None,
                   help="use this method's segmentation whatever the ranking (it must be in --methods)")
    r.add_argument("--threads", type=int, metavar="N", default=None,
                   help="CPU threads of OpenMP (scikit-learn) and torch, set once for the run (default, or 0: the "
                        "usable cores); BLAS always on 1")
    r.add_argument("--stability", type=int, metavar="N", default=None,
                   help="half-sample refits per method for the stability score (default 10; 0 skips it)")
    r.add_argument("--sensitivity", action="store_true", default=None,
                   help="also score every method across its settings (k; eps/min_samples for DBSCAN) "
                   "into sensitivity.csv")
    r.add_argument("--no-report", dest="report", action="store_false", default=None,
                   help="skip plots/ and report.html (gpuseg report OUT_DIR builds them later)")
    r.add_argument("--cluster", metavar="ADDR", default=None,
                   help="load, clean and engineer features on Dask: local (a LocalCUDACluster on GPUs, else a "
                   "LocalCluster of processes) or a scheduler address tcp://host:8786")
    r.add_argument("--workers", type=int, metavar="N", default=None, help="workers of a local Dask cluster")
    r.add_argument("--memory-limit", metavar="SIZE", default=None,
                   help="memory limit per worker of a local Dask cluster, e.g. 4GB (default: auto)")
    r.add_argument("--anonymize", action="store_true", default=None,
                   help="pseudonymous customer ids (HMAC-SHA-256) in every output and the report; the key stays "
                   "in model/, so assign and migrate give the same pseudonyms")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress display")



def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="gpuseg",
        description="Customer segmentation for e-commerce event and order logs, on GPU (RAPIDS) or CPU.",
    )
    p.add_argument("--version", action="version", version=f"gpuseg {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    _add_run_commands(sub)
    _add_data_commands(sub)
    _add_model_commands(sub)
    return p


def _add_run_commands(sub: Any) -> None:
    """``run`` and ``backtest``."""
    r = sub.add_parser(
        "run",
        help="segment customers (no arguments: the built-in synthetic data set)",
        description="Load logs, clean, engineer per-customer features, cluster over a k range, evaluate, "
        "choose a segmentation, name and explain its segments, and write segments.parquet, features.parquet, "
        "excluded.csv, profiles.csv, comparison.csv, insights.json, metrics.json, plots/ and report.html.",
    )
    _run_options(r)

    b = sub.add_parser(
        "backtest",
        help="fit on the data up to a date, score the segments against what customers did after it",
        description="Run as `run` does on the rows up to --until only, then compare with the rows after it: "
        "holdout revenue and repeat rate per segment, the share of holdout revenue variance the segments "
        "explain (eta squared) beside RFM-quintile segments and K-means on log RFM, and lifetime value "
        "calibration by decile. Writes run's files plus backtest.csv and backtest.json; the report gets a "
        "Backtest section.",
    )
    b.add_argument("--until", metavar="DATE", required=True,
                   help="last day (or time) of the calibration period, e.g. 1997-09-30 (included)")
    b.add_argument("--holdout-end", metavar="DATE", default=None,
                   help="last day of the holdout (default: the end of the data)")
    _run_options(b)


def _add_data_commands(sub: Any) -> None:
    """``generate`` and ``report``."""
    g = sub.add_parser(
        "generate",
        help="write synthetic REES46-schema event logs with planted personas",
        description="Synthetic e-commerce events in the REES46 / Open CDP schema, with the planted persona "
        "of every customer in the truth file.",
    )
    g.add_argument("--scenario", default=None, metavar="NAME",
                   help="a planted scenario of the quality benchmark (personas, three, ten, imbalanced, overlap, "
                   "noise, small, large, orders, orders_dates, nonlinear); default: the built-in personas")
    g.add_argument("--customers", type=int, default=None, metavar="N",
                   help="number of customers (default: the scenario's size, 20000 without one)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--days", type=int, default=None,
                   help="length of the time window (default: 61; a scenario has its own)")
    g.add_argument("--start", default="2019-10-01", help="first day (default: 2019-10-01)")
    g.add_argument("--out", required=True, metavar="FILE", help=".csv, .csv.gz or .parquet")
    g.add_argument("--truth", metavar="FILE", help="where to write each customer's planted persona: user_id,persona "
                   "for event scenarios, customer_id,persona for order ones (.csv or .parquet)")
    g.add_argument("--force", action="store_true", help="replace existing files")

    rep = sub.add_parser(
        "report",
        help="rebuild report.html and plots/ from a run's output folder",
        description="Rebuild the self-contained report.html (and the PNG plots in plots/) from the files "
        "a gpuseg run wrote: metrics.json, segments.parquet, features.parquet, comparison.csv, "
        "profiles.csv and insights.json.",
    )
    rep.add_argument("out_dir", metavar="OUT_DIR", help="the output folder of a gpuseg run")
    rep.add_argument("--umap", action="store_true",
                     help="add the UMAP projection plot (needs umap-learn; 30-50 s on a CPU)")


def _model_input(q: argparse.ArgumentParser) -> None:
    """The options of every command that applies a saved model to new data."""
    q.add_argument("--model", required=True, metavar="DIR", help="a model folder (OUT_DIR/model of gpuseg run)")
    q.add_argument("--input", required=True, metavar="PATH", help="CSV/Parquet file, glob or folder of parts")
    q.add_argument("--rename", metavar="OLD=NEW", nargs="+", action="extend", default=None,
                   help="map your column names to gpuseg's (added to the model's own)")
    q.add_argument("--device", choices=["auto", "gpu", "cpu"], default="auto",
                   help="where to compute (default: auto)")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def _add_model_commands(sub: Any) -> None:
    """``assign``, ``update`` and ``migrate``."""
    a = sub.add_parser(
        "assign",
        help="place new customers into a saved model's segments",
        description="Compute the model's features for the customers in PATH (with the model's cleaning and "
        "feature settings, not the new data's statistics), label them with the model and write customer_id, "
        "segment, segment_name, confidence, low_confidence, out_of_distribution, ood_feature, p_alive, "
        "expected_purchases and predicted_clv (NaN where the model holds no lifetime-value fit) to FILE.",
    )
    _model_input(a)
    a.add_argument("--out", required=True, metavar="FILE", help=".parquet, .csv or .csv.gz")
    a.add_argument("--as-of", metavar="DATE", default=None,
                   help="measure recency from this day's end (or from 'YYYY-MM-DD HH:MM'); later events are left "
                   "out (default: the data's last event)")
    a.add_argument("--force", action="store_true", help="replace FILE if it exists")

    u = sub.add_parser(
        "update",
        help="refresh a saved model incrementally with new data (segment ids and names kept)",
        description="Mini-batch steps from the saved centres (K-means family, the deep methods' "
        "latent centres), incremental EM for GMM, every member of a vote consensus; new centres are matched "
        "to the old by the Hungarian method. The new version goes to a new folder beside the old one.",
    )
    _model_input(u)
    u.add_argument("--out", metavar="DIR2", default=None,
                   help="folder of the new version (default: beside the model, DIR-v<version>)")
    u.add_argument("--batch-size", type=int, default=1024, metavar="N", help="mini-batch size (default 1024)")
    u.add_argument("--seed", type=int, default=0, help="order of the mini-batches (default 0)")

    m = sub.add_parser(
        "migrate",
        help="follow customers across time windows with a saved model: transitions, movers, drift",
        description="Cut PATH into time windows, segment each with the model, and write migration.csv "
        "(segment-to-segment transitions per window pair), movers.parquet, windows.csv, drift.csv "
        "(population stability index per feature), migration.json and migration.html with a Sankey plot.",
    )
    _model_input(m)
    m.add_argument("--window", metavar="LENGTH", default=None, help="window length: 30d, 4w or 12h")
    m.add_argument("--windows", metavar="RANGES", default=None,
                   help="explicit windows: FIRST..LAST days, comma-separated (2019-10-01..2019-10-31,...)")
    m.add_argument("--out", metavar="DIR", default="gpuseg-migration",
                   help="output folder (default: gpuseg-migration)")


class ConsoleProgress:
    """Stage-by-stage progress on a stream (live on a terminal, one line per stage otherwise)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._t0 = time.perf_counter()
        self._last = 0.0
        self.threads_note = ""  # the run's device line adds it (a capped --threads)

    def _write(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text)
            self.stream.flush()

    # texts from the data (file names, headers, category names) pass through printable():
    # only gpuseg's own "\r\033[K" drives the terminal

    def run_started(self, backend: Any, config: Any, methods: tuple[str, ...]) -> None:
        from . import backend as _backend

        n = _backend.RUN_THREADS
        capped = f"; {self.threads_note}" if self.threads_note else ""  # --threads above the usable cores
        threads = f" ({n} CPU thread{'s' if n != 1 else ''}{capped})" if n else ""
        self._write(f"gpuseg {__version__} running on "
                    f"{_where({'backend': backend.name, 'label': backend.device_label})}{threads}\n")

    def stage_started(self, stage: str, detail: str = "") -> None:
        if self.live:
            self._write(f"\r  {stage:<{_STAGE_WIDTH}} ...")

    def stage_progress(self, stage: str, done: int, total: int, detail: str = "") -> None:
        if not self.live or total <= 0:
            return
        now = time.perf_counter()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        width = 20
        filled = int(width * done / total)
        bar = "#" * filled + "-" * (width - filled)
        self._write(f"\r  {stage:<{_STAGE_WIDTH}} [{bar}] {done}/{total} {printable(detail):<24}")

    def stage_finished(self, stage: str, seconds: float, detail: str = "") -> None:
        prefix = "\r\033[K" if self.live else ""
        self._write(f"{prefix}  {stage:<{_STAGE_WIDTH}} {seconds:7.2f} s  {printable(detail)}\n")

    def clear_line(self) -> None:
        """Erase a live progress line (before an error message, say)."""
        if self.live:
            self._write("\r\033[K")

    def note(self, text: str) -> None:
        prefix = "\r\033[K" if self.live else ""
        self._write(f"{prefix}  note: {printable(text)}\n")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return str(v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _where(device: dict, dask: dict | None = None) -> str:
    label = device["label"]
    where = label if device["backend"] == "cpu" else f"GPU, {label}"
    if not dask:
        return where
    # load, clean and features ran on the workers; the rest in this process
    local = dask.get("cluster") == "local"
    return (f"{dask.get('workers', '?')} Dask worker(s) ({'local' if local else dask.get('cluster')}: load, clean, "
            f"features{', K-means' if dask.get('kmeans') == 'workers' else ''}) and {where}")


def print_summary(result: Any, out: TextIO) -> None:
    """Scores (per k for one method, per method for several), the choice, segment sizes, output."""
    m = result.metrics
    has_truth = m["evaluation"].get("truth") is not None
    chosen = m["chosen"]
    methods = m["methods"]
    if len(methods) == 1:
        method, mm = next(iter(methods.items()))
        _print_sweep(method, mm, has_truth, out)
    else:
        _print_comparison(m, has_truth, out)
    ev = m["evaluation"]["silhouette"]
    if not ev["exact"]:
        out.write(f"(silhouette on a fixed-seed sample of {ev['sample_size']:,} customers)\n")
    best = methods[chosen["method"]]
    extra = ""
    if has_truth and best.get("ari") is not None:
        truth = m["evaluation"]["truth"]
        unmatched = truth.get("customers_unmatched", 0)
        extra = f", ARI {best['ari']:.3f} against the known segments" + (
            f" of {truth['customers_matched']:,} customers ({unmatched:,} not in the truth file)" if unmatched else "")
    by = "by --select" if chosen.get("by") == "--select" else "by the ranking" if len(methods) > 1 else ""
    out.write(
        f"\nChosen{' ' + by if by else ''}: {chosen['method']} with k={chosen['k']} "
        f"(silhouette {best['silhouette']:.3f}, Davies-Bouldin {best['davies_bouldin']:.3f}{extra})\n"
    )
    out.write(_k_hint(best, chosen["k"], "this backtest's numbers" if m.get("backtest") else "`gpuseg backtest`"))
    conf = chosen.get("confidence_summary")
    if conf:
        out.write(
            f"Confidence ({chosen['confidence']}): mean {conf['mean']:.2f}; "
            f"{conf['low_count']:,} customers ({conf['low_share']:.1%}) below {conf['threshold']:g} are flagged "
            f"low_confidence\n"
        )
    prof = result.profiles
    show = [c for c in ("recency_days", "frequency", "monetary", "views", "cart_abandonment", "price_index")
            if c in prof.columns]
    headers = ["segment", "customers", "share"] + show
    rows = [
        [str(r["segment_name"]), f"{int(r['size']):,}", f"{r['share']:.1%}"] + [_fmt(float(r[c]), 2) for c in show]
        for _, r in prof.iterrows()
    ]
    out.write("\nSegments (feature means):\n" + _table(headers, rows) + "\n")
    t = m["timings"]
    out.write(
        f"\nRan on {_where(m['device'], m.get('dask'))} in {t['total']:.1f} s; "
        f"{m['data']['rows_used']:,} of {m['data']['rows_read']:,} rows used, {m['data']['customers']:,} customers"
        + (f", {n_out:,} excluded (excluded.csv says why)" if (n_out := m["data"].get("customers_excluded", 0)) else "")
        + ".\n"
    )
    out.write(f"Output: {result.out_dir}/ ({', '.join(p.name for p in result.files)})\n")
    if (result.out_dir / "report.html").is_file():
        out.write(f"Report: {result.out_dir / 'report.html'} (open it in any browser; works offline)\n")


def _k_hint(mm: dict, k: int, evidence: str = "`gpuseg backtest`") -> str:
    """A line that puts a k from the sweep in its place ("" where k was given, chosen by
    density, or by a BIC that settled inside the range)."""
    swept = [r["k"] for r in mm.get("sweep") or [] if r.get("status") == "ok"]
    if (mm.get("k_choice") or {}).get("at_range_end"):
        return (f"k={k} is the largest k tried and the mixture's BIC was still falling there: it found no k in "
                f"{swept[0]}..{swept[-1]}, so these are not segments it found; compare --methods adaptive_kmeans\n")
    if mm.get("k_rule") != "elbow" or len(swept) < 2:
        return ""
    around = " and ".join(f"--k {j}" for j in (k - 1, k + 1) if j in swept) or "another --k"
    if (mm.get("k_choice") or {}).get("knee") is None:
        return (f"k={k} has the best composite of the scores: the inertia has no elbow over k={swept[0]}..{swept[-1]}, "
                f"so read it as a starting point; compare {around}, and {evidence}\n")
    null = (" (over 2..12 the elbow lands near 4-7 even in data without segments)"
            if (swept[0], swept[-1]) == (2, 12) else "")
    return (f"k={k} is where the log inertia bends, a starting point rather than a finding{null}: compare {around}, "
            f"and {evidence} (docs/data-and-outputs.md, 'Choosing k')\n")


def _print_sweep(method: str, mm: dict, has_truth: bool, out: TextIO) -> None:
    if mm["status"] != "ok":
        out.write(f"\n{method} failed: {mm['reason']}\n")
        return
    headers = ["k", "silhouette", "davies_bouldin", "calinski_harabasz", "inertia"]
    if mm["k_rule"] == "elbow":
        headers.append("composite")
    if mm["k_rule"] == "bic":
        headers.append("bic")
    if mm["k_rule"] == "density":
        headers.append("unassigned")
    headers.append("fit_s")
    if has_truth:
        headers += ["ari", "nmi"]
    rows = []
    for i, r in enumerate(mm["sweep"]):
        mark = "*" if i == mm["chosen_index"] else " "
        if r["status"] != "ok":
            rows.append([f"{mark}{r['k']}", "failed"] + ["-"] * (len(headers) - 2))
            continue
        cells = [f"{mark}{r['k']}", _fmt(r["silhouette"]), _fmt(r["davies_bouldin"]), _fmt(r["calinski_harabasz"], 1),
                 _fmt(r["inertia"], 1)]
        if mm["k_rule"] == "elbow":
            cells.append(_fmt(r.get("composite")))
        if mm["k_rule"] == "bic":
            cells.append(_fmt(r.get("bic"), 1))
        if mm["k_rule"] == "density":
            cells.append(f"{r['noise_share']:.1%}")
        cells.append(_fmt(r["fit_seconds"], 2))
        if has_truth:
            cells += [_fmt(r.get("ari")), _fmt(r.get("nmi"))]
        rows.append(cells)
    out.write(f"\nScores by k for {method} (* = chosen; {mm['k_choice']['reason']}):\n")
    out.write(_table(headers, rows) + "\n")
    out.write(_failed_ks(mm["sweep"]))


def _failed_ks(sweep: list[dict]) -> str:
    """A line per reason the sweep's failed k gave ("k=5..12 failed: found 4 segments ..."), so
    that "failed" in the table is never left unexplained."""
    by_reason: dict[str, list[int]] = {}
    for r in sweep:
        if r["status"] != "ok":
            reason = re.sub(r" for k=\d+", "", str(r.get("reason") or "no reason recorded"))
            by_reason.setdefault(reason, []).append(int(r["k"]))
    lines = []
    for reason, ks in by_reason.items():
        run_of_ks = len(ks) > 2 and ks == list(range(ks[0], ks[-1] + 1))
        shown = f"{ks[0]}..{ks[-1]}" if run_of_ks else ", ".join(map(str, ks))
        lines.append(f"  k={shown} failed: {reason}\n")
    return "".join(lines)


def _print_comparison(m: dict, has_truth: bool, out: TextIO) -> None:
    methods, chosen = m["methods"], m["chosen"]["method"]
    position = {r["method"]: r for r in m.get("ranking", [])}
    headers = ["method", "k", "silhouette", "davies_bouldin", "calinski_harabasz", "stability", "unassigned",
               "fit_s"]
    if has_truth:
        headers += ["ari", "nmi"]
    headers += ["mean_rank", "checks"]
    rows = []
    failed = []
    for name in sorted(methods, key=lambda n: position[n]["position"] if n in position else 1e9):
        mm = methods[name]
        mark = "*" if name == chosen else " "
        if mm["status"] != "ok":
            rows.append([f"{mark}{name}", "-", "failed"] + ["-"] * (len(headers) - 3))
            failed.append(f"  {name}: {mm['reason']}")
            continue
        stab = mm.get("stability") or {}
        stab_text = "-" if stab.get("mean") is None else f"{stab['mean']:.3f}\u00b1{stab['std']:.2f}"
        cells = [f"{mark}{name}", str(mm["k"]), _fmt(mm["silhouette"]), _fmt(mm["davies_bouldin"]),
                 _fmt(mm["calinski_harabasz"], 1), stab_text, f"{mm.get('noise_share', 0.0):.1%}",
                 _fmt(mm["total_fit_seconds"], 2)]
        if has_truth:
            cells += [_fmt(mm.get("ari")), _fmt(mm.get("nmi"))]
        cells.append(_fmt(position[name]["mean_rank"], 2) if name in position else "not ranked")
        cells.append((position[name]["checks"] or "passed") if name in position else "-")
        rows.append(cells)
    out.write("\nMethods compared, chosen first (* = chosen; each at its own k; fit_s over all its fits):\n")
    out.write(_table(headers, rows) + "\n")
    out.write(f"Rule: {m['evaluation']['method_rule']}.\n")
    if failed:
        out.write("Failed on these data:\n" + "\n".join(failed) + "\n")


def _cmd_run(args: argparse.Namespace, backtest: Any = None) -> int:
    from .config import build_config, load_config_file
    from .pipeline import run

    from .errors import ConfigError

    file_values = load_config_file(args.config) if args.config else None
    dask_file = (file_values or {}).get("dask")
    clustered = args.cluster or (isinstance(dask_file, dict) and dask_file.get("cluster"))
    for option, value in (("--workers", args.workers), ("--memory-limit", args.memory_limit)):
        if value is not None and not clustered:
            raise ConfigError(f"{option} sets up a Dask cluster; add --cluster local (or a scheduler address)")
    config = build_config(
        file_values,
        input=args.input,
        format=args.format,
        rename=args.rename,
        out=args.out,
        device=args.device,
        methods=args.methods,
        k=args.k,
        seed=args.seed,
        truth=args.truth,
        synthetic_customers=args.customers,
        sensitivity=args.sensitivity,
        report=args.report,
        embed=args.embed,
        select=args.select,
        stability=args.stability,
        currency=args.currency,
        threads=args.threads,
        cluster=args.cluster,
        workers=args.workers,
        memory_limit=args.memory_limit,
        anonymize=args.anonymize,
    )
    if args.customers is not None and config.input:  # it would be ignored (--input or the config file's input)
        raise ConfigError("--customers sizes the built-in data; drop it when you give --input "
                          "(or input in the config file)")
    config, capped = _cap_threads(config)
    progress = ConsoleProgress(quiet=args.quiet)
    progress.threads_note = capped
    try:
        result = run(config, progress, backtest=backtest)
    finally:
        progress.clear_line()
    print_summary(result, sys.stdout)
    if backtest is not None:
        print_backtest(result.metrics["backtest"], sys.stdout, report=(result.out_dir / "report.html").is_file())
    return 0


def _cap_threads(config: Any) -> tuple[Any, str]:
    """``--threads`` (or the config's ``threads``) above the cores this process may use is
    capped at them: more threads than cores only oversubscribe them. Returns the config and
    the note for the device line ("" when not capped)."""
    import dataclasses

    from .pipeline import usable_cores

    cores = usable_cores()
    if not config.threads or config.threads <= cores:
        return config, ""
    note = f"{config.threads} asked for, capped at the {cores} usable core{'s' if cores != 1 else ''}"
    return dataclasses.replace(config, threads=cores), note


def _cmd_backtest(args: argparse.Namespace) -> int:
    from .evaluate.backtest import BacktestPlan, parse_window

    return _cmd_run(args, BacktestPlan(parse_window(args.until, args.holdout_end)))


def print_backtest(bt: dict, out: TextIO, report: bool = True) -> None:
    """The backtest's verdict: eta squared per segmentation and the value calibration."""
    w = bt["window"]
    out.write(f"\nBacktest: fitted up to {w['until']}, held out to {w['holdout_end']} ({w['holdout_days']:g} days); "
              f"{bt['customers_scored']:,} customers scored, {bt['customers_bought_again']:,} bought again"
              + (f"; {bt['new_customers_in_holdout']:,} new customers in the holdout not scored"
                 if bt["new_customers_in_holdout"] else "")
              + (f"; {bt['new_customers_without_purchase']:,} more new ones without a purchase"
                 if bt.get("new_customers_without_purchase") else "") + "\n")
    dropped = w.get("holdout_rows_dropped") or {}
    if dropped:
        out.write("Holdout rows dropped by cleaning: " + ", ".join(f"{r} {n:,}" for r, n in dropped.items()) + "\n")
    rows = [[name, str(v["k"]), _eta(v["eta_squared"]), _eta(v["eta_squared_repeat"])]
            for name, v in bt["segmentations"].items()]
    out.write(_table(["segmentation", "k", "eta2 revenue", "eta2 repeat"], rows) + "\n")
    if bt.get("eta_squared_undefined"):  # nothing varies: no share of it to explain, and not 0
        out.write(bt["eta_squared_undefined"].capitalize() + "\n")
    if bt.get("value"):
        v = bt["value"]
        out.write(f"predicted_clv against holdout revenue: Spearman {_fmt(v['spearman'])}; total predicted "
                  f"{v['total_predicted']:,.0f} against {v['total_actual']:,.0f} spent\n")
    out.write("Per segment and decile: backtest.csv, backtest.json"
              + (", report.html (Backtest)" if report else "") + "\n")


def _eta(v: Any) -> str:
    """An eta squared for the backtest's table; ``undefined`` where nothing varied (NaN, or
    null read back from JSON)."""
    return "undefined" if v is None or (isinstance(v, float) and math.isnan(v)) else _fmt(v)


def _check_one_run(out: Path, shown: str, metrics: dict) -> None:
    """segments.parquet, features.parquet and metrics.json of one run: the same customers
    and segments (a file copied in from another run's folder was drawn beside the rest)."""
    import numpy as np
    import pandas as pd

    from .errors import ConfigError

    try:
        seg = pd.read_parquet(out / "segments.parquet", columns=["customer_id", "segment"])
        feats = (pd.read_parquet(out / "features.parquet", columns=["customer_id"])
                 if (out / "features.parquet").is_file() else None)
    except Exception as exc:  # a file that is not Parquet, or lacks the columns
        raise ConfigError(f"{shown}: segments.parquet or features.parquet cannot be read ({exc})") from None
    customers, k = (metrics.get("data") or {}).get("customers"), (metrics.get("chosen") or {}).get("k")
    found = int(seg.loc[seg["segment"] >= 0, "segment"].nunique())  # -1: unassigned (density methods)
    a = seg["customer_id"].to_numpy()
    b = None if feats is None else feats["customer_id"].to_numpy()
    why = None
    if isinstance(customers, int) and len(seg) != customers:
        why = f"segments.parquet holds {len(seg):,} customers, metrics.json {customers:,}"
    elif isinstance(k, int) and found != k:
        why = f"segments.parquet holds {found} segments, metrics.json k={k}"
    elif b is not None and not (np.array_equal(a, b) or (a.dtype == b.dtype and len(a) == len(b)
                                                         and np.array_equal(np.sort(a), np.sort(b)))):
        why = "segments.parquet and features.parquet hold different customers"
    if why:
        raise ConfigError(f"{shown}: {why}: the folder holds files of different runs; run gpuseg again into it")


def _cmd_report(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from .errors import ConfigError
    from .pipeline import write_report
    from .report.files import check_output_dir, output_lock, recover

    out = Path(args.out_dir).expanduser()
    if not out.is_dir():
        raise ConfigError(f"{args.out_dir}: {'not a folder' if out.exists() else 'no such folder'}; give the output "
                          "folder of a gpuseg run")
    def read_metrics() -> dict:
        try:
            metrics = json.loads((out / "metrics.json").read_text())
        except FileNotFoundError:
            raise ConfigError(f"{args.out_dir}: no metrics.json; give the output folder of a gpuseg run") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.out_dir}/metrics.json: cannot be read ({exc})") from None
        if not isinstance(metrics, dict) or "gpuseg_version" not in metrics:
            raise ConfigError(f"{args.out_dir}/metrics.json was not written by gpuseg")
        return metrics

    read_metrics()  # not a run's folder: refused before the lock file is made in it
    if (out / "plots").exists() or (out / "plots").is_symlink():
        check_output_dir(out / "plots")
    t0 = time.perf_counter()
    with output_lock(out):  # no run is writing the folder; a killed run's half-commit is undone first
        for line in recover(out):
            sys.stderr.write(f"  note: {printable(line)}\n")
        if not (out / "segments.parquet").is_file():
            raise ConfigError(f"{args.out_dir}: segments.parquet is missing")
        _check_one_run(out, args.out_dir, read_metrics())  # the files as recover left them
        write_report(out, None, lambda text: sys.stderr.write(f"  note: {printable(text)}\n"), umap=args.umap)
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    from .backend import cpu_label

    sys.stdout.write(f"Wrote {out / 'report.html'} and {len(plots)} plots in {out / 'plots'}/ "
                     f"in {time.perf_counter() - t0:.1f} s on {cpu_label()} (the report is drawn on the CPU)\n")
    return 0


def _rename_pairs(values: list[str] | None) -> dict[str, str]:
    from .config import _parse_rename

    return dict(_parse_rename(values or []))


def _check_model_arg(model: str) -> None:
    """Refuse ``--model OUT_DIR`` (a run's output folder, whose model is OUT_DIR/model) with
    the folder to give, rather than with "model.json: missing".

    Raises
    ------
    ConfigError
    """
    from .errors import ConfigError

    folder = Path(model).expanduser()
    inner = folder / "model" / "model.json"
    if not (folder / "model.json").exists() and not (folder / "model.json").is_symlink() and inner.is_file():
        raise ConfigError(f"--model {model}: is a run's output folder, not a model folder; give --model "
                          f"{Path(model) / 'model'}")


def _load_for(args: argparse.Namespace, progress: ConsoleProgress, exclude: Any = None,
              listed_in: Any = "excluded.csv", check: Any = None) -> tuple[Any, Any, Any]:
    """(model, backend, cleaned new data), each stage timed on the progress display;
    ``check(model)`` runs before the data are read (refusals that need only the model)."""
    from . import backend as _backend
    from .dynamic import clean_like_model, load_input
    from .io.schemas import read_as
    from .model import load_model

    t0 = time.perf_counter()
    model = load_model(Path(args.model).expanduser())
    if check is not None:
        check(model)
    be = _backend.select(args.device)
    progress._write(f"gpuseg {__version__} running on {_where({'backend': be.name, 'label': be.device_label})}\n")
    progress.stage_finished("model", time.perf_counter() - t0, f"{model.method}, {model.k} segments, "
                            f"{len(model.feature_names)} features")
    _backend.warm_up(be)
    t0 = time.perf_counter()
    rename = _rename_pairs(args.rename)
    loaded = load_input(model, args.input, be, rename, exclude=exclude)
    renamed = {**dict(model.config.get("rename", {})), **rename}
    progress.stage_finished("load", time.perf_counter() - t0,
                            f"{loaded.rows_read:,} rows{read_as(loaded.column_map, renamed)}"
                            + "".join(f"; {n}" for n in loaded.notes))
    t0 = time.perf_counter()
    cleaned = clean_like_model(model, loaded, be)
    from .prep.clean import describe_cleaning

    listed = listed_in() if callable(listed_in) else listed_in  # update's: known once the model is read
    progress.stage_finished("clean", time.perf_counter() - t0, describe_cleaning(cleaned.summary(), listed))
    return model, be, cleaned


def _cmd_assign(args: argparse.Namespace) -> int:
    from .dynamic import (NOT_YET_ACTIVE, assign_frame, check_table_path, excluded_path, prepare, write_excluded,
                          write_table)
    from .io.privacy import key_of_model, pseudonymise
    from .io.readers import resolve_paths

    from .report.files import check_outside

    files, _ = resolve_paths(args.input)
    check_outside(args.out, args.model, "the model folder")
    check_outside(args.out, args.input, "the input folder")
    out = check_table_path(args.out, files, args.force)
    side = excluded_path(out)
    reference = None
    if args.as_of:
        from .dynamic import as_of_time

        reference = as_of_time(args.as_of)
    progress = ConsoleProgress(quiet=args.quiet)
    t_all = time.perf_counter()
    model, be, cleaned = _load_for(args, progress, listed_in=str(side))
    ahead = _as_of_ahead(reference, int(cleaned.reference_time))  # said once, in the summary below
    t0 = time.perf_counter()
    prepared = prepare(model, cleaned, reference)
    listed = prepared.cleaned.excluded  # cleaning's, and --as-of's customers without events before it
    late = 0 if listed is None or not len(listed) else int((listed["reason"] == NOT_YET_ACTIVE).sum())
    progress.stage_finished("features", time.perf_counter() - t0, f"{len(prepared.ids):,} customers"
                            + (f"; {late:,} with no events before --as-of listed in {side}" if late else ""))
    t0 = time.perf_counter()
    frame = assign_frame(model, prepared)
    key = key_of_model(model)
    dt = time.perf_counter() - t0
    progress.stage_finished("assign", dt, f"{len(frame) / max(dt, 1e-9):,.0f} customers/s")
    t0 = time.perf_counter()
    tmp = out.with_name(f".gpuseg-tmp-{out.name}")
    try:
        write_table(pseudonymise(frame, key) if key else frame, tmp)
        tmp.replace(out)
    except OSError as exc:  # name the user's file, not the hidden temporary one
        raise OSError(exc.errno, exc.strerror or str(exc), str(out)) from None
    finally:
        tmp.unlink(missing_ok=True)
    excluded = pseudonymise(listed, key) if key and listed is not None else listed
    n_excluded = write_excluded(excluded, side)
    progress.stage_finished("write", time.perf_counter() - t0, str(out) + (f" and {side}" if n_excluded else ""))
    sizes = frame["segment_name"].value_counts()
    ood = int(frame["out_of_distribution"].sum())
    sys.stdout.write(
        f"Assigned {len(frame):,} customers with {model.method} ({model.k} segments) in "
        f"{time.perf_counter() - t_all:.1f} s on {_where({'backend': be.name, 'label': be.device_label})}: "
        + ", ".join(f"{name} {n:,}" for name, n in sizes.items()) + "\n"
        + f"{ood:,} customers ({ood / max(len(frame), 1):.1%}) out of distribution; "
        + f"{int(frame['low_confidence'].sum()):,} low confidence. Wrote {out}"
        + (" (customer ids pseudonymised with the model's key)" if key else "") + "\n"
        + (f"{n_excluded:,} customers of the input excluded while cleaning"
           + (" or for having no events before --as-of" if args.as_of else "")
           + f": listed with the reason in {side}\n" if n_excluded else "")
        + (ahead + "\n" if ahead else "")
    )
    return 0


def _as_of_ahead(reference: int | None, last_event: int) -> str:
    """A line when ``--as-of`` lies more than a day after the input's last event (a typo in
    the year, or scoring "as of today" on an old extract): recency then counts from it, and
    every customer looks that much less recent. Empty otherwise."""
    if reference is None or reference - last_event <= 86_400:
        return ""
    import pandas as pd

    days = (reference - last_event) / 86_400
    last = pd.Timestamp(last_event, unit="s").strftime("%Y-%m-%d %H:%M")
    return (f"--as-of is {days:,.1f} days after the input's last event ({last}): recency counts from --as-of, "
            f"so every customer looks {days:,.1f} days less recent than at the end of the data")


def _cmd_update(args: argparse.Namespace) -> int:
    import datetime as dt

    from .dynamic import excluded_path, prepare, update_model, write_excluded
    from .errors import ConfigError
    from .io.privacy import key_of_model, pseudonymise
    from .model import save_updated

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if not 0 <= args.seed < 2**32:
        raise ConfigError(f"--seed {args.seed}: give a whole number from 0 to 4294967295")
    progress = ConsoleProgress(quiet=args.quiet)
    model_dir = Path(args.model).expanduser()
    where: dict[str, Any] = {}

    def check(model: Any) -> None:
        where["version"] = int(model.manifest.get("model_version", 1)) + 1
        where["out"] = _updated_out(args.out, model_dir, where["version"], args.input)

    model, be, cleaned = _load_for(args, progress, check=check,
                                   listed_in=lambda: str(excluded_path(where["out"])))
    version, out = where["version"], where["out"]
    t0 = time.perf_counter()
    prepared = prepare(model, cleaned)
    progress.stage_finished("features", time.perf_counter() - t0, f"{len(prepared.ids):,} customers")
    t0 = time.perf_counter()
    arrays, movement, how = update_model(model, prepared.X, batch_size=args.batch_size, seed=args.seed)
    progress.stage_finished("update", time.perf_counter() - t0, how)
    record = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "input": args.input,
              "customers": len(prepared.ids), "how": how, "movement": movement}
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)  # as run makes its --out's folders
    save_updated(model, out, arrays, record)
    key, listed = key_of_model(model), cleaned.excluded
    side = excluded_path(out)
    n_excluded = write_excluded(pseudonymise(listed, key) if key and listed is not None else listed, side)
    progress.stage_finished("write", time.perf_counter() - t0, str(out) + (f" and {side}" if n_excluded else ""))
    headers = ["member", "segment", "moved", "relative", "new_customers"]
    has_member = any(r["member"] for r in movement)
    if not has_member:
        headers = headers[1:]
    rows = []
    for r in movement:
        cells = [str(r["segment_name"] if r["segment_name"] is not None else f"(label {r['label']})"),
                 f"{r['moved']:.4f}", "-" if r["relative"] is None else f"{r['relative']:.1%}",
                 f"{r['new_customers']:,.0f}"]
        rows.append(([r["member"]] if has_member else []) + cells)
    sys.stdout.write(
        "\nCentre movement (in scaled units; relative: over the distance to the nearest other "
        "centre):\n" + _table(headers, rows) + "\n"
        f"\nWrote model version {version} to {out} (segment ids and names kept; {model_dir} unchanged)\n"
        + _moved_far(movement)
    )
    return 0


#: A centre that moved at least this share of the way to the nearest other centre (updates on
#: the same population moved up to about a third in the tests).
FAR_MOVEMENT = 0.5


def _moved_far(movement: list[dict[str, Any]]) -> str:
    """The line for centres that moved at least :data:`FAR_MOVEMENT` of the way to their
    nearest neighbour: the kept names may no longer fit those segments. Empty otherwise."""
    far = [r for r in movement if r.get("relative") is not None and r["relative"] >= FAR_MOVEMENT]
    if not far:
        return ""
    names = ", ".join(f"{r['segment_name'] if r['segment_name'] is not None else r['label']} "
                      f"({r['relative']:.0%})" for r in far)
    return (f"{len(far)} segment(s) moved at least {FAR_MOVEMENT:.0%} of the way to the nearest other one: {names}. "
            "Their names and profiles describe the old customers; check them, or segment afresh with gpuseg run\n")


def _updated_out(out_arg: str | None, model_dir: Path, version: int, input_arg: str | None = None) -> Path:
    """``update --out`` (default: the model folder's name with ``-vN``): a new folder
    outside the model folder, and outside a folder given as ``--input`` (its
    ``NAME.excluded.csv`` beside it would be read as data by the next command)."""
    from .dynamic import excluded_path
    from .errors import ConfigError
    from .report.files import check_outside

    base = model_dir.resolve()
    stem = re.sub(r"-v\d+$", "", base.name)
    out = Path(out_arg).expanduser() if out_arg else base.with_name(f"{stem}-v{version}")
    check_outside(out, model_dir, "the model folder")
    if _read_as_input(excluded_path(out), input_arg):
        where = "" if out_arg else " (the default beside the model)"
        raise ConfigError(f"--out {out}{where}: its list of excluded customers would be inside the input folder "
                          f"{input_arg}, where the next command would read it as data; give --out outside it")
    if out.exists() and out_arg:
        raise ConfigError(f"{out} exists; an updated model goes to a new folder (choose another --out)")
    if out.exists():  # the default name is taken: by an update of this model, or of one since replaced
        raise ConfigError(_default_out_taken(out, model_dir))
    blocked = next((p for p in [out.parent, *out.parent.parents] if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ConfigError(f"--out {out}: {blocked} is a file, not a folder")
    return out


def _read_as_input(path: Path, input_arg: str | None) -> bool:
    """Whether a file at ``path`` would be read as data from ``--input`` (a folder): inside it,
    and not in a folder a gpuseg command wrote (its manifest; the readers skip those)."""
    if not input_arg or not Path(input_arg).expanduser().is_dir():
        return False
    root, p = Path(input_arg).expanduser().resolve(), path.expanduser().resolve()
    if not p.is_relative_to(root):
        return False
    folders = [p.parent, *p.parent.parents]
    return not any((f / ".gpuseg-manifest.json").is_file() for f in folders[:folders.index(root)])


def _default_out_taken(out: Path, model_dir: Path) -> str:
    """Why ``update``'s default folder ``out`` cannot be used: it holds an earlier update of
    this model (its ``model.json`` ``parent.sha256`` is that of ``model_dir``'s), so go on
    from there; or it does not, e.g. an update of a model a later ``run`` replaced."""
    import hashlib
    import json

    def digest(path: Path) -> str | None:
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None

    try:
        parent = json.loads((out / "model.json").read_text(encoding="utf-8")).get("parent") or {}
    except (OSError, ValueError, AttributeError):
        parent = {}
    theirs = parent.get("sha256") if isinstance(parent, dict) else None
    if theirs is not None and theirs == digest(model_dir / "model.json"):
        return (f"{out} exists; an updated model goes to a new folder: this model was updated before, so "
                f"update {out} to go on from that version, or give --out")
    if theirs is not None:
        return (f"{out} exists and is an update of a model that has since been replaced, not of {model_dir}; "
                f"give --out for this model's update, or remove {out}")
    return f"{out} exists and is not an update of {model_dir}; give --out, or move {out} away"


def _migration_out(out_arg: str, model: str) -> Path:
    """``migrate --out``: a new or empty folder, or one migrate wrote (its migration.json),
    outside the model folder."""
    from .errors import ConfigError
    from .report.files import check_outside

    check_outside(out_arg, model, "the model folder")
    out = Path(out_arg).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out_arg}: exists and is not a folder")
    # ours: migrate's summary, or the journal of a commit a killed migrate left (settled next)
    ours = (out / "migration.json").is_file() or any(out.glob(".gpuseg-tmp-*/.journal.json"))
    if out.is_dir() and not ours:
        foreign = next((q.name for q in sorted(out.iterdir()) if not q.name.startswith(".")), None)
        if foreign is not None:
            raise ConfigError(f"--out {out_arg}: holds {foreign}, which gpuseg migrate did not write; give an empty "
                              "or new folder (a folder migrate wrote may be used again)")
    return out


def _cmd_migrate(args: argparse.Namespace) -> int:
    from .dynamic import check_window_options, migrate, outside_windows, parse_windows, write_table
    from .io.privacy import key_of_model, pseudonymise
    from .report.files import output_lock, recover, to_json, write_csv, write_outputs

    out = _migration_out(args.out, args.model)
    check_window_options(args.window, args.windows)  # a wrong --window/--windows fails before the data are read
    progress = ConsoleProgress(quiet=args.quiet)
    t_all = time.perf_counter()
    model, be, cleaned = _load_for(args, progress, listed_in=str(out / "excluded.csv"))
    f = cleaned.frame
    windows = parse_windows(args.window, args.windows, int(f["ts"].min()), int(f["ts"].max()))
    outside = outside_windows(cleaned, windows)
    if outside["rows"]:
        progress.note(f"{outside['rows']:,} rows lie outside every window and are not segmented"
                      + (f"; {outside['customers']:,} customers have no event in any window" if outside["customers"]
                         else ""))
    t0 = time.perf_counter()
    result = migrate(model, cleaned, windows,
                     lambda done, total, detail: progress.stage_progress("windows", done, total, detail),
                     skip_empty=args.window is not None, note=progress.note)
    progress.stage_finished("windows", time.perf_counter() - t0, f"{len(windows)} windows segmented")
    from .report.migration import migration_html, sankey_png

    labels = [w["window"] for w in result.windows]
    summary = {"model": str(Path(args.model).expanduser().resolve()), "method": model.method,
               "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "device": _where({"backend": be.name, "label": be.device_label}),
               "windows": result.windows, "refit_due": result.refit_due, "refit_reason": result.refit_reason,
               "segment_names": model.segment_names, "movers": len(result.movers), "outside_windows": outside}
    t0 = time.perf_counter()
    try:
        png = sankey_png(result.transitions, labels, model.segment_names)
    except GpusegError as exc:
        png = None
        progress.note(f"no Sankey plot: {exc}")
    key = key_of_model(model)
    summary["pseudonymised"] = key is not None
    excluded = cleaned.excluded if cleaned.excluded is not None and len(cleaned.excluded) else None
    summary["customers_excluded"] = 0 if excluded is None else int(len(excluded))
    html = migration_html(summary, result.transitions, result.drift, png)
    windows_frame = pd_windows(result.windows)
    with output_lock(out):  # one writer per folder; a killed run's half-commit undone first
        recover(out)
        write_outputs(out, {
            "migration.csv": lambda p: write_csv(result.transitions, p, float_format="%.6g"),
            "movers.parquet": lambda p: write_table(pseudonymise(result.movers, key) if key else result.movers, p),
            "windows.csv": lambda p: write_csv(windows_frame, p),
            "drift.csv": lambda p: write_csv(result.drift, p, float_format="%.6g"),
            **({"sankey.png": lambda p: p.write_bytes(png)} if png else {}),
            **({"excluded.csv": lambda p: write_csv(pseudonymise(excluded, key) if key else excluded, p)}
               if excluded is not None else {}),
            "migration.html": lambda p: p.write_text(html, encoding="utf-8"),
            "migration.json": lambda p: p.write_text(to_json({**summary, "gpuseg_version": __version__,
                                                               "seconds": round(time.perf_counter() - t_all, 3)})),
        }, remove=() if excluded is not None else ("excluded.csv",))
    progress.stage_finished("write", time.perf_counter() - t0, str(out))
    stay = result.transitions[(result.transitions["from_segment"] == result.transitions["to_segment"])
                              & (result.transitions["from_segment"] >= 0)]["customers"].sum()
    both = result.transitions[(result.transitions["from_segment"] >= 0)
                              & (result.transitions["to_segment"] >= 0)]["customers"].sum()
    sys.stdout.write(
        f"{len(windows)} windows (customers): " + _abbreviate([f"{w['window']} {w['customers']:,}"
                                                             for w in result.windows]) + "\n"
        f"Of {int(both):,} customer-window pairs active in both windows, {int(stay):,} "
        f"({stay / max(both, 1):.1%}) stayed in their segment and {len(result.movers):,} moved.\n"
        f"Refit {'DUE' if result.refit_due else 'not due'}: {result.refit_reason}\n"
        f"Wrote {out}/ (migration.csv, movers.parquet, windows.csv, drift.csv, migration.html"
        f"{', excluded.csv' if excluded is not None else ''}) "
        f"in {time.perf_counter() - t_all:.1f} s on {summary['device']}\n"
    )
    return 0


def _abbreviate(items: list[str], show: int = 6) -> str:
    if len(items) <= show:
        return ", ".join(items)
    return ", ".join(items[: show - 2]) + f", ... ({len(items) - show + 1} more), " + items[-1]


def pd_windows(windows: list[dict]) -> Any:
    import pandas as pd

    rows = []
    for w in windows:
        row = {k: v for k, v in w.items() if k != "segments"}
        row.update({f"segment:{name}": n for name, n in w["segments"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _check_window(start: str, days: int | None) -> None:
    """``generate --start/--days``: a real date, 7 to 3,650 days, ending before 2200."""
    import pandas as pd

    from .errors import ConfigError

    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(start).strip()):  # "03/04/2020": March or April?
            raise ValueError(start)
        first = pd.Timestamp(str(start))
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(f"--start {start}: not a date; write it like 2019-10-01") from None
    if first is pd.NaT or first.year < 1990:
        raise ConfigError(f"--start {start}: give a date from 1990 on")
    if days is not None and not 7 <= days <= 3650:  # the generator's weeks need at least one
        raise ConfigError(f"--days {days}: give 7 to 3650 days")
    tomorrow = pd.Timestamp.now() + pd.Timedelta(days=1)
    last = first + pd.Timedelta(days=61 if days is None else days) if first < tomorrow else first
    if last > tomorrow:
        raise ConfigError(f"--start {start}: the data would reach {last.date()}, after tomorrow; cleaning drops "
                          "events dated in the future as implausible, so end the window by today")


def _generate(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(log, truth, "events" or "orders") of ``gpuseg generate``'s options."""
    if args.scenario is None:
        from .io.synthetic import generate_events

        customers = 20_000 if args.customers is None else args.customers
        days = 61 if args.days is None else args.days
        log, truth = generate_events(customers, seed=args.seed, start=args.start, days=days)
        return log, truth, "events"
    from .io.scenarios import generate_scenario

    log, truth, scenario = generate_scenario(args.scenario, args.customers, seed=args.seed, start=args.start)
    return log, truth, scenario.kind


def _cmd_generate(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .io.synthetic import file_kind, write_events, write_orders, write_truth

    targets = [Path(args.out)] + ([Path(args.truth)] if args.truth else [])
    for t in targets:
        file_kind(t)  # an unsupported suffix fails before anything is written
        if t.exists() and not args.force:
            raise ConfigError(f"{t} exists; use --force to replace it")
        if t.parent and not t.parent.exists():
            raise ConfigError(f"{t}: folder {t.parent} does not exist")
    if args.truth and Path(args.truth).resolve() == Path(args.out).resolve():
        raise ConfigError("--truth and --out must be different files")
    if args.customers is not None and args.customers < 1:
        raise ConfigError(f"--customers must be at least 1, not {args.customers}")
    _check_window(args.start, args.days)
    if args.scenario is not None and args.days is not None:
        raise ConfigError("--days cannot be combined with --scenario (each scenario has its own time window)")
    t0 = time.perf_counter()
    try:
        log, truth, kind = _generate(args)
    except MemoryError:
        how_many = "the default number of" if args.customers is None else f"{args.customers:,}"
        raise ConfigError(f"--customers: not enough memory to generate {how_many} customers here; generate "
                          "fewer (or several files, each with its own --seed)") from None
    what = "orders" if kind == "orders" else "events"
    customers = len(truth)
    gen_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    (write_orders if kind == "orders" else write_events)(log, args.out)
    if args.truth:
        write_truth(truth, args.truth)
    write_s = time.perf_counter() - t1
    n = len(log)
    from .backend import cpu_label

    print(
        f"generated {n:,} {what} for {customers:,} customers on {cpu_label()} in {gen_s:.2f} s "
        f"({n / max(gen_s, 1e-9):,.0f} {what}/s); wrote {args.out} in {write_s:.2f} s"
        + (f" and {args.truth}" if args.truth else "")
    )
    counts = truth["persona"].value_counts()
    print("personas: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


def _passive_openmp() -> None:
    """OpenMP threads that sleep instead of spinning while they wait, unless the user chose.

    Set before scikit-learn loads its OpenMP runtime (the runtime reads it once). Spinning
    threads on shared cores made one adaptive K-means sweep 2.8x slower with 2 threads than
    with passive waiting on a busy 2-core machine (38 s against 13.7 s; 18 s with 1 thread).
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gpuseg`` and the ``gpuseg`` script; returns the exit code."""
    _passive_openmp()
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    restore = _stop_on_signals()
    stdout, sys.stdout = sys.stdout, _PrintableStream(sys.stdout)  # summaries quote the data's names
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "backtest":
            return _cmd_backtest(args)
        if args.command == "generate":
            return _cmd_generate(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command in ("assign", "update", "migrate"):
            _check_model_arg(args.model)  # before any other check reads the folder
        if args.command == "assign":
            return _cmd_assign(args)
        if args.command == "update":
            return _cmd_update(args)
        if args.command == "migrate":
            return _cmd_migrate(args)
        parser.print_help()
        return 0
    except GpusegError as exc:
        msg = " ".join(printable(exc).split())
        sys.stderr.write(f"gpuseg: error: {msg}\n")
        return exc.exit_code
    except _Stopped as exc:
        sys.stderr.write(f"\ngpuseg: stopped by {exc.name}; {_stopped_outputs(exc)}\n")
        return 128 + exc.signum
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"\ngpuseg: interrupted; {_stopped_outputs(exc)}\n")
        return 130
    except MemoryError:
        sys.stderr.write("gpuseg: error: out of memory; try fewer input files, a smaller --k range or --device cpu\n")
        return 1
    except OSError as exc:  # disk full, read-only, permissions: the path and why, no traceback
        sys.stderr.write(f"gpuseg: error: {' '.join(printable(os_error_line(exc)).split())}\n")
        return 2
    finally:
        sys.stdout = stdout
        restore()


class _PrintableStream:
    """A text stream that shows control characters other than newline and tab as ``?``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stopped_outputs(exc: BaseException) -> str:
    """What a stopped command left: the old outputs, or (stopped in the report) the new data
    files without a report."""
    out = getattr(exc, "committed_to", None)
    if out is None:
        return "outputs left as they were before the run"
    return (f"this run's {getattr(exc, 'committed', 'segments and features')} are in {out}, its report is not: "
            f"`gpuseg report {out}` writes it")


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C (the run unwinds, outputs stay all-old)."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


def _stop_on_signals():
    """Turn SIGTERM and SIGHUP into :class:`_Stopped` in the main thread; returns a function
    that puts the previous handlers back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum, frame):
        raise _Stopped(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, stop)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
