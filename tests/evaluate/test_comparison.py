"""The method choice (preference among methods that pass the checks), --select and the
comparison table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuseg.errors import ConfigError, DataError
from gpuseg.evaluate.comparison import (
    MAX_NOISE_SHARE,
    MIN_STABILITY,
    PREFERENCE,
    choose_method,
    comparison_table,
    method_checks,
    rank_methods,
)


def _entry(sil, db, ch, stab=None, noise=0.0, k=4, largest=0.3):
    e = {"status": "ok", "k": k, "silhouette": sil, "davies_bouldin": db, "calinski_harabasz": ch,
         "noise_share": noise, "largest_share": largest, "total_fit_seconds": 0.1}
    if stab is not None:
        e["stability"] = {"mean": stab, "std": 0.01}
    return e


def test_the_preferred_method_wins_when_it_passes_every_check():
    m = {
        "kmeans": _entry(0.40, 1.2, 1100, 0.80),       # better silhouette, DB and CH ...
        "adaptive_kmeans": _entry(0.30, 1.5, 900, 0.85),  # ... but less stable: not dominated
        "ward": _entry(0.35, 1.3, 1000, 0.84),
    }
    method, ranking = choose_method(m, ["kmeans", "adaptive_kmeans", "ward"])
    assert method == "adaptive_kmeans"
    assert [r["method"] for r in ranking] == ["adaptive_kmeans", "ward", "kmeans"]  # PREFERENCE order
    assert [r["position"] for r in ranking] == [1, 2, 3] and all(r["eligible"] for r in ranking)
    assert [r["preference"] for r in ranking] == [1, 2, 3]
    # the mean rank is still reported
    assert ranking[2]["mean_rank"] == pytest.approx(1.5) and ranking[2]["rank_stability"] == 3


def test_a_dominated_method_is_not_chosen():
    m = {"ward": _entry(0.30, 1.5, 900, 0.80), "kmeans": _entry(0.40, 1.2, 1100, 0.90)}
    method, ranking = choose_method(m, list(m))
    assert method == "kmeans"
    assert ranking[1]["method"] == "ward" and not ranking[1]["eligible"]
    assert ranking[1]["checks"] == "dominated by kmeans at the same k (better on every score)"
    # at another k the scores do not compare: no veto
    m["kmeans"]["k"] = 3
    assert choose_method(m, list(m))[0] == "ward"


def test_euclidean_scores_do_not_veto_a_method_of_another_distance():
    """At a fixed k, Calinski-Harabasz is K-means' own objective: a K-means partition beats
    adaptive K-means on it by construction, which is no evidence against adaptive K-means."""
    m = {"adaptive_kmeans": _entry(0.30, 1.5, 900, 0.80), "kmeans_random": _entry(0.40, 1.2, 1100, 0.90)}
    method, ranking = choose_method(m, list(m))
    assert method == "adaptive_kmeans" and all(r["eligible"] for r in ranking)


@pytest.mark.parametrize("change, check", [
    ({"stability": {"mean": MIN_STABILITY - 0.05, "std": 0.1}}, "unstable: refits agree 0.55 < 0.6"),
    ({"noise_share": MAX_NOISE_SHARE + 0.05}, "25% unassigned (over 20%)"),
    ({"largest_share": 0.95}, "degenerate: one segment holds 95% of the customers"),
    ({"k": 2}, "degenerate: k=2 while kmeans found k=5"),
    ({"k": 12, "k_choice": {"at_range_end": True}}, "no k settled: the lowest BIC is at the largest k tried (12)"),
    ({"status": "failed", "reason": "found 1 segment"}, None),
    # every refit failed (k=8 of 10 customers on half samples of 5): stability not measured
    ({"stability": {"mean": None, "std": None, "pairs": 0, "resamples": 10, "failed_refits": 10}},
     "not refittable: all 10 stability refits at k=4 failed"),
])
def test_checks_veto_the_preferred_method(change, check):
    m = {"adaptive_kmeans": {**_entry(0.5, 1.0, 2000, 0.9), **change}, "kmeans": _entry(0.3, 1.4, 900, 0.8, k=5)}
    method, ranking = choose_method(m, list(m))
    assert method == "kmeans"
    if check is not None:
        assert method_checks(m, list(m))["adaptive_kmeans"] == [check]
        assert ranking[1]["checks"] == check and not ranking[1]["eligible"]
    else:
        assert [r["method"] for r in ranking] == ["kmeans"]  # failed methods are not ranked


def test_when_no_stability_was_measured_the_fallback_does_not_claim_the_most_stable():
    unmeasured = {"mean": None, "std": None, "pairs": 0, "resamples": 10, "failed_refits": 10}
    m = {"adaptive_kmeans": {**_entry(0.5, 1.0, 2000), "stability": dict(unmeasured)},
         "kmeans": {**_entry(0.6, 0.9, 2500), "stability": dict(unmeasured)}}
    method, ranking = choose_method(m, list(m))
    assert method == "adaptive_kmeans"
    assert ranking[0]["checks"].startswith("no method passed every check; chosen as the most preferred "
                                           "(no stability was measured): not refittable")


def test_when_nothing_passes_the_most_stable_is_chosen_and_says_so():
    m = {"dbscan": _entry(0.9, 0.5, 5000, 0.95, noise=0.5), "gmm": _entry(0.2, 2.0, 100, 0.4)}
    method, ranking = choose_method(m, list(m))
    assert method == "dbscan"
    assert ranking[0]["checks"].startswith("no method passed every check; chosen as the most stable: 50% unassigned")


def test_unknown_methods_follow_the_known_ones_in_the_order_given():
    m = {"b": _entry(0.3, 1.5, 900), "a": _entry(0.3, 1.5, 900), "gmm": _entry(0.3, 1.5, 900)}
    assert [r["method"] for r in choose_method(m, ["b", "a", "gmm"])[1]] == ["gmm", "b", "a"]


def test_noise_discounts_silhouette_in_the_scores():
    m = {"dbscan": _entry(0.9, 1.0, 1000, noise=0.15), "kmeans": _entry(0.8, 1.0, 1000)}
    ranking = rank_methods(m, ["dbscan", "kmeans"])
    assert ranking[0]["silhouette"] == pytest.approx(0.9 * 0.85) and ranking[1]["rank_silhouette"] == 1


def test_missing_scores_and_failed_methods():
    m = {"a": _entry(0.3, 1.5, 900), "c": _entry(float("nan"), 1.4, 950),
         "d": {"status": "failed", "reason": "found 1 segment"}}
    ranking = rank_methods(m, ["a", "c", "d"])
    assert [r["method"] for r in ranking] == ["a", "c"] and ranking[1]["rank_silhouette"] == 2
    assert "stability" not in ranking[0]  # not computed: not a criterion
    with pytest.raises(DataError, match="d: found 1 segment"):
        choose_method({"d": m["d"]}, ["d"])


def test_select_overrides_the_choice():
    m = {"adaptive_kmeans": _entry(0.3, 1.5, 900), "kmeans": _entry(0.4, 1.2, 1100, 0.5),
         "f": {"status": "failed", "reason": "boom"}}
    method, ranking = choose_method(m, list(m), select="kmeans")
    assert method == "kmeans" and ranking[0]["method"] == "adaptive_kmeans"
    with pytest.raises(ConfigError, match="--select gmm: that method did not run"):
        choose_method(m, list(m), select="gmm")
    with pytest.raises(DataError, match="--select f: that method failed on these data"):
        choose_method(m, list(m), select="f")


scores = st.floats(0.01, 0.99, allow_nan=False)


@given(st.lists(st.tuples(scores, scores, scores, scores, st.integers(2, 8)), min_size=1, max_size=6),
       st.randoms())
@settings(max_examples=80, deadline=None)
def test_choice_is_deterministic_and_the_first_eligible_by_preference(values, rnd):
    names = list(PREFERENCE[: len(values)])
    m = {n: _entry(s, d, c * 1000, t, k=k) for n, (s, d, c, t, k) in zip(names, values)}
    method, ranking = choose_method(m, names)
    shuffled = list(m.items())
    rnd.shuffle(shuffled)
    assert choose_method(dict(shuffled), names) == (method, ranking)
    checks = method_checks(m, names)
    eligible = [n for n in names if not checks[n]]
    if eligible:
        assert method == eligible[0]  # PREFERENCE order
        assert all(not checks[n] for n in eligible)
    # a method better than every other on every score is never vetoed as dominated
    m["top"] = _entry(1.0, 0.0, 10_000, 1.0, k=4)
    assert "dominated" not in " ".join(method_checks(m, names + ["top"])["top"])


def test_comparison_table():
    m = {"a": _entry(0.3, 1.5, 900, 0.8), "b": _entry(0.4, 1.2, 1100, 0.9),
         "f": {"status": "failed", "reason": "boom", "total_fit_seconds": 0.0}}
    m["a"].update(ari=0.5, nmi=0.6)
    method, ranking = choose_method(m, list(m))
    t = comparison_table(m, ranking, method)
    assert list(t["method"]) == ["a", "b", "f"]
    assert list(t.columns) == ["method", "status", "k", "silhouette", "davies_bouldin", "calinski_harabasz",
                               "stability_mean", "stability_std", "unassigned_share", "fit_seconds", "ari", "nmi",
                               "mean_rank", "preference", "eligible", "checks", "position", "chosen", "reason"]
    assert method == "b" and t["chosen"].tolist() == [False, True, False]
    assert t.loc[0, "checks"] == "dominated by b at the same k (better on every score)"
    assert t.loc[2, "reason"] == "boom" and np.isnan(t.loc[2, "position"])
    assert t.loc[0, "ari"] == 0.5 and t.loc[1, "stability_mean"] == 0.9
