from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg.backend import to_host
from gpuseg.config import CleanConfig, FeatureConfig
from gpuseg.errors import DataError
from gpuseg.io.readers import from_frame
from gpuseg.prep.clean import clean
from gpuseg.prep.features import customer_features

A = (1, 10, "electronics.smartphone", "apple", 100.0)
B = (2, 20, "appliances.kitchen.kettle", "bosch", 50.0)
C = (3, 10, "electronics.smartphone", "samsung", 300.0)


def ev(t, kind, item, user, session):
    return (t + " UTC", kind, *item, user, session)


# 2019-10-01 was a Tuesday, 2019-10-05 a Saturday.
LOG = [
    ev("2019-10-01 10:00:00", "view", A, 1, "s1"),
    ev("2019-10-01 10:05:00", "cart", A, 1, "s1"),
    ev("2019-10-01 10:10:00", "purchase", A, 1, "s1"),
    ev("2019-10-05 20:00:00", "view", B, 1, "s2"),
    ev("2019-10-05 20:01:00", "cart", B, 1, "s2"),
    ev("2019-10-02 23:00:00", "view", A, 2, "s3"),
    ev("2019-10-02 23:30:00", "view", C, 2, "s3"),
    ev("2019-10-02 23:40:00", "cart", C, 2, "s3"),
    ev("2019-10-02 23:45:00", "remove_from_cart", C, 2, "s3"),
    ev("2019-10-03 03:00:00", "view", B, 3, "s4"),
    ev("2019-10-03 03:10:00", "purchase", B, 3, "s4"),
]

DAY = 86400.0
EXPECTED = {
    1: dict(recency_days=0.0, frequency=1, monetary=100.0, tenure_days=(4 * DAY + 10 * 3600 + 60) / DAY,
            avg_order_value=100.0, spend_rate_annualised=100.0 / 30 * 365, views=2, carts=2, removals=0, purchases=1,
            view_to_cart=1.0, cart_to_purchase=0.5, cart_abandonment=0.5, sessions=2, events_per_session=2.5,
            session_minutes=5.5, share_midnight=0, share_morning=0.6, share_afternoon=0, share_evening=0.4,
            share_night=0, share_weekend=0.4, cat_electronics=0.6, cat_appliances=0.4, brands=2,
            avg_price_viewed=75.0, avg_price_paid=100.0, price_index=1.0),
    2: dict(recency_days=(2 * DAY + 20 * 3600 + 16 * 60) / DAY, frequency=0, monetary=0.0, tenure_days=45 / 1440,
            avg_order_value=0.0, spend_rate_annualised=0.0, views=2, carts=1, removals=1, purchases=0, view_to_cart=0.5,
            cart_to_purchase=0.0, cart_abandonment=1.0, sessions=1, events_per_session=4.0, session_minutes=45.0,
            share_midnight=0, share_morning=0, share_afternoon=0, share_evening=0, share_night=1.0, share_weekend=0,
            cat_electronics=1.0, cat_appliances=0.0, brands=2, avg_price_viewed=200.0, avg_price_paid=0.0,
            price_index=(1 + 3 + 3 + 3) / 4),
    3: dict(recency_days=(2 * DAY + 17 * 3600 - 9 * 60) / DAY, frequency=1, monetary=50.0, tenure_days=10 / 1440,
            avg_order_value=50.0, spend_rate_annualised=50.0 / 30 * 365, views=1, carts=0, removals=0, purchases=1, view_to_cart=0.0,
            cart_to_purchase=0.0, cart_abandonment=0.0, sessions=1, events_per_session=2.0, session_minutes=10.0,
            share_midnight=1.0, share_morning=0, share_afternoon=0, share_evening=0, share_night=0, share_weekend=0,
            cat_electronics=0.0, cat_appliances=1.0, brands=1, avg_price_viewed=50.0, avg_price_paid=50.0,
            price_index=1.0),
}


