/* Native CPU kernel of hashed virtual weights; kernel.py defines HF_U, HF_NG, HF_ACT and HF_DUAL and fills
   in g's code at the marked places for one configuration (hash functions U, reconstruction network g, dual
   space), compiles and loads it.

   Element n of a layer's virtual weight vector (index.py has the same integers):
       base = mix32(n + key);  x_k = mix32(base ^ fkey_k);  bucket_k = ((x_k >> 1) * size) >> 31
       f_k  = (x_k & 1 ? -1 : +1) * table[bucket_k]   (times dual[bucket'_k] with dual-space hashing)
       V[n] = g(f_1 .. f_U)                           (no g: the plain sum; U = 1, no g is HashedNets)
   Elements go in blocks of BS: hash every element of the block, read the table, then run g. The hash
   (mix32, reduce, HF_FETCH) is written here once; g's code is generated straight-line per element (its
   widths are compile-time), and the loop over the U hash functions is unrolled, so the hashing and g
   loops vectorise. The backward pass recomputes everything, storing nothing per element between passes, and
   scatter-adds each member's gradient into its bucket (HashedNets: a bucket's gradient is the sum of its
   members'). Measured on LeNet-300-100's fc1 at 1/8, U = 4, g 4-2-1 tanh, AVX-512, 1 thread: forward
   3.9 ns and backward 7.5 ns per element (a dense fc1 step costs 6.6 ns per weight); of the backward,
   2.1 ns are the four scattered adds and 1.3 ns the four table reads, both random accesses into L2. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BS 256                      /* elements per block */

#ifdef _OPENMP
#include <omp.h>
#define TEAM_RANK() omp_get_thread_num()
#define TEAM_SIZE() omp_get_num_threads()
#else
#define TEAM_RANK() 0
#define TEAM_SIZE() 1
#endif

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x21f0aaadu; x ^= x >> 15; x *= 0x735a2d97u; x ^= x >> 15; return x;
}

/* ((x >> 1) * size) >> 31 of index.buckets, written as a 32 x 32 -> 64-bit product */
static inline int32_t reduce(uint32_t x, uint32_t size) {
    return (int32_t)(((uint64_t)(x & ~1u) * size) >> 32);
}

/* tanh as a clamped odd/even rational function (Eigen's float approximation; |error| < 3e-7) */
static inline float tanh_f(float x) {
    const float c = 7.90531110763549805f;
    float y = x > c ? c : (x < -c ? -c : x);
    float x2 = y * y;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return y * p / q;
}

static inline float act(float z) {
#if HF_ACT == 1
    return tanh_f(z);
#elif HF_ACT == 2
    return z > 0.f ? z : 0.f;
#else
    return z;
#endif
}

static inline float dact(float y) {     /* derivative of the activation, from its output */
#if HF_ACT == 1
    return 1.f - y * y;
#elif HF_ACT == 2
    return y > 0.f ? 1.f : 0.f;
#else
    (void)y; return 1.f;
#endif
}

void hf_tanh(const float *x, float *y, int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = tanh_f(x[i]);
}

/* The three phases of one block of BS elements. Hashing and g are straight-line per element, so those
   loops vectorise; the table reads between them are a plain loop of loads, which the compiler turns into
   vector gathers where the target has fast ones and scalar loads elsewhere (an AVX2 build of the fused
   loop fell back to scalar code for the whole element, 8x slower). */
#define HF_FETCH(s0, nb)                                                                                \
    _Pragma("omp simd")                                                                                 \
    for (int32_t e = 0; e < (nb); e++) {                                                                \
        const uint32_t base = mix32((uint32_t)(s0) + key + (uint32_t)e);                                \
        _Pragma("GCC unroll 16")                                                                        \
        for (int k = 0; k < HF_U; k++) {                                                                \
            const uint32_t x = mix32(base ^ FK[k]);                                                     \
            bk[k][e] = reduce(x, K);                                                                    \
            sg[k][e] = (x & 1u) ? -1.f : 1.f;                                                           \
            if (HF_DUAL) dbk[k][e] = reduce(mix32(base ^ DK[k]), K2);                                   \
        }                                                                                               \
    }                                                                                                   \
    for (int k = 0; k < HF_U; k++)                                                                      \
        for (int32_t e = 0; e < (nb); e++) fv[k][e] = tab[bk[k][e]];                                    \
    HF_FETCH_DUAL(nb)

