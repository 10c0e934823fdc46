// Tests of csrc/core/cdf.h and the row quantiser kernels (lm_kernels.h cdf_row): every ISA
// level, and the public cdf_from_logits, give bit for bit the CDFs of a plain scalar
// transcription of cdf.h's normative order of operations (on soundspring::det_exp), for
// alphabet sizes around every block length, ties, -inf, huge spreads, both residual paths and
// every precision; NaN, +inf and all -inf rows are refused naming the first bad symbol.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/cdf.h"
#include "core/lm_kernels.h"

using soundspring::lm::CdfRowError;
using soundspring::lm::Isa;
namespace lm = soundspring::lm;

namespace {

const Isa kLevels[] = {Isa::kGeneric, Isa::kSse2, Isa::kAvx2, Isa::kAvx512};
const float kInf = std::numeric_limits<float>::infinity();

// cdf.h's order of operations, one statement per line of its comment.
std::vector<uint32_t> reference_cdf(const std::vector<float>& logits, int precision_bits) {
  const int n = static_cast<int>(logits.size());
  float m = logits[0];
  int arg = 0;
  for (int i = 0; i < n; ++i)
    if (logits[i] > m) {
      m = logits[i];
      arg = i;
    }
  std::vector<double> e(logits.size());
  for (int i = 0; i < n; ++i)
    e[i] = soundspring::det_exp(static_cast<double>(logits[i]) - static_cast<double>(m));
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  for (int i = 0; i < n; ++i) s[i % 4] += e[i];
  const double sum = (s[0] + s[1]) + (s[2] + s[3]);
  const int64_t total = int64_t{1} << precision_bits;
  const double scale = static_cast<double>(total) / sum;
  std::vector<int64_t> f(logits.size());
  int64_t used = 0;
  for (int i = 0; i < n; ++i) {
    f[i] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(e[i] * scale + 0.5)));
    used += f[i];
  }
  int64_t residual = total - used;
  if (residual >= 0 || f[arg] + residual >= 1) {
    f[arg] += residual;
  } else {
    for (int i = 0; i < n && residual < 0; ++i) {
      const int64_t take = std::min<int64_t>(f[i] - 1, -residual);
      f[i] -= take;
      residual += take;
    }
  }
  std::vector<uint32_t> cdf(logits.size() + 1, 0);
  for (int i = 0; i < n; ++i) cdf[i + 1] = cdf[i] + static_cast<uint32_t>(f[i]);
  return cdf;
}

// Rows of length n of several kinds (kind 0..7).
std::vector<float> make_row(int n, int kind, std::mt19937* gen) {
  std::normal_distribution<float> narrow(0.0f, 2.0f), wide(0.0f, 300.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = kind == 1 ? wide(*gen) : narrow(*gen);
  switch (kind) {
    case 2:  // ties at the max, the first one not at a block start
      for (int i = n / 3; i < n; i += 5) x[static_cast<size_t>(i)] = 9.0f;
      break;
    case 3:  // -inf symbols (probability 0 -> frequency 1), the first logit among them
      for (int i = 0; i < n; i += 3) x[static_cast<size_t>(i)] = -kInf;
      x[static_cast<size_t>(n - 1)] = 0.5f;
      break;
    case 4:  // every logit equal, signed zeros mixed
      for (int i = 0; i < n; ++i) x[static_cast<size_t>(i)] = i % 2 ? 0.0f : -0.0f;
      break;
    case 5:  // one dominant symbol far above the rest (x < -700 below it)
      x[static_cast<size_t>(n / 2)] = 1000.0f;
      break;
    case 6:  // two equal dominant symbols: at low precision the residual path of take
      x[static_cast<size_t>(n / 4)] = 60.0f;
      x[static_cast<size_t>(n - 1)] = 60.0f;
      break;
    case 7:  // the max at the very end, float32 extremes below it
      x[0] = -3.4e38f;
      x[static_cast<size_t>(n - 1)] = 3.4e38f;
      break;
    default:
      break;
  }
  return x;
}

void test_rows_match_reference() {
  std::mt19937 gen(123);
  int compared = 0;
  for (int n : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 1023,
                1024}) {
    for (int bits : {16, 12, 10}) {
      if (n > (1 << bits)) continue;
      for (int kind = 0; kind < 8; ++kind) {
        const std::vector<float> row = make_row(n, kind, &gen);
        const std::vector<uint32_t> want = reference_cdf(row, bits);
        for (Isa isa : kLevels) {
          const lm::Kernels* k = lm::kernels_for(isa);
          if (k == nullptr) continue;
          std::vector<double> scratch(static_cast<size_t>(n), 7.0);
          std::vector<uint32_t> got(static_cast<size_t>(n) + 1, 12345u);
          int bad = -1;
          const CdfRowError err = k->cdf_row(row.data(), n, bits, scratch.data(), got.data(), &bad);
          const bool ok = err == CdfRowError::kNone && got == want;
          if (!ok) {
            size_t d = 0;
            while (d < got.size() && got[d] == want[d]) ++d;
            std::printf("  %s: n=%d bits=%d kind=%d: cdf[%zu] = %u, the reference has %u\n",
                        k->name, n, bits, kind, d, d < got.size() ? got[d] : 0u,
                        d < want.size() ? want[d] : 0u);
          }
          CHECK(ok);
          ++compared;
        }
        std::vector<uint32_t> pub(static_cast<size_t>(n) + 1);
        CHECK(soundspring::cdf_from_logits(row.data(), 1, n, bits, pub.data()).ok());
        CHECK(pub == want);
      }
    }
  }
  CHECK(compared > 0);
}

