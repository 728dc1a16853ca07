from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

from gpuseg.backend import to_host
from gpuseg.cluster.gmm import GaussianMixture

COVARIANCE_TYPES = ["full", "diag"]


@pytest.fixture(autouse=True)
def _quiet_and_single_threaded():
    """Convergence warnings are part of some tests' set-up; scikit-learn's OpenMP threads
    crawl on a busy 2-core machine."""
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        warnings.filterwarnings("ignore", message="Number of distinct clusters")  # k-means init on duplicates
        yield


def _blobs():
    X, y = make_blobs(3000, n_features=5, centers=4, cluster_std=[1.0, 2.0, 0.5, 1.5], random_state=0)
    return X, y


def _random():
    rng = np.random.RandomState(0)
    return rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6)) + 5.0, None


DATASETS = {"blobs": (_blobs, 4), "random": (_random, 3)}


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


@pytest.fixture(scope="module")
def separated():
    X, y = make_blobs(900, n_features=3, centers=4, cluster_std=0.5, center_box=(-20, 20), random_state=1)
    return X, y


def _kmeans_start(X, k, covariance_type):
    """weights/means/precisions of a k-means labelling: the same start for both libraries."""
    from sklearn.cluster import KMeans

    labels = KMeans(k, n_init=1, random_state=0).fit(X).labels_
    weights = np.bincount(labels, minlength=k) / len(X)
    means = np.stack([X[labels == j].mean(axis=0) for j in range(k)])
    if covariance_type == "full":
        precisions = np.stack([np.linalg.inv(np.cov(X[labels == j].T) + 1e-3 * np.eye(X.shape[1])) for j in range(k)])
    else:
        precisions = np.stack([1.0 / (X[labels == j].var(axis=0) + 1e-3) for j in range(k)])
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


# ------------------------------------------------------------------ scikit-learn parity


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", list(DATASETS))
def test_matches_scikit_learn_from_the_same_start(data, covariance_type):
    make, k = DATASETS[data]
    X, y = make()
    start = _kmeans_start(X, k, covariance_type)
    ours = GaussianMixture(k, covariance_type=covariance_type, **start).fit(X)
    ref = SkGaussianMixture(k, covariance_type=covariance_type, **start).fit(X)
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-6)
    assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-6)
    assert abs(ours.n_iter_ - ref.n_iter_) <= 1
    assert adjusted_rand_score(ref.predict(X), ours.labels_) > 0.99
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.precisions_cholesky_, ref.precisions_cholesky_, rtol=1e-4, atol=1e-6)
    if y is not None:
        assert adjusted_rand_score(y, ours.labels_) > 0.9


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_seed_same_start_as_scikit_learn(blobs, covariance_type, init_params):
    """The initialisations draw from random_state as scikit-learn does."""
    X, _ = blobs
    kwargs = dict(covariance_type=covariance_type, init_params=init_params, max_iter=20, random_state=3)
    ours = GaussianMixture(4, **kwargs).fit(X)
    ref = SkGaussianMixture(4, **kwargs).fit(X)
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-6)
    assert adjusted_rand_score(ref.predict(X), ours.labels_) > 0.99


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_probabilities_and_criteria_equal_scikit_learn_for_the_same_parameters(blobs, covariance_type):
    X, _ = blobs
    ours = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    ref = SkGaussianMixture(4, covariance_type=covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_", "converged_", "n_iter_",
                 "lower_bound_", "n_features_in_"):
        setattr(ref, name, getattr(ours, name))
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.bic(X) == pytest.approx(ref.bic(X), rel=1e-6)
    assert ours.aic(X) == pytest.approx(ref.aic(X), rel=1e-6)


@pytest.mark.parametrize("covariance_type, n_params", [("full", 2 * 6 + 2 * 3 + 1), ("diag", 2 * 3 + 2 * 3 + 1)],
                         ids=["full", "diag"])
def test_parameter_count_in_criteria(blobs, covariance_type, n_params):
    X = blobs[0][:, :3]
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    loglik = model.score(X) * len(X)
    assert model.bic(X) == pytest.approx(-2 * loglik + n_params * math.log(len(X)), rel=1e-12)
    assert model.aic(X) == pytest.approx(-2 * loglik + 2 * n_params, rel=1e-12)


