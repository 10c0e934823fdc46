// pybind11 mirror of csrc/core/codec_engine.h (module soundspring._core.codec): the
// streaming codec's encoder and decoder steps and their per-stream states.
//
// Audio and latents are exact-dtype (float32) C-contiguous numpy arrays; outputs are
// allocated here, the GIL is released around every step, and every core Status becomes
// the exception of soundspring.errors (kInvalidArgument: ConfigError).
// python/soundspring/models/codec_engine.py adapts it to the Codec streaming API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/codec_engine.h"

namespace soundspring::bindings {
namespace {

int shape_int(const py::dict& shape, const char* key) {
  if (!shape.contains(key)) throw_status(InvalidArgument(std::string("codec shape: missing '") + key + "'"));
  return py::cast<int>(shape[key]);
}

std::vector<int> shape_ints(const py::dict& shape, const char* key) {
  if (!shape.contains(key)) throw_status(InvalidArgument(std::string("codec shape: missing '") + key + "'"));
  return py::cast<std::vector<int>>(shape[key]);
}

// The CodecShape of a CodecConfig as a dict (dataclasses.asdict).
codec::CodecShape shape_arg(const py::dict& d) {
  codec::CodecShape s;
  s.latent_dim = shape_int(d, "latent_dim");
  s.enc_channels = shape_int(d, "enc_channels");
  s.enc_max_channels = shape_int(d, "enc_max_channels");
  s.enc_strides = shape_ints(d, "enc_strides");
  s.enc_res_dilations = shape_ints(d, "enc_res_dilations");
  s.dec_dim = shape_int(d, "dec_dim");
  s.dec_intermediate = shape_int(d, "dec_intermediate");
  s.dec_layers = shape_int(d, "dec_layers");
  s.dec_kernel = shape_int(d, "dec_kernel");
  s.istft_hop = shape_int(d, "istft_hop_samples");
  s.istft_n_fft = shape_int(d, "istft_n_fft");
  return s;
}

// T::Create (codec::Encoder or codec::Decoder) from the Python arguments, GIL released.
template <class T>
std::unique_ptr<T> create(const py::dict& shape, const py::dict& weights, const std::string& isa) {
  const codec::CodecShape s = shape_arg(shape);
  codec::CodecOptions options;
  options.isa = isa_arg(isa);
  std::vector<py::array_t<float>> keep;
  const lm::TensorMap map = tensor_map(weights, &keep);
  std::unique_ptr<T> out;
  Status st;
  {
    py::gil_scoped_release release;
    st = T::Create(s, map, options, &out);
  }
  check(st);
  return out;
}

class PyEncoder {
 public:
  PyEncoder(const py::dict& shape, const py::dict& weights, const std::string& isa)
      : impl_(create<codec::Encoder>(shape, weights, isa)) {}

  codec::EncoderState new_state() const {
    codec::EncoderState st;
    impl_->NewState(&st);
    return st;
  }

  py::array_t<float> step(codec::EncoderState& state, const py::handle& wav_obj) const {
    auto wav = require_array<float>(wav_obj, "wav", 1, "float32 [n * hop]");
    const int64_t n = static_cast<int64_t>(wav.shape(0));
    const int hop = impl_->hop();
    if (n <= 0 || n % hop || n / hop > codec::kMaxStepFrames) {
      throw_status(InvalidArgument("wav must hold n * " + std::to_string(hop) + " samples with 1 <= n <= " +
                                   std::to_string(codec::kMaxStepFrames) + ", got " + std::to_string(n)));
    }
    py::array_t<float> out({static_cast<py::ssize_t>(n / hop), static_cast<py::ssize_t>(impl_->latent_dim())});
    const float* in = wav.data();
    float* o = out.mutable_data();
    Status st;
    {
      py::gil_scoped_release release;
      st = impl_->Step(&state, in, n, o);
    }
    check(st);
    return out;
  }

  const codec::Encoder& impl() const { return *impl_; }

 private:
  std::unique_ptr<codec::Encoder> impl_;
};

class PyDecoder {
 public:
  PyDecoder(const py::dict& shape, const py::dict& weights, const std::string& isa)
      : impl_(create<codec::Decoder>(shape, weights, isa)) {}

  codec::DecoderState new_state() const {
    codec::DecoderState st;
    impl_->NewState(&st);
    return st;
  }

