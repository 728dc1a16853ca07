"""Seconds to combine 5 member segmentations into a consensus, gpuseg vs a notebook baseline.

Data: a float32 mixture of 8 overlapping Gaussian segments in 8 dimensions (standardised),
overlapping enough that the members disagree on some customers.
Members: K-means++ (3 seeds) and mini-batch K-means (2 seeds), all at k = 8, fitted once
per size with gpuseg's estimators; their fit time is reported but not part of the
consensus time (a ``gpuseg run`` fits the members for their own sweep anyway and hands
their labels to the consensus).

Timed, side by side in this process on the same member labels:

- ``gpuseg vote``: ``ConsensusClustering(strategy="vote")`` given the member labels
  (member ranking by a sampled silhouette, Hungarian alignment on contingency tables,
  weighted vote, confidence);
- ``baseline vote``: what a notebook does: ``sklearn.metrics.cluster.contingency_matrix``
  and ``scipy.optimize.linear_sum_assignment`` per member, then ``scipy.stats.mode`` over
  the stacked aligned labels, and the agreement share;
- ``gpuseg evidence``: evidence accumulation on a 2,000-customer sample;
- ``full evidence`` (only up to ``--full-max`` customers, default 10,000): the textbook
  version, an n x n co-association matrix clustered by average linkage; its memory grows
  with n^2 (1M customers would need 4 TB in float32), which is why gpuseg samples.

    python bench/consensus.py --sizes 10k,100k,1M
    python bench/consensus.py --sizes 1M --device gpu     # on a GPU machine

Results: a table on stdout and JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from methods import K, parse_size, sync  # noqa: E402
from methods import make_data as _make_data  # noqa: E402

D = 8

MEMBERS = (("kmeans", 0), ("kmeans", 1), ("kmeans", 2), ("minibatch_kmeans", 0), ("minibatch_kmeans", 1))


def baseline_vote(labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    from scipy.optimize import linear_sum_assignment
    from scipy.stats import mode
    from sklearn.metrics.cluster import contingency_matrix

    ref = labels[0]
    aligned = [ref]
    for lab in labels[1:]:
        table = contingency_matrix(ref, lab)
        rows, cols = linear_sum_assignment(-table)
        lut = np.empty(table.shape[1], dtype=np.int64)
        lut[cols] = rows
        aligned.append(lut[lab])
    stacked = np.stack(aligned)
    winner = mode(stacked, axis=0, keepdims=False).mode
    return winner, (stacked == winner).mean(axis=0)


def full_evidence(labels: list[np.ndarray], k: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(labels[0])
    co = np.zeros((n, n), dtype=np.float32)
    for lab in labels:
        co += lab[:, None] == lab[None, :]
    dist = 1.0 - co / len(labels)
    np.fill_diagonal(dist, 0.0)
    return fcluster(linkage(squareform(dist, checks=False), "average"), t=k, criterion="maxclust") - 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10k,100k,1M")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--full-max", type=parse_size, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from sklearn.metrics import adjusted_rand_score

    from gpuseg import backend
    from gpuseg.cluster import make_estimator
    from gpuseg.cluster.consensus import ConsensusClustering

    be = backend.select(args.device)
    xp = be.xp
    rows = []
    print(f"consensus of {len(MEMBERS)} members at k={K} on {be.device_label}")
    for n in [parse_size(s) for s in args.sizes.split(",")]:
        X_host, truth = make_data(n)
        X = xp.asarray(X_host)
        t0 = time.perf_counter()
        member_labels = {}
        for method, seed in MEMBERS:
            est = make_estimator(method, K, seed, {}).fit(X)
            member_labels[f"{method}#{seed}"] = est.labels_
        sync(xp)
        fit_s = time.perf_counter() - t0
        host = [np.asarray(backend.to_host(v)) for v in member_labels.values()]

        def run(strategy):
            est = ConsensusClustering(K, members=tuple(member_labels), strategy=strategy, random_state=0)
            est.fit(X, member_labels=member_labels)
            sync(xp)
            return est

        def best_of(fn):
            best, out = float("inf"), None
            for _ in range(args.repeat):
                t = time.perf_counter()
                out = fn()
                best = min(best, time.perf_counter() - t)
            return best, out

        vote_s, vote = best_of(lambda: run("vote"))
        base_s, (base_lab, base_conf) = best_of(lambda: baseline_vote(host))
        evid_s, evid = best_of(lambda: run("evidence"))
        row = {
            "n": n,
            "members_fit_seconds": round(fit_s, 3),
            "gpuseg_vote_seconds": round(vote_s, 4),
            "baseline_vote_seconds": round(base_s, 4),
            "vote_speedup": round(base_s / vote_s, 2),
            "gpuseg_evidence_seconds": round(evid_s, 4),
            "ari_vote_truth": round(adjusted_rand_score(truth, backend.to_host(vote.labels_)), 4),
            "ari_evidence_truth": round(adjusted_rand_score(truth, backend.to_host(evid.labels_)), 4),
            "ari_members_truth": [round(adjusted_rand_score(truth, h), 4) for h in host],
            "ari_vote_vs_baseline": round(adjusted_rand_score(base_lab, backend.to_host(vote.labels_)), 4),
            "mean_confidence_vote": round(float(np.mean(backend.to_host(vote.confidence_))), 4),
        }
        if n <= args.full_max:
            full_s, full = best_of(lambda: full_evidence(host, K))
            row["full_evidence_seconds"] = round(full_s, 4)
            row["evidence_speedup_vs_full"] = round(full_s / evid_s, 2)
            row["ari_evidence_vs_full"] = round(adjusted_rand_score(full, backend.to_host(evid.labels_)), 4)
        rows.append(row)
        print(json.dumps(row))

    out = {
        "benchmark": "consensus",
        "device": be.device_label,
        "backend": be.name,
        "python": platform.python_version(),
        "k": K,
        "members": [f"{m}#{s}" for m, s in MEMBERS],
        "repeat": args.repeat,
        "rows": rows,
    }
    path = Path(args.out) if args.out else HERE / "results" / f"consensus-{be.name}-{platform.node() or 'host'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'n':>9} {'members fit s':>14} {'vote s':>8} {'baseline s':>11} {'ratio':>6} {'evidence s':>11}"
          f" {'full EAC s':>11} {'ARI vote':>9} {'ARI evid':>9}")
    for r in rows:
        print(f"{r['n']:>9,} {r['members_fit_seconds']:>14.2f} {r['gpuseg_vote_seconds']:>8.3f} "
              f"{r['baseline_vote_seconds']:>11.3f} {r['vote_speedup']:>6.2f} {r['gpuseg_evidence_seconds']:>11.3f} "
              f"{r.get('full_evidence_seconds', float('nan')):>11.3f} {r['ari_vote_truth']:>9.3f} "
              f"{r['ari_evidence_truth']:>9.3f}")
    print(f"results: {path}")
    return 0


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows and their true segment: overlapping segments in D dimensions."""
    return _make_data(n, seed, d=D, center_scale=1.6, spread=(0.7, 1.3), truth=True)


if __name__ == "__main__":
    sys.exit(main())
