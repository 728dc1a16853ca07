from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from gpuseg.backend import to_host
from gpuseg.cluster import make_estimator
from gpuseg.errors import ConfigError
from gpuseg.model import FORMAT_VERSION, _manifest_text, load_model, save_model
from gpuseg.prep.scale import FeatureScaler

K = 4
SENTINEL_ENV = "GPUSEG_TEST_SENTINEL"


@pytest.fixture(scope="module")
def data():
    """Well-separated blobs (raw, skewed positive) and their scaled form."""
    X, _ = make_blobs(400, n_features=3, centers=K, cluster_std=0.4, center_box=(-10, 10), random_state=1)
    raw = np.exp(X / 4)  # positive and skewed: the scaler takes log1p of some columns
    scaler = FeatureScaler().fit(raw)
    return raw, scaler, scaler.transform(raw)


FAST_PARAMS = {
    "pso_kmeans": {"n_particles": 8, "max_iter": 10},
    "som": {"grid": (4, 4), "n_epochs": 5},
    "deep_kmeans": {"hidden": (8,), "latent_dim": 2, "pretrain_epochs": 5, "n_init": 2},
    "dec": {"hidden": (8,), "latent_dim": 2, "pretrain_epochs": 5, "n_init": 2, "max_iter": 20},
}


def _save(tmp_path, data, method, **params):
    raw, scaler, Z = data
    est = make_estimator(method, K, 0, {**FAST_PARAMS.get(method, {}), **params}).fit(Z)
    folder = save_model(
        tmp_path / "model", estimator=est, method=method, scaler=scaler,
        feature_names=["recency", "frequency", "monetary"], config_dict={"seed": 0, "out": Path("x"), "k": (2, 6)},
        segment_names=[f"segment {i}" for i in range(K)], extra={"note": "test"},
    )
    return est, folder


@pytest.mark.parametrize(
    "method", ["adaptive_kmeans", "kmeans", "kmeans_random", "minibatch_kmeans", "pso_kmeans", "gmm", "som", "ward"]
)
def test_round_trip_labels(tmp_path, data, method):
    _, _, Z = data
    est, folder = _save(tmp_path, data, method)
    model = load_model(folder)
    assert model.method == method and model.k == K
    assert model.feature_names == ["recency", "frequency", "monetary"]
    assert model.segment_names == [f"segment {i}" for i in range(K)]
    labels = model.predict(Z)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, to_host(est.predict(Z)))
    # well-separated blobs: predict on the training rows is the training labels (Ward too)
    np.testing.assert_array_equal(labels, to_host(est.labels_))


def test_adaptive_model_stopped_early_gives_its_labels_back(tmp_path):
    """Overlapping groups and an adaptation stopped while samples still move (``tol``): the
    saved model's assignment is still the run's labels, every one."""
    X, _ = make_blobs(1500, n_features=4, centers=5, cluster_std=2.5, random_state=3)
    scaler = FeatureScaler().fit(X)
    Z = scaler.transform(X)
    est = make_estimator("adaptive_kmeans", 5, 0, {"tol": 0.05, "max_iter": 2}).fit(Z)
    folder = save_model(tmp_path / "model", estimator=est, method="adaptive_kmeans", scaler=scaler,
                        feature_names=["a", "b", "c", "d"], config_dict={"seed": 0},
                        segment_names=[f"segment {i}" for i in range(5)])
    np.testing.assert_array_equal(load_model(folder).predict(Z), to_host(est.labels_))


def test_round_trip_gmm_proba(tmp_path, data):
    _, _, Z = data
    est, folder = _save(tmp_path, data, "gmm", covariance_type="full")
    model = load_model(folder)
    assert model.has_predict_proba
    np.testing.assert_array_equal(model.predict(Z), est.predict(Z))
    np.testing.assert_allclose(model.predict_proba(Z), est.predict_proba(Z), rtol=1e-10, atol=1e-12)


