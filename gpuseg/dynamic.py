"""Dynamic segmentation with a saved model: assign new customers, update the model, follow
customers across time windows.

``assign``
    New data are read, cleaned and turned into features with the model's settings (its
    price fence, gap fills, top categories, price medians: :mod:`gpuseg.prep.features`),
    scaled with the model's scaler and labelled with the model's ``predict``. Recency is
    measured from the new data's last event (``as_of`` fixes it). A customer is
    ``out_of_distribution`` when a scaled feature lies more than :data:`OOD_MARGIN`
    (training standard deviations, after the log transform) beyond the training range;
    ``ood_feature`` names the feature furthest out.
``update``
    An incremental refresh on new data: centroid methods take mini-batch steps from the saved centres, which carry the weight of the training
    customers (``counts``); GMM runs EM on the new data with the old mixture's sufficient
    statistics frozen in (warm start); deep methods keep their encoder and refresh their
    latent centres by mini-batch steps (the autoencoder itself is not retrained); a vote
    consensus updates every member. New centres are matched to the old by the Hungarian
    method, so segment ids and names stay; how far each centre moved is reported, in
    training standard deviations and relative to the distance to the nearest other centre.
``migrate``
    The data are cut into time windows, each is segmented with the same model, and the
    customers of consecutive windows are followed: a segment-to-segment transition table
    per window pair (``new``: not active in the earlier window, ``lapsed``: not active in
    the later), the customers who moved, and the population stability index (PSI) of
    every feature between windows and against the training data (bins: training deciles).
    PSI above :data:`PSI_REFIT` against training in the latest window says a full refit
    is due.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from . import backend as _backend
from .config import CleanConfig, FeatureConfig
from .errors import ConfigError, DataError, SchemaError
from .model import LoadedModel
from .report.files import write_csv

__all__ = [
    "OOD_MARGIN", "PSI_WATCH", "PSI_REFIT", "Prepared", "load_input", "prepare", "assign_frame",
    "out_of_distribution", "update_model", "parse_windows", "migrate", "psi_table",
]

#: A scaled feature this many training standard deviations beyond the training range is
#: out of distribution.
OOD_MARGIN = 1.0
#: PSI conventions: below 0.1 stable, 0.1-0.25 watch, above 0.25 the population changed.
PSI_WATCH = 0.1
PSI_REFIT = 0.25

_OPTIONAL_SOURCES = ("category_code", "category", "brand", "user_session", "quantity", "order_id")


@dataclass
class Prepared:
    """New data made ready for a model.

    Attributes
    ----------
    ids : numpy array
        customer_id per row (host).
    X : array
        Scaled features on the backend's device, the model's columns.
    features : CustomerFeatures
    cleaned : CleanedData
    until : int or None
        The moment before which the data were taken (``--as-of``, a window's end), or None
        for all of them: lifetime value then counts the customers' age to the second before
        it, as a run on the data cut there counts it to the data's last moment.
    """

    ids: Any
    X: Any
    features: Any
    cleaned: Any
    until: int | None = None


def _need_data(model: LoadedModel) -> dict[str, Any]:
    if not model.data or model.scaler is None:
        raise ConfigError(f"saved model {getattr(model, 'path', '')}: saved without its data preparation "
                          "(features, cleaning, scaler); only a model written by gpuseg run can label raw data")
    return model.data


def _model_configs(model: LoadedModel) -> tuple[CleanConfig, FeatureConfig]:
    cfg = model.config
    clean_cfg = CleanConfig(**{k: v for k, v in cfg.get("clean", {}).items()
                               if k in {f.name for f in dataclasses.fields(CleanConfig)}})
    feats = dict(cfg.get("features", {}))
    feats = {k: v for k, v in feats.items() if k in {f.name for f in dataclasses.fields(FeatureConfig)}}
    if "groups" in feats:
        feats["groups"] = tuple(feats["groups"])
    return clean_cfg, FeatureConfig(**feats)


def load_input(model: LoadedModel, spec: str, backend: Any, rename: dict[str, str] | None = None,
               exclude: Any = None) -> Any:
    """Read ``spec`` as the model's input kind and check it has the columns its features
    were computed from.

    Raises
    ------
    SchemaError
        Another input kind, or a column the model's features need is missing.
    """
    from .io.readers import load_files, resolve_paths

    from .io.readers import read_header

    data = _need_data(model)
    files, kind = resolve_paths(spec, exclude=exclude)
    header = read_header(files[0], kind)
    # the model's renames where these data have the column; the user's replace any that
    # map onto the same gpuseg column
    rename = dict(rename or {})
    names = {old: new for old, new in dict(model.config.get("rename", {})).items()
             if old in header and new not in rename.values()}
    names.update(rename)
    ts_format = model.config.get("clean", {}).get("timestamp_format", "")
    chosen = bool(ts_format)  # the user's own setting decides over Arrow's reading of a CSV, as in the run
    if not ts_format and "%" in str(data.get("timestamp_format", "")):
        ts_format = data["timestamp_format"]  # the training data's format: no day/month guess on new data
    # a model saved before the reader joined Date and Time saw the date alone: so do its new data
    joined = bool((data.get("clean") or {}).get("join_time"))
    # and one saved before times in a second layout were read drops them, as its training did
    layouts = bool((data.get("clean") or {}).get("time_layouts"))
    loaded = load_files(files, kind, backend, data["kind"], names, ts_format, spec, times_as_text=chosen,
                        join_time=joined, time_layouts=layouts)
    if loaded.schema.name != data["kind"]:  # pragma: no cover - load_files enforces the format
        raise SchemaError(f"{spec}: {loaded.schema.name} data; the model was trained on {data['kind']}")
    have = set(map(str, loaded.frame.columns))
    trained = set(data.get("source_columns", ()))
    spec_ = model.feature_spec
    needed = [c for c in _OPTIONAL_SOURCES if c in trained]
    if "brands" not in spec_.names:
        needed = [c for c in needed if c != "brand"]
    if not spec_.category_columns:
        needed = [c for c in needed if c not in ("category_code", "category")]
    if data.get("sessions_derived"):
        needed = [c for c in needed if c != "user_session"]
    if "price_index" in spec_.names and data.get("price_group"):
        needed.append(data["price_group"])
    missing = [c for c in needed if c not in have]
    if missing:
        raise SchemaError(f"{spec}: no column {missing[0]!r}; the model's features were computed from it "
                          f"(map yours with --rename OLD={missing[0]})")
    extra = [c for c in loaded.frame.columns if trained and c not in trained]
    if extra:  # optional columns the training data lacked would change the features (orders, sessions)
        loaded.frame = loaded.frame[[c for c in loaded.frame.columns if c not in extra]]
    return loaded


def clean_like_model(model: LoadedModel, loaded: Any, backend: Any) -> Any:
    """Clean new data with the model's cleaning state."""
    from .prep.clean import clean

    clean_cfg, _ = _model_configs(model)
    return clean(loaded, clean_cfg, backend, fitted=model.data.get("clean"))


#: The reason written to the excluded list for a customer whose events all come at or after
#: ``assign --as-of``.
NOT_YET_ACTIVE = "no_events_before_as_of"


def _as_of(cleaned: Any, reference_time: int) -> Any:
    """The cleaned rows before ``reference_time``; the customers with none left are added to
    the excluded list (reason :data:`NOT_YET_ACTIVE`, with their rows), so none disappears."""
    f = cleaned.frame
    before = f["ts"] < reference_time
    kept = f[before].reset_index(drop=True)
    if len(kept) == 0:
        raise DataError("no events before the as-of time; choose a later --as-of")
    later = f.loc[~before, "customer_id"]
    later = later[~later.isin(kept["customer_id"].unique())].value_counts()
    later = later.to_pandas() if hasattr(later, "to_pandas") else later
    later = later[later > 0]  # a categorical column counts every category
    excluded = cleaned.excluded
    if len(later):
        new = pd.DataFrame({"customer_id": later.index, "reason": NOT_YET_ACTIVE,
                            "rows": later.to_numpy().astype("int64")}).sort_values("customer_id", kind="stable")
        excluded = new if excluded is None or len(excluded) == 0 else pd.concat([excluded, new], ignore_index=True)
    return dataclasses.replace(cleaned, frame=kept, rows_out=len(kept), reference_time=int(kept["ts"].max()),
                               excluded=excluded)


def prepare(model: LoadedModel, cleaned: Any, reference_time: int | None = None, inclusive: bool = False) -> Prepared:
    """Features (the model's definitions), scaled with the model's scaler. ``reference_time``:
    the data are taken before it (an exclusive bound: ``--as-of``, a window's end), or up to
    and including it with ``inclusive`` (the data's own last moment)."""
    from .prep.features import customer_features

    _, feat_cfg = _model_configs(model)
    if reference_time is not None and int(cleaned.reference_time) >= reference_time + int(inclusive):
        cleaned = _as_of(cleaned, reference_time + int(inclusive))  # times are whole seconds
    feats = customer_features(cleaned, feat_cfg, model.feature_spec, reference_time)
    if list(feats.names) != list(model.feature_names):  # pragma: no cover - customer_features enforces it
        raise DataError("the features of these data do not match the model's")
    raw = _backend.frame_to_array(feats.frame, dtype=np.float64)
    X = model.scaler.transform(raw)
    ids = _backend.to_host(feats.frame.index)
    return Prepared(np.asarray(ids), X, feats, cleaned, None if inclusive else reference_time)


def out_of_distribution(model: LoadedModel, X: Any) -> tuple[Any, Any]:
    """(flag per row, index of the feature furthest outside the training range or -1).

    The training range of each scaled feature is its min..max (``train_quantiles``); a row
    is flagged when a feature lies more than :data:`OOD_MARGIN` beyond it.
    """
    xp = _backend.array_namespace(X)
    q = model.arrays.get("train_quantiles")
    if q is None:
        return xp.zeros(X.shape[0], dtype=bool), xp.full(X.shape[0], -1, dtype=xp.int32)
    lo = xp.asarray(q[:, 0], dtype=X.dtype)
    hi = xp.asarray(q[:, -1], dtype=X.dtype)
    excess = xp.maximum(xp.maximum(lo[None, :] - X, X - hi[None, :]), 0)
    worst = excess.max(axis=1)
    flag = worst > OOD_MARGIN
    return flag, xp.where(flag, excess.argmax(axis=1), -1).astype(xp.int32)


def assign_frame(model: LoadedModel, prepared: Prepared) -> pd.DataFrame:
    """customer_id, segment, segment_name, confidence, low_confidence, out_of_distribution,
    ood_feature, p_alive, expected_purchases, predicted_clv for the prepared customers (a
    pandas frame)."""
    from .segments.confidence import LOW_CONFIDENCE

    segments, confidence = model.predict_with_confidence(prepared.X)
    flag, worst = out_of_distribution(model, prepared.X)
    seg = np.asarray(_backend.to_host(segments)).astype(np.int32)
    conf = np.asarray(_backend.to_host(confidence)).astype(np.float32)
    names = np.asarray(model.segment_names + ["unassigned"], dtype=object)
    feature = np.asarray(list(model.feature_names) + [""], dtype=object)
    worst = np.asarray(_backend.to_host(worst))
    frame = pd.DataFrame({
        "customer_id": prepared.ids,
        "segment": seg,
        "segment_name": names[np.where(seg >= 0, seg, len(names) - 1)],
        "confidence": conf,
        "low_confidence": conf < LOW_CONFIDENCE,
        "out_of_distribution": np.asarray(_backend.to_host(flag)).astype(bool),
        "ood_feature": feature[np.where(worst >= 0, worst, len(feature) - 1)],
    })
    return _with_value(frame, model, prepared)


def _with_value(frame: pd.DataFrame, model: LoadedModel, prepared: Prepared) -> pd.DataFrame:
    """``p_alive, expected_purchases, predicted_clv`` from the model's lifetime-value fit (NaN
    for customers without a purchase, and for models saved without one)."""
    from .segments.value import predict_value, purchase_history

    columns = ["p_alive", "expected_purchases", "predicted_clv"]
    fit = model.data.get("value")
    if not isinstance(fit, dict) or fit.get("status") != "ok":
        return frame.assign(**{c: np.nan for c in columns})
    cleaned = prepared.cleaned
    # an exclusive bound (the next midnight after an --as-of day): the age runs to the last
    # moment before it, so a day-end as-of gives the run's T on the data cut at that day
    until = prepared.until
    reference = int(prepared.features.reference_time) if until is None else min(
        int(prepared.features.reference_time), int(until) - 1)
    history = purchase_history(cleaned.frame, cleaned.kind, reference)
    xp = _backend.array_namespace(prepared.X)
    values = predict_value(history, fit, xp).reindex(frame["customer_id"].to_numpy())
    return frame.assign(**{c: values[c].to_numpy() for c in columns})


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Parquet or CSV by the suffix (``.csv.gz`` too)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        write_csv(frame, path, float_format="%.6g")


def excluded_path(out: Path) -> Path:
    """Where ``assign`` lists the customers cleaning excluded: beside ``out``,
    ``NAME.excluded.csv`` (``NAME`` without .parquet / .csv / .csv.gz)."""
    name = out.name
    for suffix in (".csv.gz", ".parquet", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}.excluded.csv")


def write_excluded(excluded: pd.DataFrame | None, path: Path) -> int:
    """Write the excluded customers to ``path`` (all or nothing), or remove a stale list when
    there are none; returns how many."""
    if excluded is None or len(excluded) == 0:
        path.unlink(missing_ok=True)
        return 0
    tmp = path.with_name(f".gpuseg-tmp-{path.name}")
    try:
        write_csv(excluded, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(excluded)


def check_table_path(out: str, inputs: Sequence[Any] = (), force: bool = False) -> Path:
    """A file to write: a known suffix, an existing folder, not an input, not an existing
    file unless ``force``."""
    path = Path(out).expanduser()
    name = path.name.lower()
    if not (name.endswith(".parquet") or name.endswith(".csv") or name.endswith(".csv.gz")):
        raise ConfigError(f"--out {out}: give a .parquet, .csv or .csv.gz file")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {path.parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file")
    for inp in inputs:
        if Path(inp).resolve() == path.resolve():
            raise ConfigError(f"--out {out}: is an input file; choose another name")
    if path.exists() and not force:
        raise ConfigError(f"--out {out}: exists; use --force to replace it")
    if excluded_path(path).exists() and not force:
        raise ConfigError(f"--out {out}: {excluded_path(path).name} (the customers a run excluded) exists beside it; "
                          "use --force to replace it")
    _check_writable(path.parent, out)
    return path


def _check_writable(folder: Path, out: str) -> None:
    """Refuse, before any work, a folder where no file can be created (read-only, permissions)."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(prefix=".gpuseg-probe-", dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write in folder {folder} ({exc.strerror or exc})") from None


# --- update ------------------------------------------------------------------------------


def _minibatch(X: Any, centers: Any, counts: Any, batch_size: int, seed: int) -> tuple[Any, Any, Any]:
    """One pass of mini-batch steps (:meth:`MiniBatchKMeans.partial_fit`, no reassignment)
    over X in a seeded order from (centers, counts); returns the new centres (float64),
    counts and the customers each centre received, on the host."""
    from .cluster.minibatch import MiniBatchKMeans

    xp = _backend.array_namespace(X)
    est = MiniBatchKMeans.from_arrays(xp.asarray(_backend.to_namespace(centers, xp), dtype=xp.float64),
                                      xp.asarray(_backend.to_namespace(counts, xp)), batch_size=batch_size,
                                      reassignment_ratio=0.0)
    start = est.counts_.copy()
    order = xp.asarray(np.random.default_rng(seed).permutation(X.shape[0]))
    for lo in range(0, X.shape[0], batch_size):
        est.partial_fit(X[order[lo: lo + batch_size]])
    state = est.to_arrays()
    return state["cluster_centers"], state["counts"], state["counts"] - np.asarray(_backend.to_host(start))


def _gmm_update(arrays: dict[str, np.ndarray], state: dict[str, Any], X: Any, max_iter: int, tol: float
                ) -> tuple[dict[str, np.ndarray], Any, int]:
    """Incremental EM (:meth:`GaussianMixture.partial_fit`): the old mixture's sufficient
    statistics (its weights times its training customers) stay fixed, the new data's are
    re-estimated every iteration."""
    from .cluster.gmm import GaussianMixture

    xp = _backend.array_namespace(X)
    n_old = float(arrays["counts"].sum()) if "counts" in arrays else float(X.shape[0])
    g = GaussianMixture.from_arrays(
        *(xp.asarray(arrays[name]) for name in ("weights", "means", "covariances", "precisions_cholesky")),
        counts=xp.asarray(arrays["weights"]) * n_old, covariance_type=state["covariance_type"],
        reg_covar=1e-6, max_iter=max_iter, tol=tol,
    ).partial_fit(X)
    return {**arrays, **g.to_arrays()}, g.batch_counts_, g.n_iter_


def _match(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Permutation p with new[p[j]] matched to old[j] (Hungarian method, squared distances)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((old[:, None, :] - new[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(old.shape[0], dtype=np.int64)
    perm[rows] = cols
    return perm


def _update_single(sub: LoadedModel, X: Any, batch_size: int, seed: int, max_iter: int, embedded: bool = False
                   ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], str]:
    """(new arrays, movement per estimator label, what was done) for one (member) model;
    ``X`` is the estimator's input (:meth:`LoadedModel.embed`), ``embedded``: in a saved
    embedding."""
    state, arrays = sub.state, dict(sub.arrays)
    kind = state["kind"]
    k = state["k"]
    counts = arrays.get("counts")
    if counts is None:
        raise ConfigError(f"saved model: the {sub.method} state has no training counts; refit with gpuseg run")
    if kind == "centroids" or (kind == "ward" and state.get("exact", True)) or kind == "deep":
        space = sub.latent(X, embedded=True) if kind == "deep" or state.get("metric") else X
        old = arrays["centers"].astype(np.float64)
        centers, new_counts, received = _minibatch(space, old, counts, batch_size, seed)
        new = np.asarray(_backend.to_host(centers))
        received = np.asarray(_backend.to_host(received))
        perm = _match(old, new)
        new, new_counts, received = new[perm], np.asarray(_backend.to_host(new_counts))[perm], received[perm]
        arrays["centers"] = new.astype(arrays["centers"].dtype)
        arrays["counts"] = new_counts
        how = ("mini-batch steps on the latent centres (encoder kept)" if kind == "deep"
               else "mini-batch steps from the saved centres")
        space_name = "latent" if kind == "deep" else ("metric" if state.get("metric") else
                                                      "embedding" if embedded else "features")
    elif kind == "gmm":
        old = arrays["means"].astype(np.float64)
        arrays, received, iters = _gmm_update(arrays, state, X, max_iter, 1e-4)
        received = np.asarray(_backend.to_host(received))
        new = arrays["means"]
        perm = _match(old, new)
        if not np.array_equal(perm, np.arange(k)):
            for name in ("weights", "means", "counts", "covariances", "precisions_cholesky"):
                arrays[name] = arrays[name][perm]
            received = received[perm]
            new = arrays["means"]
        how = f"incremental EM warm-started from the saved mixture ({iters} iterations)"
        space_name = "embedding" if embedded else "features"
    else:
        what = "a SOM" if kind == "som" else "a Ward (micro-cluster or nearest-row)"
        raise ConfigError(f"update is not available for {what} model; refit with gpuseg run")
    moved = np.sqrt(((new - old) ** 2).sum(axis=1))
    gap = np.sqrt(((old[:, None, :] - old[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(gap, np.inf)
    nearest = gap.min(axis=1) if k > 1 else np.full(k, np.inf)
    rows = [{"label": j, "moved": float(moved[j]), "relative": float(moved[j] / nearest[j]) if np.isfinite(nearest[j])
             and nearest[j] > 0 else None, "new_customers": float(received[j]), "space": space_name}
            for j in range(k)]
    return arrays, rows, how


def update_model(model: LoadedModel, X: Any, *, batch_size: int = 1024, seed: int = 0, max_iter: int = 20
                 ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], str]:
    """Incremental refresh of a loaded model on scaled features ``X``.

    Returns
    -------
    arrays : dict
        The model's arrays with the updated state (for :func:`gpuseg.model.save_updated`).
    movement : list of dict
        Per segment (and per member for a consensus): label, segment name, how far its
        centre moved (in the space it lives in, scaled units), that distance over the
        distance to the nearest other old centre, and the new customers it received.
    how : str
        What was done.

    A model found in an embedding keeps its embedding as saved (the PCA, the autoencoder,
    the UMAP placement rows): the new customers are embedded once and the centres move in
    that fixed space, as a deep model's centres move in its kept encoder's. On a UMAP
    embedding this has two limits: the new customers are placed at weighted means of the
    training customers' coordinates, so they never land outside the region the training
    customers cover (a new kind of customer is pulled into the nearest old one, and the
    centres can move only within that region); and the stored training rows and their
    coordinates are those of the original run in every version (``update`` never adds the
    new customers to them). Refit with ``gpuseg run`` when the customers change.

    Raises
    ------
    ConfigError
        A method without an incremental update (SOM, Ward micro-clusters).
    """
    X = model.embed(X)
    kept = f", in the saved {model.embedding['method']} embedding (kept as it was)" if model.embedded else ""
    arrays = dict(model.arrays)
    seg_map = arrays.get("segment_map")

    def named(rows: list[dict[str, Any]], member: str | None, table: np.ndarray | None) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            seg = int(table[r["label"]]) if table is not None and r["label"] < table.shape[0] else r["label"]
            out.append({"member": member, "segment": seg,
                        "segment_name": model.segment_names[seg] if 0 <= seg < len(model.segment_names) else None,
                        **r})
        return out

    if model.state["kind"] == "consensus":
        movement, hows = [], set()
        for i, (member, entry) in enumerate(zip(model.members, model.state["members"])):
            sub_arrays, rows, how = _update_single(member, X, batch_size, seed + i, max_iter, model.embedded)
            hows.add(how)
            for name, a in sub_arrays.items():
                arrays[f"member{i}__{name}"] = a
            cmap = model.arrays[f"member{i}__consensus_map"]
            table = cmap if seg_map is None else np.where(cmap >= 0, np.append(seg_map, -1)[cmap], -1)
            movement += named(rows, entry["method"], table)
        return arrays, movement, "; ".join(sorted(hows)) + " (every consensus member)" + kept
    sub_arrays, rows, how = _update_single(model, X, batch_size, seed, max_iter, model.embedded)
    how += kept
    arrays.update(sub_arrays)
    old_conf = arrays.get("confidence_centers")
    if old_conf is not None and "centers" in sub_arrays and old_conf.shape == sub_arrays["centers"].shape:
        arrays["confidence_centers"] = sub_arrays["centers"].astype(old_conf.dtype)  # row j: label j, kept
    return arrays, named(rows, None, seg_map), how


# --- migrate -----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dwh])\s*$", re.I)
_DAY = 86400


#: A date as the options take it: YYYY-MM-DD, then optionally a time (and a zone).
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\S.*)?")


def _day(text: str, option: str) -> int:
    """Unix seconds of a date (or date and time; UTC unless it says otherwise). Only
    YYYY-MM-DD first: "03/04/2020" would be read as March 4 and "30/09/2019" as 30 September."""
    try:
        if not _ISO_DAY.fullmatch(text.strip()):
            raise ValueError(text)
        ts = pd.Timestamp(text.strip())
        if pd.isna(ts):
            raise ValueError(text)
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return int(ts.timestamp())
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(f"{option}: {text!r} is not a date (use YYYY-MM-DD)") from None


def as_of_time(text: str) -> int:
    """``--as-of``: the end of a day (YYYY-MM-DD), or the given moment when it has a time."""
    seconds = _day(text, "--as-of")
    return seconds + _DAY if len(text.strip()) <= 10 else seconds


def outside_windows(cleaned: Any, windows: Sequence[tuple[int, int]]) -> dict[str, int]:
    """The cleaned rows no window holds, and the customers all of whose rows are among them
    (migrate segments neither): ``{"rows": n, "customers": m}``."""
    f = cleaned.frame
    ts = f["ts"]
    inside = ts < ts.min()  # all False, on the frame's device
    for lo, hi in windows:
        inside = inside | ((ts >= lo) & (ts < hi))
    out = f.loc[~inside, "customer_id"]
    customers = out[~out.isin(f.loc[inside, "customer_id"].unique())].nunique()
    return {"rows": int(len(out)), "customers": int(customers)}


def check_window_options(window: str | None, windows: str | None) -> None:
    """What :func:`parse_windows` can refuse without the data: one of the two options, a
    well-formed length, or at least two given windows in time order.

    Raises
    ------
    ConfigError
    """
    if (window is None) == (windows is None):
        raise ConfigError("give either --window (e.g. 30d) or --windows (e.g. 2019-10-01..2019-10-31,...)")
    if window is not None:
        _window_length(window)
    else:
        _given_windows(windows)


def parse_windows(window: str | None, windows: str | None, first_ts: int, last_ts: int
                  ) -> list[tuple[int, int]]:
    """Time windows as (start, end) Unix seconds, end exclusive.

    ``window`` ("30d", "4w", "12h"): consecutive whole windows of that length ending with
    the last event's day (hour, for lengths in hours), UTC, as many as fit from the start of
    the first event's day (hour); data before the first whole window are left out (a partial
    window's features are not comparable). ``windows`` ("2019-10-01..2019-10-31,
    2019-11-01..2019-11-30"): the given days, both ends included.
    """
    check_window_options(window, windows)
    if windows is not None:
        return _given_windows(windows)
    length = _window_length(window)
    unit = _DAY if length % _DAY == 0 else 3600
    end = last_ts - last_ts % unit + unit  # the end of the last event's day (hour)
    start = first_ts - first_ts % unit  # the start of the first event's day (hour)
    count = (end - start) // length  # whole windows only: a partial one is not comparable
    if count > 200:
        raise ConfigError(f"--window {window}: {count} windows; choose a longer window")
    if count < 2:
        raise ConfigError(f"migrate needs at least two windows; the data span fewer whole windows of {window} "
                          "(choose a shorter --window)")
    return [(end - (i + 1) * length, end - i * length) for i in range(count)][::-1]


def _window_length(window: str) -> int:
    """``--window``'s length in seconds."""
    m = _DURATION.match(window)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--window {window!r}: give a length such as 30d, 4w or 12h")
    length = int(float(m.group(1)) * {"d": _DAY, "w": 7 * _DAY, "h": 3600}[m.group(2).lower()])
    if length < 3600:
        raise ConfigError(f"--window {window!r}: windows shorter than an hour are not supported")
    return length


def _given_windows(windows: str) -> list[tuple[int, int]]:
    """``--windows``' days as (start, end) Unix seconds, in time order, not overlapping."""
    out: list[tuple[int, int]] = []
    for part in windows.split(","):
        bits = part.split("..")
        if len(bits) != 2:
            raise ConfigError(f"--windows: {part.strip()!r} is not FIRST..LAST (e.g. 2019-10-01..2019-10-31)")
        lo, hi = _day(bits[0], "--windows"), _day(bits[1], "--windows") + _DAY
        if hi <= lo:
            raise ConfigError(f"--windows: {part.strip()!r} ends before it starts")
        out.append((lo, hi))
    for (a_lo, a_hi), (b_lo, b_hi) in zip(out, out[1:]):
        if b_lo < a_hi:
            raise ConfigError("--windows must be in time order and must not overlap "
                              f"({_window_label(a_lo, a_hi)} and {_window_label(b_lo, b_hi)})")
    if len(out) < 2:
        raise ConfigError("migrate needs at least two windows: give two or more with --windows")
    return out


def _window_label(lo: int, hi: int) -> str:
    fmt = "%Y-%m-%d" if lo % _DAY == 0 and hi % _DAY == 0 else "%Y-%m-%d %H:%M"
    a = _dt.datetime.fromtimestamp(lo, _dt.timezone.utc).strftime(fmt)
    b = _dt.datetime.fromtimestamp(hi - (_DAY if fmt == "%Y-%m-%d" else 60), _dt.timezone.utc).strftime(fmt)
    return f"{a}..{b}"


def _bins(q: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per feature: inner decile edges (unique) and the training share of each bin,
    estimated from the 101 saved percentiles (trapezoid weights)."""
    edges, shares = [], []
    w = np.full(q.shape[1], 1.0)
    w[0] = w[-1] = 0.5
    w /= w.sum()
    for row in q:
        e = np.unique(row[10:100:10])
        b = np.searchsorted(e, row, side="right")
        edges.append(e)
        shares.append(np.bincount(b, weights=w, minlength=e.size + 1))
    return edges, shares


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected, 1e-4)
    a = np.maximum(actual, 1e-4)
    return float(((a - e) * np.log(a / e)).sum())


def psi_table(model: LoadedModel, windows: Sequence[str], Xs: Sequence[Any]) -> pd.DataFrame:
    """PSI of every feature between consecutive windows and of each window against the
    training data, with a status (stable / watch / refit)."""
    edges, train = _bins(model.arrays["train_quantiles"])
    dist = []
    for X in Xs:
        Xh = np.asarray(_backend.to_host(X), dtype=np.float64)
        per = []
        for j in range(Xh.shape[1]):
            b = np.searchsorted(edges[j], Xh[:, j], side="right")
            per.append(np.bincount(b, minlength=edges[j].size + 1) / max(Xh.shape[0], 1))
        dist.append(per)
    rows = []
    for t in range(1, len(Xs)):
        for j, name in enumerate(model.feature_names):
            prev = _psi(dist[t - 1][j], dist[t][j])
            vs_train = _psi(train[j], dist[t][j])
            status = "refit" if vs_train > PSI_REFIT else "watch" if max(vs_train, prev) > PSI_WATCH else "stable"
            rows.append({"feature": name, "window_from": windows[t - 1], "window_to": windows[t],
                         "psi_vs_previous": prev, "psi_vs_training": vs_train, "status": status})
    first = [{"feature": name, "window_from": "training", "window_to": windows[0], "psi_vs_previous": None,
              "psi_vs_training": _psi(train[j], dist[0][j]), "status": None} for j, name in enumerate(model.feature_names)]
    for r in first:
        r["status"] = "refit" if r["psi_vs_training"] > PSI_REFIT else "watch" if r["psi_vs_training"] > PSI_WATCH \
            else "stable"
    return pd.DataFrame(first + rows)


@dataclass
class Migration:
    """What :func:`migrate` found."""

    windows: list[dict[str, Any]]
    transitions: pd.DataFrame
    movers: pd.DataFrame
    drift: pd.DataFrame
    refit_due: bool
    refit_reason: str
    labels: list[pd.DataFrame]


def migrate(model: LoadedModel, cleaned: Any, windows: Sequence[tuple[int, int]],
            progress: Callable[[int, int, str], None] | None = None, skip_empty: bool = False,
            note: Callable[[str], None] | None = None) -> Migration:
    """Segment each window's customers with the model and follow them across windows.

    A window without events is an error, or left out (with a note) under ``skip_empty``
    (windows cut by ``--window`` across a gap in the data)."""
    labels, Xs, info = _segment_windows(model, cleaned, windows, progress, skip_empty, note)
    if len(labels) < 2:
        raise DataError("fewer than two windows hold events; migration compares windows: give at least two "
                        "(a shorter --window, or two ranges in --windows)")
    transitions, movers_frame = _moves(labels, info, list(model.segment_names))
    drift = psi_table(model, [w["window"] for w in info], Xs)
    refit, reason = _refit_advice(drift, info)
    return Migration(info, transitions, movers_frame, drift, refit, reason, labels)


def _segment_windows(model: LoadedModel, cleaned: Any, windows: Sequence[tuple[int, int]],
                     progress: Callable[[int, int, str], None] | None, skip_empty: bool,
                     note: Callable[[str], None] | None) -> tuple[list[pd.DataFrame], list[Any], list[dict[str, Any]]]:
    """(assignments, feature matrices, window info) of the windows that hold events."""
    f = cleaned.frame
    labels, Xs, info = [], [], []
    names = list(model.segment_names)
    last_event = int(cleaned.reference_time)
    for t, (lo, hi) in enumerate(windows):
        label = _window_label(lo, hi)
        if progress:
            progress(t, len(windows), label)
        sub = f[(f["ts"] >= lo) & (f["ts"] < hi)]
        if len(sub) == 0:
            if not skip_empty:
                raise DataError(f"window {label} holds no events; choose windows inside the data")
            if note:
                note(f"window {label} holds no events; left out")
            continue
        part = dataclasses.replace(cleaned, frame=sub.reset_index(drop=True), rows_out=len(sub),
                                   reference_time=int(sub["ts"].max()))
        prepared = prepare(model, part, reference_time=min(hi, last_event), inclusive=hi > last_event)
        frame = assign_frame(model, prepared)
        frame.insert(0, "window", label)
        labels.append(frame)
        Xs.append(prepared.X)
        counts = frame["segment"].value_counts()
        info.append({"window": label,
                     "start": _dt.datetime.fromtimestamp(lo, _dt.timezone.utc).isoformat(),
                     "end": _dt.datetime.fromtimestamp(hi, _dt.timezone.utc).isoformat(),
                     "customers": int(len(frame)),
                     "out_of_distribution": int(frame["out_of_distribution"].sum()),
                     "segments": {names[s]: int(counts.get(s, 0)) for s in range(len(names))}})
    if progress:
        progress(len(windows), len(windows), "")
    return labels, Xs, info


def _moves(labels: list[pd.DataFrame], info: list[dict[str, Any]], names: list[str]
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transitions, movers) between consecutive windows; -1 is new (from) or lapsed (to)."""
    trans, movers = [], []
    for t in range(1, len(labels)):
        a = labels[t - 1][["customer_id", "segment"]]
        b = labels[t][["customer_id", "segment"]]
        m = a.merge(b, on="customer_id", how="outer", suffixes=("_from", "_to"))
        m["segment_from"] = m["segment_from"].fillna(-1).astype(np.int64)
        m["segment_to"] = m["segment_to"].fillna(-1).astype(np.int64)
        counts = m.groupby(["segment_from", "segment_to"]).size().rename("customers").reset_index()
        totals = counts.groupby("segment_from")["customers"].transform("sum")
        counts["share_of_from"] = counts["customers"] / totals
        counts.insert(0, "window_to", info[t]["window"])
        counts.insert(0, "window_from", info[t - 1]["window"])
        trans.append(counts)
        moved = m[(m["segment_from"] >= 0) & (m["segment_to"] >= 0) & (m["segment_from"] != m["segment_to"])]
        moved = moved.rename(columns={"segment_from": "from_segment", "segment_to": "to_segment"})
        moved.insert(1, "window_from", info[t - 1]["window"])
        moved.insert(2, "window_to", info[t]["window"])
        movers.append(moved)
    transitions = pd.concat(trans, ignore_index=True).rename(
        columns={"segment_from": "from_segment", "segment_to": "to_segment"})

    def name_of(s: pd.Series, none: str) -> pd.Series:
        return s.map(lambda v: none if v < 0 else names[v] if v < len(names) else f"segment {v}")

    # segment -1: not a "Lapsed" or "New customers" segment but absence from a window (report.migration)
    transitions.insert(3, "from_name", name_of(transitions["from_segment"], "new in next window"))
    transitions.insert(5, "to_name", name_of(transitions["to_segment"], "not in next window"))
    movers_frame = pd.concat(movers, ignore_index=True)
    movers_frame["from_name"] = name_of(movers_frame["from_segment"], "new in next window")
    movers_frame["to_name"] = name_of(movers_frame["to_segment"], "not in next window")
    movers_frame = movers_frame[["customer_id", "window_from", "window_to", "from_segment", "from_name",
                                 "to_segment", "to_name"]]
    return transitions, movers_frame


def _refit_advice(drift: pd.DataFrame, info: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether the latest window's features drifted past PSI_REFIT from the training data, and why."""
    latest = drift[drift["window_to"] == info[-1]["window"]]
    latest = latest[latest["window_from"] != "training"] if len(info) > 1 else latest
    bad = latest[latest["psi_vs_training"] > PSI_REFIT].sort_values("psi_vs_training", ascending=False)
    if len(bad):
        reason = (f"{len(bad)} feature(s) drifted from the training data in {info[-1]['window']} (PSI > {PSI_REFIT}): "
                  + ", ".join(f"{r.feature} {r.psi_vs_training:.2f}" for r in bad.head(5).itertuples()))
    else:
        worst = latest.sort_values("psi_vs_training", ascending=False).head(1)
        reason = (f"every feature's PSI against the training data is at most {float(worst['psi_vs_training'].iloc[0]):.2f} "
                  f"in {info[-1]['window']} (refit above {PSI_REFIT})")
    return bool(len(bad)), reason

