/* The f32 multiply-add peak of this machine's cores, the ceiling of an exact (f32) GEMM:
 * twelve independent chains of 512-bit FMAs (AVX-512 F; 256-bit AVX2 with -DYMM), on one
 * thread and then on THREADS threads at once (default 2). BENCHMARKS.md compares prefill's
 * GEMM against it.
 *
 *   cc -O2 -mavx512f -mfma bench/fma_peak.c -o /tmp/fma_peak -lpthread && /tmp/fma_peak
 *   cc -O2 -mavx2 -mfma -DYMM bench/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef YMM
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float first(vec v) { return _mm256_cvtss_f32(v); }
#else
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
static float first(vec v) { return _mm512_cvtss_f32(v); }
#endif

#define ITERS 200000000L
#define CHAINS 12

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run(void *out) {
    /* Starting values read through volatile, so the compiler cannot merge the chains. */
    volatile float seed[CHAINS] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    vec b = SET1(0.9999f), c = SET1(0.0001f);
    vec a0 = SET1(seed[0]), a1 = SET1(seed[1]), a2 = SET1(seed[2]), a3 = SET1(seed[3]);
    vec a4 = SET1(seed[4]), a5 = SET1(seed[5]), a6 = SET1(seed[6]), a7 = SET1(seed[7]);
    vec a8 = SET1(seed[8]), a9 = SET1(seed[9]), a10 = SET1(seed[10]), a11 = SET1(seed[11]);
    for (long i = 0; i < ITERS; i++) {
        a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c); a3 = FMA(a3, b, c);
        a4 = FMA(a4, b, c); a5 = FMA(a5, b, c); a6 = FMA(a6, b, c); a7 = FMA(a7, b, c);
        a8 = FMA(a8, b, c); a9 = FMA(a9, b, c); a10 = FMA(a10, b, c); a11 = FMA(a11, b, c);
    }
    vec s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));
    *(float *)out = first(s);
    return NULL;
}

int main(void) {
    const char *env = getenv("THREADS");
    int threads = env ? atoi(env) : 2;
    if (threads < 1 || threads > 256) {
        fprintf(stderr, "fma_peak: THREADS must be 1..256\n");
        return 1;
    }
    double flop = (double)ITERS * CHAINS * LANES * 2;
    float sink[256];
    double t = now();
    run(&sink[0]);
    printf("1 thread: %.1f GFLOP/s (%d-lane f32 FMA)\n", flop / (now() - t) / 1e9, LANES);
    pthread_t th[256];
    t = now();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, run, &sink[i]);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    printf("%d threads: %.1f GFLOP/s together\n", threads, threads * flop / (now() - t) / 1e9);
    return sink[0] == 12345.0f; /* uses the result */
}
