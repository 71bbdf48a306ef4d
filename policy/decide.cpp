// The verdict for one (message, recipient domain), RFC 8461 §4-§5, RFC 7672.
//
// RFC 8461 §4: a sending MTA with a valid policy checks that at least one of
// the policy's "mx" patterns matches the selected MX host (§4.1) and that the
// host supports STARTTLS and offers a PKIX certificate valid for that host
// (§4.2: SAN dNSName matching, unexpired, chaining to a trusted root).
// §4.1: a host that no pattern matches is not a valid candidate.
// RFC 8461 §5, by mode:
//   "enforce": "In this mode, Sending MTAs MUST NOT deliver the message to
//     hosts that fail MX matching or certificate validation or that do not
//     support STARTTLS."
//   "testing": Sending MTAs that implement TLSRPT "send a report indicating
//     policy application failures"; "in any case, messages may be delivered
//     as though there were no MTA-STS validation failure."
//   "none": treat the Policy Domain "as though it does not have any active
//     policy".
// RFC 7672 §2.2: a host whose TLSA RRset is DNSSEC-secure is authenticated by
// DANE, not WebPKI, and a bogus TLSA answer makes that host unusable; so a
// DANE failure is never rescued by a WebPKI pass of the same host.
//
// RFC 7672 §2.2 on its own (decide_dane): an SMTP client that finds usable
// DNSSEC-validated TLSA records for a host "MUST" authenticate it with them
// and must not deliver to it otherwise; hosts without them get
// opportunistic TLS. So where no enforce policy binds, a next hop is held
// only when every host the MTA would try is a DANE host that failed.
//
// Why the Verdict does not depend on the mode: "testing" and "enforce" fail
// the same hosts; only the action differs, and that is the milter's choice.
// A verdict is Unknown rather than Fail when facts are missing (deadline,
// temporary DNS error), so a retry can still reach Pass.
#include "policy/decide.h"
#include "policy/reason.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace mtasts::policy {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::Pass:
      return "pass";
    case Outcome::Fail:
      return "fail";
    case Outcome::Unknown:
      return "unknown";
  }
  return "unknown";
}

std::string_view to_string(TlsStatus status) {
  switch (status) {
    case TlsStatus::Verified:
      return "verified";
    case TlsStatus::Dane:
      return "dane";
    case TlsStatus::NotProbed:
      return "not-probed";
    case TlsStatus::Failed:
      return "failed";
    case TlsStatus::Unverified:
      return "unverified";
    case TlsStatus::None:
      return "none";
  }
  return "none";
}