def test_ward_micro_mode_reproduces_labels(tmp_path, data):
    _, _, Z = data
    est, folder = _save(tmp_path, data, "ward", n_micro=40)
    assert not est.exact_
    np.testing.assert_array_equal(load_model(folder).predict(Z), est.labels_)


def test_no_predict_proba_for_kmeans(tmp_path, data):
    _, folder = _save(tmp_path, data, "kmeans")
    with pytest.raises(AttributeError, match="no predict_proba"):
        load_model(folder).predict_proba(data[2])


def test_scaler_round_trip(tmp_path, data):
    raw, scaler, Z = data
    _, folder = _save(tmp_path, data, "kmeans")
    loaded = load_model(folder).scaler
    np.testing.assert_array_equal(loaded.log_mask_, scaler.log_mask_)
    np.testing.assert_array_equal(loaded.transform(raw), Z)
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["format"] == "gpuseg-model" and manifest["format_version"] == 3  # 4: UMAP/autoencoder embeddings
    assert manifest["scaler"]["features"]["recency"]["mean"] == pytest.approx(scaler.mean_[0])
    assert manifest["config"] == {"seed": 0, "out": "x", "k": [2, 6]}
    assert manifest["params"]["n_clusters"] == K


def test_feature_weights_round_trip_and_format_1_reads_as_weight_1(tmp_path, data):
    raw, _, _ = data
    scaler = FeatureScaler().fit(raw).set_weights([1.0, 0.5, 0.0])
    Z = scaler.transform(raw)
    assert np.all(Z[:, 2] == 0)
    est = make_estimator("adaptive_kmeans", K, 0).fit(Z)
    folder = save_model(tmp_path / "model", estimator=est, method="adaptive_kmeans", scaler=scaler,
                        feature_names=["recency", "frequency", "monetary"], config_dict={},
                        segment_names=[f"segment {i}" for i in range(K)])
    model = load_model(folder)
    np.testing.assert_array_equal(model.scaler.weights_, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(model.scaler.transform(raw), Z)
    np.testing.assert_array_equal(model.predict(Z), to_host(est.labels_))
    # a format-1 folder (before weights) still loads, every weight 1
    _, old = _save(tmp_path / "v1", data, "kmeans")
    arrays = dict(np.load(old / "arrays.npz"))
    del arrays["scaler_weights"]
    np.savez(old / "arrays.npz", **arrays)
    manifest = json.loads((old / "model.json").read_text())
    manifest["format_version"] = 1
    manifest["files"]["arrays.npz"] = hashlib.sha256((old / "arrays.npz").read_bytes()).hexdigest()
    (old / "model.json").write_text(json.dumps(manifest))
    np.testing.assert_array_equal(load_model(old).scaler.weights_, np.ones(3))


@pytest.mark.parametrize("method", ["deep_kmeans", "dec"])
def test_round_trip_deep(tmp_path, data, method):
    pytest.importorskip("torch")
    _, _, Z = data
    est, folder = _save(tmp_path, data, method)
    assert (folder / "weights.pt").is_file()
    model = load_model(folder)
    np.testing.assert_array_equal(model.predict(Z), to_host(est.predict(Z)))
    np.testing.assert_array_equal(model.predict(Z), to_host(est.labels_))
    if method == "dec":
        np.testing.assert_allclose(model.predict_proba(Z), est.predict_proba(Z), rtol=1e-5, atol=1e-6)


NAMES = ["recency", "frequency", "monetary"]


def _consensus(Z, members, strategy="vote"):
    """A consensus fitted as the pipeline fits it: on the members' labels, members at k and k+1."""
    fitted = {m: make_estimator(m, K + (i % 2), 0, FAST_PARAMS.get(m, {})).fit(Z) for i, m in enumerate(members)}
    est = make_estimator("consensus", K, 0, {"members": tuple(members), "strategy": strategy})
    est.fit(Z, member_labels={m: e.labels_ for m, e in fitted.items()})
    return est, fitted


@pytest.mark.parametrize("members", [("kmeans", "gmm", "som"), ("kmeans", "minibatch_kmeans", "deep_kmeans")],
                         ids=["shallow", "with-deep"])
def test_consensus_round_trip(tmp_path, data, members):
    if "deep_kmeans" in members:
        pytest.importorskip("torch")
    _, scaler, Z = data
    est, fitted = _consensus(Z, members)
    k = int(est.labels_.max()) + 1
    folder = save_model(tmp_path / "model", estimator=est, method="consensus", scaler=scaler, feature_names=NAMES,
                        config_dict={}, segment_names=[f"s{i}" for i in range(k)], members=fitted)
    if "deep_kmeans" in members:
        assert len(list(folder.glob("weights_*.pt"))) == 1 and not (folder / "weights.pt").exists()
    model = load_model(folder)
    assert model.method == "consensus" and not model.has_predict_proba
    labels, confidence = model.predict(Z), model.predict_confidence(Z)
    # exact wherever every member's predict gives its training labels (true on these blobs)
    assert all(np.array_equal(to_host(e.predict(Z)), to_host(e.labels_)) for e in fitted.values())
    np.testing.assert_array_equal(labels, to_host(est.labels_))
    np.testing.assert_allclose(confidence, to_host(est.confidence_))


def test_consensus_needs_members_and_the_vote(tmp_path, data):
    _, _, Z = data
    est, fitted = _consensus(Z, ("kmeans", "gmm"))
    names = [f"s{i}" for i in range(int(est.labels_.max()) + 1)]
    with pytest.raises(ValueError, match="member 'gmm'"):
        save_model(tmp_path, estimator=est, method="consensus", scaler=None, feature_names=NAMES, config_dict={},
                   segment_names=names, members={"kmeans": fitted["kmeans"]})
    est, fitted = _consensus(Z, ("kmeans", "gmm"), strategy="evidence")
    with pytest.raises(NotImplementedError, match="evidence"):
        save_model(tmp_path, estimator=est, method="consensus", scaler=None, feature_names=NAMES, config_dict={},
                   segment_names=names, members=fitted)


def test_relabel_maps_predictions(tmp_path, data):
    _, _, Z = data
    est = make_estimator("kmeans", K, 0, {}).fit(Z)
    relabel = np.array([2, 0, 1, 0])  # two estimator labels into one segment
    folder = save_model(tmp_path / "model", estimator=est, method="kmeans", scaler=None, feature_names=NAMES,
                        config_dict={}, segment_names=["a", "b", "c"], relabel=relabel)
    model = load_model(folder)
    assert model.k == 3
    np.testing.assert_array_equal(model.predict(Z), relabel[to_host(est.labels_)])
    with pytest.raises(ValueError, match="relabel"):
        save_model(tmp_path / "m2", estimator=est, method="kmeans", scaler=None, feature_names=NAMES,
                   config_dict={}, segment_names=["a", "b"], relabel=np.array([0, 2, 2, 0]))


def test_density_methods_not_implemented(tmp_path):
    with pytest.raises(NotImplementedError, match="dbscan"):
        save_model(tmp_path, estimator=object(), method="dbscan", scaler=None, feature_names=[],
                   config_dict={}, segment_names=[])


# --- refusing bad folders ----------------------------------------------------------------------


def _rewrite_manifest(folder, **changes):
    path = folder / "model.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def _rehash(folder, name):
    """What an attacker would do: make model.json's hash match the swapped file."""
    manifest = json.loads((folder / "model.json").read_text())
    manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "model.json").write_text(_manifest_text(manifest))  # model.json's own digest too


