/* Open-time of llama.cpp's GGUF reader (gguf_init_from_file, no_alloc: metadata and tensor
 * table only) on the same files as src/main.rs. Median of 200 opens, in microseconds.
 *
 * Build against ggml-base from llama.cpp's source (see BENCHMARKS.md for the commands):
 *   cc -O2 -I$LLAMA/ggml/include llamacpp_open.c -L$BUILD/bin -lggml-base -o llamacpp_open
 * or, with llama.cpp built with -DBUILD_SHARED_LIBS=OFF:
 *   cc -O2 -I$LLAMA/ggml/include llamacpp_open.c $BUILD/ggml/src/libggml-base.a \
 *      -lstdc++ -lm -lpthread -fopenmp -o llamacpp_open   (-fopenmp: ggml built with OpenMP)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "gguf.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    enum { RUNS = 200 };
    static double t[RUNS];
    for (int f = 1; f < argc; f++) {
        long long n = -1;
        for (int i = 0; i < RUNS; i++) {
            struct gguf_init_params params = { .no_alloc = 1, .ctx = NULL };
            double t0 = now_us();
            struct gguf_context *ctx = gguf_init_from_file(argv[f], params);
            t[i] = now_us() - t0;
            if (!ctx) { fprintf(stderr, "%s: gguf_init_from_file failed\n", argv[f]); return 1; }
            n = gguf_get_n_tensors(ctx);
            gguf_free(ctx);
        }
        qsort(t, RUNS, sizeof t[0], cmp);
        printf("%s\t%lld tensors\tllama.cpp open %.1f us\n", argv[f], n, t[RUNS / 2]);
    }
    return 0;
}
