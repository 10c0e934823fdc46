// soundspring_receiver: a Python-free SoundSpring receiver (examples/cpp_receiver/README.md).
//
// Reads a .spring file (or listens on a UDP port for RTP, the layout of `soundspring send`),
// runs the core container parser, the jitter buffer (core/jitter_buffer.h), the chunk
// decoder (chunk_decoder.h: range decoder, integrity checks, fine CDFs from the
// deterministic SpringLM engine loaded from the export's flat weights), repeat-last-frame
// concealment (the Python receiver's default, config.DEFAULT_CONCEAL) and the codec
// decoder step (core/codec_engine.h, the decoder the Python receiver runs, on the export's
// flat codec decoder weights), and writes a 16 kHz WAV. Prints per-chunk receive times as
// one JSON object on stdout. No Python and no torch.
//
// Exit status: 0 done, 1 runtime error (one line on stderr), 2 usage error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/chunk_decoder.h"
#include "core/codec_engine.h"
#include "core/container.h"
#include "core/flat_weights.h"
#include "core/jitter_buffer.h"
#include "core/json_reader.h"
#include "core/lm_engine.h"
#include "core/sha256.h"
#include "udp_source.h"

namespace ss = soundspring;
namespace rx {  // the receiver's pieces: core/ (torch-free) and udp_source.h
using namespace soundspring::json;     // NOLINT(google-build-using-namespace)
using namespace soundspring::entropy;  // NOLINT(google-build-using-namespace)
using soundspring::Sha256File;
using soundspring::codec::FlatCodec;
using soundspring::codec::LoadFlatCodec;
using soundspring::lm::FlatLm;
using soundspring::lm::LoadFlatLm;
using soundspring::receiver::UdpSource;
}  // namespace rx

namespace {

constexpr int kSampleRateHz = 16000;
constexpr int kFrameSamples = 320;
constexpr int kMaxGapSamples = 10 * kSampleRateHz;  // transceiver.stream.MAX_GAP_SAMPLES

struct Failure {
  std::string message;
};

[[noreturn]] void Fail(const std::string& m) { throw Failure{m}; }
void Check(const ss::Status& st, const std::string& what) {
  if (!st.ok()) Fail(what + ": " + st.message());
}

std::vector<std::uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
}

// ---- the export manifest --------------------------------------------------------------------

struct Export {
  std::string dir;
  int k_max = 0;
  int lookahead = 0;
  std::string codec_id;
  std::string codec_path;   // the flat codec decoder weights
  std::string engine_path;  // the flat SpringLM weights
};

std::string VerifiedFile(const rx::JsonValue& files, const std::string& dir,
                         const std::string& name) {
  const rx::JsonValue* f = files.find(name);
  std::string want;
  std::int64_t bytes = 0;
  if (f == nullptr || !rx::GetString(*f, "sha256", "manifest file " + name, &want).ok() ||
      !rx::GetInt(*f, "bytes", "manifest file " + name, 0, INT64_C(1) << 40, &bytes).ok()) {
    Fail("manifest lists no hash for " + name);
  }
  const std::string path = dir + "/" + name;
  std::string have;
  std::uint64_t size = 0;
  if (!rx::Sha256File(path, &have, &size)) Fail("cannot read " + path);
  if (have != want || size != static_cast<std::uint64_t>(bytes)) {
    Fail(path + ": SHA-256 or size differs from the manifest's (a modified or foreign file)");
  }
  return path;
}

