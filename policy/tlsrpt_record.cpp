// RFC 8460 §3 parsed by its ABNF; the readings are listed in the header.
// Fields are cut at ';' (no URI, extension value or name may hold a raw one),
// so WSP inside a field reaches the field's own check: it is legal only
// around the commas of a rua list.
#include "policy/tlsrpt_record.h"

#include <arpa/inet.h>

#include <algorithm>
#include <optional>
#include <string>

#include "policy/ascii.h"
#include "policy/domain.h"
#include "policy/logfmt.h"

namespace mtasts::policy {
namespace {

constexpr std::string_view kVersion = "v=TLSRPTv1";
constexpr std::size_t kMaxExtNameLength = 32;
constexpr std::size_t kShown = 48;  // bytes of untrusted text in a detail
constexpr unsigned long kMaxPort = 65535;

using Problem = std::optional<std::string>;  // an error detail, or none

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

std::size_t skip_wsp(std::string_view s, std::size_t pos) {
  while (pos < s.size() && is_wsp(s[pos])) ++pos;
  return pos;
}

std::string_view trim_wsp_right(std::string_view s) {
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

std::string excerpt(std::string_view s) { return logfmt_value(s, kShown); }

Error syntax(std::size_t pos, const std::string& what) {
  return Error{"tlsrpt-syntax", "at offset " + std::to_string(pos) + ": " + what};
}

bool is_candidate(std::string_view record) {
  if (record.substr(0, kVersion.size()) != kVersion) return false;
  const std::size_t pos = skip_wsp(record, kVersion.size());
  return pos < record.size() && record[pos] == ';';
}

bool is_hex(char c) { return is_ascii_digit(c) || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'f'); }

int hex_value(char c) {
  if (is_ascii_digit(c)) return c - '0';
  if (is_hex(c)) return ascii_lower(c) - 'a' + 10;
  return -1;
}

// RFC 3986 unreserved / gen-delims / sub-delims, minus what RFC 8460 §3
// wants encoded (',' '!' ';'); '%' is checked as pct-encoded separately.
bool is_uri_char(char c) {
  static constexpr std::string_view kOther = "-._~:/?#[]@$&'()*+=";
  return is_ascii_alnum(c) || kOther.find(c) != std::string_view::npos;
}

// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
bool valid_scheme(std::string_view s) {
  return !s.empty() && is_ascii_alpha(s.front()) && std::all_of(s.begin(), s.end(), [](char c) {
    return is_ascii_alnum(c) || c == '+' || c == '-' || c == '.';
  });
}

Problem uri_chars_problem(std::string_view uri) {
  for (std::size_t i = 0; i < uri.size(); ++i) {
    const char c = uri[i];
    if (c == '%') {
      if (i + 2 >= uri.size() || !is_hex(uri[i + 1]) || !is_hex(uri[i + 2])) {
        return "URI " + excerpt(uri) + " has a '%' not followed by two hex digits";
      }
      i += 2;
    } else if (c == '!') {
      return "URI " + excerpt(uri) + " has a raw '!' (RFC 8460 section 3: it must be %-encoded)";
    } else if (!is_uri_char(c)) {
      return "URI " + excerpt(uri) + " has a character not allowed in a URI";
    }
  }
  if (std::count(uri.begin(), uri.end(), '#') > 1) return "URI " + excerpt(uri) + " has two '#'";
  return std::nullopt;
}

bool is_ip(std::string_view text, int family) {
  unsigned char buf[16];
  return inet_pton(family, std::string(text).c_str(), buf) == 1;
}

// RFC 6068 "to" part, limited to one addr-spec; `rest` follows "mailto:".
Problem mailto_problem(std::string_view uri, std::string_view rest) {
  if (rest.find('#') != std::string_view::npos) return "mailto URI " + excerpt(uri) + " has a fragment";
  const std::string_view to = rest.substr(0, rest.find('?'));
  if (to.empty()) return "mailto URI " + excerpt(uri) + " has no address";
  if (ascii_lowercase(to).find("%2c") != std::string::npos) {
    return "mailto URI " + excerpt(uri) + " names more than one address";
  }
  const auto at = to.find('@');
  if (at == std::string_view::npos || to.find('@', at + 1) != std::string_view::npos) {
    return "mailto URI " + excerpt(uri) + " does not hold exactly one '@'";
  }
  const std::string_view local = to.substr(0, at);
  if (local.empty() || local.find_first_of(":[]/") != std::string_view::npos) {
    return "mailto URI " + excerpt(uri) + " has an invalid local part";
  }
  if (!normalize_domain(to.substr(at + 1))) {
    return "mailto URI " + excerpt(uri) + " has an invalid domain";
  }
  return std::nullopt;
}

Problem port_problem(std::string_view uri, std::string_view port) {
  const bool digits =
      !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), is_ascii_digit);
  const unsigned long value = digits ? std::stoul(std::string(port)) : 0;
  if (value == 0 || value > kMaxPort) return "https URI " + excerpt(uri) + " has an invalid port";
  return std::nullopt;
}

