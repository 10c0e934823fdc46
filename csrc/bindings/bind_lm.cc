// pybind11 mirror of csrc/core/lm_engine.h (module soundspring._core.lm): the SpringLM
// inference engine and its per-stream memory.
//
// A plain pybind11 binding rather than torch custom ops: the engine's whole point is to
// run without torch (the transceiver's entropy path hands it numpy tokens and passes its
// logits or CDFs straight to the range coder), so it must not need torch headers at build
// time nor a torch dispatcher at run time; python/soundspring/models/lm_engine.py adapts
// it to the CodingModel protocol. Token arrays are exact-dtype (int64) C-contiguous numpy
// arrays; outputs are allocated here, the GIL is released around every forward, and every
// core Status becomes the exception of soundspring.errors (kInvalidArgument: ConfigError).
//
// ChunkDecoder and ChunkEncoder (csrc/core/chunk_decoder.h, chunk_encoder.h) are bound here
// too: they borrow the Engine, and are the per-chunk entropy paths of the transceiver's two
// ends in one call each (python/soundspring/entropy/chunk.py uses them for engine models).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/chunk_decoder.h"
#include "core/chunk_encoder.h"
#include "core/lm_engine.h"
#include "core/rvq_search.h"

namespace soundspring::bindings {
namespace {

// An int64 C-contiguous token array of `ndim` dimensions: TypeError for another type, dtype
// or layout, ConfigError (kInvalidArgument) for another number of dimensions.
py::array_t<int64_t> tokens_arg(const py::handle& obj, const char* name, int ndim,
                                const char* form) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy array " + form + ", got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (arr.ndim() != ndim) {
    throw_status(InvalidArgument(std::string(name) + " must be " + form + ", got " +
                                 std::to_string(arr.ndim()) + " dimension(s)"));
  }
  return require_array<int64_t>(obj, name, ndim, form);
}

int dim_int(const py::array& arr, int axis) { return static_cast<int>(arr.shape(axis)); }

void check_dims_fit(const py::array& arr, const char* name) {
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
    if (arr.shape(i) > (int64_t{1} << 30)) {
      throw_status(InvalidArgument(std::string(name) + " is too large"));
    }
  }
}

class PyEngine {
 public:
  PyEngine(const py::dict& weights, int n_codebooks, int codebook_size, int base_codebooks, int dim,
           int n_layers, int n_heads, int ffn_mult, int max_context_frames, int max_rel_distance,
           bool tie_embeddings, const std::string& isa, int num_threads) {
    lm::ModelShape shape;
    shape.n_codebooks = n_codebooks;
    shape.codebook_size = codebook_size;
    shape.base_codebooks = base_codebooks;
    shape.dim = dim;
    shape.n_layers = n_layers;
    shape.n_heads = n_heads;
    shape.ffn_mult = ffn_mult;
    shape.max_context_frames = max_context_frames;
    shape.max_rel_distance = max_rel_distance;
    shape.tie_embeddings = tie_embeddings;
    lm::EngineOptions options;
    options.isa = isa_arg(isa);
    options.num_threads = num_threads;
    std::vector<py::array_t<float>> keep;
    const lm::TensorMap map = tensor_map(weights, &keep);
    Status st;
    {
      py::gil_scoped_release release;
      st = lm::Engine::Create(shape, map, options, &engine_);
    }
    check(st);
  }

  const lm::Engine& engine() const { return *engine_; }

  lm::StreamState new_state(int context_frames, int chunk_frames) const {
    lm::StreamState out;
    check(engine_->NewState(context_frames, chunk_frames, &out));
    return out;
  }

  void commit(lm::StreamState& state, const py::handle& base_obj) const {
    auto base = tokens_arg(base_obj, "base_tokens", 2, "int64 [k, C]");
    check_dims_fit(base, "base_tokens");
    const int64_t* p = base.data();
    const int k = dim_int(base, 0), c = dim_int(base, 1);
    Status st;
    {
      py::gil_scoped_release release;
      st = engine_->Commit(p, k, c, &state);
    }
    check(st);
  }

  void commit_batch(const py::list& states_obj, const py::handle& base_obj) const {
    auto base = tokens_arg(base_obj, "base_tokens", 3, "int64 [B, k, C]");
    check_dims_fit(base, "base_tokens");
    const int b = dim_int(base, 0), k = dim_int(base, 1), c = dim_int(base, 2);
    std::vector<lm::StreamState*> states = state_list(states_obj, b);
    const int64_t* p = base.data();
    Status st;
    {
      py::gil_scoped_release release;
      st = engine_->CommitBatch(states.data(), b, p, k, c);
    }
    check(st);
  }