Export LoadExport(const std::string& dir) {
  const std::vector<std::uint8_t> text = ReadFile(dir + "/manifest.json");
  rx::JsonValue m;
  Check(rx::ParseJson(reinterpret_cast<const char*>(text.data()), text.size(), &m),
        dir + "/manifest.json");
  std::string format;
  std::int64_t version = 0, v = 0;
  if (!rx::GetString(m, "format", "manifest", &format).ok() || format != "soundspring-export") {
    Fail(dir + ": not a soundspring-export manifest");
  }
  Check(rx::GetInt(m, "version", "manifest", 0, 1 << 20, &version), "manifest");
  if (version != 1) Fail(dir + ": manifest version " + std::to_string(version) + " unsupported (this build reads 1)");
  Export e;
  e.dir = dir;
  Check(rx::GetInt(m, "sample_rate_hz", "manifest", 0, 1 << 20, &v), "manifest");
  if (v != kSampleRateHz) Fail("the export is not for 16 kHz audio");
  // the bitstream constants this receiver is built with (core/chunk_decoder.h) must be the
  // exporting build's (soundspring.models.export.coding_constants)
  const rx::JsonValue* coding = m.find("coding");
  const rx::JsonValue* bounds = coding ? coding->find("layer_bounds") : nullptr;
  bool same = bounds != nullptr && bounds->kind == rx::JsonValue::Kind::kArray &&
              bounds->array.size() == 5;
  for (std::size_t i = 0; same && i < 5; ++i) {
    same = bounds->array[i].kind == rx::JsonValue::Kind::kNumber &&
           bounds->array[i].number == rx::kLayerBounds[i];
  }
  for (auto [key, want] : {std::pair<const char*, int>{"base_codebooks", rx::kBaseLevels},
                           {"mask", rx::kMask}, {"mask_upper", rx::kMaskUpper},
                           {"base_check_salt", rx::kBaseCheckSalt},
                           {"combined_check_salt", rx::kCombinedCheckSalt}}) {
    same = same && rx::GetInt(*coding, key, "manifest coding", 0, 1 << 20, &v).ok() && v == want;
  }
  if (!same) Fail(dir + ": the export's bitstream constants (manifest 'coding') differ from this receiver's");
  const rx::JsonValue* codec = m.find("codec");
  const rx::JsonValue* files = m.find("files");
  const rx::JsonValue* arts = m.find("artifacts");
  const rx::JsonValue* lm = m.find("lm");
  if (codec == nullptr || files == nullptr || arts == nullptr) Fail("manifest lacks codec/files/artifacts");
  if (lm == nullptr || !lm->is_object()) Fail(dir + ": the export holds no SpringLM (export it with --lm)");
  Check(rx::GetString(*codec, "content_sha256", "manifest codec", &e.codec_id), "manifest");
  Check(rx::GetInt(*codec, "lookahead_samples", "manifest codec", 0, 1 << 16, &v), "manifest");
  e.lookahead = static_cast<int>(v);
  Check(rx::GetInt(*codec, "n_codebooks", "manifest codec", 1, 64, &v), "manifest");
  e.k_max = static_cast<int>(v);
  std::string name;
  if (!rx::GetString(*codec, "decoder_weights", "manifest codec", &name).ok()) {
    Fail(dir + ": the export has no flat codec decoder weights (manifest codec.decoder_weights; "
         "export it again with this version of soundspring export)");
  }
  e.codec_path = VerifiedFile(*files, dir, name);
  Check(rx::GetString(*lm, "engine_weights", "manifest lm", &name), "manifest");
  e.engine_path = VerifiedFile(*files, dir, name);
  return e;
}

// ---- the codec decoder step (core/codec_engine.h) ------------------------------------------------

// The export's codec decoder weights and codebooks, checked against its manifest.
void LoadCodec(const Export& e, rx::FlatCodec* codec) {
  Check(rx::LoadFlatCodec(e.codec_path, ss::codec::CodecOptions{}, codec), "codec decoder weights");
  if (codec->codec_id != e.codec_id) {
    Fail(e.codec_path + ": codec decoder weights of codec " + codec->codec_id.substr(0, 16) +
         ", the manifest's codec is " + e.codec_id.substr(0, 16));
  }
  const ss::codec::Decoder& d = *codec->decoder;
  if (codec->n_codebooks != e.k_max || d.hop() != kFrameSamples || d.lookahead() != e.lookahead) {
    Fail(e.codec_path + ": codec decoder shape (levels, hop, lookahead) differs from the manifest's");
  }
}

