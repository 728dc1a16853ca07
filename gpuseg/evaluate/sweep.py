"""Fitting every method over the k range, scoring every fit, and choosing each method's k.

A method's number of segments comes from its ``k_rule`` (:class:`gpuseg.cluster.MethodSpec`):

``elbow``
    the shared rule of :func:`gpuseg.evaluate.selection.choose_k` over the k range
    (K-means, k-means with random init, mini-batch K-means, PSO K-means, SOM, Ward);
``bic``
    the k with the lowest Bayesian information criterion (Gaussian mixtures);
``density``
    one fit; k is the number of clusters the method finds (DBSCAN, HDBSCAN).

Noise labels (-1, density methods) are an "unassigned" group: the internal scores are
computed without them and the rows report how many there are. A fit that raises on the
data, or finds fewer than two segments, is recorded as failed with the reason; the other
methods go on.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .. import backend as _backend
from ..cluster import METHODS, make_estimator
from . import metrics as _m
from .selection import choose_k

__all__ = ["Fit", "MethodRun", "fit_method", "score_fit", "score_method", "timed_fit", "FIT_ERRORS"]

#: Exceptions that mean "this method cannot segment these data", not a bug in gpuseg
#: (numpy's LinAlgError is a ValueError; device faults, RuntimeErrors, still raise).
FIT_ERRORS = (ValueError, ArithmeticError, MemoryError)


@dataclass
class Fit:
    """One fitted estimator (or the reason it failed)."""

    k: int | None
    estimator: Any = None
    labels: Any = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class MethodRun:
    """All fits of one method."""

    method: str
    params: dict[str, Any]
    fits: list[Fit] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.fits)


#: Appended to the BIC rule's reason when the lowest BIC is the largest k tried.
BIC_AT_EDGE = ("; that is the largest k tried and the BIC was still falling, so the mixture found no k in this range "
               "(on skewed or zero-heavy features a Gaussian mixture keeps adding components): read this k as the "
               "range's end, not as segments found")


def fit_method(
    method: str,
    X: Any,
    ks: Sequence[int],
    seed: int,
    params: dict[str, Any],
    on_fit: Callable[[str, int | None], None] | None = None,
    on_epoch: Callable[[str, int, int, float], None] | None = None,
    member_runs: dict[str, "MethodRun"] | None = None,
    fit_with: Callable[[int, int], Any] | None = None,
) -> MethodRun:
    """Fit ``method`` at every k of ``ks`` (once for density methods).

    Failures listed in :data:`FIT_ERRORS` are recorded in the :class:`Fit`, not raised.
    ``on_epoch`` reaches estimators that train in epochs (their ``callback``).
    ``member_runs`` (consensus): the members' runs over the same ``ks``, whose labels at
    each k it combines instead of fitting its members again. ``fit_with(k, seed)``, when
    given, returns the fitted estimator instead (K-means on Dask workers).
    """
    spec = METHODS[method]
    run = MethodRun(method, dict(params))
    ks = list(ks) if spec.k_param is not None else [None]
    # SOM and Ward build one map / tree for the whole sweep and cut it at every k: fitted
    # at the largest k, then re-cut (the fit's time is counted at that k)
    base = None
    if len(ks) > 1 and hasattr(spec.cls, "recut"):
        base = Fit(max(ks))
        timed_fit(base, lambda: make_estimator(method, base.k, seed, params, callback=on_epoch).fit(X), X)
        if base.error is not None:  # e.g. a SOM grid too small for the largest k: fit each k
            base = None
    for k in ks:
        if on_fit:
            on_fit(method, k)
        fit = Fit(k)
        if member_runs is not None:
            given = {m: r.fits[ks.index(k)].labels for m, r in member_runs.items() if r.fits[ks.index(k)].error is None}
            timed_fit(fit, lambda: _consensus(method, k, seed, params, X, given), X)
        elif fit_with is not None:
            timed_fit(fit, lambda: fit_with(k, seed), X)
        elif base is None:
            timed_fit(fit, lambda: make_estimator(method, k, seed, params, callback=on_epoch).fit(X), X)
        else:
            timed_fit(fit, lambda: base.estimator if k == base.k else base.estimator.recut(X, k), X)
            if k == base.k:
                fit.seconds += base.seconds
        run.fits.append(fit)
    return run


def _consensus(method: str, k: int, seed: int, params: dict[str, Any], X: Any, given: dict[str, Any]) -> Any:
    if len(given) < 2:
        raise ValueError(f"fewer than 2 members succeeded at k={k}")
    est = make_estimator(method, k, seed, {**params, "members": tuple(given)})
    return est.fit(X, member_labels=given)


def timed_fit(fit: Fit, make: Callable[[], Any], X: Any) -> None:
    """Run ``make`` (returning a fitted estimator) into ``fit``, timing it, recording failures.

    Convergence warnings are silenced: a fit that converges to fewer segments than asked is
    reported as such by :func:`score_fit`.
    """
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(converge|distinct clusters).*")
            est = make()
        _backend.synchronize(X)
        fit.estimator, fit.labels = est, est.labels_
    except FIT_ERRORS as exc:
        fit.error = f"{type(exc).__name__}: {_one_line(exc)}"
    fit.seconds = time.perf_counter() - t0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def score_fit(
    X: Any,
    fit: Fit,
    sample_size: int | None,
    seed: int,
    truth_codes: Any = None,
    truth_mask: Any = None,
    fitted_on_X: bool = True,
    cache: dict | None = None,
    Z: Any = None,
) -> dict[str, Any]:
    """Scores of one fit: internal scores on the non-noise rows, noise counts, ARI/NMI.

    ``cache`` (a dict kept across calls on the same ``X``) reuses the internal scores of a
    partition already scored: methods that agree (the consensus and its members often do)
    are scored once.

    Scores are always computed on ``X`` (the scaled features), so methods fitted on an
    embedding are compared in the same space; ``fitted_on_X=False`` says the estimator saw
    another space, so its own ``inertia_`` is not used; ``Z`` is that space (an embedding),
    where a mixture's BIC and AIC are computed (its likelihood is of ``Z``, not ``X``).
    """
    row: dict[str, Any] = {"k": fit.k, "fit_seconds": round(fit.seconds, 4)}
    if fit.error is not None:
        row.update(status="failed", reason=fit.error)
        return row
    xp = _backend.array_namespace(X)
    labels = fit.labels
    host = np.asarray(_backend.to_host(labels))
    assigned = host >= 0
    found = int(len(np.unique(host[assigned])))
    row["clusters_found"] = found
    row["noise"] = int((~assigned).sum())
    row["noise_share"] = float((~assigned).mean())
    row["largest_share"] = float(np.bincount(host[assigned]).max() / host.size) if assigned.any() else 0.0
    est = fit.estimator
    if fit.k is None:
        row["k"] = found
    if found < 2:
        row.update(status="failed", reason=_no_structure(found, row["noise_share"], est))
        return row
    if fit.k is not None and found < fit.k:  # e.g. duplicated customers: fewer distinct groups
        row.update(status="failed", reason=f"found {found} segments for k={fit.k}")
        return row
    row["status"] = "ok"
    if assigned.all():
        Xa, la = X, labels
    else:
        mask = xp.asarray(assigned)
        Xa, la = X[mask], labels[mask]
    key = _partition_key(host) if cache is not None else None
    if key is not None and key in cache:  # the same partition as an earlier fit: same scores
        row.update(cache[key])
    else:
        scores: dict[str, float] = {}
        try:
            scores["silhouette"] = _m.silhouette_score(Xa, la, sample_size=sample_size, random_state=seed)
        except ValueError:  # the sample holds a single cluster (the others are tiny)
            scores["silhouette"] = float("nan")
        scores["davies_bouldin"] = _m.davies_bouldin_score(Xa, la)
        scores["calinski_harabasz"] = _m.calinski_harabasz_score(Xa, la)
        scores["inertia"] = _m.inertia(Xa, la)
        if key is not None:
            cache[key] = scores
        row.update(scores)
    inertia = getattr(est, "inertia_", None) if fitted_on_X else None
    if inertia is not None and assigned.all():
        row["inertia"] = float(inertia)
    for attr, key in (("reconstruction_loss_", "reconstruction_loss"), ("n_epochs_", "epochs")):
        value = getattr(est, attr, None)
        if value is not None:
            row[key] = float(value) if key == "reconstruction_loss" else int(value)
    if getattr(est, "sampled_", False):  # fitted on a sample, the rest assigned by predict
        row["fitted_on_sample"] = True
    n_iter = getattr(est, "n_iter_", None)
    if n_iter is not None:
        row["n_iter"] = int(n_iter)
    if hasattr(est, "bic"):
        space = X if fitted_on_X or Z is None else Z
        row["bic"] = float(est.bic(space))
        row["aic"] = float(est.aic(space))
    if truth_codes is not None:
        # noise stays a group of its own ("unassigned") against the truth
        row["ari"] = _m.adjusted_rand_score(truth_codes[truth_mask], labels[truth_mask])
        row["nmi"] = _m.normalized_mutual_info_score(truth_codes[truth_mask], labels[truth_mask])
    return row


def _no_structure(found: int, noise_share: float, est: Any) -> str:
    """Why a fit that found fewer than 2 segments means: said plainly, as a finding."""
    seg = f"found {found} segment{'s' if found != 1 else ''}"
    if est is None or not hasattr(est, "noise_share_"):
        return seg
    space = (f"the first {est.projection_.n_components_} principal components" if getattr(est, "projection_", None)
             is not None else "the features")
    if found == 0:
        return f"{seg}: every customer is noise at these settings; no dense group stands out on {space}"
    return (f"{seg}: the customers form one connected dense mass on {space} ({noise_share:.0%} unassigned); "
            "there are no density-separated segments at these settings")


def _partition_key(labels: np.ndarray) -> bytes:
    """A digest of the partition, the same for any renumbering of its labels."""
    import hashlib

    # numbered by first appearance; noise stays -1 (it is not a segment of its own)
    codes = np.where(labels >= 0, pd.factorize(labels, sort=False)[0], -1).astype(np.int32)
    return hashlib.blake2b(codes.tobytes(), digest_size=16).digest()


def score_method(
    X: Any,
    run: MethodRun,
    sample_size: int | None,
    seed: int,
    truth_codes: Any = None,
    truth_mask: Any = None,
    on_score: Callable[[str, int | None], None] | None = None,
    fitted_on_X: bool = True,
    cache: dict | None = None,
    Z: Any = None,
) -> dict[str, Any]:
    """Score every fit of a run and choose the method's k (scores on ``X``; see
    :func:`score_fit` for ``fitted_on_X`` and ``Z``).

    Returns
    -------
    dict
        The method's entry of ``metrics.json``: ``status`` (ok | failed), ``reason``,
        the chosen row's scores, ``k_choice`` and the per-k ``sweep``.
    """
    spec = METHODS[run.method]
    sweep = []
    for fit in run.fits:
        if on_score:
            on_score(run.method, fit.k)
        sweep.append(score_fit(X, fit, sample_size, seed, truth_codes, truth_mask, fitted_on_X, cache, Z))
    ok = [i for i, r in enumerate(sweep) if r["status"] == "ok"]
    entry: dict[str, Any] = {"params": run.params, "k_rule": spec.k_rule, "total_fit_seconds": round(run.seconds, 4)}
    if not ok:
        reasons = sorted({r["reason"] for r in sweep})
        entry.update(status="failed", reason="; ".join(reasons), sweep=sweep)
        return entry
    edge = False
    if spec.k_rule == "bic":
        best = min(ok, key=lambda i: (sweep[i]["bic"], i))
        reason = f"lowest BIC over k={sweep[ok[0]]['k']}..{sweep[ok[-1]]['k']}: k={sweep[best]['k']}"
        edge = len(ok) >= 2 and best == ok[-1]
        if edge:
            reason += BIC_AT_EDGE
        knee = None
    elif spec.k_rule == "density":
        best = ok[0]
        reason = f"{sweep[best]['k']} segments found by density ({sweep[best]['noise']} unassigned)"
        knee = None
    else:
        rows = [sweep[i] for i in ok]
        choice = choose_k(
            [r["k"] for r in rows],
            [r["inertia"] for r in rows],
            [r["silhouette"] for r in rows],
            [r["davies_bouldin"] for r in rows],
            [r["calinski_harabasz"] for r in rows],
        )
        for r in rows:
            r["composite"] = choice.composite[r["k"]]
        best = next(i for i in ok if sweep[i]["k"] == choice.k)
        reason, knee = choice.reason, choice.knee
    chosen = sweep[best]
    entry.update({key: val for key, val in chosen.items() if key != "composite"})
    entry["chosen_index"] = best
    entry["k_choice"] = {"knee": knee, "reason": reason}
    if edge:
        entry["k_choice"]["at_range_end"] = True
    entry["sweep"] = sweep
    return entry
