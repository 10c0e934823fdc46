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
}
