from __future__ import annotations

import re

import pytest

from gpuseg.config import K_LIMIT, build_config, load_config_file, parse_k
from gpuseg.errors import ConfigError


@pytest.mark.parametrize(
    "value, expected",
    [("2-10", (2, 10)), ("6", (6, 6)), (6, (6, 6)), ([3, 5], (3, 5)), (" 4 .. 8 ", (4, 8)), ("2:3", (2, 3))],
    ids=["range", "one", "int", "list", "dots", "colon"],
)
def test_parse_k(value, expected):
    assert parse_k(value) == expected


@pytest.mark.parametrize(
    "value, match",
    [("1-5", "at least 2"), ("8-4", "must not exceed"), (f"2-{K_LIMIT + 1}", "at most"), ("six", "expects"),
     (True, "expects"), ("2-", "expects")],
    ids=["k1", "reversed", "too-big", "word", "bool", "open"],
)
def test_parse_k_rejects(value, match):
    with pytest.raises(ConfigError, match=match):
        parse_k(value)


def test_file_values_and_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(
        'input = "a.csv"\nk = "3-5"\nmethods = ["kmeans_random"]\nseed = 4\n'
        '[rename]\nCustomerID = "customer_id"\n'
        '[clean]\niqr_factor = 2\nfill_missing = "mode"\n'
        '[features]\ngroups = ["rfm", "time"]\ntop_categories = 3\n'
    )
    cfg = build_config(load_config_file(p), seed=9, k=None)
    assert cfg.input == "a.csv" and cfg.seed == 9
    assert (cfg.cluster.k_min, cfg.cluster.k_max) == (3, 5) and cfg.k_values == [3, 4, 5]
    assert cfg.cluster.methods == ("kmeans_random",)
    assert cfg.rename == (("CustomerID", "customer_id"),)
    assert cfg.clean.iqr_factor == 2.0 and cfg.clean.fill_missing == "mode"
    assert cfg.features.groups == ("rfm", "time") and cfg.features.top_categories == 3
    assert cfg.to_dict()["rename"] == {"CustomerID": "customer_id"}


@pytest.mark.parametrize(
    "text, match",
    [
        ("colour = 1", "unknown setting 'colour'"),
        ("[clean]\nfence = 1", r"\[clean\]: unknown setting 'fence'"),
        ("[clean]\niqr_factor = 'big'", "must be a number"),
        ("[clean]\ndrop_duplicates = 1", "true or false"),
        ("[clean]\nprice_outliers = 'trim'", "'cap', 'drop' or 'off'"),
        ("[value]\nhorizon_days = 0", r"\[value\] horizon_days"),
        ("[features]\ngroups = ['rfm', 'astrology']", "astrology"),
        ("[clean]\nfill_missing = 'zero'", "fill_missing"),
        ("device = 'tpu'", "--device"),
        ("k = [2, 3, 4]", "--k"),
        ("[evaluate]\nsilhouette_sample = 5", "silhouette_sample"),
        ("this is not toml", "not valid TOML"),
        ("[dask]\nmemory_limit = '10KB'", "10KB: below the 800 MiB a worker needs"),
    ],
    ids=["unknown-key", "unknown-section-key", "wrong-type", "bool", "outliers", "horizon", "group", "fill", "device", "k-list",
         "sample", "toml", "worker-memory"],
)
def test_config_errors(tmp_path, text, match):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        build_config(load_config_file(p))


@pytest.mark.parametrize(
    "rename, match",
    [(["a"], "OLD=NEW"), (["a=b=c"], "OLD=NEW"), (["a=x", "b=x"], "more than one column"),
     (["customer=customer_id", "customer=user_id"], "'customer' more than once")],
    ids=["no-equals", "two-equals", "duplicate-target", "duplicate-source"],
)
def test_rename_errors(rename, match):
    with pytest.raises(ConfigError, match=match):
        build_config(rename=rename)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config_file(tmp_path / "nope.toml")


def test_defaults():
    cfg = build_config()
    assert cfg.input is None and cfg.out == "gpuseg-out" and cfg.device == "auto" and cfg.k_values == list(range(2, 13))
    assert cfg.threads == 0 and cfg.features.weighting and cfg.features.describe_only == ()


