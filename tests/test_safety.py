"""Issue 16's guarantees at the command line: signals, operating-system errors, what reaches
the terminal, spreadsheet-safe CSVs, output folders gpuseg may write."""

from __future__ import annotations

import errno
import json
import os
import signal

import pandas as pd
import pytest

from gpuseg import pipeline
from gpuseg.cli import main
from gpuseg.errors import os_error_line, printable


def _orders(path, ids=None):
    ids = ids or [f"c{i}" for i in range(30)]
    rows = [(cid, f"2021-0{1 + j % 9}-1{j % 9}", 10.0 + 3 * j + i) for i, cid in enumerate(ids) for j in range(1 + i % 3)]
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(path, index=False)


ARGS = ["--methods", "kmeans", "--k", "2", "--stability", "0", "--no-report", "-q"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_like_ctrl_c_and_leave_outputs(tmp_path, capsys, monkeypatch, signum):
    _orders(tmp_path / "o.csv")
    handler = signal.getsignal(signum)
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *ARGS]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def killed(*a, **k):
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal did not stop the run")

    monkeypatch.setattr(pipeline, "_run", killed)
    rc = main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *ARGS])
    assert rc == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert signal.getsignal(signum) == handler  # the process's own handler is back


def test_a_stop_during_the_report_says_the_data_files_were_written(tmp_path, capsys, monkeypatch):
    """It said "outputs left as they were before the run" while the new segments were in the folder."""
    _orders(tmp_path / "o.csv")
    out = tmp_path / "out"

    def killed(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal did not stop the run")

    monkeypatch.setattr(pipeline, "write_report", killed)
    args = [a for a in ARGS if a != "--no-report"]
    rc = main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGTERM
    assert "segments, features and model are in" in err and f"gpuseg report {out}" in err
    assert (out / "segments.parquet").is_file() and not (out / "report.html").exists()


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"),
                                         (errno.EACCES, "permission denied")])
def test_os_errors_are_one_line_naming_the_path(tmp_path, capsys, monkeypatch, code, words):
    _orders(tmp_path / "o.csv")

    def full(path, *a, **k):
        raise OSError(code, os.strerror(code), str(tmp_path / "out" / "segments.parquet"))

    monkeypatch.setattr(pipeline, "write_outputs", full)
    rc = main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(tmp_path / "out"), *ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert words in err and "segments.parquet" in err and "Traceback" not in err


def test_os_error_line_without_a_path():
    assert os_error_line(OSError(errno.ENOSPC, "x")) == "no space left on the device"


def test_control_characters_never_reach_the_terminal(tmp_path, capsys):
    bad = tmp_path / "evil.csv"
    bad.write_text("\x1b[31mwho\x1b[0m,when\x07\n1,2\n")
    rc = main(["run", "--input", str(bad), "--out", str(tmp_path / "out"), *ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and "\x1b" not in err and "\x07" not in err and "?[31mwho" in err
    assert printable("a\rb\x9bc\td\ne") == "a?b?c\td\ne"


def test_csv_outputs_are_spreadsheet_safe(tmp_path, capsys):
    ids = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "-42"] + [
        f"c{i}" for i in range(25)]
    _orders(tmp_path / "o.csv", ids)
    with open(tmp_path / "o.csv", "a") as f:
        f.write("=1+1,2021-01-01,not a price\n")  # excluded while cleaning
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *ARGS]) == 0
    excluded = pd.read_csv(out / "excluded.csv")
    assert excluded["customer_id"].tolist() == ["'=1+1"]
    assigned = tmp_path / "a.csv"
    assert main(["assign", "--model", str(out / "model"), "--input", str(tmp_path / "o.csv"), "--out", str(assigned),
                 "-q"]) == 0
    cells = pd.read_csv(assigned)["customer_id"].tolist()
    assert {"'=HYPERLINK(\"http://x\",\"y\")", "'+cmd|' /C calc'!A0", "'@SUM(1+1)", "'-2+3"} <= set(cells)
    assert not any(str(c).startswith(("=", "+", "@")) for c in cells)
    assert "-42" in set(map(str, cells))  # a plain number is no formula: the id still joins back
    # parquet keeps the ids as they are: it is data, not a spreadsheet
    assert ids[0] in set(pd.read_parquet(out / "segments.parquet")["customer_id"])
    assert pd.read_csv(tmp_path / "a.excluded.csv")["customer_id"].tolist() == ["'=1+1"]


