"""The hostile-input campaign of issue 16, counted: how many cases, how many clean errors,
how many tracebacks (must be 0), how often an existing output folder changed after a
failure (must be 0).

It draws from the strategies of ``tests/test_campaign.py`` (the part of the campaign that
runs in CI with small sizes) and runs each case through the entry points the CLI uses:

- ``readers``: random CSV files (order and event logs with plausible and hostile cells,
  random headers, five delimiters, five encodings, ragged rows) through load, clean and
  features;
- ``runs``: the same files through ``gpuseg run`` into a folder holding a previous run;
  a failure must leave the folder byte for byte as it was;
- ``configs``: random TOML (and random bytes) through the config loader and validation;
- ``models``: random edits of a saved model's model.json (with and without a consistent
  digest) and bit flips in arrays.npz through ``load_model`` and ``predict``.

    python bench/campaign.py [--cases 500]

Results: a table on stdout and ``bench/results/campaign.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))


def _outcome(fn, *args) -> tuple[str, object]:
    from gpuseg.errors import GpusegError

    try:
        return "ok", fn(*args)
    except GpusegError:
        return "clean error", None
    except Exception as exc:  # noqa: BLE001 - what the campaign counts
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return f"traceback: {type(exc).__name__} at {Path(tb.filename).name}:{tb.lineno}", None


def _readers(case, folder: Path, i: int) -> str:
    import test_campaign as T

    content, fmt = case
    path = folder / f"in{i}.csv"
    path.write_bytes(content)
    kind, data = _outcome(T.load, str(path), T.CPU, fmt)
    if kind != "ok":
        return kind
    kind, cleaned = _outcome(T.clean, data, T.CleanConfig(), T.CPU)
    if kind != "ok":
        return kind
    return _outcome(T.customer_features, cleaned, T.FeatureConfig())[0]


def _runs(case, folder: Path, i: int, previous: Path) -> str:
    import test_campaign as T

    content, fmt = case
    path = folder / f"run{i}.csv"
    path.write_bytes(content)
    before = T._snapshot(previous)
    kind, rc = _outcome(T.main, ["run", "--input", str(path), "--format", fmt, "--out", str(previous), "--methods",
                                 "kmeans", "--k", "2", "--stability", "0", "--no-report", "-q"])
    if kind != "ok":
        return kind
    if rc == 2:
        return "clean error" if T._snapshot(previous) == before else "data lost"
    return "ok" if rc == 0 else f"exit code {rc}"


def _configs(text: str, folder: Path, i: int) -> str:
    import test_campaign as T

    path = folder / f"c{i}.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    kind, values = _outcome(T.load_config_file, path)
    return kind if kind != "ok" else _outcome(T.build_config, values)[0]


def _models(draw, folder: Path, i: int, previous: Path) -> str:
    import shutil

    import numpy as np

    import test_campaign as T
    from gpuseg.model import _manifest_text

    model = folder / f"model{i}"
    shutil.copytree(previous / "model", model)
    manifest = json.loads((model / "model.json").read_text())
    rng = draw
    for _ in range(int(rng.integers(1, 4))):
        paths = [p for p in T._paths(manifest) if p]
        value = [None, True, -1, 0, 10**9, 1.5, "x", [1, 2], {}, {"kind": "x"}][int(rng.integers(0, 10))]
        T._set(manifest, paths[int(rng.integers(0, len(paths)))], value, bool(rng.integers(0, 2)))
    consistent = bool(rng.integers(0, 2))
    (model / "model.json").write_text(_manifest_text(manifest) if consistent else json.dumps(manifest))
    if rng.integers(0, 2):
        blob = bytearray((model / "arrays.npz").read_bytes())
        blob[int(rng.integers(0, len(blob)))] ^= 0xFF
        (model / "arrays.npz").write_bytes(bytes(blob))
    kind, loaded = _outcome(T.load_model, model)
    if kind != "ok":
        return kind
    X = np.random.default_rng(i).normal(size=(5, len(loaded.feature_names)))
    return _outcome(loaded.predict, X)[0]


def main(argv=None) -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=500, help="cases per target (runs: a fifth of it)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import test_campaign as T

    t0 = time.perf_counter()
    counts: dict[str, collections.Counter] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        previous = folder / "prev" / "out"
        previous.parent.mkdir()
        _previous(previous)
        rng = np.random.default_rng(0)
        counts["readers"] = collections.Counter(
            _readers(T.csv_files().example(), folder, i) for i in range(args.cases))
        counts["runs"] = collections.Counter(
            _runs(T.csv_files().example(), folder, i, previous) for i in range(max(args.cases // 5, 1)))
        counts["configs"] = collections.Counter(
            _configs(T.config_texts().example(), folder, i) for i in range(args.cases))
        counts["models"] = collections.Counter(_models(rng, folder, i, previous) for i in range(args.cases))
    total = time.perf_counter() - t0
    rows = []
    for target, c in counts.items():
        tracebacks = sum(n for k, n in c.items() if k.startswith("traceback"))
        rows.append({"target": target, "cases": sum(c.values()), "ok": c.get("ok", 0),
                     "clean_errors": c.get("clean error", 0), "tracebacks": tracebacks,
                     "data_lost": c.get("data lost", 0), "details": dict(c)})
    print("| target | cases | succeeded | clean errors (exit 2) | tracebacks | output folder changed by a failure |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['target']} | {r['cases']:,} | {r['ok']:,} | {r['clean_errors']:,} | {r['tracebacks']} | "
              f"{r['data_lost']} |")
    for r in rows:
        for k, n in r["details"].items():
            if k.startswith(("traceback", "exit", "data")):
                print(f"  {r['target']}: {n} x {k}")
    print(f"\nTotal {total:.0f} s; load {os.getloadavg()[0]:.2f}")
    out = HERE / "results" / "campaign.json"
    out.write_text(json.dumps({"cases_per_target": args.cases, "rows": rows, "total_s": round(total, 1)}, indent=1))
    print(f"JSON: {out}")
    return 0 if all(r["tracebacks"] == 0 and r["data_lost"] == 0 for r in rows) else 1


def _previous(out: Path) -> None:
    """A finished run in ``out`` (the folder failures must leave alone)."""
    import numpy as np
    import pandas as pd

    from gpuseg.cli import main as cli

    rng = np.random.default_rng(0)
    src = out.parent / "good.csv"
    pd.DataFrame({"customer_id": rng.integers(0, 40, 200), "timestamp": pd.Timestamp("2021-01-01")
                  + pd.to_timedelta(rng.integers(0, 200, 200), unit="D"), "amount": rng.uniform(1, 50, 200)}
                 ).to_csv(src, index=False)
    assert cli(["run", "--input", str(src), "--out", str(out), "--methods", "kmeans", "--k", "2", "--stability", "0",
                "--no-report", "-q"]) == 0


if __name__ == "__main__":
    raise SystemExit(main())
