from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuseg.segments.actions import segment_actions
from gpuseg.segments.naming import PERSONA_RULES, name_segments
from gpuseg.segments.profiles import segment_summary

EVENT_FEATURES = ["recency_days", "frequency", "monetary", "tenure_days", "views", "carts", "purchases",
                  "cart_abandonment", "share_evening", "share_weekend", "cat_kids", "price_index"]
ORDER_FEATURES = ["recency_days", "frequency", "monetary", "tenure_days", "items_per_order", "share_evening",
                  "price_index"]


def make_summary(segments: dict[int, dict[str, float]], features=EVENT_FEATURES, means=None,
                 revenue=None) -> pd.DataFrame:
    """A segment_summary-shaped frame from z-scores (unlisted features: z 0); means 10 (price_index 1) as the
    overall means, so every ratio to the overall mean is 1; revenue shares equal to the shares unless given."""
    segs = [s for s in segments for _ in features]
    mean = [(means or {}).get(s, {}).get(f, 1.0 if f == "price_index" else 10.0) for s in segments for f in features]
    share = 1 / len(segments)
    return pd.DataFrame({
        "segment": segs, "size": 10, "share": share,
        "revenue_share": [(revenue or {}).get(s, share) for s in segs], "feature": list(features) * len(segments),
        "mean": mean, "median": mean, "z": [segments[s].get(f, 0.0) for s in segments for f in features],
        "overall_mean": [1.0 if f == "price_index" else 10.0 for f in list(features) * len(segments)],
        "overall_std": 1.0,
    })


# a second, plain segment takes the rest of the customers and revenue
@pytest.mark.parametrize(
    "z, means, revenue, expected",
    [
        ({"monetary": 1.8, "frequency": 1.2}, {}, None, "High-value loyal"),
        ({"monetary": 0.6}, {}, 0.8, "High-value"),  # 80% of the revenue from 40% of the customers
        ({"views": 0.9, "purchases": -0.6}, {}, None, "Window shoppers"),
        ({"frequency": 0.3}, {"price_index": 0.8}, None, "Deal seekers"),
        ({"cart_abandonment": 0.9, "carts": 0.4}, {}, None, "Cart abandoners"),
        ({"recency_days": 0.6}, {"recency_days": 16.0}, None, "Lapsed"),
        ({"tenure_days": -1.2, "recency_days": -0.5}, {}, None, "New customers"),
        ({"frequency": 0.3}, {}, None, "Regular buyers"),
        ({"frequency": -0.5}, {"frequency": 0.05}, None, "Browsers"),
        ({"monetary": 0.4}, {}, None, "Occasional"),
        # priority: lapsed before high value, high value before the rest, cart abandoners before window shoppers,
        # window shoppers before browsers
        ({"recency_days": 1.1, "monetary": 2.0, "frequency": 2.0}, {"recency_days": 20.0}, None, "Lapsed"),
        ({"monetary": 0.6, "cart_abandonment": 0.9, "carts": 0.4}, {}, 0.9, "High-value"),
        ({"cart_abandonment": 0.9, "carts": 0.4, "views": 0.9, "purchases": -0.6}, {}, None, "Cart abandoners"),
        ({"views": 0.9, "purchases": -0.6}, {"frequency": 0.05}, None, "Window shoppers"),
        # near misses
        ({"monetary": 1.8, "frequency": 0.2}, {}, None, "Occasional"),
        ({"monetary": 0.4}, {}, 0.9, "Occasional"),  # twice the revenue, but spend z below 0.5
        ({"frequency": -0.3}, {"price_index": 0.8}, None, "Occasional"),
        ({"tenure_days": -1.2, "recency_days": 0.5}, {}, None, "Occasional"),
        ({"recency_days": 1.5}, {"recency_days": 14.0}, None, "Occasional"),  # 1.4x the overall recency
        ({"recency_days": 0.4}, {"recency_days": 20.0}, None, "Occasional"),  # 2x, but z below 0.5
        ({"frequency": -0.5}, {"frequency": 0.05, "views": 0.5}, None, "Occasional"),  # no activity either
    ],
    ids=["high-value-loyal", "high-value", "window", "deal", "cart", "lapsed", "new", "regular", "browsers",
         "fallback", "lapsed-first", "high-value-first", "cart-first", "window-before-browsers", "high-value-rare",
         "high-value-small-z", "deal-no-purchases", "new-but-gone", "lapsed-small-ratio", "lapsed-small-z",
         "browsers-no-views"],
)
def test_persona_rules(z, means, revenue, expected):
    # segment 0 has 40% of the customers and, when given, that share of the revenue; segment 1 the rest
    summary = make_summary({0: z, 1: {}}, means={0: means}, revenue=None if revenue is None else
                           {0: revenue, 1: 1 - revenue})
    summary["share"] = np.where(summary["segment"] == 0, 0.4, 0.6)
    names = name_segments(summary)
    assert names[0]["persona"] == expected
    assert names[0]["name"] == expected or expected == "Occasional"  # segment 1 is the larger Occasional