# before FEATURE_VERSION 2 (models saved earlier keep these): the arithmetic mean price ratio,
# and the funnel rates as logged (customer 3's purchase had no cart event)
EXPECTED_V1 = {c: dict(v) for c, v in EXPECTED.items()}
EXPECTED[2]["price_index"] = 3 ** 0.75  # geometric mean of the ratios 1, 3, 3, 3
EXPECTED[3]["cart_to_purchase"] = 1.0  # the purchase was carted, whether logged or not


@pytest.fixture
def feats(make_log, backend):
    data = from_frame(make_log(LOG), backend)
    return customer_features(clean(data, CleanConfig(price_outliers=False), backend), FeatureConfig())


def test_hand_computed_event_features(feats):
    got = to_host(feats.frame)
    expected = pd.DataFrame.from_dict(EXPECTED, orient="index")
    expected.index.name = "customer_id"
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected.astype("float64"), check_exact=False, rtol=1e-9, atol=1e-9)


def test_a_model_saved_before_version_2_keeps_its_definitions(feats, make_log, backend):
    """A saved model's features are computed as it was trained: the arithmetic price index and
    the funnel rates as logged, for a spec without a version (model.json before 2026-12-07)."""
    from gpuseg.prep.features import FeatureSpec, feature_spec

    spec = feature_spec(feats)
    assert spec.version == 2 and spec.to_json()["version"] == 2
    old = FeatureSpec.from_json({k: v for k, v in spec.to_json().items() if k != "version"}, spec.price_arrays())
    assert old.version == 1
    data = clean(from_frame(make_log(LOG), backend), CleanConfig(price_outliers=False), backend)
    got = to_host(customer_features(data, FeatureConfig(), old).frame)
    expected = pd.DataFrame.from_dict(EXPECTED_V1, orient="index")
    expected.index.name = "customer_id"
    pd.testing.assert_frame_equal(got, expected.astype("float64"), check_exact=False, rtol=1e-9, atol=1e-9)


def test_price_index_is_the_geometric_mean_and_centred_on_one_for_skewed_prices(cpu):
    """Lognormal prices within each category: a customer buying at random from the category
    has a price index near 1 (the arithmetic mean of price / median is about 1.65 here)."""
    rng = np.random.default_rng(0)
    n = 6000
    df = pd.DataFrame({
        "customer_id": rng.integers(0, 300, n),
        "timestamp": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 60, n), unit="s"),
        "order_id": np.arange(n),
        "amount": np.round(rng.lognormal(3, 1.0, n), 2),
        "category": rng.choice(["toys", "books", "garden"], n),
    })
    data = clean(from_frame(df, cpu), CleanConfig(price_outliers=False), cpu)
    idx = customer_features(data, FeatureConfig()).frame["price_index"]
    assert 0.85 < float(np.median(idx)) < 1.15
    assert ((idx >= 0.1) & (idx <= 10.0)).all()


def test_groups_and_bounded_flags(feats):
    assert feats.groups["recency_days"] == "rfm"
    assert feats.groups["cart_abandonment"] == "funnel"
    assert feats.groups["price_index"] == "price"
    assert {"view_to_cart", "share_weekend", "cat_electronics"} <= feats.bounded
    assert "monetary" not in feats.bounded
    assert feats.top_categories == ["electronics", "appliances"]


@pytest.mark.parametrize("groups", [("rfm",), ("funnel", "time"), ("price", "category")], ids=str)
def test_only_chosen_groups(make_log, cpu, groups):
    data = clean(from_frame(make_log(LOG), cpu), CleanConfig(price_outliers=False), cpu)
    f = customer_features(data, FeatureConfig(groups=groups))
    assert set(f.groups.values()) == set(groups)
    full = to_host(customer_features(data, FeatureConfig()).frame)
    pd.testing.assert_frame_equal(to_host(f.frame), full[f.names])


