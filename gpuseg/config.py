"""Run configuration: one frozen :class:`RunConfig`, built from a TOML file and CLI options.

A config file holds the same keys as the command line plus the stage sections::

    input = "events/*.parquet"     # omit for the built-in synthetic data set
    format = "events"              # events | orders | auto
    out = "gpuseg-out"
    device = "auto"                # auto | gpu | cpu
    methods = ["kmeans"]
    k = "2-12"                     # or 6, or [2, 12]
    seed = 0
    threads = 0                    # CPU threads of OpenMP/torch for the run (0: usable cores; BLAS always on 1)

    [rename]                       # source column -> gpuseg column
    CustomerID = "customer_id"

    [clean]
    drop_duplicates = true         # exact duplicates, where an order id or session proves them one record
    price_outliers = "cap"         # IQR fence on prices / amounts: cap the top (winsorise) | drop | off
    iqr_factor = 3.0
    iqr_on_log = true              # fence on log1p(price): prices are log-normal
    fill_missing = "unknown"       # unknown | mode (category_code, brand)
    timestamp_format = ""          # strptime format; empty = detect
    currency = ""                  # orders with a currency column: keep this one (e.g. "EUR")

    [features]
    groups = ["rfm", "funnel", "sessions", "time", "category", "price"]
    top_categories = 8
    clv_horizon_days = 365
    utc_offset_hours = 0
    log_skewed = true
    skew_threshold = 1.0
    weighting = true               # weights from gpuseg.prep.represent (false: every feature 1)
    near_constant = 0.99           # left out when this share of customers has one value
    redundancy = 0.8               # |Spearman rho| from which features share one weight
    describe_only = []             # features or groups that profile but do not define segments

    [value]                        # lifetime value: BG/NBD + Gamma-Gamma (gpuseg.segments.value)
    enabled = true
    horizon_days = 365             # expected purchases and predicted_clv over this many days
    discount_rate = 0.1            # a year
    margin = 1.0                   # predicted_clv = margin x expected spend

    [evaluate]
    silhouette_exact_max = 5000    # exact silhouette up to this many customers
    silhouette_sample = 5000       # fixed-seed sample size above it
    stability_resamples = 10       # refits per method for stability (0: no stability)
    stability_scheme = "half"      # half samples without replacement, or "bootstrap"
    stability_sample = 5000        # customers per refit at most (drawn from a shared pool)

    [embed]                        # cluster an embedding: none | pca | umap | autoencoder
    method = "pca"
    n_components = 8
    [embed.params]                 # the embedder's own parameters
    whiten = false

    [params.gmm]                   # per-method parameters ([params.<method>])
    covariance_type = "full"
    [params.dbscan]
    eps = 1.5

Values given on the command line override the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

__all__ = [
    "RunConfig",
    "EmbedConfig",
    "EMBEDDINGS",
    "CleanConfig",
    "FeatureConfig",
    "ClusterConfig",
    "EvaluateConfig",
    "FEATURE_GROUPS",
    "K_LIMIT",
    "parse_k",
    "load_config_file",
    "build_config",
]

#: Feature groups a user can switch on and off (``[features] groups``).
FEATURE_GROUPS = ("rfm", "funnel", "sessions", "time", "category", "price")

#: Largest k the sweep accepts; more segments than this are not a segmentation.
K_LIMIT = 50


@dataclass(frozen=True)
class CleanConfig:
    """Cleaning settings (see :mod:`gpuseg.prep.clean`)."""

    #: exact duplicate rows are dropped only where an order id (orders) or a session
    #: (events) makes them provably one record; an order log without order ids keeps them
    drop_duplicates: bool = True
    #: prices outside the IQR fence: "cap" those above it at its top (winsorise; those below it
    #: stay), "drop" the rows outside it on either side, "off"
    price_outliers: str = "cap"
    iqr_factor: float = 3.0
    iqr_on_log: bool = True
    fill_missing: str = "unknown"
    timestamp_format: str = ""
    #: an order log with a ``currency`` column of several currencies: the one kept (the rows
    #: of the others are dropped as ``other_currency``); empty: the run refuses such a log
    currency: str = ""


@dataclass(frozen=True)
class FeatureConfig:
    """Feature-engineering settings (see :mod:`gpuseg.prep.features`)."""

    groups: tuple[str, ...] = FEATURE_GROUPS
    top_categories: int = 8
    clv_horizon_days: float = 365.0
    utc_offset_hours: float = 0.0
    log_skewed: bool = True
    skew_threshold: float = 1.0
    #: weight the scaled features (:mod:`gpuseg.prep.represent`); false: every weight 1
    weighting: bool = True
    near_constant: float = 0.99
    redundancy: float = 0.8
    #: feature or group names that describe the segments without defining them
    describe_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class SegmentsConfig:
    """Segment-intelligence settings (see :mod:`gpuseg.segments`)."""

    rfm_bins: int = 5
    #: ``((measure, (cut, ...)), ...)``: explicit RFM cut points (``[segments.rfm_cuts]``)
    rfm_cuts: tuple = ()
    tree_depth: int = 4
    top_items: int = 10


@dataclass(frozen=True)
class ValueConfig:
    """Lifetime-value settings (see :mod:`gpuseg.segments.value`)."""

    enabled: bool = True
    horizon_days: float = 365.0
    #: a year, for the discounting of predicted_clv
    discount_rate: float = 0.1
    #: predicted_clv = margin x expected spend (1: revenue)
    margin: float = 1.0


@dataclass(frozen=True)
class ClusterConfig:
    """Which methods run over which k."""

    methods: tuple[str, ...] = ()
    k_min: int = 2
    k_max: int = 12


@dataclass(frozen=True)
class EmbedConfig:
    """The optional embedding the methods cluster (scores stay on the scaled features)."""

    method: str = "none"
    n_components: int = 8
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluation settings (see :mod:`gpuseg.evaluate`)."""

    silhouette_exact_max: int = 5_000
    silhouette_sample: int = 5_000
    stability_resamples: int = 10
    stability_scheme: str = "half"
    stability_sample: int = 5000


