"""Comparing methods: which one becomes the segmentation, and how scores move with settings.

The method rule (:data:`METHOD_RULE`) is the interim one until the consensus and the
stability-based selection land: among the methods that succeeded and leave at most 20% of
the customers unassigned, the one with the highest silhouette at its own k, weighted by the
share of customers it assigns (a density method's silhouette leaves its noise out, which
would otherwise favour it over methods scored on everyone).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ..cluster import METHODS, make_estimator
from ..errors import DataError
from .sweep import Fit, MethodRun, timed_fit, score_fit

__all__ = ["METHOD_RULE", "MAX_NOISE_SHARE", "choose_method", "sensitivity_table"]

#: Methods leaving more customers than this unassigned (noise) are not chosen.
MAX_NOISE_SHARE = 0.2

METHOD_RULE = (
    "highest silhouette x share of customers assigned (noise-free methods: the silhouette) at each "
    f"method's chosen k, among methods that succeeded and leave at most {MAX_NOISE_SHARE:.0%} unassigned"
)

#: Multipliers of the chosen setting that the sensitivity analysis tries.
EPS_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
MIN_SAMPLES_FACTORS = (0.5, 1.0, 2.0)
MIN_CLUSTER_SIZE_FACTORS = (0.5, 1.0, 2.0)


def choose_method(method_metrics: Mapping[str, dict[str, Any]], order: Sequence[str]) -> str:
    """The method whose segmentation is used (:data:`METHOD_RULE`).

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

    def key(m: str) -> tuple[float, int]:
        s = method_metrics[m].get("silhouette", float("nan"))
        if s is None or not math.isfinite(s):
            return (-math.inf, -order.index(m))
        return (s * (1.0 - method_metrics[m].get("noise_share", 0.0)), -order.index(m))

    return max(eligible, key=key)


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
