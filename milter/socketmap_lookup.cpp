#include "milter/socketmap_lookup.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

#include "policy/logfmt.h"
#include "policy/policy.h"

namespace mtasts::milter {
namespace {

using policy::DaneCoverage;
using policy::SocketmapAnswer;
using policy::SocketmapStatus;

std::string_view kind_word(const RecipientRoute& route) {
  switch (route.kind) {
    case RouteKind::SmartHost:
      return "relay";
    case RouteKind::RecipientDomain:
      return "domain";
    default:
      return "-";
  }
}

// RFC 8461 §3.4: a relay's own policy; otherwise the domain's.
const std::string& policy_domain_of(const RecipientRoute& route) {
  return route.kind == RouteKind::SmartHost ? route.relay_host : route.domain;
}

bool trusted_relay(const RecipientRoute& route, const DecisionConfig& config) {
  const auto& trusted = config.trusted_relays;
  return route.kind == RouteKind::SmartHost &&
         std::find(trusted.begin(), trusted.end(), route.relay_host) != trusted.end();
}

SocketmapLookupResult reusable(SocketmapAnswer answer, const policy::Resolution& resolution,
                               DaneCoverage dane, bool enforces, std::int64_t now, std::int64_t recheck) {
  if (answer.status == SocketmapStatus::Temp || recheck <= 0) return {std::move(answer), 0, 0, std::nullopt};
  if (enforces && dane == DaneCoverage::Unknown) return {std::move(answer), 0, 0, std::nullopt};
  const std::int64_t expiry =
      resolution.policy ? resolution.policy->expires_at : std::numeric_limits<std::int64_t>::max();
  return {std::move(answer), std::min(now + recheck, expiry), std::min(now + 2 * recheck, expiry),
          std::nullopt};
}

// What the answer depends on besides the policy: the decision settings of
// the policy domain (its override row applied) and the attributes switch.
policy::SocketmapSettings answer_settings_of(const DecisionConfig& decision, const Config& config) {
  return {
      decision.strict_testing,
      config.socketmap.tlsrpt_attributes ? policy::TlsrptAttributes::Append : policy::TlsrptAttributes::Omit,
      decision.enforce_action == Action::Continue ? policy::Enforcement::Off : policy::Enforcement::On};
}

void log_lookup(const std::string& key, const RecipientRoute& route, const policy::Resolution* resolution,
                DaneCoverage dane, const SocketmapAnswer& answer, std::int64_t elapsed_ms) {
  const auto* stored = resolution && resolution->policy ? &*resolution->policy : nullptr;
  spdlog::info(
      "socketmap event=lookup key={} next_hop={} policy_domain={} mode={} policy_id={} source={} dane={} "
      "answer={} why={} reason={} elapsed_ms={}",
      policy::logfmt_value(key), kind_word(route), policy::logfmt_value(policy_domain_of(route)),
      stored ? policy::to_string(stored->policy.mode) : "-",
      stored ? policy::logfmt_value(stored->txt_id) : "-",
      resolution ? policy::to_string(resolution->source) : "-", policy::to_string(dane),
      policy::to_string(answer.status), answer.why,
      resolution && !resolution->reason.empty() ? policy::logfmt_value(resolution->reason) : "-", elapsed_ms);
}

}  // namespace

SocketmapLookup::SocketmapLookup(policy::Resolver& resolver, policy::MxDns& mx_dns,
                                 const policy::Clock& clock, std::function<Settings()> settings)
    : resolver_(resolver), mx_dns_(mx_dns), clock_(clock), settings_(std::move(settings)) {}

SocketmapLookupResult SocketmapLookup::lookup(const std::string& key, policy::Deadline deadline) {
  const auto started = std::chrono::steady_clock::now();
  const auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
        .count();
  };
  const Settings settings = settings_();
  const Config& config = *settings.config;
  const std::int64_t now = clock_.now();
  const std::int64_t recheck = config.policy.txt_recheck_interval;
  const RecipientRoute route = route_next_hop(key, *rules_for(settings.config));
  if (route.kind == RouteKind::OutOfScope || trusted_relay(route, config.decision)) {
    const SocketmapAnswer answer{SocketmapStatus::NotFound, "",
                                 route.kind == RouteKind::OutOfScope ? "out-of-scope" : "trusted-relay"};
    log_lookup(key, route, nullptr, DaneCoverage::Unknown, answer, elapsed_ms());
    return {answer, now + recheck, now + 2 * recheck, std::nullopt};
  }
  const policy::Resolution resolution = resolver_.resolve(policy_domain_of(route), deadline);
  const policy::SocketmapSettings answer_settings =
      answer_settings_of(decision_config_for(settings, policy_domain_of(route)), config);
  const bool enforces = policy::socketmap_enforces(resolution, answer_settings);
  const policy::NextHopView hop = enforces ? next_hop_of(route, deadline) : policy::NextHopView{};
  const DaneCoverage dane = hop.dane;
  SocketmapAnswer answer = policy::choose_socketmap_answer(resolution, hop, answer_settings);
  log_lookup(key, route, &resolution, dane, answer, elapsed_ms());
  SocketmapLookupResult result = reusable(std::move(answer), resolution, dane, enforces, now, recheck);
  // Sendmail's sts rulesets read the data up to its end: the same answer
  // without the TLSRPT attributes, for the maps it asks.
  if (answer_settings.attributes == policy::TlsrptAttributes::Append &&
      result.answer.status == SocketmapStatus::Ok) {
    policy::SocketmapSettings plain = answer_settings;
    plain.attributes = policy::TlsrptAttributes::Omit;
    result.without_attributes = policy::choose_socketmap_answer(resolution, hop, plain);
  }
  return result;
}

