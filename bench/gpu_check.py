"""One-call GPU check: everything a lent GPU machine can prove in a few minutes.

    python bench/gpu_check.py [--rows 1000000] [--wheels DIR] [--json PATH]

In one run, on the machine it runs on:

1. **Environment**: Python, CuPy and its device, torch's CUDA, RAPIDS (cuDF, cuML).
2. **cupy tier**: ``pytest -m cupy`` (gpuseg's own array code on CuPy: metrics, the PSO
   kernel, mixtures, SOM, mini-batch K-means, consensus alignment, confidence, DLPack into
   torch), with ``gpuseg`` taken from this checkout (``PYTHONPATH``; nothing is installed
   into the machine's Python). pytest and hypothesis come from ``--wheels DIR`` when the
   machine lacks them (``python bench/gpu_check.py --fetch-wheels`` downloads them into
   ``bench/data/wheels`` here; carry that folder to the device).
3. **Timings**: the xp estimators and kernels at ``--rows`` x 32 float32 on the GPU
   against the same code on the machine's CPU cores (NumPy, threads = cores), one table
   of seconds and ratios.
4. **rapids tier**, when cuDF and cuML import (``../shared/tools/device-rapids`` carries
   them): ``pytest -m rapids``.

Where a step cannot run (no CuPy, no device, no RAPIDS, no pytest) it says what it skipped
and why, and the check still ends with its table and exit code 0; a failed test, or a
timed case that raised, gives exit code 1. (The GPU-against-CPU equality of results is the
tests' business: the timings only time.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

WHEELS = HERE / "data" / "wheels"
TEST_PACKAGES = ("pytest", "hypothesis")


def environment() -> dict:
    from gpuseg import backend

    cupy_probe, rapids_probe = backend.probe_cupy(), backend.probe_gpu()
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpu": backend.cpu_label(),
           "cupy": {"available": cupy_probe.available, "reason": cupy_probe.reason, "device": cupy_probe.label},
           "rapids": {"available": rapids_probe.available, "reason": rapids_probe.reason}}
    try:
        import torch

        env["torch"] = {"version": torch.__version__, "cuda": bool(torch.cuda.is_available())}
    except ImportError:
        env["torch"] = {"version": None, "cuda": False}
    return env


def _test_path(wheels: Path | None) -> tuple[dict | None, str]:
    """(environment for the pytest subprocess, or None when pytest cannot be had; why)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    missing = [p for p in TEST_PACKAGES if importlib.util.find_spec(p) is None]
    if not missing:
        return env, "pytest and hypothesis installed"
    if wheels is None or not wheels.is_dir() or not any(wheels.glob("*.whl")):
        return None, f"{', '.join(missing)} not installed and no wheels folder (--wheels; --fetch-wheels makes one)"
    target = Path(tempfile.mkdtemp(prefix="gpuseg-check-"))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), "--target",
           str(target), *missing]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"installing {', '.join(missing)} from {wheels} failed: {done.stderr.strip()[-300:]}"
    env["PYTHONPATH"] = os.pathsep.join([str(target), env["PYTHONPATH"]])
    return env, f"{', '.join(missing)} from {wheels}"


def run_tier(marker: str, env: dict | None, why: str, timeout: int, tests: Path = ROOT / "tests") -> dict:
    if env is None:
        return {"status": "skipped", "reason": why}
    # one process on the one GPU: no pytest-xdist workers (tests/conftest.py then accepts and
    # ignores the options pyproject's addopts pass to it)
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", marker, "-p", "no:cacheprovider", "-p", "no:xdist",
           "--continue-on-collection-errors", "--rootdir", str(ROOT), str(tests)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"timed out after {timeout} s", "seconds": timeout}
    tail = [line for line in done.stdout.strip().splitlines() if line.strip()][-1:] or [""]
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"status": "ok" if done.returncode == 0 else ("skipped" if done.returncode == 5 else "failed"),
            "summary": tail[0], "failed": failed[:40], "seconds": round(time.perf_counter() - t0, 1),
            "reason": why if done.returncode != 5 else f"no test selected by -m {marker}"}


