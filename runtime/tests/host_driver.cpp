// The `kernels_on_the_host` test's driver: reads `dtype k rows` (three int32), `rows` rows of
// that ggml type, and `k` f32 activations from stdin; writes the rows dequantized chunk by
// chunk (rows * k f32) and each row's dot product with the activations (rows f32), as the GPU
// threads compute them.
#include "host_shim.h"
#include "common.cuh"
#include "quant.cuh"
#include <cstdio>
#include <vector>

int main() {
    int head[3];
    if (std::fread(head, sizeof(int), 3, stdin) != 3) return 2;
    int dt = head[0], k = head[1], rows = head[2];
    int bs = lf_block_size(dt), ts = lf_type_size(dt);
    if (ts == 0 || k % bs != 0) return 3;
    long long row_bytes = (long long)(k / bs) * ts;
    std::vector<lf_u8> w((size_t)(row_bytes * rows));
    std::vector<float> x((size_t)k);
    if (std::fread(w.data(), 1, w.size(), stdin) != w.size()) return 4;
    if (std::fread(x.data(), sizeof(float), x.size(), stdin) != x.size()) return 5;
    std::vector<float> out((size_t)k * rows), dots((size_t)rows);
    for (int r = 0; r < rows; ++r) {
        const lf_u8* row = w.data() + row_bytes * r;
        float* o = out.data() + (size_t)k * r;
        if (bs == 1) {
            for (int i = 0; i < k; ++i) o[i] = lf_float_at(dt, row, i);
        } else {
            for (int c = 0; c < k / 32; ++c) lf_deq_chunk(dt, row, c, o + 32 * c);
        }
        dots[r] = lf_dot_row(dt, row, k, x.data());
    }
    std::fwrite(out.data(), sizeof(float), out.size(), stdout);
    std::fwrite(dots.data(), sizeof(float), dots.size(), stdout);
    return 0;
}
