"""gpuseg's CPU path against Polars + scikit-learn and a pandas + scikit-learn script, same work.

For each size, generated REES46 events are written once (in ``bench/data/``, gitignored) as
CSV, as the Parquet ``gpuseg generate`` writes, or as ``parquet-plain`` (the same rows with
the text columns as plain strings, see :func:`ensure_data`); then each engine runs in its
own process (so peak memory is its own) on the same file, with the same thread count for
every pool of every engine, set once for the run (``--threads``, default: the usable
cores): OpenMP through threadpoolctl and ``OMP_NUM_THREADS``, Arrow's CPU pool,
``POLARS_MAX_THREADS``; BLAS on 1 thread for every engine, as gpuseg always runs it
(``pipeline.thread_limit``: the products here have a few dozen columns, and OpenBLAS threads
on a busy core stall every call).

Every engine does the same stages, timed separately:

* load + clean + features: the REES46 events of the file, gpuseg's cleaning rules
  (duplicates, missing values, implausible times, unknown event types, negative prices,
  prices capped at the IQR fence on log1p(price)) and the 22 features of the groups rfm,
  funnel, sessions and time;
* scale: log1p on the features with biased skewness above 1 (non-negative, not a share
  or rate), then standardised;
* cluster: K-means (k-means++) for k = 2..10;
* evaluate: silhouette on a fixed-seed sample of 10,000 customers, Davies-Bouldin and
  Calinski-Harabasz for every k.

"End to end" is the sum of those stages; process wall time (imports included) is kept too.

The engines:

* ``gpuseg``: ``gpuseg.pipeline.run`` with report=False, stability 0, feature weighting
  and lifetime value off (the peers have neither); its ``metrics.json`` timings per stage.
  Its segments and write stages (profiles, insights, the output files) run but are left
  out of "end to end", and reported apart.
* ``polars``: one lazy Polars plan (``bench/polars_peer.py``: ``scan_csv`` /
  ``scan_parquet``, filters, ``group_by().agg()``, one ``collect``), then the same
  scikit-learn steps as the script. Polars is a bench-only dependency: ``pip install
  polars``; without it this peer is skipped with a message.
* ``pandas``: the script a data scientist would write in a notebook: ``pd.read_csv`` (or
  ``pd.read_parquet``), the rules with pandas, the features with ``groupby``, then
  scikit-learn ``StandardScaler``, ``KMeans`` with its defaults, ``silhouette_score``.

Each peer's feature table is compared with gpuseg's (same customers, same columns; max
absolute and relative difference printed), so the ratios compare the same work. With
``--repeat N`` the engines run N rounds, the order rotated each round (so load from other
jobs hits all alike); ``uptime`` is printed and recorded before every run; the medians and
their ratios (gpuseg / peer: below 1 means gpuseg is faster) are reported.
Results: a table on stdout and JSON in ``bench/results/``.

    pip install polars                                   # the Polars peer only
    python bench/pipeline.py --sizes 1M,10M --formats csv,parquet --repeat 3 --threads 2
    python bench/pipeline.py --sizes 1M,10M --formats parquet-plain --repeat 3 --threads 1
    python bench/pipeline.py --sizes 1M --formats csv --profile    # cProfile of gpuseg's load+clean+features
    python bench/pipeline.py --sizes 10M,40M --device gpu --no-baseline      # on a GPU machine
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GROUPS = ("rfm", "funnel", "sessions", "time")
K_RANGE = (2, 10)
SIL_SAMPLE = 10_000
EVENTS_PER_CUSTOMER = 50  # about what the generator gives; sizes are matched by customers
ENGINES = ("gpuseg", "polars", "pandas")
LCF = ("load", "clean", "features")
MODEL = ("scale", "cluster", "evaluate")
EARLIEST = "1990-01-01"  # gpuseg's implausible_time rule: before this, or more than a day after now
BOUNDED_PREFIX = "share_"
BOUNDED = ("view_to_cart", "cart_to_purchase", "cart_abandonment")


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * mult)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the engines (run in a child process) --------------------------------------------------


def run_gpuseg(path: str, feat_out: str, device: str, threads: int) -> dict:
    from gpuseg.config import build_config
    from gpuseg.pipeline import run

    with tempfile.TemporaryDirectory() as out:
        cfg = build_config(
            {"features": {"groups": list(GROUPS), "weighting": False},  # the peers weigh nothing
             "value": {"enabled": False},  # nor fit lifetime value
             "evaluate": {"silhouette_exact_max": SIL_SAMPLE, "silhouette_sample": SIL_SAMPLE}},
            input=path, out=out, device=device, k=f"{K_RANGE[0]}-{K_RANGE[1]}", methods="kmeans", seed=0,
            stability=0,  # the peers have no stability step: like for like
            report=False,  # nor a report
            threads=threads,
        )
        t0 = time.perf_counter()
        result = run(cfg)
        total = time.perf_counter() - t0
        Path(out, "features.parquet").replace(feat_out)
    m = result.metrics
    return {
        "stages": {k: v for k, v in m["timings"].items() if k != "total"},
        "run_total": total,
        "customers": m["data"]["customers"],
        "rows": m["data"]["rows_read"],
        "k": m["chosen"]["k"],
        "device": m["device"]["label"],
        "cpu_threads": m["device"]["cpu_threads"],
    }


def skewness(X):
    """Biased Fisher-Pearson skewness per column (gpuseg's ``prep.scale.skewness``)."""
    import numpy as np

    d = X - X.mean(axis=0)
    m2 = (d * d).mean(axis=0)
    m3 = (d * d * d).mean(axis=0)
    return np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)


