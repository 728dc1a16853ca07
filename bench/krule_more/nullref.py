"""What each rule picks on data with no clusters: adaptive K-means k=2..12 on a Gaussian with the
covariance of a scenario's X (same n, p). Cached to cache/null_<name>_s0.pkl."""
import os
import pickle, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gpuseg.cluster import make_estimator
CACHE = Path(os.environ.get("KRULE_CACHE", "/tmp/krule-exp/cache"))
for name in sys.argv[1:]:
    o = CACHE / f"null_{name}_s0.pkl"
    if o.exists():
        continue
    d = pickle.load(open(CACHE / f"{name}_s0.pkl", "rb"))
    X = d["X"]
    rng = np.random.default_rng(7)
    G = rng.multivariate_normal(X.mean(0), np.cov(X.T), size=len(X))
    t0 = time.perf_counter()
    W = {}
    for k in range(2, 13):
        W[k] = make_estimator("adaptive_kmeans", k, 0).fit(G.astype(np.float32)).inertia_
    W1 = float(((G - G.mean(0)) ** 2).sum())
    pickle.dump({"W": W, "W1": W1, "n": len(G), "p": G.shape[1]}, open(o, "wb"))
    print(name, f"{time.perf_counter()-t0:.0f}s", " ".join(f"{W[k]/W1:.3f}" for k in W), flush=True)
