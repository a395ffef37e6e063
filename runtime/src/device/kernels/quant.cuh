// Dequantization of one 32-value chunk of a row, per ggml block format. The arithmetic is
// the CPU reference's (runtime/src/dtype/quant.rs) operation for operation: the same
// products in the same order, so that without contraction into multiply-adds the values are
// bit-identical (the host test checks this).
//
// `row` points at the row's first block; `c` is the chunk index (values 32c .. 32c + 31).

LF_HD void lf_deq_q4_0(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)c * 18;
    float d = lf_f16_at(b);
    const lf_u8* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = (float)((int)(qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((int)(qs[j] >> 4) - 8) * d;
    }
}

LF_HD void lf_deq_q4_1(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)c * 20;
    float d = lf_f16_at(b), m = lf_f16_at(b + 2);
    const lf_u8* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = (float)(qs[j] & 0x0F) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

LF_HD void lf_deq_q5_0(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)c * 22;
    float d = lf_f16_at(b);
    lf_u32 qh = lf_u32_at(b + 2);
    const lf_u8* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        int h0 = (qh & (1u << j)) ? 0x10 : 0;
        int h1 = (qh & (1u << (j + 16))) ? 0x10 : 0;
        y[j] = (float)(((int)(qs[j] & 0x0F) | h0) - 16) * d;
        y[j + 16] = (float)(((int)(qs[j] >> 4) | h1) - 16) * d;
    }
}

LF_HD void lf_deq_q5_1(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)c * 24;
    float d = lf_f16_at(b), m = lf_f16_at(b + 2);
    lf_u32 qh = lf_u32_at(b + 4);
    const lf_u8* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        int h0 = (qh & (1u << j)) ? 0x10 : 0;
        int h1 = (qh & (1u << (j + 16))) ? 0x10 : 0;
        y[j] = (float)((int)(qs[j] & 0x0F) | h0) * d + m;
        y[j + 16] = (float)((int)(qs[j] >> 4) | h1) * d + m;
    }
}

LF_HD void lf_deq_q8_0(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)c * 34;
    float d = lf_f16_at(b);
    for (int j = 0; j < 32; ++j) {
        y[j] = (float)(lf_i8)b[2 + j] * d;
    }
}

// The 6-bit scale and minimum of sub-block j (0..8) of Q4_K / Q5_K (ggml get_scale_min_k4).
LF_HD void lf_scale_min_k4(int j, const lf_u8* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

LF_HD void lf_deq_q4_k(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)(c >> 3) * 144;
    int sub = c & 7, p = sub >> 1;
    float d = lf_f16_at(b), dmin = lf_f16_at(b + 2);
    int sc, mi;
    lf_scale_min_k4(sub, b + 4, &sc, &mi);
    float d1 = d * (float)sc, m1 = dmin * (float)mi;
    const lf_u8* q = b + 16 + 32 * p;
    int shift = (sub & 1) ? 4 : 0;
    for (int l = 0; l < 32; ++l) {
        y[l] = d1 * (float)((q[l] >> shift) & 0x0F) - m1;
    }
}

LF_HD void lf_deq_q5_k(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)(c >> 3) * 176;
    int sub = c & 7, p = sub >> 1;
    float d = lf_f16_at(b), dmin = lf_f16_at(b + 2);
    int sc, mi;
    lf_scale_min_k4(sub, b + 4, &sc, &mi);
    float d1 = d * (float)sc, m1 = dmin * (float)mi;
    const lf_u8* qh = b + 16;
    const lf_u8* ql = b + 48 + 32 * p;
    int shift = (sub & 1) ? 4 : 0;
    lf_u32 bit = 1u << sub;
    for (int l = 0; l < 32; ++l) {
        int h = (qh[l] & bit) ? 16 : 0;
        y[l] = d1 * (float)(((ql[l] >> shift) & 0x0F) + h) - m1;
    }
}

LF_HD void lf_deq_q6_k(const lf_u8* row, int c, float* y) {
    const lf_u8* b = row + (long long)(c >> 3) * 210;
    int sub = c & 7, half = sub >> 2, pass = sub & 3;
    float d = lf_f16_at(b + 208);
    const lf_u8* ql = b + 64 * half + 32 * (pass & 1);
    const lf_u8* qh = b + 128 + 32 * half;
    int low_shift = 4 * (pass >> 1);
    const lf_u8* scales = b + 192 + 8 * half + 2 * pass;
    float dl0 = d * (float)(lf_i8)scales[0];
    float dl1 = d * (float)(lf_i8)scales[1];
    for (int l = 0; l < 32; ++l) {
        int q = (int)(((ql[l] >> low_shift) & 0x0F) | (((qh[l] >> (2 * pass)) & 3) << 4)) - 32;
        y[l] = (l < 16 ? dl0 : dl1) * (float)q;
    }
}

// One value of a plain float row.
LF_HD float lf_float_at(int dt, const lf_u8* row, long long i) {
    if (dt == LF_F32) return lf_bits_f32(lf_u32_at(row + 4 * i));
    if (dt == LF_F16) return lf_f16_at(row + 2 * i);
    return lf_bf16_at(row + 2 * i);
}

// Chunk `c` of a row of type `dt` into y[0..32]. For plain floats the row must hold the whole
// chunk (callers handle a tail of fewer than 32 values with lf_float_at).
LF_HD void lf_deq_chunk(int dt, const lf_u8* row, int c, float* y) {
    switch (dt) {
    case LF_Q4_0: lf_deq_q4_0(row, c, y); break;
    case LF_Q4_1: lf_deq_q4_1(row, c, y); break;
    case LF_Q5_0: lf_deq_q5_0(row, c, y); break;
    case LF_Q5_1: lf_deq_q5_1(row, c, y); break;
    case LF_Q8_0: lf_deq_q8_0(row, c, y); break;
    case LF_Q4_K: lf_deq_q4_k(row, c, y); break;
    case LF_Q5_K: lf_deq_q5_k(row, c, y); break;
    case LF_Q6_K: lf_deq_q6_k(row, c, y); break;
    default:
        for (int l = 0; l < 32; ++l) y[l] = lf_float_at(dt, row, (long long)c * 32 + l);
        break;
    }
}

// Dot product of chunk `c` of a row with x[32c .. 32c + 31] (f32 activations, not rounded).
LF_HD float lf_dot_chunk(int dt, const lf_u8* row, int c, const float* x) {
    float y[32];
    lf_deq_chunk(dt, row, c, y);
    const float* xc = x + (long long)c * 32;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (int l = 0; l < 32; l += 4) {
        s0 += y[l] * xc[l];
        s1 += y[l + 1] * xc[l + 1];
        s2 += y[l + 2] * xc[l + 2];
        s3 += y[l + 3] * xc[l + 3];
    }
    return (s0 + s1) + (s2 + s3);
}

// The dot product of a whole row of k values with x, sequentially over chunks (what one GPU
// thread does for its share; the host test runs it over whole rows).
LF_HD float lf_dot_row(int dt, const lf_u8* row, int k, const float* x) {
    float s = 0.0f;
    if (lf_block_size(dt) == 1) {
        for (int i = 0; i < k; ++i) s += lf_float_at(dt, row, i) * x[i];
        return s;
    }
    for (int c = 0; c < k / 32; ++c) s += lf_dot_chunk(dt, row, c, x);
    return s;
}
