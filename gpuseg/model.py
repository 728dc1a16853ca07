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

Loading never runs code from the files: ``json``, ``np.load(allow_pickle=False)`` and
``torch.load(weights_only=True)``. A pickle disguised as ``arrays.npz`` or a
``weights.pt`` holding anything but tensors is refused before anything is unpickled. The
hashes catch truncated or edited files; they are not a signature (whoever can write
``arrays.npz`` can write ``model.json``), which is why the loaders themselves must be safe.

Ward predicts as :meth:`gpuseg.cluster.WardClustering.predict` does: nearest micro-centroid
in micro-cluster mode (reproduces the training labels), nearest cluster centre in exact mode
(reproduces them where the clusters are Voronoi cells of their means, e.g. well-separated
data; boundary rows of overlapping clusters may move). Consensus and density methods cannot
be saved in this version (:class:`NotImplementedError`).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import __version__
from ._xp import nearest_center
from .backend import array_namespace, to_host, to_namespace
from .cluster._base import as_float_array
from .errors import ConfigError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SAVABLE_METHODS", "save_model", "load_model", "LoadedModel"]

FORMAT_NAME = "gpuseg-model"
#: Major version of the folder layout; a loader reads only its own major version.
FORMAT_VERSION = 1

_CENTROID_METHODS = ("kmeans", "kmeans_random", "minibatch_kmeans", "pso_kmeans")
_DEEP_METHODS = ("deep_kmeans", "dec", "idec")
#: Methods whose fitted state :func:`save_model` can write.
SAVABLE_METHODS = (*_CENTROID_METHODS, "gmm", "som", "ward", *_DEEP_METHODS)

