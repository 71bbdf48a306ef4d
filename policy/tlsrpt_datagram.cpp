// libtlsrpt datagrams, protocol version 1; the readings are in the header.
#include "policy/tlsrpt_datagram.h"

#include <nlohmann/json.hpp>

#include <array>
#include <utility>

#include "policy/ascii.h"
#include "policy/bounded_json.h"
#include "policy/domain.h"
#include "policy/logfmt.h"

namespace mtasts::policy {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Deeper than a datagram's own shape (object, policies, policy, details, detail).
constexpr int kMaxDepth = 8;
constexpr std::size_t kQuoteBytes = 64;

constexpr std::array<std::pair<ResultType, int>, 11> kCodes{{
    {ResultType::StartTlsNotSupported, 201},
    {ResultType::CertificateHostMismatch, 202},
    {ResultType::CertificateNotTrusted, 203},
    {ResultType::CertificateExpired, 204},
    {ResultType::ValidationFailure, 205},
    {ResultType::StsPolicyFetchError, 301},
    {ResultType::StsPolicyInvalid, 302},
    {ResultType::StsWebpkiInvalid, 303},
    {ResultType::TlsaInvalid, 304},
    {ResultType::DnssecInvalid, 305},
    {ResultType::DaneRequired, 306},
}};

std::optional<DatagramPolicyType> policy_type_from_number(std::int64_t n) {
  switch (n) {
    case 1:
      return DatagramPolicyType::Tlsa;
    case 2:
      return DatagramPolicyType::Sts;
    case 9:
      return DatagramPolicyType::NoPolicyFound;
    default:
      return std::nullopt;
  }
}

std::string_view policy_type_name(DatagramPolicyType type) {
  switch (type) {
    case DatagramPolicyType::Tlsa:
      return "tlsa";
    case DatagramPolicyType::NoPolicyFound:
      return "no-policy-found";
    case DatagramPolicyType::Sts:
      break;
  }
  return "sts";
}

DatagramPolicyType policy_type_of(std::string_view name) {
  if (name == "tlsa") return DatagramPolicyType::Tlsa;
  if (name == "no-policy-found") return DatagramPolicyType::NoPolicyFound;
  return DatagramPolicyType::Sts;
}

// ---- writing ----

void put_if_set(OrderedJson& object, const char* key, const std::string& value) {
  if (!value.empty()) object[key] = value;
}

void put_if_any(OrderedJson& object, const char* key, const std::vector<std::string>& values) {
  if (!values.empty()) object[key] = values;
}

OrderedJson failure_json(const DatagramFailure& failure) {
  OrderedJson out = OrderedJson::object();
  out["c"] = failure_code(failure.code);
  put_if_set(out, "s", failure.sending_mta_ip);
  put_if_set(out, "n", failure.receiving_mx_hostname);
  put_if_set(out, "h", failure.receiving_mx_helo);
  put_if_set(out, "r", failure.receiving_ip);
  put_if_set(out, "a", failure.additional_information);
  put_if_set(out, "f", failure.failure_reason_code);
  return out;
}

OrderedJson policy_json(const DatagramPolicy& policy) {
  OrderedJson out = OrderedJson::object();
  out["policy-type"] = static_cast<int>(policy.type);
  put_if_set(out, "policy-domain", policy.domain);
  put_if_any(out, "policy-string", policy.strings);
  put_if_any(out, "mx-host", policy.mx_hosts);
  if (!policy.failures.empty()) {
    OrderedJson details = OrderedJson::array();
    for (const DatagramFailure& failure : policy.failures) details.push_back(failure_json(failure));
    out["failure-details"] = std::move(details);
  }
  out["t"] = policy.failures.size();
  out["f"] = policy.delivery_failed ? 1 : 0;
  return out;
}

// ---- reading ----

// Keeps the first error; fields read after it are harmless (the datagram is
// dropped with it).
class Reader {
 public:
  bool failed() const { return error_.has_value(); }
  DatagramError error() const { return *error_; }

  void fail(const std::string& path, std::string detail) {
    if (!error_) error_ = DatagramError{path, std::move(detail)};
  }

  // Member `key` of `object`; nullptr when absent or null.
  static const Json* member(const Json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
  }

  std::string string_at(const Json& value, const std::string& path) {
    if (!value.is_string()) {
      fail(path, "expected a string");
      return {};
    }
    return value.get<std::string>();
  }

  std::string optional_string(const Json& object, const char* key, const std::string& path) {
    const Json* value = member(object, key);
    return value ? string_at(*value, path + "." + key) : std::string();
  }

