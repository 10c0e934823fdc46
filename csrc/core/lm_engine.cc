#include "core/lm_engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core/cdf.h"
#include "core/det_math.h"
#include "core/lm_ops.h"

namespace soundspring::lm {
namespace {

// torch.nn.LayerNorm's default epsilon, which every LayerNorm of SpringLM uses.
constexpr float kLayerNormEps = 1e-5f;

// Bounds that keep every index computation far from overflow; far above any real model.
constexpr int kMaxCodebooks = 64;
constexpr int kMaxCodebookSize = 1 << 16;
constexpr int kMaxDim = 1 << 14;
constexpr int kMaxLayers = 1024;
constexpr int kMaxFfnWidth = 1 << 18;
constexpr int kMaxContextFrames = 1 << 16;
constexpr int kMaxThreads = 256;


// The keys one block of queries attends to: row pointers at head offset 0 (keys and values
// each D wide), each key's stream frame, and whether it is a memory key (relative-position
// table rel_bias_mem) or a key of the queries' own stream (rel_bias_self).
struct KeySet {
  std::vector<const float*> k, v;
  std::vector<int64_t> frame;
  std::vector<uint8_t> is_memory;
  void clear() {
    k.clear();
    v.clear();
    frame.clear();
    is_memory.clear();
  }
  void add(const float* key, const float* value, int64_t f, bool memory) {
    k.push_back(key);
    v.push_back(value);
    frame.push_back(f);
    is_memory.push_back(memory ? 1 : 0);
  }
};

// Per-call working memory (the engine itself is immutable and shared across threads).
struct Scratch {
  std::vector<float> x, hn, qkv, attn, tmp, hidden, scores;
  KeySet keys;
  void Size(size_t rows, const ModelShape& s, const PackedLayer& l0) {
    const size_t d = static_cast<size_t>(s.dim);
    x.assign(rows * d, 0.0f);
    hn.assign(rows * d, 0.0f);
    qkv.assign(rows * l0.qkv.ld, 0.0f);
    attn.assign(rows * d, 0.0f);
    tmp.assign(rows * std::max(l0.proj.ld, l0.ff2.ld), 0.0f);
    hidden.assign(rows * l0.ff1.ld, 0.0f);
  }
};

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void StreamState::Reset() {
  std::fill(keys_.begin(), keys_.end(), 0.0f);
  std::fill(values_.begin(), values_.end(), 0.0f);
  std::fill(slot_frame_.begin(), slot_frame_.end(), int64_t{0});
  std::fill(valid_.begin(), valid_.end(), uint8_t{0});
  write_ = 0;
  frames_ = 0;
}

struct Engine::Impl : PackedModel {
  const Kernels* kernels = nullptr;
  int threads = 1;

  // Runs fn(0 .. n-1) on up to `threads` threads (task i on thread i % threads). Tasks
  // write disjoint outputs, so the split never changes a bit. If a thread cannot be
  // started, its tasks run on the calling thread.
  void ParallelFor(int n, const std::function<void(int)>& fn) const {
    const int t = std::min(threads, n);
    if (t <= 1) {
      for (int i = 0; i < n; ++i) fn(i);
      return;
    }
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(t - 1));
    for (int w = 1; w < t; ++w) {
      auto work = [&fn, w, n, t] {
        for (int i = w; i < n; i += t) fn(i);
      };
      try {
        pool.emplace_back(work);
      } catch (const std::system_error&) {
        work();
      }
    }
    for (int i = 0; i < n; i += t) fn(i);
    for (auto& th : pool) th.join();
  }

  // y [rows, p.ld] = x [rows, p.in] (row stride ldx) W^T + b, row blocks split over threads.
  void Matmul(const float* x, size_t ldx, size_t rows, const PackedLinear& p, float* y) const {
    constexpr size_t kRowsPerTask = 8;
    const size_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
    if (threads <= 1 || tasks < 2) {
      linear(*kernels, x, ldx, rows, p, y, p.ld);
      return;
    }
    ParallelFor(static_cast<int>(tasks), [&](int task) {
      const size_t r0 = static_cast<size_t>(task) * kRowsPerTask;
      const size_t nr = std::min(kRowsPerTask, rows - r0);
      linear(*kernels, x + r0 * ldx, ldx, nr, p, y + r0 * p.ld, p.ld);
    });
  }

