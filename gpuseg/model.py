"""Saved models: a fitted segmentation written to a folder and read back to label new customers.

A model folder holds

``model.json``
    Format name ``"gpuseg-model"`` and ``format_version``, the gpuseg version, the method,
    k, the feature and segment names, the run's config, the scaler's parameters, the
    estimator's hyper-parameters (plain JSON values only) and the SHA-256 of every other file.
``arrays.npz``
    The fitted state needed to predict, NumPy arrays only (``np.savez``): centroids
    (K-means, mini-batch K-means, PSO K-means), the mixture's weights, means, covariances
    and precision Cholesky factors (GMM), the codebook and the unit -> segment map (SOM),
    the cluster centres (and, in micro-cluster mode, the micro-centroids and their
    clusters) for Ward, the latent centres of the deep methods, and the scaler's arrays.
``weights.pt``
    Deep methods only: the autoencoder's ``state_dict`` (``torch.save``).
``embedder.pt``
    ``--embed autoencoder`` only: the embedding network's ``state_dict``.

A consensus (``strategy="vote"``) is saved as its members: member ``i`` (rank ``i``, best
first) has its arrays as ``member<i>__<name>`` in ``arrays.npz``, a deep member its weights
as ``weights_<i>.pt``, and ``member<i>__consensus_map`` maps its labels to the consensus
labels (the alignment :func:`gpuseg.cluster.consensus.majority_vote` found at fit time).
Predicting, every member predicts, its labels go through its map, and the weighted vote of
``majority_vote`` decides; the confidence is the share of members that agree. On the
training rows this reproduces the consensus wherever every member's ``predict`` gives its
training labels (K-means' last assignment step may leave a few boundary rows whose nearest
final centroid is another; a few of those can change a vote).

Embeddings (``--embed``): the estimator then lives in the embedding, and ``data.embedding``
in ``model.json`` says which one (``method``, ``n_components``); ``predict`` embeds the
scaled features once, then the estimator (or every consensus member) predicts there.

``pca``
    ``projection_mean``, ``projection_components`` and ``projection_scale`` in
    ``arrays.npz``: ``(X - mean) @ components.T / scale``. Exact.
``autoencoder``
    The network's ``state_dict`` in ``embedder.pt`` (``torch.save``, read with
    ``weights_only=True``) and its layout (``hidden``, ``amp``) in ``data.embedding``: new
    rows are encoded by the same network (:func:`gpuseg.embed.autoencoder.encode_rows`).
    Exact: the training rows get the run's embedding, hence its segments.
``umap``
    Neither umap-learn's nor cuML's fitted UMAP can be stored without pickle, so the model
    keeps the scaled training rows (``embedding_rows``: every training customer's scaled
    features, kept even with ``--anonymize``) and their UMAP coordinates
    (``embedding_coords``) and places a new customer at the inverse-distance weighted mean
    of the coordinates of its ``n_neighbors`` nearest training rows in the scaled feature
    space (:func:`gpuseg.embed.projection.knn_place`; a row equal to training rows gets
    the mean of all of theirs). This approximates UMAP's own ``transform`` (which starts
    from a weighted mean of the neighbours' coordinates too, then runs optimisation
    epochs) and is not that transform: placements are weighted means of training
    coordinates, so a new customer never lands outside the region the training customers
    cover, however far out it is. Training customers keep their segment (exact duplicates
    of one another get the mean of their coordinates); on synthetic runs of 2,000-5,000
    customers (``bench/umap_place.py``, ``docs/data-and-outputs.md``) 96-97% of held-out
    customers got the segment of umap-learn's own ``transform`` and 94-96% kept their
    segment when placed from the other training rows (leave-one-out). The rows make the
    model about ``4 x n_customers x (n_features + n_components)`` bytes (34 MB for
    200,000 customers, 34 features, 8 dimensions), and placing a customer reads every
    training row.

"Exact" is bit for bit on the device and library build the run used. Assigned elsewhere
(a GPU run assigned on a CPU, say) the floating-point arithmetic differs in its last bits,
more so for an autoencoder trained with ``amp`` (bfloat16 on the GPU, another bfloat16 path
on the CPU): customers on a segment border can change segment, and confidences differ
slightly. The same holds for every method, embedded or not.

Format versions: a model whose embedding is UMAP or an autoencoder is written as
``format_version`` 4; every other model as 3, as before those embeddings could be saved,
so that a gpuseg reading format 3 still reads it. Such an older gpuseg refuses a format-4
folder by its version, in one line, instead of reading it as a broken PCA model. This
gpuseg reads 1 to 4, and UMAP or autoencoder folders marked 3 too.

``segment_map`` (optional, in ``arrays.npz``): estimator label -> segment label (the
pipeline numbers segments by size); ``predict`` returns segment labels.

``counts`` (``member<i>__counts``): training customers per estimator label, the weight of
the old state in an incremental update (:mod:`gpuseg.dynamic`).

The pipeline also saves how the data were prepared (``data`` in ``model.json``): the input
kind, the source columns, the cleaning state (price fence, fill values), the feature
definitions (:class:`gpuseg.prep.features.FeatureSpec`; the median price per price group
in ``price_keys`` / ``price_medians``) and, in ``train_quantiles``, the 0th..100th
percentiles of every scaled training feature (out-of-distribution flags and drift).

Loading never runs code from the files: ``json``, ``np.load(allow_pickle=False)`` and
``torch.load(weights_only=True)``. A pickle disguised as ``arrays.npz`` or a
``weights.pt`` holding anything but tensors is refused before anything is unpickled. The
hashes catch truncated or edited files; they are not a signature (whoever can write
``arrays.npz`` can write ``model.json``), which is why the loaders themselves must be safe.

Ward predicts as :meth:`gpuseg.cluster.WardClustering.predict` does: nearest micro-centroid
in micro-cluster mode (reproduces the training labels); in exact mode (at most
``exact_max`` rows) the segment of the nearest training row when ``train_X`` was given (the
pipeline gives it; reproduces the training labels), else the nearest cluster centre
(reproduces them where the clusters are Voronoi cells of their means, e.g. well-separated
data; boundary rows of overlapping clusters may move). Density methods and the evidence
consensus cannot be saved in this version (:class:`NotImplementedError`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import __version__
from ._xp import nearest_center
from .backend import array_namespace, to_host, to_namespace
from .cluster._base import as_float_array
from .errors import ConfigError

__all__ = ["EMBEDDINGS", "FORMAT_NAME", "FORMAT_VERSION", "SAVABLE_METHODS", "embedding_state",
           "format_version_for", "save_model", "save_updated", "load_model", "LoadedModel"]

FORMAT_NAME = "gpuseg-model"
#: Newest version of the folder layout; a loader reads only the versions it knows.
FORMAT_VERSION = 4
#: Versions this gpuseg reads: 1 predates feature weights (every weight is 1); 2 predates
#: model.json's own digest (``manifest_sha256``); 3 predates UMAP and autoencoder
#: embeddings (:func:`format_version_for`).
READABLE_VERSIONS = (1, 2, 3, 4)
#: Embeddings a format-3 gpuseg cannot read (it knows only a PCA's projection and would
#: report a UMAP's or an autoencoder's missing ``projection_mean``).
_FORMAT_4_EMBEDDINGS = ("autoencoder", "umap")

_CENTROID_METHODS = ("adaptive_kmeans", "kmeans", "kmeans_random", "minibatch_kmeans", "pso_kmeans")
_DEEP_METHODS = ("deep_kmeans", "dec", "idec")
#: Methods whose fitted state :func:`save_model` can write.
_SINGLE_METHODS = (*_CENTROID_METHODS, "gmm", "som", "ward", *_DEEP_METHODS)
SAVABLE_METHODS = (*_SINGLE_METHODS, "consensus")
_KINDS = {**{m: "centroids" for m in _CENTROID_METHODS}, "gmm": "gmm", "som": "som", "ward": "ward",
          **{m: "deep" for m in _DEEP_METHODS}, "consensus": "consensus"}

_ARRAYS = "arrays.npz"
_WEIGHTS = "weights.pt"
_MANIFEST = "model.json"
_FLOAT_DTYPES = ("float32", "float64")
#: Arrays that describe the training data (``data_arrays``).
_DATA_ARRAYS = ("price_keys", "price_medians", "train_quantiles", "confidence_centers", "confidence_rows",
                "projection_mean", "projection_components", "projection_scale", "embedding_rows", "embedding_coords")
_EMBEDDER_WEIGHTS = "embedder.pt"
#: ``data.embedding.method`` values a model can hold.
EMBEDDINGS = ("pca", "autoencoder", "umap")


def projection_arrays(pca: Any) -> dict[str, np.ndarray]:
    """A fitted :class:`gpuseg.embed.PCA` as the arrays a model keeps (``data.embedding``):
    ``predict`` computes ``(X - mean) @ components.T / scale`` before the estimator."""
    components = np.asarray(to_host(pca.components_), dtype=np.float64)
    scale = (np.sqrt(np.maximum(np.asarray(to_host(pca.explained_variance_), dtype=np.float64), 1e-300))
             if getattr(pca, "whiten", False) else np.ones(components.shape[0]))
    return {"projection_mean": np.asarray(to_host(pca.mean_), dtype=np.float64), "projection_components": components,
            "projection_scale": scale[: components.shape[0]]}


def embedding_state(embedder: Any, rows: Any = None) -> tuple[dict[str, Any], dict[str, np.ndarray], Any]:
    """What a model keeps of a fitted embedder (module docstring): the ``data.embedding``
    entry, the arrays and the torch ``state_dict`` (autoencoder; else None).

    Parameters
    ----------
    embedder : fitted :class:`gpuseg.embed.PCA`, :class:`gpuseg.embed.UMAP` or
        :class:`gpuseg.embed.Autoencoder`
    rows : array of shape (n_samples, n_features), optional
        The scaled rows the embedder was fitted on; required for UMAP (the model places new
        customers by their nearest training rows).

    Raises
    ------
    ValueError
        An unfitted or unknown embedder, or UMAP without its training rows.
    """
    from .embed.autoencoder import Autoencoder
    from .embed.projection import PCA, UMAP

    if isinstance(embedder, PCA) and hasattr(embedder, "components_"):
        arrays = projection_arrays(embedder)
        return {"method": "pca", "n_components": int(arrays["projection_components"].shape[0])}, arrays, None
    if isinstance(embedder, Autoencoder) and hasattr(embedder, "network_"):
        weights = {k: v.detach().to("cpu").clone() for k, v in embedder.network_.state_dict().items()}
        entry = {"method": "autoencoder", "n_components": int(embedder.latent_dim),
                 "hidden": [int(h) for h in embedder.hidden], "amp": bool(embedder.amp)}
        return entry, {}, weights
    if isinstance(embedder, UMAP) and hasattr(embedder, "embedding_"):
        coords = _host(embedder.embedding_, np.float32)
        if rows is None:
            raise ValueError("a UMAP embedding is saved with the rows it was fitted on (rows=)")
        rows = _host(rows, np.float32)
        if rows.ndim != 2 or rows.shape[0] != coords.shape[0] or rows.shape[1] != embedder.n_features_in_:
            raise ValueError(f"rows of shape {rows.shape} are not the {coords.shape[0]} x {embedder.n_features_in_} "
                             "rows the UMAP was fitted on")
        entry = {"method": "umap", "n_components": int(coords.shape[1]), "n_neighbors": int(embedder.n_neighbors),
                 "placement": "inverse-distance weighted mean of the n_neighbors nearest training rows"}
        return entry, {"embedding_rows": rows, "embedding_coords": coords}, None
    raise ValueError(f"{type(embedder).__name__} is not a fitted PCA, UMAP or Autoencoder; a model cannot hold it")


# --- saving ------------------------------------------------------------------------------------


def save_model(
    path: str | Path,
    *,
    estimator: Any,
    method: str,
    scaler: Any,
    feature_names: Sequence[str],
    config_dict: Mapping[str, Any],
    segment_names: Sequence[str],
    relabel: Any = None,
    members: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    data_arrays: Mapping[str, Any] | None = None,
    train_X: Any = None,
    embedder: Any = None,
    embedder_rows: Any = None,
) -> Path:
    """Write a fitted segmentation to the folder ``path`` (created; files in it are replaced).

    Parameters
    ----------
    path : str or Path
    estimator : fitted gpuseg estimator
        The one behind ``method``.
    method : str
        A name of :data:`SAVABLE_METHODS`.
    scaler : FeatureScaler or None
        The fitted scaler that produced the estimator's input.
    feature_names : sequence of str
        One per scaled feature, in column order.
    config_dict : mapping
        The run's configuration (plain JSON values; ``Path`` and tuples are converted).
    segment_names : sequence of str
        One per segment label.
    relabel : array of int, optional
        Estimator label -> segment label (-1: none), one entry per estimator label (a
        shorter table: the labels past it name no segment);
        ``predict`` then returns segment labels (e.g. numbered by size,
        :func:`gpuseg.segments.size_order`). Default: segment label = estimator label.
    members : mapping, optional
        Consensus only: member name -> its fitted estimator (a consensus fitted on given
        member labels, as the pipeline fits it, holds none).
    extra : mapping, optional
        Further plain JSON values stored under ``"extra"``.
    data : mapping, optional
        How the training data were prepared (plain JSON; module docstring), stored under
        ``"data"``.
    data_arrays : mapping, optional
        Arrays that go with ``data`` (``price_keys``, ``price_medians``,
        ``train_quantiles``).
    train_X : array, optional
        What the estimator was fitted on. Ward in exact mode then keeps these rows and
        predicts the segment of the nearest one (reproducing its training labels); without
        them it predicts the nearest cluster centre.
    embedder : fitted PCA, UMAP or Autoencoder, optional
        The embedding the estimator was fitted in (:func:`embedding_state`): kept with the
        model, and ``data.embedding`` says which.
    embedder_rows : array, optional
        The scaled rows the embedder was fitted on (UMAP needs them).

    Returns
    -------
    Path
        The model folder.

    Raises
    ------
    NotImplementedError
        For the density methods, the evidence consensus, and a consensus with a member
        that cannot be saved.
    ValueError, TypeError
        Unknown method, unfitted estimator, names that do not match the fitted state, or
        values that are not plain JSON.
    """
    if method in ("dbscan", "hdbscan"):
        raise NotImplementedError(f"saving a {method} model is not implemented (density methods have no predict state)")
    if method not in SAVABLE_METHODS:
        raise ValueError(f"method {method!r} cannot be saved; savable: {', '.join(SAVABLE_METHODS)}")
    feature_names = [str(n) for n in feature_names]
    segment_names = [str(n) for n in segment_names]
    arrays, state, weights, data, data_arrays = _model_state(method, estimator, members, train_X, embedder,
                                                             embedder_rows, data, data_arrays)
    n_features = _input_width(estimator, feature_names, data)
    k = int(state["k"])
    if relabel is not None:
        arrays["segment_map"], k = _segment_map(relabel, k)
    if len(segment_names) != k:
        raise ValueError(f"{len(segment_names)} segment names for {k} segments")
    scaler_meta = None
    if scaler is not None:
        scaler_meta, scaler_arrays = _scaler_state(scaler, feature_names)
        arrays.update(scaler_arrays)
    for name, a in data_arrays.items():
        if name not in _DATA_ARRAYS:
            raise ValueError(f"data_arrays: unknown array {name!r}; known: {', '.join(_DATA_ARRAYS)}")
        arrays[name] = np.asarray(to_host(a))

    folder = Path(path)
    files = _write_files(folder, arrays, weights)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": format_version_for(data),
        "gpuseg_version": __version__,
        "method": method,
        "estimator": type(estimator).__name__,
        "k": k,
        "n_features": n_features,
        "feature_names": feature_names,
        "segment_names": segment_names,
        "state": state,
        "params": _plain_params(estimator.get_params()),
        "scaler": scaler_meta,
        "config": _plain(dict(config_dict), "config_dict"),
        "extra": _plain(dict(extra or {}), "extra"),
        "data": _plain(dict(data), "data") if data is not None else None,
        "files": files,
    }
    (folder / _MANIFEST).write_text(_manifest_text(manifest), encoding="utf-8")
    return folder


def _model_state(method: str, estimator: Any, members: Mapping[str, Any] | None, train_X: Any, embedder: Any,
                 embedder_rows: Any, data: Mapping[str, Any] | None, data_arrays: Mapping[str, Any] | None
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any], dict[str, Any] | None,
                            dict[str, Any]]:
    """(arrays, state, torch weights, data, data arrays) of :func:`save_model`: the
    estimator's fitted state, and the embedder's (its entry added to ``data``, its arrays to
    the data arrays)."""
    if method == "consensus":
        arrays, state, weights = _consensus_state(estimator, members, train_X)
    else:
        arrays, state, weights = _estimator_state(method, estimator, train_X)
        weights = {} if weights is None else {_WEIGHTS: weights}
    if embedder is not None:
        entry, embed_arrays, embed_weights = embedding_state(embedder, embedder_rows)
        data = {**dict(data or {}), "embedding": entry}
        data_arrays = {**dict(data_arrays or {}), **embed_arrays}
        if embed_weights is not None:
            weights[_EMBEDDER_WEIGHTS] = embed_weights
    return arrays, state, weights, data, dict(data_arrays or {})


def _input_width(estimator: Any, feature_names: list[str], data: Mapping[str, Any] | None) -> int:
    """The estimator's input width, checked against the features or, for a model on an
    embedding, the embedding's dimensions."""
    n_features = int(getattr(estimator, "n_features_in_", len(feature_names)))
    embedded = (data or {}).get("embedding")
    expected = int(embedded["n_components"]) if embedded else len(feature_names)
    if expected != n_features:
        raise ValueError(f"{expected} {'embedding dimensions' if embedded else 'feature names'} for an estimator "
                         f"fitted on {n_features} features")
    return n_features