class CodecDecoder {
 public:
  // One stream's decoder, in steps of `chunk_frames` frames (any chunk length).
  CodecDecoder(const rx::FlatCodec& codec, int chunk_frames) : c_(chunk_frames), codec_(codec) {
    const ss::codec::Decoder& d = *codec_.decoder;
    d.NewState(&state_);
    latents_.resize(static_cast<std::size_t>(c_ * d.latent_dim()));
    wav_.resize(static_cast<std::size_t>(c_ * d.hop()));
  }

  // tokens [n_levels, C] level-major -> C * 320 samples appended to *out: latents = the
  // levels' codewords summed in level order (the quantizer's decode), then one step.
  void Step(const std::vector<std::int64_t>& tokens, int n_levels, std::vector<float>* out) {
    if (tokens.size() != static_cast<std::size_t>(n_levels * c_)) Fail("codec step: token count");
    Check(ss::codec::TokensToLatents(codec_, tokens.data(), n_levels, c_, latents_.data()), "codec step");
    Check(codec_.decoder->Step(&state_, latents_.data(), c_, wav_.data()), "codec step");
    out->insert(out->end(), wav_.begin(), wav_.end());
  }

  // The overlap-add tail (the stream's last lookahead samples).
  void Flush(std::vector<float>* out) const {
    std::vector<float> tail(static_cast<std::size_t>(codec_.decoder->lookahead()));
    Check(codec_.decoder->Flush(state_, tail.data()), "codec flush");
    out->insert(out->end(), tail.begin(), tail.end());
  }

 private:
  int c_;
  const rx::FlatCodec& codec_;
  ss::codec::DecoderState state_;
  std::vector<float> latents_, wav_;
};

// ---- the stream header ----------------------------------------------------------------------------

struct Stream {
  std::string codec_id, model_id;
  std::int64_t n_samples = 0;
  double bitrate_kbps = 6.0;
  int n_codebooks = 12;
  int chunk_frames = 2, context_frames = 0, check_bits = 8, precision_bits = 16;
  bool progressive = false, fec = false, layered = false;
  int packets_per_chunk() const {
    int n = 0;
    while (n < 4 && rx::kLayerBounds[n] < n_codebooks) ++n;
    return layered ? n : 1;
  }
  int chunk_samples() const { return chunk_frames * kFrameSamples; }
};

Stream ParseStreamHeader(const rx::JsonValue& h) {
  const std::string what = "stream header";
  Stream s;
  std::string format;
  std::int64_t v = 0;
  if (!rx::GetString(h, "format", what, &format).ok() || format != "soundspring") {
    Fail("stream header field 'format' must be the string 'soundspring'");
  }
  Check(rx::GetString(h, "codec_id", what, &s.codec_id), "stream header");
  Check(rx::GetString(h, "model_id", what, &s.model_id), "stream header");
  Check(rx::GetInt(h, "sample_rate_hz", what, kSampleRateHz, kSampleRateHz, &v), "stream header");
  Check(rx::GetInt(h, "n_samples", what, 0, INT64_C(24) * 3600 * kSampleRateHz, &s.n_samples),
        "stream header");
  Check(rx::GetNumber(h, "bitrate_kbps", what, &s.bitrate_kbps), "stream header");
  const double rates[] = {1.5, 3.0, 6.0, 12.0};
  if (std::find(std::begin(rates), std::end(rates), s.bitrate_kbps) == std::end(rates)) {
    Fail("stream header field 'bitrate_kbps' must be one of 1.5, 3, 6, 12");
  }
  s.n_codebooks = static_cast<int>(std::lround(s.bitrate_kbps * 2.0));
  Check(rx::GetInt(h, "chunk_frames", what, 1, 5, &v), "stream header");
  s.chunk_frames = static_cast<int>(v);
  Check(rx::GetInt(h, "context_frames", what, 0, 50, &v), "stream header");
  s.context_frames = static_cast<int>(v);
  Check(rx::GetInt(h, "check_bits", what, 0, 16, &v), "stream header");
  s.check_bits = static_cast<int>(v);
  Check(rx::GetInt(h, "precision_bits", what, 10, 16, &v), "stream header");
  s.precision_bits = static_cast<int>(v);
  Check(rx::GetBool(h, "progressive", what, &s.progressive), "stream header");
  Check(rx::GetBool(h, "fec", what, &s.fec), "stream header");
  s.layered = true;  // streams written before the key were layered
  if (h.find("layered") != nullptr) Check(rx::GetBool(h, "layered", what, &s.layered), "stream header");
  return s;
}