@pytest.mark.parametrize("target", ["/", "~"])
def test_out_refuses_root_and_home(tmp_path, capsys, monkeypatch, target):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    _orders(tmp_path / "o.csv")
    rc = main(["run", "--input", str(tmp_path / "o.csv"), "--out", target, *ARGS])
    assert rc == 2 and "folder of its own" in capsys.readouterr().err


def test_out_refuses_a_folder_of_someone_elses_files(tmp_path, capsys):
    _orders(tmp_path / "o.csv")
    rc = main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(tmp_path), *ARGS])
    assert rc == 2 and "holds o.csv, which gpuseg did not write" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *ARGS]) == 0
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *ARGS]) == 0  # its own: again
    assert json.loads((out / "metrics.json").read_text())["gpuseg_version"]


@pytest.mark.parametrize("moment", ["moving", "committed"])
def test_kill_9_during_the_commit_leaves_all_old_or_all_new(tmp_path, moment):
    """A real run killed with SIGKILL while its files move in (the commit slowed by the test
    hook): the next reader's recovery gives every old file (killed before the commit point)
    or every new one (after it), and ``gpuseg report``-style readers never see a mix."""
    import subprocess
    import sys
    import time

    from gpuseg.report.files import MANIFEST, recover

    _orders(tmp_path / "o.csv")
    out = tmp_path / "out"
    base = [sys.executable, "-m", "gpuseg", "run", "--input", str(tmp_path / "o.csv"), "--out", str(out),
            "--methods", "kmeans", "--stability", "0", "--no-report", "-q"]
    subprocess.run(base + ["--k", "2"], check=True, capture_output=True)
    old = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".gpuseg-")}
    old_run = json.loads((out / MANIFEST).read_text())["run_id"]
    env = {**os.environ, "GPUSEG_TEST_COMMIT_PAUSE": "0.25"}
    proc = subprocess.Popen(base + ["--k", "3"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        tmp = [t for t in out.glob(".gpuseg-tmp-*") if (t / ".journal.json").exists()]
        moved = tmp and any(p.name.startswith(".previous-") for p in tmp[0].iterdir())
        run_id = json.loads((out / MANIFEST).read_text())["run_id"] if (out / MANIFEST).exists() else old_run
        if (moment == "moving" and moved and run_id == old_run) or (moment == "committed" and run_id != old_run):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob(".gpuseg-tmp-*"))  # it died mid-commit
    recover(out)
    now = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".gpuseg-")}
    segments = pd.read_parquet(out / "segments.parquet")
    if moment == "moving":
        assert now == old and segments["segment"].nunique() == 2
    else:
        assert now != old and segments["segment"].nunique() == 3
        assert json.loads((out / "metrics.json").read_text())["chosen"]["k"] == 3
    assert not list(out.glob(".gpuseg-tmp-*"))


# --- input (issue 16) ------------------------------------------------------------------------

