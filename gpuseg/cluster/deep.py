"""Deep clustering: an autoencoder embedding clustered by K-means (DeepKMeans), DEC and IDEC.

All three pretrain a :class:`gpuseg.embed.Autoencoder` on the data and initialise the
clusters with gpuseg's :class:`~gpuseg.cluster.KMeans` in the embedding (the latent tensor
is handed to K-means as a NumPy/CuPy array without a copy), started by default from the
segments K-means finds on the input features (``init="input"``, below). DeepKMeans stops
there. DEC (Xie, Girshick & Farhadi 2016) then fine-tunes the encoder and the centroids so
that the Student's t soft assignments Q approach their sharpened target P; IDEC (Guo et al.
2017) keeps the decoder in the objective so the embedding keeps describing the data.

A k sweep pretrains once: :meth:`recut` starts from the pretrained weights (kept as a
copy) and redoes only the k-dependent phase, so ``recut(X, k)`` equals a fresh fit at
``k`` with the same seed.

The data stay on their device: NumPy input trains on CPU tensors sharing its memory, CuPy
input on CUDA tensors sharing its GPU memory (DLPack); results come back in the input's
array type. torch is imported when a model is fitted, never when gpuseg is.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Sequence

from .. import backend as _backend
from .._xp import cluster_sums, nearest_center
from ..embed.autoencoder import (
    _INFERENCE_ROWS,
    Autoencoder,
    Callback,
    _autocast,
    _batches,
    _check_common,
    _check_float,
    _check_int,
    _clone_state,
    encode_rows,
    _fit_context,
    _reconstruction_mse,
    training_tensor,
)
from ._base import EstimatorMixin, seed_from
from .kmeans import KMeans

__all__ = ["DeepKMeans", "DEC", "IDEC", "soft_assignment"]

#: Where the clusters' K-means starts (the ``init`` parameter).
_INITS = ("input", "embedding")


# --- the DEC objective (torch tensors) --------------------------------------------------------


def soft_assignment(Z: Any, centers: Any, alpha: float = 1.0) -> Any:
    """Student's t similarity of embeddings to centroids, rows normalised (DEC eq. 1).

    ``q_ij = (1 + ||z_i - mu_j||^2 / alpha) ** (-(alpha + 1) / 2) / sum_j' (...)``
    """
    d2 = ((Z[:, None, :] - centers[None, :, :]) ** 2).sum(dim=2)
    q = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


def _target_distribution(Q: Any) -> Any:
    """DEC's sharpened target (eq. 3): ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')``,
    ``f_j = sum_i q_ij`` (squaring sharpens, dividing by ``f_j`` keeps large clusters from
    absorbing the rest)."""
    w = Q * Q / Q.sum(dim=0)
    return w / w.sum(dim=1, keepdim=True)


def _kl_divergence(P: Any, Q: Any) -> Any:
    """KL(P || Q) summed over clusters, averaged over rows (0 log 0 = 0)."""
    return (P * (P.clamp_min(1e-30).log() - Q.clamp_min(1e-30).log())).sum(dim=1).mean()


def _embed_and_assign(torch: Any, net: Any, Xt: Any, centers: Any, alpha: float, amp: bool) -> tuple[Any, Any]:
    """Embedding Z and soft assignments Q of every row (no gradients, in row blocks);
    ``net=None`` takes ``Xt`` as the embedding."""
    Z = Xt if net is None else encode_rows(torch, net, Xt, amp)
    Q = torch.empty((Z.shape[0], centers.shape[0]), dtype=torch.float32, device=Z.device)
    with torch.no_grad():
        for start in range(0, Z.shape[0], _INFERENCE_ROWS):
            Q[start : start + _INFERENCE_ROWS] = soft_assignment(Z[start : start + _INFERENCE_ROWS], centers, alpha)
    return Z, Q


# --- shared machinery -------------------------------------------------------------------------


class _Start:
    """Where DEC's clusters start without a Lloyd run on the codes: centres and labels."""

    def __init__(self, cluster_centers: Any, labels: Any) -> None:
        self.cluster_centers_ = cluster_centers
        self.labels_ = labels