_ARRAYS = "arrays.npz"
_WEIGHTS = "weights.pt"
_MANIFEST = "model.json"
_FLOAT_DTYPES = ("float32", "float64")


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
    extra: Mapping[str, Any] | None = None,
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
    extra : mapping, optional
        Further plain JSON values stored under ``"extra"``.

    Returns
    -------
    Path
        The model folder.

    Raises
    ------
    NotImplementedError
        For the consensus and the density methods.
    ValueError, TypeError
        Unknown method, unfitted estimator, names that do not match the fitted state, or
        values that are not plain JSON.
    """
    if method == "consensus":
        raise NotImplementedError(
            "saving a consensus model is not implemented yet (it needs every member's state and the "
            "label alignment); save one of its members instead"
        )
    if method in ("dbscan", "hdbscan"):
        raise NotImplementedError(f"saving a {method} model is not implemented (density methods have no predict state)")
    if method not in SAVABLE_METHODS:
        raise ValueError(f"method {method!r} cannot be saved; savable: {', '.join(SAVABLE_METHODS)}")
    feature_names = [str(n) for n in feature_names]
    segment_names = [str(n) for n in segment_names]
    arrays, state, weights = _estimator_state(method, estimator)
    n_features = int(getattr(estimator, "n_features_in_", len(feature_names)))
    if len(feature_names) != n_features:
        raise ValueError(f"{len(feature_names)} feature names for an estimator fitted on {n_features} features")
    k = int(state["k"])
    if len(segment_names) != k:
        raise ValueError(f"{len(segment_names)} segment names for {k} segments")
    scaler_meta = None
    if scaler is not None:
        scaler_meta, scaler_arrays = _scaler_state(scaler, feature_names)
        arrays.update(scaler_arrays)

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    files = {_ARRAYS: _write_bytes(folder / _ARRAYS, _npz_bytes(arrays))}
    if weights is not None:
        files[_WEIGHTS] = _write_bytes(folder / _WEIGHTS, _torch_bytes(weights))
    elif (folder / _WEIGHTS).exists():
        (folder / _WEIGHTS).unlink()
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
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
        "files": files,
    }
    text = json.dumps(manifest, indent=2, allow_nan=False)
    (folder / _MANIFEST).write_text(text + "\n", encoding="utf-8")
    return folder


def _estimator_state(method: str, est: Any) -> tuple[dict[str, np.ndarray], dict[str, Any], Any]:
    """(arrays, JSON state, torch state dict or None) of a fitted estimator."""
    if not hasattr(est, "labels_"):
        raise ValueError(f"the {type(est).__name__} given for {method!r} is not fitted")
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
            arrays["micro_cluster"] = _host(est._micro_cluster).astype(np.int32)
        return arrays, {"kind": "ward", "k": centers.shape[0], "exact": bool(est.exact_)}, None
    # deep methods: the encoder's weights and the centres in the latent space
    centers = _host(est.cluster_centers_, np.float32)
    weights = {k: v.detach().to("cpu").clone() for k, v in est.autoencoder_.network_.state_dict().items()}
    state = {"kind": "deep", "k": centers.shape[0], "hidden": [int(h) for h in est.hidden],
             "latent_dim": int(est.latent_dim), "amp": bool(est.amp),
             "assign": "nearest" if method == "deep_kmeans" else "student_t",
             "alpha": float(getattr(est, "alpha", 1.0))}
    return {"centers": centers}, state, weights


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
    manifest : dict
        The whole of ``model.json``.
    """

    def __init__(self, manifest: dict[str, Any], arrays: dict[str, np.ndarray], network: Any, scaler: Any) -> None:
        self.manifest = manifest
        self.method = manifest["method"]
        self.k = int(manifest["k"])
        self.feature_names = list(manifest["feature_names"])
        self.segment_names = list(manifest["segment_names"])
        self.config = manifest["config"]
        self.params = manifest["params"]
        self.extra = manifest["extra"]
        self.scaler = scaler
        self._state = manifest["state"]
        self._arrays = arrays
        self._network = network
        self._gmm = None
        if self._state["kind"] == "gmm":
            from .cluster.gmm import GaussianMixture

            gmm = GaussianMixture(n_components=self.k, covariance_type=self._state["covariance_type"])
            for name in ("weights", "means", "covariances", "precisions_cholesky"):
                setattr(gmm, name + "_", arrays[name])
            gmm.n_features_in_ = len(self.feature_names)
            self._gmm = gmm

    def __repr__(self) -> str:
        return f"LoadedModel(method={self.method!r}, k={self.k}, n_features={len(self.feature_names)})"

    @property
    def has_predict_proba(self) -> bool:
        """True for the methods with soft memberships (GMM, DEC, IDEC)."""
        return self._state["kind"] == "gmm" or self._state.get("assign") == "student_t"

    def _check_X(self, X: Any) -> Any:
        X = as_float_array(X)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X has shape {X.shape}; expected (n_samples, {len(self.feature_names)}) scaled features")
        return X

    def _on(self, name: str, xp: Any, dtype: Any) -> Any:
        return xp.asarray(to_namespace(self._arrays[name], xp), dtype=dtype)

    def predict(self, X: Any) -> Any:
        """Segment label (int32) of each row of the scaled features ``X``, in X's array type.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy or CuPy, already scaled (``model.scaler.transform(raw)``).

        Returns
        -------
        labels : array of shape (n_samples,), int32
        """
        X = self._check_X(X)
        xp = array_namespace(X)
        kind = self._state["kind"]
        if kind == "centroids":
            return nearest_center(X, self._on("centers", xp, X.dtype))[0]
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
        X = self._check_X(X)
        if self._gmm is not None:
            return self._gmm.predict_proba(X)
        return self._predict_deep(X)[1]

    def _predict_deep(self, X: Any) -> tuple[Any, Any]:
        from . import backend as _backend
        from .cluster.deep import _soft_assignment
        from .embed.autoencoder import _encode, _training_tensor

        torch = _backend.torch_module()
        Xt = _training_tensor(X, len(self.feature_names))
        if next(self._network.parameters()).device != Xt.device:
            self._network = self._network.to(Xt.device)
        Z = _encode(torch, self._network, Xt, self._state["amp"])
        if self._state["assign"] == "nearest":
            Zx = _backend.from_torch(Z)
            return nearest_center(Zx, self._on("centers", array_namespace(Zx), Zx.dtype))[0], None
        centers = torch.from_numpy(self._arrays["centers"]).to(Xt.device)
        with torch.no_grad():
            Q = _soft_assignment(Z, centers, self._state["alpha"])
        return _backend.from_torch(Q.argmax(dim=1).to(torch.int32)), _backend.from_torch(Q)


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
        or edited file, or a file holding anything but plain arrays / tensors.
    """
    folder = Path(path)
    manifest = _read_manifest(folder)
    state = manifest["state"]
    needed = [_ARRAYS] + ([_WEIGHTS] if state.get("kind") == "deep" else [])
    data = {name: _read_checked(folder, name, manifest["files"]) for name in needed}
    arrays = _read_arrays(folder / _ARRAYS, data[_ARRAYS])
    _check_arrays(folder / _ARRAYS, manifest, arrays)
    network = None
    if state["kind"] == "deep":
        network = _read_network(folder / _WEIGHTS, data[_WEIGHTS], manifest)
    scaler = _make_scaler(manifest["scaler"], arrays, folder / _ARRAYS) if manifest["scaler"] is not None else None
    return LoadedModel(manifest, arrays, network, scaler)


def _fail(file: Path, what: str) -> ConfigError:
    return ConfigError(f"saved model {file}: {what}")


def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / _MANIFEST
    if not folder.is_dir():
        raise ConfigError(f"saved model {folder}: not a folder")
    if not file.is_file():
        raise _fail(file, "missing; not a gpuseg model folder")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(file, f"not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise _fail(file, f"not a gpuseg model (format is not {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _fail(file, f"format_version {version!r} is not an integer")
    if version != FORMAT_VERSION:
        raise _fail(file, f"format_version {version} (written by gpuseg {manifest.get('gpuseg_version', '?')}); "
                          f"this gpuseg {__version__} reads format_version {FORMAT_VERSION}")
    method, state = manifest.get("method"), manifest.get("state")
    if method not in SAVABLE_METHODS or not isinstance(state, dict):
        raise _fail(file, f"unknown method {method!r}")
    kinds = {**{m: "centroids" for m in _CENTROID_METHODS}, "gmm": "gmm", "som": "som", "ward": "ward",
             **{m: "deep" for m in _DEEP_METHODS}}
    if state.get("kind") != kinds[method]:
        raise _fail(file, f"state kind {state.get('kind')!r} does not match method {method!r}")
    for key, typ in (("k", int), ("feature_names", list), ("segment_names", list), ("files", dict),
                     ("config", dict), ("params", dict), ("extra", dict)):
        if not isinstance(manifest.get(key), typ):
            raise _fail(file, f"{key!r} is missing or not a {typ.__name__}")
    if manifest["k"] < 1 or len(manifest["segment_names"]) != manifest["k"]:
        raise _fail(file, f"k={manifest['k']} does not match {len(manifest['segment_names'])} segment names")
    if not all(isinstance(n, str) for n in manifest["feature_names"] + manifest["segment_names"]):
        raise _fail(file, "feature and segment names must be strings")
    if manifest.get("scaler") is not None and not isinstance(manifest["scaler"], dict):
        raise _fail(file, "'scaler' is not an object")
    return manifest


def _read_checked(folder: Path, name: str, files: Mapping[str, Any]) -> bytes:
    """The bytes of ``folder/name`` after checking them against the manifest's SHA-256."""
    file = folder / name
    expected = files.get(name)
    if not isinstance(expected, str):
        raise _fail(folder / _MANIFEST, f"no SHA-256 for {name}")
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise _fail(file, "missing") from None
    except OSError as exc:
        raise _fail(file, f"cannot be read ({exc.strerror})") from None
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


def _check_arrays(file: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Names, numeric dtypes and shapes of the arrays the method needs."""
    state, k, d = manifest["state"], manifest["k"], len(manifest["feature_names"])
    kind = state["kind"]
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
    if manifest.get("scaler") is not None:
        shapes.update(scaler_log_mask=(d,), scaler_mean=(d,), scaler_scale=(d,), scaler_skew=(d,))
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


def _read_network(file: Path, data: bytes, manifest: dict[str, Any]) -> Any:
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
    state = manifest["state"]
    try:
        hidden = tuple(int(h) for h in state["hidden"])
        net = _build_network(torch, len(manifest["feature_names"]), hidden, int(state["latent_dim"]),
                             torch.Generator().manual_seed(0))
        net.load_state_dict(weights, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise _fail(file, f"weights do not fit the saved network layout ({' '.join(str(exc).split())[:200]})") from None
    return net.eval()


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
    return scaler