def test_only_ascii_digits_make_integer_ids(tmp_path, capsys):
    rows = ["customer_id,timestamp,amount", "１２３,2021-01-01,5", "²,2021-01-02,6", "123,2021-01-03,7"]
    rows += [f"{i},2021-01-0{i % 9 + 1},{i}" for i in range(1, 12)]
    (tmp_path / "o.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *ARGS]) == 0
    ids = set(pd.read_parquet(out / "segments.parquet")["customer_id"])
    assert {"１２３", "²", "123"} <= ids  # three customers, kept as text, none lost or merged


def test_epoch_units_are_decided_per_value(cpu):
    from gpuseg.io.readers import from_frame

    t = 1_609_459_200  # 2021-01-01
    df = pd.DataFrame({"customer_id": [1, 2, 3, 4], "timestamp": [t, t * 1000, t * 1_000_000, t + 86_400],
                       "amount": 1.0})
    times = from_frame(df, cpu, "orders").frame["timestamp"]
    assert times.dt.strftime("%Y-%m-%d").tolist() == ["2021-01-01"] * 3 + ["2021-01-02"]


def test_placeholder_dates_are_dropped_under_their_own_reason(tmp_path, capsys):
    _orders(tmp_path / "o.csv")
    with open(tmp_path / "o.csv", "a") as f:
        f.write("c1,1900-01-01,5\nc2,2100-01-01,5\n")
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), *ARGS[:-1]]) == 0
    err = capsys.readouterr().err
    assert "implausible_time 2 rows" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["rows_dropped"]["implausible_time"] == 2
    assert metrics["data"]["reference_time"].startswith("2021-")  # not 2100


def test_unreadable_values_are_named_with_an_example(tmp_path, capsys):
    _orders(tmp_path / "o.csv")
    with open(tmp_path / "o.csv", "a") as f:
        f.write('c1,2021-03-03,about 5\n')
    assert main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(tmp_path / "out"), *ARGS[:-1]]) == 0
    assert "bad_price 1 row / 1 customer, e.g. 'about 5'" in capsys.readouterr().err


@pytest.mark.parametrize("content, words", [(b"\xff\xfe[\x00c\x00]\x00", "UTF-16"),
                                            (bytes(range(128, 256)), "not UTF-8 text"),
                                            (b"[a]\n" + b"x = [" * 2000, "not valid TOML|nested too deeply")])
