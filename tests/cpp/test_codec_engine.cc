// Tests of csrc/core/codec_engine.h and the element-wise kernels (lm_kernels.h elu / gelu /
// cdf_exp_row): every ISA level's results equal the scalar definitions (det_math.h, cdf.h) bit for bit
// (special values and every tail length included); a codec with random weights gives the
// same latents and audio bits on every level; streaming in chunks equals one step over the
// whole input; a copied state continues identically; bad shapes, weights, lengths, inputs
// and states are refused with the state untouched.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/cdf.h"
#include "core/codec_engine.h"
#include "core/det_math.h"

using soundspring::StatusCode;
using soundspring::lm::Isa;
namespace codec = soundspring::codec;
namespace det = soundspring::det;
namespace lm = soundspring::lm;

namespace {

const Isa kLevels[] = {Isa::kGeneric, Isa::kSse2, Isa::kAvx2, Isa::kAvx512};

bool same_bits(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y || (a != a && b != b);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return false;
  return true;
}

void test_activations() {
  std::vector<float> x;
  std::mt19937 gen(7);
  std::normal_distribution<float> wide(0.0f, 30.0f), narrow(0.0f, 2.0f);
  for (int i = 0; i < 4000; ++i) x.push_back(i % 2 ? wide(gen) : narrow(gen));
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, -87.0f, -87.00001f, -86.99999f, 88.5f, 88.50001f,
                  88.4f, 88.1f, -200.0f, 200.0f, inf, -inf, std::nanf(""), 14.142135f, -14.142135f,
                  14.2f, -14.2f, 1e38f, -1e38f})
    x.push_back(v);
  const size_t n = x.size();
  std::vector<float> elu_ref(n), gelu_ref(n);
  for (size_t i = 0; i < n; ++i) {
    elu_ref[i] = x[i] > 0.0f ? x[i] : det::sub(det::det_expf(x[i]), 1.0f);
    gelu_ref[i] = det::det_gelu(x[i]);
  }
  for (Isa isa : kLevels) {
    const lm::Kernels* k = lm::kernels_for(isa);
    if (k == nullptr) continue;
    for (size_t len : {n, n - 1, n - 3, size_t{5}, size_t{1}, size_t{0}}) {
      std::vector<float> y(len, 123.0f), g(len, 123.0f);
      k->elu(x.data(), y.data(), len);
      k->gelu(x.data(), g.data(), len);
      bool ok = true;
      for (size_t i = 0; i < len; ++i) ok = ok && same_bits(y[i], elu_ref[i]) && same_bits(g[i], gelu_ref[i]);
      CHECK(ok);
    }
    std::vector<float> inplace = x;  // y == x is allowed
    k->elu(inplace.data(), inplace.data(), n);
    CHECK(same_bits(inplace, elu_ref));
    // cdf.h's det_exp over a row of logits shifted by their max (every tail length).
    std::vector<float> logits;
    for (float v : x)
      if (std::isfinite(v)) logits.push_back(v);
    logits.push_back(-inf);
    const double m = 30.0;
    for (size_t len : {logits.size(), logits.size() - 1, size_t{3}, size_t{1}}) {
      std::vector<double> e(len, 7.0);
      k->cdf_exp_row(logits.data(), static_cast<int>(len), m, e.data());
      bool ok = true;
      for (size_t i = 0; i < len; ++i) {
        const double want = soundspring::det_exp(static_cast<double>(logits[i]) - m);
        ok = ok && std::memcmp(&want, &e[i], sizeof want) == 0;
      }
      CHECK(ok);
    }
  }
  // det_gelu against the exact GELU (erf from libm, in double): the A&S erf's 1.5e-7 bound.
  double worst = 0.0;
  for (float v : x) {
    if (!std::isfinite(v) || std::fabs(v) > 20.0f) continue;
    const double exact = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    worst = std::max(worst, std::fabs(det::det_gelu(v) - exact) / std::max(1.0, std::fabs(double(v))));
  }
  CHECK(worst < 1e-6);
}

// A small codec of the SEANet / Vocos family with random weights.
struct Model {
  codec::CodecShape shape;
  std::map<std::string, std::vector<float>> store;
  lm::TensorMap map;
  std::mt19937 gen{11};

  void add(const std::string& name, std::vector<int64_t> dims, float scale) {
    size_t count = 1;
    for (int64_t d : dims) count *= static_cast<size_t>(d);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float>& v = store[name];
    v.resize(count);
    for (float& f : v) f = dist(gen);
    map[name] = lm::TensorRef{v.data(), dims};
  }
  void conv(const std::string& p, int c_in, int c_out, int k) {
    add(p + ".conv.weight", {c_out, c_in, k}, 1.0f / std::sqrt(float(c_in * k)));
    add(p + ".conv.bias", {c_out}, 0.05f);
  }
  void ones(const std::string& name, int n) {
    add(name, {n}, 0.1f);
    for (float& f : store[name]) f += 1.0f;
  }

