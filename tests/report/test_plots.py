from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from gpuseg.errors import ConfigError, DeviceError  # noqa: E402
from gpuseg.report import plots  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HAS_UMAP = importlib.util.find_spec("umap") is not None


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    assert isinstance(data, bytes) and data[:8] == PNG_MAGIC, "not PNG bytes"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_run, copy_run):
    """A small real run's data files (without the insights or report a run may also write)."""
    return copy_run(small_run, tmp_path_factory.mktemp("run") / "out")


def plot_insights(run_dir) -> dict:
    """Insights with what only insights can give the plots: activity grids and a U-matrix."""
    segs = sorted(int(s) for s in pd.read_parquet(run_dir / "segments.parquet")["segment"].unique() if s >= 0)
    rng = np.random.default_rng(1)
    out = []
    for s in segs:
        grid = rng.random((7, 24))
        out.append({"segment": s, "name": f"persona {s}", "activity": (grid / grid.sum()).tolist()})
    return {"segments": out, "som_umatrix": rng.random((6, 8)).tolist()}


@pytest.fixture(scope="module")
def all_plots(run_dir):
    return plots.make_plots(run_dir, plot_insights(run_dir))


@pytest.mark.parametrize("name", [n for n in plots.PLOTS if n != "umap" or HAS_UMAP])
def test_every_plot_is_png(all_plots, name):
    width, height = png_size(all_plots[name])
    assert 300 <= width <= 2500 and 200 <= height <= 2500


def test_make_plots_keys_in_report_order(all_plots):
    assert list(all_plots) == list(plots.PLOTS)


def test_skips_say_why_without_insights(run_dir):
    got = plots.make_plots(run_dir, include=["activity", "umatrix", "confidence"])
    assert "activity" in got["activity"] and "insights" in got["activity"]
    assert "U-matrix" in got["umatrix"]
    png_size(got["confidence"])


def test_insights_json_in_folder_is_used(run_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run_dir, folder)
    (folder / "insights.json").write_text(json.dumps(plot_insights(run_dir)))
    got = plots.make_plots(folder, include=["activity", "umatrix"])
    png_size(got["activity"])
    png_size(got["umatrix"])


def test_unknown_plot_name(run_dir):
    with pytest.raises(ValueError, match="unknown plots"):
        plots.make_plots(run_dir, include=["pie"])


