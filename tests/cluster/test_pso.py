from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from gpuseg import backend as _backend
from gpuseg._xp import squared_distances
from gpuseg.backend import to_host
from gpuseg.cluster import KMeans
from gpuseg.cluster import pso
from gpuseg.cluster.kmeans import kmeans_plusplus, lloyd
from gpuseg.cluster.pso import PSOKMeans, swarm_inertia

KERNEL_RESOURCE = importlib.resources.files("gpuseg.cluster").joinpath("kernels/pso_fitness.cu")

# Small swarms keep the file fast; test_recovers_blobs_with_default_parameters runs the defaults.
SMALL = {"n_particles": 8, "max_iter": 15}


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(2000, n_features=6, centers=5, cluster_std=1.0, random_state=3)
    return X.astype(np.float32), y


def _reference_inertia(X, particles):
    """Naive per-particle loop over squared_distances (what swarm_inertia vectorises)."""
    return np.array([squared_distances(X, c).min(axis=1).astype(np.float64).sum() for c in particles])


def _exact_inertia(X, centers):
    """float64 direct differences: the ground truth for float32 results."""
    diff = np.asarray(X, np.float64)[:, None, :] - np.asarray(centers, np.float64)[None, :, :]
    return float((diff**2).sum(axis=2).min(axis=1).sum())


# --- the CUDA kernel compiles (nvcc -ptx -arch=sm_90), for the shapes it accepts -------------

KERNEL_SHAPES = {  # id: (n_features, n_clusters, n_particles)
    "d32-k8-p32": (32, 8, 32),
    "d64-widest-rows": (64, 2, 8),
    "d16-k160-p10-three-particle-groups": (16, 160, 10),
}
KERNEL_REJECTS = {  # id: (shape, what the static_assert says)
    "d65-too-wide": ((65, 8, 32), "PSO_DIM"),
    "p129-too-many-particles": ((8, 8, 129), "PSO_PARTICLES"),
    "k-times-d-over-buffer": ((64, 161, 4), "must fit"),
}


# Shapes the CPU emulation runs: id -> (n_features, n_clusters, n_particles, n_rows, grid blocks)
EMULATED = {
    "target-shape-several-tiles-per-block": (32, 8, 32, 1000, 3),
    "three-particle-groups-partial-tile": (16, 160, 10, 777, 2),
    "more-blocks-than-tiles": (1, 1, 1, 5, 4),
}

# A CUDA block on the CPU: 128 std::threads run the kernel body, std::barrier stands in for
# __syncthreads and (per warp) for the shuffle exchange. Blocks run one after the other, so
# `static` gives one copy of each __shared__ array per block. Checks the kernel's indexing,
# barriers and reductions where no GPU is at hand; the GPU tests below check the real thing.
EMULATION_PRELUDE = r"""
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
using std::min;
struct Dim3 { unsigned x = 0, y = 1, z = 1; };
thread_local Dim3 threadIdx, blockIdx;
Dim3 gridDim, blockDim;
std::barrier<>* block_barrier;
std::barrier<>* warp_barriers[4];
float shuffle_slots[4][32];
std::mutex atomic_mutex;
#define __global__
#define __launch_bounds__(n)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
inline void __syncthreads() { block_barrier->arrive_and_wait(); }
template <class T> inline T __ldg(const T* p) { return *p; }
inline float __shfl_down_sync(unsigned, float v, int offset) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    shuffle_slots[warp][lane] = v;
    warp_barriers[warp]->arrive_and_wait();
    const float r = lane + offset < 32 ? shuffle_slots[warp][lane + offset] : v;
    warp_barriers[warp]->arrive_and_wait();
    return r;
}
inline double atomicAdd(double* p, double v) {
    std::lock_guard<std::mutex> lock(atomic_mutex);
    const double old = *p;
    *p += v;
    return old;
}
"""
EMULATION_MAIN = r"""
int main(int argc, char** argv) {  // emulator N GRID X.f32 C.f32 OUT.f64
    const long long n = atoll(argv[1]);
    const int grid = atoi(argv[2]);
    std::vector<float> X(n * PSO_DIM), C((size_t)PSO_PARTICLES * PSO_K * PSO_DIM);
    std::vector<double> fitness(PSO_PARTICLES, 0.0);
    FILE* f = fopen(argv[3], "rb"); if (fread(X.data(), 4, X.size(), f) != X.size()) return 2; fclose(f);
    f = fopen(argv[4], "rb"); if (fread(C.data(), 4, C.size(), f) != C.size()) return 2; fclose(f);
    gridDim.x = grid; blockDim.x = 128;
    std::barrier<> block(128), w0(32), w1(32), w2(32), w3(32);
    block_barrier = &block;
    warp_barriers[0] = &w0; warp_barriers[1] = &w1; warp_barriers[2] = &w2; warp_barriers[3] = &w3;
    for (int b = 0; b < grid; ++b) {
        std::vector<std::thread> threads;
        for (int t = 0; t < 128; ++t) {
            threads.emplace_back([&, b, t] {
                threadIdx.x = t; blockIdx.x = b;
                pso_swarm_inertia(X.data(), n, C.data(), fitness.data());
            });
        }
        for (auto& th : threads) th.join();
    }
    f = fopen(argv[5], "wb"); fwrite(fitness.data(), 8, fitness.size(), f); fclose(f);
    return 0;
}
"""


