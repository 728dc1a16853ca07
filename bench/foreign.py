"""Segments on personas from a generator gpuseg's authors did not write (issue 14).

``bench/quality.py`` plants its personas with gpuseg's own generator, so a rule tuned there
may only have learnt that generator (its true k is 6 on most scenarios). ``foreign_gen.py``
was written by a helper told not to read gpuseg's generator, the quality bench or the
tests: its own eleven event and seven order personas, its own distributions, scenarios of 3 to 8 personas. This
script runs ``gpuseg run``'s default on each, as ``gpuseg run --input FILE --truth TRUTH``
would, and sets beside it what the same features allow:

- **supervised ceiling**: a gradient-boosting classifier's 3-fold cross-validated ARI;
- **K-means at the true k**: scikit-learn's K-means on the features scaled as gpuseg scales
  them, told the true k, without and with the run's feature weights.

    python bench/foreign.py                        # every scenario, 3,000 customers, seed 0
    python bench/foreign.py --seeds 0,1,2 --customers 5000
    python bench/foreign.py --scenarios f6,f8 --methods all --stability 0 --deep-max-iter 300 --no-ceiling

Results: a Markdown table on stdout and JSON in ``bench/results/``.
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import gpuseg` sets it

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default="all", help="comma-separated names of foreign_gen.SCENARIOS or 'all'")
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (each its own data and run)")
    ap.add_argument("--methods", default="default", help="'default' (gpuseg run's) or method names")
    ap.add_argument("--stability", type=int, default=3, help="stability refits (0: none)")
    ap.add_argument("--deep-max-iter", type=int, default=None, help="DEC/IDEC clustering steps per k (run's default: 1000)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the supervised ceiling and K-means at the true k")
    ap.add_argument("--tag", default="", help="suffix of the results file")
    return ap.parse_args(argv)


def write_inputs(log, truth, kind: str, tmp: Path) -> tuple[Path, Path]:
    """The log and truth as Parquet; an order log's date column named as gpuseg's orders
    schema names it (a user would pass ``--rename order_date=timestamp``)."""
    data, truth_path = tmp / "data.parquet", tmp / "truth.parquet"
    if kind == "orders":
        log = log.rename(columns={c: "timestamp" for c in ("order_date", "order_time") if c in log.columns})
    log.to_parquet(data, index=False)
    truth.to_parquet(truth_path, index=False)
    return data, truth_path


def references(feats, y, metrics: dict, k: int, seed: int) -> dict:
    """Supervised ceiling and K-means at the true k (plain and weighted) on the run's features."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from quality import bounded_columns, kmeans_at_true_k, supervised_ceiling

    names = [c for c in feats.columns if c != "customer_id"]
    raw = feats[names].to_numpy(np.float64)
    bounded = bounded_columns(names)
    weights = np.array([metrics["scaling"][c].get("weight", 1.0) for c in names])
    return {
        "supervised_ari": round(supervised_ceiling(raw, y, seed), 4),
        "kmeans_true_k_ari": round(float(adjusted_rand_score(y, kmeans_at_true_k(raw, bounded, k, seed))), 4),
        "kmeans_true_k_weighted_ari": round(float(adjusted_rand_score(
            y, kmeans_at_true_k(raw, bounded, k, seed, weights))), 4),
    }