def test_utc_offset_shifts_hours(make_log, cpu):
    data = clean(from_frame(make_log(LOG), cpu), CleanConfig(price_outliers=False), cpu)
    f = customer_features(data, FeatureConfig(utc_offset_hours=3)).frame
    assert f.loc[2, "share_midnight"] == 1.0  # 23:00 UTC is 02:00 at UTC+3
    assert f.loc[2, "share_weekend"] == 0.0


def test_top_categories_limit(make_log, cpu):
    data = clean(from_frame(make_log(LOG), cpu), CleanConfig(price_outliers=False), cpu)
    f = customer_features(data, FeatureConfig(top_categories=1))
    assert [c for c in f.names if c.startswith("cat_")] == ["cat_electronics"]


def test_order_features(cpu):
    df = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 3],
        "timestamp": pd.to_datetime(["2020-01-01 10:00", "2020-01-01 10:00", "2020-01-11 10:00",
                                     "2020-01-05 22:00", "2020-01-04 13:00"]),
        "order_id": ["a", "a", "b", "c", "d"],
        "amount": [10.0, 20.0, 30.0, 5.0, 100.0],
        "quantity": [1, 2, 3, 1, 4],
        "category": ["toys", "toys.lego", "books", "toys", "books"],
    })
    data = clean(from_frame(df, cpu), CleanConfig(price_outliers=False), cpu)
    f = customer_features(data, FeatureConfig())
    got = f.frame
    assert got.loc[1, "frequency"] == 2 and got.loc[1, "monetary"] == 60.0
    assert got.loc[1, "avg_order_value"] == 30.0 and got.loc[1, "items_per_order"] == 3.0
    assert got.loc[1, "recency_days"] == 0.0 and got.loc[2, "recency_days"] == 5.5
    assert got.loc[1, "tenure_days"] == 10.0
    assert got.loc[1, "cat_toys"] == pytest.approx(2 / 3)
    assert got.loc[2, "share_night"] == 1.0 and got.loc[3, "share_weekend"] == 1.0
    # unit prices by category: toys 10, 5 (median 7.5); toys.lego 10; books 10, 25 (median 17.5)
    assert got.loc[2, "price_index"] == pytest.approx(5 / 7.5)
    assert got.loc[3, "price_index"] == pytest.approx(25 / 17.5)
    assert "views" not in got.columns and "sessions" not in got.columns


def test_too_few_customers(make_log, cpu):
    data = clean(from_frame(make_log(LOG[:5]), cpu), CleanConfig(price_outliers=False), cpu)
    with pytest.raises(DataError, match="only 1 customer"):
        customer_features(data, FeatureConfig())


def test_features_on_generated_data_are_finite(cpu, small_events):
    events, truth = small_events
    data = clean(from_frame(events, cpu), CleanConfig(), cpu)
    f = customer_features(data, FeatureConfig())
    assert len(f) == truth["user_id"].nunique()
    assert np.isfinite(f.frame.to_numpy()).all()
    for col in f.bounded:
        assert f.frame[col].between(0, 1).all(), col


def test_category_names_that_slug_alike_keep_both_columns(make_log, cpu):
    rows = [(f"2019-10-01 10:00:0{i} UTC", "view", 1, 10 + i % 2, ["auto-moto.x", "auto moto.y"][i % 2], "b", 10.0,
             i % 3, f"s{i}") for i in range(6)]
    data = clean(from_frame(make_log(rows), cpu), CleanConfig(price_outliers=False), cpu)
    f = customer_features(data, FeatureConfig())
    assert f.category_columns == {"cat_auto_moto": "auto moto", "cat_auto_moto_2": "auto-moto"}
    assert f.frame[["cat_auto_moto", "cat_auto_moto_2"]].sum(axis=1).eq(1.0).all()


