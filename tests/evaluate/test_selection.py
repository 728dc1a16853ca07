from __future__ import annotations

import numpy as np
import pytest

from gpuseg.evaluate.selection import choose_k, composite_scores, knee_point

KS = list(range(2, 11))


def elbow_curve(knee: int) -> list[float]:
    # steep fall until the knee, flat after
    return [1000.0 - 200.0 * min(k, knee) - 5.0 * max(k - knee, 0) for k in KS]


def inertia_curve(knee: int) -> list[float]:
    # a positive inertia that halves with every k until the knee, then falls by 3% per k
    return [1000.0 * 0.5 ** (min(k, knee) - 2) * 0.97 ** max(k - knee, 0) for k in KS]


@pytest.mark.parametrize("knee", [3, 4, 6, 8])
def test_knee_found(knee):
    assert knee_point(KS, elbow_curve(knee)) == knee


@pytest.mark.parametrize("curve", [[10.0] * 9, [100 - 10 * k for k in KS]], ids=["flat", "straight"])
def test_no_knee(curve):
    assert knee_point(KS, curve) is None


def test_composite_prefers_good_scores():
    comp = composite_scores([2, 3, 4], [0.1, 0.5, 0.3], [2.0, 0.5, 1.25], [10.0, 50.0, 30.0])
    assert comp == {2: 0.0, 3: 1.0, 4: 0.5}


def test_the_elbow_decides_even_when_silhouette_prefers_two():
    sil = [0.40, 0.20, 0.25, 0.30, 0.28, 0.2, 0.18, 0.17, 0.16]  # k=2 best silhouette
    db = [1.0, 1.6, 1.4, 1.1, 1.2, 1.5, 1.6, 1.7, 1.8]
    ch = [900, 600, 700, 800, 750, 600, 550, 500, 480]
    c = choose_k(KS, inertia_curve(5), sil, db, ch)
    assert c.knee == 5 and c.k == 5
    assert "elbow of the log-inertia curve over k=2..10 (Kneedle): k=5" in c.reason


def test_the_knee_is_that_of_the_log_inertia():
    """Each step removes 30-40% of the inertia up to k = 6, then 5%: the log curve bends at
    6, the raw one (its large early drops weigh more) at 5."""
    inertia = [1000.0, 600.0, 400.0, 280.0, 200.0, 190.0, 181.0, 172.0, 164.0]
    assert knee_point(KS, inertia) == 5 and knee_point(KS, np.log(inertia)) == 6
    c = choose_k(KS, inertia, [0.2] * 9, [1.0] * 9, [1.0] * 9)
    assert c.knee == 6 and c.k == 6


@pytest.mark.parametrize("inertia", [[4.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                                     [4.0, 2.0, 1e-3, -1e-12, 0.0, 0.0, 0.0, 0.0, 0.0],
                                     [4.0, 2.0, 1.0, np.nan, 0.5, 0.4, 0.3, 0.2, 0.1]], ids=["zero", "rounding", "nan"])
def test_a_zero_or_missing_inertia_gives_a_finite_rule(inertia):
    c = choose_k(KS, inertia, [0.1, 0.2, 0.5, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1], [1.0] * 9, [1.0] * 9)
    assert c.k in KS and (c.knee is None) == bool(np.isnan(inertia).any())


def test_the_scores_decide_without_an_elbow():
    sil = [0.1, 0.2, 0.5, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]
    c = choose_k(KS, [100 - 10 * k for k in KS], sil, [1.0] * 9, [1.0] * 9)
    assert c.knee is None and c.k == 4


def test_single_k():
    c = choose_k([6], [10.0], [0.3], [1.0], [5.0])
    assert c.k == 6 and "given" in c.reason


def test_nan_scores_are_worst():
    comp = composite_scores([2, 3], [np.nan, 0.2], [np.nan, 1.0], [np.nan, 3.0])
    assert comp[2] < comp[3]


@pytest.mark.parametrize("best", [4, 6, 7])
def test_the_elbow_wins_over_better_scores_nearby(best):
    sil = [0.2] * 9
    sil[best - 2] = 0.5
    c = choose_k(KS, inertia_curve(5), sil, [1.0] * 9, [900 - 50 * i for i in range(9)])
    assert c.knee == 5 and c.k == 5


def test_a_perfect_partition_is_not_ranked_last_by_calinski_harabasz():
    """Four groups of identical customers: at k=4 every customer sits on its centre (inertia
    0), where Calinski-Harabasz is infinite and scikit-learn's convention returns 1.0. Taken
    at face value that ranked k=4 last on the index and the composite chose k=3."""
    from gpuseg.evaluate.selection import choose_k

    choice = choose_k([2, 3, 4], inertia=[120.0, 40.0, 0.0], silhouette=[0.55, 0.9, 1.0],
                      davies_bouldin=[0.8, 0.1, 0.0], calinski_harabasz=[30.0, 45.0, 1.0])
    assert choice.k == 4
    assert choice.composite[4] == max(choice.composite.values())


def test_every_failed_k_of_a_sweep_is_explained():
    from gpuseg.cli import _failed_ks

    sweep = [{"k": 2, "status": "ok"}, {"k": 3, "status": "ok"}]
    sweep += [{"k": k, "status": "failed", "reason": f"found 4 segments for k={k}"} for k in range(5, 13)]
    sweep += [{"k": 13, "status": "failed", "reason": None}]
    assert _failed_ks(sweep) == "  k=5..12 failed: found 4 segments\n  k=13 failed: no reason recorded\n"
    assert _failed_ks(sweep[:2]) == ""
