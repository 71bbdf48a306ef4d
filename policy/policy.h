// The MTA-STS policy body, RFC 8461 §3.2.
//   sts-policy-record = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
//   sts-policy-term = LF / CRLF;  field = key ":" *WSP value
//   version: STSv1 | mode: enforce/testing/none | max_age: 1*10DIGIT | mx: pattern
// "max_age ... up to 31557600"; "mx ... one or more, one per line";
// "If the policy contains multiple fields with the same key (other than mx)
//  only the first is used"; unknown fields are ignored (§3.2 extension fields).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::policy {

enum class Mode { Enforce, Testing, None };

std::string_view to_string(Mode mode);  // "enforce" | "testing" | "none"

// The largest max_age the RFC allows (one year); larger values are capped.
inline constexpr std::uint32_t kMaxAgeCap = 31557600;
// The RFC's 64 KiB limit on the body (§3.3).
inline constexpr std::size_t kMaxPolicyBytes = 64 * 1024;

struct Policy {
  Mode mode = Mode::None;
  std::uint32_t max_age = 0;    // seconds, already capped to kMaxAgeCap
  std::vector<std::string> mx;  // lower case, de-duplicated, in first-seen order
  friend bool operator==(const Policy&, const Policy&) = default;
};

// One broken rule, for operators (lint-policy names the line and the rule).
struct PolicyIssue {
  std::size_t line = 0;  // 1-based; 0 for whole-body problems
  std::string rule;      // stable code, e.g. "missing-version", "bad-mx-pattern"
  std::string message;   // one sentence for humans
};

struct PolicyParse {
  std::optional<Policy> policy;     // set iff valid
  std::vector<PolicyIssue> issues;  // empty iff valid
};

// Parses a policy body strictly. Invalid when: over kMaxPolicyBytes, NUL or a
// control character anywhere (other than the LF/CR of line ends and HTAB as
// WSP), a line that is not `key:value`, version missing or not STSv1, mode
// missing or unknown, max_age missing or not 1-10 digits, no mx for
// enforce/testing, an mx pattern with a trailing dot, an inner or partial
// wildcard, a bare "*", an empty label or non-ASCII characters; non-ASCII
// (UTF-8) is allowed only in the values of unknown (extension) fields.
// Pure, thread-safe.
PolicyParse parse_policy(std::string_view body);

// Why `pattern` is not an RFC 8461 §3.2 sts-policy-mx-value (["*."] Domain,
// LDH labels of 1-63 characters, at most 253, no trailing dot), as the
// parser words it ("has an empty label", ...); empty when it is one.
std::string_view mx_pattern_problem(std::string_view pattern);

// The lines of a policy body as parse_policy() reads them: split at LF, one
// CR before each LF dropped, trailing blank lines dropped. Views into `body`.
std::vector<std::string_view> policy_text_lines(std::string_view body);

}  // namespace mtasts::policy