def _compiler(name: str, default: str | None = None) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return default if default and os.access(default, os.X_OK) else None


@pytest.fixture(scope="module")
def kernel_builds(tmp_path_factory):
    """Compile every shape at once (seconds each): nvcc -ptx for sm_90, and g++ emulators.

    Returns {"ptx": {id: (returncode, stderr, ptx)}, "emulator": {id: (returncode, stderr, path)}};
    a missing compiler gives an empty mapping.
    """
    out = tmp_path_factory.mktemp("kernel")
    nvcc = _compiler("nvcc", "/usr/local/cuda/bin/nvcc")
    gxx = _compiler("g++")
    source_text = KERNEL_RESOURCE.read_text()
    procs = {"ptx": {}, "emulator": {}}
    with importlib.resources.as_file(KERNEL_RESOURCE) as source:
        if nvcc:
            ptx_shapes = {**KERNEL_SHAPES, **{name: shape for name, (shape, _) in KERNEL_REJECTS.items()}}
            for name, (d, k, p) in ptx_shapes.items():
                cmd = [nvcc, "-ptx", "-arch=sm_90", f"-DPSO_DIM={d}", f"-DPSO_K={k}", f"-DPSO_PARTICLES={p}",
                       str(source), "-o", str(out / f"{name}.ptx")]
                procs["ptx"][name] = (subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), out / f"{name}.ptx")
        if gxx:
            emulation = out / "emulation.cpp"
            emulation.write_text(EMULATION_PRELUDE + source_text + EMULATION_MAIN)
            for name, (d, k, p, _, _) in EMULATED.items():
                cmd = [gxx, "-std=c++20", "-O1", "-w", "-pthread", f"-DPSO_DIM={d}", f"-DPSO_K={k}",
                       f"-DPSO_PARTICLES={p}", str(emulation), "-o", str(out / name)]
                procs["emulator"][name] = (subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), out / name)
        results = {"ptx": {}, "emulator": {}}
        for kind, started in procs.items():
            for name, (proc, target) in started.items():
                _, err = proc.communicate(timeout=300)
                made = proc.returncode == 0
                results[kind][name] = (proc.returncode, err, target.read_text() if made and kind == "ptx" else target)
    return results


@pytest.mark.parametrize("shape_id", list(KERNEL_SHAPES))
def test_kernel_compiles_for_sm90(kernel_builds, shape_id):
    if not kernel_builds["ptx"]:
        pytest.skip("nvcc is not installed")
    returncode, err, ptx = kernel_builds["ptx"][shape_id]
    assert returncode == 0, err
    assert ".entry pso_swarm_inertia(" in ptx  # extern "C": the name CuPy looks up
    assert "atom.global.add.f64" in ptx  # float64 accumulation across blocks