  py::array_t<float> fine_logits(const lm::StreamState& state, const py::handle& view_obj, int lo,
                                 int hi) const {
    auto view = tokens_arg(view_obj, "chunk_tokens", 2, "int64 [K, C]");
    check_dims_fit(view, "chunk_tokens");
    check_levels(lo, hi);
    const int k = dim_int(view, 0), c = dim_int(view, 1);
    py::array_t<float> out({static_cast<py::ssize_t>(hi - lo), static_cast<py::ssize_t>(c),
                            static_cast<py::ssize_t>(engine_->shape().codebook_size)});
    const int64_t* p = view.data();
    float* o = out.mutable_data();
    Status st;
    {
      py::gil_scoped_release release;
      st = engine_->FineLogits(state, p, k, c, lo, hi, o);
    }
    check(st);
    return out;
  }

  py::array_t<float> fine_logits_batch(const py::list& states_obj, const py::handle& views_obj,
                                       int lo, int hi) const {
    auto views = tokens_arg(views_obj, "chunk_tokens", 3, "int64 [B, K, C]");
    check_dims_fit(views, "chunk_tokens");
    check_levels(lo, hi);
    const int b = dim_int(views, 0), k = dim_int(views, 1), c = dim_int(views, 2);
    std::vector<lm::StreamState*> mutable_states = state_list(states_obj, b);
    std::vector<const lm::StreamState*> states(mutable_states.begin(), mutable_states.end());
    py::array_t<float> out({static_cast<py::ssize_t>(b), static_cast<py::ssize_t>(hi - lo),
                            static_cast<py::ssize_t>(c),
                            static_cast<py::ssize_t>(engine_->shape().codebook_size)});
    const int64_t* p = views.data();
    float* o = out.mutable_data();
    Status st;
    {
      py::gil_scoped_release release;
      st = engine_->FineLogitsBatch(states.data(), b, p, k, c, lo, hi, o);
    }
    check(st);
    return out;
  }

  py::array_t<uint32_t> fine_cdfs(const lm::StreamState& state, const py::handle& view_obj, int lo,
                                  int hi, int precision_bits) const {
    auto view = tokens_arg(view_obj, "chunk_tokens", 2, "int64 [K, C]");
    check_dims_fit(view, "chunk_tokens");
    check_levels(lo, hi);
    const int k = dim_int(view, 0), c = dim_int(view, 1);
    py::array_t<uint32_t> out({static_cast<py::ssize_t>(hi - lo), static_cast<py::ssize_t>(c),
                               static_cast<py::ssize_t>(engine_->shape().codebook_size + 1)});
    const int64_t* p = view.data();
    uint32_t* o = out.mutable_data();
    Status st;
    {
      py::gil_scoped_release release;
      st = engine_->FineCdfs(state, p, k, c, lo, hi, precision_bits, o);
    }
    check(st);
    return out;
  }

  py::array_t<float> conceal_logits(const py::handle& window_obj, int lo, int hi) const {
    auto window = tokens_arg(window_obj, "window", 2, "int64 [K, W]");
    check_dims_fit(window, "window");
    check_levels(lo, hi);
    const int k = dim_int(window, 0), w = dim_int(window, 1);
    py::array_t<float> out({static_cast<py::ssize_t>(hi - lo), static_cast<py::ssize_t>(w),
                            static_cast<py::ssize_t>(engine_->shape().codebook_size)});
    const int64_t* p = window.data();
    float* o = out.mutable_data();
    Status st;
    {
      py::gil_scoped_release release;
      st = engine_->ConcealLogits(p, k, w, lo, hi, o);
    }
    check(st);
    return out;
  }

 private:
  // One StreamState per stream of a batch of b >= 1.
  static std::vector<lm::StreamState*> state_list(const py::list& states_obj, int b) {
    if (b < 1) throw_status(InvalidArgument("a batch must hold B >= 1 streams"));
    if (static_cast<int>(states_obj.size()) != b) {
      throw_status(InvalidArgument("states must hold one StreamState per stream: B=" +
                                   std::to_string(b) + ", got " +
                                   std::to_string(states_obj.size())));
    }
    std::vector<lm::StreamState*> states;
    states.reserve(static_cast<size_t>(b));
    for (const auto& s : states_obj) {
      if (!py::isinstance<lm::StreamState>(s)) {
        throw py::type_error("states must be a list of StreamState");
      }
      states.push_back(&py::cast<lm::StreamState&>(s));
    }
    return states;
  }

