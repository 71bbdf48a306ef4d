// MX host matching, RFC 8461 §4.1: a pattern is a host name or "*." and a
// domain; the wildcard stands for exactly one whole, non-empty leftmost
// label. Both sides end up as lower-case A-labels, so plain comparison is
// the case-insensitive comparison the RFC asks for.
// Decision: "*.com"-style patterns (wildcard directly under a TLD) are
// honoured as written: the pattern is the policy owner's statement about its
// own MX hosts, and certificate validation (cert_name, §4.2) still applies.
#include "policy/mx_match.h"

#include <algorithm>
#include <string>

#include "policy/ascii.h"
#include "policy/domain.h"

namespace mtasts::policy {
namespace {

bool iequals(std::string_view a, std::string_view b) { return ascii_iequals(a, b); }

bool matches_normalised(std::string_view pattern, std::string_view host) {
  if (pattern.substr(0, 2) != "*.") return iequals(pattern, host);
  const std::string_view suffix = pattern.substr(1);  // ".example.com"
  if (suffix.size() < 2 || host.size() <= suffix.size()) return false;
  const std::string_view label = host.substr(0, host.size() - suffix.size());
  return label.find('.') == std::string_view::npos && iequals(host.substr(label.size()), suffix);
}

}  // namespace

bool mx_pattern_matches(std::string_view pattern, std::string_view host) {
  if (pattern.empty()) return false;
  // normalize_domain rejects IP literals, bare addresses, "." and anything
  // outside LDH (including '*'), so those hosts never match.
  const Result<std::string> normalised = normalize_domain(host);
  return normalised && matches_normalised(pattern, *normalised);
}

bool policy_allows_mx(const Policy& policy, std::string_view host) {
  const Result<std::string> normalised = normalize_domain(host);
  if (!normalised) return false;
  return std::any_of(policy.mx.begin(), policy.mx.end(), [&](const std::string& pattern) {
    return !pattern.empty() && matches_normalised(pattern, *normalised);
  });
}

}  // namespace mtasts::policy
