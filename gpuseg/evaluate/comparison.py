"""Comparing methods: the rule that chooses the segmentation, the comparison table, and how
scores move with settings.

Internal scores cannot rank methods fairly: silhouette and Calinski-Harabasz favour few,
round segments whatever the data hold, and on the planted scenarios of ``bench/quality.py``
the method with the best mean rank over them was often the worst against the truth (IDEC at
k = 2 on the built-in data). So the choice is made by evidence from the benchmark and the
scores only veto (:data:`METHOD_RULE`):

1. **Checks.** A method is eligible when it succeeded, leaves at most 20% of the customers
   unassigned, has a stability (mean ARI of half-sample refits) of at least 0.6 where it
   was measured, is not degenerate (no segment holds more than 90% of the customers, and
   it did not stop at k = 2 while another eligible method found 3 or more), has settled on
   a k (a mixture whose BIC is lowest at the largest k tried has not), and is not
   dominated (no other eligible method at the same k and of the same distance family is
   better on every one of silhouette x share assigned, Davies-Bouldin, Calinski-Harabasz
   and stability). Across k these scores do not compare, as they favour fewer segments;
   across distance families neither, as they measure Euclidean compactness, which the
   Euclidean methods optimise (:data:`DISTANCE_FAMILY`).
2. **Preference.** Of the eligible methods, the first in :data:`PREFERENCE` is chosen: the
   order of the methods' median ARI on the benchmark's scenarios (bench/README.md). Methods
   gpuseg does not know come after it, in the order given.
3. When no method passes every check, the most stable method that succeeded is chosen and
   the ranking says why no method passed.

The rule is deterministic: the same scores give the same choice, whatever the order of the
methods. The mean rank over the four criteria is still computed and reported.

``--select METHOD`` overrides the choice.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..cluster import METHODS, make_estimator
from ..errors import ConfigError, DataError
from .sweep import Fit, MethodRun, score_fit, timed_fit

__all__ = ["METHOD_RULE", "MAX_NOISE_SHARE", "MIN_STABILITY", "MAX_LARGEST_SHARE", "PREFERENCE", "DISTANCE_FAMILY",
           "rank_methods",
           "method_checks", "choose_method", "comparison_table", "sensitivity_table"]

#: Methods leaving more customers than this unassigned (noise) are not chosen.
MAX_NOISE_SHARE = 0.2
#: Methods whose half-sample refits agree less than this (mean ARI) are not chosen.
MIN_STABILITY = 0.6
#: A segmentation with one segment larger than this share of the customers is degenerate.
MAX_LARGEST_SHARE = 0.9
#: Methods by their median ARI over the quality benchmark's scenarios, best first.
PREFERENCE = ("adaptive_kmeans", "som", "kmeans_random", "ward", "consensus", "kmeans", "minibatch_kmeans",
              "pso_kmeans", "dec", "idec", "deep_kmeans", "gmm", "hdbscan", "dbscan")

METHOD_RULE = (
    f"the first method in the benchmark's preference order ({', '.join(PREFERENCE[:4])}, ...) that succeeded, "
    f"leaves at most {MAX_NOISE_SHARE:.0%} unassigned, has stability >= {MIN_STABILITY} (where measured), is not "
    f"degenerate (a segment over {MAX_LARGEST_SHARE:.0%} of the customers, or k=2 while another eligible method "
    "found more), settled on a k (not a mixture's lowest BIC at the largest k tried) and is not dominated "
    "(another eligible method at the same k and of the same distance family better on every one of silhouette x "
    "share assigned, Davies-Bouldin, Calinski-Harabasz and stability); if none passes, the most stable"
)

#: Multipliers of the chosen setting that the sensitivity analysis tries.
EPS_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
MIN_SAMPLES_FACTORS = (0.5, 1.0, 2.0)
MIN_CLUSTER_SIZE_FACTORS = (0.5, 1.0, 2.0)

_CRITERIA = (
    ("silhouette", True),
    ("davies_bouldin", False),
    ("calinski_harabasz", True),
    ("stability", True),
)


def _value(entry: Mapping[str, Any], criterion: str) -> float:
    if criterion == "silhouette":
        v = entry.get("silhouette")
        v = v * (1.0 - entry.get("noise_share", 0.0)) if v is not None else None
    elif criterion == "stability":
        v = (entry.get("stability") or {}).get("mean")
    else:
        v = entry.get(criterion)
    return float(v) if v is not None and math.isfinite(v) else float("nan")


def rank_methods(method_metrics: Mapping[str, dict[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Per method that succeeded: k, each criterion's value and rank (ties share the best
    rank) and the mean rank, in ``order``. Informational: the choice is
    :func:`choose_method`'s.

    Raises
    ------
    DataError
        No method produced a segmentation.
    """
    ok = [m for m in order if method_metrics[m]["status"] == "ok"]
    if not ok:
        reasons = "; ".join(f"{m}: {method_metrics[m]['reason']}" for m in order)
        raise DataError(f"no method produced a segmentation of these customers ({reasons})")
    criteria = [c for c, _ in _CRITERIA if any(np.isfinite(_value(method_metrics[m], c)) for m in ok)]
    rows = [{"method": m, "k": method_metrics[m]["k"], **{c: _value(method_metrics[m], c) for c in criteria}}
            for m in ok]
    for c, higher in _CRITERIA:
        if c not in criteria:
            continue
        vals = np.array([r[c] for r in rows])
        key = np.where(np.isfinite(vals), -vals if higher else vals, np.inf)
        for r, rank in zip(rows, pd.Series(key).rank(method="min").to_numpy()):
            r[f"rank_{c}"] = int(rank)
    for r in rows:
        r["mean_rank"] = float(np.mean([r[f"rank_{c}"] for c in criteria]))
    return rows


