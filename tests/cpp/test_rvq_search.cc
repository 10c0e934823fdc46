// Tests of csrc/core/rvq_search.h: the chosen codes against a float64 reference (exact
// argmin except between candidates within float rounding), identical bits for every ISA
// level, thread count, storage and row split, the rate term, ties and input errors.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "check.h"
#include "core/rvq_search.h"

using soundspring::StatusCode;
using soundspring::lm::Isa;
namespace rvq = soundspring::rvq;

namespace {

std::vector<float> normal(size_t n, float scale, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> out(n);
  for (float& x : out) x = dist(gen);
  return out;
}

std::unique_ptr<rvq::Codebooks> make(const std::vector<float>& cb, int k, int v, int d, Isa isa,
                                     int threads, rvq::Storage storage) {
  rvq::SearchOptions opt;
  opt.isa = isa;
  opt.num_threads = threads;
  opt.storage = storage;
  std::unique_ptr<rvq::Codebooks> out;
  const auto st = rvq::Codebooks::Create(cb.data(), k, v, d, opt, &out);
  if (!st.ok()) std::printf("Create failed: %s\n", st.message().c_str());
  return out;
}

// float64 greedy reference: per level the full squared distance plus lambda * bits; returns
// the number of rows x levels where the kernel's pick differs from the float64 argmin by
// more than `tol` (relative to the scale of the distances) after following the kernel's
// picks (so one close call does not derail the later levels).
int reference_violations(const std::vector<float>& cb, int v, int d, const std::vector<float>& r0,
                         int rows, int lo, int hi, const std::vector<float>* bits, int width,
                         float lambda, const std::vector<int64_t>& codes, int* exact) {
  int bad = 0;
  *exact = 0;
  const int levels = hi - lo;
  for (int n = 0; n < rows; ++n) {
    std::vector<double> r(r0.begin() + n * d, r0.begin() + (n + 1) * d);
    for (int k = lo; k < hi; ++k) {
      double best = INFINITY, scale = 0.0;
      int arg = -1;
      std::vector<double> score(static_cast<size_t>(v));
      for (int c = 0; c < v; ++c) {
        const float* w = cb.data() + (static_cast<size_t>(k) * v + c) * d;
        double s = 0.0, mag = 0.0;
        for (int i = 0; i < d; ++i) {
          const double diff = r[i] - static_cast<double>(w[i]);
          s += diff * diff;
          mag += r[i] * r[i] + static_cast<double>(w[i]) * w[i];
        }
        if (bits != nullptr) {
          s += static_cast<double>(lambda) *
               (*bits)[(static_cast<size_t>(n) * levels + (k - lo)) * width + c];
        }
        score[c] = s;
        scale = mag > scale ? mag : scale;
        if (s < best) {
          best = s;
          arg = c;
        }
      }
      const int got = static_cast<int>(codes[static_cast<size_t>(k - lo) * rows + n]);
      if (got == arg) ++*exact;
      if (got < 0 || got >= v || score[got] - best > 1e-5 * scale) ++bad;
      const float* w = cb.data() + (static_cast<size_t>(k) * v + (got < 0 ? 0 : got)) * d;
      for (int i = 0; i < d; ++i) r[i] = static_cast<double>(static_cast<float>(r[i]) - w[i]);
    }
  }
  return bad;
}

struct Result {
  std::vector<int64_t> codes;
  std::vector<float> residual;
};

Result search(const rvq::Codebooks& cb, const std::vector<float>& r0, int rows, int lo, int hi,
              const float* bits, int width, float lambda) {
  Result out{std::vector<int64_t>(static_cast<size_t>(hi - lo) * rows, -1), r0};
  const auto st = cb.Search(out.residual.data(), rows, lo, hi, bits, width, lambda, out.codes.data());
  CHECK(st.ok());
  return out;
}

bool same_bits(const Result& a, const Result& b) {
  return a.codes == b.codes && a.residual.size() == b.residual.size() &&
         std::memcmp(a.residual.data(), b.residual.data(), a.residual.size() * sizeof(float)) == 0;
}

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kGeneric, Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    if (soundspring::lm::isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

void test_reference_and_paths() {
  // V not a multiple of 16 (padded columns), D not a multiple of the 16-input block, rows
  // across several row blocks.
  const int k = 4, v = 100, d = 37, rows = 150;
  const auto cb = normal(static_cast<size_t>(k) * v * d, 0.5f, 1);
  const auto r0 = normal(static_cast<size_t>(rows) * d, 1.0f, 2);
  const int width = v + 3;
  auto bits = normal(static_cast<size_t>(rows) * k * width, 2.0f, 3);
  for (float& b : bits) b = std::fabs(b);
  for (float lambda : {0.0f, 0.7f}) {
    const float* bp = lambda == 0.0f ? nullptr : bits.data();
    auto ref_cb = make(cb, k, v, d, Isa::kGeneric, 1, rvq::Storage::kFloat32);
    CHECK(ref_cb != nullptr);
    if (!ref_cb) return;
    const Result ref = search(*ref_cb, r0, rows, 0, k, bp, width, lambda);
    int exact = 0;
    const int bad = reference_violations(cb, v, d, r0, rows, 0, k, lambda == 0.0f ? nullptr : &bits,
                                         width, lambda, ref.codes, &exact);
    CHECK(bad == 0);
    CHECK(exact >= rows * k - 2);  // random data: near-ties are rare
    std::printf("lambda %.1f: %d / %d picks equal the float64 argmin\n", lambda, exact, rows * k);
    for (Isa isa : isas()) {
      for (int threads : {1, 2, 5}) {
        auto c = make(cb, k, v, d, isa, threads, rvq::Storage::kAuto);
        CHECK(c != nullptr);
        if (!c) continue;
        CHECK(same_bits(search(*c, r0, rows, 0, k, bp, width, lambda), ref));
      }
    }
    // Levels in two calls (the layers of the RD search) == one call.
    auto c = make(cb, k, v, d, Isa::kAuto, 1, rvq::Storage::kAuto);
    std::vector<float> first_bits, rest_bits;  // [rows, 1, width] and [rows, k - 1, width]
    for (int n = 0; n < rows; ++n)
      for (int kk = 0; kk < k; ++kk)
        for (int x = 0; x < width; ++x)
          (kk == 0 ? first_bits : rest_bits).push_back(bits[(static_cast<size_t>(n) * k + kk) * width + x]);
    Result first = search(*c, r0, rows, 0, 1, lambda == 0.0f ? nullptr : first_bits.data(), width, lambda);
    Result second = search(*c, first.residual, rows, 1, k, lambda == 0.0f ? nullptr : rest_bits.data(),
                           width, lambda);
    std::vector<int64_t> joined = first.codes;
    joined.insert(joined.end(), second.codes.begin(), second.codes.end());
    CHECK(joined == ref.codes);
    CHECK(std::memcmp(second.residual.data(), ref.residual.data(), ref.residual.size() * 4) == 0);
    // Row by row == all rows: a row's result depends on that row only.
    bool rows_ok = true;
    for (int n = 0; n < rows; n += 7) {
      std::vector<float> one(r0.begin() + n * d, r0.begin() + (n + 1) * d);
      std::vector<float> one_bits;
      for (int x = 0; x < k * width; ++x) one_bits.push_back(bits[static_cast<size_t>(n) * k * width + x]);
      Result got = search(*c, one, 1, 0, k, lambda == 0.0f ? nullptr : one_bits.data(), width, lambda);
      for (int kk = 0; kk < k; ++kk) rows_ok &= got.codes[kk] == ref.codes[static_cast<size_t>(kk) * rows + n];
      rows_ok &= std::memcmp(got.residual.data(), ref.residual.data() + n * d, d * 4) == 0;
    }
    CHECK(rows_ok);
  }
}

void test_lambda_changes_choice() {
  // Two codewords at distances 1 and 4 from r = 0: lambda * bits decides.
  const int d = 1, v = 2;
  const std::vector<float> cb = {1.0f, 2.0f};
  auto c = make(cb, 1, v, d, Isa::kAuto, 1, rvq::Storage::kAuto);
  CHECK(c != nullptr);
  if (!c) return;
  const std::vector<float> r = {0.0f};
  const std::vector<float> bits = {10.0f, 0.0f};
  CHECK(search(*c, r, 1, 0, 1, nullptr, v, 0.0f).codes[0] == 0);
  CHECK(search(*c, r, 1, 0, 1, bits.data(), v, 0.0f).codes[0] == 0);  // lambda 0: bits unread
  CHECK(search(*c, r, 1, 0, 1, bits.data(), v, 0.2f).codes[0] == 0);  // 1 + 2 < 4
  CHECK(search(*c, r, 1, 0, 1, bits.data(), v, 0.5f).codes[0] == 1);  // 1 + 5 > 4
  const std::vector<float> nan_bits = {NAN, NAN};
  CHECK(search(*c, r, 1, 0, 1, nan_bits.data(), v, 0.0f).codes[0] == 0);
  // The residual update: r - c exactly.
  const Result res = search(*c, r, 1, 0, 1, nullptr, v, 0.0f);
  CHECK(res.residual[0] == -1.0f);
}

void test_ties_lowest_index() {
  const int d = 16, v = 40;
  std::vector<float> cb(static_cast<size_t>(v) * d, 5.0f);
  for (int c = 0; c < v; ++c)
    if (c % 10 == 3) std::fill(cb.begin() + c * d, cb.begin() + (c + 1) * d, 0.25f);  // 3, 13, 23, 33
  for (Isa isa : isas()) {
    auto c = make(cb, 1, v, d, isa, 1, rvq::Storage::kAuto);
    CHECK(c != nullptr);
    if (!c) continue;
    CHECK(search(*c, std::vector<float>(d, 0.0f), 1, 0, 1, nullptr, v, 0.0f).codes[0] == 3);
  }
}

void test_half_storage() {
  // Values on a binary16 grid: fp16 storage is lossless and gives fp32's bits.
  const int k = 3, v = 64, d = 32, rows = 20;
  auto cb = normal(static_cast<size_t>(k) * v * d, 0.5f, 4);
  for (float& x : cb) x = std::round(x * 256.0f) / 256.0f;
  const auto r0 = normal(static_cast<size_t>(rows) * d, 1.0f, 5);
  auto f32 = make(cb, k, v, d, Isa::kGeneric, 1, rvq::Storage::kFloat32);
  const Result ref = search(*f32, r0, rows, 0, k, nullptr, v, 0.0f);
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!soundspring::lm::isa_supported(isa)) continue;
    auto h = make(cb, k, v, d, isa, 1, rvq::Storage::kFloat16);
    CHECK(h != nullptr && h->storage() == rvq::Storage::kFloat16);
    if (!h) continue;
    CHECK(h->level_bytes() * 2 == f32->level_bytes());
    CHECK(make(cb, k, v, d, isa, 1, rvq::Storage::kAuto)->storage() == rvq::Storage::kFloat16);
    CHECK(same_bits(search(*h, r0, rows, 0, k, nullptr, v, 0.0f), ref));
  }
  // Off the grid: auto keeps float32, fp16 is refused.
  const auto lossy = normal(static_cast<size_t>(v) * d, 0.5f, 6);
  CHECK(make(lossy, 1, v, d, Isa::kAuto, 1, rvq::Storage::kAuto)->storage() == rvq::Storage::kFloat32);
  rvq::SearchOptions opt;
  opt.storage = rvq::Storage::kFloat16;
  std::unique_ptr<rvq::Codebooks> out;
  CHECK(rvq::Codebooks::Create(lossy.data(), 1, v, d, opt, &out).code() == StatusCode::kInvalidArgument);
  opt.isa = Isa::kGeneric;  // no exact widening there
  CHECK(rvq::Codebooks::Create(cb.data(), 1, v, d, opt, &out).code() == StatusCode::kInvalidArgument);
}

