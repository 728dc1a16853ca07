"""gpuseg vs a plain pandas + scikit-learn script doing the same work, side by side.

For each size, generated REES46 events are written once as CSV; then each engine runs in
its own process (so peak memory is its own) on the same file:

* ``gpuseg``: ``gpuseg.pipeline.run`` with feature groups rfm, funnel, sessions, time,
  k = 2..10, K-means (k-means++), silhouette on a 10,000-customer sample.
* ``baseline``: the script a data scientist would write in a notebook: ``pd.read_csv``,
  ``pd.to_datetime``, the same cleaning rules, the same features with ``groupby``,
  log1p + ``StandardScaler``, scikit-learn ``KMeans`` with its defaults for k = 2..10,
  ``silhouette_score(sample_size=10000)``, Davies-Bouldin and Calinski-Harabasz.

The two feature tables are compared column by column, so the ratio compares the same work.
With ``--repeat N`` the engines alternate N times and the median run is reported.
Results: a table on stdout and JSON in ``bench/results/``.

    python bench/pipeline.py --sizes 100k,1M,10M
    python bench/pipeline.py --sizes 10M,40M --device gpu      # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * mult)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the engines (run in a child process) --------------------------------------------------


def run_gpuseg(path: str, feat_out: str, device: str) -> dict:
    from gpuseg.config import build_config
    from gpuseg.pipeline import run

    with tempfile.TemporaryDirectory() as out:
        cfg = build_config(
            {"features": {"groups": list(GROUPS)}, "evaluate": {"silhouette_exact_max": SIL_SAMPLE,
                                                                "silhouette_sample": SIL_SAMPLE}},
            input=path, out=out, device=device, k=f"{K_RANGE[0]}-{K_RANGE[1]}", methods="kmeans", seed=0,
            stability=0,  # the script has no stability step: like for like
        )
        t0 = time.perf_counter()
        result = run(cfg)
        total = time.perf_counter() - t0
        Path(out, "features.parquet").replace(feat_out)
    m = result.metrics
    return {
        "stages": {k: v for k, v in m["timings"].items() if k != "total"},
        "total": total,
        "customers": m["data"]["customers"],
        "rows": m["data"]["rows_read"],
        "k": m["chosen"]["k"],
        "device": m["device"]["label"],
    }


def run_baseline(path: str, feat_out: str) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
    from sklearn.preprocessing import StandardScaler

    st = {}
    t = time.perf_counter()
    df = pd.read_csv(path)
    df["event_time"] = pd.to_datetime(df["event_time"], format="%Y-%m-%d %H:%M:%S UTC", errors="coerce")
    st["load"] = time.perf_counter() - t

    t = time.perf_counter()
    df = df.drop_duplicates()
    df = df.dropna(subset=["user_id", "event_time", "price", "user_session"])
    df = df[df["event_type"].isin(["view", "cart", "remove_from_cart", "purchase"]) & (df["price"] >= 0)]
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
    s = df.groupby(["user_id", "user_session"]).agg(start=("event_time", "min"), end=("event_time", "max"),
                                                    cart=("is_cart", "max"), buy=("is_purchase", "max"))
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
    f["cart_to_purchase"] = (c["purchases"] / c["carts"]).replace(np.inf, np.nan).fillna(0).clip(upper=1)
    f["cart_abandonment"] = (c["abandoned"] / c["cart_sessions"]).fillna(0).clip(upper=1)
    f["sessions"] = c["sessions"]
    f["events_per_session"] = c["events"] / c["sessions"]
    f["session_minutes"] = c["minutes"] / c["sessions"]
    for n in [*parts, "weekend"]:
        f["share_" + n] = c["t_" + n] / c["events"]
    f = f.astype("float64")
    st["features"] = time.perf_counter() - t

    t = time.perf_counter()
    X = f.to_numpy().copy()
    bounded = [i for i, col in enumerate(f.columns) if col.startswith("share_") or col in
               ("view_to_cart", "cart_to_purchase", "cart_abandonment")]
    sk = pd.DataFrame(X).skew(axis=0).to_numpy()
    for i in range(X.shape[1]):
        if sk[i] > 1 and X[:, i].min() >= 0 and i not in bounded:
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
    f.reset_index().rename(columns={"user_id": "customer_id"}).to_parquet(feat_out, index=False)
    return {"stages": st, "total": sum(st.values()), "customers": len(f), "rows": None,
            "k": max(scores, key=lambda k: scores[k][0])}


def worker(engine: str, path: str, feat_out: str, device: str) -> None:
    t0 = time.perf_counter()
    res = run_gpuseg(path, feat_out, device) if engine == "gpuseg" else run_baseline(path, feat_out)
    res["wall"] = time.perf_counter() - t0
    res["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(res))


# --- orchestration -----------------------------------------------------------------------


def ensure_data(n_events: int, cache: Path) -> Path:
    from gpuseg.io.synthetic import generate_events, write_events

    path = cache / f"events-{n_events}.csv"
    if not path.exists():
        customers = max(200, n_events // EVENTS_PER_CUSTOMER)
        t = time.perf_counter()
        events, _ = generate_events(customers, seed=0)
        gen = time.perf_counter() - t
        write_events(events, path)
        print(f"  generated {len(events):,} events ({customers:,} customers) in {gen:.1f} s "
              f"({len(events) / gen:,.0f} events/s) -> {path}", flush=True)
        del events
    return path


def compare_features(a: str, b: str) -> float:
    import numpy as np
    import pandas as pd

    fa = pd.read_parquet(a).set_index("customer_id").sort_index()
    fb = pd.read_parquet(b).set_index("customer_id").sort_index()
    if not fa.index.equals(fb.index):
        return float("inf")
    cols = [c for c in fb.columns if c in fa.columns]
    if len(cols) != len(fb.columns):
        return float("inf")
    diff = np.abs(fa[cols].to_numpy() - fb[cols].to_numpy()) / np.maximum(1.0, np.abs(fb[cols].to_numpy()))
    return float(diff.max())


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, with every wall time attached."""
    ordered = sorted(runs, key=lambda r: r["wall"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["walls"] = [round(r["wall"], 3) for r in runs]
    return out


def run_engine(engine: str, path: Path, feat_out: str, device: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", engine, str(path), feat_out, device],
        capture_output=True, text=True, env=env,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"{engine} failed on {path}:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M,10M", help="event counts, e.g. 100k,1M,10M")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"], help="gpuseg's device")
    ap.add_argument("--data", default=str(HERE / "data"), help="where generated CSVs are cached")
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--no-baseline", action="store_true", help="only gpuseg (e.g. sizes the script cannot hold)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine, alternating; the median is reported")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    cache = Path(args.data)
    cache.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE.parent))
    from gpuseg.backend import cpu_label

    machine = f"{platform.node()}: {cpu_label()}"
    print(f"bench/pipeline.py on {machine}; gpuseg device={args.device}", flush=True)
    rows = []
    for size in [parse_size(s) for s in args.sizes.split(",")]:
        path = ensure_data(size, cache)
        with tempfile.TemporaryDirectory() as tmp:
            fa, fb = f"{tmp}/a.parquet", f"{tmp}/b.parquet"
            runs_a, runs_b = [], []
            for _ in range(args.repeat):  # alternate, so load from elsewhere hits both alike
                runs_a.append(run_engine("gpuseg", path, fa, args.device))
                if not args.no_baseline:
                    runs_b.append(run_engine("baseline", path, fb, "cpu"))
            ours = median_run(runs_a)
            base = median_run(runs_b) if runs_b else None
            maxdiff = compare_features(fa, fb) if base else None
        events = ours["rows"]
        row = {"events": events, "customers": ours["customers"], "device": ours["device"], "gpuseg": ours,
               "baseline": base, "feature_max_rel_diff": maxdiff,
               "speedup": (base["wall"] / ours["wall"]) if base else None}
        rows.append(row)
        print(format_row(row), flush=True)
    out = Path(args.out) if args.out else HERE / "results" / f"pipeline-{args.device}-{platform.node()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "device": args.device, "results": rows}, indent=2) + "\n")
    print("\n" + markdown(rows))
    print(f"\nwrote {out}")


