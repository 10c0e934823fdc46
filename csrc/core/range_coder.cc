#include "core/range_coder.h"

#include <string>

namespace soundspring {
namespace {

constexpr uint32_t kTop = 1u << 24;

Status check_precision(int precision_bits) {
  if (precision_bits < kMinPrecisionBits || precision_bits > kMaxPrecisionBits) {
    return InvalidArgument("precision_bits must be in [1, 16], got " + std::to_string(precision_bits));
  }
  return Status::Ok();
}

inline void prefetch(const uint32_t* p) {
#if defined(__GNUC__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

}  // namespace

void RangeDecoder::prefetch_row(const uint32_t* cdf, int n_symbols) {
  // Levels 0..3 of the binary search over [0, n_symbols]: 15 probe positions.
  for (int level = 1; level <= 8; level *= 2) {
    for (int j = 1; j < 2 * level; j += 2) {
      prefetch(cdf + static_cast<int64_t>(n_symbols) * j / (2 * level));
    }
  }
  prefetch(cdf + n_symbols);
}

// ---------------------------------------------------------------------------- encoder

RangeEncoder::RangeEncoder(uint8_t* out, size_t capacity) : out_(out), capacity_(capacity) {}

size_t RangeEncoder::max_encoded_size(size_t n_symbols, int precision_bits) {
  // Each symbol has frequency >= 1 of 2^p, so it costs at most p bits plus the coder's
  // rounding loss (< 2^-7 bit per symbol with range >= 2^24); + termination and carry.
  const size_t bits = n_symbols * static_cast<size_t>(precision_bits > 0 ? precision_bits : 16);
  return bits / 8 + n_symbols / 512 + 8;
}

void RangeEncoder::fail(Status s) {
  if (status_.ok()) status_ = std::move(s);
}

void RangeEncoder::put_byte(uint8_t b) {
  if (out_pos_ < capacity_) {
    out_[out_pos_] = b;
  } else if (status_.ok()) {
    status_ = BufferTooSmall("range coder output buffer of " + std::to_string(capacity_) +
                             " bytes is too small");
  }
  ++out_pos_;
}

void RangeEncoder::shift_low() {
  if (low_ < 0xFF000000ull || low_ >= (1ull << 32)) {
    const auto carry = static_cast<uint8_t>(low_ >> 32);
    if (has_cache_) put_byte(static_cast<uint8_t>(cache_ + carry));
    for (; pending_ff_ > 0; --pending_ff_) put_byte(static_cast<uint8_t>(0xFFu + carry));
    cache_ = static_cast<uint8_t>((low_ >> 24) & 0xFFu);
    has_cache_ = true;
  } else {
    ++pending_ff_;
  }
  low_ = (low_ << 8) & 0xFFFFFFFFull;
}

void RangeEncoder::encode(int32_t symbol, const uint32_t* cdf, int n_symbols, int precision_bits) {
  if (!status_.ok() && status_.code() != StatusCode::kBufferTooSmall) return;
  if (finished_) {
    fail(InvalidArgument("encode() called after finish()"));
    return;
  }
  if (precision_bits < kMinPrecisionBits || precision_bits > kMaxPrecisionBits) {
    fail(check_precision(precision_bits));
    return;
  }
  if (symbol < 0 || symbol >= n_symbols) {
    fail(InvalidArgument("symbol " + std::to_string(symbol) + " is outside [0, " +
                         std::to_string(n_symbols) + ")"));
    return;
  }
  const uint32_t total = 1u << precision_bits;
  const uint32_t start = cdf[symbol];
  const uint32_t end = cdf[symbol + 1];
  if (cdf[n_symbols] != total || end <= start || end > total) {
    fail(InvalidArgument("cdf row of symbol " + std::to_string(symbol) +
                         " must be non-decreasing with total 2^precision_bits and a non-zero "
                         "frequency for the coded symbol"));
    return;
  }
  const uint32_t r = range_ >> precision_bits;
  low_ += static_cast<uint64_t>(r) * start;
  range_ = r * (end - start);
  while (range_ < kTop) {
    range_ <<= 8;
    shift_low();
  }
}

Status RangeEncoder::finish() {
  if (finished_) return status_;
  if (!status_.ok() && status_.code() != StatusCode::kBufferTooSmall) return status_;
  // Pick the value in [low, low + range) with the most trailing zero bytes: a multiple of
  // 2^(32 - 8 * nb) for the smallest nb in 0..4 that fits (range >= 2^24 guarantees nb <= 1
  // except for the untouched initial state, where nb = 0 fits too).
  const uint64_t hi = low_ + range_;  // exclusive
  int nb = 0;
  for (; nb < 4; ++nb) {
    const uint64_t step = 1ull << (32 - 8 * nb);
    const uint64_t v = (low_ + step - 1) & ~(step - 1);
    if (v < hi) {
      low_ = v;
      break;
    }
  }
  for (int i = 0; i < nb; ++i) shift_low();
  // Flush the cached byte and the pending 0xFF run with the final carry.
  const auto carry = static_cast<uint8_t>(low_ >> 32);
  if (has_cache_) put_byte(static_cast<uint8_t>(cache_ + carry));
  for (; pending_ff_ > 0; --pending_ff_) put_byte(static_cast<uint8_t>(0xFFu + carry));
  has_cache_ = false;
  // Strip trailing zeros: the decoder reads zeros past the end.
  size_t n = out_pos_;
  if (status_.ok()) {
    while (n > 0 && out_[n - 1] == 0) --n;
  }
  final_size_ = n;
  finished_ = true;
  return status_;
}

// ---------------------------------------------------------------------------- decoder

RangeDecoder::RangeDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {
  for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | next_byte();
}

void RangeDecoder::fail(Status s) {
  if (status_.ok()) status_ = std::move(s);
}

int32_t RangeDecoder::decode(const uint32_t* cdf, int n_symbols, int precision_bits) {
  if (!status_.ok()) return 0;
  if (precision_bits < kMinPrecisionBits || precision_bits > kMaxPrecisionBits) {
    fail(check_precision(precision_bits));
    return 0;
  }
  if (n_symbols < 1) {
    fail(InvalidArgument("a CDF row needs at least one symbol"));
    return 0;
  }
  const uint32_t total = 1u << precision_bits;
  if (cdf[n_symbols] != total) {
    fail(InvalidArgument("cdf rows must end at 2^precision_bits = " + std::to_string(total)));
    return 0;
  }
  const uint32_t r = range_ >> precision_bits;
  const uint32_t value = code_ / r;
  if (value >= total) {
    fail(Corrupt("range-coded data is corrupt: decoded value outside the CDF"));
    return 0;
  }
  // Largest s with cdf[s] <= value (binary search over [0, n_symbols)).
  int lo = 0;
  int hi = n_symbols;  // cdf[hi] = total > value
  while (hi - lo > 64) {
    const int mid = lo + (hi - lo) / 2;
    if (cdf[mid] <= value) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  // The last <= 64 entries span at most 5 cache lines: request them all at once so their
  // misses overlap instead of following one another.
  for (int i = lo; i <= hi; i += 16) prefetch(cdf + i);
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    if (cdf[mid] <= value) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const uint32_t start = cdf[lo];
  const uint32_t end = cdf[lo + 1];
  if (!(start <= value && value < end)) {
    fail(InvalidArgument("cdf row must be non-decreasing from cdf[0] <= value"));
    return 0;
  }
  code_ -= r * start;
  range_ = r * (end - start);
  while (range_ < kTop) {
    code_ = (code_ << 8) | next_byte();
    range_ <<= 8;
  }
  return lo;
}

// ---------------------------------------------------------------------------- batch

Status encode_symbols(const int32_t* symbols, size_t n, const uint32_t* cdfs, int n_symbols,
                      int precision_bits, uint8_t* out, size_t capacity, size_t* out_size) {
  Status st = check_precision(precision_bits);
  if (!st.ok()) return st;
  RangeEncoder enc(out, capacity);
  const size_t stride = static_cast<size_t>(n_symbols) + 1;
  for (size_t i = 0; i < n && !enc.failed(); ++i) {
    enc.encode(symbols[i], cdfs + i * stride, n_symbols, precision_bits);
  }
  st = enc.finish();
  *out_size = enc.bytes_written();
  return st;
}

Status decode_symbols(const uint8_t* data, size_t size, const uint32_t* cdfs, size_t n,
                      int n_symbols, int precision_bits, int32_t* symbols) {
  Status st = check_precision(precision_bits);
  if (!st.ok()) return st;
  RangeDecoder dec(data, size);
  const size_t stride = static_cast<size_t>(n_symbols) + 1;
  for (size_t i = 0; i < n; ++i) {
    if (i + 1 < n) RangeDecoder::prefetch_row(cdfs + (i + 1) * stride, n_symbols);
    symbols[i] = dec.decode(cdfs + i * stride, n_symbols, precision_bits);
    if (dec.failed()) return dec.status();
  }
  return Status::Ok();
}

}  // namespace soundspring
