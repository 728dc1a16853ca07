"""Quality benchmark: how close gpuseg's segments come to planted personas, scenario by scenario.

Every scenario of ``gpuseg generate --scenario`` (:mod:`gpuseg.io.scenarios`) is generated,
written to Parquet, and run through ``gpuseg.pipeline.run`` exactly as ``gpuseg run
--input FILE --truth TRUTH`` would, with the methods asked for. Per scenario and method it
records ARI and NMI against the planted personas, the k the method chose against the true
k, its stability, and its fit seconds; and what the run chose. Two references sit beside
them, on the same engineered features (``features.parquet``):

- **supervised ceiling**: a gradient-boosting classifier's 3-fold cross-validated ARI,
  what the features allow when the personas are known;
- **K-means at the true k**: scikit-learn's K-means (n_init=10) on the features scaled
  as gpuseg scales them (log1p on skewed features, standardised), told the true k.

    python bench/quality.py                            # every scenario, default sizes (3,000 customers;
                                                       # 'large' 100,000 with the default method), --methods all
    python bench/quality.py --methods default          # what `gpuseg run` runs by default
    python bench/quality.py --scenarios personas,ten --customers 20000
    python bench/quality.py --large-customers 1000000  # the 1M-customer scenario at full size
    python bench/quality.py --deep-max-iter 1000 --stability 10   # DEC/IDEC and stability at run's defaults

Confidence: for the scenarios of ``--reliability``, the run's calibrated confidence is
checked on 10 fresh refits (other seeds and half samples than the calibration's): per bin
of confidence, the share of customers who kept their segment.

Results: tables on stdout (Markdown) and JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# as `gpuseg run` and `import gpuseg` set it (gpuseg/__init__.py), before scikit-learn loads OpenMP
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

#: Customers per scenario at the default sizes (the scenario's own size where it is small).
BENCH_SIZES = {"personas": 3_000, "three": 3_000, "ten": 4_000, "imbalanced": 3_000, "overlap": 3_000,
               "noise": 3_000, "small": 2_000, "large": 100_000, "orders": 3_000, "orders_dates": 3_000,
               "nonlinear": 3_000}
#: Scenarios that run only the default method (every method at this size takes too long).
DEFAULT_ONLY = {"large"}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default="all", help="comma-separated names or 'all'")
    ap.add_argument("--methods", default="all", help="'all', 'default' or comma-separated method names")
    ap.add_argument("--customers", type=int, default=None, help="customers per scenario (default: BENCH_SIZES)")
    ap.add_argument("--large-customers", type=int, default=None, help="size of the 'large' scenario")
    ap.add_argument("--stability", type=int, default=3, help="stability refits per method (0: none)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data and of the run")
    ap.add_argument("--k", default=None, help="k range of the runs (default: gpuseg's)")
    ap.add_argument("--deep-max-iter", type=int, default=300,
                    help="clustering steps of DEC and IDEC per k (gpuseg's default is 1000; 300 keeps the whole "
                    "benchmark under 10 minutes on 2 cores)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the supervised ceiling and K-means at true k")
    ap.add_argument("--reliability", default="personas,noise,orders",
                    help="scenarios whose calibrated confidence is checked on fresh refits ('' for none)")
    ap.add_argument("--tag", default="cpu", help="suffix of the JSON file in bench/results/")
    return ap.parse_args(argv)


def supervised_ceiling(X, y, seed: int) -> float:
    """3-fold cross-validated ARI of a gradient-boosting classifier on the features.

    On one OpenMP thread: with ``OMP_WAIT_POLICY=PASSIVE`` (set above, as gpuseg sets it)
    the classifier's many short parallel regions took 27.5-27.9 s on 2 threads against
    4.2-4.3 s on 1 (the `ten` scenario, 2026-12-07); the ARI is the same."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    with threadpool_limits(limits={"openmp": 1}):
        pred = cross_val_predict(HistGradientBoostingClassifier(max_iter=60, random_state=seed), X, y, cv=folds)
    return float(adjusted_rand_score(y, pred))


def bounded_columns(names) -> list[int]:
    """Indices of the features gpuseg's scaler treats as bounded shares (not log-scaled)."""
    return [i for i, c in enumerate(names) if c.startswith(("share_", "cat_")) or c in (
        "view_to_cart", "cart_to_purchase", "cart_abandonment")]