  // x [n_frames, D] = sum over levels 0 .. K_max-1, in that order, of the level's embedding
  // row of the frame's token. Levels >= n_levels are MASK_UPPER; in the memory view so is
  // every level >= min(base_codebooks, n_levels).
  void Embed(const int64_t* tok, int n_levels, int n_frames, bool memory_view, float* x) const {
    const int shown = memory_view ? std::min(s.base_codebooks, n_levels) : n_levels;
    for (int f = 0; f < n_frames; ++f)
      det::embed_frame(embed.data(), vocab, s.n_codebooks, s.dim, tok, n_frames, f, shown,
                       s.codebook_size + 1, x + static_cast<size_t>(f) * static_cast<size_t>(s.dim));
  }

  // qkv [rows, ld_qkv] = qkv-linear(ln1(x)); q, k, v at column offsets 0, D, 2D.
  void Project(int li, const float* x, size_t rows, Scratch* sc) const {
    const PackedLayer& l = layers[static_cast<size_t>(li)];
    const size_t d = static_cast<size_t>(s.dim);
    for (size_t r = 0; r < rows; ++r)
      det::layer_norm_row(x + r * d, s.dim, l.ln1_g.data(), l.ln1_b.data(), kLayerNormEps,
                          sc->hn.data() + r * d);
    Matmul(sc->hn.data(), d, rows, l.qkv, sc->qkv.data());
  }

  // Softmax attention of n_queries query rows (qkv rows of stream frames q_frames[t])
  // against `keys`, every head: out [n_queries, D] (heads concatenated).
  void Attend(int li, const float* qkv, size_t ldq, int n_queries, const int64_t* q_frames,
              const KeySet& keys, std::vector<float>* scores, float* out) const {
    const int n_keys = static_cast<int>(keys.k.size());
    scores->resize(static_cast<size_t>(n_keys));
    const size_t d = static_cast<size_t>(s.dim);
    for (int h = 0; h < s.n_heads; ++h) {
      const size_t off = static_cast<size_t>(h) * static_cast<size_t>(dh);
      const size_t table = (static_cast<size_t>(li) * static_cast<size_t>(s.n_heads) +
                            static_cast<size_t>(h)) * static_cast<size_t>(n_dist);
      for (int t = 0; t < n_queries; ++t)
        det::attend_query(qkv + static_cast<size_t>(t) * ldq + off, keys.k.data(), keys.v.data(),
                          keys.frame.data(), keys.is_memory.data(), n_keys, off, dh, attn_scale,
                          q_frames[t], rel_self.data() + table, rel_mem.data() + table,
                          s.max_rel_distance, scores->data(), out + static_cast<size_t>(t) * d + off);
    }
  }

  // The block's residual updates: x += proj(attn); x += ff2(gelu(ff1(ln2(x)))).
  void Finish(int li, float* x, size_t rows, Scratch* sc) const {
    const PackedLayer& l = layers[static_cast<size_t>(li)];
    const size_t d = static_cast<size_t>(s.dim);
    Matmul(sc->attn.data(), d, rows, l.proj, sc->tmp.data());
    for (size_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < d; ++i)
        x[r * d + i] = det::add(x[r * d + i], sc->tmp[r * l.proj.ld + i]);
    for (size_t r = 0; r < rows; ++r)
      det::layer_norm_row(x + r * d, s.dim, l.ln2_g.data(), l.ln2_b.data(), kLayerNormEps,
                          sc->hn.data() + r * d);
    Matmul(sc->hn.data(), d, rows, l.ff1, sc->hidden.data());
    const size_t width = static_cast<size_t>(l.ff1.out);
    for (size_t r = 0; r < rows; ++r) {  // det_gelu lane by lane (lm_kernels.h gelu)
      float* hrow = sc->hidden.data() + r * l.ff1.ld;
      kernels->gelu(hrow, hrow, width);
    }
    Matmul(sc->hidden.data(), l.ff1.ld, rows, l.ff2, sc->tmp.data());
    for (size_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < d; ++i)
        x[r * d + i] = det::add(x[r * d + i], sc->tmp[r * l.ff2.ld + i]);
  }

