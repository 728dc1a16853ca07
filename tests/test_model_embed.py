"""Saved models of runs on an embedding (``--embed pca|autoencoder|umap``): the embedder is
kept with the model, predict embeds first, loading checks the embedding's files and fields,
and ``assign`` / ``update`` work on such a model."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from gpuseg.backend import to_host
from gpuseg.cli import main
from gpuseg.cluster import make_estimator
from gpuseg.embed.projection import PCA, UMAP, knn_place
from gpuseg.errors import ConfigError
from gpuseg.model import _manifest_text, load_model, save_model
from gpuseg.prep.scale import FeatureScaler

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


def _fake_umap(X, n_neighbors=7):
    """A fitted UMAP without running umap-learn: a smooth non-linear map of X as its
    coordinates (what the model keeps is the same: rows, coordinates, n_neighbors)."""
    u = UMAP(n_components=2, n_neighbors=n_neighbors)
    P = PCA(2).fit_transform(X)
    u.embedding_ = np.ascontiguousarray(np.tanh(P / 2) * 5 + 0.1 * P[:, ::-1] ** 2, dtype=np.float32)
    u.n_features_in_ = X.shape[1]
    return u


def _save(folder, scaler, est, method, embedder, rows=None, members=None):
    k = int(np.asarray(to_host(est.labels_)).max()) + 1
    return save_model(folder, estimator=est, method=method, scaler=scaler, feature_names=NAMES, config_dict={},
                      segment_names=[f"s{i}" for i in range(k)], members=members, embedder=embedder,
                      embedder_rows=rows, data={"features": {"names": NAMES, "groups": {}, "category_columns": {}}})


def _consensus(Z, members):
    fitted = {m: make_estimator(m, K, 0, FAST.get(m, {})).fit(Z) for m in members}
    est = make_estimator("consensus", K, 0, {"members": tuple(members)})
    est.fit(Z, member_labels={m: e.labels_ for m, e in fitted.items()})
    return est, fitted


def _fit(method, Z, members):
    if method == "consensus":
        return _consensus(Z, members)
    return make_estimator(method, K, 0, FAST.get(method, {})).fit(Z), None


# --- PCA and autoencoder: exact ---------------------------------------------------------------


@pytest.mark.parametrize("method, members", [
    ("kmeans", None), ("gmm", None), ("consensus", ("kmeans", "gmm", "som")),
    pytest.param("deep_kmeans", None, marks=needs_torch),  # its network takes the embedding's width
    pytest.param("consensus", ("kmeans", "deep_kmeans"), marks=needs_torch),
])
@pytest.mark.parametrize("embed", ["pca", pytest.param("autoencoder", marks=needs_torch)])
def test_embedded_round_trip_reproduces_the_labels(tmp_path, data, embed, method, members):
    scaler, X = data
    embedder, Z = (PCA(3).fit(X), None) if embed == "pca" else _autoencoder(X)
    Z = embedder.transform(X) if Z is None else Z
    est, fitted = _fit(method, Z, members)
    folder = _save(tmp_path / "m", scaler, est, method, embedder, members=fitted)
    assert (folder / "embedder.pt").exists() == (embed == "autoencoder")
    model = load_model(folder)
    assert model.embedded and model.embedding["method"] == embed and model.embedding["n_components"] == 3
    np.testing.assert_array_equal(to_host(model.embed(X)), to_host(Z))  # bit for bit: the same network
    np.testing.assert_array_equal(model.predict(X), to_host(est.labels_))
    if method == "consensus":  # members predict on the embedding, which was computed once
        assert all(np.array_equal(m.predict(X), to_host(fitted[n].labels_)) for m, n in zip(model.members, [
            e["method"] for e in model.state["members"]]))
        np.testing.assert_allclose(model.predict_confidence(X), to_host(est.confidence_))
    segments, confidence = model.predict_with_confidence(X)
    np.testing.assert_array_equal(segments, model.predict(X))
    assert ((confidence >= 0) & (confidence <= 1)).all()


def test_resaving_without_an_embedding_removes_the_old_networks(tmp_path, data):
    pytest.importorskip("torch")
    scaler, X = data
    ae, Z = _autoencoder(X)
    _save(tmp_path / "m", scaler, make_estimator("kmeans", K, 0, {}).fit(Z), "kmeans", ae)
    folder = save_model(tmp_path / "m", estimator=make_estimator("kmeans", K, 0, {}).fit(X), method="kmeans",
                        scaler=scaler, feature_names=NAMES, config_dict={}, segment_names=list("abcd"))
    assert not (folder / "embedder.pt").exists() and not load_model(folder).embedded


@needs_torch
def test_update_keeps_the_autoencoder_and_moves_centres_in_its_embedding(tmp_path, data):
    from gpuseg.dynamic import update_model
    from gpuseg.model import save_updated

    scaler, X = data
    ae, Z = _autoencoder(X)
    est, fitted = _consensus(Z, ("kmeans", "gmm"))
    model = load_model(_save(tmp_path / "m", scaler, est, "consensus", ae, members=fitted))
    arrays, movement, how = update_model(model, X)
    assert "saved autoencoder embedding" in how and {r["space"] for r in movement} == {"embedding"}
    v2 = load_model(save_updated(model, tmp_path / "v2", arrays, {"note": "test"}))
    assert (tmp_path / "v2" / "embedder.pt").read_bytes() == (tmp_path / "m" / "embedder.pt").read_bytes()
    np.testing.assert_array_equal(to_host(v2.embed(X)), to_host(Z))
    assert (v2.predict(X) == model.predict(X)).mean() > 0.95  # the same customers: the centres barely move


# --- UMAP: the nearest-rows placement ------------------------------------------------------------


def _reference_place(X, rows, coords, k):
    """The documented rule, written plainly: exact Euclidean distances to every training row,
    the k nearest (ties by row), inverse-distance weights; at distance 0 the plain mean of
    the rows there."""
    out = np.empty((X.shape[0], coords.shape[1]))
    for i, x in enumerate(np.asarray(X, dtype=np.float64)):
        dist = np.sqrt(((rows.astype(np.float64) - x) ** 2).sum(axis=1))
        near = np.argsort(dist, kind="stable")[:k]
        d, c = dist[near], coords[near].astype(np.float64)
        out[i] = c[d == 0].mean(axis=0) if (d == 0).any() else (c / d[:, None]).sum(axis=0) / (1 / d).sum()
    return out


def test_knn_place_is_the_documented_rule():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 4)).astype(np.float32)
    rows[10] = rows[11]  # duplicates: a row there gets their mean
    coords = rng.normal(size=(200, 2)).astype(np.float32)
    X = np.vstack([rng.normal(size=(60, 4)), rows[:20], rows[:3] + 1e-3]).astype(np.float32)
    got = knn_place(X, rows, coords, 15)
    np.testing.assert_allclose(got, _reference_place(X, rows, coords, 15), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got[60:80][[0, 1, 2]], coords[:3])  # a training row lands where UMAP put it
    np.testing.assert_allclose(got[70], coords[10:12].astype(np.float64).mean(axis=0))
    np.testing.assert_allclose(knn_place(X, rows[:5], coords[:5], 15), _reference_place(X, rows[:5], coords[:5], 5))


def test_umap_model_places_new_customers_by_the_rule(tmp_path, data):
    scaler, X = data
    train, new = X[:240], X[240:]
    u = _fake_umap(train)
    Z = u.embedding_
    est = make_estimator("kmeans", K, 0, {}).fit(Z)
    folder = _save(tmp_path / "m", scaler, est, "kmeans", u, rows=train)
    model = load_model(folder)
    assert model.embedding == {"method": "umap", "n_components": 2, "n_neighbors": 7,
                               "placement": "inverse-distance weighted mean of the n_neighbors nearest training rows"}
    np.testing.assert_array_equal(model.predict(train), to_host(est.labels_))  # no duplicates: every one kept
    placed = model.embed(new)
    np.testing.assert_allclose(placed, _reference_place(new, train, Z, 7).astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model.predict(new), to_host(est.predict(placed)))
    # a smooth embedding is approximated well: unseen customers get the segment of their true coordinates
    truth = np.asarray(est.predict(_fake_umap(X).embedding_[240:]))
    assert (model.predict(new) == truth).mean() > 0.9
    with pytest.raises(ValueError, match="rows it was fitted on"):
        _save(tmp_path / "m2", scaler, est, "kmeans", u)


# --- tampered folders ----------------------------------------------------------------------------


def _forge(folder, manifest_change=None, arrays_change=None):
    """Edit model.json / arrays.npz and make every hash agree, as a forger would."""
    manifest = json.loads((folder / "model.json").read_text())
    if arrays_change is not None:
        arrays = dict(np.load(folder / "arrays.npz"))
        arrays_change(arrays)
        np.savez(folder / "arrays.npz", **arrays)
        manifest["files"]["arrays.npz"] = hashlib.sha256((folder / "arrays.npz").read_bytes()).hexdigest()
    if manifest_change is not None:
        manifest_change(manifest)
    (folder / "model.json").write_text(_manifest_text(manifest))


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


@needs_torch
@pytest.mark.parametrize("change, words", [
    (lambda m: m["data"]["embedding"].__setitem__("hidden", [16]), "do not fit the saved network"),
    (lambda m: m["data"]["embedding"].__setitem__("hidden", [10**12]), "do not fit the saved network"),  # no 4 TB net
    (lambda m: m["data"]["embedding"].__setitem__("n_components", 0), "positive whole number"),
    (lambda m: m["data"]["embedding"].__setitem__("hidden", ["8"]), "hidden"),
    (lambda m: m["data"]["embedding"].__setitem__("n_components", 2), "do not fit|'centers'"),
    (lambda m: m["files"].pop("embedder.pt"), "no SHA-256 for embedder.pt|holds embedder.pt"),
])
def test_tampered_autoencoder_model_is_refused(tmp_path, data, change, words):
    scaler, X = data
    ae, Z = _autoencoder(X)
    folder = _save(tmp_path / "m", scaler, make_estimator("kmeans", K, 0, {}).fit(Z), "kmeans", ae)
    _forge(folder, change)
    with pytest.raises(ConfigError, match=words):
        load_model(folder)


@needs_torch
def test_autoencoder_weights_edited_are_refused(tmp_path, data):
    scaler, X = data
    ae, Z = _autoencoder(X)
    folder = _save(tmp_path / "m", scaler, make_estimator("kmeans", K, 0, {}).fit(Z), "kmeans", ae)
    (folder / "embedder.pt").write_bytes((folder / "embedder.pt").read_bytes()[:-10])
    with pytest.raises(ConfigError, match=r"embedder\.pt: SHA-256 does not match"):
        load_model(folder)


# --- the command line on embedded runs -----------------------------------------------------------


def _run_and_assign(tmp_path, events_csv, embed, methods, params, *extra):
    out = tmp_path / "o"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[embed]\nn_components = 3\n" + "".join(f"{line}\n" for line in params))
    assert main(["run", "--input", str(events_csv), "--out", str(out), "--embed", embed, "--methods", methods,
                 "--k", "4", "--stability", "0", "--no-report", "-q", "--config", str(cfg), *extra]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["saved"] and metrics["model"]["embedding"] == embed, metrics["model"]
    assigned = tmp_path / "a.parquet"
    assert main(["assign", "--model", str(out / "model"), "--input", str(events_csv), "--out", str(assigned),
                 "-q"]) == 0
    a = pd.read_parquet(assigned).set_index("customer_id")
    s = pd.read_parquet(out / "segments.parquet").set_index("customer_id")
    assert a["confidence"].between(0, 1).all()
    return (a.loc[s.index, "segment"] == s["segment"]).mean(), (a.loc[s.index, "confidence"] - s["confidence"]).abs()


@pytest.mark.parametrize("embed, methods, params, extra", [
    pytest.param("autoencoder", "kmeans", ["[embed.params]", "max_epochs = 3", "hidden = [16]"], (),
                 marks=needs_torch, id="autoencoder"),
    ("pca", "kmeans,gmm,consensus", ["[params.consensus]", 'members = ["kmeans", "gmm"]'], ("--select", "consensus")),
])
def test_assign_on_an_embedded_run_gives_its_segments(tmp_path, events_csv, embed, methods, params, extra):
    """(``update`` of an embedded model: tests/test_dynamic.py, PCA.)"""
    agree, confidence_gap = _run_and_assign(tmp_path, events_csv, embed, methods, params, *extra)
    assert agree == 1.0 and confidence_gap.max() < 1e-5  # the run's segments and confidence


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:n_jobs value")  # umap-learn: a seeded fit runs on one thread
def test_assign_on_a_umap_run(tmp_path, events_csv):
    """A real UMAP (umap-learn; compiling it takes 30-50 s in a fresh process, about a
    second once compiled): the training customers keep their segments."""
    pytest.importorskip("umap")
    agree, _ = _run_and_assign(tmp_path, events_csv, "umap", "kmeans", ["[embed.params]", "n_neighbors = 10"])
    assert agree > 0.99
