"""Which rule finds the number of segments? Candidate rules for k, on the planted scenarios.

For every scenario of ``bench/quality.py`` (its default sizes), ``gpuseg run`` sweeps
adaptive K-means over k = 2..12 and records each k's segmentation, inertia, silhouette,
Davies-Bouldin and Calinski-Harabasz. On the same fits, these rules choose k:

- ``elbow``: gpuseg's rule, the Kneedle elbow of the log-inertia curve over 2..12 (of the raw
  inertia curve before 2026-12-07: the table in bench/README.md is from then);
- ``elbow 2..10``: gpuseg's rule over 2..10 (how much the range matters);
- ``elbow + scores``: the rule before: the best composite of silhouette, Davies-Bouldin and
  Calinski-Harabasz among elbow..elbow+2;
- ``silhouette``: the best silhouette;
- ``gap``: Tibshirani's gap statistic (5 uniform references in the box of the principal
  axes, K-means inertia; the smallest k with gap(k) >= gap(k+1) - s(k+1));
- ``instability``: Haslbeck & Wulff's instability corrected by random partitions of the
  same sizes (4 pairs of half samples, refits predicting every customer; the lowest);
- ``BIC``: of a Gaussian mixture with one shared covariance (the model adaptive K-means
  fits), with the segments as they are.

    python bench/krule.py

Prints how often each rule lands within 1 of the true k, and the ARI at the k it chose.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SCENARIOS = ("personas", "three", "ten", "imbalanced", "overlap", "noise", "small", "orders", "orders_dates",
             "nonlinear")
KS = list(range(2, 13))


def sweep(name: str, seed: int = 0) -> dict:
    import pandas as pd

    from gpuseg.config import build_config
    from gpuseg.io.scenarios import generate_scenario
    from gpuseg.pipeline import run
    from quality import BENCH_SIZES

    log, truth, sc = generate_scenario(name, BENCH_SIZES[name], seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        data, truth_path = Path(tmp) / "d.parquet", Path(tmp) / "t.parquet"
        log.to_parquet(data)
        truth.to_parquet(truth_path)
        result = run(build_config(input=str(data), truth=str(truth_path), out=str(Path(tmp) / "o"), report=False,
                                  stability=0, seed=seed, format=sc.kind, methods="adaptive_kmeans", k="2-12"))
        from gpuseg.model import load_model

        model = load_model(Path(tmp) / "o" / "model")
        feats = pd.read_parquet(Path(tmp) / "o" / "features.parquet")
        X = model.scaler.transform(feats[model.feature_names].to_numpy(np.float64)).astype(np.float64)
    rows = result.metrics["methods"]["adaptive_kmeans"]["sweep"]
    return {"true_k": sc.k, "rows": rows, "X": X}


def gap_k(X: np.ndarray, inertia: dict[int, float], seed: int = 0, refs: int = 5) -> int:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    P = Xc @ Vt.T
    lo, hi = P.min(axis=0), P.max(axis=0)
    gap, sd = {}, {}
    for k in KS:
        ref = [np.log(KMeans(k, n_init=2, random_state=b).fit(rng.uniform(lo, hi, size=P.shape)).inertia_)
               for b in range(refs)]
        gap[k] = float(np.mean(ref) - np.log(inertia[k]))
        sd[k] = float(np.std(ref) * np.sqrt(1 + 1 / refs))
    return next((k for k in KS[:-1] if gap[k] >= gap[k + 1] - sd[k + 1]), KS[-1])


def instability_k(X: np.ndarray, seed: int = 0, pairs: int = 4) -> int:
    from sklearn.metrics.cluster import pair_confusion_matrix

    from gpuseg.cluster import make_estimator

    rng = np.random.default_rng(seed)
    n = len(X)
    score = {}
    for k in KS:
        ins, rnd = [], []
        for p in range(pairs):
            lab = []
            for q in range(2):
                idx = rng.choice(n, n // 2, replace=False)
                est = make_estimator("adaptive_kmeans", k, seed + 10 * p + q).fit(X[idx].astype(np.float32))
                lab.append(np.asarray(est.predict(X.astype(np.float32))))
            C = pair_confusion_matrix(*lab)
            ins.append((C[0, 1] + C[1, 0]) / C.sum())
            C = pair_confusion_matrix(rng.permutation(lab[0]), rng.permutation(lab[1]))
            rnd.append((C[0, 1] + C[1, 0]) / C.sum())
        score[k] = np.mean(ins) / max(np.mean(rnd), 1e-12)
    return min(score, key=score.get)


def bic_k(X: np.ndarray, seed: int = 0) -> int:
    """BIC of the classification likelihood of a shared-covariance mixture at each k."""
    from gpuseg.cluster import make_estimator

    n, d = X.shape
    best = {}
    for k in KS:
        labels = np.asarray(make_estimator("adaptive_kmeans", k, seed).fit(X.astype(np.float32)).labels_)
        W = sum(np.cov(X[labels == c].T, bias=True) * (labels == c).sum() for c in range(k)) / n
        _, logdet = np.linalg.slogdet(W + 1e-6 * np.eye(d))
        counts = np.bincount(labels, minlength=k)
        loglik = -0.5 * n * logdet + float((counts[counts > 0] * np.log(counts[counts > 0] / n)).sum())
        best[k] = -2 * loglik + (k * d + k - 1 + d * (d + 1) / 2) * np.log(n)
    return min(best, key=best.get)


def main() -> int:
    from gpuseg.evaluate.selection import choose_k, composite_scores, knee_point

    t0 = time.perf_counter()
    out = {}
    rules = ["elbow", "elbow 2..10", "elbow + scores", "silhouette", "gap", "instability", "BIC"]
    print("| scenario | true k | " + " | ".join(rules) + " |\n|---|---:|" + "---:|" * len(rules))
    for name in SCENARIOS:
        s = sweep(name)
        rows = {r["k"]: r for r in s["rows"] if r["status"] == "ok"}
        ks = sorted(rows)
        inertia = {k: rows[k]["inertia"] for k in ks}
        knee = knee_point(ks, [inertia[k] for k in ks])
        comp = composite_scores(ks, [rows[k]["silhouette"] for k in ks], [rows[k]["davies_bouldin"] for k in ks],
                                [rows[k]["calinski_harabasz"] for k in ks])
        window = [k for k in ks if knee is not None and knee <= k <= knee + 2] or ks
        chosen = {
            "elbow": choose_k(ks, [inertia[k] for k in ks], [rows[k]["silhouette"] for k in ks],
                              [rows[k]["davies_bouldin"] for k in ks], [rows[k]["calinski_harabasz"] for k in ks]).k,
            "elbow 2..10": choose_k(ks[:9], [inertia[k] for k in ks[:9]], [rows[k]["silhouette"] for k in ks[:9]],
                                    [rows[k]["davies_bouldin"] for k in ks[:9]],
                                    [rows[k]["calinski_harabasz"] for k in ks[:9]]).k,
            "elbow + scores": max(window, key=lambda k: (comp[k], -k)),
            "silhouette": max(ks, key=lambda k: rows[k]["silhouette"]),
            "gap": gap_k(s["X"], inertia),
            "instability": instability_k(s["X"]),
            "BIC": bic_k(s["X"]),
        }
        out[name] = {"true_k": s["true_k"], "chosen": chosen,
                     "ari": {r: rows[k]["ari"] for r, k in chosen.items()}}
        print(f"| {name} | {s['true_k']} | " + " | ".join(f"{chosen[r]} ({rows[chosen[r]]['ari']:.2f})"
                                                        for r in rules) + " |", flush=True)
    hits = {r: sum(abs(v["chosen"][r] - v["true_k"]) <= 1 for v in out.values()) for r in rules}
    med = {r: float(np.median([v["ari"][r] for v in out.values()])) for r in rules}
    print("| **within 1 of the true k** | | " + " | ".join(f"{hits[r]}/{len(out)}" for r in rules) + " |")
    print("| **median ARI at that k** | | " + " | ".join(f"{med[r]:.2f}" for r in rules) + " |")
    total = time.perf_counter() - t0
    print(f"\nTotal {total:.0f} s; load {os.getloadavg()[0]:.2f}")
    (HERE / "results" / "krule-cpu.json").write_text(json.dumps({"scenarios": out, "hits": hits, "median_ari": med,
                                                                 "total_s": round(total, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
