"""The plot worker: a second process that draws some of the report's plots."""

from __future__ import annotations

import json
import shutil
import sys
import types

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


#: The plots these tests draw: the worker's and two of the run's own.
INCLUDE = ["sweep", "radar", *worker.WORKER_PLOTS]


@pytest.fixture(scope="module")
def alone(run_dir):
    """The plots drawn in this process alone, for comparison."""
    return plots.make_plots(run_dir, include=INCLUDE)


def test_the_worker_draws_the_same_bytes_as_the_run(run_dir, alone):
    w = worker.PlotWorker.start()
    assert w is not None
    try:
        assert w.submit(run_dir, list(worker.WORKER_PLOTS))
        got = w.collect(timeout=120)
    finally:
        w.close()
    assert got is not None and set(got) == set(worker.WORKER_PLOTS)
    for name in worker.WORKER_PLOTS:
        assert isinstance(got[name], bytes) and got[name] == alone[name], name


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


@pytest.mark.parametrize("answer, takes", [(None, True), (None, False), ({"activity": b"partial"}, True)])
def test_without_an_answer_the_run_draws_the_worker_s_plots_itself(run_dir, alone, answer, takes):
    fake, notes = _Fake(answer, takes), []
    got = pipeline._draw_plots(run_dir, None, INCLUDE, fake, notes.append)
    assert list(got) == INCLUDE  # the order asked for
    assert got == alone
    assert fake.jobs == [list(worker.WORKER_PLOTS)]
    assert len(notes) == (1 if takes else 0)  # a worker that took the job and failed is reported


def test_with_an_answer_the_worker_s_plots_are_used_in_the_report_s_order(run_dir):
    include = [p for p in plots.PLOTS if p not in ("umap", "pca", "dendrogram", "confidence", "radar")]
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
    monkeypatch.setattr(sys, "executable", "/usr/bin/uwsgi")  # not a plain Python to start
    assert not worker.usable(2, True)
    assert not worker.usable(None, True)
    assert not worker.usable(2, False)
    monkeypatch.setitem(sys.modules, "matplotlib", sys.modules["gpuseg"])  # imported before the run
    assert not worker.usable(2, True)


def test_a_worker_whose_run_ends_without_a_job_exits_cleanly():
    w = worker.PlotWorker.start()
    out, _ = w._proc.communicate(b"", timeout=120)  # end of input, as when the run is killed
    assert w._proc.returncode == 0 and out.strip() == b""


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


def test_a_run_with_a_worker_draws_what_a_run_without_one_draws(tmp_path, monkeypatch):
    """Every plot of a run whose worker drew three of them equals the plot the run draws
    alone from its in-memory insights (the worker and the run read insights.json instead)."""
    used, given = [], []
    real_collect, real_write = worker.PlotWorker.collect, pipeline.write_report

    def collect(self, timeout=worker.TIMEOUT_S):
        got = real_collect(self, timeout)
        used.append(got)
        return got

    def write_report(out_dir, insights=None, note=None, umap=False, worker=None):
        given.append(insights)
        return real_write(out_dir, insights, note, umap, worker)

    monkeypatch.setattr(worker, "usable", lambda threads, report: True)
    monkeypatch.setattr(worker.PlotWorker, "collect", collect)
    monkeypatch.setattr(pipeline, "write_report", write_report)
    from gpuseg.config import build_config

    out = tmp_path / "out"
    pipeline.run(build_config(out=str(out), synthetic_customers=400, k="3-4", methods="kmeans", device="cpu",
                              stability=0))
    assert len(used) == 1 and used[0] is not None and set(used[0]) == set(worker.WORKER_PLOTS)
    with_worker = {p.name: p.read_bytes() for p in (out / "plots").glob("*.png")}
    alone = pipeline._draw_plots(out, given[0], [p for p in plots.PLOTS if p != "umap"], None)
    assert set(with_worker) == {f"{n}.png" for n, v in alone.items() if isinstance(v, bytes)}
    for name, data in alone.items():
        if isinstance(data, bytes):
            assert with_worker[f"{name}.png"] == data, name


def test_the_run_counts_only_threads_with_a_core_of_their_own(monkeypatch):
    # --threads 4 on one usable core: no worker; the report module never asks the pipeline
    asked = []
    monkeypatch.setattr(worker, "usable", lambda threads, report: asked.append(threads) or False)
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 1)
    monkeypatch.setattr(pipeline._backend, "RUN_THREADS", 4)
    cfg = types.SimpleNamespace(report=True)  # all that _plot_worker reads of the config
    assert pipeline._plot_worker(cfg, None) is None and asked == [1]
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 8)
    assert pipeline._plot_worker(cfg, None) is None and asked == [1, 4]
