"""Readable rules that say who is in which segment, from a shallow decision tree.

A scikit-learn ``DecisionTreeClassifier`` is fitted on the host, on the unscaled features of
a fixed-seed sample of customers, to predict the segment. Every leaf becomes one rule: the
conjunction of the splits on its path, merged so that each feature appears once as a range
(``12 <= recency_days < 30``). Everything that touches all customers (the leaf of every
customer, the rule thresholds, support, precision and fidelity) runs where the features
live, column by column, on NumPy or CuPy.

Thresholds are shown rounded to the fewest significant digits that change no customer's
side of the split: a split ``x <= t`` separates the largest value on its left, ``a``, from
the smallest on its right, ``b`` (over all customers, as the tree sees them: in float32),
and any ``d`` in ``(a, b]`` gives the same partition written as ``x < d`` / ``x >= d``. So
the exported rules reproduce the tree's predictions exactly, on every customer.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..backend import array_namespace, series_values, to_host, to_namespace
from .profiles import placeholder_names, segment_summary, summary_table

__all__ = ["explain_segments"]


def explain_segments(
    features: Any,
    labels: Any,
    names: Mapping[int, Any] | None = None,
    max_depth: int = 4,
    sample: int = 50000,
    random_state: int = 0,
    *,
    summary: pd.DataFrame | None = None,
    top: int = 5,
) -> dict[str, Any]:
    """Decision-tree rules, fidelity and distinctive features of the segments.

    Parameters
    ----------
    features : DataFrame
        Unscaled features, one row per customer (pandas or cuDF).
    labels : array
        Segment of each row (NumPy or CuPy); -1 (unassigned) is a class like the others.
    names : mapping, optional
        Segment -> name, or the output of
        :func:`~gpuseg.segments.naming.name_segments` (its ``"name"`` is used); defaults to
        ``segment N`` / ``unassigned``.
    max_depth : int, default=4
        Depth of the tree (at most ``2 ** max_depth`` rules).
    sample : int, default=50000
        The tree is fitted on at most this many customers, drawn without replacement with
        ``numpy.random.default_rng(random_state)`` (all customers when there are fewer).
    random_state : int, default=0
        Seeds the sample and the tree.
    summary : pandas.DataFrame, optional
        :func:`~gpuseg.segments.profiles.segment_summary` of the same features and labels,
        to skip recomputing it for ``top_features``.
    top : int, default=5
        Features per segment in ``top_features``.

    Returns
    -------
    dict
        ``rules``
            Segment -> list of rules of the leaves that predict it, by support (largest
            first); a segment no leaf predicts has an empty list. Each rule is a dict with
            ``segment``, ``name``, ``text`` (e.g. ``"12 <= recency_days < 30 and monetary
            >= 250"``; ``"all customers"`` for a tree without splits), ``conditions`` (list
            of ``{"feature", "min", "max"}`` meaning ``min <= value < max``, ``None`` for
            an open end), ``support`` (customers in the leaf, all customers), ``precision``
            (share of them in the segment) and ``leaf`` (tree node id).
        ``fidelity``
            Accuracy of the tree against the segments.
        ``fidelity_on``
            ``"all customers"``: fidelity, support and precision count every customer, not
            only the sample.
        ``customers``, ``sample_size``
            Rows in ``features``; rows the tree was fitted on.
        ``feature_importances``
            Feature -> the tree's impurity-based importance, largest first.
        ``top_features``
            Segment -> up to ``top`` dicts ``{"feature", "z", "mean", "overall_mean"}``, the
            features with the largest ``|z|`` in the summary.
        ``tree``
            The fitted ``DecisionTreeClassifier`` (not JSON-serialisable).
        ``feature_names``
            Column order the tree was fitted with.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> feats = pd.DataFrame({"recency_days": [1.0, 2.0, 40.0, 50.0], "monetary": [9.0, 1.0, 5.0, 2.0]})
    >>> out = explain_segments(feats, np.array([0, 0, 1, 1]), max_depth=2)
    >>> [r["text"] for r in out["rules"][1]], out["fidelity"]
    (['recency_days >= 20'], 1.0)
    """
    n = len(features)
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} customers")
    if n == 0:
        raise ValueError("explain_segments needs at least one customer")
    if int(max_depth) < 1:
        raise ValueError(f"max_depth must be at least 1, not {max_depth}")
    if int(sample) < 1:
        raise ValueError(f"sample must be at least 1, not {sample}")
    if len(features.columns) == 0:
        raise ValueError("explain_segments needs at least one feature column")
    return _explain_segments(features, labels, names, int(max_depth), int(sample), random_state, summary, top)


def _explain_segments(features, labels, names, max_depth, sample, random_state, summary, top) -> dict[str, Any]:
    from sklearn.tree import DecisionTreeClassifier

    columns = [str(c) for c in features.columns]
    n = len(features)
    # the features' device decides: labels follow them there
    xp = array_namespace(series_values(features[features.columns[0]]))
    labels = to_namespace(labels, xp).astype(xp.int64)

    if n > sample:
        rows = np.sort(np.random.default_rng(random_state).choice(n, size=sample, replace=False))
        fit_frame = to_host(features.iloc[rows])
        y = to_host(labels[xp.asarray(rows)])
    else:
        fit_frame, y = to_host(features), to_host(labels)
    X = fit_frame.to_numpy(dtype=np.float64)
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=random_state).fit(X, y)

    # every customer, one column at a time on the features' device: float64 values and the
    # float32 values the tree compares (sklearn casts X to float32)
    cols64 = {j: xp.asarray(series_values(features[features.columns[j]])).astype(xp.float64)
              for j in sorted({int(f) for f in tree.tree_.feature if f >= 0})}
    cols32 = {j: c.astype(xp.float32).astype(xp.float64) for j, c in cols64.items()}
    t = tree.tree_
    leaf = _apply_tree(xp, t, cols32, n)
    leaf_class = tree.classes_[np.argmax(t.value[:, 0, :], axis=1)].astype(np.int64)
    predicted = xp.asarray(leaf_class)[leaf]
    hit = predicted == labels
    support = to_host(xp.bincount(leaf, minlength=t.node_count))
    correct = to_host(xp.bincount(leaf, weights=hit.astype(xp.float64), minlength=t.node_count))
    fidelity = float(hit.astype(xp.float64).mean())

    shown = _display_thresholds(xp, t, cols64, cols32)
    present = sorted({int(c) for c in tree.classes_} | {int(s) for s in to_host(xp.unique(labels))})
    seg_names = _names(names, present)
    rules: dict[int, list[dict]] = {s: [] for s in present}
    for node, path in _leaf_paths(t):
        seg = int(leaf_class[node])
        conditions = _merge(path, shown, columns)
        rules.setdefault(seg, []).append({
            "segment": seg,
            "name": seg_names.get(seg, str(seg)),
            "text": " and ".join(_condition_text(c) for c in conditions) or "all customers",
            "conditions": conditions,
            "support": int(support[node]),
            "precision": float(correct[node] / support[node]) if support[node] else 0.0,
            "leaf": int(node),
        })
    for seg in rules:
        rules[seg].sort(key=lambda r: (-r["support"], r["leaf"]))

    if summary is None:
        summary = segment_summary(features, labels, revenue_column=None)
    importances = dict(sorted(zip(columns, (float(v) for v in tree.feature_importances_)),
                              key=lambda kv: (-kv[1], columns.index(kv[0]))))
    return {
        "rules": dict(sorted(rules.items())),
        "fidelity": fidelity,
        "fidelity_on": "all customers",
        "customers": n,
        "sample_size": int(len(y)),
        "feature_importances": importances,
        "top_features": _top_features(summary, top),
        "tree": tree,
        "feature_names": columns,
    }


def _names(names: Mapping[int, Any] | None, segments: list[int]) -> dict[int, str]:
    out = placeholder_names(sorted(set(segments)))
    for seg, value in (names or {}).items():
        out[int(seg)] = str(value["name"] if isinstance(value, Mapping) else value)
    return out


def _apply_tree(xp: Any, t: Any, cols32: dict[int, Any], n: int) -> Any:
    """Leaf node of every row, descending level by level (sklearn's ``x <= threshold``)."""
    feature = t.feature.astype(np.int64)
    is_split = t.children_left >= 0
    left = xp.asarray(t.children_left.astype(np.int64))
    right = xp.asarray(t.children_right.astype(np.int64))
    threshold = xp.asarray(t.threshold.astype(np.float64))
    node = xp.zeros(n, dtype=xp.int64)
    for _ in range(int(t.max_depth)):
        go_left = xp.zeros(n, dtype=bool)
        for j, col in cols32.items():
            at = xp.asarray((feature == j) & is_split)[node]
            go_left |= at & (col <= threshold[node])
        split = xp.asarray(is_split)[node]
        node = xp.where(split, xp.where(go_left, left[node], right[node]), node)
    return node


def _display_thresholds(
    xp: Any, t: Any, cols64: dict[int, Any], cols32: dict[int, Any]
) -> dict[int, tuple[int, float]]:
    """Split node -> (feature index, the shortest ``d`` with ``x < d`` exactly where it goes left)."""
    out = {}
    for node in np.flatnonzero(t.children_left >= 0):
        j, thr = int(t.feature[node]), float(t.threshold[node])
        go_left = cols32[j] <= thr
        a = float(xp.where(go_left, cols64[j], -np.inf).max())
        b = float(xp.where(go_left, np.inf, cols64[j]).min())
        out[int(node)] = (j, _short_between(a, b, thr))
    return out


def _short_between(a: float, b: float, near: float) -> float:
    """The number with the fewest significant digits in ``(a, b]``, rounded from ``near``."""
    if not np.isfinite(b):
        return near
    if not np.isfinite(a):
        a = min(b - 1.0, near)
    center = near if a < near <= b else a / 2 + b / 2
    for digits in range(1, 18):
        d = float(f"{center:.{digits}g}")
        if a < d <= b:
            return d
    return b


def _leaf_paths(t: Any) -> list[tuple[int, list[tuple[int, bool]]]]:
    """(leaf, [(split node, went left), ...]) for every leaf, left to right."""
    out = []
    stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if t.children_left[node] < 0:
            out.append((node, path))
            continue
        stack.append((int(t.children_right[node]), path + [(node, False)]))
        stack.append((int(t.children_left[node]), path + [(node, True)]))
    return out


def _merge(path: list[tuple[int, bool]], shown: dict[int, tuple[int, float]], columns: list[str]) -> list[dict]:
    """One ``{"feature", "min", "max"}`` range per feature on the path, in first-use order."""
    ranges: dict[str, dict] = {}
    for node, went_left in path:
        j, d = shown[node]
        r = ranges.setdefault(columns[j], {"feature": columns[j], "min": None, "max": None})
        if went_left:
            r["max"] = d if r["max"] is None else min(r["max"], d)
        else:
            r["min"] = d if r["min"] is None else max(r["min"], d)
    return list(ranges.values())


def _condition_text(c: dict) -> str:
    lo, hi, f = c["min"], c["max"], c["feature"]
    if lo is not None and hi is not None:
        return f"{_fmt(lo)} <= {f} < {_fmt(hi)}"
    if hi is not None:
        return f"{f} < {_fmt(hi)}"
    return f"{f} >= {_fmt(lo)}"


def _fmt(x: float) -> str:
    """Plain decimal notation without a trailing ``.0`` (``20``, ``0.35``, ``125000``)."""
    return np.format_float_positional(float(x), trim="-")


def _top_features(summary: pd.DataFrame, top: int) -> dict[int, list[dict]]:
    z = summary_table(summary, "z")
    mean = summary_table(summary, "mean")
    overall = summary.drop_duplicates("feature").set_index("feature")["overall_mean"]
    out = {}
    for seg in z.index:
        row = z.loc[seg]
        order = sorted(row.index, key=lambda f: (-abs(float(row[f])), list(row.index).index(f)))[:top]
        out[int(seg)] = [
            {"feature": f, "z": float(row[f]), "mean": float(mean.loc[seg, f]), "overall_mean": float(overall[f])}
            for f in order
        ]
    return out