  Model() {
    shape.latent_dim = 16;
    shape.enc_channels = 8;
    shape.enc_max_channels = 24;
    shape.enc_strides = {2, 4, 5};  // hop 40
    shape.enc_res_dilations = {1, 3};
    shape.dec_dim = 24;
    shape.dec_intermediate = 40;
    shape.dec_layers = 2;
    shape.dec_kernel = 5;
    shape.istft_hop = 10;
    shape.istft_n_fft = 40;
    int ch = shape.enc_channels;
    conv("encoder.inp", 1, ch, 7);
    for (size_t b = 0; b < shape.enc_strides.size(); ++b) {
      const std::string p = "encoder.blocks." + std::to_string(b);
      for (size_t u = 0; u < shape.enc_res_dilations.size(); ++u) {
        conv(p + ".res." + std::to_string(u) + ".c1", ch, ch / 2, 3);
        conv(p + ".res." + std::to_string(u) + ".c2", ch / 2, ch, 1);
      }
      const int co = std::min(2 * ch, shape.enc_max_channels);
      conv(p + ".down", ch, co, 2 * shape.enc_strides[b]);
      ch = co;
    }
    conv("encoder.out", ch, shape.latent_dim, 3);
    const int e = shape.dec_dim, inter = shape.dec_intermediate;
    conv("decoder.inp", shape.latent_dim, e, 3);
    ones("decoder.norm_in.weight", e);
    add("decoder.norm_in.bias", {e}, 0.1f);
    for (int l = 0; l < shape.dec_layers; ++l) {
      const std::string p = "decoder.blocks." + std::to_string(l);
      add(p + ".dw.conv.weight", {e, 1, shape.dec_kernel}, 0.4f);
      add(p + ".dw.conv.bias", {e}, 0.05f);
      ones(p + ".norm.weight", e);
      add(p + ".norm.bias", {e}, 0.1f);
      add(p + ".pw1.weight", {inter, e}, 1.0f / std::sqrt(float(e)));
      add(p + ".pw1.bias", {inter}, 0.05f);
      add(p + ".pw2.weight", {e, inter}, 1.0f / std::sqrt(float(inter)));
      add(p + ".pw2.bias", {e}, 0.05f);
      add(p + ".gamma", {e}, 0.3f);
    }
    ones("decoder.norm_out.weight", e);
    add("decoder.norm_out.bias", {e}, 0.1f);
    const int hop = 40, sub = hop / shape.istft_hop, bins = shape.istft_n_fft / 2 + 1;
    add("decoder.head.weight", {sub * 2 * bins, e}, 0.3f);
    add("decoder.head.bias", {sub * 2 * bins}, 0.1f);
  }
};

struct Run {
  std::vector<float> latents, audio;
};

// Encodes `wav` in steps of `frames` frames and decodes the latents likewise.
Run run(const codec::Encoder& enc, const codec::Decoder& dec, const std::vector<float>& wav,
        int frames) {
  Run out;
  codec::EncoderState es;
  enc.NewState(&es);
  const int hop = enc.hop(), d = enc.latent_dim();
  const int total = static_cast<int>(wav.size()) / hop;
  out.latents.resize(static_cast<size_t>(total) * d);
  for (int f = 0; f < total; f += frames) {
    const int n = std::min(frames, total - f);
    CHECK(enc.Step(&es, wav.data() + static_cast<size_t>(f) * hop, int64_t{n} * hop,
                   out.latents.data() + static_cast<size_t>(f) * d).ok());
  }
  codec::DecoderState ds;
  dec.NewState(&ds);
  out.audio.resize(wav.size() + static_cast<size_t>(dec.lookahead()));
  for (int f = 0; f < total; f += frames) {
    const int n = std::min(frames, total - f);
    CHECK(dec.Step(&ds, out.latents.data() + static_cast<size_t>(f) * d, n,
                   out.audio.data() + static_cast<size_t>(f) * hop).ok());
  }
  CHECK(dec.Flush(ds, out.audio.data() + wav.size()).ok());
  return out;
}

