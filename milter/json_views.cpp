#include "milter/json_views.h"

#include <optional>

#include "policy/domain.h"
#include "policy/txt_record.h"

namespace mtasts::milter {

using nlohmann::json;

json policy_json(const policy::Policy& p) {
  return {{"mode", policy::to_string(p.mode)}, {"max_age", p.max_age}, {"mx", p.mx}};
}

json resolution_json(const policy::Resolution& r) {
  json j;
  j["domain"] = r.domain;
  j["source"] = policy::to_string(r.source);
  j["dnssec"] = policy::to_string(r.dnssec);
  j["txt_id"] = r.txt_id ? json(*r.txt_id) : json(nullptr);
  j["policy"] = r.policy ? policy_json(r.policy->policy) : json(nullptr);
  j["fetched_at"] = r.policy ? json(r.policy->fetched_at) : json(nullptr);
  j["expires_at"] = r.policy ? json(r.policy->expires_at) : json(nullptr);
  j["result_type"] = r.result_type ? json(policy::to_string(*r.result_type)) : json(nullptr);
  j["reason"] = r.reason.empty() ? json(nullptr) : json(r.reason);
  j["temporary"] = r.temporary;
  return j;
}

json stored_json(const policy::StoredPolicy& p) {
  return {{"domain", p.domain},
          {"txt_id", p.txt_id},
          {"raw", p.raw},
          {"fetched_at", p.fetched_at},
          {"expires_at", p.expires_at},
          {"last_checked", p.last_checked},
          {"last_used", p.last_used},
          {"dnssec", policy::to_string(p.dnssec)},
          {"last_error", p.last_error}};
}

namespace {

// A time in an import line: absent (fallback), or an integer within
// [0, limit]. nullopt for anything else (a negative, huge or fractional
// number, a string): such a line is refused, never wrapped or overflowed.
std::optional<std::int64_t> time_or(const json& j, const char* key, std::int64_t fallback,
                                    std::int64_t limit) {
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const auto value = it->get<std::uint64_t>();
    if (value > static_cast<std::uint64_t>(limit)) return std::nullopt;
    return static_cast<std::int64_t>(value);
  }
  const auto value = it->get<std::int64_t>();
  if (value < 0 || value > limit) return std::nullopt;
  return value;
}

policy::DnsSecurity security_from(const json& j) {
  const auto it = j.find("dnssec");
  if (it == j.end() || !it->is_string()) return policy::DnsSecurity::Insecure;
  const auto text = it->get<std::string>();
  if (text == "secure") return policy::DnsSecurity::Secure;
  if (text == "bogus") return policy::DnsSecurity::Bogus;
  return policy::DnsSecurity::Insecure;
}

}  // namespace

policy::Result<policy::StoredPolicy> stored_from_json(const json& j, std::int64_t now) {
  if (!j.is_object() || !j.contains("domain") || !j["domain"].is_string() || !j.contains("raw") ||
      !j["raw"].is_string() || !j.contains("txt_id") || !j["txt_id"].is_string())
    return policy::Error{"import-json", "each line needs string keys domain, txt_id and raw"};
  const auto domain = policy::normalize_domain(j["domain"].get<std::string>());
  if (!domain) return policy::Error{"import-domain", domain.error().code + ": " + domain.error().detail};
  policy::StoredPolicy p;
  p.domain = *domain;
  p.txt_id = j["txt_id"].get<std::string>();
  if (!policy::is_valid_policy_id(p.txt_id))
    return policy::Error{"import-txt-id", "txt_id must be 1-32 letters and digits (RFC 8461 3.1)"};
  p.raw = j["raw"].get<std::string>();
  const auto parsed = policy::parse_policy(p.raw);
  if (!parsed.policy) return policy::Error{"import-policy", parsed.issues.front().message};
  p.policy = *parsed.policy;
  // Times up to a day ahead of our clock (skew); an expiry never beyond
  // what max_age allows from the fetch (an import cannot stretch a policy).
  const std::int64_t latest = now + 86400;
  const auto fetched_at = time_or(j, "fetched_at", now, latest);
  if (!fetched_at) return policy::Error{"import-time", "fetched_at must be unix seconds, not in the future"};
  p.fetched_at = *fetched_at;
  const std::int64_t longest = p.fetched_at + p.policy.max_age;
  const auto expires_at = time_or(j, "expires_at", longest, longest);
  const auto last_checked = time_or(j, "last_checked", p.fetched_at, latest);
  const auto last_used = time_or(j, "last_used", p.fetched_at, latest);
  if (!expires_at || !last_checked || !last_used)
    return policy::Error{
        "import-time",
        "expires_at (at most fetched_at + max_age), last_checked and last_used must be unix seconds"};
  p.expires_at = *expires_at;
  p.last_checked = *last_checked;
  p.last_used = *last_used;
  p.dnssec = security_from(j);
  if (j.contains("last_error") && j["last_error"].is_string())
    p.last_error = j["last_error"].get<std::string>();
  return p;
}

}  // namespace mtasts::milter
