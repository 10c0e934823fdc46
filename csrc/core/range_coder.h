// 32-bit range coder over caller-owned buffers (Subbotin / LZMA style, carry-propagating).
//
// Model interface: every symbol is coded with an integer CDF of `precision_bits`
// (1..16) bits: cdf[0..V], cdf[s] <= cdf[s + 1], cdf[V] == 1 << precision_bits; symbol s
// has frequency cdf[s + 1] - cdf[s], which must be >= 1 for every symbol that is coded.
//
// Bitstream (normative; mirrored by python/soundspring/coding/reference.py):
//   state: low (33 bits, bit 32 = pending carry), range (32 bits), initially 0 and 2^32 - 1.
//   encode s:  r = range >> precision_bits; low += r * cdf[s]; range = r * freq(s);
//              while range < 2^24: shift one byte out of low, range <<= 8.
//   The first byte shifted out is always 0 and is not written. Carries propagate into
//   bytes already shifted out but not yet written (one cached byte + a run of 0xFF).
//   termination: choose the value in [low, low + range) with the most trailing zero bits
//   among 32, 24, 16, 8, 0 (the largest aligned step that fits), emit only the bytes of
//   that value that are needed, then strip every trailing 0x00 byte of the whole output.
//   The decoder reads 0x00 past the end of its input, so stripped bytes cost nothing.
//   Termination therefore costs at most one byte beyond the information content; an
//   empty symbol sequence codes to zero bytes.
//
// The coder state never spans a packet: one Encoder/Decoder per packet.
// Errors are sticky: after the first error every call is a no-op and status() says why.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace soundspring {

inline constexpr int kMinPrecisionBits = 1;
inline constexpr int kMaxPrecisionBits = 16;

/// Range encoder writing into a caller-owned buffer.
class RangeEncoder {
 public:
  /// `out` must stay valid for the encoder's lifetime; `capacity` >= 0 bytes.
  /// Writing past `capacity` sets kBufferTooSmall (bytes_written() then counts what
  /// would have been needed so the caller can retry with a bigger buffer).
  RangeEncoder(uint8_t* out, size_t capacity);

  /// Moves the encoder to a new output buffer (to grow it). Precondition: `out` holds a
  /// copy of the first min(bytes_written(), capacity) bytes of the previous buffer.
  void set_buffer(uint8_t* out, size_t capacity) {
    out_ = out;
    capacity_ = capacity;
  }

  /// Codes symbol `symbol` in [0, n_symbols) with CDF row `cdf` of n_symbols + 1 entries
  /// and total 1 << precision_bits (precision_bits in [1, 16]). A zero-frequency symbol,
  /// an out-of-range symbol or a wrong CDF total sets kInvalidArgument.
  void encode(int32_t symbol, const uint32_t* cdf, int n_symbols, int precision_bits);

  /// Terminates the stream (minimal termination, see header comment). Idempotent.
  /// Returns the final status; on success, bytes_written() is the stream length.
  Status finish();

  /// Bytes produced so far (after finish(): the whole stream, trailing zeros stripped).
  size_t bytes_written() const { return finished_ ? final_size_ : out_pos_; }
  const Status& status() const { return status_; }
  bool failed() const { return !status_.ok(); }
  /// A conservative upper bound on the encoded size of a stream of `n_symbols` symbols
  /// of `precision_bits` each: ceil(n * precision / 8) + 8 bytes.
  static size_t max_encoded_size(size_t n_symbols, int precision_bits);

 private:
  void shift_low();
  void put_byte(uint8_t b);
  void fail(Status s);

  uint8_t* out_;
  size_t capacity_;
  size_t out_pos_ = 0;
  uint64_t low_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  uint8_t cache_ = 0;
  bool has_cache_ = false;  // false until the (virtual, always zero) first byte is gone
  uint64_t pending_ff_ = 0;
  bool finished_ = false;
  size_t final_size_ = 0;
  Status status_;
};

/// Range decoder over a caller-owned buffer. Reads 0x00 past the end of the input.
class RangeDecoder {
 public:
  RangeDecoder(const uint8_t* data, size_t size);

  /// Decodes one symbol with CDF row `cdf` (same contract as RangeEncoder::encode).
  /// Returns the symbol, or 0 once the sticky error is set (kCorrupt when the bytes cannot
  /// come from an encoder using these CDFs, kInvalidArgument for a bad CDF/precision).
  int32_t decode(const uint32_t* cdf, int n_symbols, int precision_bits);

  /// Hints the memory system to load the cache lines of `cdf` that a decode() of it reads
  /// first (the top levels of its binary search). Call it one row ahead when decoding
  /// rows that are not in cache; it never changes results.
  static void prefetch_row(const uint32_t* cdf, int n_symbols);

  const Status& status() const { return status_; }
  bool failed() const { return !status_.ok(); }
  /// Number of input bytes consumed, including the zero padding read past the end.
  size_t bytes_read() const { return pos_; }

 private:
  uint8_t next_byte() { return pos_ < size_ ? data_[pos_++] : (++pos_, uint8_t{0}); }
  void fail(Status s);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint32_t code_ = 0;   // value - low, always < range_ for a valid stream
  uint32_t range_ = 0xFFFFFFFFu;
  Status status_;
};

/// Encodes n symbols, symbol i with CDF row cdfs[i * (n_symbols + 1) ...]; writes at most
/// `capacity` bytes to `out` and stores the stream length in *out_size.
Status encode_symbols(const int32_t* symbols, size_t n, const uint32_t* cdfs, int n_symbols,
                      int precision_bits, uint8_t* out, size_t capacity, size_t* out_size);

/// Decodes n symbols from `data` into `symbols` (same CDF layout as encode_symbols).
Status decode_symbols(const uint8_t* data, size_t size, const uint32_t* cdfs, size_t n,
                      int n_symbols, int precision_bits, int32_t* symbols);

}  // namespace soundspring
