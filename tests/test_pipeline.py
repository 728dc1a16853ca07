from __future__ import annotations

import ast
import json
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from gpuseg.backend import to_host
from gpuseg.config import build_config
from gpuseg.errors import ConfigError
from gpuseg.io.synthetic import write_events, write_truth
from gpuseg.pipeline import STAGES, Progress, run


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def run_started(self, backend, config, methods):
        self.events.append(("run", backend.name))

    def stage_finished(self, stage, seconds, detail=""):
        self.events.append(("stage", stage))


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rec = Recorder()
    cfg = build_config(out=str(out), synthetic_customers=1500, k="3-6", methods="kmeans,kmeans_random", device="cpu")
    return run(cfg, rec), rec


def test_outputs_and_metrics(synthetic_run):
    result, rec = synthetic_run
    assert [e[1] for e in rec.events if e[0] == "stage"] == list(STAGES)
    names = sorted(p.name for p in result.out_dir.iterdir() if not p.name.startswith(".gpuseg-"))
    assert names == ["comparison.csv", "excluded.csv", "features.parquet", "insights.json", "metrics.json", "model",
                     "plots", "profiles.csv", "report.html", "segments.parquet"]
    assert sorted(p.name for p in (result.out_dir / "plots").iterdir()) == sorted(
        ["pca.png", "sweep.png", "comparison.png", "radar.png", "heatmap.png", "activity.png", "dendrogram.png",
         "confidence.png"])
    m = json.loads((result.out_dir / "metrics.json").read_text())
    assert m["device"]["backend"] == "cpu"
    assert set(m["timings"]) == set(STAGES) | {"total"}
    assert m["data"]["customers"] == 1500
    assert m["data"]["rows_used"] + sum(m["data"]["rows_dropped"].values()) == m["data"]["rows_read"]
    assert set(m["methods"]) == {"kmeans", "kmeans_random"}
    for mm in m["methods"].values():
        assert 3 <= mm["k"] <= 6 and [r["k"] for r in mm["sweep"]] == [3, 4, 5, 6]
        for key in ("silhouette", "davies_bouldin", "calinski_harabasz", "inertia", "fit_seconds", "ari", "nmi"):
            assert np.isfinite(mm[key]), key
    assert m["chosen"]["method"] in m["methods"]
    assert m["evaluation"]["truth"]["customers_matched"] == 1500
    assert "A starting point, not a finding" in m["evaluation"]["k_rule"]


def test_segments_file(synthetic_run):
    result, _ = synthetic_run
    seg = pd.read_parquet(result.out_dir / "segments.parquet")
    assert list(seg.columns) == ["customer_id", "segment", "segment_name", "confidence", "low_confidence",
                                 "r_score", "f_score", "m_score", "rfm_segment", "p_alive", "expected_purchases",
                                 "predicted_clv", "label_kmeans", "label_kmeans_random"]
    # lifetime value for every customer with a purchase, none for those without
    m = json.loads((result.out_dir / "metrics.json").read_text())["lifetime_value"]
    features = pd.read_parquet(result.out_dir / "features.parquet").set_index("customer_id")
    bought = features.loc[seg["customer_id"], "purchases"].to_numpy() > 0
    assert m["status"] == "ok" and m["customers"] == int(bought.sum())
    assert seg.loc[bought, "p_alive"].between(0, 1).all() and (seg.loc[bought, "predicted_clv"] >= 0).all()
    assert seg.loc[~bought, ["p_alive", "expected_purchases", "predicted_clv"]].isna().all().all()
    profiles = pd.read_csv(result.out_dir / "profiles.csv")
    assert profiles["predicted_clv_share"].sum() == pytest.approx(1.0, abs=1e-5)  # shares written to 6 digits
    k = result.chosen["k"]
    assert sorted(seg["segment"].unique()) == list(range(k))
    sizes = seg["segment"].value_counts().sort_index().to_numpy()
    assert (np.diff(sizes) <= 0).all()  # segment 0 is the largest
    # centroid margin: in [0, 1], most customers well inside their segment (planted personas)
    assert seg["confidence"].between(0, 1).all() and seg["confidence"].median() > 0.5
    assert (seg["low_confidence"] == (seg["confidence"] < 0.5)).all()
    # persona names, unique, one per segment, as in insights.json
    insights = json.loads((result.out_dir / "insights.json").read_text())
    names = {e["segment"]: e["name"] for e in insights["segments"]}
    assert (seg["segment_name"] == seg["segment"].map(names)).all()
    assert len(set(names.values())) == len(names) == seg["segment"].nunique()
    assert seg["r_score"].between(1, 5).all() and seg["rfm_segment"].notna().all()
    # every label column is numbered by size like segment; the chosen one is segment
    assert (seg[f"label_{result.chosen['method']}"] == seg["segment"]).all()
    other = next(m for m in ("kmeans", "kmeans_random") if m != result.chosen["method"])
    sizes = seg[f"label_{other}"].value_counts().sort_index().to_numpy()
    assert (np.diff(sizes) <= 0).all()