@dataclass(frozen=True)
class DaskConfig:
    """Scale-out with Dask (see :mod:`gpuseg.dist`): off while ``cluster`` is empty."""

    #: "" (no Dask), "local" (a LocalCUDACluster on GPUs, else a LocalCluster of
    #: processes) or a scheduler address such as "tcp://host:8786"
    cluster: str = ""
    #: workers of a local cluster (0: one per GPU, or one per 2 CPU cores)
    workers: int = 0
    #: memory limit per worker of a local cluster ("auto" or e.g. "4GB")
    memory_limit: str = "auto"
    #: customer buckets the rows are hashed into (0: about 2 per worker, at least the pieces)
    partitions: int = 0
    #: target size of one input piece (a CSV byte range, a group of Parquet row groups)
    piece_mb: int = 128
    #: customers whose rows feed the report's activity, category and product tables
    insight_customers: int = 50_000
    #: where K-means ("kmeans") fits the customer table: "client" (this process, on its GPU
    #: or CPU), "workers" (map-reduce Lloyd over row blocks on the workers; cuML's
    #: multi-GPU K-means on dask-cuda) or "auto" (workers when the table is larger than half
    #: a worker's memory limit, or with two or more GPUs 40% of one GPU's memory)
    kmeans: str = "auto"


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``gpuseg run`` needs.

    Attributes
    ----------
    input : str or None
        File, glob or folder; None runs on the built-in synthetic data set.
    format : {"auto", "events", "orders"}
    rename : tuple of (str, str)
        Source column -> gpuseg column.
    out : str
        Output folder.
    device : {"auto", "gpu", "cpu"}
    seed : int
    truth : str or None
        File with the known segment of each customer (ARI/NMI are added).
    synthetic_customers : int
        Size of the built-in data set.
    select : str or None
        ``--select``: use this method's segmentation whatever the ranking.
    report : bool
        Write ``plots/`` and ``report.html`` (default True).
    anonymize : bool
        ``--anonymize``: pseudonymous customer ids in every output (:mod:`gpuseg.io.privacy`).
    sensitivity : bool
        Also write ``sensitivity.csv`` (scores across k, and across eps/min_samples for
        DBSCAN).
    params : tuple
        ``[params.<method>]`` settings as (method, ((name, value), ...)) pairs; see
        :meth:`method_params`.
    """

    input: str | None = None
    format: str = "auto"
    rename: tuple[tuple[str, str], ...] = ()
    out: str = "gpuseg-out"
    device: str = "auto"
    seed: int = 0
    truth: str | None = None
    synthetic_customers: int = 20_000
    #: CPU threads of OpenMP and torch for the run (0: the cores this process may use); BLAS
    #: is always on 1 (pipeline.thread_limit)
    threads: int = 0
    sensitivity: bool = False
    report: bool = True
    anonymize: bool = False
    select: str | None = None
    params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    clean: CleanConfig = field(default_factory=CleanConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    dask: DaskConfig = field(default_factory=DaskConfig)

    @property
    def k_values(self) -> list[int]:
        return list(range(self.cluster.k_min, self.cluster.k_max + 1))

    def method_params(self, method: str, gpu: bool = False) -> dict[str, Any]:
        """Parameters of a method: gpuseg's defaults overlaid with ``[params.<method>]``."""
        from .cluster import method_params

        return method_params(method, dict(dict(self.params).get(method, ())), gpu=gpu)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (for metrics.json)."""
        d = dataclasses.asdict(self)
        d["rename"] = dict(self.rename)
        d["params"] = {m: dict(kv) for m, kv in self.params}
        d["embed"]["params"] = dict(self.embed.params)
        d["segments"]["rfm_cuts"] = {m: list(c) for m, c in self.segments.rfm_cuts}
        return d


_K_RE = re.compile(r"^\s*(\d+)\s*(?:(?:-|\.\.|:)\s*(\d+)\s*)?$")


def parse_k(value: Any, option: str = "--k") -> tuple[int, int]:
    """Parse ``"2-10"``, ``"6"``, ``6`` or ``[2, 10]`` into an inclusive (k_min, k_max).

    Raises
    ------
    ConfigError
        Malformed, k < 2, k_min > k_max or k above :data:`K_LIMIT`.
    """
    lo = hi = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        lo = hi = value
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        lo, hi = value
    elif isinstance(value, str):
        m = _K_RE.match(value)
        if m:
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else lo
    if lo is None or hi is None:
        raise ConfigError(f"{option} expects a number of segments like 6 or a range like 2-10, not {value!r}")
    if lo < 2:
        raise ConfigError(f"{option} {value}: k must be at least 2 (one segment is no segmentation)")
    if hi > K_LIMIT:
        raise ConfigError(f"{option} {value}: k must be at most {K_LIMIT}")
    if lo > hi:
        raise ConfigError(f"{option} {value}: the range start must not exceed its end")
    return lo, hi


_MAX_CONFIG_BYTES = 4 * 2**20


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a plain dict (validated by :func:`build_config`)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: {'is a folder; give a file' if p.is_dir() else 'no such file'}")
    try:
        with p.open("rb") as fh:
            raw = fh.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror})") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"--config {path}: over {_MAX_CONFIG_BYTES // 2**20} MB; a config file is a short text")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and b"\x00" in raw[:64]):
        raise ConfigError(f"--config {path}: is UTF-16 text; save it as UTF-8 (TOML files are UTF-8)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {path}: is not UTF-8 text (byte {exc.start}); a config file is TOML in "
                          "UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"--config {path}: nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror})") from None


#: The least memory a local Dask worker is given (docs/scale-out.md: at 400 MiB the shuffle stalls).
MIN_WORKER_MEMORY = 800 << 20


def _size_bytes(text: str) -> float:
    """A size as Dask reads it: a number and kB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB
    (powers of 1024); a bare number is bytes."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", text, re.I)
    value, unit, binary = float(m.group(1)), m.group(2).lower(), bool(m.group(3))
    return value * (1024 if binary else 1000) ** " kmgt".index(unit or " ")