@pytest.mark.parametrize("shape_id", list(KERNEL_REJECTS))
def test_kernel_refuses_shapes_beyond_its_limits(kernel_builds, shape_id):
    if not kernel_builds["ptx"]:
        pytest.skip("nvcc is not installed")
    returncode, err, _ = kernel_builds["ptx"][shape_id]
    assert returncode != 0
    assert "static assertion failed" in err and KERNEL_REJECTS[shape_id][1] in err


@pytest.mark.parametrize("shape_id", list(EMULATED))
def test_kernel_emulated_on_cpu_matches_vectorized_fitness(kernel_builds, tmp_path, shape_id):
    if not kernel_builds["emulator"]:
        pytest.skip("g++ is not installed")
    returncode, err, emulator = kernel_builds["emulator"][shape_id]
    assert returncode == 0, err
    d, k, n_particles, n, grid = EMULATED[shape_id]
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d)).astype(np.float32)
    particles = rng.normal(size=(n_particles, k, d)).astype(np.float32)
    X.tofile(tmp_path / "X.f32")
    particles.tofile(tmp_path / "C.f32")
    subprocess.run([str(emulator), str(n), str(grid), str(tmp_path / "X.f32"), str(tmp_path / "C.f32"),
                    str(tmp_path / "out.f64")], check=True, timeout=120)
    got = np.fromfile(tmp_path / "out.f64", dtype=np.float64)
    np.testing.assert_allclose(got, [_exact_inertia(X, c) for c in particles], rtol=1e-6)
    np.testing.assert_allclose(got, swarm_inertia(X, particles, method="vectorized"), rtol=1e-5)


def test_python_limits_match_the_kernel_source():
    source = KERNEL_RESOURCE.read_text()

    def define(name):
        return int(re.search(rf"#define {name} (\d+)", source).group(1))

    assert pso._KERNEL_ROWS == define("PSO_ROWS")
    assert pso._KERNEL_BUFFER_FLOATS == define("PSO_BUFFER_FLOATS")
    assert f"PSO_DIM <= {pso._KERNEL_MAX_FEATURES}" in source
    assert f"PSO_PARTICLES <= {pso._KERNEL_MAX_PARTICLES}" in source


# --- the vectorised fitness ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "n, n_particles, k, d",
    [(1500, 32, 16, 5), (7, 3, 2, 1), (100, 1, 1, 4), (1025, 5, 3, 40)],
    ids=["three-row-blocks", "tiny", "one-particle-one-centre", "wide"],
)
def test_vectorized_fitness_matches_per_particle_reference(n, n_particles, k, d, dtype, rtol):
    rng = np.random.default_rng(n + d)
    X = rng.normal(size=(n, d)).astype(dtype)
    particles = rng.normal(size=(n_particles, k, d)).astype(dtype)
    got = swarm_inertia(X, particles, method="vectorized")
    assert got.dtype == np.float64 and got.shape == (n_particles,)
    np.testing.assert_allclose(got, _reference_inertia(X, particles), rtol=rtol)
    exact = [_exact_inertia(X, c) for c in particles]
    np.testing.assert_allclose(got, exact, rtol=10 * rtol)


def test_fitness_of_known_centres_is_the_kmeans_inertia(blobs):
    X, _ = blobs
    km = KMeans(5, random_state=0).fit(X)
    fitness = swarm_inertia(X, km.cluster_centers_[None])
    assert fitness[0] == pytest.approx(km.inertia_, rel=1e-5)


@pytest.mark.parametrize(
    "particles, method, match",
    [
        (np.zeros((2, 3, 4)), "auto", "particles must have shape"),
        (np.zeros((3, 2)), "auto", "particles must have shape"),
        (np.zeros((2, 3, 2)), "kernel", "needs CuPy input"),
        (np.zeros((2, 3, 2)), "numba", "fitness_backend must be one of"),
    ],
    ids=["wrong-width", "2-d-particles", "kernel-on-numpy", "unknown-method"],
)
def test_swarm_inertia_rejects_bad_input(particles, method, match):
    with pytest.raises(ValueError, match=match):
        swarm_inertia(np.zeros((5, 2)), particles, method=method)