// ---- the receiver --------------------------------------------------------------------------------

struct Outcome {
  std::int64_t chunk = 0;
  std::string status;
  int n_levels = 0;     // levels decoded from received data (0 when concealed)
  int played_levels = 0;
  std::vector<std::int64_t> tokens;  // [played_levels, C]
  double tokens_ms = 0.0, codec_ms = 0.0;
};

class Receiver {
 public:
  Receiver(const Stream& s, const rx::FlatLm& lm, const rx::FlatCodec& codec, bool fused)
      : s_(s), lm_(lm), codec_(codec, s.chunk_frames) {
    rx::ChunkSettings cs;
    cs.n_codebooks = s.n_codebooks;
    cs.chunk_frames = s.chunk_frames;
    cs.context_frames = s.context_frames;
    cs.progressive = s.progressive;
    cs.check_bits = s.check_bits;
    cs.precision_bits = s.precision_bits;
    cs.fused_cdfs = fused;
    Check(rx::ChunkDecoder::Create(cs, lm.engine.get(), lm.unigram.data(), &decoder_),
          "chunk decoder");
    Check(lm.engine->NewState(s.context_frames, s.chunk_frames, &memory_), "engine state");
    reach_ = s.context_frames / s.chunk_frames;
  }

  Outcome Play(const ss::transport::PlayoutChunk& pc, std::vector<float>* pcm) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const int c = s_.chunk_frames;
    Outcome o;
    o.chunk = pc.chunk;
    std::string how = "concealed";
    bool have = false;
    rx::DecodedTokens got;
    const bool tainted = std::any_of(tainted_.begin(), tainted_.end(), [](bool b) { return b; });
    const bool base_in = (pc.received_mask & 1u) != 0;
    std::vector<std::int64_t> base(static_cast<std::size_t>(rx::kBaseLevels * c));
    const auto& p0 = pc.payloads[0];
    // The FEC copy of the base (carried by the next chunk's packet), when the primary base
    // is missing or fails its checks: the Python receiver's fallback, in every format.
    const auto fec_base = [&]() {
      return pc.has_fec_copy && !pc.base_from_fec &&
             decoder_->DecodeBase(pc.fec_copy.data(), pc.fec_copy.size(), base.data()).ok();
    };
    if (s_.layered) {
      bool base_ok = base_in && decoder_->DecodeBase(p0.data(), p0.size(), base.data()).ok();
      if (base_ok) {
        how = pc.base_from_fec ? "fec" : "received";
      } else if (fec_base()) {
        base_ok = true;
        how = "fec";
      }
      if (base_ok) {  // fine layers decode over a base from either source
        have = true;
        got.tokens = base;
        got.n_levels = rx::kBaseLevels;
        bool any_fine = false;
        const std::uint8_t* ptr[3] = {nullptr, nullptr, nullptr};
        std::size_t size[3] = {0, 0, 0};
        for (int l = 1; l < decoder_->n_layers(); ++l) {
          if (pc.received_mask & (1u << l)) {
            ptr[l - 1] = pc.payloads[static_cast<std::size_t>(l)].data();
            size[l - 1] = pc.payloads[static_cast<std::size_t>(l)].size();
            any_fine = true;
          }
        }
        if (any_fine && !tainted) Check(decoder_->DecodeFine(memory_, base.data(), ptr, size, &got), "decode");
      }
    } else if (base_in && pc.base_from_fec) {
      if (decoder_->DecodeBase(p0.data(), p0.size(), base.data()).ok()) {
        have = true;
        how = "fec";
        got.tokens = base;
        got.n_levels = rx::kBaseLevels;
      }
    } else if (base_in && !tainted) {
      if (decoder_->DecodeChunk(memory_, p0.data(), p0.size(), &got).ok()) {
        have = true;
        how = "received";
      }
    } else if (base_in) {  // tainted memory: only the base can be verified
      if (decoder_->DecodeChunkBase(p0.data(), p0.size(), base.data()).ok()) {
        have = true;
        how = "received";
        got.tokens = base;
        got.n_levels = rx::kBaseLevels;
      }
    }
    if (!have && !s_.layered && fec_base()) {  // combined: the primary failed its checks
      have = true;
      how = "fec";
      got.tokens = base;
      got.n_levels = rx::kBaseLevels;
    }
    if (have) {
      o.n_levels = got.n_levels;
      o.played_levels = got.n_levels;
      o.tokens = got.tokens;
      if (how == "fec") o.status = "fec";
      else if (got.n_levels == s_.n_codebooks) o.status = "received";
      else if (got.n_levels == rx::kBaseLevels) o.status = "base_only";
      else o.status = "partial";
    } else {  // repeat the last frame at every level it carried (zeros at stream start)
      o.status = base_in ? "corrupt" : "concealed";
      if (!last_.empty()) {
        o.played_levels = last_levels_;
        o.tokens.assign(static_cast<std::size_t>(last_levels_ * c), 0);
        for (int l = 0; l < last_levels_; ++l) {
          for (int f = 0; f < c; ++f) o.tokens[static_cast<std::size_t>(l * c + f)] = last_[static_cast<std::size_t>(l * c + c - 1)];
        }
      } else {
        o.played_levels = rx::kBaseLevels;
        o.tokens.assign(static_cast<std::size_t>(rx::kBaseLevels * c), 0);
      }
    }
    Check(lm_.engine->Commit(o.tokens.data(), rx::kBaseLevels, c, &memory_), "engine commit");
    if (reach_ > 0) {
      tainted_.push_back(how == "concealed");
      if (static_cast<int>(tainted_.size()) > reach_) tainted_.pop_front();
    }
    last_ = o.tokens;
    last_levels_ = o.played_levels;
    const auto t1 = Clock::now();
    codec_.Step(o.tokens, o.played_levels, pcm);
    const auto t2 = Clock::now();
    o.tokens_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    o.codec_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    return o;
  }

  void Flush(std::vector<float>* pcm) const { codec_.Flush(pcm); }

 private:
  Stream s_;
  const rx::FlatLm& lm_;
  CodecDecoder codec_;
  std::unique_ptr<rx::ChunkDecoder> decoder_;
  ss::lm::StreamState memory_;
  int reach_ = 0;
  std::deque<bool> tainted_;
  std::vector<std::int64_t> last_;
  int last_levels_ = 0;
};