_TOP_KEYS = {
    "input", "format", "rename", "out", "device", "methods", "k", "seed", "truth", "synthetic_customers",
    "sensitivity", "params", "embed", "select", "stability", "report", "threads", "anonymize", "currency",
}
EMBEDDINGS = ("none", "pca", "umap", "autoencoder")
_SECTIONS = {"clean": CleanConfig, "features": FeatureConfig, "evaluate": EvaluateConfig, "segments": SegmentsConfig,
             "value": ValueConfig,
             "dask": DaskConfig}


def _section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"config [{name}] must be a table of settings")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, val in values.items():
        if key not in known:
            raise ConfigError(f"config [{name}]: unknown setting {key!r}; known: {', '.join(sorted(known))}")
        default = known[key].default
        if key == "price_outliers" and isinstance(val, bool):  # older configs: true (the fence on) / false
            val = "cap" if val else "off"
        if isinstance(default, bool):
            if not isinstance(val, bool):
                raise ConfigError(f"config [{name}] {key} must be true or false, not {val!r}")
        elif isinstance(default, (int, float)):
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                raise ConfigError(f"config [{name}] {key} must be a number, not {val!r}")
            val = type(default)(val) if isinstance(default, float) or float(val).is_integer() else val
        elif isinstance(default, str):
            if not isinstance(val, str):
                raise ConfigError(f"config [{name}] {key} must be a string, not {val!r}")
        elif key == "rfm_cuts":
            pass  # parsed by _parse_rfm_cuts
        elif isinstance(default, tuple):
            if isinstance(val, str):
                val = [v.strip() for v in val.split(",") if v.strip()]
            if not isinstance(val, (list, tuple)) or not all(isinstance(v, str) for v in val):
                raise ConfigError(f"config [{name}] {key} must be a list of names, not {val!r}")
            val = tuple(val)
        kwargs[key] = val
    return cls(**kwargs)