# --- never worse than its own k-means++ seed ------------------------------------------------------


def _anisotropic(seed):
    X, _ = make_blobs(500, n_features=3, centers=4, random_state=seed)
    return X @ np.array([[0.6, -0.6, 0.1], [-0.4, 0.8, 0.0], [0.0, 0.2, 3.0]])


DATASETS = {
    "blobs": lambda seed: make_blobs(500, n_features=4, centers=6, cluster_std=2.5, random_state=seed)[0],
    "uniform-noise": lambda seed: np.random.default_rng(seed).uniform(-1, 1, size=(400, 5)),
    "anisotropic": _anisotropic,
    "heavy-tailed": lambda seed: np.random.default_rng(seed).standard_cauchy(size=(400, 2)),
    "few-distinct-rows": lambda seed: np.repeat(np.random.default_rng(seed).normal(size=(6, 3)), 40, axis=0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_never_worse_than_its_kmeans_plusplus_seed(dataset, seed, dtype):
    X = DATASETS[dataset](seed).astype(dtype)
    est = PSOKMeans(5, random_state=seed, **SMALL).fit(X)
    seed_centers, _ = kmeans_plusplus(X, 5, random_state=seed)
    assert est.seed_inertia_ == pytest.approx(_exact_inertia(X, seed_centers), rel=1e-4, abs=1e-6)
    assert est.inertia_ <= est.seed_inertia_
    assert est.inertia_ <= lloyd(X, seed_centers)[2]  # and never worse than Lloyd from the seed
    # the swarm's own bookkeeping: its best never gets worse and starts no worse than the seed
    history = np.array(est.history_)
    assert np.all(np.diff(history) <= 0)
    assert history[0] <= swarm_inertia(X, seed_centers[None])[0]


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_never_worse_than_its_seed_without_lloyd(dataset):
    X = DATASETS[dataset](7).astype(np.float32)
    est = PSOKMeans(4, refine_iter=0, random_state=7, **SMALL).fit(X)
    assert est.inertia_ <= est.seed_inertia_
    assert est.inertia_ == pytest.approx(_exact_inertia(X, est.cluster_centers_), rel=1e-4, abs=1e-6)


def test_the_swarm_improves_on_its_seed():
    X = DATASETS["blobs"](0).astype(np.float32)
    est = PSOKMeans(6, n_particles=16, max_iter=40, refine_iter=0, random_state=0).fit(X)
    assert est.history_[-1] < 0.95 * est.seed_inertia_
    assert est.inertia_ < 0.95 * est.seed_inertia_


def test_search_returns_the_fitness_of_the_centres_it_returns(blobs):
    X, _ = blobs
    rng = np.random.default_rng(0)
    particles = X[rng.choice(len(X), size=(6, 5))]
    centers, fitness, history, n_iter = pso._fit_pso_centroids(
        X, particles, w=0.72, c1=1.49, c2=1.49, v_max=0.2, max_iter=12, tol=0.0, patience=100, seed=3,
        method="vectorized",
    )
    assert n_iter == 12 and len(history) == 12 and history[-1] == fitness
    assert swarm_inertia(X, centers[None])[0] == pytest.approx(fitness, rel=1e-12)
    assert fitness <= swarm_inertia(X, particles).min()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=arrays(
        np.float32,
        st.tuples(st.integers(5, 60), st.integers(1, 4)),
        elements=st.floats(-1e3, 1e3, width=32, allow_nan=False, allow_infinity=False),
    ),
    k=st.integers(1, 5),
    n_particles=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_properties(X, k, n_particles, seed):
    n = X.shape[0]
    est = PSOKMeans(k, n_particles=n_particles, max_iter=5, random_state=seed).fit(X)
    labels = est.labels_
    assert labels.dtype == np.int32 and labels.shape == (n,)  # every point labelled
    assert labels.min() >= 0 and labels.max() < k
    assert len(np.unique(labels)) <= k
    assert est.inertia_ <= est.seed_inertia_
    assert np.array_equal(est.predict(X), labels)
    # Lloyd's centres are means of data points (or data points): inside the bounding box, up
    # to the float32 rounding of the per-cluster sums
    low, high = X.min(axis=0), X.max(axis=0)
    slack = 1e-5 * (np.abs(X).max(axis=0) + 1)
    assert np.all(est.cluster_centers_ >= low - slack) and np.all(est.cluster_centers_ <= high + slack)


# --- quality, determinism, API ----------------------------------------------------------------------


def test_recovers_blobs_with_default_parameters(blobs):
    X, y = blobs
    est = PSOKMeans(5, random_state=0).fit(X)
    assert adjusted_rand_score(y, est.labels_) > 0.95
    kmeans_same_seed = KMeans(5, random_state=0).fit(X).inertia_
    best_of_ten = SkKMeans(5, n_init=10, random_state=0).fit(X).inertia_
    assert est.inertia_ <= kmeans_same_seed * (1 + 1e-6) or est.inertia_ <= 1.01 * best_of_ten
    assert 1 <= est.n_iter_ <= 100 and len(est.history_) == est.n_iter_


def test_same_seed_same_result():
    X = DATASETS["blobs"](0).astype(np.float32)  # a data set where the swarm moves its best
    a = PSOKMeans(6, random_state=11, **SMALL).fit(X)
    b = PSOKMeans(6, random_state=11, **SMALL).fit(X)
    assert a.history_[-1] < a.history_[0]
    assert a.history_ == b.history_ and a.inertia_ == b.inertia_
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    c = PSOKMeans(6, random_state=12, **SMALL).fit(X)
    assert c.history_ != a.history_  # the seed reaches the swarm


def test_keeps_the_seed_when_refinement_comes_out_worse(monkeypatch):
    # Lloyd never increases inertia, but the two distance computations round differently;
    # simulate a refinement that comes out worse to check the safety net.
    X = DATASETS["blobs"](1).astype(np.float32)

    def worse_lloyd(X, centers, max_iter):
        return centers + 100.0, np.zeros(len(X), np.int32), 1e30, 1

    monkeypatch.setattr(pso, "lloyd", worse_lloyd)
    est = PSOKMeans(4, random_state=1, **SMALL).fit(X)
    seed_centers, _ = kmeans_plusplus(X, 4, random_state=1)
    assert est.inertia_ == est.seed_inertia_
    np.testing.assert_array_equal(est.cluster_centers_, seed_centers)
    assert len(np.unique(est.labels_)) == 4


def test_sklearn_estimator_api(blobs):
    X, _ = blobs
    est = PSOKMeans(5, random_state=0, **SMALL)
    assert est.fit(X) is est
    assert isinstance(est.labels_, np.ndarray) and est.labels_.dtype == np.int32
    assert est.cluster_centers_.shape == (5, 6) and est.cluster_centers_.dtype == np.float32
    assert est.n_features_in_ == 6
    assert all(isinstance(v, float) for v in est.history_)
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    np.testing.assert_array_equal(est.transform(X).argmin(axis=1), est.labels_)
    assert est.transform(X).shape == (len(X), 5)
    assert est.score(X) == pytest.approx(-est.inertia_, rel=1e-6)
    np.testing.assert_array_equal(PSOKMeans(5, random_state=0, **SMALL).fit_predict(X), est.labels_)

    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "labels_")
    assert est.get_params()["fitness_backend"] == "auto"
    assert copy.set_params(w=0.5, n_particles=4) is copy and copy.w == 0.5
    with pytest.raises(ValueError, match="invalid parameter 'inertia'"):
        copy.set_params(inertia=0.5)
    assert repr(PSOKMeans(3, w=0.6)) == "PSOKMeans(n_clusters=3, w=0.6)"


def test_accepts_a_dataframe(blobs):
    X, _ = blobs
    frame = pd.DataFrame(X[:300], columns=[f"f{i}" for i in range(6)])
    est = PSOKMeans(3, random_state=0, **SMALL).fit(frame)
    assert isinstance(est.labels_, np.ndarray)
    np.testing.assert_array_equal(est.predict(frame), est.labels_)


def test_integer_input_is_clustered_in_float64():
    X = np.repeat(np.arange(4)[:, None] * 10, 25, axis=0) + np.tile(np.arange(2), 50)[:, None]
    est = PSOKMeans(4, random_state=0, **SMALL).fit(X)
    assert est.cluster_centers_.dtype == np.float64
    assert sorted(np.bincount(est.labels_).tolist()) == [25, 25, 25, 25]


def test_predict_checks_fit_and_width(blobs):
    X, _ = blobs
    with pytest.raises(AttributeError, match="not fitted"):
        PSOKMeans(2).predict(X)
    est = PSOKMeans(2, random_state=0, n_particles=2, max_iter=1).fit(X)
    with pytest.raises(ValueError, match="expecting 6 features"):
        est.predict(X[:, :3])


@pytest.mark.parametrize("seed", [0, 5], ids=lambda s: f"seed{s}")
def test_labels_do_not_depend_on_row_order(seed):
    centers = 10.0 * np.eye(4)
    X, _ = make_blobs(600, centers=centers, cluster_std=0.5, random_state=seed)
    perm = np.random.default_rng(seed).permutation(len(X))
    a = PSOKMeans(4, random_state=seed, **SMALL).fit(X).labels_
    b = np.empty_like(a)
    b[perm] = PSOKMeans(4, random_state=seed, **SMALL).fit(X[perm]).labels_
    assert adjusted_rand_score(a, b) == 1.0


def test_stops_after_patience_iterations_without_improvement(blobs):
    X, _ = blobs
    est = PSOKMeans(5, n_particles=6, max_iter=50, tol=1e9, patience=3, random_state=0).fit(X)
    assert est.n_iter_ == 3 and len(est.history_) == 3


def test_zero_swarm_iterations_is_lloyd_from_the_best_start(blobs):
    X, y = blobs
    est = PSOKMeans(5, max_iter=0, random_state=0).fit(X)
    assert est.n_iter_ == 0 and est.history_ == []
    assert est.inertia_ <= est.seed_inertia_


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_clusters": 0}, None, "n_clusters must be a positive integer"),
        ({"n_clusters": 2.5}, None, "n_clusters must be a positive integer"),
        ({"n_clusters": 6}, np.zeros((5, 2)), "n_samples=5"),
        ({"n_particles": 0}, None, "n_particles"),
        ({"w": -0.1}, None, "w must be"),
        ({"c1": float("nan")}, None, "c1 must be"),
        ({"c2": "1.49"}, None, "c2 must be"),
        ({"v_max": 0}, None, "v_max must be"),
        ({"max_iter": -1}, None, "max_iter must be"),
        ({"tol": -1e-3}, None, "tol must be"),
        ({"patience": 0}, None, "patience must be"),
        ({"refine_iter": 1.5}, None, "refine_iter must be"),
        ({"fitness_backend": "cuda"}, None, "fitness_backend must be one of"),
        ({"fitness_backend": "kernel"}, None, "needs CuPy input"),
        ({}, np.zeros(5), "2-D"),
        ({}, np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), "NaN or infinity"),
    ],
    ids=[
        "zero-k", "fractional-k", "k-too-big", "no-particles", "negative-w", "nan-c1", "string-c2", "zero-v-max",
        "negative-max-iter", "negative-tol", "zero-patience", "fractional-refine-iter", "unknown-backend",
        "kernel-on-numpy", "1-d", "nan-in-X",
    ],
)
def test_invalid(kwargs, X, match):
    X = np.random.default_rng(0).normal(size=(10, 2)) if X is None else X
    with pytest.raises(ValueError, match=match):
        PSOKMeans(**{"n_clusters": 2, **kwargs}).fit(X)


