from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from gpuseg.backend import to_host
from gpuseg.cluster import som as som_module
from gpuseg.cluster.som import (
    SelfOrganizingMap,
    _batch_epoch,
    _grid_sq_distances,
    _neighbourhood,
    _unit_coordinates,
)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(1200, n_features=6, centers=5, cluster_std=1.0, random_state=3)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def blob_som(blobs):
    return SelfOrganizingMap(5, random_state=0).fit(blobs[0])


@pytest.fixture(scope="module")
def separated():
    X, y = make_blobs(400, n_features=3, centers=4, cluster_std=0.5, center_box=(-20, 20), random_state=1)
    return X, y


# --- the batch epoch against a slow reference -----------------------------------------------


def reference_epoch(X, codebook, coords, sigma):
    """Kohonen's batch rule written out: one unit at a time."""
    d = ((X[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=-1)
    bmu = d.argmin(axis=1)
    new = np.empty_like(codebook)
    for j in range(len(codebook)):
        h = np.exp(-((coords[bmu] - coords[j]) ** 2).sum(axis=1) / (2 * sigma**2))
        new[j] = (h[:, None] * X).sum(axis=0) / h.sum()
    return new


@pytest.mark.parametrize("grid, sigma", [((3, 4), 1.3), ((5, 2), 0.5), ((1, 6), 2.0)],
                         ids=["3x4-sigma1.3", "5x2-sigma0.5", "1x6-sigma2"])
def test_batch_epoch_matches_unit_by_unit_reference(xp, grid, sigma):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    codebook = rng.normal(size=(grid[0] * grid[1], 3))
    expected = reference_epoch(X, codebook, _unit_coordinates(grid), sigma)
    H = _neighbourhood(xp, _grid_sq_distances(grid), sigma)
    new, dist = _batch_epoch(xp.asarray(X), xp.asarray(codebook), H)
    np.testing.assert_allclose(to_host(new), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_host(dist), ((X[:, None] - codebook[None]) ** 2).sum(-1).min(1), rtol=1e-10)


# --- quality ---------------------------------------------------------------------------------


def test_quantisation_error_falls_below_pca_baselines(blobs, blob_som):
    X, _ = blobs
    errors = np.array(blob_som.quantization_errors_)
    assert len(errors) == 31 and errors[-1] == blob_som.quantization_error_
    # the wide early neighbourhood pulls the map together; from then on the error only falls
    assert np.all(np.diff(errors[1:]) <= 1e-9 * errors[0])
    assert errors[-1] < 0.5 * errors[0]  # errors[0]: the PCA-initialised codebook
    # ... and below projecting every row onto the plane of the first two components
    Xc = X.astype(np.float64) - X.mean(axis=0)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    residual = np.linalg.norm(Xc - Xc @ vt[:2].T @ vt[:2], axis=1).mean()
    assert blob_som.quantization_error_ < residual


@pytest.mark.parametrize("shape", ["square", "curved-sheet"])
def test_topographic_error_small_on_smooth_data(shape):
    rng = np.random.default_rng(2)
    if shape == "square":
        X = rng.uniform(size=(1500, 2))
    else:
        t = rng.uniform(0, 3, size=1500)
        X = np.c_[t, 0.5 * np.sin(2 * t), rng.uniform(0, 0.8, size=1500)]
    est = SelfOrganizingMap(4, n_epochs=20, random_state=0).fit(X)
    assert est.topographic_error_ < 0.2


def test_segments_recover_blobs(blobs, blob_som):
    _, y = blobs
    assert adjusted_rand_score(y, blob_som.labels_) > 0.9


def test_umatrix_is_high_between_blobs(blob_som):
    est = blob_som
    rows, cols = est.grid_shape_
    assert est.umatrix_.shape == (rows, cols) and isinstance(est.umatrix_, np.ndarray)
    seg = est.unit_labels_.reshape(rows, cols)
    border = np.zeros((rows, cols), dtype=bool)  # units next to a unit of another segment
    border[1:] |= seg[1:] != seg[:-1]
    border[:-1] |= seg[1:] != seg[:-1]
    border[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    border[:, :-1] |= seg[:, 1:] != seg[:, :-1]
    assert est.umatrix_[border].mean() > 2 * est.umatrix_[~border].mean()


def test_umatrix_values_are_mean_neighbour_distances(blob_som):
    est = blob_som
    rows, cols = est.grid_shape_
    W = est.codebook_.astype(np.float64).reshape(rows, cols, -1)
    for r, c in [(0, 0), (rows // 2, cols // 2), (rows - 1, 1)]:
        cells = [(r + dr, c + dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                 if 0 <= r + dr < rows and 0 <= c + dc < cols]
        expected = np.mean([np.linalg.norm(W[r, c] - W[q]) for q in cells])
        assert est.umatrix_[r, c] == pytest.approx(expected, rel=1e-9)


# --- attributes, grid and determinism ----------------------------------------------------------


def test_api(blobs, blob_som):
    X, _ = blobs
    est = blob_som
    rows, cols = est.grid_shape_
    assert 4 <= rows * cols <= 400
    assert est.codebook_.shape == (rows * cols, 6) and est.codebook_.dtype == np.float32
    assert est.bmu_.dtype == est.labels_.dtype == est.unit_labels_.dtype == np.int32
    np.testing.assert_array_equal(est.labels_, est.unit_labels_[est.bmu_])
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    distances = est.transform(X)
    assert distances.shape == (len(X), rows * cols)
    np.testing.assert_array_equal(distances.argmin(axis=1), est.bmu_)
    assert est.quantization_error_ == pytest.approx(distances.min(axis=1).mean(), rel=1e-4)
    means = np.stack([X[est.labels_ == c].mean(axis=0) for c in range(5)])
    np.testing.assert_allclose(est.cluster_centers_, means, rtol=1e-5, atol=1e-5)
    assert est.n_features_in_ == 6
    s = SelfOrganizingMap(5, n_epochs=2)
    assert s.fit(X) is s
    np.testing.assert_array_equal(s.fit_predict(X), s.labels_)


def test_automatic_grid_follows_the_principal_components():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3)) * np.array([6.0, 2.0, 0.5])  # sqrt(l1 / l2) = 3
    est = SelfOrganizingMap(4, max_units=120, n_epochs=1).fit(X)
    rows, cols = est.grid_shape_
    assert rows * cols <= 120 and rows * cols >= 100
    assert 2.2 < rows / cols < 4


def test_explicit_grid_and_topographic_error_definition():
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(300, 2))
    est = SelfOrganizingMap(3, grid=(4, 6), n_epochs=10).fit(X)
    assert est.grid_shape_ == (4, 6) and est.umatrix_.shape == (4, 6)
    d = est.transform(X)
    order = np.argsort(d, axis=1)
    r1, c1 = np.divmod(order[:, 0], 6)
    r2, c2 = np.divmod(order[:, 1], 6)
    assert est.topographic_error_ == pytest.approx(np.mean(np.abs(r1 - r2) + np.abs(c1 - c2) != 1))


def test_same_seed_same_result(monkeypatch, blobs):
    monkeypatch.setattr(som_module, "PCA_SAMPLE_ROWS", 300)  # so that the seed is used
    X, _ = blobs
    a = SelfOrganizingMap(5, n_epochs=5, random_state=7).fit(X)
    b = SelfOrganizingMap(5, n_epochs=5, random_state=7).fit(X)
    np.testing.assert_array_equal(a.codebook_, b.codebook_)
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_labels_invariant_to_row_order(separated):
    X, _ = separated
    perm = np.random.default_rng(0).permutation(len(X))
    a = SelfOrganizingMap(4, n_epochs=10, random_state=0).fit(X).labels_
    b = SelfOrganizingMap(4, n_epochs=10, random_state=0).fit(X[perm]).labels_
    assert adjusted_rand_score(a[perm], b) == 1.0


# --- properties, errors, tooling -------------------------------------------------------------


@st.composite
def data_and_k(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4))
    X = draw(arrays(np.float64, (n, d), elements=st.floats(-1e3, 1e3, allow_nan=False, width=32)))
    k = draw(st.integers(1, min(n, 6)))
    return X, k


@settings(max_examples=25, deadline=None)
@given(data_and_k())
def test_properties(case):
    X, k = case
    est = SelfOrganizingMap(k, n_epochs=4, random_state=0).fit(X)
    labels = est.labels_
    assert labels.shape == (len(X),) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() < k  # every point labelled, k segments at most
    assert len(np.unique(labels)) == labels.max() + 1
    lo, hi = X.min(axis=0), X.max(axis=0)
    tol = 1e-9 * (1 + np.abs(X).max())
    assert np.all(est.cluster_centers_ >= lo - tol) and np.all(est.cluster_centers_ <= hi + tol)
    assert 0.0 <= est.topographic_error_ <= 1.0 and est.quantization_error_ >= 0.0


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_clusters": 6}, np.zeros((5, 2)), "n_samples=5"),
        ({"n_clusters": 0}, np.zeros((5, 2)), "positive"),
        ({}, np.zeros(5), "2-D"),
        ({"grid": (2, 1), "n_clusters": 3}, np.zeros((5, 2)), "fewer units"),
        ({"grid": (1, 1)}, np.zeros((5, 2)), "at least 2 units"),
        ({"grid": 9}, np.zeros((5, 2)), "rows, cols"),
        ({"max_units": 3}, np.zeros((5, 2)), "max_units"),
        ({"n_epochs": 0}, np.zeros((5, 2)), "n_epochs"),
        ({"sigma_end": 0.0}, np.zeros((5, 2)), "sigma_end"),
        ({"sigma_start": -1.0}, np.zeros((5, 2)), "sigma_start"),
        ({}, np.array([[0.0], [np.nan]]), "NaN or infinity"),
    ],
    ids=["k-too-big", "zero-k", "1-d", "grid-below-k", "grid-1x1", "grid-not-pair", "max-units",
         "zero-epochs", "sigma-end", "sigma-start", "nan"],
)
def test_invalid(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        SelfOrganizingMap(**{"n_clusters": 2, **kwargs}).fit(X)


@pytest.mark.parametrize("k", [True, False, 2.0])
def test_n_clusters_must_be_an_integer_not_a_bool(k):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        SelfOrganizingMap(k).fit(X)


def test_predict_before_fit():
    with pytest.raises(AttributeError, match="not fitted"):
        SelfOrganizingMap(2).predict(np.zeros((3, 2)))


def test_sklearn_clone():
    from sklearn.base import clone

    est = clone(SelfOrganizingMap(3, grid=(5, 5), sigma_end=1.0, random_state=4))
    assert est.get_params()["grid"] == (5, 5) and est.get_params()["sigma_end"] == 1.0


# --- the same code on NumPy and CuPy ---------------------------------------------------------


def test_array_types_and_parity(xp, separated):
    X, _ = separated
    ref = SelfOrganizingMap(4, n_epochs=10, random_state=0).fit(X)
    est = SelfOrganizingMap(4, n_epochs=10, random_state=0).fit(xp.asarray(X))
    kind = type(xp.asarray(X))
    assert type(est.labels_) is kind and type(est.codebook_) is kind and type(est.bmu_) is kind
    assert est.labels_.dtype == xp.int32 and isinstance(est.umatrix_, np.ndarray)
    np.testing.assert_allclose(to_host(est.codebook_), ref.codebook_, rtol=1e-7, atol=1e-7)
    assert adjusted_rand_score(ref.labels_, to_host(est.labels_)) == 1.0
    assert est.quantization_error_ == pytest.approx(ref.quantization_error_, rel=1e-7)
    assert est.topographic_error_ == pytest.approx(ref.topographic_error_, abs=1e-2)