def _validate(cfg: RunConfig) -> None:
    """Every setting checked, section by section (the first problem raises ConfigError)."""
    for check in (_check_run, _check_clean, _check_value, _check_features, _check_stability_and_segments,
                  _check_evaluate, _check_dask):
        check(cfg)


def _check_run(cfg: RunConfig) -> None:
    if cfg.format not in ("auto", "events", "orders"):
        raise ConfigError(f"--format must be auto, events or orders, not {cfg.format!r}")
    if cfg.device not in ("auto", "gpu", "cpu"):
        raise ConfigError(f"--device must be auto, gpu or cpu, not {cfg.device!r}")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not (0 <= cfg.seed < 2**32):
        raise ConfigError(f"--seed must be an integer in [0, 2**32), not {cfg.seed!r}")
    if isinstance(cfg.threads, bool) or not isinstance(cfg.threads, int) or not 0 <= cfg.threads <= 1024:
        raise ConfigError(f"--threads must be an integer in [0, 1024] (0: every usable core), not {cfg.threads!r}")
    if not isinstance(cfg.synthetic_customers, int) or cfg.synthetic_customers < 100:
        raise ConfigError(f"--customers (synthetic_customers) must be an integer >= 100, "
                          f"not {cfg.synthetic_customers!r}")


def _check_clean(cfg: RunConfig) -> None:
    c = cfg.clean
    if c.price_outliers not in ("cap", "drop", "off"):
        raise ConfigError(f"config [clean] price_outliers must be 'cap', 'drop' or 'off', not {c.price_outliers!r}")
    if c.fill_missing not in ("unknown", "mode"):
        raise ConfigError(f"config [clean] fill_missing must be 'unknown' or 'mode', not {c.fill_missing!r}")
    if not 0 < c.iqr_factor < float("inf"):
        raise ConfigError(f"config [clean] iqr_factor must be positive, not {c.iqr_factor!r}")
    if not isinstance(c.currency, str) or len(c.currency.strip()) > 12:
        raise ConfigError(f"config [clean] currency must be a currency code such as 'EUR', not {c.currency!r}")


