"""Where the raw and the log-inertia knee fall on clouds without segments: one Gaussian
(isotropic or not) or lognormal cloud of 3,000 points in 3 to 34 dimensions, scikit-learn
K-means over k = 2..12 (bench/README.md, "The knee of the log inertia"). About a minute."""
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

from gpuseg.evaluate.selection import knee_point  # noqa: E402

rng = np.random.default_rng(0)
ks = list(range(2, 13))
for p in (3, 8, 20, 34):
    for shape in ("iso", "aniso", "lognormal"):
        X = rng.normal(size=(3000, p))
        if shape == "aniso":
            X = X * np.linspace(0.3, 3, p)
        if shape == "lognormal":
            X = np.exp(X * 0.8)
            X = (X - X.mean(0)) / X.std(0)
        W = [KMeans(k, n_init=3, random_state=0).fit(X).inertia_ for k in ks]
        print(f"p={p:2d} {shape:9s} raw knee {knee_point(ks, W)}, log knee {knee_point(ks, np.log(W))}")
