// CPU emulation of engines/kernels/local_soft_argmax.cu, for tests on machines without a GPU.
//
// The kernel source is compiled as C++ with the CUDA built-ins it uses defined here. Each CUDA
// thread of a block is a fiber (ucontext) on one OS thread; the blocks run one after another.
// Every barrier (__syncthreads, and the two halves of a warp shuffle) yields to a round-robin
// scheduler, so all live threads reach a barrier before any passes it (the kernel's threads all
// meet the same barriers, in the same order). Shuffles go through per-warp slots, __shared__ is
// static storage, and the *_rn intrinsics are plain IEEE operations (build with
// -ffp-contract=off so that nothing is fused).
// Build: g++ -std=c++17 -O1 -ffp-contract=off -shared -fPIC -I engines/kernels
#include <math.h>
#include <string.h>
#include <ucontext.h>

#define LSA_HOST_EMULATION 1
#define LSA_MAX_THREADS 1024
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

struct LsaDim3 { unsigned x; };
static int lsa_current;  // the running fiber: threadIdx.x
static LsaDim3 lsa_block;
#define threadIdx (LsaDim3{(unsigned)lsa_current})
#define blockIdx lsa_block

static ucontext_t lsa_scheduler;
static ucontext_t lsa_fiber[LSA_MAX_THREADS];
static bool lsa_done[LSA_MAX_THREADS];
static char lsa_stack[LSA_MAX_THREADS][1 << 15];

static inline void lsa_yield() { swapcontext(&lsa_fiber[lsa_current], &lsa_scheduler); }
inline void __syncthreads() { lsa_yield(); }

static float lsa_float_slots[LSA_MAX_THREADS / 32][32];
static int lsa_int_slots[LSA_MAX_THREADS / 32][32];

template <typename T>
inline T lsa_shfl_down(T (*slots)[32], T v, int off) {
    int lane = lsa_current & 31, warp = lsa_current >> 5;
    slots[warp][lane] = v;
    lsa_yield();  // every lane has written
    T r = lane + off < 32 ? slots[warp][lane + off] : v;
    lsa_yield();  // every lane has read
    return r;
}
inline float __shfl_down_sync(unsigned, float v, int off) { return lsa_shfl_down(lsa_float_slots, v, off); }
inline int __shfl_down_sync(unsigned, int v, int off) { return lsa_shfl_down(lsa_int_slots, v, off); }

inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float lsa_host_half_to_float(unsigned short bits) {
    _Float16 h;
    memcpy(&h, &bits, 2);
    return (float)h;
}

#include "local_soft_argmax.cu"

static struct {
    int half;
    const void* heatmaps;
    const float* transforms;
    float* xy;
    float* peak;
    int n_maps, k_per_face, h, w, window;
    float tau;
} lsa_args;

static void lsa_thread_main() {
    const auto& a = lsa_args;
    if (a.half)
        local_soft_argmax_f16((const unsigned short*)a.heatmaps, a.transforms, a.xy, a.peak,
                              a.n_maps, a.k_per_face, a.h, a.w, a.window, a.tau);
    else
        local_soft_argmax_f32((const float*)a.heatmaps, a.transforms, a.xy, a.peak, a.n_maps,
                              a.k_per_face, a.h, a.w, a.window, a.tau);
    lsa_done[lsa_current] = true;
}  // returns to the scheduler through uc_link

// The launch of the Python loaders: grid = (n_maps), block = (LSA_BLOCK).
extern "C" void lsa_emulate(int half, const void* heatmaps, const float* transforms, float* xy,
                            float* peak, int n_maps, int k_per_face, int h, int w, int window,
                            float tau) {
    lsa_args = {half, heatmaps, transforms, xy, peak, n_maps, k_per_face, h, w, window, tau};
    for (int b = 0; b < n_maps; ++b) {
        lsa_block.x = b;
        for (int t = 0; t < LSA_BLOCK; ++t) {
            getcontext(&lsa_fiber[t]);
            lsa_fiber[t].uc_stack.ss_sp = lsa_stack[t];
            lsa_fiber[t].uc_stack.ss_size = sizeof(lsa_stack[t]);
            lsa_fiber[t].uc_link = &lsa_scheduler;
            makecontext(&lsa_fiber[t], lsa_thread_main, 0);
            lsa_done[t] = false;
        }
        for (bool live = true; live;) {  // rounds: each live thread runs to its next barrier
            live = false;
            for (int t = 0; t < LSA_BLOCK; ++t) {
                if (lsa_done[t]) continue;
                live = true;
                lsa_current = t;
                swapcontext(&lsa_scheduler, &lsa_fiber[t]);
            }
        }
    }
}