  std::vector<std::string> optional_strings(const Json& object, const char* key, const std::string& path) {
    std::vector<std::string> out;
    const Json* value = member(object, key);
    if (!value) return out;
    const std::string here = path + "." + key;
    if (!value->is_array()) {
      fail(here, "expected an array of strings");
      return out;
    }
    for (std::size_t i = 0; i < value->size(); ++i)
      out.push_back(string_at((*value)[i], here + "[" + std::to_string(i) + "]"));
    return out;
  }

  std::optional<std::int64_t> integer(const Json& object, const char* key, const std::string& path) {
    const Json* value = member(object, key);
    const std::string here = path.empty() ? key : path + "." + key;
    if (!value) {
      fail(here, "missing");
      return std::nullopt;
    }
    if (!value->is_number_integer()) {
      fail(here, "expected an integer");
      return std::nullopt;
    }
    return value->get<std::int64_t>();
  }

  std::string domain(const Json& value, const std::string& path) {
    const std::string text = string_at(value, path);
    if (failed()) return {};
    auto normalized = normalize_domain(text);
    if (!normalized) {
      fail(path, "not a domain name: \"" + printable_ascii(text, kQuoteBytes) + "\"");
      return {};
    }
    return *normalized;
  }

  DatagramFailure failure(const Json& value, const std::string& path) {
    DatagramFailure out;
    if (!value.is_object()) {
      fail(path, "expected an object");
      return out;
    }
    if (const auto code = integer(value, "c", path)) {
      if (const auto type = result_type_from_failure_code(*code)) {
        out.code = *type;
      } else {
        fail(path + ".c", "unknown failure code " + std::to_string(*code));
      }
    }
    out.sending_mta_ip = optional_string(value, "s", path);
    out.receiving_mx_hostname = optional_string(value, "n", path);
    out.receiving_mx_helo = optional_string(value, "h", path);
    out.receiving_ip = optional_string(value, "r", path);
    out.additional_information = optional_string(value, "a", path);
    out.failure_reason_code = optional_string(value, "f", path);
    return out;
  }

  std::vector<DatagramFailure> failures(const Json& policy, const std::string& path) {
    std::vector<DatagramFailure> out;
    const Json* details = member(policy, "failure-details");
    if (!details) return out;
    const std::string here = path + ".failure-details";
    if (!details->is_array()) {
      fail(here, "expected an array");
      return out;
    }
    if (details->size() > kMaxDatagramFailures) {
      fail(here, "more than " + std::to_string(kMaxDatagramFailures) + " entries");
      return out;
    }
    for (std::size_t i = 0; i < details->size() && !failed(); ++i)
      out.push_back(failure((*details)[i], here + "[" + std::to_string(i) + "]"));
    return out;
  }

  DatagramPolicy policy(const Json& value, const std::string& path, const std::string& rcpt_domain) {
    DatagramPolicy out;
    if (!value.is_object()) {
      fail(path, "expected an object");
      return out;
    }
    if (const auto number = integer(value, "policy-type", path)) {
      if (const auto type = policy_type_from_number(*number)) {
        out.type = *type;
      } else {
        fail(path + ".policy-type", "unknown policy type " + std::to_string(*number));
      }
    }
    const Json* domain_value = member(value, "policy-domain");
    out.domain = domain_value ? domain(*domain_value, path + ".policy-domain") : rcpt_domain;
    out.strings = optional_strings(value, "policy-string", path);
    out.mx_hosts = optional_strings(value, "mx-host", path);
    out.failures = failures(value, path);
    const auto added = integer(value, "t", path);
    if (added && !failed() && *added != static_cast<std::int64_t>(out.failures.size()))
      fail(path + ".t",
           std::to_string(*added) + " but " + std::to_string(out.failures.size()) + " failure details");
    if (const auto final_result = integer(value, "f", path)) {
      if (*final_result != 0 && *final_result != 1) fail(path + ".f", "expected 0 or 1");
      out.delivery_failed = *final_result == 1;
    }
    return out;
  }

  TlsrptDatagram datagram(const Json& root) {
    TlsrptDatagram out;
    if (!root.is_object()) {
      fail("", "expected a JSON object");
      return out;
    }
    if (const Json* version = member(root, "dpv");
        version && !(version->is_string() && version->get<std::string>() == "1")) {
      fail("dpv", "unsupported protocol version " + printable_ascii(version->dump(), kQuoteBytes));
      return out;
    }
    const Json* d = member(root, "d");
    if (!d) fail("d", "missing");
    if (d) out.domain = domain(*d, "d");
    const Json* record = member(root, "pr");
    if (!record) fail("pr", "missing");
    if (record) out.record = string_at(*record, "pr");
    const Json* policies = member(root, "policies");
    if (!policies || !policies->is_array() || policies->empty()) {
      fail("policies", "expected a non-empty array");
      return out;
    }
    if (policies->size() > kMaxDatagramPolicies) {
      fail("policies", "more than " + std::to_string(kMaxDatagramPolicies) + " entries");
      return out;
    }
    for (std::size_t i = 0; i < policies->size() && !failed(); ++i)
      out.policies.push_back(policy((*policies)[i], "policies[" + std::to_string(i) + "]", out.domain));
    return out;
  }