def test_bad_config_files_are_one_line(tmp_path, capsys, content, words):
    import re

    (tmp_path / "c.toml").write_bytes(content)
    rc = main(["run", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(words, err) and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, words", [
    (["generate", "--start", "9999-12-30", "--out", "{t}/g.csv"], "after tomorrow"),
    (["generate", "--start", "1900-01-01", "--out", "{t}/g.csv"], "from 1990 on"),
    (["generate", "--days", "10000000", "--out", "{t}/g.csv"], "7 to 3650 days"),
    (["generate", "--days", "1", "--out", "{t}/g.csv"], "--days 1: give 7 to 3650 days"),
    (["generate", "--start", "soon", "--out", "{t}/g.csv"], "not a date"),
    (["run", "--methods", "", "--out", "{t}/o"], "--methods is empty"),
    (["update", "--model", "{t}", "--input", "{t}", "--seed", "-1"], "--seed -1"),
])
def test_option_values_are_checked(tmp_path, capsys, args, words):
    rc = main([a.format(t=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("make, words", [
    (lambda p: os.mkfifo(p), "a FIFO"),
    (lambda p: p.symlink_to(p), "loops back on itself"),
    (lambda p: p.symlink_to("/dev/zero"), "a device"),
    (lambda p: p.write_bytes("customer_id,timestamp,amount\n1,2021-01-01,5\n".encode("utf-16")), "UTF-16"),
])
def test_input_that_is_not_a_plain_csv_says_what_it_is(tmp_path, capsys, make, words):
    make(tmp_path / "x.csv")
    rc = main(["run", "--input", str(tmp_path / "x.csv"), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and words in err


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_the_delimiter_is_found_from_the_header(tmp_path, sep):
    _orders(tmp_path / "o.csv")
    text = (tmp_path / "o.csv").read_text().replace(",", sep)
    (tmp_path / "s.csv").write_text(text)
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "s.csv"), "--out", str(out), *ARGS]) == 0
    assert len(pd.read_parquet(out / "segments.parquet")) == 30


def test_a_timestamp_in_another_format_is_not_called_invalid(cpu):
    from gpuseg.errors import SchemaError
    from gpuseg.io.readers import from_frame

    df = pd.DataFrame({"customer_id": [1, 2, 3], "timestamp": ["2021-01-01 10:00:00"] * 3, "amount": 1.0})
    with pytest.raises(SchemaError, match="is a timestamp in another format"):
        from_frame(df, cpu, "orders", timestamp_format="%d/%m/%Y %H:%M")


@pytest.mark.parametrize("text", ["evaluate = 5\nstability = 3", "dask = [1]", "segments = 'x'"])
def test_a_section_given_as_a_value_is_one_line(tmp_path, capsys, text):
    """Found by bench/campaign.py: a section written as a plain value beside the command-line
    setting that merges into it raised a TypeError."""
    (tmp_path / "c.toml").write_text(text)
    rc = main(["run", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "must be a table" in err and len(err.strip().splitlines()) == 1


def test_a_report_that_cannot_be_written_says_the_data_were(tmp_path, capsys, monkeypatch):
    # the data files are committed before the report: a full disk at the report must not read
    # as if the whole run had failed and the folder held the previous run
    _orders(tmp_path / "o.csv")

    def full(out_dir, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir / "report.html"))

    monkeypatch.setattr(pipeline, "write_report", full)
    out = tmp_path / "out"
    rc = main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(out), "--methods", "kmeans", "--k", "3",
               "--stability", "0", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "segments, features and model were written, its report was not" in err and "no space left" in err
    assert (out / "segments.parquet").is_file() and not (out / "report.html").exists()


@pytest.mark.parametrize("inp", ["data", "data/*.csv"], ids=["folder", "pattern"])
@pytest.mark.parametrize("out", ["data", "."], ids=["the input folder", "a folder holding it"])
def test_an_out_that_is_or_holds_the_input_folder_is_refused_as_such(tmp_path, capsys, monkeypatch, out, inp):
    """Its files were skipped as gpuseg's outputs, and the error said the folder held no data."""
    (tmp_path / "data").mkdir()
    _orders(tmp_path / "data" / "o.csv")
    monkeypatch.chdir(tmp_path)
    rc = main(["run", "--input", inp, "--out", out, *ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and f"the folder of --input {inp}" in err and len(err.strip().splitlines()) == 1


def test_run_refuses_a_folder_migrate_wrote(tmp_path, capsys):
    """migrate refused a run's folder; run took migrate's and mixed the two commands' files."""
    _orders(tmp_path / "o.csv")
    mig = tmp_path / "mig"
    mig.mkdir()
    (mig / "migration.json").write_text("{}")
    (mig / ".gpuseg-manifest.json").write_text('{"run_id": "1", "files": ["migration.json"]}')
    rc = main(["run", "--input", str(tmp_path / "o.csv"), "--out", str(mig), *ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and "holds migration.json, which gpuseg migrate wrote" in err
    assert sorted(p.name for p in mig.iterdir()) == [".gpuseg-manifest.json", "migration.json"]


def test_run_and_assign_say_which_columns_they_took_by_another_name(tmp_path, capsys):
    _orders(tmp_path / "o.csv")
    frame = pd.read_csv(tmp_path / "o.csv").rename(columns={"timestamp": "InvoiceDate", "amount": "Total"})
    frame.to_csv(tmp_path / "export.csv", index=False)
    assert main(["run", "--input", str(tmp_path / "export.csv"), "--out", str(tmp_path / "out"), *ARGS[:-1]]) == 0
    assert "columns read as InvoiceDate = timestamp, Total = amount" in capsys.readouterr().err
    assert main(["assign", "--model", str(tmp_path / "out" / "model"), "--input", str(tmp_path / "export.csv"),
                 "--out", str(tmp_path / "a.csv")]) == 0
    assert "columns read as InvoiceDate = timestamp, Total = amount" in capsys.readouterr().err
