"""The method ranking, --select and the comparison table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuseg.errors import ConfigError, DataError
from gpuseg.evaluate.comparison import MAX_NOISE_SHARE, choose_method, comparison_table, rank_methods


def _entry(sil, db, ch, stab=None, noise=0.0, k=4):
    e = {"status": "ok", "k": k, "silhouette": sil, "davies_bouldin": db, "calinski_harabasz": ch,
         "noise_share": noise, "total_fit_seconds": 0.1}
    if stab is not None:
        e["stability"] = {"mean": stab, "std": 0.01}
    return e


def test_a_method_best_on_every_criterion_wins():
    m = {
        "a": _entry(0.30, 1.5, 900, 0.80),
        "b": _entry(0.40, 1.2, 1100, 0.90),  # best everywhere
        "c": _entry(0.35, 1.3, 1000, 0.85),
    }
    method, ranking = choose_method(m, ["a", "b", "c"])
    assert method == "b"
    assert [r["method"] for r in ranking] == ["b", "c", "a"]
    assert ranking[0]["mean_rank"] == 1.0 and ranking[-1]["mean_rank"] == 3.0
    assert [r["position"] for r in ranking] == [1, 2, 3]
    assert ranking[0]["rank_stability"] == 1 and ranking[0]["rank_davies_bouldin"] == 1


def test_stability_can_outweigh_a_higher_silhouette():
    m = {
        "sharp_but_shaky": _entry(0.40, 1.20, 1000, 0.30),
        "steady": _entry(0.38, 1.25, 1000, 0.95),
    }
    # ranks: silhouette 1/2, DB 1/2, CH 1/1 (tie), stability 2/1 -> 1.25 vs 1.5
    assert choose_method(m, list(m))[0] == "sharp_but_shaky"
    m["steady"]["calinski_harabasz"] = 1001  # now 1.5 vs 1.5: the tie goes to the more stable
    method, ranking = choose_method(m, list(m))
    assert method == "steady" and ranking[0]["mean_rank"] == ranking[1]["mean_rank"]


def test_noisy_methods_are_not_eligible_and_noise_discounts_silhouette():
    m = {
        "dbscan": _entry(0.9, 0.5, 5000, 0.99, noise=MAX_NOISE_SHARE + 0.05),
        "kmeans": _entry(0.3, 1.5, 900, 0.8),
    }
    method, ranking = choose_method(m, ["dbscan", "kmeans"])
    assert method == "kmeans" and [r["method"] for r in ranking] == ["kmeans"]
    # below the limit a density method competes, its silhouette times the share assigned
    m = {"dbscan": _entry(0.9, 1.0, 1000, noise=0.15), "kmeans": _entry(0.8, 1.0, 1000)}
    ranking = rank_methods(m, ["dbscan", "kmeans"])
    assert ranking[0]["method"] == "kmeans" and ranking[1]["silhouette"] == pytest.approx(0.9 * 0.85)
    # when every method is noisy, they are ranked all the same
    assert choose_method({"dbscan": _entry(0.9, 1, 1, noise=0.5)}, ["dbscan"])[0] == "dbscan"


def test_missing_scores_rank_last_and_failed_methods_are_left_out():
    m = {
        "a": _entry(0.3, 1.5, 900),
        "c": _entry(float("nan"), 1.4, 950),
        "d": {"status": "failed", "reason": "found 1 segment"},
    }
    method, ranking = choose_method(m, ["a", "c", "d"])
    # c: silhouette unknown (ranked last there) but better DB and CH: mean rank 4/3 against 5/3
    assert method == "c" and [r["method"] for r in ranking] == ["c", "a"]
    assert ranking[0]["rank_silhouette"] == 2 and ranking[0]["mean_rank"] == pytest.approx(4 / 3)
    assert "stability" not in ranking[0]  # not computed: not a criterion
    with pytest.raises(DataError, match="d: found 1 segment"):
        choose_method({"d": m["d"]}, ["d"])


def test_select_overrides_the_ranking():
    m = {"a": _entry(0.3, 1.5, 900), "b": _entry(0.4, 1.2, 1100), "f": {"status": "failed", "reason": "boom"}}
    method, ranking = choose_method(m, ["a", "b", "f"], select="a")
    assert method == "a" and ranking[0]["method"] == "b"
    with pytest.raises(ConfigError, match="--select gmm: that method did not run"):
        choose_method(m, ["a", "b", "f"], select="gmm")
    with pytest.raises(DataError, match="--select f: that method failed on these data"):
        choose_method(m, ["a", "b", "f"], select="f")


scores = st.floats(0.01, 0.99, allow_nan=False)


@given(st.lists(st.tuples(scores, scores, scores, scores), min_size=1, max_size=6), st.randoms())
@settings(max_examples=60, deadline=None)
def test_ranking_is_deterministic_and_independent_of_dict_order(values, rnd):
    names = [f"m{i}" for i in range(len(values))]
    m = {n: _entry(s, d, c * 1000, t) for n, (s, d, c, t) in zip(names, values)}
    first = choose_method(m, names)
    shuffled = list(m.items())
    rnd.shuffle(shuffled)
    again = choose_method(dict(shuffled), names)
    assert first == again
    # the chosen method has the lowest mean rank
    best = min(r["mean_rank"] for r in first[1])
    assert first[1][0]["mean_rank"] == best and first[0] == first[1][0]["method"]
    # a method dominating all others on every criterion is chosen
    m["top"] = _entry(1.0, 0.0, 10_000, 1.0)
    assert choose_method(m, names + ["top"])[0] == "top"


def test_comparison_table():
    m = {"a": _entry(0.3, 1.5, 900, 0.8), "b": _entry(0.4, 1.2, 1100, 0.9),
         "f": {"status": "failed", "reason": "boom", "total_fit_seconds": 0.0}}
    m["a"].update(ari=0.5, nmi=0.6)
    method, ranking = choose_method(m, list(m))
    t = comparison_table(m, ranking, method)
    assert list(t["method"]) == ["a", "b", "f"]
    assert list(t.columns) == ["method", "status", "k", "silhouette", "davies_bouldin", "calinski_harabasz",
                               "stability_mean", "stability_std", "unassigned_share", "fit_seconds", "ari", "nmi",
                               "mean_rank", "position", "chosen", "reason"]
    assert t["chosen"].tolist() == [False, True, False]
    assert t.loc[2, "reason"] == "boom" and np.isnan(t.loc[2, "position"])
    assert t.loc[0, "ari"] == 0.5 and t.loc[1, "stability_mean"] == 0.9