def test_profiles_and_features_files(synthetic_run):
    result, _ = synthetic_run
    prof = pd.read_csv(result.out_dir / "profiles.csv")
    feats = pd.read_parquet(result.out_dir / "features.parquet")
    seg = pd.read_parquet(result.out_dir / "segments.parquet")
    assert prof["size"].sum() == len(feats) == len(seg)
    assert prof["share"].sum() == pytest.approx(1.0)
    merged = feats.merge(seg[["customer_id", "segment"]], on="customer_id")
    np.testing.assert_allclose(
        merged.groupby("segment")["monetary"].mean().to_numpy(), prof["monetary"].to_numpy(), rtol=1e-5
    )
    assert "top_category" in prof.columns


def test_planted_personas_are_found(synthetic_run):
    result, _ = synthetic_run
    # chance level is ARI ~ 0; 1,500 customers give about 0.3, the default 20,000 about 0.45
    best_ari = max(r["ari"] for r in result.metrics["methods"]["kmeans"]["sweep"])
    assert best_ari > 0.2


def test_rerun_replaces_only_own_files(tmp_path, events_csv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "segments.parquet").write_text("old")
    (out / "metrics.json").write_text('{"gpuseg_version": "0.0.1"}')
    cfg = build_config(report=False, input=str(events_csv), out=str(out), k="3", device="cpu")
    run(cfg)
    assert (out / "notes.txt").read_text() == "mine"
    assert pd.read_parquet(out / "segments.parquet")["segment"].nunique() == 3
    assert not [p for p in out.iterdir() if p.name.startswith(".gpuseg-tmp")]


def test_failed_write_keeps_previous_files(tmp_path, events_csv, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "segments.parquet").write_text("previous run")
    (out / "metrics.json").write_text('{"gpuseg_version": "0.0.1"}')
    import gpuseg.pipeline as pl

    monkeypatch.setattr(pl, "to_json", lambda obj: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        run(build_config(report=False, input=str(events_csv), out=str(out), k="3", device="cpu"))
    assert (out / "segments.parquet").read_text() == "previous run"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".gpuseg-")) == ["metrics.json",
                                                                                     "segments.parquet"]


def test_k_larger_than_customers(tmp_path, make_log):
    rows = [(f"2019-10-01 10:00:0{i} UTC", "view", 1, 10, "a.b", "x", 10.0 + i, i, f"s{i}") for i in range(5)]
    p = tmp_path / "few.csv"
    make_log(rows).to_csv(p, index=False)
    with pytest.raises(ConfigError, match="5 customers"):  # a k range the user gave (the default one shrinks)
        run(build_config(report=False, input=str(p), out=str(tmp_path / "o"), device="cpu", k="2-8"))
    assert not (tmp_path / "o").exists()


def test_output_must_not_overwrite_input(tmp_path, small_events):
    out = tmp_path / "o"
    out.mkdir()
    write_events(small_events[0], out / "features.parquet")
    with pytest.raises(ConfigError, match="overwrite the input"):
        run(build_config(report=False, input=str(out / "features.parquet"), out=str(out), device="cpu"))


def test_truth_file_and_orders_input(tmp_path, small_events):
    events, truth = small_events
    purchases = events[events["event_type"] == "purchase"]
    orders = pd.DataFrame({
        "Customer": purchases["user_id"], "When": purchases["event_time"], "Value": purchases["price"],
        "Basket": purchases["user_session"].astype(str),
    })
    orders.to_csv(tmp_path / "orders.csv", index=False)
    write_truth(truth, tmp_path / "truth.csv")
    cfg = build_config(
        report=False, input=str(tmp_path / "orders.csv"), rename=["Customer=customer_id", "When=timestamp", "Value=amount",
                                                    "Basket=order_id"],
        truth=str(tmp_path / "truth.csv"), out=str(tmp_path / "o"), k="2-4", device="cpu",
    )
    result = run(cfg)
    m = result.metrics
    assert m["data"]["format"] == "orders"
    assert m["data"]["customers"] == orders["Customer"].nunique()
    assert m["evaluation"]["truth"]["customers_matched"] == m["data"]["customers"]
    assert "views" not in m["data"]["features"] and "frequency" in m["data"]["features"]
    assert m["methods"]["adaptive_kmeans"]["ari"] is not None


