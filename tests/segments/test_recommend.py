"""Product recommendations per segment: top items and items bought together (cosine of the
binary customer x item purchase matrix), checked against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuseg.segments.recommend import NO_PRODUCTS, NO_PURCHASES, PURCHASE, segment_recommendations

VIEW = 0


def brute_force(customer, product, etype, segment, top_items, top_related, min_support):
    """Segment -> (top items, bought together) from Python sets, the definition written out."""
    df = pd.DataFrame({"customer": customer, "product": product, "segment": segment,
                       "etype": PURCHASE if etype is None else etype})
    bought = df[(df["product"] >= 0) & (df["etype"] == PURCHASE)]
    out = {}
    for s in sorted(set(np.asarray(segment).tolist())):
        d = bought[bought["segment"] == s]
        purchases = d.groupby("product").size().to_dict()
        buyers = {i: set(g["customer"]) for i, g in d.groupby("product")}
        top = sorted(purchases, key=lambda i: (-purchases[i], i))[:top_items]
        together = []
        for i in top:
            pairs = []
            for j in buyers:
                both = len(buyers[i] & buyers[j])
                if j != i and both >= min_support:
                    pairs.append((-(both / np.sqrt(float(len(buyers[i])) * float(len(buyers[j])))), j, both))
            together.append([(j, -score, both) for score, j, both in sorted(pairs)[:top_related]])
        out[s] = ([(i, purchases[i], len(buyers[i])) for i in top], together)
    return out


def as_tuples(rec):
    top = [(t["item"], t["purchases"], t["buyers"]) for t in rec["top_items"]]
    together = [[(r["item"], r["score"], r["co_buyers"]) for r in t["related"]] for t in rec["bought_together"]]
    return top, together


rows = st.integers(0, 80)


@st.composite
def purchase_logs(draw):
    n = draw(rows)
    ints = lambda lo, hi: np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), dtype=np.int64)
    customer = ints(0, 12)
    segment = customer % draw(st.integers(1, 3))  # a customer's rows share its segment
    etype = draw(st.one_of(st.none(), st.just(ints(0, 3))))
    return customer, ints(-1, 9), etype, segment


@settings(max_examples=150, deadline=None)
@given(purchase_logs(), st.integers(0, 5), st.integers(0, 4), st.integers(1, 3))
def test_matches_brute_force(log, top_items, top_related, min_support):
    customer, product, etype, segment = log
    got = segment_recommendations(customer, product, etype, segment, top_items, top_related, min_support)
    want = brute_force(customer, product, etype, segment, top_items, top_related, min_support)
    assert list(got) == list(want)
    for s, (top, together) in want.items():
        got_top, got_together = as_tuples(got[s])
        assert got_top == top
        assert [[(i, n) for i, _, n in t] for t in got_together] == [[(i, n) for i, _, n in t] for t in together]
        for g, w in zip(got_together, together):
            np.testing.assert_allclose([v for _, v, _ in g], [v for _, v, _ in w], rtol=1e-12)
        if len(product) and (product < 0).all():
            assert got[s]["note"] == NO_PRODUCTS
        else:
            assert (got[s]["note"] == NO_PURCHASES) == (not top and got[s]["purchases"] == 0)


def test_recommends_only_items_the_segment_bought():
    # segment 0 buys 1..3, segment 1 buys 4..6; both view 9 and segment 0 views 5
    customer = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0, 2, 1])
    segment = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
    product = np.array([1, 2, 1, 3, 4, 5, 4, 6, 9, 9, 5])
    etype = np.array([3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0])
    recs = segment_recommendations(customer, product, etype, segment, min_support=1)
    for s, bought in {0: {1, 2, 3}, 1: {4, 5, 6}}.items():
        listed = {t["item"] for t in recs[s]["top_items"]}
        listed |= {r["item"] for t in recs[s]["bought_together"] for r in t["related"]}
        assert listed == bought


def test_an_item_is_never_related_to_itself():
    # everyone buys 1 and 2, twice each: 1's only partner is 2 and 2's only partner is 1
    customer = np.repeat(np.arange(4), 4)
    product = np.tile([1, 2, 1, 2], 4)
    recs = segment_recommendations(customer, product, None, np.zeros(16, dtype=int))
    together = {t["item"]: [(r["item"], r["co_buyers"]) for r in t["related"]] for t in recs[0]["bought_together"]}
    assert together == {1: [(2, 4)], 2: [(1, 4)]}
    assert recs[0]["top_items"] == [{"item": 1, "purchases": 8, "buyers": 4}, {"item": 2, "purchases": 8, "buyers": 4}]
    assert recs[0]["bought_together"][0]["related"][0]["score"] == pytest.approx(1.0)


@pytest.mark.parametrize("min_support, listed", [(1, [7, 8]), (2, [7]), (3, [])], ids=["one", "two", "three"])
def test_min_support(min_support, listed):
    # 7 is bought with 5 by customers 0 and 1, 8 with 5 by customer 2 only
    customer = np.array([0, 0, 1, 1, 2, 2])
    product = np.array([5, 7, 5, 7, 5, 8])
    recs = segment_recommendations(customer, product, None, np.zeros(6, dtype=int), top_items=1,
                                   min_support=min_support)
    assert [r["item"] for r in recs[0]["bought_together"][0]["related"]] == listed
    assert (recs[0]["note"] is None) == bool(listed)


def test_orders_mode_counts_every_line_but_no_product():
    customer = np.array([0, 0, 1, 1, 1])
    product = np.array([3, -1, 3, 3, 4])
    recs = segment_recommendations(customer, product, None, np.zeros(5, dtype=np.int32), min_support=1)
    assert recs[0]["top_items"] == [{"item": 3, "purchases": 3, "buyers": 2}, {"item": 4, "purchases": 1, "buyers": 1}]
    assert recs[0]["purchases"] == 4 and recs[0]["buyers"] == 2 and recs[0]["items"] == 2


def test_segment_without_purchases_says_so():
    customer = np.array([0, 1, 2])
    etype = np.array([PURCHASE, VIEW, VIEW])
    recs = segment_recommendations(customer, np.array([1, 2, 1]), etype, np.array([0, 1, -1]))
    assert list(recs) == [-1, 0, 1]
    for s in (-1, 1):
        assert recs[s]["top_items"] == [] and recs[s]["bought_together"] == [] and recs[s]["note"] == NO_PURCHASES
    assert recs[0]["top_items"] == [{"item": 1, "purchases": 1, "buyers": 1}] and recs[0]["note"] is not None


@pytest.mark.parametrize("etype", [None, np.array([PURCHASE, PURCHASE, VIEW, PURCHASE])], ids=["orders", "events"])
def test_data_without_products_say_so(xp, etype):
    # no product_id column: every code is -1, whether or not the segment bought
    customer, segment = xp.asarray(np.array([0, 0, 1, 2])), xp.asarray(np.array([0, 0, 1, -1]))
    etype = None if etype is None else xp.asarray(etype)
    recs = segment_recommendations(customer, xp.full(4, -1, dtype=xp.int64), etype, segment)
    assert list(recs) == [-1, 0, 1]
    for rec in recs.values():
        assert rec["note"] == NO_PRODUCTS == "no product_id in the data: nothing to recommend"
        assert rec["top_items"] == [] and rec["purchases"] == 0


def test_ties_go_to_the_smaller_item_code():
    # 30, 10 and 20 are bought equally often, and 10 and 20 equally with 30
    customer = np.array([0, 0, 0, 1, 1, 1])
    product = np.array([30, 20, 10, 10, 30, 20])
    recs = segment_recommendations(customer, product, None, np.zeros(6, dtype=int))
    assert [t["item"] for t in recs[0]["top_items"]] == [10, 20, 30]
    assert [r["item"] for r in recs[0]["bought_together"][2]["related"]] == [10, 20]


def test_items_are_named():
    recs = segment_recommendations(np.array([0, 0, 1, 1]), np.array([1, 0, 1, 0]), None, np.zeros(4, dtype=int),
                                   product_names=["85123A", "POST"])
    assert [t["item"] for t in recs[0]["top_items"]] == ["85123A", "POST"]
    assert recs[0]["bought_together"][0]["related"][0]["item"] == "POST"


def test_huge_sparse_codes_stay_sparse():
    """REES46-like product ids near 1e12 and customer ids near 1e15: nothing is sized by a code."""
    rng = np.random.default_rng(0)
    customer = 10**15 + rng.integers(0, 2000, 20_000)
    product = 10**12 + rng.integers(0, 5000, 20_000) * 7919
    recs = segment_recommendations(customer, product, None, customer % 4, top_items=3, top_related=3, min_support=1)
    assert sorted(recs) == [0, 1, 2, 3] and all(len(r["top_items"]) == 3 for r in recs.values())


def test_follows_the_input_device(xp):
    rng = np.random.default_rng(3)
    customer, product = rng.integers(0, 300, 4000), rng.integers(-1, 60, 4000)
    etype, segment = rng.integers(0, 4, 4000), customer % 5
    want = segment_recommendations(customer, product, etype, segment, min_support=2)
    got = segment_recommendations(*(xp.asarray(a) for a in (customer, product, etype, segment)), min_support=2)
    assert [as_tuples(got[s])[0] for s in got] == [as_tuples(want[s])[0] for s in want]
    for s in want:
        for g, w in zip(as_tuples(got[s])[1], as_tuples(want[s])[1]):
            assert [(i, n) for i, _, n in g] == [(i, n) for i, _, n in w]
            np.testing.assert_allclose([v for _, v, _ in g], [v for _, v, _ in w], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"product": np.array([1.5, 2.0])}, "integer codes"), ({"segment_of_row": np.zeros(3, dtype=int)}, "rows"),
     ({"top_items": -1}, "top_items"), ({"min_support": 0}, "min_support"), ({"top_related": 1.5}, "top_related"),
     ({"product_names": ["a"]}, "no name")],
    ids=["float-products", "lengths", "negative-top", "zero-support", "float-related", "unnamed-code"],
)
def test_rejects_bad_input(kwargs, match):
    args = {"customer": np.array([0, 1]), "product": np.array([0, 1]), "event_type": None,
            "segment_of_row": np.array([0, 0])} | kwargs
    with pytest.raises(ValueError, match=match):
        segment_recommendations(**args)


def test_label_items_names_every_listed_item_it_can():
    from gpuseg.segments.recommend import label_items

    customer = np.array([0, 0, 1, 1, 2])
    product = np.array([0, 1, 0, 1, 0])
    recs = segment_recommendations(customer, product, None, np.zeros(5, dtype=int), min_support=1,
                                   product_names=["85123A", "22423"])
    label_items(recs, {0: "WHITE HEART"}, ["85123A", "22423"])
    top = recs[0]["top_items"]
    assert top[0] == {"item": "85123A", "purchases": 3, "buyers": 3, "label": "WHITE HEART"}
    assert "label" not in top[1]  # no name known: the id alone
    assert recs[0]["bought_together"][1]["related"][0]["label"] == "WHITE HEART"


def test_label_items_asks_product_labels_for_the_listed_items_only(cpu):
    from gpuseg.config import CleanConfig
    from gpuseg.io.readers import from_frame
    from gpuseg.prep.clean import clean
    from gpuseg.segments.recommend import label_items

    orders = pd.DataFrame({"customer_id": [1, 1, 2, 2, 3, 3], "timestamp": pd.Timestamp("2021-01-01"),
                           "amount": 5.0, "product_id": ["85123A", "22423", "85123A", "22423", "85123A", "X1"],
                           "Description": ["WHITE HEART", "CAKESTAND", "WHITE HEART", "cake", None, "EGG"]})
    cleaned = clean(from_frame(orders, cpu, "orders"), CleanConfig(), cpu)
    labels = cleaned.product_labels
    asked = []
    original = labels.for_products
    labels.for_products = lambda codes: asked.append(list(codes)) or original(codes)
    recs = {0: {"top_items": [{"item": "85123A"}], "bought_together": [
        {"item": "85123A", "related": [{"item": "22423"}]}]}}
    label_items(recs, labels, cleaned.product_names)
    assert [sorted(cleaned.product_names[c] for c in a) for a in asked] == [["22423", "85123A"]]
    assert recs[0]["top_items"][0]["label"] == "WHITE HEART"
    assert recs[0]["bought_together"][0]["related"][0]["label"] == "CAKESTAND"
