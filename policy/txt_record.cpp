// The `_mta-sts` TXT record, RFC 8461 §3.1, parsed by its ABNF exactly:
//   sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
//   sts-field       = sts-id / sts-extension
//   sts-sep         = *WSP ";" *WSP            (WSP = SP / HTAB, RFC 5234)
// Decisions where the RFC leaves room:
// - Candidates: the record begins with the case-sensitive %s"v=STSv1" and then
//   *WSP ";" (the RFC's "begin with v=STSv1;" widened only by the WSP that
//   sts-sep allows). "v=STSv10;..." and "V=STSV1;..." are not candidates.
// - The ABNF lets "id=<bad value>" parse as an sts-extension named "id". We
//   treat the name "id" as reserved: every field named exactly "id" must be a
//   valid sts-id, otherwise the record is a syntax error (an operator's
//   typo must not be silently skipped). "ID=..." is an extension (%s).
// - At least one sts-id is required ("Note that sts-id record is required").
// - Several valid ids: the ABNF allows them; the first is used, as §3.2 does
//   for repeated policy keys. Rejecting would turn a harmless duplicate into
//   "no policy", a downgrade.
#include "policy/txt_record.h"
#include "policy/ascii.h"

#include <algorithm>
#include <optional>
#include <string>

namespace mtasts::policy {
namespace {

constexpr std::string_view kVersion = "v=STSv1";
constexpr std::size_t kMaxIdLength = 32;
constexpr std::size_t kMaxExtNameLength = 32;

bool is_wsp(char c) { return c == ' ' || c == '\t'; }
// sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): printable, not ';' '=' SP.
bool is_ext_value_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u <= 0x7e && c != ';' && c != '=';
}
bool is_ext_name_char(char c) { return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.'; }

std::size_t skip_wsp(std::string_view s, std::size_t pos) {
  while (pos < s.size() && is_wsp(s[pos])) ++pos;
  return pos;
}

// Untrusted text for an error detail: printable ASCII kept, the rest as \xHH,
// at most 40 characters shown.
std::string excerpt(std::string_view s) {
  constexpr std::size_t kShown = 40;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kShown; ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u >= 0x20 && u < 0x7f && s[i] != '"' && s[i] != '\\') {
      out += s[i];
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  if (s.size() > kShown) out += "...";
  return out + "\"";
}

Error syntax(std::size_t pos, const std::string& what) {
  return Error{"syntax", "at offset " + std::to_string(pos) + ": " + what};
}

bool is_candidate(std::string_view record) {
  if (record.substr(0, kVersion.size()) != kVersion) return false;
  const std::size_t pos = skip_wsp(record, kVersion.size());
  return pos < record.size() && record[pos] == ';';
}

bool valid_id(std::string_view v) {
  return !v.empty() && v.size() <= kMaxIdLength && std::all_of(v.begin(), v.end(), is_ascii_alnum);
}
bool valid_ext_name(std::string_view n) {
  return !n.empty() && n.size() <= kMaxExtNameLength && is_ascii_alnum(n.front()) &&
         std::all_of(n.begin(), n.end(), is_ext_name_char);
}
bool valid_ext_value(std::string_view v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), is_ext_value_char);
}

// Checks one sts-field (the text between separators). Returns an error
// detail, or nothing when the field is valid.
std::optional<std::string> field_problem(std::string_view field) {
  const auto eq = field.find('=');
  if (field.empty()) return "empty field (two ';' in a row?)";
  if (eq == std::string_view::npos) return "field " + excerpt(field) + " has no '='";
  const std::string_view name = field.substr(0, eq);
  const std::string_view value = field.substr(eq + 1);
  if (name == "id") {
    if (value.empty()) return "id is empty";
    if (value.size() > kMaxIdLength) return "id " + excerpt(value) + " is longer than 32";
    if (!valid_id(value)) {
      return "id " + excerpt(value) + " has a character other than A-Z a-z 0-9";
    }
    return std::nullopt;
  }
  if (!valid_ext_name(name)) return "extension name " + excerpt(name) + " is invalid";
  if (!valid_ext_value(value)) {
    return "extension value " + excerpt(value) + " for " + excerpt(name) + " is invalid";
  }
  return std::nullopt;
}

}  // namespace

Result<TxtRecord> parse_txt_record(std::string_view record) {
  if (!is_candidate(record)) {
    return Error{"no-record", "record " + excerpt(record) + " does not begin with \"v=STSv1;\""};
  }
  std::optional<std::string> id;
  std::size_t pos = kVersion.size();
  for (;;) {
    // sts-sep: *WSP ";" *WSP
    pos = skip_wsp(record, pos);
    if (pos >= record.size()) return syntax(pos, "trailing whitespace without ';'");
    if (record[pos] != ';') {
      return syntax(pos, "expected ';' before " + excerpt(record.substr(pos)));
    }
    pos = skip_wsp(record, pos + 1);
    if (pos == record.size() && id) break;  // [sts-sep] at the end
    if (pos == record.size()) return syntax(pos, "no id field");
    const std::size_t start = pos;
    while (pos < record.size() && record[pos] != ';' && !is_wsp(record[pos])) ++pos;
    const std::string_view field = record.substr(start, pos - start);
    if (auto problem = field_problem(field)) return syntax(start, *problem);
    if (!id && field.substr(0, 3) == "id=") id = std::string(field.substr(3));
    if (pos == record.size()) break;
  }
  if (!id) return syntax(record.size(), "no id field");
  return TxtRecord{*id};
}

Result<TxtRecord> parse_txt_rrset(std::span<const std::string> records) {
  const std::string* candidate = nullptr;
  std::size_t count = 0;
  for (const std::string& r : records) {
    if (!is_candidate(r)) continue;
    ++count;
    if (!candidate) candidate = &r;
  }
  if (count == 0) {
    return Error{"no-record",
                 std::to_string(records.size()) + " TXT record(s), none begins with \"v=STSv1;\""};
  }
  if (count > 1) {
    return Error{"multiple-records", std::to_string(count) + " TXT records begin with \"v=STSv1;\""};
  }
  return parse_txt_record(*candidate);
}

bool is_valid_policy_id(std::string_view id) { return valid_id(id); }

}  // namespace mtasts::policy
