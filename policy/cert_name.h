// Which certificate names satisfy a host, RFC 8461 §4.2 (an RFC 6125 subset):
// only subjectAltName dNSName entries count, never the subject CN; a wildcard
// is allowed only as the whole leftmost label ("*.example.com") and matches
// exactly one label; partial-label wildcards ("mx*.example.com") never match.
// The same rule applies to the HTTPS policy host (§3.3) and MX hosts (§4.2).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace mtasts::policy {

// One SAN dNSName against one host name (both compared case-insensitively,
// one trailing dot ignored on either).
bool cert_name_matches(std::string_view san_dns_name, std::string_view host);

// True when any of the SAN dNSNames matches.
bool cert_names_match(std::span<const std::string> san_dns_names, std::string_view host);

// The flags every OpenSSL host check in policy/net must use so OpenSSL
// applies exactly this rule (X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
// X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS). Kept as a plain number so policy/
// does not include OpenSSL; policy/net static_asserts it.
inline constexpr unsigned kOpenSslHostCheckFlags = 0x20u | 0x4u;

}  // namespace mtasts::policy