def test_tampered_file_is_refused(tmp_path, data):
    _, folder = _save(tmp_path, data, "kmeans")
    arrays = dict(np.load(folder / "arrays.npz"))
    arrays["centers"] = arrays["centers"] + 1
    np.savez(folder / "arrays.npz", **arrays)
    with pytest.raises(ConfigError, match=r"arrays\.npz: SHA-256 does not match"):
        load_model(folder)


def test_truncated_file_is_refused(tmp_path, data):
    _, folder = _save(tmp_path, data, "kmeans")
    blob = (folder / "arrays.npz").read_bytes()
    (folder / "arrays.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ConfigError, match=r"arrays\.npz: SHA-256"):
        load_model(folder)
    _rehash(folder, "arrays.npz")  # a consistent but truncated archive is still refused
    with pytest.raises(ConfigError, match=r"arrays\.npz"):
        load_model(folder)


def test_missing_file_is_refused(tmp_path, data):
    _, folder = _save(tmp_path, data, "kmeans")
    (folder / "arrays.npz").unlink()
    with pytest.raises(ConfigError, match=r"arrays\.npz: missing"):
        load_model(folder)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, "1"], ids=["newer", "older", "string"])
def test_other_format_version_is_refused(tmp_path, data, version):
    _, folder = _save(tmp_path, data, "kmeans")
    _rewrite_manifest(folder, format_version=version)
    with pytest.raises(ConfigError, match=r"model\.json: format_version"):
        load_model(folder)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.json: missing"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError, match="not a gpuseg model"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model(tmp_path)


