#include "core/codec_engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "core/det_math.h"

namespace soundspring::codec {
namespace {

// torch.nn.LayerNorm(eps=1e-6), as every LayerNorm of the Vocos decoder is built.
constexpr float kDecoderLayerNormEps = 1e-6f;

// The encoder's input conv kernel, its residual units' kernels and its output conv kernel
// (models/seanet.py: CausalConv1d(1, C, 7), ResUnit c1 k3 / c2 k1, out k3), and the
// decoder's input conv kernel (models/vocos.py: CausalConv1d(D, E, 3)).
constexpr int kEncInputKernel = 7;
constexpr int kResKernel = 3;
constexpr int kEncOutputKernel = 3;
constexpr int kDecInputKernel = 3;

// log-magnitudes are clamped here before exp (models/vocos.py VocosDecoder._spec).
constexpr float kMaxLogMagnitude = 6.0f;

constexpr int kMaxChannels = 1 << 14;


// The tensor `name` of `weights`, which must have exactly `shape`.
Status fetch(const lm::TensorMap& weights, const std::string& name,
             const std::vector<int64_t>& shape, const float** out) {
  auto it = weights.find(name);
  if (it == weights.end()) return InvalidArgument("codec weights: missing tensor '" + name + "'");
  if (it->second.data == nullptr) return InvalidArgument("codec weights: '" + name + "' has no data");
  if (it->second.shape != shape) {
    return InvalidArgument("codec weights: '" + name + "' must have shape " + lm::shape_string(shape) +
                           ", got " + lm::shape_string(it->second.shape));
  }
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(it->second.data[i])) {
      return InvalidArgument("codec weights: '" + name + "' holds a non-finite value");
    }
  }
  *out = it->second.data;
  return Status::Ok();
}

Status fetch_vector(const lm::TensorMap& weights, const std::string& name, int n,
                    std::vector<float>* out) {
  const float* p = nullptr;
  Status st = fetch(weights, name, {n}, &p);
  if (!st.ok()) return st;
  out->assign(p, p + n);
  return Status::Ok();
}

// `prefix`.conv.{weight, bias} of a CausalConv1d (models/conv.py).
Status make_conv(const lm::TensorMap& weights, const std::string& prefix, int c_in, int c_out,
                 int kernel, int stride, int dilation, bool depthwise, CausalConv* cv) {
  cv->c_in = c_in;
  cv->c_out = c_out;
  cv->kernel = kernel;
  cv->stride = stride;
  cv->dilation = dilation;
  cv->depthwise = depthwise;
  const int k_eff = (kernel - 1) * dilation + 1;
  if (k_eff < stride) return InvalidArgument(prefix + ": effective kernel shorter than its stride");
  cv->pad = k_eff - stride;
  const float* w = nullptr;
  const float* b = nullptr;
  const int64_t ci = depthwise ? 1 : c_in;
  Status st = fetch(weights, prefix + ".conv.weight", {c_out, ci, kernel}, &w);
  if (st.ok()) st = fetch(weights, prefix + ".conv.bias", {c_out}, &b);
  if (!st.ok()) return st;
  const size_t k = static_cast<size_t>(kernel), co = static_cast<size_t>(c_out),
               cis = static_cast<size_t>(c_in);
  if (depthwise) {
    cv->dw_w.assign(k * co, 0.0f);
    for (size_t c = 0; c < co; ++c)
      for (size_t j = 0; j < k; ++j) cv->dw_w[j * co + c] = w[c * k + j];
    cv->dw_b.assign(b, b + c_out);
    return Status::Ok();
  }
  std::vector<float> w_out_in(co * k * cis);  // [c_out, k c_in], k-major like the window rows
  for (size_t o = 0; o < co; ++o)
    for (size_t i = 0; i < cis; ++i)
      for (size_t j = 0; j < k; ++j) w_out_in[o * k * cis + j * cis + i] = w[(o * cis + i) * k + j];
  lm::pack_linear(w_out_in.data(), b, c_out, kernel * c_in, &cv->lin);
  return Status::Ok();
}

void grow(std::vector<float>* v, size_t n) {
  if (v->size() < n) v->resize(n);
}

