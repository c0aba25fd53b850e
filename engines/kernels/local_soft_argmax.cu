// Local soft-argmax decoding of landmark heatmaps on the GPU (Bulat et al., BMVC 2021).
//
// One thread block per (face, landmark) heatmap:
//   1. argmax over the h x w map by a strided scan, warp shuffles and a shared-memory pass;
//      ties go to the lowest flat index and a NaN wins (numpy.argmax's rules);
//   2. softmax(tau * h) over the window x window pixels around the argmax, pixels outside the
//      map left out, the window's maximum subtracted first, in float32; the expected offset
//      (its two sums in double, free of cancellation) is added to the integer peak (heatmap
//      pixel centres sit on integers) and the point rounded to float32 once, at the end;
//   3. optionally, the point is mapped through the face's (2, 3) affine transform
//      (heatmap pixels -> frame pixels), so the output is directly in frame coordinates.
//
// The arithmetic of step 2 is mirrored, operation for operation, by
// engines/kernel_reference.py (numpy), which tests hold equal to tracker.core.codec.
//
// Entry points (extern "C", loadable by name from pycuda's SourceModule or CuPy's RawModule):
//   local_soft_argmax_f32  heatmaps stored as float32
//   local_soft_argmax_f16  heatmaps stored as IEEE half (read as raw 16-bit words)
// Launch: grid = (B * K), block = (LSA_BLOCK) threads, no dynamic shared memory.
//
// Arguments:
//   heatmaps    B x K x h x w, contiguous (row-major)
//   transforms  B x 2 x 3 float32 (heatmap -> frame), or NULL for heatmap coordinates
//   xy          B x K x 2 float32 output, (x, y)
//   peak        B x K float32 output, the heatmap value at the argmax
//   n_maps      B * K
//   h, w        heatmap size
//   window      odd window side d (d * d <= 1024)
//   tau         softmax temperature

#define LSA_BLOCK 128
#define LSA_WARPS (LSA_BLOCK / 32)
// +inf without math.h, so that NVRTC (CuPy) needs no include path.
#define LSA_INF __int_as_float(0x7f800000)

// IEEE half -> float without cuda_fp16.h, so that NVRTC (CuPy) needs no include path.
// (LSA_HOST_EMULATION: the CPU test harness, tests/engines/cuda_emulation.cpp.)
__device__ __forceinline__ float lsa_load(const unsigned short* p, long long i) {
    unsigned short bits = p[i];
#ifdef LSA_HOST_EMULATION
    return lsa_host_half_to_float(bits);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
    return f;
#endif
}

__device__ __forceinline__ float lsa_load(const float* p, long long i) { return p[i]; }

// Is (v, i) a better argmax candidate than (bv, bi)? NaN beats numbers; among equals (or among
// NaNs) the lower index wins.
__device__ __forceinline__ bool lsa_better(float v, int i, float bv, int bi) {
    bool vn = v != v, bn = bv != bv;  // isnan (no fast-math here)
    if (vn || bn) return vn && (!bn || i < bi);
    return v > bv || (v == bv && i < bi);
}

