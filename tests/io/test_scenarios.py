"""Tests of the planted scenarios of the quality benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg.cli import main
from gpuseg.errors import ConfigError
from gpuseg.io.scenarios import ORDER_COLUMNS, SCENARIOS, generate_scenario
from gpuseg.io.synthetic import EVENT_COLUMNS

N = 600


def _per_customer(log: pd.DataFrame, kind: str) -> pd.DataFrame:
    if kind == "orders":
        return log.groupby("customer_id").agg(orders=("order_id", "size"), spend=("amount", "sum"))
    hour = log["event_time"].dt.hour
    frame = pd.DataFrame({"user_id": log["user_id"], "night": hour.isin([21, 22, 23, 0, 1, 2]),
                          "session": log["user_session"].cat.codes})
    return frame.groupby("user_id").agg(night=("night", "mean"), sessions=("session", "nunique"))


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "large"])
def test_every_scenario_plants_its_personas_and_every_customer_is_in_the_log(name):
    log, truth, sc = generate_scenario(name, N, seed=3)
    id_column = "customer_id" if sc.kind == "orders" else "user_id"
    assert list(log.columns) == list(ORDER_COLUMNS if sc.kind == "orders" else EVENT_COLUMNS)
    assert truth[id_column].is_unique and len(truth) == N
    assert set(truth[id_column]) == set(log[id_column])
    assert truth["persona"].nunique() == sc.k == len(sc.personas)


def test_scenarios_are_seeded():
    a, ta, _ = generate_scenario("ten", 300, seed=5)
    b, tb, _ = generate_scenario("ten", 300, seed=5)
    c, _, _ = generate_scenario("ten", 300, seed=6)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ta, tb)
    assert not a["user_id"].equals(c["user_id"].iloc[: len(a)])


def test_the_personas_scenario_is_the_built_in_data():
    from gpuseg.io.synthetic import generate_events

    a, ta, _ = generate_scenario("personas", 400, seed=2)
    b, tb = generate_events(400, seed=2)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ta, tb)


def test_date_only_orders_have_no_time_of_day_and_full_orders_do():
    dates, _, _ = generate_scenario("orders_dates", N, seed=1)
    full, _, _ = generate_scenario("orders", N, seed=1)
    assert dates["timestamp"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert full["timestamp"].str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}").all()
    assert full["timestamp"].str[11:13].nunique() > 12  # orders at many hours
    assert (full["amount"] > 0).all() and (full["quantity"] >= 1).all()


def test_imbalanced_has_a_two_percent_segment():
    _, truth, _ = generate_scenario("imbalanced", 5000, seed=0)
    share = truth["persona"].value_counts(normalize=True)
    assert share["loyal_high_spender"] == pytest.approx(0.02, abs=0.001)


def _between_share(name: str, column: str, transform=lambda v: v) -> float:
    """Share of a per-customer event measure's variance that lies between the scenario's
    personas (eta squared)."""
    log, truth, _ = generate_scenario(name, 3000, seed=4)
    per = _per_customer(log, "events")
    persona = truth.set_index("user_id")["persona"].reindex(per.index)
    values = transform(per[column])
    means = values.groupby(persona).transform("mean")
    return float(((means - values.mean()) ** 2).sum() / ((values - values.mean()) ** 2).sum())


def test_noise_makes_time_of_day_unrelated_to_the_personas():
    # night share: persona-driven only without noise; activity still tells personas apart
    assert _between_share("personas", "night") > 0.2 and _between_share("noise", "night") < 0.01
    assert _between_share("noise", "sessions") > 0.3


def test_overlap_pulls_the_personas_together():
    assert _between_share("overlap", "sessions", np.log) < 0.6 * _between_share("personas", "sessions", np.log)


def test_nonlinear_personas_bend_with_activity():
    log, truth, _ = generate_scenario("nonlinear", 3000, seed=4)
    buys = log["event_type"].eq("purchase").groupby(log["user_id"]).mean()
    sessions = log.groupby("user_id")["user_session"].nunique()
    persona = truth.set_index("user_id")["persona"]
    slopes = {}
    for p in ("engaged_buyer", "fading_browser"):
        ids = persona.index[persona == p]
        hi = sessions[ids] > sessions[ids].median()
        slopes[p] = buys[ids][hi].mean() - buys[ids][~hi].mean()
    assert slopes["engaged_buyer"] > 0 > slopes["fading_browser"]  # conversion rises for one, falls for the other


def test_unknown_scenario_and_bad_size_are_config_errors():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'; choose from personas"):
        generate_scenario("nope")
    with pytest.raises(ConfigError, match="positive integer"):
        generate_scenario("three", 0)


def test_generate_command_writes_a_scenario_that_run_reads(tmp_path, capsys):
    out, truth = tmp_path / "o.csv", tmp_path / "t.csv"
    assert main(["generate", "--scenario", "orders_dates", "--customers", "400", "--out", str(out),
                 "--truth", str(truth)]) == 0
    assert "orders for 400 customers" in capsys.readouterr().out
    assert pd.read_csv(truth).columns.tolist() == ["customer_id", "persona"]
    assert main(["run", "--input", str(out), "--truth", str(truth), "--methods", "kmeans", "--k", "6",
                 "--stability", "0", "--no-report", "--out", str(tmp_path / "run"), "-q"]) == 0
    assert main(["generate", "--scenario", "three", "--days", "30", "--out", str(tmp_path / "x.csv")]) == 2
    assert "--days cannot be combined with --scenario" in capsys.readouterr().err