def _write_files(folder: Path, arrays: Mapping[str, np.ndarray], weights: Mapping[str, Any]) -> dict[str, str]:
    """Write ``arrays.npz`` and the torch weights into ``folder`` (created), remove an
    earlier model's weights no longer part of it (only the names a model writes: other
    ``.pt`` files in the folder are left alone), and return every file's SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {_ARRAYS: _write_bytes(folder / _ARRAYS, _npz_bytes(arrays))}
    for name, state_dict in weights.items():
        files[name] = _write_bytes(folder / name, _torch_bytes(state_dict))
    for old in [*folder.glob("weights*.pt"), folder / _EMBEDDER_WEIGHTS]:  # only files a model writes
        if old.name not in weights and old.is_file():
            old.unlink()
    return files


def format_version_for(data: Mapping[str, Any] | None) -> int:
    """The ``format_version`` a model with this ``data`` entry is written with: the oldest
    that holds it, so an older gpuseg reads what it can and refuses by version, in one
    clear line, what it cannot (a UMAP or autoencoder embedding: 4; anything else: 3, as
    before those embeddings could be saved)."""
    entry = (data or {}).get("embedding")
    method = entry.get("method", "pca") if isinstance(entry, Mapping) else None
    return FORMAT_VERSION if method in _FORMAT_4_EMBEDDINGS else 3


def _segment_map(relabel: Any, k: int) -> tuple[np.ndarray, int]:
    """(``segment_map``, number of segments) of save_model's ``relabel`` for k estimator
    labels: padded with -1 to k entries and checked to use each of 0..n-1."""
    relabel = np.asarray(to_host(relabel)).ravel()
    if relabel.dtype.kind not in "iu" or relabel.shape[0] > k or (relabel.size and relabel.min() < -1):
        raise ValueError(f"relabel must hold up to {k} integers >= -1 (one per estimator label)")
    relabel = np.concatenate([relabel, np.full(k - relabel.shape[0], -1, dtype=relabel.dtype)])
    kept = np.unique(relabel[relabel >= 0])
    if kept.size == 0 or not np.array_equal(kept, np.arange(kept.size)):
        raise ValueError("relabel must map onto the segment labels 0..n-1, each used")
    return relabel.astype(np.int32), int(kept.size)


def _estimator_state(method: str, est: Any, train_X: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any], Any]:
    """(arrays, JSON state, torch state dict or None) of a fitted estimator."""
    if not hasattr(est, "labels_"):
        raise ValueError(f"the {type(est).__name__} given for {method!r} is not fitted")
    arrays, state, weights = _fitted_state(method, est)
    if method == "ward" and state["exact"] and train_X is not None:
        # exact Ward has no Voronoi cells: keep the rows, predict the nearest row's segment
        rows = _host(train_X, np.float32)
        if rows.shape[0] != np.asarray(to_host(est.labels_)).shape[0]:
            raise ValueError("train_X must be the rows the Ward estimator was fitted on")
        arrays["micro_centers"] = rows
        arrays["micro_cluster"] = np.asarray(to_host(est.labels_)).astype(np.int32)
        state.update(exact=False, rows=True)
    labels = np.asarray(to_host(est.labels_)).astype(np.int64)
    labels = labels[(labels >= 0) & (labels < state["k"])]
    arrays["counts"] = np.bincount(labels, minlength=state["k"]).astype(np.float64)
    return arrays, state, weights


def _fitted_state(method: str, est: Any) -> tuple[dict[str, np.ndarray], dict[str, Any], Any]:
    if method == "adaptive_kmeans":  # centres in the learned metric's space, and the metric
        metric = np.asarray(est.metric_, dtype=np.float64)
        centers = (_host(est.cluster_centers_, np.float64) @ metric).astype(_host(est.cluster_centers_).dtype)
        return {"centers": centers, "metric": metric}, {"kind": "centroids", "k": centers.shape[0],
                                                        "metric": True}, None
    if method in _CENTROID_METHODS:
        centers = _host(est.cluster_centers_)
        return {"centers": centers}, {"kind": "centroids", "k": centers.shape[0]}, None
    if method == "gmm":
        arrays = {name: _host(getattr(est, name + "_"), np.float64)
                  for name in ("weights", "means", "covariances", "precisions_cholesky")}
        return arrays, {"kind": "gmm", "k": arrays["weights"].shape[0], "covariance_type": est.covariance_type}, None
    if method == "som":
        arrays = {"codebook": _host(est.codebook_), "unit_labels": _host(est.unit_labels_).astype(np.int32)}
        return arrays, {"kind": "som", "k": int(arrays["unit_labels"].max()) + 1,
                        "grid_shape": [int(s) for s in est.grid_shape_]}, None
    if method == "ward":
        centers = _host(est.cluster_centers_)
        arrays = {"centers": centers}
        if not est.exact_:
            arrays["micro_centers"] = _host(est.micro_centers_)
            arrays["micro_cluster"] = _host(est.micro_cluster_labels_).astype(np.int32)
        return arrays, {"kind": "ward", "k": centers.shape[0], "exact": bool(est.exact_)}, None
    # deep methods: the encoder's weights and the centres in the latent space
    centers = _host(est.cluster_centers_, np.float32)
    weights = {k: v.detach().to("cpu").clone() for k, v in est.autoencoder_.network_.state_dict().items()}
    state = {"kind": "deep", "k": centers.shape[0], "hidden": [int(h) for h in est.hidden],
             "latent_dim": int(est.latent_dim), "amp": bool(est.amp),
             "assign": "nearest" if method == "deep_kmeans" else "student_t",
             "alpha": float(getattr(est, "alpha", 1.0))}
    return {"centers": centers}, state, weights


def _consensus_state(est: Any, members: Mapping[str, Any] | None, train_X: Any = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict]:
    """(arrays, JSON state, {file: torch state dict}) of a fitted vote consensus."""
    from .cluster.consensus import vote_maps, vote_weight

    if not hasattr(est, "labels_"):
        raise ValueError("the consensus given is not fitted")
    if est.strategy != "vote":
        raise NotImplementedError(
            f"saving a {est.strategy!r} consensus is not implemented (its labels come from average linkage "
            f"on a sample, which has no predict); the 'vote' strategy can be saved"
        )
    names = list(est.member_labels_)
    members = dict(members or {})
    missing = [m for m in names if m not in members]
    if missing:
        raise ValueError(f"members: the fitted estimator of consensus member {missing[0]!r} is needed")
    bad = [m for m in names if m not in _SINGLE_METHODS]
    if bad:
        raise NotImplementedError(f"consensus member {bad[0]!r} cannot be saved")
    order, maps = vote_maps([est.member_labels_[m] for m in names], [est.member_scores_[m] for m in names])
    labels = np.asarray(to_host(est.labels_))
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    arrays: dict[str, np.ndarray] = {}
    weights: dict[str, Any] = {}
    entries = []
    for rank, i in enumerate(order):
        m = names[i]
        sub_arrays, sub_state, sub_weights = _estimator_state(m, members[m], train_X)
        arrays.update({f"member{rank}__{name}": a for name, a in sub_arrays.items()})
        arrays[f"member{rank}__consensus_map"] = maps[i]
        if sub_weights is not None:
            weights[f"weights_{rank}.pt"] = sub_weights
        entries.append({"method": m, "estimator": type(members[m]).__name__, "state": sub_state,
                        "params": _plain_params(members[m].get_params()),
                        "score": float(est.member_scores_[m]), "weight": vote_weight(rank)})
    return arrays, {"kind": "consensus", "k": k, "members": entries}, weights


def _scaler_state(scaler: Any, names: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not hasattr(scaler, "mean_"):
        raise ValueError("the scaler is not fitted")
    if scaler.n_features_in_ != len(names):
        raise ValueError(f"the scaler was fitted on {scaler.n_features_in_} features, {len(names)} names given")
    bounded = None if scaler.bounded is None else np.asarray(scaler.bounded).tolist()
    meta = {
        "log_skewed": bool(scaler.log_skewed),
        "skew_threshold": float(scaler.skew_threshold),
        "bounded": bounded,
        "dtype": np.dtype(scaler.dtype).name,
        "features": scaler.params(names),
    }
    arrays = {
        "scaler_log_mask": np.asarray(scaler.log_mask_, dtype=bool),
        "scaler_mean": np.asarray(scaler.mean_, dtype=np.float64),
        "scaler_scale": np.asarray(scaler.scale_, dtype=np.float64),
        "scaler_skew": np.asarray(scaler.skew_, dtype=np.float64),
        "scaler_weights": np.asarray(scaler.feature_weights(), dtype=np.float64),
    }
    return meta, arrays


def _host(x: Any, dtype: Any = None) -> np.ndarray:
    out = np.ascontiguousarray(to_host(x))
    return out if dtype is None else out.astype(dtype)


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON (dict/list/str/int/float/bool/None); TypeError otherwise."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not a plain JSON value")


def _plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters that are plain JSON values (callbacks, RandomStates, arrays are left out)."""
    out = {}
    for name, value in params.items():
        try:
            out[name] = _plain(value, name)
        except TypeError:
            continue
    return out


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _torch_bytes(state: Mapping[str, Any]) -> bytes:
    from .backend import torch_module

    buf = io.BytesIO()
    torch_module().save(dict(state), buf)
    return buf.getvalue()


