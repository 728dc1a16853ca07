"""Inertia-only rules on the no-cluster references (Gaussian with each scenario's covariance, seed 0)."""
import glob, pickle, sys
import numpy as np
from rules import (CACHE, eff_dim, knee_point, kneedle, r_kl_p, r_kl_peff, r_hartigan, r_jump_peff, r_pham_p,
                   r_lmethod, r_2nd_diff)
names = ("personas", "three", "ten", "imbalanced", "overlap", "noise", "small", "orders", "orders_dates", "nonlinear")
rules = {"elbow": lambda ks, W, c: knee_point(ks, W),
         "knee logW": lambda ks, W, c: (lambda i: None if i is None else ks[i])(kneedle(ks, np.log(W))),
         "knee loglog": lambda ks, W, c: (lambda i: None if i is None else ks[i])(kneedle(np.log(ks), np.log(W))),
         "KL p": r_kl_p, "KL peff": r_kl_peff, "Hartigan": r_hartigan, "jump peff": r_jump_peff, "PDN p": r_pham_p,
         "L-method": r_lmethod, "max 2nd diff": r_2nd_diff}
print("| null (Gaussian, cov of) | " + " | ".join(rules) + " |\n|---|" + "---:|" * len(rules))
for nm in names:
    d = pickle.load(open(CACHE / f"null_{nm}_s0.pkl", "rb"))
    X = pickle.load(open(CACHE / f"{nm}_s0.pkl", "rb"))["X"]
    ks = sorted(d["W"]); W = [d["W"][k] for k in ks]
    c = {"n": d["n"], "p": d["p"], "peff": eff_dim(X), "W1": d["W1"]}
    print(f"| {nm} | " + " | ".join(str(f(ks, W, c)) for f in rules.values()) + " |")