STAGES = ("load", "clean", "features", "scale", "cluster", "evaluate")


def format_row(r: dict) -> str:
    o, b = r["gpuseg"], r["baseline"]
    s = (f"{r['events']:>11,} events {r['customers']:>8,} customers | gpuseg {o['wall']:6.1f} s "
         f"({r['events'] / o['wall']:>10,.0f} ev/s, {o['peak_rss_mb']:6.0f} MB)")
    if b:
        s += (f" | baseline {b['wall']:6.1f} s ({r['events'] / b['wall']:>10,.0f} ev/s, {b['peak_rss_mb']:6.0f} MB)"
              f" | {r['speedup']:.2f}x | features max rel diff {r['feature_max_rel_diff']:.1e}")
    return s + "\n    stages gpuseg: " + ", ".join(f"{k} {o['stages'].get(k, 0):.2f}" for k in (*STAGES, "segments", "write")) + (
        ("\n    stages script: " + ", ".join(f"{k} {b['stages'].get(k, 0):.2f}" for k in STAGES)) if b else "")


def markdown(rows: list[dict]) -> str:
    head = ("| events | customers | gpuseg s | script s | speedup | gpuseg ev/s | script ev/s | "
            "gpuseg peak MB | script peak MB | gpuseg load/clean/features/cluster/evaluate s | "
            "script load/clean/features/cluster/evaluate s |")
    lines = [head, "|" + "|".join(["---"] * 11) + "|"]
    for r in rows:
        o, b = r["gpuseg"], r["baseline"] or {}
        stages = lambda x: "/".join(f"{x['stages'].get(k, 0):.1f}" for k in ("load", "clean", "features", "cluster", "evaluate")) if x else "-"  # noqa: E731
        lines.append(
            f"| {r['events']:,} | {r['customers']:,} | {o['wall']:.1f} | {b.get('wall', float('nan')):.1f} | "
            f"{(r['speedup'] or float('nan')):.2f}x | {r['events'] / o['wall']:,.0f} | "
            f"{(r['events'] / b['wall']) if b else float('nan'):,.0f} | {o['peak_rss_mb']:.0f} | "
            f"{b.get('peak_rss_mb', float('nan')):.0f} | {stages(o)} | {stages(b)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
