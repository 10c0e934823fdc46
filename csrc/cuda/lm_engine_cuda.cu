#include "cuda/lm_engine_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/det_math.h"
#include "core/lm_ops.h"

namespace soundspring::lm::cuda {
namespace {

// torch.nn.LayerNorm's default epsilon (as lm_engine.cc).
constexpr float kLayerNormEps = 1e-5f;
constexpr int kThreads = 128;
constexpr int kMaxSlots = 1 << 16;

Status DeviceError(const char* what, cudaError_t err) {
  return DeviceFailure(std::string("CUDA: ") + what + ": " + cudaGetErrorString(err));
}

#define SOUNDSPRING_CUDA_TRY(expr)                               \
  do {                                                           \
    const cudaError_t soundspring_err_ = (expr);                 \
    if (soundspring_err_ != cudaSuccess) return DeviceError(#expr, soundspring_err_); \
  } while (0)

// A device array that only grows (per-call workspaces keep their allocation).
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  Status Reserve(size_t n) {
    if (n <= size_) return Status::Ok();
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
    SOUNDSPRING_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&ptr_), std::max<size_t>(n, 1) * sizeof(T)));
    size_ = n;
    return Status::Ok();
  }
  Status Upload(const T* host, size_t n) {
    Status st = Reserve(n);
    if (!st.ok()) return st;
    if (n) SOUNDSPRING_CUDA_TRY(cudaMemcpy(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice));
    return Status::Ok();
  }
  Status Upload(const std::vector<T>& host) { return Upload(host.data(), host.size()); }
  Status Zero(size_t n) {
    Status st = Reserve(n);
    if (!st.ok()) return st;
    if (n) SOUNDSPRING_CUDA_TRY(cudaMemset(ptr_, 0, n * sizeof(T)));
    return Status::Ok();
  }
  T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

struct DeviceLinear {
  int in = 0;
  int out = 0;
  size_t ld = 0;
  DeviceArray<float> w, b;
};

struct DeviceLayer {
  DeviceArray<float> ln1_g, ln1_b, ln2_g, ln2_b;
  DeviceLinear qkv, proj, ff1, ff2;
};

Status UploadLinear(const PackedLinear& p, DeviceLinear* d) {
  d->in = p.in;
  d->out = p.out;
  d->ld = p.ld;
  // As float32 whatever the CPU storage (binary16 or int8 widened exactly, as the CPU
  // kernels do).
  Status st = d->w.Upload(widened_weights(p));
  return st.ok() ? d->b.Upload(p.b) : st;
}

unsigned Blocks(size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// ---- kernels: one thread per output, each calling the shared lm_ops.h / det_math.h code ----

__global__ void EmbedKernel(const float* embed, int vocab, int n_codebooks, int dim,
                            const int64_t* tok, int n_levels, int n_frames, int shown,
                            int64_t mask_upper, int rows, float* x) {
  const int r = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (r >= rows) return;
  const int b = r / n_frames, f = r % n_frames;
  det::embed_frame(embed, vocab, n_codebooks, dim,
                   tok + static_cast<size_t>(b) * static_cast<size_t>(n_levels) * static_cast<size_t>(n_frames),
                   n_frames, f, shown, mask_upper, x + static_cast<size_t>(r) * static_cast<size_t>(dim));
}

__global__ void LayerNormKernel(const float* x, int rows, int dim, const float* gamma,
                                const float* beta, float* y) {
  const int r = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (r >= rows) return;
  const size_t at = static_cast<size_t>(r) * static_cast<size_t>(dim);
  det::layer_norm_row(x + at, dim, gamma, beta, kLayerNormEps, y + at);
}

__global__ void MatmulBiasKernel(const float* x, size_t ldx, const float* w, size_t in,
                                 const float* bias, float* y, size_t ldy, size_t cols) {
  const size_t c = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t r = blockIdx.y;
  if (c >= cols) return;
  y[r * ldy + c] = det::matmul_bias_element(x + r * ldx, w, in, c,
                                            static_cast<size_t>(kColumnAlign),
                                            static_cast<size_t>(kSumBlock), bias[c]);
}

__global__ void GeluKernel(float* h, size_t ld, int rows, int width) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t w = static_cast<size_t>(width);
  if (i >= static_cast<size_t>(rows) * w) return;
  float* p = h + (i / w) * ld + i % w;
  *p = det::det_gelu(*p);
}