def _dominates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """``a`` strictly better than ``b`` on every criterion both have (at least two)."""
    better, shared = 0, 0
    for c, higher in _CRITERIA:
        va, vb = _value(a, c), _value(b, c)
        if not (np.isfinite(va) and np.isfinite(vb)):
            continue
        shared += 1
        better += (va > vb) if higher else (va < vb)
    return shared >= 2 and better == shared


def method_checks(method_metrics: Mapping[str, dict[str, Any]], order: Sequence[str]) -> dict[str, list[str]]:
    """Per method, the checks it fails (empty: eligible); see the module doc."""
    out: dict[str, list[str]] = {}
    for m in order:
        e = method_metrics[m]
        why = []
        if e["status"] != "ok":
            why.append(f"failed ({e.get('reason')})")
        else:
            if e.get("noise_share", 0.0) > MAX_NOISE_SHARE:
                why.append(f"{e['noise_share']:.0%} unassigned (over {MAX_NOISE_SHARE:.0%})")
            stab = _value(e, "stability")
            if np.isfinite(stab) and stab < MIN_STABILITY:
                why.append(f"unstable: refits agree {stab:.2f} < {MIN_STABILITY}")
            st = e.get("stability") or {}
            if st.get("resamples") and st.get("failed_refits") == st["resamples"]:
                why.append(f"not refittable: all {st['resamples']} stability refits at k={e.get('k')} failed")
            if e.get("largest_share", 0.0) > MAX_LARGEST_SHARE:
                why.append(f"degenerate: one segment holds {e['largest_share']:.0%} of the customers")
            if (e.get("k_choice") or {}).get("at_range_end"):
                why.append(f"no k settled: the lowest BIC is at the largest k tried ({e.get('k')})")
        out[m] = why
    passing = [m for m in order if not out[m]]
    richer = [m for m in passing if (method_metrics[m].get("k") or 0) >= 3]
    for m in passing:
        e = method_metrics[m]
        if e.get("k") == 2 and richer:
            out[m].append(f"degenerate: k=2 while {richer[0]} found k={method_metrics[richer[0]]['k']}")
    passing = [m for m in order if not out[m]]
    for m in passing:
        by = next((o for o in passing if o != m and _comparable(o, m, method_metrics)
                   and _dominates(method_metrics[o], method_metrics[m])), None)
        if by is not None:
            out[m].append(f"dominated by {by} at the same k (better on every score)")
    return out