def timings(rows: int, seed: int = 0) -> list[dict]:
    """GPU against CPU seconds for the xp code paths (the GPU times include a sync)."""
    import numpy as np

    from gpuseg import backend
    from methods import timed  # bench/methods.py: the best of a few calls

    cp = backend.gpu_module("cupy")
    X, labels, cases = timing_cases(rows, seed)
    Xg, Lg = cp.asarray(X), cp.asarray(labels)
    out = []
    for name, fn in cases.items():
        row = {"case": name, "rows": rows}
        try:
            fn(cp, Xg[:1000], Lg[:1000])  # compile kernels, warm the pool
            cp.cuda.Device().synchronize()
            row["gpu_s"] = timed(lambda: (fn(cp, Xg, Lg), cp.cuda.Device().synchronize()))
            row["cpu_s"] = timed(lambda: fn(np, X, labels))
            row["speedup"] = row["cpu_s"] / row["gpu_s"] if row["gpu_s"] > 0 else None
        except Exception as exc:  # noqa: BLE001 - a check reports, it does not stop
            row["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        out.append(row)
    return out


def timing_cases(rows: int, seed: int = 0) -> tuple:
    """(X, labels, name -> fn(xp, X, labels)): the timed cases, written once for NumPy and
    CuPy (the CPU side of the check runs them on NumPy; tests run them here)."""
    import numpy as np

    from gpuseg.cluster import GaussianMixture, MiniBatchKMeans, PSOKMeans
    from gpuseg.evaluate.metrics import davies_bouldin_score, silhouette_score
    from gpuseg.segments.value import BGNBD

    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(8, 32)).astype(np.float32)
    X = (centers[rng.integers(0, 8, rows)] + rng.normal(size=(rows, 32)).astype(np.float32))
    labels = rng.integers(0, 8, rows).astype(np.int32)
    x = rng.poisson(1.5, rows).astype(np.float64)
    t_x = np.minimum(rng.uniform(0, 300, rows), 300) * (x > 0)
    T = np.full(rows, 365.0)
    cases = {
        "PSOKMeans fit (k=8, 16 particles, 20 iterations; the CUDA kernel)":
            lambda xp, A, L: PSOKMeans(8, n_particles=16, max_iter=20, random_state=0).fit(A),
        "GaussianMixture fit (k=8, diag, 20 iterations)":
            lambda xp, A, L: GaussianMixture(8, covariance_type="diag", max_iter=20, random_state=0).fit(A),
        "MiniBatchKMeans fit (k=8)": lambda xp, A, L: MiniBatchKMeans(8, random_state=0).fit(A),
        "silhouette (20,000-row sample)": lambda xp, A, L: silhouette_score(A, L, sample_size=20_000, random_state=0),
        "Davies-Bouldin": lambda xp, A, L: davies_bouldin_score(A, L),
        "BG/NBD fit (lifetime value)": lambda xp, A, L: BGNBD().fit(xp.asarray(x), xp.asarray(t_x), xp.asarray(T)),
    }
    return X, labels, cases


def fetch_wheels(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.12",
           "--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(folder), *TEST_PACKAGES]
    return subprocess.run(cmd).returncode


def table(report: dict) -> str:
    env = report["environment"]
    lines = [f"GPU check on {env['cpu']}, Python {env['python']}; "
             f"CuPy device: {env['cupy']['device'] or env['cupy']['reason']}; "
             f"torch CUDA: {env['torch']['cuda']}; RAPIDS: {'yes' if env['rapids']['available'] else env['rapids']['reason']}",
             "", "| step | status | detail |", "|---|---|---|"]
    for tier in ("cupy", "rapids"):
        t = report["tiers"][tier]
        detail = t.get("summary") or t.get("reason", "")
        if t.get("failed"):
            detail += "; " + "; ".join(t["failed"][:5])
        lines.append(f"| pytest -m {tier} | {t['status']} | {detail} |")
    tm = report["timings"]
    if isinstance(tm, dict):
        lines.append(f"| timings | {tm['status']} | {tm['reason']} |")
    else:
        lines += ["", f"| case ({tm[0]['rows']:,} x 32 float32) | GPU s | CPU s | CPU / GPU |", "|---|---:|---:|---:|"]
        for r in tm:
            if "error" in r:
                lines.append(f"| {r['case']} | error | | {r['error']} |")
            else:
                lines.append(f"| {r['case']} | {r['gpu_s']:.3f} | {r['cpu_s']:.3f} | {r['speedup']:.1f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the timing data (default 1,000,000)")
    ap.add_argument("--wheels", type=Path, default=WHEELS, help="offline wheels of pytest and hypothesis")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here (default: $OUT/gpu-check.json "
                    "when $OUT is set, else bench/results/gpu-check.json)")
    ap.add_argument("--tier-timeout", type=int, default=240, help="seconds per pytest tier (default 240)")
    ap.add_argument("--fetch-wheels", action="store_true", help="download the test wheels into --wheels and stop")
    args = ap.parse_args(argv)
    if args.fetch_wheels:
        return fetch_wheels(args.wheels)
    t0 = time.perf_counter()
    env = environment()
    report: dict = {"environment": env, "tiers": {}}
    test_env, why = _test_path(args.wheels)
    if env["cupy"]["available"]:
        report["tiers"]["cupy"] = run_tier("cupy", test_env, why, args.tier_timeout)
    else:
        report["tiers"]["cupy"] = {"status": "skipped", "reason": env["cupy"]["reason"]}
    if env["rapids"]["available"]:
        report["tiers"]["rapids"] = run_tier("rapids", test_env, why, args.tier_timeout)
    else:
        report["tiers"]["rapids"] = {"status": "skipped", "reason": env["rapids"]["reason"]}
    if env["cupy"]["available"]:
        report["timings"] = timings(args.rows)
    else:
        report["timings"] = {"status": "skipped", "reason": env["cupy"]["reason"]}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(table(report))
    print(f"\nTotal {report['seconds']} s")
    out = args.json or (Path(os.environ["OUT"]) / "gpu-check.json" if os.environ.get("OUT") else
                        HERE / "results" / "gpu-check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"JSON: {out}")
    failed = any(t["status"] == "failed" for t in report["tiers"].values()) or (
        isinstance(report["timings"], list) and any("error" in r for r in report["timings"]))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