// One dense causal conv step. xx [pad + rows_in, c_in]: rows [pad, pad + rows_in) hold the
// (already activated) new input; the history is written in front, the last pad rows go back
// into `history`. Writes y [rows_in / stride, c_out] contiguous (row stride c_out).
void conv_dense(const lm::Kernels& kernels, const CausalConv& cv, std::vector<float>* history,
                float* xx, size_t rows_in, float* y, std::vector<float>* im2col) {
  const size_t ci = static_cast<size_t>(cv.c_in), pad = static_cast<size_t>(cv.pad);
  const size_t stride = static_cast<size_t>(cv.stride), k = static_cast<size_t>(cv.kernel);
  const size_t rows_out = rows_in / stride;
  if (pad) std::memcpy(xx, history->data(), pad * ci * sizeof(float));
  const size_t co = static_cast<size_t>(cv.c_out);
  const size_t ld = cv.lin.ld;
  if (cv.dilation == 1) {
    lm::linear(kernels, xx, stride * ci, rows_out, cv.lin, y, ld);
  } else {
    const size_t d = static_cast<size_t>(cv.dilation), width = k * ci;
    grow(im2col, rows_out * width);
    float* cols = im2col->data();
    for (size_t t = 0; t < rows_out; ++t)
      for (size_t j = 0; j < k; ++j)
        std::memcpy(cols + t * width + j * ci, xx + (t * stride + j * d) * ci, ci * sizeof(float));
    lm::linear(kernels, cols, width, rows_out, cv.lin, y, ld);
  }
  if (ld != co) {  // compact [rows_out, ld] to [rows_out, co] in place (front to back)
    for (size_t t = 1; t < rows_out; ++t) std::memmove(y + t * co, y + t * ld, co * sizeof(float));
  }
  if (pad) std::memcpy(history->data(), xx + rows_in * ci, pad * ci * sizeof(float));
}

// y [rows, ld(c_out)] scratch size a dense conv writes before compaction.
size_t conv_out_floats(const CausalConv& cv, size_t rows_out) { return rows_out * cv.lin.ld; }

// Depthwise causal conv step (stride 1, dilation 1 checked at Create): xx as for
// conv_dense; y[t][c] = (sum over j, left to right from +0, of xx[t + j][c] w[j][c]) + b[c].
void conv_depthwise(const CausalConv& cv, std::vector<float>* history, float* xx,
                    size_t rows, float* y) {
  const size_t c = static_cast<size_t>(cv.c_in), pad = static_cast<size_t>(cv.pad);
  const size_t k = static_cast<size_t>(cv.kernel);
  if (pad) std::memcpy(xx, history->data(), pad * c * sizeof(float));
  for (size_t t = 0; t < rows; ++t) {
    float* out = y + t * c;
    for (size_t ch = 0; ch < c; ++ch) out[ch] = 0.0f;
    for (size_t j = 0; j < k; ++j) {
      const float* in = xx + (t + j) * c;
      const float* w = cv.dw_w.data() + j * c;
      for (size_t ch = 0; ch < c; ++ch) out[ch] = det::add(out[ch], det::mul(in[ch], w[ch]));
    }
    for (size_t ch = 0; ch < c; ++ch) out[ch] = det::add(out[ch], cv.dw_b[ch]);
  }
  if (pad) std::memcpy(history->data(), xx + rows * c, pad * c * sizeof(float));
}

void layer_norm_rows(float* x, size_t rows, int dim, const std::vector<float>& g,
                     const std::vector<float>& b) {
  for (size_t r = 0; r < rows; ++r) {
    float* row = x + r * static_cast<size_t>(dim);
    det::layer_norm_row(row, dim, g.data(), b.data(), kDecoderLayerNormEps, row);
  }
}

bool all_finite(const float* p, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
  return ok;
}

// The product of the encoder strides (at most 16 strides of at most 4096: no overflow in
// int64 before check_shape bounds it).
int64_t hop_samples(const CodecShape& s) {
  int64_t hop = 1;
  for (int st : s.enc_strides) hop = std::min<int64_t>(hop * st, int64_t{1} << 32);
  return hop;
}

