// libFuzzer target for the MTA-STS policy body parser (RFC 8461 §3.2).
// Besides the sanitizers, it aborts when a result breaks the header contract.
#include "policy/policy.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_set>

namespace {

using mtasts::policy::Mode;
using mtasts::policy::PolicyParse;

void require(bool condition) {
  if (!condition) std::abort();
}

void check_invariants(std::string_view body, const PolicyParse& parse) {
  require(parse.policy.has_value() == parse.issues.empty());
  for (const auto& issue : parse.issues) {
    require(!issue.rule.empty() && !issue.message.empty());
    require(issue.line <= body.size() + 1);
  }
  if (!parse.policy) return;
  const auto& policy = *parse.policy;
  require(body.size() <= mtasts::policy::kMaxPolicyBytes);
  require(policy.max_age <= mtasts::policy::kMaxAgeCap);
  require(policy.mode == Mode::None || !policy.mx.empty());
  std::unordered_set<std::string> seen;
  for (const auto& mx : policy.mx) {
    require(seen.insert(mx).second);  // de-duplicated
    require(!mx.empty() && mx.back() != '.');
    for (const char c : mx) require(!(c >= 'A' && c <= 'Z') && static_cast<unsigned char>(c) < 0x80);
  }
}

}  // namespace

// Random bytes rarely spell a complete policy, so each input is also parsed
// after a valid head (mode picked by the first byte): then mx lines and
// duplicates in the input reach the code paths of valid policies too.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  check_invariants(body, mtasts::policy::parse_policy(body));

  static constexpr std::string_view kModes[] = {"enforce", "testing", "none"};
  const std::string_view mode = kModes[size == 0 ? 0 : data[0] % 3];
  std::string headed = "version: STSv1\nmode: ";
  headed.append(mode).append("\nmax_age: 86400\n").append(body.substr(size == 0 ? 0 : 1));
  check_invariants(headed, mtasts::policy::parse_policy(headed));
  return 0;
}
