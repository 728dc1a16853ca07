from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg.backend import to_host
from gpuseg.segments.explain import explain_segments
from gpuseg.segments.profiles import segment_summary


def blobs(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Four segments that a depth-3 tree separates well but not perfectly, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 4, n)
    feats = pd.DataFrame(
        {
            "recency_days": rng.exponential(10.0, n) + 40.0 * (labels == 2),
            "frequency": rng.poisson(1.0 + 4.0 * (labels == 0)).astype(float),
            "monetary": np.round(rng.gamma(2.0, 40.0, n) * (1 + 3 * (labels == 0)), 2),
            "views": rng.poisson(5.0 + 20.0 * (labels == 1)).astype(float),
            "price_index": np.round(rng.normal(1.0 - 0.3 * (labels == 3), 0.1), 3),
        },
        index=pd.Index(np.arange(n) + 100, name="customer_id"),
    )
    return feats, labels


def apply_rules(rules: dict, feats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """How many rules match each row, and the segment of the (last) matching rule."""
    matched = np.zeros(len(feats), dtype=int)
    segment = np.full(len(feats), -99)
    for seg, seg_rules in rules.items():
        for rule in seg_rules:
            assert len({c["feature"] for c in rule["conditions"]}) == len(rule["conditions"])  # one range each
            ok = np.ones(len(feats), dtype=bool)
            for c in rule["conditions"]:
                v = feats[c["feature"]].to_numpy()
                if c["min"] is not None:
                    ok &= v >= c["min"]
                if c["max"] is not None:
                    ok &= v < c["max"]
            matched += ok
            segment[ok] = seg
    return matched, segment


@pytest.mark.parametrize("sample", [50000, 400], ids=["all-rows", "sampled"])
def test_rules_reproduce_the_tree(backend, sample):
    feats, labels = blobs()
    frame = backend.frame.from_pandas(feats) if backend.is_gpu else feats
    out = explain_segments(frame, backend.xp.asarray(labels), max_depth=3, sample=sample)
    predicted = out["tree"].predict(feats.to_numpy())
    matched, segment = apply_rules(out["rules"], feats)
    assert (matched == 1).all()  # every customer in exactly one rule
    np.testing.assert_array_equal(segment, predicted)  # ... whose segment is the tree's prediction
    assert out["fidelity"] == pytest.approx((predicted == labels).mean())
    assert out["fidelity_on"] == "all customers" and out["customers"] == len(feats)
    assert out["sample_size"] == min(sample, len(feats))
    assert 0.7 < out["fidelity"] < 1.0


def test_support_precision_and_order():
    feats, labels = blobs(seed=1)
    out = explain_segments(feats, labels, max_depth=3)
    leaves = out["tree"].apply(feats.to_numpy(dtype=np.float32))
    all_rules = [r for rules in out["rules"].values() for r in rules]
    assert sum(r["support"] for r in all_rules) == len(feats)
    for seg, rules in out["rules"].items():
        assert [r["support"] for r in rules] == sorted((r["support"] for r in rules), reverse=True)
        for r in rules:
            in_leaf = leaves == r["leaf"]
            assert r["segment"] == seg and r["support"] == in_leaf.sum()
            assert r["precision"] == pytest.approx((labels[in_leaf] == seg).mean())
    assert set(out["rules"]) == {-1, 0, 1, 2, 3}  # every segment listed, even one no leaf predicts


def test_readable_thresholds_and_names():
    feats = pd.DataFrame({"recency_days": [1.0, 2.0, 3.0, 40.0, 50.0, 60.0], "monetary": [5.0] * 6})
    labels = np.array([0, 0, 0, 1, 1, 1])
    out = explain_segments(feats, labels, names={0: {"name": "Active", "rule": ""}, 1: "Lapsed"})
    assert out["rules"][0] == [{"segment": 0, "name": "Active", "text": "recency_days < 20",
                                "conditions": [{"feature": "recency_days", "min": None, "max": 20.0}],
                                "support": 3, "precision": 1.0, "leaf": 1}]
    assert out["rules"][1][0]["text"] == "recency_days >= 20" and out["rules"][1][0]["name"] == "Lapsed"
    assert out["feature_importances"] == {"recency_days": 1.0, "monetary": 0.0}


def test_ranges_merge_per_feature():
    x = np.arange(40, dtype=float)
    out = explain_segments(pd.DataFrame({"x": x}), ((x >= 10) & (x < 30)).astype(int), max_depth=2)
    assert [r["text"] for r in out["rules"][1]] == ["10 <= x < 30"]


def test_single_segment_is_all_customers():
    out = explain_segments(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), np.zeros(3, dtype=int))
    assert out["rules"] == {0: [{"segment": 0, "name": "segment 0", "text": "all customers", "conditions": [],
                                 "support": 3, "precision": 1.0, "leaf": 0}]}
    assert out["fidelity"] == 1.0


def test_top_features_by_abs_z():
    feats, labels = blobs(seed=2)
    summary = segment_summary(feats, labels)
    out = explain_segments(feats, labels, max_depth=2, summary=summary, top=2)
    assert [t["feature"] for t in out["top_features"][2]][0] == "recency_days"
    assert [t["feature"] for t in out["top_features"][1]][0] == "views"
    for seg, tops in out["top_features"].items():
        z = [abs(t["z"]) for t in tops]
        assert len(tops) == 2 and z == sorted(z, reverse=True)
        row = summary[(summary["segment"] == seg) & (summary["feature"] == tops[0]["feature"])].iloc[0]
        assert tops[0]["z"] == row["z"] and tops[0]["mean"] == row["mean"]


def test_only_the_sample_and_small_results_come_to_the_host(monkeypatch):
    from gpuseg.segments import explain as module

    copied = []

    def spy(x):
        copied.append(x.shape[0] if getattr(x, "shape", ()) else 1)
        return to_host(x)

    monkeypatch.setattr(module, "to_host", spy)
    feats, labels = blobs(3000)
    out = explain_segments(feats, labels, max_depth=3, sample=500, summary=segment_summary(feats, labels))
    assert out["customers"] == 3000 and set(out["rules"]) == {-1, 0, 1, 2, 3}
    assert copied and max(copied) <= 500  # the fitted sample; never all 3,000 rows


@pytest.mark.parametrize(
    "kwargs, match", [({"max_depth": 0}, "max_depth"), ({"sample": 0}, "sample")], ids=["depth", "sample"]
)
def test_rejects(kwargs, match):
    feats, labels = blobs(50)
    with pytest.raises(ValueError, match=match):
        explain_segments(feats, labels, **kwargs)
    with pytest.raises(ValueError, match="entries"):
        explain_segments(feats, labels[:-1])