def test_rule_text_has_the_numbers():
    names = name_segments(make_summary({0: {"monetary": 1.8, "frequency": 1.234}, 1: {}, 2: {"recency_days": 0.8},
                                        3: {"monetary": 0.7}},
                                       means={1: {"price_index": 0.5}, 2: {"recency_days": 25.0}},
                                       revenue={0: 0.2, 1: 0.05, 2: 0.0, 3: 0.75}))
    assert names[0]["rule"] == "monetary z=+1.80 >= 1.0 and frequency z=+1.23 >= 0.5"
    assert names[1]["rule"] == "price_index=0.5 <= 0.9 and frequency z=+0.00 >= 0.0"
    assert names[2]["rule"] == "recency_days=2.50x overall >= 1.5x and recency_days z=+0.80 >= 0.5"
    assert names[3]["rule"] == "revenue_share/share=3.00 >= 2.0 and monetary z=+0.70 >= 0.5"


def test_unassigned_is_always_unassigned():
    names = name_segments(make_summary({-1: {"monetary": 3.0, "frequency": 3.0}, 0: {}}))
    assert names[-1]["name"] == "Unassigned"
    assert names[0]["name"] == "Occasional"


def test_orders_data_rules_that_need_missing_features_do_not_fire():
    # views/carts/purchases do not exist in order logs
    summary = make_summary({0: {"recency_days": -0.5, "tenure_days": -1.0}, 1: {"monetary": 1.5, "frequency": 1.0},
                            2: {"items_per_order": 2.0}}, features=ORDER_FEATURES)
    names = name_segments(summary)
    # an order log: High-value loyal is named from the recency-frequency-spend map; New customers keep theirs
    assert [names[s]["name"] for s in range(3)] == ["New customers", "Frequent big spenders", "Occasional"]
    assert [names[s]["persona"] for s in range(3)] == ["New customers", "High-value loyal", "Occasional"]


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


def test_a_qualifier_compares_with_the_plain_named_segment():
    """Both window-shopper segments are above the overall tenure; the weaker one has less of
    it than the one that keeps the plain name, so it is the "low tenure" one (by the overall
    z alone it would have been "high tenure", beside a plainly named segment with more)."""
    summary = make_summary({
        0: {"views": 1.5, "purchases": -0.5, "tenure_days": 1.6, "share_evening": 0.3},
        1: {"views": 0.9, "purchases": -0.5, "tenure_days": 0.8, "share_evening": 0.5},
    })
    names = name_segments(summary)
    assert names[0]["name"] == "Window shoppers"
    assert names[1]["name"] == "Window shoppers (low tenure)"
    assert "tenure_days z=+0.80 against +1.60" in names[1]["rule"]


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
            assert v["persona"] in personas
            rfm_named = v["persona"] == "Occasional" and "named from recency, orders and spend" in v["rule"]
            assert v["name"].startswith(v["persona"]) or rfm_named, v


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
    actions = segment_actions(segment_summary(feats.frame, labels))
    for seg, v in names.items():
        assert PERSONA_ACTIONS[v["persona"]] in [a["kind"] for a in actions[seg]]


#: The action every persona gets (Occasional: nurture).
PERSONA_ACTIONS = {"Lapsed": "win-back", "High-value loyal": "loyalty", "High-value": "loyalty",
                   "Cart abandoners": "checkout", "Deal seekers": "price", "Window shoppers": "retargeting",
                   "New customers": "onboarding", "Regular buyers": "cross-sell", "Browsers": "conversion",
                   "Occasional": "nurture"}


@settings(max_examples=60, deadline=None)
@given(
    profiles=st.lists(st.fixed_dictionaries({f: z_values for f in EVENT_FEATURES}), min_size=2, max_size=8),
    recency=st.lists(st.sampled_from([5.0, 10.0, 14.0, 15.0, 30.0]), min_size=8, max_size=8),
    frequency=st.lists(st.sampled_from([0.05, 2.0, 10.0]), min_size=8, max_size=8),
    revenue=st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8),
)
def test_names_and_actions_agree(profiles, recency, frequency, revenue):
    segments = dict(enumerate(profiles))
    means = {i: {"recency_days": recency[i], "frequency": frequency[i]} for i in segments}
    total = sum(revenue[: len(segments)]) or 1.0
    summary = make_summary(segments, means=means, revenue={i: revenue[i] / total for i in segments})
    names, actions = name_segments(summary), segment_actions(summary)
    for seg, v in names.items():
        kinds = [a["kind"] for a in actions[seg]]
        assert PERSONA_ACTIONS[v["persona"]] in kinds, (v, kinds)
        # the lapsed signal names first, so win-back fires exactly for Lapsed segments
        assert (v["persona"] == "Lapsed") == ("win-back" in kinds)