// RFC 3986 §3.2 authority, less userinfo; `rest` follows "https:".
Problem https_problem(std::string_view uri, std::string_view rest) {
  if (rest.substr(0, 2) != "//") return "https URI " + excerpt(uri) + " has no \"//\" before the host";
  const std::string_view after = rest.substr(2);
  const std::string_view authority = after.substr(0, after.find_first_of("/?#"));
  if (after.find_first_of("[]", authority.size()) != std::string_view::npos) {
    return "https URI " + excerpt(uri) + " has '[' or ']' outside the host";
  }
  if (authority.find('@') != std::string_view::npos) {
    return "https URI " + excerpt(uri) + " has userinfo (RFC 9110 section 4.2.4)";
  }
  std::string_view tail;  // ":port" or empty
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos || !is_ip(authority.substr(1, close - 1), AF_INET6)) {
      return "https URI " + excerpt(uri) + " has an invalid IPv6 host";
    }
    tail = authority.substr(close + 1);
    if (!tail.empty() && tail.front() != ':') return "https URI " + excerpt(uri) + " has junk after the host";
  } else {
    const std::string_view host = authority.substr(0, authority.find(':'));
    tail = authority.substr(host.size());
    if (host.empty()) return "https URI " + excerpt(uri) + " has no host";
    if (!is_ip(host, AF_INET) && !normalize_domain(host)) {
      return "https URI " + excerpt(uri) + " has an invalid host";
    }
  }
  if (!tail.empty()) return port_problem(uri, tail.substr(1));
  return std::nullopt;
}

// A usable scheme, nothing for a well-formed URI of another scheme, or the
// problem that makes the URI (and so the record) invalid.
Result<std::optional<ReportScheme>, std::string> classify_uri(std::string_view uri) {
  using Scheme = std::optional<ReportScheme>;
  const auto colon = uri.find(':');
  if (colon == std::string_view::npos || !valid_scheme(uri.substr(0, colon))) {
    return "URI " + excerpt(uri) + " has no scheme";
  }
  if (auto problem = uri_chars_problem(uri)) return *problem;
  const std::string_view scheme = uri.substr(0, colon);
  const std::string_view rest = uri.substr(colon + 1);
  if (ascii_iequals(scheme, "mailto")) {
    if (auto problem = mailto_problem(uri, rest)) return *problem;
    return Scheme(ReportScheme::Mailto);
  }
  if (ascii_iequals(scheme, "https")) {
    if (auto problem = https_problem(uri, rest)) return *problem;
    return Scheme(ReportScheme::Https);
  }
  return Scheme();
}

struct Collected {
  TlsrptRecord record;
  std::vector<std::string> seen;  // dedup keys: scheme lower-cased, rest as is
  bool has_rua = false;
};

void add_uri(Collected& out, std::string_view uri, std::optional<ReportScheme> scheme) {
  const auto colon = uri.find(':');
  std::string key = ascii_lowercase(uri.substr(0, colon)) + std::string(uri.substr(colon));
  if (std::find(out.seen.begin(), out.seen.end(), key) != out.seen.end()) return;
  out.seen.push_back(std::move(key));
  if (scheme) {
    out.record.rua.push_back(ReportUri{*scheme, std::string(uri)});
  } else {
    out.record.ignored_uris.emplace_back(uri);
  }
}

// tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri); `offset` is where `value` starts.
std::optional<Error> parse_rua(std::string_view value, std::size_t offset, Collected& out) {
  out.has_rua = true;
  if (value.empty()) return syntax(offset, "rua has no URI");
  if (is_wsp(value.front())) return syntax(offset, "whitespace right after \"rua=\"");
  std::size_t pos = 0;
  for (;;) {
    const std::size_t start = pos == 0 ? 0 : skip_wsp(value, pos);
    const std::size_t comma = std::min(value.find(',', start), value.size());
    const std::string_view uri = trim_wsp_right(value.substr(start, comma - start));
    if (uri.empty()) return syntax(offset + start, "empty URI in the rua list");
    const auto scheme = classify_uri(uri);
    if (!scheme) return syntax(offset + start, scheme.error());
    add_uri(out, uri, scheme.value());
    if (comma == value.size()) return std::nullopt;
    pos = comma + 1;
  }
}