class _DeepClustering(EstimatorMixin):
    """Pretraining, the K-means initialisation, ``recut`` and the array hand-offs.

    Subclasses define ``__init__`` (all parameters, scikit-learn style) and ``_cluster``
    (the k-dependent phase, given the training tensor and the pretrained autoencoder).
    """

    def _validate_params(self) -> None:
        _check_int("n_clusters", self.n_clusters, 1)
        _check_common(self)
        _check_int("pretrain_epochs", self.pretrain_epochs, 1)
        if self.n_init != "auto":
            _check_int("n_init", self.n_init, 1)
        if not (isinstance(self.init, str) and self.init in _INITS):
            raise ValueError(f"init must be one of {list(_INITS)}, got {self.init!r}")

    def _check_n_samples(self, n: int) -> None:
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} should be >= n_clusters={self.n_clusters}")

    def _make_autoencoder(self, seed: int) -> Autoencoder:
        return Autoencoder(
            hidden=self.hidden,
            latent_dim=self.latent_dim,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.pretrain_epochs,
            patience=self.patience,
            validation_fraction=self.validation_fraction,
            noise=self.noise,
            amp=self.amp,
            random_state=seed,
            callback=self.callback,
        )

    def fit(self, X: Any, y: Any = None) -> "_DeepClustering":
        """Pretrain the autoencoder on X, then cluster the embedding.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy or CuPy array (or a pandas/cuDF frame).
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        Xt = training_tensor(X)
        self._check_n_samples(Xt.shape[0])
        torch = _backend.torch_module()
        seed = seed_from(self.random_state)
        with _fit_context(torch, Xt.device):
            ae = self._make_autoencoder(seed)
            ae._fit_tensor(Xt, seed)
            self._seed = seed
            self._pretrained_state = _clone_state(ae.network_)
            self._cluster(torch, Xt, ae)
        return self

    def recut(self, X: Any, n_clusters: int) -> "_DeepClustering":
        """A copy clustered into ``n_clusters`` from the same pretrained autoencoder.

        Only the k-dependent phase runs (the K-means start, on the input rows and in the
        embedding, and DEC/IDEC's fine-tuning from the pretrained weights), seeded as
        :meth:`fit` seeds it: the result equals a fresh fit at ``n_clusters`` with the same
        ``random_state``. ``X`` must be the training data.
        """
        self._check_fitted()
        new = copy.copy(self)
        new.n_clusters = n_clusters
        new._validate_params()
        Xt = training_tensor(X, self.n_features_in_)
        new._check_n_samples(Xt.shape[0])
        torch = _backend.torch_module()
        ae = copy.copy(self.autoencoder_)
        ae.network_ = copy.deepcopy(self.autoencoder_.network_).to(Xt.device)
        ae.network_.load_state_dict(self._pretrained_state)
        with _fit_context(torch, Xt.device):
            new._cluster(torch, Xt, ae)
        return new

    def _kmeans_init(self, torch: Any, Xt: Any, net: Any, refine: bool = True) -> tuple[Any, Any]:
        """The embedding tensor of every row and the clusters' start in it (zero-copy hand-off).

        ``init="input"``: K-means runs first on the input rows; each segment's centre in the
        embedding is the mean code of its rows, refined by one Lloyd run on the codes
        (gpuseg's K-means) when ``refine`` (deep K-means), else kept as it is with the input
        segments as labels (DEC and IDEC: their own loss refines it). ``"embedding"``:
        K-means with ``n_init`` restarts on the codes alone (the DEC paper's start), also
        when the input K-means leaves a segment empty (fewer distinct rows than clusters).
        """
        Z = encode_rows(torch, net, Xt, self.amp)
        codes = _backend.from_torch(Z)
        if self.init == "input":
            rows = _backend.from_torch(Xt)
            seeds = KMeans(self.n_clusters, n_init=self.n_init, random_state=self._seed).fit(rows).labels_
            sums, counts = cluster_sums(codes, seeds, self.n_clusters)
            if bool((counts > 0).all()):
                centers = (sums / counts[:, None]).astype(codes.dtype)
                if not refine:
                    return Z, _Start(centers, seeds)
                return Z, KMeans(self.n_clusters, init=centers, n_init=1, random_state=self._seed).fit(codes)
        return Z, KMeans(self.n_clusters, n_init=self.n_init, random_state=self._seed).fit(codes)

    def _set_common(self, ae: Autoencoder, Xt: Any) -> None:
        self.autoencoder_ = ae
        self.n_epochs_ = ae.n_epochs_
        self.n_features_in_ = Xt.shape[1]

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise AttributeError(f"this {type(self).__name__} instance is not fitted yet; call fit first")

    def _embed(self, X: Any) -> Any:
        """Embedding tensor of X on X's device."""
        self._check_fitted()
        Xt = training_tensor(X, self.n_features_in_)
        torch = _backend.torch_module()
        return encode_rows(torch, self.autoencoder_._network_on(Xt.device), Xt, self.amp)

    def __sklearn_tags__(self) -> Any:
        """The embedding is float32 whatever the input (the networks compute in float32)."""
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit, then :meth:`transform` X."""
        return self.fit(X).transform(X)

    def transform(self, X: Any) -> Any:
        """Embedding of X, shape (n_samples, latent_dim), float32, in X's array type."""
        return _backend.from_torch(self._embed(X))


_SHARED_PARAMS_DOC = """
    hidden : sequence of int, default=(64, 32)
        Hidden layer widths of the encoder (the decoder mirrors them).
    latent_dim : int, default=8
        Width of the embedding the clusters live in.
    lr : float, default=1e-3
        Adam learning rate of the pretraining.
    batch_size : int, default=256
        Mini-batch size of pretraining and clustering.
    pretrain_epochs : int, default=50
        Most pretraining epochs (early stopping usually ends sooner).
    patience : int, default=5
        Pretraining stops after this many epochs without a lower validation loss.
    validation_fraction : float, default=0.1
        Share of rows held out for the pretraining's early stopping.
    noise : float, default=0.0
        Std of Gaussian input noise during pretraining (denoising autoencoder).
    n_init : int or "auto", default=10
        K-means restarts (the best inertia wins; the DEC paper restarts k-means several
        times as well): on the input rows with ``init="input"``, on the codes with
        ``"embedding"``.
    init : {"input", "embedding"}, default="input"
        Where the clusters start. ``"input"``: K-means on the input features, then each
        cluster's centre in the embedding is the mean code of its rows, refined by K-means
        on the codes. ``"embedding"``: K-means on the codes alone, as in the DEC paper.
        On ten planted scenarios of ``bench/quality.py`` (one seed, k chosen) the input
        start moved the median ARI of DEC from 0.38 to 0.41, of IDEC from 0.38 to 0.40 and
        of deep K-means from 0.36 to 0.35, and on the six personas 0.40-0.41 to 0.48-0.52:
        the codes of a network trained to reconstruct split along what is easiest to
        reconstruct, while the input features keep the feature weights and distances of
        the other methods.
    amp : bool, default=False
        bf16 autocast for the network's forward passes (the clustering loss stays float32).
    random_state : int, RandomState or None, default=None
        Seeds the weights, the validation split, the batch order, the noise and K-means.
        Same seed, same device -> same labels and losses.
    callback : callable, optional
        ``callback(phase, epoch, total, loss)``: after every pretraining epoch
        (``"pretrain"``, the epoch's training loss) and at every step of the clustering
        phase that recomputes the assignments (``"cluster"``)."""


class DeepKMeans(_DeepClustering):
    __doc__ = f"""Autoencoder embedding, then K-means in the embedding.

    Parameters
    ----------
    n_clusters : int, default=8
{_SHARED_PARAMS_DOC}

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int32
        In the input's array type (NumPy or CuPy).
    cluster_centers_ : array of shape (n_clusters, latent_dim)
        Centres in the embedding.
    embedding_ : array of shape (n_samples, latent_dim)
        Embedding of the training data.
    latent_inertia_ : float
        K-means inertia in the embedding (not comparable with an inertia in the feature
        space, hence not ``inertia_``).
    reconstruction_loss_ : float
        Held-out reconstruction MSE of the pretrained autoencoder.
    n_epochs_ : int
        Pretraining epochs.
    n_iter_ : int
        K-means iterations.
    autoencoder_ : Autoencoder
        The pretrained autoencoder.
    history_ : list of dict
        The pretraining epochs, then one ``phase="cluster"`` entry.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(m, 0.3, size=(100, 4)) for m in (-3, 0, 3)]).astype(np.float32)
    >>> est = DeepKMeans(3, hidden=(16,), latent_dim=2, pretrain_epochs=5, random_state=0).fit(X)
    >>> sorted(np.bincount(est.labels_).tolist())
    [100, 100, 100]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        hidden: Sequence[int] = (64, 32),
        latent_dim: int = 8,
        lr: float = 1e-3,
        batch_size: int = 256,
        pretrain_epochs: int = 50,
        patience: int = 5,
        validation_fraction: float = 0.1,
        noise: float = 0.0,
        n_init: int | str = 10,
        init: str = "input",
        amp: bool = False,
        random_state: Any = None,
        callback: Callback | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.lr = lr
        self.batch_size = batch_size
        self.pretrain_epochs = pretrain_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.noise = noise
        self.n_init = n_init
        self.init = init
        self.amp = amp
        self.random_state = random_state
        self.callback = callback

    def _cluster(self, torch: Any, Xt: Any, ae: Autoencoder) -> None:
        t0 = time.perf_counter()
        Z, km = self._kmeans_init(torch, Xt, ae.network_)
        self._set_common(ae, Xt)
        self.embedding_ = _backend.from_torch(Z)
        self.cluster_centers_ = km.cluster_centers_
        self.labels_ = km.labels_
        self.latent_inertia_ = float(km.inertia_)
        self.n_iter_ = int(km.n_iter_)
        self.reconstruction_loss_ = ae.reconstruction_loss_
        entry = {"phase": "cluster", "epoch": 1, "step": self.n_iter_, "loss": self.latent_inertia_,
                 "label_change": None, "seconds": time.perf_counter() - t0}
        self.history_ = [*ae.history_, entry]
        if self.callback is not None:
            self.callback("cluster", 1, 1, self.latent_inertia_)

    def predict(self, X: Any) -> Any:
        """Index (int32) of the closest centre in the embedding, in X's array type."""
        Z = _backend.from_torch(self._embed(X))
        xp = _backend.array_namespace(Z)
        return nearest_center(Z, xp.asarray(_backend.to_namespace(self.cluster_centers_, xp), dtype=Z.dtype))[0]


class DEC(_DeepClustering):
    __doc__ = f"""Deep Embedded Clustering (Xie, Girshick & Farhadi 2016).

    Pretrains an autoencoder, initialises centroids by K-means in its embedding, then
    trains the encoder and the centroids on mini-batches to minimise KL(P || Q): Q are
    Student's t soft assignments of the embeddings to the centroids, P the sharpened
    target computed from Q over the whole data every ``update_interval`` steps. Training
    stops when fewer than ``tol`` of the labels change between two target refreshes, or
    after ``max_iter`` steps.

    Parameters
    ----------
    n_clusters : int, default=8
{_SHARED_PARAMS_DOC}
    update_interval : int, default=100
        Mini-batch steps between target refreshes (the paper: 140 on MNIST).
    max_iter : int, default=1000
        Most clustering steps (about 13 passes over 20,000 rows at batch size 256; a
        step takes about 2 ms for DEC and 3.5 ms for IDEC on one CPU core).
    tol : float, default=0.001
        Stop when the share of labels that changed since the last refresh is below this.
    alpha : float, default=1.0
        Degrees of freedom of the Student's t kernel.
    optimizer : {{"adam", "sgd"}}, default="adam"
        The clustering phase's optimiser. The paper used SGD (lr 0.01, momentum 0.9);
        gpuseg defaults to Adam (lr 1e-3), the pretraining's optimiser, which needs no
        learning-rate tuning per data set. On the built-in synthetic customers (20,000 x
        34) both reached the same ARI within 0.05 at k = 6 and 9 in 1000 steps.
    cluster_lr : float, optional
        Learning rate of the clustering phase; default 1e-3 for Adam, 0.01 for SGD
        (with momentum 0.9).

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int32
        Argmax of the final soft assignments, in the input's array type.
    cluster_centers_ : array of shape (n_clusters, latent_dim)
        Centroids in the embedding.
    embedding_ : array of shape (n_samples, latent_dim)
        Embedding of the training data by the fine-tuned encoder.
    reconstruction_loss_ : float
        Reconstruction MSE of the network after clustering on the rows the pretraining
        held out (all rows when ``validation_fraction=0``). DEC does not train
        the decoder, so this shows how far the fine-tuned embedding drifted from the
        pretrained one; the pretrained value is ``autoencoder_.reconstruction_loss_``.
    n_epochs_ : int
        Pretraining epochs.
    n_iter_ : int
        Clustering steps taken.
    autoencoder_ : Autoencoder
        The autoencoder; its network is the one fine-tuned by the clustering phase, its
        other fitted attributes describe the pretraining.
    history_ : list of dict
        The pretraining epochs, then one ``phase="cluster"`` entry per refresh: ``epoch``
        (refresh number), ``step``, ``loss`` (the objective on the whole data at the
        refresh), ``label_change`` (share of labels changed since the previous refresh),
        ``seconds``.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(m, 0.3, size=(100, 4)) for m in (-3, 0, 3)]).astype(np.float32)
    >>> est = DEC(3, hidden=(16,), latent_dim=2, pretrain_epochs=5, max_iter=50, random_state=0).fit(X)
    >>> est.predict_proba(X).shape
    (300, 3)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        hidden: Sequence[int] = (64, 32),
        latent_dim: int = 8,
        lr: float = 1e-3,
        batch_size: int = 256,
        pretrain_epochs: int = 50,
        patience: int = 5,
        validation_fraction: float = 0.1,
        noise: float = 0.0,
        n_init: int | str = 10,
        init: str = "input",
        update_interval: int = 100,
        max_iter: int = 1000,
        tol: float = 0.001,
        alpha: float = 1.0,
        optimizer: str = "adam",
        cluster_lr: float | None = None,
        amp: bool = False,
        random_state: Any = None,
        callback: Callback | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.lr = lr
        self.batch_size = batch_size
        self.pretrain_epochs = pretrain_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.noise = noise
        self.n_init = n_init
        self.init = init
        self.update_interval = update_interval
        self.max_iter = max_iter
        self.tol = tol
        self.alpha = alpha
        self.optimizer = optimizer
        self.cluster_lr = cluster_lr
        self.amp = amp
        self.random_state = random_state
        self.callback = callback

    def _clustering_weight(self) -> float | None:
        """Weight of the clustering loss next to the reconstruction loss (None: KL alone)."""
        return None

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_int("update_interval", self.update_interval, 1)
        _check_int("max_iter", self.max_iter, 1)
        _check_float("tol", self.tol, 0.0, 1.0)
        _check_float("alpha", self.alpha, 0.0, low_open=True)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.cluster_lr is not None:
            _check_float("cluster_lr", self.cluster_lr, 0.0, low_open=True)

    def _make_optimizer(self, torch: Any, params: list[Any]) -> Any:
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.cluster_lr or 0.01, momentum=0.9, fused=True)
        return torch.optim.Adam(params, lr=self.cluster_lr or 1e-3, fused=True)

    def _objective(self, torch: Any, net: Any, Xt: Any, P: Any, Q: Any) -> float:
        """The clustering objective on the whole data (reported per refresh)."""
        kl = float(_kl_divergence(P, Q).item())
        gamma = self._clustering_weight()
        if gamma is None:
            return kl
        return _reconstruction_mse(torch, net, Xt, None, self.amp) + gamma * kl

    def _cluster(self, torch: Any, Xt: Any, ae: Autoencoder) -> None:
        net = ae.network_
        dev = Xt.device
        gamma = self._clustering_weight()
        alpha = float(self.alpha)
        _, km = self._kmeans_init(torch, Xt, net, refine=False)
        centers = torch.nn.Parameter(_backend.to_torch(km.cluster_centers_).to(dev, torch.float32).clone())
        params = [*net["encoder"].parameters(), centers]
        if gamma is not None:
            params += list(net["decoder"].parameters())
        opt = self._make_optimizer(torch, params)
        gen = torch.Generator().manual_seed(self._seed + 2)  # batch order (CPU: same batches on every device)
        batches = _batches(torch, torch.arange(Xt.shape[0], device=dev), self.batch_size, gen)
        interval, max_iter = int(self.update_interval), int(self.max_iter)
        total = math.ceil(max_iter / interval) + 1  # refreshes at 0, interval, ..., and max_iter
        previous = _backend.to_torch(km.labels_).to(dev, torch.int64)
        history: list[dict[str, Any]] = []

        step, refresh, t0 = 0, 0, time.perf_counter()
        while True:
            if step % interval == 0 or step == max_iter:
                net.eval()
                Z, Q = _embed_and_assign(torch, net, Xt, centers.detach(), alpha, self.amp)
                labels = Q.argmax(dim=1)
                changed = float((labels != previous).float().mean().item())
                previous = labels
                P = _target_distribution(Q)
                refresh += 1
                loss = self._objective(torch, net, Xt, P, Q)
                history.append({"phase": "cluster", "epoch": refresh, "step": step, "loss": loss,
                                "label_change": changed, "seconds": time.perf_counter() - t0})
                t0 = time.perf_counter()
                if self.callback is not None:
                    self.callback("cluster", refresh, total, loss)
                if step == max_iter or (step > 0 and changed < self.tol):
                    break
                net.train()
            idx = next(batches)
            xb = Xt[idx]
            with _autocast(torch, dev, self.amp):
                z = net["encoder"](xb)
            loss = _kl_divergence(P[idx], soft_assignment(z.float(), centers, alpha))
            if gamma is not None:
                with _autocast(torch, dev, self.amp):
                    out = net["decoder"](z)
                loss = torch.nn.functional.mse_loss(out.float(), xb) + gamma * loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1

        self._set_common(ae, Xt)
        self.embedding_ = _backend.from_torch(Z)
        self.cluster_centers_ = _backend.from_torch(centers.detach().clone())
        self.labels_ = _backend.from_torch(labels.to(torch.int32))
        self.n_iter_ = step
        self.reconstruction_loss_ = _reconstruction_mse(torch, net, Xt, ae._validation_rows, self.amp)
        self.history_ = [*ae.history_, *history]

    def _proba_tensor(self, X: Any) -> Any:
        Z = self._embed(X)
        centers = training_tensor(self.cluster_centers_).to(Z.device)
        return _embed_and_assign(_backend.torch_module(), None, Z, centers, float(self.alpha), False)[1]

    def predict_proba(self, X: Any) -> Any:
        """Soft memberships Q (Student's t, rows sum to 1), shape (n_samples, n_clusters),
        float32, in X's array type."""
        return _backend.from_torch(self._proba_tensor(X))

    def predict(self, X: Any) -> Any:
        """Cluster of highest soft membership (int32), in X's array type."""
        torch = _backend.torch_module()
        return _backend.from_torch(self._proba_tensor(X).argmax(dim=1).to(torch.int32))


class IDEC(DEC):
    __doc__ = f"""Improved Deep Embedded Clustering (Guo, Gao, Liu & Yin 2017).

    DEC with the decoder kept in the clustering phase: encoder, decoder and centroids
    minimise ``L = L_r + gamma * L_c``, the reconstruction MSE plus ``gamma`` times
    KL(P || Q) (the paper's loss, gamma = 0.1), so the embedding keeps the data's local
    structure instead of drifting freely.

    Parameters
    ----------
    n_clusters : int, default=8
{_SHARED_PARAMS_DOC}
    update_interval, max_iter, tol, alpha, optimizer, cluster_lr
        As in :class:`DEC`.
    gamma : float, default=0.1
        Weight of the clustering loss (the reconstruction loss has weight 1).

    Attributes
    ----------
    reconstruction_loss_ : float
        Reconstruction MSE after clustering on the rows the pretraining held out (the
        decoder was trained with the
        encoder, so it stays close to the pretrained ``autoencoder_.reconstruction_loss_``).

    Other attributes as in :class:`DEC`; ``history_``'s ``loss`` is ``L_r + gamma * L_c``
    on the whole data.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        hidden: Sequence[int] = (64, 32),
        latent_dim: int = 8,
        lr: float = 1e-3,
        batch_size: int = 256,
        pretrain_epochs: int = 50,
        patience: int = 5,
        validation_fraction: float = 0.1,
        noise: float = 0.0,
        n_init: int | str = 10,
        init: str = "input",
        update_interval: int = 100,
        max_iter: int = 1000,
        tol: float = 0.001,
        alpha: float = 1.0,
        gamma: float = 0.1,
        optimizer: str = "adam",
        cluster_lr: float | None = None,
        amp: bool = False,
        random_state: Any = None,
        callback: Callback | None = None,
    ) -> None:
        super().__init__(
            n_clusters,
            hidden=hidden,
            latent_dim=latent_dim,
            lr=lr,
            batch_size=batch_size,
            pretrain_epochs=pretrain_epochs,
            patience=patience,
            validation_fraction=validation_fraction,
            noise=noise,
            n_init=n_init,
            init=init,
            update_interval=update_interval,
            max_iter=max_iter,
            tol=tol,
            alpha=alpha,
            optimizer=optimizer,
            cluster_lr=cluster_lr,
            amp=amp,
            random_state=random_state,
            callback=callback,
        )
        self.gamma = gamma

    def _clustering_weight(self) -> float | None:
        return float(self.gamma)

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_float("gamma", self.gamma, 0.0)