#: Methods by the distance their segments are formed in. Silhouette, Davies-Bouldin and
#: Calinski-Harabasz measure compactness in the Euclidean feature space: the Euclidean
#: methods optimise exactly that (at a fixed k, Calinski-Harabasz is a monotone function of
#: the Euclidean inertia, which K-means minimises), so against a method of another distance
#: they win these scores by construction. Dominance is only checked within a family.
DISTANCE_FAMILY = {**{m: "euclidean" for m in ("kmeans", "kmeans_random", "minibatch_kmeans", "pso_kmeans", "som",
                                               "ward", "consensus")},
                   "adaptive_kmeans": "learned metric", "gmm": "likelihood", "deep_kmeans": "latent", "dec": "latent",
                   "idec": "latent", "dbscan": "density", "hdbscan": "density"}


def _comparable(a: str, b: str, method_metrics: Mapping[str, dict[str, Any]]) -> bool:
    """Whether two methods' scores compare: the same k (the scores favour fewer segments)
    and the same distance family (:data:`DISTANCE_FAMILY`; unknown methods compare with
    everything)."""
    if method_metrics[a].get("k") != method_metrics[b].get("k"):
        return False
    fa, fb = DISTANCE_FAMILY.get(a), DISTANCE_FAMILY.get(b)
    return fa is None or fb is None or fa == fb


def _preference(method: str, order: Sequence[str]) -> tuple[int, int]:
    known = PREFERENCE.index(method) if method in PREFERENCE else len(PREFERENCE)
    return known, list(order).index(method)