  // Level heads: logits of levels [lo, hi) for `rows` = groups x C rows of x [rows, D];
  // row g C + t of level lo + kk goes to out[((g (hi - lo) + kk) C + t) V ...].
  void Heads(const float* x, size_t rows, size_t group_frames, int lo, int hi, Scratch* sc,
             float* out) const {
    const size_t d = static_cast<size_t>(s.dim);
    const size_t v = static_cast<size_t>(s.codebook_size);
    const size_t nk = static_cast<size_t>(hi - lo);
    for (size_t r = 0; r < rows; ++r)
      det::layer_norm_row(x + r * d, s.dim, ln_out_g.data(), ln_out_b.data(), kLayerNormEps,
                          sc->hn.data() + r * d);
    const float* hn = sc->hn.data();
    ParallelFor(hi - lo, [&](int kk) {
      const size_t level = static_cast<size_t>(lo + kk);
      std::vector<float> y(rows * ldv);
      linear_columns(*kernels, hn, d, rows, heads, level * ldv, ldv, y.data(), ldv);
      for (size_t r = 0; r < rows; ++r) {
        const size_t g = r / group_frames, t = r % group_frames;
        float* dst = out + ((g * nk + static_cast<size_t>(kk)) * group_frames + t) * v;
        std::copy(y.data() + r * ldv, y.data() + r * ldv + v, dst);
      }
    });
  }

  Status CheckTokens(const int64_t* tok, int n_levels, int n_frames, const char* name,
                     int max_frames) const {
    if (tok == nullptr) return InvalidArgument(std::string(name) + " must not be null");
    if (n_levels < 1 || n_levels > s.n_codebooks || n_frames < 1 || n_frames > max_frames) {
      return InvalidArgument(std::string(name) + " must be int64 [K, F] with 1 <= K <= " +
                             std::to_string(s.n_codebooks) + " and 1 <= F <= " +
                             std::to_string(max_frames) + ", got [" + std::to_string(n_levels) +
                             ", " + std::to_string(n_frames) + "]");
    }
    const size_t n = static_cast<size_t>(n_levels) * static_cast<size_t>(n_frames);
    for (size_t i = 0; i < n; ++i) {
      if (tok[i] < 0 || tok[i] >= vocab) {
        return InvalidArgument(std::string(name) + " must hold token ids in [0, " +
                               std::to_string(vocab) + ") (V=" + std::to_string(s.codebook_size) +
                               ", MASK=" + std::to_string(s.codebook_size) + ", MASK_UPPER=" +
                               std::to_string(s.codebook_size + 1) + "), got " +
                               std::to_string(tok[i]) + " at level " +
                               std::to_string(i / static_cast<size_t>(n_frames)) + ", frame " +
                               std::to_string(i % static_cast<size_t>(n_frames)));
      }
    }
    return Status::Ok();
  }

  Status CheckLevels(int lo, int hi) const {
    if (lo < 0 || lo >= hi || hi > s.n_codebooks) {
      return InvalidArgument("levels must be (lo, hi) with 0 <= lo < hi <= " +
                             std::to_string(s.n_codebooks) + ", got (" + std::to_string(lo) +
                             ", " + std::to_string(hi) + ")");
    }
    return Status::Ok();
  }

  Status CheckState(const StreamState& st, const char* name) const {
    if (st.chunk_frames_ == 0) {
      return InvalidArgument(std::string(name) + " must be made by Engine::NewState");
    }
    if (st.n_layers_ != s.n_layers || st.dim_ != s.dim) {
      return InvalidArgument(std::string(name) + " was made for a model with L=" +
                             std::to_string(st.n_layers_) + ", D=" + std::to_string(st.dim_) +
                             "; this engine has L=" + std::to_string(s.n_layers) +
                             ", D=" + std::to_string(s.dim));
    }
    return Status::Ok();
  }