def kmeans_at_true_k(raw, bounded, k: int, seed: int, weights=None):
    """Labels of scikit-learn's K-means at the true k on gpuseg-scaled features (times the
    run's feature weights, when given); on one OpenMP thread, as the ceiling."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from gpuseg.prep import FeatureScaler

    X = FeatureScaler(bounded=bounded).fit_transform(raw)
    if weights is not None:
        X = X * weights
    with threadpool_limits(limits={"openmp": 1}):
        return KMeans(k, n_init=10, random_state=seed).fit_predict(X)


def fresh_reliability(out: Path, metrics: dict, seed: int, refits: int = 10) -> list[dict] | None:
    """Reliability of the run's calibrated confidence on refits it never saw: the chosen
    method refitted (other seeds) on half samples, the customers each refit did not see
    matched to their segment; per confidence bin, the share that kept it."""
    import numpy as np
    import pandas as pd

    from gpuseg.cluster import make_estimator, method_params
    from gpuseg.evaluate.calibration import _matched, reliability_table
    from gpuseg.model import load_model

    if not (out / "model" / "model.json").is_file() or metrics["embedding"]:
        return None
    model = load_model(out / "model")
    feats = pd.read_parquet(out / "features.parquet")
    seg = pd.read_parquet(out / "segments.parquet")
    X = model.scaler.transform(feats[model.feature_names].to_numpy(np.float64))
    labels, confidence = seg["segment"].to_numpy(), seg["confidence"].to_numpy()
    method, k = metrics["chosen"]["method"], metrics["chosen"]["k"]
    if method == "consensus":
        return None
    rng = np.random.default_rng(seed + 1000)
    n = len(X)
    rows, kept = [], []
    for j in range(refits):
        idx = np.sort(rng.choice(n, n // 2, replace=False))
        est = make_estimator(method, k, seed + 5000 + j, method_params(method)).fit(X[idx])
        unseen = np.setdiff1d(np.arange(n), idx)
        pred = np.asarray(est.predict(X[unseen])).astype(np.int64)
        rows.append(unseen)
        kept.append((_matched(pred, labels[unseen]) == labels[unseen]).astype(float))
    return reliability_table(confidence, np.concatenate(rows), np.concatenate(kept))


def run_scenario(name: str, customers: int, methods: str, stability: int, seed: int, k: str | None,
                 ceiling: bool, reliability: bool = False, deep_max_iter: int | None = None) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from gpuseg.config import build_config
    from gpuseg.io.scenarios import generate_scenario
    from gpuseg.pipeline import run

    t0 = time.perf_counter()
    log, truth, sc = generate_scenario(name, customers, seed=seed)
    gen_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="gpuseg-quality-") as tmp:
        data, truth_path = Path(tmp) / "data.parquet", Path(tmp) / "truth.parquet"
        log.to_parquet(data, index=False)
        truth.to_parquet(truth_path, index=False)
        del log
        overrides = dict(input=str(data), truth=str(truth_path), out=str(Path(tmp) / "out"), report=False,
                         stability=stability, seed=seed, format=sc.kind)
        file_values = {"params": {m: {"max_iter": deep_max_iter} for m in ("dec", "idec")}} if deep_max_iter else None
        if methods != "default":
            overrides["methods"] = methods
        if k:
            overrides["k"] = k
        t1 = time.perf_counter()
        result = run(build_config(file_values, **overrides))
        run_s = time.perf_counter() - t1
        feats = pd.read_parquet(Path(tmp) / "out" / "features.parquet")
        fresh = fresh_reliability(Path(tmp) / "out", result.metrics, seed) if reliability else None
    m = result.metrics
    id_column = truth.columns[0]
    key = truth[id_column].astype(str) if feats["customer_id"].dtype == object else truth[id_column]
    persona = truth.set_index(key)["persona"].reindex(feats["customer_id"])
    y = pd.factorize(persona)[0]
    row = {"scenario": name, "kind": sc.kind, "customers": int(len(feats)), "true_k": sc.k,
           "generate_s": round(gen_s, 2), "run_s": round(run_s, 2), "timings": m["timings"],
           "chosen": m["chosen"]["method"], "chosen_k": m["chosen"]["k"], "methods": {}}
    for method, entry in m["methods"].items():
        stab = entry.get("stability") or {}
        row["methods"][method] = {
            "status": entry["status"], "k": entry.get("k"), "ari": entry.get("ari"), "nmi": entry.get("nmi"),
            "stability": stab.get("mean"), "fit_s": entry.get("total_fit_seconds"),
            "reason": entry.get("reason"),
        }
    cal = m["chosen"].get("confidence_calibration") or {}
    row["confidence"] = {"calibrated": cal.get("calibrated"), "raw_reliability": cal.get("raw_reliability"),
                         "fresh_reliability": fresh}
    row["chosen_ari"] = row["methods"][row["chosen"]]["ari"]
    row["chosen_nmi"] = row["methods"][row["chosen"]]["nmi"]
    if ceiling:
        names = [c for c in feats.columns if c != "customer_id"]
        raw = feats[names].to_numpy(np.float64)
        bounded = bounded_columns(names)
        t2 = time.perf_counter()
        row["supervised_ari"] = round(supervised_ceiling(raw, y, seed), 4)
        labels = kmeans_at_true_k(raw, bounded, sc.k, seed)
        row["kmeans_true_k_ari"] = round(float(adjusted_rand_score(y, labels)), 4)
        row["kmeans_true_k_nmi"] = round(float(normalized_mutual_info_score(y, labels)), 4)
        weights = np.array([m["scaling"][c].get("weight", 1.0) for c in names])
        labels = kmeans_at_true_k(raw, bounded, sc.k, seed, weights)
        row["kmeans_true_k_weighted_ari"] = round(float(adjusted_rand_score(y, labels)), 4)
        row["ceiling_s"] = round(time.perf_counter() - t2, 2)
    return row


def summary(rows: list[dict]) -> dict:
    """Medians and hit rates over the scenarios."""
    import numpy as np

    chosen = [r["chosen_ari"] for r in rows]
    k_hits = [abs(r["chosen_k"] - r["true_k"]) <= 1 for r in rows]
    best_gap = []
    for r in rows:
        aris = [v["ari"] for v in r["methods"].values() if v["status"] == "ok" and v["ari"] is not None]
        if len(aris) > 1:
            best_gap.append(max(aris) - r["chosen_ari"] <= 0.05)
    own = next((r["chosen_ari"] for r in rows if r["scenario"] == "personas"), None)
    km = [(r["kmeans_true_k_ari"], r["kmeans_true_k_weighted_ari"]) for r in rows if "kmeans_true_k_ari" in r]
    return {"scenarios": len(rows), "median_chosen_ari": float(np.median(chosen)), "personas_chosen_ari": own,
            "median_kmeans_true_k_plain_ari": float(np.median([a for a, _ in km])) if km else None,
            "median_kmeans_true_k_weighted_ari": float(np.median([b for _, b in km])) if km else None,
            "k_within_1": f"{sum(k_hits)}/{len(k_hits)}",
            "chosen_within_0.05_of_best": f"{sum(best_gap)}/{len(best_gap)}" if best_gap else None,
            "median_supervised_ari": float(np.median([r["supervised_ari"] for r in rows if "supervised_ari" in r]))
            if any("supervised_ari" in r for r in rows) else None}


def print_tables(rows: list[dict], summ: dict) -> None:
    print("\n| scenario | customers | true k | chosen | k | ARI | NMI | stability | run s | K-means at true k: "
          "plain / weighted features | supervised |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c = r["methods"][r["chosen"]]
        stab = "" if c["stability"] is None else f"{c['stability']:.2f}"
        km = (f"{r['kmeans_true_k_ari']:.3f} / {r['kmeans_true_k_weighted_ari']:.3f}" if "kmeans_true_k_ari" in r
              else "-")
        print(f"| {r['scenario']} | {r['customers']:,} | {r['true_k']} | {r['chosen']} | {r['chosen_k']} | "
              f"{r['chosen_ari']:.3f} | {r['chosen_nmi']:.3f} | {stab} | {r['run_s']:.1f} | {km} | "
              f"{r['supervised_ari'] if 'supervised_ari' in r else '-'} |")
    methods = sorted({m for r in rows for m in r["methods"]}, key=lambda m: [
        m in r["methods"] for r in rows].count(False))
    if len(methods) > 1:
        print("\nARI (k chosen / true k; * = chosen) per method:\n")
        print("| method | " + " | ".join(r["scenario"] for r in rows) + " | median ARI |")
        print("|---|" + "---:|" * (len(rows) + 1))
        import numpy as np

        for m in methods:
            cells, aris = [], []
            for r in rows:
                v = r["methods"].get(m)
                if v is None:
                    cells.append("")
                elif v["status"] != "ok":
                    cells.append("failed")
                else:
                    aris.append(v["ari"])
                    star = "*" if r["chosen"] == m else ""
                    cells.append(f"{star}{v['ari']:.2f} ({v['k']}/{r['true_k']})")
            print(f"| {m} | " + " | ".join(cells) + f" | {np.median(aris) if aris else float('nan'):.2f} |")
        print("\nStability (mean ARI of half-sample refits) and fit seconds per method:\n")
        print("| method | " + " | ".join(r["scenario"] for r in rows) + " |")
        print("|---|" + "---:|" * len(rows))
        for m in methods:
            cells = []
            for r in rows:
                v = r["methods"].get(m)
                if v is None or v["status"] != "ok":
                    cells.append("")
                else:
                    s = "-" if v["stability"] is None else f"{v['stability']:.2f}"
                    cells.append(f"{s} / {v['fit_s']:.1f}s")
            print(f"| {m} | " + " | ".join(cells) + " |")
    checked = [r for r in rows if (r.get("confidence") or {}).get("fresh_reliability")]
    if checked:
        print("\nConfidence reliability: per bin of the calibrated confidence, the share of customers who kept "
              "their segment in 10 fresh refits on half samples (customers each refit did not see), beside the "
              "raw score's bins on the run's own refits (before calibration):\n")
        print("| scenario | bin | pairs | mean confidence | kept | raw score bin: mean / kept |")
        print("|---|---|---:|---:|---:|---|")
        for r in checked:
            raw = {b["bin"]: b for b in r["confidence"]["raw_reliability"] or []}
            for b in r["confidence"]["fresh_reliability"]:
                rb = raw.get(b["bin"])
                rtxt = f"{rb['mean_confidence']:.3f} / {rb['kept_share']:.3f}" if rb else ""
                print(f"| {r['scenario']} | {b['bin']} | {b['pairs']:,} | {b['mean_confidence']:.3f} | "
                      f"{b['kept_share']:.3f} | {rtxt} |")
    print("\nSummary: " + ", ".join(f"{k} {v if not isinstance(v, float) else round(v, 3)}" for k, v in summ.items()))


def main(argv=None) -> int:
    args = parse_args(argv)
    from gpuseg.io.scenarios import SCENARIOS

    names = list(SCENARIOS) if args.scenarios == "all" else [s.strip() for s in args.scenarios.split(",")]
    t_all = time.perf_counter()
    rows = []
    for name in names:
        size = args.customers or BENCH_SIZES.get(name, SCENARIOS[name].customers)
        if name == "large" and args.large_customers:
            size = args.large_customers
        methods = "default" if name in DEFAULT_ONLY else args.methods
        t = time.perf_counter()
        row = run_scenario(name, size, methods, args.stability, args.seed, args.k,
                           ceiling=not args.no_ceiling and size <= 50_000,
                           reliability=name in args.reliability.split(",") and args.stability > 0,
                           deep_max_iter=args.deep_max_iter)
        rows.append(row)
        print(f"{name}: {row['customers']:,} customers, chosen {row['chosen']} k={row['chosen_k']} "
              f"(true {row['true_k']}) ARI {row['chosen_ari']:.3f}, supervised {row.get('supervised_ari', '-')}, "
              f"{time.perf_counter() - t:.0f} s", flush=True)
    summ = summary(rows)
    print_tables(rows, summ)
    total = time.perf_counter() - t_all
    print(f"\nTotal {total:.0f} s on {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.2f}")
    out = HERE / "results" / f"quality-{args.tag}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summ, "total_s": round(total, 1),
                               "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}, indent=1))
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