__global__ void ResidualKernel(float* x, int rows, int dim, const float* y, size_t ldy) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t d = static_cast<size_t>(dim);
  if (i >= static_cast<size_t>(rows) * d) return;
  x[i] = det::add(x[i], y[(i / d) * ldy + i % d]);
}

// Pass-1 keys and values of the chunk rows into each stream's ring slots.
__global__ void StoreMemoryKernel(const float* qkv, size_t ldq, int rows, int n_frames, int dim,
                                  int n_layers, int layer, int cap, const int* pool_slot,
                                  const int* write_pos, float* keys, float* values) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t d = static_cast<size_t>(dim);
  if (i >= static_cast<size_t>(rows) * d) return;
  const int r = static_cast<int>(i / d);
  const int b = r / n_frames, t = r % n_frames;
  const size_t at = ((static_cast<size_t>(pool_slot[b]) * static_cast<size_t>(n_layers) +
                      static_cast<size_t>(layer)) * static_cast<size_t>(cap) +
                     static_cast<size_t>(write_pos[b] + t)) * d + i % d;
  const float* row = qkv + static_cast<size_t>(r) * ldq;
  keys[at] = row[d + i % d];
  values[at] = row[2 * d + i % d];
}

struct AttentionArgs {
  const float* qkv;
  size_t ldq;
  int rows;
  int n_frames;  // queries (and own keys) per stream
  int n_heads;
  int dh;
  int dim;
  float scale;
  int64_t max_dist;
  int n_dist;
  int layer;
  const float* rel_self;  // [L, H, 2M + 1]
  const float* rel_mem;
  // memory keys (mem_count == nullptr: none)
  const float* pool_keys;
  const float* pool_values;
  int n_layers;
  int cap;
  const int* pool_slot;       // [B]
  const int* mem_slots;       // [B, cap] ring slots, oldest first
  const int* mem_count;       // [B]
  const int64_t* mem_frames;  // [B, cap]
  const int64_t* q_base;      // [B] stream frame of each stream's first query
  // per-thread scratch of max_keys entries
  int max_keys;
  const float** k_ptr;
  const float** v_ptr;
  int64_t* k_frames;
  uint8_t* k_mem;
  float* scores;
  float* out;  // [rows, D]
};

// One thread per (query row, head): the key list of lm_engine.cc (memory keys oldest first,
// then the stream's own chunk), then det::attend_query.
__global__ void AttentionKernel(AttentionArgs a) {
  const int idx = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (idx >= a.rows * a.n_heads) return;
  const int r = idx / a.n_heads, h = idx % a.n_heads;
  const int b = r / a.n_frames, t = r % a.n_frames;
  const size_t base = static_cast<size_t>(idx) * static_cast<size_t>(a.max_keys);
  const float** kp = a.k_ptr + base;
  const float** vp = a.v_ptr + base;
  int64_t* kf = a.k_frames + base;
  uint8_t* km = a.k_mem + base;
  const size_t d = static_cast<size_t>(a.dim);
  int n = 0;
  if (a.mem_count != nullptr) {
    const int m = a.mem_count[b];
    for (int j = 0; j < m; ++j) {
      const size_t entry = static_cast<size_t>(b) * static_cast<size_t>(a.cap) + static_cast<size_t>(j);
      const size_t at = ((static_cast<size_t>(a.pool_slot[b]) * static_cast<size_t>(a.n_layers) +
                          static_cast<size_t>(a.layer)) * static_cast<size_t>(a.cap) +
                         static_cast<size_t>(a.mem_slots[entry])) * d;
      kp[n] = a.pool_keys + at;
      vp[n] = a.pool_values + at;
      kf[n] = a.mem_frames[entry];
      km[n] = 1;
      ++n;
    }
  }
  for (int u = 0; u < a.n_frames; ++u) {
    const float* row = a.qkv + static_cast<size_t>(b * a.n_frames + u) * a.ldq;
    kp[n] = row + d;
    vp[n] = row + 2 * d;
    kf[n] = a.q_base[b] + u;
    km[n] = 0;
    ++n;
  }
  const size_t off = static_cast<size_t>(h) * static_cast<size_t>(a.dh);
  const size_t table = (static_cast<size_t>(a.layer) * static_cast<size_t>(a.n_heads) +
                        static_cast<size_t>(h)) * static_cast<size_t>(a.n_dist);
  det::attend_query(a.qkv + static_cast<size_t>(r) * a.ldq + off, kp, vp, kf, km, n, off, a.dh,
                    a.scale, a.q_base[b] + t, a.rel_self + table, a.rel_mem + table, a.max_dist,
                    a.scores + base, a.out + static_cast<size_t>(r) * d + off);
}

}  // namespace