def test_kmeans_segments_of_the_synthetic_data_are_named(cpu, small_events):
    """Segments a clustering finds, not the planted personas: few fall through to Occasional."""
    from gpuseg.cluster.kmeans import KMeans
    from gpuseg.config import CleanConfig, FeatureConfig
    from gpuseg.io.readers import from_frame
    from gpuseg.prep.clean import clean
    from gpuseg.prep.features import customer_features
    from gpuseg.prep.scale import FeatureScaler

    feats = customer_features(clean(from_frame(small_events[0], cpu), CleanConfig(), cpu), FeatureConfig())
    bounded = [i for i, name in enumerate(feats.names) if name in feats.bounded]
    X = FeatureScaler(bounded=bounded).fit_transform(feats.frame.to_numpy(dtype=np.float64))
    occasional = 0
    for k in range(3, 8):
        summary = segment_summary(feats.frame, KMeans(k, random_state=0).fit(X).labels_)
        names = name_segments(summary, feats.category_columns)
        occasional += sum(v["persona"] == "Occasional" for v in names.values())
        assert any(v["persona"] in ("High-value loyal", "High-value") for v in names.values())
        actions = segment_actions(summary)
        for seg, v in names.items():
            assert PERSONA_ACTIONS[v["persona"]] in [a["kind"] for a in actions[seg]]
    assert occasional <= 5  # of 25 segments


ORDER_FEATURES = ("recency_days", "frequency", "monetary", "tenure_days", "avg_order_value")


@pytest.mark.parametrize(
    "z, means, expected",
    [
        ({"recency_days": 1.2, "monetary": -0.8}, {"frequency": 1.0}, "Lapsed one-time low spenders"),
        ({"recency_days": 1.2}, {"frequency": 1.1}, "Lapsed one-timers"),
        ({"monetary": 0.3, "recency_days": 0.2}, {"frequency": 1.0}, "One-timers"),
        ({"monetary": 0.9}, {"frequency": 1.2}, "One-time big spenders"),
        ({"recency_days": -0.8, "frequency": 0.3, "monetary": 0.2}, {"frequency": 2.5}, "Recent repeat buyers"),
        ({"recency_days": -0.8, "frequency": 0.3, "monetary": 0.7}, {"frequency": 2.5}, "Champions"),
        ({"recency_days": 0.8, "frequency": 0.2, "monetary": -0.2}, {"frequency": 3.0}, "Lapsed repeat buyers"),
        ({"recency_days": 0.8, "frequency": -0.2, "monetary": -0.2}, {"frequency": 3.0}, "Lapsed buyers"),
        ({"recency_days": 0.1, "frequency": -0.1, "monetary": 0.1}, {"frequency": 3.0}, "Occasional"),
        # a segment that spent nothing at all (free items) is not called low spenders or buyers
        ({"recency_days": 1.2, "monetary": -1.5}, {"frequency": 1.0, "monetary": 0.0}, "Lapsed one-time zero spenders"),
        ({"monetary": -0.2}, {"frequency": 1.0, "monetary": 0.0}, "One-time zero spenders"),
    ],
)
def test_order_segments_are_named_from_recency_orders_and_spend(z, means, expected):
    # an order log: the RFM map names every segment; the persona (and its actions) stays the rules'
    names = name_segments(make_summary({0: z, 1: {}}, features=ORDER_FEATURES, means={0: means}))
    assert names[0]["name"] == expected, names[0]
    if expected != "Occasional":
        assert names[0]["rule"].startswith("recency ") and "vs 10 overall" in names[0]["rule"]


def test_rfm_names_are_unique_and_recency_means_days_since_the_last_purchase():
    # two lapsed one-timers (persona Lapsed): the second is qualified by another feature; the recent one
    # is the one with fewer days since the last purchase
    segs = {0: {"recency_days": 1.0, "tenure_days": 0.6}, 1: {"recency_days": 1.1, "tenure_days": -0.7},
            2: {"recency_days": -0.9}}
    means = {0: {"frequency": 1.0, "recency_days": 30.0}, 1: {"frequency": 1.0, "recency_days": 31.0},
             2: {"frequency": 1.0, "recency_days": 2.0}}
    names = name_segments(make_summary(segs, features=ORDER_FEATURES, means=means))
    assert {names[s]["name"] for s in (0, 1)} == {"Lapsed one-timers", "Lapsed one-timers (low tenure)"} or {
        names[s]["name"] for s in (0, 1)} == {"Lapsed one-timers", "Lapsed one-timers (high tenure)"}
    assert names[2]["name"] == "Recent one-timers"
    assert len({v["name"] for v in names.values()}) == 3


