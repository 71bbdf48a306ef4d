// MX host matching against a policy's mx patterns, RFC 8461 §4.1:
// "a wildcard ... matches any subdomain of the given domain ... only the
//  leftmost label, and only one label"; comparison is case-insensitive.
#pragma once

#include <string_view>

#include "policy/policy.h"

namespace mtasts::policy {

// `pattern` is a validated, lower-case policy pattern ("mx.example.com" or
// "*.example.com"). `host` is an MX target as DNS returned it: one trailing
// dot is removed, case ignored, U-labels converted to A-labels first.
// IP literals ("[192.0.2.1]", "192.0.2.1") and the null MX "." never match.
bool mx_pattern_matches(std::string_view pattern, std::string_view host);

// True when any of the policy's patterns matches `host`.
bool policy_allows_mx(const Policy& policy, std::string_view host);

}  // namespace mtasts::policy