def model_stages(X, names: list[str], st: dict) -> int:
    """scale, cluster (k = 2..10) and evaluate with scikit-learn, the same for both peers;
    stage seconds into ``st``; returns the k of the best silhouette."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
    from sklearn.preprocessing import StandardScaler

    t = time.perf_counter()
    X = np.array(X, dtype=np.float64, copy=True)
    sk = skewness(X)
    for i, col in enumerate(names):
        if sk[i] > 1 and X[:, i].min() >= 0 and not (col.startswith(BOUNDED_PREFIX) or col in BOUNDED):
            X[:, i] = np.log1p(X[:, i])
    X = StandardScaler().fit_transform(X)
    st["scale"] = time.perf_counter() - t

    t = time.perf_counter()
    fits = {k: KMeans(n_clusters=k, random_state=0).fit(X) for k in range(K_RANGE[0], K_RANGE[1] + 1)}
    st["cluster"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = {
        k: (silhouette_score(X, km.labels_, sample_size=min(SIL_SAMPLE, len(X)), random_state=0),
            davies_bouldin_score(X, km.labels_), calinski_harabasz_score(X, km.labels_))
        for k, km in fits.items()
    }
    st["evaluate"] = time.perf_counter() - t
    return max(scores, key=lambda k: scores[k][0])


def run_polars(path: str, feat_out: str) -> dict:
    import polars as pl
    import sklearn.cluster  # noqa: F401  imported before the clock starts, as gpuseg's warm-up does

    sys.path.insert(0, str(HERE))
    import polars_peer

    st: dict[str, float] = {}
    t = time.perf_counter()
    f = polars_peer.plan(path).collect()
    st["load_clean_features"] = time.perf_counter() - t
    names = list(polars_peer.FEATURES)
    k = model_stages(f.select(names).to_numpy(), names, st)
    f.write_parquet(feat_out)
    return {"stages": st, "customers": f.height, "rows": None, "k": k, "polars": pl.__version__,
            "polars_threads": pl.thread_pool_size()}


def run_pandas(path: str, feat_out: str) -> dict:
    import numpy as np
    import pandas as pd
    import sklearn.cluster  # noqa: F401  imported before the clock starts, as gpuseg's warm-up does

    st = {}
    t = time.perf_counter()
    if path.endswith(".parquet"):
        df = pd.read_parquet(path)
        df["event_time"] = df["event_time"].dt.tz_convert(None)
    else:
        df = pd.read_csv(path)
        df["event_time"] = pd.to_datetime(df["event_time"], format="%Y-%m-%d %H:%M:%S UTC", errors="coerce")
    st["load"] = time.perf_counter() - t

    t = time.perf_counter()
    df = df.drop_duplicates()
    df = df.dropna(subset=["user_id", "event_time", "price", "user_session"])
    latest = pd.Timestamp(int(time.time()) + 86_400, unit="s")
    df = df[df["event_type"].isin(["view", "cart", "remove_from_cart", "purchase"]) & (df["price"] >= 0)
            & (df["price"] < np.inf) & (df["event_time"] >= pd.Timestamp(EARLIEST)) & (df["event_time"] <= latest)]
    lp = np.log1p(df["price"])
    q1, q3 = lp.quantile(0.25), lp.quantile(0.75)
    lo, hi = np.expm1(max(q1 - 3 * (q3 - q1), 0.0)), np.expm1(q3 + 3 * (q3 - q1))
    outside = ((df["price"] < lo) & (df["price"] > 0)) | (df["price"] > hi)  # capped at the fence, not dropped
    df["price"] = df["price"].where(~outside, df["price"].clip(lo, hi))
    st["clean"] = time.perf_counter() - t

    t = time.perf_counter()
    ref = df["event_time"].max()
    df["is_view"] = df["event_type"] == "view"
    df["is_cart"] = df["event_type"] == "cart"
    df["is_remove"] = df["event_type"] == "remove_from_cart"
    df["is_purchase"] = df["event_type"] == "purchase"
    df["revenue"] = df["price"].where(df["is_purchase"], 0.0)
    hour = df["event_time"].dt.hour
    parts = {"midnight": (0, 6), "morning": (6, 12), "afternoon": (12, 17), "evening": (17, 21), "night": (21, 24)}
    for name, (lo, hi) in parts.items():
        df["t_" + name] = (hour >= lo) & (hour < hi)
    df["t_weekend"] = df["event_time"].dt.dayofweek >= 5
    g = df.groupby("user_id")
    c = g.agg(first=("event_time", "min"), last=("event_time", "max"), events=("event_type", "size"),
              views=("is_view", "sum"), carts=("is_cart", "sum"), removals=("is_remove", "sum"),
              purchases=("is_purchase", "sum"), revenue=("revenue", "sum"),
              **{f"t_{n}": (f"t_{n}", "sum") for n in [*parts, "weekend"]})
    s = df.groupby(["user_id", "user_session"], observed=True).agg(
        start=("event_time", "min"), end=("event_time", "max"), cart=("is_cart", "max"), buy=("is_purchase", "max"))
    s["minutes"] = (s["end"] - s["start"]).dt.total_seconds() / 60
    s["abandoned"] = s["cart"] & ~s["buy"]
    s = s.groupby("user_id").agg(sessions=("start", "size"), minutes=("minutes", "sum"),
                                 cart_sessions=("cart", "sum"), abandoned=("abandoned", "sum"), orders=("buy", "sum"))
    c = c.join(s)
    f = pd.DataFrame(index=c.index)
    f["recency_days"] = (ref - c["last"]).dt.total_seconds() / 86400
    f["frequency"] = c["orders"]
    f["monetary"] = c["revenue"]
    f["tenure_days"] = (c["last"] - c["first"]).dt.total_seconds() / 86400
    f["avg_order_value"] = (c["revenue"] / c["orders"]).fillna(0)
    since = ((ref - c["first"]).dt.total_seconds() / 86400).clip(lower=30)
    f["spend_rate_annualised"] = c["revenue"] / since * 365
    for col in ("views", "carts", "removals", "purchases"):
        f[col] = c[col]
    f["view_to_cart"] = (c["carts"] / c["views"]).replace(np.inf, np.nan).fillna(0).clip(upper=1)
    carted = np.maximum(c["carts"], c["purchases"])  # a purchase counts as carted (gpuseg's version 2)
    f["cart_to_purchase"] = (c["purchases"] / carted).replace(np.inf, np.nan).fillna(0).clip(upper=1)
    f["cart_abandonment"] = (c["abandoned"] / c["cart_sessions"]).fillna(0).clip(upper=1)
    f["sessions"] = c["sessions"]
    f["events_per_session"] = c["events"] / c["sessions"]
    f["session_minutes"] = c["minutes"] / c["sessions"]
    for n in [*parts, "weekend"]:
        f["share_" + n] = c["t_" + n] / c["events"]
    f = f.astype("float64")
    st["features"] = time.perf_counter() - t

    k = model_stages(f.to_numpy(), list(f.columns), st)
    f.reset_index().rename(columns={"user_id": "customer_id"}).to_parquet(feat_out, index=False)
    return {"stages": st, "customers": len(f), "rows": None, "k": k}


def worker(engine: str, path: str, feat_out: str, device: str, threads: str) -> None:
    import pyarrow
    from threadpoolctl import threadpool_limits

    n = int(threads)
    pyarrow.set_cpu_count(n)  # Arrow's pool (gpuseg's readers, pandas' Parquet reader)
    t0 = time.perf_counter()
    if engine == "gpuseg":
        res = run_gpuseg(path, feat_out, device, n)  # sets its own limit from the config, once
    else:
        with threadpool_limits(limits={"blas": 1, "openmp": n}):
            res = run_polars(path, feat_out) if engine == "polars" else run_pandas(path, feat_out)
    res["wall"] = time.perf_counter() - t0
    res["peak_rss_mb"] = peak_rss_mb()
    st = res["stages"]
    res["load_clean_features"] = st.get("load_clean_features", sum(st.get(s, 0.0) for s in LCF))
    res["end_to_end"] = res["load_clean_features"] + sum(st.get(s, 0.0) for s in MODEL)
    print("RESULT " + json.dumps(res))


# --- orchestration -----------------------------------------------------------------------


#: file name suffix per --formats value
SUFFIX = {"csv": "csv", "parquet": "parquet", "parquet-plain": "plain.parquet"}


def ensure_data(n_events: int, fmt: str, cache: Path) -> Path:
    """The generated events file: ``csv`` and ``parquet`` as ``python -m gpuseg generate
    --customers N --seed 0 --out FILE`` writes them; ``parquet-plain`` the same rows with the
    text columns as plain strings. (gpuseg's Parquet keeps pandas' categories as Arrow
    dictionaries, and every row group then carries the whole ``user_session`` dictionary:
    2.1M UUIDs in each of the 10 row groups at 10M events, an 808 MB file whose reading is
    mostly that dictionary.)"""
    from gpuseg.io.synthetic import generate_events, write_events

    path = cache / f"events-{n_events}.{SUFFIX[fmt]}"
    if not path.exists():
        customers = max(200, n_events // EVENTS_PER_CUSTOMER)
        t = time.perf_counter()
        events, _ = generate_events(customers, seed=0)
        gen = time.perf_counter() - t
        if fmt == "parquet-plain":
            import pyarrow as pa
            import pyarrow.parquet as pq
            from gpuseg.io.synthetic import EVENT_COLUMNS

            table = pa.Table.from_pandas(events.loc[:, list(EVENT_COLUMNS)], preserve_index=False)
            for i, field in enumerate(table.schema):
                if pa.types.is_dictionary(field.type):
                    table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
            pq.write_table(table.replace_schema_metadata(None), path)
        else:
            write_events(events, path)
        print(f"  generated {len(events):,} events ({customers:,} customers) in {gen:.1f} s -> {path}", flush=True)
        del events
    return path


def compare_features(ours: str, peer: str) -> dict:
    """Max absolute and relative (to max(1, |value|)) difference of the peer's features
    from gpuseg's; inf when the customers or the columns differ."""
    import numpy as np
    import pandas as pd

    fa = pd.read_parquet(ours).set_index("customer_id").sort_index()
    fb = pd.read_parquet(peer).set_index("customer_id").sort_index()
    cols = [c for c in fb.columns if c in fa.columns]
    out = {"customers": len(fb), "columns": len(cols), "max_abs_diff": float("inf"), "max_rel_diff": float("inf")}
    if not fa.index.equals(fb.index) or len(cols) != len(fb.columns) or len(cols) != len(fa.columns):
        return out
    a, b = fa[cols].to_numpy(), fb[cols].to_numpy()
    diff = np.abs(a - b)
    out["max_abs_diff"] = float(diff.max())
    out["worst_column"] = cols[int(np.unravel_index(diff.argmax(), diff.shape)[1])]
    out["max_rel_diff"] = float((diff / np.maximum(1.0, np.abs(b))).max())
    return out


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def child_env(threads: int) -> dict:
    """The same thread settings for every engine, set before any library is imported (BLAS
    on 1 thread for all, as gpuseg runs it)."""
    n = str(threads)
    return dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                POLARS_MAX_THREADS=n, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def run_engine(engine: str, path: Path, feat_out: str, device: str, threads: int) -> dict:
    load = uptime()
    print(f"    {load}", flush=True)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", engine, str(path), feat_out, device, str(threads)],
        capture_output=True, text=True, env=child_env(threads),
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"{engine} failed on {path}:\n{proc.stderr[-3000:]}")
    res = json.loads(line[len("RESULT "):])
    res["uptime_before"] = load
    print(f"    {engine:<7} load+clean+features {res['load_clean_features']:7.2f} s, end to end "
          f"{res['end_to_end']:7.2f} s, wall {res['wall']:7.2f} s, peak {res['peak_rss_mb']:,.0f} MB", flush=True)
    return res