void test_codec() {
  Model m;
  std::vector<float> wav(40 * 37);
  for (size_t i = 0; i < wav.size(); ++i)
    wav[i] = 0.3f * std::sin(0.07f * float(i)) + 0.05f * std::sin(1.3f * float(i * i % 97));
  Run base;
  bool have_base = false;
  for (Isa isa : kLevels) {
    if (!lm::isa_supported(isa)) continue;
    codec::CodecOptions o;
    o.isa = isa;
    std::unique_ptr<codec::Encoder> enc;
    std::unique_ptr<codec::Decoder> dec;
    CHECK(codec::Encoder::Create(m.shape, m.map, o, &enc).ok());
    CHECK(codec::Decoder::Create(m.shape, m.map, o, &dec).ok());
    if (!enc || !dec) return;
    CHECK(enc->hop() == 40 && dec->lookahead() == 30);
    const Run whole = run(*enc, *dec, wav, 37);
    for (int frames : {1, 2, 5}) {
      const Run chunked = run(*enc, *dec, wav, frames);
      CHECK(same_bits(chunked.latents, whole.latents));
      CHECK(same_bits(chunked.audio, whole.audio));
    }
    double energy = 0.0;
    for (float v : whole.audio) energy += double(v) * v;
    CHECK(std::isfinite(energy) && energy > 0.0);
    if (!have_base) {
      base = whole;
      have_base = true;
    } else {
      CHECK(same_bits(whole.latents, base.latents));
      CHECK(same_bits(whole.audio, base.audio));
    }
  }

  // A copied state continues exactly as the original; the first samples are zeros.
  std::unique_ptr<codec::Encoder> enc;
  std::unique_ptr<codec::Decoder> dec;
  CHECK(codec::Encoder::Create(m.shape, m.map, {}, &enc).ok());
  CHECK(codec::Decoder::Create(m.shape, m.map, {}, &dec).ok());
  codec::EncoderState es;
  enc->NewState(&es);
  std::vector<float> z(3 * 16), z2(3 * 16);
  CHECK(enc->Step(&es, wav.data(), 120, z.data()).ok());
  codec::EncoderState copy = es;
  CHECK(enc->Step(&es, wav.data() + 120, 120, z.data()).ok());
  CHECK(enc->Step(&copy, wav.data() + 120, 120, z2.data()).ok());
  CHECK(same_bits(z, z2) && copy.frames == 6 && es.frames == 6);
  codec::DecoderState ds;
  dec->NewState(&ds);
  std::vector<float> y(120);
  CHECK(dec->Step(&ds, base.latents.data(), 3, y.data()).ok());
  bool zeros = true;
  for (int i = 0; i < dec->lookahead(); ++i) zeros = zeros && y[i] == 0.0f;
  CHECK(zeros);

  // Refusals, with the state untouched.
  const codec::EncoderState before = es;
  CHECK(enc->Step(&es, wav.data(), 41, z.data()).code() == StatusCode::kInvalidArgument);
  CHECK(enc->Step(&es, wav.data(), 0, z.data()).code() == StatusCode::kInvalidArgument);
  CHECK(enc->Step(&es, wav.data(), int64_t{40} * (codec::kMaxStepFrames + 1), z.data()).code() ==
        StatusCode::kInvalidArgument);
  std::vector<float> bad(wav.begin(), wav.begin() + 40);
  bad[17] = std::nanf("");
  CHECK(enc->Step(&es, bad.data(), 40, z.data()).code() == StatusCode::kInvalidArgument);
  CHECK(es.history == before.history && es.frames == before.frames);
  codec::EncoderState foreign;
  CHECK(enc->Step(&foreign, wav.data(), 40, z.data()).code() == StatusCode::kInvalidArgument);
  std::vector<float> lat_bad(16, 0.0f);
  lat_bad[3] = std::numeric_limits<float>::infinity();
  CHECK(dec->Step(&ds, lat_bad.data(), 1, y.data()).code() == StatusCode::kInvalidArgument);
  CHECK(dec->Step(&ds, base.latents.data(), 0, y.data()).code() == StatusCode::kInvalidArgument);
  codec::DecoderState dforeign;
  CHECK(dec->Step(&dforeign, base.latents.data(), 1, y.data()).code() == StatusCode::kInvalidArgument);
  CHECK(dec->Flush(dforeign, y.data()).code() == StatusCode::kInvalidArgument);

  // Weights that do not fit, and shapes out of range.
  Model wrong;
  wrong.map["encoder.blocks.1.down.conv.weight"].shape = {8, 8, 8};
  CHECK(codec::Encoder::Create(wrong.shape, wrong.map, {}, &enc).code() == StatusCode::kInvalidArgument);
  wrong.map.erase("decoder.head.bias");
  CHECK(codec::Decoder::Create(wrong.shape, wrong.map, {}, &dec).code() == StatusCode::kInvalidArgument);
  Model nan;
  nan.store["decoder.blocks.0.pw1.weight"][5] = std::nanf("");
  CHECK(codec::Decoder::Create(nan.shape, nan.map, {}, &dec).code() == StatusCode::kInvalidArgument);
  codec::CodecShape s = m.shape;
  s.istft_hop = 7;
  CHECK(codec::Decoder::Create(s, m.map, {}, &dec).code() == StatusCode::kInvalidArgument);
  s = m.shape;
  s.enc_strides = {};
  CHECK(codec::Encoder::Create(s, m.map, {}, &enc).code() == StatusCode::kInvalidArgument);
}

}  // namespace

int main() {
  test_activations();
  test_codec();
  return soundspring_test::report("test_codec_engine");
}
