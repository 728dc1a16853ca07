from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs

from gpuseg import backend as _backend
from gpuseg.embed import Autoencoder
from gpuseg.embed.autoencoder import training_tensor
from gpuseg.errors import DeviceError

torch = pytest.importorskip("torch")

SMALL = dict(hidden=(32, 16), latent_dim=3, batch_size=128, max_epochs=12, random_state=0)


@pytest.fixture(scope="module")
def X():
    X, _ = make_blobs(1500, n_features=10, centers=4, cluster_std=1.0, random_state=0)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(X):
    return Autoencoder(**SMALL).fit(X)


@pytest.fixture
def cuda():
    """Skips unless CuPy, a CUDA device and torch's CUDA are usable (RAPIDS not needed)."""
    probe = _backend.probe_cupy()
    if not probe.available:
        pytest.skip(f"no GPU: {probe.reason}")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    return _backend.gpu_module("cupy")


# --- API -------------------------------------------------------------------------------------


def test_fit_returns_self_and_shapes(X):
    ae = Autoencoder(**SMALL)
    assert ae.fit(X) is ae
    Z = ae.transform(X)
    assert isinstance(Z, np.ndarray) and Z.shape == (1500, 3) and Z.dtype == np.float32
    R = ae.inverse_transform(Z)
    assert isinstance(R, np.ndarray) and R.shape == X.shape and R.dtype == np.float32
    np.testing.assert_array_equal(Autoencoder(**SMALL).fit_transform(X), Z)


def test_fitted_attributes(fitted):
    n = fitted.n_epochs_
    assert 1 <= n <= SMALL["max_epochs"] and 1 <= fitted.best_epoch_ <= n
    assert len(fitted.reconstruction_error_) == len(fitted.validation_error_) == len(fitted.history_) == n
    best = fitted.validation_error_[fitted.best_epoch_ - 1]
    assert fitted.reconstruction_loss_ == best == min(fitted.validation_error_)
    assert [h["epoch"] for h in fitted.history_] == list(range(1, n + 1))
    assert {h["phase"] for h in fitted.history_} == {"pretrain"}
    assert fitted.n_features_in_ == 10
    assert all(isinstance(v, float) for v in fitted.reconstruction_error_ + fitted.validation_error_)


def test_best_weights_are_restored(X, fitted):
    rows = fitted._validation_rows.numpy()
    assert len(rows) == 150  # validation_fraction=0.1
    Xv = X[rows]
    mse = float(((fitted.inverse_transform(fitted.transform(Xv)) - Xv) ** 2).mean())
    assert mse == pytest.approx(fitted.reconstruction_loss_, rel=1e-5)


def test_reconstruction_loss_falls(fitted):
    assert fitted.reconstruction_error_[-1] < fitted.reconstruction_error_[0]
    assert fitted.validation_error_[fitted.best_epoch_ - 1] < fitted.validation_error_[0]


def test_early_stopping_after_patience(X):
    ae = Autoencoder(hidden=(8,), latent_dim=2, lr=0.05, max_epochs=300, patience=2, random_state=0).fit(X[:300])
    assert ae.n_epochs_ < 300
    assert ae.n_epochs_ - ae.best_epoch_ == 2


def test_without_validation_the_training_loss_decides(X):
    ae = Autoencoder(**{**SMALL, "max_epochs": 4}, validation_fraction=0.0).fit(X)
    assert ae.validation_error_ == [] and ae._validation_rows is None
    assert ae.reconstruction_loss_ == ae.reconstruction_error_[ae.best_epoch_ - 1] == min(ae.reconstruction_error_)


def test_clone_and_params(fitted):
    c = clone(fitted)
    assert c.get_params() == fitted.get_params()
    assert not hasattr(c, "network_")
    with pytest.raises(AttributeError, match="not fitted"):
        c.transform(np.zeros((2, 10), np.float32))
    assert "latent_dim=3" in repr(fitted)


def test_denoising_runs_and_differs(X, fitted):
    noisy = Autoencoder(**SMALL, noise=0.3).fit(X)
    assert np.all(np.isfinite(noisy.reconstruction_error_))
    assert noisy.reconstruction_error_ != fitted.reconstruction_error_
    assert not np.array_equal(noisy.transform(X), fitted.transform(X))


def test_amp_runs(X):
    ae = Autoencoder(**{**SMALL, "max_epochs": 2}, amp=True).fit(X)
    assert np.all(np.isfinite(ae.reconstruction_error_))
    assert ae.transform(X).dtype == np.float32


def test_same_seed_same_result_other_seed_differs(X, fitted):
    again = Autoencoder(**SMALL).fit(X)
    assert again.reconstruction_error_ == fitted.reconstruction_error_
    assert again.validation_error_ == fitted.validation_error_
    np.testing.assert_array_equal(again.transform(X), fitted.transform(X))
    other = Autoencoder(**{**SMALL, "random_state": 1}).fit(X)
    assert other.reconstruction_error_ != fitted.reconstruction_error_


