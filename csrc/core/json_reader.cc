#include "core/json_reader.h"

#include <cmath>
#include <cstdlib>
#include <utility>

namespace soundspring::json {
namespace {

class Parser {
 public:
  Parser(const char* text, std::size_t size) : p_(text), n_(size) {}

  Status Run(JsonValue* out) {
    Status st = Value(out, 0);
    if (!st.ok()) return st;
    SkipSpace();
    if (i_ != n_) return Fail("trailing bytes after the JSON value");
    return Status::Ok();
  }

 private:
  Status Fail(const std::string& what) const {
    return Corrupt("JSON: " + what + " at byte " + std::to_string(i_));
  }
  void SkipSpace() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }
  bool Literal(const char* word) {
    std::size_t k = 0;
    while (word[k] != '\0') {
      if (i_ + k >= n_ || p_[i_ + k] != word[k]) return false;
      ++k;
    }
    i_ += k;
    return true;
  }

  Status Value(JsonValue* out, int depth) {
    if (depth > kMaxJsonDepth) return Fail("nesting deeper than " + std::to_string(kMaxJsonDepth));
    SkipSpace();
    if (i_ >= n_) return Fail("unexpected end of text");
    const char c = p_[i_];
    if (c == '{') return Object(out, depth);
    if (c == '[') return Array(out, depth);
    if (c == '"') {
      out->kind = JsonValue::Kind::kString;
      return String(&out->string);
    }
    if (Literal("true")) {
      out->kind = JsonValue::Kind::kBool;
      out->boolean = true;
      return Status::Ok();
    }
    if (Literal("false")) {
      out->kind = JsonValue::Kind::kBool;
      return Status::Ok();
    }
    if (Literal("null")) {
      out->kind = JsonValue::Kind::kNull;
      return Status::Ok();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return Number(out);
    return Fail("unexpected character");
  }

  Status Object(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kObject;
    ++i_;
    SkipSpace();
    if (i_ < n_ && p_[i_] == '}') {
      ++i_;
      return Status::Ok();
    }
    while (true) {
      SkipSpace();
      if (i_ >= n_ || p_[i_] != '"') return Fail("expected a member name");
      std::string key;
      Status st = String(&key);
      if (!st.ok()) return st;
      SkipSpace();
      if (i_ >= n_ || p_[i_] != ':') return Fail("expected ':'");
      ++i_;
      JsonValue v;
      st = Value(&v, depth + 1);
      if (!st.ok()) return st;
      out->object[key] = std::move(v);
      SkipSpace();
      if (i_ < n_ && p_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < n_ && p_[i_] == '}') {
        ++i_;
        return Status::Ok();
      }
      return Fail("expected ',' or '}'");
    }
  }

  Status Array(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kArray;
    ++i_;
    SkipSpace();
    if (i_ < n_ && p_[i_] == ']') {
      ++i_;
      return Status::Ok();
    }
    while (true) {
      JsonValue v;
      Status st = Value(&v, depth + 1);
      if (!st.ok()) return st;
      out->array.push_back(std::move(v));
      SkipSpace();
      if (i_ < n_ && p_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < n_ && p_[i_] == ']') {
        ++i_;
        return Status::Ok();
      }
      return Fail("expected ',' or ']'");
    }
  }

  static void PutUtf8(std::uint32_t cp, std::string* s) {
    if (cp < 0x80) {
      s->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool Hex4(std::uint32_t* out) {
    if (i_ + 4 > n_) return false;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = p_[i_ + static_cast<std::size_t>(k)];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<std::uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<std::uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<std::uint32_t>(h - 'A' + 10);
      else return false;
    }
    i_ += 4;
    *out = v;
    return true;
  }

  Status String(std::string* out) {
    ++i_;  // opening quote
    while (true) {
      if (i_ >= n_) return Fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(p_[i_]);
      if (c == '"') {
        ++i_;
        return Status::Ok();
      }
      if (c < 0x20) return Fail("control character in a string");
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++i_;
        continue;
      }
      if (++i_ >= n_) return Fail("unterminated escape");
      const char e = p_[i_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!Hex4(&cp)) return Fail("bad \\u escape");
          if (cp >= 0xD800 && cp < 0xDC00) {
            std::uint32_t lo = 0;
            if (i_ + 2 > n_ || p_[i_] != '\\' || p_[i_ + 1] != 'u') return Fail("lone surrogate");
            i_ += 2;
            if (!Hex4(&lo) || lo < 0xDC00 || lo >= 0xE000) return Fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            return Fail("lone surrogate");
          }
          PutUtf8(cp, out);
          break;
        }
        default: return Fail("unknown escape");
      }
    }
  }