  // Checked before an output is allocated from hi - lo.
  void check_levels(int lo, int hi) const {
    if (lo < 0 || lo >= hi || hi > engine_->shape().n_codebooks) {
      throw_status(InvalidArgument("levels must be (lo, hi) with 0 <= lo < hi <= " +
                                   std::to_string(engine_->shape().n_codebooks) + ", got (" +
                                   std::to_string(lo) + ", " + std::to_string(hi) + ")"));
    }
  }

  std::unique_ptr<lm::Engine> engine_;
};

py::array_t<int64_t> token_array(const std::vector<int64_t>& tokens, int n_levels, int c) {
  py::array_t<int64_t> out({static_cast<py::ssize_t>(n_levels), static_cast<py::ssize_t>(c)});
  std::copy(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(n_levels) * c,
            out.mutable_data());
  return out;
}

// The receiver's chunk decoder over an engine (kept alive by the binding).
class PyChunkDecoder {
 public:
  PyChunkDecoder(const PyEngine& engine, int n_codebooks, int chunk_frames, int context_frames,
                 bool progressive, int check_bits, int precision_bits,
                 const py::handle& unigram_obj) {
    auto unigram = require_array<float>(unigram_obj, "unigram", 2, "float32 [K_max, V]");
    const lm::ModelShape& shape = engine.engine().shape();
    if (unigram.shape(0) != shape.n_codebooks || unigram.shape(1) != shape.codebook_size) {
      throw_status(InvalidArgument("unigram must be float32 [K_max, V] of the engine's model"));
    }
    entropy::ChunkSettings s;
    s.n_codebooks = n_codebooks;
    s.chunk_frames = chunk_frames;
    s.context_frames = context_frames;
    s.progressive = progressive;
    s.check_bits = check_bits;
    s.precision_bits = precision_bits;
    s.fused_cdfs = true;
    check(entropy::ChunkDecoder::Create(s, &engine.engine(), unigram.data(), &impl_,
                                        shape.n_codebooks));
  }

  const entropy::ChunkDecoder& impl() const { return *impl_; }

  py::array_t<int64_t> decode_base(const py::handle& payload_obj) const {
    return base_of(payload_obj, false);
  }

  py::array_t<int64_t> decode_chunk_base(const py::handle& payload_obj) const {
    return base_of(payload_obj, true);
  }

  py::tuple decode_chunk(const lm::StreamState& state, const py::handle& payload_obj) const {
    py::buffer_info buf = require_bytes(payload_obj, "payload");
    const auto* p = static_cast<const uint8_t*>(buf.ptr);
    const auto n = static_cast<size_t>(buf.size);
    entropy::DecodedTokens out;
    Status st;
    {
      py::gil_scoped_release release;
      st = impl_->DecodeChunk(state, p, n, &out);
    }
    check(st);
    return py::make_tuple(token_array(out.tokens, out.n_levels, impl_->settings().chunk_frames),
                          out.fine_failed);
  }

 private:
  py::array_t<int64_t> base_of(const py::handle& payload_obj, bool combined) const {
    py::buffer_info buf = require_bytes(payload_obj, "payload");
    const auto* p = static_cast<const uint8_t*>(buf.ptr);
    const auto n = static_cast<size_t>(buf.size);
    const int c = impl_->settings().chunk_frames;
    std::vector<int64_t> base(static_cast<size_t>(entropy::kBaseLevels * c));
    Status st;
    {
      py::gil_scoped_release release;
      st = combined ? impl_->DecodeChunkBase(p, n, base.data()) : impl_->DecodeBase(p, n, base.data());
    }
    check(st);
    return token_array(base, entropy::kBaseLevels, c);
  }

  std::unique_ptr<entropy::ChunkDecoder> impl_;
};