@settings(max_examples=60, deadline=None)
@given(
    profiles=st.lists(st.fixed_dictionaries({f: z_values for f in ORDER_FEATURES}), min_size=2, max_size=8),
    recency=st.lists(st.sampled_from([5.0, 10.0, 12.0, 14.0, 30.0]), min_size=8, max_size=8),
    frequency=st.lists(st.sampled_from([1.0, 1.2, 2.0, 10.0]), min_size=8, max_size=8),
)
def test_map_names_and_actions_agree(profiles, recency, frequency):
    """In an order log the recency, frequency and spend map names the segments; with the
    naming, a segment gets win-back exactly when its name says Lapsed (or its persona is
    Lapsed), loyalty when it is called Champions, and never the bare nurture under a name
    from the map that stands for an action (lapsed, recent one-timers, repeat or frequent)."""
    segments = dict(enumerate(profiles))
    means = {i: {"recency_days": recency[i], "frequency": frequency[i]} for i in segments}
    summary = make_summary(segments, features=ORDER_FEATURES, means=means)
    names = name_segments(summary)
    actions = segment_actions(summary, naming=names)
    for seg, v in names.items():
        kinds = [a["kind"] for a in actions[seg]]
        lapsed = v.get("map", {}).get("recency") == "Lapsed" or v["persona"] == "Lapsed"
        assert lapsed == ("win-back" in kinds), (v, kinds)
        assert v["name"].startswith("Lapsed") <= lapsed
        if v["name"].split(" (")[0] == "Champions":
            assert "loyalty" in kinds, (v, kinds)
        words = v.get("map", {})
        if words.get("orders") in ("repeat", "frequent") or words.get("recency") == "Lapsed" or (
                words.get("recency") == "Recent" and words.get("orders") == "one-time"):
            assert "nurture" not in kinds, (v, kinds)


def test_lapsed_one_timers_below_the_lapsed_persona_get_win_back():
    """CDNOW's case: one-time buyers whose recency is 1.27 times the overall one (z +0.63)
    are named Lapsed one-timers by the map, under the Lapsed persona's 1.5 times; the
    advice follows the name."""
    summary = make_summary({0: {"recency_days": 0.63}, 1: {}}, features=ORDER_FEATURES,
                           means={0: {"recency_days": 12.7, "frequency": 1.0}})
    names = name_segments(summary)
    assert names[0]["name"] == "Lapsed one-timers" and names[0]["persona"] == "Occasional"
    assert [a["kind"] for a in segment_actions(summary)[0]] == ["nurture"]  # the signals alone
    got = segment_actions(summary, naming=names)[0]
    assert [a["kind"] for a in got] == ["win-back"]
    assert got[0]["text"].startswith("days since last activity 12.7 vs 10 overall (1.3x, z=+0.63)")
    assert "lapsed, one-time, buyers on the recency, orders and spend map" in got[0]["text"]


def test_a_segment_no_rule_names_is_qualified_by_what_sets_it_apart():
    """"Occasional" alone says nothing: where the segment stands out on a feature (|z| >= 0.5)
    its name says on which, unless another segment has that name; a segment average on
    everything stays plain."""
    rng = np.random.default_rng(0)
    n = 300
    feats = pd.DataFrame({"avg_order_value": rng.normal(50, 5, n), "items_per_order": rng.normal(3, 0.3, n)})
    feats["recency_days"] = np.where(np.arange(n) < 100, 90.0, 5.0) + rng.normal(0, 1, n)
    labels = np.repeat([0, 1, 2], n // 3)  # 0: lapsed; 1: big baskets, nothing a rule looks at; 2: average
    feats.loc[labels == 1, "avg_order_value"] += 20
    names = name_segments(segment_summary(feats, labels, revenue_column=None))
    assert names[0]["name"] == "Lapsed"
    assert {names[1]["name"], names[2]["name"]} == {"Occasional (high order value)", "Occasional (low order value)"}
    leader = 1 if names[1]["name"] == "Occasional (high order value)" else 2
    assert "most separates it from all customers, avg_order_value z=+" in names[leader]["rule"]
    flat = pd.DataFrame({"avg_order_value": rng.normal(50, 5, n)})
    assert name_segments(segment_summary(flat, np.zeros(n, dtype=int), revenue_column=None))[0]["name"] == \
        "Occasional"


def test_the_orders_in_a_one_time_rule_text_are_not_rounded_across_its_threshold():
    feats = pd.DataFrame({"recency_days": [400.0] * 200 + [10.0] * 200,
                          "frequency": [1.0] * 101 + [2.0] * 99 + [5.0] * 200,
                          "monetary": [50.0] * 200 + [80.0] * 200})
    names = name_segments(segment_summary(feats, np.repeat([0, 1], 200)))
    assert "orders 1.495 vs" in names[0]["rule"]