  Status Number(JsonValue* out) {
    const std::size_t start = i_;
    bool integral = true;
    if (p_[i_] == '-') ++i_;
    if (i_ >= n_) return Fail("bad number");
    if (p_[i_] == '0') {
      ++i_;
    } else if (p_[i_] >= '1' && p_[i_] <= '9') {
      while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
    } else {
      return Fail("bad number");
    }
    if (i_ < n_ && p_[i_] == '.') {
      integral = false;
      ++i_;
      if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') return Fail("bad fraction");
      while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
    }
    if (i_ < n_ && (p_[i_] == 'e' || p_[i_] == 'E')) {
      integral = false;
      ++i_;
      if (i_ < n_ && (p_[i_] == '+' || p_[i_] == '-')) ++i_;
      if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') return Fail("bad exponent");
      while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
    }
    const std::string text(p_ + start, i_ - start);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(v)) return Fail("number out of range");
    out->kind = JsonValue::Kind::kNumber;
    out->number = v;
    out->integral = integral;
    return Status::Ok();
  }

  const char* p_;
  std::size_t n_;
  std::size_t i_ = 0;
};

Status Missing(const std::string& what, const std::string& key, const char* form) {
  return InvalidArgument(what + " field '" + key + "' must be " + form);
}

}  // namespace

const JsonValue* JsonValue::find(const std::string& key) const {
  if (kind != Kind::kObject) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

Status ParseJson(const char* text, std::size_t size, JsonValue* out) {
  *out = JsonValue();
  if (text == nullptr && size != 0) return InvalidArgument("JSON: null text");
  return Parser(text, size).Run(out);
}

Status GetString(const JsonValue& obj, const std::string& key, const std::string& what,
                 std::string* out) {
  const JsonValue* v = obj.find(key);
  if (v == nullptr || v->kind != JsonValue::Kind::kString) return Missing(what, key, "a string");
  *out = v->string;
  return Status::Ok();
}

Status GetInt(const JsonValue& obj, const std::string& key, const std::string& what,
              std::int64_t lo, std::int64_t hi, std::int64_t* out) {
  const JsonValue* v = obj.find(key);
  const std::string form = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (v == nullptr || v->kind != JsonValue::Kind::kNumber || !v->integral ||
      v->number < static_cast<double>(lo) || v->number > static_cast<double>(hi)) {
    return Missing(what, key, form.c_str());
  }
  *out = static_cast<std::int64_t>(v->number);
  return Status::Ok();
}

Status GetNumber(const JsonValue& obj, const std::string& key, const std::string& what,
                 double* out) {
  const JsonValue* v = obj.find(key);
  if (v == nullptr || v->kind != JsonValue::Kind::kNumber) return Missing(what, key, "a number");
  *out = v->number;
  return Status::Ok();
}

Status GetBool(const JsonValue& obj, const std::string& key, const std::string& what,
               bool* out) {
  const JsonValue* v = obj.find(key);
  if (v == nullptr || v->kind != JsonValue::Kind::kBool) return Missing(what, key, "a boolean");
  *out = v->boolean;
  return Status::Ok();
}

}  // namespace soundspring::json
