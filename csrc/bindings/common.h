// Shared helpers of the pybind11 layer: Status -> Python exception, and strict numpy
// argument checks. Bindings accept only C-contiguous arrays of one exact dtype and never
// convert silently; a wrong argument raises TypeError/ValueError naming it and the
// expected form.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/lm_engine.h"
#include "core/lm_kernels.h"
#include "core/status.h"

namespace soundspring::bindings {

namespace py = pybind11;

/// Raises the Python exception of soundspring.errors that corresponds to status.code().
[[noreturn]] void throw_status(const Status& status);

/// Throws if !status.ok().
inline void check(const Status& status) {
  if (!status.ok()) throw_status(status);
}

/// Raises TypeError unless `obj` is a numpy array of dtype T that is C-contiguous,
/// and ValueError unless it has `ndim` dimensions. `form` describes the expected value,
/// for example "int32 [N]".
template <typename T>
py::array_t<T> require_array(const py::handle& obj, const char* name, int ndim, const char* form) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy array " + form + ", got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + " must be a numpy array " + form + ", got dtype " +
                         std::string(py::str(arr.dtype())));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::type_error(std::string(name) + " must be C-contiguous (" + form +
                         "); use numpy.ascontiguousarray");
  }
  if (arr.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must be " + form + ", got " +
                          std::to_string(arr.ndim()) + " dimension(s)");
  }
  return py::reinterpret_borrow<py::array_t<T>>(arr);
}

/// A dict {state-dict name: float32 C-contiguous numpy array} as borrowed tensors; `keep`
/// holds the arrays alive while the map is in use. TypeError for other keys or values.
lm::TensorMap tensor_map(const py::dict& weights, std::vector<py::array_t<float>>* keep);

/// The kernel level named by `isa` ('auto', 'generic', 'sse2', 'avx2', 'avx512'); ConfigError
/// for another name.
lm::Isa isa_arg(const std::string& isa);

/// Reads a bytes-like object (bytes, bytearray, memoryview, contiguous uint8 array)
/// into a borrowed buffer view; raises TypeError otherwise.
py::buffer_info require_bytes(const py::handle& obj, const char* name);

}  // namespace soundspring::bindings
