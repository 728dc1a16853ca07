"""Candidate rules for k on the cached sweeps (cache/<scenario>_s<seed>.pkl)."""
from __future__ import annotations

import os

import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gpuseg.evaluate.selection import choose_k, knee_point, KNEE_MIN_DEPTH  # noqa: E402

CACHE = Path(os.environ.get("KRULE_CACHE", "/tmp/krule-exp/cache"))


def eff_dim(X: np.ndarray) -> float:
    """Participation ratio of the covariance eigenvalues: (sum l)^2 / sum l^2."""
    lam = np.clip(np.linalg.eigvalsh(np.cov(X.T)), 0, None)
    return float(lam.sum() ** 2 / (lam ** 2).sum())


def total_ss(X: np.ndarray) -> float:
    return float(((X - X.mean(0)) ** 2).sum())


def kneedle(x, y, min_depth=KNEE_MIN_DEPTH):
    x = np.asarray(x, float); y = np.asarray(y, float)
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y.min()) / (y.max() - y.min())
    depth = (1 - xn) - yn
    i = int(np.argmax(depth))
    if depth[i] < min_depth or i in (0, len(x) - 1):
        return None
    return i


# ---- rules: each takes (ks, W, ctx) and returns k --------------------------------------------

def r_elbow(ks, W, c):
    rows = c["rows"]
    return choose_k(ks, W, [rows[k]["silhouette"] for k in ks], [rows[k]["davies_bouldin"] for k in ks],
                    [rows[k]["calinski_harabasz"] for k in ks]).k


def _fallback(ks, W, c, i):
    """No knee: choose_k's own fallback (best composite), marked by adding 100 so it is visible."""
    if i is not None:
        return ks[i]
    rows = c["rows"]
    from gpuseg.evaluate.selection import composite_scores
    comp = composite_scores(ks, [rows[k]["silhouette"] for k in ks], [rows[k]["davies_bouldin"] for k in ks],
                            [rows[k]["calinski_harabasz"] for k in ks])
    c.setdefault("fallbacks", []).append(True)
    return max(ks, key=lambda k: (comp[k], -k))


def r_knee_logW(ks, W, c):
    return _fallback(ks, W, c, kneedle(ks, np.log(W)))


def r_knee_logk(ks, W, c):
    return _fallback(ks, W, c, kneedle(np.log(ks), W))


def r_knee_loglog(ks, W, c):
    return _fallback(ks, W, c, kneedle(np.log(ks), np.log(W)))


def _kl(ks, W, p):
    """Krzanowski & Lai (1988): DIFF(k) = (k-1)^{2/p} W_{k-1} - k^{2/p} W_k, KL(k) = |DIFF(k)/DIFF(k+1)|."""
    Wd = dict(zip(ks, W))
    diff = {k: (k - 1) ** (2 / p) * Wd[k - 1] - k ** (2 / p) * Wd[k] for k in ks if k - 1 in Wd}
    kl = {k: abs(diff[k] / diff[k + 1]) for k in diff if k + 1 in diff and diff[k + 1] != 0}
    return max(kl, key=kl.get)


def r_kl_p(ks, W, c):  # nominal dimension, and W_1 = total SS so k=2 is a candidate
    return _kl([1] + list(ks), [c["W1"]] + list(W), c["p"])


def r_kl_peff(ks, W, c):
    return _kl([1] + list(ks), [c["W1"]] + list(W), c["peff"])


def r_hartigan(ks, W, c, thr=10.0):
    """Hartigan (1975): smallest k with H(k) = (W_k/W_{k+1} - 1)(n - k - 1) <= 10 (k=1 included)."""
    kk, WW = [1] + list(ks), [c["W1"]] + list(W)
    n = c["n"]
    for i in range(len(kk) - 1):
        if (WW[i] / WW[i + 1] - 1) * (n - kk[i] - 1) <= thr:
            return max(kk[i], ks[0])
    return ks[-1]


def _jump(ks, W, c, Y):
    """Sugar & James (2003): d_k = W_k/(n p); J(k) = d_k^-Y - d_{k-1}^-Y, d_0^-Y = 0; argmax over ks."""
    kk, WW = [1] + list(ks), np.array([c["W1"]] + list(W))
    d = WW / (c["n"] * c["p"])
    t = d ** (-Y)
    J = np.diff(np.concatenate([[0.0], t]))
    j = {k: J[i] for i, k in enumerate(kk) if k >= ks[0]}
    return max(j, key=j.get)