@pytest.mark.parametrize(
    "segments, message",
    [
        ({"rfm_bins": 1}, "rfm_bins must be an integer in [2, 10]"),
        ({"tree_depth": 0}, "tree_depth must be an integer in [1, 8]"),
        ({"top_items": 0}, "top_items must be an integer in [1, 100]"),
        ({"rfm_cuts": {"age": [1, 2, 3, 4]}}, "unknown measure 'age'"),
        ({"rfm_cuts": {"monetary": [5, 1, 2, 3]}}, "list of increasing numbers"),
        ({"rfm_cuts": {"monetary": [1, 2]}}, "needs rfm_bins - 1 = 4 cut points"),
        ({"colour": 1}, "unknown setting 'colour'"),
    ],
)
def test_segments_section_is_checked(segments, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({"segments": segments})


@pytest.mark.parametrize("value, mode", [("true", "cap"), ("false", "off"), ("'drop'", "drop"), ("'cap'", "cap")])
def test_price_outliers_modes_and_older_booleans(tmp_path, value, mode):
    p = tmp_path / "c.toml"
    p.write_text(f"[clean]\nprice_outliers = {value}\n")
    assert build_config(load_config_file(p)).clean.price_outliers == mode
    assert build_config().clean.price_outliers == "cap"


@pytest.mark.parametrize(
    "method, line, key",
    [
        ("autoencoder", "max_epochs = -5", "max_epochs"),
        ("autoencoder", "lr = 0", "lr"),
        ("autoencoder", "batch_size = 0", "batch_size"),
        ("autoencoder", "validation_fraction = 2", "validation_fraction"),
        ("autoencoder", "noise = -1", "noise"),
        ("autoencoder", 'amp = "bf16x"', "amp"),
        ("autoencoder", "patience = -1", "patience"),
        ("umap", "n_neighbors = 1", "n_neighbors"),
        ("umap", "min_dist = -1", "min_dist"),
        ("pca", 'whiten = "x"', "whiten"),
    ],
)
def test_embed_params_values_are_checked_before_the_data(tmp_path, method, line, key):
    # a value the embedder rejects at fit time is a config error naming it, not a traceback
    # after loading and cleaning the data
    p = tmp_path / "c.toml"
    p.write_text(f'[embed]\nmethod = "{method}"\n[embed.params]\n{line}\n')
    with pytest.raises(ConfigError, match=rf"^config \[embed.params\] {key}: {key} must"):
        build_config(load_config_file(p))


def test_the_embedders_progress_callback_is_not_a_setting(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[embed]\nmethod = "autoencoder"\n[embed.params]\ncallback = "print"\n')
    with pytest.raises(ConfigError, match="unknown parameter 'callback'"):
        build_config(load_config_file(p))


def test_a_config_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="is a folder; give a file"):
        load_config_file(tmp_path)


def test_an_out_below_a_file_says_the_file_is_not_a_folder(tmp_path):
    from gpuseg.report.files import check_out_dir

    (tmp_path / "existing.txt").write_text("x")
    with pytest.raises(ConfigError, match="existing.txt is a file, not a folder"):
        check_out_dir(tmp_path / "existing.txt" / "sub")


@pytest.mark.parametrize("file_values, overrides, match", [
    ({"k": "abc"}, {"k": "3-4"}, "k"),
    ({"seed": -1}, {"seed": 3}, "--seed"),
    ({"stability": 1}, {"stability": 0}, "stability"),
    ({"methods": ["nope"]}, {"methods": "kmeans"}, "nope"),
    ({"report": "yes"}, {"report": False}, "report"),
])
def test_a_file_value_the_command_line_replaces_is_still_checked(file_values, overrides, match):
    with pytest.raises(ConfigError, match="config file is wrong.*" + match):
        build_config(file_values, **overrides)


def test_a_good_file_value_the_command_line_replaces_gives_way():
    cfg = build_config({"k": "5", "seed": 4, "methods": ["gmm"], "embed": {"method": "pca"}},
                       k="3", seed=9, methods="kmeans", embed="none")
    assert (cfg.cluster.k_min, cfg.cluster.k_max, cfg.seed, cfg.cluster.methods) == (3, 3, 9, ("kmeans",))
    assert cfg.embed.method == "none"


def test_the_documented_config_examples_are_valid_configs():
    """docs/config.md's TOML blocks build a config, and its second block gives the defaults."""
    import tomllib
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    example, others = (tomllib.loads(b) for b in blocks)
    assert build_config(example).cluster.methods == ("kmeans",)
    defaults = build_config(None)
    assert build_config(others) == defaults


def test_paths_may_be_path_objects(tmp_path):
    """``build_config(input=Path(...), out=Path(...))`` as the Python API is naturally called."""
    cfg = build_config(input=tmp_path / "a.csv", out=tmp_path / "out", truth=tmp_path / "t.csv")
    assert cfg.input == str(tmp_path / "a.csv") and isinstance(cfg.input, str)
    assert cfg.out == str(tmp_path / "out") and cfg.truth == str(tmp_path / "t.csv")
    with pytest.raises(ConfigError, match="input must be a string or a path, not 3"):
        build_config(input=3)
    with pytest.raises(ConfigError, match="device must be a string"):
        build_config(device=tmp_path)
