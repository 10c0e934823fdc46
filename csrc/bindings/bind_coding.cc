// pybind11 mirror of csrc/core/range_coder.h and csrc/core/cdf.h (module soundspring._core.coding).
// Arrays are taken as exact-dtype C-contiguous numpy arrays; the GIL is released around
// every loop over symbols and re-acquired before any Python object is built.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/cdf.h"
#include "core/range_coder.h"

namespace soundspring::bindings {
namespace {

void check_precision_arg(int precision_bits) {
  if (precision_bits < kMinPrecisionBits || precision_bits > kMaxPrecisionBits) {
    throw_status(InvalidArgument("precision_bits must be an int in [1, 16], got " +
                                 std::to_string(precision_bits)));
  }
}

struct Symbols {
  py::array_t<int32_t> arr;
  size_t n;
};

Symbols get_symbols(const py::handle& obj) {
  auto arr = require_array<int32_t>(obj, "symbols", 1, "int32 [N]");
  return {arr, static_cast<size_t>(arr.shape(0))};
}

// cdfs: uint32 [N, V+1] with V >= 1; returns V.
int get_cdfs(const py::array_t<uint32_t>& cdfs, size_t n_rows) {
  if (static_cast<size_t>(cdfs.shape(0)) != n_rows || cdfs.shape(1) < 2) {
    throw py::value_error("cdfs must be uint32 [N, V+1] with N = " + std::to_string(n_rows) +
                          " rows and V >= 1, got shape [" + std::to_string(cdfs.shape(0)) + ", " +
                          std::to_string(cdfs.shape(1)) + "]");
  }
  if (cdfs.shape(1) - 1 > (1 << 16)) throw py::value_error("cdfs: V must be <= 65536");
  return static_cast<int>(cdfs.shape(1) - 1);
}

int get_logits(const py::array_t<float>& logits, size_t n_rows) {
  if (static_cast<size_t>(logits.shape(0)) != n_rows || logits.shape(1) < 1) {
    throw py::value_error("logits must be float32 [N, V] with N = " + std::to_string(n_rows) +
                          " rows and V >= 1, got shape [" + std::to_string(logits.shape(0)) +
                          ", " + std::to_string(logits.shape(1)) + "]");
  }
  if (logits.shape(1) > (1 << 16)) throw py::value_error("logits: V must be <= 65536");
  return static_cast<int>(logits.shape(1));
}

// Incremental encoder over a growing buffer owned by this object.
class PyEncoder {
 public:
  explicit PyEncoder(int precision_bits) : precision_bits_(precision_bits), enc_(nullptr, 0) {
    check_precision_arg(precision_bits);
  }

  void encode(const py::handle& symbols_obj, const py::handle& cdfs_obj) {
    refuse_after_finish();
    Symbols s = get_symbols(symbols_obj);
    auto cdfs = require_array<uint32_t>(cdfs_obj, "cdfs", 2, "uint32 [N, V+1]");
    const int v = get_cdfs(cdfs, s.n);
    reserve(s.n);
    {
      py::gil_scoped_release release;
      const int32_t* sym = s.arr.data();
      const uint32_t* c = cdfs.data();
      const size_t stride = static_cast<size_t>(v) + 1;
      for (size_t i = 0; i < s.n && !enc_.failed(); ++i) {
        enc_.encode(sym[i], c + i * stride, v, precision_bits_);
      }
    }
    check(enc_.status());
  }

  void encode_logits(const py::handle& symbols_obj, const py::handle& logits_obj) {
    refuse_after_finish();
    Symbols s = get_symbols(symbols_obj);
    auto logits = require_array<float>(logits_obj, "logits", 2, "float32 [N, V]");
    const int v = get_logits(logits, s.n);
    if (v > (1 << precision_bits_)) {
      throw_status(InvalidArgument("V = " + std::to_string(v) + " exceeds 2^precision_bits"));
    }
    reserve(s.n);
    Status st;
    {
      py::gil_scoped_release release;
      std::vector<double> scratch(static_cast<size_t>(v));
      std::vector<uint32_t> cdf(static_cast<size_t>(v) + 1);
      const float* lg = logits.data();
      const int32_t* sym = s.arr.data();
      for (size_t i = 0; i < s.n && st.ok() && !enc_.failed(); ++i) {
        st = cdf_row_from_logits(lg + i * static_cast<size_t>(v), v, precision_bits_,
                                 scratch.data(), cdf.data());
        if (st.ok()) enc_.encode(sym[i], cdf.data(), v, precision_bits_);
      }
    }
    check(st);
    check(enc_.status());
  }

