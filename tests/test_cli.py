from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from gpuseg import backend
from gpuseg.cli import main

REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"


@pytest.fixture
def out_dir(tmp_path):
    """An output folder holding a user's file that no failure may touch."""
    d = tmp_path / "out"
    d.mkdir()
    (d / "keep.txt").write_text("user data")
    (d / "segments.parquet").write_text("previous run")
    (d / "metrics.json").write_text('{"gpuseg_version": "0.1.0"}')
    return d


def assert_untouched(d):
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".gpuseg-")) == ["keep.txt", "metrics.json",
                                                                                  "segments.parquet"]
    assert (d / "segments.parquet").read_text() == "previous run"


def bad_cases(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "cols.csv").write_text("a,b\n1,2\n")
    (tmp_path / "type.csv").write_text(REES_HEADER + "2019-10-01 00:00:00 UTC,view,1,2,a.b,x,cheap,5,s\n" * 3)
    (tmp_path / "good.csv").write_text(REES_HEADER + "".join(
        f"2019-10-01 00:00:0{i} UTC,view,1,2,a.b,x,{i + 1},{i},s{i}\n" for i in range(6)))
    return {
        "missing-file": (["--input", str(tmp_path / "nope.csv")], "nope.csv: no such file"),
        "empty-file": (["--input", str(tmp_path / "empty.csv")], "empty.csv: file is empty"),
        "no-columns": (["--input", str(tmp_path / "cols.csv")], "none of the expected columns"),
        "wrong-type": (["--input", str(tmp_path / "type.csv")], "column 'price' should hold numbers"),
        "k-range": (["--input", str(tmp_path / "good.csv"), "--k", "1-4"], "--k 1-4: k must be at least 2"),
        "k-above-customers": (["--input", str(tmp_path / "good.csv"), "--k", "2-10"], "the data has 6 customers"),
        "method": (["--methods", "kmeans,astrology"], "unknown method 'astrology'"),
        "format": (["--input", str(tmp_path / "good.csv"), "--format", "orders"], "lacks column(s) timestamp "),
        "config": (["--config", str(tmp_path / "none.toml")], "no such file"),
        "param-value": (["--input", str(tmp_path / "good.csv"), "--methods", "gmm", "--config",
                         str(_write(tmp_path / "p.toml", "[params.gmm]\ncovariance_type = 'spherical'\n"))],
                        "config [params.gmm] covariance_type"),
        "currencies": (["--input", str(_write(tmp_path / "cur.csv", "customer_id,timestamp,amount,currency\n" + "".join(
            f"{i},2024-01-0{i + 1},{i + 5},{'EUR' if i % 2 else 'USD'}\n" for i in range(6))))],
                       "the amounts are in 2 currencies (EUR 3 rows, USD 3 rows): gpuseg adds amounts up as one "
                       "currency; keep one with --currency EUR"),
        "currency-absent": (["--input", str(tmp_path / "cur.csv"), "--currency", "GBP"],
                            "currency GBP: the currency column has no row in it"),
        "currency-symbols": (["--input", str(_write(tmp_path / "sym.csv", "customer_id,timestamp,amount\n" + "".join(
            f"{i},2024-01-0{i + 1},{'€' if i % 2 else '$'}{i + 5}.50\n" for i in range(6))))],
                             "column 'amount' holds amounts in 2 currencies (EUR, USD)"),
    }


def _write(path, text):
    path.write_text(text)
    return path


CASES = ["missing-file", "empty-file", "no-columns", "wrong-type", "k-range", "k-above-customers", "method",
         "format", "config", "param-value", "currencies", "currency-absent", "currency-symbols"]


def test_the_default_k_range_fits_a_log_of_few_customers(tmp_path, out_dir, capsys):
    """Without --k, 6 customers were refused with "--k 2-12: the data has 6 customers"."""
    bad_cases(tmp_path)
    code = main(["run", "--device", "cpu", "--no-report", "--stability", "0", "--methods", "kmeans", "--out",
                 str(out_dir), "--input", str(tmp_path / "good.csv")])
    err = capsys.readouterr().err
    assert code == 0 and "k over 2..5, not the default 2..12: the data has 6 customers" in err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert [r["k"] for r in metrics["methods"]["kmeans"]["sweep"]] == [2, 3, 4, 5]


@pytest.mark.parametrize("case", CASES)
def test_user_errors_are_one_line_exit_2(tmp_path, out_dir, capsys, case):
    args, expected = bad_cases(tmp_path)[case]
    code = main(["run", "--device", "cpu", "-q", "--no-report", "--out", str(out_dir), *args])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gpuseg: error: "), err
    assert expected in lines[0]
    assert "Traceback" not in err
    assert_untouched(out_dir)