Status check_shape(const CodecShape& s) {
  auto in = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
  if (!in(s.latent_dim, 1, kMaxChannels) || !in(s.enc_channels, 2, kMaxChannels) ||
      !in(s.enc_max_channels, 2, kMaxChannels) || !in(s.dec_dim, 1, kMaxChannels) ||
      !in(s.dec_intermediate, 1, 1 << 16) || !in(s.dec_layers, 0, 1024) ||
      !in(s.dec_kernel, 1, 1024)) {
    return InvalidArgument("codec shape: channel counts, layers or kernel out of range");
  }
  if (s.enc_strides.empty() || s.enc_strides.size() > 16) {
    return InvalidArgument("codec shape: enc_strides must hold 1 to 16 strides");
  }
  for (int st : s.enc_strides) {
    if (!in(st, 1, 4096)) return InvalidArgument("codec shape: every stride must be in [1, 4096]");
  }
  const int64_t hop = hop_samples(s);
  if (hop > (1 << 16)) return InvalidArgument("codec shape: the hop must be at most 65536");
  for (int d : s.enc_res_dilations) {
    if (!in(d, 1, 4096)) return InvalidArgument("codec shape: every dilation must be in [1, 4096]");
  }
  if (s.enc_res_dilations.size() > 64) return InvalidArgument("codec shape: at most 64 residual units");
  if (!in(s.istft_hop, 1, 1 << 16) || hop % s.istft_hop || s.istft_n_fft % s.istft_hop ||
      s.istft_n_fft < s.istft_hop || s.istft_n_fft % 2 || s.istft_n_fft > (1 << 16)) {
    return InvalidArgument("codec shape: istft_hop must divide the hop, istft_n_fft must be an "
                           "even multiple of istft_hop");
  }
  return Status::Ok();
}

// The checks every Create makes: out not null, the shape in range, the kernel level runnable.
template <class T>
Status prepare(const CodecShape& shape, const CodecOptions& options, const std::unique_ptr<T>* out,
               const lm::Kernels** kernels) {
  if (out == nullptr) return InvalidArgument("out must not be null");
  Status st = check_shape(shape);
  if (!st.ok()) return st;
  *kernels = lm::kernels_for(options.isa);
  if (*kernels == nullptr) {
    return InvalidArgument(std::string("isa '") + lm::isa_name(options.isa) +
                           "' is not supported on this CPU or build");
  }
  return Status::Ok();
}

}  // namespace

// ---- encoder -----------------------------------------------------------------------------

Status Encoder::Create(const CodecShape& shape, const lm::TensorMap& weights,
                       const CodecOptions& options, std::unique_ptr<Encoder>* out) {
  const lm::Kernels* kernels = nullptr;
  Status st = prepare(shape, options, out, &kernels);
  if (!st.ok()) return st;
  std::unique_ptr<Encoder> enc(new Encoder());
  enc->shape_ = shape;
  enc->kernels_ = kernels;
  enc->hop_ = static_cast<int>(hop_samples(shape));
  int ch = shape.enc_channels;
  if (ch % 2) return InvalidArgument("codec shape: enc_channels must be even (residual units halve it)");
  CausalConv conv;
  st = make_conv(weights, "encoder.inp", 1, ch, kEncInputKernel, 1, 1, false, &conv);
  if (!st.ok()) return st;
  enc->convs_.push_back(std::move(conv));
  for (size_t b = 0; b < shape.enc_strides.size(); ++b) {
    const std::string p = "encoder.blocks." + std::to_string(b);
    for (size_t u = 0; u < shape.enc_res_dilations.size(); ++u) {
      const std::string r = p + ".res." + std::to_string(u);
      st = make_conv(weights, r + ".c1", ch, ch / 2, kResKernel, 1, shape.enc_res_dilations[u],
                     false, &conv);
      if (!st.ok()) return st;
      enc->convs_.push_back(std::move(conv));
      st = make_conv(weights, r + ".c2", ch / 2, ch, 1, 1, 1, false, &conv);
      if (!st.ok()) return st;
      enc->convs_.push_back(std::move(conv));
    }
    const int c_out = std::min(2 * ch, shape.enc_max_channels);
    const int s = shape.enc_strides[b];
    st = make_conv(weights, p + ".down", ch, c_out, 2 * s, s, 1, false, &conv);
    if (!st.ok()) return st;
    enc->convs_.push_back(std::move(conv));
    ch = c_out;
    if (ch % 2 && b + 1 < shape.enc_strides.size() && !shape.enc_res_dilations.empty()) {
      return InvalidArgument("codec shape: every block's channel count must be even");
    }
  }
  st = make_conv(weights, "encoder.out", ch, shape.latent_dim, kEncOutputKernel, 1, 1, false, &conv);
  if (!st.ok()) return st;
  enc->convs_.push_back(std::move(conv));
  std::vector<lm::PackedLinear*> lins;
  for (CausalConv& c : enc->convs_) lins.push_back(&c.lin);
  enc->storage_ = lm::pack_smallest(*kernels, lins);
  *out = std::move(enc);
  return Status::Ok();
}

