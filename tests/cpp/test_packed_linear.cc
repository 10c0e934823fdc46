// Tests of csrc/core/packed_linear.h and the matmul_bias_int8 kernels of lm_kernels.h: the
// block exponent and int8 exactness rules, pack_to_int8 refusing inexact weights (p left
// unchanged), and the int8 kernel of every ISA level compiled in and runnable here equal bit
// for bit to the float32 kernel (its own level's and the portable reference) over odd and
// aligned shapes, 1 to many rows, padded rows and columns, subnormal products, zero and -0
// columns; pack_smallest's int8 -> binary16 -> float32 order.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "core/lm_kernels.h"
#include "core/packed_linear.h"

namespace lm = soundspring::lm;
using lm::Isa;
using lm::PackedLinear;
using lm::WeightStorage;

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// [out, in] block-float weights: column c is q 2^e_c with q uniform in [-127, 127] and e_c
// drawn from a wide range (down to the float32 subnormal grid), or with half_range from
// exponents whose values are all binary16 too; plus a zero column and a column of zeros of
// both signs when out allows.
std::vector<float> block_float_weights(int out, int in, uint32_t seed, bool half_range = false) {
  static const int kExponents[] = {-20, -9, -7, 0, 3, -149, -140, -133, -60, 20};
  constexpr int kHalfExponents = 5;  // the first five: q 2^e is a binary16 for |q| <= 127
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> q(-lm::kInt8MaxMagnitude, lm::kInt8MaxMagnitude);
  const int n_exp =
      half_range ? kHalfExponents : static_cast<int>(sizeof kExponents / sizeof kExponents[0]);
  std::uniform_int_distribution<int> pick(0, n_exp - 1);
  std::vector<float> w(static_cast<size_t>(out) * static_cast<size_t>(in));
  for (int o = 0; o < out; ++o) {
    const int e = kExponents[pick(gen)];
    for (int i = 0; i < in; ++i)
      w[static_cast<size_t>(o) * in + i] = std::ldexp(static_cast<float>(q(gen)), e);
  }
  if (out >= 3) {
    for (int i = 0; i < in; ++i) {
      w[static_cast<size_t>(1) * in + i] = 0.0f;
      w[static_cast<size_t>(2) * in + i] = i % 2 ? -0.0f : 0.0f;
    }
  }
  return w;
}