def test_orders_with_amounts_only(cpu):
    df = pd.DataFrame({"customer_id": [1, 2, 3], "timestamp": pd.to_datetime(["2020-01-01"] * 3),
                       "amount": [1.0, 2.0, 3.0]})
    f = customer_features(clean(from_frame(df, cpu), CleanConfig(), cpu), FeatureConfig())
    assert "avg_unit_price" not in f.names and "items_per_order" not in f.names
    # dates without times of day: no day-part shares (every order would be "at midnight")
    assert f.names == ["recency_days", "frequency", "monetary", "tenure_days", "avg_order_value",
                       "spend_rate_annualised", "share_weekend"]
    df["timestamp"] = pd.to_datetime(["2020-01-01 09:30", "2020-01-01 00:00", "2020-01-01 00:00"])
    f = customer_features(clean(from_frame(df, cpu), CleanConfig(), cpu), FeatureConfig())
    assert "share_midnight" in f.names and "share_morning" in f.names


def test_infinite_features_are_a_clear_error(cpu):
    df = pd.DataFrame({"customer_id": [1, 2, 3], "timestamp": pd.to_datetime(["2020-01-01"] * 3),
                       "amount": [1e308, 1e308, 3.0]})
    with pytest.raises(DataError, match="feature 'spend_rate_annualised' is not finite"):
        customer_features(clean(from_frame(df, cpu), CleanConfig(price_outliers=False), cpu),
                          FeatureConfig(groups=("rfm",)))


def test_models_saved_before_the_rename_still_get_their_clv_column(cpu):
    from gpuseg.prep.features import FeatureSpec

    df = pd.DataFrame({"customer_id": [1, 2, 3], "timestamp": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"]),
                       "amount": [10.0, 20.0, 30.0]})
    data = clean(from_frame(df, cpu), CleanConfig(), cpu)
    now = customer_features(data, FeatureConfig())
    assert "spend_rate_annualised" in now.names and "clv" not in now.names
    old_names = tuple("clv" if n == "spend_rate_annualised" else n for n in now.names)
    spec = FeatureSpec(names=old_names, groups={("clv" if n == "spend_rate_annualised" else n): g
                                                for n, g in now.groups.items()})
    old = customer_features(data, FeatureConfig(), spec)
    assert old.names == list(old_names)
    assert old.frame["clv"].tolist() == now.frame["spend_rate_annualised"].tolist()