def r_jump_peff(ks, W, c):
    return _jump(ks, W, c, c["peff"] / 2)


def r_jump_p(ks, W, c):
    return _jump(ks, W, c, c["p"] / 2)


def _pham(ks, W, c, Nd):
    """Pham, Dimov & Nguyen (2005): f(K) = S_K / (a_K S_{K-1}); a_2 = 1 - 3/(4 Nd),
    a_K = a_{K-1} + (1 - a_{K-1})/6; f(1) = 1; argmin over ks."""
    kk, WW = [1] + list(ks), [c["W1"]] + list(W)
    a = {2: 1 - 3 / (4 * Nd)}
    for k in range(3, max(kk) + 1):
        a[k] = a[k - 1] + (1 - a[k - 1]) / 6
    f = {k: WW[i] / (a[k] * WW[i - 1]) for i, k in enumerate(kk) if k >= 2}
    return min(f, key=f.get)


def r_pham_p(ks, W, c):
    return _pham(ks, W, c, c["p"])


def r_pham_peff(ks, W, c):
    return _pham(ks, W, c, c["peff"])


def r_ch_2nd(ks, W, c):
    """Calinski-Harabasz: k with the largest negative second difference (most concave point)."""
    ch = {k: c["rows"][k]["calinski_harabasz"] for k in ks}
    s = {k: 2 * ch[k] - ch[k - 1] - ch[k + 1] for k in ks if k - 1 in ch and k + 1 in ch}
    return max(s, key=s.get)


def r_ch_max(ks, W, c):
    ch = {k: c["rows"][k]["calinski_harabasz"] for k in ks}
    return max(ch, key=ch.get)


RULES = {
    "elbow": r_elbow, "knee logW": r_knee_logW, "knee logk": r_knee_logk, "knee loglog": r_knee_loglog,
    "KL p": r_kl_p, "KL peff": r_kl_peff, "Hartigan": r_hartigan, "jump peff": r_jump_peff, "jump p": r_jump_p,
    "PDN p": r_pham_p, "PDN peff": r_pham_peff, "CH 2nd diff": r_ch_2nd, "CH max": r_ch_max,
}


def load_all():
    out = []
    for f in sorted(g for g in CACHE.glob("*_s[0-9].pkl") if not g.name.startswith(("ps_", "null_"))):
        with open(f, "rb") as fh:
            d = pickle.load(fh)
        X = d["X"]
        rows = {r["k"]: r for r in d["rows"] if r["status"] == "ok"}
        ks = sorted(rows)
        d.update(ks=ks, W=[rows[k]["inertia"] for k in ks], rows_ok=rows, n=X.shape[0], p=X.shape[1],
                 peff=eff_dim(X), W1=total_ss(X))
        out.append(d)
    return out


if __name__ == "__main__" and len(sys.argv) == 1:
    for d in load_all():
        c = {"rows": d["rows_ok"], "n": d["n"], "p": d["p"], "peff": d["peff"], "W1": d["W1"]}
        ks, W = d["ks"], d["W"]
        # sanity: inertia equals the labels' within SS in X
        X = d["X"]; lab = d["labels"][ks[0]]
        wss = sum(((X[lab == j] - X[lab == j].mean(0)) ** 2).sum() for j in np.unique(lab))
        print(d["name"], d["seed"], "true", d["true_k"], "n", d["n"], "p", d["p"], f"peff {d['peff']:.2f}",
              f"W1 {d['W1']:.0f} W2 {W[0]:.0f} wss2 {wss:.0f}", "Z" if d["Z"] is not None else "",
              {r: f(ks, W, c) for r, f in RULES.items()})


def r_ps(ks, W, c, thr=0.8):
    """Prediction strength (Tibshirani & Walther 2005): largest k with ps(k) >= 0.8 (else the smallest k)."""
    ps = c.get("ps")
    if ps is None:
        return None
    ok = [k for k in ks if ps[k] >= thr]
    return max(ok) if ok else ks[0]


RULES["pred. strength"] = r_ps
REF = {"always 6": lambda ks, W, c: 6}


def context(d):
    c = {"rows": d["rows_ok"], "n": d["n"], "p": d["p"], "peff": d["peff"], "W1": d["W1"]}
    f = CACHE / f"ps_{d['name']}_s{d['seed']}.pkl"
    if f.exists():
        c["ps"] = pickle.load(open(f, "rb"))
    return c