bool DeviceAvailable() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

struct CudaEngine::Impl {
  ModelShape s;
  int vocab = 0, dh = 0, n_dist = 0;
  float attn_scale = 0.0f;
  size_t ldv = 0;
  DeviceArray<float> embed, rel_self, rel_mem, ln_out_g, ln_out_b, head_w, head_b;
  std::vector<DeviceLayer> layers;

  // the pool
  int n_slots = 0, context_frames = 0, chunk_frames = 0, cap = 0;
  DeviceArray<float> keys, values;  // [S, L, cap, D]
  std::vector<int> write;           // [S]
  std::vector<int64_t> frames;      // [S]
  std::vector<int64_t> slot_frame;  // [S, cap]
  std::vector<uint8_t> valid;       // [S, cap]

  // per-call workspaces
  DeviceArray<int64_t> tok, q_base, mem_frames, k_frames;
  DeviceArray<int> pool_slot, mem_slots, mem_count, write_pos;
  DeviceArray<float> x, hn, qkv, attn, tmp, hidden, heads_out, scores;
  DeviceArray<const float*> k_ptr, v_ptr;
  DeviceArray<uint8_t> k_mem;

  Status Launched(const char* what) const {
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? Status::Ok() : DeviceError(what, err);
  }

  Status Workspace(size_t rows, int max_keys, int n_streams) {
    const size_t d = static_cast<size_t>(s.dim);
    const DeviceLayer& l0 = layers[0];
    const size_t per_thread = rows * static_cast<size_t>(s.n_heads) * static_cast<size_t>(max_keys);
    Status st;
    if (!(st = x.Reserve(rows * d)).ok() || !(st = hn.Reserve(rows * d)).ok() ||
        !(st = qkv.Reserve(rows * l0.qkv.ld)).ok() || !(st = attn.Reserve(rows * d)).ok() ||
        !(st = tmp.Reserve(rows * std::max(l0.proj.ld, l0.ff2.ld))).ok() ||
        !(st = hidden.Reserve(rows * l0.ff1.ld)).ok() || !(st = scores.Reserve(per_thread)).ok() ||
        !(st = k_ptr.Reserve(per_thread)).ok() || !(st = v_ptr.Reserve(per_thread)).ok() ||
        !(st = k_frames.Reserve(per_thread)).ok() || !(st = k_mem.Reserve(per_thread)).ok() ||
        !(st = q_base.Reserve(static_cast<size_t>(n_streams))).ok())
      return st;
    return Status::Ok();
  }