std::vector<float> normal(size_t n, float scale, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

void test_exponent_and_exactness() {
  CHECK(lm::int8_exponent(0.0f) == 0);
  CHECK(lm::int8_exponent(127.0f) == 0);
  CHECK(lm::int8_exponent(127.5f) == 1);
  CHECK(lm::int8_exponent(128.0f) == 1);
  CHECK(lm::int8_exponent(1.0f) == -6);         // 127 2^-7 < 1 <= 127 2^-6
  CHECK(lm::int8_exponent(0.9921875f) == -7);   // 127 / 128 exactly
  CHECK(lm::int8_exponent(std::ldexp(1.0f, -149)) == lm::kInt8MinExponent);
  CHECK(lm::int8_exponent(std::ldexp(1.0f, -140)) == -146);  // 64 2^-146
  CHECK(lm::int8_exponent(std::ldexp(1.0f, -145)) == lm::kInt8MinExponent);
  CHECK(lm::int8_exponent(FLT_MAX) == 122);

  int8_t q = 0;
  CHECK(lm::int8_exact(std::ldexp(3.0f, -5), -5, &q) && q == 3);
  CHECK(lm::int8_exact(-127.0f, 0, &q) && q == -127);
  CHECK(lm::int8_exact(std::ldexp(-5.0f, -149), -149, &q) && q == -5);
  CHECK(lm::int8_exact(-0.0f, -3, &q) && q == 0);
  CHECK(!lm::int8_exact(128.0f, 0, &q));        // |q| > 127
  CHECK(!lm::int8_exact(-128.0f, 0, &q));       // the symmetric range leaves -128 out
  CHECK(!lm::int8_exact(0.5f, 0, &q));          // not a multiple of 2^e
  CHECK(!lm::int8_exact(0.1f, -10, &q));
  CHECK(!lm::int8_exact(INFINITY, 0, &q));
  CHECK(!lm::int8_exact(NAN, 0, &q));
  CHECK(std::strcmp(lm::weight_storage_name(WeightStorage::kInt8), "int8") == 0);
  CHECK(std::strcmp(lm::weight_storage_name(WeightStorage::kBinary16), "binary16") == 0);
  CHECK(std::strcmp(lm::weight_storage_name(WeightStorage::kFloat32), "float32") == 0);
}

void test_pack_to_int8() {
  const int out = 19, in = 21;
  const std::vector<float> w = block_float_weights(out, in, 7);
  const std::vector<float> bias = normal(out, 1.0f, 8);
  PackedLinear p;
  lm::pack_linear(w.data(), bias.data(), out, in, &p);
  const std::vector<float> w32 = p.w;
  CHECK(lm::pack_to_int8(&p));
  CHECK(p.storage() == WeightStorage::kInt8 && p.w.empty() && p.w16.empty());
  CHECK(p.w8.size() == w32.size() && p.w8_scale.size() == p.ld);
  for (size_t c = 1; c < 3; ++c) CHECK(p.w8_scale[c] == 1.0f);                 // zero columns
  for (size_t c = static_cast<size_t>(out); c < p.ld; ++c) CHECK(p.w8_scale[c] == 1.0f);  // padding
  bool pow2 = true;
  for (float s : p.w8_scale) {
    int e = 0;
    pow2 = pow2 && std::frexp(s, &e) == 0.5f;
  }
  CHECK(pow2);
  // Widening gives the packed float32 values back (-0.0 as +0.0: equal as values).
  const std::vector<float> back = lm::widened_weights(p);
  bool equal = back.size() == w32.size();
  for (size_t i = 0; i < back.size() && equal; ++i) equal = back[i] == w32[i];
  CHECK(equal);

  // One inexact value in one column: refused, p unchanged.
  for (const float bad : {std::ldexp(255.0f, -8), 0.1f, 1e30f, NAN, INFINITY}) {
    std::vector<float> w_bad = w;
    w_bad[static_cast<size_t>(5) * in + 3] = bad;
    w_bad[static_cast<size_t>(5) * in + 4] = 1.0f;  // sets the column's exponent to -6
    PackedLinear r;
    lm::pack_linear(w_bad.data(), bias.data(), out, in, &r);
    const std::vector<float> before = r.w;
    CHECK(!lm::pack_to_int8(&r));
    CHECK(r.storage() == WeightStorage::kFloat32 && r.w8.empty() && r.w8_scale.empty());
    CHECK(same_bits(r.w, before));
  }
  std::vector<int8_t> q(3, 1);
  std::vector<float> scale(3, 2.0f);
  const std::vector<float> inexact(static_cast<size_t>(lm::kColumnAlign), 0.3f);
  CHECK(!lm::to_int8(inexact, 1, static_cast<size_t>(lm::kColumnAlign), &q, &scale));
  CHECK(q.empty() && scale.empty());
}

// The int8 kernel against the float32 kernels on the same weights, bit for bit.
void test_int8_kernel_equals_float_kernel() {
  const lm::Kernels* reference = lm::kernels_for(Isa::kGeneric);
  CHECK(reference != nullptr && reference->matmul_bias_int8 == nullptr);
  int levels = 0;
  for (Isa isa : {Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    if (!lm::isa_supported(isa)) continue;
    const lm::Kernels* k = lm::kernels_for(isa);
    CHECK(k->matmul_bias_int8 != nullptr);
    ++levels;
    int mismatches = 0, cases = 0;
    uint32_t seed = 100;
    for (int out : {1, 5, 16, 17, 33, 64, 100}) {
      for (int in : {1, 3, 16, 17, 40}) {
        ++seed;
        const std::vector<float> w = block_float_weights(out, in, seed);
        const std::vector<float> bias = normal(static_cast<size_t>(out), 0.5f, seed + 1000);
        PackedLinear f, q;
        lm::pack_linear(w.data(), bias.data(), out, in, &f);
        lm::pack_linear(w.data(), bias.data(), out, in, &q);
        CHECK(lm::pack_to_int8(&q));
        for (size_t rows : {1, 2, 3, 4, 5, 7, 9, 16}) {
          const size_t ldx = static_cast<size_t>(in) + 3, ldy = f.ld + 16;
          // Mostly unit-scale inputs, some tiny ones (subnormal products and sums).
          std::vector<float> x = normal(rows * ldx, 1.0f, seed + static_cast<uint32_t>(rows));
          for (size_t i = 0; i < x.size(); i += 5) x[i] = std::ldexp(x[i], -30);
          std::vector<float> want(rows * ldy, 0.0f), got(rows * ldy, 0.0f), same(rows * ldy, 0.0f),
              via_linear(rows * ldy, 0.0f);
          reference->matmul_bias(x.data(), ldx, rows, f.w.data(), static_cast<size_t>(in),
                                 f.b.data(), want.data(), ldy, f.ld);
          k->matmul_bias(x.data(), ldx, rows, f.w.data(), static_cast<size_t>(in), f.b.data(),
                         same.data(), ldy, f.ld);
          k->matmul_bias_int8(x.data(), ldx, rows, q.w8.data(), q.w8_scale.data(),
                              static_cast<size_t>(in), q.b.data(), got.data(), ldy, q.ld);
          lm::linear(*k, x.data(), ldx, rows, q, via_linear.data(), ldy);
          ++cases;
          if (!same_bits(got, want) || !same_bits(same, want) || !same_bits(via_linear, want)) {
            ++mismatches;
            std::printf("%s: int8 != float32 for out=%d in=%d rows=%zu\n", k->name, out, in, rows);
          }
          if (q.ld >= 2 * static_cast<size_t>(lm::kColumnAlign)) {  // one panel range only
            const size_t c0 = static_cast<size_t>(lm::kColumnAlign);
            std::vector<float> part(rows * ldy, 0.0f);
            lm::linear_columns(*k, x.data(), ldx, rows, q, c0, q.ld - c0, part.data(), ldy);
            bool ok = true;
            for (size_t r = 0; r < rows && ok; ++r)
              ok = std::memcmp(part.data() + r * ldy, want.data() + r * ldy + c0,
                               (q.ld - c0) * sizeof(float)) == 0;
            if (!ok) ++mismatches;
          }
        }
      }
    }
    CHECK(mismatches == 0);
    CHECK(cases > 0);
  }
  std::printf("int8 kernels checked on %d ISA level(s)\n", levels);
}

void test_pack_smallest_order() {
  const int out = 20, in = 18;
  const std::vector<float> w8 = block_float_weights(out, in, 3, /*half_range=*/true);
  std::vector<float> w16(w8.size());  // binary16 values with 11 significant bits: not int8
  for (size_t i = 0; i < w16.size(); ++i)
    w16[i] = std::ldexp(static_cast<float>(1025 + i % 900), -12);
  const std::vector<float> w32 = normal(w8.size(), 0.1f, 4);
  auto packed = [&](const std::vector<float>& w) {
    PackedLinear p;
    lm::pack_linear(w.data(), nullptr, out, in, &p);
    return p;
  };
  for (Isa isa : {Isa::kGeneric, Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    if (!lm::isa_supported(isa)) continue;
    const lm::Kernels& k = *lm::kernels_for(isa);
    const bool has8 = k.matmul_bias_int8 != nullptr, has16 = k.matmul_bias_half != nullptr;
    PackedLinear a = packed(w8), b = packed(w8);
    CHECK(lm::pack_smallest(k, {&a, &b}) ==
          (has8    ? WeightStorage::kInt8
           : has16 ? WeightStorage::kBinary16
                   : WeightStorage::kFloat32));
    CHECK(a.storage() == b.storage());
    PackedLinear c = packed(w8), d = packed(w16);  // one matrix not int8: both binary16
    const WeightStorage cd = lm::pack_smallest(k, {&c, &d});
    CHECK(cd == (has16 ? WeightStorage::kBinary16 : WeightStorage::kFloat32));
    CHECK(c.storage() == cd && d.storage() == cd);
    PackedLinear e = packed(w8), f = packed(w32);  // one matrix exact in neither: all float32
    CHECK(lm::pack_smallest(k, {&e, &f}) == WeightStorage::kFloat32);
    CHECK(e.storage() == WeightStorage::kFloat32 && f.storage() == WeightStorage::kFloat32);
  }
}

}  // namespace

int main() {
  test_exponent_and_exactness();
  test_pack_to_int8();
  test_int8_kernel_equals_float_kernel();
  test_pack_smallest_order();
  return soundspring_test::report("test_packed_linear");
}
