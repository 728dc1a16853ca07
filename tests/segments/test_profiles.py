from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg.backend import to_host
from gpuseg.segments import order_by_size, placeholder_names, segment_profiles
from gpuseg.segments.profiles import activity_grid, segment_summary, summary_table, top_shares


@pytest.mark.parametrize(
    "labels, expected",
    [([2, 2, 2, 0, 1, 1], [0, 0, 0, 2, 1, 1]), ([5, 5, 3, 3, 9], [1, 1, 0, 0, 2]), ([-1, 4, 4, 1], [-1, 0, 0, 1])],
    ids=["by-size", "ties-by-label", "noise-kept"],
)
def test_order_by_size(backend, labels, expected):
    out = order_by_size(backend.xp.asarray(labels))
    assert to_host(out).tolist() == expected


def test_profiles(cpu):
    feats = pd.DataFrame(
        {"monetary": [10.0, 20.0, 30.0, 0.0], "cat_kids": [0.9, 0.8, 0.1, 0.0], "cat_auto": [0.1, 0.2, 0.9, 1.0]},
        index=pd.Index([11, 12, 13, 14], name="customer_id"),
    )
    prof = segment_profiles(feats, np.array([0, 0, 1, 1]), placeholder_names([0, 1]),
                            {"cat_kids": "kids", "cat_auto": "auto"})
    assert list(prof.columns[:6]) == ["segment", "segment_name", "size", "share", "top_category", "monetary"]
    assert prof["size"].tolist() == [2, 2] and prof["share"].tolist() == [0.5, 0.5]
    assert prof["monetary"].tolist() == [15.0, 15.0]
    assert prof["top_category"].tolist() == ["kids", "auto"]
    assert prof["segment_name"].tolist() == ["segment 0", "segment 1"]
    assert list(feats.columns) == ["monetary", "cat_kids", "cat_auto"]  # input untouched


def test_noise_is_named_unassigned():
    assert placeholder_names([-1, 0, 2]) == {-1: "unassigned", 0: "segment 0", 2: "segment 2"}
    feats = pd.DataFrame({"monetary": [1.0, 2.0, 3.0]}, index=pd.Index([1, 2, 3], name="customer_id"))
    prof = segment_profiles(feats, np.array([-1, 0, 0]), placeholder_names([-1, 0]))
    assert prof["segment_name"].tolist() == ["unassigned", "segment 0"]


# -- segment_summary -----------------------------------------------------------------------

def _random_features(n=300, seed=0):
    rng = np.random.default_rng(seed)
    feats = pd.DataFrame(
        {
            "recency_days": rng.exponential(20.0, n),
            "frequency": rng.poisson(1.5, n).astype(float),
            "monetary": rng.gamma(1.0, 80.0, n) * (rng.random(n) < 0.7),
            "constant": np.full(n, 3.0),
        },
        index=pd.Index(np.arange(1000, 1000 + n), name="customer_id"),
    )
    labels = rng.integers(-1, 4, n).astype(np.int32)
    return feats, labels


def _on(backend, feats, labels):
    frame = backend.frame.from_pandas(feats) if backend.is_gpu else feats
    return frame, backend.xp.asarray(labels)


def test_summary_adds_up(backend):
    feats, labels = _random_features()
    summary = segment_summary(*_on(backend, feats, labels))
    per_segment = summary.drop_duplicates("segment")
    assert per_segment["segment"].tolist() == [-1, 0, 1, 2, 3]
    assert per_segment["size"].sum() == len(feats)
    assert per_segment["share"].sum() == pytest.approx(1.0)
    assert per_segment["revenue_share"].sum() == pytest.approx(1.0)
    assert list(summary.columns) == ["segment", "size", "share", "revenue_share", "feature", "mean", "median", "z",
                                     "overall_mean", "overall_std"]
    assert summary["feature"].tolist()[:4] == list(feats.columns)


def test_summary_matches_pandas_reference(backend):
    feats, labels = _random_features(seed=1)
    summary = segment_summary(*_on(backend, feats, labels))
    ref = feats.assign(segment=labels).groupby("segment")
    mu, sd = feats.mean(), feats.std(ddof=0)
    for stat, expected in [("mean", ref.mean()), ("median", ref.median())]:
        np.testing.assert_allclose(summary_table(summary, stat).to_numpy(), expected.to_numpy(), rtol=1e-12)
    z = summary_table(summary, "z")
    expected_z = ((ref.mean() - mu) / sd).drop(columns="constant")
    np.testing.assert_allclose(z.drop(columns="constant").to_numpy(), expected_z.to_numpy(), rtol=1e-10)
    assert (z["constant"] == 0.0).all()  # std 0 -> z 0
    revenue = ref["monetary"].sum() / feats["monetary"].sum()
    np.testing.assert_allclose(summary.drop_duplicates("segment")["revenue_share"], revenue.to_numpy())
    assert summary.drop_duplicates("segment")["size"].tolist() == ref.size().tolist()