def test_every_customer_is_segmented_or_excluded_with_a_reason(tmp_path):
    rng = np.random.default_rng(3)
    n = 60
    rows = pd.DataFrame({  # no order id: repeated rows are repeated purchases
        "customer_id": np.repeat(np.arange(n), 3).astype(float),  # float ids, as pandas reads ids with gaps
        "timestamp": pd.Timestamp("1997-01-01") + pd.to_timedelta(rng.integers(0, 300, 3 * n), unit="D"),
        "amount": rng.lognormal(3, 0.5, 3 * n).round(2),
    })
    rows.loc[rows.index[:6], "amount"] = 1e7  # huge orders of customers 0 and 1: capped, kept
    rows.loc[rows["customer_id"] == 5, "amount"] = -1.0  # customer 5 loses every row (refunds)
    rows.loc[rows["customer_id"] == 6, "timestamp"] = pd.NaT  # customer 6 too
    rows = pd.concat([rows, rows.iloc[[10, 10]]], ignore_index=True)  # a purchase repeated the same day
    rows.to_csv(tmp_path / "orders.csv", index=False)
    details = {}

    class Details(Progress):
        def stage_finished(self, stage, seconds, detail=""):
            details[stage] = detail

    result = run(build_config(report=False, input=str(tmp_path / "orders.csv"), out=str(tmp_path / "o"), k="2-3",
                              device="cpu", stability=0), Details())
    segments = pd.read_parquet(result.out_dir / "segments.parquet")
    excluded = pd.read_csv(result.out_dir / "excluded.csv")
    assert segments["customer_id"].dtype.kind == "i" and excluded["customer_id"].tolist() == [5, 6]
    assert excluded["reason"].tolist() == ["returned", "bad_timestamp"] and excluded["rows"].tolist() == [3, 3]
    assert set(segments["customer_id"]) | set(excluded["customer_id"]) == set(range(n))
    data = result.metrics["data"]
    assert data["rows_dropped"]["duplicate"] == 0 and data["rows_dropped"]["price_outlier"] == 0
    assert data["values_capped"]["amount"] == 6 and data["customers_touched"]["capped"] == 2
    assert data["customers_in"] == n and data["customers_excluded"] == 2
    features = pd.read_parquet(result.out_dir / "features.parquet").set_index("customer_id")
    assert features.loc[3, "frequency"] == 5  # its two repeated rows counted as purchases
    assert result.metrics["lifetime_value"]["status"] == "ok"  # 58 purchasers, most of them repeat
    assert segments[["p_alive", "expected_purchases", "predicted_clv"]].notna().all().all()
    assert "58 of 60 customers kept, 2 excluded (excluded.csv says why)" in details["clean"]
    assert "returned 3 rows / 1 customer" in details["clean"]
    assert "6 prices capped at the outlier fence (2 customers; the spend of those purchases 60,000,000 ->" \
        in details["clean"]


def test_same_seed_same_segments(tmp_path, events_csv):
    a = run(build_config(report=False, input=str(events_csv), out=str(tmp_path / "a"), k="4", device="cpu", seed=3))
    b = run(build_config(report=False, input=str(events_csv), out=str(tmp_path / "b"), k="4", device="cpu", seed=3))
    np.testing.assert_array_equal(to_host(a.segments["segment"]), to_host(b.segments["segment"]))


@pytest.fixture(scope="module")
def all_methods_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("all")
    cfg = build_config(
        {"params": {"pso_kmeans": {"n_particles": 8, "max_iter": 20}, "som": {"n_epochs": 10},
                    # the deep methods short: this test is about the comparison, not their training
                    "deep_kmeans": {"pretrain_epochs": 10}, "dec": {"pretrain_epochs": 10, "max_iter": 100},
                    "idec": {"pretrain_epochs": 10, "max_iter": 100}}},
        out=str(out), synthetic_customers=800, k="3-5", methods="all", device="cpu", sensitivity=True, stability=3,
    )
    return run(cfg)


