"""Cache adaptive K-means sweeps k=2..12 (via gpuseg.pipeline.run) per scenario and seed.

Adapted from bench/krule.py::sweep. Captures, by wrapping gpuseg.pipeline.fit_method
and score_method, the exact clustering-space matrix the fits used (r.Z), the labels per k,
and the truth codes aligned to the rows.
"""
from __future__ import annotations

import os

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCENARIOS = ("personas", "three", "ten", "imbalanced", "overlap", "noise", "small", "orders", "orders_dates",
             "nonlinear")
SEEDS = (0, 1, 2)
CACHE = Path(os.environ.get("KRULE_CACHE", "/tmp/krule-exp/cache"))


def sweep(name: str, seed: int) -> dict:
    import gpuseg.pipeline as P
    from gpuseg.config import build_config
    from gpuseg.io.scenarios import generate_scenario
    from quality import BENCH_SIZES

    cap = {}
    orig_fit, orig_score = P.fit_method, P.score_method

    def fit_wrap(method, X, ks, seed_, *a, **kw):
        run = orig_fit(method, X, ks, seed_, *a, **kw)
        cap["Z"] = np.asarray(X, dtype=np.float64)
        cap["ks"] = list(ks)
        cap["labels"] = {f.k: (None if f.labels is None else np.asarray(f.labels)) for f in run.fits}
        return run

    def score_wrap(X, run, sample_size, seed_, truth_codes=None, truth_mask=None, *a, **kw):
        cap["X"] = np.asarray(X, dtype=np.float64)
        cap["truth"] = None if truth_codes is None else np.asarray(truth_codes)
        cap["truth_mask"] = None if truth_mask is None else np.asarray(truth_mask)
        return orig_score(X, run, sample_size, seed_, truth_codes, truth_mask, *a, **kw)

    P.fit_method, P.score_method = fit_wrap, score_wrap
    try:
        log, truth, sc = generate_scenario(name, BENCH_SIZES[name], seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            data, truth_path = Path(tmp) / "d.parquet", Path(tmp) / "t.parquet"
            log.to_parquet(data)
            truth.to_parquet(truth_path)
            result = P.run(build_config(input=str(data), truth=str(truth_path), out=str(Path(tmp) / "o"),
                                        report=False, stability=0, seed=seed, format=sc.kind,
                                        methods="adaptive_kmeans", k="2-12"))
    finally:
        P.fit_method, P.score_method = orig_fit, orig_score
    rows = result.metrics["methods"]["adaptive_kmeans"]["sweep"]
    chosen = result.metrics["methods"]["adaptive_kmeans"].get("chosen_k")
    return {"true_k": sc.k, "rows": rows, "cap": cap, "chosen": chosen}


def main() -> None:
    import pickle
    CACHE.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        for name in SCENARIOS:
            f = CACHE / f"{name}_s{seed}.pkl"
            if f.exists():
                continue
            t0 = time.perf_counter()
            s = sweep(name, seed)
            cap = s["cap"]
            ok = {r["k"]: r for r in s["rows"] if r["status"] == "ok"}
            out = {"name": name, "seed": seed, "true_k": s["true_k"], "rows": s["rows"], "chosen": s["chosen"],
                   "X": cap["X"], "Z": None if cap["Z"] is cap["X"] or np.array_equal(cap["Z"], cap["X"]) else cap["Z"],
                   "labels": cap["labels"], "truth": cap["truth"], "truth_mask": cap["truth_mask"],
                   "inertia": {k: ok[k]["inertia"] for k in sorted(ok)},
                   "ari": {k: ok[k].get("ari") for k in sorted(ok)}}
            with open(f, "wb") as fh:
                pickle.dump(out, fh)
            print(f"{name} s{seed}: true {s['true_k']} chosen {s['chosen']} X{cap['X'].shape} "
                  f"Z==X {out['Z'] is None} {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
