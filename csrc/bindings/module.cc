// PYBIND11_MODULE(_core): the only Python entry point into the C++ core.
// Each bind_*.cc mirrors one area of csrc/core; this file wires them into submodules and
// maps StatusCode onto the exception classes of soundspring.errors.
#include <pybind11/pybind11.h>

#include "bindings/common.h"

namespace soundspring::bindings {

void bind_coding(py::module_& m);     // bind_coding.cc: range coder, CDFs
void bind_transport(py::module_& m);  // bind_transport.cc: packets, container, channels, jitter buffer
void bind_lm(py::module_& m);         // bind_lm.cc: SpringLM inference engine
void bind_rvq(py::module_& m);        // bind_rvq.cc: residual-VQ token search
void bind_codec(py::module_& m);      // bind_codec.cc: streaming codec encoder / decoder steps

[[noreturn]] void throw_status(const Status& status) {
  const char* cls = "SoundspringError";
  switch (status.code()) {
    case StatusCode::kInvalidArgument: cls = "ConfigError"; break;
    case StatusCode::kCorrupt: cls = "BitstreamError"; break;
    case StatusCode::kTruncated: cls = "TruncatedError"; break;
    case StatusCode::kUnsupportedVersion: cls = "UnsupportedVersionError"; break;
    case StatusCode::kIntegrity: cls = "IntegrityError"; break;
    case StatusCode::kDevice: cls = "DeviceError"; break;
    case StatusCode::kBufferTooSmall:
    case StatusCode::kOk: break;
  }
  py::object exc = py::module_::import("soundspring.errors").attr(cls);
  PyErr_SetString(exc.ptr(), status.message().c_str());
  throw py::error_already_set();
}

lm::TensorMap tensor_map(const py::dict& weights, std::vector<py::array_t<float>>* keep) {
  lm::TensorMap map;
  for (const auto& item : weights) {
    if (!py::isinstance<py::str>(item.first)) throw py::type_error("weights keys must be str");
    const std::string name = py::cast<std::string>(item.first);
    const std::string label = "weights['" + name + "']";
    if (!py::isinstance<py::array>(item.second)) {
      throw py::type_error(label + " must be a float32 numpy array");
    }
    auto arr = py::reinterpret_borrow<py::array>(item.second);
    auto f = require_array<float>(item.second, label.c_str(), static_cast<int>(arr.ndim()), "float32");
    lm::TensorRef ref;
    ref.data = f.data();
    for (py::ssize_t i = 0; i < f.ndim(); ++i) ref.shape.push_back(static_cast<int64_t>(f.shape(i)));
    map[name] = ref;
    keep->push_back(f);
  }
  return map;
}

lm::Isa isa_arg(const std::string& isa) {
  lm::Isa out = lm::Isa::kAuto;
  if (!lm::parse_isa(isa.c_str(), &out)) {
    throw_status(InvalidArgument("isa must be one of 'auto', 'generic', 'sse2', 'avx2', 'avx512', got '" +
                                 isa + "'"));
  }
  return out;
}

py::buffer_info require_bytes(const py::handle& obj, const char* name) {
  if (!PyObject_CheckBuffer(obj.ptr()) || PyUnicode_Check(obj.ptr())) {
    throw py::type_error(std::string(name) + " must be bytes-like (bytes, bytearray, memoryview)");
  }
  py::buffer buf = py::reinterpret_borrow<py::buffer>(obj);
  py::buffer_info info = buf.request();
  if (info.ndim > 1 || info.itemsize != 1 ||
      (info.ndim == 1 && info.strides[0] != 1)) {
    throw py::type_error(std::string(name) + " must be a contiguous buffer of bytes");
  }
  return info;
}

}  // namespace soundspring::bindings

PYBIND11_MODULE(_core, m) {
  namespace sb = soundspring::bindings;
  m.doc() = "SoundSpring C++ core: range coder, CDF quantiser, packets, container, channels.";
#ifdef SOUNDSPRING_VERSION
  m.attr("__version__") = SOUNDSPRING_VERSION;
#endif
  auto coding = m.def_submodule("coding", "Range coder and integer CDFs");
  sb::bind_coding(coding);
  auto transport = m.def_submodule("transport", "Packets, .spring container, loss models, jitter buffer");
  sb::bind_transport(transport);
  auto lm = m.def_submodule("lm", "SpringLM inference engine (deterministic float32)");
  sb::bind_lm(lm);
  auto rvq = m.def_submodule("rvq", "Residual-VQ token search (deterministic float32)");
  sb::bind_rvq(rvq);
  auto codec = m.def_submodule("codec", "Streaming codec encoder and decoder steps (engine kernels)");
  sb::bind_codec(codec);
}