def test_every_available_method_is_compared(all_methods_run):
    from gpuseg.cluster import AVAILABLE

    m = all_methods_run.metrics
    assert list(m["methods"]) == list(AVAILABLE)
    for name, mm in m["methods"].items():
        assert mm["status"] in ("ok", "failed"), name
        if mm["status"] == "ok":
            assert mm["k"] >= 2 and np.isfinite(mm["davies_bouldin"]) and "ari" in mm
        else:
            assert mm["reason"]
    assert m["methods"]["gmm"]["k_rule"] == "bic" and "bic" in m["methods"]["gmm"]["sweep"][0]
    assert m["methods"]["dbscan"]["k_rule"] == "density" and len(m["methods"]["dbscan"]["sweep"]) == 1
    assert m["methods"]["pso_kmeans"]["params"] == {"n_particles": 8, "max_iter": 20}
    seg = pd.read_parquet(all_methods_run.out_dir / "segments.parquet")
    ok = [n for n, mm in m["methods"].items() if mm["status"] == "ok"]
    assert [c for c in seg.columns if c.startswith("label_")] == [f"label_{n}" for n in ok]
    # every method that succeeded has a stability and a place in the ranking
    assert m["methods"]["consensus"]["status"] == "ok"
    for n in ok:
        assert m["methods"][n]["stability"]["resamples"] == 3
    ranked = {r["method"] for r in m["ranking"]}
    assert ranked <= set(ok) and m["chosen"]["method"] in ranked
    table = pd.read_csv(all_methods_run.out_dir / "comparison.csv")
    assert list(table["method"]) == list(AVAILABLE) and table["chosen"].sum() == 1


def test_sensitivity_file(all_methods_run):
    s = pd.read_csv(all_methods_run.out_dir / "sensitivity.csv")
    assert set(s["method"]) >= {"kmeans", "gmm", "ward", "som"}
    km = s[s["method"] == "kmeans"]
    assert km["parameter"].eq("n_clusters").all() and sorted(km["value"].astype(int)) == [3, 4, 5]
    if all_methods_run.metrics["methods"]["dbscan"]["status"] == "ok":
        assert (s["parameter"] == "eps+min_samples").sum() == 18


def test_a_method_that_fails_does_not_stop_the_run(tmp_path, events_csv, capsys):
    from gpuseg.cli import main

    code = main(["run", "--input", str(events_csv), "--out", str(tmp_path / "o"), "--k", "3", "--device", "cpu",
                 "--methods", "kmeans,dbscan", "--config", str(_write(tmp_path / "c.toml",
                 "[params.dbscan]\neps = 0.0001\n"))])
    out = capsys.readouterr()
    assert code == 0
    assert "dbscan: found 0 segments" in out.out and "Chosen by the ranking: kmeans" in out.out
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["methods"]["dbscan"]["status"] == "failed"


def _write(path, text):
    path.write_text(text)
    return path


def test_deep_methods_and_training_progress(tmp_path):
    pytest.importorskip("torch")
    seen = []

    class Epochs(Progress):
        def stage_progress(self, stage, done, total, detail=""):
            if "epoch" in detail:
                seen.append((stage, detail.split()[0]))

    cfg = build_config(
        {"params": {m: {"pretrain_epochs": 3} for m in ("deep_kmeans", "dec", "idec")}
         | {"dec": {"pretrain_epochs": 3, "max_iter": 60}, "idec": {"pretrain_epochs": 3, "max_iter": 60}}},
        out=str(tmp_path / "o"), synthetic_customers=600, k="3-4", methods="kmeans,deep_kmeans,dec,idec",
        device="cpu", report=False,
    )
    m = run(cfg, Epochs()).metrics
    for name in ("deep_kmeans", "dec", "idec"):
        mm = m["methods"][name]
        assert mm["status"] == "ok", mm.get("reason")
        assert mm["epochs"] == 3 and np.isfinite(mm["reconstruction_loss"]) and "ari" in mm
    assert ("cluster", "pretrain") in seen and ("cluster", "cluster") in seen


