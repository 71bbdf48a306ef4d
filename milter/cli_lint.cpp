// `lint-policy` and `lint-txt`: an operator's own policy file and TXT record
// checked with the same parsers the resolver uses (RFC 8461 §3.1, §3.2, §4.1).
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "milter/cli_commands.h"
#include "milter/json_views.h"
#include "policy/mx_match.h"
#include "policy/policy.h"
#include "policy/txt_record.h"

namespace mtasts::milter {
namespace {

// Reads at most one byte past the cap, so the parser reports "too-large".
bool read_capped(const std::string& file, std::string& out) {
  std::ifstream in_file;
  std::istream* in = &std::cin;
  if (file != "-") {
    in_file.open(file, std::ios::binary);
    if (!in_file) return false;
    in = &in_file;
  }
  out.resize(policy::kMaxPolicyBytes + 1);
  in->read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in->gcount()));
  return !in->bad();
}

nlohmann::json lint_policy_json(const policy::PolicyParse& parsed, const std::vector<std::string>& mx_hosts) {
  nlohmann::json j;
  j["valid"] = parsed.policy.has_value();
  j["mode"] =
      parsed.policy ? nlohmann::json(policy::to_string(parsed.policy->mode)) : nlohmann::json(nullptr);
  j["max_age"] = parsed.policy ? nlohmann::json(parsed.policy->max_age) : nlohmann::json(nullptr);
  j["mx"] = parsed.policy ? nlohmann::json(parsed.policy->mx) : nlohmann::json(nullptr);
  j["errors"] = nlohmann::json::array();
  for (const auto& issue : parsed.issues)
    j["errors"].push_back({{"line", issue.line}, {"rule", issue.rule}, {"message", issue.message}});
  j["hosts"] = nlohmann::json::object();
  for (const auto& host : mx_hosts)
    j["hosts"][shown_input(host)] = parsed.policy && policy::policy_allows_mx(*parsed.policy, host);
  return j;
}

void print_lint_policy(const std::string& file, const policy::PolicyParse& parsed,
                       const std::vector<std::string>& mx_hosts) {
  for (const auto& issue : parsed.issues)
    std::cout << shown_input(file) << ":" << issue.line << ": " << issue.rule << ": " << issue.message
              << "\n";
  if (parsed.policy) {
    std::cout << shown_input(file) << ": valid: mode=" << policy::to_string(parsed.policy->mode)
              << " max_age=" << parsed.policy->max_age << " mx=";
    for (std::size_t i = 0; i < parsed.policy->mx.size(); ++i)
      std::cout << (i ? "," : "") << parsed.policy->mx[i];
    std::cout << "\n";
  }
  for (const auto& host : mx_hosts) {
    const bool allowed = parsed.policy && policy::policy_allows_mx(*parsed.policy, host);
    std::cout << shown_input(host) << ": " << (allowed ? "allowed" : "NOT allowed") << "\n";
  }
}

}  // namespace

int lint_policy_command(const std::string& file, const std::vector<std::string>& mx_hosts, bool json) {
  std::string body;
  if (!read_capped(file, body)) {
    std::cerr << "mta-sts-milter lint-policy: cannot read " << shown_input(file) << "\n";
    return kExitInvalid;
  }
  const auto parsed = policy::parse_policy(body);
  if (json)
    std::cout << json_text(lint_policy_json(parsed, mx_hosts)) << "\n";
  else
    print_lint_policy(file, parsed, mx_hosts);
  return parsed.policy ? kExitOk : kExitInvalid;
}

int lint_txt_command(const std::vector<std::string>& records, bool json) {
  const auto parsed = policy::parse_txt_rrset(records);
  std::vector<std::string> errors;
  if (!parsed) {
    errors.push_back(parsed.error().code +
                     (parsed.error().detail.empty() ? "" : ": " + shown_message(parsed.error().detail)));
  }
  if (json) {
    nlohmann::json j{{"valid", parsed.has_value()},
                     {"id", parsed ? nlohmann::json(parsed->id) : nlohmann::json(nullptr)},
                     {"errors", errors}};
    std::cout << json_text(j) << "\n";
  } else if (parsed) {
    std::cout << "valid: id=" << parsed->id << "\n";
  } else {
    for (const auto& e : errors) std::cout << "invalid: " << e << "\n";
  }
  return parsed ? kExitOk : kExitInvalid;
}

}  // namespace mtasts::milter
