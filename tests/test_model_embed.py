"""Saved models of runs on an embedding (``--embed pca|autoencoder|umap``): the embedder is
kept with the model, predict embeds first, loading checks the embedding's files and fields,
and ``assign`` / ``update`` work on such a model."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

import gpuseg.embed.projection as projection
from gpuseg.backend import to_host
from gpuseg.cli import main
from gpuseg.cluster import make_estimator
from gpuseg.embed.projection import PCA, UMAP, knn_place
from gpuseg.errors import ConfigError
from gpuseg.model import FORMAT_VERSION, _manifest_text, load_model, save_model
from gpuseg.prep.scale import FeatureScaler
from gpuseg.segments.confidence import margin_reference, segment_confidence

K = 4
NAMES = ["recency", "frequency", "monetary", "views", "basket"]
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
FAST = {"deep_kmeans": {"hidden": (8,), "latent_dim": 2, "pretrain_epochs": 3, "n_init": 1},
        "som": {"grid": (3, 3), "n_epochs": 3}}


@pytest.fixture(scope="module")
def data():
    """Well-separated blobs in 5 features, scaled (float32)."""
    X, _ = make_blobs(300, n_features=len(NAMES), centers=K, cluster_std=0.5, center_box=(-8, 8), random_state=3)
    raw = np.exp(X / 4)
    scaler = FeatureScaler().fit(raw)
    return scaler, scaler.transform(raw)


def _autoencoder(X):
    from gpuseg.embed import Autoencoder

    ae = Autoencoder(hidden=(8,), latent_dim=3, max_epochs=3, random_state=0)
    return ae, ae.fit_transform(X)


@pytest.fixture(scope="module")
def embedded(data):
    """embedded(name) -> (fitted embedder, embedding of the data), fitted once per module."""
    fitted = {}

    def get(name):
        if name not in fitted:
            X = data[1]
            fitted[name] = _autoencoder(X) if name == "autoencoder" else (PCA(3).fit(X), PCA(3).fit_transform(X))
        return fitted[name]

    return get


def _fake_umap(X, n_neighbors=7):
    """A fitted UMAP without running umap-learn: a smooth non-linear map of X as its
    coordinates (what the model keeps is the same: rows, coordinates, n_neighbors)."""
    u = UMAP(n_components=2, n_neighbors=n_neighbors)
    P = PCA(2).fit_transform(X)
    u.embedding_ = np.ascontiguousarray(np.tanh(P / 2) * 5 + 0.1 * P[:, ::-1] ** 2, dtype=np.float32)
    u.n_features_in_ = X.shape[1]
    return u


def _confidence_data(est, Z):
    """The confidence reference the pipeline saves with a model (``gpuseg.pipeline._model_data``
    without a calibration): the loaded model's confidence is then the run's,
    ``segment_confidence(est, Z)``."""
    if hasattr(est, "confidence_"):
        return {"kind": "vote"}, {}
    if hasattr(est, "predict_proba"):
        return {"kind": "probability"}, {}
    centers, own, within, space = margin_reference(est, Z, est.labels_)
    own, labels = np.asarray(to_host(own)), np.asarray(to_host(est.labels_))
    rows = np.arange(centers.shape[0])
    rows[own[own >= 0]] = labels[own >= 0]
    return ({"kind": "margin", "within": float(within), "space": "embedding" if space is Z else "latent"},
            {"confidence_centers": to_host(centers), "confidence_rows": rows.astype(np.int32)})


def _save(folder, scaler, est, method, embedder, rows=None, members=None, Z=None):
    """save_model as the pipeline calls it; with ``Z`` (what est was fitted on) the run's
    confidence reference too."""
    k = int(np.asarray(to_host(est.labels_)).max()) + 1
    data = {"features": {"names": NAMES, "groups": {}, "category_columns": {}}}
    arrays = None
    if Z is not None:
        data["confidence"], arrays = _confidence_data(est, Z)
    return save_model(folder, estimator=est, method=method, scaler=scaler, feature_names=NAMES, config_dict={},
                      segment_names=[f"s{i}" for i in range(k)], members=members, embedder=embedder,
                      embedder_rows=rows, data=data, data_arrays=arrays)


def _consensus(Z, members):
    fitted = {m: make_estimator(m, K, 0, FAST.get(m, {})).fit(Z) for m in members}
    est = make_estimator("consensus", K, 0, {"members": tuple(members)})
    est.fit(Z, member_labels={m: e.labels_ for m, e in fitted.items()})
    return est, fitted


def _fit(method, Z, members):
    if method == "consensus":
        return _consensus(Z, members)
    return make_estimator(method, K, 0, FAST.get(method, {})).fit(Z), None


def _forge(folder, manifest_change=None, arrays_change=None, file_bytes=None):
    """Edit model.json / arrays.npz (or replace other files: ``file_bytes``, name -> bytes)
    and make every hash agree, as a forger would."""
    manifest = json.loads((folder / "model.json").read_text())
    if arrays_change is not None:
        arrays = dict(np.load(folder / "arrays.npz"))
        arrays_change(arrays)
        np.savez(folder / "arrays.npz", **arrays)
        manifest["files"]["arrays.npz"] = hashlib.sha256((folder / "arrays.npz").read_bytes()).hexdigest()
    for name, content in (file_bytes or {}).items():
        (folder / name).write_bytes(content)
        manifest["files"][name] = hashlib.sha256(content).hexdigest()
    if manifest_change is not None:
        manifest_change(manifest)
    (folder / "model.json").write_text(_manifest_text(manifest))


# --- PCA and autoencoder: exact ---------------------------------------------------------------


@pytest.mark.parametrize("method, members", [
    ("kmeans", None), ("gmm", None), ("consensus", ("kmeans", "gmm", "som")),
    pytest.param("deep_kmeans", None, marks=needs_torch),  # its network takes the embedding's width
    pytest.param("consensus", ("kmeans", "deep_kmeans"), marks=needs_torch),
])
@pytest.mark.parametrize("embed", ["pca", pytest.param("autoencoder", marks=needs_torch)])
def test_embedded_round_trip_reproduces_the_labels(tmp_path, data, embedded, embed, method, members):
    scaler, X = data
    embedder, Z = embedded(embed)
    est, fitted = _fit(method, Z, members)
    folder = _save(tmp_path / "m", scaler, est, method, embedder, members=fitted, Z=Z)
    assert (folder / "embedder.pt").exists() == (embed == "autoencoder")
    model = load_model(folder)
    assert model.embedded and model.embedding["method"] == embed and model.embedding["n_components"] == 3
    np.testing.assert_array_equal(to_host(model.embed(X)), to_host(Z))  # bit for bit: the same network
    np.testing.assert_array_equal(model.predict(X), to_host(est.labels_))
    if method == "consensus":  # members predict on the embedding, which was computed once
        assert all(np.array_equal(m.predict(X), to_host(fitted[n].labels_)) for m, n in zip(model.members, [
            e["method"] for e in model.state["members"]]))
    segments, confidence = model.predict_with_confidence(X)
    np.testing.assert_array_equal(segments, model.predict(X))
    # the run's confidence (margin, posterior or agreeing share), not merely a number in [0, 1]
    np.testing.assert_allclose(confidence, to_host(segment_confidence(est, Z)), rtol=0, atol=1e-5)


def test_resaving_without_an_embedding_removes_the_old_networks(tmp_path, data, embedded):
    pytest.importorskip("torch")
    scaler, X = data
    ae, Z = embedded("autoencoder")
    _save(tmp_path / "m", scaler, make_estimator("kmeans", K, 0, {}).fit(Z), "kmeans", ae)
    folder = save_model(tmp_path / "m", estimator=make_estimator("kmeans", K, 0, {}).fit(X), method="kmeans",
                        scaler=scaler, feature_names=NAMES, config_dict={}, segment_names=list("abcd"))
    assert not (folder / "embedder.pt").exists() and not load_model(folder).embedded


@needs_torch
def test_update_keeps_the_autoencoder_and_moves_centres_in_its_embedding(tmp_path, data, embedded):
    from gpuseg.dynamic import update_model
    from gpuseg.model import save_updated

    scaler, X = data
    ae, Z = embedded("autoencoder")
    est, fitted = _consensus(Z, ("kmeans", "gmm"))
    model = load_model(_save(tmp_path / "m", scaler, est, "consensus", ae, members=fitted))
    arrays, movement, how = update_model(model, X)
    assert "saved autoencoder embedding" in how and {r["space"] for r in movement} == {"embedding"}
    v2 = load_model(save_updated(model, tmp_path / "v2", arrays, {"note": "test"}))
    assert (tmp_path / "v2" / "embedder.pt").read_bytes() == (tmp_path / "m" / "embedder.pt").read_bytes()
    np.testing.assert_array_equal(to_host(v2.embed(X)), to_host(Z))
    assert (v2.predict(X) == model.predict(X)).mean() > 0.95  # the same customers: the centres barely move


# --- format versions -------------------------------------------------------------------------------


@pytest.mark.parametrize("embed, version", [
    (None, 3), ("pca", 3), pytest.param("autoencoder", 4, marks=needs_torch), ("umap", 4)])
def test_format_version_is_4_only_where_an_older_gpuseg_cannot_read_the_embedding(tmp_path, data, embedded,
                                                                                  embed, version):
    """A gpuseg of format 3 read a UMAP or autoencoder model as a broken PCA one ("array
    'projection_mean' is missing"): those are written as format 4, which it refuses by
    version; the rest stay format 3, readable by it. Folders of format 3 holding any
    embedding (as the first version with UMAP models wrote them) still load."""
    scaler, X = data
    if embed == "umap":
        embedder, Z, rows = _fake_umap(X), None, X
        Z = embedder.embedding_
    else:
        embedder, Z = (None, X) if embed is None else embedded(embed)
        rows = None
    est = make_estimator("kmeans", K, 0, {}).fit(Z)
    folder = _save(tmp_path / "m", scaler, est, "kmeans", embedder, rows=rows)
    assert json.loads((folder / "model.json").read_text())["format_version"] == version <= FORMAT_VERSION
    expected = load_model(folder).predict(X)
    np.testing.assert_array_equal(expected, to_host(est.labels_))
    _forge(folder, lambda m: m.__setitem__("format_version", 3))
    np.testing.assert_array_equal(load_model(folder).predict(X), expected)
    if embed == "pca":  # an entry without its method (read as PCA) loads as before
        _forge(folder, lambda m: m["data"]["embedding"].pop("method"))
        np.testing.assert_array_equal(load_model(folder).predict(X), expected)
    _forge(folder, lambda m: m.__setitem__("format_version", FORMAT_VERSION + 1))
    with pytest.raises(ConfigError, match=rf"format_version {FORMAT_VERSION + 1} .* reads format_version 1 or 2 "
                                          rf"or 3 or {FORMAT_VERSION}"):
        load_model(folder)


# --- UMAP: the nearest-rows placement ------------------------------------------------------------


def _reference_place(X, rows, coords, k):
    """The documented rule, written plainly: exact Euclidean distances to every training row;
    at distance 0 from some, the plain mean of all of those; else the k nearest (ties by
    row) with inverse-distance weights."""
    out = np.empty((X.shape[0], coords.shape[1]))
    for i, x in enumerate(np.asarray(to_host(X), dtype=np.float64)):
        dist = np.sqrt(((np.asarray(to_host(rows), dtype=np.float64) - x) ** 2).sum(axis=1))
        c = np.asarray(to_host(coords), dtype=np.float64)
        if (dist == 0).any():
            out[i] = c[dist == 0].mean(axis=0)
            continue
        near = np.argsort(dist, kind="stable")[:k]
        out[i] = (c[near] / dist[near, None]).sum(axis=0) / (1 / dist[near]).sum()
    return out


def test_knn_place_is_the_documented_rule(xp):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 4)).astype(np.float32)
    rows[10] = rows[11]  # duplicates: a row there gets their mean
    coords = rng.normal(size=(200, 2)).astype(np.float32)
    X = np.vstack([rng.normal(size=(60, 4)), rows[:20], rows[:3] + 1e-3]).astype(np.float32)
    got = to_host(knn_place(xp.asarray(X), xp.asarray(rows), xp.asarray(coords), 15))
    np.testing.assert_allclose(got, _reference_place(X, rows, coords, 15), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got[60:80][[0, 1, 2]], coords[:3])  # a training row lands where UMAP put it
    np.testing.assert_allclose(got[70], coords[10:12].astype(np.float64).mean(axis=0))
    few = to_host(knn_place(xp.asarray(X), xp.asarray(rows[:5]), xp.asarray(coords[:5]), 15))
    np.testing.assert_allclose(few, _reference_place(X, rows[:5], coords[:5], 5))


@pytest.mark.parametrize("seed", range(3))
def test_knn_place_keeps_the_rule_with_more_tied_rows_than_candidates(xp, seed):
    """40 equal training rows with 15 neighbours: every one of them ties with the others,
    far more than a fixed number of extra candidates holds. A customer equal to them lands
    at the mean of all 40; one near them at the weighted mean of the first 15 (ties by
    row); rows tied at the cut-off of an ordinary neighbourhood are ordered alike."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(300, 6)).astype(np.float32)
    rows[50:90] = rows[7]  # 41 equal rows: 7 and 50..89
    rows[200:240] = rows[199] + np.float32(0.25)  # 40 equal rows, none equal to a customer below
    coords = rng.normal(size=(300, 2)).astype(np.float32)
    X = np.vstack([rows[7:8], rows[7:8] + 0.01, rows[7:8] - 0.5, rows[200:201] + 0.3,
                   rng.normal(size=(20, 6))]).astype(np.float32)
    got = to_host(knn_place(xp.asarray(X), xp.asarray(rows), xp.asarray(coords), 15))
    np.testing.assert_allclose(got, _reference_place(X, rows, coords, 15), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[0], coords[[7, *range(50, 90)]].astype(np.float64).mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("budget", [200, 700])  # 1 and 5 rows a block; ties in pieces of 1 and 3
def test_knn_place_blocks_bound_memory_and_do_not_change_the_result(monkeypatch, budget):
    """The block of rows placed at once keeps both the fast distances (block x training
    rows) and the exact step (block x candidates x features) within the element budget: 50
    training rows placing 200,000 customers of 34 features used to take every customer at
    once (2.7 GB). Smaller blocks, and the exact step cut into pieces when many rows tie,
    give the same placements."""
    elements = projection._PLACE_BLOCK_ELEMENTS
    for n_train, n_cand, d in [(50, 23, 34), (200_000, 23, 34), (10, 10, 1), (3, 3, 500_000)]:
        block = projection._place_block(n_train, n_cand, d)
        assert block >= 1 and (block == 1 or block * max(n_train, n_cand * d) <= elements)
    assert projection._place_block(50, 23, 34) * 23 * 34 <= elements < 200_000 * 23 * 34
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(120, 5))
    rows[30:70] = rows[3]
    coords = rng.normal(size=(120, 3))
    X = np.vstack([rows[:10], rows[3:4] + 0.1, rng.normal(size=(30, 5))])
    whole = knn_place(X, rows, coords, 15)
    monkeypatch.setattr(projection, "_PLACE_BLOCK_ELEMENTS", budget)
    np.testing.assert_array_equal(knn_place(X, rows, coords, 15), whole)


def test_umap_model_places_new_customers_by_the_rule(tmp_path, data):
    scaler, X = data
    train, new = X[:240], X[240:]
    u = _fake_umap(train)
    Z = u.embedding_
    est = make_estimator("kmeans", K, 0, {}).fit(Z)
    folder = _save(tmp_path / "m", scaler, est, "kmeans", u, rows=train, Z=Z)
    model = load_model(folder)
    assert model.embedding == {"method": "umap", "n_components": 2, "n_neighbors": 7,
                               "placement": "inverse-distance weighted mean of the n_neighbors nearest training rows"}
    segments, confidence = model.predict_with_confidence(train)  # no duplicates: every one kept
    np.testing.assert_array_equal(segments, to_host(est.labels_))
    np.testing.assert_allclose(confidence, segment_confidence(est, Z), rtol=0, atol=1e-5)
    placed = model.embed(new)
    np.testing.assert_allclose(placed, _reference_place(new, train, Z, 7).astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model.predict(new), to_host(est.predict(placed)))
    # a smooth embedding is approximated well: unseen customers get the segment of their true coordinates
    truth = np.asarray(est.predict(_fake_umap(X).embedding_[240:]))
    assert (model.predict(new) == truth).mean() > 0.9
    # weighted means of training coordinates: even customers far out land inside the training region
    far = model.embed(np.vstack([new * 10, new + 50]).astype(np.float32))
    assert (far >= Z.min(axis=0)).all() and (far <= Z.max(axis=0)).all()
    with pytest.raises(ValueError, match="rows it was fitted on"):
        _save(tmp_path / "m2", scaler, est, "kmeans", u)


def test_update_of_a_umap_model_keeps_its_training_rows(tmp_path, data):
    from gpuseg.dynamic import update_model
    from gpuseg.model import save_updated

    scaler, X = data
    u = _fake_umap(X[:240])
    model = load_model(_save(tmp_path / "m", scaler, make_estimator("kmeans", K, 0, {}).fit(u.embedding_), "kmeans",
                             u, rows=X[:240]))
    arrays, movement, how = update_model(model, X[240:])
    assert "saved umap embedding" in how and {r["space"] for r in movement} == {"embedding"}
    v2 = load_model(save_updated(model, tmp_path / "v2", arrays, {"note": "test"}))
    for name in ("embedding_rows", "embedding_coords"):  # the placement never learns the new customers
        np.testing.assert_array_equal(v2.arrays[name], model.arrays[name])
    np.testing.assert_array_equal(v2.embed(X), model.embed(X))


# --- tampered folders ----------------------------------------------------------------------------


@pytest.fixture
def umap_model(tmp_path, data):
    scaler, X = data
    u = _fake_umap(X)
    return _save(tmp_path / "m", scaler, make_estimator("kmeans", K, 0, {}).fit(u.embedding_), "kmeans", u, rows=X)


def _embedding(change):
    return lambda m: change(m["data"]["embedding"])


@pytest.mark.parametrize("manifest_change, arrays_change, words", [
    (None, lambda a: a.__setitem__("embedding_rows", a["embedding_rows"][:, :4]), "'embedding_rows'"),
    (None, lambda a: a.__setitem__("embedding_coords", a["embedding_coords"][:-1]), "'embedding_coords'"),
    (None, lambda a: a["embedding_coords"].__setitem__((0, 0), np.nan), "not finite"),
    (None, lambda a: a.pop("embedding_rows"), "'embedding_rows'"),
    (_embedding(lambda e: e.__setitem__("n_neighbors", 0)), None, "n_neighbors"),
    (_embedding(lambda e: e.__setitem__("n_components", 3)), None, "'embedding_coords'"),
    (_embedding(lambda e: e.__setitem__("method", "tsne")), None, "tsne"),
    (_embedding(lambda e: e.__setitem__("method", "autoencoder")), None, "no SHA-256 for embedder.pt"),
])
def test_tampered_umap_model_is_refused(umap_model, manifest_change, arrays_change, words):
    _forge(umap_model, manifest_change, arrays_change)
    with pytest.raises(ConfigError, match=words):
        load_model(umap_model)


@pytest.fixture(scope="module")
def autoencoder_model(tmp_path_factory, data, embedded):
    """A saved K-means model on the autoencoder's embedding, written once: copy it to edit it."""
    pytest.importorskip("torch")
    scaler, _ = data
    ae, Z = embedded("autoencoder")
    return _save(tmp_path_factory.mktemp("ae") / "m", scaler, make_estimator("kmeans", K, 0, {}).fit(Z), "kmeans", ae)


@pytest.fixture
def autoencoder_copy(tmp_path, autoencoder_model):
    return shutil.copytree(autoencoder_model, tmp_path / "m")


@needs_torch
@pytest.mark.parametrize("change, words", [
    (lambda m: m["data"]["embedding"].__setitem__("hidden", [16]), "do not fit the saved network"),
    (lambda m: m["data"]["embedding"].__setitem__("n_components", 0), "positive whole number"),
    (lambda m: m["data"]["embedding"].__setitem__("hidden", ["8"]), "hidden"),
    (lambda m: m["data"]["embedding"].__setitem__("n_components", 2), "do not fit|'centers'"),
    (lambda m: m["files"].pop("embedder.pt"), "no SHA-256 for embedder.pt|holds embedder.pt"),
])
def test_tampered_autoencoder_model_is_refused(autoencoder_copy, change, words):
    _forge(autoencoder_copy, change)
    with pytest.raises(ConfigError, match=words):
        load_model(autoencoder_copy)


@needs_torch
def test_a_huge_layout_is_refused_before_any_network_is_built(autoencoder_copy, monkeypatch):
    """hidden = [10**12] in model.json would ask for a 4 TB network: the tensors' shapes are
    compared with the layout first, and the network builder is never called."""
    import gpuseg.embed.autoencoder as autoencoder

    def never(*args, **kwargs):
        raise AssertionError("the network was built before the layout was checked")

    monkeypatch.setattr(autoencoder, "_build_network", never)
    _forge(autoencoder_copy, lambda m: m["data"]["embedding"].__setitem__("hidden", [10**12]))
    with pytest.raises(ConfigError, match=r"do not fit the saved network layout \(\w+\.0\.bias: \(8,\) in the file"):
        load_model(autoencoder_copy)


@needs_torch
def test_autoencoder_weights_edited_are_refused(autoencoder_copy):
    (autoencoder_copy / "embedder.pt").write_bytes((autoencoder_copy / "embedder.pt").read_bytes()[:-10])
    with pytest.raises(ConfigError, match=r"embedder\.pt: SHA-256 does not match"):
        load_model(autoencoder_copy)


@needs_torch
@pytest.mark.parametrize("file, value", [("embedder.pt", float("nan")), ("weights.pt", float("inf"))])
def test_non_finite_network_weights_are_refused(tmp_path, data, autoencoder_copy, file, value):
    """Forged weights with matching hashes: NaN in the embedder (or infinite in a deep
    method's network) would put every customer in one segment with confidence 1."""
    import torch

    scaler, X = data
    folder = autoencoder_copy
    if file == "weights.pt":
        folder = _save(tmp_path / "deep", scaler, _fit("deep_kmeans", X, None)[0], "deep_kmeans", None)
    weights = torch.load(folder / file, weights_only=True)
    name = sorted(weights)[-1]
    weights[name].view(-1)[0] = value
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    _forge(folder, file_bytes={file: buffer.getvalue()})
    with pytest.raises(ConfigError, match=rf"saved model .*{file}: tensor '{name}' holds NaN or infinite values$"):
        load_model(folder)


# --- the command line on embedded runs -----------------------------------------------------------


@pytest.fixture(scope="module")
def small_log(tmp_path_factory):
    """A synthetic event log of 200 customers (the runs below cost little at that size)."""
    from gpuseg.io.synthetic import generate_events, write_events

    path = tmp_path_factory.mktemp("log") / "events.csv"
    write_events(generate_events(200, seed=5)[0], path)
    return path


def _run_and_assign(folder, log, embed, methods, params, *extra):
    """Run with --embed (k = 3, 3 dimensions) and assign its own data with the model: the
    output folder, and the assigned and the run's tables (by customer)."""
    out = folder / "o"
    cfg = folder / "c.toml"
    cfg.write_text("[embed]\nn_components = 3\n" + "".join(f"{line}\n" for line in params))
    assert main(["run", "--input", str(log), "--out", str(out), "--embed", embed, "--methods", methods,
                 "--k", "3", "--stability", "0", "--no-report", "-q", "--config", str(cfg), *extra]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["saved"] and metrics["model"]["embedding"] == embed, metrics["model"]
    assigned = folder / "a.parquet"
    assert main(["assign", "--model", str(out / "model"), "--input", str(log), "--out", str(assigned), "-q"]) == 0
    s = pd.read_parquet(out / "segments.parquet").set_index("customer_id")
    return out, pd.read_parquet(assigned).set_index("customer_id").loc[s.index], s


@pytest.mark.parametrize("embed, methods, params, extra", [
    pytest.param("autoencoder", "kmeans", ["[embed.params]", "max_epochs = 2", "hidden = [8]"], (),
                 marks=needs_torch, id="autoencoder"),
    pytest.param("pca", "kmeans,gmm,consensus", ["[params.consensus]", 'members = ["kmeans", "gmm"]'],
                 ("--select", "consensus"), id="pca-consensus"),
])
def test_assign_on_an_embedded_run_gives_its_segments(tmp_path, small_log, embed, methods, params, extra):
    """(``update`` of an embedded model: tests/test_dynamic.py, PCA.)"""
    out, a, s = _run_and_assign(tmp_path, small_log, embed, methods, params, *extra)
    assert (a["segment"] == s["segment"]).all()
    np.testing.assert_allclose(a["confidence"], s["confidence"], rtol=0, atol=1e-5)  # the run's confidence
    assert json.loads((out / "model" / "model.json").read_text())["format_version"] == (4 if embed != "pca" else 3)


@pytest.fixture(scope="module")
def umap_run(tmp_path_factory, small_log):
    """One real UMAP run (umap-learn; compiling it takes 20-50 s in a fresh process, a
    second or so once compiled), shared by the tests below."""
    pytest.importorskip("umap")
    folder = tmp_path_factory.mktemp("umap")
    return (*_run_and_assign(folder, small_log, "umap", "kmeans", ["[embed.params]", "n_neighbors = 10"]), folder)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:n_jobs value")  # umap-learn: a seeded fit runs on one thread
def test_assign_on_a_umap_run(umap_run):
    """The training customers keep their segments and confidence (those with a duplicate
    among the training customers land at the mean of their coordinates instead)."""
    out, a, s, _ = umap_run
    features = pd.read_parquet(out / "features.parquet").set_index("customer_id").loc[s.index]
    unique = ~features.duplicated(keep=False).to_numpy()
    assert unique.mean() > 0.9
    assert (a["segment"] == s["segment"])[unique].all()
    np.testing.assert_allclose(a["confidence"][unique], s["confidence"][unique], rtol=0, atol=1e-5)
    assert json.loads((out / "model" / "model.json").read_text())["format_version"] == 4


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:n_jobs value")
def test_update_of_a_umap_run(umap_run, small_log, capsys):
    out, _, _, folder = umap_run
    capsys.readouterr()
    assert main(["update", "--model", str(out / "model"), "--input", str(small_log), "--out",
                 str(folder / "v2"), "-q"]) == 0, capsys.readouterr().err
    v1, v2 = load_model(out / "model"), load_model(folder / "v2")
    assert v2.manifest["format_version"] == 4 and "saved umap embedding" in v2.manifest["updates"][-1]["how"]
    assert (folder / "v2" / "arrays.npz").exists()
    for name in ("embedding_rows", "embedding_coords"):
        np.testing.assert_array_equal(v2.arrays[name], v1.arrays[name])