def _write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


# --- loading -----------------------------------------------------------------------------------


class LoadedModel:
    """A saved segmentation read back: scaler, names and ``predict``.

    Attributes
    ----------
    method : str
    k : int
    feature_names, segment_names : list of str
    scaler : FeatureScaler or None
        Fitted; ``scaler.transform(raw_features)`` gives ``predict``'s input.
    config : dict
        The run's configuration as saved.
    params : dict
        The estimator's hyper-parameters as saved.
    extra : dict
    embedding : dict or None
        ``data.embedding``: the embedding the segments were found in (``method``,
        ``n_components``, its layout); :meth:`embed` applies it.
    manifest : dict
        The whole of ``model.json``.
    """

    def __init__(self, manifest: dict[str, Any], arrays: dict[str, np.ndarray], network: Any, scaler: Any,
                 members: list["LoadedModel"] | None = None, embedder: Any = None) -> None:
        self.manifest = manifest
        self.method = manifest["method"]
        self.k = int(manifest["k"])
        self.feature_names = list(manifest["feature_names"])
        self.segment_names = list(manifest["segment_names"])
        self.config = manifest["config"]
        self.params = manifest["params"]
        self.extra = manifest["extra"]
        self.data = manifest.get("data")
        self.path: Path | None = None
        self.scaler = scaler
        self._state = manifest["state"]
        self._arrays = arrays
        self._network = network
        self._members = members or []
        self._embedding = _embedding_entry(manifest)
        self._embedder = embedder  # the autoencoder of --embed autoencoder
        self._owner: LoadedModel | None = None  # a consensus member's consensus: it embeds the input
        for member in self._members:
            member._owner = self
        self._gmm = None
        if self._state["kind"] == "gmm":
            from .cluster.gmm import GaussianMixture

            # n_features_in_ from the means: the features, or a saved PCA's dimensions
            self._gmm = GaussianMixture.from_arrays(
                *(arrays[name] for name in ("weights", "means", "covariances", "precisions_cholesky")),
                covariance_type=self._state["covariance_type"])

    def __repr__(self) -> str:
        return f"LoadedModel(method={self.method!r}, k={self.k}, n_features={len(self.feature_names)})"

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The saved arrays (read-only use)."""
        return self._arrays

    @property
    def members(self) -> list["LoadedModel"]:
        """A consensus' members (best first), each a model of its own; empty otherwise."""
        return list(self._members)

    @property
    def state(self) -> dict[str, Any]:
        return self._state

    @property
    def feature_spec(self) -> Any:
        """The :class:`~gpuseg.prep.features.FeatureSpec` of the training data, or None for
        a model saved without ``data``."""
        from .prep.features import FeatureSpec

        if not self.data or "features" not in self.data:
            return None
        return FeatureSpec.from_json(self.data["features"], self._arrays)

    @property
    def has_predict_proba(self) -> bool:
        """True for the methods with soft memberships (GMM, DEC, IDEC)."""
        return self._state["kind"] == "gmm" or self._state.get("assign") == "student_t"

    def _check_X(self, X: Any) -> Any:
        """Scaled features as the estimator's input: checked, and embedded when the segments
        were found in an embedding (``data.embedding``; a consensus member's consensus
        embeds for it)."""
        if self._owner is not None:
            return self._owner._check_X(X)
        X = as_float_array(X)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X has shape {X.shape}; expected (n_samples, {len(self.feature_names)}) scaled features")
        return self._embed(X)

    def embed(self, X: Any) -> Any:
        """The estimator's input for the scaled features ``X`` (X's array type): X itself, or
        its embedding when the segments were found in one (module docstring: a PCA
        projection, the saved autoencoder's encoding, or the nearest-rows placement in a
        UMAP)."""
        return self._check_X(X)

    def _embed(self, X: Any) -> Any:
        """:meth:`embed` of checked X."""
        entry = self._embedding
        if entry is None:
            return X
        xp = array_namespace(X)
        if entry["method"] == "pca":
            return ((X - self._on("projection_mean", xp, X.dtype)) @ self._on("projection_components", xp, X.dtype).T
                    / self._on("projection_scale", xp, X.dtype))
        if entry["method"] == "autoencoder":
            return self._encode(self._embedder, X, len(self.feature_names), bool(entry["amp"]))
        from .embed.projection import knn_place

        coords = self._arrays["embedding_coords"]
        Z = knn_place(X, self._on("embedding_rows", xp, xp.float32), self._on("embedding_coords", xp, coords.dtype),
                      int(entry["n_neighbors"]))
        return Z.astype(coords.dtype)

    def _encode(self, net: Any, X: Any, width: int, amp: bool) -> Any:
        """``encode_rows`` of X with ``net`` (moved to X's device), in X's array type."""
        from . import backend as _backend
        from .embed.autoencoder import encode_rows, training_tensor

        torch = _backend.torch_module()
        Xt = training_tensor(X, width)
        if next(net.parameters()).device != Xt.device:
            net.to(Xt.device)
        return _backend.from_torch(encode_rows(torch, net, Xt, amp))

    @property
    def embedded(self) -> bool:
        """The segments were found in a saved embedding of the scaled features."""
        return self._embedding is not None

    @property
    def embedding(self) -> dict[str, Any] | None:
        """``data.embedding``: the embedding's ``method`` and ``n_components`` (and its
        layout), or None."""
        return None if self._embedding is None else dict(self._embedding)

    def _on(self, name: str, xp: Any, dtype: Any) -> Any:
        return xp.asarray(to_namespace(self._arrays[name], xp), dtype=dtype)

    def predict(self, X: Any) -> Any:
        """Segment label (int32) of each row of the scaled features ``X``, in X's array type.

        A saved ``relabel`` (``segment_map``) is applied: the labels are segment labels.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy or CuPy, already scaled (``model.scaler.transform(raw)``).

        Returns
        -------
        labels : array of shape (n_samples,), int32
        """
        X = self._check_X(X)
        return self._segments(self._predict_labels(X))

    def predict_confidence(self, X: Any) -> Any:
        """Consensus only: the share of members whose (aligned) label is the predicted one,
        float32 in [0, 1], as ``ConsensusClustering.confidence_``.

        Raises
        ------
        AttributeError
            For the other methods.
        """
        if self._state["kind"] != "consensus":
            raise AttributeError(f"a saved {self.method} model has no predict_confidence")
        return self._vote(self._check_X(X))[1]

    def _segments(self, labels: Any) -> Any:
        if "segment_map" not in self._arrays:
            return labels
        return _lookup(labels, self._arrays["segment_map"])

    def _predict_labels(self, X: Any) -> Any:
        """Estimator labels of valid X."""
        xp = array_namespace(X)
        kind = self._state["kind"]
        if kind == "consensus":
            return self._vote(X)[0]
        if kind == "centroids":
            space = self._latent(X) if self._state.get("metric") else X
            return nearest_center(space, self._on("centers", xp, X.dtype))[0]
        if kind == "gmm":
            return self._gmm.predict(X)
        if kind == "som":
            bmu, _ = nearest_center(X, self._on("codebook", xp, X.dtype))
            return self._on("unit_labels", xp, xp.int32)[bmu]
        if kind == "ward":
            if self._state["exact"]:
                return nearest_center(X, self._on("centers", xp, X.dtype))[0]
            micro, _ = nearest_center(X, self._on("micro_centers", xp, X.dtype))
            return self._on("micro_cluster", xp, xp.int32)[micro]
        return self._predict_deep(X)[0]

    def _vote(self, X: Any) -> tuple[Any, Any]:
        """Consensus labels and agreeing shares: ``majority_vote`` with the saved alignment."""
        xp = array_namespace(X)
        n, k = X.shape[0], self._state["k"]
        votes = xp.zeros(n * k + 1, dtype=xp.float64)  # the last slot collects noise
        base = xp.arange(n, dtype=xp.int64) * k
        mapped = []
        for i, (member, entry) in enumerate(zip(self._members, self._state["members"])):
            c = _lookup(member._predict_labels(X), self._arrays[f"member{i}__consensus_map"]).astype(xp.int64)
            mapped.append(c)
            votes[xp.where(c >= 0, base + c, n * k)] += float(entry["weight"])
        votes = votes[: n * k].reshape(n, k)
        winner = votes.argmax(axis=1)
        agree = xp.zeros(n, dtype=xp.float32)
        for c in mapped:
            agree += c == winner
        nobody = votes.max(axis=1) == 0
        labels = xp.where(nobody, -1, winner).astype(xp.int32)
        confidence = xp.where(nobody, 0.0, agree / len(mapped)).astype(xp.float32)
        return labels, confidence

    def predict_with_confidence(self, X: Any) -> tuple[Any, Any]:
        """Segment labels and each customer's confidence in its segment (float32 in [0, 1]),
        as the run's ``confidence`` column: the raw score (:mod:`gpuseg.segments.confidence`:
        the share of agreeing members, the posterior, or the margin of the own centre over
        the nearest other one with the run's centres and within variance) mapped through the
        run's calibration (:mod:`gpuseg.evaluate.calibration`) when it has one.
        """
        X = self._check_X(X)
        xp = array_namespace(X)
        if self._state["kind"] == "consensus":
            labels, conf = self._vote(X)
            segments = self._segments(labels)
        else:
            segments, conf = self._raw_confidence(X, xp)
        calibration = (self.data or {}).get("confidence", {}).get("calibration")
        if calibration is not None:  # the run's map to the share that kept their segment in refits
            from .evaluate.calibration import Calibration

            # float32 raw scores, as the run calibrated them, so that knots fall alike
            conf = Calibration.from_json(calibration).apply(xp.clip(conf, 0.0, 1.0).astype(xp.float32))
        return segments, xp.where(segments >= 0, xp.clip(conf, 0.0, 1.0), 0.0).astype(xp.float32)

    def _raw_confidence(self, X: Any, xp: Any) -> tuple[Any, Any]:
        """Segments and the uncalibrated confidence of valid X (not for a consensus)."""
        from .segments.confidence import margin_confidence, segment_confidence

        segments = self._segments(self._predict_labels(X))
        if self.has_predict_proba:
            conf = xp.asarray(self._proba(X)).max(axis=1)
        elif "confidence_centers" in self._arrays:
            space = self._latent(X) if self._state["kind"] == "deep" or self._state.get("metric") else X
            rows = self._arrays["confidence_rows"]
            row_of = np.full(self.k + 1, -1, dtype=np.int64)
            for row in range(rows.shape[0] - 1, -1, -1):
                if rows[row] >= 0:
                    row_of[rows[row]] = row
            own = _lookup(segments, row_of[: self.k])
            within = float((self.data or {}).get("confidence", {}).get("within", 1.0))
            conf = margin_confidence(space, own, self._on("confidence_centers", xp, xp.float64), within)
        elif (self.data or {}).get("confidence", {}).get("kind") == "one":
            conf = xp.ones(X.shape[0], dtype=xp.float32)
        else:
            class _Labels:  # the margin measured on X itself
                labels_ = segments
            conf = segment_confidence(_Labels(), X)
        return segments, conf

    def latent(self, X: Any, *, embedded: bool = False) -> Any:
        """Where the centres live, for the scaled features ``X`` (X's array type): the
        encoder's embedding (deep methods) or ``X @ metric`` (adaptive K-means).

        ``embedded=True``: X is already the estimator's input (:meth:`embed`)."""
        return self._latent(X if embedded else self._check_X(X))

    @property
    def _input_dim(self) -> int:
        """Columns of the estimator's input: the features, or the saved embedding's dimensions."""
        if self._owner is not None:
            return self._owner._input_dim
        return len(self.feature_names) if self._embedding is None else int(self._embedding["n_components"])

    def _latent(self, X: Any) -> Any:
        """:meth:`latent` of input already checked (and embedded) by :meth:`_check_X`."""
        if self._state.get("metric"):
            xp = array_namespace(X)
            return X @ self._on("metric", xp, X.dtype)
        if self._state["kind"] != "deep":
            raise AttributeError(f"a saved {self.method} model has no latent space")
        return self._encode(self._network, X, self._input_dim, self._state["amp"])

    def predict_proba(self, X: Any) -> Any:
        """Soft memberships, shape (n_samples, k): GMM posteriors (float64) or DEC/IDEC's
        Student's t memberships (float32), in X's array type.

        Raises
        ------
        AttributeError
            For methods without soft memberships.
        """
        if not self.has_predict_proba:
            raise AttributeError(f"a saved {self.method} model has no predict_proba")
        return self._proba(self._check_X(X))

    def _proba(self, X: Any) -> Any:
        """:meth:`predict_proba` of input already checked (and projected)."""
        if self._gmm is not None:
            return self._gmm.predict_proba(X)
        return self._predict_deep(X)[1]

    def _predict_deep(self, X: Any) -> tuple[Any, Any]:
        from . import backend as _backend
        from .cluster.deep import soft_assignment
        from .embed.autoencoder import encode_rows, training_tensor

        torch = _backend.torch_module()
        Xt = training_tensor(X, self._input_dim)
        if next(self._network.parameters()).device != Xt.device:
            self._network = self._network.to(Xt.device)
        Z = encode_rows(torch, self._network, Xt, self._state["amp"])
        if self._state["assign"] == "nearest":
            Zx = _backend.from_torch(Z)
            return nearest_center(Zx, self._on("centers", array_namespace(Zx), Zx.dtype))[0], None
        centers = torch.from_numpy(self._arrays["centers"]).to(Xt.device)
        with torch.no_grad():
            Q = soft_assignment(Z, centers, self._state["alpha"])
        return _backend.from_torch(Q.argmax(dim=1).to(torch.int32)), _backend.from_torch(Q)