def run_one(name: str, customers: int, seed: int, methods: str, stability: int, ceiling: bool,
            deep_max_iter: int | None = None) -> dict:
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from foreign_gen import generate

    from gpuseg.config import build_config
    from gpuseg.pipeline import run

    t0 = time.perf_counter()
    log, truth, k, kind = generate(name, customers, seed=seed)
    gen_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="gpuseg-foreign-") as tmp:
        data, truth_path = write_inputs(log, truth, kind, Path(tmp))
        overrides = dict(input=str(data), truth=str(truth_path), out=str(Path(tmp) / "out"), report=False,
                         stability=stability, seed=seed, format=kind)
        if methods != "default":
            overrides["methods"] = methods
        file_values = {"params": {m: {"max_iter": deep_max_iter} for m in ("dec", "idec")}} if deep_max_iter else None
        t1 = time.perf_counter()
        result = run(build_config(file_values, **overrides))
        run_s = time.perf_counter() - t1
        feats = pd.read_parquet(Path(tmp) / "out" / "features.parquet")
        seg = pd.read_parquet(Path(tmp) / "out" / "segments.parquet")
    m = result.metrics
    chosen = m["methods"][m["chosen"]["method"]]
    id_col = truth.columns[0]
    key = truth[id_col] if pd.api.types.is_integer_dtype(feats["customer_id"]) else truth[id_col].astype(str)
    persona = truth.set_index(key)["persona"]
    y_seg = pd.factorize(persona.reindex(seg["customer_id"]))[0]
    y_feat = pd.factorize(persona.reindex(feats["customer_id"]))[0]
    row = {"scenario": name, "seed": seed, "kind": kind, "customers": int(len(feats)), "true_k": k,
           "chosen": m["chosen"]["method"], "chosen_k": m["chosen"]["k"],
           "k_reason": (chosen.get("k_choice") or {}).get("reason"),
           "sweep": [{key: r.get(key) for key in ("k", "inertia", "silhouette", "davies_bouldin", "calinski_harabasz",
                                                  "ari")} for r in chosen.get("sweep") or []],
           "ari": round(float(adjusted_rand_score(y_seg, seg["segment"])), 4),
           "nmi": round(float(normalized_mutual_info_score(y_seg, seg["segment"])), 4),
           "stability": (chosen.get("stability") or {}).get("mean"),
           "generate_s": round(gen_s, 2), "run_s": round(run_s, 2),
           "methods": {name_: {"k": e.get("k"), "ari": e.get("ari"), "status": e["status"]}
                       for name_, e in m["methods"].items()}}
    if ceiling:
        row.update(references(feats, y_feat, m, k, seed))
    return row


def summary(rows: list[dict]) -> dict:
    import numpy as np

    def med(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(float(np.median(vals)), 3) if vals else None

    return {"runs": len(rows), "median_ari": med("ari"), "median_supervised_ari": med("supervised_ari"),
            "median_kmeans_true_k_ari": med("kmeans_true_k_ari"),
            "median_kmeans_true_k_weighted_ari": med("kmeans_true_k_weighted_ari"),
            "k_within_1": sum(abs(r["chosen_k"] - r["true_k"]) <= 1 for r in rows),
            "k_exact": sum(r["chosen_k"] == r["true_k"] for r in rows),
            "seconds": round(sum(r["run_s"] for r in rows), 1)}


def print_table(rows: list[dict], summ: dict) -> None:
    print("\n| scenario | seed | true k | chosen, k | ARI | NMI | stability | supervised | K-means true k, plain / weighted | run s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        stab = f"{r['stability']:.2f}" if r.get("stability") is not None else "-"
        print(f"| {r['scenario']} | {r['seed']} | {r['true_k']} | {r['chosen']}, {r['chosen_k']} | {r['ari']:.2f} | "
              f"{r['nmi']:.2f} | {stab} | {r.get('supervised_ari', float('nan')):.2f} | "
              f"{r.get('kmeans_true_k_ari', float('nan')):.2f} / {r.get('kmeans_true_k_weighted_ari', float('nan')):.2f}"
              f" | {r['run_s']:.1f} |")
    print(f"\nmedian ARI {summ['median_ari']} (supervised {summ['median_supervised_ari']}, K-means at the true k "
          f"{summ['median_kmeans_true_k_ari']} / weighted {summ['median_kmeans_true_k_weighted_ari']}); "
          f"k within 1: {summ['k_within_1']}/{summ['runs']}, exact {summ['k_exact']}/{summ['runs']}; "
          f"{summ['seconds']} s of runs")


def main(argv=None) -> int:
    from foreign_gen import SCENARIOS

    args = parse_args(argv)
    names = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    load = os.getloadavg()
    rows = []
    for seed in seeds:
        for name in names:
            row = run_one(name, args.customers, seed, args.methods, args.stability, not args.no_ceiling,
                          args.deep_max_iter)
            print(f"  {name} seed {seed}: k {row['chosen_k']} of {row['true_k']}, ARI {row['ari']:.3f} "
                  f"(supervised {row.get('supervised_ari', float('nan')):.3f}), {row['run_s']:.1f} s", flush=True)
            rows.append(row)
    summ = summary(rows)
    print_table(rows, summ)
    out = HERE / "results" / f"foreign-{args.methods.replace(',', '+')}{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "load_before": load,
                               "load_after": os.getloadavg(), "args": vars(args), "summary": summ, "rows": rows},
                              indent=1))
    print(f"wrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