void Encoder::NewState(EncoderState* state) const {
  state->history.clear();
  for (const CausalConv& c : convs_) {
    state->history.emplace_back(static_cast<size_t>(c.pad) * static_cast<size_t>(c.c_in), 0.0f);
  }
  state->frames = 0;
}

bool Encoder::CheckState(const EncoderState& state) const {
  if (state.history.size() != convs_.size()) return false;
  for (size_t i = 0; i < convs_.size(); ++i) {
    const CausalConv& c = convs_[i];
    if (state.history[i].size() != static_cast<size_t>(c.pad) * static_cast<size_t>(c.c_in)) return false;
  }
  return true;
}

Status Encoder::Step(EncoderState* state, const float* wav, int64_t n_samples,
                     float* latents) const {
  if (state == nullptr || (n_samples > 0 && (wav == nullptr || latents == nullptr))) {
    return InvalidArgument("encoder step: null argument");
  }
  if (n_samples <= 0 || n_samples % hop_ || n_samples / hop_ > kMaxStepFrames) {
    return InvalidArgument("encoder step: wav must hold n * " + std::to_string(hop_) +
                           " samples with 1 <= n <= " + std::to_string(kMaxStepFrames) + ", got " +
                           std::to_string(n_samples));
  }
  if (!CheckState(*state)) return InvalidArgument("encoder step: the state belongs to another encoder");
  if (!all_finite(wav, static_cast<size_t>(n_samples))) {
    return InvalidArgument("encoder step: wav holds a non-finite sample");
  }
  const lm::Kernels& k = *kernels_;
  Workspace& w = state->work;
  size_t rows = static_cast<size_t>(n_samples);
  size_t ci = 0;  // conv index
  auto& hist = state->history;

  // Input conv on the raw samples.
  const CausalConv& inp = convs_[ci];
  grow(&w.b, static_cast<size_t>(inp.pad) + rows);
  float* xx = w.b.data();
  std::memcpy(xx + inp.pad, wav, rows * sizeof(float));
  grow(&w.a, conv_out_floats(inp, rows));
  conv_dense(k, inp, &hist[ci], xx, rows, w.a.data(), &w.e);
  ++ci;
  size_t ch = static_cast<size_t>(inp.c_out);
  for (size_t b = 0; b < shape_.enc_strides.size(); ++b) {
    for (size_t u = 0; u < shape_.enc_res_dilations.size(); ++u) {
      const CausalConv& c1 = convs_[ci];
      const CausalConv& c2 = convs_[ci + 1];
      const size_t pad = static_cast<size_t>(c1.pad);
      grow(&w.b, (pad + rows) * ch);
      k.elu(w.a.data(), w.b.data() + pad * ch, rows * ch);
      grow(&w.c, conv_out_floats(c1, rows));
      conv_dense(k, c1, &hist[ci], w.b.data(), rows, w.c.data(), &w.e);
      const size_t half = static_cast<size_t>(c1.c_out);
      grow(&w.b, rows * half);
      k.elu(w.c.data(), w.b.data(), rows * half);
      grow(&w.d, conv_out_floats(c2, rows));
      conv_dense(k, c2, &hist[ci + 1], w.b.data(), rows, w.d.data(), &w.e);
      float* a = w.a.data();
      const float* d = w.d.data();
      for (size_t i = 0; i < rows * ch; ++i) a[i] = det::add(a[i], d[i]);
      ci += 2;
    }
    const CausalConv& down = convs_[ci];
    const size_t pad = static_cast<size_t>(down.pad);
    grow(&w.b, (pad + rows) * ch);
    k.elu(w.a.data(), w.b.data() + pad * ch, rows * ch);
    const size_t rows_out = rows / static_cast<size_t>(down.stride);
    grow(&w.a, conv_out_floats(down, rows_out));
    conv_dense(k, down, &hist[ci], w.b.data(), rows, w.a.data(), &w.e);
    rows = rows_out;
    ch = static_cast<size_t>(down.c_out);
    ++ci;
  }
  const CausalConv& outc = convs_[ci];
  const size_t pad = static_cast<size_t>(outc.pad);
  grow(&w.b, (pad + rows) * ch);
  k.elu(w.a.data(), w.b.data() + pad * ch, rows * ch);
  grow(&w.c, conv_out_floats(outc, rows));
  conv_dense(k, outc, &hist[ci], w.b.data(), rows, w.c.data(), &w.e);
  std::memcpy(latents, w.c.data(), rows * static_cast<size_t>(outc.c_out) * sizeof(float));
  state->frames += static_cast<int64_t>(rows);
  return Status::Ok();
}