// The transmitter's chunk encoder: the decoder's PMFs, its own packed codebooks.
class PyChunkEncoder {
 public:
  PyChunkEncoder(const PyChunkDecoder& coder, const py::handle& codebooks_obj,
                 const py::handle& bits_of_frequency_obj, const py::handle& base_bits_obj,
                 const std::string& isa) {
    auto cb = require_array<float>(codebooks_obj, "codebooks", 3, "float32 [K, V, D]");
    auto freq = require_array<float>(bits_of_frequency_obj, "bits_of_frequency", 1,
                                     "float32 [2^precision_bits + 1]");
    auto base = require_array<float>(base_bits_obj, "base_bits", 3, "float32 [C, 3, V]");
    const entropy::ChunkSettings& s = coder.impl().settings();
    if (freq.shape(0) != (py::ssize_t{1} << s.precision_bits) + 1) {
      throw_status(InvalidArgument("bits_of_frequency must be float32 [2^precision_bits + 1]"));
    }
    if (base.shape(0) != s.chunk_frames || base.shape(1) != entropy::kBaseLevels ||
        base.shape(2) != coder.impl().vocab()) {
      throw_status(InvalidArgument("base_bits must be float32 [C, 3, V]"));
    }
    for (int axis = 0; axis < 3; ++axis) {
      if (cb.shape(axis) > (int64_t{1} << 30)) throw_status(InvalidArgument("codebooks is too large"));
    }
    rvq::SearchOptions options;
    options.isa = isa_arg(isa);
    const float* p = cb.data();
    const int k = static_cast<int>(cb.shape(0)), v = static_cast<int>(cb.shape(1)),
              d = static_cast<int>(cb.shape(2));
    Status st;
    {
      py::gil_scoped_release release;
      st = rvq::Codebooks::Create(p, k, v, d, options, &codebooks_);
    }
    check(st);
    check(entropy::ChunkEncoder::Create(&coder.impl(), codebooks_.get(), freq.data(), base.data(),
                                        &impl_));
  }

  const entropy::ChunkEncoder& impl() const { return *impl_; }

  py::tuple encode_chunk(const lm::StreamState& state, const py::handle& latents_obj,
                         double rd_lambda) const {
    auto z = require_array<float>(latents_obj, "latents", 2, "float32 [C, D]");
    const entropy::ChunkSettings& s = impl_->coder().settings();
    if (z.shape(0) != s.chunk_frames || z.shape(1) != impl_->dim()) {
      throw_status(InvalidArgument("latents must be float32 [C=" + std::to_string(s.chunk_frames) +
                                   ", D=" + std::to_string(impl_->dim()) + "]"));
    }
    if (!std::isfinite(rd_lambda) || rd_lambda < 0.0 || rd_lambda > 3.0e38) {
      throw_status(InvalidArgument("rd_lambda must be finite and >= 0, got " + std::to_string(rd_lambda)));
    }
    std::vector<float> r(z.data(), z.data() + z.size());  // the caller's latents stay as they are
    py::array_t<int64_t> tokens({static_cast<py::ssize_t>(s.n_codebooks),
                                 static_cast<py::ssize_t>(s.chunk_frames)});
    int64_t* t = tokens.mutable_data();
    const float lambda = static_cast<float>(rd_lambda);
    std::vector<uint8_t> payload;
    Status st;
    {
      py::gil_scoped_release release;
      st = impl_->EncodeChunk(state, r.data(), lambda, t, &payload);
    }
    check(st);
    return py::make_tuple(tokens, py::bytes(reinterpret_cast<const char*>(payload.data()),
                                            payload.size()));
  }

 private:
  std::unique_ptr<rvq::Codebooks> codebooks_;
  std::unique_ptr<entropy::ChunkEncoder> impl_;
};

}  // namespace