  py::array_t<float> step(codec::DecoderState& state, const py::handle& lat_obj) const {
    auto lat = require_array<float>(lat_obj, "latents", 2, "float32 [n, D]");
    const int d = impl_->latent_dim();
    if (lat.shape(1) != d || lat.shape(0) < 1 || lat.shape(0) > codec::kMaxStepFrames) {
      throw_status(InvalidArgument("latents must be float32 [n, D=" + std::to_string(d) + "] with 1 <= n <= " +
                                   std::to_string(codec::kMaxStepFrames) + ", got [" +
                                   std::to_string(lat.shape(0)) + ", " + std::to_string(lat.shape(1)) + "]"));
    }
    const int n = static_cast<int>(lat.shape(0));
    py::array_t<float> out(static_cast<py::ssize_t>(n) * impl_->hop());
    const float* in = lat.data();
    float* o = out.mutable_data();
    Status st;
    {
      py::gil_scoped_release release;
      st = impl_->Step(&state, in, n, o);
    }
    check(st);
    return out;
  }

  py::array_t<float> flush(const codec::DecoderState& state) const {
    py::array_t<float> out(impl_->lookahead());
    check(impl_->Flush(state, out.mutable_data()));
    return out;
  }

  const codec::Decoder& impl() const { return *impl_; }

 private:
  std::unique_ptr<codec::Decoder> impl_;
};

}  // namespace

void bind_codec(py::module_& m) {
  py::class_<codec::EncoderState>(m, "EncoderState",
                                  "One stream's encoder conv histories; copy() snapshots it.")
      .def_property_readonly("frames", [](const codec::EncoderState& s) { return s.frames; })
      .def("copy", [](const codec::EncoderState& s) { return codec::EncoderState(s); });
  py::class_<codec::DecoderState>(m, "DecoderState",
                                  "One stream's decoder conv histories and overlap-add tail; copy() snapshots it.")
      .def_property_readonly("frames", [](const codec::DecoderState& s) { return s.frames; })
      .def("copy", [](const codec::DecoderState& s) { return codec::DecoderState(s); });

  py::class_<PyEncoder>(m, "Encoder", R"doc(
The streaming SEANet encoder step (csrc/core/codec_engine.h) built from the Codec's
state-dict tensors (float32 numpy, names encoder.*) and its CodecConfig as a dict.
step(state, wav float32 [n * hop]) -> latents float32 [n, D]; deterministic float32 (the same
bits for every isa).
)doc")
      .def(py::init<const py::dict&, const py::dict&, const std::string&>(), py::arg("shape"),
           py::arg("weights"), py::arg("isa") = "auto")
      .def("new_state", &PyEncoder::new_state)
      .def("step", &PyEncoder::step, py::arg("state"), py::arg("wav"))
      .def_property_readonly("hop", [](const PyEncoder& e) { return e.impl().hop(); })
      .def_property_readonly("latent_dim", [](const PyEncoder& e) { return e.impl().latent_dim(); })
      .def_property_readonly("isa", [](const PyEncoder& e) { return std::string(lm::isa_name(e.impl().isa())); })
      .def_property_readonly("half_weights", [](const PyEncoder& e) { return e.impl().half_weights(); })
      .def_property_readonly("weight_storage", [](const PyEncoder& e) {
        return std::string(lm::weight_storage_name(e.impl().weight_storage()));
      }, "'int8', 'binary16' or 'float32' (lm engine weight_storage); never changes the bits.");

  py::class_<PyDecoder>(m, "Decoder", R"doc(
The streaming Vocos decoder step (csrc/core/codec_engine.h) built from the Codec's
state-dict tensors (float32 numpy, names decoder.*) and its CodecConfig as a dict.
step(state, latents float32 [n, D]) -> wav float32 [n * hop], the offline decode delayed by
lookahead samples; flush(state) -> the unfinished tail float32 [lookahead].
)doc")
      .def(py::init<const py::dict&, const py::dict&, const std::string&>(), py::arg("shape"),
           py::arg("weights"), py::arg("isa") = "auto")
      .def("new_state", &PyDecoder::new_state)
      .def("step", &PyDecoder::step, py::arg("state"), py::arg("latents"))
      .def("flush", &PyDecoder::flush, py::arg("state"))
      .def_property_readonly("hop", [](const PyDecoder& d) { return d.impl().hop(); })
      .def_property_readonly("latent_dim", [](const PyDecoder& d) { return d.impl().latent_dim(); })
      .def_property_readonly("lookahead", [](const PyDecoder& d) { return d.impl().lookahead(); })
      .def_property_readonly("isa", [](const PyDecoder& d) { return std::string(lm::isa_name(d.impl().isa())); })
      .def_property_readonly("half_weights", [](const PyDecoder& d) { return d.impl().half_weights(); })
      .def_property_readonly("weight_storage", [](const PyDecoder& d) {
        return std::string(lm::weight_storage_name(d.impl().weight_storage()));
      }, "'int8', 'binary16' or 'float32' (lm engine weight_storage); never changes the bits.");
}

}  // namespace soundspring::bindings
