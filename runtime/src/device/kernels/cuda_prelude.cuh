// CUDA spellings of what the kernels use beyond C++ (NVRTC needs no header for these).
#define LF_SHFL_XOR(v, o) __shfl_xor_sync(0xffffffffu, (v), (o))
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