namespace {

// What the probes told us about one candidate host.
struct HostResult {
  enum class State { Verified, DaneVerified, Failed, Unreachable } state = State::Unreachable;
  ResultType type = ResultType::ValidationFailure;  // for Failed
  std::string reason;                               // for Failed
  bool temporary = false;                           // for Failed
};

bool is_dane_failure(const ProbeResult& probe) {
  return probe.outcome == ProbeOutcome::TlsFailure && probe.result_type &&
         (*probe.result_type == ResultType::TlsaInvalid || *probe.result_type == ResultType::DnssecInvalid);
}

HostResult failed_host(const ProbeResult& probe) {
  return {HostResult::State::Failed, probe.result_type.value_or(ResultType::ValidationFailure),
          probe.reason.empty() ? "tls-failure" : probe.reason, probe.temporary};
}

// One host: DANE verified on any address wins; a WebPKI pass counts unless the
// host has a DANE failure (RFC 7672: DANE, not WebPKI, governs such a host);
// otherwise the first address's failure; otherwise unreachable.
HostResult classify_host(const CandidateFacts& candidate) {
  if (candidate.tlsa_bogus) return {HostResult::State::Failed, ResultType::DnssecInvalid, "tlsa-bogus"};
  bool webpki_verified = false;
  bool dane_failed = false;
  const ProbeResult* first_failure = nullptr;
  for (const auto& probe : candidate.probes) {
    switch (probe.outcome) {
      case ProbeOutcome::DaneVerified:
        return {HostResult::State::DaneVerified, {}, {}};
      case ProbeOutcome::Verified:
        webpki_verified = true;
        break;
      case ProbeOutcome::TlsFailure:
        if (first_failure == nullptr) first_failure = &probe;
        dane_failed = dane_failed || is_dane_failure(probe);
        break;
      case ProbeOutcome::Unreachable:
        break;
    }
  }
  if (webpki_verified && !dane_failed) return {HostResult::State::Verified, {}, {}};
  if (first_failure != nullptr) return failed_host(*first_failure);
  return {};
}

// IP literals (host "") never match a policy, whatever the engine claims.
bool matches(const CandidateFacts& candidate) { return candidate.matches_policy && !candidate.host.empty(); }

// Rule 1: no policy, or mode none: deliver as if MTA-STS were not there (§5).
// A temporary discovery error leaves it open whether a policy exists: Unknown
// (the milter still delivers; the reason is for the log and the retry).
Verdict no_policy_verdict(const DecisionFacts& facts) {
  const Resolution& resolution = facts.resolution;
  Verdict v;
  v.result_type = resolution.result_type;
  v.tls = TlsStatus::None;
  if (resolution.temporary) {
    v.outcome = Outcome::Unknown;
    v.reason = !resolution.reason.empty() ? resolution.reason
               : facts.deadline_passed    ? std::string(reason::kDeadline)
                                          : "no-policy";
    return v;
  }
  v.reason = resolution.reason.empty() ? "no-policy" : resolution.reason;
  return v;
}

Verdict mode_none_verdict(const DecisionFacts& facts) {
  Verdict v;
  v.mode = Mode::None;
  v.result_type = facts.resolution.result_type;
  v.reason = "mode-none";
  v.tls = TlsStatus::None;
  return v;
}

// Rules 2-3: the recipient domain's MX lookup (not used for a smart host).
std::optional<Verdict> mx_lookup_verdict(const DecisionFacts& facts, Mode mode) {
  if (facts.next_hop != NextHopKind::RecipientDomain) return std::nullopt;
  Verdict v;
  v.mode = mode;
  v.tls = TlsStatus::Unverified;
  if (facts.mx_security == DnsSecurity::Bogus) {
    v.outcome = Outcome::Unknown;
    v.reason = "mx-lookup-bogus";
  } else if (facts.mx_status == DnsStatus::ServFail) {
    v.outcome = Outcome::Unknown;
    v.reason = "mx-lookup-servfail";
  } else if (facts.mx_status == DnsStatus::Timeout) {
    v.outcome = Outcome::Unknown;
    v.reason = "mx-lookup-timeout";
  } else if (facts.null_mx) {
    v.outcome = Outcome::Pass;  // RFC 7505: the MTA bounces it; nothing to protect
    v.reason = "null-mx";
  } else {
    return std::nullopt;
  }
  return v;
}

// Why nothing verified or failed. A probe the daemon refused to start
// (probe.max_parallel reached) says nothing about the host, and a failed TLSA
// lookup in a signed zone is a DNS problem: the log must not say "unreachable".
std::string unknown_reason(const std::vector<const CandidateFacts*>& candidates) {
  bool tlsa_failed = false;
  for (const CandidateFacts* candidate : candidates)
    for (const ProbeResult& probe : candidate->probes) {
      if (probe.reason == reason::kOverloaded) return std::string(reason::kOverloaded);
      tlsa_failed = tlsa_failed || probe.reason == reason::kTlsaLookupFailed;
    }
  return std::string(tlsa_failed ? reason::kTlsaLookupFailed : "mx-unreachable");
}

// Rules 6-8 over the matching candidates, in preference order.
void apply_probes(const std::vector<const CandidateFacts*>& matching, bool deadline_passed, Verdict& v) {
  const CandidateFacts* failed = nullptr;
  HostResult failure;
  for (const CandidateFacts* candidate : matching) {
    HostResult result = classify_host(*candidate);
    if (result.state == HostResult::State::Verified || result.state == HostResult::State::DaneVerified) {
      const bool dane = result.state == HostResult::State::DaneVerified;
      v.outcome = Outcome::Pass;
      v.reason = dane ? "dane-verified" : "verified";
      v.tls = dane ? TlsStatus::Dane : TlsStatus::Verified;
      v.mx = candidate->host;
      return;
    }
    if (result.state == HostResult::State::Failed && failed == nullptr) {
      failed = candidate;
      failure = std::move(result);
    }
  }
  if (failed != nullptr) {
    v.outcome = Outcome::Fail;
    v.result_type = failure.type;
    v.reason = std::move(failure.reason);
    v.temporary = failure.temporary;
    v.tls = TlsStatus::Failed;
    v.mx = failed->host;
    return;
  }
  v.outcome = Outcome::Unknown;
  v.reason = deadline_passed ? std::string(reason::kDeadline) : unknown_reason(matching);
  v.tls = TlsStatus::Unverified;
}

// Rules 4-8: MX matching (§4.1), then the probes (§4.2, RFC 7672).
Verdict candidates_verdict(const DecisionFacts& facts, Mode mode) {
  Verdict v;
  v.mode = mode;
  std::vector<const CandidateFacts*> matching;
  for (const auto& candidate : facts.candidates) {
    if (matches(candidate)) {
      matching.push_back(&candidate);
    } else {
      v.mx_not_in_policy.push_back(candidate.host);
    }
  }
  if (!facts.candidates.empty() && matching.empty()) {
    v.outcome = Outcome::Fail;
    v.result_type = ResultType::ValidationFailure;
    v.reason = "mx-not-in-policy";
    v.tls = TlsStatus::Unverified;
    v.mx = facts.candidates.front().host;
    return v;
  }
  if (!facts.probing_enabled && !matching.empty()) {
    v.outcome = Outcome::Pass;
    v.reason = "not-probed";
    v.tls = TlsStatus::NotProbed;
    v.mx = matching.front()->host;  // the host the MTA will try first
    return v;
  }
  apply_probes(matching, facts.deadline_passed, v);
  return v;
}

bool tlsa_lookup_failed(const CandidateFacts& host) {
  return std::any_of(host.probes.begin(), host.probes.end(),
                     [](const ProbeResult& p) { return p.reason == reason::kTlsaLookupFailed; });
}

// A host the MTA would deliver to without DANE: no usable secure TLSA, and
// neither a bogus nor a failed TLSA lookup (those leave DANE open).
bool opportunistic(const CandidateFacts& host) {
  return !host.dane && !host.tlsa_bogus && !tlsa_lookup_failed(host);
}

DaneVerdict dane_pass(std::string reason, std::string mx = {}) {
  DaneVerdict v;
  v.reason = std::move(reason);
  v.mx = std::move(mx);
  return v;
}

Verdict mts_verdict(const DecisionFacts& facts) {
  const auto& policy = facts.resolution.policy;
  if (!policy) return no_policy_verdict(facts);
  const Mode mode = policy->policy.mode;
  if (mode == Mode::None) return mode_none_verdict(facts);
  if (auto verdict = mx_lookup_verdict(facts, mode)) return std::move(*verdict);
  return candidates_verdict(facts, mode);
}

}  // namespace