void test_errors() {
  const int v = 8, d = 4;
  const auto cb = normal(static_cast<size_t>(2) * v * d, 1.0f, 7);
  rvq::SearchOptions opt;
  std::unique_ptr<rvq::Codebooks> c;
  CHECK(rvq::Codebooks::Create(cb.data(), 0, v, d, opt, &c).code() == StatusCode::kInvalidArgument);
  CHECK(rvq::Codebooks::Create(cb.data(), 2, 0, d, opt, &c).code() == StatusCode::kInvalidArgument);
  CHECK(rvq::Codebooks::Create(cb.data(), 2, v, 0, opt, &c).code() == StatusCode::kInvalidArgument);
  CHECK(rvq::Codebooks::Create(nullptr, 2, v, d, opt, &c).code() == StatusCode::kInvalidArgument);
  opt.num_threads = 0;
  CHECK(rvq::Codebooks::Create(cb.data(), 2, v, d, opt, &c).code() == StatusCode::kInvalidArgument);
  opt.num_threads = 1;
  auto bad = cb;
  bad[5] = NAN;
  CHECK(rvq::Codebooks::Create(bad.data(), 2, v, d, opt, &c).code() == StatusCode::kInvalidArgument);
  bad[5] = 3e38f;  // -2 c overflows
  CHECK(rvq::Codebooks::Create(bad.data(), 2, v, d, opt, &c).code() == StatusCode::kInvalidArgument);
  CHECK(rvq::Codebooks::Create(cb.data(), 2, v, d, opt, &c).ok());
  std::vector<float> r(2 * d, 0.5f);
  std::vector<int64_t> codes(4, -1);
  std::vector<float> bits(2 * 2 * v, 1.0f);
  CHECK(c->Search(r.data(), 2, 1, 1, nullptr, v, 0.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  CHECK(c->Search(r.data(), 2, 0, 3, nullptr, v, 0.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  CHECK(c->Search(r.data(), 2, -1, 1, nullptr, v, 0.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  CHECK(c->Search(r.data(), -1, 0, 1, nullptr, v, 0.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  CHECK(c->Search(r.data(), 2, 0, 2, bits.data(), v, -1.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  CHECK(c->Search(r.data(), 2, 0, 2, bits.data(), v, NAN, codes.data()).code() == StatusCode::kInvalidArgument);
  CHECK(c->Search(r.data(), 2, 0, 2, bits.data(), v - 1, 1.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  bits[3] = INFINITY;
  CHECK(c->Search(r.data(), 2, 0, 2, bits.data(), v, 1.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  r[1] = NAN;
  const auto before = r;
  CHECK(c->Search(r.data(), 2, 0, 2, nullptr, v, 0.0f, codes.data()).code() == StatusCode::kInvalidArgument);
  CHECK(std::memcmp(r.data(), before.data(), r.size() * 4) == 0);  // untouched on error
  CHECK(codes[0] == -1);
  CHECK(c->Search(nullptr, 0, 0, 2, nullptr, v, 0.0f, nullptr).ok());  // no rows: nothing read
  rvq::Storage s;
  CHECK(rvq::parse_storage("fp16", &s) && s == rvq::Storage::kFloat16);
  CHECK(!rvq::parse_storage("int8", &s));
}

}  // namespace

int main() {
  test_reference_and_paths();
  test_lambda_changes_choice();
  test_ties_lowest_index();
  test_half_storage();
  test_errors();
  return soundspring_test::report("test_rvq_search");
}