def test_fit_restores_torch_settings(X):
    threads = torch.get_num_threads()
    was = torch.are_deterministic_algorithms_enabled()
    Autoencoder(**{**SMALL, "max_epochs": 1}).fit(X)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == was


def test_callback_once_per_epoch(X):
    calls = []
    ae = Autoencoder(**{**SMALL, "max_epochs": 5}, callback=lambda *a: calls.append(a)).fit(X)
    assert [c[:3] for c in calls] == [("pretrain", e, 5) for e in range(1, ae.n_epochs_ + 1)]
    assert [c[3] for c in calls] == ae.reconstruction_error_


def test_frames_and_float64_input(X, fitted):
    Z = fitted.transform(X)
    np.testing.assert_allclose(fitted.transform(pd.DataFrame(X)), Z, rtol=1e-6)
    np.testing.assert_allclose(fitted.transform(X.astype(np.float64)), Z, rtol=1e-6)


def test_importing_gpuseg_does_not_import_torch():
    code = "import sys, gpuseg, gpuseg.embed, gpuseg.cluster.deep; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- zero-copy hand-off --------------------------------------------------------------------


def test_training_tensor_shares_memory_with_numpy(X):
    t = training_tensor(X)
    assert t.device.type == "cpu" and t.dtype == torch.float32
    assert t.data_ptr() == X.ctypes.data


@pytest.mark.parametrize("make", [lambda X: X.astype(np.float64), np.asfortranarray], ids=["float64", "fortran"])
def test_training_tensor_copies_only_what_it_must(X, make):
    Y = make(X)
    t = training_tensor(Y)
    assert t.data_ptr() != Y.ctypes.data and t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), X)


def test_fit_trains_on_the_input_memory(X, monkeypatch):
    seen = []
    original = Autoencoder._fit_tensor

    def spy(self, Xt, seed):
        seen.append(Xt.data_ptr())
        return original(self, Xt, seed)

    monkeypatch.setattr(Autoencoder, "_fit_tensor", spy)
    Autoencoder(**{**SMALL, "max_epochs": 1}).fit(X)
    assert seen == [X.ctypes.data]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"hidden": "64"},
        {"hidden": (64, 0)},
        {"hidden": 64},
        {"latent_dim": 0},
        {"latent_dim": 2.5},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"batch_size": 0},
        {"max_epochs": 0},
        {"patience": 0},
        {"validation_fraction": 1.0},
        {"validation_fraction": -0.1},
        {"noise": -1.0},
        {"amp": "yes"},
        {"callback": 3},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_bad_params_raise_value_error(X, params):
    with pytest.raises(ValueError, match=next(iter(params)).split("_")[0]):
        Autoencoder(**params).fit(X)


@pytest.mark.parametrize(
    "bad",
    [np.zeros(10, np.float32), np.zeros((0, 3), np.float32), np.array([[0.0, np.nan]], np.float32)],
    ids=["1-D", "empty", "nan"],
)
def test_bad_input_raises_value_error(bad):
    with pytest.raises(ValueError):
        Autoencoder(**SMALL).fit(bad)


def test_too_few_rows_for_the_validation_split():
    with pytest.raises(ValueError, match="validation_fraction"):
        Autoencoder(**SMALL).fit(np.ones((1, 3), np.float32))


def test_wrong_width_raises(fitted):
    with pytest.raises(ValueError, match="10"):
        fitted.transform(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="3"):
        fitted.inverse_transform(np.zeros((5, 4), np.float32))


def test_missing_torch_raises_device_error(X, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(DeviceError, match="torch"):
        Autoencoder(**SMALL).fit(X)


# --- GPU -------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.cupy
def test_cupy_input_stays_on_the_gpu(X, cuda):
    Xg = cuda.asarray(X)
    t = training_tensor(Xg)
    assert t.device.type == "cuda" and t.data_ptr() == Xg.data.ptr
    ae = Autoencoder(**SMALL).fit(Xg)
    Z = ae.transform(Xg)
    assert _backend.is_gpu_array(Z) and Z.shape == (1500, 3)
    assert _backend.is_gpu_array(ae.inverse_transform(Z))


@pytest.mark.gpu
@pytest.mark.cupy
def test_gpu_matches_cpu(X, fitted, cuda):
    gpu = Autoencoder(**SMALL).fit(cuda.asarray(X))
    # same initial weights, split and batches: only rounding differs
    np.testing.assert_allclose(gpu.reconstruction_error_[0], fitted.reconstruction_error_[0], rtol=1e-3)
    assert gpu.reconstruction_loss_ == pytest.approx(fitted.reconstruction_loss_, rel=0.05)
    # a CPU copy of the network embeds host data like the CPU fit would
    assert isinstance(gpu.transform(X), np.ndarray)