DaneVerdict decide_dane(const DaneFacts& facts) {
  if (!facts.mx_secure) return dane_pass("mx-insecure");
  const CandidateFacts* failed = nullptr;
  HostResult failure;
  std::vector<const CandidateFacts*> looked;
  for (const CandidateFacts& host : facts.hosts) {
    if (opportunistic(host)) return dane_pass("no-tlsa", host.host);
    HostResult result = classify_host(host);
    if (result.state == HostResult::State::DaneVerified) return dane_pass("dane-verified", host.host);
    if (result.state == HostResult::State::Failed && failed == nullptr) {
      failed = &host;
      failure = std::move(result);
    }
    looked.push_back(&host);
  }
  const bool complete = !facts.deadline_passed && !facts.hosts_left;
  if (facts.hosts.empty() && complete) return dane_pass("no-candidates");
  DaneVerdict v;
  if (failed != nullptr && complete) {
    v.outcome = Outcome::Fail;
    v.result_type = failure.type;
    v.reason = std::move(failure.reason);
    v.mx = failed->host;
    return v;
  }
  v.outcome = Outcome::Unknown;
  v.reason = facts.deadline_passed ? std::string(reason::kDeadline) : unknown_reason(looked);
  return v;
}

Verdict decide(const DecisionFacts& facts) {
  Verdict v = mts_verdict(facts);
  if (facts.dane) v.dane = decide_dane(*facts.dane);
  return v;
}

namespace {

// Matching types 1 and 2 are SHA-256 and SHA-512 digests (RFC 6698 §2.1.3);
// a record of another length can never match, and OpenSSL refuses it.
bool has_digest_length(const TlsaRecord& r) {
  switch (r.matching_type) {
    case 0:
      return !r.data.empty();
    case 1:
      return r.data.size() == 32;
    case 2:
      return r.data.size() == 64;
    default:
      return false;
  }
}

}  // namespace

std::vector<TlsaRecord> usable_tlsa(const std::vector<TlsaRecord>& records) {
  std::vector<TlsaRecord> usable;
  for (const auto& r : records)
    if ((r.usage == 2 || r.usage == 3) && r.selector <= 1 && has_digest_length(r)) usable.push_back(r);
  return usable;
}

}  // namespace mtasts::policy
