// Gathers the facts about one recipient's next hop, then decide() (decide.h).
//
// RFC 8461 §3.4 (MTA-STS Policies and Smart Hosts): when the sending MTA
// hands mail to a smart host, the policy that applies is the smart host's,
// not the recipient domain's: the relay is the "MX host" the MTA connects to.
// Our reading: the Policy Domain is the relay's host name itself (what the
// MTA was configured with, e.g. "relay.example.net"), looked up exactly as a
// recipient domain would be ("_mta-sts.relay.example.net"), never a parent
// domain (§3.1 allows no tree walk). A relay given as an IP literal has no
// domain, hence no policy (Resolution source None).
// §4.1: each candidate host is matched against the policy's mx patterns;
// §4.2-4.3: matching hosts are probed in preference order until one offers
// STARTTLS with a valid certificate; RFC 7672 §2.2: a host whose TLSA RRset
// is DNSSEC-secure is probed with DANE instead, and a bogus TLSA answer makes
// the host unusable; RFC 7505: a null MX means no candidates;
// RFC 5321 §5.1: without MX records the domain itself is the only host.
//
// Why a TLS failure on one address ends the host's probing while an
// unreachable address moves on to the next: a certificate or STARTTLS
// failure is a property of the host (and a TLSRPT failure), a refused
// connection is not.
#include "policy/engine/next_hop_checker.h"
#include "policy/reason.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "policy/engine/probe_cache.h"
#include "policy/mx_match.h"

namespace mtasts::policy {

namespace {

bool past(Deadline deadline) { return std::chrono::steady_clock::now() >= deadline; }

// The Policy Domain (§3.4 reading above); "" when there is none.
std::string policy_domain_of(const NextHop& hop) {
  return hop.kind == NextHopKind::SmartHost ? hop.relay_host : hop.recipient_domain;
}

// Policy-relevant only with a policy whose mode asks for checks (§5).
bool policy_applies(const Resolution& resolution) {
  return resolution.policy && resolution.policy->policy.mode != Mode::None;
}

// An enforce policy covers DANE itself: its hosts are probed with TLSA.
bool enforce_policy(const Resolution& resolution) {
  return resolution.policy && resolution.policy->policy.mode == Mode::Enforce;
}

// The MTA looks up MX records for this hop, so their DNSSEC status is known
// (a bracketed relay has none: the MTA's own TLS policy for it applies).
bool mx_routed(const NextHop& hop) {
  return hop.kind != NextHopKind::SmartHost || (hop.relay_mx_lookup && !hop.relay_host.empty());
}

bool tlsa_lookup_failed(const TlsaAnswer& tlsa) {
  return tlsa.status == DnsStatus::ServFail || tlsa.status == DnsStatus::Timeout;
}

CandidateFacts candidate(std::string host, std::uint16_t preference) {
  CandidateFacts c;
  c.host = std::move(host);
  c.preference = preference;
  return c;
}

// NotDane: the DANE walk found no usable secure TLSA (not probed).
enum class HostOutcome { Verified, Failed, Unreachable, DeadlinePassed, NotDane };

// What the probes must establish for a host: anything that passes, or DANE only.
enum class ProbeScope { Any, DaneOnly };

HostOutcome host_outcome(const ProbeResult& result) {
  switch (result.outcome) {
    case ProbeOutcome::Verified:
    case ProbeOutcome::DaneVerified:
      return HostOutcome::Verified;
    case ProbeOutcome::TlsFailure:
      return HostOutcome::Failed;
    case ProbeOutcome::Unreachable:
      break;
  }
  return HostOutcome::Unreachable;
}

// What a TLSRPT session says about the policy that applied (RFC 8460 §4.4).
struct ReportContext {
  std::string policy_domain;
  std::string policy_string;  // the raw policy text
  std::string mx_patterns;    // space-joined
};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

ProbeResult tlsa_failure(const std::string& address, DnsStatus status) {
  ProbeResult result;
  result.outcome = ProbeOutcome::Unreachable;
  result.reason = reason::kTlsaLookupFailed;
  result.address = address;
  result.detail = "TLSA lookup: " + std::string(to_string(status));
  return result;
}

// RFC 8460 §4.4 "policy-string" for tlsa: the TLSA records' data in
// presentation format (RFC 6698 §2.2: usage, selector, matching type, hex),
// one per line, without owner name, TTL or class ("3 1 1 0C72AC70..."), as
// Postfix's libtlsrpt reports them: the MX host is the policy's "mx-host".
std::string tlsa_policy_string(const std::vector<TlsaRecord>& records) {
  std::string out;
  for (const auto& r : records) {
    if (!out.empty()) out += '\n';
    out += std::to_string(r.usage) + " " + std::to_string(r.selector) + " " +
           std::to_string(r.matching_type) + " ";
    for (const std::uint8_t byte : r.data) {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02X", byte);
      out += hex;
    }
  }
  return out;
}

// One probe that ran, as a session; nullopt for an unreachable host.
std::optional<TlsrptSession> probe_session(const ReportContext& context, const ProbeRequest& request,
                                           const ProbeResult& result, std::int64_t now) {
  if (result.outcome == ProbeOutcome::Unreachable) return std::nullopt;
  TlsrptSession s;
  s.at = now;
  s.policy_domain = context.policy_domain;
  if (request.tlsa) {
    s.policy_type = "tlsa";
    s.policy_string = tlsa_policy_string(*request.tlsa);
    s.mx_patterns = request.host;
  } else {
    s.policy_type = "sts";
    s.policy_string = context.policy_string;
    s.mx_patterns = context.mx_patterns;
  }
  s.success = result.outcome != ProbeOutcome::TlsFailure;
  s.sending_mta_ip = result.source_address;
  if (s.success) return s;
  s.result_type = result.result_type.value_or(ResultType::ValidationFailure);
  s.failure_reason_code = result.reason;
  s.receiving_mx_hostname = request.host;
  s.receiving_ip = result.address;
  return s;
}

}  // namespace

struct NextHopChecker::Impl {
  Resolver& resolver;
  MxDns& other_dns;         // next hops of domains without a known policy
  MxDns& known_policy_dns;  // next hops of domains with one (a context of their own)
  const Clock& clock;
  NextHopCheckerConfig config;
  std::atomic<TlsrptSink*> sink{nullptr};
  std::mutex reported_mu;
  // Failures found without a probe (report_without_probe), until when they
  // count, so every message does not count one more. (Probe results are
  // counted with the probe cache's entry: ProbeCache::Use.)
  std::unordered_map<std::string, std::int64_t> reported;  // key -> until when; guarded by reported_mu
  ProbeCache probes;                                       // last: destroyed (and drained) first