def summarise(runs: list[dict]) -> dict:
    """Medians over the rounds, with every value kept."""
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    stages = sorted({s for r in runs for s in r["stages"]})
    return {
        "load_clean_features": med("load_clean_features"),
        "end_to_end": med("end_to_end"),
        "wall": med("wall"),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "stages": {s: statistics.median(r["stages"].get(s, 0.0) for r in runs) for s in stages},
        "all_load_clean_features": [round(r["load_clean_features"], 3) for r in runs],
        "all_end_to_end": [round(r["end_to_end"], 3) for r in runs],
    }


def profile_lcf(path: Path, threads: int, out: Path) -> None:
    """cProfile of gpuseg's load + clean + features (the calls of ``pipeline._local_stages``)."""
    import cProfile
    import io
    import pstats

    import pyarrow

    from gpuseg import backend as _backend
    from gpuseg.config import build_config
    from gpuseg.io.readers import load_files, resolve_paths
    from gpuseg.pipeline import thread_limit
    from gpuseg.prep import clean, customer_features

    pyarrow.set_cpu_count(threads)
    cfg = build_config({"features": {"groups": list(GROUPS)}}, input=str(path), device="cpu", threads=threads)
    be = _backend.select("cpu")
    _backend.warm_up(be)
    files, kind = resolve_paths(cfg.input)
    with thread_limit(threads):
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        data = load_files(files, kind, be, cfg.format, dict(cfg.rename), cfg.clean.timestamp_format, cfg.input)
        t1 = time.perf_counter()
        cleaned = clean(data, cfg.clean, be)
        t2 = time.perf_counter()
        feats = customer_features(cleaned, cfg.features)
        t3 = time.perf_counter()
        prof.disable()
    text = io.StringIO()
    text.write(f"# cProfile of gpuseg load+clean+features on {path.name} ({data.rows_read:,} rows, {len(feats):,} "
               f"customers, {len(feats.names)} features), {threads} threads\n# {uptime()}\n"
               f"# load {t1 - t0:.3f} s, clean {t2 - t1:.3f} s, features {t3 - t2:.3f} s (under the profiler)\n")
    for key in ("cumulative", "tottime"):
        text.write(f"\n## top 25 by {key}\n")
        pstats.Stats(prof, stream=text).strip_dirs().sort_stats(key).print_stats(25)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.getvalue())
    print(text.getvalue())
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M,10M", help="event counts, e.g. 100k,1M,10M")
    ap.add_argument("--formats", default="csv",
                    help="comma-separated: csv, parquet (as gpuseg generate writes it), "
                         "parquet-plain (the text columns as plain strings)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"], help="gpuseg's device")
    ap.add_argument("--threads", type=int, default=0,
                    help="OpenMP, Arrow and Polars threads of every engine (0: the usable cores); BLAS on 1 for all")
    ap.add_argument("--engines", default=",".join(ENGINES), help="which of gpuseg,polars,pandas run")
    ap.add_argument("--data", default=str(HERE / "data"), help="where generated files are cached")
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--no-baseline", action="store_true", help="only gpuseg (e.g. sizes the peers cannot hold)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds, the engines' order rotated; medians reported")
    ap.add_argument("--profile", action="store_true",
                    help="instead: cProfile of gpuseg's load+clean+features on the first size and format")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    cache = Path(args.data)
    cache.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE.parent))
    from gpuseg.backend import cpu_label
    from gpuseg.pipeline import usable_cores

    threads = args.threads or usable_cores()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.profile:
        size = sizes[0]
        profile_lcf(ensure_data(size, formats[0], cache), threads,
                    HERE / "results" / f"pipeline-profile-{args.sizes.split(',')[0]}-{formats[0]}.txt")
        return
    engines = ["gpuseg"] if args.no_baseline else [e.strip() for e in args.engines.split(",") if e.strip()]
    if "polars" in engines and importlib.util.find_spec("polars") is None:
        print("polars is not installed: the Polars peer is skipped (a bench-only dependency: pip install polars)",
              flush=True)
        engines.remove("polars")
    machine = f"{platform.node()}: {cpu_label()}"
    print(f"bench/pipeline.py on {machine}; gpuseg device={args.device}; {threads} threads for every engine "
          f"(BLAS on 1); engines {', '.join(engines)}", flush=True)
    rows = []
    for size in sizes:
        for fmt in formats:
            path = ensure_data(size, fmt, cache)
            print(f"  {path.name}", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                feats = {e: f"{tmp}/{e}.parquet" for e in engines}
                runs: dict[str, list[dict]] = {e: [] for e in engines}
                for r in range(args.repeat):  # the order rotated each round
                    order = engines[r % len(engines):] + engines[:r % len(engines)]
                    for e in order:
                        runs[e].append(run_engine(e, path, feats[e], args.device, threads))
                diffs = {e: compare_features(feats["gpuseg"], feats[e]) for e in engines
                         if e != "gpuseg" and "gpuseg" in engines}
            med = {e: summarise(runs[e]) for e in engines}
            first = runs[engines[0]][0]
            row = {"events": runs["gpuseg"][0]["rows"] if "gpuseg" in runs else size,
                   "customers": first["customers"], "format": fmt, "threads": threads,
                   "median": med, "runs": runs, "features_vs_gpuseg": diffs, "ratios": {}}
            if "gpuseg" in med:
                for e in engines:
                    if e == "gpuseg":
                        continue
                    row["ratios"][f"gpuseg/{e}"] = {
                        "load_clean_features": med["gpuseg"]["load_clean_features"] / med[e]["load_clean_features"],
                        "end_to_end": med["gpuseg"]["end_to_end"] / med[e]["end_to_end"],
                        "per_round_load_clean_features": [
                            round(a["load_clean_features"] / b["load_clean_features"], 3)
                            for a, b in zip(runs["gpuseg"], runs[e])],
                        "per_round_end_to_end": [round(a["end_to_end"] / b["end_to_end"], 3)
                                                 for a, b in zip(runs["gpuseg"], runs[e])],
                    }
            rows.append(row)
            print(format_row(row), flush=True)
    versions = {}
    for mod in ("gpuseg", "numpy", "pandas", "pyarrow", "sklearn", "polars"):
        if importlib.util.find_spec(mod) is not None:
            versions[mod] = __import__(mod).__version__
    # without --out, a new file: a committed result of an earlier run is never overwritten
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else HERE / "results" / f"pipeline-{args.device}-{platform.node()}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "device": args.device, "threads": threads, "engines": engines,
                               "repeat": args.repeat, "versions": versions, "results": rows}, indent=2) + "\n")
    print("\n" + markdown(rows))
    print(f"\nwrote {out}")


