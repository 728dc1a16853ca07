"""Prediction strength (Tibshirani & Walther 2005) with gpuseg's adaptive K-means, cached per run.

2-fold: random halves A, B; fit on each at k; for test half T and train half R,
ps = min over test clusters j of the share of pairs in j that R's model (predict) also puts together.
Averaged over both directions and `reps` random splits. Output cache/ps_<name>_s<seed>.pkl: {k: ps}.
"""
from __future__ import annotations

import os

import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
CACHE = Path(os.environ.get("KRULE_CACHE", "/tmp/krule-exp/cache"))
KS = list(range(2, 13))


def ps_pair(lab_test: np.ndarray, pred_train: np.ndarray, k: int) -> float:
    worst = 1.0
    for j in range(k):
        m = lab_test == j
        nj = int(m.sum())
        if nj < 2:
            continue
        c = np.bincount(pred_train[m]).astype(float)
        worst = min(worst, float((c * (c - 1)).sum() / (nj * (nj - 1))))
    return worst


def prediction_strength(X: np.ndarray, seed: int, reps: int = 2) -> dict[int, float]:
    from gpuseg.cluster import make_estimator
    rng = np.random.default_rng(1000 + seed)
    X32 = X.astype(np.float32)
    n = len(X)
    out = {k: [] for k in KS}
    for r in range(reps):
        perm = rng.permutation(n)
        halves = [perm[: n // 2], perm[n // 2:]]
        for k in KS:
            ests = [make_estimator("adaptive_kmeans", k, seed + 100 * r + h).fit(X32[idx]) for h, idx in enumerate(halves)]
            for te, tr in ((0, 1), (1, 0)):
                lab_test = np.asarray(ests[te].labels_)
                pred = np.asarray(ests[tr].predict(X32[halves[te]]))
                out[k].append(ps_pair(lab_test, pred, k))
    return {k: float(np.mean(v)) for k, v in out.items()}


if __name__ == "__main__":
    files = sorted(CACHE.glob("*_s[0-9].pkl"))
    only = sys.argv[1:]  # optional seeds
    for f in files:
        d = pickle.load(open(f, "rb"))
        if only and str(d["seed"]) not in only:
            continue
        o = CACHE / f"ps_{f.name}"
        if o.exists():
            continue
        t0 = time.perf_counter()
        ps = prediction_strength(d["X"], d["seed"])
        pickle.dump(ps, open(o, "wb"))
        print(d["name"], d["seed"], d["true_k"], " ".join(f"{k}:{v:.2f}" for k, v in ps.items()),
              f"{time.perf_counter() - t0:.0f}s", flush=True)