def _check_value(cfg: RunConfig) -> None:
    v = cfg.value
    if not 0 < v.horizon_days <= 3650:
        raise ConfigError(f"config [value] horizon_days must be in (0, 3650], not {v.horizon_days!r}")
    if not 0 <= v.discount_rate < 10:
        raise ConfigError(f"config [value] discount_rate must be a yearly rate in [0, 10), not {v.discount_rate!r}")
    if not 0 < v.margin <= 1e6:
        raise ConfigError(f"config [value] margin must be positive, not {v.margin!r}")


def _check_features(cfg: RunConfig) -> None:
    f = cfg.features
    bad = [g for g in f.groups if g not in FEATURE_GROUPS]
    if bad or not f.groups:
        raise ConfigError(
            f"config [features] groups: unknown {bad or 'empty list'}; choose from {', '.join(FEATURE_GROUPS)}"
        )
    if not isinstance(f.top_categories, int) or not 0 <= f.top_categories <= 50:
        raise ConfigError(f"config [features] top_categories must be an integer in [0, 50], not {f.top_categories!r}")
    if not 0 < f.clv_horizon_days < 1e6:
        raise ConfigError(f"config [features] clv_horizon_days must be a positive number of days, not {f.clv_horizon_days!r}")
    if not -14 <= f.utc_offset_hours <= 14:
        raise ConfigError(f"config [features] utc_offset_hours must be within [-14, 14], not {f.utc_offset_hours!r}")
    if not f.skew_threshold >= 0:
        raise ConfigError(f"config [features] skew_threshold must be >= 0, not {f.skew_threshold!r}")
    if not 0.5 <= f.near_constant <= 1.0:
        raise ConfigError(f"config [features] near_constant must be within [0.5, 1], not {f.near_constant!r}")
    if not 0.0 < f.redundancy <= 1.0:
        raise ConfigError(f"config [features] redundancy must be within (0, 1], not {f.redundancy!r}")


def _check_stability_and_segments(cfg: RunConfig) -> None:
    e = cfg.evaluate
    if not isinstance(e.stability_resamples, int) or not 0 <= e.stability_resamples <= 100:
        raise ConfigError(
            f"stability resamples (--stability, [evaluate] stability_resamples) must be an integer in [0, 100], "
            f"not {e.stability_resamples!r}"
        )
    if e.stability_resamples == 1:
        raise ConfigError("--stability ([evaluate] stability_resamples) 1: stability needs at least 2 resamples "
                          "to compare (or 0 to skip it)")
    sg = cfg.segments
    if not isinstance(sg.rfm_bins, int) or not 2 <= sg.rfm_bins <= 10:
        raise ConfigError(f"config [segments] rfm_bins must be an integer in [2, 10], not {sg.rfm_bins!r}")
    for measure, cuts in sg.rfm_cuts:
        if len(cuts) != sg.rfm_bins - 1:
            raise ConfigError(f"config [segments.rfm_cuts] {measure} needs rfm_bins - 1 = {sg.rfm_bins - 1} cut points, "
                              f"not {len(cuts)}")
    if not isinstance(sg.tree_depth, int) or not 1 <= sg.tree_depth <= 8:
        raise ConfigError(f"config [segments] tree_depth must be an integer in [1, 8], not {sg.tree_depth!r}")
    if not isinstance(sg.top_items, int) or not 1 <= sg.top_items <= 100:
        raise ConfigError(f"config [segments] top_items must be an integer in [1, 100], not {sg.top_items!r}")