def test_save_dir_and_path_write_the_same_bytes(run_dir, tmp_path):
    got = plots.make_plots(run_dir, include=["confidence"], save_dir=tmp_path / "png")
    assert (tmp_path / "png" / "confidence.png").read_bytes() == got["confidence"]
    data = plots.confidence_plot(np.linspace(0, 1, 50), path=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes() == data


def test_scaled_features_reproduce_the_run_scaling(run_dir):
    run = plots.read_outputs(run_dir)
    X = plots.scaled_features(run.features, run.metrics["scaling"])
    assert X.shape == (len(run.segments), len(run.feature_names))
    # the scaler was fitted on these very customers: zero mean, and each feature's weight as
    # its standard deviation (the clustering space)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-6)
    varies = X.std(axis=0) > 0
    weights = np.array([run.metrics["scaling"][n]["weight"] for n in run.feature_names])
    np.testing.assert_allclose(X.std(axis=0)[varies], weights[varies], rtol=1e-6)


def test_scaled_features_standardise_without_parameters():
    f = pd.DataFrame({"customer_id": [1, 2, 3], "a": [1.0, 2.0, 3.0], "b": [5.0, 5.0, 5.0]})
    X = plots.scaled_features(f)
    np.testing.assert_allclose(X[:, 0], [-1.224745, 0.0, 1.224745], rtol=1e-6)
    np.testing.assert_array_equal(X[:, 1], 0.0)


def test_segment_zscores_and_key_features():
    X = np.array([[1.0, 0.0], [3.0, 0.0], [-2.0, 1.0], [9.0, 9.0]])
    z = plots.segment_zscores(X, np.array([0, 0, 1, -1]), ["monetary", "other"], {0: "big", 1: "small"})
    assert list(z.index) == ["big", "small"]
    np.testing.assert_allclose(z.to_numpy(), [[2.0, 0.0], [-2.0, 1.0]])
    assert plots.key_features(z, n=2) == ["monetary", "other"]


def test_reads_insight_zscores_when_every_segment_has_them(run_dir):
    run = plots.read_outputs(run_dir)
    names = run.segment_names()
    ins = {"segments": [{"segment": s, "profile": {"monetary": {"z": float(s)}, "views": {"z": -1.0}}}
                        for s in names]}
    z = plots._insight_zscores(ins, names)
    assert list(z.columns) == ["monetary", "views"] and z["monetary"].tolist() == [float(s) for s in names]
    assert plots._insight_zscores({"segments": [{"segment": 0}]}, names) is None


def test_dendrogram_of_segment_centres():
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    png_size(plots.dendrogram_plot(centres, weights=[10, 20, 5], leaf_names=["a", "b", "c"], n_clusters=2))


def test_plots_refuse_data_they_cannot_draw():
    with pytest.raises(ValueError, match="no method succeeded"):
        plots.comparison_plot(pd.DataFrame({"method": ["gmm"], "status": ["failed"]}))
    with pytest.raises(ValueError, match="scores over k"):
        plots.sweep_plot({"gmm": {"status": "failed"}})
    with pytest.raises(ValueError, match=r"\(7, 24\)"):
        plots.activity_plot({"a": np.zeros((24, 7))})
    with pytest.raises(ValueError, match="2-D"):
        plots.umatrix_plot(np.zeros(5))
    with pytest.raises(ValueError, match="no confidence"):
        plots.confidence_plot([])


def test_read_outputs_needs_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        plots.read_outputs(tmp_path / "missing")
    with pytest.raises(ConfigError, match="metrics.json"):
        plots.read_outputs(tmp_path)


def test_without_matplotlib_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(DeviceError, match="matplotlib"):
        plots.confidence_plot([0.1, 0.9])


def test_umap_is_skipped_with_a_reason_without_umap_learn(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    got = plots.make_plots(run_dir, include=["umap"])
    assert isinstance(got["umap"], str) and "umap" in got["umap"].lower()


def test_report_with_umap_asked_for_says_on_the_console_why_it_is_missing(run_dir, tmp_path, monkeypatch, capsys):
    """`gpuseg report OUT --umap` without umap-learn: the page lists the plot as left out,
    and the console says so too (it said nothing and exited 0)."""
    import shutil

    from gpuseg.cli import main

    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    monkeypatch.setitem(sys.modules, "umap", None)
    assert main(["report", str(out), "--umap"]) == 0
    err = capsys.readouterr().err
    assert "note: UMAP plot left out:" in err and "umap" in err.split("UMAP plot left out:")[1].lower()
    assert not (out / "plots" / "umap.png").exists()


def test_segment_tree_leaves_in_the_segments_colours(monkeypatch):
    """The report's tree of the chosen segments: each leaf label in its segment's colour
    of the scatter plots (segment 0 the first colour, ...)."""
    seen = {}

    def capture(fig, path):
        ax = fig.axes[0]
        seen.update({t.get_text(): t.get_color() for t in ax.get_xticklabels()})
        return b"png"

    monkeypatch.setattr(plots, "_png", capture)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    labels = np.repeat(np.arange(3), 30)
    X[labels == 2] += 5
    plots._segment_tree(X, labels, {0: "zero", 1: "one", 2: "two"}, None)
    colours = plots._colours(3)
    assert seen == {"zero": colours[0], "one": colours[1], "two": colours[2]}


def test_a_segment_missing_from_a_sample_shifts_no_colour(monkeypatch):
    """Colours follow the segment's number: the scatter of a sample without segment 1 still
    draws segment 2 in segment 2's colour (as the tree and the other plots do)."""
    seen = {}

    def capture(fig, path):
        for coll in fig.axes[0].collections:
            seen[coll.get_label()] = tuple(coll.get_facecolor()[0][:3])
        return b"png"

    monkeypatch.setattr(plots, "_png", capture)
    pts = np.random.default_rng(0).normal(size=(40, 2))
    labels = np.repeat([0, 2], 20)
    plots._scatter(pts, labels, {0: "zero", 1: "one", 2: "two"}, "t", ("a", "b"), None)
    colours = plots._colours(3)
    assert seen == {"zero (20)": tuple(colours[0][:3]), "two (20)": tuple(colours[2][:3])}


def test_skipping_empty_axis_labels_draws_the_same_picture(run_dir, monkeypatch):
    """Empty axis labels are hidden and pinned before drawing (speed); every plot stays the
    same picture, byte for byte, and labels with text stay where they were."""
    insights = plot_insights(run_dir)
    names = [n for n in plots.PLOTS if n != "umap"]
    fast = plots.make_plots(run_dir, insights, include=names)
    monkeypatch.setattr(plots, "_skip_empty_axis_labels", lambda fig: None)
    plain = plots.make_plots(run_dir, insights, include=names)
    for name in names:
        assert isinstance(fast[name], bytes)
        assert fast[name] == plain[name], name


def test_only_empty_axis_labels_are_hidden():
    fig = plots._figure(4, 3)
    ax = fig.add_subplot()
    ax.set_ylabel("customers")
    plots._skip_empty_axis_labels(fig)
    assert not ax.xaxis.label.get_visible()
    assert ax.yaxis.label.get_visible() and ax.yaxis.label.get_text() == "customers"


@pytest.mark.parametrize("floor, scale", [(1.0, "log"), (0.0, "linear")])
def test_the_inertia_panel_is_drawn_on_the_log_axis_whose_knee_chooses_k(monkeypatch, floor, scale):
    """The k rule takes the knee of the log inertia: the panel shows that curve (a linear axis
    where an inertia of 0 has no logarithm)."""
    drawn = {}

    def keep(fig, path):
        drawn["fig"] = fig
        return b""

    monkeypatch.setattr(plots, "_png", keep)
    sweep = [{"k": k, "inertia": 1000.0 / k ** 2 if k < 8 else floor, "silhouette": 0.3, "davies_bouldin": 1.0,
              "calinski_harabasz": 50.0} for k in range(2, 9)]
    plots.sweep_plot({"adaptive_kmeans": {"status": "ok", "sweep": sweep, "chosen_index": 3}})
    inertia = drawn["fig"].axes[0]
    assert inertia.get_yscale() == scale and drawn["fig"].axes[1].get_yscale() == "linear"
    assert ("log scale" in inertia.get_title()) == (scale == "log")