  // The memory keys of layer li of `st`, oldest first, then the C keys of the chunk's own
  // qkv rows (stream frames st.frames_ + t).
  void GatherKeys(int li, const StreamState& st, const float* own_qkv, size_t ldq, int c,
                  KeySet* keys) const {
    keys->clear();
    const size_t d = static_cast<size_t>(s.dim);
    const int cap = st.capacity_frames_;
    for (int j = 0; j < cap; ++j) {
      const int slot = (st.write_ + j) % cap;
      if (!st.valid_[static_cast<size_t>(slot)]) continue;
      const size_t at = (static_cast<size_t>(li) * static_cast<size_t>(cap) +
                         static_cast<size_t>(slot)) * d;
      keys->add(st.keys_.data() + at, st.values_.data() + at,
                st.slot_frame_[static_cast<size_t>(slot)], true);
    }
    for (int t = 0; t < c; ++t) {
      const float* row = own_qkv + static_cast<size_t>(t) * ldq;
      keys->add(row + d, row + 2 * d, st.frames_ + t, false);
    }
  }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

const PackedModel& Engine::packed() const { return *impl_; }

const ModelShape& Engine::shape() const { return impl_->s; }
Isa Engine::isa() const { return impl_->kernels->isa; }
int Engine::num_threads() const { return impl_->threads; }

Status Engine::Create(const ModelShape& s, const TensorMap& weights, const EngineOptions& options,
                      std::unique_ptr<Engine>* out) {
  if (out == nullptr) return InvalidArgument("out must not be null");
  if (s.n_codebooks < 1 || s.n_codebooks > kMaxCodebooks)
    return InvalidArgument("n_codebooks must be in [1, 64], got " + std::to_string(s.n_codebooks));
  if (s.codebook_size < 2 || s.codebook_size > kMaxCodebookSize)
    return InvalidArgument("codebook_size must be in [2, 65536], got " +
                           std::to_string(s.codebook_size));
  if (s.base_codebooks < 1 || s.base_codebooks > s.n_codebooks)
    return InvalidArgument("base_codebooks must be in [1, n_codebooks], got " +
                           std::to_string(s.base_codebooks));
  if (s.n_heads < 1 || s.dim < 1 || s.dim > kMaxDim || s.dim % s.n_heads)
    return InvalidArgument("dim must be a positive multiple of n_heads and <= 16384, got dim=" +
                           std::to_string(s.dim) + ", n_heads=" + std::to_string(s.n_heads));
  if (s.n_layers < 1 || s.n_layers > kMaxLayers)
    return InvalidArgument("n_layers must be in [1, 1024], got " + std::to_string(s.n_layers));
  if (s.ffn_mult < 1 || static_cast<int64_t>(s.ffn_mult) * s.dim > kMaxFfnWidth)
    return InvalidArgument("ffn_mult * dim must be in [dim, 262144], got ffn_mult=" +
                           std::to_string(s.ffn_mult));
  if (s.max_context_frames < 0 || s.max_context_frames > kMaxContextFrames)
    return InvalidArgument("max_context_frames must be in [0, 65536], got " +
                           std::to_string(s.max_context_frames));
  if (s.max_rel_distance < 0 || s.max_rel_distance > kMaxContextFrames)
    return InvalidArgument("max_rel_distance must be in [0, 65536], got " +
                           std::to_string(s.max_rel_distance));
  if (options.num_threads < 1 || options.num_threads > kMaxThreads)
    return InvalidArgument("num_threads must be in [1, 256], got " +
                           std::to_string(options.num_threads));
  const Kernels* kernels = kernels_for(options.isa);
  if (kernels == nullptr)
    return InvalidArgument(std::string("isa ") + isa_name(options.isa) +
                           " is not available on this CPU or in this build (best: " +
                           isa_name(best_isa()) + ")");

  const int64_t k = s.n_codebooks, v = s.codebook_size, d = s.dim, l = s.n_layers, h = s.n_heads;
  const int64_t ffw = static_cast<int64_t>(s.ffn_mult) * d, nd = 2 * int64_t{s.max_rel_distance} + 1;
  std::map<std::string, std::vector<int64_t>> expected = {
      {"embed.weight", {k * (v + 2), d}}, {"rel_bias_self", {l, h, nd}},
      {"rel_bias_mem", {l, h, nd}},        {"ln_out.weight", {d}},
      {"ln_out.bias", {d}},                {"head_bias", {k, v}}};
  if (!s.tie_embeddings) expected["head_weight"] = {k, v, d};
  for (int64_t li = 0; li < l; ++li) {
    const std::string p = "blocks." + std::to_string(li) + ".";
    expected[p + "ln1.weight"] = {d};
    expected[p + "ln1.bias"] = {d};
    expected[p + "ln2.weight"] = {d};
    expected[p + "ln2.bias"] = {d};
    expected[p + "qkv.weight"] = {3 * d, d};
    expected[p + "qkv.bias"] = {3 * d};
    expected[p + "proj.weight"] = {d, d};
    expected[p + "proj.bias"] = {d};
    expected[p + "ff1.weight"] = {ffw, d};
    expected[p + "ff1.bias"] = {ffw};
    expected[p + "ff2.weight"] = {d, ffw};
    expected[p + "ff2.bias"] = {d};
  }
  for (const auto& [name, ref] : weights) {
    if (expected.find(name) == expected.end())
      return InvalidArgument("weights: unexpected tensor " + name + " for this model shape");
  }
  for (const auto& [name, want] : expected) {
    auto it = weights.find(name);
    if (it == weights.end()) return InvalidArgument("weights: missing tensor " + name);
    if (it->second.data == nullptr) return InvalidArgument("weights: tensor " + name + " is null");
    if (it->second.shape != want)
      return InvalidArgument("weights: tensor " + name + " must be float32 " + shape_string(want) +
                             ", got " + shape_string(it->second.shape));
  }
  auto get = [&weights](const std::string& name) { return weights.at(name).data; };
  auto copy = [&weights](const std::string& name) {
    const TensorRef& t = weights.at(name);
    size_t n = 1;
    for (int64_t e : t.shape) n *= static_cast<size_t>(e);
    return std::vector<float>(t.data, t.data + n);
  };

  auto impl = std::make_unique<Impl>();
  impl->s = s;
  impl->kernels = kernels;
  impl->threads = options.num_threads;
  impl->vocab = s.codebook_size + 2;
  impl->dh = s.dim / s.n_heads;
  impl->n_dist = 2 * s.max_rel_distance + 1;
  // torch: scores * (1.0 / math.sqrt(Dh)), a double rounded once to float32.
  impl->attn_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(impl->dh)));
  impl->embed = copy("embed.weight");
  impl->rel_self = copy("rel_bias_self");
  impl->rel_mem = copy("rel_bias_mem");
  impl->ln_out_g = copy("ln_out.weight");
  impl->ln_out_b = copy("ln_out.bias");
  impl->layers.resize(static_cast<size_t>(l));
  const int di = s.dim, fi = static_cast<int>(ffw);
  for (int li = 0; li < s.n_layers; ++li) {
    const std::string p = "blocks." + std::to_string(li) + ".";
    PackedLayer& lay = impl->layers[static_cast<size_t>(li)];
    lay.ln1_g = copy(p + "ln1.weight");
    lay.ln1_b = copy(p + "ln1.bias");
    lay.ln2_g = copy(p + "ln2.weight");
    lay.ln2_b = copy(p + "ln2.bias");
    pack_linear(get(p + "qkv.weight"), get(p + "qkv.bias"), 3 * di, di, &lay.qkv);
    pack_linear(get(p + "proj.weight"), get(p + "proj.bias"), di, di, &lay.proj);
    pack_linear(get(p + "ff1.weight"), get(p + "ff1.bias"), fi, di, &lay.ff1);
    pack_linear(get(p + "ff2.weight"), get(p + "ff2.bias"), di, fi, &lay.ff2);
  }
  // Heads: level k's matrix [V, D] (the first V embedding rows of level k when tied),
  // packed transposed in column panels like a linear layer.
  impl->ldv = padded_columns(s.codebook_size);
  const size_t ds = static_cast<size_t>(d), vs = static_cast<size_t>(v), ldv = impl->ldv;
  PackedLinear& heads = impl->heads;
  heads.in = s.dim;
  heads.ld = static_cast<size_t>(k) * ldv;
  heads.out = static_cast<int>(heads.ld);
  heads.w.assign(ds * heads.ld, 0.0f);
  heads.b.assign(heads.ld, 0.0f);
  const float* head_bias = get("head_bias");
  for (size_t level = 0; level < static_cast<size_t>(k); ++level) {
    const float* w = s.tie_embeddings
                         ? impl->embed.data() + level * static_cast<size_t>(impl->vocab) * ds
                         : get("head_weight") + level * vs * ds;
    float* dst = heads.w.data() + level * ds * ldv;
    for (size_t sym = 0; sym < vs; ++sym)
      for (size_t i = 0; i < ds; ++i) dst[panel_offset(ds, i, sym)] = w[sym * ds + i];
    std::copy(head_bias + level * vs, head_bias + (level + 1) * vs,
              heads.b.data() + level * ldv);
  }
  // The smallest storage in which every matrix is exact and the ISA has a product: int8
  // (block-float weights), else binary16 (the shipped fp16 file), else float32.
  std::vector<PackedLinear*> lins = {&heads};
  for (PackedLayer& lay : impl->layers)
    for (PackedLinear* lin : {&lay.qkv, &lay.proj, &lay.ff1, &lay.ff2}) lins.push_back(lin);
  impl->storage = pack_smallest(*kernels, lins);
  out->reset(new Engine(std::move(impl)));
  return Status::Ok();
}