def evaluate(rules=None, verbose=True):
    rules = rules or RULES
    data = load_all()
    order = ("personas", "three", "ten", "imbalanced", "overlap", "noise", "small", "orders", "orders_dates",
             "nonlinear")
    data.sort(key=lambda d: (d["seed"], order.index(d["name"])))
    res = {r: [] for r in rules}
    lines = []
    for d in data:
        c = context(d)
        ch = {r: f(d["ks"], d["W"], c) for r, f in rules.items()}
        for r, k in ch.items():
            res[r].append((d["seed"], d["true_k"], k, d["ari"][k] if k is not None else np.nan))
        lines.append(f"| {d['name']} | {d['seed']} | {d['true_k']} | " + " | ".join(
            "-" if k is None else (f"**{k}**" if abs(k - d["true_k"]) <= 1 else str(k)) for k in ch.values()) + " |")
    if verbose:
        print("| scenario | seed | true k | " + " | ".join(rules) + " |")
        print("|---|---:|---:|" + "---:|" * len(rules))
        print("\n".join(lines))
        def hit(v, seeds):
            return sum(abs(k - t) <= 1 for s, t, k, a in v if s in seeds and k is not None)
        print("| **within 1, all 30** | | | " + " | ".join(f"{hit(v, (0, 1, 2))}/30" for v in res.values()) + " |")
        print("| **within 1, seed 0** | | | " + " | ".join(f"{hit(v, (0,))}/10" for v in res.values()) + " |")
        for s in (1, 2):
            print(f"| within 1, seed {s} | | | " + " | ".join(f"{hit(v, (s,))}/10" for v in res.values()) + " |")
        print("| **exact k, all 30** | | | " + " | ".join(
            f"{sum(k == t for s, t, k, a in v)}/30" for v in res.values()) + " |")
        print("| **median ARI at chosen k** | | | " + " | ".join(
            f"{np.nanmedian([a for *_, a in v]):.2f}" for v in res.values()) + " |")
        print("| mean ARI at chosen k | | | " + " | ".join(
            f"{np.nanmean([a for *_, a in v]):.3f}" for v in res.values()) + " |")
    return res




def r_lmethod(ks, W, c, y=None):
    """L-method (Salvador & Chan 2004): split the curve into two straight-line fits (each >= 2 points);
    the split c minimising (c/b) RMSE_L + ((b-c)/b) RMSE_R; the knee is the last point of the left line."""
    x = np.asarray(ks, float); yv = np.asarray(W if y is None else y, float); b = len(x)
    best, kbest = np.inf, ks[0]
    for cut in range(2, b - 1):  # left = x[:cut], right = x[cut:]
        e = 0.0
        for sl in (slice(0, cut), slice(cut, b)):
            A = np.vstack([x[sl], np.ones(len(x[sl]))]).T
            res = yv[sl] - A @ np.linalg.lstsq(A, yv[sl], rcond=None)[0]
            e += len(x[sl]) / b * np.sqrt(np.mean(res ** 2))
        if e < best:
            best, kbest = e, ks[cut - 1]
    return kbest


def r_2nd_diff(ks, W, c):
    """Largest second difference of the inertia, W_{k-1} - 2 W_k + W_{k+1} (maximum discrete curvature)."""
    Wd = dict(zip(ks, W))
    s = {k: Wd[k - 1] - 2 * Wd[k] + Wd[k + 1] for k in ks if k - 1 in Wd and k + 1 in Wd}
    return max(s, key=s.get)


def r_marriott(ks, W, c):
    """Marriott (1971): k^2 |W_k| (pooled within scatter); k with the largest drop in the
    ratio M(k+1)/M(k) ... here as in Milligan & Cooper: maximise the second difference of M."""
    X, labels = c["X"], c["labels"]
    d = X.shape[1]
    M = {}
    for k in ks:
        lab = labels[k]
        Wk = sum(np.cov(X[lab == j].T, bias=True) * (lab == j).sum() for j in range(k)) / len(X)
        M[k] = 2 * np.log(k) + np.linalg.slogdet(Wk + 1e-6 * np.eye(d))[1]
    s = {k: (M[k + 1] - M[k]) - (M[k] - M[k - 1]) for k in ks if k - 1 in M and k + 1 in M}
    return max(s, key=s.get)


RULES.update({"L-method": r_lmethod, "max 2nd diff": r_2nd_diff, "Marriott": r_marriott})
_ctx0 = context


def context(d):  # noqa: F811
    c = _ctx0(d)
    c.update(X=d["X"], labels=d["labels"])
    return c


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "table":
    evaluate({**RULES, **REF})
