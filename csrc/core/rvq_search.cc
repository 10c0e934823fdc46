// The residual-VQ token search of rvq_search.h on the SpringLM engine's matmul kernels.
#include "core/rvq_search.h"

#include <cmath>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "core/det_math.h"
#include "core/packed_linear.h"

namespace soundspring::rvq {
namespace {

constexpr int kPanel = lm::kColumnAlign;

bool all_finite(const float* p, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
  return ok;
}

}  // namespace

Status Codebooks::Create(const float* codebooks, int n_codebooks, int codebook_size, int dim,
                         const SearchOptions& options, std::unique_ptr<Codebooks>* out) {
  if (out == nullptr) return InvalidArgument("out must not be null");
  if (n_codebooks < 1 || n_codebooks > 4096) {
    return InvalidArgument("n_codebooks must be in [1, 4096], got " + std::to_string(n_codebooks));
  }
  if (codebook_size < 1 || codebook_size > 65536) {
    return InvalidArgument("codebook_size must be in [1, 65536], got " + std::to_string(codebook_size));
  }
  if (dim < 1 || dim > 65536) {
    return InvalidArgument("dim must be in [1, 65536], got " + std::to_string(dim));
  }
  if (options.num_threads < 1 || options.num_threads > 256) {
    return InvalidArgument("num_threads must be in [1, 256], got " +
                           std::to_string(options.num_threads));
  }
  if (codebooks == nullptr) return InvalidArgument("codebooks must not be null");
  const lm::Kernels* kernels = lm::kernels_for(options.isa);
  if (kernels == nullptr) {
    return InvalidArgument(std::string("isa '") + lm::isa_name(options.isa) +
                           "' is not supported by this build and CPU");
  }
  const size_t k = static_cast<size_t>(n_codebooks), v = static_cast<size_t>(codebook_size),
               d = static_cast<size_t>(dim);
  if (!all_finite(codebooks, k * v * d)) return InvalidArgument("codebooks must be finite");

  std::unique_ptr<Codebooks> cb(new Codebooks());
  cb->k_ = n_codebooks;
  cb->v_ = codebook_size;
  cb->d_ = dim;
  cb->vp_ = (codebook_size + kPanel - 1) / kPanel * kPanel;
  cb->num_threads_ = options.num_threads;
  cb->kernels_ = kernels;
  const size_t vp = static_cast<size_t>(cb->vp_);
  const size_t level = vp * d;  // packed floats per level

  cb->norms_.assign(k * vp, 0.0f);
  cb->w32_.assign(k * level, 0.0f);
  for (size_t kk = 0; kk < k; ++kk) {
    float* w = cb->w32_.data() + kk * level;
    for (size_t vv = 0; vv < v; ++vv) {
      const float* c = codebooks + (kk * v + vv) * d;
      const float norm = det::dot(c, c, dim);
      if (!std::isfinite(norm)) {
        return InvalidArgument("codebooks: the squared norm of level " + std::to_string(kk) +
                               " code " + std::to_string(vv) + " overflows float32");
      }
      cb->norms_[kk * vp + vv] = norm;
      float* panel = w + (vv / kPanel) * d * kPanel + vv % kPanel;
      for (size_t i = 0; i < d; ++i) {
        const float m = det::mul(-2.0f, c[i]);
        if (!std::isfinite(m)) return InvalidArgument("codebooks: -2 c overflows float32");
        panel[i * kPanel] = m;
      }
    }
  }

  bool want_half = false;
  if (options.storage == Storage::kFloat16 || options.storage == Storage::kAuto) {
    // Only the stored -2 c must be exact: the search reads c back as -0.5 * (-2 c),
    // which is c exactly in float32 whether or not c itself is a binary16.
    bool lossless = true;
    std::vector<uint16_t> w16(cb->w32_.size());
    for (size_t i = 0; i < w16.size() && lossless; ++i) {
      lossless = lm::half_exact(cb->w32_[i], &w16[i]);
    }
    const bool can_widen = kernels->matmul_bias_half != nullptr;
    if (options.storage == Storage::kFloat16) {
      if (!lossless) {
        return InvalidArgument("storage 'fp16' needs codebooks whose doubles (-2 c) are "
                               "exactly binary16; these are not (use 'fp32' or 'auto')");
      }
      if (!can_widen) {
        return InvalidArgument(std::string("storage 'fp16' needs an ISA with exact binary16 "
                                           "widening (avx2, avx512), got '") + kernels->name + "'");
      }
    }
    want_half = lossless && can_widen;
    if (want_half) {
      cb->w16_ = std::move(w16);
      cb->w32_.clear();
      cb->w32_.shrink_to_fit();
    }
  }
  cb->half_ = want_half;
  *out = std::move(cb);
  return Status::Ok();
}

size_t Codebooks::level_bytes() const {
  const size_t n = static_cast<size_t>(vp_) * static_cast<size_t>(d_);
  return half_ ? n * sizeof(uint16_t) : n * sizeof(float);
}

void Codebooks::SearchBlock(float* residual, int64_t row0, int64_t rows, int lo, int hi,
                            const float* bits, int64_t bits_width, float rd_lambda,
                            int64_t* codes, int64_t total_rows, float* scores) const {
  const size_t d = static_cast<size_t>(d_), vp = static_cast<size_t>(vp_);
  const size_t level = vp * d;
  const size_t levels = static_cast<size_t>(hi - lo);
  float* x = residual + static_cast<size_t>(row0) * d;
  for (int k = lo; k < hi; ++k) {
    const size_t kk = static_cast<size_t>(k);
    const float* bias = norms_.data() + kk * vp;
    const size_t rr = static_cast<size_t>(rows);
    if (half_) {
      kernels_->matmul_bias_half(x, d, rr, w16_.data() + kk * level, d, bias, scores, vp, vp);
    } else {
      kernels_->matmul_bias(x, d, rr, w32_.data() + kk * level, d, bias, scores, vp, vp);
    }
    for (size_t n = 0; n < rr; ++n) {
      float* s = scores + n * vp;
      const size_t row = static_cast<size_t>(row0) + n;
      if (bits != nullptr) {
        const float* b = bits + (row * levels + static_cast<size_t>(k - lo)) *
                                    static_cast<size_t>(bits_width);
        for (int v = 0; v < v_; ++v) s[v] = det::add(s[v], det::mul(rd_lambda, b[v]));
      }
      // Lowest index among the smallest scores (a NaN score never wins; none arises
      // from finite inputs short of float32 overflow).
      int best = 0;
      float best_score = INFINITY;
      for (int v = 0; v < v_; ++v) {
        if (s[v] < best_score) {
          best_score = s[v];
          best = v;
        }
      }
      codes[static_cast<size_t>(k - lo) * static_cast<size_t>(total_rows) + row] = best;
      // r -= c_best, with c = -0.5 * (-2 c) exactly.
      const size_t vb = static_cast<size_t>(best);
      float* r = x + n * d;
      if (half_) {
        const uint16_t* w = w16_.data() + kk * level + (vb / kPanel) * d * kPanel + vb % kPanel;
        for (size_t i = 0; i < d; ++i)
          r[i] = det::sub(r[i], det::mul(-0.5f, det::half_to_float(w[i * kPanel])));
      } else {
        const float* w = w32_.data() + kk * level + (vb / kPanel) * d * kPanel + vb % kPanel;
        for (size_t i = 0; i < d; ++i) r[i] = det::sub(r[i], det::mul(-0.5f, w[i * kPanel]));
      }
    }
  }
}

Status Codebooks::Search(float* residual, int64_t rows, int lo, int hi, const float* bits,
                         int64_t bits_width, float rd_lambda, int64_t* codes) const {
  if (lo < 0 || hi > k_ || lo >= hi) {
    return InvalidArgument("levels must satisfy 0 <= lo < hi <= " + std::to_string(k_) +
                           ", got lo=" + std::to_string(lo) + " hi=" + std::to_string(hi));
  }
  if (rows < 0 || rows > (int64_t{1} << 40) / d_) {
    return InvalidArgument("rows must be in [0, 2^40 / dim], got " + std::to_string(rows));
  }
  if (!std::isfinite(rd_lambda) || rd_lambda < 0.0f) {
    return InvalidArgument("rd_lambda must be finite and >= 0");
  }
  if (rd_lambda == 0.0f) bits = nullptr;
  if (bits != nullptr && bits_width < v_) {
    return InvalidArgument("bits_width must be >= codebook_size (" + std::to_string(v_) +
                           "), got " + std::to_string(bits_width));
  }
  if (rows == 0) return Status::Ok();
  if (residual == nullptr || codes == nullptr) {
    return InvalidArgument("residual and codes must not be null");
  }
  const size_t n = static_cast<size_t>(rows);
  if (!all_finite(residual, n * static_cast<size_t>(d_))) {
    return InvalidArgument("residual must be finite");
  }
  if (bits != nullptr) {
    const size_t levels = static_cast<size_t>(hi - lo);
    for (size_t i = 0; i < n * levels; ++i) {
      if (!all_finite(bits + i * static_cast<size_t>(bits_width), static_cast<size_t>(v_))) {
        return InvalidArgument("bits must be finite");
      }
    }
  }

  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  const size_t scratch = static_cast<size_t>(kRowBlock) * static_cast<size_t>(vp_);
  auto run = [&](int64_t first, int64_t step, std::vector<float>* buf) {
    buf->resize(scratch);
    for (int64_t b = first; b < blocks; b += step) {
      const int64_t row0 = b * kRowBlock;
      const int64_t count = rows - row0 < kRowBlock ? rows - row0 : kRowBlock;
      SearchBlock(residual, row0, count, lo, hi, bits, bits_width, rd_lambda, codes, rows,
                  buf->data());
    }
  };
  const int64_t workers = blocks < num_threads_ ? blocks : num_threads_;
  if (workers <= 1) {
    std::vector<float> buf;
    run(0, 1, &buf);
    return Status::Ok();
  }
  // Block b goes to worker b % workers; rows are independent, so the split never changes
  // the bits. A thread that cannot be started leaves its blocks to the calling thread.
  std::vector<std::vector<float>> bufs(static_cast<size_t>(workers));
  std::vector<std::thread> threads;
  std::vector<int64_t> inline_workers;
  for (int64_t t = 1; t < workers; ++t) {
    try {
      threads.emplace_back(run, t, workers, &bufs[static_cast<size_t>(t)]);
    } catch (const std::system_error&) {
      inline_workers.push_back(t);
    }
  }
  run(0, workers, &bufs[0]);
  for (int64_t t : inline_workers) run(t, workers, &bufs[static_cast<size_t>(t)]);
  for (auto& th : threads) th.join();
  return Status::Ok();
}

bool parse_storage(const char* name, Storage* out) {
  if (name == nullptr) return false;
  if (std::strcmp(name, "auto") == 0) {
    *out = Storage::kAuto;
  } else if (std::strcmp(name, "fp32") == 0) {
    *out = Storage::kFloat32;
  } else if (std::strcmp(name, "fp16") == 0) {
    *out = Storage::kFloat16;
  } else {
    return false;
  }
  return true;
}

const char* storage_name(Storage storage) {
  switch (storage) {
    case Storage::kAuto: return "auto";
    case Storage::kFloat32: return "fp32";
    case Storage::kFloat16: return "fp16";
  }
  return "unknown";
}

}  // namespace soundspring::rvq