  // Idempotent: every later call returns the same bytes (or raises the same error), and a
  // refused encode() after it leaves the finished stream untouched.
  py::bytes finish() {
    check(enc_.finish());
    finished_ = true;
    return py::bytes(reinterpret_cast<const char*>(buf_.data()), enc_.bytes_written());
  }

  size_t bytes_written() const { return enc_.bytes_written(); }
  int precision_bits() const { return precision_bits_; }

 private:
  void refuse_after_finish() const {
    if (finished_) throw_status(InvalidArgument("encode() called after finish()"));
  }

  void reserve(size_t n_symbols) {
    const size_t need = enc_.bytes_written() +
                        RangeEncoder::max_encoded_size(n_symbols, precision_bits_);
    if (need > buf_.size()) {
      buf_.resize(std::max(need, buf_.size() * 2));
      enc_.set_buffer(buf_.data(), buf_.size());
    }
  }

  int precision_bits_;
  bool finished_ = false;
  std::vector<uint8_t> buf_;
  RangeEncoder enc_;
};

// Incremental decoder over its own copy of the bytes.
class PyDecoder {
 public:
  PyDecoder(const py::handle& data_obj, int precision_bits)
      : precision_bits_(precision_bits), data_(copy_bytes(data_obj)),
        dec_(reinterpret_cast<const uint8_t*>(data_.data()), data_.size()) {
    check_precision_arg(precision_bits);
  }

  py::array_t<int32_t> decode(const py::handle& cdfs_obj) {
    auto cdfs = require_array<uint32_t>(cdfs_obj, "cdfs", 2, "uint32 [N, V+1]");
    const size_t n = static_cast<size_t>(cdfs.shape(0));
    const int v = get_cdfs(cdfs, n);
    py::array_t<int32_t> out(static_cast<py::ssize_t>(n));
    {
      py::gil_scoped_release release;
      int32_t* o = out.mutable_data();
      const uint32_t* c = cdfs.data();
      const size_t stride = static_cast<size_t>(v) + 1;
      for (size_t i = 0; i < n && !dec_.failed(); ++i) {
        if (i + 1 < n) RangeDecoder::prefetch_row(c + (i + 1) * stride, v);
        o[i] = dec_.decode(c + i * stride, v, precision_bits_);
      }
    }
    check(dec_.status());
    return out;
  }

  py::array_t<int32_t> decode_logits(const py::handle& logits_obj) {
    auto logits = require_array<float>(logits_obj, "logits", 2, "float32 [N, V]");
    const size_t n = static_cast<size_t>(logits.shape(0));
    const int v = get_logits(logits, n);
    if (v > (1 << precision_bits_)) {
      throw_status(InvalidArgument("V = " + std::to_string(v) + " exceeds 2^precision_bits"));
    }
    py::array_t<int32_t> out(static_cast<py::ssize_t>(n));
    Status st;
    {
      py::gil_scoped_release release;
      std::vector<double> scratch(static_cast<size_t>(v));
      std::vector<uint32_t> cdf(static_cast<size_t>(v) + 1);
      int32_t* o = out.mutable_data();
      const float* lg = logits.data();
      for (size_t i = 0; i < n && st.ok() && !dec_.failed(); ++i) {
        st = cdf_row_from_logits(lg + i * static_cast<size_t>(v), v, precision_bits_,
                                 scratch.data(), cdf.data());
        if (st.ok()) o[i] = dec_.decode(cdf.data(), v, precision_bits_);
      }
    }
    check(st);
    check(dec_.status());
    return out;
  }

  size_t bytes_read() const { return dec_.bytes_read(); }
  int precision_bits() const { return precision_bits_; }

 private:
  static std::string copy_bytes(const py::handle& obj) {
    py::buffer_info info = require_bytes(obj, "data");
    return std::string(static_cast<const char*>(info.ptr), static_cast<size_t>(info.size));
  }