void test_batches_match_rows() {
  // cdf_from_logits over many rows equals each row alone (no state carried between rows).
  std::mt19937 gen(5);
  const int n = 1024, rows = 9;
  std::vector<float> all;
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> row = make_row(n, r % 8, &gen);
    all.insert(all.end(), row.begin(), row.end());
  }
  std::vector<uint32_t> out(static_cast<size_t>(rows) * (n + 1));
  CHECK(soundspring::cdf_from_logits(all.data(), rows, n, 16, out.data()).ok());
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> row(all.begin() + r * n, all.begin() + (r + 1) * n);
    const std::vector<uint32_t> want = reference_cdf(row, 16);
    CHECK(std::equal(want.begin(), want.end(), out.begin() + r * (n + 1)));
  }
}

void test_refusals() {
  for (Isa isa : kLevels) {
    const lm::Kernels* k = lm::kernels_for(isa);
    if (k == nullptr) continue;
    for (int n : {1, 5, 40, 1024}) {
      std::vector<double> scratch(static_cast<size_t>(n));
      std::vector<uint32_t> cdf(static_cast<size_t>(n) + 1);
      for (int at : {0, n / 2, n - 1}) {
        for (float badv : {std::nanf(""), kInf}) {
          std::vector<float> row(static_cast<size_t>(n), 1.0f);
          row[static_cast<size_t>(at)] = badv;
          if (at + 1 < n) row[static_cast<size_t>(n - 1)] = std::nanf("");  // a later one too
          int bad = -1;
          CHECK(k->cdf_row(row.data(), n, 16, scratch.data(), cdf.data(), &bad) ==
                CdfRowError::kNonFinite);
          CHECK(bad == at);
        }
      }
      std::vector<float> row(static_cast<size_t>(n), -kInf);
      int bad = -1;
      CHECK(k->cdf_row(row.data(), n, 16, scratch.data(), cdf.data(), &bad) ==
            CdfRowError::kAllNegInf);
    }
  }
  // The public function names the row, the value and the symbol.
  std::vector<float> two(2 * 8, 0.0f);
  two[8 + 3] = kInf;
  std::vector<uint32_t> out(2 * 9);
  const soundspring::Status st = soundspring::cdf_from_logits(two.data(), 2, 8, 16, out.data());
  CHECK(!st.ok());
  CHECK(st.message().find("row 1") != std::string::npos);
  CHECK(st.message().find("+inf at symbol 3") != std::string::npos);
}

}  // namespace

int main() {
  test_rows_match_reference();
  test_batches_match_rows();
  test_refusals();
  return soundspring_test::report("test_cdf");
}