Status Engine::NewState(int context_frames, int chunk_frames, StreamState* out) const {
  const ModelShape& s = impl_->s;
  if (out == nullptr) return InvalidArgument("out must not be null");
  if (context_frames < 0 || context_frames > s.max_context_frames)
    return InvalidArgument("context_frames must be an int in [0, " +
                           std::to_string(s.max_context_frames) + "], got " +
                           std::to_string(context_frames));
  if (chunk_frames < 1 || chunk_frames > kMaxChunkFrames)
    return InvalidArgument("chunk_frames must be an int in [1, " + std::to_string(kMaxChunkFrames) +
                           "], got " + std::to_string(chunk_frames));
  StreamState st;
  st.n_layers_ = s.n_layers;
  st.dim_ = s.dim;
  st.context_frames_ = context_frames;
  st.chunk_frames_ = chunk_frames;
  st.capacity_frames_ = context_frames / chunk_frames * chunk_frames;
  const size_t cap = static_cast<size_t>(st.capacity_frames_);
  const size_t n = static_cast<size_t>(s.n_layers) * cap * static_cast<size_t>(s.dim);
  st.keys_.assign(n, 0.0f);
  st.values_.assign(n, 0.0f);
  st.slot_frame_.assign(cap, 0);
  st.valid_.assign(cap, 0);
  *out = std::move(st);
  return Status::Ok();
}

