// lazyforge GPU kernels (after common.cuh and quant.cuh). Every entry point is
// `extern "C"` so that the backend finds it by name. Activations are f32; weights are read
// in their stored block format. Sizes are int (the backend checks they fit).
//
// Launch shapes (the backend's side of the contract) are written above each kernel.

#define LF_WARP 32
#define LF_MAX_HEAD_DIM 256

// Sum over the 32 lanes of a warp (CUDA's warp; on HIP hip_compat.cuh maps the shuffle, and
// the kernels only ever use the first 32 lanes' worth of a group through LF_WARP).
__device__ __forceinline__ float lf_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += LF_SHFL_XOR(v, o);
    return v;
}

__device__ __forceinline__ float lf_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, LF_SHFL_XOR(v, o));
    return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets
// the total.
__device__ float lf_block_sum(float v, float* scratch) {
    int lane = threadIdx.x % LF_WARP, warp = threadIdx.x / LF_WARP;
    int warps = blockDim.x / LF_WARP;
    v = lf_warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < warps; ++w) t += scratch[w];
    return t;
}

// ---- decode: y = W x -------------------------------------------------------------------
// grid.x = ceil(m / 4), block = 128: one warp per row. Each lane dequantizes 32-value chunks
// of the row in place (the blocks are read once) and dots them with f32 x.
template <int DT>
__device__ void lf_matvec(const lf_u8* w, const float* x, float* y, int m, int k,
                          long long row_bytes) {
    int row = blockIdx.x * (blockDim.x / LF_WARP) + threadIdx.x / LF_WARP;
    int lane = threadIdx.x % LF_WARP;
    if (row >= m) return;
    const lf_u8* r = w + row_bytes * row;
    float s = 0.0f;
    if (lf_block_size(DT) == 1) {
        for (int i = lane; i < k; i += LF_WARP) s += lf_float_at(DT, r, i) * x[i];
    } else {
        int chunks = k / LF_CHUNK;
        for (int c = lane; c < chunks; c += LF_WARP) s += lf_dot_chunk(DT, r, c, x);
    }
    s = lf_warp_sum(s);
    if (lane == 0) y[row] = s;
}

// ---- dequantize rows to f32 (prefill tiles for the GEMM, embeddings, norm parameters) -----
// out[r, :] = row (ids ? ids[r] : row0 + r) of w, for r < rows. grid.x * blockDim.x threads
// cover rows * ceil(k / 32) chunks.
template <int DT>
__device__ void lf_dequant_rows(const lf_u8* w, const int* ids, int row0, int rows, int k,
                                long long row_bytes, float* out) {
    int chunks = (k + LF_CHUNK - 1) / LF_CHUNK;
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)rows * chunks) return;
    int r = (int)(t / chunks), c = (int)(t % chunks);
    int src = ids ? ids[r] : row0 + r;
    const lf_u8* row = w + row_bytes * src;
    float* o = out + (long long)r * k + (long long)c * LF_CHUNK;
    if (lf_block_size(DT) == 1) {
        int n = k - c * LF_CHUNK < LF_CHUNK ? k - c * LF_CHUNK : LF_CHUNK;
        for (int l = 0; l < n; ++l) o[l] = lf_float_at(DT, row, (long long)c * LF_CHUNK + l);
    } else {
        float y[32];
        lf_deq_chunk(DT, row, c, y);
        for (int l = 0; l < 32; ++l) o[l] = y[l];
    }
}

#define LF_TYPED(NAME, DT)                                                                    \
    extern "C" __global__ void lf_matvec_##NAME(const lf_u8* w, const float* x, float* y,    \
                                                int m, int k, long long row_bytes) {          \
        lf_matvec<DT>(w, x, y, m, k, row_bytes);                                              \
    }                                                                                         \
    extern "C" __global__ void lf_dequant_rows_##NAME(const lf_u8* w, const int* ids,        \
                                                      int row0, int rows, int k,              \
                                                      long long row_bytes, float* out) {      \
        lf_dequant_rows<DT>(w, ids, row0, rows, k, row_bytes, out);                           \
    }

LF_TYPED(f32, LF_F32)
LF_TYPED(f16, LF_F16)
LF_TYPED(bf16, LF_BF16)
LF_TYPED(q4_0, LF_Q4_0)
LF_TYPED(q4_1, LF_Q4_1)
LF_TYPED(q5_0, LF_Q5_0)
LF_TYPED(q5_1, LF_Q5_1)
LF_TYPED(q8_0, LF_Q8_0)
LF_TYPED(q4_k, LF_Q4_K)
LF_TYPED(q5_k, LF_Q5_K)
LF_TYPED(q6_k, LF_Q6_K)