// ---- output --------------------------------------------------------------------------------------

void PutU32(std::vector<std::uint8_t>* b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b->push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void PutU16(std::vector<std::uint8_t>* b, std::uint16_t v) {
  b->push_back(static_cast<std::uint8_t>(v & 0xFF));
  b->push_back(static_cast<std::uint8_t>(v >> 8));
}

void WriteWav(const std::string& path, const std::vector<float>& x, bool as_float) {
  std::vector<std::uint8_t> b;
  const std::uint32_t bytes_per = as_float ? 4 : 2;
  const std::uint32_t data = static_cast<std::uint32_t>(x.size()) * bytes_per;
  b.insert(b.end(), {'R', 'I', 'F', 'F'});
  PutU32(&b, 36 + data);
  b.insert(b.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  PutU32(&b, 16);
  PutU16(&b, as_float ? 3 : 1);
  PutU16(&b, 1);
  PutU32(&b, kSampleRateHz);
  PutU32(&b, kSampleRateHz * bytes_per);
  PutU16(&b, static_cast<std::uint16_t>(bytes_per));
  PutU16(&b, static_cast<std::uint16_t>(8 * bytes_per));
  b.insert(b.end(), {'d', 'a', 't', 'a'});
  PutU32(&b, data);
  for (float v : x) {
    if (as_float) {
      std::uint32_t u = 0;
      std::memcpy(&u, &v, 4);
      PutU32(&b, u);
    } else {  // floor(clip(x) * 32768), clipped: commands._common.pcm16_bytes
      const double s = std::floor(std::min(1.0, std::max(-1.0, static_cast<double>(v))) * 32768.0);
      PutU16(&b, static_cast<std::uint16_t>(static_cast<std::int16_t>(std::min(32767.0, std::max(-32768.0, s)))));
    }
  }
  const std::string tmp = path + ".part";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) Fail("cannot write " + path);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!out) Fail("cannot write " + path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) Fail("cannot write " + path);
}