  // y [rows, ldy] = x W + b: one thread per element, rows along the grid's y axis in
  // launches of at most kMaxGridRows rows.
  Status Product(const float* in_rows, size_t ldx, int rows, const float* w, size_t in,
                 const float* b, float* y, size_t ld) const {
    constexpr int kMaxGridRows = 65535;
    for (int r0 = 0; r0 < rows; r0 += kMaxGridRows) {
      const int n = std::min(kMaxGridRows, rows - r0);
      const dim3 grid(Blocks(ld), static_cast<unsigned>(n));
      MatmulBiasKernel<<<grid, kThreads>>>(in_rows + static_cast<size_t>(r0) * ldx, ldx, w, in, b,
                                           y + static_cast<size_t>(r0) * ld, ld, ld);
      Status st = Launched("MatmulBiasKernel");
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  Status Linear(const float* in_rows, size_t ldx, int rows, const DeviceLinear& l, float* y) const {
    return Product(in_rows, ldx, rows, l.w.get(), static_cast<size_t>(l.in), l.b.get(), y, l.ld);
  }

  Status LayerNorm(const float* in_rows, int rows, const float* g, const float* b, float* y) const {
    LayerNormKernel<<<Blocks(static_cast<size_t>(rows)), kThreads>>>(in_rows, rows, s.dim, g, b, y);
    return Launched("LayerNormKernel");
  }

  Status Project(int li, int rows) {
    const DeviceLayer& l = layers[static_cast<size_t>(li)];
    Status st = LayerNorm(x.get(), rows, l.ln1_g.get(), l.ln1_b.get(), hn.get());
    return st.ok() ? Linear(hn.get(), static_cast<size_t>(s.dim), rows, l.qkv, qkv.get()) : st;
  }

  Status Finish(int li, int rows) {
    const DeviceLayer& l = layers[static_cast<size_t>(li)];
    const size_t d = static_cast<size_t>(s.dim), n = static_cast<size_t>(rows) * d;
    Status st = Linear(attn.get(), d, rows, l.proj, tmp.get());
    if (!st.ok()) return st;
    ResidualKernel<<<Blocks(n), kThreads>>>(x.get(), rows, s.dim, tmp.get(), l.proj.ld);
    if (!(st = Launched("ResidualKernel")).ok()) return st;
    if (!(st = LayerNorm(x.get(), rows, l.ln2_g.get(), l.ln2_b.get(), hn.get())).ok()) return st;
    if (!(st = Linear(hn.get(), d, rows, l.ff1, hidden.get())).ok()) return st;
    GeluKernel<<<Blocks(static_cast<size_t>(rows) * static_cast<size_t>(l.ff1.out)), kThreads>>>(
        hidden.get(), l.ff1.ld, rows, l.ff1.out);
    if (!(st = Launched("GeluKernel")).ok()) return st;
    if (!(st = Linear(hidden.get(), l.ff1.ld, rows, l.ff2, tmp.get())).ok()) return st;
    ResidualKernel<<<Blocks(n), kThreads>>>(x.get(), rows, s.dim, tmp.get(), l.ff2.ld);
    return Launched("ResidualKernel");
  }

  // Attention of layer li for `rows` = streams x n_frames query rows; with_memory: each
  // stream's ring (metadata already uploaded) before its own chunk.
  Status Attention(int li, int rows, int n_frames, bool with_memory, int max_keys) {
    AttentionArgs a{};
    a.qkv = qkv.get();
    a.ldq = layers[0].qkv.ld;
    a.rows = rows;
    a.n_frames = n_frames;
    a.n_heads = s.n_heads;
    a.dh = dh;
    a.dim = s.dim;
    a.scale = attn_scale;
    a.max_dist = s.max_rel_distance;
    a.n_dist = n_dist;
    a.layer = li;
    a.rel_self = rel_self.get();
    a.rel_mem = rel_mem.get();
    a.pool_keys = keys.get();
    a.pool_values = values.get();
    a.n_layers = s.n_layers;
    a.cap = cap;
    a.pool_slot = pool_slot.get();
    a.mem_slots = mem_slots.get();
    a.mem_count = with_memory ? mem_count.get() : nullptr;
    a.mem_frames = mem_frames.get();
    a.q_base = q_base.get();
    a.max_keys = max_keys;
    a.k_ptr = k_ptr.get();
    a.v_ptr = v_ptr.get();
    a.k_frames = k_frames.get();
    a.k_mem = k_mem.get();
    a.scores = scores.get();
    a.out = attn.get();
    AttentionKernel<<<Blocks(static_cast<size_t>(rows) * static_cast<size_t>(s.n_heads)), kThreads>>>(a);
    return Launched("AttentionKernel");
  }

  // Level heads of the rows (groups of group_frames) into host `out`, laid out as
  // lm_engine.cc's Heads.
  Status Heads(int rows, int group_frames, int lo, int hi, float* out) {
    const size_t nk = static_cast<size_t>(hi - lo), r = static_cast<size_t>(rows);
    const size_t d = static_cast<size_t>(s.dim), v = static_cast<size_t>(s.codebook_size);
    Status st = LayerNorm(x.get(), rows, ln_out_g.get(), ln_out_b.get(), hn.get());
    if (!st.ok() || !(st = heads_out.Reserve(nk * r * ldv)).ok()) return st;
    for (size_t kk = 0; kk < nk; ++kk) {
      const size_t level = static_cast<size_t>(lo) + kk;
      st = Product(hn.get(), d, rows, head_w.get() + level * d * ldv, d, head_b.get() + level * ldv,
                   heads_out.get() + kk * r * ldv, ldv);
      if (!st.ok()) return st;
    }
    std::vector<float> host(nk * r * ldv);
    SOUNDSPRING_CUDA_TRY(cudaMemcpy(host.data(), heads_out.get(), host.size() * sizeof(float),
                                    cudaMemcpyDeviceToHost));
    const size_t g_frames = static_cast<size_t>(group_frames);
    for (size_t kk = 0; kk < nk; ++kk)
      for (size_t row = 0; row < r; ++row) {
        const size_t g = row / g_frames, t = row % g_frames;
        const float* src = host.data() + (kk * r + row) * ldv;
        std::copy(src, src + v, out + ((g * nk + kk) * g_frames + t) * v);
      }
    return Status::Ok();
  }

  Status CheckTokens(const int64_t* t, int n_levels, int n_frames, int n_arrays, int max_frames,
                     const char* name) const {
    if (t == nullptr) return InvalidArgument(std::string(name) + " must not be null");
    if (n_levels < 1 || n_levels > s.n_codebooks || n_frames < 1 || n_frames > max_frames)
      return InvalidArgument(std::string(name) + " must be int64 [K, F] with 1 <= K <= " +
                             std::to_string(s.n_codebooks) + " and 1 <= F <= " +
                             std::to_string(max_frames));
    const size_t n = static_cast<size_t>(n_arrays) * static_cast<size_t>(n_levels) *
                     static_cast<size_t>(n_frames);
    for (size_t i = 0; i < n; ++i)
      if (t[i] < 0 || t[i] >= vocab)
        return InvalidArgument(std::string(name) + " must hold token ids in [0, " +
                               std::to_string(vocab) + "), got " + std::to_string(t[i]));
    return Status::Ok();
  }

  Status CheckSlots(const int* slots, int batch) const {
    if (slots == nullptr || batch < 1 || batch > n_slots)
      return InvalidArgument("slots must list 1 .. n_slots distinct slots");
    std::vector<uint8_t> seen(static_cast<size_t>(n_slots), 0);
    for (int b = 0; b < batch; ++b) {
      if (slots[b] < 0 || slots[b] >= n_slots || seen[static_cast<size_t>(slots[b])])
        return InvalidArgument("slots must be distinct and in [0, " + std::to_string(n_slots) +
                               "), got " + std::to_string(slots[b]));
      seen[static_cast<size_t>(slots[b])] = 1;
    }
    return Status::Ok();
  }

  // Uploads the per-stream key lists of `slots` (memory slots oldest first, as lm_engine.cc).
  Status UploadStreams(const int* slots, int batch) {
    const size_t cap_s = static_cast<size_t>(std::max(cap, 1));
    std::vector<int> ps(slots, slots + batch), ms(static_cast<size_t>(batch) * cap_s, 0),
        mc(static_cast<size_t>(batch), 0), wp(static_cast<size_t>(batch), 0);
    std::vector<int64_t> mf(static_cast<size_t>(batch) * cap_s, 0), qb(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) {
      const size_t slot = static_cast<size_t>(slots[b]);
      qb[static_cast<size_t>(b)] = frames[slot];
      wp[static_cast<size_t>(b)] = write[slot];
      int n = 0;
      for (int j = 0; j < cap; ++j) {
        const int ring = (write[slot] + j) % cap;
        const size_t at = slot * static_cast<size_t>(cap) + static_cast<size_t>(ring);
        if (!valid[at]) continue;
        ms[static_cast<size_t>(b) * cap_s + static_cast<size_t>(n)] = ring;
        mf[static_cast<size_t>(b) * cap_s + static_cast<size_t>(n)] = slot_frame[at];
        ++n;
      }
      mc[static_cast<size_t>(b)] = n;
    }
    Status st;
    if (!(st = pool_slot.Upload(ps)).ok() || !(st = mem_slots.Upload(ms)).ok() ||
        !(st = mem_count.Upload(mc)).ok() || !(st = write_pos.Upload(wp)).ok() ||
        !(st = mem_frames.Upload(mf)).ok() || !(st = q_base.Upload(qb)).ok())
      return st;
    return Status::Ok();
  }

  Status Embed(const int64_t* host_tok, int n_streams, int n_levels, int n_frames, bool memory_view) {
    const size_t n = static_cast<size_t>(n_streams) * static_cast<size_t>(n_levels) *
                     static_cast<size_t>(n_frames);
    Status st = tok.Upload(host_tok, n);
    if (!st.ok()) return st;
    const int rows = n_streams * n_frames;
    const int shown = memory_view ? std::min(s.base_codebooks, n_levels) : n_levels;
    EmbedKernel<<<Blocks(static_cast<size_t>(rows)), kThreads>>>(
        embed.get(), vocab, s.n_codebooks, s.dim, tok.get(), n_levels, n_frames, shown,
        static_cast<int64_t>(s.codebook_size) + 1, rows, x.get());
    return Launched("EmbedKernel");
  }
};

CudaEngine::CudaEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaEngine::~CudaEngine() = default;

int CudaEngine::n_slots() const { return impl_->n_slots; }

int64_t CudaEngine::frames(int slot) const {
  if (slot < 0 || slot >= impl_->n_slots) return -1;
  return impl_->frames[static_cast<size_t>(slot)];
}

Status CudaEngine::Create(const Engine& cpu, int n_slots, int context_frames, int chunk_frames,
                          std::unique_ptr<CudaEngine>* out) {
  if (out == nullptr) return InvalidArgument("out must not be null");
  if (!DeviceAvailable()) return DeviceFailure("CUDA: no device");
  const PackedModel& p = cpu.packed();
  if (n_slots < 1 || n_slots > kMaxSlots)
    return InvalidArgument("n_slots must be in [1, 65536], got " + std::to_string(n_slots));
  if (context_frames < 0 || context_frames > p.s.max_context_frames)
    return InvalidArgument("context_frames must be in [0, " + std::to_string(p.s.max_context_frames) +
                           "], got " + std::to_string(context_frames));
  if (chunk_frames < 1 || chunk_frames > kMaxChunkFrames)
    return InvalidArgument("chunk_frames must be in [1, " + std::to_string(kMaxChunkFrames) +
                           "], got " + std::to_string(chunk_frames));
  auto m = std::make_unique<Impl>();
  m->s = p.s;
  m->vocab = p.vocab;
  m->dh = p.dh;
  m->n_dist = p.n_dist;
  m->attn_scale = p.attn_scale;
  m->ldv = p.ldv;
  Status st;
  if (!(st = m->embed.Upload(p.embed)).ok() || !(st = m->rel_self.Upload(p.rel_self)).ok() ||
      !(st = m->rel_mem.Upload(p.rel_mem)).ok() || !(st = m->ln_out_g.Upload(p.ln_out_g)).ok() ||
      !(st = m->ln_out_b.Upload(p.ln_out_b)).ok() ||
      !(st = m->head_w.Upload(widened_weights(p.heads))).ok() ||
      !(st = m->head_b.Upload(p.heads.b)).ok())
    return st;
  m->layers = std::vector<DeviceLayer>(p.layers.size());
  for (size_t li = 0; li < p.layers.size(); ++li) {
    const PackedLayer& src = p.layers[li];
    DeviceLayer& dst = m->layers[li];
    if (!(st = dst.ln1_g.Upload(src.ln1_g)).ok() || !(st = dst.ln1_b.Upload(src.ln1_b)).ok() ||
        !(st = dst.ln2_g.Upload(src.ln2_g)).ok() || !(st = dst.ln2_b.Upload(src.ln2_b)).ok() ||
        !(st = UploadLinear(src.qkv, &dst.qkv)).ok() || !(st = UploadLinear(src.proj, &dst.proj)).ok() ||
        !(st = UploadLinear(src.ff1, &dst.ff1)).ok() || !(st = UploadLinear(src.ff2, &dst.ff2)).ok())
      return st;
  }
  m->n_slots = n_slots;
  m->context_frames = context_frames;
  m->chunk_frames = chunk_frames;
  m->cap = context_frames / chunk_frames * chunk_frames;
  const size_t s_n = static_cast<size_t>(n_slots), cap = static_cast<size_t>(m->cap);
  const size_t ring = s_n * static_cast<size_t>(p.s.n_layers) * cap * static_cast<size_t>(p.s.dim);
  if (!(st = m->keys.Zero(ring)).ok() || !(st = m->values.Zero(ring)).ok()) return st;
  m->write.assign(s_n, 0);
  m->frames.assign(s_n, 0);
  m->slot_frame.assign(s_n * cap, 0);
  m->valid.assign(s_n * cap, 0);
  out->reset(new CudaEngine(std::move(m)));
  return Status::Ok();
}

Status CudaEngine::ResetSlot(int slot) {
  Impl& m = *impl_;
  if (slot < 0 || slot >= m.n_slots) return InvalidArgument("slot out of range");
  const size_t cap = static_cast<size_t>(m.cap), s = static_cast<size_t>(slot);
  m.write[s] = 0;
  m.frames[s] = 0;
  std::fill(m.valid.begin() + static_cast<std::ptrdiff_t>(s * cap),
            m.valid.begin() + static_cast<std::ptrdiff_t>((s + 1) * cap), uint8_t{0});
  return Status::Ok();  // invalid slots are never read: the ring's floats need no clearing
}

Status CudaEngine::CommitBatch(const int* slots, int batch, const int64_t* base, int n_levels,
                               int n_frames) {
  Impl& m = *impl_;
  Status st = m.CheckSlots(slots, batch);
  if (!st.ok()) return st;
  if (n_frames != m.chunk_frames)
    return InvalidArgument("base_tokens must be [k, C=" + std::to_string(m.chunk_frames) + "]");
  if (!(st = m.CheckTokens(base, n_levels, n_frames, batch, kMaxChunkFrames, "base_tokens")).ok())
    return st;
  if (m.cap > 0) {
    const int c = n_frames, rows = batch * c;
    if (!(st = m.Workspace(static_cast<size_t>(rows), c, batch)).ok()) return st;
    if (!(st = m.UploadStreams(slots, batch)).ok()) return st;
    if (!(st = m.Embed(base, batch, n_levels, c, /*memory_view=*/true)).ok()) return st;
    const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(m.s.dim);
    for (int li = 0; li < m.s.n_layers; ++li) {
      if (!(st = m.Project(li, rows)).ok()) return st;
      StoreMemoryKernel<<<Blocks(n), kThreads>>>(m.qkv.get(), m.layers[0].qkv.ld, rows, c, m.s.dim,
                                                 m.s.n_layers, li, m.cap, m.pool_slot.get(),
                                                 m.write_pos.get(), m.keys.get(), m.values.get());
      if (!(st = m.Launched("StoreMemoryKernel")).ok()) return st;
      if (li + 1 < m.s.n_layers) {
        if (!(st = m.Attention(li, rows, c, /*with_memory=*/false, c)).ok()) return st;
        if (!(st = m.Finish(li, rows)).ok()) return st;
      }
    }
    SOUNDSPRING_CUDA_TRY(cudaDeviceSynchronize());
    for (int b = 0; b < batch; ++b) {
      const size_t slot = static_cast<size_t>(slots[b]);
      for (int t = 0; t < c; ++t) {
        const size_t at = slot * static_cast<size_t>(m.cap) + static_cast<size_t>(m.write[slot] + t);
        m.slot_frame[at] = m.frames[slot] + t;
        m.valid[at] = 1;
      }
      m.write[slot] = (m.write[slot] + c) % m.cap;
    }
  }
  for (int b = 0; b < batch; ++b) m.frames[static_cast<size_t>(slots[b])] += n_frames;
  return Status::Ok();
}

Status CudaEngine::FineLogitsBatch(const int* slots, int batch, const int64_t* views, int n_levels,
                                   int n_frames, int lo, int hi, float* out) {
  Impl& m = *impl_;
  if (out == nullptr) return InvalidArgument("out must not be null");
  if (lo < 0 || lo >= hi || hi > m.s.n_codebooks)
    return InvalidArgument("levels must be (lo, hi) with 0 <= lo < hi <= " +
                           std::to_string(m.s.n_codebooks));
  Status st = m.CheckSlots(slots, batch);
  if (!st.ok()) return st;
  if (n_frames != m.chunk_frames)
    return InvalidArgument("chunk_tokens must be [K, C=" + std::to_string(m.chunk_frames) + "]");
  if (!(st = m.CheckTokens(views, n_levels, n_frames, batch, kMaxChunkFrames, "chunk_tokens")).ok())
    return st;
  const int c = n_frames, rows = batch * c, max_keys = m.cap + c;
  if (!(st = m.Workspace(static_cast<size_t>(rows), max_keys, batch)).ok()) return st;
  if (!(st = m.UploadStreams(slots, batch)).ok()) return st;
  if (!(st = m.Embed(views, batch, n_levels, c, /*memory_view=*/false)).ok()) return st;
  for (int li = 0; li < m.s.n_layers; ++li) {
    if (!(st = m.Project(li, rows)).ok()) return st;
    if (!(st = m.Attention(li, rows, c, /*with_memory=*/m.cap > 0, max_keys)).ok()) return st;
    if (!(st = m.Finish(li, rows)).ok()) return st;
  }
  return m.Heads(rows, c, lo, hi, out);
}

Status CudaEngine::ConcealLogits(const int64_t* window, int n_levels, int n_frames, int lo, int hi,
                                 float* out) {
  Impl& m = *impl_;
  if (out == nullptr) return InvalidArgument("out must not be null");
  if (lo < 0 || lo >= hi || hi > m.s.n_codebooks)
    return InvalidArgument("levels must be (lo, hi) with 0 <= lo < hi <= " +
                           std::to_string(m.s.n_codebooks));
  Status st = m.CheckTokens(window, n_levels, n_frames, 1, kMaxWindowFrames, "window");
  if (!st.ok()) return st;
  if (!(st = m.Workspace(static_cast<size_t>(n_frames), n_frames, 1)).ok()) return st;
  const int64_t zero = 0;
  if (!(st = m.q_base.Upload(&zero, 1)).ok()) return st;
  if (!(st = m.Embed(window, 1, n_levels, n_frames, /*memory_view=*/true)).ok()) return st;
  for (int li = 0; li < m.s.n_layers; ++li) {
    if (!(st = m.Project(li, n_frames)).ok()) return st;
    if (!(st = m.Attention(li, n_frames, n_frames, /*with_memory=*/false, n_frames)).ok()) return st;
    if (!(st = m.Finish(li, n_frames)).ok()) return st;
  }
  return m.Heads(n_frames, n_frames, lo, hi, out);
}

}  // namespace soundspring::lm::cuda
