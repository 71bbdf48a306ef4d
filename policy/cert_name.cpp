// Certificate name matching, RFC 8461 §4.2 and §3.3, an RFC 6125 §6.4 subset:
// SAN dNSName only; a wildcard is the whole leftmost label and stands for
// exactly one non-empty host label (RFC 6125 §6.4.3 rules 1-3).
// Decisions (the safe side, matching what OpenSSL's X509_check_host does with
// kOpenSslHostCheckFlags):
// - "*", "*." and wildcards directly under one label ("*.com") never match:
//   at least two labels must follow the wildcard (CA/B Baseline Requirements
//   forbid the rest; without a public-suffix list we cannot do finer).
// - Partial ("mx*.example.com"), inner ("a.*.example.com") and multiple
//   wildcards never match.
// - A SAN is IA5String text: names with NUL, control or non-ASCII bytes never
//   match (the NUL-in-certificate attack); SANs are not IDNA-mapped.
// - The host goes through normalize_domain (case, one trailing dot, U-labels
//   to A-labels); IP literals never match a dNSName.
#include "policy/cert_name.h"

#include <algorithm>
#include <optional>

#include "policy/ascii.h"
#include "policy/domain.h"

namespace mtasts::policy {
namespace {

// The SAN, lower case, one trailing dot removed; nullopt when it can never
// match a host name.
std::optional<std::string> clean_san(std::string_view san) {
  if (!san.empty() && san.back() == '.') san.remove_suffix(1);
  if (san.empty()) return std::nullopt;
  const bool printable = std::all_of(san.begin(), san.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
  if (!printable) return std::nullopt;
  std::string out(san.size(), '\0');
  std::transform(san.begin(), san.end(), out.begin(), ascii_lower);
  return out;
}

bool wildcard_matches(std::string_view san, std::string_view host) {
  const std::string_view suffix = san.substr(1);  // ".example.com"
  if (suffix.find('*') != std::string_view::npos) return false;
  // At least two non-empty labels after the wildcard.
  const std::string_view rest = suffix.substr(1);
  const auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == rest.size()) return false;
  if (host.size() <= suffix.size() || !host.ends_with(suffix)) return false;
  const std::string_view label = host.substr(0, host.size() - suffix.size());
  return label.find('.') == std::string_view::npos;
}

bool matches_normalised(std::string_view san_dns_name, std::string_view host) {
  const std::optional<std::string> san = clean_san(san_dns_name);
  if (!san) return false;
  if (san->starts_with("*.")) return wildcard_matches(*san, host);
  // Any other '*' is partial, inner or bare: never a match (and host names
  // cannot contain '*', so plain comparison already fails; kept explicit).
  if (san->find('*') != std::string::npos) return false;
  return *san == host;
}

}  // namespace

bool cert_name_matches(std::string_view san_dns_name, std::string_view host) {
  const Result<std::string> normalised = normalize_domain(host);
  return normalised && matches_normalised(san_dns_name, *normalised);
}

bool cert_names_match(std::span<const std::string> san_dns_names, std::string_view host) {
  const Result<std::string> normalised = normalize_domain(host);
  if (!normalised) return false;
  return std::any_of(san_dns_names.begin(), san_dns_names.end(),
                     [&](const std::string& san) { return matches_normalised(san, *normalised); });
}

}  // namespace mtasts::policy