def _lookup(labels: Any, table: np.ndarray) -> Any:
    """``table[label]`` in labels' array type (int32); -1 for labels < 0 or past the table."""
    xp = array_namespace(labels)
    lut = xp.asarray(np.append(np.asarray(table, dtype=np.int32), np.int32(-1)))
    idx = xp.asarray(labels).astype(xp.int64)
    idx = xp.where((idx < 0) | (idx >= table.shape[0]), table.shape[0], idx)
    return lut[idx]


def _member_manifest(manifest: dict[str, Any], i: int) -> dict[str, Any]:
    """The manifest a consensus member would have on its own (no scaler, no files)."""
    entry = manifest["state"]["members"][i]
    k = entry["state"]["k"]
    return {"method": entry["method"], "state": entry["state"], "k": k, "feature_names": manifest["feature_names"],
            "segment_names": [f"{entry['method']} {j}" for j in range(k)], "config": manifest["config"],
            "params": entry["params"], "extra": {}, "scaler": None}


def load_model(path: str | Path) -> LoadedModel:
    """Read a model folder written by :func:`save_model`.

    Only data are read: JSON, ``np.load(allow_pickle=False)`` and
    ``torch.load(weights_only=True)``; every file's SHA-256 is checked first.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    LoadedModel

    Raises
    ------
    ConfigError
        Not a gpuseg model folder, another major ``format_version``, a missing, truncated
        or edited file, a file holding anything but plain arrays / tensors, or fitted state
        or network weights that are not finite.
    """
    folder = Path(path)
    manifest = _read_manifest(folder)
    _check_listing(folder, manifest)
    _check_data(folder / _MANIFEST, manifest.get("data"))
    _check_manifest_digest(folder / _MANIFEST, manifest)
    state, entry = manifest["state"], _embedding_entry(manifest)
    needed = [_ARRAYS] + ([_WEIGHTS] if state.get("kind") == "deep" else [])
    if state["kind"] == "consensus":
        needed += [f"weights_{i}.pt" for i, e in enumerate(state["members"]) if e["state"]["kind"] == "deep"]
    if entry is not None and entry["method"] == "autoencoder":
        needed.append(_EMBEDDER_WEIGHTS)
    data = {name: _read_checked(folder, name, manifest["files"]) for name in needed}
    arrays = _read_arrays(folder / _ARRAYS, data[_ARRAYS])
    _check_arrays(folder / _ARRAYS, manifest, arrays)
    _check_finite(folder / _ARRAYS, manifest, arrays)
    d = len(manifest["feature_names"]) if entry is None else int(entry["n_components"])  # the estimator's input
    embedder = None
    if _EMBEDDER_WEIGHTS in data:
        embedder = _read_network(folder / _EMBEDDER_WEIGHTS, data[_EMBEDDER_WEIGHTS],
                                 {**entry, "latent_dim": entry["n_components"]}, len(manifest["feature_names"]))
    network = None
    if state["kind"] == "deep":
        network = _read_network(folder / _WEIGHTS, data[_WEIGHTS], state, d)
    members = []
    if state["kind"] == "consensus":
        for i, member in enumerate(state["members"]):
            prefix = f"member{i}__"
            sub_arrays = {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}
            sub_net = None
            if member["state"]["kind"] == "deep":
                sub_net = _read_network(folder / f"weights_{i}.pt", data[f"weights_{i}.pt"], member["state"], d)
            members.append(LoadedModel(_member_manifest(manifest, i), sub_arrays, sub_net, None))
    scaler = _make_scaler(manifest["scaler"], arrays, folder / _ARRAYS) if manifest["scaler"] is not None else None
    model = LoadedModel(manifest, arrays, network, scaler, members, embedder)
    if scaler is not None and len(model.feature_names) == scaler.n_features_in_:
        # a DataFrame of the features (features.parquet) is then read by name, in the model's order
        scaler.feature_names_in_ = np.asarray(model.feature_names, dtype=object)
    model.path = folder
    return model


