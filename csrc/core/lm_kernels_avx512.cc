// AVX-512 build of the engine's kernels (16 lanes); see lm_kernels.h. Compiled with
// -mavx512f (csrc/CMakeLists.txt) and -ffp-contract=off, so a multiplication and the
// addition after it are never fused into vfmadd. Run only after lm_kernels.cc has checked
// the CPU.
#include "core/lm_kernels.h"

#include <cstdint>
#include <cstring>

#include "core/det_math.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__AVX512F__)
#include <immintrin.h>

namespace soundspring::lm {
namespace {

struct VecAvx512 {
  using T = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kRows = 4;     // 4 x 4 accumulators + 4 weights + 1 broadcast <= 32 zmm
  static constexpr int kVectors = 4;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T set1(float f) { return _mm512_set1_ps(f); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T load_weights(const float* p) { return load(p); }
  // Exact widening (AVX-512F vcvtph2ps). The zero-masked form with every lane selected is
  // the plain conversion; it avoids GCC 12's false -Wmaybe-uninitialized in _mm512_cvtph_ps.
  static T load_weights(const uint16_t* p) {
    return _mm512_maskz_cvtph_ps(static_cast<__mmask16>(0xFFFF),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  // Block-float q: sign-extend, convert exactly (zero-masked forms, every lane selected,
  // for the same GCC 12 warning as above).
  static T load_weights(const int8_t* p) {
    const __mmask16 all = static_cast<__mmask16>(0xFFFF);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));  // 16 bytes
    return _mm512_maskz_cvtepi32_ps(all, _mm512_maskz_cvtepi8_epi32(all, q));
  }
};

#include "core/lm_kernels_impl.h"

constexpr int kActLanes = 16;
typedef float ActF __attribute__((vector_size(64)));
typedef int32_t ActI __attribute__((vector_size(64)));
#include "core/act_kernels_impl.h"
#include "core/det_exp_impl.h"
constexpr int kCdfLanes = 8;  // doubles per vector of the CDF kernels (zmm)

}  // namespace

extern const Kernels kKernelsAvx512 = {Isa::kAvx512, "avx512", &matmul_bias_impl<VecAvx512, float>,
                                       &matmul_bias_impl<VecAvx512, uint16_t>,
                                       &matmul_bias_int8_impl<VecAvx512>, &act_elu, &act_gelu_n,
                                       &cdf_exp_row_impl<kCdfLanes>, &cdf_row_impl<kCdfLanes>};

}  // namespace soundspring::lm
#endif