  int precision_bits_;
  std::string data_;
  RangeDecoder dec_;
};

}  // namespace

void bind_coding(py::module_& m) {
  m.attr("MIN_PRECISION_BITS") = kMinPrecisionBits;
  m.attr("MAX_PRECISION_BITS") = kMaxPrecisionBits;

  m.def(
      "encode",
      [](const py::handle& symbols_obj, const py::handle& cdfs_obj, int precision_bits) {
        PyEncoder enc(precision_bits);
        enc.encode(symbols_obj, cdfs_obj);
        return enc.finish();
      },
      py::arg("symbols"), py::arg("cdfs"), py::arg("precision_bits") = 16);

  m.def(
      "decode",
      [](const py::handle& data_obj, const py::handle& cdfs_obj, int precision_bits) {
        PyDecoder dec(data_obj, precision_bits);
        return dec.decode(cdfs_obj);
      },
      py::arg("data"), py::arg("cdfs"), py::arg("precision_bits") = 16);

  m.def(
      "encode_logits",
      [](const py::handle& symbols_obj, const py::handle& logits_obj, int precision_bits) {
        PyEncoder enc(precision_bits);
        enc.encode_logits(symbols_obj, logits_obj);
        return enc.finish();
      },
      py::arg("symbols"), py::arg("logits"), py::arg("precision_bits") = 16);

  m.def(
      "decode_logits",
      [](const py::handle& data_obj, const py::handle& logits_obj, int precision_bits) {
        PyDecoder dec(data_obj, precision_bits);
        return dec.decode_logits(logits_obj);
      },
      py::arg("data"), py::arg("logits"), py::arg("precision_bits") = 16);

  m.def(
      "cdf_from_logits",
      [](const py::handle& logits_obj, int precision_bits) {
        check_precision_arg(precision_bits);
        auto logits = require_array<float>(logits_obj, "logits", 2, "float32 [N, V]");
        const size_t n = static_cast<size_t>(logits.shape(0));
        const int v = get_logits(logits, n);
        py::array_t<uint32_t> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(v) + 1});
        Status st;
        {
          py::gil_scoped_release release;
          st = cdf_from_logits(logits.data(), n, v, precision_bits, out.mutable_data());
        }
        check(st);
        return out;
      },
      py::arg("logits"), py::arg("precision_bits") = 16);

  m.def(
      "validate_cdfs",
      [](const py::handle& cdfs_obj, int precision_bits) {
        check_precision_arg(precision_bits);
        auto cdfs = require_array<uint32_t>(cdfs_obj, "cdfs", 2, "uint32 [N, V+1]");
        const size_t n = static_cast<size_t>(cdfs.shape(0));
        const int v = get_cdfs(cdfs, n);
        Status st;
        {
          py::gil_scoped_release release;
          st = validate_cdfs(cdfs.data(), n, v, precision_bits);
        }
        check(st);
      },
      py::arg("cdfs"), py::arg("precision_bits") = 16);

  m.def(
      "det_exp",
      [](const py::handle& x_obj) {
        auto x = require_array<double>(x_obj, "x", 1, "float64 [N]");
        py::array_t<double> out(x.shape(0));
        for (py::ssize_t i = 0; i < x.shape(0); ++i) out.mutable_data()[i] = det_exp(x.data()[i]);
        return out;
      },
      py::arg("x"));

  py::class_<PyEncoder>(m, "Encoder")
      .def(py::init<int>(), py::arg("precision_bits") = 16)
      .def("encode", &PyEncoder::encode, py::arg("symbols"), py::arg("cdfs"))
      .def("encode_logits", &PyEncoder::encode_logits, py::arg("symbols"), py::arg("logits"))
      .def("finish", &PyEncoder::finish)
      .def_property_readonly("bytes_written", &PyEncoder::bytes_written)
      .def_property_readonly("precision_bits", &PyEncoder::precision_bits);

  py::class_<PyDecoder>(m, "Decoder")
      .def(py::init<const py::handle&, int>(), py::arg("data"), py::arg("precision_bits") = 16)
      .def("decode", &PyDecoder::decode, py::arg("cdfs"))
      .def("decode_logits", &PyDecoder::decode_logits, py::arg("logits"))
      .def_property_readonly("bytes_read", &PyDecoder::bytes_read)
      .def_property_readonly("precision_bits", &PyDecoder::precision_bits);
}

}  // namespace soundspring::bindings