def save_updated(model: LoadedModel, path: str | Path, arrays: Mapping[str, np.ndarray],
                 update: Mapping[str, Any]) -> Path:
    """Write an updated version of a loaded model to the new folder ``path``: its arrays
    replaced by ``arrays``, the other files copied, ``model_version`` one up, ``parent``
    naming the old folder and its ``model.json`` SHA-256, and ``update`` (plain JSON)
    appended to ``updates``.

    Raises
    ------
    ConfigError
        ``path`` exists.
    """
    old = Path(model.path)
    folder = Path(path)
    if folder.exists() or folder.is_symlink():
        raise ConfigError(f"{folder} exists; an updated model goes to a new folder (choose another --out)")
    import tempfile

    manifest = json.loads(json.dumps(model.manifest))
    files = {}
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        files[_ARRAYS] = _write_bytes(tmp / _ARRAYS, _npz_bytes({n: np.asarray(a) for n, a in arrays.items()}))
        for name in manifest["files"]:
            if name != _ARRAYS:
                files[name] = _write_bytes(tmp / name, _read_checked(old, name, manifest["files"]))
        manifest["files"] = files
        manifest["model_version"] = int(model.manifest.get("model_version", 1)) + 1
        manifest["parent"] = {"folder": str(old.resolve()), "model_version": int(model.manifest.get("model_version", 1)),
                              "sha256": hashlib.sha256((old / _MANIFEST).read_bytes()).hexdigest()}
        manifest["updates"] = list(model.manifest.get("updates", [])) + [_plain(dict(update), "update")]
        manifest["gpuseg_version"] = __version__
        (tmp / _MANIFEST).write_text(_manifest_text(manifest), encoding="utf-8")
        load_model(tmp)  # what was written reads back
        tmp.rename(folder)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _fail(file: Path, what: str) -> ConfigError:
    return ConfigError(f"saved model {file}: {what}")


