// check_lm_engine_cuda [chunk_steps]: the CUDA engine against the CPU engine, bit for bit.
//
// Builds a small SpringLM (K_max = 24, V = 1024, D = 64, L = 2, H = 2) with weights from an
// integer hash, runs `chunk_steps` (default 2000) chunk steps spread over 8 streams
// (coding pass of every level, then the memory pass) on both engines, plus a concealment
// window every 100 steps, and compares every logit's bits. Exit status: 0 all equal,
// 1 a difference or an error, 77 no CUDA device (ctest's skip code).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/lm_engine.h"
#include "cuda/lm_engine_cuda.h"

namespace {

using soundspring::Status;
namespace lm = soundspring::lm;

uint64_t Mix(uint64_t h) {
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 32);
}

// Values in [-scale, scale) that are exact floats.
std::vector<float> HashTensor(size_t n, uint64_t salt, float scale, float offset) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t h = Mix((i + (salt << 40)) * 6364136223846793005ull + 1442695040888963407ull);
    out[i] = offset + scale * (static_cast<float>(static_cast<int64_t>(h & 0xFFFF) - 32768) / 32768.0f);
  }
  return out;
}

int Fail(const char* what, const Status& st) {
  std::fprintf(stderr, "check_lm_engine_cuda: %s: %s\n", what, st.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (!lm::cuda::DeviceAvailable()) {
    std::printf("check_lm_engine_cuda: no CUDA device: skipped\n");
    return 77;
  }
  const long steps = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 2000;
  if (steps < 1) {
    std::fprintf(stderr, "usage: check_lm_engine_cuda [chunk_steps >= 1]\n");
    return 1;
  }
  lm::ModelShape shape;
  shape.n_codebooks = 24;
  shape.codebook_size = 1024;
  shape.base_codebooks = 3;
  shape.dim = 64;
  shape.n_layers = 2;
  shape.n_heads = 2;
  shape.ffn_mult = 2;
  shape.max_context_frames = 50;
  shape.max_rel_distance = 64;
  shape.tie_embeddings = true;
  const int64_t k = 24, v = 1024, d = 64, f = 128, nd = 129;
  std::map<std::string, std::vector<int64_t>> shapes = {
      {"embed.weight", {k * (v + 2), d}}, {"rel_bias_self", {2, 2, nd}}, {"rel_bias_mem", {2, 2, nd}},
      {"ln_out.weight", {d}}, {"ln_out.bias", {d}}, {"head_bias", {k, v}}};
  for (int li = 0; li < 2; ++li) {
    const std::string p = "blocks." + std::to_string(li) + ".";
    shapes[p + "ln1.weight"] = {d};
    shapes[p + "ln1.bias"] = {d};
    shapes[p + "ln2.weight"] = {d};
    shapes[p + "ln2.bias"] = {d};
    shapes[p + "qkv.weight"] = {3 * d, d};
    shapes[p + "qkv.bias"] = {3 * d};
    shapes[p + "proj.weight"] = {d, d};
    shapes[p + "proj.bias"] = {d};
    shapes[p + "ff1.weight"] = {f, d};
    shapes[p + "ff1.bias"] = {f};
    shapes[p + "ff2.weight"] = {d, f};
    shapes[p + "ff2.bias"] = {d};
  }
  std::map<std::string, std::vector<float>> data;
  lm::TensorMap weights;
  uint64_t salt = 0;
  for (const auto& [name, sh] : shapes) {
    size_t n = 1;
    for (int64_t e : sh) n *= static_cast<size_t>(e);
    const bool gain = name.find("ln") != std::string::npos && name.find("weight") != std::string::npos;
    const bool bias_table = name.rfind("rel_bias", 0) == 0 || name == "head_bias";
    data[name] = HashTensor(n, ++salt, bias_table ? 0.5f : 0.125f, gain ? 1.0f : 0.0f);
    weights[name] = lm::TensorRef{data[name].data(), sh};
  }
  std::unique_ptr<lm::Engine> cpu;
  Status st = lm::Engine::Create(shape, weights, lm::EngineOptions{}, &cpu);
  if (!st.ok()) return Fail("Engine::Create", st);
  const int n_streams = 8, r = 6, c = 2;
  std::unique_ptr<lm::cuda::CudaEngine> gpu;
  st = lm::cuda::CudaEngine::Create(*cpu, n_streams, r, c, &gpu);
  if (!st.ok()) return Fail("CudaEngine::Create", st);
  std::vector<lm::StreamState> states(n_streams);
  for (auto& s : states) {
    st = cpu->NewState(r, c, &s);
    if (!st.ok()) return Fail("NewState", st);
  }
  const size_t logits_per_step = static_cast<size_t>(k) * c * v;
  std::vector<float> want(logits_per_step), got(logits_per_step);
  std::vector<int64_t> view(static_cast<size_t>(k) * c);
  uint64_t mismatches = 0, rng = 7;
  for (long step = 0; step < steps; ++step) {
    const int stream = static_cast<int>(step % n_streams);
    for (auto& t : view) {
      rng = Mix(rng * 6364136223846793005ull + 1442695040888963407ull);
      t = static_cast<int64_t>(rng % 1026);  // tokens, MASK and MASK_UPPER
    }
    st = cpu->FineLogits(states[static_cast<size_t>(stream)], view.data(), 24, c, 0, 24, want.data());
    if (!st.ok()) return Fail("FineLogits", st);
    st = gpu->FineLogitsBatch(&stream, 1, view.data(), 24, c, 0, 24, got.data());
    if (!st.ok()) return Fail("CudaEngine::FineLogitsBatch", st);
    if (std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) != 0) ++mismatches;
    st = cpu->Commit(view.data(), 3, c, &states[static_cast<size_t>(stream)]);
    if (!st.ok()) return Fail("Commit", st);
    st = gpu->CommitBatch(&stream, 1, view.data(), 3, c);
    if (!st.ok()) return Fail("CudaEngine::CommitBatch", st);
    if (step % 100 == 0) {
      const int w = 17;
      std::vector<int64_t> window(static_cast<size_t>(k) * w);
      for (size_t i = 0; i < window.size(); ++i) window[i] = view[i % view.size()];
      std::vector<float> cw(3 * static_cast<size_t>(w) * v), gw(cw.size());
      st = cpu->ConcealLogits(window.data(), 24, w, 0, 3, cw.data());
      if (!st.ok()) return Fail("ConcealLogits", st);
      st = gpu->ConcealLogits(window.data(), 24, w, 0, 3, gw.data());
      if (!st.ok()) return Fail("CudaEngine::ConcealLogits", st);
      if (std::memcmp(cw.data(), gw.data(), cw.size() * sizeof(float)) != 0) ++mismatches;
    }
  }
  std::printf("check_lm_engine_cuda: %ld chunk steps, %llu mismatching calls\n", steps,
              static_cast<unsigned long long>(mismatches));
  return mismatches == 0 ? 0 : 1;
}
