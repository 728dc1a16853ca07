"""``gpuseg assign`` throughput: customers per second from raw events with a saved model.

A model is trained once (``gpuseg run`` on a 20,000-customer synthetic log, K-means and
GMM at k = 6, the model of each saved). Then, for every size, a synthetic REES46-schema
event log of that many customers (about 50 events each; generated once and cached as
Parquet in ``bench/data/``, not timed) is assigned with each model, stage by stage as
``gpuseg assign`` runs them:

- ``load``: read the Parquet file and check it against the model's schema;
- ``clean``: cleaning with the model's fence and fills;
- ``features``: per-customer features with the model's definitions, scaled by its scaler;
- ``assign``: predict, confidence and out-of-distribution flags (``assign_frame``).

Reported: customers per second end to end ("from raw events"), after load (clean +
features + assign, the figure the GPU target refers to) and for the ``assign`` step alone,
with the ``assign`` step of K-means side by side with scikit-learn's nearest-centre
search (``pairwise_distances_argmin``, the notebook way) on the same scaled features, as a
ratio.

    python bench/assign.py --sizes 100k,1M
    python bench/assign.py --sizes 1M,4M --device gpu       # on a GPU machine

Results: a table on stdout and JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from methods import parse_size  # noqa: E402

from gpuseg import backend as _backend  # noqa: E402
from gpuseg.config import build_config  # noqa: E402
from gpuseg.dynamic import assign_frame, clean_like_model, load_input, prepare  # noqa: E402
from gpuseg.io.synthetic import generate_events  # noqa: E402
from gpuseg.model import load_model  # noqa: E402
from gpuseg.pipeline import run  # noqa: E402

METHODS = ("kmeans", "gmm")


def events_file(n: int, seed: int) -> Path:
    """A cached synthetic log of ``n`` customers (generated in blocks to bound memory)."""
    path = HERE / "data" / f"assign-{n}-{seed}.parquet"
    if path.is_file():
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    block = 100_000
    writer = None
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, n, block)):
        ev, _ = generate_events(min(block, n - start), seed=seed * 1000 + i)
        ev["user_id"] = ev["user_id"] + i * 1_000_000_000  # distinct customers across blocks
        for col in ("event_type", "category_code", "brand", "user_session"):
            ev[col] = ev[col].astype(str).where(ev[col].notna(), None)
        table = pa.Table.from_pandas(ev, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
        print(f"  generated {min(start + block, n):,} of {n:,} customers ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
    writer.close()
    tmp.rename(path)
    return path


def train(folder: Path, device: str) -> dict[str, Path]:
    """One saved model per method, trained on 20,000 synthetic customers."""
    data = events_file(20_000, 99)
    models = {}
    for method in METHODS:
        out = folder / method
        run(build_config(input=str(data), out=str(out), methods=method, k="6", stability=0, report=False,
                         device=device))
        models[method] = out / "model"
    return models


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    _backend.synchronize()
    return out, time.perf_counter() - t0


def bench(path: Path, model_dir: Path, be) -> dict:
    model = load_model(model_dir)
    loaded, t_load = timed(lambda: load_input(model, str(path), be))
    rows = len(loaded.frame)
    cleaned, t_clean = timed(lambda: clean_like_model(model, loaded, be))
    loaded = None  # noqa: F841 (free the events before the features)
    prepared, t_feat = timed(lambda: prepare(model, cleaned))
    cleaned = None  # noqa: F841
    frame, t_assign = timed(lambda: assign_frame(model, prepared))
    n = len(frame)
    out = {"customers": n, "rows": rows, "load_s": t_load, "clean_s": t_clean, "features_s": t_feat,
           "assign_s": t_assign, "per_s_end_to_end": n / (t_load + t_clean + t_feat + t_assign),
           "per_s_after_load": n / (t_clean + t_feat + t_assign), "per_s_assign": n / t_assign,
           "ood_share": float(frame["out_of_distribution"].mean())}
    if model.method == "kmeans":
        from sklearn.metrics import pairwise_distances_argmin

        X = np.asarray(_backend.to_host(prepared.X))
        centers = model.arrays["centers"]
        _, t_sk = timed(lambda: pairwise_distances_argmin(X, centers))
        _, t_ours = timed(lambda: model.predict(prepared.X))
        out.update(sklearn_predict_s=t_sk, gpuseg_predict_s=t_ours, predict_speedup=t_sk / t_ours)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100k,1M", help="customers per log, e.g. 100k,1M")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    be = _backend.select(args.device)
    print(f"device: {be.device_label}", file=sys.stderr)
    results = {"device": be.device_label, "backend": be.name, "platform": platform.platform(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        models = train(Path(tmp), args.device)
        for size in (parse_size(s) for s in args.sizes.split(",")):
            path = events_file(size, args.seed)
            for method, model_dir in models.items():
                r = bench(path, model_dir, be)
                r["method"] = method
                results["runs"].append(r)
                print(f"{method:>7} {r['customers']:>10,} customers {r['rows']:>12,} rows | load {r['load_s']:6.1f} s "
                      f"clean {r['clean_s']:6.1f} s features {r['features_s']:6.1f} s assign {r['assign_s']:6.2f} s | "
                      f"{r['per_s_end_to_end']:>10,.0f}/s from raw events, {r['per_s_after_load']:>10,.0f}/s after "
                      f"load, {r['per_s_assign']:>12,.0f}/s assign step"
                      + (f" | predict vs sklearn {r['predict_speedup']:.2f}x" if "predict_speedup" in r else ""),
                      flush=True)
    out = HERE / "results" / f"assign-{be.name}-{platform.node() or 'host'}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
