// K-means inertia of every particle of a PSO swarm in one pass over X.
//
//     fitness[p] = sum_i  min_j  || X[i] - C[p, j] ||^2        i < n, p < P, j < K
//
// Used by gpuseg/cluster/pso.py (``swarm_inertia(..., method="kernel")``), which compiles
// it with NVRTC through CuPy's RawKernel; the test suite also compiles it with
// ``nvcc -ptx -arch=sm_90``. NVRTC-compatible: no includes, ``extern "C"`` entry point.
//
// Sizes are compile-time constants (pso.py passes them as -D options; CuPy caches one
// compiled module per shape, and a fit uses one shape):
//   PSO_DIM        d, features per row (<= 64: a thread keeps its row in registers)
//   PSO_K          K, centroids per particle
//   PSO_PARTICLES  P, particles in the swarm (<= 128)
//
// Layout (all C-contiguous):
//   X        (n, d)    float32
//   C        (P, K, d) float32
//   fitness  (P,)      float64, zeroed by the caller; the kernel adds into it
//
// Work split:
//   * A block has PSO_ROWS = 128 threads and walks over tiles of 128 consecutive rows
//     (grid-stride loop); in a tile, thread t owns row tile_start + t.
//   * The tile is one contiguous chunk of 128*d floats of X. It is copied to shared memory
//     with coalesced loads (consecutive threads read consecutive floats), then each thread
//     moves its own row into registers. X is read from global memory exactly once.
//   * Centroids then go through the same shared buffer, PSO_GROUP particles at a time
//     (all P in one pass for the common sizes, e.g. d=32, K=8, P=32 -> 8192 floats). All
//     threads of a warp read the same centroid value at the same time: a shared-memory
//     broadcast, no bank conflicts.
//   * Per (row, particle): minimum over the K centroids of the squared distance, computed
//     from direct differences in float32 (no ||x||^2 - 2x.c + ||c||^2 cancellation).
//   * Per particle: a float32 warp sum over the warp's 32 rows (shuffles), added to a
//     float64 running sum per (warp, particle) in shared memory; when the block has no
//     tiles left, one float64 atomicAdd per particle into fitness.
//   So the accumulation is float32 over at most 32 terms, float64 beyond.

#ifndef PSO_DIM
#define PSO_DIM 32
#endif
#ifndef PSO_K
#define PSO_K 8
#endif
#ifndef PSO_PARTICLES
#define PSO_PARTICLES 32
#endif

#define PSO_ROWS 128                                   // threads per block = rows per tile
#define PSO_WARPS (PSO_ROWS / 32)
#define PSO_BUFFER_FLOATS 10240                        // 40 KiB shared buffer: X tile or centroids
#define PSO_TILE_STRIDE (PSO_DIM + 1)                  // odd row stride in the staged tile
#define PSO_PARTICLE_FLOATS (PSO_K * PSO_DIM)          // one particle's centroids
#define PSO_GROUP (PSO_BUFFER_FLOATS / PSO_PARTICLE_FLOATS)  // particles per pass through the buffer
#define PSO_FLT_MAX 3.402823466e+38f

static_assert(PSO_DIM >= 1 && PSO_DIM <= 64, "pso_fitness: PSO_DIM (n_features) must be in 1..64");
static_assert(PSO_K >= 1, "pso_fitness: PSO_K (n_clusters) must be >= 1");
static_assert(PSO_PARTICLES >= 1 && PSO_PARTICLES <= 128, "pso_fitness: PSO_PARTICLES must be in 1..128");
static_assert(PSO_ROWS * PSO_TILE_STRIDE <= PSO_BUFFER_FLOATS, "pso_fitness: X tile does not fit the buffer");
static_assert(PSO_GROUP >= 1, "pso_fitness: one particle's centroids (K*d floats) must fit in 10240 floats");

