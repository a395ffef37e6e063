// HIP spellings for the CUDA kernel sources, compiled with hiprtc. AMD GPUs run wavefronts
// of 64 lanes (CDNA; RDNA may run 32): the kernels only rely on groups of 32 consecutive
// lanes (LF_WARP), and a 32-wide XOR shuffle stays inside such a group on a 64-wide
// wavefront, so the same reductions are correct there. Block sizes are multiples of 64.
#define LF_SHFL_XOR(v, o) __shfl_xor((v), (o), 32)
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
