#include "core/chunk_encoder.h"

#include <algorithm>
#include <cmath>

#include "core/range_coder.h"

namespace soundspring::entropy {
namespace {

// The check value as uniform pieces of <= 8 bits, most significant first (the decoder's
// DecodeCheck; ChunkCoder's _encode_check).
void EncodeCheck(RangeEncoder* enc, std::uint32_t value, int check_bits, int precision_bits) {
  std::vector<int> pieces(static_cast<std::size_t>(check_bits / 8), 8);
  if (check_bits % 8) pieces.push_back(check_bits % 8);
  std::vector<std::uint32_t> cdf;
  int shift = check_bits;
  for (int bits : pieces) {
    shift -= bits;
    cdf.resize((std::size_t{1} << bits) + 1);
    for (std::size_t i = 0; i < cdf.size(); ++i) {
      cdf[i] = static_cast<std::uint32_t>(i) << (precision_bits - bits);
    }
    const auto piece = static_cast<std::int32_t>((value >> shift) & ((1u << bits) - 1u));
    enc->encode(piece, cdf.data(), 1 << bits, precision_bits);
  }
}

}  // namespace

Status ChunkEncoder::Create(const ChunkDecoder* coder, const rvq::Codebooks* codebooks,
                            const float* bits_of_frequency, const float* base_bits,
                            std::unique_ptr<ChunkEncoder>* out) {
  if (coder == nullptr || codebooks == nullptr || bits_of_frequency == nullptr ||
      base_bits == nullptr) {
    return InvalidArgument("the chunk encoder needs a coder, codebooks and cost tables");
  }
  const ChunkSettings& s = coder->settings();
  if (codebooks->n_codebooks() < s.n_codebooks || codebooks->codebook_size() > coder->vocab()) {
    return InvalidArgument("the codebooks do not fit the stream (K or V)");
  }
  std::unique_ptr<ChunkEncoder> e(new ChunkEncoder());
  e->coder_ = coder;
  e->codebooks_ = codebooks;
  e->bits_of_frequency_.assign(bits_of_frequency,
                               bits_of_frequency + (std::size_t{1} << s.precision_bits) + 1);
  e->base_bits_.assign(base_bits, base_bits + static_cast<std::size_t>(s.chunk_frames) *
                                                  kBaseLevels * coder->vocab());
  *out = std::move(e);
  return Status::Ok();
}

Status ChunkEncoder::EncodeChunk(const lm::StreamState& state, float* residual,
                                 float rd_lambda, std::int64_t* tokens,
                                 std::vector<std::uint8_t>* payload) const {
  ScopedStageTimer chunk_timer(chunk_time_);
  const ChunkSettings& s = coder_->settings();
  const int c = s.chunk_frames, k = s.n_codebooks, v = coder_->vocab();
  const std::size_t w = static_cast<std::size_t>(v) + 1;
  if (!std::isfinite(rd_lambda) || rd_lambda < 0.0f) {
    return InvalidArgument("rd_lambda must be finite and >= 0");
  }
  // The search consumes the residual level by level; keep the caller's on error.
  std::vector<float> r(residual, residual + static_cast<std::size_t>(c) * codebooks_->dim());
  const int n_layers = coder_->n_layers();
  std::vector<std::vector<std::uint32_t>> rows(static_cast<std::size_t>(n_layers));
  std::vector<std::uint32_t> groups;
  bool have_groups = false;
  std::vector<float> bits;
  for (int layer = 0; layer < n_layers; ++layer) {
    const int lo = coder_->layer_lo(layer), hi = coder_->layer_hi(layer);
    if (layer > 0) {
      Status st = coder_->LayerCdfs(state, tokens, layer, &groups, &have_groups,
                                    &rows[static_cast<std::size_t>(layer)]);
      if (!st.ok()) return st;
    }
    ScopedStageTimer timer(search_time_);
    const float* layer_bits = nullptr;
    if (rd_lambda != 0.0f) {
      if (layer == 0) {
        layer_bits = base_bits_.data();
      } else {  // [C * L, V + 1] frame-major rows -> [C, L, V] costs of their frequencies
        const std::vector<std::uint32_t>& cdf = rows[static_cast<std::size_t>(layer)];
        const std::size_t n_rows = static_cast<std::size_t>((hi - lo) * c);
        bits.resize(n_rows * static_cast<std::size_t>(v));
        for (std::size_t i = 0; i < n_rows; ++i) {
          const std::uint32_t* row = cdf.data() + i * w;
          float* b = bits.data() + i * static_cast<std::size_t>(v);
          for (int x = 0; x < v; ++x) b[x] = bits_of_frequency_[row[x + 1] - row[x]];
        }
        layer_bits = bits.data();
      }
    }
    Status st = codebooks_->Search(r.data(), c, lo, hi, layer_bits, v, rd_lambda,
                                   tokens + static_cast<std::ptrdiff_t>(lo) * c);
    if (!st.ok()) return st;
  }
  // The payload (ChunkCoder.encode_chunk).
  const int pieces = (s.check_bits + 7) / 8;
  payload->assign(RangeEncoder::max_encoded_size(static_cast<std::size_t>(k * c + 2 * pieces),
                                                 s.precision_bits), 0);
  RangeEncoder enc(payload->data(), payload->size());
  const std::vector<std::uint32_t>& base_rows = coder_->base_rows();
  for (int f = 0; f < c; ++f) {
    for (int l = 0; l < kBaseLevels; ++l) {
      const std::size_t row = static_cast<std::size_t>(f * kBaseLevels + l);
      enc.encode(static_cast<std::int32_t>(tokens[l * c + f]), base_rows.data() + row * w, v,
                 s.precision_bits);
    }
  }
  if (coder_->combined_base_check() && s.check_bits) {
    EncodeCheck(&enc, IntegrityValue(tokens, c, nullptr, 0, kBaseCheckSalt, s.check_bits),
                s.check_bits, s.precision_bits);
  }
  if (n_layers > 1) {
    for (int layer = 1; layer < n_layers; ++layer) {
      const int lo = coder_->layer_lo(layer), hi = coder_->layer_hi(layer);
      const std::vector<std::uint32_t>& cdf = rows[static_cast<std::size_t>(layer)];
      for (int f = 0; f < c; ++f) {
        for (int l = lo; l < hi; ++l) {
          const std::size_t row = static_cast<std::size_t>(f * (hi - lo) + (l - lo));
          enc.encode(static_cast<std::int32_t>(tokens[l * c + f]), cdf.data() + row * w, v,
                     s.precision_bits);
        }
      }
    }
    if (s.check_bits) {
      EncodeCheck(&enc, IntegrityValue(tokens, c, tokens + kBaseLevels * c,
                                       static_cast<std::size_t>((k - kBaseLevels) * c),
                                       kCombinedCheckSalt, s.check_bits),
                  s.check_bits, s.precision_bits);
    }
  }
  Status st = enc.finish();
  if (!st.ok()) return st;
  payload->resize(enc.bytes_written());
  std::copy(r.begin(), r.end(), residual);
  return Status::Ok();
}

}  // namespace soundspring::entropy
