// decide(): RFC 8461 §4.1 (MX matching), §4.2 (certificates), §5 (modes),
// RFC 7672 (DANE precedence), RFC 8460 §4.3 (result types). One table of
// facts and the expected verdict; every rule and their precedence.
#include "policy/decide.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mtasts::policy {
namespace {

// --- fact builders -----------------------------------------------------------

Resolution no_policy(std::optional<ResultType> type = std::nullopt, std::string reason = "",
                     bool temporary = false) {
  Resolution r;
  r.domain = "example.com";
  r.source = PolicySource::None;
  r.result_type = type;
  r.reason = std::move(reason);
  r.temporary = temporary;
  return r;
}

Resolution with_policy(Mode mode) {
  Resolution r;
  r.domain = "example.com";
  r.source = PolicySource::Cache;
  r.txt_id = "20240101";
  StoredPolicy stored;
  stored.domain = "example.com";
  stored.txt_id = "20240101";
  stored.policy = Policy{mode, 86400, {"mx1.example.com", "mx2.example.com", "*.relay.example"}};
  r.policy = stored;
  return r;
}

ProbeResult verified(std::string address = "192.0.2.1") {
  ProbeResult p;
  p.outcome = ProbeOutcome::Verified;
  p.tls_version = "TLSv1.3";
  p.address = std::move(address);
  return p;
}

ProbeResult dane_verified() {
  ProbeResult p = verified();
  p.outcome = ProbeOutcome::DaneVerified;
  return p;
}

ProbeResult tls_failure(std::optional<ResultType> type, std::string reason,
                        std::string address = "192.0.2.1") {
  ProbeResult p;
  p.outcome = ProbeOutcome::TlsFailure;
  p.result_type = type;
  p.reason = std::move(reason);
  p.address = std::move(address);
  return p;
}

ProbeResult unreachable(std::string reason = "connect-refused") {
  ProbeResult p;
  p.outcome = ProbeOutcome::Unreachable;
  p.reason = std::move(reason);
  p.address = "192.0.2.9";
  return p;
}

CandidateFacts host(std::string name, bool in_policy, std::vector<ProbeResult> probes = {},
                    std::uint16_t preference = 10) {
  CandidateFacts c;
  c.host = std::move(name);
  c.preference = preference;
  c.matches_policy = in_policy;
  c.probes = std::move(probes);
  return c;
}

CandidateFacts bogus_tlsa(CandidateFacts c) {
  c.tlsa_bogus = true;
  return c;
}

DecisionFacts facts(Resolution resolution, std::vector<CandidateFacts> candidates = {}) {
  DecisionFacts f;
  f.resolution = std::move(resolution);
  f.candidates = std::move(candidates);
  return f;
}

DecisionFacts enforce(std::vector<CandidateFacts> candidates) {
  return facts(with_policy(Mode::Enforce), std::move(candidates));
}

DecisionFacts testing(std::vector<CandidateFacts> candidates) {
  return facts(with_policy(Mode::Testing), std::move(candidates));
}

DecisionFacts mx_failed(DnsStatus status, DnsSecurity security, Mode mode = Mode::Enforce) {
  DecisionFacts f = facts(with_policy(mode));
  f.mx_status = status;
  f.mx_security = security;
  return f;
}

DecisionFacts smart_host(std::vector<ProbeResult> probes, bool in_policy = true) {
  DecisionFacts f = enforce({host("smtp.relay.example", in_policy, std::move(probes), 0)});
  f.next_hop = NextHopKind::SmartHost;
  f.mx_status = DnsStatus::ServFail;  // not consulted for a smart host
  return f;
}

DecisionFacts probing_off(std::vector<CandidateFacts> candidates) {
  DecisionFacts f = enforce(std::move(candidates));
  f.probing_enabled = false;
  return f;
}

DecisionFacts past_deadline(DecisionFacts f) {
  f.deadline_passed = true;
  return f;
}

// One host failing TLS with `type` / `reason`, as the only candidate.
DecisionFacts only_failing(ResultType type, std::string reason) {
  return enforce({host("mx1.example.com", true, {tls_failure(type, std::move(reason))})});
}

// --- the table -----------------------------------------------------------------

using RT = ResultType;
constexpr auto kNone = std::nullopt;

struct DecideCase {
  std::string name;
  std::function<DecisionFacts()> build;
  Outcome outcome;
  std::optional<ResultType> result_type;
  std::string reason;
  TlsStatus tls;
  std::string mx;
  std::vector<std::string> mx_not_in_policy;
};

const std::vector<DecideCase>& decide_cases() {
  static const std::vector<DecideCase> cases = {
      // Rule 1: no policy -> Pass, discovery errors carried for reporting.
      {"no policy",
       [] { return facts(no_policy()); },
       Outcome::Pass,
       kNone,
       "no-policy",
       TlsStatus::None,
       "",
       {}},
      {"no policy: invalid TXT reason carried",
       [] { return facts(no_policy(kNone, "txt-syntax")); },
       Outcome::Pass,
       kNone,
       "txt-syntax",
       TlsStatus::None,
       "",
       {}},
      {"no policy: fetch error carried",
       [] { return facts(no_policy(RT::StsPolicyFetchError, "http-404")); },
       Outcome::Pass,
       RT::StsPolicyFetchError,
       "http-404",
       TlsStatus::None,
       "",
       {}},
      {"no policy: webpki error carried",
       [] { return facts(no_policy(RT::StsWebpkiInvalid, "cert-expired")); },
       Outcome::Pass,
       RT::StsWebpkiInvalid,
       "cert-expired",
       TlsStatus::None,
       "",
       {}},
      {"no policy: candidates and probes ignored",
       [] {
         return facts(no_policy(), {host("mx1.example.com", false,
                                         {tls_failure(RT::CertificateExpired, "cert-expired")})});
       },
       Outcome::Pass,
       kNone,
       "no-policy",
       TlsStatus::None,
       "",
       {}},
      {"no policy + temporary -> unknown",
       [] { return facts(no_policy(RT::StsPolicyFetchError, "dns-servfail", true)); },
       Outcome::Unknown,
       RT::StsPolicyFetchError,
       "dns-servfail",
       TlsStatus::None,
       "",
       {}},
      {"no policy + temporary + deadline -> unknown",
       [] { return past_deadline(facts(no_policy(kNone, "deadline", true))); },
       Outcome::Unknown,
       kNone,
       "deadline",
       TlsStatus::None,
       "",
       {}},
      {"no policy + temporary without reason + deadline",
       [] { return past_deadline(facts(no_policy(kNone, "", true))); },
       Outcome::Unknown,
       kNone,
       "deadline",
       TlsStatus::None,
       "",
       {}},
      {"no policy (definite) + deadline -> still pass",
       [] { return past_deadline(facts(no_policy())); },
       Outcome::Pass,
       kNone,
       "no-policy",
       TlsStatus::None,
       "",
       {}},
      // Rule 1: mode none -> Pass, before any MX or probe fact.
      {"mode none",
       [] { return facts(with_policy(Mode::None)); },
       Outcome::Pass,
       kNone,
       "mode-none",
       TlsStatus::None,
       "",
       {}},
      {"mode none beats MX servfail and failing hosts",
       [] {
         DecisionFacts f = facts(
             with_policy(Mode::None),
             {host("other.example.org", false, {tls_failure(RT::CertificateNotTrusted, "cert-untrusted")})});
         f.mx_status = DnsStatus::ServFail;
         return f;
       },
       Outcome::Pass,
       kNone,
       "mode-none",
       TlsStatus::None,
       "",
       {}},
      // Rule 2: MX lookup failed -> Unknown.
      {"mx servfail",
       [] { return mx_failed(DnsStatus::ServFail, DnsSecurity::Insecure); },
       Outcome::Unknown,
       kNone,
       "mx-lookup-servfail",
       TlsStatus::Unverified,
       "",
       {}},
      {"mx timeout",
       [] { return mx_failed(DnsStatus::Timeout, DnsSecurity::Insecure); },
       Outcome::Unknown,
       kNone,
       "mx-lookup-timeout",
       TlsStatus::Unverified,
       "",
       {}},
      {"mx bogus (servfail status)",
       [] { return mx_failed(DnsStatus::ServFail, DnsSecurity::Bogus); },
       Outcome::Unknown,
       kNone,
       "mx-lookup-bogus",
       TlsStatus::Unverified,
       "",
       {}},
      {"mx bogus (ok status)",
       [] { return mx_failed(DnsStatus::Ok, DnsSecurity::Bogus); },
       Outcome::Unknown,
       kNone,
       "mx-lookup-bogus",
       TlsStatus::Unverified,
       "",
       {}},
      {"mx servfail, testing mode",
       [] { return mx_failed(DnsStatus::ServFail, DnsSecurity::Secure, Mode::Testing); },
       Outcome::Unknown,
       kNone,
       "mx-lookup-servfail",
       TlsStatus::Unverified,
       "",
       {}},
      {"mx servfail beats a verified candidate",
       [] {
         DecisionFacts f = enforce({host("mx1.example.com", true, {verified()})});
         f.mx_status = DnsStatus::ServFail;
         return f;
       },
       Outcome::Unknown,
       kNone,
       "mx-lookup-servfail",
       TlsStatus::Unverified,
       "",
       {}},
      // Rule 3: null MX.
      {"null mx",
       [] {
         DecisionFacts f = facts(with_policy(Mode::Enforce));
         f.null_mx = true;
         f.mx_security = DnsSecurity::Secure;
         return f;
       },
       Outcome::Pass,
       kNone,
       "null-mx",
       TlsStatus::Unverified,
       "",
       {}},
      // No MX: the caller passes the domain itself; it is just a candidate.
      {"no mx: domain itself verified",
       [] {
         DecisionFacts f = enforce({host("example.com", true, {verified()}, 0)});
         f.mx_status = DnsStatus::NoData;
         return f;
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "example.com",
       {}},
      {"no mx: domain itself not in policy",
       [] {
         DecisionFacts f = enforce({host("example.com", false, {verified()}, 0)});
         f.mx_status = DnsStatus::NoData;
         return f;
       },
       Outcome::Fail,
       RT::ValidationFailure,
       "mx-not-in-policy",
       TlsStatus::Unverified,
       "example.com",
       {"example.com"}},
      // Rule 4: no candidate matches the policy.
      {"all candidates mismatch",
       [] {
         return enforce({host("mx.evil.example", false, {verified()}, 5),
                         host("backup.evil.example", false, {verified()}, 10)});
       },
       Outcome::Fail,
       RT::ValidationFailure,
       "mx-not-in-policy",
       TlsStatus::Unverified,
       "mx.evil.example",
       {"mx.evil.example", "backup.evil.example"}},
      {"ip literal never matches",
       [] { return enforce({host("", true, {verified()})}); },
       Outcome::Fail,
       RT::ValidationFailure,
       "mx-not-in-policy",
       TlsStatus::Unverified,
       "",
       {""}},
      {"mixed: mismatching first, matching second verifies",
       [] {
         return enforce({host("mx.evil.example", false, {verified()}, 5),
                         host("mx2.example.com", true, {verified()}, 10)});
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx2.example.com",
       {"mx.evil.example"}},
      {"mixed: verified mismatching host does not rescue a failing match",
       [] {
         return enforce(
             {host("mx1.example.com", true, {tls_failure(RT::CertificateExpired, "cert-expired")}, 5),
              host("mx.evil.example", false, {verified()}, 10)});
       },
       Outcome::Fail,
       RT::CertificateExpired,
       "cert-expired",
       TlsStatus::Failed,
       "mx1.example.com",
       {"mx.evil.example"}},
      // Rule 5: probing off -> Pass on MX matching alone (after rule 4).
      {"probing off",
       [] {
         return probing_off({host("mx.evil.example", false, {}, 5), host("mx1.example.com", true, {}, 10)});
       },
       Outcome::Pass,
       kNone,
       "not-probed",
       TlsStatus::NotProbed,
       "mx1.example.com",
       {"mx.evil.example"}},
      {"probing off, all mismatch -> still fail",
       [] { return probing_off({host("mx.evil.example", false)}); },
       Outcome::Fail,
       RT::ValidationFailure,
       "mx-not-in-policy",
       TlsStatus::Unverified,
       "mx.evil.example",
       {"mx.evil.example"}},
      // Rule 6: a matching candidate verified.
      {"enforce: first host verifies",
       [] {
         return enforce(
             {host("mx1.example.com", true, {verified()}, 5), host("mx2.example.com", true, {}, 10)});
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx1.example.com",
       {}},
      {"testing: first host verifies",
       [] {
         return testing(
             {host("mx1.example.com", true, {verified()}, 5), host("mx2.example.com", true, {}, 10)});
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx1.example.com",
       {}},
      {"first fails TLS, second verifies",
       [] {
         return enforce(
             {host("mx1.example.com", true, {tls_failure(RT::CertificateNotTrusted, "cert-untrusted")}, 5),
              host("mx2.example.com", true, {verified()}, 10)});
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx2.example.com",
       {}},
      {"first address fails, second address of the same host verifies",
       [] {
         return enforce({host(
             "mx1.example.com", true,
             {tls_failure(RT::CertificateExpired, "cert-expired", "192.0.2.1"), verified("2001:db8::1")})});
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx1.example.com",
       {}},
      {"dane verified",
       [] { return enforce({host("mx1.example.com", true, {dane_verified()})}); },
       Outcome::Pass,
       kNone,
       "dane-verified",
       TlsStatus::Dane,
       "mx1.example.com",
       {}},
      {"dane mismatch first, webpki-verified later host",
       [] {
         return enforce({host("mx1.example.com", true, {tls_failure(RT::TlsaInvalid, "tlsa-mismatch")}, 5),
                         host("mx2.example.com", true, {verified()}, 10)});
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx2.example.com",
       {}},
      {"tlsa bogus first, webpki-verified later host",
       [] {
         return enforce({bogus_tlsa(host("mx1.example.com", true, {verified()}, 5)),
                         host("mx2.example.com", true, {verified()}, 10)});
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx2.example.com",
       {}},
      // Rule 7: a matching candidate failed TLS (DANE failures never rescued by WebPKI).
      {"dane mismatch, only host",
       [] {
         return enforce({host("mx1.example.com", true, {tls_failure(RT::TlsaInvalid, "tlsa-mismatch")})});
       },
       Outcome::Fail,
       RT::TlsaInvalid,
       "tlsa-mismatch",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"dane mismatch not rescued by webpki on another address",
       [] {
         return enforce(
             {host("mx1.example.com", true,
                   {tls_failure(RT::TlsaInvalid, "tlsa-mismatch", "192.0.2.1"), verified("2001:db8::1")})});
       },
       Outcome::Fail,
       RT::TlsaInvalid,
       "tlsa-mismatch",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"tlsa bogus, only host, webpki passed",
       [] { return enforce({bogus_tlsa(host("mx1.example.com", true, {verified()}))}); },
       Outcome::Fail,
       RT::DnssecInvalid,
       "tlsa-bogus",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"tlsa bogus, only host, unreachable",
       [] { return enforce({bogus_tlsa(host("mx1.example.com", true, {unreachable()}))}); },
       Outcome::Fail,
       RT::DnssecInvalid,
       "tlsa-bogus",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"first unreachable, second fails",
       [] {
         return enforce({host("mx1.example.com", true, {unreachable("timeout")}, 5),
                         host("mx2.example.com", true,
                              {tls_failure(RT::CertificateHostMismatch, "cert-host-mismatch")}, 10)});
       },
       Outcome::Fail,
       RT::CertificateHostMismatch,
       "cert-host-mismatch",
       TlsStatus::Failed,
       "mx2.example.com",
       {}},
      {"two failures: the most preferred one is reported",
       [] {
         return enforce(
             {host("mx1.example.com", true, {tls_failure(RT::CertificateExpired, "cert-expired")}, 5),
              host("mx2.example.com", true, {tls_failure(RT::CertificateNotTrusted, "cert-untrusted")}, 10)});
       },
       Outcome::Fail,
       RT::CertificateExpired,
       "cert-expired",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"starttls not offered",
       [] { return only_failing(RT::StartTlsNotSupported, "starttls-not-offered"); },
       Outcome::Fail,
       RT::StartTlsNotSupported,
       "starttls-not-offered",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"starttls refused with 454",
       [] { return only_failing(RT::StartTlsNotSupported, "starttls-454"); },
       Outcome::Fail,
       RT::StartTlsNotSupported,
       "starttls-454",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"certificate expired",
       [] { return only_failing(RT::CertificateExpired, "cert-expired"); },
       Outcome::Fail,
       RT::CertificateExpired,
       "cert-expired",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"certificate not trusted",
       [] { return only_failing(RT::CertificateNotTrusted, "cert-untrusted"); },
       Outcome::Fail,
       RT::CertificateNotTrusted,
       "cert-untrusted",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"certificate host mismatch",
       [] { return only_failing(RT::CertificateHostMismatch, "cert-host-mismatch"); },
       Outcome::Fail,
       RT::CertificateHostMismatch,
       "cert-host-mismatch",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"validation failure: old TLS version",
       [] { return only_failing(RT::ValidationFailure, "tls-version"); },
       Outcome::Fail,
       RT::ValidationFailure,
       "tls-version",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"validation failure: handshake",
       [] { return only_failing(RT::ValidationFailure, "handshake"); },
       Outcome::Fail,
       RT::ValidationFailure,
       "handshake",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      {"failure without a result type defaults to validation-failure",
       [] { return enforce({host("mx1.example.com", true, {tls_failure(kNone, "")})}); },
       Outcome::Fail,
       RT::ValidationFailure,
       "tls-failure",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      // Rule 8: nothing verified or failed -> Unknown.
      {"all unreachable",
       [] {
         return enforce({host("mx1.example.com", true, {unreachable(), unreachable("timeout")}, 5),
                         host("mx2.example.com", true, {unreachable()}, 10)});
       },
       Outcome::Unknown,
       kNone,
       "mx-unreachable",
       TlsStatus::Unverified,
       "",
       {}},
      {"a probe refused for load is not called unreachable",
       [] {
         return enforce({host("mx1.example.com", true, {unreachable("overloaded")}, 5),
                         host("mx2.example.com", true, {unreachable()}, 10)});
       },
       Outcome::Unknown,
       kNone,
       "overloaded",
       TlsStatus::Unverified,
       "",
       {}},
      {"matching hosts with no address probed",
       [] { return enforce({host("mx1.example.com", true)}); },
       Outcome::Unknown,
       kNone,
       "mx-unreachable",
       TlsStatus::Unverified,
       "",
       {}},
      // Smart host: one candidate, MX facts not consulted.
      {"smart host verified",
       [] { return smart_host({verified()}); },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "smtp.relay.example",
       {}},
      {"smart host fails",
       [] { return smart_host({tls_failure(RT::CertificateNotTrusted, "cert-untrusted")}); },
       Outcome::Fail,
       RT::CertificateNotTrusted,
       "cert-untrusted",
       TlsStatus::Failed,
       "smtp.relay.example",
       {}},
      {"smart host not in policy",
       [] { return smart_host({verified()}, false); },
       Outcome::Fail,
       RT::ValidationFailure,
       "mx-not-in-policy",
       TlsStatus::Unverified,
       "smtp.relay.example",
       {"smtp.relay.example"}},
      // Deadlines with a policy.
      {"deadline with a policy, no probe done",
       [] {
         return past_deadline(
             enforce({host("mx1.example.com", true, {}, 5), host("mx2.example.com", true, {}, 10)}));
       },
       Outcome::Unknown,
       kNone,
       "deadline",
       TlsStatus::Unverified,
       "",
       {}},
      {"deadline with a policy, MX not looked up yet",
       [] { return past_deadline(enforce({})); },
       Outcome::Unknown,
       kNone,
       "deadline",
       TlsStatus::Unverified,
       "",
       {}},
      {"deadline after one host verified",
       [] {
         return past_deadline(enforce(
             {host("mx1.example.com", true, {verified()}, 5), host("mx2.example.com", true, {}, 10)}));
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx1.example.com",
       {}},
      {"deadline after the first host failed: the failure stands",
       [] {
         return past_deadline(
             enforce({host("mx1.example.com", true,
                           {tls_failure(RT::StartTlsNotSupported, "starttls-not-offered")}, 5),
                      host("mx2.example.com", true, {}, 10)}));
       },
       Outcome::Fail,
       RT::StartTlsNotSupported,
       "starttls-not-offered",
       TlsStatus::Failed,
       "mx1.example.com",
       {}},
      // A stale policy still applies; its discovery error is not the verdict's type.
      {"stale policy with discovery error, verified",
       [] {
         DecisionFacts f = enforce({host("mx1.example.com", true, {verified()})});
         f.resolution.source = PolicySource::Stale;
         f.resolution.result_type = RT::StsPolicyFetchError;
         f.resolution.reason = "dns-servfail";
         return f;
       },
       Outcome::Pass,
       kNone,
       "verified",
       TlsStatus::Verified,
       "mx1.example.com",
       {}},
  };
  return cases;
}

std::string show(std::optional<ResultType> type) {
  return type ? std::string(to_string(*type)) : std::string("(none)");
}

std::string show(std::optional<Mode> mode) {
  return mode ? std::string(to_string(*mode)) : std::string("(none)");
}

TEST(PolicyDecide, Table) {
  ASSERT_GE(decide_cases().size(), 35u);
  for (const auto& c : decide_cases()) {
    SCOPED_TRACE(c.name);
    const DecisionFacts f = c.build();
    const Verdict v = decide(f);
    EXPECT_EQ(to_string(v.outcome), to_string(c.outcome));
    EXPECT_EQ(show(v.result_type), show(c.result_type));
    EXPECT_EQ(v.reason, c.reason);
    EXPECT_EQ(to_string(v.tls), to_string(c.tls));
    EXPECT_EQ(v.mx, c.mx);
    EXPECT_EQ(v.mx_not_in_policy, c.mx_not_in_policy);
    // The verdict's mode is the policy's mode whenever a policy applies.
    const std::string want_mode = f.resolution.policy
                                      ? std::string(to_string(f.resolution.policy->policy.mode))
                                      : std::string("(none)");
    EXPECT_EQ(show(v.mode), want_mode);
  }
}

// §5: "testing" and "enforce" fail the same hosts; only the milter's action
// differs. Every policy row gives the same verdict in the other mode.
TEST(PolicyDecide, TestingAndEnforceGiveTheSameVerdict) {
  int compared = 0;
  for (const auto& c : decide_cases()) {
    DecisionFacts f = c.build();
    if (!f.resolution.policy || f.resolution.policy->policy.mode == Mode::None) continue;
    SCOPED_TRACE(c.name);
    const Verdict first = decide(f);
    auto& mode = f.resolution.policy->policy.mode;
    mode = mode == Mode::Enforce ? Mode::Testing : Mode::Enforce;
    const Verdict second = decide(f);
    EXPECT_EQ(show(second.mode), show(mode));
    EXPECT_EQ(to_string(second.outcome), to_string(first.outcome));
    EXPECT_EQ(show(second.result_type), show(first.result_type));
    EXPECT_EQ(second.reason, first.reason);
    EXPECT_EQ(to_string(second.tls), to_string(first.tls));
    EXPECT_EQ(second.mx, first.mx);
    EXPECT_EQ(second.mx_not_in_policy, first.mx_not_in_policy);
    ++compared;
  }
  EXPECT_GE(compared, 30);
}

TEST(PolicyDecide, OutcomeStrings) {
  const std::vector<std::pair<Outcome, std::string_view>> cases = {
      {Outcome::Pass, "pass"}, {Outcome::Fail, "fail"}, {Outcome::Unknown, "unknown"}};
  for (const auto& [outcome, want] : cases) EXPECT_EQ(to_string(outcome), want);
}

TEST(PolicyDecide, TlsStatusStrings) {
  const std::vector<std::pair<TlsStatus, std::string_view>> cases = {
      {TlsStatus::Verified, "verified"},     {TlsStatus::Dane, "dane"},
      {TlsStatus::NotProbed, "not-probed"},  {TlsStatus::Failed, "failed"},
      {TlsStatus::Unverified, "unverified"}, {TlsStatus::None, "none"}};
  for (const auto& [status, want] : cases) EXPECT_EQ(to_string(status), want);
}

// A 454 to STARTTLS is a failure the server calls temporary: the verdict
// says so, so no action turns it into a permanent reject.
TEST(Decide, TemporaryFailureIsCarriedToTheVerdict) {
  ProbeResult busy = tls_failure(RT::StartTlsNotSupported, "starttls-454");
  busy.temporary = true;
  const Verdict temporary = decide(enforce({host("mx1.example.com", true, {busy})}));
  EXPECT_EQ(temporary.outcome, Outcome::Fail);
  EXPECT_TRUE(temporary.temporary);
  const Verdict lasting = decide(only_failing(RT::StartTlsNotSupported, "starttls-not-offered"));
  EXPECT_EQ(lasting.outcome, Outcome::Fail);
  EXPECT_FALSE(lasting.temporary);
}

}  // namespace
}  // namespace mtasts::policy