std::shared_ptr<const RouteRules> SocketmapLookup::rules_for(const std::shared_ptr<const Config>& config) {
  return rules_.with([&config](RulesOfConfig& last) {
    if (last.config != config)
      last = {config, std::make_shared<const RouteRules>(rules_from(config->decision))};
    return last.rules;
  });
}

// The hosts the MTA may connect to, and what Postfix's DANE needs: the MX
// hosts (the domain itself when it has no MX, RFC 5321 §5.1), or a
// bracketed relay, and whether that answer was DNSSEC-secure. With a
// secure answer the TLSA records of every host give the DANE coverage.
policy::NextHopView SocketmapLookup::next_hop_of(const RecipientRoute& route, policy::Deadline deadline) {
  const std::string& name = policy_domain_of(route);
  policy::NextHopView view;
  bool secure = false;
  if (route.kind == RouteKind::SmartHost && !route.relay_mx_lookup) {
    const auto addresses = mx_dns_.lookup_host_addresses(name, deadline);
    if (addresses.status != policy::DnsStatus::Ok) return view;
    secure = addresses.security == policy::DnsSecurity::Secure;
    view.mx_hosts.push_back(name);
  } else {
    const auto mx = mx_dns_.lookup_mx(name, deadline);
    if (mx.security == policy::DnsSecurity::Bogus) return view;
    if (mx.null_mx) {
      view.dane = DaneCoverage::None;
      return view;
    }
    if (mx.status == policy::DnsStatus::NoData)
      view.mx_hosts.push_back(name);
    else if (mx.status != policy::DnsStatus::Ok)
      return view;
    for (const auto& record : mx.records) view.mx_hosts.push_back(record.host);
    secure = mx.security == policy::DnsSecurity::Secure;
  }
  if (!secure) {
    view.dane = DaneCoverage::None;
    return view;
  }
  std::vector<policy::TlsaAnswer> answers;
  answers.reserve(view.mx_hosts.size());
  for (const auto& host : view.mx_hosts) answers.push_back(mx_dns_.lookup_tlsa(host, route.port, deadline));
  view.dane = policy::dane_coverage(answers);
  return view;
}

}  // namespace mtasts::milter