@pytest.mark.parametrize("embed", ["pca", "autoencoder"])
def test_clustering_an_embedding(tmp_path, embed):
    if embed == "autoencoder":
        pytest.importorskip("torch")
    cfg = build_config(
        {"embed": {"method": embed, "n_components": 4, "params": {"max_epochs": 3} if embed == "autoencoder" else {}}},
        out=str(tmp_path / "o"), synthetic_customers=600, k="3-4", device="cpu", report=False,
        methods="kmeans,gmm" if embed == "pca" else "kmeans",
    )
    m = run(cfg).metrics
    assert m["embedding"]["method"] == embed and m["embedding"]["n_components"] == 4
    assert "embed" in m["timings"]
    assert m["methods"]["kmeans"]["status"] == "ok"
    if embed == "pca":  # the mixture's BIC is of the 4-d embedding it was fitted on (it crashed on the 34 features)
        assert m["methods"]["gmm"]["status"] == "ok"
        assert all(np.isfinite(r["bic"]) for r in m["methods"]["gmm"]["sweep"] if r["status"] == "ok")
    # scores are computed on the scaled features, not on the 4-d embedding
    seg = pd.read_parquet(tmp_path / "o" / "segments.parquet")
    assert seg["segment"].nunique() == m["chosen"]["k"]
    # the model keeps the projection / the autoencoder: predicting the training customers gives their segments
    from gpuseg.model import load_model

    model = load_model(tmp_path / "o" / "model")
    feats = pd.read_parquet(tmp_path / "o" / "features.parquet").set_index("customer_id")
    assert model.embedding["method"] == embed and m["model"] == {**m["model"], "saved": True, "embedding": embed}
    assert (tmp_path / "o" / "model" / "embedder.pt").exists() == (embed == "autoencoder")
    pred = np.asarray(model.predict(model.scaler.transform(feats[model.feature_names].to_numpy(np.float64))))
    assert (pred == seg.set_index("customer_id").loc[feats.index, "segment"].to_numpy()).mean() > 0.99


def test_stability_in_metrics_and_skipped_with_zero(tmp_path, synthetic_run):
    result, _ = synthetic_run
    m = result.metrics
    for mm in m["methods"].values():
        s = mm["stability"]
        assert 0 <= s["mean"] <= 1 and s["resamples"] == 10 and s["pairs"] == 45 and s["failed_refits"] == 0
    assert m["evaluation"]["stability"]["scheme"] == "half"
    assert {r["method"] for r in m["ranking"]} == set(m["methods"]) and "rank_stability" in m["ranking"][0]
    assert m["chosen"]["method"] == m["ranking"][0]["method"] and m["chosen"]["by"] == "ranking"
    assert 0 <= m["chosen"]["confidence_summary"]["low_share"] <= 1
    rec = Recorder()
    cfg = build_config(report=False, out=str(tmp_path / "o"), synthetic_customers=600, k="3", methods="kmeans,minibatch_kmeans",
                       device="cpu", stability=0)
    m0 = run(cfg, rec).metrics
    assert "stability" not in [e[1] for e in rec.events if e[0] == "stage"]
    assert "stability" not in m0["methods"]["kmeans"] and "rank_stability" not in m0["ranking"][0]


def test_report_lifecycle_and_a_users_file_in_plots(tmp_path, events_csv, capsys):
    """--no-report leaves no stale report; plots/ holding a file gpuseg did not write is
    refused (run and report), and the file stays."""
    from gpuseg.cli import main

    out = tmp_path / "o"
    base = ["--input", str(events_csv), "--out", str(out), "--device", "cpu", "--methods", "kmeans",
            "--stability", "0", "-q"]
    assert main(["run", *base, "--k", "3"]) == 0
    assert (out / "report.html").is_file() and (out / "plots" / "pca.png").is_file()
    assert main(["run", *base, "--k", "4", "--no-report"]) == 0
    assert not (out / "report.html").exists() and not (out / "plots").exists()
    assert main(["report", str(out)]) == 0
    (out / "plots" / "my_chart.txt").write_text("mine")
    capsys.readouterr()
    assert main(["run", *base, "--k", "3"]) == 2
    assert "my_chart.txt, which gpuseg did not write" in capsys.readouterr().err
    assert main(["report", str(out)]) == 2
    assert (out / "plots" / "my_chart.txt").read_text() == "mine"


def test_runs_without_the_rfm_group_and_with_segment_settings(tmp_path):
    cfg = build_config(
        {"features": {"groups": ["funnel", "sessions", "time"]}},
        out=str(tmp_path / "a"), synthetic_customers=500, k="3", methods="kmeans", device="cpu", stability=0,
        report=False,
    )
    m = run(cfg)
    insights = json.loads((m.out_dir / "insights.json").read_text())
    assert insights["rfm"] is None and all(e["revenue_share"] is None for e in insights["segments"])
    assert "r_score" not in pd.read_parquet(m.out_dir / "segments.parquet").columns
    cfg = build_config(
        {"segments": {"rfm_bins": 3, "tree_depth": 2, "top_items": 3,
                      "rfm_cuts": {"recency_days": [7, 30]}}},
        out=str(tmp_path / "b"), synthetic_customers=500, k="3", methods="kmeans", device="cpu", stability=0,
        report=False,
    )
    r = run(cfg)
    seg = pd.read_parquet(r.out_dir / "segments.parquet")
    feats = pd.read_parquet(r.out_dir / "features.parquet")
    rec = feats["recency_days"].to_numpy()
    expected_r = np.where(rec <= 7, 3, np.where(rec <= 30, 2, 1))  # recent scores high
    assert (seg["r_score"].to_numpy() == expected_r).all() and seg["f_score"].between(1, 3).all()
    insights = json.loads((r.out_dir / "insights.json").read_text())
    assert insights["rfm"]["bins"] == 3 and insights["explanation"]["max_depth"] == 2
    for e in insights["segments"]:
        assert len(e["recommendations"]["top_items"]) <= 3
        assert 0 <= e["low_confidence"]["share"] <= 1 and e["low_confidence"]["threshold"] == 0.5
    assert sum(e["low_confidence"]["count"] for e in insights["segments"]) == int(seg["low_confidence"].sum())


