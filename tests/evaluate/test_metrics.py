"""Tests for gpuseg.evaluate.metrics: scikit-learn agreement, properties, errors, GPU parity."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics.cluster import contingency_matrix as sk_contingency_matrix

from gpuseg import backend
from gpuseg.evaluate import metrics

HYPOTHESIS = settings(max_examples=50, deadline=None)

# Relative tolerance against scikit-learn. float32 distances here are in float32 (sklearn
# upcasts them to float64), so float32 gets the looser bound.
RTOL = {np.float64: 1e-7, np.float32: 1e-4}
ATOL = {np.float64: 1e-9, np.float32: 1e-5}


def _cupy():
    probe = backend.probe_cupy()
    if not probe.available:
        pytest.skip(f"no GPU: {probe.reason}")
    return backend.gpu_module("cupy")


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.cupy])])
def xp(request):
    """numpy always; cupy when a CUDA device and RAPIDS are usable (skipped otherwise)."""
    return np if request.param == "numpy" else _cupy()


# --------------------------------------------------------------------------- data


def _blobs(dtype, n=600, d=8, k=5, seed=0):
    X, y = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=2.0, random_state=seed)
    return X.astype(dtype), y


def _random(dtype, n=300, d=6, k=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, d)).astype(dtype), rng.integers(0, k, n)


def _odd_labels(dtype):
    """Blobs with arbitrary label values, a singleton cluster and a negative label."""
    X, y = _blobs(dtype, n=400, k=4, seed=3)
    y = np.array([-1, 7, 3, 12])[y]
    y[0] = 99  # singleton cluster
    return X, y


DATASETS = {"blobs": _blobs, "random": _random, "odd-labels": _odd_labels}
DTYPES = {"f64": np.float64, "f32": np.float32}


@pytest.fixture(
    params=[(name, dt) for name in DATASETS for dt in DTYPES],
    ids=[f"{name}-{dt}" for name in DATASETS for dt in DTYPES],
)
def dataset(request):
    name, dt = request.param
    dtype = DTYPES[dt]
    X, y = DATASETS[name](dtype)
    return X, y, dtype


def _on(xp, *arrays):
    return tuple(backend.to_namespace(a, xp) for a in arrays)


def _approx(expected, dtype):
    return pytest.approx(expected, rel=RTOL[dtype], abs=ATOL[dtype])


# --------------------------------------------------------------------------- agreement


def test_silhouette_score_matches_sklearn(xp, dataset):
    X, y, dtype = dataset
    got = metrics.silhouette_score(*_on(xp, X, y))
    assert type(got) is float
    assert got == _approx(skm.silhouette_score(X, y), dtype)


def test_silhouette_samples_matches_sklearn(xp, dataset):
    X, y, dtype = dataset
    got = metrics.silhouette_samples(*_on(xp, X, y))
    assert backend.array_namespace(got) is xp
    assert got.dtype == dtype and got.shape == (X.shape[0],)
    expected = skm.silhouette_samples(X, y)
    np.testing.assert_allclose(
        backend.to_host(got), expected, rtol=RTOL[dtype], atol=10 * ATOL[dtype]
    )


def test_davies_bouldin_matches_sklearn(xp, dataset):
    X, y, dtype = dataset
    got = metrics.davies_bouldin_score(*_on(xp, X, y))
    assert type(got) is float
    assert got == _approx(skm.davies_bouldin_score(X, y), dtype)


def test_calinski_harabasz_matches_sklearn(xp, dataset):
    X, y, dtype = dataset
    got = metrics.calinski_harabasz_score(*_on(xp, X, y))
    assert type(got) is float
    assert got == _approx(skm.calinski_harabasz_score(X, y), dtype)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_inertia_matches_kmeans(xp, dtype):
    X, _ = _blobs(dtype, n=800, k=4)
    km = KMeans(n_clusters=4, n_init=1, random_state=0).fit(X)
    Xd, labels, centers = _on(xp, X, km.labels_, km.cluster_centers_)
    assert metrics.inertia(Xd, labels, centers) == _approx(km.inertia_, dtype)
    # Cluster means minimise the within-cluster sum of squares for fixed labels.
    own = metrics.inertia(Xd, labels)
    means = np.stack([X[km.labels_ == j].astype(np.float64).mean(axis=0) for j in range(4)])
    expected = float(((X - means[km.labels_]) ** 2).sum())
    assert own == _approx(expected, dtype)
    assert own <= km.inertia_ * (1 + RTOL[dtype])


def test_cluster_centers_are_means_in_sorted_label_order(xp):
    X, y = _odd_labels(np.float64)
    got = metrics.cluster_centers(*_on(xp, X, y))
    assert backend.array_namespace(got) is xp
    expected = np.stack([X[y == v].mean(axis=0) for v in np.unique(y)])
    np.testing.assert_allclose(backend.to_host(got), expected, rtol=1e-12)


def test_cluster_centers_keep_float32():
    X, y = _blobs(np.float32)
    assert metrics.cluster_centers(X, y).dtype == np.float32


def _pair(name):
    rng = np.random.default_rng(7)
    a = rng.integers(0, 5, 200)
    return {
        "random": (a, rng.integers(0, 4, 200)),
        "noisy-copy": (a, np.where(rng.random(200) < 0.2, rng.integers(0, 5, 200), a)),
        "identical": (a, a.copy()),
        "relabeled": (a, np.array([30, -1, 4, 8, 2])[a]),
        "single-vs-single": (np.zeros(10, int), np.full(10, 3)),
        "single-vs-many": (np.zeros(10, int), np.arange(10)),
        "all-distinct": (np.arange(12), np.arange(12)[::-1]),
        "one-sample": (np.array([4]), np.array([1])),
        "empty": (np.array([], int), np.array([], int)),
    }[name]


PAIRS = [
    "random",
    "noisy-copy",
    "identical",
    "relabeled",
    "single-vs-single",
    "single-vs-many",
    "all-distinct",
    "one-sample",
    "empty",
]


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (metrics.adjusted_rand_score, skm.adjusted_rand_score),
        (metrics.normalized_mutual_info_score, skm.normalized_mutual_info_score),
    ],
    ids=["ari", "nmi"],
)
def test_external_scores_match_sklearn(xp, pair, ours, theirs):
    a, b = _pair(pair)
    got = ours(*_on(xp, a, b))
    assert type(got) is float
    assert got == pytest.approx(theirs(a, b), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("pair", [p for p in PAIRS if p != "empty"])
def test_contingency_matrix_matches_sklearn(xp, pair):
    a, b = _pair(pair)
    got = metrics.contingency_matrix(*_on(xp, a, b))
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    np.testing.assert_array_equal(got, sk_contingency_matrix(a, b))


def test_external_scores_with_many_labels_use_sparse_cells():
    # 5000 x 5000 cells: counted through unique(), not a dense table.
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5000, 20000)
    b = (a + rng.integers(0, 2, 20000)) % 5000
    assert metrics.adjusted_rand_score(a, b) == pytest.approx(
        skm.adjusted_rand_score(a, b), rel=1e-12
    )
    assert metrics.normalized_mutual_info_score(a, b) == pytest.approx(
        skm.normalized_mutual_info_score(a, b), rel=1e-12
    )


def test_labels_with_huge_range_or_float_values_encode_like_compact_labels():
    X, y = _blobs(np.float64, k=3)
    compact = metrics.silhouette_score(X, y)
    assert metrics.silhouette_score(X, np.array([-(10**15), 5, 10**15])[y]) == compact
    assert metrics.silhouette_score(X, y.astype(np.float64) / 2) == compact
    assert metrics.davies_bouldin_score(X, y.astype(np.uint8)) == metrics.davies_bouldin_score(X, y)
    # int8 labels spanning the whole dtype must not wrap when shifted to 0..k-1.
    wide = np.array([-128, 0, 127], dtype=np.int8)[y]
    assert metrics.silhouette_score(X, wide) == compact
    top = np.array([0, 2**63, 2**64 - 1], dtype=np.uint64)[y]
    assert metrics.silhouette_score(X, top) == compact


def test_integer_X_is_scored_as_float64():
    X, y = _blobs(np.float64)
    Xi = np.round(X * 10).astype(np.int32)
    assert metrics.calinski_harabasz_score(Xi, y) == pytest.approx(
        skm.calinski_harabasz_score(Xi, y), rel=1e-10
    )
    assert metrics.silhouette_samples(Xi, y).dtype == np.float64


# --------------------------------------------------------------------------- silhouette details


@pytest.mark.parametrize("chunk_size", [1, 7, 600, 10_000], ids=lambda c: f"chunk{c}")
def test_silhouette_does_not_depend_on_chunk_size(chunk_size):
    X, y = _blobs(np.float64)
    np.testing.assert_allclose(
        metrics.silhouette_samples(X, y, chunk_size=chunk_size),
        metrics.silhouette_samples(X, y),
        rtol=1e-12,
        atol=1e-14,
    )


def test_silhouette_singleton_cluster_scores_zero():
    X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    s = metrics.silhouette_samples(X, np.array([0, 0, 1, 1, 2]))
    assert s[4] == 0.0
    np.testing.assert_allclose(s, skm.silhouette_samples(X, [0, 0, 1, 1, 2]), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_silhouette_of_duplicate_points_is_exact(dtype):
    # Customer features have many duplicate rows. Their distance must come out as 0, not
    # as the rounding noise of the dot-product form (~sqrt(eps) |x|, 3e-4 |x| in float32).
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 40)) * 3 + 10
    rows = rng.integers(0, 12, 600)
    X, labels = base[rows].astype(dtype), rows % 3
    X64 = X.astype(np.float64)
    expected = skm.silhouette_samples(cdist(X64, X64), labels, metric="precomputed")
    tol = {np.float64: 1e-12, np.float32: 1e-6}[dtype]
    np.testing.assert_allclose(metrics.silhouette_samples(X, labels), expected, rtol=0, atol=tol)
    # Clusters 0 and 1 are copies of one point, cluster 2 copies of another: for 0 and 1
    # a = b = 0, so s = 0; for 2, a = 0 < b, so s = 1 (exactly, in both cases).
    X = np.repeat(base[[0, 0, 1]].astype(dtype), 5, axis=0)
    s = metrics.silhouette_samples(X, np.repeat([0, 1, 2], 5))
    np.testing.assert_array_equal(s, np.repeat([0.0, 0.0, 1.0], 5))


def test_sample_size_is_deterministic_for_a_seed():
    X, y = _blobs(np.float64, n=2000)
    first = metrics.silhouette_score(X, y, sample_size=300, random_state=42)
    assert metrics.silhouette_score(X, y, sample_size=300, random_state=42) == first
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    same_a = metrics.silhouette_score(X, y, sample_size=300, random_state=rng_a)
    assert same_a == metrics.silhouette_score(X, y, sample_size=300, random_state=rng_b)


@pytest.mark.parametrize("sample_size", [600, 601, 10_000], ids=lambda s: f"sample{s}")
def test_sample_size_at_least_n_is_exact(sample_size):
    X, y = _blobs(np.float64, n=600)
    exact = metrics.silhouette_score(X, y)
    assert metrics.silhouette_score(X, y, sample_size=sample_size, random_state=0) == exact


def test_sample_size_is_close_to_exact_on_blobs():
    X, y = _blobs(np.float64, n=3000, k=4)
    exact = metrics.silhouette_score(X, y)
    for seed in range(3):
        sampled = metrics.silhouette_score(X, y, sample_size=1000, random_state=seed)
        assert sampled == pytest.approx(exact, abs=0.02)


def test_sample_is_exact_silhouette_of_the_drawn_rows():
    X, y = _blobs(np.float64, n=1000)
    idx = np.sort(np.random.default_rng(3).choice(1000, size=200, replace=False))
    expected = skm.silhouette_score(X[idx], y[idx])
    sampled = metrics.silhouette_score(X, y, sample_size=200, random_state=3)
    assert sampled == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- errors

K_CHECKED = [
    metrics.silhouette_score,
    metrics.silhouette_samples,
    metrics.davies_bouldin_score,
    metrics.calinski_harabasz_score,
]
K_IDS = ["silhouette_score", "silhouette_samples", "davies_bouldin", "calinski_harabasz"]


@pytest.mark.parametrize("func", K_CHECKED, ids=K_IDS)
@pytest.mark.parametrize(
    "labels",
    [np.zeros(10, int), np.full(10, 4), np.arange(10)],
    ids=["one-label", "one-label-4", "n-labels"],
)
def test_number_of_labels_out_of_range_raises(func, labels):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="Number of labels is"):
        func(X, labels)


ALL_XY = [*K_CHECKED, metrics.inertia, metrics.cluster_centers]
ALL_XY_IDS = [*K_IDS, "inertia", "cluster_centers"]


@pytest.mark.parametrize("func", ALL_XY, ids=ALL_XY_IDS)
@pytest.mark.parametrize(
    ("X", "labels", "message"),
    [
        (np.zeros((10, 2)), np.arange(9) % 2, "inconsistent numbers of samples"),
        (np.zeros(10), np.arange(10) % 2, "2-D"),
        (np.zeros((10, 2)), (np.arange(10) % 2).reshape(5, 2), "1-D"),
        (np.zeros((0, 2)), np.zeros(0, int), "0 samples"),
        (np.zeros((10, 0)), np.arange(10) % 2, "0 features"),
        (np.where(np.eye(10, 2) > 0, np.nan, 0.0), np.arange(10) % 2, "NaN or infinity"),
        (np.where(np.eye(10, 2) > 0, np.inf, 0.0), np.arange(10) % 2, "NaN or infinity"),
    ],
    ids=["mismatched-lengths", "X-1d", "labels-2d", "no-samples", "no-features", "nan", "inf"],
)
def test_malformed_input_raises(func, X, labels, message):
    with pytest.raises(ValueError, match=message):
        func(X, labels)


@pytest.mark.parametrize(
    "sample_size", [0, -3, 2.5, True], ids=["zero", "negative", "float", "bool"]
)
def test_bad_sample_size_raises(sample_size):
    X, y = _blobs(np.float64)
    with pytest.raises(ValueError, match="sample_size"):
        metrics.silhouette_score(X, y, sample_size=sample_size)


def test_sample_with_too_few_labels_raises():
    X, y = _blobs(np.float64)
    with pytest.raises(ValueError, match="Number of labels is 1"):
        metrics.silhouette_score(X, y, sample_size=1, random_state=0)


@pytest.mark.parametrize("chunk_size", [0, -1, 1.5], ids=["zero", "negative", "float"])
def test_bad_chunk_size_raises(chunk_size):
    X, y = _blobs(np.float64)
    with pytest.raises(ValueError, match="chunk_size"):
        metrics.silhouette_samples(X, y, chunk_size=chunk_size)


@pytest.mark.parametrize(
    ("labels", "centers", "message"),
    [
        (np.array([0, 1, 2, 0]), np.zeros((2, 2)), r"labels must lie in 0\.\.1"),
        (np.array([0, -1, 1, 0]), np.zeros((2, 2)), r"labels must lie in 0\.\.1"),
        (np.array([0.0, 1.0, 1.0, 0.0]), np.zeros((2, 2)), "integers"),
        (np.array([0, 1, 1, 0]), np.zeros((2, 3)), "shape"),
        (np.array([0, 1, 1, 0]), np.zeros(2), "shape"),
    ],
    ids=["label-too-big", "label-negative", "float-labels", "wrong-features", "centers-1d"],
)
def test_inertia_with_bad_centers_raises(labels, centers, message):
    with pytest.raises(ValueError, match=message):
        metrics.inertia(np.zeros((4, 2)), labels, centers)


@pytest.mark.parametrize(
    "func",
    [metrics.adjusted_rand_score, metrics.normalized_mutual_info_score, metrics.contingency_matrix],
    ids=["ari", "nmi", "contingency"],
)
@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.arange(5), np.arange(4), "inconsistent lengths"),
        (np.zeros((2, 2)), np.arange(4), "labels_true must be 1-D"),
        (np.arange(4), np.zeros((2, 2)), "labels_pred must be 1-D"),
    ],
    ids=["mismatched-lengths", "true-2d", "pred-2d"],
)
def test_external_malformed_input_raises(func, a, b, message):
    with pytest.raises(ValueError, match=message):
        func(a, b)


# --------------------------------------------------------------------------- properties
#
# Coordinates are multiples of 1/4 in [-10, 10]: bounded finite floats on which sums,
# translations and power-of-two scalings are exact, so properties can be checked tightly.
# With arbitrary floats, near-coincident points of different clusters make both
# scikit-learn's and our dot-product distances rounding noise and the scores ill-conditioned.


@st.composite
def labelled_data(draw, max_rows=40, max_cols=5):
    """(X float64, labels with 2 <= k <= n - 1 distinct arbitrary integer values)."""
    n = draw(st.integers(3, max_rows))
    d = draw(st.integers(1, max_cols))
    X = draw(hnp.arrays(np.int64, (n, d), elements=st.integers(-40, 40))) / 4.0
    k = draw(st.integers(2, min(n - 1, 6)))
    codes = draw(hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)))
    codes[:k] = np.arange(k)  # every cluster present
    values = draw(st.lists(st.integers(-1000, 1000), min_size=k, max_size=k, unique=True))
    return X, np.array(values)[codes]


def _centroid_gap(X, labels):
    """Smallest distance between two distinct cluster centroids (exact, via differences)."""
    centers = np.stack([X[labels == v].mean(axis=0) for v in np.unique(labels)])
    dist = cdist(centers, centers)
    return dist[~np.eye(len(centers), dtype=bool)].min()


@HYPOTHESIS
@given(labelled_data())
def test_property_silhouette_matches_sklearn(data):
    X, labels = data
    # Reference: scikit-learn's silhouette on exact (difference-based) distances.
    expected = skm.silhouette_samples(cdist(X, X), labels, metric="precomputed")
    got = metrics.silhouette_samples(X, labels)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert metrics.silhouette_score(X, labels) == pytest.approx(expected.mean(), rel=1e-9, abs=1e-9)
    assert np.all(got >= -1.0) and np.all(got <= 1.0)


@HYPOTHESIS
@given(labelled_data())
def test_property_davies_bouldin_and_calinski_harabasz_match_sklearn(data):
    X, labels = data
    assert metrics.calinski_harabasz_score(X, labels) == pytest.approx(
        skm.calinski_harabasz_score(X, labels), rel=1e-9, abs=1e-12
    )
    # Coincident centroids are skipped by both, but sklearn's dot-product distances may make
    # them 1e-8 apart instead of exactly 0; leave those degenerate cases out.
    assume(_centroid_gap(X, labels) > 1e-6)
    assert metrics.davies_bouldin_score(X, labels) == pytest.approx(
        skm.davies_bouldin_score(X, labels), rel=1e-9, abs=1e-12
    )


def _internal_scores(X, labels):
    return np.array(
        [
            metrics.silhouette_score(X, labels),
            metrics.davies_bouldin_score(X, labels),
            metrics.calinski_harabasz_score(X, labels),
            metrics.inertia(X, labels),
        ]
    )


@HYPOTHESIS
@given(labelled_data(), st.randoms(use_true_random=False))
def test_property_scores_invariant_under_relabeling(data, rnd):
    X, labels = data
    base = _internal_scores(X, labels)
    uniques, codes = np.unique(labels, return_inverse=True)
    perm = np.array(rnd.sample(range(len(uniques)), len(uniques)))
    for relabeled in (perm[codes], labels * 7 + 3, -labels):
        np.testing.assert_allclose(_internal_scores(X, relabeled), base, rtol=1e-9, atol=1e-12)


@HYPOTHESIS
@given(
    labelled_data(),
    hnp.arrays(np.int64, 5, elements=st.integers(-400, 400)),
    st.integers(-3, 3),
)
def test_property_scores_invariant_under_translation_and_scaling(data, shift, power):
    X, labels = data
    shift = shift[: X.shape[1]] / 4.0
    base = _internal_scores(X, labels)
    moved = _internal_scores(X + shift, labels)
    np.testing.assert_allclose(moved, base, rtol=1e-7, atol=1e-9)
    scaled = _internal_scores(X * 2.0**power, labels)
    # Silhouette, Davies-Bouldin and Calinski-Harabasz are scale invariant; inertia scales
    # with the square of the factor.
    np.testing.assert_allclose(scaled[:3], base[:3], rtol=1e-7, atol=1e-9)
    assert scaled[3] == pytest.approx(base[3] * 4.0**power, rel=1e-9, abs=1e-12)


@HYPOTHESIS
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(3, 40), st.integers(1, 5)),
        elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    ),
    st.data(),
)
def test_property_silhouette_on_arbitrary_floats(X, data):
    n = X.shape[0]
    labels = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 4)))
    k = len(np.unique(labels))
    assume(2 <= k <= n - 1)
    s = metrics.silhouette_samples(X, labels)
    assert np.all(np.isfinite(s)) and np.all(s >= -1.0) and np.all(s <= 1.0)
    # s is discontinuous where a = b = 0: a point 1e-83 from a duplicate pair scores 1 in
    # exact arithmetic and 0 once the distance drowns in rounding error (both are
    # "right"). Compare only where every distance is 0 or resolvable.
    dist = cdist(X, X)
    assume(np.all((dist == 0) | (dist >= 1e-4 * max(np.abs(X).max(), 1e-300))))
    expected = skm.silhouette_samples(dist, labels, metric="precomputed")
    np.testing.assert_allclose(s, expected, rtol=1e-7, atol=1e-7)


label_arrays = st.integers(0, 50).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.int64, n, elements=st.integers(-2, 4)),
        hnp.arrays(np.int64, n, elements=st.integers(0, 6)),
    )
)


@HYPOTHESIS
@given(label_arrays)
def test_property_external_scores_match_sklearn_and_are_symmetric(pair):
    a, b = pair
    ari, nmi = metrics.adjusted_rand_score(a, b), metrics.normalized_mutual_info_score(a, b)
    assert ari == pytest.approx(skm.adjusted_rand_score(a, b), rel=1e-12, abs=1e-12)
    assert nmi == pytest.approx(skm.normalized_mutual_info_score(a, b), rel=1e-12, abs=1e-12)
    assert metrics.adjusted_rand_score(b, a) == pytest.approx(ari, rel=1e-12, abs=1e-12)
    assert metrics.normalized_mutual_info_score(b, a) == pytest.approx(nmi, rel=1e-12, abs=1e-12)
    assert -1.0 <= ari <= 1.0 and 0.0 <= nmi <= 1.0 + 1e-12
    np.testing.assert_array_equal(
        metrics.contingency_matrix(a, b), metrics.contingency_matrix(b, a).T
    )


@HYPOTHESIS
@given(label_arrays, st.randoms(use_true_random=False))
def test_property_identical_partitions_score_one(pair, rnd):
    a, _ = pair
    uniques, codes = np.unique(a, return_inverse=True)
    relabeled = np.array(rnd.sample(range(-100, 100), len(uniques)), dtype=np.int64)[codes]
    assert metrics.adjusted_rand_score(a, relabeled) == 1.0
    assert metrics.normalized_mutual_info_score(a, relabeled) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------- GPU parity


@pytest.mark.gpu
@pytest.mark.cupy
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_gpu_matches_cpu(dtype):
    cupy = _cupy()
    X, y = _odd_labels(dtype)
    Xg, yg = cupy.asarray(X), cupy.asarray(y)
    tol = {np.float64: 1e-9, np.float32: 1e-4}[dtype]
    for name in ("silhouette_score", "davies_bouldin_score", "calinski_harabasz_score", "inertia"):
        cpu, gpu = getattr(metrics, name)(X, y), getattr(metrics, name)(Xg, yg)
        assert gpu == pytest.approx(cpu, rel=tol, abs=tol), name
    np.testing.assert_allclose(
        metrics.silhouette_samples(Xg, yg).get(),
        metrics.silhouette_samples(X, y),
        rtol=tol,
        atol=tol,
    )
    np.testing.assert_allclose(
        metrics.cluster_centers(Xg, yg).get(), metrics.cluster_centers(X, y), rtol=tol
    )
    # Same seed, same subset on both devices.
    cpu = metrics.silhouette_score(X, y, sample_size=150, random_state=4)
    gpu = metrics.silhouette_score(Xg, yg, sample_size=150, random_state=4)
    assert gpu == pytest.approx(cpu, rel=tol, abs=tol)
    b = (y + np.arange(len(y)) % 2) % 5
    bg = cupy.asarray(b)
    assert metrics.adjusted_rand_score(yg, bg) == metrics.adjusted_rand_score(y, b)
    nmi = metrics.normalized_mutual_info_score(y, b)
    assert metrics.normalized_mutual_info_score(yg, bg) == nmi