// ---- prefill GEMM without a BLAS library: y[n, ldy] (columns col0..col0+m) = x[n, k] · wᵀ ---
// w is an f32 tile [m, k]. 16x16 output tiles, grid (ceil(m / 16), ceil(n / 16)), block
// (16, 16). Used where no BLAS is loaded (HIP, or CUDA without cuBLAS); plain f32 FMAs.
#define LF_TILE 16
extern "C" __global__ void lf_gemm_xwt(const float* x, const float* w, float* y, int n, int m,
                                       int k, int ldy, int col0) {
    __shared__ float xs[LF_TILE][LF_TILE + 1];
    __shared__ float ws[LF_TILE][LF_TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * LF_TILE + ty; // token
    int col = blockIdx.x * LF_TILE + tx; // output feature within the tile
    float acc = 0.0f;
    for (int k0 = 0; k0 < k; k0 += LF_TILE) {
        int kx = k0 + tx;
        xs[ty][tx] = (row < n && kx < k) ? x[(long long)row * k + kx] : 0.0f;
        int wr = blockIdx.x * LF_TILE + ty;
        ws[ty][tx] = (wr < m && kx < k) ? w[(long long)wr * k + kx] : 0.0f;
        __syncthreads();
        for (int j = 0; j < LF_TILE; ++j) acc += xs[ty][j] * ws[tx][j];
        __syncthreads();
    }
    if (row < n && col < m) y[(long long)row * ldy + col0 + col] = acc;
}

// ---- norms: one block (256 threads) per row --------------------------------------------
extern "C" __global__ void lf_rms_norm(const float* x, const float* w, float* y, int d,
                                       float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (long long)blockIdx.x * d;
    float* yr = y + (long long)blockIdx.x * d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = lf_block_sum(ss, scratch);
    float scale = 1.0f / sqrtf(ss / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = (xr[i] * scale) * w[i];
}

// bias may be null.
extern "C" __global__ void lf_layer_norm(const float* x, const float* w, const float* bias,
                                         float* y, int d, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (long long)blockIdx.x * d;
    float* yr = y + (long long)blockIdx.x * d;
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    float mean = lf_block_sum(s, scratch) / (float)d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float c = xr[i] - mean;
        ss += c * c;
    }
    ss = lf_block_sum(ss, scratch);
    float scale = 1.0f / sqrtf(ss / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = ((xr[i] - mean) * scale) * w[i];
        yr[i] = bias ? v + bias[i] : v;
    }
}

// ---- RoPE in place: cos/sin are [n, half] (the table's rows for each token) --------------
// One thread per (token, head, pair); interleaved pairs (2i, 2i+1), split-half (i, i + half).
extern "C" __global__ void lf_rope(float* x, const float* cos_t, const float* sin_t, int n,
                                   int n_heads, int head_dim, int half, int split_half) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)n * n_heads * half) return;
    int i = (int)(t % half);
    long long th = t / half;
    int tok = (int)(th / n_heads);
    float* h = x + th * head_dim;
    float c = cos_t[(long long)tok * half + i], s = sin_t[(long long)tok * half + i];
    int ia = split_half ? i : 2 * i, ib = split_half ? i + half : 2 * i + 1;
    float a = h[ia], b = h[ib];
    h[ia] = a * c - b * s;
    h[ib] = b * c + a * s;
}

// ---- element-wise ----------------------------------------------------------------------
__device__ __forceinline__ float lf_silu(float v) { return v / (1.0f + expf(-v)); }

__device__ __forceinline__ float lf_gelu_tanh(float v) {
    const float k = 0.7978846f;
    return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}

__device__ __forceinline__ float lf_gelu_erf(float v) {
    double xd = (double)v;
    return (float)(0.5 * xd * erfc(-xd * 0.70710678118654752440));
}

#define LF_IDX                                                                                \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (i >= n) return;

// f: 0 silu, 1 gelu (tanh), 2 gelu (erf).
extern "C" __global__ void lf_activation(float* x, long long n, int f) {
    LF_IDX
    float v = x[i];
    x[i] = f == 0 ? lf_silu(v) : (f == 1 ? lf_gelu_tanh(v) : lf_gelu_erf(v));
}

extern "C" __global__ void lf_swiglu(float* g, const float* u, long long n) {
    LF_IDX
    g[i] = lf_silu(g[i]) * u[i];
}

extern "C" __global__ void lf_geglu(float* g, const float* u, long long n) {
    LF_IDX
    g[i] = lf_gelu_tanh(g[i]) * u[i];
}