// ---- decoder -----------------------------------------------------------------------------

Status Decoder::Create(const CodecShape& shape, const lm::TensorMap& weights,
                       const CodecOptions& options, std::unique_ptr<Decoder>* out) {
  const lm::Kernels* kernels = nullptr;
  Status st = prepare(shape, options, out, &kernels);
  if (!st.ok()) return st;
  std::unique_ptr<Decoder> dec(new Decoder());
  dec->shape_ = shape;
  dec->kernels_ = kernels;
  dec->hop_ = static_cast<int>(hop_samples(shape));
  dec->sub_ = dec->hop_ / shape.istft_hop;
  dec->bins_ = shape.istft_n_fft / 2 + 1;
  const int e = shape.dec_dim, inter = shape.dec_intermediate;
  st = make_conv(weights, "decoder.inp", shape.latent_dim, e, kDecInputKernel, 1, 1, false, &dec->inp_);
  if (st.ok()) st = fetch_vector(weights, "decoder.norm_in.weight", e, &dec->norm_in_g_);
  if (st.ok()) st = fetch_vector(weights, "decoder.norm_in.bias", e, &dec->norm_in_b_);
  if (st.ok()) st = fetch_vector(weights, "decoder.norm_out.weight", e, &dec->norm_out_g_);
  if (st.ok()) st = fetch_vector(weights, "decoder.norm_out.bias", e, &dec->norm_out_b_);
  if (!st.ok()) return st;
  for (int l = 0; l < shape.dec_layers; ++l) {
    const std::string p = "decoder.blocks." + std::to_string(l);
    Block blk;
    const float* w1 = nullptr;
    const float* b1 = nullptr;
    const float* w2 = nullptr;
    const float* b2 = nullptr;
    st = make_conv(weights, p + ".dw", e, e, shape.dec_kernel, 1, 1, true, &blk.dw);
    if (st.ok()) st = fetch_vector(weights, p + ".norm.weight", e, &blk.norm_g);
    if (st.ok()) st = fetch_vector(weights, p + ".norm.bias", e, &blk.norm_b);
    if (st.ok()) st = fetch_vector(weights, p + ".gamma", e, &blk.gamma);
    if (st.ok()) st = fetch(weights, p + ".pw1.weight", {inter, e}, &w1);
    if (st.ok()) st = fetch(weights, p + ".pw1.bias", {inter}, &b1);
    if (st.ok()) st = fetch(weights, p + ".pw2.weight", {e, inter}, &w2);
    if (st.ok()) st = fetch(weights, p + ".pw2.bias", {e}, &b2);
    if (!st.ok()) return st;
    lm::pack_linear(w1, b1, inter, e, &blk.pw1);
    lm::pack_linear(w2, b2, e, inter, &blk.pw2);
    dec->blocks_.push_back(std::move(blk));
  }
  const int head_out = dec->sub_ * 2 * dec->bins_;
  const float* hw = nullptr;
  const float* hb = nullptr;
  st = fetch(weights, "decoder.head.weight", {head_out, e}, &hw);
  if (st.ok()) st = fetch(weights, "decoder.head.bias", {head_out}, &hb);
  if (!st.ok()) return st;
  lm::pack_linear(hw, hb, head_out, e, &dec->head_);

  // The windowed inverse real DFT (irfft, n = N, then the periodic Hann window over its
  // sum / H; models/conv.py CausalOverlapAdd) as a [2 bins] -> [N] matrix, in double.
  const int n = shape.istft_n_fft, bins = dec->bins_;
  const double kPi = 3.14159265358979323846;
  std::vector<double> window(static_cast<size_t>(n));
  double wsum = 0.0;
  for (int t = 0; t < n; ++t) {
    window[t] = 0.5 - 0.5 * std::cos(2.0 * kPi * t / n);
    wsum += window[t];
  }
  std::vector<float> idft(static_cast<size_t>(n) * 2 * static_cast<size_t>(bins), 0.0f);
  for (int t = 0; t < n; ++t) {
    const double scale = window[t] / (wsum / shape.istft_hop) / n;
    float* row = idft.data() + static_cast<size_t>(t) * 2 * static_cast<size_t>(bins);
    for (int kk = 0; kk < bins; ++kk) {
      const bool edge = kk == 0 || 2 * kk == n;  // DC and Nyquist: imaginary part ignored
      const double c = edge ? 1.0 : 2.0;
      const double ang = 2.0 * kPi * static_cast<double>((static_cast<int64_t>(kk) * t) % n) / n;
      row[kk] = static_cast<float>(c * std::cos(ang) * scale);
      row[bins + kk] = edge ? 0.0f : static_cast<float>(-c * std::sin(ang) * scale);
    }
  }
  lm::pack_linear(idft.data(), nullptr, n, 2 * bins, &dec->idft_);
  std::vector<lm::PackedLinear*> lins = {&dec->inp_.lin, &dec->head_};
  for (Block& blk : dec->blocks_) {
    lins.push_back(&blk.pw1);
    lins.push_back(&blk.pw2);
  }
  // The iDFT matrix is neither a binary16 nor an int8 matrix: it stays float32.
  dec->storage_ = lm::pack_smallest(*kernels, lins);
  *out = std::move(dec);
  return Status::Ok();
}

