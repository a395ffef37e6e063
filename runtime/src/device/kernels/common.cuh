// lazyforge GPU kernels: shared definitions. Compiled at run time with NVRTC (CUDA) or
// hiprtc (HIP, after hip_compat.cuh), and on the host by the `kernels_on_the_host` test
// (after host_shim.h). No system header is included, so every compiler sees the same code.
//
// LF_HD marks functions that run on the device and, in the host test, on the CPU.

#ifndef LF_HD
#define LF_HD __device__ __forceinline__
#endif

typedef unsigned char lf_u8;
typedef unsigned short lf_u16;
typedef unsigned int lf_u32;
typedef signed char lf_i8;

// ggml type ids (the same as lazyforge's DType::gguf_id).
#define LF_F32 0
#define LF_F16 1
#define LF_Q4_0 2
#define LF_Q4_1 3
#define LF_Q5_0 6
#define LF_Q5_1 7
#define LF_Q8_0 8
#define LF_Q4_K 12
#define LF_Q5_K 13
#define LF_Q6_K 14
#define LF_BF16 30

// Values per chunk: the unit a thread dequantizes (a block of the 32-value formats, an eighth
// of a K-quant block, 32 plain floats).
#define LF_CHUNK 32

LF_HD lf_u32 lf_u16_at(const lf_u8* b) { return (lf_u32)b[0] | ((lf_u32)b[1] << 8); }

LF_HD lf_u32 lf_u32_at(const lf_u8* b) {
    return (lf_u32)b[0] | ((lf_u32)b[1] << 8) | ((lf_u32)b[2] << 16) | ((lf_u32)b[3] << 24);
}

LF_HD float lf_bits_f32(lf_u32 bits) { return __uint_as_float(bits); }

// IEEE half to float, exactly (subnormals, infinities and NaNs included).
LF_HD float lf_f16(lf_u32 h) {
    lf_u32 sign = (h & 0x8000u) << 16;
    lf_u32 exp = (h >> 10) & 0x1fu;
    lf_u32 mant = h & 0x3ffu;
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24, exact in f32.
        float f = (float)mant * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31) {
        return lf_bits_f32(sign | 0x7f800000u | (mant << 13));
    }
    return lf_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

LF_HD float lf_f16_at(const lf_u8* b) { return lf_f16(lf_u16_at(b)); }

// bfloat16 to float: the top half of an f32.
LF_HD float lf_bf16_at(const lf_u8* b) { return lf_bits_f32(lf_u16_at(b) << 16); }

// Bytes per block and values per block of a ggml type (0 for a type the kernels lack).
LF_HD int lf_type_size(int dt) {
    switch (dt) {
    case LF_F32: return 4;
    case LF_F16: return 2;
    case LF_BF16: return 2;
    case LF_Q4_0: return 18;
    case LF_Q4_1: return 20;
    case LF_Q5_0: return 22;
    case LF_Q5_1: return 24;
    case LF_Q8_0: return 34;
    case LF_Q4_K: return 144;
    case LF_Q5_K: return 176;
    case LF_Q6_K: return 210;
    default: return 0;
    }
}

LF_HD int lf_block_size(int dt) {
    switch (dt) {
    case LF_F32: case LF_F16: case LF_BF16: return 1;
    case LF_Q4_K: case LF_Q5_K: case LF_Q6_K: return 256;
    default: return 32;
    }
}