def test_module_imports_without_scikit_learn():
    code = "import sys, gpuseg.cluster.pso; print('sklearn' in sys.modules, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_fit_on_each_backend(backend, blobs):
    X, y = blobs
    Xd = backend.xp.asarray(X)
    est = PSOKMeans(5, random_state=0, **SMALL).fit(Xd)
    assert type(est.labels_) is type(Xd) and type(est.cluster_centers_) is type(Xd)
    assert adjusted_rand_score(y, to_host(est.labels_)) > 0.95
    assert type(est.predict(Xd)) is type(Xd)


# --- GPU: the kernel against the vectorised form, CuPy against NumPy ---------------------------------


@pytest.fixture(scope="module")
def cupy():
    probe = _backend.probe_cupy()
    if not probe.available:
        pytest.skip(f"no GPU: {probe.reason}")
    return _backend.gpu_module("cupy")


@pytest.mark.gpu
@pytest.mark.cupy
@pytest.mark.parametrize(
    "n, n_particles, k, d",
    [(1000, 32, 8, 32), (777, 40, 16, 64), (129, 7, 5, 3), (100_003, 32, 8, 32), (5, 1, 1, 1)],
    ids=["target-shape", "four-particle-groups", "odd-sizes", "many-tiles", "fewer-rows-than-a-tile"],
)
def test_kernel_fitness_matches_vectorized_and_numpy(cupy, n, n_particles, k, d):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d)).astype(np.float32)
    particles = rng.normal(size=(n_particles, k, d)).astype(np.float32)
    Xd, Pd = cupy.asarray(X), cupy.asarray(particles)
    kernel = swarm_inertia(Xd, Pd, method="kernel")
    vectorized = swarm_inertia(Xd, Pd, method="vectorized")
    on_host = swarm_inertia(X, particles, method="vectorized")
    assert type(kernel) is type(Xd) and kernel.dtype == np.float64
    np.testing.assert_allclose(to_host(kernel), to_host(vectorized), rtol=1e-5)
    np.testing.assert_allclose(to_host(kernel), on_host, rtol=1e-5)
    if n <= 1000:
        np.testing.assert_allclose(to_host(kernel), [_exact_inertia(X, c) for c in particles], rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.cupy
def test_auto_takes_the_kernel_on_cupy_float32(cupy, monkeypatch):
    calls = []
    real = pso._swarm_inertia_kernel
    monkeypatch.setattr(pso, "_swarm_inertia_kernel", lambda X, p: calls.append(1) or real(X, p))
    X = cupy.asarray(np.random.default_rng(0).normal(size=(300, 4)), dtype=cupy.float32)
    PSOKMeans(3, n_particles=4, max_iter=3, random_state=0).fit(X)
    assert len(calls) == 4  # the starting swarm and three iterations
    PSOKMeans(3, n_particles=4, max_iter=3, random_state=0).fit(X.astype(cupy.float64))
    assert len(calls) == 4
    with pytest.raises(ValueError, match="float32"):
        PSOKMeans(3, fitness_backend="kernel").fit(X.astype(cupy.float64))


@pytest.mark.gpu
@pytest.mark.cupy
@pytest.mark.parametrize("fitness_backend", ["kernel", "vectorized"])
def test_gpu_matches_cpu(cupy, blobs, fitness_backend):
    X, y = blobs
    cpu = PSOKMeans(5, random_state=0, **SMALL).fit(X)
    gpu = PSOKMeans(5, random_state=0, fitness_backend=fitness_backend, **SMALL).fit(cupy.asarray(X))
    assert gpu.seed_inertia_ == pytest.approx(cpu.seed_inertia_, rel=1e-5)
    assert gpu.inertia_ == pytest.approx(cpu.inertia_, rel=1e-4)
    assert adjusted_rand_score(cpu.labels_, to_host(gpu.labels_)) > 0.99
    again = PSOKMeans(5, random_state=0, fitness_backend=fitness_backend, **SMALL).fit(cupy.asarray(X))
    assert again.history_ == gpu.history_  # same seed, same backend, same result
