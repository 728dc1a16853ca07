"""Fit seconds per clustering method, gpuseg vs scikit-learn where it has the method.

Data: a float32 mixture of 8 Gaussian segments with unequal spreads in 32 dimensions
(standardised, like gpuseg's scaled features), at each size. Every method fits k = 8. Each
(method, engine) pair runs in this process one after the other on the same array, so the
ratio compares like with like; GaussianMixture runs a fixed number of EM iterations on
both sides (``--gmm-iter``) so that the time is per the same work.

    python bench/methods.py --sizes 100k,1M
    python bench/methods.py --sizes 100k,1M --device gpu     # on a GPU machine: adds GPU vs CPU
    python bench/methods.py --pso-only --sizes 1M --device gpu  # PSO kernel vs vectorised form

Results: a table on stdout and JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

K = 8
D = 32


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * mult)


def make_data(n: int, seed: int = 0, *, d: int = D, center_scale: float = 3.0,
              spread: tuple[float, float] = (0.6, 1.6), truth: bool = False):
    """K Gaussian segments in ``d`` standardised float32 dimensions (and each row's segment
    with ``truth``)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, center_scale, size=(K, d))
    spreads = rng.uniform(*spread, size=K)
    which = rng.integers(0, K, size=n)
    X = centers[which] + rng.standard_normal((n, d)) * spreads[which, None]
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    return (X, which) if truth else X


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def sync(xp) -> None:
    if xp.__name__ == "cupy":
        xp.cuda.get_current_stream().synchronize()


def cases(n: int, gmm_iter: int):
    """(label, gpuseg method, parameter overrides, scikit-learn factory or None, note).

    gpuseg's side runs each method as ``gpuseg run`` does: with the registry's defaults for
    the device (on the CPU DBSCAN/HDBSCAN fit a 20,000-row sample and label the rest).
    """

    def sk(name, **kw):
        def make():
            import sklearn.cluster as skc
            import sklearn.mixture as skm

            return (getattr(skc, name, None) or getattr(skm, name))(**kw)

        return make

    gmm = {"max_iter": gmm_iter, "tol": 0.0}
    out = [
        ("kmeans", "kmeans", {}, sk("KMeans", n_clusters=K, random_state=0), "scikit-learn itself on the CPU"),
        ("minibatch_kmeans", "minibatch_kmeans", {}, sk("MiniBatchKMeans", n_clusters=K, random_state=0), ""),
        ("gmm (diag)", "gmm", {"covariance_type": "diag", **gmm},
         sk("GaussianMixture", n_components=K, covariance_type="diag", random_state=0, **gmm),
         f"{gmm_iter} EM iterations each"),
        ("gmm (full)", "gmm", {"covariance_type": "full", **gmm},
         sk("GaussianMixture", n_components=K, covariance_type="full", random_state=0, **gmm),
         f"{gmm_iter} EM iterations each"),
        ("pso_kmeans", "pso_kmeans", {}, None, "32 particles"),
        ("som", "som", {}, None, ""),
        ("ward", "ward", {}, sk("AgglomerativeClustering", n_clusters=K, linkage="ward") if n <= 20_000 else None,
         "" if n <= 20_000 else "scikit-learn's exact Ward needs O(n^2) memory"),
        ("dbscan", "dbscan", {}, None, "eps from the k-distance knee"),
        ("hdbscan", "hdbscan", {}, None, ""),
    ]
    return out


def bench_methods(sizes, device: str, gmm_iter: int, only: list[str] | None) -> list[dict]:
    from gpuseg import backend
    from gpuseg.cluster import make_estimator, method_params

    be = backend.select(device)
    backend.warm_up(be)  # library imports are not fit time
    for name in ("sklearn.cluster", "sklearn.mixture"):
        importlib.import_module(name)

    rows = []
    for n in sizes:
        X = make_data(n)
        Xd = be.xp.asarray(X)
        for name, method, overrides, ref, note in cases(n, gmm_iter):
            if only and method not in only:
                continue
            row = {"n": n, "method": name, "note": note, "device": be.device_label}

            def ours(gpu: bool):
                return make_estimator(method, K, 0, {**method_params(method, gpu=gpu), **overrides})

            est = ours(be.is_gpu)
            row["gpuseg_s"] = timed(lambda: (est.fit(Xd), sync(be.xp)))
            if getattr(est, "sampled_", False):
                row["note"] = (note + "; " if note else "") + "fitted on a sample"
            if be.is_gpu:
                cpu_est = ours(False)
                row["gpuseg_cpu_s"] = timed(lambda: cpu_est.fit(X))
            if ref is not None:
                r = ref()
                row["sklearn_s"] = timed(lambda: r.fit(X))
                row["speedup_vs_sklearn"] = row["sklearn_s"] / row["gpuseg_s"]
            if "gpuseg_cpu_s" in row:
                row["gpu_vs_cpu"] = row["gpuseg_cpu_s"] / row["gpuseg_s"]
            print(format_row(row), flush=True)
            rows.append(row)
    return rows


def bench_pso_fitness(sizes, device: str, particles: int = 32, iters: int = 20) -> list[dict]:
    """One swarm iteration's fitness: the CUDA kernel vs the vectorised xp form."""
    from gpuseg import backend
    from gpuseg.cluster import pso

    be = backend.select(device)
    rows = []
    for n in sizes:
        X = be.xp.asarray(make_data(n))
        rng = np.random.default_rng(0)
        swarm = be.xp.asarray(rng.normal(size=(particles, K, D)).astype(np.float32))
        row = {"n": n, "particles": particles, "k": K, "d": D, "device": be.device_label}
        for method in ("vectorized", "kernel"):
            if method == "kernel" and not be.is_gpu:
                continue
            fn = lambda: pso.swarm_inertia(X, swarm, method=method)  # noqa: E731
            fn()
            sync(be.xp)
            t = time.perf_counter()
            for _ in range(iters):
                fn()
            sync(be.xp)
            row[f"{method}_ms"] = (time.perf_counter() - t) / iters * 1000
        print(row, flush=True)
        rows.append(row)
    return rows


def format_row(r: dict) -> str:
    s = f"{r['n']:>9,} {r['method']:<18} gpuseg {r['gpuseg_s']:8.3f} s"
    if "gpuseg_cpu_s" in r:
        s += f" | cpu {r['gpuseg_cpu_s']:8.3f} s ({r['gpu_vs_cpu']:.1f}x)"
    if "sklearn_s" in r:
        s += f" | sklearn {r['sklearn_s']:8.3f} s ({r['speedup_vs_sklearn']:.2f}x)"
    return s + (f"  [{r['note']}]" if r["note"] else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--gmm-iter", type=int, default=20)
    ap.add_argument("--methods", default="", help="comma-separated subset (names as in the table)")
    ap.add_argument("--pso-only", action="store_true", help="only the PSO fitness comparison")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from gpuseg.backend import cpu_label

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    print(f"bench/methods.py on {platform.node()}: {cpu_label()}; device={args.device}", flush=True)
    result = {"machine": f"{platform.node()}: {cpu_label()}", "device": args.device}
    if not args.pso_only:
        only = [m.strip() for m in args.methods.split(",") if m.strip()] or None
        result["methods"] = bench_methods(sizes, args.device, args.gmm_iter, only)
    result["pso_fitness"] = bench_pso_fitness(sizes, args.device)
    out = Path(args.out) if args.out else HERE / "results" / f"methods-{args.device}-{platform.node()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