extern "C" __global__ void __launch_bounds__(PSO_ROWS)
pso_swarm_inertia(const float* __restrict__ X, const long long n,
                  const float* __restrict__ C, double* __restrict__ fitness)
{
    __shared__ __align__(16) float buffer[PSO_BUFFER_FLOATS];
    __shared__ double warp_sums[PSO_WARPS][PSO_PARTICLES];   // running sums, this block's rows

    const int t = threadIdx.x;
    const int lane = t & 31;
    const int warp = t >> 5;

    for (int i = t; i < PSO_WARPS * PSO_PARTICLES; i += PSO_ROWS) {
        (&warp_sums[0][0])[i] = 0.0;
    }
    __syncthreads();

    float x[PSO_DIM];  // this thread's row (registers: the loops over it are fully unrolled)

    for (long long tile = (long long)blockIdx.x * PSO_ROWS; tile < n;
         tile += (long long)gridDim.x * PSO_ROWS) {
        const int rows = (int)min((long long)PSO_ROWS, n - tile);  // < 128 only in the last tile
        const bool valid = t < rows;

        // 1. Coalesced copy of the tile. Float e of the chunk X[tile*d : (tile+rows)*d] is
        //    row e / d, feature e % d; it goes to buffer[row * (d + 1) + feature].
        const float* src = X + tile * PSO_DIM;
        for (int e = t; e < rows * PSO_DIM; e += PSO_ROWS) {
            buffer[(e / PSO_DIM) * PSO_TILE_STRIDE + e % PSO_DIM] = __ldg(src + e);
        }
        __syncthreads();

        // 2. Row t into registers. Lane l reads word l*(d+1) + f: with d+1 odd the 32 lanes
        //    hit 32 different banks. Threads past the last row hold zeros and add nothing.
#pragma unroll
        for (int f = 0; f < PSO_DIM; ++f) {
            x[f] = valid ? buffer[t * PSO_TILE_STRIDE + f] : 0.0f;
        }
        __syncthreads();  // the buffer is refilled with centroids below

        // 3. Particles g0 .. g0+group-1: their centroids are the contiguous chunk
        //    C[g0*K*d : (g0+group)*K*d], copied as is (particle q, centroid j, feature f at
        //    buffer[(q*K + j)*d + f]).
        for (int g0 = 0; g0 < PSO_PARTICLES; g0 += PSO_GROUP) {
            const int group = min(PSO_GROUP, PSO_PARTICLES - g0);
            const float* csrc = C + (long long)g0 * PSO_PARTICLE_FLOATS;
            for (int e = t; e < group * PSO_PARTICLE_FLOATS; e += PSO_ROWS) {
                buffer[e] = __ldg(csrc + e);
            }
            __syncthreads();

            for (int q = 0; q < group; ++q) {
                const float* c = buffer + q * PSO_PARTICLE_FLOATS;
                float best = PSO_FLT_MAX;
#pragma unroll 16
                for (int j = 0; j < PSO_K; ++j) {  // independent sums: instruction-level parallelism
                    float acc = 0.0f;
#pragma unroll
                    for (int f = 0; f < PSO_DIM; ++f) {
                        const float diff = x[f] - c[j * PSO_DIM + f];  // same address in all lanes
                        acc = fmaf(diff, diff, acc);
                    }
                    best = fminf(best, acc);
                }
                // Sum over the warp's 32 rows; lane 0 ends up with the total.
                float s = valid ? best : 0.0f;
#pragma unroll
                for (int offset = 16; offset > 0; offset >>= 1) {
                    s += __shfl_down_sync(0xffffffffu, s, offset);
                }
                if (lane == 0) {
                    warp_sums[warp][g0 + q] += (double)s;  // only this warp's lane 0 writes here
                }
            }
            __syncthreads();  // everyone is done with these centroids before the buffer is reused
        }
    }

    // 4. One atomicAdd per particle per block (warp_sums are visible: the last statement of
    //    every pass above, or the one after zeroing, is a __syncthreads).
    for (int p = t; p < PSO_PARTICLES; p += PSO_ROWS) {
        double s = 0.0;
#pragma unroll
        for (int w = 0; w < PSO_WARPS; ++w) {
            s += warp_sums[w][p];
        }
        atomicAdd(fitness + p, s);
    }
}
