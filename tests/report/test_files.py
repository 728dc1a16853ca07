from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from gpuseg.errors import ConfigError
from gpuseg.report.files import MANIFEST, check_out_dir, to_json, write_outputs


def test_write_outputs_moves_files_into_place(tmp_path):
    out = tmp_path / "new" / "out"
    files = write_outputs(out, {"a.txt": lambda p: p.write_text("A"), "b.txt": lambda p: p.write_text("B")})
    assert [f.name for f in files] == ["a.txt", "b.txt"]
    assert (out / "a.txt").read_text() == "A" and sorted(os.listdir(out)) == [MANIFEST, "a.txt", "b.txt"]
    assert json.loads((out / MANIFEST).read_text())["files"] == ["a.txt", "b.txt"]


def test_failure_leaves_previous_files(tmp_path):
    (tmp_path / "a.txt").write_text("old")

    def fail(p):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_outputs(tmp_path, {"a.txt": lambda p: p.write_text("new"), "b.txt": fail})
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_check_out_dir(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(ConfigError, match="overwrite the input"):
        check_out_dir(tmp_path, [tmp_path / "metrics.json"])
    assert check_out_dir(tmp_path / "later") == tmp_path / "later"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(ConfigError, match="not writable"):
        check_out_dir(ro / "out")


def test_to_json_plain_and_strict():
    text = to_json({"a": np.float32(1.5), "b": np.arange(3), "c": math.nan, 4: (np.int64(2),)})
    assert json.loads(text) == {"a": 1.5, "b": [0, 1, 2], "c": None, "4": [2]}


def test_failure_while_moving_restores_every_old_file(tmp_path, monkeypatch):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("old " + name)
    real_replace = os.replace

    def flaky(src, dst):
        if str(dst).endswith("b.txt") and ".gpuseg-tmp" in str(src) and "previous" not in str(src):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_outputs(tmp_path, {"a.txt": lambda p: p.write_text("new"), "b.txt": lambda p: p.write_text("new")})
    assert (tmp_path / "a.txt").read_text() == "old a.txt"
    assert (tmp_path / "b.txt").read_text() == "old b.txt"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_out_dir_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "profiles.csv").write_text("my own profiles")
    with pytest.raises(ConfigError, match="holds profiles.csv that gpuseg did not write"):
        check_out_dir(tmp_path)
    (tmp_path / "metrics.json").write_text('{"gpuseg_version": "0.1.0"}')
    assert check_out_dir(tmp_path) == tmp_path


def test_out_dir_must_be_gpusegs_own(tmp_path, monkeypatch):
    """Root, home and a folder of someone else's files are refused; a run's own folder and
    an empty one are not."""
    with pytest.raises(ConfigError, match="root folder"):
        check_out_dir("/")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="home folder"):
        check_out_dir("~")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds notes.txt, which gpuseg did not write"):
        check_out_dir(tmp_path / "theirs")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".gpuseg-lock").write_text("")
    assert check_out_dir(tmp_path / "empty") == tmp_path / "empty"


def test_output_name_taken_by_a_folder(tmp_path):
    (tmp_path / "metrics.json").mkdir()
    with pytest.raises(ConfigError, match="metrics.json is a folder"):
        check_out_dir(tmp_path)


def _write_dir(p, text):
    p.mkdir()
    (p / "x.png").write_text(text)


def test_folders_are_replaced_whole_and_restored_on_failure(tmp_path, monkeypatch):
    write_outputs(tmp_path, {"plots": lambda p: _write_dir(p, "v1"), "a.txt": lambda p: p.write_text("v1")})
    (tmp_path / "plots" / "stale.png").write_text("old")
    write_outputs(tmp_path, {"plots": lambda p: _write_dir(p, "v2"), "a.txt": lambda p: p.write_text("v2")})
    assert sorted(os.listdir(tmp_path / "plots")) == ["x.png"]  # replaced, not merged
    assert (tmp_path / "plots" / "x.png").read_text() == "v2"
    real_replace = os.replace

    def flaky(src, dst):
        if str(dst).endswith("a.txt") and ".gpuseg-tmp" in str(src) and "previous" not in str(src):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_outputs(tmp_path, {"plots": lambda p: _write_dir(p, "v3"), "a.txt": lambda p: p.write_text("v3")})
    assert (tmp_path / "plots" / "x.png").read_text() == "v2" and (tmp_path / "a.txt").read_text() == "v2"


def test_a_writer_reads_what_was_written_before_it(tmp_path):
    write_outputs(tmp_path, {"a.txt": lambda p: p.write_text("A"),
                             "b.txt": lambda p: p.write_text((p.parent / "a.txt").read_text() + "B")})
    assert (tmp_path / "b.txt").read_text() == "AB"


def test_plots_name_taken_by_a_file(tmp_path):
    (tmp_path / "plots").write_text("x")
    with pytest.raises(ConfigError, match="plots is not a folder"):
        check_out_dir(tmp_path)
    (tmp_path / "plots").unlink()
    (tmp_path / "plots").mkdir()
    with pytest.raises(ConfigError, match="holds plots that gpuseg did not write"):
        check_out_dir(tmp_path)