# ------------------------------------------------------------------ behaviour


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fitted_attributes_and_predictions(blobs, covariance_type):
    X, y = blobs
    model = GaussianMixture(4, covariance_type=covariance_type, random_state=0)
    assert model.fit(X) is model
    cov_shape = (4, 5, 5) if covariance_type == "full" else (4, 5)
    assert model.weights_.shape == (4,) and model.weights_.sum() == pytest.approx(1.0)
    assert model.means_.shape == (4, 5)
    assert model.covariances_.shape == cov_shape and model.precisions_cholesky_.shape == cov_shape
    assert model.converged_ and 1 <= model.n_iter_ <= model.max_iter
    assert model.labels_.dtype == np.int32 and model.n_features_in_ == 5
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(proba.argmax(axis=1), model.labels_)
    samples = model.score_samples(X)
    assert samples.shape == (len(X),)
    assert model.score(X) == pytest.approx(samples.mean())
    assert adjusted_rand_score(y, model.labels_) > 0.95
    if covariance_type == "full":
        np.testing.assert_allclose(model.precisions_ @ model.covariances_, np.broadcast_to(np.eye(5), (4, 5, 5)),
                                   atol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_close_to_float64(blobs, covariance_type):
    """float32 input: within 1e-5 relative of float64 for the lower bound, same labels."""
    X, _ = blobs
    a = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    b = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X.astype(np.float32))
    assert np.isfinite(b.lower_bound_) and np.isfinite(b.means_).all()
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-5)
    assert adjusted_rand_score(a.labels_, b.labels_) > 0.99
    assert b.labels_.dtype == np.int32
    np.testing.assert_allclose(b.predict_proba(X.astype(np.float32)).sum(axis=1), 1.0, rtol=1e-6)


def test_float32_far_from_the_origin(blobs):
    """Centring before the quadratic forms keeps float32 accurate for shifted data."""
    X, _ = blobs
    shifted = X + 1e4
    a = GaussianMixture(4, random_state=0).fit(X)
    b = GaussianMixture(4, random_state=0).fit(shifted.astype(np.float32))
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-3)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("case", ["duplicates", "constant-feature", "collapsed-cluster"])
def test_degenerate_data_is_regularised(covariance_type, case):
    rng = np.random.RandomState(0)
    if case == "duplicates":
        X = np.repeat(rng.normal(size=(6, 3)), 20, axis=0)
    elif case == "constant-feature":
        X = np.column_stack([rng.normal(size=(300, 2)), np.full(300, 7.0)])
    else:
        X = np.vstack([np.ones((100, 3)), rng.normal(size=(200, 3)) + 10])
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert np.isfinite(model.lower_bound_)
    assert np.isfinite(model.precisions_cholesky_).all()
    assert np.isfinite(model.score_samples(X)).all()
    assert len(np.unique(model.labels_)) >= 2


def test_same_seed_same_result(blobs):
    X, _ = blobs
    a = GaussianMixture(4, init_params="random", random_state=5).fit(X)
    b = GaussianMixture(4, init_params="random", random_state=5).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_labels_invariant_to_row_order(separated):
    X, _ = separated
    perm = np.random.RandomState(0).permutation(len(X))
    a = GaussianMixture(4, random_state=0).fit(X).labels_
    b = GaussianMixture(4, random_state=0).fit(X[perm]).labels_
    back = np.empty_like(b)
    back[perm] = b
    assert adjusted_rand_score(a, back) == 1.0


def test_warm_start_continues_em(blobs):
    X, _ = blobs
    start = _kmeans_start(X, 4, "full")
    twice = GaussianMixture(4, max_iter=2, tol=0.0, warm_start=True, **start)
    twice.fit(X)
    first_bound = twice.lower_bound_
    twice.fit(X)
    once = GaussianMixture(4, max_iter=4, tol=0.0, **start).fit(X)
    np.testing.assert_allclose(twice.means_, once.means_, rtol=1e-10)
    assert twice.lower_bound_ == pytest.approx(once.lower_bound_, rel=1e-12)
    assert twice.lower_bound_ >= first_bound


def test_best_of_several_initialisations(blobs):
    X, _ = blobs
    bounds = [GaussianMixture(4, init_params="random", max_iter=5, random_state=s).fit(X).lower_bound_ for s in range(3)]
    best = GaussianMixture(4, init_params="random", max_iter=5, n_init=3, random_state=0).fit(X).lower_bound_
    assert best >= bounds[0] - 1e-12


def test_scikit_learn_tooling():
    from sklearn.base import clone

    model = GaussianMixture(3, covariance_type="diag", means_init=np.zeros((3, 2)), random_state=1)
    copy = clone(model)
    assert copy.get_params()["covariance_type"] == "diag"
    np.testing.assert_array_equal(copy.means_init, model.means_init)
    assert "covariance_type='diag'" in repr(model)


# ------------------------------------------------------------------ properties