Status Engine::CommitBatch(StreamState* const* states, int batch, const int64_t* base,
                           int n_levels, int n_frames) const {
  const Impl& m = *impl_;
  if (states == nullptr) return InvalidArgument("states must not be null");
  if (batch < 1 || batch > kMaxBatch)
    return InvalidArgument("batch must be in [1, 65536], got " + std::to_string(batch));
  const size_t per_view = static_cast<size_t>(std::max(n_levels, 0)) *
                          static_cast<size_t>(std::max(n_frames, 0));
  // Everything is checked before any state changes: a refused call commits nothing.
  {
    std::vector<const StreamState*> sorted(states, states + batch);
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      return InvalidArgument("states must be distinct: a stream commits one chunk per call");
  }
  for (int b = 0; b < batch; ++b) {
    if (states[b] == nullptr) return InvalidArgument("states[" + std::to_string(b) + "] is null");
    Status st = m.CheckState(*states[b], "state");
    if (!st.ok()) return st;
    if (n_frames != states[b]->chunk_frames_)
      return InvalidArgument("base_tokens must be [k, C=" + std::to_string(states[b]->chunk_frames_) +
                             "] to match the state, got [" + std::to_string(n_levels) + ", " +
                             std::to_string(n_frames) + "]");
    st = m.CheckTokens(base == nullptr ? nullptr : base + static_cast<size_t>(b) * per_view,
                       n_levels, n_frames, "base_tokens", kMaxChunkFrames);
    if (!st.ok()) return st;
  }
  const int c = n_frames;
  bool any_memory = false;
  for (int b = 0; b < batch; ++b) any_memory = any_memory || states[b]->capacity_frames_ > 0;
  if (any_memory) {
    const size_t rows = static_cast<size_t>(batch) * static_cast<size_t>(c);
    const size_t d = static_cast<size_t>(m.s.dim), ldq = m.layers[0].qkv.ld;
    Scratch sc;
    sc.Size(rows, m.s, m.layers[0]);
    std::vector<int64_t> frames(rows);
    for (int b = 0; b < batch; ++b) {
      const size_t r0 = static_cast<size_t>(b) * static_cast<size_t>(c);
      m.Embed(base + static_cast<size_t>(b) * per_view, n_levels, c, /*memory_view=*/true,
              sc.x.data() + r0 * d);
      for (int t = 0; t < c; ++t) frames[r0 + static_cast<size_t>(t)] = states[b]->frames_ + t;
    }
    for (int li = 0; li < m.s.n_layers; ++li) {
      m.Project(li, sc.x.data(), rows, &sc);
      for (int b = 0; b < batch; ++b) {
        StreamState& st_b = *states[b];
        const size_t cap = static_cast<size_t>(st_b.capacity_frames_);
        for (size_t t = 0; t < (cap ? static_cast<size_t>(c) : 0); ++t) {
          const size_t slot = static_cast<size_t>(st_b.write_) + t;
          const size_t at = (static_cast<size_t>(li) * cap + slot) * d;
          const float* row = sc.qkv.data() + (static_cast<size_t>(b) * static_cast<size_t>(c) + t) * ldq;
          std::copy(row + d, row + 2 * d, st_b.keys_.data() + at);
          std::copy(row + 2 * d, row + 3 * d, st_b.values_.data() + at);
        }
      }
      if (li + 1 < m.s.n_layers) {  // the last layer's output is never used
        for (int b = 0; b < batch; ++b) {
          const size_t r0 = static_cast<size_t>(b) * static_cast<size_t>(c);
          sc.keys.clear();
          for (int t = 0; t < c; ++t) {
            const float* row = sc.qkv.data() + (r0 + static_cast<size_t>(t)) * ldq;
            sc.keys.add(row + d, row + 2 * d, frames[r0 + static_cast<size_t>(t)], false);
          }
          m.Attend(li, sc.qkv.data() + r0 * ldq, ldq, c, frames.data() + r0, sc.keys, &sc.scores,
                   sc.attn.data() + r0 * d);
        }
        m.Finish(li, sc.x.data(), rows, &sc);
      }
    }
  }
  for (int b = 0; b < batch; ++b) {
    StreamState& st_b = *states[b];
    const int cap = st_b.capacity_frames_;
    if (cap > 0) {
      for (int t = 0; t < c; ++t) {
        const size_t slot = static_cast<size_t>(st_b.write_ + t);
        st_b.slot_frame_[slot] = st_b.frames_ + t;
        st_b.valid_[slot] = 1;
      }
      st_b.write_ = (st_b.write_ + c) % cap;
    }
    st_b.frames_ += c;
  }
  return Status::Ok();
}

