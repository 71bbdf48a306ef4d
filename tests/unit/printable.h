// Test helper: untrusted bytes shown printably (\xHH for anything outside
// printable ASCII), so a failing table row names its input readably.
#pragma once

#include <string>

namespace mtasts::testing {

inline std::string printable(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

}  // namespace mtasts::testing