void Decoder::NewState(DecoderState* state) const {
  state->history.clear();
  state->history.emplace_back(static_cast<size_t>(inp_.pad) * static_cast<size_t>(inp_.c_in), 0.0f);
  for (const Block& blk : blocks_) {
    state->history.emplace_back(static_cast<size_t>(blk.dw.pad) * static_cast<size_t>(blk.dw.c_in), 0.0f);
  }
  state->tail.assign(static_cast<size_t>(lookahead()), 0.0f);
  state->frames = 0;
}

bool Decoder::CheckState(const DecoderState& state) const {
  if (state.history.size() != blocks_.size() + 1) return false;
  if (state.history[0].size() != static_cast<size_t>(inp_.pad) * static_cast<size_t>(inp_.c_in)) return false;
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const CausalConv& dw = blocks_[l].dw;
    if (state.history[l + 1].size() != static_cast<size_t>(dw.pad) * static_cast<size_t>(dw.c_in)) return false;
  }
  return state.tail.size() == static_cast<size_t>(lookahead());
}

Status Decoder::Step(DecoderState* state, const float* latents, int n_frames, float* wav) const {
  if (state == nullptr || latents == nullptr || wav == nullptr) {
    return InvalidArgument("decoder step: null argument");
  }
  if (n_frames < 1 || n_frames > kMaxStepFrames) {
    return InvalidArgument("decoder step: n_frames must be in [1, " + std::to_string(kMaxStepFrames) +
                           "], got " + std::to_string(n_frames));
  }
  if (!CheckState(*state)) return InvalidArgument("decoder step: the state belongs to another decoder");
  const size_t rows = static_cast<size_t>(n_frames), dlat = static_cast<size_t>(shape_.latent_dim);
  if (!all_finite(latents, rows * dlat)) {
    return InvalidArgument("decoder step: latents hold a non-finite value");
  }
  const lm::Kernels& k = *kernels_;
  Workspace& w = state->work;
  const size_t e = static_cast<size_t>(shape_.dec_dim);

  // Input conv and LayerNorm: a [rows, E].
  const size_t pad_in = static_cast<size_t>(inp_.pad);
  grow(&w.b, (pad_in + rows) * dlat);
  std::memcpy(w.b.data() + pad_in * dlat, latents, rows * dlat * sizeof(float));
  grow(&w.a, conv_out_floats(inp_, rows));
  conv_dense(k, inp_, &state->history[0], w.b.data(), rows, w.a.data(), &w.e);
  layer_norm_rows(w.a.data(), rows, shape_.dec_dim, norm_in_g_, norm_in_b_);

  // ConvNeXt blocks: a += gamma * pw2(gelu(pw1(LN(dw(a))))).
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const Block& blk = blocks_[l];
    const size_t pad = static_cast<size_t>(blk.dw.pad);
    grow(&w.b, (pad + rows) * e);
    std::memcpy(w.b.data() + pad * e, w.a.data(), rows * e * sizeof(float));
    grow(&w.c, std::max(rows * e, rows * blk.pw2.ld));
    conv_depthwise(blk.dw, &state->history[l + 1], w.b.data(), rows, w.c.data());
    layer_norm_rows(w.c.data(), rows, shape_.dec_dim, blk.norm_g, blk.norm_b);
    grow(&w.d, rows * blk.pw1.ld);
    lm::linear(k, w.c.data(), e, rows, blk.pw1, w.d.data(), blk.pw1.ld);
    k.gelu(w.d.data(), w.d.data(), rows * blk.pw1.ld);
    lm::linear(k, w.d.data(), blk.pw1.ld, rows, blk.pw2, w.c.data(), blk.pw2.ld);
    float* a = w.a.data();
    for (size_t r = 0; r < rows; ++r) {
      const float* h = w.c.data() + r * blk.pw2.ld;
      float* x = a + r * e;
      for (size_t i = 0; i < e; ++i) x[i] = det::add(x[i], det::mul(h[i], blk.gamma[i]));
    }
  }

  // Head: per frame S sub-frames of (log-magnitude [bins], phase [bins]) -> complex spectra
  // as [re [bins], im [bins]] rows -> windowed frames [J, N] by the iDFT matrix.
  layer_norm_rows(w.a.data(), rows, shape_.dec_dim, norm_out_g_, norm_out_b_);
  grow(&w.d, rows * head_.ld);
  lm::linear(k, w.a.data(), e, rows, head_, w.d.data(), head_.ld);
  const size_t bins = static_cast<size_t>(bins_), sub = static_cast<size_t>(sub_);
  const size_t j_frames = rows * sub;
  grow(&w.b, j_frames * 2 * bins);
  for (size_t f = 0; f < rows; ++f) {
    for (size_t q = 0; q < sub; ++q) {
      const float* src = w.d.data() + f * head_.ld + q * 2 * bins;
      float* dst = w.b.data() + (f * sub + q) * 2 * bins;
      for (size_t kk = 0; kk < bins; ++kk) {
        const float mag = det::det_expf(std::min(src[kk], kMaxLogMagnitude));
        const float ph = src[bins + kk];
        dst[kk] = det::mul(mag, std::cos(ph));
        dst[bins + kk] = det::mul(mag, std::sin(ph));
      }
    }
  }
  const size_t n = static_cast<size_t>(shape_.istft_n_fft), hop = static_cast<size_t>(shape_.istft_hop);
  grow(&w.c, j_frames * idft_.ld);
  lm::linear(k, w.b.data(), 2 * bins, j_frames, idft_, w.c.data(), idft_.ld);

  // Overlap-add, oldest contribution first: y starts as the tail (the partial sums of the
  // earlier frames' windows) and each sample then adds its windows from the oldest frame
  // (quarter r - 1) to the newest (quarter 0). Every sample is so the same sum in the same
  // order however the stream is cut into steps: streaming equals one step, bit for bit.
  // (PyTorch adds the tail last: the same up to float rounding.)
  const size_t r = n / hop, total = (j_frames + r - 1) * hop, look = static_cast<size_t>(lookahead());
  std::vector<float>& y = w.e;
  grow(&y, total);
  std::copy(state->tail.begin(), state->tail.end(), y.begin());
  std::fill(y.begin() + static_cast<std::ptrdiff_t>(look), y.begin() + static_cast<std::ptrdiff_t>(total), 0.0f);
  for (size_t q = r; q-- > 0;) {
    for (size_t j = 0; j < j_frames; ++j) {
      const float* fr = w.c.data() + j * idft_.ld + q * hop;
      float* out = y.data() + (j + q) * hop;
      for (size_t t = 0; t < hop; ++t) out[t] = det::add(out[t], fr[t]);
    }
  }
  if (state->frames == 0) {  // the first windows' heads lie before the stream: zeros
    std::fill(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(look), 0.0f);
  }
  const size_t n_out = j_frames * hop;
  std::memcpy(wav, y.data(), n_out * sizeof(float));
  std::memcpy(state->tail.data(), y.data() + n_out, look * sizeof(float));
  state->frames += static_cast<int64_t>(rows);
  return Status::Ok();
}

Status Decoder::Flush(const DecoderState& state, float* tail) const {
  if (tail == nullptr) return InvalidArgument("decoder flush: null argument");
  if (!CheckState(state)) return InvalidArgument("decoder flush: the state belongs to another decoder");
  std::copy(state.tail.begin(), state.tail.end(), tail);
  return Status::Ok();
}

}  // namespace soundspring::codec