@settings(max_examples=30, deadline=None)
@given(
    X=arrays(np.float64, st.tuples(st.integers(6, 50), st.integers(1, 3)), elements=st.floats(-100, 100, width=32)),
    k=st.integers(1, 4),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    seed=st.integers(0, 2**16),
)
def test_properties(X, k, covariance_type, seed):
    model = GaussianMixture(k, covariance_type=covariance_type, max_iter=10, random_state=seed).fit(X)
    labels = model.labels_
    assert labels.shape == (len(X),)
    assert labels.min() >= 0 and labels.max() < k
    assert len(np.unique(labels)) <= k
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-9)
    # means are responsibility-weighted averages, shrunk towards 0 by scikit-learn's
    # 10 * eps added to each component's weight: inside the box of the data and the origin
    lo = np.minimum(X.min(axis=0), 0) - 1e-6
    hi = np.maximum(X.max(axis=0), 0) + 1e-6
    assert ((model.means_ >= lo) & (model.means_ <= hi)).all()


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_components": 6}, np.zeros((5, 2)), "n_samples=5"),
        ({"n_components": 0}, np.zeros((5, 2)), "positive"),
        ({}, np.zeros(5), "2-D"),
        ({"covariance_type": "tied"}, np.zeros((5, 2)), "covariance_type"),
        ({"covariance_type": "bogus"}, np.zeros((5, 2)), "covariance_type"),
        ({"init_params": "best"}, np.zeros((5, 2)), "init_params"),
        ({"n_init": 0}, np.zeros((5, 2)), "n_init"),
        ({"reg_covar": -1.0}, np.zeros((5, 2)), "reg_covar"),
        ({"weights_init": [0.2, 0.2]}, np.zeros((5, 2)), "sum to 1"),
        ({"weights_init": [1.0]}, np.zeros((5, 2)), "shape"),
        ({"means_init": np.zeros((2, 3))}, np.zeros((5, 2)), "means_init"),
        ({"precisions_init": np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2)}, np.zeros((5, 2)), "positive-definite"),
        ({"covariance_type": "diag", "precisions_init": -np.ones((2, 2))}, np.zeros((5, 2)), "positive"),
    ],
    ids=["k-too-big", "zero-k", "1-d", "tied", "bogus-covariance", "bad-init", "n-init", "reg-covar",
         "weights-sum", "weights-shape", "means-shape", "precisions-not-pd", "diag-precisions-negative"],
)
def test_invalid(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**{"n_components": 2, **kwargs}).fit(X)


def test_use_before_fit_and_wrong_width(blobs):
    with pytest.raises(AttributeError, match="not fitted"):
        GaussianMixture(2).predict(np.zeros((3, 2)))
    model = GaussianMixture(2, random_state=0).fit(blobs[0])
    with pytest.raises(ValueError, match="5 features"):
        model.predict_proba(np.zeros((3, 2)))


# ------------------------------------------------------------------ devices


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype, rel", [(np.float64, 1e-6), (np.float32, 1e-4)], ids=["float64", "float32"])
def test_same_result_on_every_array_module(xp, blobs, covariance_type, dtype, rel):
    X = blobs[0].astype(dtype)
    ref = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    model = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(xp.asarray(X))
    assert type(model.labels_) is type(xp.asarray(X)) and model.labels_.dtype == xp.int32
    assert model.lower_bound_ == pytest.approx(ref.lower_bound_, rel=rel)
    assert adjusted_rand_score(ref.labels_, to_host(model.labels_)) > 0.99
    proba = model.predict_proba(xp.asarray(X))
    np.testing.assert_allclose(to_host(proba), ref.predict_proba(X), atol=1e-3)
    assert model.bic(xp.asarray(X)) == pytest.approx(ref.bic(X), rel=rel)


def test_diag_survives_features_constant_within_a_component():
    """Zero-inflated customer features (e.g. spend of non-buyers) are constant inside a
    component; E[x^2] - mu^2 in float32 cancels to a negative variance there (scikit-learn's
    float32 diag fit fails on such data), centred squares do not."""
    rng = np.random.default_rng(0)
    n = 20_000
    buyer = rng.random(n) < 0.3
    spend = np.where(buyer, rng.lognormal(3, 1, n), 0.0)
    X = np.column_stack([np.log1p(spend), rng.normal(size=n), np.where(buyer, rng.normal(size=n), 0.0)])
    X = ((X - X.mean(0)) / X.std(0) * 3.7 + 11.0).astype(np.float32)  # constants far from 0
    gm = GaussianMixture(4, covariance_type="diag", random_state=0).fit(X)
    assert np.isfinite(gm.lower_bound_) and (gm.covariances_ > 0).all()