def _predict_saved(out):
    """The saved model's segments for the run's own customers, and segments.parquet."""
    from gpuseg.model import load_model

    model = load_model(out / "model")
    feats = pd.read_parquet(out / "features.parquet")
    seg = pd.read_parquet(out / "segments.parquet")
    assert list(feats["customer_id"]) == list(seg["customer_id"])
    raw = feats[model.feature_names].to_numpy(dtype=np.float64)
    return model, model.predict(model.scaler.transform(raw)), seg


@pytest.mark.parametrize(
    "methods, params",
    [("kmeans", {}), ("kmeans,minibatch_kmeans,consensus", {"consensus": {"members": ["kmeans", "minibatch_kmeans"]}})],
    ids=["kmeans", "consensus"],
)
def test_saved_model_predicts_the_segments(tmp_path, methods, params):
    chosen = methods.split(",")[-1]
    cfg = build_config({"params": params}, out=str(tmp_path), synthetic_customers=600, k="3-4", methods=methods,
                       device="cpu", stability=0, report=False, select=chosen)
    result = run(cfg)
    assert result.metrics["model"] == {"saved": True, "folder": "model", "method": chosen}
    model, predicted, seg = _predict_saved(tmp_path)
    assert model.method == chosen and model.k == seg["segment"].nunique()
    np.testing.assert_array_equal(predicted, seg["segment"].to_numpy())
    names = dict(zip(seg["segment"], seg["segment_name"]))
    assert model.segment_names == [names[i] for i in range(model.k)]
    if chosen == "consensus":
        np.testing.assert_allclose(model.predict_confidence(model.scaler.transform(
            pd.read_parquet(tmp_path / "features.parquet")[model.feature_names].to_numpy(dtype=np.float64))),
            seg["confidence"].to_numpy(), atol=1e-6)


def test_no_model_for_a_density_method(tmp_path):
    cfg = build_config(out=str(tmp_path), synthetic_customers=600, k="3-4", methods="kmeans", device="cpu",
                       stability=0, report=False)
    run(cfg)
    assert (tmp_path / "model" / "model.json").is_file()
    cfg = build_config(out=str(tmp_path), synthetic_customers=600, k="3-4", methods="kmeans,hdbscan", device="cpu",
                       stability=0, report=False, select="hdbscan")
    notes = []

    class Notes(Progress):
        def note(self, text):
            notes.append(text)

    result = run(cfg, Notes())
    assert result.metrics["model"]["saved"] is False and "hdbscan" in result.metrics["model"]["reason"]
    assert any(n.startswith("model/ not written") for n in notes)
    assert not (tmp_path / "model").exists()  # the earlier run's model predicted other segments


