from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from gpuseg.errors import ConfigError
from gpuseg.report.files import check_out_dir, to_json, write_outputs


def test_write_outputs_moves_files_into_place(tmp_path):
    out = tmp_path / "new" / "out"
    files = write_outputs(out, {"a.txt": lambda p: p.write_text("A"), "b.txt": lambda p: p.write_text("B")})
    assert [f.name for f in files] == ["a.txt", "b.txt"]
    assert (out / "a.txt").read_text() == "A" and sorted(os.listdir(out)) == ["a.txt", "b.txt"]


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
