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
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/lm_engine.h"

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