# --- the commit point, recovery and the lock (issue 16) ---------------------------------------

def _v(out, text, extra=()):
    writers = {"a.txt": lambda p: p.write_text(text), "b.txt": lambda p: p.write_text(text)}
    writers.update({name: (lambda p: p.write_text(text)) for name in extra})
    return write_outputs(out, writers)


def _state(out):
    return {p.name: p.read_text() for p in out.iterdir() if p.is_file() and not p.name.startswith(".gpuseg-")}


def _killed_during(monkeypatch, out, text, after_moves):
    """A commit that dies (as kill -9 would: no rollback, no cleanup) after ``after_moves``
    renames."""
    import gpuseg.report.files as files

    real = os.replace
    count = [0]

    def replace(a, b):
        if count[0] == after_moves:
            raise SystemExit("killed")
        count[0] += 1
        return real(a, b)

    def die(*a):  # killed before the undo could run: nothing else happens in this process
        raise SystemExit("killed")

    monkeypatch.setattr(files.os, "replace", replace)
    monkeypatch.setattr(files, "_roll_back", die)
    with pytest.raises(SystemExit):
        _v(out, text, extra=("c.txt",))
    monkeypatch.undo()


@pytest.mark.parametrize("after_moves", range(0, 6))
def test_a_commit_killed_anywhere_recovers_to_all_old_or_all_new(tmp_path, monkeypatch, after_moves):
    from gpuseg.report.files import recover

    out = tmp_path / "out"
    _v(out, "old")
    _killed_during(monkeypatch, out, "new", after_moves)
    recover(out)
    state = _state(out)
    # 5 renames move the files (a, b aside and in; c in), the 6th is the manifest: the commit point
    assert state in ({"a.txt": "old", "b.txt": "old"}, {"a.txt": "new", "b.txt": "new", "c.txt": "new"}), state
    assert not list(out.glob(".gpuseg-tmp-*"))


@pytest.mark.parametrize("after_moves", range(1, 5))
def test_an_undo_killed_halfway_is_finished_by_recover(tmp_path, monkeypatch, after_moves):
    """The undo itself may be interrupted: running it again never deletes a restored file."""
    import gpuseg.report.files as files
    from gpuseg.report.files import recover

    out = tmp_path / "out"
    _v(out, "old")
    _killed_during(monkeypatch, out, "new", after_moves)
    tmp = next(out.glob(".gpuseg-tmp-*"))
    journal = json.loads((tmp / ".journal.json").read_text())
    names = journal["names"] + journal["remove"]
    real = os.replace
    count = [0]

    def replace(a, b):
        if count[0] == 1:
            raise SystemExit("killed again")
        count[0] += 1
        return real(a, b)

    monkeypatch.setattr(files.os, "replace", replace)
    try:  # dies after its first rename (an undo with one rename to do finishes)
        files._roll_back(out, tmp, names, set(journal["had_old"]))
    except SystemExit:
        pass
    monkeypatch.undo()
    recover(out)
    assert _state(out) == {"a.txt": "old", "b.txt": "old"}
    assert not list(out.glob(".gpuseg-tmp-*"))


def test_recover_keeps_a_committed_run_and_removes_unjournaled_leftovers(tmp_path, monkeypatch):
    import gpuseg.report.files as files
    from gpuseg.report.files import recover

    out = tmp_path / "out"
    _v(out, "old")
    monkeypatch.setattr(files.shutil, "rmtree", lambda *a, **k: None)  # killed after the commit point
    _v(out, "new")
    monkeypatch.undo()
    (out / ".gpuseg-tmp-dead").mkdir()
    (out / ".gpuseg-tmp-dead" / "a.txt").write_text("half written")
    lines = recover(out)
    assert _state(out) == {"a.txt": "new", "b.txt": "new"} and len(lines) == 2
    assert not list(out.glob(".gpuseg-tmp-*"))


def test_a_second_writer_is_refused_while_the_lock_is_held(tmp_path):
    from gpuseg.report.files import output_lock

    with output_lock(tmp_path / "out"):
        with pytest.raises(ConfigError, match=f"another gpuseg run \\(pid {os.getpid()}\\)"):
            with output_lock(tmp_path / "out"):
                pass
    with output_lock(tmp_path / "out"):  # released
        pass
    assert not (tmp_path / "out").exists()  # a lock that wrote nothing leaves no folder


def test_write_outputs_removes_named_files_in_the_same_commit(tmp_path):
    out = tmp_path / "out"
    _v(out, "old", extra=("stale.txt",))
    write_outputs(out, {"a.txt": lambda p: p.write_text("new")}, remove=("stale.txt", "never-there"))
    assert _state(out) == {"a.txt": "new", "b.txt": "old"}
    assert json.loads((out / MANIFEST).read_text())["files"] == ["a.txt", "b.txt"]
