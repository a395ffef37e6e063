/* Greedy decode speed of llama.cpp on a GGUF file, same protocol as `lazyforge-peer-bench
 * --decode`: prefill the 5 ids of "The capital of France is" (SmolLM2's; another model's
 * ids as a third argument, comma-separated), then decode N tokens one at a time, taking the
 * argmax of the logits each step; THREADS threads (default 2). Prints first-token time,
 * decode tokens/s and the generated ids.
 *
 *   llamacpp_decode MODEL.gguf [N] [ID,ID,...] [THREADS]
 *
 * Build against libllama from llama.cpp's source (see BENCHMARKS.md):
 *   cc -O2 -I$LLAMA/include -I$LLAMA/ggml/include llamacpp_decode.c \
 *      $BUILD/src/libllama.a $BUILD/ggml/src/libggml.a $BUILD/ggml/src/libggml-cpu.a \
 *      $BUILD/ggml/src/libggml-base.a -lstdc++ -lm -lpthread -fopenmp -o llamacpp_decode
 * (static libraries, -DBUILD_SHARED_LIBS=OFF, in this order; -fopenmp: ggml's default build
 * uses OpenMP.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "llama.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static llama_token argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    return best;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL.gguf [N] [ID,ID,...] [THREADS]\n", argv[0]); return 2; }
    int n = argc > 2 ? atoi(argv[2]) : 64;
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    if (n < 1 || threads < 1) { fprintf(stderr, "N and THREADS must be positive\n"); return 2; }
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    double t0 = now_s();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_batch = 512; cp.n_threads = threads; cp.n_threads_batch = threads;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    double t_open = now_s() - t0;
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_token prompt[512] = {504, 3575, 282, 4649, 314};
    int n_prompt = 5;
    if (argc > 3) {
        n_prompt = 0;
        for (char *p = argv[3]; *p && n_prompt < 512;) {
            prompt[n_prompt++] = (llama_token)strtol(p, &p, 10);
            if (*p == ',') p++;
        }
    }
    t0 = now_s();
    if (llama_decode(ctx, llama_batch_get_one(prompt, n_prompt))) { fprintf(stderr, "prefill failed\n"); return 1; }
    llama_token next = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
    double t_first = now_s() - t0;
    printf("ids: %d", next);
    t0 = now_s();
    for (int i = 1; i < n; i++) {
        if (llama_decode(ctx, llama_batch_get_one(&next, 1))) { fprintf(stderr, "decode failed\n"); return 1; }
        next = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
        if (i < 16) printf(" %d", next);
    }
    double t_decode = now_s() - t0;
    printf("\nllama.cpp: open+context %.1f ms, first token %.1f ms, decode %.1f tok/s (%d tokens), %d threads\n",
           t_open * 1e3, t_first * 1e3, (n - 1) / t_decode, n - 1, threads);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
