#include "milter/json_views.h"

#include "policy/domain.h"

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
  return {{"domain", p.domain},         {"txt_id", p.txt_id},         {"raw", p.raw},
          {"fetched_at", p.fetched_at}, {"expires_at", p.expires_at}, {"last_checked", p.last_checked},
          {"last_used", p.last_used},   {"dnssec", policy::to_string(p.dnssec)},
          {"last_error", p.last_error}};
}

namespace {

std::int64_t integer_or(const json& j, const char* key, std::int64_t fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
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
  p.raw = j["raw"].get<std::string>();
  const auto parsed = policy::parse_policy(p.raw);
  if (!parsed.policy) return policy::Error{"import-policy", parsed.issues.front().message};
  p.policy = *parsed.policy;
  p.fetched_at = integer_or(j, "fetched_at", now);
  p.expires_at = integer_or(j, "expires_at", p.fetched_at + p.policy.max_age);
  p.last_checked = integer_or(j, "last_checked", p.fetched_at);
  p.last_used = integer_or(j, "last_used", p.fetched_at);
  p.dnssec = security_from(j);
  if (j.contains("last_error") && j["last_error"].is_string()) p.last_error = j["last_error"].get<std::string>();
  return p;
}

}  // namespace mtasts::milter