 private:
  std::optional<DatagramError> error_;
};

std::string joined(const std::vector<std::string>& parts, char separator) {
  std::string out;
  for (const std::string& part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

TlsrptSession session_base(const DatagramPolicy& policy, std::int64_t at) {
  TlsrptSession s;
  s.at = at;
  s.policy_type = std::string(policy_type_name(policy.type));
  s.policy_domain = policy.domain;
  s.policy_string = joined(policy.strings, '\n');
  s.mx_patterns = joined(policy.mx_hosts, ' ');
  return s;
}

TlsrptSession failed_session(const DatagramPolicy& policy, const DatagramFailure& failure, std::int64_t at) {
  TlsrptSession s = session_base(policy, at);
  s.result_type = failure.code;
  s.failure_reason_code = failure.failure_reason_code;
  s.sending_mta_ip = failure.sending_mta_ip;
  s.receiving_mx_hostname = failure.receiving_mx_hostname;
  s.receiving_ip = failure.receiving_ip;
  s.additional_information = failure.additional_information;
  return s;
}

}  // namespace

int failure_code(ResultType type) {
  for (const auto& [value, code] : kCodes) {
    if (value == type) return code;
  }
  return 205;  // unreachable for valid enum values
}

std::optional<ResultType> result_type_from_failure_code(std::int64_t code) {
  for (const auto& [value, number] : kCodes) {
    if (number == code) return value;
  }
  return std::nullopt;
}

std::string encode_datagram(const TlsrptDatagram& datagram) {
  OrderedJson out = OrderedJson::object();
  out["dpv"] = "1";
  out["d"] = datagram.domain;
  out["pr"] = datagram.record;
  OrderedJson policies = OrderedJson::array();
  for (const DatagramPolicy& policy : datagram.policies) policies.push_back(policy_json(policy));
  out["policies"] = std::move(policies);
  // Invalid UTF-8 (never in our own sessions) is replaced, not thrown.
  return out.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

Result<TlsrptDatagram, DatagramError> decode_datagram(std::string_view bytes) {
  const auto parsed = parse_bounded_json(bytes, kMaxDatagramBytes, kMaxDepth);
  if (!parsed) return DatagramError{"", parsed.error().message};
  Reader reader;
  TlsrptDatagram datagram = reader.datagram(*parsed);
  if (reader.failed()) return reader.error();
  return datagram;
}

TlsrptDatagram datagram_from_session(const TlsrptSession& session, std::string_view record) {
  DatagramPolicy policy;
  policy.type = policy_type_of(session.policy_type);
  policy.domain = session.policy_domain;
  policy.strings = policy_string_lines(session.policy_string);
  policy.mx_hosts = mx_pattern_words(session.mx_patterns);
  if (session.result_type) {
    DatagramFailure failure;
    failure.code = *session.result_type;
    failure.sending_mta_ip = session.sending_mta_ip;
    failure.receiving_mx_hostname = session.receiving_mx_hostname;
    failure.receiving_ip = session.receiving_ip;
    failure.additional_information = session.additional_information;
    failure.failure_reason_code = session.failure_reason_code;
    policy.failures.push_back(std::move(failure));
    policy.delivery_failed = true;
  }
  return TlsrptDatagram{session.policy_domain, std::string(record), {std::move(policy)}};
}

std::vector<TlsrptSession> sessions_from_datagram(const TlsrptDatagram& datagram, std::int64_t at) {
  std::vector<TlsrptSession> sessions;
  for (const DatagramPolicy& policy : datagram.policies) {
    for (const DatagramFailure& failure : policy.failures)
      sessions.push_back(failed_session(policy, failure, at));
    if (!policy.delivery_failed) {
      TlsrptSession success = session_base(policy, at);
      success.success = true;
      sessions.push_back(std::move(success));
    } else if (policy.failures.empty()) {
      DatagramFailure unspecified;
      unspecified.failure_reason_code = "no-failure-detail";
      sessions.push_back(failed_session(policy, unspecified, at));
    }
  }
  return sessions;
}

}  // namespace mtasts::policy