#if HF_DUAL
#define HF_FETCH_DUAL(nb)                                                                               \
    for (int k = 0; k < HF_U; k++)                                                                      \
        for (int32_t e = 0; e < (nb); e++) dv[k][e] = dtab[dbk[k][e]];
#else
#define HF_FETCH_DUAL(nb)
#endif

/* What both passes set up: local copies of g's parameters and the hash keys, and the block arrays.
   K < 2^31 (index.check_sizes): 32-bit lanes throughout. */
#define HF_SETUP                                                                                        \
    const float *restrict tab = table;                                                                  \
    const float *restrict dtab = dual;                                                                  \
    const uint32_t K = (uint32_t)size, K2 = (uint32_t)dual_size;                                        \
    float G[HF_NG + 1];                                                                                 \
    for (int p = 0; p < HF_NG; p++) G[p] = g[p];                                                        \
    uint32_t FK[HF_U], DK[HF_U];                                                                        \
    for (int k = 0; k < HF_U; k++) { FK[k] = fkeys[k]; DK[k] = dkeys ? dkeys[k] : 0u; }                 \
    int32_t bk[HF_U][BS], dbk[HF_U][BS];                                                                \
    float sg[HF_U][BS], fv[HF_U][BS], dv[HF_U][BS];                                                     \
    (void)dtab; (void)K2; (void)DK; (void)G; (void)dbk; (void)dv;

/* V[n] for n in [start, stop), one thread */
static void forward_range(int64_t start, int64_t stop, uint32_t key, const uint32_t *fkeys,
                          const uint32_t *dkeys, int64_t size, int64_t dual_size, const float *table,
                          const float *dual, const float *g, float *out) {
    HF_SETUP
    for (int64_t s0 = start; s0 < stop; s0 += BS) {
        /* 32-bit counters: 64-bit lanes would halve the vector width of the element loops */
        const int32_t nb = (int32_t)((stop - s0) < BS ? (stop - s0) : BS);
        HF_FETCH(s0, nb)
        float *restrict dst = out + s0;
        #pragma omp simd
        for (int32_t e = 0; e < nb; e++) {
/*@FORWARD@*/
            dst[e] = v;
        }
    }
}

/* dL/dtable, dL/ddual and dL/dg of the elements [start, stop), given dL/dV, one thread, into buffers it
   zeroes itself, so that the lines its random adds hit start out in its own core's cache. */
static int backward_range(int64_t start, int64_t stop, uint32_t key, const uint32_t *fkeys,
                          const uint32_t *dkeys, int64_t size, int64_t dual_size, const float *table,
                          const float *dual, const float *g, const float *grad_out, float *grad_table,
                          float *grad_dual, float *grad_g) {
    HF_SETUP
    memset(grad_table, 0, (size_t)size * sizeof(float));
    if (grad_dual) memset(grad_dual, 0, (size_t)dual_size * sizeof(float));
    for (int p = 0; p < HF_NG; p++) grad_g[p] = 0.f;
    float gv[HF_U][BS], dgv[HF_U][BS];
    (void)dgv; (void)grad_dual;
    /* per-lane partial sums of g's gradient, reduced once at the end, so the element loop vectorises */
    float *acc = (float *)calloc((size_t)(HF_NG + 1) * BS, sizeof(float));
    if (!acc) return -1;
    for (int64_t s0 = start; s0 < stop; s0 += BS) {
        const int32_t nb = (int32_t)((stop - s0) < BS ? (stop - s0) : BS);
        HF_FETCH(s0, nb)
        const float *restrict go = grad_out + s0;
        #pragma omp simd
        for (int32_t e = 0; e < nb; e++) {
            const float d0 = go[e];
/*@BACKWARD@*/
        }
        /* members of one bucket can meet in one vector: the scatter stays scalar */
        for (int k = 0; k < HF_U; k++) {
            for (int32_t e = 0; e < nb; e++) grad_table[bk[k][e]] += gv[k][e];
#if HF_DUAL
            for (int32_t e = 0; e < nb; e++) grad_dual[dbk[k][e]] += dgv[k][e];
#endif
        }
    }
    for (int p = 0; p < HF_NG; p++) {
        float t = 0.f;
        for (int e = 0; e < BS; e++) t += acc[p * BS + e];
        grad_g[p] += t;
    }
    free(acc);
    return 0;
}