#: The largest model.json and the largest other file a model folder may hold.
MAX_MANIFEST_BYTES = 64 * 2**20
MAX_FILE_BYTES = 8 * 2**30
_HASH_KEY = "manifest_sha256"


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest without its own digest, as canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != _HASH_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
                          .encode("utf-8")).hexdigest()


def _manifest_text(manifest: dict[str, Any]) -> str:
    """model.json's text: the manifest with its digest (``manifest_sha256``)."""
    manifest[_HASH_KEY] = _manifest_digest(manifest)
    return json.dumps(manifest, indent=2, allow_nan=False) + "\n"


def _regular_file(file: Path, limit: int) -> int:
    """The size of ``file`` after checking it is a plain file of at most ``limit`` bytes:
    a symbolic link (to /dev/zero, say), a FIFO or a device in a model folder is refused
    before it is opened."""
    import stat

    try:
        st = file.lstat()
    except FileNotFoundError:
        raise _fail(file, "missing") from None
    except OSError as exc:
        raise _fail(file, f"cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise _fail(file, "is a symbolic link; a model folder holds plain files only")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(file, "is not a plain file (a FIFO, device or folder); refused")
    if st.st_size > limit:
        raise _fail(file, f"is {st.st_size:,} bytes, over the {limit:,} a model file may have")
    return st.st_size


def _read_regular(file: Path, limit: int) -> bytes:
    """The bytes of a plain file of at most ``limit`` bytes (:func:`_regular_file`)."""
    _regular_file(file, limit)
    try:
        return file.read_bytes()
    except OSError as exc:
        raise _fail(file, f"cannot be read ({exc.strerror})") from None


def _check_listing(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Nothing in the folder but model.json and the files it lists."""
    listed = {_MANIFEST, *manifest["files"]}
    extra = sorted(p.name for p in folder.iterdir() if p.name not in listed)
    if extra:
        raise _fail(folder, f"holds {extra[0]}, which model.json does not list; a model folder holds only its "
                            "own files (move it away)")


def _check_manifest_digest(file: Path, manifest: Mapping[str, Any]) -> None:
    """model.json's own SHA-256 (format_version 3 on): any edit is caught. Like the file
    hashes it is integrity, not a signature."""
    if manifest["format_version"] < 3:
        return
    if manifest.get(_HASH_KEY) != _manifest_digest(manifest):
        raise _fail(file, "edited after it was saved (manifest_sha256 does not match its content); "
                          "save the model again")


#: The types of the entries of ``data`` that loading and assigning read.
_DATA_TYPES = {"kind": str, "source_columns": list, "column_map": dict, "timestamp_format": str,
               "sessions_derived": bool, "clean": dict, "features": dict, "reference_time": int,
               "customers": int, "confidence": dict, "value": dict, "privacy": dict, "embedding": dict}


def _check_data(file: Path, data: Any) -> None:
    if data is None:
        return
    for key, typ in _DATA_TYPES.items():
        if key in data and not isinstance(data[key], typ) or (typ is int and isinstance(data.get(key), bool)):
            raise _fail(file, f"data.{key} is not a {typ.__name__}")
    if data.get("kind") not in (None, "events", "orders"):
        raise _fail(file, f"data.kind {data['kind']!r} is neither events nor orders")
    fence = (data.get("clean") or {}).get("outlier_fence")
    if fence is not None and not (isinstance(fence, list) and len(fence) == 2 and all(_is_number(v) for v in fence)):
        raise _fail(file, "data.clean.outlier_fence is not a pair of numbers")
    version = (data.get("features") or {}).get("version", 1)
    from .prep.features import FEATURE_VERSION

    if not (isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= FEATURE_VERSION):
        raise _fail(file, f"data.features.version {version!r} is not one this gpuseg computes (1..{FEATURE_VERSION}): "
                          "the model was saved by a newer gpuseg, or edited")
    within = (data.get("confidence") or {}).get("within")
    if within is not None and not (_is_number(within) and within > 0):
        raise _fail(file, "data.confidence.within is not a positive number")
    if isinstance(data.get("value"), dict) and data["value"].get("status") == "ok":
        _check_value(file, data["value"])


def _is_number(v: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high


#: The lifetime-value settings a model may hold: ``assign`` steps through the horizon 30 days
#: at a time, so 1e300 days would never end ([value] horizon_days takes (0, 3650]).
_VALUE_RANGES = {"horizon_days": (0.0, 36_500.0), "discount_rate": (0.0, 10.0), "margin": (0.0, 1e6)}
#: A fit's parameters: positive and below this (the fits now search up to 1e6, or 1e15 for the
#: spend scale; models saved before that may hold a = 3e-8, which predicts finitely; 1e308
#: gave infinite values).
_PARAMETER_MAX = 1e20


def _check_value(file: Path, value: Mapping[str, Any]) -> None:
    """A lifetime-value fit's settings and parameters: in range, finite and positive."""
    for key, (low, high) in _VALUE_RANGES.items():
        if not _is_number(value.get(key), low, high) or (key == "horizon_days" and value[key] <= 0):
            raise _fail(file, f"data.value.{key} is not a number in {low:g}..{high:g}")
    def positive(entry: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
        return all(_is_number(entry.get(k), 0.0, _PARAMETER_MAX) and entry[k] > 0 for k in keys)

    bg, gg = value.get("bgnbd"), value.get("gamma_gamma")
    if not isinstance(bg, dict) or not positive(bg, ("r", "alpha_days", "a", "b")):
        raise _fail(file, f"data.value.bgnbd needs r, alpha_days, a and b above 0 and below {_PARAMETER_MAX:g}")
    if not isinstance(gg, dict) or not _is_number(gg.get("mean_spend"), 0.0):
        raise _fail(file, "data.value.gamma_gamma needs a mean_spend of at least 0")
    if gg.get("status") == "ok" and not positive(gg, ("p", "q", "v")):
        raise _fail(file, f"data.value.gamma_gamma needs p, q and v above 0 and below {_PARAMETER_MAX:g}")


def _check_finite(file: Path, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """The fitted state and the scaler hold finite numbers (NaN centres would put everyone
    in one segment)."""
    for name, a in arrays.items():
        base = name.split("__")[-1]
        if base in _DATA_ARRAYS or a.dtype.kind not in "fc":
            continue
        if not np.isfinite(a).all():
            raise _fail(file, f"array {name!r} holds NaN or infinite values")


def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / _MANIFEST
    if folder.is_symlink() or not folder.is_dir():
        raise ConfigError(f"saved model {folder}: not a folder")
    if not file.exists() and not file.is_symlink():
        raise _fail(file, "missing; not a gpuseg model folder")
    raw = _read_regular(file, MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(file, f"not valid JSON ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise _fail(file, "nested too deeply to be a gpuseg model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise _fail(file, f"not a gpuseg model (format is not {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _fail(file, f"format_version {version!r} is not an integer")
    if version not in READABLE_VERSIONS:
        raise _fail(file, f"format_version {version} (written by gpuseg {manifest.get('gpuseg_version', '?')}); "
                          f"this gpuseg {__version__} reads format_version "
                          f"{' or '.join(map(str, READABLE_VERSIONS))}")
    method, state = manifest.get("method"), manifest.get("state")
    _check_kind(file, method, state, SAVABLE_METHODS)
    if method == "consensus":
        entries = state.get("members")
        if not isinstance(entries, list) or not entries:
            raise _fail(file, "a consensus model without members")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict) or isinstance(
                    entry.get("weight"), bool) or not isinstance(entry.get("weight"), (int, float)):
                raise _fail(file, "a consensus member entry is not an object with params and weight")
            _check_kind(file, entry.get("method"), entry.get("state"), _SINGLE_METHODS)
    for key, typ in (("k", int), ("feature_names", list), ("segment_names", list), ("files", dict),
                     ("config", dict), ("params", dict), ("extra", dict)):
        if not isinstance(manifest.get(key), typ):
            raise _fail(file, f"{key!r} is missing or not a {typ.__name__}")
    data = manifest.get("data")
    if data is not None:
        features = data.get("features") if isinstance(data, dict) else None
        if not isinstance(features, dict) or features.get("names") != manifest["feature_names"] or not all(
                isinstance(features.get(key), dict) for key in ("groups", "category_columns")):
            raise _fail(file, "'data' does not describe the model's features")
    if manifest["k"] < 1 or len(manifest["segment_names"]) != manifest["k"]:
        raise _fail(file, f"k={manifest['k']} does not match {len(manifest['segment_names'])} segment names")
    if not all(isinstance(n, str) for n in manifest["feature_names"] + manifest["segment_names"]):
        raise _fail(file, "feature and segment names must be strings")
    if "scaler" not in manifest:
        raise _fail(file, "'scaler' is missing (null for a model without one)")
    if manifest.get("scaler") is not None and not isinstance(manifest["scaler"], dict):
        raise _fail(file, "'scaler' is not an object")
    return manifest


def _check_kind(file: Path, method: Any, state: Any, allowed: Sequence[str]) -> None:
    if method not in allowed or not isinstance(state, dict):
        raise _fail(file, f"unknown method {method!r}")
    if state.get("kind") != _KINDS[method]:
        raise _fail(file, f"state kind {state.get('kind')!r} does not match method {method!r}")
    if isinstance(state.get("k"), bool) or not isinstance(state.get("k"), int) or state["k"] < 1:
        raise _fail(file, f"{method} state: k {state.get('k')!r} is not a positive integer")


def _read_checked(folder: Path, name: str, files: Mapping[str, Any]) -> bytes:
    """The bytes of ``folder/name`` after checking them against the manifest's SHA-256."""
    file = folder / name
    expected = files.get(name)
    if not isinstance(expected, str):
        raise _fail(folder / _MANIFEST, f"no SHA-256 for {name}")
    data = _read_regular(file, MAX_FILE_BYTES)
    if hashlib.sha256(data).hexdigest() != expected.lower():
        raise _fail(file, "SHA-256 does not match model.json (file truncated or modified)")
    return data


def _read_arrays(file: Path, data: bytes) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise _fail(file, "not a NumPy .npz archive (refused without unpickling)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as exc:  # object arrays: "Object arrays cannot be loaded when allow_pickle=False"
        raise _fail(file, f"holds data other than plain arrays, refused ({' '.join(str(exc).split())})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise _fail(file, f"cannot be read as .npz ({' '.join(str(exc).split())})") from None


def _embedding_entry(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """``data.embedding`` with its method filled in (``pca`` where it is missing)."""
    entry = (manifest.get("data") or {}).get("embedding")
    return None if entry is None else {"method": "pca", **entry}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_embedding(file: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]) -> int:
    """The saved embedding's entry and arrays (module docstring); returns the width of the
    estimator's input: the embedding's dimensions, or the number of features."""
    d = len(manifest["feature_names"])
    entry = _embedding_entry(manifest)
    if entry is None:
        return d
    method, m = entry["method"], entry.get("n_components")
    if method not in EMBEDDINGS:
        raise _fail(file, f"data.embedding.method {method!r} is not one of {', '.join(EMBEDDINGS)}")
    top = None if method == "autoencoder" else d  # an autoencoder's width is checked against its weights
    if not _positive_int(m) or (top is not None and m > top):
        raise _fail(file, f"data.embedding.n_components {m!r} is not a whole number from 1 to {top}" if top
                    else f"data.embedding.n_components {m!r} is not a positive whole number")
    shapes: dict[str, tuple] = {}
    if method == "pca":
        shapes = {"projection_mean": (d,), "projection_components": (m, d), "projection_scale": (m,)}
    elif method == "umap":
        if not _positive_int(entry.get("n_neighbors")):
            raise _fail(file, f"data.embedding.n_neighbors {entry.get('n_neighbors')!r} is not a positive integer")
        if "embedding_rows" not in arrays:
            raise _fail(file, "array 'embedding_rows' (the UMAP's training rows) is missing")
        n = arrays["embedding_rows"].shape[0]
        shapes = {"embedding_rows": (n, d), "embedding_coords": (n, m)}
    else:
        hidden = entry.get("hidden")
        if not isinstance(hidden, list) or not all(_positive_int(h) for h in hidden) or not isinstance(
                entry.get("amp"), bool):
            raise _fail(file, "data.embedding of an autoencoder needs hidden (layer widths) and amp (true/false)")
    for name, shape in shapes.items():
        a = arrays.get(name)
        if a is None or a.shape != shape or a.dtype.kind != "f" or not a.size or not np.isfinite(a).all():
            raise _fail(file, f"array {name!r} is missing, empty, not finite or not of shape {shape}")
    return m


def _check_arrays(file: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], d: int | None = None) -> None:
    """Names, numeric dtypes and shapes of the arrays the method needs (``d``: the width of
    the estimator's input, given for a consensus member; else from the manifest)."""
    state = manifest["state"]
    if d is None:  # the estimator lives in the saved embedding's space, if any
        d = _check_embedding(file, manifest, arrays)
    k, kind = state["k"], state["kind"]  # the estimator's labels (manifest k: segments)
    if kind == "consensus":
        for i in range(len(state["members"])):
            prefix = f"member{i}__"
            try:
                _check_arrays(file, _member_manifest(manifest, i),
                              {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}, d)
            except ConfigError as exc:
                raise _fail(file, f"consensus member {i} ({state['members'][i]['method']}): "
                                  f"{str(exc).split(': ', 1)[1]}") from None
            _check_table(file, arrays, f"{prefix}consensus_map", None, k)
    if "segment_map" in arrays or manifest["k"] != k:
        _check_table(file, arrays, "segment_map", k, manifest["k"])
    shapes: dict[str, tuple] = {}
    if kind in ("centroids", "ward"):
        shapes["centers"] = (k, d)
    if kind == "ward" and not state.get("exact", True):
        shapes["micro_centers"] = (None, d)
        shapes["micro_cluster"] = (None,)
    if kind == "gmm":
        shapes.update(weights=(k,), means=(k, d))
        shapes["covariances"] = shapes["precisions_cholesky"] = {
            "full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}.get(state.get("covariance_type"))
    if kind == "som":
        shapes.update(codebook=(None, d), unit_labels=(None,))
    if kind == "deep":
        shapes["centers"] = (k, state.get("latent_dim"))
    if kind == "centroids" and state.get("metric"):
        shapes["metric"] = (d, d)
    if manifest.get("scaler") is not None:
        f = len(manifest["feature_names"])  # the scaler sees the features, before any projection
        shapes.update(scaler_log_mask=(f,), scaler_mean=(f,), scaler_scale=(f,), scaler_skew=(f,))
        if manifest["format_version"] >= 2:
            shapes["scaler_weights"] = (f,)
    if "train_quantiles" in arrays:
        shapes["train_quantiles"] = (len(manifest["feature_names"]), None)
    if "counts" in arrays:
        shapes["counts"] = (k,)
    if "confidence_centers" in arrays:
        shapes["confidence_centers"] = (None, None)
        _check_table(file, arrays, "confidence_rows", arrays["confidence_centers"].shape[0], manifest["k"])
    if "price_medians" in arrays or "price_keys" in arrays:
        shapes["price_medians"] = (None,)
        if arrays.get("price_keys") is None or arrays.get("price_medians") is None or \
                arrays["price_keys"].dtype.kind != "U" or arrays["price_keys"].shape != arrays["price_medians"].shape:
            raise _fail(file, "array 'price_keys' must be text of the shape of 'price_medians'")
    for name, shape in shapes.items():
        a = arrays.get(name)
        if a is None:
            raise _fail(file, f"array {name!r} is missing")
        if a.dtype.kind not in "fiub" or shape is None or a.ndim != len(shape) or any(
                s is not None and s != t for s, t in zip(shape, a.shape)):
            raise _fail(file, f"array {name!r} has dtype {a.dtype} and shape {a.shape}; expected numbers of shape {shape}")
    if kind == "som" and arrays["unit_labels"].shape[0] != arrays["codebook"].shape[0]:
        raise _fail(file, "SOM unit labels and codebook have different numbers of units")
    for name in ("unit_labels", "micro_cluster"):
        if name in shapes and arrays[name].size and not (0 <= arrays[name].min() and arrays[name].max() < k):
            raise _fail(file, f"array {name!r} holds labels outside 0..{k - 1}")
    if kind == "ward" and not state.get("exact", True) and arrays["micro_cluster"].shape[0] != arrays["micro_centers"].shape[0]:
        raise _fail(file, "Ward micro-centroids and their clusters differ in length")


def _check_table(file: Path, arrays: dict[str, np.ndarray], name: str, length: int | None, k: int) -> None:
    """A 1-D integer lookup table of values in -1..k-1."""
    a = arrays.get(name)
    if a is None:
        raise _fail(file, f"array {name!r} is missing")
    if a.dtype.kind not in "iu" or a.ndim != 1 or (length is not None and a.shape[0] != length):
        raise _fail(file, f"array {name!r} has dtype {a.dtype} and shape {a.shape}; expected integers of shape ({length},)")
    if a.size and not (-1 <= a.min() and a.max() < k):
        raise _fail(file, f"array {name!r} holds labels outside -1..{k - 1}")


def _read_network(file: Path, data: bytes, state: Mapping[str, Any], n_inputs: int) -> Any:
    """The autoencoder of ``state`` (``hidden``, ``latent_dim``) on ``n_inputs`` inputs,
    with the tensors of ``data`` (``torch.load(weights_only=True)``): their shapes are
    checked against the layout before any network is built, and every value must be
    finite."""
    from .backend import torch_module
    from .embed.autoencoder import _build_network

    torch = torch_module()
    try:
        weights = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses custom classes: pickle.UnpicklingError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(file, f"not a plain tensor state dict, refused by torch.load(weights_only=True) ({first})") from None
    if not isinstance(weights, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in weights.items()):
        raise _fail(file, "not a state dict of named tensors")
    try:
        hidden = tuple(int(h) for h in state["hidden"])
        sizes = [int(n_inputs), *hidden, int(state["latent_dim"])]
        expected = _layer_shapes(sizes)
        got = {name: tuple(t.shape) for name, t in weights.items()}
        if got != expected:  # before anything is built: the manifest's layout cannot allocate more than the file
            wrong = sorted(set(got.items()) ^ set(expected.items()))[0][0]
            raise ValueError(f"{wrong}: {got.get(wrong, 'missing')} in the file, {expected.get(wrong, 'none')} "
                             f"in a {'-'.join(map(str, sizes))} network")
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(file, f"weights do not fit the saved network layout ({' '.join(str(exc).split())[:200]})") from None
    for name, tensor in weights.items():  # NaN weights would put every customer in one segment
        if not bool(torch.isfinite(tensor).all()):
            raise _fail(file, f"tensor {name!r} holds NaN or infinite values")
    try:
        net = _build_network(torch, n_inputs, hidden, int(state["latent_dim"]), torch.Generator().manual_seed(0))
        net.load_state_dict(weights, strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise _fail(file, f"weights do not fit the saved network layout ({' '.join(str(exc).split())[:200]})") from None
    return net.eval()


def _layer_shapes(sizes: list[int]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of :func:`gpuseg.embed.autoencoder._build_network`'s ``state_dict`` for
    layer widths ``sizes`` (inputs, hidden..., latent): Linear layers at the even positions
    of the encoder and of the mirrored decoder."""
    shapes: dict[str, tuple[int, ...]] = {}
    for part, widths in (("encoder", sizes), ("decoder", sizes[::-1])):
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            shapes[f"{part}.{2 * i}.weight"] = (b, a)
            shapes[f"{part}.{2 * i}.bias"] = (b,)
    return shapes


def _make_scaler(meta: dict[str, Any], arrays: dict[str, np.ndarray], file: Path) -> Any:
    from .prep.scale import FeatureScaler

    dtype = meta.get("dtype")
    if dtype not in _FLOAT_DTYPES:
        raise _fail(file.with_name(_MANIFEST), f"scaler dtype {dtype!r} is not one of {', '.join(_FLOAT_DTYPES)}")
    scaler = FeatureScaler(log_skewed=bool(meta.get("log_skewed", True)),
                           skew_threshold=float(meta.get("skew_threshold", 1.0)),
                           bounded=meta.get("bounded"), dtype=np.dtype(dtype).type)
    scaler.log_mask_ = arrays["scaler_log_mask"].astype(bool)
    scaler.mean_ = arrays["scaler_mean"].astype(np.float64)
    scaler.scale_ = arrays["scaler_scale"].astype(np.float64)
    scaler.skew_ = arrays["scaler_skew"].astype(np.float64)
    scaler.n_features_in_ = scaler.mean_.shape[0]
    weights = arrays.get("scaler_weights")  # absent in format 1: every weight 1
    scaler.weights_ = np.ones(scaler.n_features_in_) if weights is None else weights.astype(np.float64)
    if not np.all(np.isfinite(scaler.weights_)) or np.any(scaler.weights_ < 0):
        raise _fail(file, "scaler weights must be finite and non-negative")
    return scaler
