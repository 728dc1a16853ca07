"""A fully connected autoencoder (PyTorch) as an embedding stage.

The network trains on the tensor that shares memory with the input: NumPy arrays become
CPU tensors through ``torch.from_numpy``, CuPy arrays CUDA tensors through DLPack
(:func:`gpuseg.backend.to_torch`), so neither the host nor the GPU holds a second copy of
the data; embeddings come back the same way (:func:`gpuseg.backend.from_torch`). The
device follows the input. torch is imported when a model is fitted, never when gpuseg is.

The private helpers here (the training tensor, the network, batched inference, the
deterministic-fit context) are shared with the deep clustering models of
:mod:`gpuseg.cluster.deep`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import os
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import backend as _backend
from ..cluster._base import EstimatorMixin, as_float_array, seed_from

__all__ = ["Autoencoder", "encode_rows", "training_tensor"]

#: ``callback(phase, epoch, total, loss)``: called once per epoch / target refresh.
Callback = Callable[[str, int, int, float], None]

#: Rows per forward pass when whole data sets are embedded or decoded (no gradients).
_INFERENCE_ROWS = 16384


# --- parameter checks (shared with gpuseg.cluster.deep) -------------------------------------


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}")
    return float(value)


def _check_hidden(hidden: Any) -> tuple[int, ...]:
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise ValueError(f"hidden must be a sequence of layer widths such as (64, 32), got {hidden!r}")
    return tuple(_check_int("hidden layer width", h, 1) for h in hidden)


def _check_common(est: Any) -> None:
    """The network and training parameters every torch estimator of gpuseg shares."""
    _check_hidden(est.hidden)
    _check_int("latent_dim", est.latent_dim, 1)
    _check_float("lr", est.lr, 0.0, low_open=True)
    _check_int("batch_size", est.batch_size, 1)
    _check_int("patience", est.patience, 1)
    _check_float("validation_fraction", est.validation_fraction, 0.0, 1.0, high_open=True)
    _check_float("noise", est.noise, 0.0)
    if not isinstance(est.amp, bool):
        raise ValueError(f"amp must be True or False, got {est.amp!r}")
    if est.callback is not None and not callable(est.callback):
        raise ValueError(f"callback must be callable(phase, epoch, total, loss) or None, got {est.callback!r}")


# --- tensors, networks, inference (shared with gpuseg.cluster.deep) ---------------------------


def _as_float32(X: Any) -> Any:
    """X as a 2-D float32 NumPy/CuPy array; float32 arrays are returned as they are."""
    if _backend.is_gpu_frame(X) or (not _backend.is_gpu_array(X) and hasattr(X, "to_numpy")):
        X = _backend.frame_to_array(X, dtype=np.float32)
    else:
        X = as_float_array(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.dtype != np.float32:
        X = X.astype(_backend.array_namespace(X).float32)
    return X


def training_tensor(X: Any, n_features: int | None = None) -> Any:
    """The float32 tensor a model trains on or embeds: it shares memory with ``X``.

    NumPy -> CPU tensor (``torch.from_numpy``), CuPy -> CUDA tensor (DLPack). Only input
    that is not float32 or not C-contiguous is copied, once, on its own device. Raises
    ``ValueError`` for shapes other than (n >= 1, d >= 1), a width other than
    ``n_features`` and non-finite values.
    """
    X = _as_float32(X)
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}; need at least one sample and one feature")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features; the model was fitted on {n_features}")
    if not bool(_backend.array_namespace(X).isfinite(X).all()):
        raise ValueError("X contains NaN or infinite values")
    if _backend.is_gpu_array(X):
        _backend.share_memory_pool()  # before torch's first CUDA allocation; False without RMM
    return _backend.to_torch(X)


#: torch CPU threads during a fit. The layers are small (batches of 256 x a few dozen
#: features): on the 2-core reference machine one thread is as fast as two when the cores
#: are idle (1.9 vs 2.0 ms per Adam step at 20k x 34) and 10-50x faster when anything else
#: runs on them (OpenMP threads of a second process spin against each other).
_CPU_FIT_THREADS = 1


@contextlib.contextmanager
def _fit_context(torch: Any, device: Any) -> Iterator[None]:
    """Deterministic torch kernels (warnings where none exists) and, on the CPU,
    ``_CPU_FIT_THREADS`` threads during a fit; the previous settings are restored after
    (``CUBLAS_WORKSPACE_CONFIG``, set on the GPU when unset, stays)."""
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace (read when torch creates its
        # cuBLAS handle, i.e. at the first fit); PyTorch's documented setting
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if device.type == "cpu":
        torch.set_num_threads(min(threads, _CPU_FIT_THREADS))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _autocast(torch: Any, device: Any, amp: bool) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)


def _build_network(torch: Any, n_features: int, hidden: tuple[int, ...], latent_dim: int, gen: Any) -> Any:
    """Encoder d-h1-..-latent and mirrored decoder (ReLU between layers, linear ends).

    Built on the CPU from ``gen`` with PyTorch's default Linear initialisation, so a seed
    gives the same initial weights on every device (and the global RNG is not touched).
    """
    nn = torch.nn

    def stack(sizes: list[int]) -> Any:
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, device="meta"))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    sizes = [n_features, *hidden, latent_dim]
    net = nn.ModuleDict({"encoder": stack(sizes), "decoder": stack(sizes[::-1])}).to_empty(device="cpu")
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    return net


def _clone_state(net: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _device_of(net: Any) -> Any:
    return next(net.parameters()).device


def encode_rows(torch: Any, net: Any, Xt: Any, amp: bool) -> Any:
    """Embedding of every row of ``Xt`` (float32 tensor on Xt's device), in row blocks."""
    out = torch.empty((Xt.shape[0], net["decoder"][0].in_features), dtype=torch.float32, device=Xt.device)
    with torch.no_grad(), _autocast(torch, Xt.device, amp):
        for start in range(0, Xt.shape[0], _INFERENCE_ROWS):
            out[start : start + _INFERENCE_ROWS] = net["encoder"](Xt[start : start + _INFERENCE_ROWS]).float()
    return out


def _decode(torch: Any, net: Any, Zt: Any, amp: bool) -> Any:
    out = torch.empty((Zt.shape[0], net["encoder"][0].in_features), dtype=torch.float32, device=Zt.device)
    with torch.no_grad(), _autocast(torch, Zt.device, amp):
        for start in range(0, Zt.shape[0], _INFERENCE_ROWS):
            out[start : start + _INFERENCE_ROWS] = net["decoder"](Zt[start : start + _INFERENCE_ROWS]).float()
    return out


def _reconstruction_mse(torch: Any, net: Any, Xt: Any, rows: Any, amp: bool) -> float:
    """Mean squared reconstruction error over ``Xt[rows]`` (all rows when ``rows`` is None)."""
    n = Xt.shape[0] if rows is None else rows.shape[0]
    total = torch.zeros((), dtype=torch.float64, device=Xt.device)
    with torch.no_grad(), _autocast(torch, Xt.device, amp):
        for start in range(0, n, _INFERENCE_ROWS):
            xb = Xt[start : start + _INFERENCE_ROWS] if rows is None else Xt[rows[start : start + _INFERENCE_ROWS]]
            err = net["decoder"](net["encoder"](xb)).float() - xb
            total += (err * err).sum(dtype=torch.float64)
    return float(total.item()) / (n * Xt.shape[1])


def _batches(torch: Any, rows: Any, batch_size: int, gen: Any) -> Iterator[Any]:
    """Endless mini-batches of ``rows`` (a device tensor of row indices), reshuffled every
    pass with the CPU generator ``gen`` (same batches on every device)."""
    while True:
        order = rows[torch.randperm(rows.shape[0], generator=gen).to(rows.device)]
        for start in range(0, order.shape[0], batch_size):
            yield order[start : start + batch_size]


# --- the estimator ----------------------------------------------------------------------------


class Autoencoder(EstimatorMixin):
    """Fully connected autoencoder trained by mini-batch Adam with early stopping.

    Encoder ``d - hidden[0] - ... - latent_dim``, mirrored decoder, ReLU between layers and
    linear input/output/embedding layers; mean squared reconstruction error. A held-out
    share of the rows (``validation_fraction``) decides early stopping, and the weights of
    the best validation epoch are restored at the end.

    Runs where the data are: NumPy input trains on CPU tensors that share its memory, CuPy
    (or cuDF) input on CUDA tensors that share its GPU memory (DLPack). Outputs are NumPy
    or CuPy accordingly.

    Parameters
    ----------
    hidden : sequence of int, default=(64, 32)
        Widths of the hidden layers of the encoder (the decoder mirrors them).
    latent_dim : int, default=8
        Width of the embedding.
    lr : float, default=1e-3
        Adam learning rate.
    batch_size : int, default=256
    max_epochs : int, default=50
    patience : int, default=5
        Stop after this many epochs without a lower validation loss.
    validation_fraction : float, default=0.1
        Share of rows held out (chosen with ``random_state``) for early stopping. With 0
        the training loss decides and ``validation_error_`` stays empty.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to the inputs during training (a
        denoising autoencoder); the target stays the clean input.
    amp : bool, default=False
        Mixed precision: bf16 autocast for the forward passes (useful on recent GPUs; on
        most CPUs it is slower).
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the validation split, the batch order and the noise
        (through ``torch.Generator`` objects; the global torch RNG is not used). Same seed,
        same device -> same weights and losses.
    callback : callable, optional
        ``callback(phase, epoch, total, loss)``, called after every epoch with
        ``phase="pretrain"``, ``total=max_epochs`` and the epoch's training loss.

    Attributes
    ----------
    network_ : torch.nn.ModuleDict
        ``network_["encoder"]`` and ``network_["decoder"]`` on the training device.
    reconstruction_error_ : list of float
        Training loss (mean squared error) of every epoch.
    validation_error_ : list of float
        Held-out loss after every epoch (empty when ``validation_fraction=0``).
    reconstruction_loss_ : float
        Held-out loss of the restored (best) weights.
    n_epochs_ : int
        Epochs trained.
    best_epoch_ : int
        The epoch (1-based) whose weights were kept.
    history_ : list of dict
        Per epoch: ``phase``, ``epoch``, ``loss``, ``validation_loss``, ``seconds``.
    n_features_in_ : int

    Notes
    -----
    Fitting enables ``torch.use_deterministic_algorithms(True, warn_only=True)`` and, on
    the CPU, trains with one torch thread (fastest for layers this small, and robust when
    other processes share the cores); both settings are restored afterwards. float64 input is cast once to float32 (the
    network's dtype); that is the only copy of the data. The embeddings are float32.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 6)).astype(np.float32)
    >>> ae = Autoencoder(hidden=(16,), latent_dim=2, max_epochs=3, random_state=0).fit(X)
    >>> ae.transform(X).shape, ae.inverse_transform(ae.transform(X)).shape
    ((500, 2), (500, 6))
    """

    _estimator_type = "transformer"

    def __init__(
        self,
        hidden: Sequence[int] = (64, 32),
        latent_dim: int = 8,
        *,
        lr: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 50,
        patience: int = 5,
        validation_fraction: float = 0.1,
        noise: float = 0.0,
        amp: bool = False,
        random_state: Any = None,
        callback: Callback | None = None,
    ) -> None:
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.noise = noise
        self.amp = amp
        self.random_state = random_state
        self.callback = callback

    def _validate_params(self) -> None:
        _check_common(self)
        _check_int("max_epochs", self.max_epochs, 1)

    def fit(self, X: Any, y: Any = None) -> "Autoencoder":
        """Train the network on X.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy or CuPy array (or a pandas/cuDF frame).
        y : ignored

        Returns
        -------
        self
        """
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit and return the embedding of X (see :meth:`transform`)."""
        Xt = self._fit(X)
        return _backend.from_torch(encode_rows(_backend.torch_module(), self.network_, Xt, self.amp))

    def _fit(self, X: Any) -> Any:
        """Validate, train; returns the training tensor."""
        self._validate_params()
        Xt = training_tensor(X)
        torch = _backend.torch_module()
        with _fit_context(torch, Xt.device):
            self._fit_tensor(Xt, seed_from(self.random_state))
        return Xt

    def _fit_tensor(self, Xt: Any, seed: int) -> None:
        """Train on the float32 tensor ``Xt`` (parameters valid, inside ``_fit_context``)."""
        torch = _backend.torch_module()
        F = torch.nn.functional
        n, d = Xt.shape
        dev = Xt.device
        n_val = 0 if self.validation_fraction == 0 else max(1, int(round(self.validation_fraction * n)))
        if n - n_val < 1:
            raise ValueError(f"n_samples={n} is too few to hold out validation_fraction={self.validation_fraction}")
        gen = torch.Generator().manual_seed(seed)  # CPU: weights, split, batch order
        net = _build_network(torch, d, _check_hidden(self.hidden), int(self.latent_dim), gen).to(dev)
        perm = torch.randperm(n, generator=gen)
        val_rows = perm[:n_val].sort().values.to(dev) if n_val else None
        train_rows = perm[n_val:].to(dev)
        n_train = train_rows.shape[0]
        noise_gen = torch.Generator(device=dev).manual_seed(seed + 1) if self.noise > 0 else None
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, fused=True)
        steps_per_epoch = math.ceil(n_train / self.batch_size)
        batches = _batches(torch, train_rows, self.batch_size, gen)

        train_err: list[float] = []
        val_err: list[float] = []
        history: list[dict[str, Any]] = []
        best, best_epoch, best_state, since = math.inf, 0, None, 0
        for epoch in range(1, self.max_epochs + 1):
            t0 = time.perf_counter()
            net.train()
            total = torch.zeros((), dtype=torch.float64, device=dev)  # summed on the device: one sync per epoch
            for _ in range(steps_per_epoch):
                idx = next(batches)
                xb = Xt[idx]
                xin = xb
                if noise_gen is not None:
                    xin = xb + self.noise * torch.randn(xb.shape, generator=noise_gen, device=dev)
                with _autocast(torch, dev, self.amp):
                    out = net["decoder"](net["encoder"](xin))
                loss = F.mse_loss(out.float(), xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * idx.shape[0]
            net.eval()
            train_loss = float(total.item()) / n_train
            train_err.append(train_loss)
            monitored = train_loss
            if val_rows is not None:
                monitored = _reconstruction_mse(torch, net, Xt, val_rows, self.amp)
                val_err.append(monitored)
            if monitored < best:
                best, best_epoch, best_state, since = monitored, epoch, _clone_state(net), 0
            else:
                since += 1
            history.append({
                "phase": "pretrain",
                "epoch": epoch,
                "loss": train_loss,
                "validation_loss": monitored if val_rows is not None else None,
                "seconds": time.perf_counter() - t0,
            })
            if self.callback is not None:
                self.callback("pretrain", epoch, int(self.max_epochs), train_loss)
            if since >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)

        self.network_ = net
        self.reconstruction_error_ = train_err
        self.validation_error_ = val_err
        self.reconstruction_loss_ = float(best)
        self.n_epochs_ = len(train_err)
        self.best_epoch_ = best_epoch
        self.history_ = history
        self.n_features_in_ = d
        self._validation_rows = val_rows

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise AttributeError(f"this {type(self).__name__} instance is not fitted yet; call fit first")

    def _network_on(self, device: Any) -> Any:
        """The network on ``device`` (a moved copy when the input lives elsewhere)."""
        net = self.network_
        return net if _device_of(net) == device else copy.deepcopy(net).to(device)

    def transform(self, X: Any) -> Any:
        """Embedding of X, shape (n_samples, latent_dim), float32, in X's array type."""
        self._check_fitted()
        Xt = training_tensor(X, self.n_features_in_)
        torch = _backend.torch_module()
        return _backend.from_torch(encode_rows(torch, self._network_on(Xt.device), Xt, self.amp))

    def inverse_transform(self, Z: Any) -> Any:
        """Reconstruction from embeddings, shape (n_samples, n_features), in Z's array type."""
        self._check_fitted()
        Zt = training_tensor(Z, int(self.latent_dim))
        torch = _backend.torch_module()
        return _backend.from_torch(_decode(torch, self._network_on(Zt.device), Zt, self.amp))