bool valid_ext_name(std::string_view n) {
  return !n.empty() && n.size() <= kMaxExtNameLength && is_ascii_alnum(n.front()) &&
         std::all_of(n.begin(), n.end(),
                     [](char c) { return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.'; });
}

// tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): printable, not ';' '=' SP.
bool valid_ext_value(std::string_view v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x21 && u <= 0x7e && c != ';' && c != '=';
  });
}

// One tlsrpt-field (non-empty, no ';', no WSP at either end).
std::optional<Error> parse_field(std::string_view field, std::size_t offset, Collected& out) {
  const auto eq = field.find('=');
  if (eq == std::string_view::npos) return syntax(offset, "field " + excerpt(field) + " has no '='");
  const std::string_view name = field.substr(0, eq);
  const std::string_view value = field.substr(eq + 1);
  if (name == "rua") return parse_rua(value, offset + eq + 1, out);
  if (!valid_ext_name(name)) return syntax(offset, "extension name " + excerpt(name) + " is invalid");
  if (!valid_ext_value(value)) {
    return syntax(offset + eq + 1,
                  "extension value " + excerpt(value) + " for " + excerpt(name) + " is invalid");
  }
  return std::nullopt;
}

}  // namespace

Result<TlsrptRecord> parse_tlsrpt_record(std::string_view text) {
  if (text.size() > kMaxTlsrptRecordBytes) {
    return syntax(kMaxTlsrptRecordBytes,
                  "record longer than " + std::to_string(kMaxTlsrptRecordBytes) + " bytes");
  }
  if (text.substr(0, kVersion.size()) != kVersion ||
      (text.size() > kVersion.size() && !is_wsp(text[kVersion.size()]) && text[kVersion.size()] != ';')) {
    return syntax(0, "bad version: record " + excerpt(text) + " does not begin with \"v=TLSRPTv1\"");
  }
  Collected out;
  std::size_t pos = kVersion.size();
  for (;;) {
    const std::size_t delim = skip_wsp(text, pos);
    if (delim == text.size()) {
      if (delim != pos) return syntax(pos, "whitespace at the end without ';'");
      break;
    }
    if (text[delim] != ';') return syntax(delim, "expected ';' before " + excerpt(text.substr(delim)));
    const std::size_t start = skip_wsp(text, delim + 1);
    if (start == text.size()) break;  // the optional trailing field-delim
    const std::size_t end = std::min(text.find(';', start), text.size());
    const std::string_view field = trim_wsp_right(text.substr(start, end - start));
    if (field.empty()) return syntax(start, "empty field (two ';' in a row?)");
    if (auto error = parse_field(field, start, out)) return *error;
    pos = start + field.size();
  }
  if (!out.has_rua) return syntax(text.size(), "no rua field");
  if (out.record.rua.empty()) {
    return Error{"tlsrpt-no-usable-uri", "rua has no mailto: or https: URI (" +
                                             std::to_string(out.record.ignored_uris.size()) +
                                             " of other schemes ignored)"};
  }
  return std::move(out.record);
}

Result<TlsrptRecord> select_tlsrpt_record(std::span<const std::string> txt_records) {
  const std::string* candidate = nullptr;
  std::size_t count = 0;
  for (const std::string& r : txt_records) {
    if (!is_candidate(r)) continue;
    ++count;
    if (!candidate) candidate = &r;
  }
  if (count == 0) {
    return Error{"tlsrpt-none",
                 std::to_string(txt_records.size()) + " TXT record(s), none begins with \"v=TLSRPTv1;\""};
  }
  if (count > 1) {
    return Error{"tlsrpt-multiple", std::to_string(count) + " TXT records begin with \"v=TLSRPTv1;\""};
  }
  return parse_tlsrpt_record(*candidate);
}

std::string mailto_address(std::string_view uri) {
  std::string_view encoded = uri.substr(uri.find(':') + 1);
  encoded = encoded.substr(0, encoded.find('?'));
  std::string address;
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    const bool escape = encoded[i] == '%' && i + 2 < encoded.size();
    const int high = escape ? hex_value(encoded[i + 1]) : -1;
    const int low = escape ? hex_value(encoded[i + 2]) : -1;
    if (high >= 0 && low >= 0) {
      address += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      address += encoded[i];
    }
  }
  return address;
}

}  // namespace mtasts::policy
