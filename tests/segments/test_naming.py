from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuseg.segments.naming import PERSONA_RULES, name_segments
from gpuseg.segments.profiles import segment_summary

EVENT_FEATURES = ["recency_days", "frequency", "monetary", "tenure_days", "views", "carts", "purchases",
                  "cart_abandonment", "share_evening", "share_weekend", "cat_kids", "price_index"]
ORDER_FEATURES = ["recency_days", "frequency", "monetary", "tenure_days", "items_per_order", "share_evening",
                  "price_index"]


def make_summary(segments: dict[int, dict[str, float]], features=EVENT_FEATURES, means=None) -> pd.DataFrame:
    """A segment_summary-shaped frame from z-scores (unlisted features: z 0); price_index mean 1."""
    segs = [s for s in segments for _ in features]
    mean = [(means or {}).get(s, {}).get(f, 1.0 if f == "price_index" else 10.0) for s in segments for f in features]
    share = 1 / len(segments)
    return pd.DataFrame({
        "segment": segs, "size": 10, "share": share, "revenue_share": share, "feature": list(features) * len(segments),
        "mean": mean, "median": mean, "z": [segments[s].get(f, 0.0) for s in segments for f in features],
        "overall_mean": 10.0, "overall_std": 1.0,
    })


@pytest.mark.parametrize(
    "z, means, expected",
    [
        ({"monetary": 1.8, "frequency": 1.2}, {}, "High-value loyal"),
        ({"views": 0.9, "purchases": -0.6}, {}, "Window shoppers"),
        ({"frequency": 0.3}, {"price_index": 0.8}, "Deal seekers"),
        ({"cart_abandonment": 0.9, "carts": 0.4}, {}, "Cart abandoners"),
        ({"recency_days": 1.5}, {}, "Lapsed"),
        ({"tenure_days": -1.2, "recency_days": -0.5}, {}, "New customers"),
        ({"monetary": 0.4}, {}, "Occasional"),
        # priority: lapsed before high value, cart abandoners before window shoppers
        ({"recency_days": 1.1, "monetary": 2.0, "frequency": 2.0}, {}, "Lapsed"),
        ({"cart_abandonment": 0.9, "carts": 0.4, "views": 0.9, "purchases": -0.6}, {}, "Cart abandoners"),
        # near misses
        ({"monetary": 1.8, "frequency": 0.4}, {}, "Occasional"),
        ({"frequency": -0.3}, {"price_index": 0.8}, "Occasional"),
        ({"tenure_days": -1.2, "recency_days": 0.5}, {}, "Occasional"),
    ],
    ids=["high-value", "window", "deal", "cart", "lapsed", "new", "fallback", "lapsed-first", "cart-first",
         "high-value-rare", "deal-no-purchases", "new-but-gone"],
)
def test_persona_rules(z, means, expected):
    names = name_segments(make_summary({0: z}, means={0: means}))
    assert names[0]["name"] == expected and names[0]["persona"] == expected


def test_rule_text_has_the_numbers():
    names = name_segments(make_summary({0: {"monetary": 1.8, "frequency": 1.234}, 1: {}},
                                       means={1: {"price_index": 0.5}}))
    assert names[0]["rule"] == "monetary z=+1.80 >= 1.0 and frequency z=+1.23 >= 0.5"
    assert names[1]["rule"] == "price_index=0.5 <= 0.9 and frequency z=+0.00 >= 0.0"


def test_unassigned_is_always_unassigned():
    names = name_segments(make_summary({-1: {"monetary": 3.0, "frequency": 3.0}, 0: {}}))
    assert names[-1]["name"] == "Unassigned"
    assert names[0]["name"] == "Occasional"


