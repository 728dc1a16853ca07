"""The confidence calibration against stability refits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from gpuseg.cluster import make_estimator
from gpuseg.evaluate.calibration import (
    MIN_PAIRS,
    Calibration,
    _matched,
    fit_calibration,
    kept_pairs,
    reliability_table,
)
from gpuseg.evaluate.stability import run_stability


def test_matching_undoes_a_renumbering_and_never_invents_a_partner():
    labels = np.array([0, 0, 1, 1, 2, 2, -1])
    refit = np.array([2, 2, 0, 0, 1, 1, -1])
    np.testing.assert_array_equal(_matched(refit, labels), labels)
    extra = np.array([2, 2, 0, 0, 1, 3, 1])  # a fourth refit segment has no partner
    assert _matched(extra, labels)[5] == -2


def test_the_map_recovers_a_known_probability_of_keeping():
    rng = np.random.default_rng(0)
    raw = rng.random(60_000)
    kept = (rng.random(60_000) < raw**2).astype(float)
    cal = fit_calibration(raw, np.arange(60_000), kept)
    grid = np.linspace(0.05, 0.95, 19)
    np.testing.assert_allclose(cal.apply(grid), grid**2, atol=0.06)
    assert np.all(np.diff(cal.y) >= 0) and 0 <= cal.y.min() and cal.y.max() <= 1
    assert cal.apply(np.array([-5.0]))[0] == pytest.approx(cal.y[0]) and cal.apply(np.array([9.0]))[0] == cal.y[-1]
    assert cal.pairs == 60_000 and cal.kept_share == pytest.approx(kept.mean())
    assert len(cal.x) <= 256
    again = Calibration.from_json(cal.to_json())
    np.testing.assert_array_equal(again.apply(grid), cal.apply(grid))


def test_too_few_pairs_give_no_calibration():
    assert fit_calibration(np.ones(10), np.arange(MIN_PAIRS - 1), np.ones(MIN_PAIRS - 1)) is None


@pytest.mark.parametrize("bad", [{"x": [0, 1], "y": [0.5, 0.2]}, {"x": [1, 0], "y": [0, 1]}, {"x": [0], "y": [2.0]},
                                 {"x": [0, 1], "y": [0.1]}])
def test_a_bad_map_is_refused(bad):
    with pytest.raises(ValueError):
        Calibration.from_json(bad)


def test_refits_of_clear_segments_keep_everyone_and_unclear_ones_do_not():
    X, _ = make_blobs(3000, centers=[[0, 0], [10, 0], [0, 10], [10, 10]], cluster_std=0.5, random_state=0)
    X = X.astype(np.float32)
    store = {}
    run_stability(X, {"kmeans": 4}, {}, seed=0, resamples=6, refits=store)
    samples, labels, estimators = store["kmeans"]
    est = make_estimator("kmeans", 4, 0).fit(X)
    rows, kept = kept_pairs(X, est.labels_, samples, labels, estimators)
    assert rows.size == sum(3000 - len(s) for s in samples)  # the customers each refit did not see
    assert kept.mean() > 0.99
    noise = np.random.default_rng(1).normal(size=(3000, 2)).astype(np.float32)
    store = {}
    run_stability(noise, {"kmeans": 7}, {}, seed=0, resamples=6, refits=store)
    est = make_estimator("kmeans", 7, 0).fit(noise)
    _, kept_noise = kept_pairs(noise, est.labels_, *store["kmeans"])
    assert kept_noise.mean() < kept.mean() - 0.05


def test_without_predict_the_refits_own_customers_count():
    labels = np.array([0, 0, 1, 1, 1, 0])
    samples = [np.array([0, 1, 2]), np.array([3, 4, 5])]
    refit = [np.array([1, 1, 0]), np.array([0, 0, 0])]
    rows, kept = kept_pairs(np.zeros((6, 1)), labels, samples, refit, None)
    np.testing.assert_array_equal(rows, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(kept, [1, 1, 1, 1, 1, 0])


def test_reliability_table():
    conf = np.array([0.1, 0.6, 0.96, 1.0])
    table = reliability_table(conf, np.array([0, 1, 2, 3, 3]), np.array([0.0, 1.0, 1.0, 1.0, 0.0]))
    assert [r["bin"] for r in table] == ["0.00-0.50", "0.50-0.70", "0.95-1.00"]
    assert table[-1] == {"bin": "0.95-1.00", "pairs": 3, "mean_confidence": pytest.approx((0.96 + 2) / 3),
                         "kept_share": pytest.approx(2 / 3)}
