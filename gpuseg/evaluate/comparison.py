"""Comparing methods: the ranking that chooses the segmentation, the comparison table, and
how scores move with settings.

Selection rule (:data:`METHOD_RULE`), over the methods that succeeded and leave at most 20%
of the customers unassigned (all of them when none does), each at its own k:

1. rank the methods on four criteria, all computed on the same scaled features: silhouette
   times the share of customers assigned (higher is better; a density method's silhouette
   leaves its noise out, which would otherwise favour it), Davies-Bouldin (lower),
   Calinski-Harabasz (higher) and stability, the mean pairwise ARI of refits on half
   samples (higher; left out when stability was not computed);
2. the method with the lowest mean rank is chosen; ties go to the more stable, then to the
   higher silhouette, then to the method listed first.

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

__all__ = ["METHOD_RULE", "MAX_NOISE_SHARE", "rank_methods", "choose_method", "comparison_table",
           "sensitivity_table"]

#: Methods leaving more customers than this unassigned (noise) are not chosen.
MAX_NOISE_SHARE = 0.2

METHOD_RULE = (
    "lowest mean rank over silhouette x share assigned, Davies-Bouldin, Calinski-Harabasz and stability "
    f"(each method at its own k, on the scaled features), among methods leaving at most {MAX_NOISE_SHARE:.0%} "
    "unassigned; ties: stability, then silhouette"
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
    """The ranking table (best first): method, k, per-criterion value and rank, mean rank.

    Raises
    ------
    DataError
        No method produced a segmentation.
    """
    ok = [m for m in order if method_metrics[m]["status"] == "ok"]
    if not ok:
        reasons = "; ".join(f"{m}: {method_metrics[m]['reason']}" for m in order)
        raise DataError(f"no method produced a segmentation of these customers ({reasons})")
    eligible = [m for m in ok if method_metrics[m].get("noise_share", 0.0) <= MAX_NOISE_SHARE] or ok
    criteria = [c for c, _ in _CRITERIA if any(np.isfinite(_value(method_metrics[m], c)) for m in eligible)]
    rows = []
    for m in eligible:
        rows.append({"method": m, "k": method_metrics[m]["k"],
                     **{c: _value(method_metrics[m], c) for c in criteria}})
    for c, higher in _CRITERIA:
        if c not in criteria:
            continue
        vals = np.array([r[c] for r in rows])
        key = np.where(np.isfinite(vals), -vals if higher else vals, np.inf)
        ranks = pd.Series(key).rank(method="min").to_numpy()  # ties share the best rank
        for r, rank in zip(rows, ranks):
            r[f"rank_{c}"] = int(rank)
    for r in rows:
        r["mean_rank"] = float(np.mean([r[f"rank_{c}"] for c in criteria]))

    def tie_break(r: dict[str, Any]) -> tuple:
        stab = r.get("stability", float("nan"))
        sil = r.get("silhouette", float("nan"))
        return (r["mean_rank"], -(stab if np.isfinite(stab) else -np.inf),
                -(sil if np.isfinite(sil) else -np.inf), order.index(r["method"]))

    rows.sort(key=tie_break)
    for i, r in enumerate(rows, 1):
        r["position"] = i
    return rows


def choose_method(
    method_metrics: Mapping[str, dict[str, Any]], order: Sequence[str], select: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The method whose segmentation is used and the ranking behind it.

    Parameters
    ----------
    select : str, optional
        ``--select``: this method, whatever the ranking (it must have succeeded).

    Raises
    ------
    DataError
        No method produced a segmentation.
    ConfigError
        ``select`` names a method that did not run or failed.
    """
    ranking = rank_methods(method_metrics, order)
    if select is None:
        return ranking[0]["method"], ranking
    if select not in method_metrics:
        raise ConfigError(f"--select {select}: that method did not run; add it to --methods")
    if method_metrics[select]["status"] != "ok":
        raise DataError(f"--select {select}: that method failed on these data ({method_metrics[select]['reason']})")
    return select, ranking


def comparison_table(
    method_metrics: Mapping[str, dict[str, Any]], ranking: Sequence[dict[str, Any]], chosen: str
) -> pd.DataFrame:
    """One row per method: k, scores, stability, fit seconds, ARI/NMI, rank, chosen."""
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
