"""CDNOW, a real order log: is gpuseg's answer stable across seeds, and does it predict?

CDNOW (Fader & Hardie: 23,570 customers' CD purchases, 1997-01 to 1998-06; 69,659 rows of
customer, date, CDs, dollars) ships in the ``lifetimes`` wheel. This script downloads that
wheel once (``pip download --no-deps lifetimes==0.11.3`` into ``bench/data/``, which git
ignores; the data are not committed) and writes the log as an order CSV.

1. **Seeds.** ``gpuseg run`` on the whole log with seeds 0..4: the method and k each run
   chose, and the ARI between the segmentations of every pair of runs.
2. **Holdout.** Segments fitted on the orders up to 1997-09-30 (the calibration period of
   the lifetimes literature); the customers' spend from 1997-10-01 to 1998-06-30 (holdout).
   The share of the holdout spend's variance between segments (eta squared) says how much
   of what customers do next the segments capture. This is ``gpuseg backtest`` itself: beside
   gpuseg, the RFM quintile map, K-means on log(recency), log(frequency) and log(spend) at
   the k of the best silhouette (the notebook baseline) and at gpuseg's k.

    python bench/cdnow.py                      # default methods
    python bench/cdnow.py --methods all        # every method, the rule choosing

Results: tables on stdout and JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from itertools import combinations
from pathlib import Path

# as `gpuseg run` and `import gpuseg` set it (gpuseg/__init__.py), before scikit-learn loads OpenMP
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DATA = HERE / "data"
WHEEL = "lifetimes==0.11.3"
MEMBER = "lifetimes/datasets/CDNOW_master.txt"
CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"


def cdnow_csv() -> Path:
    """bench/data/cdnow_orders.csv (customer_id, timestamp, quantity, amount), fetched once."""
    out = DATA / "cdnow_orders.csv"
    if out.is_file():
        return out
    DATA.mkdir(exist_ok=True)
    wheels = [w for w in DATA.glob("*.whl") if w.name.lower().startswith("lifetimes-0.11.3-")]
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(DATA)], check=True)
        wheels = [w for w in DATA.glob("*.whl") if w.name.lower().startswith("lifetimes-0.11.3-")]
    with zipfile.ZipFile(wheels[0]) as z:
        text = z.read(MEMBER).decode()
    import pandas as pd

    raw = pd.read_csv(io.StringIO(text), sep=r"\s+", header=0, names=["customer_id", "date", "quantity", "amount"],
                      dtype={"customer_id": str, "date": str})
    raw["timestamp"] = pd.to_datetime(raw["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d")
    raw[["customer_id", "timestamp", "quantity", "amount"]].to_csv(out, index=False)
    return out


def run_gpuseg(csv: Path, out: Path, seed: int, methods: str | None, stability: int) -> dict:
    from gpuseg.config import build_config
    from gpuseg.pipeline import run

    overrides = dict(input=str(csv), out=str(out), seed=seed, report=False, format="orders", stability=stability)
    if methods:
        overrides["methods"] = methods
    t = time.perf_counter()
    result = run(build_config(**overrides))
    m = result.metrics
    seg = result.segments[["customer_id", "segment"]].copy()
    seg["customer_id"] = seg["customer_id"].astype(str)
    return {"seed": seed, "method": m["chosen"]["method"], "k": m["chosen"]["k"], "seconds": time.perf_counter() - t,
            "customers": m["data"]["customers"], "segments": seg.set_index("customer_id")["segment"]}


def seeds_table(csv: Path, methods: str | None, stability: int, seeds=range(5)) -> dict:
    from sklearn.metrics import adjusted_rand_score

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            runs.append(run_gpuseg(csv, Path(tmp) / f"s{s}", s, methods, stability))
            print(f"  seed {s}: {runs[-1]['method']} k={runs[-1]['k']} ({runs[-1]['seconds']:.0f} s)", flush=True)
    aris = []
    for a, b in combinations(runs, 2):
        common = a["segments"].index.intersection(b["segments"].index)
        aris.append(adjusted_rand_score(a["segments"][common], b["segments"][common]))
    return {"runs": [{k: v for k, v in r.items() if k != "segments"} for r in runs],
            "methods": sorted({r["method"] for r in runs}), "ks": sorted({r["k"] for r in runs}),
            "ari_min": min(aris), "ari_mean": sum(aris) / len(aris)}


def calibration_split(csv: Path, folder: Path) -> tuple:
    """(calibration orders, holdout orders, the calibration orders written as a CSV in
    ``folder``): orders up to CALIBRATION_END, and after it up to HOLDOUT_END."""
    import pandas as pd

    orders = pd.read_csv(csv, dtype={"customer_id": str})
    orders["ts"] = pd.to_datetime(orders["timestamp"])
    cal = orders[orders["ts"] <= CALIBRATION_END]
    hold = orders[(orders["ts"] > CALIBRATION_END) & (orders["ts"] <= HOLDOUT_END)]
    cal_csv = Path(folder) / "cal.csv"
    cal.drop(columns="ts").to_csv(cal_csv, index=False)
    return cal, hold, cal_csv


def holdout_table(csv: Path, methods: str | None, stability: int, seed: int = 0) -> dict:
    """``gpuseg backtest --until CALIBRATION_END --holdout-end HOLDOUT_END`` on the whole log:
    its ``backtest`` entry (eta squared of gpuseg and the baselines, value calibration)."""
    from gpuseg.config import build_config
    from gpuseg.evaluate.backtest import BacktestPlan, parse_window
    from gpuseg.pipeline import run

    overrides = dict(input=str(csv), seed=seed, report=False, format="orders", stability=stability)
    if methods:
        overrides["methods"] = methods
    with tempfile.TemporaryDirectory() as tmp:
        result = run(build_config(**overrides, out=str(Path(tmp) / "o")),
                     backtest=BacktestPlan(parse_window(CALIBRATION_END, HOLDOUT_END)))
    bt = result.metrics["backtest"]
    return {"method": result.metrics["chosen"]["method"], "segmentations": bt["segmentations"],
            "customers_scored": bt["customers_scored"], "customers_in_calibration": result.metrics["data"]["customers_in"],
            "value_spearman": bt["value"]["spearman"] if bt["value"] else None, "window": bt["window"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=None, help="--methods of the runs (default: gpuseg's default)")
    ap.add_argument("--stability", type=int, default=10)
    ap.add_argument("--tag", default="cpu")
    args = ap.parse_args(argv)
    csv = cdnow_csv()
    t = time.perf_counter()
    print(f"CDNOW: {csv}; methods: {args.methods or 'default'}")
    seeds = seeds_table(csv, args.methods, args.stability)
    print(f"\n| seeds | methods chosen | k chosen | ARI between runs (min / mean) |\n|---:|---|---|---|\n"
          f"| 5 | {', '.join(seeds['methods'])} | {', '.join(map(str, seeds['ks']))} | "
          f"{seeds['ari_min']:.3f} / {seeds['ari_mean']:.3f} |")
    hold = holdout_table(csv, args.methods, args.stability)
    print(f"\n`gpuseg backtest --until {CALIBRATION_END} --holdout-end {HOLDOUT_END}`: share of the holdout spend's "
          f"variance between segments ({hold['customers_scored']:,} of {hold['customers_in_calibration']:,} "
          "calibration customers scored):\n\n| segmentation | k | eta squared (revenue) | eta squared (bought again) |"
          "\n|---|---:|---:|---:|")
    for name, v in hold["segmentations"].items():
        label = f"gpuseg ({hold['method']})" if name == "gpuseg" else name
        print(f"| {label} | {v['k']} | {v['eta_squared']:.3f} | {v['eta_squared_repeat']:.3f} |")
    if hold["value_spearman"] is not None:
        print(f"\npredicted_clv against holdout spend: Spearman {hold['value_spearman']:.3f}")
    total = time.perf_counter() - t
    print(f"\nTotal {total:.0f} s; load {os.getloadavg()[0]:.2f}")
    out = HERE / "results" / f"cdnow-{args.tag}.json"
    out.write_text(json.dumps({"args": vars(args), "seeds": seeds, "holdout": hold, "total_s": round(total, 1)},
                              indent=1, default=str))
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
