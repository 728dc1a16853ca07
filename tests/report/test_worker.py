"""The plot worker: a second process that draws some of the report's plots."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from gpuseg import pipeline  # noqa: E402
from gpuseg.report import plots, worker  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_run, copy_run):
    """A small run's data files and an insights.json with activity grids."""
    out = copy_run(small_run, tmp_path_factory.mktemp("worker") / "out")
    segs = sorted(int(s) for s in pd.read_parquet(out / "segments.parquet")["segment"].unique() if s >= 0)
    rng = np.random.default_rng(3)
    grids = [rng.random((7, 24)) for _ in segs]
    insights = {"segments": [{"segment": s, "name": f"persona {s}", "activity": (g / g.sum()).tolist()}
                             for s, g in zip(segs, grids)]}
    (out / "insights.json").write_text(json.dumps(insights))
    return out


def test_the_worker_draws_the_same_bytes_as_the_run(run_dir):
    w = worker.PlotWorker.start()
    assert w is not None
    try:
        assert w.submit(run_dir, list(worker.WORKER_PLOTS))
        got = w.collect(timeout=120)
    finally:
        w.close()
    here = plots.make_plots(run_dir, include=list(worker.WORKER_PLOTS))
    assert got is not None and set(got) == set(worker.WORKER_PLOTS)
    for name in worker.WORKER_PLOTS:
        assert isinstance(got[name], bytes) and got[name] == here[name], name


def test_a_skipped_plot_comes_back_with_its_reason(run_dir):
    w = worker.PlotWorker.start()
    try:
        assert w.submit(run_dir, ["umatrix"])  # no SOM U-matrix in these insights
        got = w.collect(timeout=120)
    finally:
        w.close()
    assert got == {"umatrix": plots.make_plots(run_dir, include=["umatrix"])["umatrix"]}
    assert isinstance(got["umatrix"], str)


class _Fake:
    """A worker that takes the job and then answers ``answer`` (None: no answer)."""

    def __init__(self, answer=None, takes=True):
        self.answer, self.takes, self.jobs = answer, takes, []

    def submit(self, out_dir, include):
        self.jobs.append(list(include))
        return self.takes

    def collect(self, timeout=worker.TIMEOUT_S):
        return self.answer


@pytest.mark.parametrize("fake", [_Fake(None), _Fake(None, takes=False), _Fake({"activity": b"partial"})])
def test_without_an_answer_the_run_draws_the_worker_s_plots_itself(run_dir, fake):
    include = [p for p in plots.PLOTS if p != "umap"]
    got = pipeline._draw_plots(run_dir, None, include, fake)
    assert list(got) == include  # the report's order
    assert got == plots.make_plots(run_dir, include=include)
    assert fake.jobs == [[p for p in include if p in worker.WORKER_PLOTS]]


def test_with_an_answer_the_worker_s_plots_are_used_in_the_report_s_order(run_dir):
    include = [p for p in plots.PLOTS if p != "umap"]
    answer = {p: f"drawn elsewhere: {p}" for p in worker.WORKER_PLOTS}
    got = pipeline._draw_plots(run_dir, None, include, _Fake(answer))
    assert list(got) == include
    for p in include:
        assert got[p] == answer[p] if p in worker.WORKER_PLOTS else isinstance(got[p], (bytes, str))


def test_no_worker_without_insights_json(run_dir, tmp_path):
    """The worker reads insights.json; without it the run draws everything with its own insights."""
    bare = shutil.copytree(run_dir, tmp_path / "bare")
    (bare / "insights.json").unlink()
    fake = _Fake({})
    got = pipeline._draw_plots(bare, None, ["sweep", "activity"], fake)
    assert fake.jobs == [] and set(got) == {"sweep", "activity"}


def test_usable_only_with_a_report_two_threads_and_no_matplotlib_yet(monkeypatch):
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    assert worker.usable(2, True)
    assert not worker.usable(1, True)
    assert not worker.usable(None, True)
    assert not worker.usable(2, False)
    monkeypatch.setitem(sys.modules, "matplotlib", sys.modules["gpuseg"])  # imported before the run
    assert not worker.usable(2, True)


def test_close_stops_a_waiting_worker_and_is_idempotent():
    w = worker.PlotWorker.start()
    w.close()
    w.close()
    assert w._proc.poll() is not None


def test_a_run_that_fails_stops_its_worker(tmp_path, monkeypatch):
    started = []
    real_start = worker.PlotWorker.start

    def start():
        w = real_start()
        started.append(w)
        return w

    monkeypatch.setattr(worker, "usable", lambda threads, report: True)
    monkeypatch.setattr(worker.PlotWorker, "start", staticmethod(start))

    def boom(r):
        raise RuntimeError("a stage failed")

    monkeypatch.setattr(pipeline, "_scale", boom)
    from gpuseg.config import build_config

    with pytest.raises(RuntimeError, match="a stage failed"):
        pipeline.run(build_config(out=str(tmp_path / "out"), synthetic_customers=300, device="cpu", stability=0))
    assert len(started) == 1 and started[0]._proc.poll() is not None


def test_a_run_with_a_worker_writes_every_plot(tmp_path, monkeypatch):
    used = []
    real_collect = worker.PlotWorker.collect

    def collect(self, timeout=worker.TIMEOUT_S):
        got = real_collect(self, timeout)
        used.append(got)
        return got

    monkeypatch.setattr(worker, "usable", lambda threads, report: True)
    monkeypatch.setattr(worker.PlotWorker, "collect", collect)
    from gpuseg.config import build_config

    out = tmp_path / "out"
    pipeline.run(build_config(out=str(out), synthetic_customers=400, k="3-4", methods="kmeans", device="cpu",
                              stability=0))
    assert len(used) == 1 and used[0] is not None and set(used[0]) == set(worker.WORKER_PLOTS)
    for name in worker.WORKER_PLOTS:
        assert (out / "plots" / f"{name}.png").read_bytes() == used[0][name]
