// AVX2 build of the engine's kernels (8 lanes); see lm_kernels.h. Compiled with -mavx2 -mf16c
// (cmake/SoundspringLmEngine.cmake): no -mfma, and -ffp-contract=off, so a multiplication and the
// addition after it are never fused. Run only after lm_kernels.cc has checked the CPU.
#include "core/lm_kernels.h"

#include <cstdint>
#include <cstring>

#include "core/det_math.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>

namespace soundspring::lm {
namespace {

struct VecAvx2 {
  using T = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kRows = 2;     // 2 x 4 accumulators + 4 weights + 1 broadcast <= 16 ymm
  static constexpr int kVectors = 4;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T set1(float f) { return _mm256_set1_ps(f); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T load_weights(const float* p) { return load(p); }
  static T load_weights(const uint16_t* p) {  // F16C: exact widening
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static T load_weights(const int8_t* p) {  // block-float q: sign-extend, convert exactly
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));  // 8 bytes
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  }
};

#include "core/lm_kernels_impl.h"

constexpr int kActLanes = 8;
typedef float ActF __attribute__((vector_size(32)));
typedef int32_t ActI __attribute__((vector_size(32)));
#include "core/act_kernels_impl.h"
#include "core/det_exp_impl.h"
constexpr int kCdfLanes = 4;  // doubles per vector of the CDF kernels (ymm)

}  // namespace

extern const Kernels kKernelsAvx2 = {Isa::kAvx2, "avx2", &matmul_bias_impl<VecAvx2, float>,
                                     &matmul_bias_impl<VecAvx2, uint16_t>,
                                     &matmul_bias_int8_impl<VecAvx2>, &act_elu, &act_gelu_n,
                                     &cdf_exp_row_impl<kCdfLanes>, &cdf_row_impl<kCdfLanes>};

}  // namespace soundspring::lm
#endif