  Impl(Resolver& r, MxDns& d, MxDns& known, TlsProber& prober, const Clock& c, NextHopCheckerConfig cfg,
       WorkerPool* pool)
      : resolver(r),
        other_dns(d),
        known_policy_dns(known),
        clock(c),
        config(std::move(cfg)),
        probes(prober, clock,
               ProbeCacheConfig{config.probe_success_ttl, config.probe_failure_ttl, 50000,
                                config.max_parallel_probes},
               pool) {}

  Resolution resolve(const std::string& domain, Deadline deadline) {
    if (domain.empty()) return Resolution{};  // IP-literal relay: no Policy Domain
    return resolver.resolve(domain, deadline);
  }

  // A burst of recipients at domains whose DNS answers late makes
  // libunbound time out against the forwarder and treat it as down (fast
  // SERVFAIL) for every name of that context; anyone who can make the MTA
  // mail arbitrary domains can send one (issue #10 item 1). Domains with a
  // known policy are looked up in a context the burst does not reach.
  MxDns& dns_for(const DecisionFacts& facts) {
    return facts.resolution.policy ? known_policy_dns : other_dns;
  }
  void gather(const NextHop& hop, DecisionFacts& facts, Deadline deadline);
  void gather_dane(const NextHop& hop, DecisionFacts& facts, bool mx_known, Deadline deadline);
  void collect_candidates(MxDns& dns, const NextHop& hop, DecisionFacts& facts, Deadline deadline);
  void add_mx_candidates(MxDns& dns, const std::string& domain, DecisionFacts& facts, Deadline deadline);
  void probe_candidates(MxDns& dns, DecisionFacts& facts, const ReportContext& context, std::uint16_t port,
                        Deadline deadline);
  HostOutcome probe_host(MxDns& dns, CandidateFacts& host, const ReportContext& context, std::uint16_t port,
                         Deadline deadline, ProbeScope scope = ProbeScope::Any);
  ProbeRequest request_for(const std::string& host, std::uint16_t port) const;
  ProbeCache::OnProbed reporter(const ReportContext& context);
  void report_probe(const ReportContext& context, const ProbeRequest& request, const ProbeResult& result);
  // True, and the key marked, when `key` was not marked within `ttl` s.
  bool first_report_within_ttl(const std::string& key, std::int64_t now, std::int64_t ttl);
  void report_without_probe(const ReportContext& context, std::string policy_type, ResultType type,
                            std::string reason, const std::string& host);
};

// A probe's result counts once for every policy domain whose mail it
// decided, per probe lifetime (README "TLSRPT records"): the probe that ran
// reports on its worker (even when its caller gave up), and a cached or
// shared result reports when the probe cache says it is its first use by
// this domain (ProbeCache::Use, kept with the entry: no lock of ours on the
// warm path). Without this a domain whose MX was probed for another domain
// would get no session while the result is cached, and its report would
// undercount.
void NextHopChecker::Impl::report_probe(const ReportContext& context, const ProbeRequest& request,
                                        const ProbeResult& result) {
  TlsrptSink* const to = sink.load();
  if (to == nullptr) return;
  if (const auto session = probe_session(context, request, result, clock.now())) to->record(*session);
}

ProbeCache::OnProbed NextHopChecker::Impl::reporter(const ReportContext& context) {
  if (sink.load() == nullptr) return {};
  return [this, context](const ProbeRequest& request, const ProbeResult& result) {
    report_probe(context, request, result);
  };
}

bool NextHopChecker::Impl::first_report_within_ttl(const std::string& key, std::int64_t now,
                                                   std::int64_t ttl) {
  std::lock_guard lock(reported_mu);
  if (const auto it = reported.find(key); it != reported.end() && now < it->second) return false;
  if (reported.size() >= 50000) std::erase_if(reported, [&](const auto& kv) { return kv.second <= now; });
  if (reported.size() >= 50000) reported.clear();  // like the probe cache: costs extra records only
  reported.insert_or_assign(key, now + ttl);
  return true;
}

void NextHopChecker::Impl::report_without_probe(const ReportContext& context, std::string policy_type,
                                                ResultType type, std::string reason,
                                                const std::string& host) {
  TlsrptSink* const to = sink.load();
  if (to == nullptr) return;
  const std::int64_t now = clock.now();
  if (!first_report_within_ttl(policy_type + '\0' + reason + '\0' + context.policy_domain + '\0' + host, now,
                               config.probe_failure_ttl))
    return;
  TlsrptSession s;
  s.at = now;
  s.policy_type = std::move(policy_type);
  s.policy_domain = context.policy_domain;
  if (s.policy_type == "sts") {
    s.policy_string = context.policy_string;
    s.mx_patterns = context.mx_patterns;
  } else {
    s.mx_patterns = host;
  }
  s.result_type = type;
  s.failure_reason_code = std::move(reason);
  s.receiving_mx_hostname = host;
  to->record(s);
}

void NextHopChecker::Impl::gather(const NextHop& hop, DecisionFacts& facts, Deadline deadline) {
  const StoredPolicy& stored = *facts.resolution.policy;
  const ReportContext context{policy_domain_of(hop), stored.raw, join(stored.policy.mx)};
  collect_candidates(dns_for(facts), hop, facts, deadline);
  for (auto& c : facts.candidates) {
    c.matches_policy = !c.host.empty() && policy_allows_mx(stored.policy, c.host);
    // RFC 8461 §4.1 / RFC 8460 §4.3.1: an MX host the policy does not list.
    if (!c.matches_policy && !c.host.empty())
      report_without_probe(context, "sts", ResultType::ValidationFailure, "mx-not-in-policy", c.host);
  }
  if (past(deadline)) {
    facts.deadline_passed = true;
    return;
  }
  if (config.probing_enabled) probe_candidates(dns_for(facts), facts, context, hop.port, deadline);
}

// RFC 7672 §2.2 without a binding policy: the hosts in preference order,
// as the MTA tries them, until one is deliverable (decide_dane()). The MX
// answer of the policy path is reused when it ran (`mx_known`).
void NextHopChecker::Impl::gather_dane(const NextHop& hop, DecisionFacts& facts, bool mx_known,
                                       Deadline deadline) {
  MxDns& dns = dns_for(facts);
  DecisionFacts looked_up;
  if (!mx_known) collect_candidates(dns, hop, looked_up, deadline);
  const DecisionFacts& mx = mx_known ? facts : looked_up;
  DaneFacts dane;
  dane.mx_secure = mx.mx_security == DnsSecurity::Secure && mx.mx_status != DnsStatus::ServFail &&
                   mx.mx_status != DnsStatus::Timeout;
  // Mode none applies no sts policy (next_hop_checker.h, Readings).
  ReportContext context{policy_domain_of(hop), "", ""};
  if (policy_applies(facts.resolution)) {
    context.policy_string = facts.resolution.policy->raw;
    context.mx_patterns = join(facts.resolution.policy->policy.mx);
  }
  std::size_t seen = 0;
  for (const auto& c : dane.mx_secure ? mx.candidates : std::vector<CandidateFacts>{}) {
    if (c.host.empty()) continue;
    if (seen++ == config.max_hosts) {
      dane.hosts_left = true;
      break;
    }
    CandidateFacts host = candidate(c.host, c.preference);
    const HostOutcome outcome = probe_host(dns, host, context, hop.port, deadline, ProbeScope::DaneOnly);
    dane.hosts.push_back(std::move(host));
    if (outcome == HostOutcome::DeadlinePassed) {
      dane.deadline_passed = true;
      break;
    }
    if (outcome == HostOutcome::Verified || outcome == HostOutcome::NotDane) break;
  }
  facts.dane = std::move(dane);
}

void NextHopChecker::Impl::collect_candidates(MxDns& dns, const NextHop& hop, DecisionFacts& facts,
                                              Deadline deadline) {
  if (hop.kind != NextHopKind::SmartHost) {
    add_mx_candidates(dns, hop.recipient_domain, facts, deadline);
  } else if (hop.relay_mx_lookup && !hop.relay_host.empty()) {
    add_mx_candidates(dns, hop.relay_host, facts, deadline);
  } else {
    // "[relay]": the MTA connects to the relay itself (an IP literal keeps
    // host "", which matches no policy).
    facts.candidates.push_back(candidate(hop.relay_host, 0));
  }
}

void NextHopChecker::Impl::add_mx_candidates(MxDns& dns, const std::string& domain, DecisionFacts& facts,
                                             Deadline deadline) {
  const MxAnswer mx = dns.lookup_mx(domain, deadline);
  facts.mx_status = mx.status;
  facts.mx_security = mx.security;
  facts.null_mx = mx.null_mx;
  if (mx.security == DnsSecurity::Bogus || mx.null_mx) return;
  switch (mx.status) {
    case DnsStatus::Ok:
      for (const auto& record : mx.records)
        facts.candidates.push_back(candidate(record.host, record.preference));
      std::stable_sort(facts.candidates.begin(), facts.candidates.end(),
                       [](const auto& a, const auto& b) { return a.preference < b.preference; });
      break;
    case DnsStatus::NxDomain:
    case DnsStatus::NoData:
      facts.candidates.push_back(candidate(domain, 0));  // RFC 5321 §5.1 implicit MX
      break;
    case DnsStatus::ServFail:
    case DnsStatus::Timeout:
      break;  // decide(): Unknown, the retry may do better
  }
}

void NextHopChecker::Impl::probe_candidates(MxDns& dns, DecisionFacts& facts, const ReportContext& context,
                                            std::uint16_t port, Deadline deadline) {
  std::size_t tried = 0;
  for (auto& c : facts.candidates) {
    if (!c.matches_policy || c.host.empty()) continue;
    if (tried++ == config.max_hosts) return;
    const HostOutcome outcome = probe_host(dns, c, context, port, deadline);
    if (outcome == HostOutcome::Verified) return;
    if (outcome == HostOutcome::DeadlinePassed) {
      facts.deadline_passed = true;
      return;
    }
  }
}

ProbeRequest NextHopChecker::Impl::request_for(const std::string& host, std::uint16_t port) const {
  ProbeRequest request;
  request.host = host;
  request.port = port;
  request.implicit_tls = port == 465;  // RFC 8314 submissions port: TLS from the first byte
  request.ehlo_name = config.ehlo_name;
  request.step_timeout = config.probe_step_timeout;
  return request;
}

HostOutcome NextHopChecker::Impl::probe_host(MxDns& dns, CandidateFacts& host, const ReportContext& context,
                                             std::uint16_t port, Deadline deadline, ProbeScope scope) {
  if (past(deadline)) return HostOutcome::DeadlinePassed;
  const TlsaAnswer tlsa = dns.lookup_tlsa(host.host, port, deadline);
  if (tlsa.security == DnsSecurity::Bogus) {
    host.tlsa_bogus = true;  // RFC 7672 §2.1: unusable; decide() records dnssec-invalid
    report_without_probe(context, "tlsa", ResultType::DnssecInvalid, "tlsa-bogus", host.host);
    return HostOutcome::Failed;
  }
  ProbeRequest request = request_for(host.host, port);
  if (tlsa.status == DnsStatus::Ok && tlsa.security == DnsSecurity::Secure) {
    auto usable = usable_tlsa(tlsa.records);
    if (!usable.empty()) request.tlsa = std::move(usable);
  }
  host.dane = scope == ProbeScope::DaneOnly && request.tlsa.has_value();
  // DANE on its own asks nothing of a host without TLSA (opportunistic TLS);
  // a failed lookup still needs the address check below (signed zone?).
  if (scope == ProbeScope::DaneOnly && !request.tlsa && !tlsa_lookup_failed(tlsa))
    return HostOutcome::NotDane;
  const DnsAnswer addresses = dns.lookup_host_addresses(host.host, deadline);
  // A lookup cut short by the deadline must not turn a DANE host into a
  // WebPKI one (nor answer from a WebPKI cache entry).
  if (past(deadline)) return HostOutcome::DeadlinePassed;
  if (addresses.status != DnsStatus::Ok || addresses.security == DnsSecurity::Bogus)
    return HostOutcome::Unreachable;
  // RFC 7672 §2.2: in a signed zone a TLSA lookup that failed (not "none")
  // leaves it open whether DANE applies; WebPKI must not stand in for it, so
  // the host stays unverified, like an unreachable one, without a probe.
  if (addresses.security == DnsSecurity::Secure && tlsa_lookup_failed(tlsa)) {
    host.probes.push_back(tlsa_failure(addresses.records.front(), tlsa.status));
    return HostOutcome::Unreachable;
  }
  if (scope == ProbeScope::DaneOnly && !request.tlsa) return HostOutcome::NotDane;  // unsigned zone
  const std::size_t count = std::min(addresses.records.size(), config.max_addresses_per_host);
  for (std::size_t i = 0; i < count; ++i) {
    request.address = addresses.records[i];
    ProbeCache::Use use{context.policy_domain};
    auto result = probes.probe(request, deadline, reporter(context), &use);
    if (!result) return HostOutcome::DeadlinePassed;
    if (use.first) report_probe(context, request, *result);  // a cache hit counts for this domain too
    const HostOutcome outcome = host_outcome(*result);
    host.probes.push_back(std::move(*result));
    if (outcome != HostOutcome::Unreachable) return outcome;
  }
  return HostOutcome::Unreachable;
}

NextHopChecker::NextHopChecker(Resolver& resolver, MxDns& dns, TlsProber& prober, const Clock& clock,
                               NextHopCheckerConfig config, WorkerPool* pool, MxDns* known_policy_dns)
    : impl_(std::make_unique<Impl>(resolver, dns, known_policy_dns != nullptr ? *known_policy_dns : dns,
                                   prober, clock, std::move(config), pool)) {}

NextHopChecker::~NextHopChecker() { wait_idle(); }

CheckResult NextHopChecker::check(const NextHop& next_hop, Deadline deadline) {
  CheckResult out;
  out.policy_domain = policy_domain_of(next_hop);
  DecisionFacts& facts = out.facts;
  // Unknown (no macros yet): the MTA's default route, the recipient's MX.
  facts.next_hop =
      next_hop.kind == NextHopKind::SmartHost ? NextHopKind::SmartHost : NextHopKind::RecipientDomain;
  facts.probing_enabled = impl_->config.probing_enabled;
  facts.resolution = impl_->resolve(out.policy_domain, deadline);
  facts.deadline_passed = facts.resolution.reason == reason::kDeadline || past(deadline);
  const bool gathered = policy_applies(facts.resolution) && !facts.deadline_passed;
  if (gathered) impl_->gather(next_hop, facts, deadline);
  const bool dane_on_its_own = impl_->config.dane_outside_policy && impl_->config.probing_enabled &&
                               !enforce_policy(facts.resolution) && mx_routed(next_hop);
  if (dane_on_its_own && !past(deadline)) impl_->gather_dane(next_hop, facts, gathered, deadline);
  out.verdict = decide(facts);
  return out;
}

void NextHopChecker::wait_idle() { impl_->probes.wait_idle(); }

bool NextHopChecker::wait_idle_until(std::chrono::steady_clock::time_point deadline) {
  return impl_->probes.wait_idle_until(deadline);
}

void NextHopChecker::set_tlsrpt_sink(TlsrptSink* sink) { impl_->sink.store(sink); }

}  // namespace mtasts::policy
