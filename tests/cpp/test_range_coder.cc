// C++-only tests of the range coder and the CDF quantiser (no Python).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "core/cdf.h"
#include "core/range_coder.h"

using namespace soundspring;

namespace {

// Random logits -> CDFs -> symbols drawn from them -> round trip.
void test_round_trip(uint32_t seed, int v, int precision, size_t n) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(n * static_cast<size_t>(v));
  for (auto& x : logits) x = normal(rng);
  std::vector<uint32_t> cdfs(n * static_cast<size_t>(v + 1));
  CHECK(cdf_from_logits(logits.data(), n, v, precision, cdfs.data()).ok());
  std::vector<int32_t> symbols(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t* c = &cdfs[i * static_cast<size_t>(v + 1)];
    std::uniform_int_distribution<uint32_t> u(0, (1u << precision) - 1);
    const uint32_t t = u(rng);
    int s = 0;
    while (c[s + 1] <= t) ++s;
    symbols[i] = s;
  }
  std::vector<uint8_t> buf(RangeEncoder::max_encoded_size(n, precision));
  size_t size = 0;
  CHECK(encode_symbols(symbols.data(), n, cdfs.data(), v, precision, buf.data(), buf.size(), &size).ok());
  std::vector<int32_t> decoded(n, -1);
  CHECK(decode_symbols(buf.data(), size, cdfs.data(), n, v, precision, decoded.data()).ok());
  CHECK(decoded == symbols);
}

void test_empty_stream_is_empty() {
  uint8_t buf[8];
  size_t size = 99;
  CHECK(encode_symbols(nullptr, 0, nullptr, 4, 16, buf, sizeof buf, &size).ok());
  CHECK(size == 0);
}

void test_buffer_too_small() {
  const int v = 2;
  std::vector<uint32_t> cdf = {0, 1, 65536};
  std::vector<uint32_t> cdfs;
  std::vector<int32_t> symbols(100, 0);  // probability 2^-16 each: 200 bytes
  for (int i = 0; i < 100; ++i) cdfs.insert(cdfs.end(), cdf.begin(), cdf.end());
  uint8_t buf[16];
  size_t size = 0;
  Status st = encode_symbols(symbols.data(), symbols.size(), cdfs.data(), v, 16, buf, sizeof buf, &size);
  CHECK(st.code() == StatusCode::kBufferTooSmall);
  CHECK(size > sizeof buf);
}

void test_invalid_arguments() {
  std::vector<uint32_t> cdf = {0, 0, 65536};  // symbol 0 has frequency 0
  int32_t sym = 0;
  uint8_t buf[16];
  size_t size = 0;
  CHECK(encode_symbols(&sym, 1, cdf.data(), 2, 16, buf, sizeof buf, &size).code() ==
        StatusCode::kInvalidArgument);
  sym = 2;  // out of range
  CHECK(encode_symbols(&sym, 1, cdf.data(), 2, 16, buf, sizeof buf, &size).code() ==
        StatusCode::kInvalidArgument);
  CHECK(encode_symbols(&sym, 1, cdf.data(), 2, 17, buf, sizeof buf, &size).code() ==
        StatusCode::kInvalidArgument);
  float bad[3] = {0.0f, NAN, 1.0f};
  uint32_t out[4];
  CHECK(cdf_from_logits(bad, 1, 3, 16, out).code() == StatusCode::kInvalidArgument);
  float all_neg_inf[2] = {-INFINITY, -INFINITY};
  CHECK(cdf_from_logits(all_neg_inf, 1, 2, 16, out).code() == StatusCode::kInvalidArgument);
}

void test_random_bytes_never_crash() {
  std::mt19937 rng(7);
  const int v = 1024;
  std::vector<float> logits(static_cast<size_t>(v), 0.0f);
  std::vector<uint32_t> cdf(static_cast<size_t>(v + 1));
  CHECK(cdf_from_logits(logits.data(), 1, v, 16, cdf.data()).ok());
  std::vector<uint32_t> cdfs;
  for (int i = 0; i < 64; ++i) cdfs.insert(cdfs.end(), cdf.begin(), cdf.end());
  int failures = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> data(static_cast<size_t>(rng() % 40));
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    std::vector<int32_t> out(64);
    Status st = decode_symbols(data.data(), data.size(), cdfs.data(), 64, v, 16, out.data());
    if (!st.ok()) ++failures;
    for (int32_t s : out) CHECK(s >= 0 && s < v);
  }
  std::printf("random-bytes decodes flagged corrupt: %d of 2000\n", failures);
}

void test_det_exp_accuracy() {
  double worst = 0.0;
  for (double x = -700.0; x <= 0.0; x += 0.01) {
    worst = std::fmax(worst, std::fabs(det_exp(x) / std::exp(x) - 1.0));
  }
  CHECK(worst < 1e-14);
  CHECK(det_exp(0.0) == 1.0);
  CHECK(det_exp(-701.0) == 0.0);
}

}  // namespace

int main() {
  for (int precision : {10, 12, 16}) {
    for (int v : {1, 2, 3, 256, 1024}) {
      if (v <= (1 << precision)) test_round_trip(static_cast<uint32_t>(precision * 1000 + v), v, precision, 2000);
    }
  }
  test_round_trip(1, 2, 1, 500);
  test_empty_stream_is_empty();
  test_buffer_too_small();
  test_invalid_arguments();
  test_random_bytes_never_crash();
  test_det_exp_accuracy();
  return soundspring_test::report("test_range_coder");
}
