// A small, strict JSON reader (RFC 8259 values) for C++ programs with no Python: the
// .spring stream header, the export manifest and the flat weights headers
// (core/flat_weights.h) that examples/cpp_receiver reads.
//
// Parse never throws and never reads outside its input: malformed text, nesting deeper
// than kMaxJsonDepth or numbers that do not fit a double give a Status naming the byte
// offset. Strings are returned as UTF-8 (\uXXXX escapes, surrogate pairs included).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace soundspring::json {

inline constexpr int kMaxJsonDepth = 64;

/// One JSON value. Objects keep their members by key (a repeated key keeps the last).
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  bool integral = false;  ///< the number was written without fraction or exponent.
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  bool is_object() const { return kind == Kind::kObject; }
  /// The member `key` of an object, or null when absent (or not an object).
  const JsonValue* find(const std::string& key) const;
};

/// Parses `size` bytes of JSON text into `*out` (the whole text must be one value,
/// surrounded by optional whitespace). Errors: Corrupt naming the offset.
Status ParseJson(const char* text, std::size_t size, JsonValue* out);

/// Typed member access: kInvalidArgument naming `what.key` and the expected type when
/// the member is missing or of another type (integers must be integral and in range).
Status GetString(const JsonValue& obj, const std::string& key, const std::string& what,
                 std::string* out);
Status GetInt(const JsonValue& obj, const std::string& key, const std::string& what,
              std::int64_t lo, std::int64_t hi, std::int64_t* out);
Status GetNumber(const JsonValue& obj, const std::string& key, const std::string& what,
                 double* out);
Status GetBool(const JsonValue& obj, const std::string& key, const std::string& what,
               bool* out);

}  // namespace soundspring::json
