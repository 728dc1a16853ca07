"""Findings of a new-user trial: a user's files with gpuseg's output names, persona names
that contradict the data, eta squared with nothing to explain, ``--model OUT_DIR``, and
``--threads`` above the usable cores."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from gpuseg.cli import main
from gpuseg.errors import ConfigError
from gpuseg.report.files import MANIFEST, check_out_dir, to_json, write_outputs

RUN = ["--methods", "kmeans", "--k", "2", "--stability", "0", "--no-report", "-q"]


def _orders(path, one_time=False):
    """30 customers; one order each (``one_time``), else one to three."""
    rows = [(f"c{i}", f"2020-0{1 + (i + j) % 9}-1{j % 9}", 10.0 + 3 * j + i)
            for i in range(30) for j in range(1 if one_time else 1 + i % 3)]
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(path, index=False)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("gpuseg: error: ") and "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


# --- 1. a user's files with gpuseg's output names ---------------------------------------------

def _run_folder(tmp_path):
    """A folder a commit wrote: its manifest lists metrics.json and a.txt only."""
    out = tmp_path / "out"
    write_outputs(out, {"metrics.json": lambda p: p.write_text('{"gpuseg_version": "0"}'),
                        "a.txt": lambda p: p.write_text("A")})
    return out


@pytest.mark.parametrize("name", ["report.html", "sensitivity.csv", "backtest.json", "plots"])
def test_an_output_name_the_manifest_does_not_list_is_refused(tmp_path, name):
    out = _run_folder(tmp_path)
    if name == "plots":
        (out / name).mkdir()
        (out / name / "umap.png").write_text("mine")
    else:
        (out / name).write_text("mine")
    with pytest.raises(ConfigError, match=f"holds {name}, which the previous gpuseg run there did not write"):
        check_out_dir(out)


def test_listed_names_a_pending_journal_and_a_folder_without_manifest_pass(tmp_path):
    out = _run_folder(tmp_path)
    assert check_out_dir(out) == out  # metrics.json is listed
    (out / "report.html").write_text("moved in by a commit that was killed")
    tmp = out / ".gpuseg-tmp-x"
    tmp.mkdir()
    (tmp / ".journal.json").write_text(json.dumps({"run_id": "1", "names": ["report.html"], "remove": []}))
    assert check_out_dir(out) == out  # recover() settles it
    legacy = tmp_path / "legacy"  # an older gpuseg: metrics.json, no manifest
    legacy.mkdir()
    (legacy / "metrics.json").write_text('{"gpuseg_version": "0.0.1"}')
    (legacy / "report.html").write_text("old report")
    assert check_out_dir(legacy) == legacy


def test_write_outputs_never_removes_a_file_the_manifest_does_not_list(tmp_path):
    out = _run_folder(tmp_path)
    (out / "report.html").write_text("mine")
    write_outputs(out, {"a.txt": lambda p: p.write_text("A2")}, remove=("report.html", "metrics.json"))
    assert (out / "report.html").read_text() == "mine"
    assert not (out / "metrics.json").exists()  # listed: the previous run's, it goes
    assert json.loads((out / MANIFEST).read_text())["files"] == ["a.txt"]


def test_write_outputs_refuses_to_replace_a_file_the_manifest_does_not_list(tmp_path):
    out = _run_folder(tmp_path)
    (out / "report.html").write_text("mine")
    with pytest.raises(ConfigError, match="holds report.html, which no gpuseg run there wrote"):
        write_outputs(out, {"report.html": lambda p: p.write_text("gpuseg's")})
    assert (out / "report.html").read_text() == "mine"
    assert not list(out.glob(".gpuseg-tmp-*"))
    assert json.loads((out / MANIFEST).read_text())["files"] == ["a.txt", "metrics.json"]


def test_run_refuses_a_folder_with_the_user_s_report_and_keeps_it(tmp_path, capsys):
    """The trial's repro: files of the user's with output names in a --no-report run's folder
    were deleted by the next run without a word."""
    _orders(tmp_path / "o.csv")
    out = tmp_path / "D"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *RUN]) == 0
    capsys.readouterr()
    mine = {"report.html": "mine", "sensitivity.csv": "a,b\n1,2\n", "backtest.json": "{}"}
    for name, text in mine.items():
        (out / name).write_text(text)
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *RUN]) == 2
    _one_line_error(capsys, "which the previous gpuseg run there did not write")
    assert {name: (out / name).read_text() for name in mine} == mine


def test_gpuseg_report_keeps_the_user_s_report(tmp_path, capsys):
    _orders(tmp_path / "o.csv")
    out = tmp_path / "D"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *RUN]) == 0
    capsys.readouterr()
    (out / "report.html").write_text("mine")
    pytest.importorskip("matplotlib")
    assert main(["report", str(out)]) == 2
    _one_line_error(capsys, "report.html")
    assert (out / "report.html").read_text() == "mine"


# --- 2. persona names that contradict the data ---------------------------------------------

FEATURES = ["recency_days", "frequency", "monetary", "tenure_days", "views", "carts", "purchases",
            "cart_abandonment", "price_index"]


def _summary(z: dict, means: dict) -> pd.DataFrame:
    """Segment 0 with these z-scores and means (others: z 0, the overall mean), segment 1
    the overall customer; revenue shares equal to the shares."""
    overall = {f: 1.0 if f == "price_index" else 10.0 for f in FEATURES}
    rows = []
    for seg, (zs, ms) in {0: (z, means), 1: ({}, {})}.items():
        for f in FEATURES:
            rows.append({"segment": seg, "size": 10, "share": 0.5, "revenue_share": 0.5, "feature": f,
                         "mean": ms.get(f, overall[f]), "median": ms.get(f, overall[f]), "z": zs.get(f, 0.0),
                         "overall_mean": overall[f], "overall_std": 1.0})
    return pd.DataFrame(rows)


def _persona_and_actions(z, means):
    from gpuseg.segments.actions import segment_actions
    from gpuseg.segments.naming import name_segments

    summary = _summary(z, means)
    names = name_segments(summary)
    return names[0]["persona"], [a["kind"] for a in segment_actions(summary, naming=names)[0]]


@pytest.mark.parametrize("orders, loyal", [(0.96, False), (1.0, False), (1.49, False), (1.5, True), (4.7, True)])
def test_high_value_loyal_needs_repeat_buying(orders, loyal):
    persona, actions = _persona_and_actions({"monetary": 1.8, "frequency": 1.2},
                                            {"monetary": 500.0, "frequency": orders})
    assert (persona == "High-value loyal") is loyal
    assert ("loyalty" in actions) is loyal  # name and action agree (no revenue lift here for High-value)


@pytest.mark.parametrize("orders, deal", [(0.0, False), (0.05, True), (2.0, True)])
def test_deal_seekers_need_purchases(orders, deal):
    persona, actions = _persona_and_actions({"views": 0.1}, {"price_index": 0.6, "frequency": orders})
    assert (persona == "Deal seekers") is deal
    assert "price" in actions  # low prices (paid, or viewed) still lead with discounts


def test_the_floor_needs_the_mean_and_keeps_the_rule_text():
    from gpuseg.segments.signals import SIGNALS, SegmentStats, signal_holds

    loyal = SIGNALS["high_value_loyal"]
    z = {"monetary": 1.8, "frequency": 1.2}
    assert signal_holds(loyal, SegmentStats(mean={"monetary": 9.0}, z=z)) is None  # no mean: no floor passed
    assert signal_holds(loyal, SegmentStats(mean={"monetary": 9.0, "frequency": math.nan}, z=z)) is None
    text = signal_holds(loyal, SegmentStats(mean={"monetary": 9.0, "frequency": 3.0}, z=z))
    assert text == "monetary z=+1.80 >= 1.0 and frequency z=+1.20 >= 0.5"


@pytest.fixture(scope="module")
def trial_logs(tmp_path_factory):
    """The trial's two logs, from a seeded synthetic one: every customer's first purchase
    only (with their other events), and views only."""
    from gpuseg.io.synthetic import generate_events, write_events

    d = tmp_path_factory.mktemp("trial")
    events, _ = generate_events(2000, seed=0)
    bought = events[events["event_type"] == "purchase"].sort_values("event_time").groupby("user_id").head(1)
    first = pd.concat([events[events["event_type"] != "purchase"], bought]).sort_values("event_time")
    write_events(first.reset_index(drop=True), d / "first_purchase.csv")
    write_events(events[events["event_type"] == "view"].reset_index(drop=True), d / "views.csv")
    return d


@pytest.mark.parametrize("log, wrong", [("first_purchase", "High-value loyal"), ("views", "Deal seekers")])
def test_trial_logs_get_no_name_their_data_contradict(trial_logs, tmp_path, capsys, log, wrong):
    out = tmp_path / "out"
    assert main(["run", "--input", str(trial_logs / f"{log}.csv"), "--out", str(out), "--methods", "kmeans",
                 "--k", "6", "--stability", "0", "--no-report", "-q"]) == 0
    seg = pd.read_parquet(out / "segments.parquet")
    feats = pd.read_parquet(out / "features.parquet")
    orders = feats.assign(name=seg["segment_name"].to_numpy()).groupby("name")["frequency"].mean()
    assert not any(n.startswith(wrong) for n in orders.index), orders
    for name, mean in orders.items():  # and in general: the names agree with the orders
        if name.startswith("High-value loyal"):
            assert mean >= 1.5
        if name.startswith("Deal seekers"):
            assert mean > 0


# --- 3. eta squared with nothing to explain ---------------------------------------------------

def _backtest(revenue: list[float], days: list[int]):
    from gpuseg.evaluate.backtest import evaluate_backtest

    seg = pd.DataFrame({"customer_id": [1, 2, 3, 4], "segment": [0, 0, 1, 1], "segment_name": ["a", "a", "b", "b"]})
    feats = pd.DataFrame({"recency_days": [1.0, 2, 30, 40], "frequency": [1.0, 1, 1, 1],
                          "monetary": [50.0, 40, 5, 6]}, index=pd.Index([1, 2, 3, 4], name="customer_id"))
    ids = [str(i + 1) for i, d in enumerate(days) if d]
    outcomes = pd.DataFrame({"revenue": [r for r, d in zip(revenue, days) if d],
                             "purchase_days": [d for d in days if d]}, index=pd.Index(ids, name="customer_id"))
    window = {"until": "2020-06-30", "holdout_end": "2020-12-30", "holdout_days": 183}
    return evaluate_backtest(seg, feats, outcomes, [2], 0, window)


def test_nobody_buying_in_the_holdout_leaves_eta_squared_undefined_not_0():
    from gpuseg.cli import print_backtest

    result = _backtest([0, 0, 0, 0], [0, 0, 0, 0])
    s = result.summary
    assert s["eta_squared_undefined"] == "no customer bought in the holdout: eta squared undefined"
    for v in s["segmentations"].values():
        assert math.isnan(v["eta_squared"]) and math.isnan(v["eta_squared_repeat"])
    written = json.loads(to_json(s))  # backtest.json: null, never 0
    assert all(v["eta_squared"] is None for v in written["segmentations"].values())
    assert result.headline == "no customer bought in the holdout: eta squared undefined"
    for bt in (s, written):
        buf = io.StringIO()
        print_backtest(bt, buf)
        text = buf.getvalue()
        assert "0.000" not in text and "undefined" in text.split("gpuseg", 1)[1].splitlines()[0]
        assert "No customer bought in the holdout: eta squared undefined" in text


def test_eta_squared_stays_defined_where_outcomes_vary():
    s = _backtest([10.0, 0, 0, 5.0], [1, 0, 0, 1]).summary
    assert s["eta_squared_undefined"] is None
    assert 0 <= s["segmentations"]["gpuseg"]["eta_squared"] <= 1
    everyone = _backtest([10.0, 12.0, 3.0, 5.0], [1, 1, 1, 1]).summary  # all bought again: repeat undefined
    assert "every customer bought again" in everyone["eta_squared_undefined"]
    assert math.isnan(everyone["segmentations"]["gpuseg"]["eta_squared_repeat"])
    assert np.isfinite(everyone["segmentations"]["gpuseg"]["eta_squared"])


def test_backtest_of_one_time_buyers_says_undefined(tmp_path, capsys):
    _orders(tmp_path / "o.csv", one_time=True)
    out = tmp_path / "bt"
    assert main(["backtest", "--input", str(tmp_path / "o.csv"), "--until", "2020-05-31", "--out", str(out),
                 *RUN[:-1]]) == 0
    printed = capsys.readouterr().out
    assert "No customer bought in the holdout: eta squared undefined" in printed
    bt = json.loads((out / "backtest.json").read_text())
    assert bt["customers_bought_again"] == 0 and bt["segmentations"]["gpuseg"]["eta_squared"] is None


# --- 4. --model OUT_DIR ----------------------------------------------------------------------

@pytest.mark.parametrize("command, extra", [("assign", ["--out", "a.parquet"]), ("update", []),
                                            ("migrate", ["--window", "30d"])])
def test_model_given_as_the_run_folder_suggests_its_model_folder(tmp_path, capsys, monkeypatch, command, extra):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "OUT"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "model.json").write_text("{}")
    _orders(tmp_path / "o.csv")
    assert main([command, "--model", "OUT", "--input", "o.csv", *extra]) == 2
    _one_line_error(capsys, "--model OUT: is a run's output folder", "give --model OUT/model")
    assert sorted(os.listdir(tmp_path)) == ["OUT", "o.csv"]


def test_a_folder_without_a_model_inside_keeps_the_model_s_own_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _orders(tmp_path / "o.csv")
    assert main(["assign", "--model", str(tmp_path / "empty"), "--input", str(tmp_path / "o.csv"),
                 "--out", str(tmp_path / "a.parquet")]) == 2
    _one_line_error(capsys, "not a gpuseg model folder")


# --- 5. --threads above the usable cores ---------------------------------------------------

def test_threads_above_the_usable_cores_are_capped_and_said(monkeypatch):
    from gpuseg import cli, pipeline
    from gpuseg.config import RunConfig

    monkeypatch.setattr(pipeline, "usable_cores", lambda: 2)
    config, note = cli._cap_threads(RunConfig(threads=1000))
    assert config.threads == 2 and note == "1000 asked for, capped at the 2 usable cores"
    for asked in (0, 1, 2):
        assert cli._cap_threads(RunConfig(threads=asked)) == (RunConfig(threads=asked), "")


def test_the_device_line_says_the_threads_were_capped(tmp_path, capsys):
    from gpuseg.pipeline import usable_cores

    cores = usable_cores()
    _orders(tmp_path / "o.csv")
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), "--threads", str(cores + 998),
                 *RUN[:-1]]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    plural = "s" if cores != 1 else ""
    assert first.endswith(f"({cores} CPU thread{plural}; {cores + 998} asked for, capped at the {cores} "
                          f"usable core{plural})")
    assert json.loads((out / "metrics.json").read_text())["device"]["cpu_threads"] == cores