def choose_method(
    method_metrics: Mapping[str, dict[str, Any]], order: Sequence[str], select: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The method whose segmentation is used and the ranking behind it (module doc).

    Parameters
    ----------
    select : str, optional
        ``--select``: this method, whatever the ranking (it must have succeeded).

    Returns
    -------
    method : str
    ranking : list of dict
        One row per method that succeeded, eligible ones first in preference order: the
        :func:`rank_methods` columns, ``preference`` (1 = most preferred), ``eligible``,
        ``checks`` (why not, "; "-joined) and ``position``.

    Raises
    ------
    DataError
        No method produced a segmentation.
    ConfigError
        ``select`` names a method that did not run or failed.
    """
    order = list(order)
    rows = rank_methods(method_metrics, order)
    checks = method_checks(method_metrics, order)
    by_pref = sorted(order, key=lambda m: _preference(m, order))
    for r in rows:
        r["preference"] = by_pref.index(r["method"]) + 1
        r["eligible"] = not checks[r["method"]]
        r["checks"] = "; ".join(checks[r["method"]])
    rows.sort(key=lambda r: (not r["eligible"], r["preference"]))
    if not rows[0]["eligible"]:  # nothing passed: the most stable, then the most preferred
        best = max(rows, key=lambda r: (np.nan_to_num(r.get("stability", np.nan), nan=-1.0), -r["preference"]))
        rows.remove(best)
        rows.insert(0, best)
        measured = any(np.isfinite(r.get("stability", np.nan)) for r in rows)
        how = "the most stable" if measured else "the most preferred (no stability was measured)"
        best["checks"] = f"no method passed every check; chosen as {how}: " + best["checks"]
    for i, r in enumerate(rows, 1):
        r["position"] = i
    if select is None:
        return rows[0]["method"], rows
    if select not in method_metrics:
        raise ConfigError(f"--select {select}: that method did not run; add it to --methods")
    if method_metrics[select]["status"] != "ok":
        raise DataError(f"--select {select}: that method failed on these data ({method_metrics[select]['reason']})")
    return select, rows


def comparison_table(
    method_metrics: Mapping[str, dict[str, Any]], ranking: Sequence[dict[str, Any]], chosen: str
) -> pd.DataFrame:
    """One row per method: k, scores, stability, fit seconds, ARI/NMI, mean rank, preference,
    eligibility and the checks it failed, position, chosen."""
    positions = {r["method"]: r for r in ranking}
    rows = []
    for method, m in method_metrics.items():
        stab = m.get("stability") or {}
        rows.append({
            "method": method,
            "status": m["status"],
            "k": m.get("k"),
            "silhouette": m.get("silhouette"),
            "davies_bouldin": m.get("davies_bouldin"),
            "calinski_harabasz": m.get("calinski_harabasz"),
            "stability_mean": stab.get("mean"),
            "stability_std": stab.get("std"),
            "unassigned_share": m.get("noise_share"),
            "fit_seconds": m.get("total_fit_seconds"),
            "ari": m.get("ari"),
            "nmi": m.get("nmi"),
            "mean_rank": positions[method]["mean_rank"] if method in positions else None,
            "preference": positions[method]["preference"] if method in positions else None,
            "eligible": positions[method]["eligible"] if method in positions else False,
            "checks": positions[method]["checks"] if method in positions else None,
            "position": positions[method]["position"] if method in positions else None,
            "chosen": method == chosen,
            "reason": m.get("reason"),
        })
    return pd.DataFrame(rows)


def sensitivity_table(
    X: Any,
    runs: Mapping[str, MethodRun],
    method_metrics: Mapping[str, dict[str, Any]],
    params: Mapping[str, dict[str, Any]],
    seed: int,
    sample_size: int | None,
    progress: Callable[[int, int, str], None] | None = None,
    Z: Any = None,
) -> pd.DataFrame:
    """Scores across settings: the k sweep of every k-based method, plus eps x min_samples
    around DBSCAN's chosen values and min_cluster_size around HDBSCAN's.

    The extra fits run on ``Z`` (the embedding the methods were fitted on; ``X`` when
    None); every score is computed on ``X``.

    Returns
    -------
    pandas.DataFrame
        method, parameter, value, k, clusters_found, noise_share, silhouette,
        davies_bouldin, calinski_harabasz, inertia, status, reason.
    """
    rows: list[dict[str, Any]] = []
    for method, run in runs.items():
        spec = METHODS[method]
        if spec.k_param is None:
            continue
        for r in method_metrics[method]["sweep"]:
            rows.append({"method": method, "parameter": spec.k_param, "value": r["k"], **r})
    grids = _density_grids(runs, method_metrics, params)
    total = len(grids)
    for i, (method, setting, value) in enumerate(grids):
        if progress:
            progress(i, total, f"{method} {value}")
        fit = Fit(None)
        data = X if Z is None else Z
        timed_fit(fit, lambda: make_estimator(method, None, seed, {**params[method], **setting}).fit(data), data)
        rows.append({"method": method, "parameter": "+".join(setting), "value": value,
                     **score_fit(X, fit, sample_size, seed, fitted_on_X=Z is None)})
    if progress:
        progress(total, total, "")
    cols = ["method", "parameter", "value", "k", "clusters_found", "noise_share", "silhouette",
            "davies_bouldin", "calinski_harabasz", "inertia", "status", "reason"]
    table = pd.DataFrame(rows)
    for c in cols:
        if c not in table.columns:
            table[c] = None
    return table[cols]


def _density_grids(runs, method_metrics, params) -> list[tuple[str, dict[str, Any], str]]:
    grids: list[tuple[str, dict[str, Any], str]] = []
    for method, run in runs.items():
        # the grid matters most when the default setting found no segmentation
        if method not in ("dbscan", "hdbscan") or run.fits[0].error is not None:
            continue
        est = run.fits[0].estimator
        if method == "dbscan":
            eps, ms = float(est.eps_), int(est.min_samples_)
            for fe in EPS_FACTORS:
                for fm in MIN_SAMPLES_FACTORS:
                    setting = {"eps": eps * fe, "min_samples": max(2, int(round(ms * fm)))}
                    grids.append((method, setting, f"eps={setting['eps']:.4g} min_samples={setting['min_samples']}"))
        else:
            size, ms = int(est.min_cluster_size_), int(est.min_samples_)
            for f in MIN_CLUSTER_SIZE_FACTORS:  # min_samples held at its value, else it follows
                setting = {"min_cluster_size": max(2, int(round(size * f))), "min_samples": ms}
                grids.append((method, setting, f"min_cluster_size={setting['min_cluster_size']}"))
    return grids