def format_row(r: dict) -> str:
    s = f"  {r['events']:,} events, {r['customers']:,} customers, {r['format']}:"
    for e, m in r["median"].items():
        s += (f"\n    {e:<7} load+clean+features {m['load_clean_features']:7.2f} s, end to end {m['end_to_end']:7.2f} s"
              f", wall {m['wall']:7.2f} s, peak {m['peak_rss_mb']:,.0f} MB; stages "
              + ", ".join(f"{k} {v:.2f}" for k, v in m["stages"].items()))
    for e, d in r["features_vs_gpuseg"].items():
        s += (f"\n    features {e} vs gpuseg: {d['columns']} columns, {d['customers']:,} customers, max abs diff "
              f"{d['max_abs_diff']:.1e} ({d.get('worst_column', '-')}), max rel diff {d['max_rel_diff']:.1e}")
    for name, q in r["ratios"].items():
        s += (f"\n    {name}: load+clean+features {q['load_clean_features']:.2f} "
              f"(rounds {q['per_round_load_clean_features']}), end to end {q['end_to_end']:.2f} "
              f"(rounds {q['per_round_end_to_end']})")
    return s


def markdown(rows: list[dict]) -> str:
    """Seconds (medians) and gpuseg / peer ratios, load+clean+features then end to end."""
    engines = [e for e in ENGINES if any(e in r["median"] for r in rows)]
    peers = [e for e in engines if e != "gpuseg"] if "gpuseg" in engines else []
    heads = ["events", "format"]
    for what in ("l+c+f", "e2e"):
        heads += [f"{e} {what} s" for e in engines] + [f"**{what} gpuseg/{p}**" for p in peers]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(["---:"] * len(heads)) + "|"]
    for r in rows:
        m, q = r["median"], r["ratios"]
        cells = [f"{r['events']:,}", r["format"]]
        for key in ("load_clean_features", "end_to_end"):
            cells += [f"{m[e][key]:.2f}" if e in m else "-" for e in engines]
            cells += [f"**{q[f'gpuseg/{p}'][key]:.2f}**" if f"gpuseg/{p}" in q else "-" for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
