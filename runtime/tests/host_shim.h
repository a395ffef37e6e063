// Lets the kernels' device functions (common.cuh, quant.cuh) compile as plain C++ on the host,
// for the `kernels_on_the_host` test: CUDA's qualifiers are defined away and the one
// intrinsic they use is given its host meaning.
#include <cstring>
#include <math.h>
#define LF_HD static inline
#define __device__
#define __forceinline__ inline
static inline float __uint_as_float(unsigned int u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
