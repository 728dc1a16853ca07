"""Models on a UMAP embedding: how often the saved model's placement gives the segment.

A saved model cannot hold a fitted UMAP (neither umap-learn's nor cuML's can be stored
without pickle), so it places a customer at the inverse-distance weighted mean of the UMAP
coordinates of its nearest training rows (``gpuseg.embed.projection.knn_place``). This
script measures that approximation on three synthetic logs: 2,000 and 5,000 customers of
the default personas (``gpuseg.io.synthetic.generate_events``) and 3,000 of the
``overlap`` scenario (``gpuseg.io.scenarios``). Each is run as

    gpuseg run --input LOG --out DIR --embed umap --methods kmeans --stability 0 --no-report

(gpuseg's defaults otherwise: 8 UMAP dimensions, UMAP's 15 neighbours, k by the elbow),
and then, per log:

- ``training``: the share of training customers to whom the saved model (``assign``'s
  ``predict``) gives the run's segment;
- ``leave_one_out``: the share that keep their segment when placed from the other
  training rows only (each customer left out of the rows in turn, the model's K-means
  centres kept);
- ``held_out_vs_transform``: a fifth of the customers held out (seeded), UMAP (same
  parameters) fitted on the rest and K-means (the run's k) on that embedding; the share of
  the held-out customers that the placement and umap-learn's own ``transform`` put in the
  same segment.

    python bench/umap_place.py                  # writes bench/results/umap-place.json

It takes a few minutes on a CPU, most of it compiling umap-learn (numba) and its fits.
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

from gpuseg import __version__  # noqa: E402
from gpuseg.backend import to_host  # noqa: E402
from gpuseg.cluster import make_estimator  # noqa: E402
from gpuseg.config import build_config  # noqa: E402
from gpuseg.embed.projection import UMAP, knn_place  # noqa: E402
from gpuseg.io.scenarios import generate_scenario  # noqa: E402
from gpuseg.io.synthetic import generate_events, write_events  # noqa: E402
from gpuseg.model import load_model  # noqa: E402
from gpuseg.pipeline import run  # noqa: E402

#: (label, scenario or None for the default personas, customers)
DATASETS = (("personas-2000", None, 2000), ("personas-5000", None, 5000), ("overlap-3000", "overlap", 3000))


def _log(scenario: str | None, customers: int, seed: int):
    if scenario is None:
        return generate_events(customers, seed=seed)[0]
    return generate_scenario(scenario, customers, seed=seed)[0]


def _segments_of(model, Z: np.ndarray) -> np.ndarray:
    """The saved model's segments for rows already in its embedding (what ``predict`` does
    after placing them)."""
    return np.asarray(to_host(model._segments(model._predict_labels(Z.astype(np.float32)))))


def _leave_one_out(model, rows: np.ndarray, coords: np.ndarray, k: int) -> np.ndarray:
    """Each row placed from all the other training rows."""
    placed = np.empty((rows.shape[0], coords.shape[1]))
    keep = np.ones(rows.shape[0], dtype=bool)
    for i in range(rows.shape[0]):
        keep[i] = False
        placed[i] = knn_place(rows[i : i + 1], rows[keep], coords[keep], k)[0]
        keep[i] = True
    return _segments_of(model, placed)


def _held_out(X: np.ndarray, k_segments: int, n_neighbors: int, n_components: int, seed: int) -> dict:
    """A fifth held out: the placement against umap-learn's transform, K-means on the rest."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(X.shape[0])
    test, train = np.sort(order[: X.shape[0] // 5]), np.sort(order[X.shape[0] // 5 :])
    u = UMAP(n_components, n_neighbors=n_neighbors, random_state=seed).fit(X[train])
    km = make_estimator("kmeans", k_segments, seed).fit(u.embedding_)
    by_place = np.asarray(to_host(km.predict(knn_place(X[test], X[train], u.embedding_, n_neighbors)
                                             .astype(np.float32))))
    by_transform = np.asarray(to_host(km.predict(u.transform(X[test]))))
    return {"held_out": int(test.size), "fitted_on": int(train.size), "k": int(k_segments),
            "agreement": float((by_place == by_transform).mean())}


def measure(label: str, scenario: str | None, customers: int, seed: int, tmp: Path) -> dict:
    data = tmp / f"{label}.parquet"
    write_events(_log(scenario, customers, seed), data)
    out = tmp / label
    t0 = time.perf_counter()
    result = run(build_config(input=str(data), out=str(out), methods="kmeans", embed="umap", stability=0,
                              report=False, seed=seed, device="cpu"))
    run_s = time.perf_counter() - t0
    model = load_model(out / "model")
    entry = model.embedding
    rows = model.arrays["embedding_rows"]
    coords = model.arrays["embedding_coords"]
    features = to_host(result.features)
    segments = to_host(result.segments).set_index("customer_id").loc[features.index, "segment"].to_numpy()
    X = model.scaler.transform(features[model.feature_names].to_numpy(np.float64))
    if not np.allclose(X, rows, atol=1e-5):
        raise RuntimeError("the model's training rows are not the run's scaled features in their order")
    t0 = time.perf_counter()
    training = float((np.asarray(to_host(model.predict(X))) == segments).mean())
    loo = float((_leave_one_out(model, rows, coords, int(entry["n_neighbors"])) == segments).mean())
    place_s = time.perf_counter() - t0
    held = _held_out(rows, model.k, int(entry["n_neighbors"]), int(entry["n_components"]), seed)
    row = {"customers": int(rows.shape[0]), "features": int(rows.shape[1]), "scenario": scenario or "personas",
           "k": model.k, "n_components": int(entry["n_components"]), "n_neighbors": int(entry["n_neighbors"]),
           "training": training, "leave_one_out": loo, "held_out_vs_transform": held,
           "seconds": {"run": round(run_s, 1), "training_and_leave_one_out": round(place_s, 1)}}
    print(f"{label}: k={row['k']} training {training:.1%}, leave-one-out {loo:.1%}, "
          f"held out vs transform {held['agreement']:.1%}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "umap-place.json"))
    args = parser.parse_args(argv)
    import umap

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, scenario, customers in DATASETS:
            results[label] = measure(label, scenario, customers, args.seed, Path(tmp))
    doc = {"what": "saved UMAP model: nearest-rows placement vs the run's segments and umap-learn's transform",
           "command": "python bench/umap_place.py" + (f" --seed {args.seed}" if args.seed else ""),
           "seed": args.seed, "gpuseg": __version__, "umap_learn": umap.__version__, "numpy": np.__version__,
           "python": platform.python_version(), "machine": platform.machine(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