@pytest.mark.parametrize("parts, threads", [(2, 1), (3, 2), (7, 2)])
@pytest.mark.parametrize("ids", ["int", "text"])
def test_features_per_customer_part_equal_the_whole_log_bit_for_bit(cpu, small_events, monkeypatch, parts, threads,
                                                                   ids):
    """Large logs are aggregated in customer parts, in threads: every number is the same as
    in one piece (a customer's values add in the same order), the customers in the same order."""
    from gpuseg import backend as _backend
    from gpuseg.prep import features as F
    from gpuseg.prep.features import FeatureSpec, feature_spec

    events, _ = small_events
    if ids == "text":
        events = events.assign(user_id="u" + events["user_id"].astype(str))
    data = clean(from_frame(events, cpu), CleanConfig(), cpu)
    whole = customer_features(data, FeatureConfig())
    spec = feature_spec(whole)
    spec = FeatureSpec(spec.names, spec.groups, spec.bounded, spec.category_columns,
                       {k: v * 1.1 for k, v in spec.price_medians.items()})  # a model's other medians
    with_spec = customer_features(data, FeatureConfig(), spec, reference_time=data.reference_time + 86400)
    seen = []
    split = F._by_customer_parts

    def spy(f, aggregate, used):
        seen.append(F._part_count(f))
        return split(f, aggregate, used)

    monkeypatch.setattr(F, "_PART_MIN_ROWS", 0)
    monkeypatch.setattr(F, "_PART_ROWS", -(-len(data.frame) // parts))
    monkeypatch.setattr(F, "_by_customer_parts", spy)
    monkeypatch.setattr(_backend, "RUN_THREADS", threads)
    for ref, got in ((whole, customer_features(data, FeatureConfig())),
                     (with_spec, customer_features(data, FeatureConfig(), spec,
                                                   reference_time=data.reference_time + 86400))):
        pd.testing.assert_frame_equal(got.frame, ref.frame, check_exact=True)
        assert got.groups == ref.groups and got.price_medians == ref.price_medians
        assert got.category_columns == ref.category_columns
    assert seen == [parts, parts] and "brands" in whole.names and "price_index" in whole.names


def test_small_logs_and_one_thread_runs_are_not_split_needlessly(cpu, small_events, monkeypatch):
    from gpuseg import backend as _backend
    from gpuseg.prep import features as F

    data = clean(from_frame(small_events[0], cpu), CleanConfig(), cpu)
    monkeypatch.setattr(_backend, "RUN_THREADS", 4)
    assert F._part_count(data.frame) == 1  # under _PART_MIN_ROWS
    monkeypatch.setattr(F, "_PART_MIN_ROWS", 0)
    assert F._part_count(data.frame) == 4  # one part per thread at least
    monkeypatch.setattr(F, "_PART_ROWS", 1000)
    assert F._part_count(data.frame) == -(-len(data.frame) // 1000)


@pytest.mark.parametrize("scenario", ["orders", "orders_dates"])
def test_order_features_per_customer_part_equal_the_whole_log_bit_for_bit(cpu, monkeypatch, scenario):
    from gpuseg import backend as _backend
    from gpuseg.io.scenarios import generate_scenario
    from gpuseg.prep import features as F

    log, _, _ = generate_scenario(scenario, 300, seed=3)
    log["quantity"] = 1 + np.arange(len(log)) % 3  # items_per_order and a unit price beside the amount
    data = clean(from_frame(log, cpu, "orders"), CleanConfig(), cpu)
    whole = customer_features(data, FeatureConfig())
    monkeypatch.setattr(F, "_PART_MIN_ROWS", 0)
    monkeypatch.setattr(F, "_PART_ROWS", -(-len(data.frame) // 5))
    monkeypatch.setattr(_backend, "RUN_THREADS", 2)
    assert F._part_count(data.frame) == 5
    got = customer_features(data, FeatureConfig())
    pd.testing.assert_frame_equal(got.frame, whole.frame, check_exact=True)
    assert {"items_per_order", "avg_unit_price", "price_index"} <= set(whole.names)


def test_customer_parts_spread_ids_that_share_a_stride(monkeypatch):
    from gpuseg import backend as _backend
    from gpuseg.prep import features as F

    f = pd.DataFrame({"customer_id": np.repeat(np.arange(0, 4000, 4, dtype=np.int64), 3), "ts": 1})
    sizes = []
    monkeypatch.setattr(F, "_part_count", lambda frame: 4)
    monkeypatch.setattr(_backend, "RUN_THREADS", 1)
    F._by_customer_parts(f, lambda rows: sizes.append(len(rows)) or rows.groupby("customer_id").size(), ("customer_id",))
    assert len(sizes) == 4 and min(sizes) > 0.2 * len(f)  # not all in one part, as id % 4 would give


@pytest.mark.parametrize("offset", [0.0, 5.5, -8.0])
def test_row_counts_are_the_sums_of_indicator_columns(offset):
    """The day-part, weekend and top-category counts by ``bincount`` equal the per-customer
    sums of one indicator column each (the way they were computed before), in the order of
    ``groupby(sort=True)``; unknown categories (-1) and codes past the top ones count nowhere."""
    import importlib

    F = importlib.import_module("gpuseg.prep.features")
    rng = np.random.default_rng(3)
    n = 5000
    f = pd.DataFrame({"customer_id": rng.choice([907, 5, 33, 1200, 64, 2], n),
                      "ts": rng.integers(1_500_000_000, 1_700_000_000, n),
                      "main_cat": rng.integers(-1, 9, n)})
    config = FeatureConfig(utc_offset_hours=offset)
    top = [4, 0, 7, -2]  # -2: a model's category these data lack
    groups = f.groupby("customer_id", sort=True)
    got = F._row_counts(f, F._group_codes(groups), groups.ngroups, config, top)

    local = f["ts"] + int(round(offset * 3600))
    hour, weekday = (local // 3600) % 24, ((local // 86400) + 3) % 7
    expected = {f"t_{name}": (hour >= lo) & (hour < hi) for name, lo, hi in F.DAYPARTS}
    expected["t_weekend"] = weekday >= 5
    expected.update({f"c_{i}": f["main_cat"] == code for i, code in enumerate(top)})
    assert set(got) == set(expected)
    for name, indicator in expected.items():
        sums = indicator.astype("int32").groupby(f["customer_id"], sort=True).sum()
        np.testing.assert_array_equal(got[name], sums.to_numpy(), err_msg=name)


def test_row_counts_of_categories_all_absent():
    import importlib

    F = importlib.import_module("gpuseg.prep.features")
    f = pd.DataFrame({"customer_id": [3, 1, 3], "ts": [0, 10, 20], "main_cat": [0, -1, 2]})
    groups = f.groupby("customer_id", sort=True)
    got = F._row_counts(f, F._group_codes(groups), groups.ngroups, FeatureConfig(groups=("rfm",)), [-2, -2])
    assert set(got) == {"c_0", "c_1"}
    np.testing.assert_array_equal(got["c_0"], [0, 0])
    np.testing.assert_array_equal(got["c_1"], [0, 0])


def test_categorical_customer_ids_with_unused_categories(cpu):
    """Customers are the observed ids only, each with its own counts, whatever pandas' default
    for unused categories (a categorical id column from Parquet or a frame)."""
    T = pd.Timestamp("2024-01-02 10:00:00")
    events = pd.DataFrame({
        "event_time": [T, T + pd.Timedelta(minutes=1), T + pd.Timedelta(hours=1), T, T],
        "event_type": ["view", "view", "purchase", "cart", "view"], "product_id": [1, 2, 3, 4, 5],
        "category_id": 1, "category_code": "a.b", "brand": "x", "price": [5.0, 6.0, 7.0, 8.0, 9.0],
        "user_id": pd.Categorical(["a", "a", "c", "c", "e"], categories=["a", "b", "c", "d", "e"]),
        "user_session": ["s1", "s1", "s2", "s3", "s4"]})
    feats = customer_features(clean(from_frame(events, cpu), CleanConfig(), cpu), FeatureConfig())
    frame = to_host(feats.frame)
    assert [str(i) for i in frame.index] == ["a", "c", "e"]
    assert frame["views"].tolist() == [2, 0, 1] and frame["purchases"].tolist() == [0, 1, 0]
    assert frame["carts"].tolist() == [0, 1, 0]


def test_free_items_and_groups_priced_at_zero_say_nothing_of_the_price_level(cpu):
    """A free item counted as a ratio of 0.1 (ln 0.1 in the geometric mean): one among four
    purchases at the median gave 0.56, a deal seeker; a customer buying only in a group whose
    median price is 0 got 0.1. Such rows are now left out, and a customer with none left sits
    at the median (1)."""
    df = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 3, 3, 4, 4, 5, 5, 6],
        "timestamp": pd.date_range("2020-01-01", periods=12, freq="D"),
        "order_id": range(12),
        "amount": [10.0, 10.0, 10.0, 0.0, 0.0, 10.0, 20.0, 10.0, 10.0, 5.0, 20.0, 0.0],
        "category": ["books"] * 4 + ["gift"] + ["books", "books", "books", "books", "gift", "books", "gift"],
    })  # the gifts' median price is 0
    data = clean(from_frame(df, cpu), CleanConfig(price_outliers=False), cpu)
    got = customer_features(data, FeatureConfig()).frame["price_index"]
    assert got.loc[1] == pytest.approx(1.0)  # three books at the median, one free item
    assert got.loc[2] == pytest.approx(1.0)  # only a free gift (the gifts' median is 0)
    assert got.loc[3] == pytest.approx(2 ** 0.5)  # 10 and 20 against a median of 10
    assert got.loc[5] == pytest.approx(2.0)  # a gift of 5 over a median of 0 says nothing; a book at 2x
    assert got.loc[6] == pytest.approx(1.0)