def test_summary_zero_revenue_and_no_revenue_column():
    feats = pd.DataFrame({"monetary": [0.0, 0.0, 0.0], "views": [1.0, 2.0, 3.0]})
    s = segment_summary(feats, np.array([0, 1, 1]))
    assert s["revenue_share"].tolist() == [0.0] * 4
    s = segment_summary(feats[["views"]], np.array([0, 1, 1]), revenue_column=None)
    assert s["revenue_share"].isna().all()
    assert list(feats.columns) == ["monetary", "views"]  # input untouched


@pytest.mark.parametrize(
    "kwargs, labels, match",
    [({}, [0, 1], "entries"), ({"revenue_column": "spend"}, [0, 1, 1], "revenue column")],
    ids=["wrong-length", "no-revenue-column"],
)
def test_summary_rejects(kwargs, labels, match):
    feats = pd.DataFrame({"monetary": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=match):
        segment_summary(feats, np.array(labels), **kwargs)


# -- activity_grid / top_shares ------------------------------------------------------------

@pytest.mark.parametrize("offset", [0.0, 5.5, -3.0], ids=["utc", "plus-5.5h", "minus-3h"])
def test_activity_grid_matches_pandas_reference(xp, offset):
    rng = np.random.default_rng(3)
    ts = rng.integers(1_569_888_000, 1_575_158_400, 2000).astype(np.int64)  # Oct-Nov 2019
    seg = rng.integers(-1, 3, 2000)
    grid = activity_grid(xp.asarray(ts), xp.asarray(seg), utc_offset_hours=offset)
    local = pd.to_datetime(ts, unit="s") + pd.Timedelta(hours=offset)
    ref = pd.DataFrame({"seg": seg, "day": local.day_of_week, "hour": local.hour})
    assert sorted(grid) == [-1, 0, 1, 2]
    for s, g in grid.items():
        assert g.shape == (7, 24) and g.sum() == pytest.approx(1.0)
        sub = ref[ref["seg"] == s]
        expected = np.zeros((7, 24))
        np.add.at(expected, (sub["day"].to_numpy(), sub["hour"].to_numpy()), 1.0)
        np.testing.assert_allclose(g, expected / len(sub))


def test_activity_grid_weekday_convention():
    monday_20h = 4 * 86400 + 20 * 3600  # 1970-01-05 was a Monday
    grid = activity_grid(np.array([monday_20h, 0]), np.array([2, 5]))
    assert sorted(grid) == [2, 5]  # segments without events are left out
    assert grid[2][0, 20] == 1.0 and grid[5][3, 0] == 1.0  # 1970-01-01 00:00 was a Thursday
    assert activity_grid(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == {}


def test_top_shares(xp):
    codes = xp.asarray([0, 1, 1, 2, -1, -1, 2, 2, 0, -1])
    seg = xp.asarray([0, 0, 0, 0, 0, 1, 1, 1, -1, 2])
    out = top_shares(codes, seg, ["kids", "auto", "sport"], top=2)
    short = {s: [(e["name"], e["share"]) for e in v] for s, v in out.items()}
    assert short[0] == [("auto", 0.5), ("kids", 0.25)]  # unknown left out
    assert short[1] == [("sport", 1.0)]
    assert short[-1] == [("kids", 1.0)]
    assert out[2] == []  # events, none with a known code
    # 7 known codes: kids 2, auto 2, sport 3; lift = share in the segment / share of all
    assert out[0][0]["base_share"] == pytest.approx(2 / 7) and out[0][0]["lift"] == pytest.approx(0.5 / (2 / 7))


def test_top_shares_by_lift_shows_what_sets_a_segment_apart():
    """Every segment buys mostly electronics; ranked by lift, each shows what it buys more
    than the base, and a category below min_share is no trait."""
    names = ["electronics", "kids", "sport", "auto"]
    seg0 = [0] * 70 + [1] * 29 + [3]  # electronics and kids, one auto event
    seg1 = [0] * 70 + [2] * 30
    codes = np.array(seg0 + seg1)
    seg = np.array([0] * 100 + [1] * 100)
    by_share = top_shares(codes, seg, names, top=2)
    assert [e["name"] for e in by_share[0]] == ["electronics", "kids"]
    by_lift = top_shares(codes, seg, names, top=2, by="lift")
    # auto (lift 2, 1%) is below min_share; electronics (lift 1) is bought as much as by everyone
    assert [e["name"] for e in by_lift[0]] == ["kids"]
    assert by_lift[0][0]["lift"] == pytest.approx(0.29 / 0.145)
    assert [e["name"] for e in by_lift[1]][0] == "sport"
    with pytest.raises(ValueError, match="by must be"):
        top_shares(codes, seg, names, by="size")


def test_top_shares_ties_by_code():
    out = top_shares(np.array([2, 1, 2, 1]), np.zeros(4, dtype=int), ["a", "b", "c"], top=5)
    assert [e["name"] for e in out[0]] == ["b", "c"]
    with pytest.raises(ValueError, match="no name"):
        top_shares(np.array([3]), np.array([0]), ["a"])


def test_event_views_take_series_and_no_known_codes():
    ts = pd.Series([0, 3600], dtype="int64")
    assert activity_grid(ts, pd.Series([1, 1]))[1][3, :2].tolist() == [0.5, 0.5]
    assert top_shares(pd.Series([-1, -1]), pd.Series([0, 1]), ["a"]) == {0: [], 1: []}


def test_top_shares_by_lift_lists_only_clear_lifts():
    """REES46 cards listed lifts of 1.003-1.05 ("1.0x the base"): what any split of the
    customers shows. Only lifts of at least MIN_LIFT (1.2) are listed."""
    from gpuseg.segments.profiles import MIN_LIFT

    names = ["electronics", "kids", "sport"]
    seg0 = [0] * 50 + [1] * 26 + [2] * 24  # electronics 1.07x, the others below 1
    seg1 = [0] * 50 + [1] * 24 + [2] * 26  # electronics 1.07x, sport 1.04x
    seg2 = [0] * 40 + [1] * 35 + [2] * 25  # kids 1.24x
    codes = np.array(seg0 + seg1 + seg2)
    seg = np.repeat([0, 1, 2], 100)
    by_lift = top_shares(codes, seg, names, by="lift")
    assert MIN_LIFT == 1.2
    assert by_lift[0] == [] and by_lift[1] == []
    assert [(e["name"], round(e["lift"], 2)) for e in by_lift[2]] == [("kids", 1.24)]
    assert [e["name"] for e in top_shares(codes, seg, names, by="lift", min_lift=1.0)[1]] == ["electronics", "sport"]


def test_unknown_shares(xp):
    """The part of each segment's events without a code, which top_shares leaves out."""
    from gpuseg.segments.profiles import unknown_shares

    codes = xp.asarray([0, -1, 1, -1, 0, -1, 2])
    seg = xp.asarray([0, 0, 0, 0, 1, 2, -1])
    assert unknown_shares(codes, seg) == {-1: 0.0, 0: 0.5, 1: 0.0, 2: 1.0}
    assert unknown_shares(pd.Series([-1]), pd.Series([3])) == {3: 1.0}


def test_top_category_only_where_a_lift_stands_out():
    """top_category took the highest lift even below 1 (or, with no share of 2%, the
    largest share): a segment that leans to no category has none."""
    feats = pd.DataFrame(
        {"cat_kids": [0.5, 0.5, 0.9, 0.8, 0.52, 0.48], "cat_auto": [0.5, 0.5, 0.1, 0.2, 0.48, 0.52]},
        index=pd.Index(range(6), name="customer_id"),
    )
    prof = segment_profiles(feats, np.array([0, 0, 1, 1, 2, 2]), placeholder_names([0, 1, 2]),
                            {"cat_kids": "kids", "cat_auto": "auto"})
    # base kids 0.617, auto 0.383: segment 0 kids 0.81x / auto 1.30x, 1 kids 1.38x, 2 auto 1.30x
    assert prof["top_category"].tolist() == ["auto", "kids", "auto"]
    flat = segment_profiles(feats.iloc[[0, 1, 4, 5]], np.array([0, 0, 1, 1]), placeholder_names([0, 1]),
                            {"cat_kids": "kids", "cat_auto": "auto"})
    assert flat["top_category"].isna().all()  # lifts of 0.98-1.02 name no category