class _Sentinel:
    """Unpickling this sets an environment variable: proof that code ran."""

    def __reduce__(self):
        return (exec, (f"import os; os.environ[{SENTINEL_ENV!r}] = 'ran'",))


@pytest.fixture
def no_sentinel():
    os.environ.pop(SENTINEL_ENV, None)
    yield
    assert os.environ.get(SENTINEL_ENV) is None, "loading a model ran code from a pickle"


def test_object_array_npz_is_refused(tmp_path, data, no_sentinel):
    _, folder = _save(tmp_path, data, "kmeans")
    arrays = dict(np.load(folder / "arrays.npz"))
    arrays["centers"] = np.array([_Sentinel()], dtype=object)
    np.savez(folder / "arrays.npz", allow_pickle=True, **arrays)
    _rehash(folder, "arrays.npz")
    with pytest.raises(ConfigError, match=r"arrays\.npz: holds data other than plain arrays"):
        load_model(folder)


def test_raw_pickle_as_npz_is_refused(tmp_path, data, no_sentinel):
    _, folder = _save(tmp_path, data, "kmeans")
    (folder / "arrays.npz").write_bytes(pickle.dumps({"centers": _Sentinel()}))
    _rehash(folder, "arrays.npz")
    with pytest.raises(ConfigError, match=r"arrays\.npz: not a NumPy \.npz archive"):
        load_model(folder)


def test_pickled_class_in_weights_is_refused(tmp_path, data, no_sentinel):
    torch = pytest.importorskip("torch")
    _, folder = _save(tmp_path, data, "deep_kmeans")
    state = torch.load(folder / "weights.pt", weights_only=True)
    torch.save({**state, "evil": _Sentinel()}, folder / "weights.pt")
    _rehash(folder, "weights.pt")
    with pytest.raises(ConfigError, match=r"weights\.pt: not a plain tensor state dict"):
        load_model(folder)