double Mean(const std::vector<double>& v) {
  double sum = 0.0;
  for (double x : v) sum += x;
  return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// ---- the session: records -> jitter buffer -> receiver ---------------------------------------------

struct Options {
  std::string export_dir, input, output, dump_tokens;
  bool float_wav = false;
  int threads = 1;
  int udp_port = -1;
  std::string udp_host = "127.0.0.1";
  double udp_timeout_s = 10.0;
  double playout_delay_ms = -1.0;
};

struct Packet {
  std::uint32_t seq, chunk;
  std::vector<std::uint8_t> data;
  double arrival_ms = 0.0;
};

void Usage() {
  std::fprintf(stderr,
               "usage: soundspring_receiver --export DIR (--in FILE.spring | --udp PORT) --out OUT.wav\n"
               "         [--float] [--dump-tokens FILE] [--threads N] [--host ADDR]\n"
               "         [--timeout-s S] [--playout-delay-ms MS]\n");
}

int Run(const Options& opt) {
  std::unique_ptr<rx::UdpSource> udp;  // bound first: datagrams queue while models load
  if (opt.udp_port >= 0) Check(rx::UdpSource::Open(opt.udp_host, opt.udp_port, &udp), "udp");
  const Export ex = LoadExport(opt.export_dir);
  rx::FlatLm lm;
  ss::lm::EngineOptions eo;
  eo.num_threads = opt.threads;  // the engine's worker threads: never change the bits
  Check(rx::LoadFlatLm(ex.engine_path, eo, &lm), "SpringLM weights");
  rx::FlatCodec codec;
  LoadCodec(ex, &codec);

  Stream s;
  std::vector<Packet> packets;
  if (udp) {
    rx::JsonValue h;
    Check(udp->WaitSession(opt.udp_timeout_s, &h), "udp session");
    s = ParseStreamHeader(h);
  } else {
    const std::vector<std::uint8_t> file = ReadFile(opt.input);
    ss::transport::ContainerLayout layout;
    Check(ss::transport::ReadContainer(file.data(), file.size(), &layout), opt.input);
    rx::JsonValue h;
    Check(rx::ParseJson(reinterpret_cast<const char*>(file.data()) + layout.json_offset,
                        layout.json_size, &h), "stream header");
    s = ParseStreamHeader(h);
    for (const auto& r : layout.records) {
      packets.push_back(Packet{r.seq, r.chunk,
                               std::vector<std::uint8_t>(file.begin() + static_cast<std::ptrdiff_t>(r.packet_offset),
                                                         file.begin() + static_cast<std::ptrdiff_t>(r.packet_offset + r.packet_size)),
                               0.0});
    }
  }
  if (s.codec_id != ex.codec_id) {
    Fail("the stream was coded with codec " + s.codec_id.substr(0, 16) + ", the export holds codec " +
         ex.codec_id.substr(0, 16));
  }
  bool fused = true;
  if (s.model_id == lm.engine_model_id) {
    fused = true;
  } else if (s.model_id == lm.model_id) {
    fused = false;
    std::fprintf(stderr, "soundspring_receiver: the stream was coded through PyTorch; its fine PMFs "
                         "are rebuilt from the engine's logits (a chunk whose rounding differs fails "
                         "its check and is concealed)\n");
  } else {
    Fail("the stream was coded with model " + s.model_id.substr(0, 24) + ", the export holds SpringLM " +
         lm.engine_model_id.substr(0, 24));
  }
  const double chunk_ms = 1000.0 * s.chunk_samples() / kSampleRateHz;
  Receiver receiver(s, lm, codec, fused);

  ss::transport::JitterConfig jc;
  jc.num_layers = s.packets_per_chunk();
  jc.chunk_ms = chunk_ms;
  // a file: every packet is on time and each chunk waits for the next one's packets (the
  // Python receiver's one-chunk jitter buffer); live: the given delay (default 3 chunks).
  jc.playout_delay_ms = opt.playout_delay_ms >= 0 ? opt.playout_delay_ms : (udp ? 3 * chunk_ms : chunk_ms);
  jc.window_chunks = 256;
  jc.has_anchor = udp == nullptr;
  jc.anchor_chunk = 0;
  jc.anchor_time_ms = 0.0;
  std::unique_ptr<ss::transport::JitterBuffer> jb;
  Check(ss::transport::JitterBuffer::Create(jc, &jb), "jitter buffer");

  std::vector<float> pcm;
  std::vector<Outcome> outcomes;
  std::vector<ss::transport::PlayoutChunk> due;
  std::int64_t n_chunks = 0;
  std::int64_t n_out = 0;
  if (!udp) {
    // transceiver.stream.plan_decode: the records' reach bounds the output length
    const std::int64_t cs = s.chunk_samples();
    const std::int64_t header_chunks = (s.n_samples + cs - 1) / cs;
    const std::int64_t max_gap = std::max<std::int64_t>(1, kMaxGapSamples / cs);
    std::set<std::int64_t> present;
    for (const auto& p : packets) {
      if (p.chunk < static_cast<std::uint64_t>(header_chunks)) present.insert(p.chunk);
    }
    std::int64_t last = -1;
    for (std::int64_t c : present) {
      if (c - last - 1 > max_gap) break;
      last = c;
    }
    n_chunks = std::min(header_chunks, last + 1 + max_gap);
    n_out = std::min(s.n_samples, n_chunks * cs);
    std::map<std::int64_t, std::vector<const Packet*>> by_chunk;
    for (const auto& p : packets) {
      if (static_cast<std::int64_t>(p.chunk) < n_chunks) by_chunk[p.chunk].push_back(&p);
    }
    auto push_chunk = [&](std::int64_t c) {
      auto it = by_chunk.find(c);
      if (it == by_chunk.end()) return;
      for (const Packet* p : it->second) {
        ss::transport::PushOutcome po;
        // malformed packets are counted by the jitter buffer's parser and dropped
        (void)jb->Push(static_cast<std::uint16_t>(p->seq & 0xFFFF), p->chunk,
                       static_cast<double>(c) * chunk_ms,
                       p->data.data(), p->data.size(), &po);
      }
    };
    for (std::int64_t c = 0; c < n_chunks; ++c) {
      if (c == 0) push_chunk(0);
      push_chunk(c + 1);
      due.clear();
      Check(jb->Pop(static_cast<double>(c + 1) * chunk_ms, 1, &due), "jitter buffer");
      if (due.empty()) Fail("jitter buffer released no chunk " + std::to_string(c));
      outcomes.push_back(receiver.Play(due[0], &pcm));
    }
  } else {
    Check(udp->Run(jb.get(), s.chunk_samples(), opt.udp_timeout_s, [&](const ss::transport::PlayoutChunk& pc) {
      outcomes.push_back(receiver.Play(pc, &pcm));
    }), "udp");
    n_chunks = static_cast<std::int64_t>(outcomes.size());
    const std::int64_t played = n_chunks * s.chunk_samples();
    const std::int64_t announced = udp->end_samples() >= 0 ? udp->end_samples()
                                   : (s.n_samples > 0 ? s.n_samples : played);
    n_out = std::min(announced, played);
  }
  receiver.Flush(&pcm);
  // drop the codec's lookahead delay, keep n_out samples (silence if the stream ended early)
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(n_out));
  for (std::size_t i = static_cast<std::size_t>(ex.lookahead); i < pcm.size() && static_cast<std::int64_t>(out.size()) < n_out; ++i) {
    out.push_back(pcm[i]);
  }
  out.resize(static_cast<std::size_t>(n_out), 0.0f);
  WriteWav(opt.output, out, opt.float_wav);

  if (!opt.dump_tokens.empty()) {
    std::ofstream d(opt.dump_tokens);
    if (!d) Fail("cannot write " + opt.dump_tokens);
    for (const auto& o : outcomes) {
      d << o.chunk << ' ' << o.status << ' ' << o.n_levels << ' ' << o.played_levels;
      for (std::int64_t t : o.tokens) d << ' ' << t;
      d << '\n';
    }
  }
  std::vector<double> total, tok, cod;
  std::map<std::string, int> by_status;
  for (const auto& o : outcomes) {
    total.push_back(o.tokens_ms + o.codec_ms);
    tok.push_back(o.tokens_ms);
    cod.push_back(o.codec_ms);
    by_status[o.status]++;
  }
  std::ostringstream js;
  js << "{\"chunks\": " << outcomes.size() << ", \"samples\": " << out.size()
     << ", \"chunk_ms\": " << chunk_ms << ", \"fused_cdfs\": " << (fused ? "true" : "false")
     << ", \"receive_ms\": {\"mean\": " << Mean(total) << ", \"median\": " << Percentile(total, 0.5)
     << ", \"p95\": " << Percentile(total, 0.95) << ", \"max\": " << Percentile(total, 1.0)
     << "}, \"tokens_ms_median\": " << Percentile(tok, 0.5)
     << ", \"codec_ms_median\": " << Percentile(cod, 0.5) << ", \"by_status\": {";
  bool first = true;
  for (const auto& [k, n] : by_status) {
    js << (first ? "" : ", ") << '"' << k << "\": " << n;
    first = false;
  }
  const auto& st = jb->stats();
  js << "}, \"jitter\": {\"pushed\": " << st.pushed << ", \"accepted\": " << st.accepted
     << ", \"late\": " << st.late << ", \"duplicates\": " << st.duplicates << "}}";
  std::printf("%s\n", js.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "soundspring_receiver: error: %s needs a value\n", name);
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--export") opt.export_dir = value("--export");
      else if (a == "--in") opt.input = value("--in");
      else if (a == "--out") opt.output = value("--out");
      else if (a == "--dump-tokens") opt.dump_tokens = value("--dump-tokens");
      else if (a == "--float") opt.float_wav = true;
      else if (a == "--threads") opt.threads = std::stoi(value("--threads"));
      else if (a == "--udp") opt.udp_port = std::stoi(value("--udp"));
      else if (a == "--host") opt.udp_host = value("--host");
      else if (a == "--timeout-s") opt.udp_timeout_s = std::stod(value("--timeout-s"));
      else if (a == "--playout-delay-ms") opt.playout_delay_ms = std::stod(value("--playout-delay-ms"));
      else if (a == "-h" || a == "--help") {
        Usage();
        return 0;
      } else {
        std::fprintf(stderr, "soundspring_receiver: error: unknown option %s\n", a.c_str());
        Usage();
        return 2;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "soundspring_receiver: error: bad value for %s\n", a.c_str());
      return 2;
    }
  }
  if (opt.export_dir.empty() || opt.output.empty() || (opt.input.empty() == (opt.udp_port < 0)) ||
      opt.threads < 1 || opt.threads > 256 || opt.udp_port > 65535 || !(opt.udp_timeout_s > 0)) {
    std::fprintf(stderr, "soundspring_receiver: error: need --export, --out and one of --in / --udp\n");
    Usage();
    return 2;
  }
  try {
    return Run(opt);
  } catch (const Failure& f) {
    std::fprintf(stderr, "soundspring_receiver: error: %s\n", f.message.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "soundspring_receiver: error: %s\n", e.what());
  }
  return 1;
}