template <typename T>
__device__ void lsa_map(const T* __restrict__ heatmaps, const float* __restrict__ transforms,
                        float* __restrict__ xy, float* __restrict__ peak, int map, int k_per_face,
                        int h, int w, int window, float tau) {
    __shared__ float s_val[LSA_WARPS];
    __shared__ int s_idx[LSA_WARPS];
    const int n = h * w;
    const long long base = (long long)map * n;  // first pixel of this map

    // 1. argmax: each thread scans pixels tid, tid + LSA_BLOCK, ... (ascending, so a strict
    // comparison keeps the lowest index of a tie), then a warp and a block reduction.
    float best = -LSA_INF;
    int best_i = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += LSA_BLOCK) {
        float v = lsa_load(heatmaps, base + i);
        if (lsa_better(v, i, best, best_i)) { best = v; best_i = i; }
    }
    for (int off = 16; off > 0; off >>= 1) {
        float v = __shfl_down_sync(0xffffffffu, best, off);
        int i = __shfl_down_sync(0xffffffffu, best_i, off);
        if (lsa_better(v, i, best, best_i)) { best = v; best_i = i; }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { s_val[warp] = best; s_idx[warp] = best_i; }
    __syncthreads();
    if (threadIdx.x != 0) return;
    best = s_val[0];
    best_i = s_idx[0];
    for (int j = 1; j < LSA_WARPS; ++j)
        if (lsa_better(s_val[j], s_idx[j], best, best_i)) { best = s_val[j]; best_i = s_idx[j]; }
    // A map of all -inf leaves best_i at its sentinel: fall back to pixel 0 as numpy does.
    if (best_i >= n) { best_i = 0; best = lsa_load(heatmaps, base); }

    // 2. softmax over the window, in row-major window order (the reference's order).
    const int ix = best_i % w, iy = best_i / w, r = window / 2;
    float m = -LSA_INF;
    for (int dy = -r; dy <= r; ++dy) {
        int y = iy + dy;
        if (y < 0 || y >= h) continue;
        for (int dx = -r; dx <= r; ++dx) {
            int x = ix + dx;
            if (x < 0 || x >= w) continue;
            m = fmaxf(m, tau * lsa_load(heatmaps, base + (long long)y * w + x));
        }
    }
    // The normaliser in float32; the first moments in double, where e * d is exact and the
    // sum of terms of both signs loses nothing to cancellation.
    float s = 0.0f;
    double sx = 0.0, sy = 0.0;
    for (int dy = -r; dy <= r; ++dy) {
        int y = iy + dy;
        if (y < 0 || y >= h) continue;
        for (int dx = -r; dx <= r; ++dx) {
            int x = ix + dx;
            if (x < 0 || x >= w) continue;
            float e = expf(__fsub_rn(tau * lsa_load(heatmaps, base + (long long)y * w + x), m));
            s = __fadd_rn(s, e);
            sx = __dadd_rn(sx, (double)e * dx);
            sy = __dadd_rn(sy, (double)e * dy);
        }
    }
    double px = __dadd_rn((double)ix, __ddiv_rn(sx, (double)s));
    double py = __dadd_rn((double)iy, __ddiv_rn(sy, (double)s));

    // 3. heatmap -> frame, in double from the float32 matrix.
    if (transforms != nullptr) {
        const float* t = transforms + (long long)(map / k_per_face) * 6;  // (2, 3) of this face
        double fx = __dadd_rn(__dadd_rn(__dmul_rn(t[0], px), __dmul_rn(t[1], py)), (double)t[2]);
        double fy = __dadd_rn(__dadd_rn(__dmul_rn(t[3], px), __dmul_rn(t[4], py)), (double)t[5]);
        px = fx;
        py = fy;
    }
    xy[2 * (long long)map] = (float)px;
    xy[2 * (long long)map + 1] = (float)py;
    peak[map] = best;
}

extern "C" __global__ void __launch_bounds__(LSA_BLOCK)
local_soft_argmax_f32(const float* __restrict__ heatmaps, const float* __restrict__ transforms,
                      float* __restrict__ xy, float* __restrict__ peak, int n_maps,
                      int k_per_face, int h, int w, int window, float tau) {
    if ((int)blockIdx.x < n_maps)
        lsa_map<float>(heatmaps, transforms, xy, peak, blockIdx.x, k_per_face, h, w, window, tau);
}

extern "C" __global__ void __launch_bounds__(LSA_BLOCK)
local_soft_argmax_f16(const unsigned short* __restrict__ heatmaps,
                      const float* __restrict__ transforms, float* __restrict__ xy,
                      float* __restrict__ peak, int n_maps, int k_per_face, int h, int w,
                      int window, float tau) {
    if ((int)blockIdx.x < n_maps)
        lsa_map<unsigned short>(heatmaps, transforms, xy, peak, blockIdx.x, k_per_face, h, w,
                                window, tau);
}