# --- state and incremental updates (what saved models and `gpuseg update` use) ------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_from_arrays_round_trip_predicts_the_same(blobs, covariance_type):
    X, _ = blobs
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    arrays = gm.to_arrays()
    assert set(arrays) == {"weights", "means", "covariances", "precisions_cholesky", "counts"}
    np.testing.assert_allclose(arrays["counts"].sum(), len(X))  # a fit stands for its rows in partial_fit
    back = GaussianMixture.from_arrays(**arrays, covariance_type=covariance_type)
    assert back.n_components == 3 and back.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(back.predict_proba(X), gm.predict_proba(X), atol=1e-12)
    np.testing.assert_allclose(back.precisions_, gm.precisions_, rtol=1e-12)


def test_from_arrays_refuses_unknown_covariance_type(blobs):
    X, _ = blobs
    a = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X).to_arrays()
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture.from_arrays(a["weights"], a["means"], a["covariances"], a["precisions_cholesky"],
                                    covariance_type="tied")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_partial_fit_without_history_is_warm_started_em(blobs, covariance_type):
    """Old statistics worth (almost) nothing: incremental EM is EM warm-started from the old
    parameters on the batch alone."""
    X, _ = blobs
    old = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=3).fit(X[:200])
    a = old.to_arrays()
    inc = GaussianMixture.from_arrays(*(a[n] for n in ("weights", "means", "covariances", "precisions_cholesky")),
                                      counts=np.full(3, 1e-9), covariance_type=covariance_type, max_iter=20,
                                      tol=1e-6).partial_fit(X[200:])
    warm = GaussianMixture(3, covariance_type=covariance_type, max_iter=20, tol=1e-6, warm_start=True,
                           random_state=0)
    warm.weights_, warm.means_, warm.covariances_ = old.weights_, old.means_, old.covariances_
    warm.precisions_cholesky_, warm.converged_, warm.lower_bound_ = old.precisions_cholesky_, True, -np.inf
    warm.fit(X[200:])
    np.testing.assert_allclose(inc.means_, warm.means_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inc.weights_, warm.weights_, atol=1e-6)
    np.testing.assert_allclose(inc.counts_.sum(), len(X) - 200, rtol=1e-6)
    np.testing.assert_allclose(inc.batch_counts_.sum(), len(X) - 200, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_partial_fit_pools_old_and_new_statistics(blobs, covariance_type):
    """With the batch's responsibilities fixed (one iteration), the new means are the
    count-weighted means of the old means and the batch's weighted means."""
    X, _ = blobs
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X[:300])
    a = gm.to_arrays()
    counts = a["weights"] * 300
    batch = X[300:]
    resp = gm.predict_proba(batch)
    upd = GaussianMixture.from_arrays(*(a[n] for n in ("weights", "means", "covariances", "precisions_cholesky")),
                                      counts=counts, covariance_type=covariance_type, max_iter=1).partial_fit(batch)
    nk = resp.sum(axis=0)
    want = (counts[:, None] * a["means"] + resp.T @ batch) / (counts + nk)[:, None]
    np.testing.assert_allclose(upd.means_, want, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(upd.counts_, counts + nk, rtol=1e-6)
    assert upd.n_iter_ == 1


def test_partial_fit_on_an_unfitted_mixture_fits(blobs):
    X, _ = blobs
    a = GaussianMixture(3, random_state=0).partial_fit(X)
    b = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(a.means_, b.means_)


@pytest.mark.parametrize("fitted_as, given_as", [("diag", "full"), ("full", "diag")])
def test_from_arrays_refuses_arrays_of_another_covariance_type(blobs, fitted_as, given_as):
    """A clear ValueError, not NumPy's AxisError at the first predict."""
    X, _ = blobs
    a = GaussianMixture(2, covariance_type=fitted_as, random_state=0).fit(X).to_arrays()
    with pytest.raises(ValueError, match=r"from_arrays: covariances must have shape .* covariance_type="):
        GaussianMixture.from_arrays(**a, covariance_type=given_as)


@pytest.mark.parametrize("name, value, match", [
    ("means", np.zeros(3), "means must have shape"),
    ("weights", np.ones(3) / 3, "weights must have shape"),
    ("counts", np.ones(5), "counts must have shape"),
    ("precisions_cholesky", np.ones((2, 1)), "precisions_cholesky must have shape"),
])
def test_from_arrays_checks_every_shape(blobs, name, value, match):
    X, _ = blobs
    a = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X).to_arrays()
    with pytest.raises(ValueError, match=match):
        GaussianMixture.from_arrays(**{**a, name: value}, covariance_type="diag")
