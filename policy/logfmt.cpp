#include "policy/logfmt.h"
#include "policy/ascii.h"

#include <algorithm>
#include <cstdio>

namespace mtasts::policy {

namespace {

constexpr std::string_view kCut = "...";

bool plain(char c) { return c > ' ' && c < 0x7f && c != '"' && c != '=' && c != '\\'; }

}  // namespace

std::string logfmt_value(std::string_view text, std::size_t max_bytes) {
  if (text.empty()) return "-";
  const bool cut = text.size() > max_bytes;
  const std::string_view kept = text.substr(0, max_bytes);
  if (!cut && std::all_of(kept.begin(), kept.end(), plain)) return std::string(kept);
  std::string out = "\"";
  for (const char c : kept) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (is_ascii_printable(c)) {
      out += c;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned char>(c));
      out += hex;
    }
  }
  if (cut) out += kCut;
  return out + '"';
}

std::string printable_ascii(std::string_view text, std::size_t max_bytes) {
  std::string out;
  for (const char c : text.substr(0, max_bytes)) out += is_ascii_printable(c) ? c : '?';
  if (text.size() > max_bytes) out += kCut;
  return out;
}

}  // namespace mtasts::policy