def _check_evaluate(cfg: RunConfig) -> None:
    e = cfg.evaluate
    if e.stability_scheme not in ("half", "bootstrap"):
        raise ConfigError(f"config [evaluate] stability_scheme must be 'half' or 'bootstrap', not {e.stability_scheme!r}")
    if not isinstance(e.stability_sample, int) or e.stability_sample < 100:
        raise ConfigError(f"config [evaluate] stability_sample must be an integer >= 100, not {e.stability_sample!r}")
    if cfg.select is not None:
        from .cluster import METHOD_NAMES

        if cfg.select not in METHOD_NAMES:
            raise ConfigError(f"--select: unknown method {cfg.select!r}; choose from {', '.join(METHOD_NAMES)}")
    for key in ("silhouette_exact_max", "silhouette_sample"):
        v = getattr(e, key)
        if not isinstance(v, int) or v < 100:
            raise ConfigError(f"config [evaluate] {key} must be an integer >= 100, not {v!r}")


def _check_dask(cfg: RunConfig) -> None:
    d = cfg.dask
    if d.cluster and d.cluster != "local" and not re.match(r"^[a-z]+://[^\s]+$", d.cluster):
        raise ConfigError(f"--cluster must be local or a scheduler address such as tcp://host:8786, not {d.cluster!r}")
    for key, low in (("workers", 0), ("partitions", 0), ("piece_mb", 1), ("insight_customers", 100)):
        v = getattr(d, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ConfigError(f"[dask] {key} (--{key.replace('_', '-')}) must be an integer >= {low}, not {v!r}")
    if d.kmeans not in ("auto", "client", "workers"):
        raise ConfigError(f"[dask] kmeans must be auto, client or workers, not {d.kmeans!r}")
    if d.memory_limit != "auto" and not re.match(r"^\s*\d+(\.\d+)?\s*([kmgt]i?b?)?\s*$", d.memory_limit, re.I):
        raise ConfigError(f"--memory-limit must be auto or a size such as 4GB, not {d.memory_limit!r}")
    if d.memory_limit != "auto" and _size_bytes(d.memory_limit) < MIN_WORKER_MEMORY:
        raise ConfigError(f"--memory-limit {d.memory_limit.strip()}: below the 800 MiB a worker needs (at 400 MiB the "
                          "shuffle stalls; docs/scale-out.md)")
    if d.cluster and cfg.clean.fill_missing == "mode":
        raise ConfigError("[clean] fill_missing = 'mode' is not supported with --cluster yet; use 'unknown'")
    if d.cluster and cfg.input is None:
        raise ConfigError("--cluster needs --input (the built-in synthetic data set runs in one process)")


def _check_shadowed(values: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """A config-file value that the command line replaces is still checked on its own: a
    wrong file must not pass because today's command happens to override it."""
    shadowed = {key: values[key] for key, val in overrides.items()
                if val is not None and key in values and key in _TOP_KEYS and key != "embed"}
    if not shadowed:
        return
    try:
        cfg = build_config(shadowed)
        if "methods" in shadowed:
            from .cluster import resolve_methods

            resolve_methods(cfg.cluster.methods)
    except ConfigError as exc:
        raise ConfigError(f"the config file is wrong, though the command line overrides it: {exc}") from None


def _parse_methods(values: Mapping[str, Any]) -> tuple[str, ...]:
    """``--methods`` (or ``methods`` of the file): a comma-separated string or a list of names."""
    methods = values.get("methods", ())
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, (list, tuple)) or not all(isinstance(m, str) for m in methods):
        raise ConfigError(f"--methods expects comma-separated method names, not {methods!r}")
    if "methods" in values and not methods:  # "--methods ''" ran the default silently
        raise ConfigError("--methods is empty; name methods (kmeans,gmm,...), give all, or leave it out for the "
                          "default")
    return tuple(methods)


def build_config(file_values: Mapping[str, Any] | None = None, **overrides: Any) -> RunConfig:
    """Merge config-file values and command-line overrides into a validated :class:`RunConfig`.

    Parameters
    ----------
    file_values : mapping, optional
        As returned by :func:`load_config_file`.
    **overrides
        Command-line values; ``None`` means "not given". ``k`` accepts what
        :func:`parse_k` accepts, ``methods`` a list or comma-separated string, ``rename`` a
        mapping or a list of ``"OLD=NEW"`` strings.

    Raises
    ------
    ConfigError
    """
    values: dict[str, Any] = dict(file_values or {})
    for key in values:
        if key not in _TOP_KEYS and key not in _SECTIONS or key in ("cluster", "workers", "memory_limit"):
            raise ConfigError(
                f"config: unknown setting {key!r}; known: {', '.join(sorted(_TOP_KEYS | set(_SECTIONS)))}"
            )
    sections = {name: values.pop(name, {}) for name in _SECTIONS}
    for name, table in sections.items():  # "evaluate = 5" is not a table (command-line values merge into them)
        if not isinstance(table, Mapping):
            raise ConfigError(f"config: [{name}] must be a table of settings, not {table!r}")
    _check_shadowed(values, overrides)
    for key, val in overrides.items():
        if val is None:
            continue
        if key == "embed" and isinstance(val, str) and isinstance(values.get("embed"), Mapping):
            values["embed"] = {**values["embed"], "method": val}  # --embed keeps [embed]'s settings
        else:
            values[key] = val

    kwargs: dict[str, Any] = {}
    for key in ("input", "format", "out", "device", "truth", "select"):
        if key in values:
            val = values[key]
            if key in ("input", "out", "truth") and isinstance(val, os.PathLike):  # a pathlib.Path
                val = os.fspath(val)
            if val is not None and not isinstance(val, str):
                what = "a string or a path" if key in ("input", "out", "truth") else "a string"
                raise ConfigError(f"{key} must be {what}, not {val!r}")
            kwargs[key] = val.strip().lower() if key == "select" and val is not None else val
    for key in ("seed", "synthetic_customers", "threads"):
        if key in values:
            kwargs[key] = values[key]
    for key in ("sensitivity", "report", "anonymize"):
        if key in values:
            if not isinstance(values[key], bool):
                raise ConfigError(f"{key} must be true or false, not {values[key]!r}")
            kwargs[key] = values[key]
    kwargs["params"] = _parse_params(values.get("params", {}))
    kwargs["embed"] = _parse_embed(values.get("embed", {}))
    kwargs["rename"] = _parse_rename(values.get("rename", {}))

    k_min, k_max = parse_k(values["k"]) if "k" in values else (ClusterConfig.k_min, ClusterConfig.k_max)
    kwargs["cluster"] = ClusterConfig(methods=_parse_methods(values), k_min=k_min, k_max=k_max)
    dask_cli = {key: values.pop(key) for key in ("cluster", "workers", "memory_limit") if key in values}
    if dask_cli:  # --cluster, --workers, --memory-limit override [dask]
        sections["dask"] = {**dict(sections["dask"]), **dask_cli}
    if "currency" in values:  # --currency CODE overrides [clean] currency
        sections["clean"] = {**dict(sections["clean"]), "currency": values.pop("currency")}
    if "stability" in values:  # --stability N overrides [evaluate] stability_resamples
        sections["evaluate"] = {**dict(sections["evaluate"]), "stability_resamples": values["stability"]}
    if isinstance(sections["segments"], Mapping) and "rfm_cuts" in sections["segments"]:
        seg = dict(sections["segments"])
        seg["rfm_cuts"] = _parse_rfm_cuts(seg.pop("rfm_cuts"))
        sections["segments"] = seg
    for name, cls in _SECTIONS.items():
        kwargs[name] = _section(name, cls, sections[name])
    cfg = RunConfig(**kwargs)
    _validate(cfg)
    return cfg


def _parse_rfm_cuts(value: Any) -> tuple:
    """``[segments.rfm_cuts]``: measure -> increasing cut points."""
    measures = ("recency_days", "frequency", "monetary")
    if not isinstance(value, Mapping):
        raise ConfigError("config [segments.rfm_cuts] must be a table: measure = [cut, ...]")
    out = []
    for measure, cuts in value.items():
        if measure not in measures:
            raise ConfigError(f"config [segments.rfm_cuts]: unknown measure {measure!r}; choose from {', '.join(measures)}")
        if (not isinstance(cuts, (list, tuple)) or not cuts
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cuts)
                or any(b <= a for a, b in zip(cuts, cuts[1:]))):
            raise ConfigError(f"config [segments.rfm_cuts] {measure} must be a list of increasing numbers, not {cuts!r}")
        out.append((measure, tuple(float(c) for c in cuts)))
    return tuple(out)