def test_a_users_file_in_model_is_refused(tmp_path):
    cfg = build_config(out=str(tmp_path), synthetic_customers=600, k="3-4", methods="kmeans", device="cpu",
                       stability=0, report=False)
    run(cfg)
    (tmp_path / "model" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        run(cfg)


def test_feature_weights_are_reported_and_can_be_switched_off(tmp_path):
    m = run(build_config(out=str(tmp_path / "w"), synthetic_customers=800, k="3-5", device="cpu", stability=0,
                         report=False)).metrics
    rep = m["representation"]
    assert rep["weighting"] and len(rep["features"]) == len(m["data"]["features"])
    weights = {r["feature"]: r["weight"] for r in rep["features"]}
    assert weights == {f: pytest.approx(m["scaling"][f]["weight"], abs=1e-4) for f in m["data"]["features"]}
    # spend and order count measure one behaviour: they share a weight
    assert "monetary" in next(r for r in rep["features"] if r["feature"] == "frequency")["redundancy_group"]
    assert m["chosen"]["confidence_calibration"] == {"calibrated": False,
                                                     "reason": "no stability refits (--stability 0)"}
    off = run(build_config({"features": {"weighting": False, "describe_only": ["time"]}}, out=str(tmp_path / "o"),
                           synthetic_customers=800, k="3-5", device="cpu", stability=0, report=False)).metrics
    rows = {r["feature"]: r for r in off["representation"]["features"]}
    assert rows["share_night"]["weight"] == 0 and "describe-only" in rows["share_night"]["reason"]
    assert rows["monetary"]["weight"] == 1.0 and rows["frequency"]["weight"] == 1.0


def test_describe_only_names_must_exist_and_leave_something(tmp_path):
    with pytest.raises(ConfigError, match="describe_only: 'hour' is neither a feature nor a feature group"):
        run(build_config({"features": {"describe_only": ["hour"]}}, out=str(tmp_path / "a"), synthetic_customers=300,
                         k="3", device="cpu", stability=0, report=False))
    everything = ["rfm", "funnel", "sessions", "time", "category", "price"]
    with pytest.raises(ConfigError, match="no feature is left to define the segments"):
        run(build_config({"features": {"describe_only": everything}}, out=str(tmp_path / "b"),
                         synthetic_customers=300, k="3", device="cpu", stability=0, report=False))


def test_thread_limit_sets_every_pool_once():
    from threadpoolctl import threadpool_info

    from gpuseg import backend
    from gpuseg.pipeline import thread_limit, usable_cores

    def pools():  # every library (NumPy's and SciPy's OpenBLAS apart), not one per API
        return [(p["user_api"], p["num_threads"]) for p in threadpool_info()]

    import pyarrow

    outside = pyarrow.cpu_count()
    for threads in (0, 1, 3):
        with thread_limit(threads) as n:
            assert n == (threads or usable_cores()) == backend.RUN_THREADS == pyarrow.cpu_count()
            got = pools()
            assert {api for api, _ in got} >= {"blas", "openmp"}, got  # both loaded, so both limited
            assert all(t == 1 for api, t in got if api == "blas"), got  # BLAS on 1 whatever the count
            assert all(t == n for api, t in got if api == "openmp"), got
        assert pyarrow.cpu_count() == outside  # Arrow's pool given back as it was


def test_thread_limit_reaches_pools_that_load_after_it():
    """In a fresh interpreter, where scikit-learn's OpenMP runtime and SciPy's OpenBLAS are not
    loaded yet when the limit is set (as in every ``gpuseg run``): every pool is limited."""
    import subprocess
    import sys

    code = (
        "from gpuseg.pipeline import thread_limit\n"
        "from threadpoolctl import threadpool_info\n"
        "with thread_limit(1):\n"
        "    import sklearn.cluster, scipy.linalg\n"
        "    print(sorted({(p['user_api'], p['num_threads']) for p in threadpool_info()}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "", "OPENBLAS_NUM_THREADS": ""}
    env = {k: v for k, v in env.items() if v}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    pools = ast.literal_eval(out)  # a printed list of (api, threads) pairs
    assert ("openmp", 1) in pools and ("blas", 1) in pools
    assert all(n == 1 for _, n in pools), pools


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_gpuseg_makes_openmp_threads_wait_passively_unless_the_user_chose(given, expected):
    """In a fresh interpreter (an OpenMP runtime reads the setting once, when it loads)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", "import os, gpuseg; print(os.environ['OMP_WAIT_POLICY'])"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == expected, out.stderr


def test_a_run_allocates_arrow_memory_from_jemalloc_and_gives_the_pool_back(monkeypatch):
    import pyarrow as pa

    from gpuseg.pipeline import arrow_pool

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool().backend_name
    try:
        expected = pa.jemalloc_memory_pool().backend_name
    except NotImplementedError:
        expected = before
    with arrow_pool() as name:
        assert name == expected == pa.default_memory_pool().backend_name
        assert pa.array(["a", "b"]).buffers()[1] is not None  # allocations work in it
    assert pa.default_memory_pool().backend_name == before
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")  # the user's choice stands
    with arrow_pool() as name:
        assert name == before == pa.default_memory_pool().backend_name


def test_all_without_torch_leaves_the_deep_methods_out_and_says_so(tmp_path, monkeypatch):
    """--methods all on an install without PyTorch runs every other method (the README:
    without it everything else works) and names what it left out, instead of stopping."""
    import gpuseg.pipeline as P
    from gpuseg.cluster import AVAILABLE, DEEP_METHODS

    monkeypatch.setattr(P, "_torch_available", lambda: False)
    notes = []

    class Notes(Progress):
        def note(self, text):
            notes.append(text)

    cfg = build_config({"params": {"pso_kmeans": {"n_particles": 4, "max_iter": 5}, "som": {"n_epochs": 2}}},
                       out=str(tmp_path), synthetic_customers=300, k="3", methods="all", device="cpu", stability=0,
                       report=False)
    result = run(cfg, Notes())
    assert list(result.metrics["methods"]) == [m for m in AVAILABLE if m not in DEEP_METHODS]
    said = [n for n in notes if n.startswith("--methods all:")]
    assert len(said) == 1 and all(m in said[0] for m in DEEP_METHODS) and "PyTorch" in said[0]
    # a deep method named beside all stays (and says what to install when it runs): not "left out"
    from gpuseg.cluster import resolve_methods

    kept = resolve_methods(["all", "dec"], deep_available=False)
    assert kept[-1] == "dec" and [m for m in DEEP_METHODS if m not in kept] == ["deep_kmeans", "idec"]


def test_a_consensus_asked_for_alone_says_when_a_member_is_chosen_instead(tmp_path):
    """`--methods consensus` runs its members as methods of their own, and the method rule may
    prefer one of them: the run says so and how to keep the consensus."""
    from gpuseg.pipeline import Progress

    class Notes(Progress):
        def __init__(self):
            self.notes = []

        def note(self, text):
            self.notes.append(text)

    # adaptive K-means comes first in the preference order, and wins here
    cfg = build_config({"params": {"consensus": {"members": ["adaptive_kmeans", "kmeans"]}}}, out=str(tmp_path),
                       synthetic_customers=600, k="3-4", methods="consensus", device="cpu", stability=0, report=False)
    progress = Notes()
    result = run(cfg, progress=progress)
    said = [n for n in progress.notes if "--select consensus" in n]
    assert result.metrics["chosen"]["method"] == "adaptive_kmeans"
    assert len(said) == 1 and said[0].startswith("adaptive_kmeans, a member of the consensus")
    # with the consensus asked for among the members, or chosen with --select, nothing to say
    progress = Notes()
    run(replace(cfg, select="consensus", out=str(tmp_path / "s")), progress=progress)
    assert not [n for n in progress.notes if "--select consensus" in n]


def test_revenue_shares_count_what_was_spent_where_the_fence_capped(tmp_path):
    """Wholesale orders capped at the price fence stay what they were in the revenue shares
    (the features' monetary is capped; the shares and lifetime value are not)."""
    rng = np.random.default_rng(1)
    n = 600
    customer = np.arange(n) % 150
    amount = np.round(rng.lognormal(4.0, 0.4, n), 2)
    wholesale = customer < 3
    amount[wholesale] = 55_000.0
    days = rng.integers(0, 300, n)
    log = pd.DataFrame({"customer_id": customer, "amount": amount, "currency": "EUR",
                        "timestamp": (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")).astype(str)})
    log.to_csv(tmp_path / "o.csv", index=False)
    result = run(build_config(report=False, input=str(tmp_path / "o.csv"), out=str(tmp_path / "out"), k="3",
                              device="cpu", stability=0))
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet").set_index("customer_id")["segment"]
    spend = log.groupby("customer_id")["amount"].sum()
    truth = spend.groupby(seg.reindex(spend.index)).sum() / spend.sum()
    insights = json.loads((tmp_path / "out" / "insights.json").read_text())
    shares = {s["segment"]: s["revenue_share"] for s in insights["segments"]}
    assert shares == pytest.approx(truth.to_dict(), abs=1e-9)
    assert result.metrics["data"]["spend_capped"]["before"] == pytest.approx(amount[wholesale].sum())
    assert result.metrics["data"]["currency"] == "EUR"


def test_the_load_line_names_the_subfolders_a_folder_input_read():
    from gpuseg.pipeline import _files_label

    assert _files_label(["/d/a.csv", "/d/backup/b.csv"], "/d") == "2 files (in backup/ too)"
    assert _files_label(["/d/a.csv", "/d/b.csv"], "/d") == "2 files"
    assert _files_label(["/d/a.csv"], "/d") == "/d/a.csv"


def test_truth_ids_that_are_e_mails_match_the_data_read_in_lower_case():
    from gpuseg.pipeline import _truth_keys_like

    truth = pd.Series(["a", "b", "c"], index=["Ann@Shop.com", "bob@x.org", "Plain"])
    got = _truth_keys_like(truth, pd.Index(["ann@shop.com", "bob@x.org", "Plain"]))
    assert got.reindex(["ann@shop.com", "bob@x.org", "Plain"]).tolist() == ["a", "b", "c"]
