"""Sweeps of `gpuseg run`'s default on gpuseg's own scenarios, seeds 0-2, for the rules of
``logknee_rules.py`` (bench/README.md, "The knee of the log inertia"). About 1.5 minutes
on 2 cores; writes ``$KRULE_CACHE/own.json`` (default /tmp/krule-exp/own.json)."""
import sys, os, json, tempfile
from pathlib import Path
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent)); sys.path.insert(0, str(HERE.parents[1]))
CACHE = Path(os.environ.get("KRULE_CACHE", "/tmp/krule-exp"))
from quality import BENCH_SIZES
from gpuseg.io.scenarios import generate_scenario
from gpuseg.config import build_config
from gpuseg.pipeline import run
out = []
for seed in (0, 1, 2):
    for name in ["personas", "three", "ten", "imbalanced", "overlap", "noise", "small", "orders", "orders_dates", "nonlinear"]:
        log, truth, sc = generate_scenario(name, BENCH_SIZES[name], seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            d, t = Path(tmp)/"d.parquet", Path(tmp)/"t.parquet"; log.to_parquet(d); truth.to_parquet(t)
            m = run(build_config(None, input=str(d), truth=str(t), out=str(Path(tmp)/"o"), report=False, stability=0, seed=seed, format=sc.kind)).metrics
        e = m["methods"][m["chosen"]["method"]]
        out.append({"scenario": name, "seed": seed, "true_k": sc.k, "chosen_k": m["chosen"]["k"],
                    "sweep": [{k: r.get(k) for k in ("k", "inertia", "silhouette", "davies_bouldin", "calinski_harabasz", "ari")} for r in e["sweep"]]})
        print(name, seed, sc.k, m["chosen"]["k"], flush=True)
CACHE.mkdir(parents=True, exist_ok=True)
json.dump(out, open(CACHE / "own.json", "w"))