def _parse_embed(value: Any) -> EmbedConfig:
    """``--embed NAME`` or an ``[embed]`` table (method, n_components, [embed.params])."""
    if isinstance(value, str):
        value = {"method": value}
    if not isinstance(value, Mapping):
        raise ConfigError("config [embed] must be a table (method, n_components, params)")
    unknown = set(value) - {"method", "n_components", "params"}
    if unknown:
        raise ConfigError(f"config [embed]: unknown setting {sorted(unknown)[0]!r}; known: method, n_components, params")
    method = value.get("method", "none")
    if method not in EMBEDDINGS:
        raise ConfigError(f"--embed must be one of {', '.join(EMBEDDINGS)}, not {method!r}")
    n = value.get("n_components", EmbedConfig.n_components)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 256:
        raise ConfigError(f"config [embed] n_components must be an integer in [1, 256], not {n!r}")
    params = value.get("params", {})
    if not isinstance(params, Mapping):
        raise ConfigError("config [embed.params] must be a table of settings")
    if method != "none":
        from .embed.registry import check_embedder_params

        check_embedder_params(method, n, params)  # unknown names and bad values raise here
    return EmbedConfig(method=method, n_components=n, params=tuple(sorted(params.items())))


def _parse_params(value: Any) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """``[params.<method>]`` tables, checked against the methods' parameter names."""
    from .cluster import method_params

    if not isinstance(value, Mapping):
        raise ConfigError("config [params] must hold one table per method, e.g. [params.gmm]")
    out = []
    for method, table in value.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"config [params.{method}] must be a table of settings")
        method_params(method, table)  # unknown methods and names raise here
        out.append((method, tuple(sorted(table.items()))))
    return tuple(out)


def _parse_rename(value: Any) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if not isinstance(item, str) or item.count("=") != 1 or item.startswith("=") or item.endswith("="):
                raise ConfigError(f"--rename expects OLD=NEW, not {item!r}")
            old, new = item.split("=")
            items.append((old.strip(), new.strip()))
    else:
        raise ConfigError(f"rename must be a table of OLD = NEW names, not {value!r}")
    for old, new in items:
        if not isinstance(new, str) or not new:
            raise ConfigError(f"rename {old!r}: the new name must be a non-empty string")
        pairs.append((str(old), new))
    news = [n for _, n in pairs]
    dup = {n for n in news if news.count(n) > 1}
    if dup:
        raise ConfigError(f"--rename maps more than one column to {sorted(dup)[0]!r}")
    olds = [o for o, _ in pairs]
    twice = sorted({o for o in olds if olds.count(o) > 1})
    if twice:  # the last one won without a word, and the error then named the other
        raise ConfigError(f"--rename maps {twice[0]!r} more than once "
                          f"({', '.join(f'{o}={n}' for o, n in pairs if o == twice[0])}); give each column one name")
    return tuple(pairs)
