// Run-time choice of the engine's kernels (see lm_kernels.h): the portable build, and on
// x86-64 the SSE2 / AVX2 / AVX-512 builds of lm_kernels_<isa>.cc, checked against the CPU.
#include "core/lm_kernels.h"

#include <cstdint>
#include <cstring>

#include "core/det_math.h"

namespace soundspring::lm {

#if defined(__x86_64__) || defined(_M_X64)
#define SOUNDSPRING_LM_X86 1
extern const Kernels kKernelsSse2;
#if defined(SOUNDSPRING_LM_HAVE_AVX2)
extern const Kernels kKernelsAvx2;
#endif
#if defined(SOUNDSPRING_LM_HAVE_AVX512)
extern const Kernels kKernelsAvx512;
#endif
#endif

namespace {

// The portable level: 16-lane vectors as plain arrays (the compiler vectorises the lane
// loops for whatever the target has) with exactly the AVX-512 level's tiling (16 lanes,
// 4 rows x 4 vectors), so this build's tests run the tiling the AVX-512 kernels use even on
// CPUs without AVX-512. Element-wise, hence the same bits.
struct VecPortable16 {
  static constexpr int kLanes = 16;
  static constexpr int kRows = 4;
  static constexpr int kVectors = 4;
  struct T {
    float lane[kLanes];
  };
  static T zero() {
    T v;
    for (float& x : v.lane) x = 0.0f;
    return v;
  }
  static T load(const float* p) {
    T v;
    std::memcpy(v.lane, p, sizeof v.lane);
    return v;
  }
  static void store(float* p, const T& v) { std::memcpy(p, v.lane, sizeof v.lane); }
  static T set1(float f) {
    T v;
    for (float& x : v.lane) x = f;
    return v;
  }
  static T add(const T& a, const T& b) {
    T v;
    for (int i = 0; i < kLanes; ++i) v.lane[i] = a.lane[i] + b.lane[i];
    return v;
  }
  static T mul(const T& a, const T& b) {
    T v;
    for (int i = 0; i < kLanes; ++i) v.lane[i] = a.lane[i] * b.lane[i];
    return v;
  }
  static T load_weights(const float* p) { return load(p); }
};

#include "core/lm_kernels_impl.h"

constexpr int kActLanes = 4;
typedef float ActF __attribute__((vector_size(16)));
typedef int32_t ActI __attribute__((vector_size(16)));
#include "core/act_kernels_impl.h"
#include "core/det_exp_impl.h"
constexpr int kCdfLanes = 8;  // doubles per vector of the CDF kernels: the AVX-512 level's

// No binary16 or int8 kernels: the portable level is the float32 reference that the other
// storages are tested against.
const Kernels kKernelsGeneric = {Isa::kGeneric, "generic", &matmul_bias_impl<VecPortable16, float>,
                                 nullptr, nullptr, &act_elu, &act_gelu_n,
                                 &cdf_exp_row_impl<kCdfLanes>, &cdf_row_impl<kCdfLanes>};

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::kAuto:
    case Isa::kGeneric:
      return true;
#if defined(SOUNDSPRING_LM_X86)
    case Isa::kSse2:
      return true;  // part of x86-64
    case Isa::kAvx2:
#if defined(SOUNDSPRING_LM_HAVE_AVX2)
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#else
      return false;
#endif
    case Isa::kAvx512:
#if defined(SOUNDSPRING_LM_HAVE_AVX512)
      return __builtin_cpu_supports("avx512f");
#else
      return false;
#endif
#else
    case Isa::kSse2:
    case Isa::kAvx2:
    case Isa::kAvx512:
      return false;
#endif
  }
  return false;
}

}  // namespace

bool isa_supported(Isa isa) { return cpu_has(isa); }

Isa best_isa() {
  if (cpu_has(Isa::kAvx512)) return Isa::kAvx512;
  if (cpu_has(Isa::kAvx2)) return Isa::kAvx2;
  if (cpu_has(Isa::kSse2)) return Isa::kSse2;
  return Isa::kGeneric;
}

const Kernels* kernels_for(Isa isa) {
  if (isa == Isa::kAuto) isa = best_isa();
  if (!cpu_has(isa)) return nullptr;
  switch (isa) {
    case Isa::kGeneric:
      return &kKernelsGeneric;
#if defined(SOUNDSPRING_LM_X86)
    case Isa::kSse2:
      return &kKernelsSse2;
#if defined(SOUNDSPRING_LM_HAVE_AVX2)
    case Isa::kAvx2:
      return &kKernelsAvx2;
#endif
#if defined(SOUNDSPRING_LM_HAVE_AVX512)
    case Isa::kAvx512:
      return &kKernelsAvx512;
#endif
#endif
    default:
      return nullptr;
  }
}

bool parse_isa(const char* name, Isa* out) {
  static const struct {
    const char* name;
    Isa isa;
  } kNames[] = {{"auto", Isa::kAuto}, {"generic", Isa::kGeneric}, {"sse2", Isa::kSse2},
                {"avx2", Isa::kAvx2}, {"avx512", Isa::kAvx512}};
  if (name == nullptr) return false;
  for (const auto& entry : kNames) {
    if (std::strcmp(name, entry.name) == 0) {
      *out = entry.isa;
      return true;
    }
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAuto: return "auto";
    case Isa::kGeneric: return "generic";
    case Isa::kSse2: return "sse2";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

}  // namespace soundspring::lm
