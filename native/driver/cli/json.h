// A minimal streaming JSON writer for the driver's output (objects, arrays, strings, numbers).
#pragma once

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

namespace nydus::driver {

class Json {
 public:
  Json& BeginObject() { return Open('{'); }
  Json& EndObject() { return Close('}'); }
  Json& BeginArray() { return Open('['); }
  Json& EndArray() { return Close(']'); }
  Json& Key(const std::string& k) {
    Comma();
    Quote(k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  Json& Str(const std::string& v) {
    Comma();
    Quote(v);
    return *this;
  }
  Json& U64(uint64_t v) { return Raw(std::to_string(v)); }
  Json& I64(int64_t v) { return Raw(std::to_string(v)); }
  Json& Bool(bool v) { return Raw(v ? "true" : "false"); }
  Json& Null() { return Raw("null"); }
  Json& Num(double v) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.6g", v);
    return Raw(b);
  }
  Json& Hex(uint64_t v) {
    char b[32];
    std::snprintf(b, sizeof(b), "0x%" PRIx64, v);
    return Str(b);
  }
  // Helpers for "key": value.
  Json& Field(const std::string& k, const std::string& v) { return Key(k).Str(v); }
  Json& Field(const std::string& k, const char* v) { return Key(k).Str(v); }
  Json& Field(const std::string& k, uint64_t v) { return Key(k).U64(v); }
  Json& Field(const std::string& k, int64_t v) { return Key(k).I64(v); }
  Json& Field(const std::string& k, int v) { return Key(k).I64(v); }
  Json& Field(const std::string& k, uint32_t v) { return Key(k).U64(v); }
  Json& Field(const std::string& k, bool v) { return Key(k).Bool(v); }
  Json& Field(const std::string& k, double v) { return Key(k).Num(v); }

  const std::string& str() const { return out_; }

 private:
  Json& Raw(const std::string& s) {
    Comma();
    out_ += s;
    return *this;
  }
  Json& Open(char c) {
    Comma();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  Json& Close(char c) {
    out_ += c;
    first_.pop_back();
    return *this;
  }
  void Comma() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void Quote(const std::string& s) {
    out_ += '"';
    for (unsigned char c : s) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            // Control bytes are escaped; bytes >= 0x80 pass through, so UTF-8 names stay
            // UTF-8 (names that are not UTF-8 are passed as they are).
            char b[8];
            std::snprintf(b, sizeof(b), "\\u%04x", c);
            out_ += b;
          } else {
            out_ += static_cast<char>(c);
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace nydus::driver
