#include "core/cdf.h"

#include <cstdint>

#include <cstring>
#include <string>
#include <vector>

#include "core/lm_kernels.h"

namespace soundspring {
namespace {

#include "core/det_exp_impl.h"

}  // namespace

double det_exp(double x) { return det_exp_scalar(x); }

Status cdf_row_from_logits(const float* logits, int n_symbols, int precision_bits,
                           double* scratch, uint32_t* cdf) {
  // The whole row on the widest vector unit the CPU has (the same bits on every one).
  static const lm::Kernels* const kernels = lm::kernels_for(lm::Isa::kAuto);
  int bad = 0;
  switch (kernels->cdf_row(logits, n_symbols, precision_bits, scratch, cdf, &bad)) {
    case lm::CdfRowError::kNone:
      return Status::Ok();
    case lm::CdfRowError::kNonFinite:
      return InvalidArgument("logits must be finite or -inf; found " +
                             std::string(logits[bad] != logits[bad] ? "NaN" : "+inf") +
                             " at symbol " + std::to_string(bad));
    case lm::CdfRowError::kAllNegInf:
      break;
  }
  return InvalidArgument("every logit of a row is -inf: no symbol has probability > 0");
}

Status cdf_from_logits(const float* logits, size_t n_rows, int n_symbols, int precision_bits,
                       uint32_t* cdfs) {
  if (precision_bits < 1 || precision_bits > 16) {
    return InvalidArgument("precision_bits must be in [1, 16], got " + std::to_string(precision_bits));
  }
  if (n_symbols < 1 || n_symbols > (1 << precision_bits)) {
    return InvalidArgument("the alphabet size V = " + std::to_string(n_symbols) +
                           " must be in [1, 2^precision_bits = " +
                           std::to_string(1 << precision_bits) + "]");
  }
  std::vector<double> scratch(static_cast<size_t>(n_symbols));
  const size_t v = static_cast<size_t>(n_symbols);
  for (size_t row = 0; row < n_rows; ++row) {
    Status st = cdf_row_from_logits(logits + row * v, n_symbols, precision_bits, scratch.data(),
                                    cdfs + row * (v + 1));
    if (!st.ok()) return Status(st.code(), "row " + std::to_string(row) + ": " + st.message());
  }
  return Status::Ok();
}

Status validate_cdfs(const uint32_t* cdfs, size_t n_rows, int n_symbols, int precision_bits) {
  if (precision_bits < 1 || precision_bits > 16) {
    return InvalidArgument("precision_bits must be in [1, 16], got " + std::to_string(precision_bits));
  }
  const uint32_t total = 1u << precision_bits;
  const size_t stride = static_cast<size_t>(n_symbols) + 1;
  for (size_t row = 0; row < n_rows; ++row) {
    const uint32_t* c = cdfs + row * stride;
    bool ok = c[0] == 0 && c[n_symbols] == total;
    for (int i = 0; i < n_symbols; ++i) ok &= c[i] <= c[i + 1];
    if (!ok) {
      return InvalidArgument("cdfs row " + std::to_string(row) +
                             " must start at 0, be non-decreasing and end at 2^precision_bits = " +
                             std::to_string(total));
    }
  }
  return Status::Ok();
}

}  // namespace soundspring