def test_gpu_requested_on_cpu_machine(tmp_path, out_dir, capsys, monkeypatch):
    monkeypatch.setattr(backend, "probe_gpu", lambda: backend.GpuProbe(False, "no CUDA device found"))
    code = main(["run", "--device", "gpu", "--out", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "gpuseg: error: --device gpu was requested but no CUDA device found"
    assert_untouched(out_dir)


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", "--out", str(f)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert f.read_text() == "x"


@pytest.mark.parametrize("args", [["run", "--device", "tpu"], ["run", "--seed", "x"], ["bogus"]],
                         ids=["device", "seed", "command"])
def test_argument_errors_are_one_line(capsys, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0]


def test_run_prints_where_scores_choice_and_folder(tmp_path, events_csv, capsys):
    out = tmp_path / "o"
    code = main(["run", "--input", str(events_csv), "--out", str(out), "--k", "3-5", "--device", "cpu",
                 "--methods", "kmeans", "--truth", str(events_csv.parent / "truth.csv")])
    cap = capsys.readouterr()
    assert code == 0
    assert "running on CPU" in cap.err
    for stage in ("load", "clean", "features", "scale", "cluster", "evaluate", "stability", "segments", "write"):
        assert f"  {stage} " in cap.err
    assert "Scores by k for kmeans" in cap.out and "ari" in cap.out
    assert "Chosen: kmeans with k=" in cap.out and "low_confidence" in cap.out
    assert f"Output: {out}/" in cap.out
    m = json.loads((out / "metrics.json").read_text())
    assert m["chosen"]["k"] in (3, 4, 5)


def test_default_run_is_adaptive_kmeans_and_a_comparison_states_its_rule(tmp_path, events_csv, capsys):
    out = tmp_path / "o"
    code = main(["run", "--input", str(events_csv), "--out", str(out), "--k", "3-4", "--device", "cpu", "--no-report",
                 "--stability", "3", "--truth", str(events_csv.parent / "truth.csv")])
    capsys.readouterr()
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["methods"]) == ["adaptive_kmeans"] and m["chosen"]["method"] == "adaptive_kmeans"
    assert m["representation"]["features"] and m["device"]["cpu_threads"] >= 1
    code = main(["run", "--input", str(events_csv), "--out", str(out), "--k", "3-4", "--device", "cpu", "--no-report",
                 "--stability", "3", "--methods", "consensus,adaptive_kmeans",
                 "--truth", str(events_csv.parent / "truth.csv")])
    cap = capsys.readouterr()
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["methods"]) == ["adaptive_kmeans", "kmeans", "minibatch_kmeans", "deep_kmeans", "consensus"]
    assert m["chosen"]["by"] == "ranking" and m["chosen"]["method"] == m["ranking"][0]["method"]
    assert "Methods compared, chosen first" in cap.out and "checks" in cap.out and "stability" in cap.out
    assert f"Chosen by the ranking: {m['chosen']['method']} with k=" in cap.out
    assert "Rule: the first method in the benchmark's preference order" in cap.out
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["method"]) == list(m["methods"]) and table["chosen"].sum() == 1
    assert table.loc[table["chosen"], "method"].item() == m["chosen"]["method"]
    # --select overrides the ranking; the ranking itself is unchanged
    code = main(["run", "--input", str(events_csv), "--out", str(out), "--k", "3-4", "--device", "cpu", "--no-report",
                 "--stability", "3", "--methods", "consensus,adaptive_kmeans", "--select", "minibatch_kmeans", "-q"])
    cap2 = capsys.readouterr()
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["chosen"] == {**m2["chosen"], "method": "minibatch_kmeans", "by": "--select"}
    assert [r["method"] for r in m2["ranking"]] == [r["method"] for r in m["ranking"]]
    assert "Chosen by --select: minibatch_kmeans" in cap2.out
    seg = pd.read_parquet(out / "segments.parquet")
    assert (seg["segment"] == seg["label_minibatch_kmeans"]).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--select", "gmm"], "--select gmm: that method did not run; add it to --methods"),
        (["--select", "kmedoids"], "--select: unknown method 'kmedoids'"),
        (["--select", " GMM "], "--select gmm: that method did not run"),
        (["--stability", "1"], "at least 2 resamples"),
        (["--stability", "-3"], "must be an integer in [0, 100]"),
    ],
)
def test_selection_options_are_checked(tmp_path, events_csv, capsys, args, message):
    code = main(["run", "--input", str(events_csv), "--out", str(tmp_path / "o"), "--k", "3", "--device", "cpu", "--no-report",
                 "--methods", "kmeans", "--stability", "0", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "Traceback" not in err

def test_generate_command(tmp_path, capsys):
    out, truth = tmp_path / "ev.csv.gz", tmp_path / "truth.parquet"
    assert main(["generate", "--customers", "300", "--seed", "2", "--out", str(out), "--truth", str(truth)]) == 0
    msg = capsys.readouterr().out
    assert "events/s" in msg and "personas:" in msg
    ev = pd.read_csv(out)
    assert list(ev.columns) == REES_HEADER.strip().split(",")
    assert pd.read_parquet(truth)["user_id"].nunique() == 300
    # existing files are not replaced without --force
    assert main(["generate", "--customers", "300", "--out", str(out)]) == 2
    assert "use --force" in capsys.readouterr().err
    assert main(["generate", "--customers", "300", "--out", str(out), "--force"]) == 0


def test_module_entry_point_end_to_end(tmp_path):
    """`python -m gpuseg` in a fresh process: exit codes and no traceback."""
    bad = subprocess.run([sys.executable, "-m", "gpuseg", "run", "--input", str(tmp_path / "x.csv")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "gpuseg", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("gpuseg ")


def test_generate_checks_every_suffix_before_writing(tmp_path, capsys):
    out = tmp_path / "ev.csv"
    assert main(["generate", "--customers", "100", "--out", str(out), "--truth", str(tmp_path / "t.txt")]) == 2
    assert "unknown file type" in capsys.readouterr().err
    assert not out.exists()


def test_report_command_rebuilds_the_report(tmp_path, events_csv, capsys):
    out = tmp_path / "o"
    assert main(["run", "--input", str(events_csv), "--out", str(out), "--k", "3", "--device", "cpu",
                 "--methods", "kmeans", "--stability", "0", "-q"]) == 0
    cap = capsys.readouterr()
    assert f"Report: {out / 'report.html'}" in cap.out
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert "Wrote" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert "<html" in html and "http://" not in html and "https://" not in html
    assert (out / "plots" / "pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "no metrics.json"),
        (lambda d: (d / "metrics.json").write_text("{}"), "was not written by gpuseg"),
        (lambda d: (d / "metrics.json").write_text("{not json"), "cannot be read"),
        (lambda d: (d / "metrics.json").write_text('{"gpuseg_version": "0.1.0"}'), "segments.parquet is missing"),
    ],
)
def test_report_command_errors(tmp_path, capsys, setup, message):
    setup(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("swap", ["segments", "features", "k"])
def test_report_refuses_a_folder_whose_files_are_of_different_runs(tmp_path, events_csv, capsys, swap):
    """Another run's segments.parquet copied in was drawn beside this run's metrics."""
    out = tmp_path / "o"
    assert main(["run", "--input", str(events_csv), "--out", str(out), "--k", "3", "--device", "cpu",
                 "--methods", "kmeans", "--stability", "0", "--no-report", "-q"]) == 0
    seg = pd.read_parquet(out / "segments.parquet")
    if swap == "segments":
        seg.head(len(seg) - 1).to_parquet(out / "segments.parquet")
    elif swap == "features":
        feats = pd.read_parquet(out / "features.parquet")
        feats.assign(customer_id=feats["customer_id"].astype(str) + "x").to_parquet(out / "features.parquet")
    else:
        seg.assign(segment=seg["segment"] % 2).to_parquet(out / "segments.parquet")
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "files of different runs" in err and len(err.strip().splitlines()) == 1
    assert not (out / "report.html").exists()


def test_report_on_a_folder_that_is_not_there_says_so(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope: no such folder" in capsys.readouterr().err


def test_generate_without_the_memory_for_it_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    from gpuseg import cli

    def short(args):
        raise MemoryError

    monkeypatch.setattr(cli, "_generate", short)
    rc = main(["generate", "--customers", "100000000000", "--out", str(tmp_path / "e.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "not enough memory to generate 100,000,000,000 customers" in err
    rc = main(["generate", "--scenario", "large", "--out", str(tmp_path / "e.parquet")])  # its default size
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "the default number of customers" in err
    assert not (tmp_path / "e.parquet").exists()


def test_ari_against_a_partial_truth_says_how_many_customers_it_covers(tmp_path, capsys):
    # an ARI over 100 of 300 customers must not read as the ARI of the whole segmentation
    from gpuseg.io.synthetic import generate_events, write_truth

    events, truth = generate_events(300, seed=3)
    events.to_parquet(tmp_path / "e.parquet")
    write_truth(truth.iloc[:100], tmp_path / "truth.csv")
    rc = main(["run", "--input", str(tmp_path / "e.parquet"), "--truth", str(tmp_path / "truth.csv"), "--out",
               str(tmp_path / "o"), "--methods", "kmeans", "--k", "3", "--stability", "0", "--no-report"])
    assert rc == 0
    assert "against the known segments of 100 customers (200 not in the truth file)" in capsys.readouterr().out


def test_the_last_line_counts_the_excluded_customers_even_when_quiet(tmp_path, capsys):
    from gpuseg.io.synthetic import generate_events

    events, _ = generate_events(300, seed=4)
    events["price"] = events["price"].astype("float64")
    gone = events["user_id"].iloc[0]
    events.loc[events["user_id"] == gone, "price"] = -1.0  # every row of one customer is unusable
    events.to_parquet(tmp_path / "e.parquet")
    rc = main(["run", "--input", str(tmp_path / "e.parquet"), "--out", str(tmp_path / "o"), "--methods", "kmeans",
               "--k", "3", "--stability", "0", "--no-report", "-q"])
    assert rc == 0
    assert "299 customers, 1 excluded (excluded.csv says why)." in capsys.readouterr().out


@pytest.mark.parametrize("extra, words", [
    (["--input", "x.parquet", "--customers", "500"], "--customers sizes the built-in data"),
    (["--workers", "2"], "--workers sets up a Dask cluster"),
    (["--memory-limit", "2GB"], "--memory-limit sets up a Dask cluster"),
])
def test_options_that_would_be_ignored_are_refused(tmp_path, capsys, extra, words):
    rc = main(["run", "--out", str(tmp_path / "o"), "-q", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and err.count("\n") == 1


def test_customers_with_input_in_the_config_file_is_refused(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('input = "x.parquet"\n')
    rc = main(["run", "--config", str(tmp_path / "c.toml"), "--customers", "500", "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--customers sizes the built-in data" in err and "config file" in err
    assert not (tmp_path / "o").exists()


def test_a_wrong_config_value_is_refused_even_when_the_command_line_overrides_it(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('k = "abc"\n')
    rc = main(["run", "--config", str(tmp_path / "c.toml"), "--k", "3-4", "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "config file is wrong" in err and "abc" in err and err.count("\n") == 1


def _sweep(ks, ok=True):
    return [{"k": k, "status": "ok" if ok else "failed"} for k in ks]


def _elbow(ks, knee):
    return {"k_rule": "elbow", "sweep": _sweep(ks), "k_choice": {"knee": knee}}


@pytest.mark.parametrize("entry, k, expected", [
    (_elbow(range(2, 13), 6), 6, ["where the log inertia bends", "compare --k 5 and --k 7,", "4-7 even in data"]),
    (_elbow(range(3, 9), 6), 6, ["where the log inertia bends", "compare --k 5 and --k 7,"]),  # not 2..12: no null claim
    (_elbow(range(2, 7), None), 6, ["has the best composite", "no elbow over k=2..6", "compare --k 5,"]),
    (_elbow([2, 3], None), 2, ["has the best composite", "compare --k 3,"]),
    (_elbow([6], None), 6, []),  # --k 6: the user's k
    ({"k_rule": "bic", "sweep": _sweep(range(2, 13))}, 6, []),  # a mixture's BIC, no elbow
    ({"k_rule": "bic", "sweep": _sweep(range(2, 13)), "k_choice": {"at_range_end": True}}, 12,
     ["largest k tried", "no k in 2..12", "not segments it found"]),
    ({"k_rule": "density", "sweep": _sweep([3])}, 3, []),
])
def test_a_k_from_the_sweep_is_put_in_its_place_with_the_neighbours_to_compare(entry, k, expected):
    from gpuseg.cli import _k_hint

    hint = _k_hint(entry, k)
    if not expected:
        assert hint == ""
        return
    assert hint.startswith(f"k={k} ") and hint.endswith("\n")
    if entry["k_rule"] == "elbow":
        assert "starting point" in hint and "gpuseg backtest" in hint
    for text in expected:
        assert text in hint, text
    assert ("4-7 even in data" in hint) == ("4-7 even in data" in expected)


def test_metrics_and_report_say_the_elbow_is_a_starting_point():
    from gpuseg.evaluate.selection import K_RULE

    assert K_RULE.startswith("elbow of the log-inertia curve (Kneedle)") and "starting point, not a finding" in K_RULE


def test_report_check_counts_segments_without_the_unassigned(tmp_path):
    """A density run's customers in segment -1 made report refuse a fresh HDBSCAN folder."""
    from gpuseg.cli import _check_one_run

    ids = [f"c{i}" for i in range(6)]
    pd.DataFrame({"customer_id": ids, "segment": [0, 0, 1, 1, -1, -1]}).to_parquet(tmp_path / "segments.parquet")
    pd.DataFrame({"customer_id": ids[::-1], "x": 1.0}).to_parquet(tmp_path / "features.parquet")  # any order
    _check_one_run(tmp_path, "o", {"data": {"customers": 6}, "chosen": {"k": 2}})
    _check_one_run(tmp_path, "o", {"data": {"customers": None}, "chosen": {}})  # a hand-edited file: no check


# --- update's output and the versions a later run leaves ---------------------------------------


def _small_run(tmp_path, out, k="3"):
    """A quick kmeans run of 300 synthetic customers into ``out`` (its input: tmp_path/data/e.parquet)."""
    from gpuseg.io.synthetic import generate_events

    data = tmp_path / "data"
    if not data.is_dir():
        data.mkdir()
        generate_events(300, seed=3)[0].to_parquet(data / "e.parquet")
    assert main(["run", "--input", str(data / "e.parquet"), "--out", str(out), "--methods", "kmeans", "--k", k,
                 "--stability", "0", "--no-report", "-q"]) == 0
    return data


def test_update_after_a_rerun_says_the_default_folder_is_an_update_of_a_replaced_model(tmp_path, capsys):
    """run -> update (model-v2) -> run again (model/ replaced) -> update: model-v2 is not an
    update of this model/, so the refusal must not send the user on from it."""
    out = tmp_path / "r1"
    data = _small_run(tmp_path, out, k="3")
    update = ["update", "--model", str(out / "model"), "--input", str(data / "e.parquet"), "-q"]
    assert main(update) == 0
    assert main(update) == 2 and "this model was updated before" in capsys.readouterr().err  # same model: go on
    _small_run(tmp_path, out, k="4")
    capsys.readouterr()
    rc = main(update)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{out / 'model-v2'} exists and is an update of a model that has since been replaced" in err
    assert "give --out" in err and "updated before" not in err and f"update {out / 'model-v2'}" not in err
    assert main([*update, "--out", str(tmp_path / "v2")]) == 0


def test_update_out_inside_the_input_folder_is_refused(tmp_path, capsys):
    """Its NAME.excluded.csv would land in the input folder and be read as data by the next run."""
    out = tmp_path / "r1"
    data = _small_run(tmp_path, out)
    capsys.readouterr()
    rc = main(["update", "--model", str(out / "model"), "--input", str(data), "--out", str(data / "v2"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "would be inside the input folder" in err
    assert sorted(p.name for p in data.iterdir()) == ["e.parquet"]


def test_update_of_a_run_kept_inside_its_input_folder_goes_beside_the_model(tmp_path, capsys):
    """A run's folder inside the input folder carries a manifest, so the readers skip it: the
    default model-v2 and its list there are not read as data, and update goes ahead."""
    out = tmp_path / "r1"
    data = _small_run(tmp_path, out)
    inner = data / "seg"
    assert main(["run", "--input", str(data), "--out", str(inner), "--methods", "kmeans", "--k", "3",
                 "--stability", "0", "--no-report", "-q"]) == 0
    capsys.readouterr()
    rc = main(["update", "--model", str(inner / "model"), "--input", str(data), "-q"])
    assert rc == 0, capsys.readouterr().err
    assert (inner / "model-v2" / "model.json").is_file()


def _leftover_versions(tmp_path, model: bool):
    out = tmp_path / "o"
    (out / "model-v2").mkdir(parents=True)
    (out / "model-v2" / "model.json").write_text("{}")
    (out / "model-v2.excluded.csv").write_text("customer_id,reason\n")
    if model:
        (out / "model").mkdir()
    notes = []

    class Notes:
        def note(self, text):
            notes.append(text)

    from gpuseg.pipeline import _note_updated_models

    _note_updated_models(out, Notes())
    assert len(notes) == 1
    return notes[0]


def test_the_note_on_leftover_versions_names_their_excluded_lists(tmp_path):
    """model-v2.excluded.csv (customer ids) stays beside model-v2/ (the --anonymize key):
    the note names both, so neither is shared with an anonymised folder by mistake."""
    said = _leftover_versions(tmp_path, model=True)
    assert said.startswith("model-v2 in ") and "model-v2.excluded.csv" in said
    assert "no longer match model/" in said and "sharing" in said


def test_the_note_on_leftover_versions_after_a_run_without_a_model(tmp_path):
    said = _leftover_versions(tmp_path, model=False)
    assert "model/" not in said.replace("model-v2", "") and "saved no model" in said