def test_orders_data_rules_that_need_missing_features_do_not_fire():
    # views/carts/purchases do not exist in order logs
    summary = make_summary({0: {"recency_days": -0.5, "tenure_days": -1.0}, 1: {"monetary": 1.5, "frequency": 1.0},
                            2: {"items_per_order": 2.0}}, features=ORDER_FEATURES)
    names = name_segments(summary)
    assert [names[s]["name"] for s in range(3)] == ["New customers", "High-value loyal", "Occasional"]


def test_duplicate_personas_are_qualified_by_their_most_distinctive_feature():
    summary = make_summary({
        0: {"views": 0.5, "purchases": -0.5, "share_weekend": 0.3},
        1: {"views": 1.5, "purchases": -0.5},  # strongest: keeps the plain name
        2: {"views": 0.6, "purchases": -0.7, "share_evening": 1.4, "cat_kids": 0.2},
        3: {"views": 0.5, "purchases": -0.5, "cat_kids": -0.9},
    })
    names = name_segments(summary, {"cat_kids": "kids & toys"})
    assert names[1]["name"] == "Window shoppers"
    assert names[2]["name"] == "Window shoppers (evening)"  # views 0.6 > 0.5: qualified before 0 and 3
    assert names[0]["name"] == "Window shoppers (weekend)"
    assert names[3]["name"] == "Window shoppers (little kids & toys)"
    assert "share_evening z=+1.40" in names[2]["rule"] and "segment 1" in names[2]["rule"]


def test_numerals_when_no_feature_distinguishes():
    names = name_segments(make_summary({0: {}, 1: {}, 2: {}}))
    assert [names[s]["name"] for s in range(3)] == ["Occasional", "Occasional 2", "Occasional 3"]


def test_rejects_profiles_frame():
    with pytest.raises(ValueError, match="segment_summary"):
        name_segments(pd.DataFrame({"segment": [0], "segment_name": ["x"], "monetary": [1.0]}))


z_values = st.floats(-3.0, 3.0, allow_nan=False).map(lambda v: round(v, 1))


@settings(max_examples=40, deadline=None)
@given(
    profiles=st.lists(
        st.fixed_dictionaries({f: z_values for f in EVENT_FEATURES}), min_size=1, max_size=12
    ),
    price=st.lists(st.sampled_from([0.7, 1.0, 1.3]), min_size=12, max_size=12),
    unassigned=st.booleans(),
)
def test_names_are_unique(profiles, price, unassigned):
    segments = {i: z for i, z in enumerate(profiles)}
    if unassigned:
        segments[-1] = profiles[0]
    means = {i: {"price_index": price[i % 12]} for i in segments}
    names = name_segments(make_summary(segments, means=means))
    assert sorted(names) == sorted(segments)
    assert len({v["name"] for v in names.values()}) == len(names)
    personas = {r.name for r in PERSONA_RULES} | {"Occasional"}
    for seg, v in names.items():
        if seg < 0:
            assert v["name"] == "Unassigned"
        else:
            assert v["persona"] in personas and v["name"].startswith(v["persona"])


def test_synthetic_personas_get_their_names(cpu, small_events):
    from gpuseg.config import CleanConfig, FeatureConfig
    from gpuseg.io.readers import from_frame
    from gpuseg.io.synthetic import PERSONAS
    from gpuseg.prep.clean import clean
    from gpuseg.prep.features import customer_features

    events, truth = small_events
    feats = customer_features(clean(from_frame(events, cpu), CleanConfig(), cpu), FeatureConfig())
    persona = truth.set_index("user_id")["persona"].reindex(feats.frame.index)
    labels = np.array([PERSONAS.index(p) for p in persona])
    names = name_segments(segment_summary(feats.frame, labels), feats.category_columns)
    assert {PERSONAS[s]: v["name"] for s, v in names.items()} == {
        "loyal_high_spender": "High-value loyal",
        "window_shopper": "Window shoppers",
        "deal_seeker": "Deal seekers",
        "cart_abandoner": "Cart abandoners",
        "lapsed": "Lapsed",
        "new_customer": "New customers",
    }
