// SSE2 build of the engine's kernels (4 lanes); see lm_kernels.h. The x86-64 baseline:
// needs no extra compiler flag.
#include "core/lm_kernels.h"

#include <cstdint>
#include <cstring>

#include "core/det_math.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>

namespace soundspring::lm {
namespace {

struct VecSse2 {
  using T = __m128;
  static constexpr int kLanes = 4;
  static constexpr int kRows = 2;     // 2 x 4 accumulators + 4 weights + 1 broadcast <= 16 xmm
  static constexpr int kVectors = 4;
  static T zero() { return _mm_setzero_ps(); }
  static T load(const float* p) { return _mm_loadu_ps(p); }
  static void store(float* p, T v) { _mm_storeu_ps(p, v); }
  static T set1(float f) { return _mm_set1_ps(f); }
  static T add(T a, T b) { return _mm_add_ps(a, b); }
  static T mul(T a, T b) { return _mm_mul_ps(a, b); }
  static T load_weights(const float* p) { return load(p); }
  // Block-float q: four int8 sign-extended to int32 (SSE2 has no pmovsxbd: replicate each
  // byte into its lane's top byte, then shift it down arithmetically), converted exactly.
  static T load_weights(const int8_t* p) {
    int32_t four;
    std::memcpy(&four, p, sizeof four);
    __m128i q = _mm_cvtsi32_si128(four);
    q = _mm_unpacklo_epi8(q, q);
    q = _mm_unpacklo_epi16(q, q);
    return _mm_cvtepi32_ps(_mm_srai_epi32(q, 24));
  }
};

#include "core/lm_kernels_impl.h"

constexpr int kActLanes = 4;
typedef float ActF __attribute__((vector_size(16)));
typedef int32_t ActI __attribute__((vector_size(16)));
#include "core/act_kernels_impl.h"
#include "core/det_exp_impl.h"
constexpr int kCdfLanes = 2;  // doubles per vector of the CDF kernels (xmm)

}  // namespace

extern const Kernels kKernelsSse2 = {Isa::kSse2, "sse2", &matmul_bias_impl<VecSse2, float>, nullptr,
                                   &matmul_bias_int8_impl<VecSse2>, &act_elu, &act_gelu_n,
                                   &cdf_exp_row_impl<kCdfLanes>, &cdf_row_impl<kCdfLanes>};

}  // namespace soundspring::lm
#endif