extern "C" __global__ void lf_scale(float* x, float s, long long n) {
    LF_IDX
    x[i] *= s;
}

extern "C" __global__ void lf_add(float* x, const float* y, long long n) {
    LF_IDX
    x[i] += y[i];
}

extern "C" __global__ void lf_add_rows(float* x, const float* bias, int d, long long n) {
    LF_IDX
    x[i] += bias[i % d];
}

// out[o, r, :] = x[o, start + r, :] for r < len: narrow along a dimension of size dim_len,
// `inner` values per entry.
extern "C" __global__ void lf_narrow(const float* x, float* out, int dim_len, int start, int len,
                                     long long inner, long long n) {
    LF_IDX
    long long per = (long long)len * inner;
    long long o = i / per, r = i % per;
    out[i] = x[o * dim_len * inner + (long long)start * inner + r];
}

// ---- KV cache ------------------------------------------------------------------------------
// k_new, v_new [n, n_kv, hd] into cache [n_kv, slots, hd] at slot[t] for token t.
extern "C" __global__ void lf_kv_write(float* kc, float* vc, const float* k_new,
                                       const float* v_new, const int* slot, int n, int n_kv,
                                       int hd, int slots) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * n_kv * hd) return;
    int d = (int)(i % hd);
    int h = (int)((i / hd) % n_kv);
    int t = (int)(i / ((long long)hd * n_kv));
    long long dst = ((long long)h * slots + slot[t]) * hd + d;
    kc[dst] = k_new[i];
    vc[dst] = v_new[i];
}

// ---- attention over the cache ----------------------------------------------------------
// grid (n_heads, n_q), block 128 (4 warps). Query head h reads kv head h / (n_heads / n_kv).
// slot_pos[s] is the position in slot s (-1: free). A query at position p attends slots with
// first <= position <= p, first = window > 0 ? p + 1 - window : 0. Each warp walks its slots
// with an online softmax (running max, rescaled sum and accumulator, all f32); the warps'
// partial results are merged at the end. head_dim <= 256.
extern "C" __global__ void lf_attention(const float* q, const float* kc, const float* vc,
                                        const int* slot_pos, const int* q_pos, float* out,
                                        int n_heads, int n_kv, int hd, int slots, int window,
                                        float scale) {
    __shared__ float sm_m[4], sm_s[4];
    __shared__ float sm_acc[4][LF_MAX_HEAD_DIM];
    int h = blockIdx.x, t = blockIdx.y;
    int warp = threadIdx.x / LF_WARP, lane = threadIdx.x % LF_WARP;
    int warps = blockDim.x / LF_WARP;
    int kvh = h / (n_heads / n_kv);
    int pos = q_pos[t];
    int first = window > 0 ? pos + 1 - window : 0;
    if (first < 0) first = 0;
    const float* qh = q + ((long long)t * n_heads + h) * hd;
    int per = (hd + LF_WARP - 1) / LF_WARP; // values per lane, <= 8
    float qr[LF_MAX_HEAD_DIM / LF_WARP], acc[LF_MAX_HEAD_DIM / LF_WARP];
    for (int j = 0; j < LF_MAX_HEAD_DIM / LF_WARP; ++j) {
        int d = lane + LF_WARP * j;
        qr[j] = (j < per && d < hd) ? qh[d] : 0.0f;
        acc[j] = 0.0f;
    }
    float m = -INFINITY, s = 0.0f;
    // This lane's accumulated values: d = lane, lane + 32, ... below hd.
    int count = lane < hd ? (hd - lane + LF_WARP - 1) / LF_WARP : 0;
    for (int slot = warp; slot < slots; slot += warps) {
        int p = slot_pos[slot];
        if (p < first || p > pos) continue;
        const float* kr = kc + ((long long)kvh * slots + slot) * hd;
        const float* vr = vc + ((long long)kvh * slots + slot) * hd;
        float dot = 0.0f;
        for (int j = 0; j < per; ++j) {
            int d = lane + LF_WARP * j;
            if (d < hd) dot += qr[j] * kr[d];
        }
        float sc = lf_warp_sum(dot) * scale;
        lf_online_push(&m, &s, acc, count, vr + lane, LF_WARP, sc);
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_s[warp] = s;
    }
    for (int j = 0; j < count; ++j) sm_acc[warp][lane + LF_WARP * j] = acc[j];
    __syncthreads();
    float* o = out + ((long long)t * n_heads + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x)
        o[d] = lf_online_merge(sm_m, sm_s, &sm_acc[0][d], LF_MAX_HEAD_DIM, warps);
}