Status Engine::Commit(const int64_t* base, int n_levels, int n_frames, StreamState* state) const {
  StreamState* states[1] = {state};
  if (state == nullptr) return InvalidArgument("state must not be null");
  return CommitBatch(states, 1, base, n_levels, n_frames);
}

Status Engine::FineLogitsBatch(const StreamState* const* states, int batch, const int64_t* views,
                               int n_levels, int n_frames, int lo, int hi, float* out) const {
  const Impl& m = *impl_;
  if (states == nullptr || out == nullptr) return InvalidArgument("states and out must not be null");
  if (batch < 1 || batch > kMaxBatch)
    return InvalidArgument("batch must be in [1, 65536], got " + std::to_string(batch));
  Status st = m.CheckLevels(lo, hi);
  if (!st.ok()) return st;
  const size_t per_view = static_cast<size_t>(std::max(n_levels, 0)) *
                          static_cast<size_t>(std::max(n_frames, 0));
  for (int b = 0; b < batch; ++b) {
    if (states[b] == nullptr) return InvalidArgument("states[" + std::to_string(b) + "] is null");
    st = m.CheckState(*states[b], "state");
    if (!st.ok()) return st;
    if (n_frames != states[b]->chunk_frames_)
      return InvalidArgument("chunk_tokens must be [K, C=" + std::to_string(states[b]->chunk_frames_) +
                             "] to match the state, got [" + std::to_string(n_levels) + ", " +
                             std::to_string(n_frames) + "]");
    st = m.CheckTokens(views == nullptr ? nullptr : views + static_cast<size_t>(b) * per_view,
                       n_levels, n_frames, "chunk_tokens", kMaxChunkFrames);
    if (!st.ok()) return st;
  }
  const int c = n_frames;
  const size_t rows = static_cast<size_t>(batch) * static_cast<size_t>(c);
  const size_t d = static_cast<size_t>(m.s.dim);
  Scratch sc;
  sc.Size(rows, m.s, m.layers[0]);
  for (int b = 0; b < batch; ++b)
    m.Embed(views + static_cast<size_t>(b) * per_view, n_levels, c, /*memory_view=*/false,
            sc.x.data() + static_cast<size_t>(b) * static_cast<size_t>(c) * d);
  const size_t ldq = m.layers[0].qkv.ld;
  std::vector<int64_t> frames(static_cast<size_t>(c));
  for (int li = 0; li < m.s.n_layers; ++li) {
    m.Project(li, sc.x.data(), rows, &sc);
    for (int b = 0; b < batch; ++b) {
      const StreamState& s_b = *states[b];
      const size_t r0 = static_cast<size_t>(b) * static_cast<size_t>(c);
      for (int t = 0; t < c; ++t) frames[static_cast<size_t>(t)] = s_b.frames_ + t;
      m.GatherKeys(li, s_b, sc.qkv.data() + r0 * ldq, ldq, c, &sc.keys);
      m.Attend(li, sc.qkv.data() + r0 * ldq, ldq, c, frames.data(), sc.keys, &sc.scores,
               sc.attn.data() + r0 * d);
    }
    m.Finish(li, sc.x.data(), rows, &sc);
  }
  m.Heads(sc.x.data(), rows, static_cast<size_t>(c), lo, hi, &sc, out);
  return Status::Ok();
}