/* Team member t of n takes whole blocks: [*a, *b) */
static void share(int64_t start, int64_t stop, int t, int n, int64_t *a, int64_t *b) {
    const int64_t blocks = (stop - start + BS - 1) / BS, per = blocks / n, extra = blocks % n;
    const int64_t first = t * per + (t < extra ? t : extra);
    *a = start + first * BS;
    *b = *a + (per + (t < extra)) * BS;
    if (*a > stop) *a = stop;
    if (*b > stop) *b = stop;
}

/* The entry points run a team of up to `threads` OpenMP threads. kernel.py builds with -fopenmp only
   where torch's own libgomp is loaded, so the team is torch's intra-op pool: threads of a separate pool
   competed with torch's threads, which spin for a while after each operation, and a two-thread backward
   took as long as a one-thread one. Each returns the team size it ran with, or -1 where memory ran out. */
int hf_forward(int64_t start, int64_t stop, int threads, uint32_t key, const uint32_t *fkeys,
               const uint32_t *dkeys, int64_t size, int64_t dual_size, const float *table, const float *dual,
               const float *g, float *out) {
    int used = 1;
    #pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        int64_t a, b;
        share(start, stop, TEAM_RANK(), TEAM_SIZE(), &a, &b);
        if (a < b) forward_range(a, b, key, fkeys, dkeys, size, dual_size, table, dual, g, out);
        if (TEAM_RANK() == 0) used = TEAM_SIZE();
    }
    return used;
}

/* Each member sums its elements' gradients into its own buffers (member 0 into the outputs), then each
   adds a slice of every other member's buffers into the outputs. */
int hf_backward(int64_t start, int64_t stop, int threads, uint32_t key, const uint32_t *fkeys,
                const uint32_t *dkeys, int64_t size, int64_t dual_size, const float *table, const float *dual,
                const float *g, const float *grad_out, float *grad_table, float *grad_dual, float *grad_g) {
    if (threads < 1) threads = 1;
    float **tabs = (float **)calloc((size_t)threads, sizeof(float *));
    float **duals = (float **)calloc((size_t)threads, sizeof(float *));
    float *gs = (float *)calloc((size_t)threads * (HF_NG + 1), sizeof(float));
    int used = 1, failed = !tabs || !duals || !gs;
    if (!failed) {
        #pragma omp parallel num_threads(threads)
        {
            const int t = TEAM_RANK(), n = TEAM_SIZE();
            float *mt = t ? (float *)malloc((size_t)size * sizeof(float)) : grad_table;
            float *md = grad_dual && t ? (float *)malloc((size_t)dual_size * sizeof(float)) : grad_dual;
            tabs[t] = mt;
            duals[t] = md;
            if (!mt || (grad_dual && !md)) {
                #pragma omp atomic write
                failed = 1;
            } else {
                int64_t a, b;
                share(start, stop, t, n, &a, &b);
                if (backward_range(a, b, key, fkeys, dkeys, size, dual_size, table, dual, g, grad_out, mt, md,
                                   gs + (size_t)t * (HF_NG + 1))) {
                    #pragma omp atomic write
                    failed = 1;
                }
            }
            #pragma omp barrier
            if (!failed && n > 1) {
                const int64_t a = size * t / n, b = size * (t + 1) / n;
                for (int s = 1; s < n; s++)
                    for (int64_t i = a; i < b; i++) grad_table[i] += tabs[s][i];
                if (grad_dual) {
                    const int64_t c = dual_size * t / n, d = dual_size * (t + 1) / n;
                    for (int s = 1; s < n; s++)
                        for (int64_t i = c; i < d; i++) grad_dual[i] += duals[s][i];
                }
            }
            #pragma omp barrier
            if (t) { free(mt); if (md) free(md); }
            if (t == 0) used = n;
        }
        for (int p = 0; p < HF_NG; p++) {
            float total = 0.f;
            for (int t = 0; t < used; t++) total += gs[(size_t)t * (HF_NG + 1) + p];
            grad_g[p] = total;
        }
    }
    free(tabs);
    free(duals);
    free(gs);
    return failed ? -1 : used;
}