def test_loading_imports_no_gpu_library(tmp_path, data):
    _, folder = _save(tmp_path, data, "gmm")
    code = (
        "import sys, numpy as np; from gpuseg.model import load_model; "
        f"m = load_model({str(folder)!r}); m.predict(np.zeros((2, 3))); m.predict_proba(np.zeros((2, 3))); "
        "bad = [n for n in ('cupy', 'cudf', 'cuml', 'torch') if n in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
@pytest.mark.rapids
def test_predict_on_cupy(tmp_path, data):
    from gpuseg import backend

    if not backend.probe_gpu().available:
        pytest.skip("no GPU backend")
    cp = backend.gpu_module("cupy")
    _, _, Z = data
    for method in ("kmeans", "gmm", "som"):
        est, folder = _save(tmp_path / method, data, method)
        model = load_model(folder)
        labels = model.predict(cp.asarray(Z))
        assert backend.is_gpu_array(labels)
        np.testing.assert_array_equal(labels.get(), model.predict(Z))


@pytest.mark.parametrize(
    "name, change, message",
    [("member1__consensus_map", lambda a: a + 10, "'member1__consensus_map' holds labels outside"),
     ("member0__centers", lambda a: a[:1], r"consensus member 0 \(\w+\): array 'centers'")],
    ids=["map-out-of-range", "member-shape"],
)
def test_bad_consensus_arrays_are_refused(tmp_path, data, name, change, message):
    _, _, Z = data
    est, fitted = _consensus(Z, ("kmeans", "minibatch_kmeans"))
    k = int(est.labels_.max()) + 1
    folder = save_model(tmp_path / "model", estimator=est, method="consensus", scaler=None, feature_names=NAMES,
                        config_dict={}, segment_names=[f"s{i}" for i in range(k)], members=fitted)
    arrays = dict(np.load(folder / "arrays.npz"))
    arrays[name] = change(arrays[name])
    np.savez(folder / "arrays.npz", **arrays)
    _rehash(folder, "arrays.npz")
    with pytest.raises(ConfigError, match=message):
        load_model(folder)


# --- the model folder as an untrusted input (issue 16) -----------------------------------------

@pytest.mark.parametrize("swap", ["dev_zero_link", "fifo", "folder"])
def test_only_plain_files_are_read(tmp_path, data, swap):
    import os

    _, folder = _save(tmp_path, data, "kmeans")
    (folder / "arrays.npz").unlink()
    if swap == "dev_zero_link":
        (folder / "arrays.npz").symlink_to("/dev/zero")
        words = "symbolic link"
    elif swap == "fifo":
        os.mkfifo(folder / "arrays.npz")
        words = "not a plain file"
    else:
        (folder / "arrays.npz").mkdir()
        words = "not a plain file"
    with pytest.raises(ConfigError, match=words):  # refused at once: no read of /dev/zero, no hang on the FIFO
        load_model(folder)


def test_unlisted_files_are_refused(tmp_path, data):
    _, folder = _save(tmp_path, data, "kmeans")
    (folder / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="holds notes.txt, which model.json does not list"):
        load_model(folder)


def _edit(folder, change):
    manifest = json.loads((folder / "model.json").read_text())
    change(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("change, words", [
    (lambda m: m["feature_names"].reverse(), "edited after it was saved"),
    (lambda m: m.__setitem__("segment_names", m["segment_names"][::-1]), "edited after it was saved"),
    (lambda m: m["extra"].__setitem__("note", "changed"), "edited after it was saved"),
])
def test_model_json_edits_are_caught(tmp_path, data, change, words):
    """Reversed feature names changed 88.75% of assignments silently: model.json's own
    digest catches any edit (re-indenting it does not count: the digest is of its content)."""
    _, folder = _save(tmp_path, data, "kmeans")
    _edit(folder, change)
    with pytest.raises(ConfigError, match=words):
        load_model(folder)


def test_deeply_nested_model_json_is_one_clear_error(tmp_path, data):
    _, folder = _save(tmp_path, data, "kmeans")
    (folder / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply|not a gpuseg model|not valid JSON"):
        load_model(folder)


def test_nan_centres_are_refused_even_in_a_consistent_forgery(tmp_path, data):
    _, folder = _save(tmp_path, data, "kmeans")
    arrays = dict(np.load(folder / "arrays.npz"))
    arrays["centers"][0, 0] = np.nan
    np.savez(folder / "arrays.npz", **arrays)
    _rehash(folder, "arrays.npz")
    with pytest.raises(ConfigError, match="'centers' holds NaN"):
        load_model(folder)


_VALUE = {"status": "ok", "horizon_days": 365.0, "discount_rate": 0.1, "margin": 1.0,
          "bgnbd": {"r": 0.8, "alpha_days": 20.0, "a": 0.5, "b": 3.0},
          "gamma_gamma": {"status": "ok", "p": 0.6, "q": 9.5, "v": 7000.0, "mean_spend": 400.0}}


@pytest.mark.parametrize("change, words", [
    (lambda d: d["value"].__setitem__("horizon_days", 1e300), "horizon_days"),  # assign never ended
    (lambda d: d["value"].__setitem__("discount_rate", -5.0), "discount_rate"),  # complex predicted_clv
    (lambda d: d["value"]["bgnbd"].__setitem__("r", -5.0), "bgnbd"),  # negative purchases
    (lambda d: d["value"].__setitem__("bgnbd", {}), "bgnbd"),  # a KeyError traceback
    (lambda d: d["value"]["gamma_gamma"].__setitem__("v", 1e308), "gamma_gamma"),  # inf predicted_clv
    (lambda d: d["value"].__setitem__("horizon_days", 0.0), "horizon_days"),
    (lambda d: d["clean"].__setitem__("outlier_fence", ["a", "b"]), "outlier_fence"),  # a TypeError traceback
    (lambda d: d["confidence"].__setitem__("within", -1.0), "within"),  # everyone low confidence
])
def test_data_values_a_forger_could_write_are_refused(change, words):
    """Found by a hunt: each passed the digest (re-signed) and then hung, crashed or gave nonsense."""
    import copy

    from gpuseg.model import _check_data

    data = {"value": copy.deepcopy(_VALUE), "clean": {"outlier_fence": [0.0, 10.0]},
            "confidence": {"kind": "margin", "within": 0.1}}
    _check_data(Path("m/model.json"), copy.deepcopy(data))  # the valid one passes
    legal = copy.deepcopy(data)  # what the config and earlier fits allow: half a day, a -> 0 before the bounds
    legal["value"]["horizon_days"], legal["value"]["bgnbd"]["a"] = 0.5, 3e-8
    _check_data(Path("m/model.json"), legal)
    change(data)
    with pytest.raises(ConfigError, match=words):
        _check_data(Path("m/model.json"), data)


def test_a_saved_models_scaler_reads_a_frame_of_features_by_name(tmp_path):
    """features.parquet handed to the saved model's scaler as a DataFrame, its columns in
    another order and the id as a column: read by name, the run's segments come back."""
    from gpuseg.config import build_config
    from gpuseg.pipeline import run

    run(build_config(None, out=str(tmp_path), synthetic_customers=400, k="3", methods="kmeans", device="cpu",
                     stability=0, report=False))
    model = load_model(tmp_path / "model")
    feats = pd.read_parquet(tmp_path / "features.parquet")
    shuffled = feats[list(reversed(feats.columns))]
    got = model.predict(model.scaler.transform(shuffled))
    seg = pd.read_parquet(tmp_path / "segments.parquet")
    np.testing.assert_array_equal(got, seg["segment"].to_numpy())


@pytest.mark.parametrize("version", [3, "2", 0, True])
def test_a_feature_version_this_gpuseg_does_not_compute_is_refused(tmp_path, version):
    """A model saved by a newer gpuseg (features version 3) would have been computed as
    version 2 without a word; now load_model says why it cannot use it."""
    from gpuseg.config import build_config
    from gpuseg.errors import ConfigError
    from gpuseg.pipeline import run

    run(build_config(None, out=str(tmp_path), synthetic_customers=300, k="3", methods="kmeans", device="cpu",
                     stability=0, report=False))
    folder = tmp_path / "model"
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["data"]["features"]["version"] == 2
    manifest["data"]["features"]["version"] = version
    (folder / "model.json").write_text(_manifest_text(manifest))
    with pytest.raises(ConfigError, match="data.features.version .* is not one this gpuseg computes"):
        load_model(folder)