Status Engine::FineLogits(const StreamState& state, const int64_t* view, int n_levels,
                          int n_frames, int lo, int hi, float* out) const {
  const StreamState* states[1] = {&state};
  return FineLogitsBatch(states, 1, view, n_levels, n_frames, lo, hi, out);
}

Status Engine::FineCdfs(const StreamState& state, const int64_t* view, int n_levels, int n_frames,
                        int lo, int hi, int precision_bits, uint32_t* out) const {
  const ModelShape& s = impl_->s;
  if (out == nullptr) return InvalidArgument("out must not be null");
  if (precision_bits < 1 || precision_bits > 16 || s.codebook_size > (1 << precision_bits))
    return InvalidArgument("precision_bits must be in [1, 16] with V = " +
                           std::to_string(s.codebook_size) + " <= 2^precision_bits, got " +
                           std::to_string(precision_bits));
  Status st = impl_->CheckLevels(lo, hi);
  if (!st.ok()) return st;
  if (n_frames < 1 || n_frames > kMaxChunkFrames)
    return InvalidArgument("chunk_tokens must have 1 <= C <= " + std::to_string(kMaxChunkFrames) +
                           " frames, got " + std::to_string(n_frames));
  const size_t n_rows = static_cast<size_t>(hi - lo) * static_cast<size_t>(n_frames);
  std::vector<float> logits(n_rows * static_cast<size_t>(s.codebook_size));
  st = FineLogits(state, view, n_levels, n_frames, lo, hi, logits.data());
  if (!st.ok()) return st;
  return cdf_from_logits(logits.data(), n_rows, s.codebook_size, precision_bits, out);
}

Status Engine::ConcealLogits(const int64_t* window, int n_levels, int n_frames, int lo, int hi,
                             float* out) const {
  const Impl& m = *impl_;
  if (out == nullptr) return InvalidArgument("out must not be null");
  Status st = m.CheckLevels(lo, hi);
  if (!st.ok()) return st;
  st = m.CheckTokens(window, n_levels, n_frames, "window", kMaxWindowFrames);
  if (!st.ok()) return st;
  const size_t rows = static_cast<size_t>(n_frames), d = static_cast<size_t>(m.s.dim);
  Scratch sc;
  sc.Size(rows, m.s, m.layers[0]);
  m.Embed(window, n_levels, n_frames, /*memory_view=*/true, sc.x.data());
  std::vector<int64_t> frames(rows);
  for (size_t t = 0; t < rows; ++t) frames[t] = static_cast<int64_t>(t);
  const size_t ldq = m.layers[0].qkv.ld;
  for (int li = 0; li < m.s.n_layers; ++li) {
    m.Project(li, sc.x.data(), rows, &sc);
    sc.keys.clear();
    for (size_t t = 0; t < rows; ++t) {
      const float* row = sc.qkv.data() + t * ldq;
      sc.keys.add(row + d, row + 2 * d, frames[t], false);
    }
    m.Attend(li, sc.qkv.data(), ldq, n_frames, frames.data(), sc.keys, &sc.scores, sc.attn.data());
    m.Finish(li, sc.x.data(), rows, &sc);
  }
  m.Heads(sc.x.data(), rows, rows, lo, hi, &sc, out);
  return Status::Ok();
}

}  // namespace soundspring::lm
