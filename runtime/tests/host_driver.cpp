// The `kernels_on_the_host` test's driver. Two modes, chosen by the first int32 of stdin:
//
// - a ggml type id: reads `dtype k rows` (three int32), `rows` rows of that type and `k` f32
//   activations; writes the rows dequantized chunk by chunk (rows * k f32) and each row's dot
//   product with the activations (rows f32), as the GPU threads compute them.
// - -1 (attention): reads `hd slots pos window` (int32), `scale` (f32), q[hd], k[slots * hd],
//   v[slots * hd] (f32) and slot positions[slots] (int32, -1 free); runs lf_attention's
//   algorithm for one (token, head) block, its 4 warps of 32 lanes one after another, with
//   the kernel's own online-softmax functions; writes out[hd] (f32).
#include "host_shim.h"
#include "common.cuh"
#include "quant.cuh"
#include "softmax.cuh"
#include <cstdio>
#include <vector>

static int attention() {
    int head[4];
    float scale;
    if (std::fread(head, sizeof(int), 4, stdin) != 4) return 2;
    if (std::fread(&scale, sizeof(float), 1, stdin) != 1) return 2;
    int hd = head[0], slots = head[1], pos = head[2], window = head[3];
    if (hd <= 0 || hd > 256) return 3;
    std::vector<float> q(hd), k((size_t)slots * hd), v((size_t)slots * hd);
    std::vector<int> slot_pos(slots);
    if (std::fread(q.data(), 4, q.size(), stdin) != q.size()) return 4;
    if (std::fread(k.data(), 4, k.size(), stdin) != k.size()) return 4;
    if (std::fread(v.data(), 4, v.size(), stdin) != v.size()) return 4;
    if (std::fread(slot_pos.data(), 4, slot_pos.size(), stdin) != slot_pos.size()) return 4;
    const int warps = 4, lanes = 32, per = (hd + 31) / 32;
    int first = window > 0 ? pos + 1 - window : 0;
    if (first < 0) first = 0;
    float sm_m[4], sm_s[4];
    static float sm_acc[4][256];
    for (int w = 0; w < warps; ++w) {
        float m[32], s[32], acc[32][8] = {};
        for (int l = 0; l < lanes; ++l) m[l] = -INFINITY, s[l] = 0.0f;
        for (int slot = w; slot < slots; slot += warps) {
            int p = slot_pos[slot];
            if (p < first || p > pos) continue;
            const float* kr = k.data() + (size_t)slot * hd;
            const float* vr = v.data() + (size_t)slot * hd;
            float sc = 0.0f;
            for (int l = 0; l < lanes; ++l) {
                float dot = 0.0f;
                for (int j = 0; j < per; ++j) {
                    int d = l + 32 * j;
                    if (d < hd) dot += q[d] * kr[d];
                }
                sc += dot;
            }
            sc *= scale;
            for (int l = 0; l < lanes; ++l) {
                int count = l < hd ? (hd - l + 31) / 32 : 0;
                lf_online_push(&m[l], &s[l], acc[l], count, vr + l, 32, sc);
            }
        }
        sm_m[w] = m[0];
        sm_s[w] = s[0];
        for (int l = 0; l < lanes; ++l)
            for (int j = 0; l + 32 * j < hd; ++j) sm_acc[w][l + 32 * j] = acc[l][j];
    }
    std::vector<float> out(hd);
    for (int d = 0; d < hd; ++d) out[d] = lf_online_merge(sm_m, sm_s, &sm_acc[0][d], 256, warps);
    std::fwrite(out.data(), 4, out.size(), stdout);
    return 0;
}

int main() {
    int head[3];
    if (std::fread(head, sizeof(int), 1, stdin) != 1) return 2;
    if (head[0] == -1) return attention();
    if (std::fread(head + 1, sizeof(int), 2, stdin) != 2) return 2;
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
