"""PSO-K-means: particle swarm search for the K-means centroids, refined by Lloyd.

Each particle is a full set of k centroids (van der Merwe & Engelbrecht 2003); the swarm
is written once for NumPy and CuPy, and its fitness, the K-means inertia of every
particle, is evaluated in one pass over X: a blocked GEMM over all particles at once, or
on CuPy float32 input the CUDA kernel in ``kernels/pso_fitness.cu``.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import numpy as np

from .._xp import block_rows, nearest_center, row_blocks
from ..backend import array_namespace, is_gpu_array, raw_kernel, to_host
from ._base import CentroidMixin, EstimatorMixin, as_float_array, seed_from
from .kmeans import kmeans_plusplus, lloyd

__all__ = ["PSOKMeans", "swarm_inertia"]

FITNESS_METHODS = ("auto", "kernel", "vectorized")

# Limits of kernels/pso_fitness.cu; its static_asserts enforce the same numbers.
_KERNEL_FILE = "kernels/pso_fitness.cu"
_KERNEL_NAME = "pso_swarm_inertia"
_KERNEL_ROWS = 128  # threads per block = rows per tile
_KERNEL_BUFFER_FLOATS = 10240  # shared buffer: one particle's k*d centroids must fit
_KERNEL_MAX_FEATURES = 64  # a thread keeps its row in registers
_KERNEL_MAX_PARTICLES = 128
# Blocks per SM in the grid (5 are resident on an H100): several waves keep the last one's
# imbalance small; each block reloads centroids per tile anyway, so more blocks cost only
# their final atomicAdds.
_KERNEL_BLOCKS_PER_SM = 32


def swarm_inertia(X: Any, particles: Any, *, method: str = "auto") -> Any:
    """K-means inertia of every particle of a swarm, in one pass over X.

    ``fitness[p] = sum_i min_j ||X[i] - particles[p, j]||^2``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy or CuPy.
    particles : array of shape (n_particles, n_clusters, n_features)
        Same namespace as X; cast to X's dtype.
    method : {"auto", "kernel", "vectorized"}, default="auto"
        ``kernel``: the CUDA kernel (CuPy float32 X, n_features <= 64, n_particles <= 128,
        n_clusters * n_features <= 10240). ``vectorized``: blocked GEMMs over ``xp``.
        ``auto``: the kernel where it applies, else the vectorised form.

    Returns
    -------
    fitness : array of shape (n_particles,), float64
        On X's device.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    >>> swarm_inertia(X, np.array([[[0.5, 0.0], [10.0, 0.0]], [[0.0, 0.0], [5.0, 0.0]]]))
    array([ 0.5, 26. ])
    """
    if getattr(X, "ndim", None) != 2:
        raise ValueError(f"expected X of 2 dimensions, got shape {getattr(X, 'shape', None)}")
    if getattr(particles, "ndim", None) != 3 or particles.shape[2] != X.shape[1]:
        raise ValueError(
            f"particles must have shape (n_particles, n_clusters, {X.shape[1]}), "
            f"got {getattr(particles, 'shape', None)}"
        )
    xp = array_namespace(X, particles)
    particles = xp.asarray(particles, dtype=X.dtype)
    if _fitness_method(X, particles.shape[0], particles.shape[1], method) == "kernel":
        return _swarm_inertia_kernel(X, particles)
    return _swarm_inertia_vectorized(X, particles)


def _fitness_method(X: Any, n_particles: int, n_clusters: int, method: str) -> str:
    """Resolve ``auto``; refuse ``kernel`` where the kernel does not apply (ValueError)."""
    if method not in FITNESS_METHODS:
        raise ValueError(f"fitness_backend must be one of {', '.join(FITNESS_METHODS)}, got {method!r}")
    if method == "vectorized":
        return method
    d = X.shape[1]
    why_not = None
    if not is_gpu_array(X):
        why_not = "CuPy input"
    elif X.dtype != np.float32:
        why_not = f"float32 X (got {X.dtype})"
    elif d > _KERNEL_MAX_FEATURES:
        why_not = f"n_features <= {_KERNEL_MAX_FEATURES} (got {d})"
    elif n_particles > _KERNEL_MAX_PARTICLES:
        why_not = f"n_particles <= {_KERNEL_MAX_PARTICLES} (got {n_particles})"
    elif n_clusters * d > _KERNEL_BUFFER_FLOATS:
        why_not = f"n_clusters * n_features <= {_KERNEL_BUFFER_FLOATS} (got {n_clusters * d})"
    if why_not is None:
        return "kernel"
    if method == "kernel":
        raise ValueError(f"fitness_backend='kernel' needs {why_not}; use 'vectorized' or 'auto'")
    return "vectorized"


def _swarm_inertia_vectorized(X: Any, particles: Any) -> Any:
    """Blocked over rows: per block one GEMM against all P*k centroids.

    The product is laid out (k, P, rows) so that the minimum over the k centroids is k-1
    elementwise minimums of contiguous (P, rows) slices, and the row norms are added (and
    the result clipped at 0) after that minimum, on k times fewer elements. Same
    expansion ``||x||^2 + ||c||^2 - 2 x.c`` as :func:`gpuseg._xp.squared_distances`.
    """
    xp = array_namespace(X, particles)
    n_particles, k, d = particles.shape
    flat = particles.transpose(1, 0, 2).reshape(k * n_particles, d)  # row j*P + p: centroid j of particle p
    weights = -2.0 * flat
    centroid_norms = (flat * flat).sum(axis=1)[:, None]
    fitness = xp.zeros(n_particles, dtype=xp.float64)
    for start, stop in row_blocks(X.shape[0], block_rows(xp, k * n_particles)):
        block = X[start:stop]
        dist = weights @ block.T
        dist += centroid_norms
        dist = dist.reshape(k, n_particles, stop - start)
        nearest = dist[0]
        for j in range(1, k):
            xp.minimum(nearest, dist[j], out=nearest)
        nearest += (block * block).sum(axis=1)[None, :]
        xp.maximum(nearest, 0, out=nearest)
        fitness += nearest.sum(axis=1, dtype=xp.float64)
    return fitness


@functools.lru_cache(maxsize=1)
def _kernel_source() -> str:
    return importlib.resources.files(__package__).joinpath(_KERNEL_FILE).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=8)
def _multiprocessors(xp: Any, device_id: int) -> int:
    return int(xp.cuda.Device(device_id).attributes["MultiProcessorCount"])


def _swarm_inertia_kernel(X: Any, particles: Any) -> Any:
    """The CUDA kernel: one read of X for all particles (see kernels/pso_fitness.cu)."""
    xp = array_namespace(X, particles)
    n, d = X.shape
    n_particles, k, _ = particles.shape
    kernel = raw_kernel(
        _kernel_source(),
        _KERNEL_NAME,
        options=(f"-DPSO_DIM={d}", f"-DPSO_K={k}", f"-DPSO_PARTICLES={n_particles}"),
    )
    X = xp.ascontiguousarray(X)
    centers = xp.ascontiguousarray(particles)
    fitness = xp.zeros(n_particles, dtype=xp.float64)
    tiles = -(-n // _KERNEL_ROWS)
    if tiles:
        grid = min(tiles, _KERNEL_BLOCKS_PER_SM * _multiprocessors(xp, X.device.id))
        kernel((grid,), (_KERNEL_ROWS,), (X, np.int64(n), centers, fitness))
    return fitness


def _fit_pso_centroids(
    X: Any,
    particles: Any,
    *,
    w: float,
    c1: float,
    c2: float,
    v_max: float,
    max_iter: int,
    tol: float,
    patience: int,
    seed: int,
    method: str,
) -> tuple[Any, float, list[float], int]:
    """Global-best PSO from the given particles (valid parameters assumed).

    Velocities start at zero and are clamped per feature to ``v_max`` times the data's
    range. The global best only changes on a strict improvement, so it is never worse
    than the best starting particle.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
        The global best.
    fitness : float
        Its inertia.
    history : list of float
        Global-best fitness after each iteration.
    n_iter : int
    """
    xp = array_namespace(X, particles)
    positions = xp.array(particles, dtype=X.dtype, copy=True)
    velocity = xp.zeros_like(positions)
    limit = (v_max * (X.max(axis=0) - X.min(axis=0))).astype(X.dtype)
    rng = xp.random.default_rng(seed)

    best_positions = positions.copy()
    best_fitness = swarm_inertia(X, positions, method=method)
    host_fitness = to_host(best_fitness)
    g = int(host_fitness.argmin())
    global_best, global_fitness = best_positions[g].copy(), float(host_fitness[g])

    history: list[float] = []
    reference, stalled, n_iter = global_fitness, 0, 0
    for n_iter in range(1, max_iter + 1):
        r = rng.random((2,) + positions.shape, dtype=X.dtype)
        velocity = (
            w * velocity
            + c1 * r[0] * (best_positions - positions)
            + c2 * r[1] * (global_best[None] - positions)
        )
        velocity = xp.minimum(xp.maximum(velocity, -limit), limit)
        positions = positions + velocity

        fitness = swarm_inertia(X, positions, method=method)
        improved = fitness < best_fitness
        best_positions = xp.where(improved[:, None, None], positions, best_positions)
        best_fitness = xp.where(improved, fitness, best_fitness)
        host_fitness = to_host(best_fitness)
        g = int(host_fitness.argmin())
        if host_fitness[g] < global_fitness:
            global_best, global_fitness = best_positions[g].copy(), float(host_fitness[g])
        history.append(global_fitness)

        if reference - global_fitness > tol * abs(reference):
            reference, stalled = global_fitness, 0
        else:
            stalled += 1
            if stalled >= patience:
                break
    return global_best, global_fitness, history, n_iter


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def _is_real(value: Any, low: float, *, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return bool(np.isfinite(value)) and (value > low if strict else value >= low)


class PSOKMeans(CentroidMixin, EstimatorMixin):
    """K-means by particle swarm optimisation (van der Merwe & Engelbrecht 2003), then Lloyd.

    Each of ``n_particles`` particles is a full set of ``n_clusters`` centroids. Particle 0
    is the k-means++ seed (:func:`~gpuseg.cluster.kmeans.kmeans_plusplus`), the others are
    ``n_clusters`` distinct random data points each (Forgy starts: no pass over X, spread
    over the data; the seed particle brings k-means++'s quality). The swarm follows the
    global-best PSO with inertia weight ``w`` and clamped velocities until the global best
    stops improving. Then the global best and the k-means++ seed are both refined by Lloyd
    iterations (:func:`~gpuseg.cluster.kmeans.lloyd`; the seed's refinement is skipped when
    the swarm never left it) and the lower inertia wins: a swarm best that is better than
    the seed can still sit in a worse Lloyd basin, and one extra Lloyd run costs about as
    much as one swarm iteration.

    The fitness is the K-means inertia (sum of squared distances of samples to the
    particle's nearest centroid), not the paper's quantisation error (the mean over
    clusters of the mean distance): inertia is what K-means minimises and what users
    compare, and with it the result is never worse than the k-means++ seed. The global
    best starts no worse than the seed particle and only changes on a strict improvement,
    Lloyd never increases inertia, and a final check keeps the seed should rounding in the
    distance computations say otherwise. So ``inertia_ <= seed_inertia_`` always, and with
    ``refine_iter > 0`` the result is also never worse than Lloyd from that seed.

    Written once for NumPy and CuPy; outputs follow the input's type.

    Parameters
    ----------
    n_clusters : int, default=8
    n_particles : int, default=32
    w : float, default=0.72
        Inertia weight of the velocity.
    c1 : float, default=1.49
        Cognitive weight (pull towards the particle's own best).
    c2 : float, default=1.49
        Social weight (pull towards the swarm's best).
    v_max : float, default=0.2
        Velocity clamp per feature, as a fraction of the data's range in that feature.
    max_iter : int, default=100
        Swarm iterations at most (0: the k-means++ seed goes straight to Lloyd).
    tol : float, default=1e-4
        The swarm stops when the global best has not improved by more than ``tol``
        (relative) for ``patience`` iterations.
    patience : int, default=10
    refine_iter : int, default=300
        Lloyd iterations at most on the swarm's best and on the seed (0: no refinement).
        Lloyd stops earlier on its own tolerance (1e-4, scikit-learn's rule).
    random_state : int, RandomState or None, default=None
        Seeds the k-means++ seed (as ``KMeans(random_state=...)`` does), the random starts
        (on the host) and the swarm's uniform draws (a generator on X's device,
        ``xp.random.default_rng``): same seed, same backend, same result.
    fitness_backend : {"auto", "kernel", "vectorized"}, default="auto"
        How the swarm's fitness is evaluated: ``auto`` takes the CUDA kernel on CuPy
        float32 input within its limits (n_features <= 64, n_particles <= 128,
        n_clusters * n_features <= 10240), else the vectorised form. See
        :func:`swarm_inertia`.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : array of shape (n_samples,), int32
    inertia_ : float
        Sum of squared distances of samples to their closest centre.
    n_iter_ : int
        Swarm iterations run (Lloyd's are not counted).
    seed_inertia_ : float
        Inertia of the k-means++ seed, before the swarm.
    history_ : list of float
        Global-best fitness (inertia) after each swarm iteration; non-increasing.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=np.float32)
    >>> pso = PSOKMeans(n_clusters=2, n_particles=4, max_iter=5, random_state=0).fit(X)
    >>> np.bincount(pso.labels_).tolist()
    [2, 2]
    >>> pso.inertia_ <= pso.seed_inertia_
    True
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_particles: int = 32,
        w: float = 0.72,
        c1: float = 1.49,
        c2: float = 1.49,
        v_max: float = 0.2,
        max_iter: int = 100,
        tol: float = 1e-4,
        patience: int = 10,
        refine_iter: int = 300,
        random_state: Any = None,
        fitness_backend: str = "auto",
    ) -> None:
        self.n_clusters = n_clusters
        self.n_particles = n_particles
        self.w = w
        self.c1 = c1
        self.c2 = c2
        self.v_max = v_max
        self.max_iter = max_iter
        self.tol = tol
        self.patience = patience
        self.refine_iter = refine_iter
        self.random_state = random_state
        self.fitness_backend = fitness_backend

    def _validate(self, X: Any) -> str:
        """Check parameters and X; return the resolved fitness method."""
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array, got shape {X.shape}")
        if not _is_int(self.n_clusters, 1):
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}")
        if not _is_int(self.n_particles, 1):
            raise ValueError(f"n_particles must be a positive integer, got {self.n_particles!r}")
        for name in ("w", "c1", "c2", "tol"):
            if not _is_real(getattr(self, name), 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if not _is_real(self.v_max, 0.0, strict=True):
            raise ValueError(f"v_max must be a finite number > 0, got {self.v_max!r}")
        for name, low in (("max_iter", 0), ("patience", 1), ("refine_iter", 0)):
            if not _is_int(getattr(self, name), low):
                raise ValueError(f"{name} must be an integer >= {low}, got {getattr(self, name)!r}")
        method = _fitness_method(X, self.n_particles, self.n_clusters, self.fitness_backend)
        xp = array_namespace(X)
        if not bool(xp.isfinite(X).all()):
            raise ValueError("X contains NaN or infinity")
        return method

    def fit(self, X: Any, y: Any = None) -> "PSOKMeans":
        """Compute the clustering."""
        X = as_float_array(X)
        method = self._validate(X)
        xp = array_namespace(X)
        if method == "kernel":
            X = xp.ascontiguousarray(X)  # once, not per fitness evaluation
        n, k = X.shape[0], self.n_clusters
        seed = seed_from(self.random_state)
        starts_seq, swarm_seq = np.random.SeedSequence(seed).spawn(2)

        seed_centers, _ = kmeans_plusplus(X, k, random_state=seed)
        seed_labels, seed_dist = nearest_center(X, seed_centers)
        self.seed_inertia_ = float(seed_dist.astype(xp.float64).sum())

        starts = np.random.default_rng(starts_seq)
        rows = np.array([starts.choice(n, size=k, replace=False) for _ in range(self.n_particles - 1)], dtype=np.int64)
        random_starts = X[xp.asarray(rows.reshape(-1))].reshape(-1, k, X.shape[1])
        particles = xp.concatenate([seed_centers[None], random_starts])

        centers, _, history, n_iter = _fit_pso_centroids(
            X,
            particles,
            w=self.w,
            c1=self.c1,
            c2=self.c2,
            v_max=self.v_max,
            max_iter=self.max_iter,
            tol=self.tol,
            patience=self.patience,
            seed=int(swarm_seq.generate_state(1)[0]),
            method=method,
        )
        if self.refine_iter > 0:
            refined = lloyd(X, seed_centers, max_iter=self.refine_iter)
            if not bool(xp.array_equal(centers, seed_centers)):
                swarm_refined = lloyd(X, centers, max_iter=self.refine_iter)
                refined = min(refined, swarm_refined, key=lambda result: result[2])
            centers, labels, inertia, _ = refined
        else:
            labels, dist = nearest_center(X, centers)
            inertia = float(dist.astype(xp.float64).sum())
        if inertia > self.seed_inertia_:  # only by rounding: keep the guarantee exact
            centers, labels, inertia = seed_centers, seed_labels, self.seed_inertia_

        self.cluster_centers_ = centers
        self.labels_ = labels
        self.inertia_ = inertia
        self.n_iter_ = n_iter
        self.history_ = history
        self.n_features_in_ = X.shape[1]
        return self
