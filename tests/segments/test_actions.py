from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg.segments.actions import segment_actions, suggest_actions
from gpuseg.segments.profiles import segment_summary

OVERALL = {"recency_days": 20.0, "frequency": 1.0, "monetary": 200.0, "tenure_days": 40.0, "views": 40.0,
           "carts": 3.0, "purchases": 1.2, "cart_abandonment": 0.5, "price_index": 1.0}


def kinds(profile, overall=OVERALL, activity=None):
    return [a["kind"] for a in suggest_actions({**overall, **profile}, overall, activity)]


@pytest.mark.parametrize(
    "profile, expected",
    [
        ({"monetary": 900.0, "frequency": 4.0}, ["loyalty"]),
        ({"recency_days": 45.0}, ["win-back"]),
        ({"cart_abandonment": 0.8, "carts": 6.0}, ["checkout"]),
        ({"views": 70.0, "purchases": 0.2}, ["retargeting"]),
        ({"tenure_days": 5.0, "recency_days": 3.0}, ["onboarding"]),
        ({"price_index": 0.75}, ["nurture", "price"]),
        ({"price_index": 1.3, "monetary": 800.0}, ["loyalty", "price"]),
        ({}, ["nurture"]),
        # near misses
        ({"cart_abandonment": 0.8, "carts": 1.0}, ["nurture"]),  # few carts
        ({"tenure_days": 5.0, "recency_days": 30.0}, ["win-back"]),  # new but gone: no onboarding
        ({"price_index": 1.05}, ["nurture"]),
    ],
    ids=["loyalty", "win-back", "checkout", "retargeting", "onboarding", "discounts", "premium", "nothing",
         "abandon-few-carts", "new-but-gone", "price-neutral"],
)
def test_actions_fire_on_hand_made_profiles(profile, expected):
    assert kinds(profile) == expected


def test_texts_state_their_numbers():
    acts = suggest_actions({**OVERALL, "monetary": 900.0, "recency_days": 45.0, "price_index": 0.82}, OVERALL)
    text = {a["kind"]: a["text"] for a in acts}
    assert text["loyalty"].startswith("mean spend 900 vs 200 overall (4.5x)")
    assert text["win-back"].startswith("days since last activity 45 vs 20 overall (2.2x)")
    assert text["price"].startswith("price_index 0.82 < 0.9")


def test_order_data_without_funnel_features():
    overall = {"recency_days": 20.0, "frequency": 2.0, "monetary": 200.0, "tenure_days": 40.0}
    assert kinds({"monetary": 500.0}, overall) == ["loyalty"]
    assert kinds({}, overall) == ["nurture"]


def test_timing_from_the_activity_grid():
    grid = np.full((7, 24), 0.2)
    grid[1:4, 19:22] = 5.0  # Tue-Thu, 19-22 h
    acts = suggest_actions(OVERALL, OVERALL, grid / grid.sum())
    timing = acts[-1]
    assert timing["kind"] == "timing"
    assert timing["text"].startswith("send campaigns Tue-Thu, 19:00-22:00: ")
    assert "43% if spread evenly" in timing["text"] and "busiest hour Tue 19:00" in timing["text"]


def test_timing_wraps_around_and_flat_grids():
    grid = np.zeros((7, 24))
    grid[[5, 6, 0], :] = 1.0
    grid[:, [23, 0, 1]] *= 3.0
    text = suggest_actions({}, {}, grid)[-1]["text"]
    assert text.startswith("send campaigns Sat-Mon, 23:00-02:00")
    assert suggest_actions({}, {}, np.ones((7, 24)))[-1]["text"].startswith("no clear peak")
    assert [a["kind"] for a in suggest_actions({}, {}, np.zeros((7, 24)))] == ["nurture"]
    with pytest.raises(ValueError, match="7, 24"):
        suggest_actions({}, {}, np.ones((24, 7)))


def test_segment_actions_from_a_summary():
    feats = pd.DataFrame({"monetary": [1000.0, 900.0, 10.0, 20.0, 5.0, 15.0], "recency_days": [1.0] * 6})
    summary = segment_summary(feats, np.array([0, 0, 1, 1, -1, -1]))
    grid = np.zeros((7, 24))
    grid[2, 10] = 1.0
    out = segment_actions(summary, {0: grid})
    assert out[-1] == []
    assert [a["kind"] for a in out[0]] == ["loyalty", "timing"]
    assert [a["kind"] for a in out[1]] == ["nurture"]
