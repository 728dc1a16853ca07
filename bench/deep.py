"""Training speed of the deep models: autoencoder epochs, DEC end to end.

Data: the same float32 mixture as bench/methods.py (8 segments, 32 standardised
dimensions). For each size: autoencoder pretraining seconds per epoch and samples per
second (d-64-32-8, batch 256, a fixed number of epochs with early stopping off), and DEC
end to end (20 pretraining epochs + the clustering phase, k=8). With ``--device gpu`` the
CPU runs too, so the ratio comes from one run.

    python bench/deep.py --sizes 100k,1M
    python bench/deep.py --sizes 100k,1M --device gpu      # target: DEC on 1M x 32 < 60 s on an H100
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from methods import K, make_data, parse_size  # noqa: E402


def sync(xp) -> None:
    if xp.__name__ == "cupy":
        xp.cuda.get_current_stream().synchronize()


def bench(n: int, be, epochs: int, dec_epochs: int, dec: bool) -> dict:
    from gpuseg.cluster import DEC
    from gpuseg.embed import Autoencoder

    X = be.xp.asarray(make_data(n))
    row = {"n": n, "device": be.device_label}
    ae = Autoencoder(max_epochs=epochs, patience=epochs + 1, validation_fraction=0.0, random_state=0)
    t = time.perf_counter()
    ae.fit(X)
    sync(be.xp)
    dt = time.perf_counter() - t
    row["ae_epochs"] = ae.n_epochs_
    row["ae_seconds_per_epoch"] = dt / ae.n_epochs_
    row["ae_samples_per_second"] = n * ae.n_epochs_ / dt
    if dec:
        model = DEC(K, pretrain_epochs=dec_epochs, random_state=0)
        t = time.perf_counter()
        model.fit(X)
        sync(be.xp)
        row["dec_seconds"] = time.perf_counter() - t
        row["dec_steps"] = int(model.n_iter_)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--epochs", type=int, default=3, help="autoencoder epochs timed")
    ap.add_argument("--dec-pretrain", type=int, default=20)
    ap.add_argument("--dec-max", default="100k", help="largest size for the DEC run on the CPU")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from gpuseg import backend

    devices = [backend.select(args.device)]
    if devices[0].is_gpu:
        devices.append(backend.select("cpu"))
    from gpuseg.embed import Autoencoder

    for be in devices:  # torch's one-time start-up (kernels, threads) is not training time
        Autoencoder(max_epochs=1, random_state=0).fit(be.xp.asarray(make_data(2000)))
    rows = []
    print(f"bench/deep.py on {platform.node()}: {backend.cpu_label()}", flush=True)
    for n in [parse_size(s) for s in args.sizes.split(",")]:
        for be in devices:
            dec = be.is_gpu or n <= parse_size(args.dec_max)
            row = bench(n, be, args.epochs, args.dec_pretrain, dec)
            print(row, flush=True)
            rows.append(row)
    out = Path(args.out) if args.out else HERE / "results" / f"deep-{args.device}-{platform.node()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.node()}: {backend.cpu_label()}", "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
