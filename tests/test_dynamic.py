"""Saved models at work: assign, update, migrate (gpuseg.dynamic and the CLI commands)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpuseg import backend as _backend
from gpuseg.cli import main
from gpuseg.config import build_config
from gpuseg.dynamic import (
    OOD_MARGIN, assign_frame, clean_like_model, load_input, migrate, parse_windows, prepare, psi_table, update_model,
)
from gpuseg.errors import ConfigError, SchemaError
from gpuseg.io.synthetic import PERSONAS, generate_events
from gpuseg.model import FORMAT_VERSION, _manifest_text, load_model
from gpuseg.pipeline import run

CPU = _backend.select("cpu")
DEEP = {"hidden": [16], "latent_dim": 3, "pretrain_epochs": 3, "n_init": 1}
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")


def _run(folder: Path, data: str, methods: str, k: str = "4", params: dict | None = None, stability: int = 0
         ) -> Path:
    cfg = build_config({"params": params} if params else None, input=data, out=str(folder), methods=methods, k=k,
                       stability=stability, report=False, device="cpu")
    run(cfg)
    return folder


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    d = tmp_path_factory.mktemp("dyn")
    ev, truth = generate_events(1500, seed=5)
    ev.to_parquet(d / "train.parquet")
    ev2, _ = generate_events(1500, seed=6)  # same personas and period, other customers
    ev2.to_parquet(d / "new.parquet")
    return d


@pytest.fixture(scope="module")
def kmeans_run(events):
    return _run(events / "run_kmeans", str(events / "train.parquet"), "kmeans")


def _assign(model_dir: Path, data: Path) -> pd.DataFrame:
    model = load_model(model_dir)
    cleaned = clean_like_model(model, load_input(model, str(data), CPU), CPU)
    return assign_frame(model, prepare(model, cleaned))


# --- assign ------------------------------------------------------------------------------------


@pytest.mark.parametrize("methods, params, stability", [
    ("adaptive_kmeans", None, 3),  # stability refits: a calibrated confidence, and the model keeps the map
    ("kmeans", None, 3),
    ("gmm", None, 3),
    ("som", {"som": {"grid": [4, 4], "n_epochs": 5}}, 0),
    ("ward", None, 0),
    ("kmeans,minibatch_kmeans,consensus", {"consensus": {"members": ["kmeans", "minibatch_kmeans"]}}, 3),
    pytest.param("deep_kmeans", {"deep_kmeans": DEEP}, 0, marks=needs_torch),
    pytest.param("dec", {"dec": {**DEEP, "max_iter": 20}}, 0, marks=needs_torch),
])
def test_assign_training_data_reproduces_the_run(events, methods, params, stability, tmp_path):
    out = _run(tmp_path / "run", str(events / "train.parquet"), methods, params=params, stability=stability)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["saved"], metrics["model"]
    assert metrics["chosen"]["confidence_calibration"]["calibrated"] == (stability > 0)
    got = _assign(out / "model", events / "train.parquet")
    seg = pd.read_parquet(out / "segments.parquet")
    m = seg.merge(got, on="customer_id", suffixes=("_run", "_assign"))
    assert len(m) == len(seg) == len(got)
    assert (m["segment_run"] == m["segment_assign"]).all()
    assert (m["segment_name_run"] == m["segment_name_assign"]).all()
    np.testing.assert_allclose(m["confidence_assign"], m["confidence_run"], atol=1e-5)
    assert not got["out_of_distribution"].any()  # inside the training range by construction


def test_features_use_the_models_settings(events, kmeans_run):
    """Doubled prices: price_index against the training medians doubles (against the new
    data's own medians it would stay put); a missing category gives shares of 0."""
    model = load_model(kmeans_run / "model")
    ev = pd.read_parquet(events / "train.parquet")
    base = prepare(model, clean_like_model(model, load_input(model, str(events / "train.parquet"), CPU), CPU))
    dear = ev.copy()
    dear["price"] = dear["price"] * 2
    dear = dear[dear["category_code"].astype(str).str.split(".").str[0] != "electronics"]
    dear.to_parquet(events / "dear.parquet")
    new = prepare(model, clean_like_model(model, load_input(model, str(events / "dear.parquet"), CPU), CPU))
    assert list(new.features.names) == list(model.feature_names)
    f0, f1 = base.features.frame, new.features.frame
    common = f0.index.intersection(f1.index)
    ratio = (f1.loc[common, "price_index"] / f0.loc[common, "price_index"]).median()
    assert 1.8 < ratio < 2.2
    assert (f1["cat_electronics"] == 0).all()


def test_out_of_distribution_flags_the_extreme_customer(events, kmeans_run, tmp_path):
    ev = pd.read_parquet(events / "train.parquet")
    whale = ev[ev["user_id"] == ev["user_id"].iloc[0]].copy()
    whale["user_id"] = 1
    whale = pd.concat([whale] * 40, ignore_index=True)  # 40 times the events of a customer
    whale["user_session"] = whale["user_session"].astype(str) + pd.Series(range(len(whale))).astype(str)
    whale["event_type"] = "purchase"
    data = pd.concat([ev, whale], ignore_index=True)
    data.to_parquet(tmp_path / "whale.parquet")
    got = _assign(kmeans_run / "model", tmp_path / "whale.parquet").set_index("customer_id")
    assert bool(got.loc[1, "out_of_distribution"])
    assert got.loc[1, "ood_feature"] in load_model(kmeans_run / "model").feature_names
    assert got["out_of_distribution"].mean() < 0.01
    assert OOD_MARGIN > 0


def test_assign_cli_writes_csv_and_refuses_to_overwrite(events, kmeans_run, tmp_path, capsys):
    out = tmp_path / "assigned.csv"
    rc = main(["assign", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
               "--out", str(out), "-q"])
    assert rc == 0
    got = pd.read_csv(out)
    assert list(got.columns) == ["customer_id", "segment", "segment_name", "confidence", "low_confidence",
                                 "out_of_distribution", "ood_feature", "p_alive", "expected_purchases",
                                 "predicted_clv"]
    assert len(got) == 1500 and got["segment"].between(0, 3).all()
    assert "Assigned 1,500 customers" in capsys.readouterr().out
    before = out.read_bytes()
    rc = main(["assign", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
               "--out", str(out), "-q"])
    assert rc == 2 and out.read_bytes() == before
    assert "exists; use --force" in capsys.readouterr().err
    rc = main(["assign", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
               "--out", str(out), "-q", "--force"])
    assert rc == 0


def test_outputs_are_refused_inside_the_model_an_input_folder_or_a_users_folder(events, kmeans_run, tmp_path, capsys):
    # gpuseg's files inside model/ break the model; inside an input folder they are read as
    # data next time; a folder of the user's own files is not migrate's to fill
    model = kmeans_run / "model"
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "p1.parquet").write_bytes((events / "new.parquet").read_bytes())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    before = sorted(q.name for q in model.iterdir())
    cases = [
        (["assign", "--model", str(model), "--input", str(parts), "--out", str(model / "x.parquet")], "model folder"),
        (["assign", "--model", str(model), "--input", str(parts), "--out", str(parts / "seg.parquet")], "input folder"),
        (["migrate", "--model", str(model), "--input", str(parts), "--window", "20d", "--out", str(model)],
         "model folder"),
        (["migrate", "--model", str(model), "--input", str(parts), "--window", "20d", "--out", str(mine)],
         "holds notes.txt"),
        (["update", "--model", str(model), "--input", str(parts), "--out", str(model / "v2")], "model folder"),
    ]
    for argv, why in cases:
        rc = main([*argv, "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("gpuseg: error: ") and err.count("\n") == 1 and why in err, (argv, err)
    assert sorted(q.name for q in model.iterdir()) == before
    assert sorted(q.name for q in parts.iterdir()) == ["p1.parquet"]
    assert sorted(q.name for q in mine.iterdir()) == ["notes.txt"]
    # an output folder inside an input folder carries its manifest, and readers skip it
    rc = main(["run", "--input", str(parts), "--out", str(parts / "seg"), "--methods", "kmeans", "--k", "3",
               "--stability", "0", "--no-report", "-q"])
    assert rc == 0 and (parts / "seg" / "segments.parquet").is_file()
    from gpuseg.io.readers import resolve_paths

    assert resolve_paths(str(parts)) == ([parts / "p1.parquet"], "parquet")


def test_assign_predicts_lifetime_value_with_the_models_fit(events, kmeans_run):
    # the training data again: the same purchases, the same reference time, so the run's own values
    got = _assign(kmeans_run / "model", events / "train.parquet").set_index("customer_id")
    run_seg = pd.read_parquet(kmeans_run / "segments.parquet").set_index("customer_id")
    cols = ["p_alive", "expected_purchases", "predicted_clv"]
    pd.testing.assert_frame_equal(got.loc[run_seg.index, cols], run_seg[cols], check_dtype=False)
    assert got["predicted_clv"].notna().any() and got["predicted_clv"].isna().any()  # browsers: none
    new = _assign(kmeans_run / "model", events / "new.parquet")
    assert new["p_alive"].dropna().between(0, 1).all()


def test_assign_lists_the_customers_cleaning_excluded(events, kmeans_run, tmp_path, capsys):
    new = pd.read_parquet(events / "new.parquet")
    lost = new["user_id"].drop_duplicates().iloc[:3].tolist()
    new.loc[new["user_id"].isin(lost), "price"] = -1.0  # every row of three customers unusable
    new.to_parquet(tmp_path / "bad.parquet")
    out = tmp_path / "assigned.parquet"
    args = ["assign", "--model", str(kmeans_run / "model"), "--input", str(tmp_path / "bad.parquet"), "--out", str(out)]
    assert main(args) == 0
    got = pd.read_parquet(out)
    side = tmp_path / "assigned.excluded.csv"
    excluded = pd.read_csv(side)
    assert sorted(excluded["customer_id"]) == sorted(lost) and set(excluded["reason"]) == {"bad_price"}
    assert set(got["customer_id"]) | set(excluded["customer_id"]) == set(new["user_id"])
    io = capsys.readouterr()
    assert "3 customers of the input excluded while cleaning" in io.out and str(side) in io.out
    assert "3 excluded (" in io.err
    # the list is the user's file too: not replaced without --force; a clean re-run removes it
    assert main(args) == 2 and "exists" in capsys.readouterr().err
    out.unlink()
    assert main(args) == 2 and "assigned.excluded.csv" in capsys.readouterr().err
    args[4] = str(events / "new.parquet")
    assert main(args + ["--force"]) == 0 and not side.exists()


def test_assign_new_customers_of_the_same_population(events, kmeans_run):
    got = _assign(kmeans_run / "model", events / "new.parquet")
    run_shares = pd.read_parquet(kmeans_run / "segments.parquet")["segment"].value_counts(normalize=True)
    new_shares = got["segment"].value_counts(normalize=True)
    assert (run_shares - new_shares.reindex(run_shares.index).fillna(0)).abs().max() < 0.06
    assert got["out_of_distribution"].mean() < 0.02


@pytest.mark.parametrize("case", ["no_brand", "orders", "tampered", "pickle", "other_major"])
def test_bad_input_one_line_exit_2_nothing_written(events, kmeans_run, tmp_path, capsys, case):
    model_dir = tmp_path / "model"
    shutil.copytree(kmeans_run / "model", model_dir)
    data = events / "new.parquet"
    if case == "no_brand":
        pd.read_parquet(data).drop(columns=["brand"]).to_parquet(tmp_path / "nb.parquet")
        data = tmp_path / "nb.parquet"
    elif case == "orders":
        pd.DataFrame({"customer_id": [1, 2, 3], "order_date": ["2020-01-01"] * 3, "amount": [1.0, 2.0, 3.0]}).to_csv(
            tmp_path / "o.csv", index=False)
        data = tmp_path / "o.csv"
    elif case == "tampered":
        raw = (model_dir / "arrays.npz").read_bytes()
        (model_dir / "arrays.npz").write_bytes(raw[: len(raw) // 2])
    elif case == "pickle":
        class Evil:
            def __reduce__(self):
                return (Path("/tmp/gpuseg-pwned").touch, ())

        payload = pickle.dumps({"centers": Evil()})
        (model_dir / "arrays.npz").write_bytes(payload)
        manifest = json.loads((model_dir / "model.json").read_text())
        manifest["files"]["arrays.npz"] = hashlib.sha256(payload).hexdigest()  # a consistent forgery
        (model_dir / "model.json").write_text(_manifest_text(manifest))
    elif case == "other_major":
        manifest = json.loads((model_dir / "model.json").read_text())
        manifest["format_version"] = FORMAT_VERSION + 1
        (model_dir / "model.json").write_text(json.dumps(manifest))
    out = tmp_path / "out.parquet"
    for command in (["assign", "--out", str(out)], ["update", "--out", str(tmp_path / "v2")],
                    ["migrate", "--window", "20d", "--out", str(tmp_path / "mig")]):
        rc = main([command[0], "--model", str(model_dir), "--input", str(data), "-q", *command[1:]])
        err = capsys.readouterr().err
        assert rc == 2, (command, err)
        assert err.startswith("gpuseg: error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "v2").exists() and not (tmp_path / "mig").exists()
    assert not Path("/tmp/gpuseg-pwned").exists()


# --- update ------------------------------------------------------------------------------------


@pytest.mark.parametrize("methods, params", [
    ("adaptive_kmeans", None),
    ("kmeans", None),
    ("gmm", None),
    ("kmeans,minibatch_kmeans,consensus", {"consensus": {"members": ["kmeans", "minibatch_kmeans"]}}),
    pytest.param("deep_kmeans", {"deep_kmeans": DEEP}, marks=needs_torch),
])
def test_update_same_distribution_moves_little_and_keeps_names(events, methods, params, tmp_path, capsys):
    out = _run(tmp_path / "run", str(events / "train.parquet"), methods, params=params)
    before = {p.name: p.read_bytes() for p in (out / "model").iterdir()}
    rc = main(["update", "--model", str(out / "model"), "--input", str(events / "new.parquet"), "-q"])
    text = capsys.readouterr().out
    assert rc == 0, text
    v2 = out / "model-v2"
    assert {p.name: p.read_bytes() for p in (out / "model").iterdir()} == before  # the old version untouched
    old, new = load_model(out / "model"), load_model(v2)
    assert new.segment_names == old.segment_names
    assert new.manifest["model_version"] == 2 and new.manifest["parent"]["model_version"] == 1
    record = new.manifest["updates"][-1]
    assert record["customers"] == 1500
    rel = [r["relative"] for r in record["movement"]]
    assert max(rel) < 0.35, record["movement"]
    assert "Wrote model version 2" in text
    # same population: the refreshed model labels the training customers almost as before
    a = _assign(out / "model", events / "train.parquet")
    b = _assign(v2, events / "train.parquet")
    assert (a["segment"].to_numpy() == b["segment"].to_numpy()).mean() > 0.9
    # and a second update chains: model-v3 beside it
    assert main(["update", "--model", str(v2), "--input", str(events / "new.parquet"), "-q"]) == 0
    assert load_model(out / "model-v3").manifest["model_version"] == 3


def test_update_matches_centres_by_hungarian(events, kmeans_run):
    """Centres shuffled before the update come back in the saved order."""
    model = load_model(kmeans_run / "model")
    prepared = prepare(model, clean_like_model(model, load_input(model, str(events / "new.parquet"), CPU), CPU))
    arrays, movement, _ = update_model(model, prepared.X)
    old = model.arrays["centers"]
    new = arrays["centers"]
    d = ((old[:, None, :] - new[None, :, :]) ** 2).sum(axis=2)
    assert (d.argmin(axis=1) == np.arange(old.shape[0])).all()
    assert [r["segment"] for r in movement] == [int(s) for s in model.arrays["segment_map"]]


def test_update_refuses_som(events, tmp_path, capsys):
    out = _run(tmp_path / "run", str(events / "train.parquet"), "som", params={"som": {"grid": [4, 4], "n_epochs": 5}})
    rc = main(["update", "--model", str(out / "model"), "--input", str(events / "new.parquet"), "-q"])
    assert rc == 2 and "not available for a SOM" in capsys.readouterr().err
    assert not (out / "model-v2").exists()


# --- migrate -----------------------------------------------------------------------------------


def _onehot(names):
    return [1.0 if p in names else 0.0 for p in PERSONAS]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Window 1 (October): loyal, window shoppers, cart abandoners. Window 2 (November):
    the loyal stay, every window shopper turns cart abandoner, half the cart abandoners
    turn window shopper."""
    d = tmp_path_factory.mktemp("planted")
    use = ["loyal_high_spender", "window_shopper", "cart_abandoner"]
    a, ta = generate_events(1200, seed=11, start="2019-10-01", days=30, persona_weights=_onehot(use))
    rng = np.random.default_rng(0)
    target = ta["persona"].map({"loyal_high_spender": "loyal_high_spender", "window_shopper": "cart_abandoner"})
    ca = (ta["persona"] == "cart_abandoner").to_numpy()
    target[ca] = np.where(rng.random(ca.sum()) < 0.5, "window_shopper", "cart_abandoner")
    parts = [a]
    for i, q in enumerate(use):
        ids = ta.loc[target == q, "user_id"].to_numpy()
        b, tb = generate_events(len(ids), seed=20 + i, start="2019-10-31", days=30, persona_weights=_onehot([q]))
        b["user_id"] = b["user_id"].map(dict(zip(tb["user_id"], ids)))
        parts.append(b)
    a.to_parquet(d / "october.parquet")
    pd.concat(parts, ignore_index=True).to_parquet(d / "both.parquet")
    out = _run(d / "run", str(d / "october.parquet"), "kmeans", k="3")
    truth = pd.DataFrame({"user_id": ta["user_id"], "before": ta["persona"], "after": target.to_numpy()})
    return d, out, truth


def test_migration_recovers_planted_transitions(planted, capsys):
    d, out, truth = planted
    mig = d / "mig"
    rc = main(["migrate", "--model", str(out / "model"), "--input", str(d / "both.parquet"),
               "--windows", "2019-10-01..2019-10-30,2019-10-31..2019-11-29", "--out", str(mig), "-q"])
    assert rc == 0
    assert "Refit" in capsys.readouterr().out
    seg = pd.read_parquet(out / "segments.parquet").set_index("customer_id")["segment"]
    persona = truth.set_index("user_id")
    table = pd.crosstab(persona["before"].reindex(seg.index), seg)
    to_segment = table.idxmax(axis=1)
    assert to_segment.nunique() == 3  # the three personas are three segments
    planted_counts = pd.DataFrame({"from_segment": persona["before"].map(to_segment),
                                   "to_segment": persona["after"].map(to_segment)}).value_counts()
    got = pd.read_csv(mig / "migration.csv").set_index(["from_segment", "to_segment"])["customers"]
    found = got.reindex(planted_counts.index).fillna(0)
    assert found.sum() / len(truth) > 0.75  # most customers on their planted path
    assert ((found / planted_counts) > 0.7).all(), pd.concat([planted_counts, found], axis=1)
    movers = pd.read_parquet(mig / "movers.parquet")
    shoppers = persona.index[persona["before"] == "window_shopper"]
    assert movers["customer_id"].isin(shoppers).sum() > 0.7 * len(shoppers)
    for name in ("windows.csv", "drift.csv", "migration.html", "migration.json", "sankey.png"):
        assert (mig / name).is_file(), name
    drift = pd.read_csv(mig / "drift.csv")
    assert set(drift["status"]) <= {"stable", "watch", "refit"}
    html = (mig / "migration.html").read_text()
    assert "data:image/png;base64," in html


def test_migration_of_a_stable_population_is_mostly_diagonal_with_low_drift(planted):
    d, out, truth = planted
    model = load_model(out / "model")
    cleaned = clean_like_model(model, load_input(model, str(d / "october.parquet"), CPU), CPU)
    windows = parse_windows(None, "2019-10-01..2019-10-15,2019-10-16..2019-10-30", 0, 0)
    result = migrate(model, cleaned, windows)
    t = result.transitions
    both = t[(t["from_segment"] >= 0) & (t["to_segment"] >= 0)]
    stay = both[both["from_segment"] == both["to_segment"]]["customers"].sum()
    assert stay / both["customers"].sum() > 0.7
    pair = result.drift[result.drift["window_from"] != "training"]
    assert pair["psi_vs_previous"].median() < 0.1, pair.sort_values("psi_vs_previous").tail(3).to_string()


def test_psi_is_zero_for_the_training_data_and_large_for_a_shift(kmeans_run, events):
    model = load_model(kmeans_run / "model")
    prepared = prepare(model, clean_like_model(model, load_input(model, str(events / "train.parquet"), CPU), CPU))
    X = prepared.X
    table = psi_table(model, ["a", "b"], [X, X + 1.0])
    first = table[table["window_from"] == "training"]
    assert first["psi_vs_training"].max() < 0.05
    second = table[table["window_from"] == "a"]
    assert (second["psi_vs_previous"] > 0.25).mean() > 0.5
    assert (second["status"] == "refit").mean() > 0.5


def test_migrate_by_window_length_runs_from_the_command_line(planted, capsys):
    """--window was refused for every length once: its check ran on no data, which span no window."""
    d, out, _ = planted
    mig = d / "mig-window"
    rc = main(["migrate", "--model", str(out / "model"), "--input", str(d / "both.parquet"), "--window", "30d",
               "--out", str(mig), "-q"])
    assert rc == 0, capsys.readouterr().err
    windows = pd.read_csv(mig / "windows.csv")
    assert len(windows) == 2 and (pd.read_csv(mig / "migration.csv")["customers"].sum() > 0)


@pytest.mark.parametrize("window, windows", [("30d", None), ("12h", None), ("1.5w", None),
                                             (None, "2019-10-01..2019-10-31,2019-11-01..2019-11-30")])
def test_well_formed_window_options_pass_the_check_without_data(window, windows):
    from gpuseg.dynamic import check_window_options

    check_window_options(window, windows)


def test_parse_windows():
    day = 86400
    first, last = 1569888000, 1569888000 + 61 * day - 1  # 2019-10-01 .. 2019-11-30 23:59:59
    w = parse_windows("30d", None, first, last)
    assert w == [(last + 1 - 60 * day, last + 1 - 30 * day), (last + 1 - 30 * day, last + 1)]  # whole windows, to the end
    assert len(parse_windows("1w", None, first, last)) == 8
    assert parse_windows("30d", None, first + 8 * 3600, last) == w  # the first day counts from its midnight
    w = parse_windows(None, "2019-10-01..2019-10-31, 2019-11-01..2019-11-30", 0, 0)
    assert w == [(first, first + 31 * day), (first + 31 * day, first + 61 * day)]
    for bad in (("30x", None), (None, "2019-10-01"), (None, "2019-10-05..2019-10-01,2019-10-06..2019-10-07"),
                ("30d", "2019-10-01..2019-10-02"), (None, None), ("90d", None), (None, "nope..2019-10-01"),
                (None, "2019-10-01..2019-10-31"), ("30m", None)):
        with pytest.raises(ConfigError):
            parse_windows(*bad, first, last)


def test_model_without_data_cannot_label_raw_data(events, kmeans_run, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(kmeans_run / "model", model_dir)
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["data"] = None
    (model_dir / "model.json").write_text(_manifest_text(manifest))
    model = load_model(model_dir)
    with pytest.raises(ConfigError, match="saved without its data preparation"):
        load_input(model, str(events / "new.parquet"), CPU)


def test_schema_error_names_the_column(events, kmeans_run, tmp_path):
    pd.read_parquet(events / "new.parquet").drop(columns=["user_session"]).to_parquet(tmp_path / "x.parquet")
    model = load_model(kmeans_run / "model")
    with pytest.raises(SchemaError, match="user_session"):
        load_input(model, str(tmp_path / "x.parquet"), CPU)


# --- review findings: new data treated as the training data were -------------------------------


def test_price_group_is_the_models_not_the_first_the_new_data_have(events, tmp_path):
    ev = pd.read_parquet(events / "train.parquet")
    ev.drop(columns=["category_id", "category_code"]).to_parquet(tmp_path / "noprod.parquet")
    out = _run(tmp_path / "run", str(tmp_path / "noprod.parquet"), "kmeans")
    assert load_model(out / "model").data["price_group"] == "product_id"
    got = _assign(out / "model", events / "train.parquet")  # has category_id too: ignored
    seg = pd.read_parquet(out / "segments.parquet")
    assert (got["segment"].to_numpy() == seg["segment"].to_numpy()).all()
    assert not got["out_of_distribution"].any()


def test_as_of_leaves_later_events_out(events, kmeans_run):
    model = load_model(kmeans_run / "model")
    cleaned = clean_like_model(model, load_input(model, str(events / "train.parquet"), CPU), CPU)
    from gpuseg.dynamic import as_of_time

    cut = as_of_time("2019-10-20")
    early = prepare(model, cleaned, cut)
    f = cleaned.frame
    expected = f[f["ts"] < cut]["customer_id"].nunique()
    assert len(early.ids) == expected < len(f["customer_id"].unique())
    assert (early.features.frame["recency_days"] >= 0).all()
    # the customers with no event before the cut are listed, with their rows, not dropped
    listed = early.cleaned.excluded
    later = listed[listed["reason"] == "no_events_before_as_of"]
    assert set(later["customer_id"]) == set(f["customer_id"].unique()) - set(early.ids)
    assert int(later["rows"].sum()) == int((~f["customer_id"].isin(early.ids)).sum())
    with pytest.raises(ConfigError):
        as_of_time("NaT")


def test_assign_as_of_lists_the_customers_it_cannot_assign_yet(events, kmeans_run, tmp_path, capsys):
    out = tmp_path / "early.parquet"
    rc = main(["assign", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
               "--out", str(out), "--as-of", "2019-10-20", "-q"])
    assert rc == 0
    got, side = pd.read_parquet(out), pd.read_csv(tmp_path / "early.excluded.csv")
    assert len(got) + int((side["reason"] == "no_events_before_as_of").sum()) == 1500
    assert "or for having no events before --as-of" in capsys.readouterr().out


def test_models_renames_apply_only_where_the_column_exists_and_user_renames_win(tmp_path):
    ev, _ = generate_events(600, seed=9)
    ev.rename(columns={"user_id": "shopper"}).to_parquet(tmp_path / "a.parquet")
    out = tmp_path / "run"
    run(build_config({"rename": {"shopper": "user_id"}}, input=str(tmp_path / "a.parquet"), out=str(out),
                     methods="kmeans", k="3", stability=0, report=False, device="cpu"))
    ev.to_parquet(tmp_path / "plain.parquet")  # already user_id: the model's rename does not apply
    ev.rename(columns={"user_id": "client"}).to_parquet(tmp_path / "client.parquet")
    model = load_model(out / "model")
    assert len(prepare(model, clean_like_model(model, load_input(model, str(tmp_path / "plain.parquet"), CPU), CPU)).ids) == 600
    loaded = load_input(model, str(tmp_path / "client.parquet"), CPU, {"client": "user_id"})
    assert "user_id" in loaded.frame.columns


def test_training_timestamp_format_is_reused(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    when = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 120, n), unit="s")
    orders = pd.DataFrame({"customer_id": rng.integers(0, 300, n), "timestamp": when.strftime("%d/%m/%Y %H:%M"),
                           "amount": np.round(rng.lognormal(3, 1, n), 2)})
    orders.to_csv(tmp_path / "train.csv", index=False)
    out = _run(tmp_path / "run", str(tmp_path / "train.csv"), "kmeans", k="3")
    early = orders[when.day <= 12]  # ambiguous days: %m/%d would parse too
    early.to_csv(tmp_path / "new.csv", index=False)
    model = load_model(out / "model")
    loaded = load_input(model, str(tmp_path / "new.csv"), CPU)
    assert loaded.timestamp_format == "%d/%m/%Y %H:%M"


def test_optional_columns_the_training_data_lacked_are_ignored(events, tmp_path):
    ev = pd.read_parquet(events / "train.parquet")
    ev.drop(columns=["user_session"]).to_parquet(tmp_path / "nosess.parquet")
    out = _run(tmp_path / "run", str(tmp_path / "nosess.parquet"), "kmeans")
    got = _assign(out / "model", events / "train.parquet")  # with sessions: derived from gaps as in training
    seg = pd.read_parquet(out / "segments.parquet")
    assert (got["segment"].to_numpy() == seg["segment"].to_numpy()).all()
    np.testing.assert_allclose(got["confidence"], seg["confidence"], atol=1e-5)


def test_update_refreshes_the_confidence_centres(events, kmeans_run):
    model = load_model(kmeans_run / "model")
    prepared = prepare(model, clean_like_model(model, load_input(model, str(events / "new.parquet"), CPU), CPU))
    arrays, _, _ = update_model(model, prepared.X)
    np.testing.assert_array_equal(arrays["confidence_centers"], arrays["centers"])


def test_windows_must_be_ordered_and_not_overlap():
    with pytest.raises(ConfigError, match="time order"):
        parse_windows(None, "2019-10-11..2019-10-20,2019-10-01..2019-10-10", 0, 0)
    with pytest.raises(ConfigError, match="not a date"):
        parse_windows(None, "..2019-10-10,2019-10-11..2019-10-20", 0, 0)


@pytest.mark.parametrize("key, value, words", [("clean", "x", "data.clean is not a dict"),
                                               ("reference_time", "soon", "data.reference_time is not a int"),
                                               ("kind", "sessions", "neither events nor orders")])
def test_edited_data_entries_are_one_clear_error(events, kmeans_run, tmp_path, capsys, key, value, words):
    """`data.clean: "x"` crashed assign with AttributeError; now every entry assign reads is
    type-checked, before the digest says the file was edited."""
    model_dir = tmp_path / "model"
    shutil.copytree(kmeans_run / "model", model_dir)
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["data"][key] = value
    (model_dir / "model.json").write_text(_manifest_text(manifest))  # even with a consistent digest
    rc = main(["assign", "--model", str(model_dir), "--input", str(events / "new.parquet"),
               "--out", str(tmp_path / "a.parquet"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("method", ["kmeans", "gmm", "adaptive_kmeans"])
def test_assign_works_on_a_run_clustered_in_a_pca_embedding(events_csv, tmp_path, capsys, method):
    """--embed pca saves the projection with the model: assigning the training data gives the
    run's segments and confidence (GMM's posterior and adaptive K-means' metric included:
    the projection is applied once); update keeps the projection bit for bit and moves the
    centres in it."""
    out = tmp_path / "o"
    assert main(["run", "--input", str(events_csv), "--out", str(out), "--embed", "pca", "--methods", method,
                 "--k", "3", "--stability", "0", "--no-report", "-q"]) == 0
    assigned = tmp_path / "a.parquet"
    assert main(["assign", "--model", str(out / "model"), "--input", str(events_csv), "--out", str(assigned),
                 "-q"]) == 0
    s = pd.read_parquet(out / "segments.parquet").set_index("customer_id")
    a = pd.read_parquet(assigned).set_index("customer_id").loc[s.index]
    assert (a["segment"] == s["segment"]).all()
    np.testing.assert_allclose(a["confidence"], s["confidence"], rtol=0, atol=1e-5)
    capsys.readouterr()
    rc = main(["update", "--model", str(out / "model"), "--input", str(events_csv), "--out", str(tmp_path / "v2"),
               "-q"])
    assert rc == 0, capsys.readouterr().err
    v1, v2 = load_model(out / "model"), load_model(tmp_path / "v2")
    confidence = v1.data["confidence"]  # a margin is measured in the embedding, and says so
    assert (confidence["kind"], confidence.get("space")) == (
        {"gmm": ("probability", None), "kmeans": ("margin", "embedding"), "adaptive_kmeans": ("margin", "metric")}[method])
    update = v2.manifest["updates"][-1]
    assert v2.embedding == v1.embedding and update["how"].endswith(", in the saved pca embedding (kept as it was)")
    assert v2.manifest["format_version"] == v1.manifest["format_version"] == 3  # readable by a gpuseg of format 3
    for name in ("projection_mean", "projection_components", "projection_scale"):
        np.testing.assert_array_equal(v2.arrays[name], v1.arrays[name])
    assert {r["space"] for r in update["movement"]} == {"metric" if method == "adaptive_kmeans" else "embedding"}
    assert sum(r["new_customers"] for r in update["movement"]) == pytest.approx(len(s))  # each customer once
    X = v1.scaler.transform(pd.read_parquet(out / "features.parquet")[v1.feature_names].to_numpy(np.float64))
    np.testing.assert_array_equal(v2.embed(X), v1.embed(X))
    # the same customers again: the centres move by a few thousandths of their spacing, segments stay
    assert max(r["relative"] for r in update["movement"]) < 0.02
    assert (np.asarray(v2.predict(X)) == np.asarray(v1.predict(X))).mean() > 0.99


def test_rows_and_customers_outside_every_window_are_counted(planted, tmp_path, capsys):
    from gpuseg.dynamic import outside_windows

    d, out, _ = planted
    model = load_model(out / "model")
    cleaned = clean_like_model(model, load_input(model, str(d / "both.parquet"), CPU), CPU)
    f = cleaned.frame
    windows = parse_windows(None, "2019-10-01..2019-10-10,2019-11-20..2019-11-29", 0, 0)
    inside = np.zeros(len(f), bool)
    for lo, hi in windows:
        inside |= ((f["ts"] >= lo) & (f["ts"] < hi)).to_numpy()
    expected_customers = len(set(f["customer_id"][~inside]) - set(f["customer_id"][inside]))
    got = outside_windows(cleaned, windows)
    assert got == {"rows": int((~inside).sum()), "customers": expected_customers} and got["rows"] > 0
    mig = tmp_path / "mig"
    rc = main(["migrate", "--model", str(out / "model"), "--input", str(d / "both.parquet"),
               "--windows", "2019-10-01..2019-10-10,2019-11-20..2019-11-29", "--out", str(mig)])
    assert rc == 0
    printed = capsys.readouterr()
    assert f"{got['rows']:,} rows lie outside every window" in printed.out + printed.err
    assert json.loads((mig / "migration.json").read_text())["outside_windows"] == got


@pytest.mark.parametrize("text", ["03/04/2020", "30/09/2019", "20191001", "Oct 1 2019"])
def test_dates_of_the_options_are_year_month_day_only(text):
    # "03/04/2020" would silently be March 4 to one reader and 3 April to another
    from gpuseg.dynamic import as_of_time

    with pytest.raises(ConfigError, match="use YYYY-MM-DD"):
        as_of_time(text)
    assert as_of_time("2019-10-01 12:00") - as_of_time("2019-10-01") == 12 * 3600 - 86400


def test_a_folder_a_killed_migrate_left_is_taken_back(tmp_path):
    # the journal of an unfinished commit marks the folder as migrate's (recover settles it);
    # a dotfile is nobody's data
    from gpuseg.cli import _migration_out

    left = tmp_path / "mig"
    (left / ".gpuseg-tmp-1").mkdir(parents=True)
    (left / ".gpuseg-tmp-1" / ".journal.json").write_text("{}")
    (left / "migration.csv").write_text("x")
    assert _migration_out(str(left), str(tmp_path / "model")) == left
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_text("x")
    assert _migration_out(str(hidden), str(tmp_path / "model")) == hidden


def test_as_of_with_categorical_customer_ids_lists_only_the_customers_left_out(events, kmeans_run, tmp_path):
    model = load_model(kmeans_run / "model")
    ev = pd.read_parquet(events / "train.parquet")
    ev["user_id"] = ev["user_id"].astype("category")  # unused categories count 0 in value_counts
    ev.to_parquet(tmp_path / "cat.parquet")
    cleaned = clean_like_model(model, load_input(model, str(tmp_path / "cat.parquet"), CPU), CPU)
    early = prepare(model, cleaned, __import__("gpuseg.dynamic", fromlist=["as_of_time"]).as_of_time("2019-10-20"))
    listed = early.cleaned.excluded
    later = listed[listed["reason"] == "no_events_before_as_of"]
    assert len(later) + len(early.ids) == ev["user_id"].nunique() and (later["rows"] > 0).all()


@pytest.mark.parametrize("window", [["--window", "30x"], ["--windows", "2019-10-01"], ["--window", "30d", "--windows",
                                                                                        "2019-10-01..2019-10-02"]])
def test_migrate_checks_its_windows_before_reading_the_data(kmeans_run, tmp_path, capsys, monkeypatch, window):
    from gpuseg import cli

    monkeypatch.setattr(cli, "_load_for", lambda *a, **k: pytest.fail("the data were read first"))
    rc = main(["migrate", "--model", str(kmeans_run / "model"), "--input", str(tmp_path / "none.parquet"),
               "--out", str(tmp_path / "mig"), "-q", *window])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("gpuseg: error: ") and "--window" in err and err.count("\n") == 1


def test_update_refuses_its_out_before_reading_the_data(kmeans_run, tmp_path, capsys):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")  # reading it would fail with another message
    taken = tmp_path / "v2"
    taken.mkdir()
    rc = main(["update", "--model", str(kmeans_run / "model"), "--input", str(broken), "--out", str(taken), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "exists; an updated model goes to a new folder" in err and err.count("\n") == 1


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc (a folder no one can write in)")
def test_assign_refuses_an_out_folder_it_cannot_write_in_before_the_work(kmeans_run, events, capsys):
    rc = main(["assign", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
               "--out", "/proc/segments.parquet", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write in folder /proc" in err and err.count("\n") == 1


@pytest.mark.parametrize("error", [(28, "No space left on device"), ("pyarrow: disk quota exceeded",)])
def test_a_failed_assign_write_names_the_users_file_not_the_temporary_one(kmeans_run, events, tmp_path, capsys,
                                                                         monkeypatch, error):
    import gpuseg.dynamic as dynamic

    def full_disk(frame, path):
        path.write_bytes(b"partial")
        raise OSError(*error, str(path)) if len(error) == 2 else OSError(*error)

    monkeypatch.setattr(dynamic, "write_table", full_disk)
    out = tmp_path / "seg.parquet"
    rc = main(["assign", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
               "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and str(out) in err and ".gpuseg-tmp" not in err
    assert ("no space" if len(error) == 2 else "disk quota exceeded") in err.lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written left behind


def test_new_data_whose_times_arrow_types_are_read_though_the_training_times_were_text(events_csv, tmp_path):
    # trained on REES46 text times ("... UTC": a detected format, not the user's setting);
    # new ISO times that Arrow types itself are read, not refused for lacking " UTC"
    model_dir = _run(tmp_path / "run", str(events_csv), "kmeans", k="3")
    model = load_model(model_dir / "model")
    assert model.data["timestamp_format"] == "%Y-%m-%d %H:%M:%S UTC"
    assert not model.config.get("clean", {}).get("timestamp_format")
    lines = events_csv.read_text().splitlines()
    new = tmp_path / "new.csv"
    new.write_text("\n".join([lines[0], *(line.replace(" UTC,", ",", 1) for line in lines[1:200])]) + "\n")
    loaded = load_input(model, str(new), CPU)
    first = pd.Timestamp(lines[1].split(",")[0].replace(" UTC", ""))
    assert loaded.frame["event_time"].iloc[0] == first


def test_migrate_and_update_list_the_customers_cleaning_excluded(events, kmeans_run, tmp_path, capsys):
    """Both said "2 excluded (excluded.csv says why)" and wrote no such list."""
    ev = pd.read_parquet(events / "train.parquet")
    bad = ev.head(2).copy()
    bad["user_id"] = [111111111, 222222222]
    bad["event_type"] = ["view", "explode"]
    bad.loc[bad.index[0], "price"] = -5.0
    data = tmp_path / "bad.parquet"
    pd.concat([ev, bad], ignore_index=True).to_parquet(data)
    mig, upd = tmp_path / "mig", tmp_path / "upd"
    assert main(["migrate", "--model", str(kmeans_run / "model"), "--input", str(data), "--window", "20d",
                 "--out", str(mig)]) == 0
    err = capsys.readouterr().err
    assert f"({mig / 'excluded.csv'} says why)" in err
    listed = pd.read_csv(mig / "excluded.csv")
    assert sorted(listed["customer_id"]) == [111111111, 222222222]
    assert json.loads((mig / "migration.json").read_text())["customers_excluded"] == 2
    assert main(["update", "--model", str(kmeans_run / "model"), "--input", str(data), "--out", str(upd)]) == 0
    assert f"({tmp_path / 'upd.excluded.csv'} says why)" in capsys.readouterr().err
    assert sorted(pd.read_csv(tmp_path / "upd.excluded.csv")["customer_id"]) == [111111111, 222222222]


def test_assign_says_when_as_of_lies_after_the_data(events, kmeans_run, tmp_path, capsys):
    """An --as-of long after the input's last event is taken (scoring "as of today"), but
    the run says how many days of recency it adds to every customer."""
    from gpuseg.cli import _as_of_ahead
    from gpuseg.dynamic import as_of_time

    last = int(pd.read_parquet(events / "new.parquet")["event_time"].max().timestamp())
    day = pd.Timestamp(last, unit="s").strftime("%Y-%m-%d")
    assert _as_of_ahead(None, last) == "" and _as_of_ahead(as_of_time(day), last) == ""
    out = tmp_path / "late.parquet"
    rc = main(["assign", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
               "--out", str(out), "--as-of", "2091-01-01", "-q"])
    assert rc == 0 and len(pd.read_parquet(out)) == 1500
    said = capsys.readouterr().out
    assert "--as-of is" in said and "days after the input's last event" in said
    assert said.count("--as-of is") == 1
    days = float(said.split("--as-of is ")[1].split(" days")[0].replace(",", ""))
    assert days == pytest.approx((as_of_time("2091-01-01") - last) / 86_400, abs=0.05)


def test_update_makes_its_out_folders_and_says_how_to_go_on(events, kmeans_run, tmp_path, capsys):
    """--out in folders that do not exist yet is made (as run's is); updating the same model
    again says that it was updated before and how to go on from there."""
    nested = tmp_path / "a" / "b" / "v2"
    assert main(["update", "--model", str(kmeans_run / "model"), "--input", str(events / "new.parquet"),
                 "--out", str(nested), "-q"]) == 0
    assert load_model(nested).manifest["model_version"] == 2
    run_dir = _run(tmp_path / "run", str(events / "train.parquet"), "kmeans")
    assert main(["update", "--model", str(run_dir / "model"), "--input", str(events / "new.parquet"), "-q"]) == 0
    capsys.readouterr()
    rc = main(["update", "--model", str(run_dir / "model"), "--input", str(events / "new.parquet"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "this model was updated before" in err and f"update {run_dir / 'model-v2'}" in err


def test_far_centre_movement_is_said():
    from gpuseg.cli import _moved_far

    rows = [{"segment_name": "Lapsed", "label": 0, "relative": 0.62}, {"segment_name": "Champions", "label": 1,
                                                                        "relative": 0.2},
            {"segment_name": None, "label": 2, "relative": None}]
    said = _moved_far(rows)
    assert said.startswith("1 segment(s) moved at least 50% of the way to the nearest other one: Lapsed (62%)")
    assert _moved_far(rows[1:]) == ""


def test_a_run_that_replaces_an_updated_model_names_its_versions(events, tmp_path):
    """run -> update (model-v2 beside model/) -> run again into the folder: the new model/
    no longer matches model-v2/, which stays (the user's to keep) and is named."""
    from gpuseg.pipeline import Progress

    out = _run(tmp_path / "run", str(events / "train.parquet"), "kmeans")
    assert main(["update", "--model", str(out / "model"), "--input", str(events / "new.parquet"), "-q"]) == 0
    notes = []

    class Notes(Progress):
        def note(self, text):
            notes.append(text)

    run(build_config(input=str(events / "train.parquet"), out=str(out), methods="kmeans", k="3", stability=0,
                     report=False, device="cpu"), Notes())
    said = [n for n in notes if n.startswith("model-v2 in ")]
    assert len(said) == 1 and "came from the model this run replaced" in said[0]
    assert (out / "model-v2" / "model.json").is_file()


def test_an_as_of_at_the_datas_last_day_gives_the_runs_lifetime_value(events, kmeans_run):
    """A day-end --as-of is the next midnight, an exclusive bound: the customers' age for
    lifetime value counted one day more than a run on the same data, and predicted_clv came
    out 1-4% lower. It now counts to the last moment before the bound."""
    from gpuseg.dynamic import as_of_time

    model = load_model(kmeans_run / "model")
    cleaned = clean_like_model(model, load_input(model, str(events / "train.parquet"), CPU), CPU)
    plain = assign_frame(model, prepare(model, cleaned))
    last_day = pd.Timestamp(int(cleaned.reference_time), unit="s").strftime("%Y-%m-%d")
    as_of = assign_frame(model, prepare(model, cleaned, as_of_time(last_day)))
    assert plain["expected_purchases"].notna().sum() > 100
    np.testing.assert_allclose(as_of["expected_purchases"].to_numpy(float), plain["expected_purchases"].to_numpy(float),
                               rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(as_of["predicted_clv"].to_numpy(float), plain["predicted_clv"].to_numpy(float),
                               rtol=1e-9, equal_nan=True)


def test_migration_names_absence_not_lapsed_or_new(planted):
    """migrate called customers absent from the next window "lapsed" (and those absent from
    the earlier one "new"), beside segments named Lapsed and New customers: migration.html
    read "Lapsed -> lapsed 200". migration.csv now says what -1 is, in the report's words."""
    from gpuseg.report.migration import GONE_NAME, NEW_NAME

    d, out, _ = planted
    model = load_model(out / "model")
    cleaned = clean_like_model(model, load_input(model, str(d / "october.parquet"), CPU), CPU)
    t = migrate(model, cleaned, parse_windows(None, "2019-10-01..2019-10-15,2019-10-16..2019-10-30", 0, 0)).transitions
    gone, new = t[t["to_segment"] < 0], t[t["from_segment"] < 0]
    assert len(gone) and len(new)  # some customers are active in one half of October only
    assert set(gone["to_name"]) == {GONE_NAME} == {"not in next window"}
    assert set(new["from_name"]) == {NEW_NAME} == {"new in next window"}
    assert not {"lapsed", "new"} & (set(t["from_name"]) | set(t["to_name"]))


def test_prepare_inclusive_keeps_the_rows_at_the_data_s_last_moment(events, kmeans_run):
    """migrate's last window ends after the data: it is prepared up to and including their
    last moment. The cut still took only the rows before it, so a customer whose only row
    in the window was at the last second disappeared from it."""
    model = load_model(kmeans_run / "model")
    cleaned = clean_like_model(model, load_input(model, str(events / "train.parquet"), CPU), CPU)
    last = int(cleaned.reference_time)
    at_last = set(cleaned.frame.loc[cleaned.frame["ts"] == last, "customer_id"])
    assert at_last
    kept = prepare(model, cleaned, reference_time=last, inclusive=True)
    assert len(kept.cleaned.frame) == len(cleaned.frame) and at_last <= set(kept.ids)
    cut = prepare(model, cleaned, reference_time=last)  # an exclusive bound there leaves them out
    assert len(cut.cleaned.frame) == len(cleaned.frame) - int((cleaned.frame["ts"] == last).sum())


def test_a_model_reads_its_training_times_in_two_layouts_again(tmp_path):
    """Times half ISO 8601 and half another layout: the run read them all, and its model's
    assign reads the same file whole (the model's format alone would drop the other half)."""
    rng = np.random.default_rng(4)
    n = 400
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300 * 86400, n), unit="s")
    text = [w.strftime("%Y-%m-%dT%H:%M:%SZ") if i % 5 < 3 else w.strftime("%d.%m.%Y %H:%M:%S")
            for i, w in enumerate(when)]
    pd.DataFrame({"customer_id": rng.integers(0, 60, n), "timestamp": text,
                  "amount": rng.lognormal(3, 0.5, n).round(2)}).to_csv(tmp_path / "o.csv", index=False)
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(tmp_path / "r"), "--k", "3",
                 "--no-report", "--stability", "0", "--device", "cpu", "-q"]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["data"]["rows_used"] == n
    assert main(["assign", "--model", str(tmp_path / "r" / "model"), "--input", str(tmp_path / "o.csv"),
                 "--out", str(tmp_path / "a.csv"), "-q"]) == 0
    assigned = pd.read_csv(tmp_path / "a.csv")
    segments = pd.read_parquet(tmp_path / "r" / "segments.parquet")
    assert len(assigned) == len(segments) == 60
    assert (assigned.set_index("customer_id")["segment"].reindex(segments["customer_id"]).to_numpy()
            == segments["segment"].to_numpy()).all()
