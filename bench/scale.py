"""Scale-out: events per second, one process vs Dask, on the same generated Parquet parts.

For every size, a synthetic REES46-schema log (about 52 events per customer) is generated
once into 8 Parquet parts under ``bench/data/scale-<events>/`` (not timed). Then ``gpuseg
run`` (K-means at k = 6, no stability refits, no report: the data stages dominate) runs on
it, each engine in a fresh process, side by side:

- ``single``: one process (pandas on the CPU, cuDF with ``--device gpu``);
- ``dask``: ``--cluster local`` (a LocalCluster of ``--workers`` processes on the CPU, a
  LocalCUDACluster with ``--device gpu``);
- ``dask-kmeans`` (with ``--kmeans-on-workers``): the same, and K-means on the workers
  (``[dask] kmeans = "workers"``); its cluster stage is compared with the single run's,
  and its segments too (adjusted Rand index).

Reported from each run's ``metrics.json``: the seconds of load, clean and features, events
per second through them ("feature stage"), the total seconds and events per second end to
end, and the Dask/single ratio. The two runs' features are compared (they must be equal).

    python bench/scale.py --sizes 10M,40M
    python bench/scale.py --sizes 40M,100M --device gpu          # on a GPU machine

Results: a table on stdout and JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from methods import parse_size  # noqa: E402

PARTS = 8
EVENTS_PER_CUSTOMER = 52


def data_folder(events: int) -> Path:
    """Generated once, in blocks of 100,000 customers, into PARTS Parquet files."""
    import pandas as pd

    from gpuseg.io.synthetic import generate_events

    folder = HERE / "data" / f"scale-{events}"
    if (folder / "_done").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    customers = max(events // EVENTS_PER_CUSTOMER, 1000)
    block = 100_000
    blocks = [(i, min(block, customers - start)) for i, start in enumerate(range(0, customers, block))]
    per_part = int(np.ceil(len(blocks) / PARTS))
    t0 = time.perf_counter()
    for p in range(PARTS):
        frames = []
        for i, n in blocks[p * per_part:(p + 1) * per_part]:
            ev, _ = generate_events(n, seed=10_000 + i)
            ev["user_id"] = ev["user_id"] + i * 1_000_000_000
            frames.append(ev)
        if frames:
            pd.concat(frames, ignore_index=True).to_parquet(folder / f"part-{p}.parquet", row_group_size=1_000_000)
        print(f"  part {p + 1}/{PARTS} written ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    (folder / "_done").write_text("")
    return folder


def run_engine(folder: Path, engine: str, device: str, workers: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "gpuseg", "run", "--input", str(folder), "--methods", "kmeans", "--k", "6",
           "--stability", "0", "--no-report", "--device", device, "--out", str(out), "-q"]
    if engine.startswith("dask"):
        cmd += ["--cluster", "local"] + (["--workers", str(workers)] if workers else [])
    if engine == "dask-kmeans":  # K-means on the workers too
        (out.parent / "kmeans.toml").write_text('[dask]\nkmeans = "workers"\n')
        cmd += ["--config", str(out.parent / "kmeans.toml")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    t = m["timings"]
    data_s = t["load"] + t["clean"] + t["features"]
    rows = m["data"]["rows_read"]
    return {"engine": engine, "events": rows, "customers": m["data"]["customers"], "load_s": t["load"],
            "clean_s": t["clean"], "features_s": t["features"], "data_stages_s": data_s, "cluster_s": t["cluster"],
            "kmeans_inertia": m["methods"]["kmeans"].get("inertia"),
            "total_s": t["total"],
            "wall_s": wall, "feature_events_per_s": rows / data_s, "end_to_end_events_per_s": rows / t["total"],
            "device": m["device"]["label"], "dask": m.get("dask")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10M", help="events, e.g. 10M,40M")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--workers", type=int, default=0, help="Dask workers (default: Dask's choice)")
    ap.add_argument("--kmeans-on-workers", action="store_true",
                    help="a third run: Dask with K-means on the workers ([dask] kmeans = workers)")
    args = ap.parse_args()
    import pandas as pd

    results = {"platform": platform.platform(), "runs": []}
    for size in (parse_size(s) for s in args.sizes.split(",")):
        folder = data_folder(size)
        with tempfile.TemporaryDirectory() as tmp:
            runs = {}
            for engine in ("single", "dask") + (("dask-kmeans",) if args.kmeans_on_workers else ()):
                r = run_engine(folder, engine, args.device, args.workers, Path(tmp) / engine)
                runs[engine] = r
                results["runs"].append(r)
                print(f"{engine:>11} {r['events']:>12,} events {r['customers']:>10,} customers | load {r['load_s']:6.1f} s "
                      f"clean {r['clean_s']:6.1f} s features {r['features_s']:6.1f} s | "
                      f"{r['feature_events_per_s']:>10,.0f} events/s through features, "
                      f"{r['end_to_end_events_per_s']:>10,.0f} events/s end to end ({r['total_s']:.1f} s)", flush=True)
            a = pd.read_parquet(Path(tmp) / "single" / "features.parquet")
            b = pd.read_parquet(Path(tmp) / "dask" / "features.parquet")
            same = a.shape == b.shape and bool(np.allclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float),
                                                           rtol=1e-9, atol=1e-9))
            ratio = runs["single"]["data_stages_s"] / runs["dask"]["data_stages_s"]
            runs["dask"]["features_equal_single"] = same
            runs["dask"]["speedup_data_stages"] = ratio
            print(f"  dask / single: {ratio:.2f}x on the data stages; features equal: {same}", flush=True)
            if "dask-kmeans" in runs:
                from sklearn.metrics import adjusted_rand_score

                sa = pd.read_parquet(Path(tmp) / "single" / "segments.parquet")["segment"]
                sb = pd.read_parquet(Path(tmp) / "dask-kmeans" / "segments.parquet")["segment"]
                ari = float(adjusted_rand_score(sa, sb))
                k_ratio = runs["single"]["cluster_s"] / runs["dask-kmeans"]["cluster_s"]
                runs["dask-kmeans"].update(ari_vs_single=ari, speedup_cluster=k_ratio)
                print(f"  K-means on the workers / in-process: {k_ratio:.2f}x on the cluster stage; "
                      f"ARI of the segments vs single: {ari:.4f}; inertia {runs['dask-kmeans']['kmeans_inertia']:,.1f} "
                      f"vs {runs['single']['kmeans_inertia']:,.1f}", flush=True)
    out = HERE / "results" / f"scale-{args.device}-{platform.node() or 'host'}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
