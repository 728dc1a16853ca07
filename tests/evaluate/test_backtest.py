"""gpuseg backtest: the split, the holdout outcomes, eta squared, the value calibration, and
the command end to end on an order log the test makes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuseg.cli import main
from gpuseg.errors import ConfigError, DataError
from gpuseg.evaluate.backtest import (
    BacktestPlan, eta_squared, holdout_outcomes, parse_window, rfm_log_matrix, value_calibration,
)

DAY = 86_400


def _seconds(text: str) -> int:
    return int(pd.Timestamp(text).value // 1_000_000_000)


# --- the window ------------------------------------------------------------------------------

def test_bare_date_includes_its_whole_day():
    w = parse_window("1997-09-30")
    assert w.cut == _seconds("1997-10-01") and w.whole_days and w.end is None
    w = parse_window("1997-09-30 18:00", "1998-01-31")
    assert w.cut == _seconds("1997-09-30 18:00:01") and not w.whole_days
    assert w.end == _seconds("1998-02-01")


@pytest.mark.parametrize("until, end", [("yesterday-ish", None), ("", None), ("1997-09-30", "1997-09-01"),
                                        ("1997-09-30", "not a date")])
def test_bad_window_is_a_config_error(until, end):
    with pytest.raises(ConfigError):
        parse_window(until, end)


def _loaded(times: list) -> object:
    from gpuseg.io.readers import LoadedData
    from gpuseg.io.schemas import ORDERS

    frame = pd.DataFrame({"customer_id": [str(i) for i in range(len(times))],
                          "timestamp": pd.to_datetime(times, format="ISO8601").astype("datetime64[s]"),
                          "amount": 1.0})
    return LoadedData(frame, ORDERS, ["x.csv"], len(frame), {}, "native", rows_malformed=3)


def test_split_keeps_unreadable_times_in_calibration_and_counts_rows():
    plan = BacktestPlan(parse_window("2020-01-10", "2020-01-20"))
    cal = plan.split(_loaded(["2020-01-01", "2020-01-10 23:59:59", None, "2020-01-11", "2020-01-20 12:00",
                              "2020-01-21"]))
    assert len(cal.frame) == 3 and cal.rows_malformed == 3  # the reader's count stays with the fitted rows
    assert plan.rows == {"calibration": 3, "holdout": 2, "after_holdout": 1}
    assert plan.holdout_data.rows_malformed == 0 and len(plan.holdout_data.frame) == 2
    assert plan.holdout_days == 10


@pytest.mark.parametrize("until, words", [("2019-12-31", "no rows on or before"), ("2020-02-01", "no rows after")])
def test_split_without_rows_on_one_side_is_a_data_error(until, words):
    plan = BacktestPlan(parse_window(until))
    with pytest.raises(DataError, match=words):
        plan.split(_loaded(["2020-01-01", "2020-01-05"]))


# --- outcomes and scores -----------------------------------------------------------------------

def test_holdout_outcomes_sum_revenue_and_count_purchase_days():
    t0 = _seconds("2020-01-01")
    orders = pd.DataFrame({"customer_id": ["a", "a", "a", "b"], "ts": [t0, t0 + 60, t0 + DAY, t0],
                           "amount": [10.0, 5.0, 1.0, 2.5]})
    out = holdout_outcomes(orders, "orders")
    assert out.loc["a"].tolist() == [16.0, 2] and out.loc["b"].tolist() == [2.5, 1]
    events = pd.DataFrame({"customer_id": ["a", "a", "b"], "ts": [t0, t0, t0], "etype": [0, 3, 2],
                           "price": [99.0, 7.0, 50.0]})
    out = holdout_outcomes(events, "events")  # views and carts are not revenue
    assert out.index.tolist() == ["a"] and out.loc["a", "revenue"] == 7.0
    assert holdout_outcomes(None, "orders").empty


def test_eta_squared_matches_the_anova_decomposition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 500)
    values = labels * 2.0 + rng.normal(size=500)
    total = ((values - values.mean()) ** 2).sum()
    within = sum(((values[labels == g] - values[labels == g].mean()) ** 2).sum() for g in range(4))
    assert eta_squared(values, labels) == pytest.approx(1 - within / total)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-1e6, 1e6)), min_size=1, max_size=60))
def test_eta_squared_is_a_share(pairs):
    labels = np.array([p[0] for p in pairs])
    values = np.array([p[1] for p in pairs])
    e = eta_squared(values, labels)
    assert -1e-9 <= e <= 1 + 1e-9
    assert eta_squared(values, np.zeros_like(labels)) == pytest.approx(0.0, abs=1e-9)


def test_value_calibration_deciles_and_spearman():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    predicted = rng.gamma(1.0, 10.0, 1000)
    actual = predicted * rng.lognormal(0, 1, 1000)
    predicted[:50] = np.nan  # no purchase yet: predicted 0
    cal = value_calibration(predicted, actual)
    assert cal["spearman"] == pytest.approx(spearmanr(np.nan_to_num(predicted), actual).statistic)
    assert [d["customers"] for d in cal["deciles"]] == [100] * 10
    means = [d["predicted_mean"] for d in cal["deciles"]]
    assert means == sorted(means)
    assert cal["total_actual"] == pytest.approx(actual.sum())


def test_rfm_log_matrix_is_standardised():
    feats = pd.DataFrame({"recency_days": [1.0, 10, 100, 1000], "frequency": [1.0, 2, 3, 4],
                          "monetary": [5.0, 5, 5, 5]})
    X = rfm_log_matrix(feats)
    assert np.allclose(X[:, :2].mean(axis=0), 0) and np.allclose(X[:, :2].std(axis=0), 1)
    assert np.all(X[:, 2] == 0)  # a constant measure stays 0, not NaN


# --- the command -----------------------------------------------------------------------------

def _order_log(path) -> dict:
    """Loyal customers buy every 10 days all year; one-timers buy once in January; a big
    holdout order beyond any price fence; one customer first seen in the holdout."""
    rng = np.random.default_rng(3)
    rows = []
    for c in range(60):
        for day in range(int(rng.integers(0, 9)), 365, 10):
            rows.append((f"L{c}", pd.Timestamp("2020-01-01") + pd.Timedelta(days=day), float(rng.uniform(20, 40))))
    for c in range(140):
        rows.append((f"O{c}", pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(rng.integers(0, 30))),
                     float(rng.uniform(5, 15))))
    rows.append(("L0", pd.Timestamp("2020-11-15"), 50_000.0))
    rows.append(("NEW", pd.Timestamp("2020-12-01"), 30.0))
    df = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    df["timestamp"] = df["timestamp"].dt.strftime("%Y-%m-%d")
    df.to_csv(path, index=False)
    held = df[df["timestamp"] > "2020-06-30"]
    return {"holdout_revenue": float(held.loc[held["customer_id"] != "NEW", "amount"].sum()),
            "calibration_orders_L1": int(((df["customer_id"] == "L1") & (df["timestamp"] <= "2020-06-30")).sum())}


def test_backtest_command_end_to_end(tmp_path, capsys):
    facts = _order_log(tmp_path / "orders.csv")
    out = tmp_path / "bt"
    rc = main(["backtest", "--input", str(tmp_path / "orders.csv"), "--until", "2020-06-30", "--out", str(out),
               "--methods", "kmeans", "--k", "2-4", "--stability", "0", "-q"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Backtest: fitted up to 2020-06-30" in printed and "log_rfm_kmeans" in printed
    bt = json.loads((out / "backtest.json").read_text())
    assert bt == json.loads((out / "metrics.json").read_text())["backtest"]
    assert bt["window"]["holdout_end"] == "2020-12-30" and bt["window"]["holdout_days"] == 183
    assert bt["window"]["reference_time"].startswith("2020-06-30")  # date-only data: the last calibration day
    assert bt["customers_scored"] == 200 and bt["new_customers_in_holdout"] == 1
    # holdout revenue as spent: the 50,000 order is neither capped nor dropped
    assert bt["holdout_revenue_scored"] == pytest.approx(facts["holdout_revenue"])
    assert set(bt["segmentations"]) == {"gpuseg", "rfm_map", "log_rfm_kmeans", "log_rfm_kmeans_same_k"}
    assert bt["segmentations"]["gpuseg"]["eta_squared_repeat"] > 0.9  # loyal buy again, one-timers do not
    assert bt["value"]["spearman"] > 0.5
    # the fit saw only the calibration rows
    feats = pd.read_parquet(out / "features.parquet").set_index("customer_id")
    assert feats.loc["L1", "frequency"] == facts["calibration_orders_L1"]
    assert "NEW" not in feats.index
    assert json.loads((out / "metrics.json").read_text())["config"]["value"]["horizon_days"] == 183
    # the saved model predicts with the user's [value] settings, not the backtest's horizon
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["data"]["value"]["horizon_days"] == 365 and model["data"]["value"]["discount_rate"] == 0.1
    table = pd.read_csv(out / "backtest.csv")
    assert set(table["segmentation"]) == set(bt["segmentations"])
    for _, part in table.groupby("segmentation"):
        assert part["customers"].sum() == 200
        assert part["holdout_revenue_total"].sum() == pytest.approx(facts["holdout_revenue"])
    assert 'id="backtest"' in (out / "report.html").read_text()


def test_plain_run_into_a_backtest_folder_removes_the_backtest(tmp_path):
    _order_log(tmp_path / "orders.csv")
    out = tmp_path / "bt"
    common = ["--input", str(tmp_path / "orders.csv"), "--out", str(out), "--methods", "kmeans", "--k", "2",
              "--stability", "0", "--no-report", "-q"]
    assert main(["backtest", "--until", "2020-06-30", *common]) == 0
    assert (out / "backtest.csv").is_file()
    assert main(["run", *common]) == 0
    assert not (out / "backtest.csv").exists() and not (out / "backtest.json").exists()
    assert json.loads((out / "metrics.json").read_text())["backtest"] is None


@pytest.mark.parametrize("extra, words", [(["--until", "2030-01-01"], "no rows after it"),
                                          (["--until", "someday"], "not a date"),
                                          (["--until", "2020-06-30", "--cluster", "local"], "drop --cluster"),
                                          (["--until", "2020-06-30", "--holdout-end", "2031-01-01"],
                                           "after the data's last day")])
def test_backtest_user_errors_are_one_line(tmp_path, capsys, extra, words):
    _order_log(tmp_path / "orders.csv")
    rc = main(["backtest", "--input", str(tmp_path / "orders.csv"), "--out", str(tmp_path / "o"), "-q", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1


def test_ids_are_matched_as_text_across_calibration_and_holdout():
    """Cleaned apart, the calibration may read ids as integers and the holdout as text (an
    id "0789" only in the holdout keeps it text): the customers still match."""
    from gpuseg.evaluate.backtest import evaluate_backtest

    seg = pd.DataFrame({"customer_id": [1, 2, 3, 4], "segment": [0, 0, 1, 1], "segment_name": ["a", "a", "b", "b"],
                        "predicted_clv": [1.0, 2.0, 3.0, 4.0]})
    feats = pd.DataFrame({"recency_days": [1.0, 2, 30, 40], "frequency": [5.0, 4, 1, 1],
                          "monetary": [50.0, 40, 5, 6]}, index=pd.Index([1, 2, 3, 4], name="customer_id"))
    outcomes = pd.DataFrame({"revenue": [10.0, 20.0, 99.0], "purchase_days": [1, 2, 1]},
                            index=pd.Index(["1", "2", "0789"], name="customer_id"))
    bt = evaluate_backtest(seg, feats, outcomes, [2, 3], 0, {}).summary
    assert bt["holdout_revenue_scored"] == 30.0 and bt["customers_bought_again"] == 2
    assert bt["new_customers_in_holdout"] == 1 and bt["new_customers_revenue"] == 99.0


def test_the_holdout_may_end_on_the_data_s_last_day_and_not_after(tmp_path, capsys):
    import datetime as dt

    _order_log(tmp_path / "orders.csv")
    last = pd.read_csv(tmp_path / "orders.csv")["timestamp"].max()  # date-only: its whole day is data
    after = (dt.date.fromisoformat(last) + dt.timedelta(days=1)).isoformat()
    common = ["--input", str(tmp_path / "orders.csv"), "--methods", "kmeans", "--k", "2", "--stability", "0",
              "--no-report", "-q", "--until", "2020-06-30"]
    assert main(["backtest", *common, "--holdout-end", last, "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert main(["backtest", *common, "--holdout-end", after, "--out", str(tmp_path / "b")]) == 2
    assert "after the data's last day" in capsys.readouterr().err


def test_timed_data_ending_mid_day_take_a_one_day_holdout(tmp_path):
    # the default holdout ends at the last event (17:59 here); the day it falls on counts
    rows = [(f"c{i % 40}", f"2020-01-{1 + i % 28:02d} 10:00:00", 10.0 + i % 7) for i in range(400)]
    rows += [(f"c{i}", "2020-01-29 17:59:38", 12.0) for i in range(10)]
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(tmp_path / "o.csv", index=False)
    assert main(["backtest", "--input", str(tmp_path / "o.csv"), "--until", "2020-01-28", "--out", str(tmp_path / "b"),
                 "--methods", "kmeans", "--k", "2", "--stability", "0", "--no-report", "-q"]) == 0


def test_new_customers_without_a_purchase_in_the_holdout_are_counted():
    """Only the new buyers were counted; the new customers who only looked went unmentioned."""
    from gpuseg.evaluate.backtest import evaluate_backtest

    seg = pd.DataFrame({"customer_id": [1, 2, 3, 4], "segment": [0, 0, 1, 1], "segment_name": ["a", "a", "b", "b"]})
    feats = pd.DataFrame({"recency_days": [1.0, 2, 30, 40], "frequency": [5.0, 4, 1, 1],
                          "monetary": [50.0, 40, 5, 6]}, index=pd.Index([1, 2, 3, 4], name="customer_id"))
    outcomes = pd.DataFrame({"revenue": [10.0, 99.0], "purchase_days": [1, 1]}, index=pd.Index(["1", "7"]))
    active = pd.Index([1, 3, 7, 8, 9])  # 1 and 3 scored, 7 a new buyer, 8 and 9 new without a purchase
    bt = evaluate_backtest(seg, feats, outcomes, [2, 3], 0, {}, active).summary
    assert bt["new_customers_in_holdout"] == 1 and bt["new_customers_without_purchase"] == 2


def test_eta_squared_of_huge_revenues_is_finite():
    values = np.array([1e300, 1e300, 1.0, 2.0])
    assert eta_squared(values, np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert eta_squared(values / 1e300, np.array([0, 1, 0, 1])) == pytest.approx(eta_squared(values, [0, 1, 0, 1]))
    assert np.isnan(eta_squared(np.array([np.inf, 1.0]), np.array([0, 1])))