void bind_lm(py::module_& m) {
  py::class_<lm::StreamState>(m, "StreamState", R"doc(
The coding memory of one stream (csrc/core/lm_engine.h): the pass-1 keys and values of the
last R // C committed chunks in a preallocated ring. Made by Engine.new_state; Engine.commit
updates it in place; snapshot() is an independent copy.
)doc")
      .def_property_readonly("context_frames", &lm::StreamState::context_frames)
      .def_property_readonly("chunk_frames", &lm::StreamState::chunk_frames)
      .def_property_readonly("capacity_frames", &lm::StreamState::capacity_frames)
      .def_property_readonly("frames", &lm::StreamState::frames,
                             "Frames committed since the stream started.")
      .def("reset", &lm::StreamState::Reset, "Empties the memory without reallocating.")
      .def("snapshot", [](const lm::StreamState& s) { return lm::StreamState(s); },
           "An independent copy of the memory.")
      .def("__copy__", [](const lm::StreamState& s) { return lm::StreamState(s); })
      .def("__deepcopy__", [](const lm::StreamState& s, const py::dict&) {
        return lm::StreamState(s);
      });

  py::class_<PyEngine>(m, "Engine", R"doc(
Deterministic SpringLM inference (csrc/core/lm_engine.h).

Engine(weights, *, n_codebooks, codebook_size, base_codebooks, dim, n_layers, n_heads,
       ffn_mult, max_context_frames, max_rel_distance, tie_embeddings, isa="auto",
       num_threads=1)

weights: {state-dict name: float32 C-contiguous numpy array} of SpringLM (every tensor
except unigram_logprobs). isa: "auto", "generic", "sse2", "avx2" or "avx512" (one the CPU
lacks raises ConfigError). The outputs are the same bits for every isa and num_threads.
Raises ConfigError for a bad shape, name or option; TypeError for a non-float32 array.
)doc")
      .def(py::init<const py::dict&, int, int, int, int, int, int, int, int, int, bool,
                    const std::string&, int>(),
           py::arg("weights"), py::kw_only(), py::arg("n_codebooks"), py::arg("codebook_size"),
           py::arg("base_codebooks"), py::arg("dim"), py::arg("n_layers"), py::arg("n_heads"),
           py::arg("ffn_mult"), py::arg("max_context_frames"), py::arg("max_rel_distance"),
           py::arg("tie_embeddings"), py::arg("isa") = "auto", py::arg("num_threads") = 1)
      .def_property_readonly("isa", [](const PyEngine& e) {
        return std::string(lm::isa_name(e.engine().isa()));
      }, "The kernel level in use: 'generic', 'sse2', 'avx2' or 'avx512'.")
      .def_property_readonly("num_threads", [](const PyEngine& e) { return e.engine().num_threads(); })
      .def_property_readonly("weight_storage", [](const PyEngine& e) {
        return std::string(lm::weight_storage_name(e.engine().packed().storage));
      }, "How the matrices are held: 'int8' (every column exactly q 2^e with |q| <= 127, "
         "models/block_float.py, on sse2/avx2/avx512), 'binary16' (every weight exactly a "
         "half, e.g. the shipped fp16 file, on an ISA with fast conversion) or 'float32'. "
         "Never changes the bits.")
      .def("new_state", &PyEngine::new_state, py::arg("context_frames"), py::arg("chunk_frames"),
           "An empty memory: reach R in [0, max_context_frames], chunks of C frames.")
      .def("commit", &PyEngine::commit, py::arg("state"), py::arg("base_tokens"),
           "Memory pass: appends the chunk base_tokens int64 [k, C] to state (in place).")
      .def("commit_batch", &PyEngine::commit_batch, py::arg("states"), py::arg("base_tokens"),
           "Memory pass of B distinct streams at once: base_tokens int64 [B, k, C], one state "
           "each (in place); the same bits as B separate commits.")
      .def("fine_logits", &PyEngine::fine_logits, py::arg("state"), py::arg("chunk_tokens"),
           py::arg("lo"), py::arg("hi"),
           "Coding pass: float32 [hi - lo, C, V] logits of levels [lo, hi) for chunk_tokens "
           "int64 [K, C] against state (unchanged).")
      .def("fine_logits_batch", &PyEngine::fine_logits_batch, py::arg("states"),
           py::arg("chunk_tokens"), py::arg("lo"), py::arg("hi"),
           "fine_logits of B streams at once: chunk_tokens int64 [B, K, C], one state each; "
           "float32 [B, hi - lo, C, V], the same bits as B separate calls.")
      .def("fine_cdfs", &PyEngine::fine_cdfs, py::arg("state"), py::arg("chunk_tokens"),
           py::arg("lo"), py::arg("hi"), py::arg("precision_bits"),
           "fine_logits fused with cdf_from_logits: uint32 [hi - lo, C, V + 1].")
      .def("conceal_logits", &PyEngine::conceal_logits, py::arg("window"), py::arg("lo"),
           py::arg("hi"),
           "Concealment window: float32 [hi - lo, W, V] logits for window int64 [K, W].");

  py::class_<PyChunkDecoder>(m, "ChunkDecoder", R"doc(
One chunk's token payloads decoded in C++ (csrc/core/chunk_decoder.h; the Python coder is
soundspring.entropy.chunk.ChunkCoder), fine PMFs from `engine` (kept alive) with its fused
CDFs.

ChunkDecoder(engine, n_codebooks, chunk_frames, context_frames, progressive, check_bits,
             precision_bits, unigram)

unigram: float32 [K_max, V], the static base logits. Raises ConfigError for settings out
of range; BitstreamError / IntegrityError from the decode methods for bad payloads.
)doc")
      .def(py::init<const PyEngine&, int, int, int, bool, int, int, const py::handle&>(),
           py::arg("engine"), py::arg("n_codebooks"), py::arg("chunk_frames"),
           py::arg("context_frames"), py::arg("progressive"), py::arg("check_bits"),
           py::arg("precision_bits"), py::arg("unigram"), py::keep_alive<1, 2>())
      .def_property_readonly("combined_base_check", [](const PyChunkDecoder& d) {
        return d.impl().combined_base_check();
      })
      .def("decode_base", &PyChunkDecoder::decode_base, py::arg("payload"),
           "A base payload (layered base packet, FEC copy): the verified base int64 [3, C].")
      .def("decode_chunk_base", &PyChunkDecoder::decode_chunk_base, py::arg("payload"),
           "The base int64 [3, C] of a combined payload, verified by its base check.")
      .def("decode_chunk", &PyChunkDecoder::decode_chunk, py::arg("state"), py::arg("payload"),
           "A combined payload against state: (tokens int64 [n_levels, C], fine_failed).")
      .def_property(
          "profiling", [](const PyChunkDecoder& d) { return d.impl().model_time().enabled(); },
          [](const PyChunkDecoder& d, bool on) { d.impl().model_time().enable(on); },
          "Whether model_cpu_seconds counts (off by default: no clock reads).")
      .def_property_readonly(
          "model_cpu_seconds",
          [](const PyChunkDecoder& d) { return d.impl().model_time().seconds(); },
          "Process CPU seconds spent in the model's fine CDFs while profiling (every call "
          "of this decoder and of the ChunkEncoders over it).");

  py::class_<PyChunkEncoder>(m, "ChunkEncoder", R"doc(
The transmitter's rate-distortion token choice and combined payload of one chunk in one
call (csrc/core/chunk_encoder.h), with the PMFs of `coder` (a ChunkDecoder, kept alive).

ChunkEncoder(coder, codebooks, bits_of_frequency, base_bits, isa="auto")

codebooks: float32 [K, V, D] (packed here); bits_of_frequency: float32 [2^p + 1], the cost
in bits of each frequency; base_bits: float32 [C, 3, V], the costs of the base values.
)doc")
      .def(py::init<const PyChunkDecoder&, const py::handle&, const py::handle&,
                    const py::handle&, const std::string&>(),
           py::arg("coder"), py::arg("codebooks"), py::arg("bits_of_frequency"),
           py::arg("base_bits"), py::arg("isa") = "auto", py::keep_alive<1, 2>())
      .def("encode_chunk", &PyChunkEncoder::encode_chunk, py::arg("state"), py::arg("latents"),
           py::arg("rd_lambda"),
           "latents float32 [C, D] against state (unchanged) -> (tokens int64 [K, C], the "
           "combined payload bytes).")
      .def_property(
          "profiling", [](const PyChunkEncoder& e) { return e.impl().search_time().enabled(); },
          [](const PyChunkEncoder& e, bool on) {
            e.impl().search_time().enable(on);
            e.impl().chunk_time().enable(on);
          },
          "Whether search_cpu_seconds and chunk_cpu_seconds count (the model's share counts "
          "on the coder).")
      .def_property_readonly(
          "chunk_cpu_seconds",
          [](const PyChunkEncoder& e) { return e.impl().chunk_time().seconds(); },
          "Process CPU seconds of whole encode_chunk calls while profiling.")
      .def_property_readonly(
          "search_cpu_seconds",
          [](const PyChunkEncoder& e) { return e.impl().search_time().seconds(); },
          "Process CPU seconds spent in the token search (bit costs included) while profiling.");

  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (lm::Isa isa : {lm::Isa::kGeneric, lm::Isa::kSse2, lm::Isa::kAvx2, lm::Isa::kAvx512}) {
      if (lm::isa_supported(isa)) out.emplace_back(lm::isa_name(isa));
    }
    return out;
  }, "The kernel levels this build and CPU can run, lowest first.");
  m.def("best_isa", [] { return std::string(lm::isa_name(lm::best_isa())); },
        "The level isa='auto' picks.");
}

}  // namespace soundspring::bindings
