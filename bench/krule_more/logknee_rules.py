"""Rules for k on the sweeps of two generators: gpuseg's scenarios (``logknee_sweeps.py``)
and the foreign ones (``bench/results/foreign-default-s5-3seeds.json``: the sweeps of the
raw-inertia elbow's runs). Prints the table of bench/README.md, "The knee of the log
inertia", and the runs where the log knee moved k."""
import json, os, numpy as np, sys
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from gpuseg.evaluate.selection import knee_point, composite_scores
own = json.load(open(Path(os.environ.get("KRULE_CACHE", "/tmp/krule-exp")) / "own.json"))
fr = json.load(open(HERE.parent / "results" / "foreign-default-s5-3seeds.json"))["rows"]
def arr(run, key): return np.array([r[key] for r in run["sweep"]], float)
def elbow(run, f=lambda y: y, lo=2):
    ks = arr(run, "k"); y = f(arr(run, "inertia")); m = ks >= lo
    k = knee_point(ks[m], y[m]); return k if k is not None else int(ks[0])
def local(run, score, higher=True):
    k0 = elbow(run); ks = arr(run, "k"); s = arr(run, score)
    cand = [i for i, k in enumerate(ks) if abs(k - k0) <= 1]
    i = max(cand, key=lambda i: s[i] if higher else -s[i]); return int(ks[i])
def local_comp(run):
    k0 = elbow(run); ks = arr(run, "k")
    c = composite_scores(ks, arr(run, "silhouette"), arr(run, "davies_bouldin"), arr(run, "calinski_harabasz"))
    cand = [k for k in ks if abs(k - k0) <= 1]; return int(max(cand, key=lambda k: (c[k], -k)))
def best_sil3(run):
    ks = arr(run, "k"); s = arr(run, "silhouette"); m = ks >= 3; return int(ks[m][np.argmax(s[m])])
def best_db3(run):
    ks = arr(run, "k"); s = arr(run, "davies_bouldin"); m = ks >= 3; return int(ks[m][np.argmin(s[m])])
def curv(run):  # max 2nd difference of normalised inertia
    ks = arr(run, "k"); y = arr(run, "inertia"); y = (y - y.min()) / (y.max() - y.min())
    d2 = y[:-2] - 2 * y[1:-1] + y[2:]; return int(ks[1:-1][np.argmax(d2)])
def local_db(run): return local(run, "davies_bouldin", higher=False)
def local_sil(run): return local(run, "silhouette")
rules = {"elbow": elbow, "elbow-logW": lambda r: elbow(r, np.log), "elbow-3..12": lambda r: elbow(r, lo=3),
         "local-composite": local_comp, "local-DB": local_db, "local-sil": local_sil, "best-sil k>=3": best_sil3,
         "best-DB k>=3": best_db3, "max-curvature": curv}
def ari_at(run, k): return next((r["ari"] for r in run["sweep"] if r["k"] == k), np.nan)
print(f"{'rule':18s} {'own w1/30':>9s} {'foreign w1/24':>13s} {'own ARI':>8s} {'for ARI':>8s} {'for-ev ARI':>10s}")
for nm, f in rules.items():
    o = [f(r) for r in own]; g = [f(r) for r in fr]
    w1o = sum(abs(k - r["true_k"]) <= 1 for k, r in zip(o, own)); w1f = sum(abs(k - r["true_k"]) <= 1 for k, r in zip(g, fr))
    ao = np.median([ari_at(r, k) for k, r in zip(o, own)]); af = np.median([ari_at(r, k) for k, r in zip(g, fr)])
    afe = np.median([ari_at(r, k) for k, r in zip(g, fr) if r["kind"] == "events"])
    print(f"{nm:18s} {w1o:9d} {w1f:13d} {ao:8.3f} {af:8.3f} {afe:10.3f}")
print()
for r in own + fr:
    a, b = elbow(r), elbow(r, np.log)
    if a != b:
        print(f'{r["scenario"]:14s} s{r["seed"]} true {r["true_k"]}: elbow {a} (ari {ari_at(r, a):.2f}) -> logW {b} (ari {ari_at(r, b):.2f})')
