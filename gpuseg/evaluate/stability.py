"""Stability of a segmentation under resampling of the customers.

A method is refitted at its chosen k on ``resamples`` fixed-seed subsamples, and every pair
of refits is compared by the adjusted Rand index on the customers both contain. A
segmentation that reflects structure in the data comes back when half the customers are
swapped; one that carves up noise does not.

Subsamples (:func:`subsamples`) are half samples without replacement (default) or
bootstrap samples of a shared pool: all customers, or a fixed-seed pool when there are more
(``2 * max_size`` customers for half samples, ``max_size`` for bootstrap samples), so
refits stay affordable on millions of customers while two subsamples still share about
half (half samples) or 40% (bootstrap) of their customers. All methods of a
run use the same subsamples, so their stabilities are comparable.

The consensus is recomputed on each subsample from its members' refits at the consensus'
k; a member that chose another k for itself is refitted at both, from one fit where the
method can re-cut (SOM, Ward, the deep methods).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import backend as _backend
from ..cluster import METHODS, make_estimator
from . import metrics as _m
from .sweep import FIT_ERRORS

__all__ = ["subsamples", "refit_labels", "pairwise_stability", "run_stability", "DEFAULT_RESAMPLES",
           "DEFAULT_MAX_SIZE"]

DEFAULT_RESAMPLES = 10
#: Customers per refit at most.
DEFAULT_MAX_SIZE = 5000


def subsamples(
    n: int, resamples: int, seed: int, scheme: str = "half", max_size: int | None = None
) -> list[np.ndarray]:
    """Sorted host index arrays into ``range(n)``.

    Parameters
    ----------
    scheme : {"half", "bootstrap"}
        Half of the pool without replacement, or a bootstrap sample of the pool with its
        duplicates dropped (a set of customers).
    max_size : int, optional
        At most this many customers per subsample: half samples come from a fixed-seed
        pool of ``2 * max_size`` customers, bootstrap samples from one of ``max_size``
        (when ``n`` is larger).
    """
    if scheme not in ("half", "bootstrap"):
        raise ValueError(f"scheme must be 'half' or 'bootstrap', got {scheme!r}")
    if resamples < 2:
        raise ValueError(f"resamples must be >= 2, got {resamples}")
    rng = np.random.default_rng(seed)
    pool = np.arange(n)
    # half samples of a pool of 2 * max_size, bootstrap samples of a pool of max_size:
    # at most max_size customers per refit either way
    cap = None if max_size is None else (2 * max_size if scheme == "half" else max_size)
    if cap is not None and n > cap:
        pool = np.sort(rng.choice(n, size=cap, replace=False))
    size = len(pool)
    out = []
    for _ in range(resamples):
        if scheme == "half":
            idx = rng.choice(size, size=max(2, size // 2), replace=False)
        else:
            idx = rng.integers(0, size, size=size)
        out.append(pool[np.unique(idx)])
    return out


def refit_labels(
    method: str, X: Any, ks: Sequence[int | None], seed: int, params: Mapping[str, Any],
    samples: Sequence[np.ndarray], member_labels: Mapping[str, Sequence[Any]] | None = None,
    estimators: dict[int | None, list[Any]] | None = None,
) -> dict[int | None, list[np.ndarray | None]]:
    """Host labels of the method refitted on each subsample at each k of ``ks`` (None where
    a fit failed). A method that can re-cut is fitted once at the largest k and re-cut.

    ``member_labels`` (consensus only, one k): each member's refit labels per subsample.
    ``estimators``, when given, receives the fitted estimators per k (None where a fit
    failed), for :mod:`gpuseg.evaluate.calibration`.
    """
    xp = _backend.array_namespace(X)
    ks = list(dict.fromkeys(ks))
    recut = len(ks) > 1 and hasattr(METHODS[method].cls, "recut")
    out: dict[int | None, list[np.ndarray | None]] = {k: [] for k in ks}
    if estimators is not None:
        estimators.update({k: [] for k in ks})
    for i, idx in enumerate(samples):
        Xs = X[xp.asarray(idx)]
        base = None
        for k in sorted(ks, key=lambda v: -(v or 0)):
            try:
                if member_labels is not None:
                    given = {m: labs[i] for m, labs in member_labels.items() if labs[i] is not None}
                    if len(given) < 2:
                        out[k].append(None)
                        continue
                    est = make_estimator(method, k, seed + 1 + i, {**params, "members": tuple(given)})
                    est.fit(Xs, member_labels={m: xp.asarray(v) for m, v in given.items()})
                elif recut and base is not None:
                    est = base.recut(Xs, k)
                else:
                    est = make_estimator(method, k, seed + 1 + i, params).fit(Xs)
                    base = est if recut else None
                out[k].append(np.asarray(_backend.to_host(est.labels_)))
            except FIT_ERRORS:
                out[k].append(None)
                est = None
            if estimators is not None:
                estimators[k].append(est)
    return out


def pairwise_stability(samples: Sequence[np.ndarray], labels: Sequence[np.ndarray | None]) -> dict[str, Any]:
    """Mean and spread of the ARI between every pair of refits on their shared customers
    (noise, -1, counts as a group of its own)."""
    scores = []
    for a, b in combinations(range(len(samples)), 2):
        if labels[a] is None or labels[b] is None:
            continue
        _, ia, ib = np.intersect1d(samples[a], samples[b], assume_unique=True, return_indices=True)
        if len(ia) < 2:
            continue
        scores.append(_m.adjusted_rand_score(labels[a][ia], labels[b][ib]))
    failed = sum(lab is None for lab in labels)
    if not scores:
        return {"mean": None, "std": None, "pairs": 0, "resamples": len(samples), "failed_refits": failed}
    return {
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "min": float(np.min(scores)),
        "pairs": len(scores),
        "resamples": len(samples),
        "failed_refits": failed,
    }


def run_stability(
    X: Any,
    chosen: Mapping[str, int | None],
    params: Mapping[str, Mapping[str, Any]],
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    members: Mapping[str, Sequence[str]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    scheme: str = "half",
    max_size: int | None = DEFAULT_MAX_SIZE,
    refits: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Stability of every method at its chosen k (``None`` k: density methods).

    Parameters
    ----------
    chosen : mapping
        Method -> its chosen k.
    members : mapping, optional
        Consensus method -> the member methods it combined; they are refitted at the
        consensus' k as well when they chose another.

    refits : dict, optional
        Receives, per method, ``(samples, labels, estimators)`` of its refits at its chosen
        k (the estimators are None for the consensus, which is recomputed from its
        members' labels), for :mod:`gpuseg.evaluate.calibration`.

    Returns
    -------
    dict
        Method -> ``{mean, std, min, pairs, resamples, failed_refits}``.
    """
    samples = subsamples(X.shape[0], resamples, seed, scheme, max_size)
    members = {c: tuple(ms) for c, ms in (members or {}).items() if c in chosen}
    needed: dict[str, list[int | None]] = {m: [k] for m, k in chosen.items() if m not in members}
    for c, ms in members.items():
        for m in ms:
            needed.setdefault(m, []).append(chosen[c])
    total = len(needed) + len(members)
    labels: dict[str, dict[int | None, list]] = {}
    fitted: dict[str, dict[int | None, list]] = {}
    for i, (method, ks) in enumerate(needed.items()):
        if progress:
            progress(i, total, method)
        fitted[method] = {}
        labels[method] = refit_labels(method, X, ks, seed, params.get(method, {}), samples, estimators=fitted[method])
    for j, (c, ms) in enumerate(members.items()):
        if progress:
            progress(len(needed) + j, total, c)
        given = {m: labels[m][chosen[c]] for m in ms}
        labels[c] = refit_labels(c, X, [chosen[c]], seed, params.get(c, {}), samples, given)
    if progress:
        progress(total, total, "")
    if refits is not None:
        for m, k in chosen.items():
            ests = fitted.get(m, {}).get(k) if m not in members else None
            refits[m] = (samples, labels[m][k], ests)
    return {m: pairwise_stability(samples, labels[m][k]) for m, k in chosen.items()}
