// pybind11 mirror of csrc/core/rvq_search.h (module soundspring._core.rvq): the residual-VQ
// token search over packed codebooks.
//
// Arrays are exact-dtype C-contiguous numpy arrays (float32 codebooks, residuals and bit
// costs); the residual is updated in place (it carries the search from one layer of levels
// to the next), the codes are allocated here, the GIL is released around every search, and
// every core Status becomes the exception of soundspring.errors (kInvalidArgument:
// ConfigError). python/soundspring/models/rvq.py and rd.py are its callers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <memory>
#include <string>

#include "bindings/common.h"
#include "core/rvq_search.h"

namespace soundspring::bindings {
namespace {

class PyCodebooks {
 public:
  PyCodebooks(const py::handle& codebooks_obj, const std::string& isa, int num_threads,
              const std::string& storage) {
    auto cb = require_array<float>(codebooks_obj, "codebooks", 3, "float32 [K, V, D]");
    for (int axis = 0; axis < 3; ++axis) {
      if (cb.shape(axis) > (int64_t{1} << 30)) throw_status(InvalidArgument("codebooks is too large"));
    }
    rvq::SearchOptions options;
    options.isa = isa_arg(isa);
    if (!rvq::parse_storage(storage.c_str(), &options.storage)) {
      throw_status(InvalidArgument("storage must be one of 'auto', 'fp32', 'fp16', got '" +
                                   storage + "'"));
    }
    options.num_threads = num_threads;
    const float* p = cb.data();
    const int k = static_cast<int>(cb.shape(0)), v = static_cast<int>(cb.shape(1)),
              d = static_cast<int>(cb.shape(2));
    Status st;
    {
      py::gil_scoped_release release;
      st = rvq::Codebooks::Create(p, k, v, d, options, &impl_);
    }
    check(st);
  }

  const rvq::Codebooks& impl() const { return *impl_; }

  py::array_t<int64_t> search(const py::handle& residual_obj, int lo, int hi,
                              const py::handle& bits_obj, double rd_lambda) const {
    auto r = require_array<float>(residual_obj, "residual", 2, "float32 [N, D]");
    if (!r.writeable()) throw py::value_error("residual must be writable (it is updated in place)");
    const int64_t rows = static_cast<int64_t>(r.shape(0));
    if (r.shape(1) != impl_->dim()) {
      throw_status(InvalidArgument("residual must be float32 [N, D=" + std::to_string(impl_->dim()) +
                                   "], got D=" + std::to_string(r.shape(1))));
    }
    if (!std::isfinite(rd_lambda) || rd_lambda < 0.0 || rd_lambda > 3.0e38) {
      throw_status(InvalidArgument("rd_lambda must be finite and >= 0, got " + std::to_string(rd_lambda)));
    }
    if (lo < 0 || hi > impl_->n_codebooks() || lo >= hi) {
      throw_status(InvalidArgument("levels must satisfy 0 <= lo < hi <= " +
                                   std::to_string(impl_->n_codebooks()) + ", got lo=" +
                                   std::to_string(lo) + " hi=" + std::to_string(hi)));
    }
    const float* bits = nullptr;
    int64_t width = impl_->codebook_size();
    py::array_t<float> bits_arr;
    if (!bits_obj.is_none()) {
      bits_arr = require_array<float>(bits_obj, "bits", 3, "float32 [N, L, V']");
      if (bits_arr.shape(0) != rows || bits_arr.shape(1) != hi - lo ||
          bits_arr.shape(2) < impl_->codebook_size()) {
        throw_status(InvalidArgument(
            "bits must be float32 [N=" + std::to_string(rows) + ", L=" + std::to_string(hi - lo) +
            ", V' >= " + std::to_string(impl_->codebook_size()) + "], got [" +
            std::to_string(bits_arr.shape(0)) + ", " + std::to_string(bits_arr.shape(1)) + ", " +
            std::to_string(bits_arr.shape(2)) + "]"));
      }
      bits = bits_arr.data();
      width = static_cast<int64_t>(bits_arr.shape(2));
    }
    py::array_t<int64_t> codes({static_cast<py::ssize_t>(hi - lo), static_cast<py::ssize_t>(rows)});
    float* rp = r.mutable_data();
    int64_t* cp = codes.mutable_data();
    const float lambda = static_cast<float>(rd_lambda);
    Status st;
    {
      py::gil_scoped_release release;
      st = impl_->Search(rp, rows, lo, hi, bits, width, lambda, cp);
    }
    check(st);
    return codes;
  }

 private:
  std::unique_ptr<rvq::Codebooks> impl_;
};

}  // namespace

void bind_rvq(py::module_& m) {
  py::class_<PyCodebooks>(m, "Codebooks", R"doc(
A codebook stack float32 [K, V, D] packed for the greedy residual search (csrc/core/rvq_search.h).

Per level k of [lo, hi) and row n: idx = the lowest v minimising ||c_v||^2 - 2 r_n . c_v
(+ rd_lambda * bits[n, k - lo, v]), then r_n -= c_idx. Deterministic float32: the same
bits for every isa, num_threads and storage. storage 'auto' holds the codebooks as binary16
when that is lossless and the isa widens exactly (avx2, avx512), float32 otherwise.
)doc")
      .def(py::init<const py::handle&, const std::string&, int, const std::string&>(),
           py::arg("codebooks"), py::arg("isa") = "auto", py::arg("num_threads") = 1,
           py::arg("storage") = "auto")
      .def("search", &PyCodebooks::search, py::arg("residual"), py::arg("lo"), py::arg("hi"),
           py::arg("bits") = py::none(), py::arg("rd_lambda") = 0.0,
           "Codes int64 [hi - lo, N] of levels [lo, hi) for residual float32 [N, D] (updated in "
           "place to the residual left after level hi - 1); bits float32 [N, hi - lo, V' >= V] or "
           "None, read only when rd_lambda > 0.")
      .def_property_readonly("n_codebooks", [](const PyCodebooks& c) { return c.impl().n_codebooks(); })
      .def_property_readonly("codebook_size", [](const PyCodebooks& c) { return c.impl().codebook_size(); })
      .def_property_readonly("dim", [](const PyCodebooks& c) { return c.impl().dim(); })
      .def_property_readonly("num_threads", [](const PyCodebooks& c) { return c.impl().num_threads(); })
      .def_property_readonly("isa", [](const PyCodebooks& c) { return std::string(lm::isa_name(c.impl().isa())); })
      .def_property_readonly("storage",
                             [](const PyCodebooks& c) { return std::string(rvq::storage_name(c.impl().storage())); })
      .def_property_readonly("level_bytes", [](const PyCodebooks& c) { return c.impl().level_bytes(); },
                             "Bytes of packed weights one level's search reads.");
}

}  // namespace soundspring::bindings
