from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import skew as scipy_skew
from sklearn.preprocessing import StandardScaler

from gpuseg.prep.scale import FeatureScaler, skewness


def data(seed=0, n=500):
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.lognormal(3, 1.5, n),       # skewed, positive -> log1p
        rng.normal(0, 1, n),            # symmetric
        rng.uniform(0, 1, n) ** 8,      # skewed but bounded (declared)
        -rng.lognormal(0, 1, n),        # skewed but negative -> no log
        np.full(n, 3.0),                # constant
    ])


def test_skewness_matches_scipy():
    X = data()
    np.testing.assert_allclose(skewness(X)[:4], scipy_skew(X[:, :4], axis=0), rtol=1e-10)
    assert skewness(X)[4] == 0.0


def test_log_columns_and_standardisation():
    X = data()
    s = FeatureScaler(bounded=[2]).fit(X)
    assert s.log_mask_.tolist() == [True, False, False, False, False]
    Z = s.transform(X)
    assert Z.dtype == np.float32 and Z.flags.c_contiguous
    T = X.copy()
    T[:, 0] = np.log1p(T[:, 0])
    ref = StandardScaler().fit_transform(T)
    np.testing.assert_allclose(Z, ref, atol=1e-5)
    assert s.scale_[4] == 1.0


def test_log_can_be_switched_off():
    s = FeatureScaler(log_skewed=False).fit(data())
    assert not s.log_mask_.any()


def test_inverse_transform_round_trip():
    X = data()
    s = FeatureScaler(dtype=np.float64).fit(X)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X, rtol=1e-9, atol=1e-9)


def test_transform_checks_width_and_finiteness():
    s = FeatureScaler().fit(data())
    with pytest.raises(ValueError, match="5"):
        s.transform(data()[:, :3])
    bad = data()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FeatureScaler().fit(bad)


def test_params_by_name():
    s = FeatureScaler().fit(data())
    p = s.params(["a", "b", "c", "d", "e"])
    assert p["a"]["log1p"] is True and p["e"]["scale"] == 1.0


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(5, 40), st.integers(1, 4)),
              elements=st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)))
def test_scaled_columns_are_centred(X):
    Z = FeatureScaler(dtype=np.float64).fit_transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-6)
    std = Z.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-6) | (std < 1e-6))


def test_a_dataframe_is_read_as_its_values():
    """docs/api.md: ``model.predict(model.scaler.transform(raw_features))`` with the run's
    features frame; a scaler fitted on an array (the pipeline's, a saved model's) has no
    names and takes the columns as they come."""
    import pandas as pd

    X = data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])], index=np.arange(len(X)) + 100)
    sc = FeatureScaler(bounded=[2]).fit(X)
    assert not hasattr(sc, "feature_names_in_")
    np.testing.assert_array_equal(sc.transform(frame), sc.transform(X))
    assert sc.transform(frame).dtype == np.float32
    with pytest.raises(ValueError, match="numbers only"):
        sc.transform(frame.assign(f1="x"))


def test_a_scaler_fitted_on_a_dataframe_reads_frames_by_name():
    import pandas as pd

    X = data()
    names = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    sc = FeatureScaler(bounded=[2]).fit(frame)
    assert sc.feature_names_in_.tolist() == names
    want = FeatureScaler(bounded=[2]).fit(X).transform(X)
    np.testing.assert_array_equal(sc.transform(frame), want)
    shuffled = frame[names[::-1]].assign(customer_id=np.arange(len(X)))  # other order, one more column
    np.testing.assert_array_equal(sc.transform(shuffled), want)
    with pytest.raises(ValueError, match="X lacks 1 of the 5 features the scaler was fitted on: f3"):
        sc.transform(frame.drop(columns="f3"))
    np.testing.assert_array_equal(sc.transform(X), want)  # an array is taken as it comes
    assert not hasattr(sc.fit(X), "feature_names_in_")  # refitted on an array: no names
